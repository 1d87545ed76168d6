//! The shell executor's file-system work, one blocking function per phase of a job (prepare,
//! start a step, read its outputs, clean up), so each phase is one hand-off to the blocking pool.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::executor::ExecError;
use crate::outputs::MAX_OUTPUT_FILE_BYTES;

/// A job's directories: `<root>/<name>-<random>/` holding `workspace/` and the step files.
#[derive(Debug)]
pub(crate) struct JobDirs {
    pub(crate) job_dir: PathBuf,
    pub(crate) workspace: PathBuf,
    /// Where step scripts and output files go: the job directory itself.
    pub(crate) meta_dir: PathBuf,
}

/// What a step left in its `$RUNNEL_OUTPUT`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OutputFile {
    Missing,
    Content(Vec<u8>),
    TooLarge,
}

/// Creates a fresh private job directory under `root` named after `base`, with its `workspace`
/// subdirectory (both mode 0700); the job directory also holds the step files. Undoes its own
/// partial work on failure.
pub(crate) fn create_job_dirs(root: &Path, base: &str) -> Result<JobDirs, ExecError> {
    let mut attempt = 0;
    let mut has_root = false;
    let job_dir = loop {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let candidate = root.join(format!("{base}-{}", &suffix[..12]));
        // `create`, not `create_all`: failing on an existing directory is what makes it ours.
        match private_dir_builder().create(&candidate) {
            Ok(()) => break candidate,
            // The root usually exists: create it only when it turns out not to.
            Err(err) if err.kind() == io::ErrorKind::NotFound && !has_root => {
                fs::create_dir_all(root)
                    .map_err(ExecError::io(format!("creating {}", root.display())))?;
                has_root = true;
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 5 => attempt += 1,
            Err(err) => {
                return Err(ExecError::io(format!("creating {}", candidate.display()))(
                    err,
                ));
            }
        }
    };
    let workspace = job_dir.join("workspace");
    if let Err(err) = private_dir_builder().create(&workspace) {
        let _ = remove_tree(&job_dir);
        return Err(ExecError::io(format!("creating {}", workspace.display()))(
            err,
        ));
    }
    // The step files live in the job directory itself, beside `workspace`: a third directory
    // of their own cost one more `mkdir` and `rmdir` per job (an inode and a directory block to
    // allocate and free; see `reset_job_dir`).
    Ok(JobDirs {
        meta_dir: job_dir.clone(),
        job_dir,
        workspace,
    })
}

/// Prefix of the job directories an executor reuses job after job, one per job running at a
/// time: `slot-<owner>-<random>`, where `<owner>` names the executor's lock file (see
/// [`SlotOwner`]).
const SLOT_PREFIX: &str = "slot-";
/// Prefix of the lock file of an executor's job directories: `.slots-<owner>.lock`.
const LOCK_PREFIX: &str = ".slots-";
const LOCK_SUFFIX: &str = ".lock";
/// Suffix of a lock file while [`SlotOwner::claim`] locks it, before renaming it into place.
const STAGING_SUFFIX: &str = ".staging";
/// How old an unlocked staging lock file must be before a sweep removes it.
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(60);
/// Prefix of the recycled job directories of earlier versions, renamed after each job; only swept.
const LEGACY_SPARE_PREFIX: &str = ".spare-";

/// The owner of an executor's job directories: a random token in their names and a lock file
/// in the root, `flock`ed while the executor lives. A sweep removes the directories of owners
/// whose lock it can take: their process is gone, whatever its pid was (a restarted container
/// often has the same pid) and whichever pid namespace it ran in. Dropped, it removes the lock
/// file: the directories left then (a job dropped without cleanup) are the next sweep's.
#[derive(Debug)]
pub(crate) struct SlotOwner {
    token: String,
    lock_path: PathBuf,
    _lock: File,
}

impl SlotOwner {
    /// Creates and locks this executor's lock file under `root` (created if missing). The file
    /// is locked under a temporary name and then renamed into place, so no sweep ever sees it
    /// unlocked.
    pub(crate) fn claim(root: &Path) -> io::Result<SlotOwner> {
        fs::create_dir_all(root)?;
        let token = random_token();
        let lock_path = root.join(format!("{LOCK_PREFIX}{token}{LOCK_SUFFIX}"));
        let staging = root.join(format!("{LOCK_PREFIX}{token}{STAGING_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&staging)?;
        let locked = file.try_lock().map_err(|err| match err {
            fs::TryLockError::Error(err) => err,
            fs::TryLockError::WouldBlock => io::Error::other("the new lock file is locked"),
        });
        if let Err(err) = locked.and_then(|()| fs::rename(&staging, &lock_path)) {
            let _ = fs::remove_file(&staging);
            return Err(err);
        }
        Ok(SlotOwner {
            token,
            lock_path,
            _lock: file,
        })
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for SlotOwner {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// 12 random hex digits.
fn random_token() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    random[..12].to_owned()
}

/// Creates a job directory for reuse (see [`reset_job_dir`]), named after its owner.
pub(crate) fn create_slot_dirs(root: &Path, owner: &SlotOwner) -> Result<JobDirs, ExecError> {
    create_job_dirs(root, &format!("{SLOT_PREFIX}{}", owner.token))
}

/// The job directory `job_dir` as [`JobDirs`], for a job that reuses it.
pub(crate) fn job_dirs_of(job_dir: PathBuf) -> JobDirs {
    JobDirs {
        workspace: job_dir.join("workspace"),
        meta_dir: job_dir.clone(),
        job_dir,
    }
}

/// The most entries, and the largest step file, of a job directory that a light reset handles.
const LIGHT_ENTRIES: usize = 64;
const LIGHT_FILE_BYTES: u64 = 1024 * 1024;

/// What [`reset_job_dir`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// The directory is ready for the next job.
    Done,
    /// Asked for a light reset, it found more: a tree beside the workspace, anything in the
    /// workspace, a large step file, many entries. Perhaps partly reset; the caller resets it
    /// off the async workers.
    TooHeavy,
}

/// Makes a finished job's directory ready for the next job in place, instead of removing it:
/// the workspace emptied, the step files truncated (kept, so that the next job's are rewritten
/// in place), anything else removed, both directories private again. Only for a job whose
/// processes are all gone. On error the caller removes the directory.
///
/// With `only_if_light`, it does only a few small operations, cheap enough for an async worker,
/// and answers [`Reset::TooHeavy`] when the job left more (a job may leave anything there).
///
/// Creating and removing a job directory, its workspace and two files per step were a sixth of
/// the server's CPU per trivial run on ext4 without a journal, which checks every recently
/// freed inode when it allocates one; a reused directory allocates none. Renaming it after
/// each job (to a spare name, then to the next job's) cost two more journaled operations per
/// job: it keeps its name. The directory and its entries are reached through its descriptor,
/// not its path (subtrees a job left are removed by path, never following a link).
pub(crate) fn reset_job_dir(job_dir: &Path, only_if_light: bool) -> io::Result<Reset> {
    let mut dir = Dir::open(job_dir, dir_flags(), Mode::empty())?;
    make_private(&dir)?;
    // A job may leave any number of entries beside its workspace: the listing stops short of
    // reading them all into memory (a light reset hands over, a full one gives up: the caller
    // removes the directory, a streaming removal).
    let limit = if only_if_light {
        LIGHT_ENTRIES
    } else {
        MAX_RESET_ENTRIES
    };
    let Some(entries) = list_dir(&mut dir, limit)? else {
        return if only_if_light {
            Ok(Reset::TooHeavy)
        } else {
            Err(io::Error::other("too many entries to reset"))
        };
    };
    if only_if_light
        && (entries.iter().any(|(name, kind)| match kind {
            Some(Type::Directory) => name.as_c_str() != c"workspace",
            Some(Type::File) => !is_step_file_name(name),
            _ => true,
        }))
    {
        return Ok(Reset::TooHeavy);
    }
    let mut has_workspace = false;
    for (name, kind) in entries {
        let kind = match kind {
            Some(kind) => kind,
            None => kind_at(&dir, &name)?,
        };
        if kind == Type::Directory && name.as_c_str() == c"workspace" {
            let mut workspace = Dir::openat(&dir, name.as_c_str(), dir_flags(), Mode::empty())?;
            let is_empty = list_dir(&mut workspace, 0)?.is_some();
            if is_empty {
                make_private(&workspace)?;
                has_workspace = true;
            } else if only_if_light {
                return Ok(Reset::TooHeavy);
            } else {
                // Removed and made anew below: a removal that streams through the tree.
                drop(workspace);
                remove_tree(&job_dir.join("workspace"))?;
            }
        } else if kind == Type::File && is_step_file_name(&name) {
            let file = File::from(nix::fcntl::openat(
                &dir,
                name.as_c_str(),
                OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?);
            let metadata = file.metadata()?;
            if only_if_light && metadata.len() > LIGHT_FILE_BYTES {
                return Ok(Reset::TooHeavy);
            }
            // A hard link to a file elsewhere is unlinked, never truncated. An empty file is
            // left as it is (a truncation still updates its times, a journaled inode write).
            if metadata.is_file() && metadata.nlink() == 1 {
                if metadata.len() > 0 {
                    file.set_len(0)?;
                }
            } else {
                drop(file);
                unlinkat(&dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir)?;
            }
        } else {
            remove_entry(&dir, job_dir, &name, kind)?;
        }
    }
    if !has_workspace {
        mkdirat(&dir, c"workspace", Mode::S_IRWXU)?;
    }
    Ok(Reset::Done)
}

/// Opening a directory of a job: never through a symlink the job planted.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Mode 0700 for `dir`, changed only if a job changed it (a `chmod` to the same mode is still a
/// journaled inode write).
fn make_private(dir: &Dir) -> io::Result<()> {
    if fstat(dir)?.st_mode & 0o7777 != 0o700 {
        fchmod(dir, Mode::S_IRWXU)?;
    }
    Ok(())
}

/// Names in a directory, with their types where the listing tells.
type Entries = Vec<(CString, Option<Type>)>;

/// The most entries beside the workspace that a full reset lists; with more, the directory is
/// removed instead.
const MAX_RESET_ENTRIES: usize = 4096;

/// The entries of `dir` but `.` and `..`, with their types where the file system tells;
/// `None` as soon as there are more than `limit`.
fn list_dir(dir: &mut Dir, limit: usize) -> io::Result<Option<Entries>> {
    let mut entries = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            if entries.len() == limit {
                return Ok(None);
            }
            entries.push((name.to_owned(), entry.file_type()));
        }
    }
    Ok(Some(entries))
}

/// The type of `name` in `dir`, not following a symlink (for file systems whose listings
/// leave it out).
fn kind_at(dir: &Dir, name: &CStr) -> io::Result<Type> {
    let mode = SFlag::from_bits_truncate(
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?.st_mode & SFlag::S_IFMT.bits(),
    );
    Ok(match mode {
        SFlag::S_IFDIR => Type::Directory,
        SFlag::S_IFREG => Type::File,
        SFlag::S_IFLNK => Type::Symlink,
        SFlag::S_IFIFO => Type::Fifo,
        SFlag::S_IFSOCK => Type::Socket,
        SFlag::S_IFCHR => Type::CharacterDevice,
        _ => Type::BlockDevice,
    })
}

/// Removes the entry `name` of `dir` (whose path is `dir_path`): a directory with all it holds.
fn remove_entry(dir: &Dir, dir_path: &Path, name: &CStr, kind: Type) -> io::Result<()> {
    if kind == Type::Directory {
        remove_tree(&dir_path.join(OsStr::from_bytes(name.to_bytes())))
    } else {
        Ok(unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?)
    }
}

/// Removes the job directories left under `root` by executors that are gone (see
/// [`SlotOwner`]): those of a server killed with `kill -9`, with whatever its last jobs left in
/// them, and their lock files, and the staging lock files of executors killed while they
/// claimed theirs; also the recycled directories of earlier versions whose process is gone. Those of live executors stay, `own` included: another server may share the root.
/// Returns how many directories were removed; errors are skipped (what cannot be removed now is
/// tried again at the next start).
pub(crate) fn sweep_stale_slots(root: &Path, own: Option<&str>) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    // Per owner token: the lock taken (a stale owner, its file to remove last) or `None`
    // (a live owner).
    let mut owners: HashMap<String, Option<Option<File>>> = HashMap::new();
    let mut stale_dirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let is_stale = if let Some(rest) = name.strip_prefix(SLOT_PREFIX) {
            // `<owner>-<random>`, exactly as `create_slot_dirs` names them.
            let Some((token, random)) = rest.split_once('-') else {
                continue;
            };
            if !is_token(token) || !is_token(random) || own == Some(token) {
                continue;
            }
            owners
                .entry(token.to_owned())
                .or_insert_with(|| take_stale_lock(root, token))
                .is_some()
        } else if let Some(token) = name
            .strip_prefix(LOCK_PREFIX)
            .and_then(|rest| rest.strip_suffix(LOCK_SUFFIX))
        {
            // A lock file without directories: taken, it goes below.
            if is_token(token) && own != Some(token) {
                owners
                    .entry(token.to_owned())
                    .or_insert_with(|| take_stale_lock(root, token));
            }
            continue;
        } else if let Some(token) = name
            .strip_prefix(LOCK_PREFIX)
            .and_then(|rest| rest.strip_suffix(STAGING_SUFFIX))
        {
            // A lock file a process created but never renamed into place: it died in between.
            if is_token(token) && own != Some(token) && is_abandoned_staging(&entry) {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        } else if let Some(rest) = name.strip_prefix(LEGACY_SPARE_PREFIX) {
            // `<pid>-<random>`; the oldest have no pid.
            !rest
                .split_once('-')
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
                .is_some_and(is_alive)
        } else {
            false
        };
        // Never follow a link: only a directory of our own making is removed.
        if is_stale && entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            stale_dirs.push(entry.path());
        }
    }
    let removed = stale_dirs
        .iter()
        .filter(|dir| remove_tree(dir).is_ok())
        .count();
    for (token, lock) in owners {
        if let Some(Some(_held)) = lock {
            // Still locked by this sweep: no other sweep removes a file it is about to use.
            let _ = fs::remove_file(root.join(format!("{LOCK_PREFIX}{token}{LOCK_SUFFIX}")));
        }
    }
    removed
}

/// Whether the staging lock file `entry` was left by a process that died between creating it
/// and renaming it into place: a regular file, unlocked, last changed more than
/// [`STAGING_GRACE`] ago. (Its creator locks it at once and renames it right after, so a live
/// one is either locked or very young.)
fn is_abandoned_staging(entry: &fs::DirEntry) -> bool {
    if !entry.file_type().is_ok_and(|kind| kind.is_file()) {
        return false;
    }
    let is_old = entry
        .metadata()
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > STAGING_GRACE);
    is_old
        && OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(entry.path())
            .is_ok_and(|file| file.try_lock().is_ok())
}

/// Whether `text` is 12 hex digits (an owner token or a directory's random part).
fn is_token(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// For the owner `token`: `None` if its lock is held (the owner lives); `Some(Some(file))`
/// with the lock now held by this sweep; `Some(None)` when its lock file is gone (an owner
/// that stopped, leaving a directory a job never cleaned up).
fn take_stale_lock(root: &Path, token: &str) -> Option<Option<File>> {
    let path = root.join(format!("{LOCK_PREFIX}{token}{LOCK_SUFFIX}"));
    match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => file.try_lock().is_ok().then_some(Some(file)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Some(None),
        // Unreadable: not ours to judge.
        Err(_) => None,
    }
}

/// Whether a process with this id exists (signal 0: a permission error means it does).
fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// `step-<n>.sh` or `output-<n>`, the names the executor gives a step's files.
fn is_step_file_name(name: &CStr) -> bool {
    let Ok(name) = name.to_str() else {
        return false;
    };
    let number = name
        .strip_prefix("step-")
        .and_then(|rest| rest.strip_suffix(".sh"))
        .or_else(|| name.strip_prefix("output-"));
    number.is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes a step's script and an empty output file (mode 0600), see [`write_file`].
pub(crate) fn write_step_files(
    script_path: &Path,
    script: &[u8],
    output_path: &Path,
) -> Result<(), ExecError> {
    write_file(script_path, script).map_err(ExecError::io("writing the step script"))?;
    write_file(output_path, b"").map_err(ExecError::io("creating the step output file"))
}

/// Reads a step's `$RUNNEL_OUTPUT`, up to one byte more than the limit.
pub(crate) fn read_output_file(path: &Path) -> io::Result<OutputFile> {
    // The step controls this path: never follow a symlink it planted, never block on a FIFO.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(OutputFile::Missing),
        Err(err) => return Err(err),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if metadata.len() > MAX_OUTPUT_FILE_BYTES {
        return Ok(OutputFile::TooLarge);
    }
    let mut content = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_OUTPUT_FILE_BYTES + 1)
        .read_to_end(&mut content)?;
    if content.len() as u64 > MAX_OUTPUT_FILE_BYTES {
        return Ok(OutputFile::TooLarge);
    }
    Ok(OutputFile::Content(content))
}

/// Removes a job directory, first making directories writable if a step left read-only ones
/// (Go's module cache does). A missing directory is fine: cleanup is idempotent.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            let mut pending = vec![path.to_path_buf()];
            while let Some(dir) = pending.pop() {
                let Ok(metadata) = fs::symlink_metadata(&dir) else {
                    continue;
                };
                if !metadata.is_dir() {
                    continue;
                }
                let mut permissions = metadata.permissions();
                permissions.set_mode(permissions.mode() | 0o700);
                let _ = fs::set_permissions(&dir, permissions);
                if let Ok(entries) = fs::read_dir(&dir) {
                    pending.extend(entries.flatten().map(|entry| entry.path()));
                }
            }
            match fs::remove_dir_all(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Writes `content` to `path` (mode 0600). A regular file of this user with no other link,
/// left by an earlier step or by the job that used a recycled job directory, is overwritten in
/// place: on some file systems creating an inode costs far more than the write
/// (ext4 without a journal checks the recently freed ones). Anything else there (a symlink, a
/// FIFO, a hard link to some other file) is unlinked and the file created afresh, so the write
/// never lands outside the job directory.
fn write_file(path: &Path, content: &[u8]) -> io::Result<()> {
    // `O_NOFOLLOW`: a symlink fails to open; `O_NONBLOCK`: so does a FIFO nobody reads.
    if let Ok(mut file) = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        let metadata = file.metadata()?;
        if metadata.file_type().is_file()
            && metadata.nlink() == 1
            && metadata.uid() == nix::unistd::geteuid().as_raw()
        {
            if metadata.mode() & 0o7777 != 0o600 {
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
            }
            // Overwritten from the start, then cut to the new length: a truncation to zero
            // before the write would make ext4 flush the file at `close` (its `auto_da_alloc`
            // heuristic for files replaced by truncation), a block allocation per step.
            if !content.is_empty() {
                file.write_all(content)?;
            }
            if metadata.len() > content.len() as u64 {
                file.set_len(content.len() as u64)?;
            }
            return Ok(());
        }
    }
    write_new_file(path, content)
}

/// Creates `path` afresh with `content`. Whatever a previous step left there (a symlink, a
/// FIFO) is unlinked first, so the write never lands outside the job directory.
fn write_new_file(path: &Path, content: &[u8]) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    if !content.is_empty() {
        file.write_all(content)?;
    }
    Ok(())
}

fn private_dir_builder() -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries of `dir` by name, sorted.
    /// A light reset of `job_dir` declines; a full one empties it.
    fn only_a_full_reset_does(job_dir: &Path) {
        assert_eq!(
            reset_job_dir(job_dir, true).expect("reset"),
            Reset::TooHeavy
        );
        assert_eq!(reset_job_dir(job_dir, false).expect("reset"), Reset::Done);
    }

    fn sorted_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn job_directories_of_executors_that_are_gone_are_swept_and_the_rest_stays() {
        let root = tempfile::tempdir().expect("temp dir");
        let own = SlotOwner::claim(root.path()).expect("own lock");
        let live = SlotOwner::claim(root.path()).expect("another executor's lock");
        // A killed executor's lock file stays, unlocked.
        let killed = "aaaaaaaaaaaa";
        fs::write(
            root.path()
                .join(format!("{LOCK_PREFIX}{killed}{LOCK_SUFFIX}")),
            "",
        )
        .expect("written");
        // An executor that stopped removed its lock file; a job dropped without cleanup left
        // its directory.
        let stopped = "bbbbbbbbbbbb";
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone_pid = child.id();
        child.wait().expect("reaped");
        let names = [
            format!("{SLOT_PREFIX}{killed}-111111111111"),
            format!("{SLOT_PREFIX}{stopped}-222222222222"),
            format!("{LEGACY_SPARE_PREFIX}{gone_pid}-cccccccccccc"),
            format!("{SLOT_PREFIX}{}-333333333333", live.token()),
            format!("{SLOT_PREFIX}{}-444444444444", own.token()),
            format!("{LEGACY_SPARE_PREFIX}{}-cccccccccccc", std::process::id()),
            // Not named as executors name them: a kept job directory, say.
            format!("{SLOT_PREFIX}{killed}-kept"),
            "run-job-eeeeeeeeeeee".to_owned(),
        ];
        for name in &names {
            let dir = root.path().join(name);
            fs::create_dir_all(dir.join("workspace")).expect("created");
            fs::write(dir.join("step-0.sh"), b"").expect("written");
        }
        // A link named like a slot is never followed, nor removed.
        let target = tempfile::tempdir().expect("temp dir");
        let link = format!("{SLOT_PREFIX}{killed}-ffffffffffff");
        std::os::unix::fs::symlink(target.path(), root.path().join(&link)).expect("link");

        assert_eq!(sweep_stale_slots(root.path(), Some(own.token())), 3);
        let left = sorted_names(root.path());
        let mut expected = names[3..].to_vec();
        expected.extend([
            link,
            format!("{LOCK_PREFIX}{}{LOCK_SUFFIX}", own.token()),
            format!("{LOCK_PREFIX}{}{LOCK_SUFFIX}", live.token()),
        ]);
        expected.sort();
        assert_eq!(left, expected, "the killed executor's lock file went too");
        assert!(target.path().exists());

        let live_dir = root.path().join(&names[3]);
        drop(live);
        assert!(
            live_dir.exists(),
            "an executor leaves its directories in use"
        );
        assert_eq!(sweep_stale_slots(root.path(), Some(own.token())), 1);
        assert!(!live_dir.exists(), "swept once its executor is gone");
        assert_eq!(sweep_stale_slots(&root.path().join("missing"), None), 0);
    }

    #[test]
    fn staging_lock_files_of_processes_that_died_while_claiming_are_swept() {
        let root = tempfile::tempdir().expect("temp dir");
        let staging = |token: &str| {
            root.path()
                .join(format!("{LOCK_PREFIX}{token}{STAGING_SUFFIX}"))
        };
        let age = |path: &Path, seconds: u64| {
            let file = File::options().write(true).open(path).expect("open");
            let then = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds);
            file.set_modified(then).expect("set mtime");
        };
        // Died between creating and renaming: old and unlocked.
        let dead = staging("aaaaaaaaaaaa");
        fs::write(&dead, "").expect("written");
        age(&dead, 3600);
        // Being claimed right now: young, or locked.
        let young = staging("bbbbbbbbbbbb");
        fs::write(&young, "").expect("written");
        let locked = staging("cccccccccccc");
        fs::write(&locked, "").expect("written");
        age(&locked, 3600);
        let holder = File::open(&locked).expect("open");
        holder.try_lock().expect("locked");
        // Not a file of ours: a directory so named, a name that is no token.
        let dir = staging("dddddddddddd");
        fs::create_dir(&dir).expect("created");
        let other = root
            .path()
            .join(format!("{LOCK_PREFIX}not-a-token{STAGING_SUFFIX}"));
        fs::write(&other, "").expect("written");
        age(&other, 3600);

        sweep_stale_slots(root.path(), None);
        assert!(!dead.exists(), "an abandoned staging file is removed");
        for kept in [&young, &locked, &dir, &other] {
            assert!(kept.exists(), "{} stays", kept.display());
        }
        drop(holder);
        sweep_stale_slots(root.path(), None);
        assert!(!locked.exists(), "removed once unlocked");
        // A claim leaves no staging file behind.
        let owner = SlotOwner::claim(root.path()).expect("claimed");
        assert!(!staging(owner.token()).exists());
        assert!(
            root.path()
                .join(format!("{LOCK_PREFIX}{}{LOCK_SUFFIX}", owner.token()))
                .exists()
        );
    }

    #[test]
    fn job_directories_and_step_files_are_private_and_created_afresh() {
        let root = tempfile::tempdir().expect("temp dir");
        let dirs = create_job_dirs(&root.path().join("jobs"), "job").expect("created");
        for dir in [&dirs.job_dir, &dirs.workspace, &dirs.meta_dir] {
            assert_eq!(fs::metadata(dir).expect("exists").mode() & 0o777, 0o700);
        }
        let script = dirs.meta_dir.join("step-0.sh");
        let output = dirs.meta_dir.join("output-0");
        let outside = root.path().join("outside");
        std::os::unix::fs::symlink(&outside, &script).expect("plant a symlink");
        write_step_files(&script, b"echo hi", &output).expect("written");
        assert!(!outside.exists(), "the planted symlink was not followed");
        assert_eq!(fs::read(&script).expect("read"), b"echo hi");
        for file in [&script, &output] {
            assert_eq!(fs::metadata(file).expect("exists").mode() & 0o777, 0o600);
        }
        assert_eq!(
            read_output_file(&output).expect("read"),
            OutputFile::Content(Vec::new())
        );
        fs::remove_file(&output).expect("remove");
        assert_eq!(
            read_output_file(&output).expect("read"),
            OutputFile::Missing
        );
        fs::write(&output, vec![b'x'; MAX_OUTPUT_FILE_BYTES as usize + 1]).expect("write");
        assert_eq!(
            read_output_file(&output).expect("read"),
            OutputFile::TooLarge
        );
        remove_tree(&dirs.job_dir).expect("removed");
        remove_tree(&dirs.job_dir).expect("removing again is fine");
        assert!(!dirs.job_dir.exists());
    }

    #[test]
    fn a_light_reset_handles_only_an_empty_workspace_and_small_step_files() {
        let root = tempfile::tempdir().expect("temp dir");
        let owner = SlotOwner::claim(&root.path().join("jobs")).expect("owner");
        let dirs = create_slot_dirs(&root.path().join("jobs"), &owner).expect("created");
        let light = |why: &str| {
            assert_eq!(
                reset_job_dir(&dirs.job_dir, true).expect("reset"),
                Reset::Done,
                "{why}"
            );
        };
        let heavy = |why: &str| {
            assert_eq!(
                reset_job_dir(&dirs.job_dir, true).expect("reset"),
                Reset::TooHeavy,
                "{why}"
            );
        };
        light("fresh");
        write_step_files(
            &dirs.meta_dir.join("step-0.sh"),
            b"true",
            &dirs.meta_dir.join("output-0"),
        )
        .expect("written");
        light("with step files");

        fs::write(dirs.workspace.join("built"), "x").expect("write");
        heavy("a workspace with something in it");
        assert!(
            dirs.workspace.join("built").exists(),
            "left for the full reset"
        );
        fs::remove_file(dirs.workspace.join("built")).expect("remove");

        fs::create_dir(dirs.job_dir.join("beside")).expect("mkdir");
        heavy("a tree beside the workspace");
        fs::remove_dir(dirs.job_dir.join("beside")).expect("rmdir");
        fs::write(dirs.job_dir.join("notes.txt"), "x").expect("write");
        heavy("a file of another name beside the workspace");
        fs::remove_file(dirs.job_dir.join("notes.txt")).expect("remove");

        let output = OpenOptions::new()
            .write(true)
            .open(dirs.meta_dir.join("output-0"))
            .expect("open");
        output.set_len(LIGHT_FILE_BYTES + 1).expect("grow");
        heavy("a large output file");
        assert_eq!(
            reset_job_dir(&dirs.job_dir, false).expect("reset"),
            Reset::Done
        );
        assert_eq!(output.metadata().expect("stat").len(), 0, "truncated");
        light("light again");
        assert!(
            reset_job_dir(&root.path().join("missing"), true).is_err(),
            "missing"
        );
        assert!(
            dirs.job_dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with(&format!("{SLOT_PREFIX}{}-", owner.token())),
            "named after its owner: {}",
            dirs.job_dir.display()
        );
    }

    #[test]
    fn a_step_file_is_rewritten_in_place_only_when_it_is_a_private_regular_file() {
        let root = tempfile::tempdir().expect("temp dir");
        let dirs = create_job_dirs(&root.path().join("jobs"), "job").expect("created");
        let script = dirs.meta_dir.join("step-0.sh");
        let output = dirs.meta_dir.join("output-0");
        write_step_files(&script, b"first version, longer", &output).expect("written");
        let inode = fs::metadata(&script).expect("exists").ino();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::write(&output, "key=value").expect("write");
        write_step_files(&script, b"second", &output).expect("rewritten");
        assert_eq!(fs::read(&script).expect("read"), b"second");
        assert_eq!(
            fs::metadata(&script).expect("exists").ino(),
            inode,
            "in place"
        );
        assert_eq!(fs::metadata(&script).expect("exists").mode() & 0o777, 0o600);
        assert_eq!(
            fs::read(&output).expect("read"),
            b"",
            "the output file is emptied"
        );
        // Overwritten from the start and cut to length, whichever is longer.
        write_step_files(&script, b"second, now longer than before", &output).expect("grown");
        assert_eq!(
            fs::read(&script).expect("read"),
            b"second, now longer than before"
        );
        write_step_files(&script, b"", &output).expect("emptied");
        assert_eq!(fs::read(&script).expect("read"), b"");

        // A hard link to a file elsewhere: that file is left alone.
        let elsewhere = root.path().join("elsewhere");
        fs::write(&elsewhere, "keep me").expect("write");
        fs::remove_file(&script).expect("remove");
        fs::hard_link(&elsewhere, &script).expect("link");
        // A FIFO nobody reads: no blocking open.
        fs::remove_file(&output).expect("remove");
        nix::unistd::mkfifo(&output, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        write_step_files(&script, b"third", &output).expect("written afresh");
        assert_eq!(fs::read_to_string(&elsewhere).expect("read"), "keep me");
        assert_eq!(fs::read(&script).expect("read"), b"third");
        assert!(fs::metadata(&output).expect("exists").is_file());
    }

    #[test]
    fn a_reset_job_directory_keeps_only_an_empty_private_workspace_and_emptied_step_files() {
        let root = tempfile::tempdir().expect("temp dir");
        let jobs = root.path().join("jobs");
        let owner = SlotOwner::claim(&jobs).expect("owner");
        let dirs = create_slot_dirs(&jobs, &owner).expect("created");
        write_step_files(
            &dirs.meta_dir.join("step-0.sh"),
            b"echo",
            &dirs.meta_dir.join("output-0"),
        )
        .expect("written");
        fs::write(dirs.workspace.join("file"), "x").expect("write");
        fs::create_dir_all(dirs.workspace.join("sub/deeper")).expect("mkdir");
        fs::set_permissions(
            dirs.workspace.join("sub"),
            fs::Permissions::from_mode(0o500),
        )
        .expect("read-only");
        fs::write(dirs.meta_dir.join("step-x.sh"), "not ours").expect("write");
        fs::create_dir(dirs.meta_dir.join("beside")).expect("mkdir");
        let elsewhere = root.path().join("elsewhere");
        fs::write(&elsewhere, "keep me").expect("write");
        fs::hard_link(&elsewhere, dirs.meta_dir.join("step-1.sh")).expect("link");
        std::os::unix::fs::symlink("/", dirs.meta_dir.join("output-1")).expect("symlink");
        for dir in [&dirs.job_dir, &dirs.workspace] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let inode = fs::metadata(&dirs.job_dir).expect("exists").ino();

        only_a_full_reset_does(&dirs.job_dir);
        assert_eq!(
            sorted_names(&dirs.job_dir),
            ["output-0", "step-0.sh", "workspace"]
        );
        assert_eq!(
            fs::metadata(&dirs.job_dir).expect("exists").ino(),
            inode,
            "in place"
        );
        assert_eq!(fs::read(dirs.job_dir.join("step-0.sh")).expect("read"), b"");
        assert_eq!(fs::read_to_string(&elsewhere).expect("read"), "keep me");
        assert!(sorted_names(&dirs.workspace).is_empty());
        for dir in [&dirs.job_dir, &dirs.workspace] {
            assert_eq!(fs::metadata(dir).expect("exists").mode() & 0o7777, 0o700);
        }

        // A workspace the job replaced with a symlink is removed (not followed) and made anew.
        fs::remove_dir(&dirs.workspace).expect("rmdir");
        std::os::unix::fs::symlink(root.path(), &dirs.workspace).expect("symlink");
        only_a_full_reset_does(&dirs.job_dir);
        assert!(
            fs::symlink_metadata(&dirs.workspace)
                .expect("exists")
                .is_dir()
        );
        assert!(
            jobs.exists() && elsewhere.exists(),
            "nothing outside was touched"
        );
        // A missing workspace is made anew.
        fs::remove_dir(&dirs.workspace).expect("rmdir");
        assert_eq!(
            reset_job_dir(&dirs.job_dir, true).expect("reset"),
            Reset::Done
        );
        assert!(dirs.workspace.is_dir());
    }
}
