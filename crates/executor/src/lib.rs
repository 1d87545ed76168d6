//! Runs the steps of one job and captures their logs.
//!
//! Owns: the [`Executor`] trait (the contract every backend follows: local shell today,
//! containers, Kubernetes or a remote machine later), the local [`ShellExecutor`], log capture
//! (secret masking on the raw byte stream, line splitting, per-line timestamps, batching into
//! [`LogChunk`]s), step outputs (`$RUNNEL_OUTPUT`), the CodeArts log line format, and
//! [`run_job`], which runs a job's steps in order with its timeout and cancellation.
//!
//! Must not know: pipeline definitions (its input is an already-resolved [`JobTask`]), the store,
//! the engine, HTTP or the agent protocol. Callers (`runnel exec`, the server's executor pool,
//! agents) turn [`JobEvent`]s into whatever they persist or send.
//!
//! Feature `fake`: `fake::FakeExecutor`, a scriptable executor for tests of other crates.
//!
//! Invariants: every log byte that leaves this crate is masked; no process of a job outlives the
//! job (S8); a failing user step is a value, `ExecError` is for the system.

mod capture;
mod executor;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod format;
pub mod git;
mod mask;
mod outputs;
mod runner;
mod shell;
mod task;

pub use capture::MAX_LINE_BYTES;
pub use executor::{ExecError, Executor, StepEnd, StepExit, StepIo};
pub use format::{format_codearts_log, format_log_line_prefix};
pub use mask::{MASK, MaskStream, Masker, MaskerError};
pub use runner::run_job;
pub use shell::{
    EnvPolicy, JOB_COOKIE_VAR, ProcessTracking, ShellExecutor, ShellExecutorConfig, ShellWorkspace,
};
pub use task::{
    JobEvent, JobOutcome, JobTask, LogChunk, LogStream, StepAction, StepResult, StepTask,
};
