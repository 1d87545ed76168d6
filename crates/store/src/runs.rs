//! Runs: atomic creation with gapless numbers, auto-increment values and idempotency keys; progress; detail and list reads.

mod create;
mod parameters;
mod progress;

use std::sync::atomic::{AtomicBool, Ordering};

/// SQLite: whether a run may be QUEUED in a database this process opened. False until a
/// database is opened with a queued run in its counters, or a write moves a run's counter to
/// QUEUED; then true for good. Set before the write commits, so a reader that could see the
/// queued run sees the flag too. While it is false, `count_runs` of queued runs answers 0
/// without a read: after each run the engine looks for queued runs of its pipeline, and most
/// installations never queue one. An SQLite database has one server, whose store makes every
/// write; PostgreSQL, shared by servers, always reads.
static MAY_HAVE_QUEUED_RUNS: AtomicBool = AtomicBool::new(false);

/// Notes a write that counts a run as `status`, before it commits.
fn note_counted_status(status: &str) {
    if status == RunStatus::Queued.as_str() {
        MAY_HAVE_QUEUED_RUNS.store(true, Ordering::SeqCst);
    }
}

/// Notes queued runs already in the database (at open, after the migrations).
pub(crate) async fn note_stored_queued_runs(pool: &sqlx::AnyPool) -> Result<(), StoreError> {
    let queued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pipeline_run_counts WHERE status = $1 AND run_count <> 0",
    )
    .bind(RunStatus::Queued.as_str())
    .fetch_one(pool)
    .await?;
    if queued > 0 {
        note_counted_status(RunStatus::Queued.as_str());
    }
    Ok(())
}

pub(crate) use progress::next_step;
mod read;

use crate::Store;
use crate::error::StoreError;
use crate::queue::EnqueueJob;
use crate::sql::{Page, SortDir};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, RunStatus, StageStatus, StepStatus};
use std::future::Future;

/// A key under which a request may be retried without creating a second run (G6):
/// `scope` names the caller and target (e.g. `api:<user>:<pipeline>` or `webhook:<hook_id>`),
/// `key` is the `Idempotency-Key` header or the webhook delivery id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
}

/// A whole new run: the run row, every stage, job and step run, committed at once.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// From [`crate::new_id`].
    pub id: String,
    pub pipeline_id: String,
    /// The pipeline version the run executes; `None` = the current one.
    pub pipeline_version: Option<i64>,
    /// INIT or QUEUED (waiting for a concurrency slot) usually.
    pub status: RunStatus,
    pub trigger_type: String,
    pub executor_id: String,
    pub executor_name: String,
    pub description: String,
    /// `build_params` (spec §13 BuildParams), as JSON.
    pub build_params: serde_json::Value,
    /// Resolved sources of the run (spec §5.5 `sources`).
    pub sources: serde_json::Value,
    /// `choose_stages` / `choose_jobs` as given.
    pub selection: serde_json::Value,
    pub now: Timestamp,
    pub stages: Vec<NewStageRun>,
    pub idempotency: Option<IdempotencyKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewStageRun {
    pub id: String,
    pub sequence: i64,
    pub identifier: String,
    pub name: String,
    pub category: Option<String>,
    pub run_always: bool,
    pub parallel: Option<String>,
    pub is_select: bool,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
    pub status: StageStatus,
    /// Admission gates (`pre`) and exit gates (`post`).
    pub pre: Vec<NewStepRun>,
    pub post: Vec<NewStepRun>,
    pub jobs: Vec<NewJobRun>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewJobRun {
    pub id: String,
    /// The job's index in the compiled spec (`JobIdx`), unique within the run.
    pub job_index: i64,
    pub sequence: i64,
    pub identifier: String,
    pub name: String,
    pub category: Option<String>,
    pub is_async: bool,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
    pub resource: Option<String>,
    pub timeout: Option<String>,
    pub is_select: bool,
    pub status: JobStatus,
    pub steps: Vec<NewStepRun>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewStepRun {
    pub id: String,
    pub sequence: i64,
    pub identifier: String,
    pub name: String,
    pub task: String,
    pub business_type: Option<String>,
    pub official_task_version: Option<String>,
    /// `[{key, value}]` as in the definition.
    pub inputs: serde_json::Value,
    pub multi_step_editable: i64,
    pub endpoint_ids: Vec<String>,
    pub daily_build_number: Option<String>,
}

/// What the run's transaction allocated, handed to the [`ParameterBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAllocation {
    pub run_number: i64,
    /// `(name, value_for_run)` of every autoIncrement variable of the pipeline, computed by
    /// `runnel_domain::params::auto_increment_for_run` from the committed variable.
    pub auto_increment_values: Vec<(String, String)>,
}

/// One parameter of a run's snapshot. Secret values are encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunParameter {
    pub name: String,
    pub value: String,
    pub is_secret: bool,
    /// `predefined`, `custom` or `group:<id>`.
    pub origin: String,
}

/// Builds the run's parameter snapshot once the run number and auto-increment values are
/// known, inside the run's transaction (so `PIPELINE_NUMBER` and auto-increment values are
/// the committed ones). An `Err(message)` aborts the creation: nothing is stored, no number
/// is used (`StoreError::Invalid(message)`). It may be called more than once (the transaction
/// is run again when a write batched with it fails); only the last call's rows are committed.
pub type ParameterBuilder =
    Box<dyn Fn(&RunAllocation) -> Result<Vec<RunParameter>, String> + Send + Sync>;

/// The run's first engine step, decided inside its creation's transaction once its number and
/// parameter snapshot are known (`RunStore::create_and_start_run`): given the run as created
/// (what `RunDetail::created` shows) and the snapshot, the changes of that step
/// (`expected_version` 0, jobs to queue in `enqueue`), or `None` to store the run as created
/// and leave its first step to a later `save_progress`. Like a [`ParameterBuilder`] it may be
/// called more than once; only the last call's answer is committed.
pub type FirstStep = Box<dyn Fn(&RunDetail, &[RunParameter]) -> Option<RunProgress> + Send + Sync>;

/// A run's engine step right after one of its jobs ended, decided inside the completion's
/// transaction (`JobQueue::complete_advance_and_claim`) so the two are one write: given the run
/// as the completion left it (read in that transaction), the changes of that step, or `None` to
/// leave the step to a later `save_progress`. Like a [`FirstStep`] it may be called more than
/// once; only the last call's answer is committed. It runs on the store's writer (SQLite): pure
/// work in memory, no I/O.
pub trait NextStep: Send + Sync {
    /// Whether [`NextStep::decide`] needs the run's step outputs (read in the same transaction).
    fn needs_outputs(&self, run: &RunDetail) -> bool;

    /// The step's changes (`expected_version` = the run's `state_version` as read; another
    /// version, or another run, stores nothing of the step), or `None`.
    fn decide(&self, run: &RunDetail, outputs: &[StepOutputRecord]) -> Option<RunProgress>;
}

/// The answer to `create_run`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedRun {
    pub run: RunRecord,
    /// The idempotency key was seen before: this is the run it created then, and nothing new
    /// was stored.
    pub is_replay: bool,
    /// The first step's changes were stored with the run (`run.state_version` is 1).
    pub is_started: bool,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub pipeline_id: String,
    pub pipeline_version: i64,
    pub run_number: i64,
    pub status: RunStatus,
    pub trigger_type: String,
    pub executor_id: String,
    pub executor_name: String,
    pub description: String,
    pub build_params: serde_json::Value,
    pub sources: serde_json::Value,
    pub selection: serde_json::Value,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    /// Accumulated paused milliseconds, not counting a pause still going on.
    pub pause_time: i64,
    pub paused_since: Option<Timestamp>,
    pub is_cancel_requested: bool,
    /// Bumped by every [`RunStore::save_progress`]; the optimistic-concurrency token.
    pub state_version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageRunRecord {
    pub id: String,
    pub sequence: i64,
    pub identifier: String,
    pub name: String,
    pub category: Option<String>,
    pub run_always: bool,
    pub parallel: Option<String>,
    pub is_select: bool,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
    pub status: StageStatus,
    pub message: Option<String>,
    pub is_admitted: bool,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub pause_time: i64,
    pub pre: Vec<StepRunRecord>,
    pub post: Vec<StepRunRecord>,
    pub jobs: Vec<JobRunRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRunRecord {
    pub id: String,
    pub stage_run_id: String,
    pub job_index: i64,
    pub sequence: i64,
    pub identifier: String,
    pub name: String,
    pub category: Option<String>,
    pub is_async: bool,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
    pub resource: Option<String>,
    pub timeout: Option<String>,
    pub is_select: bool,
    pub status: JobStatus,
    pub message: Option<String>,
    pub attempt: i64,
    pub last_dispatch_id: Option<String>,
    pub exec_id: Option<String>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub steps: Vec<StepRunRecord>,
}

/// Where a step run sits: in a job, or as a stage's admission (`pre`) or exit (`post`) gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPlacement {
    Job,
    Pre,
    Post,
}

impl StepPlacement {
    pub const fn as_str(self) -> &'static str {
        match self {
            StepPlacement::Job => "job",
            StepPlacement::Pre => "pre",
            StepPlacement::Post => "post",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRunRecord {
    pub id: String,
    pub stage_run_id: String,
    pub job_run_id: Option<String>,
    pub placement: StepPlacement,
    pub sequence: i64,
    pub identifier: String,
    pub name: String,
    pub task: String,
    pub business_type: Option<String>,
    pub official_task_version: Option<String>,
    pub inputs: serde_json::Value,
    pub multi_step_editable: i64,
    pub endpoint_ids: Vec<String>,
    pub status: StepStatus,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub last_dispatch_id: Option<String>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub daily_build_number: Option<String>,
}

/// A run with its stages, jobs and steps (spec §5.5).
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    pub run: RunRecord,
    pub stages: Vec<StageRunRecord>,
}

impl RunDetail {
    /// The detail of a run `create_run` just created from `stages` (`run` is its answer), as
    /// stored: what a read would return, without the read. Column defaults are spelled out
    /// here, so this stays next to the inserts of `create.rs`.
    pub fn created(run: RunRecord, stages: &[NewStageRun]) -> RunDetail {
        let step = |stage_run_id: &str,
                    job_run_id: Option<&str>,
                    placement: StepPlacement,
                    step: &NewStepRun| StepRunRecord {
            id: step.id.clone(),
            stage_run_id: stage_run_id.to_owned(),
            job_run_id: job_run_id.map(str::to_owned),
            placement,
            sequence: step.sequence,
            identifier: step.identifier.clone(),
            name: step.name.clone(),
            task: step.task.clone(),
            business_type: step.business_type.clone(),
            official_task_version: step.official_task_version.clone(),
            inputs: step.inputs.clone(),
            multi_step_editable: step.multi_step_editable,
            endpoint_ids: step.endpoint_ids.clone(),
            status: StepStatus::Init,
            message: None,
            exit_code: None,
            last_dispatch_id: None,
            start_time: None,
            end_time: None,
            daily_build_number: step.daily_build_number.clone(),
        };
        let stages = stages
            .iter()
            .map(|stage| StageRunRecord {
                id: stage.id.clone(),
                sequence: stage.sequence,
                identifier: stage.identifier.clone(),
                name: stage.name.clone(),
                category: stage.category.clone(),
                run_always: stage.run_always,
                parallel: stage.parallel.clone(),
                is_select: stage.is_select,
                depends_on: stage.depends_on.clone(),
                condition: stage.condition.clone(),
                status: stage.status,
                message: None,
                is_admitted: false,
                start_time: None,
                end_time: None,
                pause_time: 0,
                pre: stage
                    .pre
                    .iter()
                    .map(|gate| step(&stage.id, None, StepPlacement::Pre, gate))
                    .collect(),
                post: stage
                    .post
                    .iter()
                    .map(|gate| step(&stage.id, None, StepPlacement::Post, gate))
                    .collect(),
                jobs: stage
                    .jobs
                    .iter()
                    .map(|job| JobRunRecord {
                        id: job.id.clone(),
                        stage_run_id: stage.id.clone(),
                        job_index: job.job_index,
                        sequence: job.sequence,
                        identifier: job.identifier.clone(),
                        name: job.name.clone(),
                        category: job.category.clone(),
                        is_async: job.is_async,
                        depends_on: job.depends_on.clone(),
                        condition: job.condition.clone(),
                        resource: job.resource.clone(),
                        timeout: job.timeout.clone(),
                        is_select: job.is_select,
                        status: job.status,
                        message: None,
                        attempt: 0,
                        last_dispatch_id: None,
                        exec_id: None,
                        start_time: None,
                        end_time: None,
                        steps: job
                            .steps
                            .iter()
                            .map(|one| step(&stage.id, Some(&job.id), StepPlacement::Job, one))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        RunDetail { run, stages }
    }
}

/// One stage of a run-list item (`stage_status_list`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageStatusItem {
    pub id: String,
    pub name: String,
    pub sequence: i64,
    pub status: StageStatus,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
}

/// A run-list item (spec §5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run: RunRecord,
    pub stages: Vec<StageStatusItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunSortKey {
    #[default]
    StartTime,
    UpdateTime,
}

/// Filters, sort and page of a run list (spec §5.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunQuery {
    /// Empty = any status.
    pub statuses: Vec<RunStatus>,
    /// Empty = any trigger type.
    pub trigger_types: Vec<String>,
    pub executor_ids: Vec<String>,
    /// Runs started at or after / at or before.
    pub started_from: Option<Timestamp>,
    pub started_to: Option<Timestamp>,
    /// Runs changed after.
    pub updated_after: Option<Timestamp>,
    /// Only runs with a job of this identifier (spec §5.4 `job_id`).
    pub job_identifier: Option<String>,
    pub sort_key: RunSortKey,
    pub sort_dir: SortDir,
    pub offset: i64,
    /// Clamped to 1..=100.
    pub limit: i64,
}

/// A change of the run row by the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct RunUpdate {
    pub status: RunStatus,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub pause_time: i64,
    pub paused_since: Option<Timestamp>,
    pub is_cancel_requested: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageUpdate {
    pub id: String,
    pub status: StageStatus,
    pub message: Option<String>,
    pub is_admitted: bool,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub pause_time: i64,
}

/// A job status decided by the engine (skipped, reset for a retry, paused, …). Queue
/// transitions (QUEUED, RUNNING, final by an executor) go through [`crate::JobQueue`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobUpdate {
    pub id: String,
    pub status: JobStatus,
    pub message: Option<String>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
}

/// A step status decided by the engine (gates, agentless steps, resets).
#[derive(Debug, Clone, PartialEq)]
pub struct StepUpdateRow {
    pub id: String,
    pub status: StepStatus,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
}

/// Everything one engine step changed in a run, written in one transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunProgress {
    pub run_id: String,
    /// The `state_version` the engine read; a different stored one is a `Conflict` (another
    /// engine replica advanced the run meanwhile) and nothing is written.
    pub expected_version: i64,
    pub now: Timestamp,
    pub run: Option<RunUpdate>,
    pub stages: Vec<StageUpdate>,
    pub jobs: Vec<JobUpdate>,
    pub steps: Vec<StepUpdateRow>,
    /// Jobs to put on the queue in the same transaction.
    pub enqueue: Vec<EnqueueJob>,
}

/// A step output (spec §5.7).
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutputRecord {
    pub step_run_id: String,
    pub key: String,
    pub value: serde_json::Value,
}

/// Artifact metadata (spec §5.8).
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub id: String,
    pub run_id: String,
    pub job_run_id: Option<String>,
    pub step_run_id: Option<String>,
    pub name: String,
    pub version: String,
    pub package_type: String,
    pub artifact_type: String,
    pub upload_target: String,
    pub uri: String,
    pub download_url: String,
    pub sha256: Option<String>,
    pub file_size: Option<i64>,
    pub build_no: String,
    pub daily_build_number: String,
    pub created_at: Timestamp,
}

/// Runs and everything below them (A1, G5, G6).
///
/// Creation: `create_run` commits the run row, its number (`last_run_number + 1` of the
/// pipeline, taken under the pipeline row's lock), the pipeline's auto-increment values, the
/// parameter snapshot, every stage/job/step run and the idempotency key in ONE transaction.
/// Numbers are unique, increasing and gapless among committed runs: a failed creation rolls
/// its number back. A replay of an idempotency key returns the first run and stores nothing.
///
/// Progress: the engine writes run/stage/job/step changes with `save_progress`, guarded by
/// `state_version` (optimistic concurrency for several engine replicas). Job dispatch state
/// belongs to [`crate::JobQueue`].
///
/// Reads (`run`, `run_detail`, `list_runs`, …) see committed data only and never block writes.
pub trait RunStore {
    fn create_run(
        &self,
        run: NewRun,
        parameters: ParameterBuilder,
    ) -> impl Future<Output = Result<CreatedRun, StoreError>> + Send;

    /// `create_run`, with the run's first engine step in the same transaction: the rows are
    /// stored as `first_step` changed them and its jobs queued, as if `save_progress` had
    /// followed at once (one write instead of two). A first step that answers `None`, or one
    /// for another run or version, stores the run as created.
    fn create_and_start_run(
        &self,
        run: NewRun,
        parameters: ParameterBuilder,
        first_step: FirstStep,
    ) -> impl Future<Output = Result<CreatedRun, StoreError>> + Send;

    /// Writes one engine step; returns the new `state_version`.
    fn save_progress(
        &self,
        progress: RunProgress,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    fn run(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<RunRecord>, StoreError>> + Send;

    fn run_by_number(
        &self,
        pipeline_id: &str,
        run_number: i64,
    ) -> impl Future<Output = Result<Option<RunRecord>, StoreError>> + Send;

    fn latest_run(
        &self,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Option<RunRecord>, StoreError>> + Send;

    fn run_detail(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<RunDetail>, StoreError>> + Send;

    fn list_runs(
        &self,
        pipeline_id: &str,
        query: &RunQuery,
    ) -> impl Future<Output = Result<Page<RunSummary>, StoreError>> + Send;

    /// Every run not in a final state, oldest first (recovery after a restart).
    fn active_runs(&self) -> impl Future<Output = Result<Vec<RunRecord>, StoreError>> + Send;

    /// 1-based position of a QUEUED run among its pipeline's QUEUED runs (by run number).
    fn queue_position(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// For a QUEUED run: how many runs of its pipeline are ahead of it — started ones
    /// (RUNNING, PAUSED, SUSPEND), ones just triggered with a free slot (INIT, before their
    /// first engine step) and QUEUED ones that started waiting before it (by `start_time`, then
    /// run number) — counted in one statement, so runs admitted meanwhile count once either
    /// way. `None` for a run that is not QUEUED (or does not exist).
    fn runs_ahead_in_queue(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Runs of the pipeline per status (from the maintained counters).
    fn count_runs(
        &self,
        pipeline_id: &str,
        statuses: &[RunStatus],
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The parameter snapshot, secrets decrypted (for the engine; the API must mask them).
    fn run_parameters(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<RunParameter>, StoreError>> + Send;

    /// Outputs of the run's steps (`None` = every step).
    fn step_outputs(
        &self,
        run_id: &str,
        step_run_ids: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<StepOutputRecord>, StoreError>> + Send;

    fn artifacts(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<ArtifactRecord>, StoreError>> + Send;

    /// The run an idempotency key created, if the key was used (G6): a replay is answered with
    /// it before any check that the first request passed but a repeat might not.
    fn run_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<RunRecord>, StoreError>> + Send;

    /// Forgets idempotency keys created before `before` (keep at least 24 h: G6).
    fn prune_idempotency_keys(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl RunStore for Store {
    async fn create_run(
        &self,
        run: NewRun,
        parameters: ParameterBuilder,
    ) -> Result<CreatedRun, StoreError> {
        create::create_run(self, run, parameters, None).await
    }

    async fn create_and_start_run(
        &self,
        run: NewRun,
        parameters: ParameterBuilder,
        first_step: FirstStep,
    ) -> Result<CreatedRun, StoreError> {
        create::create_run(self, run, parameters, Some(first_step)).await
    }

    async fn save_progress(&self, progress: RunProgress) -> Result<i64, StoreError> {
        progress::save_progress(self, progress).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        read::run_where(self.db().reader(), read::RunKey::Id(run_id)).await
    }

    async fn run_by_number(
        &self,
        pipeline_id: &str,
        run_number: i64,
    ) -> Result<Option<RunRecord>, StoreError> {
        read::run_where(
            self.db().reader(),
            read::RunKey::Number(pipeline_id, run_number),
        )
        .await
    }

    async fn latest_run(&self, pipeline_id: &str) -> Result<Option<RunRecord>, StoreError> {
        read::run_where(self.db().reader(), read::RunKey::Latest(pipeline_id)).await
    }

    async fn run_detail(&self, run_id: &str) -> Result<Option<RunDetail>, StoreError> {
        read::run_detail(self.db().reader(), run_id).await
    }

    async fn list_runs(
        &self,
        pipeline_id: &str,
        query: &RunQuery,
    ) -> Result<Page<RunSummary>, StoreError> {
        read::list_runs(self.db().reader(), self.backend(), pipeline_id, query).await
    }

    async fn active_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        read::active_runs(self.db().reader()).await
    }

    async fn queue_position(&self, run_id: &str) -> Result<Option<i64>, StoreError> {
        read::queue_position(self.db().reader(), run_id).await
    }

    async fn runs_ahead_in_queue(&self, run_id: &str) -> Result<Option<i64>, StoreError> {
        read::runs_ahead_in_queue(self.db().reader(), run_id).await
    }

    async fn count_runs(
        &self,
        pipeline_id: &str,
        statuses: &[RunStatus],
    ) -> Result<i64, StoreError> {
        if statuses == [RunStatus::Queued]
            && self.backend() == crate::Backend::Sqlite
            && !MAY_HAVE_QUEUED_RUNS.load(Ordering::SeqCst)
        {
            return Ok(0);
        }
        read::count_runs(self.db().reader(), pipeline_id, statuses).await
    }

    async fn run_parameters(&self, run_id: &str) -> Result<Vec<RunParameter>, StoreError> {
        read::run_parameters(self, run_id).await
    }

    async fn step_outputs(
        &self,
        run_id: &str,
        step_run_ids: Option<&[String]>,
    ) -> Result<Vec<StepOutputRecord>, StoreError> {
        read::step_outputs(self.db().reader(), run_id, step_run_ids).await
    }

    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRecord>, StoreError> {
        read::artifacts(self.db().reader(), run_id).await
    }

    async fn run_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query("SELECT run_id FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(&key.scope)
            .bind(&key.key)
            .fetch_optional(self.db().reader())
            .await?;
        match row {
            Some(row) => self.run(&crate::sql::text(&row, "run_id")?).await,
            None => Ok(None),
        }
    }

    async fn prune_idempotency_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = before.as_millis();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                        .bind(before)
                        .execute(&mut *conn)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }
}

#[cfg(test)]
mod queued_flag_tests {
    use std::str::FromStr as _;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Connection as _, SqliteConnection};

    use super::*;
    use crate::{SecretKey, StoreConfig};

    /// nextest runs each test in a process of its own: the flag starts as a new server's.
    #[tokio::test]
    async fn queued_runs_already_in_the_database_are_counted_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("runnel.db");
        let open = || Store::open(StoreConfig::sqlite(&path, SecretKey::generate()));
        drop(open().await.expect("store"));
        assert!(
            !MAY_HAVE_QUEUED_RUNS.load(Ordering::SeqCst),
            "nothing queued yet"
        );
        // A queued run left by an earlier server: only its counter matters here (written
        // without the store, foreign keys off).
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .expect("url")
            .foreign_keys(false);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("open");
        sqlx::query(
            "INSERT INTO pipeline_run_counts (pipeline_id, status, run_count) VALUES ('p', 'QUEUED', 1)",
        )
        .execute(&mut conn)
        .await
        .expect("insert");
        conn.close().await.expect("close");

        let store = open().await.expect("store");
        assert_eq!(
            store
                .count_runs("p", &[RunStatus::Queued])
                .await
                .expect("count"),
            1
        );
    }
}
