//! Plain, public snapshots of a run's state, for persistence: `RunState::snapshot` writes one,
//! `RunState::restore` reads one back (checking it fits the spec). A store saves the rows that
//! differ between the snapshot before and after a batch of transitions.

use super::nodes::{JobRun, StageRun, StepRun};
use super::{RunState, SkipReason};
use crate::Timestamp;
use crate::spec::PipelineSpec;
use crate::status::{JobStatus, RunStatus, StageStatus, StepStatus};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RunSnapshot {
    pub status: RunStatus,
    pub cancel_requested: bool,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub paused_since: Option<Timestamp>,
    pub pause_total: Duration,
    pub stages: Vec<StageSnapshot>,
    pub jobs: Vec<JobSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageSnapshot {
    pub status: StageStatus,
    pub is_selected: bool,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub skip_reason: Option<SkipReason>,
    pub admitted: bool,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    pub status: JobStatus,
    pub is_selected: bool,
    pub attempt: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub skip_reason: Option<SkipReason>,
    pub message: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub steps: Vec<StepSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepSnapshot {
    pub status: StepStatus,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
}

/// A snapshot that does not fit the pipeline it is restored against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored run state does not match the pipeline: {0}")]
pub struct RestoreError(pub String);

impl SkipReason {
    /// A stable text code for storage: `upstream_failed`, `condition_false`, `stage_skipped`, `condition_error`.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::UpstreamFailed => "upstream_failed",
            SkipReason::ConditionFalse => "condition_false",
            SkipReason::ConditionError(_) => "condition_error",
            SkipReason::StageSkipped => "stage_skipped",
        }
    }

    /// Reads a stored code back; `detail` is the error text of `condition_error`.
    pub fn from_code(code: &str, detail: &str) -> Option<SkipReason> {
        match code {
            "upstream_failed" => Some(SkipReason::UpstreamFailed),
            "condition_false" => Some(SkipReason::ConditionFalse),
            "condition_error" => Some(SkipReason::ConditionError(detail.to_owned())),
            "stage_skipped" => Some(SkipReason::StageSkipped),
            _ => None,
        }
    }
}

impl RunState {
    pub fn snapshot(&self) -> RunSnapshot {
        RunSnapshot {
            status: self.status,
            cancel_requested: self.cancel_requested,
            started_at: self.started_at,
            finished_at: self.finished_at,
            paused_since: self.paused_since,
            pause_total: self.pause_total,
            stages: self
                .stages
                .iter()
                .map(|stage| StageSnapshot {
                    status: stage.status,
                    is_selected: stage.is_selected,
                    started_at: stage.started_at,
                    finished_at: stage.finished_at,
                    skip_reason: stage.skip_reason.clone(),
                    admitted: stage.admitted,
                    message: stage.message.clone(),
                })
                .collect(),
            jobs: self
                .jobs
                .iter()
                .map(|job| JobSnapshot {
                    status: job.status,
                    is_selected: job.is_selected,
                    attempt: job.attempt,
                    started_at: job.started_at,
                    finished_at: job.finished_at,
                    skip_reason: job.skip_reason.clone(),
                    message: job.message.clone(),
                    outputs: job.outputs.clone(),
                    steps: job
                        .steps
                        .iter()
                        .map(|step| StepSnapshot {
                            status: step.status,
                            started_at: step.started_at,
                            finished_at: step.finished_at,
                            exit_code: step.exit_code,
                            message: step.message.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Rebuilds a run's state from storage. The statuses were produced by the transitions when
    /// they were saved; this checks that the snapshot has the spec's shape.
    pub fn restore(spec: &PipelineSpec, snapshot: RunSnapshot) -> Result<RunState, RestoreError> {
        if snapshot.stages.len() != spec.stages().len() {
            return Err(RestoreError(format!(
                "{} stage runs for {} stages",
                snapshot.stages.len(),
                spec.stages().len()
            )));
        }
        if snapshot.jobs.len() != spec.jobs().len() {
            return Err(RestoreError(format!(
                "{} job runs for {} jobs",
                snapshot.jobs.len(),
                spec.jobs().len()
            )));
        }
        for (job, job_spec) in snapshot.jobs.iter().zip(spec.jobs()) {
            if job.steps.len() != job_spec.steps.len() {
                return Err(RestoreError(format!(
                    "job `{}` has {} step runs for {} steps",
                    job_spec.identifier,
                    job.steps.len(),
                    job_spec.steps.len()
                )));
            }
        }
        Ok(RunState {
            status: snapshot.status,
            cancel_requested: snapshot.cancel_requested,
            started_at: snapshot.started_at,
            finished_at: snapshot.finished_at,
            paused_since: snapshot.paused_since,
            pause_total: snapshot.pause_total,
            stages: snapshot
                .stages
                .into_iter()
                .map(|stage| StageRun {
                    status: stage.status,
                    is_selected: stage.is_selected,
                    started_at: stage.started_at,
                    finished_at: stage.finished_at,
                    skip_reason: stage.skip_reason,
                    admitted: stage.admitted,
                    message: stage.message,
                })
                .collect(),
            jobs: snapshot
                .jobs
                .into_iter()
                .map(|job| JobRun {
                    status: job.status,
                    is_selected: job.is_selected,
                    attempt: job.attempt,
                    started_at: job.started_at,
                    finished_at: job.finished_at,
                    skip_reason: job.skip_reason,
                    message: job.message,
                    outputs: job.outputs,
                    steps: job
                        .steps
                        .into_iter()
                        .map(|step| StepRun {
                            status: step.status,
                            started_at: step.started_at,
                            finished_at: step.finished_at,
                            exit_code: step.exit_code,
                            message: step.message,
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_text;
    use crate::definition::Format;
    use crate::scheduler::{RunContext, advance};
    use crate::state::Selection;

    #[test]
    fn a_snapshot_restores_to_an_equal_state_that_keeps_running() {
        let spec = compile_text(
            "jobs:\n  - { name: a, steps: [{ run: 'true' }] }\n  - { name: b, needs: [a], steps: [{ run: 'true' }, { run: 'true' }] }\n",
            Format::Yaml,
        )
        .expect("valid");
        let mut state = RunState::new(&spec, &Selection::default()).expect("valid");
        state.start(Timestamp(1)).expect("starts");
        advance(&spec, &mut state, &RunContext::default(), Timestamp(2)).expect("legal");
        let a = spec.job_by_identifier("a").expect("a");
        state.start_job(&spec, a, Timestamp(3)).expect("queued");
        state.add_job_outputs(a, [("k".to_owned(), "v".to_owned())]);
        state
            .finish_job(&spec, a, JobStatus::Completed, None, Timestamp(4))
            .expect("running");

        let restored = RunState::restore(&spec, state.snapshot()).expect("fits");
        assert_eq!(restored, state);

        let mut restored = restored;
        advance(&spec, &mut restored, &RunContext::default(), Timestamp(5)).expect("legal");
        assert_eq!(
            restored
                .job(spec.job_by_identifier("b").expect("b"))
                .status(),
            JobStatus::Queued
        );
    }

    #[test]
    fn a_snapshot_of_another_shape_is_refused() {
        let spec = compile_text(
            "jobs:\n  - { name: a, steps: [{ run: 'true' }] }\n",
            Format::Yaml,
        )
        .expect("valid");
        let mut snapshot = RunState::new(&spec, &Selection::default())
            .expect("valid")
            .snapshot();
        let extra = snapshot.jobs[0].steps[0].clone();
        snapshot.jobs[0].steps.push(extra);
        assert!(RunState::restore(&spec, snapshot).is_err());
    }

    #[test]
    fn skip_reasons_round_trip_through_their_codes() {
        for reason in [
            SkipReason::UpstreamFailed,
            SkipReason::ConditionFalse,
            SkipReason::ConditionError("bad".into()),
            SkipReason::StageSkipped,
        ] {
            let detail = match &reason {
                SkipReason::ConditionError(text) => text.clone(),
                _ => String::new(),
            };
            assert_eq!(SkipReason::from_code(reason.code(), &detail), Some(reason));
        }
    }
}
