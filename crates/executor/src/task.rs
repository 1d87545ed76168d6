//! What a job runner is given (already-resolved tasks) and what it reports back (events, results).

use std::fmt;
use std::time::Duration;

use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, StepStatus};

/// One job, fully resolved: parameters substituted, plugins mapped to actions, secrets listed.
/// The executor never parses pipeline definitions. `Debug` shows no secret and no env value.
#[derive(Clone, Default)]
pub struct JobTask {
    /// Stable id used in workspace directory names and messages, e.g. `<run_id>-<job identifier>`.
    /// Any text is accepted; executors sanitize it before touching the file system.
    pub job_key: String,
    /// Resolved parameters and system variables, exported to every step.
    pub env: Vec<(String, String)>,
    /// Values masked as `******` in logs and outputs. Empty strings are ignored.
    pub secrets: Vec<String>,
    pub steps: Vec<StepTask>,
    /// Whole-job deadline, counted from the start of `run_job`.
    pub timeout: Option<Duration>,
}

/// One step of a job, in execution order. `Debug` shows env names, not values.
#[derive(Clone)]
pub struct StepTask {
    pub identifier: String,
    pub name: String,
    pub action: StepAction,
    /// Exported after the job's `env`, so a step value wins over a job value of the same name.
    pub env: Vec<(String, String)>,
}

/// What a step does, decided by whoever resolved the pipeline definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// Run `script` with bash (`official_shell_plugin`; any `(decode)` prefix already decoded).
    Shell { script: String },
    /// `enable=false`: the step is SKIPPED without running and does not fail the job.
    Disabled,
    /// A plugin this executor cannot run: the step FAILS with a clear message and so does the job.
    Unsupported { task: String },
}

/// Progress of a job, in order: for each step `StepStarted`, its `Log` chunks, then `StepFinished`.
/// Steps that never start (disabled, skipped) get only `StepFinished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    StepStarted { step: usize, at: Timestamp },
    Log(LogChunk),
    StepFinished { step: usize, result: StepResult },
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Lines written by Runnel itself, e.g. "step timed out after 5s".
    System,
}

/// A batch of log lines of one step and one stream.
///
/// Invariant (upheld by the capture code, relied on by consumers): `data` holds one or more
/// complete lines, each ending in `\n`, already masked; bytes may be non-UTF-8. Every line in the
/// chunk was completed by a read at `at` (millisecond precision), so `at` is each line's timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub step: usize,
    pub stream: LogStream,
    pub at: Timestamp,
    pub data: Vec<u8>,
}

/// Final state of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// One of COMPLETED, FAILED, CANCELED, SKIPPED.
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    /// Why the step did not complete ("timeout", "exit code 2", …); masked.
    pub message: Option<String>,
    /// `None` for steps that never started.
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    /// Key/value pairs the step wrote to `$RUNNEL_OUTPUT`, masked, in first-appearance order.
    pub outputs: Vec<(String, String)>,
}

/// Final state of a job: COMPLETED, FAILED or CANCELED, with one result per step in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub status: JobStatus,
    /// `Some("timeout")` when the job deadline passed; other failures carry their reason.
    pub message: Option<String>,
    pub steps: Vec<StepResult>,
}

impl fmt::Debug for JobTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobTask")
            .field("job_key", &self.job_key)
            .field("env", &env_names(&self.env))
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("steps", &self.steps)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for StepTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepTask")
            .field("identifier", &self.identifier)
            .field("name", &self.name)
            .field("action", &self.action)
            .field("env", &env_names(&self.env))
            .finish()
    }
}

fn env_names(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(name, _)| name.as_str()).collect()
}

/// The wall clock as a `Timestamp`. The executor, unlike the domain, may read the clock.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}
