//! The shell executor's file-system work, one blocking function per phase of a job (prepare,
//! start a step, read its outputs, clean up), so each phase is one hand-off to the blocking pool.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use crate::executor::ExecError;
use crate::outputs::MAX_OUTPUT_FILE_BYTES;

/// A job's directories: `<root>/<job>-<random>/` holding `workspace/` and the step files.
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
    // allocate and free; see `recycle_job_dir`).
    Ok(JobDirs {
        meta_dir: job_dir.clone(),
        job_dir,
        workspace,
    })
}

/// Prefix of the recycled job directories waiting in the workspace root for their next job.
const SPARE_PREFIX: &str = ".spare-";

/// Takes a recycled job directory (see [`recycle_job_dir`]) for a new job: renamed to a fresh
/// name under `root` named after `base`, never over an existing entry.
pub(crate) fn adopt_job_dir(spare: &Path, root: &Path, base: &str) -> io::Result<JobDirs> {
    let mut attempt = 0;
    loop {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let job_dir = root.join(format!("{base}-{}", &suffix[..12]));
        match rename_no_replace(spare, &job_dir) {
            Ok(()) => {
                return Ok(JobDirs {
                    workspace: job_dir.join("workspace"),
                    meta_dir: job_dir.clone(),
                    job_dir,
                });
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 5 => attempt += 1,
            Err(err) => return Err(err),
        }
    }
}

/// Whether `dir` is a directory with nothing in it (one `getdents`; `false` if unreadable).
fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// The most entries, and the largest step file, of a job directory that [`is_light_to_recycle`].
const LIGHT_ENTRIES: usize = 64;
const LIGHT_FILE_BYTES: u64 = 1024 * 1024;

/// Whether recycling (or removing) `job_dir` is a few small operations, cheap enough for an
/// async worker: nothing in it but an empty `workspace` and a few step files, none large. A job
/// may leave anything there (a tree beside its workspace, a huge `$RUNNEL_OUTPUT`): then no.
pub(crate) fn is_light_to_recycle(job_dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(job_dir) else {
        return false;
    };
    for (index, entry) in entries.enumerate() {
        let Ok(entry) = entry else {
            return false;
        };
        let Ok(kind) = entry.file_type() else {
            return false;
        };
        let name = entry.file_name();
        let is_light = index < LIGHT_ENTRIES
            && if name == "workspace" && kind.is_dir() {
                is_empty_dir(&entry.path())
            } else {
                kind.is_file()
                    && is_step_file_name(&name.to_string_lossy())
                    && entry
                        .metadata()
                        .is_ok_and(|metadata| metadata.len() <= LIGHT_FILE_BYTES)
            };
        if !is_light {
            return false;
        }
    }
    true
}

/// Makes a finished job's directory ready for another job, instead of removing it: the
/// workspace emptied, the step files truncated (kept, so that the next job's are rewritten in
/// place), anything else removed, both directories private again, and the directory renamed
/// to a spare name under `root`. Returns the spare's path. Only for a job whose processes are
/// all gone. On error the caller removes the directory.
///
/// Creating and removing a job directory, its workspace and two files per step were a sixth of
/// the server's CPU per trivial run on ext4 without a journal, which checks every recently
/// freed inode when it allocates one; a recycled directory allocates none.
pub(crate) fn recycle_job_dir(job_dir: &Path, root: &Path) -> io::Result<PathBuf> {
    fs::set_permissions(job_dir, fs::Permissions::from_mode(0o700))?;
    let mut has_workspace = false;
    for entry in fs::read_dir(job_dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if name == "workspace" && kind.is_dir() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
            for inner in fs::read_dir(&path)? {
                let inner = inner?;
                if inner.file_type()?.is_dir() {
                    remove_tree(&inner.path())?;
                } else {
                    fs::remove_file(inner.path())?;
                }
            }
            has_workspace = true;
        } else if kind.is_file() && is_step_file_name(&name.to_string_lossy()) {
            let file = OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                .open(&path)?;
            // A hard link to a file elsewhere is unlinked, never truncated. An empty file is
            // left as it is (a truncation still updates its times, a journaled inode write).
            let metadata = file.metadata()?;
            if metadata.nlink() == 1 {
                if metadata.len() > 0 {
                    file.set_len(0)?;
                }
            } else {
                drop(file);
                fs::remove_file(&path)?;
            }
        } else if kind.is_dir() {
            remove_tree(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    if !has_workspace {
        private_dir_builder().create(job_dir.join("workspace"))?;
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let spare = root.join(format!(
        "{SPARE_PREFIX}{}-{}",
        std::process::id(),
        &suffix[..12]
    ));
    rename_no_replace(job_dir, &spare)?;
    Ok(spare)
}

/// Removes the spare directories left under `root` by processes that are gone (a server
/// killed with `kill -9` never removed its spares), and those named before spares carried their
/// owner's process id. Spares of live processes, this one's included, stay: another server
/// may share the root. Returns how many were removed; errors are skipped (a spare that cannot
/// be removed now is tried again at the next start).
pub(crate) fn sweep_stale_spares(root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|name| name.strip_prefix(SPARE_PREFIX))
        else {
            continue;
        };
        // `<pid>-<random>`; an older spare has no pid.
        let owner = rest
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<i32>().ok());
        if owner.is_some_and(is_alive) {
            continue;
        }
        // Never follow a link: only a directory of our own making is removed.
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) && remove_tree(&entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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
fn is_step_file_name(name: &str) -> bool {
    let number = name
        .strip_prefix("step-")
        .and_then(|rest| rest.strip_suffix(".sh"))
        .or_else(|| name.strip_prefix("output-"));
    number.is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing an existing `to`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(io::Error::from)
}

/// Without `renameat2`: a check, then `rename` (a race lost here replaces only an empty
/// directory of a random name).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    fs::rename(from, to)
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
    fn spares_of_processes_that_are_gone_are_swept_and_the_rest_stays() {
        let root = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone = child.id();
        child.wait().expect("reaped");
        let names = [
            format!("{SPARE_PREFIX}{gone}-aaaaaaaaaaaa"),
            format!("{SPARE_PREFIX}bbbbbbbbbbbb"),
            format!("{SPARE_PREFIX}{}-cccccccccccc", std::process::id()),
            format!("{SPARE_PREFIX}1-dddddddddddd"),
            "run-job-eeeeeeeeeeee".to_owned(),
        ];
        for name in &names {
            let dir = root.path().join(name);
            fs::create_dir_all(dir.join("workspace")).expect("created");
            fs::write(dir.join("step-0.sh"), b"").expect("written");
        }
        // A link named like a spare is never followed, nor removed.
        let target = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(
            target.path(),
            root.path().join(format!("{SPARE_PREFIX}link")),
        )
        .expect("link");

        assert_eq!(sweep_stale_spares(root.path()), 2);
        let left = sorted_names(root.path());
        let mut expected = vec![
            names[2].clone(),
            names[3].clone(),
            names[4].clone(),
            format!("{SPARE_PREFIX}link"),
        ];
        expected.sort();
        assert_eq!(
            left, expected,
            "this process's, a live one's (pid 1), a job's"
        );
        assert!(target.path().exists());
        assert_eq!(sweep_stale_spares(&root.path().join("missing")), 0);
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
    fn only_a_job_directory_with_an_empty_workspace_and_small_step_files_is_light() {
        let root = tempfile::tempdir().expect("temp dir");
        let dirs = create_job_dirs(&root.path().join("jobs"), "job").expect("created");
        assert!(is_light_to_recycle(&dirs.job_dir), "fresh");
        write_step_files(
            &dirs.meta_dir.join("step-0.sh"),
            b"true",
            &dirs.meta_dir.join("output-0"),
        )
        .expect("written");
        assert!(is_light_to_recycle(&dirs.job_dir), "with step files");

        fs::write(dirs.workspace.join("built"), "x").expect("write");
        assert!(
            !is_light_to_recycle(&dirs.job_dir),
            "a workspace with something in it"
        );
        fs::remove_file(dirs.workspace.join("built")).expect("remove");

        fs::create_dir(dirs.job_dir.join("beside")).expect("mkdir");
        assert!(
            !is_light_to_recycle(&dirs.job_dir),
            "a tree beside the workspace"
        );
        fs::remove_dir(dirs.job_dir.join("beside")).expect("rmdir");

        let output = OpenOptions::new()
            .write(true)
            .open(dirs.meta_dir.join("output-0"))
            .expect("open");
        output.set_len(LIGHT_FILE_BYTES + 1).expect("grow");
        assert!(!is_light_to_recycle(&dirs.job_dir), "a large output file");
        output.set_len(0).expect("shrink");
        assert!(is_light_to_recycle(&dirs.job_dir), "light again");
        assert!(
            !is_light_to_recycle(&root.path().join("missing")),
            "unreadable"
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
    fn a_recycled_job_directory_keeps_only_an_empty_workspace_and_emptied_step_files() {
        let root = tempfile::tempdir().expect("temp dir");
        let jobs = root.path().join("jobs");
        let dirs = create_job_dirs(&jobs, "job").expect("created");
        write_step_files(
            &dirs.meta_dir.join("step-0.sh"),
            b"echo",
            &dirs.meta_dir.join("output-0"),
        )
        .expect("written");
        fs::write(dirs.workspace.join("file"), "x").expect("write");
        fs::create_dir(dirs.workspace.join("sub")).expect("mkdir");
        fs::write(dirs.meta_dir.join("step-x.sh"), "not ours").expect("write");
        let elsewhere = root.path().join("elsewhere");
        fs::write(&elsewhere, "keep me").expect("write");
        fs::hard_link(&elsewhere, dirs.meta_dir.join("step-1.sh")).expect("link");
        std::os::unix::fs::symlink("/", dirs.meta_dir.join("output-1")).expect("symlink");
        let spare = recycle_job_dir(&dirs.job_dir, &jobs).expect("recycled");
        assert!(!dirs.job_dir.exists());
        let names = sorted_names(&spare);
        assert_eq!(names, ["output-0", "step-0.sh", "workspace"]);
        assert_eq!(fs::read(spare.join("step-0.sh")).expect("read"), b"");
        assert_eq!(fs::read_to_string(&elsewhere).expect("read"), "keep me");
        assert_eq!(
            fs::read_dir(spare.join("workspace")).expect("read").count(),
            0
        );

        let adopted = adopt_job_dir(&spare, &jobs, "next").expect("adopted");
        assert!(!spare.exists());
        assert!(adopted.workspace.is_dir());
        assert_eq!(adopted.meta_dir, adopted.job_dir);
    }
}
