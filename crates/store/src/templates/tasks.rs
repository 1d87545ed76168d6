//! v3 template creation tasks (spec §2.1–§2.2): a pipeline created in the background and
//! polled by id.

use crate::Store;
use crate::error::StoreError;
use crate::sql;
use runnel_domain::Timestamp;
use sqlx::any::AnyRow;
use std::fmt;
use std::str::FromStr;

/// Where a creation task is (spec §2.2 `task_status`, plus `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateTaskStatus {
    Initializing,
    Processing,
    Succeeded,
    Failed,
}

impl TemplateTaskStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            TemplateTaskStatus::Initializing => "initializing",
            TemplateTaskStatus::Processing => "processing",
            TemplateTaskStatus::Succeeded => "succeeded",
            TemplateTaskStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for TemplateTaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemplateTaskStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "initializing" => Ok(TemplateTaskStatus::Initializing),
            "processing" => Ok(TemplateTaskStatus::Processing),
            "succeeded" => Ok(TemplateTaskStatus::Succeeded),
            "failed" => Ok(TemplateTaskStatus::Failed),
            other => Err(format!("unknown template task status `{other}`")),
        }
    }
}

/// A task to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplateTask {
    /// From [`crate::new_id`].
    pub id: String,
    pub domain_id: String,
    pub project_id: String,
    pub user_id: String,
    pub pipeline_name: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateTaskRecord {
    pub id: String,
    pub domain_id: String,
    pub project_id: String,
    pub user_id: String,
    pub status: TemplateTaskStatus,
    pub pipeline_id: Option<String>,
    pub pipeline_name: String,
    /// Why a task failed; empty otherwise.
    pub message: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub(super) async fn create(store: &Store, task: NewTemplateTask) -> Result<(), StoreError> {
    store
        .db()
        .write_statement(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO template_tasks (id, domain_id, project_id, user_id, status, pipeline_name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&task.id)
                .bind(&task.domain_id)
                .bind(&task.project_id)
                .bind(&task.user_id)
                .bind(TemplateTaskStatus::Initializing.as_str())
                .bind(&task.pipeline_name)
                .bind(sql::millis(task.now))
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn update(
    store: &Store,
    task_id: &str,
    status: TemplateTaskStatus,
    pipeline_id: Option<String>,
    message: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let task_id = task_id.to_owned();
    store
        .db()
        .write_statement(move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE template_tasks SET status = $2, pipeline_id = COALESCE($3, pipeline_id), message = $4, \
                     updated_at = $5 WHERE id = $1",
                )
                .bind(&task_id)
                .bind(status.as_str())
                .bind(pipeline_id.as_deref())
                .bind(&message)
                .bind(sql::millis(now))
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
        })
        .await
}

pub(super) async fn get(
    store: &Store,
    task_id: &str,
) -> Result<Option<TemplateTaskRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, domain_id, project_id, user_id, status, pipeline_id, pipeline_name, message, created_at, updated_at \
         FROM template_tasks WHERE id = $1",
    )
    .bind(task_id)
    .fetch_optional(store.db().reader())
    .await?;
    row.map(|row| task_record(&row)).transpose()
}

fn task_record(row: &AnyRow) -> Result<TemplateTaskRecord, StoreError> {
    Ok(TemplateTaskRecord {
        id: sql::text(row, "id")?,
        domain_id: sql::text(row, "domain_id")?,
        project_id: sql::text(row, "project_id")?,
        user_id: sql::text(row, "user_id")?,
        status: sql::status(row, "status")?,
        pipeline_id: sql::opt_text(row, "pipeline_id")?,
        pipeline_name: sql::text(row, "pipeline_name")?,
        message: sql::text(row, "message")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}
