//! The job protocol over the engine: `LocalCoordinator` for the built-in pool, and the conversions an HTTP agent endpoint reuses.
//!
//! Every conversion between `runnel_protocol` messages and the engine's (and store's) types
//! lives here, so the built-in pool and remote agents are served by exactly the same mapping:
//! an HTTP endpoint calls the same [`Engine`] methods and the same functions below, and sends
//! [`refusal`]'s [`ErrorKind`] in its error body.

use runnel_agent::{CallError, Coordinator};
use runnel_domain::Timestamp;
use runnel_domain::prepare::PreparedStepKind;
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_engine::{ClaimInput, Dispatch, Engine, EngineError};
use runnel_protocol::{
    ClaimRequest, ClaimedJob, ErrorKind, HeartbeatReply, JobResult, JobTask, LeaseRef, LogAppend,
    LogAppendReply, StepAction, StepReport, StepTask,
};
use runnel_store::{JobOutcome, LeaseToken, StoreError};
use std::time::Duration;

/// The coordinator of the built-in executor pool: direct calls into the engine.
#[derive(Clone)]
pub struct LocalCoordinator {
    engine: Engine,
}

impl LocalCoordinator {
    pub fn new(engine: Engine) -> LocalCoordinator {
        LocalCoordinator { engine }
    }
}

impl Coordinator for LocalCoordinator {
    async fn claim(&self, request: &ClaimRequest) -> Result<Option<ClaimedJob>, CallError> {
        let input = claim_input(request);
        match self.engine.claim(&input).await {
            Ok(dispatch) => Ok(dispatch.map(claimed_job)),
            Err(err) => Err(call_error(&err)),
        }
    }

    async fn heartbeat(&self, lease: &LeaseRef) -> Result<HeartbeatReply, CallError> {
        let beat = self
            .engine
            .heartbeat(&lease_token(lease))
            .await
            .map_err(|err| call_error(&err))?;
        Ok(heartbeat_reply(&beat, self.engine.now()))
    }

    async fn append_log(
        &self,
        lease: &LeaseRef,
        append: LogAppend,
    ) -> Result<LogAppendReply, CallError> {
        let outcome = self
            .engine
            .append_log(
                &lease_token(lease),
                &append.step_run_id,
                append.offset,
                append.data,
            )
            .await
            .map_err(|err| call_error(&err))?;
        Ok(LogAppendReply {
            length: outcome.next_offset,
        })
    }

    async fn report_step(&self, lease: &LeaseRef, report: StepReport) -> Result<(), CallError> {
        let report = step_report(report).map_err(CallError::Refused)?;
        self.engine
            .report_step(&lease_token(lease), report)
            .await
            .map_err(|err| call_error(&err))
    }

    async fn complete(&self, lease: &LeaseRef, result: JobResult) -> Result<(), CallError> {
        let (steps, outcome) = job_result(result).map_err(CallError::Refused)?;
        self.engine
            .complete_with_steps(&lease_token(lease), steps, outcome)
            .await
            .map(|_| ())
            .map_err(|err| call_error(&err))
    }

    async fn complete_and_claim(
        &self,
        lease: &LeaseRef,
        result: JobResult,
        next: &ClaimRequest,
    ) -> Result<Option<ClaimedJob>, CallError> {
        let (steps, outcome) = job_result(result).map_err(CallError::Refused)?;
        let (_, dispatch) = self
            .engine
            .complete_and_claim(&lease_token(lease), steps, outcome, &claim_input(next))
            .await
            .map_err(|err| call_error(&err))?;
        Ok(dispatch.map(claimed_job))
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        self.engine.wait_for_work(max_wait).await;
    }

    async fn cancelled(&self, lease: &LeaseRef) {
        self.engine.cancelled(&lease.job_run_id).await;
        // The engine's push is keyed by job run, not by attempt (a retry gives the job a fresh
        // token before its new attempt can be claimed). Confirm with the store that this
        // attempt is the one to stop, so a push can never stop the wrong attempt.
        match self.engine.heartbeat(&lease_token(lease)).await {
            Ok(beat) if beat.is_cancel_requested => {}
            Err(EngineError::Store(StoreError::LeaseLost | StoreError::NotFound)) => {}
            // Not for this attempt (or unknown): heartbeat replies carry a real cancellation.
            _ => std::future::pending::<()>().await,
        }
    }
}

/// The engine's claim input for a worker's claim request.
pub fn claim_input(request: &ClaimRequest) -> ClaimInput {
    ClaimInput {
        worker_id: request.worker_id.clone(),
        pool: request.pool.clone(),
    }
}

/// A claimed job as the protocol sends it: steps with their run ids, actions, remaining timeout.
pub fn claimed_job(dispatch: Dispatch) -> ClaimedJob {
    let Dispatch {
        token,
        run_id,
        job_run_id,
        attempt,
        job_key,
        prepared,
        step_run_ids,
        timeout,
        heartbeat_interval,
        utc_offset_minutes,
    } = dispatch;
    let steps = prepared
        .steps
        .into_iter()
        .zip(step_run_ids)
        .map(|(step, step_run_id)| StepTask {
            step_run_id,
            action: step_action(step.kind, &step.identifier),
            identifier: step.identifier,
            name: step.name,
            env: step.env,
            // Every attempt has a log of its own, which starts empty.
            log_offset: 0,
        })
        .collect();
    ClaimedJob {
        lease: LeaseRef {
            job_run_id: job_run_id.clone(),
            token: token.as_str().to_owned(),
        },
        run_id,
        job_run_id,
        attempt,
        heartbeat_interval_ms: millis(heartbeat_interval),
        task: JobTask {
            job_key,
            env: prepared.env,
            secrets: prepared.secrets,
            steps,
            timeout_ms: Some(millis(timeout)),
            utc_offset_minutes,
        },
    }
}

/// What a worker does for a prepared step. Reviews and delays are the engine's own (agentless)
/// steps and never reach a worker; if one did, it fails with a clear message.
fn step_action(kind: PreparedStepKind, identifier: &str) -> StepAction {
    match kind {
        PreparedStepKind::Shell { script } => StepAction::Shell { script },
        PreparedStepKind::Disabled => StepAction::Disabled,
        PreparedStepKind::Unsupported { task } => StepAction::Unsupported { task },
        PreparedStepKind::Checkpoint(_) | PreparedStepKind::Delay(_) => {
            tracing::error!(step = %identifier, "an agentless step was dispatched to a worker");
            StepAction::Unsupported {
                task: "agentless step".to_owned(),
            }
        }
    }
}

pub fn lease_token(lease: &LeaseRef) -> LeaseToken {
    LeaseToken::new(lease.token.clone())
}

pub fn heartbeat_reply(beat: &runnel_store::Heartbeat, now: Timestamp) -> HeartbeatReply {
    HeartbeatReply {
        lease_ms: millis(beat.expires_at.since(now)),
        cancel: beat.is_cancel_requested,
    }
}

/// A worker's step report in the store's terms; an unknown status is refused.
pub fn step_report(report: StepReport) -> Result<runnel_store::StepReport, ErrorKind> {
    let status: StepStatus = report.status.parse().map_err(|_| ErrorKind::Conflict {
        message: format!("unknown step status `{}`", report.status),
    })?;
    Ok(runnel_store::StepReport {
        step_run_id: report.step_run_id,
        status,
        exit_code: report.exit_code,
        message: report.message,
        at: Timestamp::from_millis(report.at),
        started_at: report.started_at.map(Timestamp::from_millis),
        outputs: report
            .outputs
            .into_iter()
            .map(|(key, value)| (key, serde_json::Value::String(value)))
            .collect(),
    })
}

/// A worker's job result in the store's terms: the step reports it carries, and the outcome.
pub fn job_result(
    mut result: JobResult,
) -> Result<(Vec<runnel_store::StepReport>, JobOutcome), ErrorKind> {
    let steps = std::mem::take(&mut result.steps)
        .into_iter()
        .map(step_report)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((steps, job_outcome(result)?))
}

/// A worker's job outcome in the store's terms; only final statuses are accepted.
pub fn job_outcome(result: JobResult) -> Result<JobOutcome, ErrorKind> {
    let status = match result.status.parse::<JobStatus>() {
        Ok(status @ (JobStatus::Completed | JobStatus::Failed | JobStatus::Canceled)) => status,
        _ => {
            return Err(ErrorKind::Conflict {
                message: format!("`{}` is not a final job status", result.status),
            });
        }
    };
    Ok(JobOutcome {
        status,
        message: result.message,
    })
}

/// Why the engine refused a worker's call, as the protocol says it.
///
/// `NotFound` means the job (or its lease) is gone: the worker must stop, as for a lost lease.
/// Problems of the database are `Unavailable` (retry); everything else is a `Conflict`.
pub fn refusal(err: &EngineError) -> ErrorKind {
    match err {
        EngineError::Store(StoreError::LeaseLost | StoreError::NotFound)
        | EngineError::NotFound(_) => ErrorKind::LeaseLost,
        EngineError::Store(StoreError::OffsetMismatch { expected }) => ErrorKind::OffsetMismatch {
            expected: *expected,
        },
        EngineError::Store(StoreError::Unavailable(_)) => ErrorKind::Unavailable {
            message: "the database is unavailable".to_owned(),
        },
        other => ErrorKind::Conflict {
            message: other.to_string(),
        },
    }
}

fn call_error(err: &EngineError) -> CallError {
    CallError::Refused(refusal(err))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_map_to_what_a_worker_acts_on() {
        let lost = EngineError::Store(StoreError::LeaseLost);
        assert_eq!(refusal(&lost), ErrorKind::LeaseLost);
        let offset = EngineError::Store(StoreError::OffsetMismatch { expected: 7 });
        assert_eq!(refusal(&offset), ErrorKind::OffsetMismatch { expected: 7 });
        let conflict = EngineError::Store(StoreError::Conflict("different result".into()));
        assert!(matches!(refusal(&conflict), ErrorKind::Conflict { .. }));
        let gone = EngineError::Store(StoreError::NotFound);
        assert_eq!(refusal(&gone), ErrorKind::LeaseLost);
    }

    #[test]
    fn only_final_job_statuses_are_accepted() {
        let result = |status: &str| JobResult {
            status: status.to_owned(),
            message: None,
            steps: Vec::new(),
        };
        assert_eq!(
            job_outcome(result("COMPLETED")).map(|outcome| outcome.status),
            Ok(JobStatus::Completed)
        );
        assert!(job_outcome(result("RUNNING")).is_err());
        assert!(job_outcome(result("nonsense")).is_err());
    }

    #[test]
    fn a_job_result_carries_its_step_reports_in_order() {
        let report = |step: &str, status: &str| StepReport {
            step_run_id: step.into(),
            status: status.into(),
            exit_code: None,
            message: None,
            at: 2,
            started_at: Some(1),
            outputs: Vec::new(),
        };
        let result = JobResult {
            status: "COMPLETED".into(),
            message: None,
            steps: vec![report("a", "COMPLETED"), report("b", "SKIPPED")],
        };
        let (steps, outcome) = job_result(result.clone()).expect("valid");
        assert_eq!(outcome.status, JobStatus::Completed);
        let order: Vec<(&str, StepStatus)> = steps
            .iter()
            .map(|step| (step.step_run_id.as_str(), step.status))
            .collect();
        assert_eq!(
            order,
            vec![("a", StepStatus::Completed), ("b", StepStatus::Skipped)]
        );
        assert_eq!(steps[0].started_at, Some(Timestamp::from_millis(1)));
        // One unknown status refuses the whole call, which then changes nothing.
        let mut bad = result;
        bad.steps.push(report("c", "DANCING"));
        assert!(matches!(job_result(bad), Err(ErrorKind::Conflict { .. })));
    }

    #[test]
    fn step_reports_keep_their_fields_and_outputs_become_json_strings() {
        let report = StepReport {
            step_run_id: "s".into(),
            status: "FAILED".into(),
            exit_code: Some(3),
            message: Some("exit code 3".into()),
            at: 1_750_000_000_000,
            started_at: Some(1_749_999_999_000),
            outputs: vec![("version".into(), "1.2".into())],
        };
        let converted = step_report(report).expect("valid");
        assert_eq!(converted.status, StepStatus::Failed);
        assert_eq!(converted.exit_code, Some(3));
        assert_eq!(converted.at, Timestamp::from_millis(1_750_000_000_000));
        assert_eq!(
            converted.started_at,
            Some(Timestamp::from_millis(1_749_999_999_000))
        );
        assert_eq!(
            converted.outputs,
            vec![("version".to_owned(), serde_json::json!("1.2"))]
        );
    }
}
