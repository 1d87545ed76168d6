//! Bootstrap: on the first start, domain `default`, user `admin` (a domain administrator) with a generated password, project `default`, admin's membership and one AK/SK pair.
//!
//! The store has no multi-object transaction for this, so bootstrap is made one *logical* unit:
//! every step is idempotent (get-or-create by name, upsert, or a fresh secret that replaces the
//! previous one) and the last write is a marker in the database (an audit event in its own
//! scope). Without the marker, a start runs every step again: objects made by an interrupted
//! attempt are reused, the password is set anew and a new AK/SK pair issued, so whatever an
//! interrupted attempt may have shown or written is dead. With the marker, nothing happens.
//! The credentials file is written before the marker, so a bootstrapped database always has
//! its file (unless an operator removed it).

use crate::files;
use anyhow::Context as _;
use runnel_domain::Timestamp;
use runnel_store::{
    AuditQuery, AuditStore, DomainRecord, IdentityAdminStore, IdentityStore, NewAuditEvent,
    ProjectRecord, Role, Store, StoreError, UserRecord,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The credentials file, inside the data directory.
pub const CREDENTIALS_FILE: &str = "bootstrap-credentials.json";

const DOMAIN_NAME: &str = "default";
const USER_NAME: &str = "admin";
const PROJECT_NAME: &str = "default";
const PASSWORD_LENGTH: usize = 24;
/// The audit scope (`project_id`) holding the completion marker and nothing else.
const MARKER_SCOPE: &str = "system:bootstrap";
const MARKER_ACTION: &str = "system.bootstrap";

/// What the first start created, shown once. `Debug` hides the password and the SK.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapCredentials {
    pub endpoint: String,
    pub domain_id: String,
    pub domain_name: String,
    pub user_id: String,
    pub user_name: String,
    pub password: String,
    pub project_id: String,
    pub ak: String,
    pub sk: String,
}

impl fmt::Debug for BootstrapCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapCredentials")
            .field("endpoint", &self.endpoint)
            .field("domain_id", &self.domain_id)
            .field("user_id", &self.user_id)
            .field("password", &"…")
            .field("project_id", &self.project_id)
            .field("ak", &self.ak)
            .field("sk", &"…")
            .finish_non_exhaustive()
    }
}

impl BootstrapCredentials {
    /// The notice `runnel serve` prints to stdout on the start that bootstrapped.
    pub fn notice(&self, file: &Path) -> String {
        format!(
            "Runnel bootstrapped a new installation. These credentials are shown once;\n\
             they are also in {file} (mode 0600): keep them safe and delete the file.\n\
             \n  endpoint     {}\n  domain       {} ({})\n  user         {} ({})\n  password     {}\n  \
             project_id   {}\n  AK           {}\n  SK           {}\n",
            self.endpoint,
            self.domain_name,
            self.domain_id,
            self.user_name,
            self.user_id,
            self.password,
            self.project_id,
            self.ak,
            self.sk,
            file = file.display(),
        )
    }
}

/// Bootstraps an empty (or half-bootstrapped) database; `None` when it was done before.
pub(crate) async fn bootstrap(
    store: &Store,
    data_dir: &Path,
    endpoint: &str,
    now: Timestamp,
) -> anyhow::Result<Option<BootstrapCredentials>> {
    if is_bootstrapped(store)
        .await
        .context("while checking whether the database is bootstrapped")?
    {
        return Ok(None);
    }
    tracing::info!("bootstrapping: creating the default domain, project and admin user");
    let domain = domain(store, now)
        .await
        .context("while creating the domain")?;
    let user = user(store, &domain, now)
        .await
        .context("while creating the admin user")?;
    let project = project(store, &domain, now)
        .await
        .context("while creating the default project")?;
    store
        .set_member(&project.id, &user.id, Role::Admin, now)
        .await
        .context("while making admin a project admin")?;
    store
        .set_domain_admin(&user.id, true, now)
        .await
        .context("while making admin a domain administrator")?;
    let password = generate_password();
    store
        .set_password(&user.id, &password, now)
        .await
        .context("while setting the admin password")?;
    let key = store
        .create_access_key(&user.id, "bootstrap", now)
        .await
        .context("while creating the admin access key")?;
    let credentials = BootstrapCredentials {
        endpoint: endpoint.to_owned(),
        domain_id: domain.id.clone(),
        domain_name: domain.name.clone(),
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        password,
        project_id: project.id.clone(),
        ak: key.ak.clone(),
        sk: key.sk.clone(),
    };
    write_credentials(&credentials_path(data_dir), &credentials)?;
    store
        .record_audit(NewAuditEvent {
            occurred_at: now,
            domain_id: Some(domain.id.clone()),
            project_id: Some(MARKER_SCOPE.to_owned()),
            actor_id: None,
            action: MARKER_ACTION.to_owned(),
            target_type: "user".to_owned(),
            target_id: user.id.clone(),
            details: serde_json::json!({"project_id": project.id, "ak": key.ak}),
        })
        .await
        .context("while recording that bootstrap is complete")?;
    tracing::info!(domain_id = %domain.id, user_id = %user.id, project_id = %project.id, ak = %key.ak, "bootstrap complete");
    Ok(Some(credentials))
}

pub(crate) fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CREDENTIALS_FILE)
}

async fn is_bootstrapped(store: &Store) -> Result<bool, StoreError> {
    let query = AuditQuery {
        project_id: Some(MARKER_SCOPE.to_owned()),
        before_id: None,
        limit: 10,
    };
    let events = store.audit_events(&query).await?;
    Ok(events
        .iter()
        .any(|event| event.event.action == MARKER_ACTION))
}

// Each step reuses what an interrupted attempt (or a concurrent start) created.

async fn domain(store: &Store, now: Timestamp) -> Result<DomainRecord, StoreError> {
    if let Some(domain) = store.domain_by_name(DOMAIN_NAME).await? {
        return Ok(domain);
    }
    match store.create_domain(DOMAIN_NAME, now).await {
        Err(StoreError::Conflict(_)) => store
            .domain_by_name(DOMAIN_NAME)
            .await?
            .ok_or(StoreError::NotFound),
        other => other,
    }
}

async fn user(
    store: &Store,
    domain: &DomainRecord,
    now: Timestamp,
) -> Result<UserRecord, StoreError> {
    if let Some(user) = store.user_by_name(&domain.id, USER_NAME).await? {
        return Ok(user);
    }
    // The password is set in a later step, the same way whether the user is new or reused.
    match store.create_user(&domain.id, USER_NAME, None, now).await {
        Err(StoreError::Conflict(_)) => store
            .user_by_name(&domain.id, USER_NAME)
            .await?
            .ok_or(StoreError::NotFound),
        other => other,
    }
}

async fn project(
    store: &Store,
    domain: &DomainRecord,
    now: Timestamp,
) -> Result<ProjectRecord, StoreError> {
    let find = || async {
        Ok::<_, StoreError>(
            store
                .projects(&domain.id)
                .await?
                .into_iter()
                .find(|project| project.name == PROJECT_NAME),
        )
    };
    if let Some(project) = find().await? {
        return Ok(project);
    }
    match store
        .create_project(&domain.id, PROJECT_NAME, "Created at the first start.", now)
        .await
    {
        Err(StoreError::Conflict(_)) => find().await?.ok_or(StoreError::NotFound),
        other => other,
    }
}

/// Writes the credentials file. One left by an interrupted attempt holds credentials that this
/// attempt has just replaced: it is removed first.
fn write_credentials(path: &Path, credentials: &BootstrapCredentials) -> anyhow::Result<()> {
    if path.exists() {
        tracing::warn!(path = %path.display(), "replacing the credentials file of an interrupted bootstrap");
        files::remove(path).with_context(|| format!("while removing {}", path.display()))?;
    }
    let mut json = serde_json::to_vec_pretty(credentials).context("while encoding credentials")?;
    json.push(b'\n');
    files::write_new_private(path, &json)
        .with_context(|| format!("while writing {}", path.display()))
}

/// A random password of letters and digits (about 142 bits).
fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 = 4 × 62: bytes at or above it are dropped, so every character is equally likely.
    let limit = u8::try_from(256 / ALPHABET.len() * ALPHABET.len()).unwrap_or(u8::MAX);
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    while password.len() < PASSWORD_LENGTH {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        for byte in bytes {
            if byte < limit && password.len() < PASSWORD_LENGTH {
                password.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_alphanumeric() {
        let first = generate_password();
        let second = generate_password();
        assert!(first.len() >= 20);
        assert!(first.chars().all(|char| char.is_ascii_alphanumeric()));
        assert_ne!(first, second);
    }

    #[test]
    fn debug_output_hides_the_password_and_the_sk() {
        let credentials = BootstrapCredentials {
            endpoint: "http://127.0.0.1:8080".into(),
            domain_id: "d".into(),
            domain_name: "default".into(),
            user_id: "u".into(),
            user_name: "admin".into(),
            password: "hunter2hunter2hunter2".into(),
            project_id: "p".into(),
            ak: "AK".into(),
            sk: "very-secret-sk".into(),
        };
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("very-secret-sk"), "{debug}");
    }
}
