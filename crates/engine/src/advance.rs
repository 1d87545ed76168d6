//! One engine step for one run: load it, let the pure scheduler decide, run agentless steps,
//! and write everything that changed — plus the jobs to dispatch — in one transaction.
//! A write that loses a race with another writer (`Conflict`) is retried from a fresh read.

use crate::agentless::{self, StepActions};
use crate::config::EngineError;
use crate::dispatch::ReadyJob;
use crate::model::{self, RunIds};
use crate::runinfo::RunInfo;
use crate::{Event, Inner};
use runnel_domain::Timestamp;
use runnel_domain::prepare::prepare_job;
use runnel_domain::scheduler::{Action, RunContext, advance as schedule};
use runnel_domain::spec::{ExecKind, JobIdx, PipelineSpec};
use runnel_domain::state::{RunSnapshot, RunState};
use runnel_domain::status::{JobStatus, RunStatus};
use runnel_store::{
    EnqueueJob, RunDetail, RunProgress, RunQuery, RunRecord, RunSortKey, RunStore, SortDir,
    StepOutputRecord, StoreError,
};
use std::collections::BTreeMap;

/// How many times a step is retried after losing a race before giving up until the next event.
const MAX_ATTEMPTS: usize = 8;

/// What one step of a run decided, for the event loop.
#[derive(Debug, Default)]
pub(crate) struct Advanced {
    /// The run is final now (its pipeline may have a queued run to start).
    pub(crate) pipeline_freed: Option<String>,
    /// How many jobs were queued for executors.
    pub(crate) enqueued: usize,
    /// When the run must be looked at again even without an event (a review deadline, a delay).
    pub(crate) wake_at: Option<Timestamp>,
}

/// A change made to a loaded run before the scheduler runs (a command: stop, retry, …).
pub(crate) type Mutation<'a> = &'a (
        dyn Fn(&PipelineSpec, &mut RunState, &RunIds, Timestamp) -> Result<(), EngineError> + Sync
    );

pub(crate) async fn advance(inner: &Inner, run_id: &str) -> Result<Advanced, EngineError> {
    advance_with(inner, run_id, None).await
}

/// Loads the run, applies `mutation` (if any), lets the scheduler act, and saves. Retries on a
/// lost race; the mutation is re-applied to the fresh state each time.
pub(crate) async fn advance_with(
    inner: &Inner,
    run_id: &str,
    mutation: Option<Mutation<'_>>,
) -> Result<Advanced, EngineError> {
    let mut last_conflict = None;
    for _ in 0..MAX_ATTEMPTS {
        match step(inner, run_id, mutation).await {
            Err(EngineError::Store(StoreError::Conflict(message))) => last_conflict = Some(message),
            other => return other,
        }
    }
    Err(EngineError::Store(StoreError::Conflict(
        last_conflict.unwrap_or_default(),
    )))
}

async fn step(
    inner: &Inner,
    run_id: &str,
    mutation: Option<Mutation<'_>>,
) -> Result<Advanced, EngineError> {
    let now = inner.clock.now();
    // A run's first step starts from the rows its trigger just wrote; a lost race (the save
    // is version-checked) reads them like any later step.
    let detail = match inner.take_created(run_id) {
        Some(created) => created,
        None => inner
            .store
            .run_detail(run_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("run {run_id}")))?,
    };
    let spec = inner
        .specs
        .get(
            &inner.store,
            &detail.run.pipeline_id,
            detail.run.pipeline_version,
        )
        .await?;
    let info = inner.run_info(&detail.run).await?;
    // Outputs feed the conditions and inputs of what has not started yet; a step without a
    // mutation (a retry may reset jobs) and with nothing left to start reads none.
    let outputs = if mutation.is_some() || has_unstarted_work(&detail) {
        load_outputs(inner, &detail).await?
    } else {
        BTreeMap::new()
    };
    let (mut state, ids) = model::load(&spec, &detail, &outputs)?;
    let before = state.snapshot();

    if let Some(mutation) = mutation {
        mutation(&spec, &mut state, &ids, now)?;
    }
    if state.status().is_final() && mutation.is_none() {
        return Ok(Advanced::default());
    }
    if matches!(state.status(), RunStatus::Init | RunStatus::Queued) && !state.is_cancel_requested()
    {
        admit(inner, &detail, &mut state, now).await?;
    }

    let actions_needed = StepActions::load_if_waiting(inner, &spec, &state, run_id).await?;
    let planned = plan(
        inner.config.max_tries,
        &spec,
        &mut state,
        &ids,
        &before,
        &info.context,
        &actions_needed,
        run_id,
        detail.run.state_version,
        now,
    )?;
    let saved = Saved {
        enqueued_jobs: planned.enqueued_jobs,
        enqueued: planned.progress.enqueue.len(),
        wake_at: planned.wake_at,
        was_final: before.status.is_final(),
    };
    if !model::is_empty(&planned.progress) {
        inner.store.save_progress(planned.progress).await?;
    }
    Ok(saved.follow_up(inner, &spec, &detail, &state, &ids, &info))
}

/// An engine step's decisions once they are committed.
pub(crate) struct Saved {
    pub(crate) enqueued_jobs: Vec<JobIdx>,
    pub(crate) enqueued: usize,
    pub(crate) wake_at: Option<Timestamp>,
    /// Whether the run was final before the step.
    pub(crate) was_final: bool,
}

impl Saved {
    /// Renders the queued jobs for their claim, forgets a run that ended, and says what the
    /// event loop must do next.
    pub(crate) fn follow_up(
        self,
        inner: &Inner,
        spec: &PipelineSpec,
        detail: &RunDetail,
        state: &RunState,
        ids: &RunIds,
        info: &RunInfo,
    ) -> Advanced {
        render_for_claim(inner, spec, detail, state, ids, info, &self.enqueued_jobs);
        let is_final = state.status().is_final();
        let pipeline_freed = (is_final && !self.was_final).then(|| detail.run.pipeline_id.clone());
        if is_final {
            inner.forget_run(&detail.run.id);
        }
        Advanced {
            pipeline_freed,
            enqueued: self.enqueued,
            wake_at: self.wake_at,
        }
    }
}

/// What one engine step decided, ready to save.
#[derive(Debug)]
pub(crate) struct Planned {
    /// The changes and the jobs to queue, for `save_progress`.
    pub(crate) progress: RunProgress,
    /// The jobs queued, for their rendering.
    pub(crate) enqueued_jobs: Vec<JobIdx>,
    /// When the run must be looked at again even without an event.
    pub(crate) wake_at: Option<Timestamp>,
}

/// The pure part of an engine step: lets the scheduler act on the (loaded, admitted) `state`,
/// drives agentless jobs, and writes down what changed since `before`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan(
    max_tries: u32,
    spec: &PipelineSpec,
    state: &mut RunState,
    ids: &RunIds,
    before: &RunSnapshot,
    context: &RunContext,
    actions_needed: &StepActions,
    run_id: &str,
    version: i64,
    now: Timestamp,
) -> Result<Planned, EngineError> {
    let mut enqueue = Vec::new();
    let mut enqueued_jobs = Vec::new();
    let mut wake_at = None;
    loop {
        let actions = schedule(spec, state, context, now)
            .map_err(|err| EngineError::NotAllowed(err.to_string()))?;
        let mut progressed = false;
        for action in &actions {
            if let Action::QueueJob(job) = action {
                if spec.job(*job).exec == ExecKind::Agentless {
                    state
                        .start_job(spec, *job, now)
                        .map_err(|err| EngineError::NotAllowed(err.to_string()))?;
                    progressed = true;
                } else {
                    enqueue.push(enqueue_job(max_tries, spec, ids, *job));
                    enqueued_jobs.push(*job);
                }
            }
        }
        // Agentless jobs move on their own: reviews, delays.
        for job in spec.job_indices() {
            if spec.job(job).exec != ExecKind::Agentless {
                continue;
            }
            if matches!(
                state.job(job).status(),
                JobStatus::Running | JobStatus::Paused
            ) {
                let outcome = agentless::drive(spec, state, ids, job, actions_needed, now)?;
                progressed |= outcome.changed;
                wake_at = earliest(wake_at, outcome.wake_at);
            }
        }
        if !progressed {
            break;
        }
    }

    let after = state.snapshot();
    let mut progress = model::diff(spec, ids, run_id, version, before, &after, now);
    progress.enqueue = enqueue;
    // A job queued now gets its row from the enqueue (QUEUED, its times and message cleared):
    // the diff's update of the same row to the same values would be a second write.
    progress.jobs.retain(|job| {
        !(job.status == JobStatus::Queued
            && job.message.is_none()
            && job.start_time.is_none()
            && job.end_time.is_none()
            && progress
                .enqueue
                .iter()
                .any(|queued| queued.job_run_id == job.id))
    });
    Ok(Planned {
        progress,
        enqueued_jobs,
        wake_at,
    })
}

/// A new run's first engine step, decided inside its creation's transaction
/// (`RunStore::create_and_start_run`, see `trigger`): what [`step`] would decide on the rows as
/// created, for a run that takes no concurrency slot (its admission needs no count). Nothing
/// waits in a new run, so no step action is read. Returns the plan and the state after it.
pub(crate) fn first_step(
    max_tries: u32,
    spec: &PipelineSpec,
    detail: &RunDetail,
    context: &RunContext,
    now: Timestamp,
) -> Result<(Planned, RunState, RunIds), EngineError> {
    let (mut state, ids) = model::load(spec, detail, &BTreeMap::new())?;
    let before = state.snapshot();
    if state.status() != RunStatus::Init || state.is_cancel_requested() {
        return Err(EngineError::NotAllowed(format!(
            "run {} is not new",
            detail.run.id
        )));
    }
    state
        .start(now)
        .map_err(|err| EngineError::NotAllowed(err.to_string()))?;
    let planned = plan(
        max_tries,
        spec,
        &mut state,
        &ids,
        &before,
        context,
        &StepActions::default(),
        &detail.run.id,
        detail.run.state_version,
        now,
    )?;
    Ok((planned, state, ids))
}

/// A run waiting to start takes a concurrency slot if one is free and it is first in line.
async fn admit(
    inner: &Inner,
    detail: &RunDetail,
    state: &mut RunState,
    now: Timestamp,
) -> Result<(), EngineError> {
    let spec = inner
        .specs
        .get(
            &inner.store,
            &detail.run.pipeline_id,
            detail.run.pipeline_version,
        )
        .await?;
    let concurrency = spec.concurrency();
    let may_start = if !concurrency.enabled {
        true
    } else {
        let max_runs = i64::from(concurrency.max_runs);
        match state.status() {
            // A queued run starts when fewer runs than the limit are ahead of it (started or
            // just triggered ones and older queued ones, one consistent count): several free
            // slots (runs that ended together) start as many queued runs, in order, and queued
            // runs admitted at the same moment never exceed the limit.
            RunStatus::Queued => inner
                .store
                .runs_ahead_in_queue(&detail.run.id)
                .await?
                .is_some_and(|ahead| ahead < max_runs),
            _ => {
                let started = inner
                    .store
                    .count_runs(
                        &detail.run.pipeline_id,
                        &[RunStatus::Running, RunStatus::Paused, RunStatus::Suspend],
                    )
                    .await?;
                started < max_runs
            }
        }
    };
    let illegal =
        |err: runnel_domain::state::IllegalTransition| EngineError::NotAllowed(err.to_string());
    if may_start {
        state.start(now).map_err(illegal)?;
    } else if state.status() == RunStatus::Init {
        state.queue().map_err(illegal)?;
    }
    Ok(())
}

/// The (at most `limit`) queued runs of a pipeline that started waiting first, oldest first.
pub(crate) async fn oldest_queued(
    inner: &Inner,
    pipeline_id: &str,
    limit: i64,
) -> Result<Vec<RunRecord>, EngineError> {
    let query = RunQuery {
        statuses: vec![RunStatus::Queued],
        sort_key: RunSortKey::StartTime,
        sort_dir: SortDir::Asc,
        limit: limit.max(1),
        ..RunQuery::default()
    };
    let page = inner.store.list_runs(pipeline_id, &query).await?;
    Ok(page.items.into_iter().map(|summary| summary.run).collect())
}

/// After runs of `pipeline_id` ended: the oldest queued runs may start, one per free slot
/// (each one's own admission decides, see `admit`).
pub(crate) async fn start_next_queued(inner: &Inner, pipeline_id: &str) -> Result<(), EngineError> {
    // Most pipelines never queue a run: one look at the run counters spares listing runs.
    if inner
        .store
        .count_runs(pipeline_id, &[RunStatus::Queued])
        .await?
        == 0
    {
        return Ok(());
    }
    let oldest = oldest_queued(inner, pipeline_id, 1).await?;
    let Some(first) = oldest.first() else {
        return Ok(());
    };
    // The limit in force for the queue: the oldest queued run's pipeline version's.
    let spec = inner
        .specs
        .get(&inner.store, pipeline_id, first.pipeline_version)
        .await?;
    let concurrency = spec.concurrency();
    let free = if concurrency.enabled {
        let started = inner
            .store
            .count_runs(
                pipeline_id,
                &[RunStatus::Running, RunStatus::Paused, RunStatus::Suspend],
            )
            .await?;
        i64::from(concurrency.max_runs) - started
    } else {
        // No limit in the version the oldest queued run runs: all of them may go.
        MAX_WOKEN
    };
    if free <= 0 {
        return Ok(());
    }
    let woken = if free == 1 {
        oldest
    } else {
        oldest_queued(inner, pipeline_id, free.min(MAX_WOKEN)).await?
    };
    for run in woken {
        inner.send(Event::Advance(run.id));
    }
    Ok(())
}

/// The most queued runs one look wakes (the next look, when one of them ends, wakes more).
const MAX_WOKEN: i64 = 64;

/// Renders the jobs just queued (committed), so their claim need not read the run again. A job
/// that cannot be rendered is left to the claim, which fails it visibly.
fn render_for_claim(
    inner: &Inner,
    spec: &PipelineSpec,
    detail: &RunDetail,
    state: &RunState,
    ids: &RunIds,
    info: &RunInfo,
    jobs: &[JobIdx],
) {
    for &job in jobs {
        let job_run_id = &ids.jobs[job.index()];
        // The enqueue made the next attempt of what was read (the write was version-checked).
        let Some(record) = detail
            .stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .find(|record| &record.id == job_run_id)
        else {
            continue;
        };
        let Ok(mut prepared) = prepare_job(spec, state, job, &info.parameters, &info.context)
        else {
            continue;
        };
        info.apply_checkout(spec, job, &mut prepared);
        inner.ready.put(
            &detail.run.id,
            job_run_id,
            ReadyJob {
                attempt: record.attempt + 1,
                prepared,
                job_key: format!("{}-{}", detail.run.id, spec.job(job).identifier),
                step_run_ids: ids.steps[job.index()].clone(),
            },
        );
    }
}

fn enqueue_job(max_tries: u32, spec: &PipelineSpec, ids: &RunIds, job: JobIdx) -> EnqueueJob {
    let pool = spec
        .job(job)
        .resource
        .as_ref()
        .and_then(|resource| {
            resource
                .get("pool_name")
                .or_else(|| resource.get("pool_id"))
        })
        .and_then(|pool| pool.as_str())
        .filter(|pool| !pool.is_empty())
        .map(str::to_owned);
    EnqueueJob {
        job_run_id: ids.jobs[job.index()].clone(),
        pool,
        labels: Vec::new(),
        max_tries: max_tries.max(1),
    }
}

/// Whether a stage or job has yet to start, or waits (a review, a delay): only then can
/// `jobs.<id>.outputs` still be read by a condition or an input.
fn has_unstarted_work(detail: &RunDetail) -> bool {
    detail
        .stages
        .iter()
        .any(|stage| waits(stage.status) || stage.jobs.iter().any(|job| waits(job.status)))
}

fn waits(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Init | JobStatus::Paused | JobStatus::Suspend
    )
}

/// Whether a step without a mutation reads the run's step outputs: something has yet to start
/// (see [`has_unstarted_work`]) and some job has finished.
pub(crate) fn reads_outputs(detail: &RunDetail) -> bool {
    has_unstarted_work(detail) && any_finished_job(detail)
}

fn any_finished_job(detail: &RunDetail) -> bool {
    detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .any(|job| job.status.is_final())
}

/// Outputs of finished jobs, for `jobs.<id>.outputs` in conditions: job run id → key → value.
pub(crate) async fn load_outputs(
    inner: &Inner,
    detail: &RunDetail,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, EngineError> {
    if !any_finished_job(detail) {
        return Ok(BTreeMap::new());
    }
    let records = inner.store.step_outputs(&detail.run.id, None).await?;
    Ok(outputs_by_job(detail, records))
}

/// Step outputs of a run by job: job run id → key → value.
pub(crate) fn outputs_by_job(
    detail: &RunDetail,
    records: impl IntoIterator<Item = StepOutputRecord>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut step_to_job = BTreeMap::new();
    for job in detail.stages.iter().flat_map(|stage| &stage.jobs) {
        for step in &job.steps {
            step_to_job.insert(step.id.clone(), job.id.clone());
        }
    }
    let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for record in records {
        if let Some(job) = step_to_job.get(&record.step_run_id) {
            let value = match record.value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            outputs
                .entry(job.clone())
                .or_default()
                .insert(record.key, value);
        }
    }
    outputs
}

fn earliest(left: Option<Timestamp>, right: Option<Timestamp>) -> Option<Timestamp> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.min(right)),
        (left, right) => left.or(right),
    }
}
