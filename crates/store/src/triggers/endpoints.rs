//! Service endpoints: per-project credentials for git sources (a token or an SSH private key),
//! the secret sealed at rest; only [`EndpointStore::endpoint_credential`] opens it.

use crate::error::StoreError;
use crate::{Store, sql};
use runnel_domain::Timestamp;
use sqlx::any::AnyRow;
use std::fmt;
use std::future::Future;

/// What an endpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// An access token (HTTPS), sent with `username` (or a forge's default user name).
    Token,
    /// An SSH private key (OpenSSH format).
    SshKey,
}

impl EndpointKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Token => "token",
            EndpointKind::SshKey => "ssh_key",
        }
    }

    pub fn parse(text: &str) -> Option<EndpointKind> {
        match text {
            "token" => Some(EndpointKind::Token),
            "ssh_key" => Some(EndpointKind::SshKey),
            _ => None,
        }
    }
}

/// An endpoint to create. `Debug` never shows the secret.
#[derive(Clone, PartialEq)]
pub struct NewEndpoint {
    pub project_id: String,
    pub name: String,
    pub kind: EndpointKind,
    pub username: String,
    /// The token or the private key; stored encrypted.
    pub secret: String,
    /// `known_hosts` lines for SSH; empty: the host key is accepted on first use.
    pub known_hosts: String,
    pub creator_id: String,
    pub now: Timestamp,
}

/// An endpoint as lists show it: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub kind: EndpointKind,
    pub username: String,
    pub known_hosts: String,
    pub creator_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An endpoint with its secret opened, for the git commands that need it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointCredential {
    pub endpoint: EndpointRecord,
    pub secret: String,
}

impl fmt::Debug for NewEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEndpoint")
            .field("project_id", &self.project_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secret", &"…")
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for EndpointCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointCredential")
            .field("endpoint", &self.endpoint)
            .field("secret", &"…")
            .finish()
    }
}

/// Service endpoints of projects. Reads are scoped by project (another project's endpoint is
/// `None`/`NotFound`, S1).
pub trait EndpointStore {
    fn create_endpoint(
        &self,
        endpoint: NewEndpoint,
    ) -> impl Future<Output = Result<EndpointRecord, StoreError>> + Send;
    fn endpoints(
        &self,
        project_id: &str,
    ) -> impl Future<Output = Result<Vec<EndpointRecord>, StoreError>> + Send;
    fn endpoint_credential(
        &self,
        project_id: &str,
        endpoint_id: &str,
    ) -> impl Future<Output = Result<Option<EndpointCredential>, StoreError>> + Send;
    fn delete_endpoint(
        &self,
        project_id: &str,
        endpoint_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

const COLUMNS: &str =
    "id, project_id, name, kind, username, known_hosts, creator_id, created_at, updated_at";

impl EndpointStore for Store {
    async fn create_endpoint(&self, endpoint: NewEndpoint) -> Result<EndpointRecord, StoreError> {
        let id = crate::new_id();
        let sealed = self
            .secrets()
            .seal_text(&endpoint_context(&id), &endpoint.secret)?;
        let owned_id = id.clone();
        let project_id = endpoint.project_id.clone();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO service_endpoints (id, project_id, name, kind, username, secret_ciphertext, \
                         known_hosts, creator_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                    )
                    .bind(&owned_id)
                    .bind(&endpoint.project_id)
                    .bind(&endpoint.name)
                    .bind(endpoint.kind.as_str())
                    .bind(&endpoint.username)
                    .bind(sealed)
                    .bind(&endpoint.known_hosts)
                    .bind(&endpoint.creator_id)
                    .bind(sql::millis(endpoint.now))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        self.endpoint_credential(&project_id, &id)
            .await?
            .map(|credential| credential.endpoint)
            .ok_or(StoreError::NotFound)
    }

    async fn endpoints(&self, project_id: &str) -> Result<Vec<EndpointRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM service_endpoints WHERE project_id = $1 ORDER BY name, id"
        )))
        .bind(project_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter().map(endpoint_record).collect()
    }

    async fn endpoint_credential(
        &self,
        project_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<EndpointCredential>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, secret_ciphertext FROM service_endpoints WHERE project_id = $1 AND id = $2"
        )))
        .bind(project_id)
        .bind(endpoint_id)
        .fetch_optional(self.db().reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let endpoint = endpoint_record(&row)?;
        let secret = self.secrets().open_text(
            &endpoint_context(&endpoint.id),
            &sql::bytes(&row, "secret_ciphertext")?,
        )?;
        Ok(Some(EndpointCredential { endpoint, secret }))
    }

    async fn delete_endpoint(&self, project_id: &str, endpoint_id: &str) -> Result<(), StoreError> {
        let (project_id, endpoint_id) = (project_id.to_owned(), endpoint_id.to_owned());
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "DELETE FROM service_endpoints WHERE project_id = $1 AND id = $2",
                    )
                    .bind(&project_id)
                    .bind(&endpoint_id)
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
}

fn endpoint_context(endpoint_id: &str) -> String {
    format!("endpoints:{endpoint_id}")
}

fn endpoint_record(row: &AnyRow) -> Result<EndpointRecord, StoreError> {
    let kind = sql::text(row, "kind")?;
    Ok(EndpointRecord {
        id: sql::text(row, "id")?,
        project_id: sql::text(row, "project_id")?,
        name: sql::text(row, "name")?,
        kind: EndpointKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown endpoint kind `{kind}`")))?,
        username: sql::text(row, "username")?,
        known_hosts: sql::text(row, "known_hosts")?,
        creator_id: sql::text(row, "creator_id")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}
