//! Schedules (leased firing for several servers), code-event triggers (webhook secrets encrypted),
//! webhook deliveries, and service endpoints (git credentials, encrypted).

mod endpoints;

pub use endpoints::{EndpointCredential, EndpointKind, EndpointRecord, EndpointStore, NewEndpoint};

use crate::crypto::SecretBox;
use crate::error::StoreError;
use crate::pipelines::{insert_pipeline, replace_pipeline};
use crate::sql::Page;
use crate::{NewPipeline, PipelineRecord, PipelineStore, PipelineUpdate, Store, sql};
use runnel_domain::Timestamp;
use sqlx::AnyConnection;
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
    /// The server generated the secret (else the caller gave it).
    pub is_secret_generated: bool,
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

/// A trigger to keep (`hook_id` of one of the pipeline's triggers) or to create (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerUpsert {
    pub hook_id: Option<i64>,
    pub trigger: NewTrigger,
    /// The server generated `trigger.secret`.
    pub is_secret_generated: bool,
}

/// The triggers and schedules a pipeline is saved with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineEvents {
    pub triggers: Vec<TriggerUpsert>,
    pub schedules: Vec<NewSchedule>,
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

    /// Makes `triggers` the pipeline's triggers, in ONE transaction: an upsert naming one of the
    /// pipeline's hook ids updates that trigger (its deliveries stay), one without (or naming a
    /// hook of another pipeline) creates a trigger, and the pipeline's other triggers are deleted.
    /// Returns the triggers in the order given.
    fn replace_triggers(
        &self,
        pipeline_id: &str,
        triggers: Vec<TriggerUpsert>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<TriggerRecord>, StoreError>> + Send;

    /// Creates a pipeline together with its triggers and schedules, in ONE transaction (a
    /// pipeline never exists without the triggers it was saved with).
    fn create_pipeline_with_events(
        &self,
        pipeline: NewPipeline,
        events: PipelineEvents,
    ) -> impl Future<Output = Result<PipelineRecord, StoreError>> + Send;

    /// Updates a pipeline (a new version) and replaces its triggers and schedules, in ONE
    /// transaction; returns the new version.
    fn update_pipeline_with_events(
        &self,
        project_id: &str,
        pipeline_id: &str,
        update: PipelineUpdate,
        events: PipelineEvents,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// `false` when this delivery id was recorded before (a replay) and nothing was stored.
    fn record_delivery(
        &self,
        delivery: WebhookDelivery,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether a delivery with this id was recorded for the hook.
    fn delivery_seen(
        &self,
        hook_id: i64,
        delivery_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The deliveries of a pipeline's triggers, newest first.
    fn deliveries(
        &self,
        pipeline_id: &str,
        offset: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Page<WebhookDelivery>, StoreError>> + Send;
}

const SCHEDULE_COLUMNS: &str = "id, pipeline_id, name, type, is_enabled, spec, next_fire_at, last_fired_at, created_at, updated_at";
const TRIGGER_COLUMNS: &str = "hook_id, pipeline_id, git_type, git_url, repo_id, endpoint_id, events, is_auto_commit, \
     secret_ciphertext, is_secret_generated, created_at, updated_at";

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
                Box::pin(
                    async move { write_schedules(conn, &owned_pipeline, &schedules, now).await },
                )
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

    async fn replace_triggers(
        &self,
        pipeline_id: &str,
        triggers: Vec<TriggerUpsert>,
        now: Timestamp,
    ) -> Result<Vec<TriggerRecord>, StoreError> {
        let owned_pipeline = pipeline_id.to_owned();
        let secrets = self.secrets().clone();
        let hook_ids: Vec<i64> = self
            .db()
            .write(move |conn| {
                Box::pin(async move {
                    write_triggers(conn, &secrets, &owned_pipeline, &triggers, now).await
                })
            })
            .await?;
        self.ordered_triggers(pipeline_id, &hook_ids).await
    }

    async fn create_pipeline_with_events(
        &self,
        pipeline: NewPipeline,
        events: PipelineEvents,
    ) -> Result<PipelineRecord, StoreError> {
        let secrets = self.secrets().clone();
        let (id, project_id, now) = (
            pipeline.id.clone(),
            pipeline.project_id.clone(),
            pipeline.now,
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    insert_pipeline(conn, &secrets, &pipeline).await?;
                    write_triggers(conn, &secrets, &pipeline.id, &events.triggers, now).await?;
                    write_schedules(conn, &pipeline.id, &events.schedules, now).await
                })
            })
            .await?;
        self.pipeline(&project_id, &id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn update_pipeline_with_events(
        &self,
        project_id: &str,
        pipeline_id: &str,
        update: PipelineUpdate,
        events: PipelineEvents,
    ) -> Result<i64, StoreError> {
        let secrets = self.secrets().clone();
        let (project_id, pipeline_id) = (project_id.to_owned(), pipeline_id.to_owned());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let version =
                        replace_pipeline(conn, &secrets, &project_id, &pipeline_id, &update)
                            .await?;
                    write_triggers(conn, &secrets, &pipeline_id, &events.triggers, update.now)
                        .await?;
                    write_schedules(conn, &pipeline_id, &events.schedules, update.now).await?;
                    Ok(version)
                })
            })
            .await
    }

    async fn delivery_seen(&self, hook_id: i64, delivery_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS seen FROM webhook_deliveries WHERE hook_id = $1 AND delivery_id = $2",
        )
        .bind(hook_id)
        .bind(delivery_id)
        .fetch_one(self.db().reader())
        .await?;
        Ok(sql::int(&row, "seen")? > 0)
    }

    async fn deliveries(
        &self,
        pipeline_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Page<WebhookDelivery>, StoreError> {
        let (offset, limit) = sql::window(offset, limit, 100);
        let total = sqlx::query(
            "SELECT COUNT(*) AS total FROM webhook_deliveries d JOIN triggers t ON t.hook_id = d.hook_id \
             WHERE t.pipeline_id = $1",
        )
        .bind(pipeline_id)
        .fetch_one(self.db().reader())
        .await?;
        let rows = sqlx::query(
            "SELECT d.hook_id, d.delivery_id, d.event, d.outcome, d.message, d.run_id, d.received_at \
             FROM webhook_deliveries d JOIN triggers t ON t.hook_id = d.hook_id WHERE t.pipeline_id = $1 \
             ORDER BY d.received_at DESC, d.id DESC LIMIT $2 OFFSET $3",
        )
        .bind(pipeline_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db().reader())
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(WebhookDelivery {
                    hook_id: sql::int(row, "hook_id")?,
                    delivery_id: sql::text(row, "delivery_id")?,
                    event: sql::text(row, "event")?,
                    outcome: match sql::text(row, "outcome")?.as_str() {
                        "accepted" => WebhookOutcome::Accepted,
                        "ignored" => WebhookOutcome::Ignored,
                        "rejected" => WebhookOutcome::Rejected,
                        other => {
                            return Err(StoreError::Corrupt(format!(
                                "unknown delivery outcome `{other}`"
                            )));
                        }
                    },
                    message: sql::text(row, "message")?,
                    run_id: sql::opt_text(row, "run_id")?,
                    received_at: sql::ts(row, "received_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page {
            total: sql::int(&total, "total")?,
            items,
        })
    }
}

/// Makes `schedules` the pipeline's schedules (see [`TriggerStore::replace_schedules`]).
async fn write_schedules(
    conn: &mut AnyConnection,
    pipeline_id: &str,
    schedules: &[NewSchedule],
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM schedules WHERE pipeline_id = $1")
        .bind(pipeline_id)
        .execute(&mut *conn)
        .await?;
    for schedule in schedules {
        sqlx::query(
            "INSERT INTO schedules (id, pipeline_id, name, type, is_enabled, spec, next_fire_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(schedule.id.clone().unwrap_or_else(crate::new_id))
        .bind(pipeline_id)
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
}

/// Makes `triggers` the pipeline's triggers (see [`TriggerStore::replace_triggers`]); returns
/// their hook ids in the order given.
async fn write_triggers(
    conn: &mut AnyConnection,
    secrets: &SecretBox,
    pipeline_id: &str,
    triggers: &[TriggerUpsert],
    now: Timestamp,
) -> Result<Vec<i64>, StoreError> {
    let existing: Vec<i64> = sqlx::query("SELECT hook_id FROM triggers WHERE pipeline_id = $1")
        .bind(pipeline_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| sql::int(row, "hook_id"))
        .collect::<Result<_, _>>()?;
    let context = trigger_context(pipeline_id);
    let mut kept = Vec::with_capacity(triggers.len());
    for upsert in triggers {
        let trigger = &upsert.trigger;
        let sealed = secrets.seal_text(&context, &trigger.secret)?;
        let reuse = upsert
            .hook_id
            .filter(|id| existing.contains(id) && !kept.contains(id));
        let hook_id = match reuse {
            Some(hook_id) => {
                sqlx::query(
                    "UPDATE triggers SET git_type = $2, git_url = $3, repo_id = $4, endpoint_id = $5, \
                     events = $6, is_auto_commit = $7, secret_ciphertext = $8, updated_at = $9, \
                     is_secret_generated = $10 WHERE hook_id = $1",
                )
                .bind(hook_id)
                .bind(&trigger.git_type)
                .bind(&trigger.git_url)
                .bind(&trigger.repo_id)
                .bind(trigger.endpoint_id.as_deref())
                .bind(sql::to_json(&trigger.events)?)
                .bind(sql::flag_value(trigger.is_auto_commit))
                .bind(sealed)
                .bind(sql::millis(now))
                .bind(sql::flag_value(upsert.is_secret_generated))
                .execute(&mut *conn)
                .await?;
                hook_id
            }
            None => {
                let row = sqlx::query(
                    "INSERT INTO triggers (pipeline_id, git_type, git_url, repo_id, endpoint_id, events, \
                     is_auto_commit, secret_ciphertext, created_at, updated_at, is_secret_generated) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING hook_id",
                )
                .bind(pipeline_id)
                .bind(&trigger.git_type)
                .bind(&trigger.git_url)
                .bind(&trigger.repo_id)
                .bind(trigger.endpoint_id.as_deref())
                .bind(sql::to_json(&trigger.events)?)
                .bind(sql::flag_value(trigger.is_auto_commit))
                .bind(sealed)
                .bind(sql::millis(now))
                .bind(sql::flag_value(upsert.is_secret_generated))
                .fetch_one(&mut *conn)
                .await?;
                sql::int(&row, "hook_id")?
            }
        };
        kept.push(hook_id);
    }
    for hook_id in existing.iter().filter(|id| !kept.contains(id)) {
        sqlx::query("DELETE FROM triggers WHERE hook_id = $1")
            .bind(*hook_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(kept)
}

impl Store {
    /// The pipeline's triggers, in the order of `hook_ids`.
    async fn ordered_triggers(
        &self,
        pipeline_id: &str,
        hook_ids: &[i64],
    ) -> Result<Vec<TriggerRecord>, StoreError> {
        let mut records = self.triggers(pipeline_id).await?;
        records.sort_by_key(|record| {
            hook_ids
                .iter()
                .position(|id| *id == record.hook_id)
                .unwrap_or(usize::MAX)
        });
        Ok(records)
    }

    pub(crate) fn trigger_record(&self, row: &AnyRow) -> Result<TriggerRecord, StoreError> {
        let pipeline_id = sql::text(row, "pipeline_id")?;
        let secret = self.secrets().open_text(
            &trigger_context(&pipeline_id),
            &sql::bytes(row, "secret_ciphertext")?,
        )?;
        Ok(TriggerRecord {
            hook_id: sql::int(row, "hook_id")?,
            is_secret_generated: sql::flag(row, "is_secret_generated")?,
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
