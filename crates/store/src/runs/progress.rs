//! `save_progress`: one engine step's run/stage/job/step changes and new queue entries in one transaction.

use super::{NextStep, RunProgress};
use crate::error::StoreError;
use crate::{Store, sql};
use sqlx::AnyConnection;

pub(super) async fn save_progress(store: &Store, progress: RunProgress) -> Result<i64, StoreError> {
    // Repeatable: batched without a savepoint (the engine's hottest write after the queue's).
    store
        .db()
        .write_repeatable(false, progress, move |conn, progress| {
            Box::pin(apply(conn, progress))
        })
        .await
}

/// A run's engine step inside the caller's transaction (see [`super::NextStep`]): reads the run
/// on `conn`, asks `step`, and writes its answer. Returns the run's new `state_version`, or
/// `None` when nothing was written (an unknown run, no answer, or an answer for another run or
/// version).
pub(crate) async fn next_step(
    conn: &mut AnyConnection,
    run_id: &str,
    step: &dyn NextStep,
) -> Result<Option<i64>, StoreError> {
    let Some(detail) = super::read::run_detail_on(conn, run_id).await? else {
        return Ok(None);
    };
    let outputs = if step.needs_outputs(&detail) {
        super::read::step_outputs(&mut *conn, run_id, None).await?
    } else {
        Vec::new()
    };
    let Some(progress) = step.decide(&detail, &outputs) else {
        return Ok(None);
    };
    if progress.run_id != detail.run.id || progress.expected_version != detail.run.state_version {
        return Ok(None);
    }
    apply(conn, &progress).await.map(Some)
}

async fn apply(conn: &mut AnyConnection, progress: &RunProgress) -> Result<i64, StoreError> {
    let now = sql::millis(progress.now);
    let new_version = progress.expected_version + 1;
    // The version check rides on the run's own update (no read first); the run counters move
    // before it, reading the status they move from in the same statement, and only for the
    // version the engine read — a lost race rolls both back.
    let updated = match &progress.run {
        Some(update) => {
            move_count_from_stored(conn, &progress.run_id, progress.expected_version, update.status.as_str()).await?;
            sqlx::query(
                "UPDATE runs SET status = $2, start_time = COALESCE($3, start_time), end_time = $4, \
                 pause_time = $5, paused_since = $6, is_cancel_requested = $7, updated_at = $8, \
                 state_version = $9 WHERE id = $1 AND state_version = $10",
            )
            .bind(&progress.run_id)
            .bind(update.status.as_str())
            .bind(sql::opt_millis(update.start_time))
            .bind(sql::opt_millis(update.end_time))
            .bind(update.pause_time)
            .bind(sql::opt_millis(update.paused_since))
            .bind(sql::flag_value(update.is_cancel_requested))
            .bind(now)
            .bind(new_version)
            .bind(progress.expected_version)
            .execute(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE runs SET updated_at = $2, state_version = $3 WHERE id = $1 AND state_version = $4",
            )
            .bind(&progress.run_id)
            .bind(now)
            .bind(new_version)
            .bind(progress.expected_version)
            .execute(&mut *conn)
            .await?
        }
    };
    if updated.rows_affected() == 0 {
        return Err(lost_race(conn, progress).await);
    }
    for stage in &progress.stages {
        let done = sqlx::query(
            "UPDATE stage_runs SET status = $3, message = $4, is_admitted = $5, start_time = $6, end_time = $7, \
             pause_time = $8 WHERE id = $1 AND run_id = $2",
        )
        .bind(&stage.id)
        .bind(&progress.run_id)
        .bind(stage.status.as_str())
        .bind(stage.message.as_deref())
        .bind(sql::flag_value(stage.is_admitted))
        .bind(sql::opt_millis(stage.start_time))
        .bind(sql::opt_millis(stage.end_time))
        .bind(stage.pause_time)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
    }
    for job in &progress.jobs {
        let done = sqlx::query(
            "UPDATE job_runs SET status = $3, message = $4, start_time = $5, end_time = $6 \
             WHERE id = $1 AND run_id = $2",
        )
        .bind(&job.id)
        .bind(&progress.run_id)
        .bind(job.status.as_str())
        .bind(job.message.as_deref())
        .bind(sql::opt_millis(job.start_time))
        .bind(sql::opt_millis(job.end_time))
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
    }
    for step in &progress.steps {
        let done = sqlx::query(
            "UPDATE step_runs SET status = $3, message = $4, exit_code = $5, start_time = $6, end_time = $7 \
             WHERE id = $1 AND run_id = $2",
        )
        .bind(&step.id)
        .bind(&progress.run_id)
        .bind(step.status.as_str())
        .bind(step.message.as_deref())
        .bind(step.exit_code)
        .bind(sql::opt_millis(step.start_time))
        .bind(sql::opt_millis(step.end_time))
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
    }
    for job in &progress.enqueue {
        // A job of another run is refused there (NotFound), and this transaction rolls back;
        // so is a `max_tries` of 0 (Invalid).
        crate::queue::enqueue_in_run(conn, job, progress.now, Some(&progress.run_id)).await?;
    }
    Ok(new_version)
}

/// Moves the run from the counter of its stored status to that of `to`, if the run is still at
/// `version` and its status differs; one statement that changes nothing otherwise.
async fn move_count_from_stored(
    conn: &mut AnyConnection,
    run_id: &str,
    version: i64,
    to: &str,
) -> Result<(), StoreError> {
    super::note_counted_status(to);
    sqlx::query(
        "INSERT INTO pipeline_run_counts (pipeline_id, status, run_count) \
         SELECT pipeline_id, status, -1 FROM runs WHERE id = $1 AND state_version = $2 AND status <> $3 \
         UNION ALL \
         SELECT pipeline_id, $3, 1 FROM runs WHERE id = $1 AND state_version = $2 AND status <> $3 \
         ON CONFLICT (pipeline_id, status) DO UPDATE SET run_count = pipeline_run_counts.run_count + excluded.run_count",
    )
    .bind(run_id)
    .bind(version)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Why the version-checked update of the run changed nothing: no such run, or another writer
/// advanced it since the engine read it.
async fn lost_race(conn: &mut AnyConnection, progress: &RunProgress) -> StoreError {
    match sqlx::query("SELECT state_version FROM runs WHERE id = $1")
        .bind(&progress.run_id)
        .fetch_optional(&mut *conn)
        .await
    {
        Ok(None) => StoreError::NotFound,
        Ok(Some(row)) => match sql::int(&row, "state_version") {
            Ok(stored) => StoreError::Conflict(format!(
                "the run changed meanwhile (version {stored}, expected {})",
                progress.expected_version
            )),
            Err(err) => err,
        },
        Err(err) => err.into(),
    }
}
