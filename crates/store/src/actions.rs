//! Step actions: people's decisions on steps the engine runs itself (reviews, delays).

use crate::Store;
use crate::error::StoreError;
use crate::sql;
use runnel_domain::Timestamp;
use std::future::Future;

/// A decision to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStepAction {
    pub run_id: String,
    pub step_run_id: String,
    pub user_id: String,
    pub user_name: String,
    /// `pass`, `refuse`, `delay`, `delay_pass` or `delay_refuse`.
    pub action: String,
    /// A review comment, or the seconds a `delay` extends the wait by.
    pub detail: String,
    pub at: Timestamp,
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepActionRecord {
    pub id: String,
    pub run_id: String,
    pub step_run_id: String,
    pub user_id: String,
    pub user_name: String,
    pub action: String,
    pub detail: String,
    pub at: Timestamp,
}

/// Decisions on agentless steps, append-only (A4: committed before the caller answers).
pub trait StepActionStore {
    /// `Invalid` for an unknown action; `NotFound` when the run or step does not exist.
    fn record_step_action(
        &self,
        action: NewStepAction,
    ) -> impl Future<Output = Result<StepActionRecord, StoreError>> + Send;

    /// Every decision on the run's steps, oldest first.
    fn step_actions(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<StepActionRecord>, StoreError>> + Send;
}

const ACTIONS: &[&str] = &["pass", "refuse", "delay", "delay_pass", "delay_refuse"];

impl StepActionStore for Store {
    async fn record_step_action(
        &self,
        action: NewStepAction,
    ) -> Result<StepActionRecord, StoreError> {
        if !ACTIONS.contains(&action.action.as_str()) {
            return Err(StoreError::Invalid(format!(
                "unknown step action `{}`",
                action.action
            )));
        }
        let id = crate::new_id();
        let record = StepActionRecord {
            id,
            run_id: action.run_id,
            step_run_id: action.step_run_id,
            user_id: action.user_id,
            user_name: action.user_name,
            action: action.action,
            detail: action.detail,
            at: action.at,
        };
        let stored = record.clone();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let step = sqlx::query("SELECT id FROM step_runs WHERE id = $1 AND run_id = $2")
                        .bind(&stored.step_run_id)
                        .bind(&stored.run_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if step.is_none() {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query(
                        "INSERT INTO step_actions (id, run_id, step_run_id, user_id, user_name, action, detail, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&stored.id)
                    .bind(&stored.run_id)
                    .bind(&stored.step_run_id)
                    .bind(&stored.user_id)
                    .bind(&stored.user_name)
                    .bind(&stored.action)
                    .bind(&stored.detail)
                    .bind(sql::millis(stored.at))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(record)
    }

    async fn step_actions(&self, run_id: &str) -> Result<Vec<StepActionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, run_id, step_run_id, user_id, user_name, action, detail, created_at FROM step_actions \
             WHERE run_id = $1 ORDER BY created_at, id",
        )
        .bind(run_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StepActionRecord {
                    id: sql::text(row, "id")?,
                    run_id: sql::text(row, "run_id")?,
                    step_run_id: sql::text(row, "step_run_id")?,
                    user_id: sql::text(row, "user_id")?,
                    user_name: sql::text(row, "user_name")?,
                    action: sql::text(row, "action")?,
                    detail: sql::text(row, "detail")?,
                    at: sql::ts(row, "created_at")?,
                })
            })
            .collect()
    }
}
