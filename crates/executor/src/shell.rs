//! The local shell executor: each step is `bash` in its own process group inside a per-job workspace.

mod cgroup;
mod files;
mod procs;
mod scan;

use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, StepEnd, StepExit, StepIo};
use crate::outputs::parse_outputs;
use crate::task::{JobTask, LogStream, StepAction, StepTask};
use cgroup::{CgroupParent, JobCgroup};
use files::OutputFile;
use procs::JobProcesses;
use scan::ForkCounters;

/// After a step's main process exits, its pipes are read for at most this long: a background
/// child may hold them open, and the step must not wait for it.
const PIPE_LINGER: Duration = Duration::from_secs(1);
/// Environment variable carrying the per-job cookie that marks every process of the job.
pub const JOB_COOKIE_VAR: &str = "RUNNEL_JOB_COOKIE";

/// Settings of the shell executor, built by the binary from its `Settings`.
#[derive(Debug, Clone)]
pub struct ShellExecutorConfig {
    /// Parent directory of all job directories: `<root>/slot-<owner>-<random>/`, each reused job
    /// after job, or `<root>/<job>-<random>/` when kept; each holds `workspace/` and the step files.
    pub workspace_root: PathBuf,
    /// Keep job directories after the job (for debugging), each named after its job; processes
    /// are killed regardless.
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

/// How the shell executor finds every process of a job, to stop them all (S8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessTracking {
    /// Process groups plus a scan of `/proc` for the `RUNNEL_JOB_COOKIE` every step process
    /// inherits, limited to processes started since the job's first one. The default: it costs
    /// well under a millisecond per job even on a host with thousands of processes.
    CookieScan,
    /// A cgroup v2 per job, below this process's own cgroup, when that is possible here (probed
    /// once, when the executor is built); otherwise `CookieScan`. Also finds processes that both
    /// left their step's process group and cleared their environment, and `cgroup.kill` stops
    /// fork bombs. The price is one cgroup migration per step, done by the new process before
    /// `exec` (so it is forked rather than vforked): unless cgroup v2 is mounted with
    /// `favordynmods`, a migration after a quiet spell waits for an RCU grace period, several
    /// milliseconds per job (7 ms measured on Linux 6.18).
    CgroupIfAvailable,
}

/// Runs shell steps as local processes. One value serves any number of concurrent jobs.
#[derive(Debug, Clone)]
pub struct ShellExecutor {
    config: ShellExecutorConfig,
    /// Where job cgroups are created; `None`: job processes are found by the cookie scan.
    cgroups: Option<CgroupParent>,
    /// Finished jobs' directories, emptied, for the next jobs (see `files::reset_job_dir`).
    idle: Arc<IdleDirs>,
}

/// At most this many emptied job directories wait for a job; more are removed.
const MAX_IDLE_DIRS: usize = 32;

/// Job directories waiting for their next job, and their owner. The last executor clone to go
/// removes them, then its lock file.
#[derive(Debug)]
struct IdleDirs {
    dirs: Mutex<Vec<PathBuf>>,
    /// `None`: the lock file could not be made; jobs then get directories named after them,
    /// removed after the job, never reused.
    owner: Option<files::SlotOwner>,
}

impl IdleDirs {
    fn lock(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        // The list stays valid even if a holder panicked.
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<PathBuf> {
        self.lock().pop()
    }

    fn has_room(&self) -> bool {
        self.lock().len() < MAX_IDLE_DIRS
    }

    /// Keeps `dir` for a later job; `Err(dir)` when there are enough already.
    fn put(&self, dir: PathBuf) -> Result<(), PathBuf> {
        let mut dirs = self.lock();
        if dirs.len() < MAX_IDLE_DIRS {
            dirs.push(dir);
            Ok(())
        } else {
            Err(dir)
        }
    }
}

impl Drop for IdleDirs {
    fn drop(&mut self) {
        let dirs = self.dirs.get_mut().unwrap_or_else(PoisonError::into_inner);
        for dir in dirs.drain(..) {
            let _ = files::remove_tree(&dir);
        }
    }
}

/// A job's private directories and the identity of its processes.
#[derive(Debug)]
pub struct ShellWorkspace {
    job_dir: PathBuf,
    workspace: PathBuf,
    // Scripts and output files: beside the workspace, so a `git clean` or `rm -rf *` in the
    // workspace cannot remove them, and they never end up in artifacts.
    meta_dir: PathBuf,
    /// The job key made safe for file names: the job cgroup's name starts with it.
    name: String,
    cookie: String,
    job_env: Vec<(String, String)>,
    processes: JobProcesses,
    // Whether the next step may start in the job's cgroup: the executor has cgroups and no
    // attempt to create the job's cgroup or to start a step in it has failed.
    may_use_cgroup: bool,
    // Set once cleanup removed the job directory or handed it back for another job: it is
    // never touched again through this workspace.
    is_released: bool,
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
    /// An executor that finds job processes with the cookie scan (see [`ProcessTracking`]).
    pub fn new(config: ShellExecutorConfig) -> ShellExecutor {
        ShellExecutor::with_tracking(config, ProcessTracking::CookieScan)
    }

    /// An executor that finds job processes as `tracking` says. Asked for cgroups, it probes
    /// once whether it can create them (creating and removing a throw-away one). It first
    /// locks its job directories' owner file and, on a thread of its own, removes the job
    /// directories that executors now gone left in the workspace root.
    pub fn with_tracking(config: ShellExecutorConfig, tracking: ProcessTracking) -> ShellExecutor {
        let owner = if config.keep_workspaces {
            None
        } else {
            files::SlotOwner::claim(&config.workspace_root)
                .inspect_err(|err| tracing::warn!(root = %config.workspace_root.display(), error = %err, "cannot lock the workspace root: job directories are not reused"))
                .ok()
        };
        let idle = Arc::new(IdleDirs {
            dirs: Mutex::default(),
            owner,
        });
        // What killed servers left may be large: removed on a thread of its own, never in the
        // way of a job (its directories have other names).
        let sweep_root = config.workspace_root.clone();
        let own_token = idle.owner.as_ref().map(|owner| owner.token().to_owned());
        let swept = std::thread::Builder::new()
            .name("runnel-sweep".to_owned())
            .spawn(move || {
                let swept = files::sweep_stale_slots(&sweep_root, own_token.as_deref());
                if swept > 0 {
                    tracing::info!(swept, root = %sweep_root.display(), "removed job directories left by servers that are gone");
                }
            });
        if let Err(err) = swept {
            tracing::warn!(error = %err, "cannot start the sweep of old job directories");
        }
        let cgroups = match tracking {
            ProcessTracking::CookieScan => None,
            ProcessTracking::CgroupIfAvailable => match CgroupParent::probe() {
                Ok(parent) => {
                    tracing::debug!(cgroup = %parent.dir().display(), "each job runs in a cgroup of its own");
                    Some(parent)
                }
                Err(reason) => {
                    tracing::info!(%reason, "no job cgroups: a job's processes are found by the cookie scan");
                    None
                }
            },
        };
        ShellExecutor {
            config,
            cgroups,
            idle,
        }
    }

    /// The cgroup under which each job gets a cgroup of its own, if cgroups are used.
    pub fn cgroup_parent(&self) -> Option<&Path> {
        self.cgroups.as_ref().map(CgroupParent::dir)
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

    /// The job's cgroup, once a step was started in it (and until cleanup removed it).
    pub fn cgroup(&self) -> Option<&Path> {
        self.processes.cgroup.as_ref().map(|cgroup| cgroup.dir())
    }
}

impl Drop for ShellWorkspace {
    /// S8 even when the runner's future was dropped (e.g. an aborted task at shutdown): the
    /// job's processes are SIGKILLed synchronously. The directory is left for the operator.
    fn drop(&mut self) {
        if !self.are_processes_stopped {
            procs::kill_now(&self.processes);
        } else {
            // Still there only if cleanup could not remove it: something in it survived.
            procs::release_cgroup(&self.processes);
        }
    }
}

impl Executor for ShellExecutor {
    type Workspace = ShellWorkspace;

    async fn prepare(&self, job: &JobTask) -> Result<ShellWorkspace, ExecError> {
        let root = &self.config.workspace_root;
        let name = directory_name(&job.job_key);
        // A kept directory is named after its job, for whoever looks at it later. Otherwise a
        // directory that served an earlier job, emptied, if there is one and it is still there
        // (one `statx`: the operator may have cleared the root); else a new one, reused by later
        // jobs (two `mkdir`s). Inline: a hand-off to the blocking pool and back costs more.
        let idle = if self.config.keep_workspaces {
            None
        } else {
            self.idle.take().map(files::job_dirs_of).filter(|dirs| {
                let is_there = fs::symlink_metadata(&dirs.workspace).is_ok_and(|m| m.is_dir());
                if !is_there {
                    // What is left of it (usually nothing).
                    let _ = files::remove_tree(&dirs.job_dir);
                }
                is_there
            })
        };
        let dirs = match (idle, &self.idle.owner) {
            (Some(dirs), _) => dirs,
            (None, Some(owner)) => files::create_slot_dirs(root, owner)?,
            (None, None) => files::create_job_dirs(root, &name)?,
        };
        let cookie = uuid::Uuid::new_v4().to_string();
        let cookie_entry = format!("{JOB_COOKIE_VAR}={cookie}").into_bytes();
        Ok(ShellWorkspace {
            job_dir: dirs.job_dir,
            workspace: dirs.workspace,
            meta_dir: dirs.meta_dir,
            name,
            cookie,
            job_env: job.env.clone(),
            processes: JobProcesses::new(cookie_entry),
            may_use_cgroup: self.cgroups.is_some(),
            is_released: false,
            are_processes_stopped: false,
        })
    }

    async fn run_step(
        &self,
        workspace: &mut ShellWorkspace,
        step: &StepTask,
        io: StepIo<'_>,
    ) -> Result<StepExit, ExecError> {
        if workspace.is_released {
            // Its directory may be another job's by now.
            return Err(ExecError::Backend(
                "the job's workspace was cleaned up already".to_owned(),
            ));
        }
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
        workspace.are_processes_stopped = false;
        let files = StepFiles {
            script_path,
            script: script.as_bytes().to_vec(),
            output_path,
        };
        let (mut child, output_path) = self.start(workspace, step, files).await?;
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
        let outputs = read_outputs(output_path, &io).await;
        Ok(StepExit { end, outputs })
    }

    async fn cleanup(&self, workspace: &mut ShellWorkspace) -> Result<(), ExecError> {
        let terminated = procs::terminate(&workspace.processes, None, self.config.kill_grace).await;
        let killed = terminated.signalled;
        workspace.are_processes_stopped = true;
        if killed > 0 {
            tracing::debug!(job_dir = %workspace.job_dir.display(), killed, "stopped leftover job processes");
        }
        let remove_dir = !self.config.keep_workspaces && !workspace.is_released;
        let cgroup = workspace.processes.cgroup.take();
        if !remove_dir && cgroup.is_none() {
            return Ok(());
        }
        let job_dir = remove_dir.then(|| workspace.job_dir.clone());
        // Reused only when the job surely left no process behind: none may touch the next
        // job's files. (A job whose leftovers had to be killed, or that left a process it could
        // not tell apart, gets its directory removed.)
        let may_reuse = killed == 0
            && terminated.is_certain
            && self.idle.owner.is_some()
            && self.idle.has_room();
        // A job that left an empty workspace and nothing else but small step files is reset
        // inline (a few truncations). Anything else may be large: reset or removed off the
        // async workers, in one hand-off with the removal of the (empty) cgroup.
        let light_reset = match &job_dir {
            Some(job_dir) if may_reuse => reset_job_dir(job_dir, true),
            _ => None,
        };
        let (kept_dir, kept_cgroup) = if light_reset == Some(files::Reset::Done) {
            (Ok(job_dir), remove_cgroup(cgroup))
        } else {
            // A full reset where the light one stopped short; after an error, or when the
            // directory may not serve again, removed.
            let full_reset = light_reset == Some(files::Reset::TooHeavy);
            let work = move || {
                let kept_dir = job_dir.map_or(Ok(None), |job_dir| {
                    let is_reset =
                        full_reset && reset_job_dir(&job_dir, false) == Some(files::Reset::Done);
                    if is_reset {
                        Ok(Some(job_dir))
                    } else {
                        files::remove_tree(&job_dir)
                            .map(|()| None)
                            .map_err(ExecError::io(format!("removing {}", job_dir.display())))
                    }
                });
                (kept_dir, remove_cgroup(cgroup))
            };
            tokio::task::spawn_blocking(work).await.map_err(|err| {
                ExecError::Backend(format!("workspace removal task failed: {err}"))
            })?
        };
        let released = kept_dir.map(|kept| {
            if let Some(dir) = kept
                && let Err(surplus) = self.idle.put(dir)
            {
                // Others filled the idle list meanwhile (rare): this one goes.
                tokio::task::spawn_blocking(move || files::remove_tree(&surplus));
            }
        });
        // Released: the directory may serve another job now, never touch it again.
        workspace.is_released |= remove_dir && released.is_ok();
        if let Some((cgroup, err)) = kept_cgroup {
            let context = format!("removing the job cgroup {}", cgroup.dir().display());
            // Kept, so that a second cleanup (or the drop) tries again.
            workspace.processes.cgroup = Some(cgroup);
            released?;
            return Err(ExecError::io(context)(err));
        }
        released
    }
}

/// The longest step script written on an async worker (a page-cache copy of a few microseconds).
const INLINE_SCRIPT_BYTES: usize = 64 * 1024;

/// A step's script and output file, written just before it starts.
struct StepFiles {
    script_path: PathBuf,
    script: Vec<u8>,
    output_path: PathBuf,
}

impl ShellExecutor {
    /// Writes the step's files and starts its main process, in the job's cgroup if possible,
    /// else after recording what the cookie scan needs. Returns the process and the path of its
    /// output file.
    async fn start(
        &self,
        workspace: &mut ShellWorkspace,
        step: &StepTask,
        files: StepFiles,
    ) -> Result<(Child, PathBuf), ExecError> {
        self.create_job_cgroup(workspace);
        let mut command = self.command(workspace, step, &files.script_path, &files.output_path);
        let in_cgroup = match &workspace.processes.cgroup {
            Some(cgroup) if workspace.may_use_cgroup => {
                cgroup.enter_before_exec(&mut command);
                true
            }
            _ => false,
        };
        let is_first_outside = !in_cgroup && workspace.processes.begin_scan();
        // Inline, like any `tokio::process` spawn: two small files and a `posix_spawn`. Off the
        // async workers: a long script (they may have megabytes), and a start in a cgroup,
        // whose `pre_exec` makes the spawn a `fork` that waits for the child to enter the cgroup.
        let is_inline = !in_cgroup && files.script.len() <= INLINE_SCRIPT_BYTES;
        let start = move || {
            files::write_step_files(&files.script_path, &files.script, &files.output_path)?;
            let counters = if is_first_outside {
                ForkCounters::before_fork()
            } else {
                None
            };
            Ok::<_, ExecError>((command.spawn(), counters, files))
        };
        let (started, counters, files) = if is_inline {
            start()?
        } else {
            tokio::task::spawn_blocking(start)
                .await
                .map_err(|err| ExecError::Backend(format!("step start task failed: {err}")))??
        };
        let child = match started {
            Ok(child) => child,
            Err(err) if in_cgroup => {
                // The process failed before `exec`, most likely to enter the cgroup (a cgroup
                // of a type that takes no processes, a security module). Run the job without it.
                tracing::warn!(error = %err, "cannot start a step in its job cgroup; the cookie scan finds this job's processes");
                workspace.may_use_cgroup = false;
                return self.start_outside_cgroup(workspace, step, files);
            }
            Err(err) => return Err(ExecError::Spawn(err)),
        };
        if is_first_outside {
            workspace.processes.narrow_scan(&child, counters);
        }
        Ok((child, files.output_path))
    }

    /// Creates the job's cgroup before its first step, if the job is to have one. A `mkdir` and
    /// an `open` in the kernel's cgroup file system (no disk), done inline so that the workspace
    /// knows its cgroup before any process can start in it.
    fn create_job_cgroup(&self, workspace: &mut ShellWorkspace) {
        let Some(parent) = &self.cgroups else {
            return;
        };
        if !workspace.may_use_cgroup || workspace.processes.cgroup.is_some() {
            return;
        }
        match parent.create_job(&cgroup_name(&workspace.name)) {
            Ok(cgroup) => workspace.processes.cgroup = Some(cgroup),
            Err(err) => {
                tracing::warn!(cgroup = %parent.dir().display(), error = %err, "cannot create a job cgroup; the cookie scan finds this job's processes");
                workspace.may_use_cgroup = false;
            }
        }
    }

    /// Starts a step whose files are written outside any cgroup: the rare retry after a failed
    /// start in the job's cgroup, done inline.
    fn start_outside_cgroup(
        &self,
        workspace: &mut ShellWorkspace,
        step: &StepTask,
        files: StepFiles,
    ) -> Result<(Child, PathBuf), ExecError> {
        let is_first_outside = workspace.processes.begin_scan();
        let counters = if is_first_outside {
            ForkCounters::before_fork()
        } else {
            None
        };
        let child = self
            .command(workspace, step, &files.script_path, &files.output_path)
            .spawn()
            .map_err(ExecError::Spawn)?;
        if is_first_outside {
            workspace.processes.narrow_scan(&child, counters);
        }
        Ok((child, files.output_path))
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
async fn read_outputs(path: PathBuf, io: &StepIo<'_>) -> Vec<(String, String)> {
    // At most 1 MiB from the page cache, read inline.
    let read = files::read_output_file(&path);
    let content = match read {
        Ok(OutputFile::Content(content)) => content,
        Ok(OutputFile::Missing) => return Vec::new(),
        Ok(OutputFile::TooLarge) => {
            io.system_line("ignored $RUNNEL_OUTPUT: larger than 1 MiB")
                .await;
            return Vec::new();
        }
        Err(err) => {
            io.system_line(&format!("cannot read $RUNNEL_OUTPUT: {err}"))
                .await;
            return Vec::new();
        }
    };
    let parsed = parse_outputs(&content, io.masker);
    for problem in &parsed.problems {
        io.system_line(problem).await;
    }
    parsed.outputs
}

/// [`files::reset_job_dir`], `None` (logged) on error: the caller removes the directory.
fn reset_job_dir(job_dir: &Path, only_if_light: bool) -> Option<files::Reset> {
    files::reset_job_dir(job_dir, only_if_light)
        .inspect_err(|err| tracing::debug!(dir = %job_dir.display(), error = %err, "cannot reset a job directory"))
        .ok()
}

/// Removes a job's (empty) cgroup; on error returns it with the error.
fn remove_cgroup(cgroup: Option<JobCgroup>) -> Option<(JobCgroup, io::Error)> {
    cgroup.and_then(|cgroup| match cgroup.remove() {
        Ok(()) => None,
        Err(err) => Some((cgroup, err)),
    })
}

/// The name of a job's cgroup: its job's name (see [`directory_name`]) and a random part.
fn cgroup_name(name: &str) -> String {
    // Random: a job directory, and a job key, may serve again while the cgroup of its last job
    // could not be removed yet.
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("runnel-{name}-{}", &suffix[..12])
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
