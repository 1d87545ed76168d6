//! The worker-facing side: claim a job (with everything needed to run it), heartbeat, fenced
//! log appends and step reports, completion. The built-in pool and remote agents both come
//! through here, so there is one dispatch path.

use crate::config::EngineError;
use crate::model;
use crate::next_step::{self, NextStepInput};
use crate::{Event, Inner};
use runnel_domain::prepare::{PreparedJob, prepare_job};
use runnel_domain::status::JobStatus;
use runnel_store::{
    AppendOutcome, ClaimRequest, FinishedJob, Heartbeat, JobOutcome, JobQueue, LeaseToken,
    LogStore, RunStore, StepReport, StoreError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A claimed job, ready to run.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub token: LeaseToken,
    pub run_id: String,
    pub job_run_id: String,
    pub attempt: i64,
    /// A name for the job's workspace: `<run id>-<job identifier>`.
    pub job_key: String,
    pub prepared: PreparedJob,
    /// Step run ids, parallel to `prepared.steps`.
    pub step_run_ids: Vec<String>,
    /// The job's timeout, counted from this claim. Every attempt gets all of it: an attempt
    /// after an executor was lost starts the job over from its first step (its steps were
    /// reset), so the time the lost attempt used is not taken from it (docs/ARCHITECTURE.md,
    /// recovery).
    pub timeout: Duration,
    pub heartbeat_interval: Duration,
    pub utc_offset_minutes: i32,
}

/// What a worker asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimInput {
    pub worker_id: String,
    pub pool: Option<String>,
}

pub(crate) async fn claim(
    inner: &Inner,
    input: &ClaimInput,
) -> Result<Option<Dispatch>, EngineError> {
    loop {
        let now = inner.clock.now();
        let Some(lease) = inner.store.claim(claim_request(inner, input, now)).await? else {
            return Ok(None);
        };
        if let Some(dispatch) = dispatch_lease(inner, lease, now).await? {
            return Ok(Some(dispatch));
        }
    }
}

/// The job ended: record it (after the step reports that came with it), let the scheduler
/// react, and claim the worker's next job in the same write.
pub(crate) async fn complete_and_claim(
    inner: &Arc<Inner>,
    token: &LeaseToken,
    steps: Vec<StepReport>,
    outcome: JobOutcome,
    input: &ClaimInput,
) -> Result<(FinishedJob, Option<Dispatch>), EngineError> {
    let now = inner.clock.now();
    let next = claim_request(inner, input, now);
    let (finished, lease) =
        complete_with_next_step(inner, token, steps, outcome, now, Some(next)).await?;
    let Some(lease) = lease else {
        return Ok((finished, None));
    };
    let job_run_id = lease.job_run_id.clone();
    let dispatch = match dispatch_lease(inner, lease, now).await {
        Ok(Some(dispatch)) => Some(dispatch),
        // That job could not start (it failed, visibly): look for another.
        Ok(None) => claim(inner, input).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "claim after a completion failed");
            None
        }),
        // The completion stands and is answered as such; the claimed attempt is re-queued
        // by the sweeper when its lease expires.
        Err(err) => {
            tracing::warn!(%job_run_id, error = %err, "a job claimed with a completion could not be handed out");
            None
        }
    };
    Ok((finished, dispatch))
}

fn claim_request(inner: &Inner, input: &ClaimInput, now: runnel_domain::Timestamp) -> ClaimRequest {
    ClaimRequest {
        worker_id: input.worker_id.clone(),
        pool: input.pool.clone(),
        now,
        lease: inner.config.lease,
    }
}

/// A claimed attempt, ready to run: rendered when it was queued, else now. `None` when it
/// cannot run (e.g. an expression in a step fails): it was completed as FAILED.
async fn dispatch_lease(
    inner: &Inner,
    lease: runnel_store::Lease,
    now: runnel_domain::Timestamp,
) -> Result<Option<Dispatch>, EngineError> {
    let ready = inner
        .ready
        .take(&lease.run_id, &lease.job_run_id, lease.attempt);
    let prepared = match ready {
        // Rendered when it was queued.
        Some(ready) => Ok((ready.prepared, ready.job_key, ready.step_run_ids)),
        None => prepare(inner, &lease.run_id, &lease.job_run_id).await,
    };
    match prepared {
        Ok((prepared, job_key, step_run_ids)) => Ok(Some(Dispatch {
            timeout: prepared.timeout,
            token: lease.token,
            run_id: lease.run_id,
            job_run_id: lease.job_run_id,
            attempt: lease.attempt,
            job_key,
            prepared,
            step_run_ids,
            heartbeat_interval: inner.config.heartbeat_interval,
            utc_offset_minutes: inner.config.utc_offset_minutes,
        })),
        Err(err) => {
            tracing::warn!(job_run_id = %lease.job_run_id, error = %err, "job failed before it started");
            let outcome = JobOutcome {
                status: JobStatus::Failed,
                message: Some(err.to_string()),
            };
            inner.store.complete(&lease.token, outcome, now).await?;
            inner.send(Event::Advance(lease.run_id));
            Ok(None)
        }
    }
}

/// Jobs rendered by the engine step that queued them, until their attempt is claimed: the claim
/// then needs no second read of the run. Memory only; a miss (another engine queued it, the
/// sweeper re-queued it, a restart) renders the job from the store as before.
#[derive(Default)]
pub(crate) struct ReadyJobs {
    // run id → job run id → the rendered job.
    runs: Mutex<HashMap<String, HashMap<String, ReadyJob>>>,
}

/// A queued attempt's steps, rendered.
pub(crate) struct ReadyJob {
    pub(crate) attempt: i64,
    pub(crate) prepared: PreparedJob,
    pub(crate) job_key: String,
    pub(crate) step_run_ids: Vec<String>,
}

impl ReadyJobs {
    pub(crate) fn put(&self, run_id: &str, job_run_id: &str, job: ReadyJob) {
        self.lock()
            .entry(run_id.to_owned())
            .or_default()
            .insert(job_run_id.to_owned(), job);
    }

    /// The rendered job, if it was rendered for exactly this attempt.
    fn take(&self, run_id: &str, job_run_id: &str, attempt: i64) -> Option<ReadyJob> {
        let mut runs = self.lock();
        let jobs = runs.get_mut(run_id)?;
        let job = jobs.remove(job_run_id);
        if jobs.is_empty() {
            runs.remove(run_id);
        }
        job.filter(|job| job.attempt == attempt)
    }

    pub(crate) fn forget_run(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, ReadyJob>>> {
        // The map stays valid even if a holder panicked.
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Renders the job's steps from its run's state and parameters.
async fn prepare(
    inner: &Inner,
    run_id: &str,
    job_run_id: &str,
) -> Result<(PreparedJob, String, Vec<String>), EngineError> {
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
    let info = inner.run_info(&detail.run).await?;
    // Expressions see the outputs of finished jobs, as when the job was queued.
    let outputs = crate::advance::load_outputs(inner, &detail).await?;
    let (state, ids) = model::load(&spec, &detail, &outputs)?;
    let job = ids
        .job_by_id(&spec, job_run_id)
        .ok_or_else(|| EngineError::NotFound(format!("job run {job_run_id}")))?;
    let mut prepared = prepare_job(&spec, &state, job, &info.parameters, &info.context)
        .map_err(|err| EngineError::Invalid(err.to_string()))?;
    info.apply_checkout(&spec, job, &mut prepared);
    let job_key = format!("{run_id}-{}", spec.job(job).identifier);
    Ok((prepared, job_key, ids.steps[job.index()].clone()))
}

pub(crate) async fn heartbeat(inner: &Inner, token: &LeaseToken) -> Result<Heartbeat, EngineError> {
    Ok(inner
        .store
        .heartbeat(token, inner.clock.now(), inner.config.lease)
        .await?)
}

pub(crate) async fn append_log(
    inner: &Inner,
    token: &LeaseToken,
    step_run_id: &str,
    offset: u64,
    bytes: Vec<u8>,
) -> Result<AppendOutcome, EngineError> {
    Ok(inner
        .store
        .append(token, step_run_id, offset, bytes, inner.clock.now())
        .await?)
}

/// A step report. Step results do not need the scheduler; only job ends do.
pub(crate) async fn report_step(
    inner: &Inner,
    token: &LeaseToken,
    report: StepReport,
) -> Result<(), EngineError> {
    inner.store.report_step(token, report).await?;
    Ok(())
}

/// The job ended: record it (after the step reports that came with it) and let the scheduler
/// react.
pub(crate) async fn complete(
    inner: &Arc<Inner>,
    token: &LeaseToken,
    steps: Vec<StepReport>,
    outcome: JobOutcome,
) -> Result<FinishedJob, EngineError> {
    let now = inner.clock.now();
    let (finished, _) = complete_with_next_step(inner, token, steps, outcome, now, None).await?;
    Ok(finished)
}

/// The completion with its run's next engine step (`next_step`) and, with `next`, the worker's
/// next claim, in one write. When that write fails for another reason than a lost lease, the
/// completion (and claim) is written alone and the step left to the event loop: a step that
/// cannot be written never holds up a job's result.
async fn complete_with_next_step(
    inner: &Arc<Inner>,
    token: &LeaseToken,
    steps: Vec<StepReport>,
    outcome: JobOutcome,
    now: runnel_domain::Timestamp,
    next: Option<ClaimRequest>,
) -> Result<(FinishedJob, Option<runnel_store::Lease>), EngineError> {
    let input = NextStepInput::new(inner, now);
    let written = inner
        .store
        .complete_advance_and_claim(
            token,
            steps.clone(),
            outcome.clone(),
            now,
            Box::new(input.clone()),
            next.clone(),
        )
        .await;
    match written {
        Ok(done) => {
            next_step::follow_up(inner, &input, &done.finished, done.step_version).await;
            Ok((done.finished, done.lease))
        }
        Err(StoreError::LeaseLost) => Err(StoreError::LeaseLost.into()),
        Err(err) => {
            // A conflict is a refused completion or, with several engines on one PostgreSQL, a
            // step that lost a race; anything else is unexpected.
            if matches!(err, StoreError::Conflict(_)) {
                tracing::debug!(error = %err, "a completion with its run's next step was refused; writing the completion alone");
            } else {
                tracing::warn!(error = %err, "a completion with its run's next step failed; writing the completion alone");
            }
            let (finished, lease) = match next {
                Some(next) => {
                    inner
                        .store
                        .complete_and_claim(token, steps, outcome, next)
                        .await?
                }
                None => {
                    let finished = inner
                        .store
                        .complete_with_steps(token, steps, outcome, now)
                        .await?;
                    (finished, None)
                }
            };
            completed(inner, &finished);
            Ok((finished, lease))
        }
    }
}

/// After a completion: the attempt needs no stop any more, and its run's next engine step.
fn completed(inner: &Inner, finished: &FinishedJob) {
    inner.forget_cancel(&finished.job_run_id);
    inner.send(if finished.is_replay {
        Event::Replayed(finished.run_id.clone())
    } else {
        Event::Advance(finished.run_id.clone())
    });
}
