//! Schedules (leased firing for several servers), code-event triggers (webhook secrets encrypted) and webhook deliveries.

use crate::error::StoreError;
use crate::{Store, sql};
use runnel_domain::Timestamp;
use sqlx::any::AnyRow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// A timed trigger of a pipeline (spec §13 `PipelineSchedule`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    /// Kept when given (an update of an existing schedule), else generated.
    pub id: Option<String>,
    pub name: String,
    /// `fixed` or `periodic`.
    pub schedule_type: String,
    pub is_enabled: bool,
    /// Days, zone, times and interval as given.
    pub spec: serde_json::Value,
    /// When it fires next, computed by the caller (cron and zones are not the store's).
    pub next_fire_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: String,
    pub pipeline_id: String,
    pub name: String,
    pub schedule_type: String,
    pub is_enabled: bool,
    pub spec: serde_json::Value,
    pub next_fire_at: Option<Timestamp>,
    pub last_fired_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A code-event trigger (spec §13 `PipelineTrigger`).
#[derive(Clone, PartialEq)]
pub struct NewTrigger {
    pub git_type: String,
    pub git_url: String,
    pub repo_id: String,
    pub endpoint_id: Option<String>,
    pub events: serde_json::Value,
    pub is_auto_commit: bool,
    /// The webhook secret; stored encrypted.
    pub secret: String,
}

/// A trigger with its secret decrypted (for signature checks). Never printed.
#[derive(Clone, PartialEq)]
pub struct TriggerRecord {
    /// Numeric webhook id (`hook_id` on the wire, as a string).
    pub hook_id: i64,
    pub pipeline_id: String,
    pub git_type: String,
    pub git_url: String,
    pub repo_id: String,
    pub endpoint_id: Option<String>,
    pub events: serde_json::Value,
    pub is_auto_commit: bool,
    pub secret: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl fmt::Debug for NewTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTrigger")
            .field("git_url", &self.git_url)
            .field("secret", &"…")
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TriggerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriggerRecord")
            .field("hook_id", &self.hook_id)
            .field("pipeline_id", &self.pipeline_id)
            .field("git_url", &self.git_url)
            .field("secret", &"…")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    Ignored,
    Rejected,
}

impl WebhookOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Rejected => "rejected",
        }
    }
}

/// One received webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub hook_id: i64,
    pub delivery_id: String,
    pub event: String,
    pub outcome: WebhookOutcome,
    pub message: String,
    pub run_id: Option<String>,
    pub received_at: Timestamp,
}

/// Schedules, triggers and deliveries. Schedules fire once across several servers: a server
/// leases the due ones (`claim_due_schedules`) and reports each firing (`schedule_fired`),
/// which is refused (`LeaseLost`) when its lease was taken over meanwhile. Deliveries are
/// recorded once per `(hook_id, delivery_id)`; the run a delivery starts is made idempotent
/// through the run's idempotency key (G6), this log is for observation.
pub trait TriggerStore {
    /// Replaces the pipeline's schedules.
    fn replace_schedules(
        &self,
        pipeline_id: &str,
        schedules: Vec<NewSchedule>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<ScheduleRecord>, StoreError>> + Send;
    fn schedules(
        &self,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Vec<ScheduleRecord>, StoreError>> + Send;
    /// Leases up to `limit` enabled schedules due at `now` (not leased by another live owner).
    fn claim_due_schedules(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ScheduleRecord>, StoreError>> + Send;
    /// Records a firing and the next time; releases the lease.
    fn schedule_fired(
        &self,
        schedule_id: &str,
        owner: &str,
        fired_at: Timestamp,
        next_fire_at: Option<Timestamp>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn create_trigger(
        &self,
        pipeline_id: &str,
        trigger: NewTrigger,
        now: Timestamp,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    fn delete_trigger(
        &self,
        pipeline_id: &str,
        hook_id: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn triggers(
        &self,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Vec<TriggerRecord>, StoreError>> + Send;
    fn trigger(
        &self,
        hook_id: i64,
    ) -> impl Future<Output = Result<Option<TriggerRecord>, StoreError>> + Send;

    /// `false` when this delivery id was recorded before (a replay) and nothing was stored.
    fn record_delivery(
        &self,
        delivery: WebhookDelivery,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

const SCHEDULE_COLUMNS: &str = "id, pipeline_id, name, type, is_enabled, spec, next_fire_at, last_fired_at, created_at, updated_at";
const TRIGGER_COLUMNS: &str = "hook_id, pipeline_id, git_type, git_url, repo_id, endpoint_id, events, is_auto_commit, \
     secret_ciphertext, created_at, updated_at";

impl TriggerStore for Store {
    async fn replace_schedules(
        &self,
        pipeline_id: &str,
        schedules: Vec<NewSchedule>,
        now: Timestamp,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let owned_pipeline = pipeline_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM schedules WHERE pipeline_id = $1")
                        .bind(&owned_pipeline)
                        .execute(&mut *conn)
                        .await?;
                    for schedule in &schedules {
                        sqlx::query(
                            "INSERT INTO schedules (id, pipeline_id, name, type, is_enabled, spec, next_fire_at, created_at, \
                             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                        )
                        .bind(schedule.id.clone().unwrap_or_else(crate::new_id))
                        .bind(&owned_pipeline)
                        .bind(&schedule.name)
                        .bind(&schedule.schedule_type)
                        .bind(sql::flag_value(schedule.is_enabled))
                        .bind(sql::to_json(&schedule.spec)?)
                        .bind(sql::opt_millis(schedule.next_fire_at))
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await?;
        self.schedules(pipeline_id).await
    }

    async fn schedules(&self, pipeline_id: &str) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE pipeline_id = $1 ORDER BY created_at, id"
        )))
        .bind(pipeline_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter().map(schedule_record).collect()
    }

    async fn claim_due_schedules(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let owner = owner.to_owned();
        let until = sql::millis(now + lease);
        let ids: Vec<String> = self
            .db()
            .write(move |conn| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT id FROM schedules WHERE is_enabled = 1 AND next_fire_at <= $1 \
                         AND (lease_expires_at IS NULL OR lease_expires_at <= $1) ORDER BY next_fire_at LIMIT $2",
                    )
                    .bind(sql::millis(now))
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await?;
                    let mut claimed = Vec::new();
                    for row in rows {
                        let id = sql::text(&row, "id")?;
                        // Re-checked in the update: another server may have taken it meanwhile.
                        let done = sqlx::query(
                            "UPDATE schedules SET lease_owner = $2, lease_expires_at = $3 WHERE id = $1 \
                             AND (lease_expires_at IS NULL OR lease_expires_at <= $4)",
                        )
                        .bind(&id)
                        .bind(&owner)
                        .bind(until)
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                        if done.rows_affected() > 0 {
                            claimed.push(id);
                        }
                    }
                    Ok(claimed)
                })
            })
            .await?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
            )))
            .bind(&id)
            .fetch_one(self.db().reader())
            .await?;
            records.push(schedule_record(&row)?);
        }
        Ok(records)
    }

    async fn schedule_fired(
        &self,
        schedule_id: &str,
        owner: &str,
        fired_at: Timestamp,
        next_fire_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let (schedule_id, owner) = (schedule_id.to_owned(), owner.to_owned());
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE schedules SET last_fired_at = $3, next_fire_at = $4, lease_owner = NULL, \
                         lease_expires_at = NULL, updated_at = $3 WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(&schedule_id)
                    .bind(&owner)
                    .bind(sql::millis(fired_at))
                    .bind(sql::opt_millis(next_fire_at))
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::LeaseLost);
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn create_trigger(
        &self,
        pipeline_id: &str,
        trigger: NewTrigger,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let pipeline_id = pipeline_id.to_owned();
        let secrets = self.secrets().clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    // The secret is bound to the pipeline (the hook id is not known before the insert).
                    let sealed = secrets.seal_text(&trigger_context(&pipeline_id), &trigger.secret)?;
                    let row = sqlx::query(
                        "INSERT INTO triggers (pipeline_id, git_type, git_url, repo_id, endpoint_id, events, is_auto_commit, \
                         secret_ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                         RETURNING hook_id",
                    )
                    .bind(&pipeline_id)
                    .bind(&trigger.git_type)
                    .bind(&trigger.git_url)
                    .bind(&trigger.repo_id)
                    .bind(trigger.endpoint_id.as_deref())
                    .bind(sql::to_json(&trigger.events)?)
                    .bind(sql::flag_value(trigger.is_auto_commit))
                    .bind(sealed)
                    .bind(sql::millis(now))
                    .fetch_one(&mut *conn)
                    .await?;
                    sql::int(&row, "hook_id")
                })
            })
            .await
    }

    async fn delete_trigger(&self, pipeline_id: &str, hook_id: i64) -> Result<(), StoreError> {
        let pipeline_id = pipeline_id.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done =
                        sqlx::query("DELETE FROM triggers WHERE hook_id = $1 AND pipeline_id = $2")
                            .bind(hook_id)
                            .bind(&pipeline_id)
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

    async fn triggers(&self, pipeline_id: &str) -> Result<Vec<TriggerRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE pipeline_id = $1 ORDER BY hook_id"
        )))
        .bind(pipeline_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter().map(|row| self.trigger_record(row)).collect()
    }

    async fn trigger(&self, hook_id: i64) -> Result<Option<TriggerRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE hook_id = $1"
        )))
        .bind(hook_id)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| self.trigger_record(&row)).transpose()
    }

    async fn record_delivery(&self, delivery: WebhookDelivery) -> Result<bool, StoreError> {
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "INSERT INTO webhook_deliveries (hook_id, delivery_id, event, outcome, message, run_id, received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hook_id, delivery_id) DO NOTHING",
                    )
                    .bind(delivery.hook_id)
                    .bind(&delivery.delivery_id)
                    .bind(&delivery.event)
                    .bind(delivery.outcome.as_str())
                    .bind(&delivery.message)
                    .bind(delivery.run_id.as_deref())
                    .bind(sql::millis(delivery.received_at))
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
            })
            .await
    }
}

impl Store {
    fn trigger_record(&self, row: &AnyRow) -> Result<TriggerRecord, StoreError> {
        let pipeline_id = sql::text(row, "pipeline_id")?;
        let secret = self.secrets().open_text(
            &trigger_context(&pipeline_id),
            &sql::bytes(row, "secret_ciphertext")?,
        )?;
        Ok(TriggerRecord {
            hook_id: sql::int(row, "hook_id")?,
            git_type: sql::text(row, "git_type")?,
            git_url: sql::text(row, "git_url")?,
            repo_id: sql::text(row, "repo_id")?,
            endpoint_id: sql::opt_text(row, "endpoint_id")?,
            events: sql::json(row, "events")?,
            is_auto_commit: sql::flag(row, "is_auto_commit")?,
            secret,
            created_at: sql::ts(row, "created_at")?,
            updated_at: sql::ts(row, "updated_at")?,
            pipeline_id,
        })
    }
}

fn trigger_context(pipeline_id: &str) -> String {
    format!("triggers:{pipeline_id}")
}

fn schedule_record(row: &AnyRow) -> Result<ScheduleRecord, StoreError> {
    Ok(ScheduleRecord {
        id: sql::text(row, "id")?,
        pipeline_id: sql::text(row, "pipeline_id")?,
        name: sql::text(row, "name")?,
        schedule_type: sql::text(row, "type")?,
        is_enabled: sql::flag(row, "is_enabled")?,
        spec: sql::json(row, "spec")?,
        next_fire_at: sql::opt_ts(row, "next_fire_at")?,
        last_fired_at: sql::opt_ts(row, "last_fired_at")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}
