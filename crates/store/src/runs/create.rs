//! `create_run`: the run, its number, auto-increment values, parameters, tree and idempotency key in one transaction.

use super::{
    CreatedRun, EnqueueJob, FirstStep, JobUpdate, NewRun, NewStepRun, ParameterBuilder,
    RunAllocation, RunDetail, RunProgress, RunRecord, StageUpdate, StepPlacement, StepUpdateRow,
};
use crate::crypto::SecretBox;
use crate::error::StoreError;
use crate::{RunStore, Store, sql};
use runnel_domain::params::{VariableSpec, VariableType, auto_increment_for_run};
use runnel_domain::status::{JobStatus, StepStatus};
use sqlx::AnyConnection;

/// Returned (as a `Conflict`) when a concurrent creation committed the same idempotency key
/// first; the caller then answers with that run.
const KEY_TAKEN: &str = "idempotency key already used";

/// Everything one creation writes, kept whole so its transaction can run again.
struct Creation {
    secrets: SecretBox,
    run: NewRun,
    parameters: ParameterBuilder,
    first_step: Option<FirstStep>,
}

enum Outcome {
    Created(Box<RunRecord>, bool),
    Replay(String),
}

pub(super) async fn create_run(
    store: &Store,
    run: NewRun,
    parameters: ParameterBuilder,
    first_step: Option<FirstStep>,
) -> Result<CreatedRun, StoreError> {
    let key = run.idempotency.clone();
    let creation = Creation {
        secrets: store.secrets().clone(),
        run,
        parameters,
        first_step,
    };
    // Repeatable: batched without a savepoint; run again from the start when a write batched
    // before it fails (the run number it takes is then taken again, in the new transaction).
    let result = store
        .db()
        .write_repeatable(false, creation, |conn, creation| {
            Box::pin(insert_run(
                conn,
                &creation.secrets,
                &creation.run,
                &creation.parameters,
                creation.first_step.as_ref(),
            ))
        })
        .await;
    let replay_of = match result {
        Ok(Outcome::Created(record, is_started)) => {
            return Ok(CreatedRun {
                run: *record,
                is_replay: false,
                is_started,
            });
        }
        Ok(Outcome::Replay(run_id)) => run_id,
        Err(StoreError::Conflict(message)) if message == KEY_TAKEN => {
            let key = key.ok_or_else(|| StoreError::Conflict(message.clone()))?;
            let row =
                sqlx::query("SELECT run_id FROM idempotency_keys WHERE scope = $1 AND key = $2")
                    .bind(&key.scope)
                    .bind(&key.key)
                    .fetch_one(store.db().reader())
                    .await?;
            sql::text(&row, "run_id")?
        }
        Err(err) => return Err(err),
    };
    let run = store.run(&replay_of).await?.ok_or(StoreError::NotFound)?;
    Ok(CreatedRun {
        run,
        is_replay: true,
        is_started: false,
    })
}

async fn insert_run(
    conn: &mut AnyConnection,
    secrets: &SecretBox,
    run: &NewRun,
    parameters: &ParameterBuilder,
    first_step: Option<&FirstStep>,
) -> Result<Outcome, StoreError> {
    if let Some(key) = &run.idempotency {
        let existing =
            sqlx::query("SELECT run_id FROM idempotency_keys WHERE scope = $1 AND key = $2")
                .bind(&key.scope)
                .bind(&key.key)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(row) = existing {
            return Ok(Outcome::Replay(sql::text(&row, "run_id")?));
        }
    }
    // The counter update takes the pipeline row's lock: concurrent creations for one pipeline
    // queue here, so numbers and auto-increment values are allocated one run at a time.
    let counter = sqlx::query(
        "UPDATE pipelines SET last_run_number = last_run_number + 1 \
         WHERE id = $1 AND deleted_at IS NULL RETURNING last_run_number, current_version, is_banned",
    )
    .bind(&run.pipeline_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    if sql::flag(&counter, "is_banned")? {
        return Err(StoreError::Invalid("the pipeline is banned".to_owned()));
    }
    let run_number = sql::int(&counter, "last_run_number")?;
    let pipeline_version = match run.pipeline_version {
        Some(version) => version,
        None => sql::int(&counter, "current_version")?,
    };
    let auto_increment_values = advance_auto_increments(conn, secrets, &run.pipeline_id).await?;
    let allocation = RunAllocation {
        run_number,
        auto_increment_values,
    };
    let parameter_rows = parameters(&allocation).map_err(StoreError::Invalid)?;
    let mut record = RunRecord {
        id: run.id.clone(),
        pipeline_id: run.pipeline_id.clone(),
        pipeline_version,
        run_number,
        status: run.status,
        trigger_type: run.trigger_type.clone(),
        executor_id: run.executor_id.clone(),
        executor_name: run.executor_name.clone(),
        description: run.description.clone(),
        build_params: run.build_params.clone(),
        sources: run.sources.clone(),
        selection: run.selection.clone(),
        start_time: run.now,
        end_time: None,
        pause_time: 0,
        paused_since: None,
        is_cancel_requested: false,
        state_version: 0,
        created_at: run.now,
        updated_at: run.now,
    };
    let first = first_step
        .and_then(|step| {
            step(
                &RunDetail::created(record.clone(), &run.stages),
                &parameter_rows,
            )
        })
        .filter(|progress| progress.run_id == run.id && progress.expected_version == 0);
    let overlay = Overlay::new(first.as_ref());
    if let Some(progress) = &first {
        if let Some(update) = &progress.run {
            record.status = update.status;
            record.start_time = update.start_time.unwrap_or(record.start_time);
            record.end_time = update.end_time;
            record.pause_time = update.pause_time;
            record.paused_since = update.paused_since;
            record.is_cancel_requested = update.is_cancel_requested;
        }
        record.state_version = 1;
        record.updated_at = progress.now;
    }
    sqlx::query(
        "INSERT INTO runs (id, pipeline_id, pipeline_version, run_number, status, trigger_type, executor_id, \
         executor_name, description, build_params, sources, selection, start_time, end_time, pause_time, \
         paused_since, is_cancel_requested, state_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&run.id)
    .bind(&run.pipeline_id)
    .bind(pipeline_version)
    .bind(run_number)
    .bind(record.status.as_str())
    .bind(&run.trigger_type)
    .bind(&run.executor_id)
    .bind(&run.executor_name)
    .bind(&run.description)
    .bind(sql::to_json(&run.build_params)?)
    .bind(sql::to_json(&run.sources)?)
    .bind(sql::to_json(&run.selection)?)
    .bind(sql::millis(record.start_time))
    .bind(sql::opt_millis(record.end_time))
    .bind(record.pause_time)
    .bind(sql::opt_millis(record.paused_since))
    .bind(sql::flag_value(record.is_cancel_requested))
    .bind(record.state_version)
    .bind(sql::millis(record.created_at))
    .bind(sql::millis(record.updated_at))
    .execute(&mut *conn)
    .await?;
    let now = sql::millis(run.now);
    if let Some(key) = &run.idempotency {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, run_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(&key.scope)
        .bind(&key.key)
        .bind(&run.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(KEY_TAKEN.to_owned()));
        }
    }
    bump_count(conn, &run.pipeline_id, record.status.as_str(), 1).await?;
    sqlx::query("INSERT INTO run_parameter_sets (run_id, parameters) VALUES ($1, $2)")
        .bind(&run.id)
        .bind(super::parameters::encode(
            secrets,
            &run.id,
            &parameter_rows,
        )?)
        .execute(&mut *conn)
        .await?;
    for stage in &run.stages {
        let update = overlay.stage(&stage.id);
        sqlx::query(
            "INSERT INTO stage_runs (id, run_id, sequence, identifier, name, category, run_always, parallel, \
             is_select, depends_on, condition, status, message, is_admitted, start_time, end_time, pause_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&stage.id)
        .bind(&run.id)
        .bind(stage.sequence)
        .bind(&stage.identifier)
        .bind(&stage.name)
        .bind(stage.category.as_deref())
        .bind(sql::flag_value(stage.run_always))
        .bind(stage.parallel.as_deref())
        .bind(sql::flag_value(stage.is_select))
        .bind(sql::to_json(&stage.depends_on)?)
        .bind(stage.condition.as_deref())
        .bind(update.map_or(stage.status, |update| update.status).as_str())
        .bind(update.and_then(|update| update.message.as_deref()))
        .bind(sql::flag_value(update.is_some_and(|update| update.is_admitted)))
        .bind(sql::opt_millis(update.and_then(|update| update.start_time)))
        .bind(sql::opt_millis(update.and_then(|update| update.end_time)))
        .bind(update.map_or(0, |update| update.pause_time))
        .execute(&mut *conn)
        .await?;
        for step in &stage.pre {
            let placement = StepPlacement::Pre;
            insert_step(conn, &run.id, &stage.id, None, placement, step, &overlay).await?;
        }
        for step in &stage.post {
            let placement = StepPlacement::Post;
            insert_step(conn, &run.id, &stage.id, None, placement, step, &overlay).await?;
        }
        for job in &stage.jobs {
            // A job the first step queues is stored as `enqueue_in_run` leaves it: QUEUED,
            // attempt 1 under a fresh dispatch id, its queue entry inserted below.
            let queued = overlay.queued(&job.id);
            let update = overlay.job(&job.id);
            let status = match (queued, update) {
                (Some(_), _) => JobStatus::Queued,
                (None, Some(update)) => update.status,
                (None, None) => job.status,
            };
            let update = update.filter(|_| queued.is_none());
            sqlx::query(
                "INSERT INTO job_runs (id, run_id, stage_run_id, job_index, sequence, identifier, name, category, \
                 is_async, depends_on, condition, resource, timeout, is_select, status, message, attempt, \
                 last_dispatch_id, start_time, end_time) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
            )
            .bind(&job.id)
            .bind(&run.id)
            .bind(&stage.id)
            .bind(job.job_index)
            .bind(job.sequence)
            .bind(&job.identifier)
            .bind(&job.name)
            .bind(job.category.as_deref())
            .bind(sql::flag_value(job.is_async))
            .bind(sql::to_json(&job.depends_on)?)
            .bind(job.condition.as_deref())
            .bind(job.resource.as_deref())
            .bind(job.timeout.as_deref())
            .bind(sql::flag_value(job.is_select))
            .bind(status.as_str())
            .bind(update.and_then(|update| update.message.as_deref()))
            .bind(i64::from(queued.is_some()))
            .bind(queued.map(String::as_str))
            .bind(sql::opt_millis(update.and_then(|update| update.start_time)))
            .bind(sql::opt_millis(update.and_then(|update| update.end_time)))
            .execute(&mut *conn)
            .await?;
            for step in &job.steps {
                let placement = StepPlacement::Job;
                // A queued job's steps start fresh, whatever the step said of them.
                let overlay = if queued.is_some() {
                    &Overlay::NONE
                } else {
                    &overlay
                };
                insert_step(
                    conn,
                    &run.id,
                    &stage.id,
                    Some(&job.id),
                    placement,
                    step,
                    overlay,
                )
                .await?;
            }
        }
    }
    if let Some(progress) = &first {
        for (job, attempt_id) in &overlay.queued {
            let is_of_this_run = run
                .stages
                .iter()
                .flat_map(|stage| &stage.jobs)
                .any(|own| own.id == job.job_run_id);
            if !is_of_this_run {
                return Err(StoreError::NotFound);
            }
            crate::queue::insert_attempt(conn, attempt_id, job, &run.id, 1, progress.now).await?;
        }
    }
    Ok(Outcome::Created(Box::new(record), first.is_some()))
}

/// A run's first step laid over its new rows, by row id (the last change of a row wins, as
/// in `save_progress`).
struct Overlay<'a> {
    progress: Option<&'a RunProgress>,
    /// The jobs it queues, each with the dispatch id of its attempt 1.
    queued: Vec<(&'a EnqueueJob, String)>,
}

impl<'a> Overlay<'a> {
    const NONE: Overlay<'static> = Overlay {
        progress: None,
        queued: Vec::new(),
    };

    fn new(progress: Option<&'a RunProgress>) -> Overlay<'a> {
        Overlay {
            progress,
            queued: progress
                .into_iter()
                .flat_map(|progress| &progress.enqueue)
                .map(|job| (job, crate::new_id()))
                .collect(),
        }
    }

    fn stage(&self, id: &str) -> Option<&'a StageUpdate> {
        last_change(&self.progress?.stages, id, |update| &update.id)
    }

    fn job(&self, id: &str) -> Option<&'a JobUpdate> {
        last_change(&self.progress?.jobs, id, |update| &update.id)
    }

    fn step(&self, id: &str) -> Option<&'a StepUpdateRow> {
        last_change(&self.progress?.steps, id, |update| &update.id)
    }

    /// The dispatch id of a queued job's attempt 1.
    fn queued(&self, job_run_id: &str) -> Option<&String> {
        self.queued
            .iter()
            .find(|(job, _)| job.job_run_id == job_run_id)
            .map(|(_, attempt_id)| attempt_id)
    }
}

fn last_change<'a, T>(changes: &'a [T], id: &str, id_of: fn(&T) -> &String) -> Option<&'a T> {
    changes.iter().rev().find(|change| id_of(change) == id)
}

async fn insert_step(
    conn: &mut AnyConnection,
    run_id: &str,
    stage_run_id: &str,
    job_run_id: Option<&str>,
    placement: StepPlacement,
    step: &NewStepRun,
    overlay: &Overlay<'_>,
) -> Result<(), StoreError> {
    let update = overlay.step(&step.id);
    sqlx::query(
        "INSERT INTO step_runs (id, run_id, stage_run_id, job_run_id, placement, sequence, identifier, name, task, \
         business_type, official_task_version, inputs, multi_step_editable, endpoint_ids, status, daily_build_number, \
         message, exit_code, start_time, end_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&step.id)
    .bind(run_id)
    .bind(stage_run_id)
    .bind(job_run_id)
    .bind(placement.as_str())
    .bind(step.sequence)
    .bind(&step.identifier)
    .bind(&step.name)
    .bind(&step.task)
    .bind(step.business_type.as_deref())
    .bind(step.official_task_version.as_deref())
    .bind(sql::to_json(&step.inputs)?)
    .bind(step.multi_step_editable)
    .bind(sql::to_json(&step.endpoint_ids)?)
    .bind(update.map_or(StepStatus::Init, |update| update.status).as_str())
    .bind(step.daily_build_number.as_deref())
    .bind(update.and_then(|update| update.message.as_deref()))
    .bind(update.and_then(|update| update.exit_code))
    .bind(sql::opt_millis(update.and_then(|update| update.start_time)))
    .bind(sql::opt_millis(update.and_then(|update| update.end_time)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Computes this run's value of every autoIncrement variable with the domain's rule and
/// stores it as the variable's `latest_value` (clearing `is_reset`), in the run's transaction.
async fn advance_auto_increments(
    conn: &mut AnyConnection,
    secrets: &SecretBox,
    pipeline_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, sequence, value, value_ciphertext, is_reset, latest_value FROM pipeline_variables \
         WHERE pipeline_id = $1 AND type = 'autoIncrement'",
    )
    .bind(pipeline_id)
    .fetch_all(&mut *conn)
    .await?;
    // In order by (sequence, name) here: an ORDER BY made SQLite open a sorter in every run's
    // transaction, most often for no row at all.
    let mut ordered = Vec::with_capacity(rows.len());
    for row in rows {
        ordered.push((sql::int(&row, "sequence")?, sql::text(&row, "name")?, row));
    }
    ordered.sort_unstable_by(|left, right| (left.0, &left.1).cmp(&(right.0, &right.1)));
    let mut values = Vec::with_capacity(ordered.len());
    for (_, name, row) in ordered {
        let value = match sql::opt_bytes(&row, "value_ciphertext")? {
            Some(sealed) => secrets.open_text(
                &crate::pipelines::variable_context(pipeline_id, &name),
                &sealed,
            )?,
            None => sql::opt_text(&row, "value")?.unwrap_or_default(),
        };
        let variable = VariableSpec {
            name: name.clone(),
            var_type: VariableType::AutoIncrement,
            value,
            is_reset: sql::flag(&row, "is_reset")?,
            latest_value: sql::opt_text(&row, "latest_value")?,
            ..VariableSpec::default()
        };
        let step = auto_increment_for_run(&variable)
            .map_err(|err| StoreError::Invalid(format!("variable `{name}` {err}")))?;
        sqlx::query(
            "UPDATE pipeline_variables SET latest_value = $3, is_reset = 0 WHERE pipeline_id = $1 AND name = $2",
        )
        .bind(pipeline_id)
        .bind(&name)
        .bind(&step.new_latest_value)
        .execute(&mut *conn)
        .await?;
        values.push((name, step.value_for_run));
    }
    Ok(values)
}

/// Adds `delta` to the pipeline's run count for `status`.
pub(super) async fn bump_count(
    conn: &mut AnyConnection,
    pipeline_id: &str,
    status: &str,
    delta: i64,
) -> Result<(), StoreError> {
    if delta > 0 {
        super::note_counted_status(status);
    }
    sqlx::query(
        "INSERT INTO pipeline_run_counts (pipeline_id, status, run_count) VALUES ($1, $2, $3) \
         ON CONFLICT (pipeline_id, status) DO UPDATE SET run_count = pipeline_run_counts.run_count + $3",
    )
    .bind(pipeline_id)
    .bind(status)
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
