//! Run reads: one run, the detail tree, the filtered and sorted list, counts, parameters, outputs, artifacts.

use super::{
    ArtifactRecord, JobRunRecord, RunDetail, RunParameter, RunQuery, RunRecord, RunSortKey,
    RunSummary, StageRunRecord, StageStatusItem, StepOutputRecord, StepPlacement, StepRunRecord,
};
use crate::Store;
use crate::config::Backend;
use crate::error::StoreError;
use crate::sql::{self, Arg, Page, SortDir, SqlBuilder};
use runnel_domain::status::RunStatus;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Connection};
use std::collections::HashMap;

macro_rules! run_columns {
    () => {
        "id, pipeline_id, pipeline_version, run_number, status, trigger_type, executor_id, executor_name, \
         description, build_params, sources, selection, start_time, end_time, pause_time, paused_since, \
         is_cancel_requested, state_version, created_at, updated_at"
    };
}

/// The most runs one list page returns.
const MAX_PAGE: i64 = 100;

pub(super) enum RunKey<'a> {
    Id(&'a str),
    Number(&'a str, i64),
    Latest(&'a str),
}

pub(super) async fn run_where<'e, E>(
    pool: E,
    key: RunKey<'_>,
) -> Result<Option<RunRecord>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = match key {
        RunKey::Id(id) => {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }
        RunKey::Number(pipeline_id, number) => {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE pipeline_id = $1 AND run_number = $2"
            ))
            .bind(pipeline_id)
            .bind(number)
            .fetch_optional(pool)
            .await?
        }
        RunKey::Latest(pipeline_id) => {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE pipeline_id = $1 ORDER BY run_number DESC LIMIT 1"
            ))
            .bind(pipeline_id)
            .fetch_optional(pool)
            .await?
        }
    };
    row.map(|row| run_record(&row)).transpose()
}

pub(super) fn run_record(row: &AnyRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: sql::text(row, "id")?,
        pipeline_id: sql::text(row, "pipeline_id")?,
        pipeline_version: sql::int(row, "pipeline_version")?,
        run_number: sql::int(row, "run_number")?,
        status: sql::status(row, "status")?,
        trigger_type: sql::text(row, "trigger_type")?,
        executor_id: sql::text(row, "executor_id")?,
        executor_name: sql::text(row, "executor_name")?,
        description: sql::text(row, "description")?,
        build_params: sql::json(row, "build_params")?,
        sources: sql::json(row, "sources")?,
        selection: sql::json(row, "selection")?,
        start_time: sql::ts(row, "start_time")?,
        end_time: sql::opt_ts(row, "end_time")?,
        pause_time: sql::int(row, "pause_time")?,
        paused_since: sql::opt_ts(row, "paused_since")?,
        is_cancel_requested: sql::flag(row, "is_cancel_requested")?,
        state_version: sql::int(row, "state_version")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}

/// The step lists of every job in `stage_jobs`.
fn job_steps_of(
    stage_jobs: &mut HashMap<String, Vec<JobRunRecord>>,
) -> impl Iterator<Item = &mut Vec<StepRunRecord>> {
    stage_jobs
        .values_mut()
        .flat_map(|jobs| jobs.iter_mut().map(|job| &mut job.steps))
}

pub(super) async fn run_detail(
    pool: &AnyPool,
    run_id: &str,
) -> Result<Option<RunDetail>, StoreError> {
    // One connection for the four reads: each pool acquire and release costs task wake-ups.
    let mut conn = pool.acquire().await?;
    run_detail_on(&mut conn, run_id).await
}

/// [`run_detail`] on `conn` (inside its transaction, if it has one).
pub(crate) async fn run_detail_on(
    conn: &mut AnyConnection,
    run_id: &str,
) -> Result<Option<RunDetail>, StoreError> {
    let Some(run) = run_where(&mut *conn, RunKey::Id(run_id)).await? else {
        return Ok(None);
    };
    let stage_rows = sqlx::query(
        "SELECT id, sequence, identifier, name, category, run_always, parallel, is_select, depends_on, condition, \
         status, message, is_admitted, start_time, end_time, pause_time FROM stage_runs \
         WHERE run_id = $1 ORDER BY sequence",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let job_rows = sqlx::query(
        "SELECT id, stage_run_id, job_index, sequence, identifier, name, category, is_async, depends_on, condition, \
         resource, timeout, is_select, status, message, attempt, last_dispatch_id, exec_id, start_time, end_time \
         FROM job_runs WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let step_rows = sqlx::query(
        "SELECT id, stage_run_id, job_run_id, placement, sequence, identifier, name, task, business_type, \
         official_task_version, inputs, multi_step_editable, endpoint_ids, status, message, exit_code, \
         last_dispatch_id, start_time, end_time, daily_build_number FROM step_runs \
         WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut job_steps: HashMap<String, Vec<StepRunRecord>> = HashMap::new();
    let mut gates: HashMap<String, (Vec<StepRunRecord>, Vec<StepRunRecord>)> = HashMap::new();
    for row in &step_rows {
        let step = step_record(row)?;
        match (&step.job_run_id, step.placement) {
            (Some(job_run_id), _) => job_steps.entry(job_run_id.clone()).or_default().push(step),
            (None, StepPlacement::Post) => gates
                .entry(step.stage_run_id.clone())
                .or_default()
                .1
                .push(step),
            (None, _) => gates
                .entry(step.stage_run_id.clone())
                .or_default()
                .0
                .push(step),
        }
    }
    let mut stage_jobs: HashMap<String, Vec<JobRunRecord>> = HashMap::new();
    for row in &job_rows {
        let id = sql::text(row, "id")?;
        let stage_run_id = sql::text(row, "stage_run_id")?;
        let job = JobRunRecord {
            steps: job_steps.remove(&id).unwrap_or_default(),
            id,
            stage_run_id: stage_run_id.clone(),
            job_index: sql::int(row, "job_index")?,
            sequence: sql::int(row, "sequence")?,
            identifier: sql::text(row, "identifier")?,
            name: sql::text(row, "name")?,
            category: sql::opt_text(row, "category")?,
            is_async: sql::flag(row, "is_async")?,
            depends_on: sql::string_list(row, "depends_on")?,
            condition: sql::opt_text(row, "condition")?,
            resource: sql::opt_text(row, "resource")?,
            timeout: sql::opt_text(row, "timeout")?,
            is_select: sql::flag(row, "is_select")?,
            status: sql::status(row, "status")?,
            message: sql::opt_text(row, "message")?,
            attempt: sql::int(row, "attempt")?,
            last_dispatch_id: sql::opt_text(row, "last_dispatch_id")?,
            exec_id: sql::opt_text(row, "exec_id")?,
            start_time: sql::opt_ts(row, "start_time")?,
            end_time: sql::opt_ts(row, "end_time")?,
        };
        stage_jobs.entry(stage_run_id).or_default().push(job);
    }
    // Jobs and steps are put in order here rather than by an ORDER BY: no index gives a run's
    // jobs or steps in that order, so SQLite opened a sorter (with buffers of its own) on
    // every read of a run, for a handful of rows.
    for jobs in stage_jobs.values_mut() {
        jobs.sort_unstable_by_key(|job| (job.sequence, job.job_index));
    }
    for steps in
        job_steps_of(&mut stage_jobs).chain(gates.values_mut().flat_map(|(pre, post)| [pre, post]))
    {
        steps.sort_by(|left, right| (left.sequence, &left.id).cmp(&(right.sequence, &right.id)));
    }
    let mut stages = Vec::with_capacity(stage_rows.len());
    for row in &stage_rows {
        let id = sql::text(row, "id")?;
        let (pre, post) = gates.remove(&id).unwrap_or_default();
        stages.push(StageRunRecord {
            jobs: stage_jobs.remove(&id).unwrap_or_default(),
            pre,
            post,
            id,
            sequence: sql::int(row, "sequence")?,
            identifier: sql::text(row, "identifier")?,
            name: sql::text(row, "name")?,
            category: sql::opt_text(row, "category")?,
            run_always: sql::flag(row, "run_always")?,
            parallel: sql::opt_text(row, "parallel")?,
            is_select: sql::flag(row, "is_select")?,
            depends_on: sql::string_list(row, "depends_on")?,
            condition: sql::opt_text(row, "condition")?,
            status: sql::status(row, "status")?,
            message: sql::opt_text(row, "message")?,
            is_admitted: sql::flag(row, "is_admitted")?,
            start_time: sql::opt_ts(row, "start_time")?,
            end_time: sql::opt_ts(row, "end_time")?,
            pause_time: sql::int(row, "pause_time")?,
        });
    }
    Ok(Some(RunDetail { run, stages }))
}

fn step_record(row: &AnyRow) -> Result<StepRunRecord, StoreError> {
    let placement = match sql::text(row, "placement")?.as_str() {
        "job" => StepPlacement::Job,
        "pre" => StepPlacement::Pre,
        "post" => StepPlacement::Post,
        other => {
            return Err(StoreError::corrupt(format!(
                "unknown step placement `{other}`"
            )));
        }
    };
    Ok(StepRunRecord {
        id: sql::text(row, "id")?,
        stage_run_id: sql::text(row, "stage_run_id")?,
        job_run_id: sql::opt_text(row, "job_run_id")?,
        placement,
        sequence: sql::int(row, "sequence")?,
        identifier: sql::text(row, "identifier")?,
        name: sql::text(row, "name")?,
        task: sql::text(row, "task")?,
        business_type: sql::opt_text(row, "business_type")?,
        official_task_version: sql::opt_text(row, "official_task_version")?,
        inputs: sql::json(row, "inputs")?,
        multi_step_editable: sql::int(row, "multi_step_editable")?,
        endpoint_ids: sql::string_list(row, "endpoint_ids")?,
        status: sql::status(row, "status")?,
        message: sql::opt_text(row, "message")?,
        exit_code: sql::opt_int(row, "exit_code")?,
        last_dispatch_id: sql::opt_text(row, "last_dispatch_id")?,
        start_time: sql::opt_ts(row, "start_time")?,
        end_time: sql::opt_ts(row, "end_time")?,
        daily_build_number: sql::opt_text(row, "daily_build_number")?,
    })
}

/// The filtered, sorted page, planned from the maintained per-status counts rather than left to
/// the database's statistics (which a freshly filled table lacks): when the statuses asked for
/// are common, the runs are read in sort order through `(pipeline_id, start_time, run_number)`
/// and filtered, visiting about `(offset + limit) × runs / matching` rows; when they are rare,
/// the matching runs are read through `(pipeline_id, status, …)` and sorted. The other index is
/// kept out of the plan by writing its column as an expression (`status || ''`,
/// `start_time + 0`). `total` comes from the counters when only statuses are filtered. The
/// page's stages come in one more query.
pub(super) async fn list_runs(
    pool: &AnyPool,
    backend: Backend,
    pipeline_id: &str,
    query: &RunQuery,
) -> Result<Page<RunSummary>, StoreError> {
    let (offset, limit) = sql::window(
        query.offset,
        if query.limit == 0 { 10 } else { query.limit },
        MAX_PAGE,
    );
    let (all_runs, matching) = run_counts(pool, pipeline_id, &query.statuses).await?;
    let ordered_cost = offset.saturating_add(limit).saturating_mul(all_runs) / matching.max(1);
    let plan = if !query.statuses.is_empty() && matching < ordered_cost {
        Plan::ByStatus
    } else {
        Plan::InSortOrder
    };
    // The page and its runs' stages in one statement: the page as a subquery, its stage rows
    // joined and ordered like the page (run by run, each run's stages by sequence).
    let mut select = SqlBuilder::new(concat!(
        "SELECT page.*, s.id AS stage_id, s.name AS stage_name, s.sequence AS stage_sequence, \
         s.status AS stage_status, s.start_time AS stage_start_time, s.end_time AS stage_end_time \
         FROM (SELECT ",
        run_columns!(),
        " FROM runs"
    ));
    push_filters(&mut select, pipeline_id, query, plan);
    select.push(match (plan, query.sort_key, query.sort_dir) {
        (Plan::InSortOrder, RunSortKey::StartTime, SortDir::Desc) => {
            " ORDER BY start_time DESC, run_number DESC"
        }
        (Plan::InSortOrder, RunSortKey::StartTime, SortDir::Asc) => {
            " ORDER BY start_time, run_number"
        }
        (Plan::InSortOrder, RunSortKey::UpdateTime, SortDir::Desc) => {
            " ORDER BY updated_at DESC, run_number DESC"
        }
        (Plan::InSortOrder, RunSortKey::UpdateTime, SortDir::Asc) => {
            " ORDER BY updated_at, run_number"
        }
        (Plan::ByStatus, RunSortKey::StartTime, SortDir::Desc) => {
            " ORDER BY start_time + 0 DESC, run_number DESC"
        }
        (Plan::ByStatus, RunSortKey::StartTime, SortDir::Asc) => {
            " ORDER BY start_time + 0, run_number"
        }
        (Plan::ByStatus, RunSortKey::UpdateTime, SortDir::Desc) => {
            " ORDER BY updated_at + 0 DESC, run_number DESC"
        }
        (Plan::ByStatus, RunSortKey::UpdateTime, SortDir::Asc) => {
            " ORDER BY updated_at + 0, run_number"
        }
    });
    select
        .push(" LIMIT ")
        .bind(Arg::Int(limit))
        .push(" OFFSET ")
        .bind(Arg::Int(offset));
    select.push(") page LEFT JOIN stage_runs s ON s.run_id = page.id");
    select.push(match (query.sort_key, query.sort_dir) {
        (RunSortKey::StartTime, SortDir::Desc) => {
            " ORDER BY page.start_time DESC, page.run_number DESC, s.sequence"
        }
        (RunSortKey::StartTime, SortDir::Asc) => {
            " ORDER BY page.start_time, page.run_number, s.sequence"
        }
        (RunSortKey::UpdateTime, SortDir::Desc) => {
            " ORDER BY page.updated_at DESC, page.run_number DESC, s.sequence"
        }
        (RunSortKey::UpdateTime, SortDir::Asc) => {
            " ORDER BY page.updated_at, page.run_number, s.sequence"
        }
    });
    let only_statuses = query.trigger_types.is_empty()
        && query.job_identifier.is_none()
        && query.executor_ids.is_empty()
        && query.started_from.is_none()
        && query.started_to.is_none()
        && query.updated_after.is_none();
    let rows = if backend == Backend::Postgres && plan == Plan::InSortOrder && only_statuses {
        // The counts above already showed that walking the sort index finds the page within
        // `ordered_cost` rows. PostgreSQL's planner may not know it: without statistics (a
        // table filled since the last ANALYZE, autovacuum off) it estimates a handful of rows
        // for the pipeline and, knowing the LIMIT, prefers sorting every matching run (~40 ms
        // at 100 000 runs). Ruling out the sort for this one statement keeps the plan
        // independent of statistics (the page's own few rows are still sorted: nothing else
        // can order them).
        let mut conn = pool.acquire().await?;
        let mut txn = conn.begin().await?;
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *txn)
            .await?;
        let rows = select.query().fetch_all(&mut *txn).await?;
        txn.commit().await?;
        rows
    } else {
        select.query().fetch_all(pool).await?
    };
    let mut items: Vec<RunSummary> = Vec::new();
    for row in &rows {
        let run_id = sql::text(row, "id")?;
        if items.last().is_none_or(|last| last.run.id != run_id) {
            items.push(RunSummary {
                run: run_record(row)?,
                stages: Vec::new(),
            });
        }
        if let (Some(id), Some(summary)) = (sql::opt_text(row, "stage_id")?, items.last_mut()) {
            summary.stages.push(StageStatusItem {
                id,
                name: sql::text(row, "stage_name")?,
                sequence: sql::int(row, "stage_sequence")?,
                status: sql::status(row, "stage_status")?,
                start_time: sql::opt_ts(row, "stage_start_time")?,
                end_time: sql::opt_ts(row, "stage_end_time")?,
            });
        }
    }

    let total = if only_statuses {
        matching
    } else {
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS total FROM runs");
        push_filters(&mut count, pipeline_id, query, Plan::ByStatus);
        sql::int(&count.query().fetch_one(pool).await?, "total")?
    };
    Ok(Page { total, items })
}

/// How a run list reads its rows (see `list_runs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    InSortOrder,
    ByStatus,
}

fn push_filters(builder: &mut SqlBuilder, pipeline_id: &str, query: &RunQuery, plan: Plan) {
    builder
        .push(" WHERE pipeline_id = ")
        .bind(Arg::Text(pipeline_id.to_owned()));
    if !query.statuses.is_empty() {
        builder
            .push(match plan {
                Plan::ByStatus => " AND status IN ",
                Plan::InSortOrder => " AND status || '' IN ",
            })
            .bind_list(
                query
                    .statuses
                    .iter()
                    .map(|status| Arg::Text(status.as_str().to_owned())),
            );
    }
    if !query.trigger_types.is_empty() {
        builder.push(" AND trigger_type IN ").bind_list(
            query
                .trigger_types
                .iter()
                .map(|value| Arg::Text(value.clone())),
        );
    }
    if !query.executor_ids.is_empty() {
        builder.push(" AND executor_id IN ").bind_list(
            query
                .executor_ids
                .iter()
                .map(|value| Arg::Text(value.clone())),
        );
    }
    if let Some(from) = query.started_from {
        builder
            .push(" AND start_time >= ")
            .bind(Arg::Int(from.as_millis()));
    }
    if let Some(to) = query.started_to {
        builder
            .push(" AND start_time <= ")
            .bind(Arg::Int(to.as_millis()));
    }
    if let Some(after) = query.updated_after {
        builder
            .push(" AND updated_at > ")
            .bind(Arg::Int(after.as_millis()));
    }
    if let Some(identifier) = &query.job_identifier {
        builder
            .push(" AND EXISTS (SELECT 1 FROM job_runs j WHERE j.run_id = runs.id AND j.identifier = ")
            .bind(Arg::Text(identifier.clone()))
            .push(")");
    }
}

/// All runs of the pipeline and those with one of `statuses` (all when empty), in one read of
/// the maintained counters.
async fn run_counts(
    pool: &AnyPool,
    pipeline_id: &str,
    statuses: &[RunStatus],
) -> Result<(i64, i64), StoreError> {
    if statuses.is_empty() {
        let all = count_runs(pool, pipeline_id, &[]).await?;
        return Ok((all, all));
    }
    let mut count = SqlBuilder::new(
        "SELECT CAST(COALESCE(SUM(run_count), 0) AS BIGINT) AS total, \
         CAST(COALESCE(SUM(CASE WHEN status IN ",
    );
    count.bind_list(
        statuses
            .iter()
            .map(|status| Arg::Text(status.as_str().to_owned())),
    );
    count
        .push(" THEN run_count ELSE 0 END), 0) AS BIGINT) AS matching FROM pipeline_run_counts WHERE pipeline_id = ")
        .bind(Arg::Text(pipeline_id.to_owned()));
    let row = count.query().fetch_one(pool).await?;
    Ok((sql::int(&row, "total")?, sql::int(&row, "matching")?))
}

pub(super) async fn count_runs(
    pool: &AnyPool,
    pipeline_id: &str,
    statuses: &[RunStatus],
) -> Result<i64, StoreError> {
    // A pipeline has one counter per status it ever had, a handful of rows: they are summed
    // here rather than by `status IN (…)`, for which SQLite builds a temporary index of the
    // list (a B-tree with a page cache of its own) on every call, twice per run.
    let rows =
        sqlx::query("SELECT status, run_count FROM pipeline_run_counts WHERE pipeline_id = $1")
            .bind(pipeline_id)
            .fetch_all(pool)
            .await?;
    let mut total = 0;
    for row in &rows {
        let status = sql::text(row, "status")?;
        if statuses.is_empty() || statuses.iter().any(|wanted| wanted.as_str() == status) {
            total += sql::int(row, "run_count")?;
        }
    }
    Ok(total)
}

pub(super) async fn active_runs(pool: &AnyPool) -> Result<Vec<RunRecord>, StoreError> {
    // The condition of the partial index `runs_active`, term by term: SQLite uses a partial
    // index only for a WHERE that repeats its terms (PostgreSQL proves its `NOT IN` form).
    let rows = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE status <> 'COMPLETED' AND status <> 'FAILED' AND status <> 'CANCELED' \
         AND status <> 'IGNORED' ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(run_record).collect()
}

pub(super) async fn queue_position(
    pool: &AnyPool,
    run_id: &str,
) -> Result<Option<i64>, StoreError> {
    queued_run_count(
        pool,
        run_id,
        "SELECT r.status AS status, (SELECT COUNT(*) FROM runs q WHERE q.pipeline_id = r.pipeline_id \
           AND q.status = 'QUEUED' AND q.run_number <= r.run_number) AS count \
         FROM runs r WHERE r.id = $1",
    )
    .await?
    .ok_or(StoreError::NotFound)
}

pub(super) async fn runs_ahead_in_queue(
    pool: &AnyPool,
    run_id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(queued_run_count(
        pool,
        run_id,
        "SELECT r.status AS status, (SELECT COUNT(*) FROM runs q WHERE q.pipeline_id = r.pipeline_id \
           AND (q.status = 'INIT' OR q.status = 'RUNNING' OR q.status = 'PAUSED' OR q.status = 'SUSPEND' \
             OR (q.status = 'QUEUED' AND (q.start_time < r.start_time \
               OR (q.start_time = r.start_time AND q.run_number < r.run_number))))) AS count \
         FROM runs r WHERE r.id = $1",
    )
    .await?
    .flatten())
}

/// Runs `select` (the run's `status` and a `count` about it, for run `$1`): `None` for an
/// unknown run, `Some(None)` for a run that is not QUEUED, else the count.
async fn queued_run_count(
    pool: &AnyPool,
    run_id: &str,
    select: &'static str,
) -> Result<Option<Option<i64>>, StoreError> {
    let Some(row) = sqlx::query(select)
        .bind(run_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    if sql::text(&row, "status")? != RunStatus::Queued.as_str() {
        return Ok(Some(None));
    }
    Ok(Some(Some(sql::int(&row, "count")?)))
}

pub(super) async fn run_parameters(
    store: &Store,
    run_id: &str,
) -> Result<Vec<RunParameter>, StoreError> {
    let row = sqlx::query("SELECT parameters FROM run_parameter_sets WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(store.db().reader())
        .await?;
    match row {
        Some(row) => {
            super::parameters::decode(store.secrets(), run_id, &sql::text(&row, "parameters")?)
        }
        // An unknown run, or one without parameters migrated from before schema version 10.
        None => Ok(Vec::new()),
    }
}

pub(super) async fn step_outputs<'e, E>(
    pool: E,
    run_id: &str,
    step_run_ids: Option<&[String]>,
) -> Result<Vec<StepOutputRecord>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut select =
        SqlBuilder::new("SELECT step_run_id, key, value FROM step_outputs WHERE run_id = ");
    select.bind(Arg::Text(run_id.to_owned()));
    if let Some(ids) = step_run_ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        select
            .push(" AND step_run_id IN ")
            .bind_list(ids.iter().map(|id| Arg::Text(id.clone())));
    }
    select.push(" ORDER BY step_run_id, key");
    let rows = select.query().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(StepOutputRecord {
                step_run_id: sql::text(row, "step_run_id")?,
                key: sql::text(row, "key")?,
                value: sql::json(row, "value")?,
            })
        })
        .collect()
}

pub(super) async fn artifacts(
    pool: &AnyPool,
    run_id: &str,
) -> Result<Vec<ArtifactRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, run_id, job_run_id, step_run_id, name, version, package_type, artifact_type, upload_target, \
         uri, download_url, sha256, file_size, build_no, daily_build_number, created_at FROM artifacts \
         WHERE run_id = $1 ORDER BY created_at, id",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ArtifactRecord {
                id: sql::text(row, "id")?,
                run_id: sql::text(row, "run_id")?,
                job_run_id: sql::opt_text(row, "job_run_id")?,
                step_run_id: sql::opt_text(row, "step_run_id")?,
                name: sql::text(row, "name")?,
                version: sql::text(row, "version")?,
                package_type: sql::text(row, "package_type")?,
                artifact_type: sql::text(row, "artifact_type")?,
                upload_target: sql::text(row, "upload_target")?,
                uri: sql::text(row, "uri")?,
                download_url: sql::text(row, "download_url")?,
                sha256: sql::opt_text(row, "sha256")?,
                file_size: sql::opt_int(row, "file_size")?,
                build_no: sql::text(row, "build_no")?,
                daily_build_number: sql::text(row, "daily_build_number")?,
                created_at: sql::ts(row, "created_at")?,
            })
        })
        .collect()
}
