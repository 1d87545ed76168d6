//! The SQL behind `IdentityAdminStore`: each change and its audit event in one transaction.

use super::ops::{
    USER_COLUMNS, access_key_context, expect_one, hash_blocking, project_record, role, user_record,
};
use super::*;
use crate::crypto;
use crate::{Store, sql};
use sqlx::AnyConnection;

/// The length of generated passwords (about 142 bits of letters and digits).
const PASSWORD_LENGTH: usize = 24;

/// A random password of letters and digits, every character equally likely.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 = 4 × 62: bytes at or above it are dropped, so the modulo has no bias.
    let limit = 256 / ALPHABET.len() * ALPHABET.len();
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    while password.len() < PASSWORD_LENGTH {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        for byte in bytes {
            if usize::from(byte) < limit && password.len() < PASSWORD_LENGTH {
                password.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    password
}

/// One audit event, written in the change's own transaction.
struct Audit {
    actor: AdminActor,
    project_id: Option<String>,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    details: serde_json::Value,
    at: Timestamp,
}

impl Audit {
    fn new(
        actor: &AdminActor,
        action: &'static str,
        target_type: &'static str,
        target_id: &str,
        at: Timestamp,
    ) -> Audit {
        Audit {
            actor: actor.clone(),
            project_id: None,
            action,
            target_type,
            target_id: target_id.to_owned(),
            details: serde_json::json!({}),
            at,
        }
    }

    fn in_project(mut self, project_id: &str) -> Audit {
        self.project_id = Some(project_id.to_owned());
        self
    }

    fn with(mut self, details: serde_json::Value) -> Audit {
        self.details = details;
        self
    }

    async fn write(&self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (occurred_at, domain_id, project_id, actor_id, action, target_type, \
             target_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(sql::millis(self.at))
        .bind(&self.actor.domain_id)
        .bind(self.project_id.as_deref())
        .bind(&self.actor.user_id)
        .bind(self.action)
        .bind(self.target_type)
        .bind(&self.target_id)
        .bind(sql::to_json(&self.details)?)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// `NotFound` unless the user exists in the domain.
async fn require_user(
    conn: &mut AnyConnection,
    domain_id: &str,
    user_id: &str,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT 1 AS found FROM users WHERE id = $1 AND domain_id = $2")
        .bind(user_id)
        .bind(domain_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|_| ()).ok_or(StoreError::NotFound)
}

/// `NotFound` unless the project exists in the domain.
async fn require_project(
    conn: &mut AnyConnection,
    domain_id: &str,
    project_id: &str,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT 1 AS found FROM projects WHERE id = $1 AND domain_id = $2")
        .bind(project_id)
        .bind(domain_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|_| ()).ok_or(StoreError::NotFound)
}

async fn set_disabled(
    conn: &mut AnyConnection,
    domain_id: &str,
    user_id: &str,
    is_disabled: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE users SET is_disabled = $3, updated_at = $4 WHERE id = $1 AND domain_id = $2",
    )
    .bind(user_id)
    .bind(domain_id)
    .bind(sql::flag_value(is_disabled))
    .bind(sql::millis(now))
    .execute(&mut *conn)
    .await?;
    expect_one(done.rows_affected())
}

async fn revoke_tokens(
    conn: &mut AnyConnection,
    user_id: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(user_id)
    .bind(sql::millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

impl IdentityAdminStore for Store {
    async fn users(&self, domain_id: &str) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE domain_id = $1 ORDER BY name"
        )))
        .bind(domain_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter().map(user_record).collect()
    }

    async fn access_keys_of(&self, user_id: &str) -> Result<Vec<AccessKeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT ak, user_id, description, is_disabled, created_at FROM access_keys \
             WHERE user_id = $1 ORDER BY created_at, ak",
        )
        .bind(user_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccessKeyInfo {
                    ak: sql::text(row, "ak")?,
                    user_id: sql::text(row, "user_id")?,
                    description: sql::text(row, "description")?,
                    is_disabled: sql::flag(row, "is_disabled")?,
                    created_at: sql::ts(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn member_projects(
        &self,
        user_id: &str,
    ) -> Result<Vec<(ProjectRecord, Role)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.id, p.domain_id, p.name, p.description, p.created_at, p.updated_at, m.role \
             FROM members m JOIN projects p ON p.id = m.project_id WHERE m.user_id = $1 ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter()
            .map(|row| Ok((project_record(row)?, role(row)?)))
            .collect()
    }

    async fn set_domain_admin(
        &self,
        user_id: &str,
        is_domain_admin: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE users SET is_domain_admin = $2, updated_at = $3 WHERE id = $1",
                    )
                    .bind(&user_id)
                    .bind(sql::flag_value(is_domain_admin))
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    expect_one(done.rows_affected())
                })
            })
            .await
    }

    async fn admin_create_user(
        &self,
        actor: &AdminActor,
        user: NewUser,
        now: Timestamp,
    ) -> Result<UserRecord, StoreError> {
        let hash = match user.password {
            Some(password) => Some(hash_blocking(password).await?),
            None => None,
        };
        let record = UserRecord {
            id: crypto::new_id(),
            domain_id: actor.domain_id.clone(),
            name: user.name.clone(),
            display_name: user.name,
            is_disabled: false,
            is_domain_admin: user.is_domain_admin,
            created_at: now,
            updated_at: now,
        };
        let row = record.clone();
        let audit = Audit::new(actor, "user.create", "user", &record.id, now).with(
            serde_json::json!({"name": record.name, "is_domain_admin": record.is_domain_admin}),
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO users (id, domain_id, name, display_name, password_hash, is_domain_admin, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    )
                    .bind(&row.id)
                    .bind(&row.domain_id)
                    .bind(&row.name)
                    .bind(&row.display_name)
                    .bind(hash)
                    .bind(sql::flag_value(row.is_domain_admin))
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    audit.write(conn).await
                })
            })
            .await?;
        Ok(record)
    }

    async fn admin_disable_user(
        &self,
        actor: &AdminActor,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        let actor = actor.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    set_disabled(conn, &actor.domain_id, &user_id, true, now).await?;
                    let revoked = revoke_tokens(conn, &user_id, now).await?;
                    Audit::new(&actor, "user.disable", "user", &user_id, now)
                        .with(serde_json::json!({"revoked_tokens": revoked}))
                        .write(conn)
                        .await?;
                    Ok(revoked)
                })
            })
            .await
    }

    async fn admin_enable_user(
        &self,
        actor: &AdminActor,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        let actor = actor.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    set_disabled(conn, &actor.domain_id, &user_id, false, now).await?;
                    Audit::new(&actor, "user.enable", "user", &user_id, now)
                        .write(conn)
                        .await
                })
            })
            .await
    }

    async fn admin_create_project(
        &self,
        actor: &AdminActor,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<ProjectRecord, StoreError> {
        let record = ProjectRecord {
            id: crypto::new_id(),
            domain_id: actor.domain_id.clone(),
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let row = record.clone();
        let actor = actor.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    require_user(conn, &actor.domain_id, &actor.user_id).await?;
                    sqlx::query(
                        "INSERT INTO projects (id, domain_id, name, description, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&row.id)
                    .bind(&row.domain_id)
                    .bind(&row.name)
                    .bind(&row.description)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "INSERT INTO members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&row.id)
                    .bind(&actor.user_id)
                    .bind(Role::Admin.as_str())
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    Audit::new(&actor, "project.create", "project", &row.id, now)
                        .in_project(&row.id)
                        .with(serde_json::json!({"name": row.name}))
                        .write(conn)
                        .await
                })
            })
            .await?;
        Ok(record)
    }

    async fn admin_set_member(
        &self,
        actor: &AdminActor,
        project_id: &str,
        user_id: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (project_id, user_id, actor) =
            (project_id.to_owned(), user_id.to_owned(), actor.clone());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    require_project(conn, &actor.domain_id, &project_id).await?;
                    require_user(conn, &actor.domain_id, &user_id).await?;
                    sqlx::query(
                        "INSERT INTO members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(&project_id)
                    .bind(&user_id)
                    .bind(role.as_str())
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    Audit::new(&actor, "member.set", "user", &user_id, now)
                        .in_project(&project_id)
                        .with(serde_json::json!({"role": role.as_str()}))
                        .write(conn)
                        .await
                })
            })
            .await
    }

    async fn admin_remove_member(
        &self,
        actor: &AdminActor,
        project_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (project_id, user_id, actor) =
            (project_id.to_owned(), user_id.to_owned(), actor.clone());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    require_project(conn, &actor.domain_id, &project_id).await?;
                    let done =
                        sqlx::query("DELETE FROM members WHERE project_id = $1 AND user_id = $2")
                            .bind(&project_id)
                            .bind(&user_id)
                            .execute(&mut *conn)
                            .await?;
                    expect_one(done.rows_affected())?;
                    Audit::new(&actor, "member.remove", "user", &user_id, now)
                        .in_project(&project_id)
                        .write(conn)
                        .await
                })
            })
            .await
    }

    async fn admin_create_access_key(
        &self,
        actor: &AdminActor,
        user_id: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<IssuedAccessKey, StoreError> {
        let record = AccessKeyRecord {
            ak: crypto::random_hex(10).to_uppercase(),
            sk: crypto::random_hex(20),
            user_id: user_id.to_owned(),
            description: description.to_owned(),
            is_disabled: false,
            created_at: now,
        };
        let sealed = self
            .secrets()
            .seal_text(&access_key_context(&record.ak), &record.sk)?;
        let (ak, user_id, description) = (
            record.ak.clone(),
            record.user_id.clone(),
            record.description.clone(),
        );
        let actor = actor.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    require_user(conn, &actor.domain_id, &user_id).await?;
                    sqlx::query(
                        "INSERT INTO access_keys (ak, user_id, sk_ciphertext, description, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&ak)
                    .bind(&user_id)
                    .bind(sealed)
                    .bind(&description)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    Audit::new(&actor, "access_key.create", "access_key", &ak, now)
                        .with(serde_json::json!({"user_id": user_id}))
                        .write(conn)
                        .await
                })
            })
            .await?;
        Ok(record)
    }

    async fn admin_delete_access_key(
        &self,
        actor: &AdminActor,
        ak: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (ak, actor) = (ak.to_owned(), actor.clone());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    // Only keys of users of the actor's domain.
                    let done = sqlx::query(
                        "DELETE FROM access_keys WHERE ak = $1 AND user_id IN \
                         (SELECT id FROM users WHERE domain_id = $2)",
                    )
                    .bind(&ak)
                    .bind(&actor.domain_id)
                    .execute(&mut *conn)
                    .await?;
                    expect_one(done.rows_affected())?;
                    Audit::new(&actor, "access_key.delete", "access_key", &ak, now)
                        .write(conn)
                        .await
                })
            })
            .await
    }

    async fn admin_revoke_user_tokens(
        &self,
        actor: &AdminActor,
        user_id: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (user_id, actor) = (user_id.to_owned(), actor.clone());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    require_user(conn, &actor.domain_id, &user_id).await?;
                    let revoked = revoke_tokens(conn, &user_id, now).await?;
                    Audit::new(&actor, "token.revoke_user", "user", &user_id, now)
                        .with(serde_json::json!({"revoked_tokens": revoked}))
                        .write(conn)
                        .await?;
                    Ok(revoked)
                })
            })
            .await
    }
}
