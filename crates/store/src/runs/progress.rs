//! `save_progress`: one engine step's run/stage/job/step changes and new queue entries in one transaction.

use super::RunProgress;
use super::create::move_count;
use crate::config::Backend;
use crate::error::StoreError;
use crate::{Store, sql};
use sqlx::AnyConnection;

pub(super) async fn save_progress(store: &Store, progress: RunProgress) -> Result<i64, StoreError> {
    let backend = store.backend();
    store
        .db()
        .write(move |conn| Box::pin(async move { apply(conn, backend, &progress).await }))
        .await
}

async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    progress: &RunProgress,
) -> Result<i64, StoreError> {
    let query = match backend {
        Backend::Sqlite => {
            sqlx::query("SELECT pipeline_id, status, state_version FROM runs WHERE id = $1")
        }
        Backend::Postgres => sqlx::query(
            "SELECT pipeline_id, status, state_version FROM runs WHERE id = $1 FOR UPDATE",
        ),
    };
    let row = query
        .bind(&progress.run_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let stored_version = sql::int(&row, "state_version")?;
    if stored_version != progress.expected_version {
        return Err(StoreError::Conflict(format!(
            "the run changed meanwhile (version {stored_version}, expected {})",
            progress.expected_version
        )));
    }
    let pipeline_id = sql::text(&row, "pipeline_id")?;
    let old_status = sql::text(&row, "status")?;
    let now = sql::millis(progress.now);
    let new_version = stored_version + 1;
    match &progress.run {
        Some(update) => {
            sqlx::query(
                "UPDATE runs SET status = $2, start_time = COALESCE($3, start_time), end_time = $4, \
                 pause_time = $5, paused_since = $6, is_cancel_requested = $7, updated_at = $8, \
                 state_version = $9 WHERE id = $1",
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
            .execute(&mut *conn)
            .await?;
            if update.status.as_str() != old_status {
                move_count(conn, &pipeline_id, &old_status, update.status.as_str()).await?;
            }
        }
        None => {
            sqlx::query("UPDATE runs SET updated_at = $2, state_version = $3 WHERE id = $1")
                .bind(&progress.run_id)
                .bind(now)
                .bind(new_version)
                .execute(&mut *conn)
                .await?;
        }
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
        if job.max_tries == 0 {
            return Err(StoreError::Invalid(
                "max_tries must be at least 1".to_owned(),
            ));
        }
        // A job of another run is refused there (NotFound), and this transaction rolls back.
        crate::queue::enqueue_in_run(conn, job, progress.now, Some(&progress.run_id)).await?;
    }
    Ok(new_version)
}
