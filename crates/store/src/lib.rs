//! Runnel's persistent store.
//!
//! Owns: the database schema (migrations per backend, embedded and applied at open), and every
//! read and write of persistent state through small per-aggregate traits — identity
//! ([`IdentityStore`]), pipelines ([`PipelineStore`]), groups, tags and variable groups
//! ([`OrganizeStore`]), templates ([`TemplateStore`]), runs ([`RunStore`]), the leased job
//! queue ([`JobQueue`]), step logs ([`LogStore`]), schedules, triggers and webhook deliveries
//! ([`TriggerStore`]), audit events ([`AuditStore`]) and people's decisions on agentless steps
//! ([`StepActionStore`]). One implementation, [`Store`], runs on SQLite and PostgreSQL through sqlx's `Any` driver (see `README.md` for why).
//!
//! Guarantees held here: commits before answering (A1–A4), durable SQLite settings checked at
//! open, group commit for throughput, fencing by lease tokens (G2), a sweeper for expired
//! leases (G1), offset-checked log appends (G4), gapless run numbers and auto-increment values
//! allocated in the run's own transaction (G5), idempotent run creation (G6).
//!
//! Must never know: HTTP (axum, status codes, the wire protocol), processes, the scheduler's
//! decisions. It depends on `runnel-domain` only, for statuses, timestamps and the
//! auto-increment rule, and maps domain values to its own row and record types.

mod actions;
mod audit;
pub mod bench;
mod config;
mod crypto;
mod db;
mod error;
mod identity;
mod logs;
mod migrate;
mod organize;
mod pipelines;
mod queue;
mod runs;
mod sql;
mod templates;
pub mod testing;
mod triggers;
mod wal_vfs;

pub use actions::{NewStepAction, StepActionRecord, StepActionStore};
pub use audit::{AuditEvent, AuditQuery, AuditStore, NewAuditEvent};
pub use config::{Backend, DEFAULT_LOG_CAP_BYTES, SecretKey, StoreConfig};
pub use crypto::new_id;
pub use error::{BackendError, StoreError};
pub use identity::{
    AccessKeyInfo, AccessKeyRecord, AdminActor, AuthenticatedMember, DomainRecord,
    IdentityAdminStore, IdentityStore, IssuedAccessKey, IssuedToken, MemberRecord, NewUser,
    ProjectRecord, Role, TokenRecord, UserRecord, generate_password,
};
pub use logs::{AppendOutcome, LogInfo, LogPage, LogRead, LogStore, TRUNCATION_MARKER};
pub use organize::{
    GroupRecord, MAX_GROUP_DEPTH, NewGroup, NewTag, NewVariableGroup, OrganizeStore, TagRecord,
    VariableGroupRecord, VariableGroupVariable,
};
pub use pipelines::{
    COMPILED_RECORD_FORMAT, LatestRunFilter, NewPipeline, PipelineHead, PipelineQuery,
    PipelineRecord, PipelineSortKey, PipelineStore, PipelineUpdate, PipelineVersionRecord,
};
pub use queue::{
    ClaimRequest, CompletedJob, EnqueueJob, ExpiredLease, FinishedJob, Heartbeat, JobOutcome,
    JobQueue, Lease, LeaseExpiry, LeaseToken, NewArtifact, QueueStats, StepReport,
};
pub use runs::{
    ArtifactRecord, CreatedRun, FirstStep, IdempotencyKey, JobRunRecord, JobUpdate, NewJobRun,
    NewRun, NewStageRun, NewStepRun, NextStep, ParameterBuilder, RunAllocation, RunDetail,
    RunParameter, RunProgress, RunQuery, RunRecord, RunSortKey, RunStore, RunSummary, RunUpdate,
    StageRunRecord, StageStatusItem, StageUpdate, StepOutputRecord, StepPlacement, StepRunRecord,
    StepUpdateRow,
};
pub use sql::{Page, SortDir};
pub use templates::{
    LegacyBuildRow, LegacyPipelineQuery, LegacyPipelineRow, LegacyPipelineStore, LegacySortKey,
    NewTemplate, NewTemplateTask, SystemTemplate, SystemTemplateSync, TemplateQuery,
    TemplateRecord, TemplateSortKey, TemplateStore, TemplateTaskRecord, TemplateTaskStatus,
};
pub use triggers::{
    EndpointCredential, EndpointKind, EndpointRecord, EndpointStore, NewEndpoint, NewSchedule,
    NewTrigger, PipelineEvents, ScheduleRecord, TriggerRecord, TriggerStore, TriggerUpsert,
    WebhookDelivery, WebhookOutcome,
};

use crypto::SecretBox;
use db::Db;
use std::sync::Arc;

/// The store: one value implementing every store trait, on SQLite or PostgreSQL.
///
/// Cheap to clone (all clones share the connections). Every method is safe to call from many
/// tasks at once; writes on SQLite are serialized by one writer task and committed in batches.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    secrets: SecretBox,
    log_cap_bytes: u64,
}

impl Store {
    /// Opens (creating an SQLite file when missing) and checks the database: durability
    /// settings are read back and a weaker setup is refused (`Misconfigured`); migrations are
    /// applied; a schema newer than this binary is refused (`SchemaTooNew`).
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let db = Db::open(&config).await?;
        if db.backend() == Backend::Sqlite {
            runs::note_stored_queued_runs(db.reader()).await?;
        }
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                secrets: SecretBox::new(&config.secret_key),
                log_cap_bytes: config.log_cap_bytes,
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.db.backend()
    }

    /// The schema version applied to the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        migrate::applied_version(self.inner.db.reader(), self.backend()).await
    }

    /// The newest schema version this binary knows.
    pub fn known_schema_version(&self) -> i64 {
        migrate::known_version(self.backend())
    }

    /// Refreshes the query planner's statistics (`ANALYZE`), e.g. after a bulk import;
    /// PostgreSQL's autovacuum does the same on its own within about a minute.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        self.db()
            .write(|conn| {
                Box::pin(async move {
                    sqlx::query("ANALYZE").execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .await
    }

    /// Closes every connection; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    pub(crate) fn log_cap_bytes(&self) -> u64 {
        self.inner.log_cap_bytes
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}
