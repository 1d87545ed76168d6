//! The local shell executor: each step is `bash` in its own process group inside a per-job workspace.

mod procs;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, StepEnd, StepExit, StepIo};
use crate::outputs::{MAX_OUTPUT_FILE_BYTES, parse_outputs};
use crate::task::{JobTask, LogStream, StepAction, StepTask};
use procs::JobProcesses;

/// After a step's main process exits, its pipes are read for at most this long: a background
/// child may hold them open, and the step must not wait for it.
const PIPE_LINGER: Duration = Duration::from_secs(1);
/// Environment variable carrying the per-job cookie that marks every process of the job.
pub const JOB_COOKIE_VAR: &str = "RUNNEL_JOB_COOKIE";

/// Settings of the shell executor, built by the binary from its `Settings`.
#[derive(Debug, Clone)]
pub struct ShellExecutorConfig {
    /// Parent directory of all job directories (`<root>/<job>-<random>/{workspace,runnel}`).
    pub workspace_root: PathBuf,
    /// Keep job directories after the job (for debugging); processes are killed regardless.
    pub keep_workspaces: bool,
    /// Time between SIGTERM and SIGKILL when a step is stopped or a job is cleaned up.
    pub kill_grace: Duration,
    pub env_policy: EnvPolicy,
    /// The bash binary; a bare name is looked up in `PATH`.
    pub shell: PathBuf,
}

/// Which variables of this process's environment a step sees (before Runnel's and the job's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPolicy {
    /// Everything (`runnel exec` on a developer machine).
    InheritAll,
    /// Only these names (server and agents: operator secrets in the environment stay out).
    Allowlist(Vec<String>),
}

/// Runs shell steps as local processes. One value serves any number of concurrent jobs.
#[derive(Debug, Clone)]
pub struct ShellExecutor {
    config: ShellExecutorConfig,
}

/// A job's private directories and the identity of its processes.
#[derive(Debug)]
pub struct ShellWorkspace {
    job_dir: PathBuf,
    workspace: PathBuf,
    // Scripts and output files: beside the workspace, so a `git clean` or `rm -rf *` in the
    // workspace cannot remove them, and they never end up in artifacts.
    meta_dir: PathBuf,
    cookie: String,
    job_env: Vec<(String, String)>,
    processes: JobProcesses,
    is_removed: bool,
    // Set once `cleanup` has terminated the job's processes; `Drop` kills them otherwise.
    are_processes_stopped: bool,
}

impl ShellExecutorConfig {
    /// Defaults for a server or agent: allowlisted environment, 10 s grace, `bash` from `PATH`.
    pub fn new(workspace_root: impl Into<PathBuf>) -> ShellExecutorConfig {
        ShellExecutorConfig {
            workspace_root: workspace_root.into(),
            keep_workspaces: false,
            kill_grace: Duration::from_secs(10),
            env_policy: EnvPolicy::default_allowlist(),
            shell: PathBuf::from("bash"),
        }
    }
}

impl EnvPolicy {
    pub const DEFAULT_ALLOWLIST: &'static [&'static str] = &[
        "PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL",
    ];

    pub fn default_allowlist() -> EnvPolicy {
        EnvPolicy::Allowlist(
            Self::DEFAULT_ALLOWLIST
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
        )
    }
}

impl ShellExecutor {
    pub fn new(config: ShellExecutorConfig) -> ShellExecutor {
        ShellExecutor { config }
    }

    fn command(
        &self,
        workspace: &ShellWorkspace,
        step: &StepTask,
        script: &Path,
        output: &Path,
    ) -> Command {
        let mut command = Command::new(&self.config.shell);
        command
            .args(["--noprofile", "--norc", "-e", "-o", "pipefail"])
            .arg(script)
            .current_dir(&workspace.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let EnvPolicy::Allowlist(names) = &self.config.env_policy {
            command.env_clear();
            for name in names {
                // Passing selected variables through to children is the policy's purpose; this
                // is not configuration read by the library.
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
        }
        // A non-interactive bash runs $BASH_ENV before the script: never inherit one.
        command.env_remove("BASH_ENV").env_remove("ENV");
        command
            .env("CI", "true")
            .env("RUNNEL", "true")
            .env("WORKSPACE", &workspace.workspace)
            .env("RUNNEL_WORKSPACE", &workspace.workspace);
        // Values are data: they reach bash only as environment values, never as script text.
        for (name, value) in workspace.job_env.iter().chain(&step.env) {
            command.env(name, value);
        }
        command
            .env(JOB_COOKIE_VAR, &workspace.cookie)
            .env("RUNNEL_OUTPUT", output);
        command
    }
}

impl ShellWorkspace {
    /// The directory steps run in (`$WORKSPACE`).
    pub fn path(&self) -> &Path {
        &self.workspace
    }

    /// The value of `RUNNEL_JOB_COOKIE` carried by every process of this job.
    pub fn job_cookie(&self) -> &str {
        &self.cookie
    }
}

impl Drop for ShellWorkspace {
    /// S8 even when the runner's future was dropped (e.g. an aborted task at shutdown): the
    /// job's processes are SIGKILLed synchronously. The directory is left for the operator.
    fn drop(&mut self) {
        if !self.are_processes_stopped {
            procs::kill_now(&self.processes);
        }
    }
}

impl Executor for ShellExecutor {
    type Workspace = ShellWorkspace;

    async fn prepare(&self, job: &JobTask) -> Result<ShellWorkspace, ExecError> {
        let root = &self.config.workspace_root;
        tokio::fs::create_dir_all(root)
            .await
            .map_err(ExecError::io(format!("creating {}", root.display())))?;
        let base = directory_name(&job.job_key);
        let mut attempt = 0;
        let job_dir = loop {
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            let candidate = root.join(format!("{base}-{}", &suffix[..12]));
            // `create`, not `create_all`: failing on an existing directory is what makes it ours.
            match private_dir_builder().create(&candidate).await {
                Ok(()) => break candidate,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 5 => {
                    attempt += 1
                }
                Err(err) => {
                    return Err(ExecError::io(format!("creating {}", candidate.display()))(
                        err,
                    ));
                }
            }
        };
        let workspace = job_dir.join("workspace");
        let meta_dir = job_dir.join("runnel");
        for dir in [&workspace, &meta_dir] {
            if let Err(err) = private_dir_builder().create(dir).await {
                let _ = tokio::task::spawn_blocking({
                    let job_dir = job_dir.clone();
                    move || remove_tree(&job_dir)
                })
                .await;
                return Err(ExecError::io(format!("creating {}", dir.display()))(err));
            }
        }
        let cookie = uuid::Uuid::new_v4().to_string();
        let processes = JobProcesses {
            cookie_entry: format!("{JOB_COOKIE_VAR}={cookie}").into_bytes(),
            groups: Vec::new(),
        };
        Ok(ShellWorkspace {
            job_dir,
            workspace,
            meta_dir,
            cookie,
            job_env: job.env.clone(),
            processes,
            is_removed: false,
            are_processes_stopped: false,
        })
    }

    async fn run_step(
        &self,
        workspace: &mut ShellWorkspace,
        step: &StepTask,
        io: StepIo<'_>,
    ) -> Result<StepExit, ExecError> {
        let StepAction::Shell { script } = &step.action else {
            return Err(ExecError::UnsupportedAction);
        };
        if let Some((name, _)) = workspace
            .job_env
            .iter()
            .chain(&step.env)
            .find(|(name, _)| !is_valid_env_name(name))
        {
            return Err(ExecError::InvalidEnvName(name.clone()));
        }
        let script_path = workspace.meta_dir.join(format!("step-{}.sh", io.step));
        let output_path = workspace.meta_dir.join(format!("output-{}", io.step));
        write_new_file(&script_path, script.as_bytes())
            .await
            .map_err(ExecError::io("writing the step script"))?;
        write_new_file(&output_path, b"")
            .await
            .map_err(ExecError::io("creating the step output file"))?;
        workspace.are_processes_stopped = false;
        let mut child = self
            .command(workspace, step, &script_path, &output_path)
            .spawn()
            .map_err(ExecError::Spawn)?;
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            workspace.processes.groups.push(pid);
        }
        let end = self.supervise(&mut child, &workspace.processes, io).await;
        if end == StepEnd::Stopped {
            return Ok(StepExit {
                end,
                outputs: Vec::new(),
            });
        }
        let outputs = read_outputs(&output_path, &io).await;
        Ok(StepExit { end, outputs })
    }

    async fn cleanup(&self, workspace: &mut ShellWorkspace) -> Result<(), ExecError> {
        let killed = procs::terminate(&workspace.processes, None, self.config.kill_grace).await;
        workspace.are_processes_stopped = true;
        if killed > 0 {
            tracing::debug!(job_dir = %workspace.job_dir.display(), killed, "stopped leftover job processes");
        }
        if self.config.keep_workspaces || workspace.is_removed {
            return Ok(());
        }
        let job_dir = workspace.job_dir.clone();
        tokio::task::spawn_blocking(move || remove_tree(&job_dir))
            .await
            .map_err(|err| ExecError::Backend(format!("workspace removal task failed: {err}")))?
            .map_err(ExecError::io(format!(
                "removing {}",
                workspace.job_dir.display()
            )))?;
        workspace.is_removed = true;
        Ok(())
    }
}

impl ShellExecutor {
    /// Captures both pipes while waiting for the main process; on `stop`, terminates the job's
    /// processes. Returns once the pipes reached EOF or lingered for `PIPE_LINGER`.
    async fn supervise(
        &self,
        child: &mut Child,
        processes: &JobProcesses,
        io: StepIo<'_>,
    ) -> StepEnd {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let stop_reading = CancellationToken::new();
        let pipes_done = CancellationToken::new();
        let pipes = async {
            let (out, err) = tokio::join!(
                capture_optional(io, stdout, LogStream::Stdout, &stop_reading),
                capture_optional(io, stderr, LogStream::Stderr, &stop_reading),
            );
            pipes_done.cancel();
            for (stream, result) in [("stdout", out), ("stderr", err)] {
                if let Err(err) = result {
                    tracing::warn!(step = io.step, stream, error = %err, "reading step output failed");
                }
            }
        };
        let wait = async {
            let end = tokio::select! {
                status = child.wait() => match status {
                    Ok(status) => match (status.code(), status.signal()) {
                        (Some(code), _) => StepEnd::Exited(code),
                        (None, Some(signal)) => StepEnd::Signaled(signal),
                        (None, None) => StepEnd::Exited(-1),
                    },
                    Err(err) => {
                        tracing::warn!(step = io.step, error = %err, "waiting for the step process failed");
                        procs::terminate(processes, Some(child), self.config.kill_grace).await;
                        StepEnd::Exited(-1)
                    }
                },
                _ = io.stop.cancelled() => {
                    procs::terminate(processes, Some(child), self.config.kill_grace).await;
                    StepEnd::Stopped
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(PIPE_LINGER) => stop_reading.cancel(),
                _ = pipes_done.cancelled() => {}
            }
            end
        };
        let ((), end) = tokio::join!(pipes, wait);
        end
    }
}

async fn capture_optional<R: tokio::io::AsyncRead + Unpin>(
    io: StepIo<'_>,
    reader: Option<R>,
    stream: LogStream,
    stop_reading: &CancellationToken,
) -> io::Result<u64> {
    match reader {
        Some(reader) => io.capture(reader, stream, stop_reading).await,
        None => Ok(0),
    }
}

/// Reads and parses the step's `$RUNNEL_OUTPUT`; problems become `System` log lines.
async fn read_outputs(path: &Path, io: &StepIo<'_>) -> Vec<(String, String)> {
    let mut content = Vec::new();
    // The step controls this path: never follow a symlink it planted, never block on a FIFO.
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .await;
    let read = match opened {
        Ok(file) => match file.metadata().await {
            Ok(metadata) if metadata.is_file() => {
                file.take(MAX_OUTPUT_FILE_BYTES + 1)
                    .read_to_end(&mut content)
                    .await
            }
            Ok(_) => Err(io::Error::other("not a regular file")),
            Err(err) => Err(err),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => Err(err),
    };
    if let Err(err) = read {
        io.system_line(&format!("cannot read $RUNNEL_OUTPUT: {err}"))
            .await;
        return Vec::new();
    }
    if content.len() as u64 > MAX_OUTPUT_FILE_BYTES {
        io.system_line("ignored $RUNNEL_OUTPUT: larger than 1 MiB")
            .await;
        return Vec::new();
    }
    let parsed = parse_outputs(&content, io.masker);
    for problem in &parsed.problems {
        io.system_line(problem).await;
    }
    parsed.outputs
}

/// Creates `path` afresh with `content`. Whatever a previous step left there (a symlink, a
/// FIFO) is unlinked first, so the write never lands outside the job directory.
async fn write_new_file(path: &Path, content: &[u8]) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await?;
    file.write_all(content).await?;
    file.flush().await
}

/// A file-system-safe, recognisable directory name for a job key.
fn directory_name(job_key: &str) -> String {
    let mut name: String = job_key
        .chars()
        .map(|char| {
            if char.is_ascii_alphanumeric() || matches!(char, '-' | '_' | '.') {
                char
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert_str(0, "job");
    }
    name
}

fn is_valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn private_dir_builder() -> tokio::fs::DirBuilder {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.mode(0o700);
    builder
}

/// Removes a job directory, first making directories writable if a step left read-only ones
/// (Go's module cache does). A missing directory is fine: cleanup is idempotent.
fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            let mut pending = vec![path.to_path_buf()];
            while let Some(dir) = pending.pop() {
                let Ok(metadata) = std::fs::symlink_metadata(&dir) else {
                    continue;
                };
                if !metadata.is_dir() {
                    continue;
                }
                let mut permissions = metadata.permissions();
                permissions.set_mode(permissions.mode() | 0o700);
                let _ = std::fs::set_permissions(&dir, permissions);
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    pending.extend(entries.flatten().map(|entry| entry.path()));
                }
            }
            match std::fs::remove_dir_all(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_are_safe_and_recognisable() {
        assert_eq!(directory_name("run-1-JOB_AbCdE"), "run-1-JOB_AbCdE");
        assert_eq!(directory_name("../../etc/passwd"), "job.._.._etc_passwd");
        assert_eq!(directory_name(""), "job");
        assert_eq!(directory_name("a b/c\u{e9}"), "a_b_c_");
        assert_eq!(directory_name(&"x".repeat(500)).len(), 80);
    }
}
