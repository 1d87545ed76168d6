//! Audit events: who did what to which object, appended and listed newest first.

use crate::Store;
use crate::error::StoreError;
use crate::sql::{self, Arg, SqlBuilder};
use runnel_domain::Timestamp;
use std::future::Future;

#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub occurred_at: Timestamp,
    pub domain_id: Option<String>,
    pub project_id: Option<String>,
    pub actor_id: Option<String>,
    /// A stable verb such as `pipeline.update` or `token.revoke`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// Context; never secrets.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: i64,
    pub event: NewAuditEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    pub project_id: Option<String>,
    /// Events with an id below this one (paging backwards).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// An append-only log of administrative actions. Recording is one short transaction; callers
/// that need the event atomic with their change record it right after committing it.
pub trait AuditStore {
    fn record_audit(
        &self,
        event: NewAuditEvent,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;
}

impl AuditStore for Store {
    async fn record_audit(&self, event: NewAuditEvent) -> Result<i64, StoreError> {
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO audit_events (occurred_at, domain_id, project_id, actor_id, action, target_type, \
                         target_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    )
                    .bind(sql::millis(event.occurred_at))
                    .bind(event.domain_id.as_deref())
                    .bind(event.project_id.as_deref())
                    .bind(event.actor_id.as_deref())
                    .bind(&event.action)
                    .bind(&event.target_type)
                    .bind(&event.target_id)
                    .bind(sql::to_json(&event.details)?)
                    .fetch_one(&mut *conn)
                    .await?;
                    sql::int(&row, "id")
                })
            })
            .await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = query.limit.clamp(1, 500);
        let mut select = SqlBuilder::new(
            "SELECT id, occurred_at, domain_id, project_id, actor_id, action, target_type, target_id, details \
             FROM audit_events WHERE 1 = 1",
        );
        if let Some(project_id) = &query.project_id {
            select
                .push(" AND project_id = ")
                .bind(Arg::Text(project_id.clone()));
        }
        if let Some(before_id) = query.before_id {
            select.push(" AND id < ").bind(Arg::Int(before_id));
        }
        select
            .push(" ORDER BY id DESC LIMIT ")
            .bind(Arg::Int(limit));
        let rows = select.query().fetch_all(self.db().reader()).await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    id: sql::int(row, "id")?,
                    event: NewAuditEvent {
                        occurred_at: sql::ts(row, "occurred_at")?,
                        domain_id: sql::opt_text(row, "domain_id")?,
                        project_id: sql::opt_text(row, "project_id")?,
                        actor_id: sql::opt_text(row, "actor_id")?,
                        action: sql::text(row, "action")?,
                        target_type: sql::text(row, "target_type")?,
                        target_id: sql::text(row, "target_id")?,
                        details: sql::json(row, "details")?,
                    },
                })
            })
            .collect()
    }
}
