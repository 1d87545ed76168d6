//! The legal status transitions, in one table per level. Every status change in `state` goes
//! through [`check_job`], [`check_stage`], [`check_step`] or [`check_run`].

use crate::status::{JobStatus, RunStatus, StageStatus, StepStatus};

/// A status change that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{name}` cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub what: &'static str,
    pub name: String,
    pub from: String,
    pub to: String,
}

impl IllegalTransition {
    pub(crate) fn new(
        what: &'static str,
        name: &str,
        from: impl ToString,
        to: impl ToString,
    ) -> Self {
        Self {
            what,
            name: name.to_owned(),
            from: from.to_string(),
            to: to.to_string(),
        }
    }
}

/// Job transitions. Final states only leave through `Init` (an explicit retry of the run).
pub(crate) fn job_allows(from: JobStatus, to: JobStatus) -> bool {
    use JobStatus::*;
    match (from, to) {
        (Init, Queued | Skipped | Unselected | Canceled) => true,
        // Queued → Running when an executor claims it; back to Queued is not needed (still queued).
        (Queued, Running | Canceled | Failed) => true,
        // Running → Queued: the executor was lost and the job is re-dispatched as a new attempt.
        (Running, Queued | Paused | Completed | Failed | Canceled) => true,
        (Paused, Running | Completed | Failed | Canceled) => true,
        (Failed | Canceled | Skipped, Init) => true,
        _ => false,
    }
}

/// Stage transitions.
pub(crate) fn stage_allows(from: StageStatus, to: StageStatus) -> bool {
    use JobStatus::*;
    match (from, to) {
        // Init → Failed: the stage has a gate this server cannot run.
        (Init, Running | Paused | Skipped | Unselected | Canceled | Failed) => true,
        (Running, Paused | Completed | Failed | Canceled) => true,
        (Paused, Running | Completed | Failed | Canceled) => true,
        (Completed | Failed | Canceled | Skipped, Init) => true,
        _ => false,
    }
}

/// Step transitions.
pub(crate) fn step_allows(from: StepStatus, to: StepStatus) -> bool {
    use StepStatus::*;
    match (from, to) {
        // Init → Failed: the step could not start (an unsupported plugin, a bad expression).
        (Init, Running | Skipped | Canceled | Failed) => true,
        (Running, Paused | Completed | Failed | Canceled) => true,
        (Paused, Running | Completed | Failed | Canceled) => true,
        (Running | Completed | Failed | Canceled | Skipped | Paused, Init) => true,
        _ => false,
    }
}

/// Run transitions.
pub(crate) fn run_allows(from: RunStatus, to: RunStatus) -> bool {
    use RunStatus::*;
    match (from, to) {
        (Init, Queued | Running | Canceled | Ignored) => true,
        (Queued, Running | Canceled | Ignored) => true,
        (Running, Paused | Completed | Failed | Canceled) => true,
        (Paused, Running | Completed | Failed | Canceled) => true,
        // Retry of a finished run reuses the run.
        (Failed | Canceled, Running) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_job_states_only_leave_through_a_retry_reset() {
        for from in JobStatus::ALL
            .iter()
            .copied()
            .filter(|status| status.is_final())
        {
            for to in JobStatus::ALL.iter().copied() {
                if job_allows(from, to) {
                    assert_eq!(to, JobStatus::Init, "{from} → {to}");
                }
            }
        }
    }

    #[test]
    fn completed_and_unselected_jobs_are_never_reset() {
        assert!(!job_allows(JobStatus::Completed, JobStatus::Init));
        assert!(!job_allows(JobStatus::Unselected, JobStatus::Init));
    }

    #[test]
    fn final_runs_only_restart_for_a_retry_of_a_failure() {
        for from in RunStatus::ALL
            .iter()
            .copied()
            .filter(|status| status.is_final())
        {
            for to in RunStatus::ALL.iter().copied() {
                if run_allows(from, to) {
                    assert!(
                        matches!(from, RunStatus::Failed | RunStatus::Canceled)
                            && to == RunStatus::Running
                    );
                }
            }
        }
    }
}
