//! Run control (spec §5.2–§5.3, §5.9–§5.11): stop, retry, manual review, manual stage
//! admission, delay actions. Each command holds its run's lock, so it never interleaves with
//! an engine step of the same run.

use crate::Inner;
use crate::advance::advance_with;
use crate::agentless;
use crate::config::EngineError;
use crate::model;
use runnel_domain::prepare::PreparedStepKind;
use runnel_domain::spec::JobIdx;
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_store::{JobQueue, NewStepAction, RunStore, StepActionStore};
use std::collections::BTreeMap;

/// Who asks, for permission checks and the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub user_id: String,
    pub user_name: String,
    /// Roles the user holds in the run's project (for reviews assigned to a role).
    pub roles: Vec<String>,
}

/// Stops a run: queued and running jobs end CANCELED (their processes are stopped), waiting
/// ones at once; the run ends CANCELED. Stopping a finished run is refused.
pub(crate) async fn stop(inner: &Inner, run_id: &str, actor: &Actor) -> Result<(), EngineError> {
    let _lock = inner.lock_run(run_id).await;
    let now = inner.clock.now();
    let detail = inner
        .store
        .run_detail(run_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("run {run_id}")))?;
    if detail.run.status.is_final() {
        return Err(EngineError::NotAllowed(format!(
            "the run is already {}",
            detail.run.status
        )));
    }
    let message = format!("stopped by {}", display(actor));
    for job in detail.stages.iter().flat_map(|stage| &stage.jobs) {
        if matches!(job.status, JobStatus::Queued | JobStatus::Running) {
            inner
                .store
                .cancel_job(&job.id, now, Some(message.clone()))
                .await?;
            inner.push_cancel(&job.id);
        }
    }
    let mutation = |spec: &runnel_domain::spec::PipelineSpec,
                    state: &mut runnel_domain::state::RunState,
                    _ids: &model::RunIds,
                    now| {
        if state.status().is_final() {
            return Err(EngineError::NotAllowed(format!(
                "the run is already {}",
                state.status()
            )));
        }
        let illegal =
            |err: runnel_domain::state::IllegalTransition| EngineError::NotAllowed(err.to_string());
        for job in state.request_cancel(spec, now).map_err(illegal)? {
            // Raced with a claim after the cancel above; the queue's cancel covers it too.
            state
                .finish_job(spec, job, JobStatus::Canceled, None, now)
                .map_err(illegal)?;
        }
        Ok(())
    };
    let advanced = advance_with(inner, run_id, Some(&mutation)).await?;
    inner.after_advance(run_id, &advanced);
    Ok(())
}

/// Retries a FAILED or CANCELED run within the same run (spec §5.3): the chosen job runs (all
/// failed or cancelled ones by default) and what they held back run again; completed jobs keep
/// their results.
pub(crate) async fn retry(
    inner: &Inner,
    run_id: &str,
    job_run_ids: &[String],
) -> Result<(), EngineError> {
    let _lock = inner.lock_run(run_id).await;
    let mutation = |spec: &runnel_domain::spec::PipelineSpec,
                    state: &mut runnel_domain::state::RunState,
                    ids: &model::RunIds,
                    now| {
        let chosen: Option<Vec<JobIdx>> = if job_run_ids.is_empty() {
            None
        } else {
            Some(
                job_run_ids
                    .iter()
                    .map(|id| {
                        ids.job_by_id(spec, id)
                            .ok_or_else(|| EngineError::NotFound(format!("job run {id}")))
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        state
            .retry(spec, chosen.as_deref(), now)
            .map_err(|err| EngineError::NotAllowed(err.to_string()))?;
        // A stop pushed cancellation to the jobs' earlier attempts; the new attempts need
        // fresh tokens, in place before they can be claimed. The run was final, so no attempt
        // of it is live (one still stopping holds its own copy of its token).
        for job_run_id in &ids.jobs {
            inner.forget_cancel(job_run_id);
        }
        Ok(())
    };
    let advanced = advance_with(inner, run_id, Some(&mutation)).await?;
    inner.after_advance(run_id, &advanced);
    Ok(())
}

/// A decision on a manual review step (`pass` or `refuse`), by an allowed approver.
pub(crate) async fn review(
    inner: &Inner,
    run_id: &str,
    step_run_id: &str,
    actor: &Actor,
    pass: bool,
    comment: &str,
) -> Result<(), EngineError> {
    let _lock = inner.lock_run(run_id).await;
    let kind = waiting_step(inner, run_id, step_run_id).await?;
    let PreparedStepKind::Checkpoint(review) = kind else {
        return Err(EngineError::NotAllowed(
            "this step is not a manual review".to_owned(),
        ));
    };
    let by_user = review
        .approvers
        .iter()
        .any(|approver| approver == &actor.user_id);
    let by_role = review
        .audit_role
        .as_ref()
        .is_some_and(|role| actor.roles.iter().any(|held| held == role));
    if !by_user && !by_role {
        return Err(EngineError::NotAllowed(format!(
            "{} is not an approver of this review",
            display(actor)
        )));
    }
    record(
        inner,
        run_id,
        step_run_id,
        actor,
        if pass { "pass" } else { "refuse" },
        comment,
    )
    .await?;
    advance_locked(inner, run_id).await
}

/// `delay` (extend by `seconds`), `delay_pass` (continue now) or `delay_refuse` (stop) on a delay step.
pub(crate) async fn delay_action(
    inner: &Inner,
    run_id: &str,
    step_run_id: &str,
    actor: &Actor,
    action: DelayAction,
) -> Result<(), EngineError> {
    let _lock = inner.lock_run(run_id).await;
    let kind = waiting_step(inner, run_id, step_run_id).await?;
    if !matches!(kind, PreparedStepKind::Delay(_)) {
        return Err(EngineError::NotAllowed(
            "this step is not a delay".to_owned(),
        ));
    }
    let (name, detail) = match action {
        DelayAction::Extend { seconds } => ("delay", seconds.to_string()),
        DelayAction::Pass => ("delay_pass", String::new()),
        DelayAction::Refuse => ("delay_refuse", String::new()),
    };
    record(inner, run_id, step_run_id, actor, name, &detail).await?;
    advance_locked(inner, run_id).await
}

/// What to do with a waiting delay step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayAction {
    Extend { seconds: u64 },
    Pass,
    Refuse,
}

/// Passes (or refuses) the manual admission of a stage, given its `pre` gate step run.
pub(crate) async fn admission(
    inner: &Inner,
    run_id: &str,
    step_run_id: &str,
    pass: bool,
) -> Result<(), EngineError> {
    let _lock = inner.lock_run(run_id).await;
    let mutation = |spec: &runnel_domain::spec::PipelineSpec,
                    state: &mut runnel_domain::state::RunState,
                    ids: &model::RunIds,
                    now| {
        let stage = ids
            .stage_by_gate(spec, step_run_id)
            .ok_or_else(|| EngineError::NotFound(format!("admission step {step_run_id}")))?;
        let not_waiting =
            |_| EngineError::NotAllowed("this stage is not waiting for a manual start".to_owned());
        if pass {
            state.admit_stage(spec, stage, now).map_err(not_waiting)
        } else {
            state.refuse_stage(spec, stage, now).map_err(not_waiting)
        }
    };
    let advanced = advance_with(inner, run_id, Some(&mutation)).await?;
    inner.after_advance(run_id, &advanced);
    Ok(())
}

/// Finds a paused agentless step of a running run.
async fn waiting_step(
    inner: &Inner,
    run_id: &str,
    step_run_id: &str,
) -> Result<PreparedStepKind, EngineError> {
    let detail = inner
        .store
        .run_detail(run_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("run {run_id}")))?;
    let spec = inner
        .specs
        .get(
            &inner.store,
            &detail.run.pipeline_id,
            detail.run.pipeline_version,
        )
        .await?;
    let (state, ids) = model::load(&spec, &detail, &BTreeMap::new())?;
    let (job, position) = ids
        .step_by_id(&spec, step_run_id)
        .ok_or_else(|| EngineError::NotFound(format!("step run {step_run_id}")))?;
    let kind = agentless::kind_of(&spec, job, position).ok_or_else(|| {
        EngineError::NotAllowed("this step does not wait for a decision".to_owned())
    })?;
    if state.job(job).steps()[position].status() != StepStatus::Paused {
        return Err(EngineError::NotAllowed(
            "this step is not waiting for a decision".to_owned(),
        ));
    }
    Ok(kind)
}

async fn record(
    inner: &Inner,
    run_id: &str,
    step_run_id: &str,
    actor: &Actor,
    action: &str,
    detail: &str,
) -> Result<(), EngineError> {
    inner
        .store
        .record_step_action(NewStepAction {
            run_id: run_id.to_owned(),
            step_run_id: step_run_id.to_owned(),
            user_id: actor.user_id.clone(),
            user_name: actor.user_name.clone(),
            action: action.to_owned(),
            detail: detail.to_owned(),
            at: inner.clock.now(),
        })
        .await?;
    Ok(())
}

/// An engine step while the caller already holds the run's lock.
async fn advance_locked(inner: &Inner, run_id: &str) -> Result<(), EngineError> {
    let advanced = advance_with(inner, run_id, None).await?;
    inner.after_advance(run_id, &advanced);
    Ok(())
}

fn display(actor: &Actor) -> String {
    if actor.user_name.is_empty() {
        actor.user_id.clone()
    } else {
        actor.user_name.clone()
    }
}
