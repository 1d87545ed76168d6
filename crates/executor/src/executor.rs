//! The `Executor` trait: the contract between the job runner and a backend that runs steps.

use std::future::Future;
use std::io;

use tokio::io::AsyncRead;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::capture::{CaptureTarget, capture_stream, send_system_line};
use crate::mask::Masker;
use crate::task::{JobEvent, JobTask, LogStream, StepTask};

/// A backend that runs the steps of jobs: local processes today; containers, Kubernetes pods or
/// a remote machine later. Nothing here assumes a local process.
///
/// # Lifecycle
/// For each job, the runner (`run_job`) calls, in this order:
/// 1. `prepare` once: create the job's private workspace (never shared between jobs, including
///    two attempts of the same job). If it fails it must undo its own partial work; the runner
///    then reports the job FAILED without calling anything else.
/// 2. `run_step` for each step to run, strictly one after another, passing the workspace by
///    `&mut`. The executor streams the step's log through `StepIo` while the step runs and
///    returns once the step has ended and its log is fully sent.
/// 3. `cleanup` once after the last step — also after a failed or stopped step and after a
///    `run_step` error. It stops every process or container the job left behind and releases the
///    workspace.
///
/// # Concurrency
/// One executor value serves many jobs at once: `prepare`, `run_step` and `cleanup` of different
/// workspaces may run concurrently from several tasks, so implementations keep per-job state in
/// the workspace, not in `self`. Calls for one workspace never overlap.
///
/// # Cancellation and deadlines
/// The runner enforces the job timeout and cancellation by firing `StepIo::stop`. The executor
/// must then terminate the step and everything it started (politely, then forcefully after a
/// grace period), finish sending its log, and return `StepEnd::Stopped` promptly. Dropping a
/// `run_step` future is not a supported way to stop a step: drive it to completion.
///
/// # Idempotency
/// `cleanup` is idempotent: calling it again (e.g. after it returned an error) is safe and does
/// the remaining work. It is safe after a `run_step` that failed to start its process.
///
/// # Errors
/// `ExecError` is for the system (cannot spawn, disk full). A user step that exits non-zero is a
/// value: `Ok(StepExit { end: StepEnd::Exited(code), .. })`.
pub trait Executor: Send + Sync {
    /// Per-job state: paths, process ids, container ids.
    type Workspace: Send;

    fn prepare(
        &self,
        job: &JobTask,
    ) -> impl Future<Output = Result<Self::Workspace, ExecError>> + Send;

    /// Runs one step whose action is `StepAction::Shell` (the runner handles the others).
    fn run_step(
        &self,
        workspace: &mut Self::Workspace,
        step: &StepTask,
        io: StepIo<'_>,
    ) -> impl Future<Output = Result<StepExit, ExecError>> + Send;

    fn cleanup(
        &self,
        workspace: &mut Self::Workspace,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// What a running step may use: where its log goes, what to mask, and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct StepIo<'a> {
    /// Index of the step in `JobTask::steps`.
    pub step: usize,
    pub events: &'a Sender<JobEvent>,
    /// The job's secrets; everything sent to `events` and every output must be masked with it.
    pub masker: &'a Masker,
    /// Fires on job timeout or cancellation: terminate the step and return `StepEnd::Stopped`.
    pub stop: &'a CancellationToken,
}

/// How a step ended, as seen by the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepExit {
    pub end: StepEnd,
    /// Outputs the step published, already masked. Empty when stopped.
    pub outputs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// The step's main process exited on its own with this code (0 = success).
    Exited(i32),
    /// The step's main process was killed by a signal nobody in Runnel sent (OOM killer,
    /// `kill -9` from the script).
    Signaled(i32),
    /// The step was terminated because `StepIo::stop` fired.
    Stopped,
}

/// A failure of the system running a step, not of the step itself.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start the step process: {0}")]
    Spawn(#[source] io::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid environment variable name `{0}`")]
    InvalidEnvName(String),
    #[error("this executor cannot run the step action")]
    UnsupportedAction,
    #[error("{0}")]
    Backend(String),
}

impl ExecError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ExecError {
        let context = context.into();
        move |source| ExecError::Io { context, source }
    }
}

impl StepIo<'_> {
    /// Captures one output stream of the step (stdout or stderr of a process, a container's log)
    /// until EOF or until `stop_reading` fires: masked, split into lines, batched into chunks.
    pub async fn capture<R: AsyncRead + Unpin>(
        &self,
        reader: R,
        stream: LogStream,
        stop_reading: &CancellationToken,
    ) -> io::Result<u64> {
        let target = CaptureTarget {
            step: self.step,
            stream,
            masker: self.masker,
            events: self.events,
        };
        capture_stream(reader, target, stop_reading).await
    }

    /// Writes a line of Runnel's own to the step's log (`LogStream::System`), masked.
    pub async fn system_line(&self, text: &str) {
        send_system_line(self.events, self.masker, self.step, text).await;
    }
}
