//! The job runner: prepares a workspace, runs steps in order, enforces timeout and cancel, cleans up.

use std::time::Duration;

use nix::sys::signal::Signal;
use runnel_domain::status::{JobStatus, StepStatus};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::capture::send_system_line;
use crate::executor::{Executor, StepEnd, StepExit, StepIo};
use crate::mask::Masker;
use crate::task::{JobEvent, JobOutcome, JobTask, StepAction, StepResult, StepTask, now};

/// Runs `task` on `executor` and reports progress to `events`.
///
/// Steps run in order. A failed step fails the job and the remaining steps become SKIPPED;
/// a `Disabled` step is SKIPPED without failing the job; an `Unsupported` step FAILS. When the
/// job timeout passes, the running step is stopped and FAILS with message "timeout", as does the
/// job. When `cancel` fires, the running step is stopped and becomes CANCELED, as does the job.
/// Every step gets exactly one `StepFinished` event. `cleanup` always runs before this returns.
///
/// The caller must keep draining `events` (the capture waits when the channel is full, which
/// slows the step down rather than buffering without bound); a closed channel is tolerated.
/// Drive the future to completion: use `cancel` to stop a job, never drop the future.
pub async fn run_job<E: Executor>(
    executor: &E,
    task: &JobTask,
    events: Sender<JobEvent>,
    cancel: CancellationToken,
) -> JobOutcome {
    let deadline = task.timeout.map(|timeout| Instant::now() + timeout);
    let masker = match Masker::new(&task.secrets) {
        Ok(masker) => masker,
        Err(err) => {
            return skip_all(task, &events, JobStatus::Failed, Some(err.to_string())).await;
        }
    };
    if cancel.is_cancelled() {
        return skip_all(task, &events, JobStatus::Canceled, None).await;
    }
    let mut workspace = match executor.prepare(task).await {
        Ok(workspace) => workspace,
        Err(err) => {
            let message = masker.mask_str(&format!("cannot prepare the job workspace: {err}"));
            tracing::warn!(job_key = %task.job_key, error = %message, "job not started");
            return skip_all(task, &events, JobStatus::Failed, Some(message)).await;
        }
    };
    let job = JobContext {
        task,
        events: &events,
        masker: &masker,
        cancel: &cancel,
        deadline,
    };
    let mut verdict: Option<(JobStatus, Option<String>)> = None;
    let mut results = Vec::with_capacity(task.steps.len());
    for (index, step) in task.steps.iter().enumerate() {
        if verdict.is_none() {
            if cancel.is_cancelled() {
                verdict = Some((JobStatus::Canceled, None));
            } else if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                verdict = Some((JobStatus::Failed, Some("timeout".to_owned())));
            }
        }
        let result = match (&verdict, &step.action) {
            (Some(_), _) => skipped(None),
            (None, StepAction::Disabled) => skipped(Some("disabled".to_owned())),
            (None, StepAction::Unsupported { task: plugin }) => {
                let started_at = job.step_started(index).await;
                let message = format!("plugin `{plugin}` is not supported by this executor");
                send_system_line(&events, &masker, index, &message).await;
                failed(started_at, None, masker.mask_str(&message))
            }
            (None, StepAction::Shell { .. }) => {
                job.run_step(executor, &mut workspace, index, step).await
            }
        };
        if verdict.is_none() {
            verdict = match result.status {
                StepStatus::Canceled => Some((JobStatus::Canceled, None)),
                StepStatus::Failed if result.message.as_deref() == Some("timeout") => {
                    Some((JobStatus::Failed, Some("timeout".to_owned())))
                }
                StepStatus::Failed => Some((
                    JobStatus::Failed,
                    Some(format!(
                        "step `{}` failed: {}",
                        masker.mask_str(&step.name),
                        result.message.as_deref().unwrap_or("failed")
                    )),
                )),
                _ => None,
            };
        }
        let _ = events
            .send(JobEvent::StepFinished {
                step: index,
                result: result.clone(),
            })
            .await;
        results.push(result);
    }
    cleanup(executor, &mut workspace, task).await;
    let (status, message) = verdict.unwrap_or((JobStatus::Completed, None));
    JobOutcome {
        status,
        message,
        steps: results,
    }
}

/// What every step of one job shares.
struct JobContext<'a> {
    task: &'a JobTask,
    events: &'a Sender<JobEvent>,
    masker: &'a Masker,
    cancel: &'a CancellationToken,
    deadline: Option<Instant>,
}

impl JobContext<'_> {
    async fn step_started(&self, index: usize) -> runnel_domain::Timestamp {
        let at = now();
        let _ = self
            .events
            .send(JobEvent::StepStarted { step: index, at })
            .await;
        at
    }

    /// Runs one shell step, firing its stop token at the job deadline or on cancel.
    async fn run_step<E: Executor>(
        &self,
        executor: &E,
        workspace: &mut E::Workspace,
        index: usize,
        step: &StepTask,
    ) -> StepResult {
        let started_at = self.step_started(index).await;
        let stop = self.cancel.child_token();
        let io = StepIo {
            step: index,
            events: self.events,
            masker: self.masker,
            stop: &stop,
        };
        let running = executor.run_step(workspace, step, io);
        tokio::pin!(running);
        let mut timed_out = false;
        let exit = loop {
            tokio::select! {
                exit = &mut running => break exit,
                _ = sleep_until(self.deadline), if !timed_out && self.deadline.is_some() => {
                    timed_out = true;
                    stop.cancel();
                }
            }
        };
        match exit {
            Ok(StepExit {
                end: StepEnd::Exited(0),
                outputs,
            }) => StepResult {
                outputs,
                ..finished(StepStatus::Completed, Some(started_at), Some(0), None)
            },
            Ok(StepExit {
                end: StepEnd::Exited(code),
                outputs,
            }) => StepResult {
                outputs,
                ..failed(started_at, Some(code), format!("exit code {code}"))
            },
            Ok(StepExit {
                end: StepEnd::Signaled(signal),
                outputs,
            }) => {
                let name = Signal::try_from(signal)
                    .map_or_else(|_| signal.to_string(), |name| name.to_string());
                StepResult {
                    outputs,
                    ..failed(started_at, None, format!("killed by signal {name}"))
                }
            }
            Ok(StepExit {
                end: StepEnd::Stopped,
                ..
            }) if self.cancel.is_cancelled() => {
                send_system_line(self.events, self.masker, index, "step canceled").await;
                finished(
                    StepStatus::Canceled,
                    Some(started_at),
                    None,
                    Some("canceled".to_owned()),
                )
            }
            Ok(StepExit {
                end: StepEnd::Stopped,
                ..
            }) if timed_out => {
                let limit = self
                    .task
                    .timeout
                    .map_or_else(|| "its deadline".to_owned(), describe_duration);
                let text = format!("step timed out after {limit} (job timeout)");
                send_system_line(self.events, self.masker, index, &text).await;
                failed(started_at, None, "timeout".to_owned())
            }
            Ok(StepExit {
                end: StepEnd::Stopped,
                ..
            }) => {
                // Only a misbehaving executor stops a step nobody asked to stop.
                let message = "executor error: the step was stopped without a request".to_owned();
                send_system_line(self.events, self.masker, index, &message).await;
                failed(started_at, None, message)
            }
            Err(err) => {
                let message = self.masker.mask_str(&format!("executor error: {err}"));
                tracing::warn!(job_key = %self.task.job_key, step = index, error = %message, "step not run");
                send_system_line(self.events, self.masker, index, &message).await;
                failed(started_at, None, message)
            }
        }
    }
}

async fn cleanup<E: Executor>(executor: &E, workspace: &mut E::Workspace, task: &JobTask) {
    // Cleanup is idempotent, so one retry is safe and often clears a transient error.
    for attempt in 1..=2 {
        match executor.cleanup(workspace).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(job_key = %task.job_key, attempt, error = %err, "job cleanup failed")
            }
        }
    }
}

/// Reports a job that never ran a step: every step SKIPPED.
async fn skip_all(
    task: &JobTask,
    events: &Sender<JobEvent>,
    status: JobStatus,
    message: Option<String>,
) -> JobOutcome {
    let mut steps = Vec::with_capacity(task.steps.len());
    for index in 0..task.steps.len() {
        let result = skipped(None);
        let _ = events
            .send(JobEvent::StepFinished {
                step: index,
                result: result.clone(),
            })
            .await;
        steps.push(result);
    }
    JobOutcome {
        status,
        message,
        steps,
    }
}

fn finished(
    status: StepStatus,
    started_at: Option<runnel_domain::Timestamp>,
    exit_code: Option<i32>,
    message: Option<String>,
) -> StepResult {
    StepResult {
        status,
        exit_code,
        message,
        started_at,
        finished_at: now(),
        outputs: Vec::new(),
    }
}

fn failed(
    started_at: runnel_domain::Timestamp,
    exit_code: Option<i32>,
    message: String,
) -> StepResult {
    finished(
        StepStatus::Failed,
        Some(started_at),
        exit_code,
        Some(message),
    )
}

fn skipped(message: Option<String>) -> StepResult {
    finished(StepStatus::Skipped, None, None, message)
}

/// "5s" for whole seconds, "1500ms" otherwise.
fn describe_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
