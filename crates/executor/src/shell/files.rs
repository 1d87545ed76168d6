//! The shell executor's file-system work, one blocking function per phase of a job (prepare,
//! start a step, read its outputs, clean up), so each phase is one hand-off to the blocking pool.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
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
/// subdirectory (both mode 0700); the job directory also holds the step files. Undoes its own partial work on failure.
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
    // of their own cost one more `mkdir` and `rmdir` per job (about 3 % of the server's CPU
    // per trivial run, ext4 allocating and freeing a directory block each time).
    Ok(JobDirs {
        meta_dir: job_dir.clone(),
        job_dir,
        workspace,
    })
}

/// Writes a step's script and an empty output file, each created afresh (mode 0600).
pub(crate) fn write_step_files(
    script_path: &Path,
    script: &[u8],
    output_path: &Path,
) -> Result<(), ExecError> {
    write_new_file(script_path, script).map_err(ExecError::io("writing the step script"))?;
    write_new_file(output_path, b"").map_err(ExecError::io("creating the step output file"))
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
    use std::os::unix::fs::MetadataExt as _;

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
}
