//! The SQL behind `IdentityStore`.

use super::*;
use crate::crypto;
use crate::{Store, sql};
use sqlx::any::AnyRow;
use std::sync::OnceLock;

pub(super) const USER_COLUMNS: &str =
    "id, domain_id, name, display_name, is_disabled, is_domain_admin, created_at, updated_at";

impl IdentityStore for Store {
    async fn create_domain(&self, name: &str, now: Timestamp) -> Result<DomainRecord, StoreError> {
        let record = DomainRecord {
            id: crypto::new_id(),
            name: name.to_owned(),
            created_at: now,
        };
        let row = record.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO domains (id, name, created_at) VALUES ($1, $2, $3)")
                        .bind(&row.id)
                        .bind(&row.name)
                        .bind(sql::millis(row.created_at))
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(record)
    }

    async fn domain(&self, id: &str) -> Result<Option<DomainRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM domains WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db().reader())
            .await?;
        row.map(|row| domain_record(&row)).transpose()
    }

    async fn domain_by_name(&self, name: &str) -> Result<Option<DomainRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM domains WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db().reader())
            .await?;
        row.map(|row| domain_record(&row)).transpose()
    }

    async fn create_user(
        &self,
        domain_id: &str,
        name: &str,
        password: Option<&str>,
        now: Timestamp,
    ) -> Result<UserRecord, StoreError> {
        let hash = match password {
            Some(password) => Some(hash_blocking(password.to_owned()).await?),
            None => None,
        };
        let record = UserRecord {
            id: crypto::new_id(),
            domain_id: domain_id.to_owned(),
            name: name.to_owned(),
            display_name: name.to_owned(),
            is_disabled: false,
            is_domain_admin: false,
            created_at: now,
            updated_at: now,
        };
        let row = record.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO users (id, domain_id, name, display_name, password_hash, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    )
                    .bind(&row.id)
                    .bind(&row.domain_id)
                    .bind(&row.name)
                    .bind(&row.display_name)
                    .bind(hash)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(record)
    }

    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| user_record(&row)).transpose()
    }

    async fn user_by_name(
        &self,
        domain_id: &str,
        name: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE domain_id = $1 AND name = $2"
        )))
        .bind(domain_id)
        .bind(name)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| user_record(&row)).transpose()
    }

    async fn authenticate_password(
        &self,
        domain_name: &str,
        user_name: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.domain_id, u.name, u.display_name, u.is_disabled, u.is_domain_admin, u.created_at, \
             u.updated_at, u.password_hash FROM users u JOIN domains d ON d.id = u.domain_id WHERE d.name = $1 AND u.name = $2",
        )
        .bind(domain_name)
        .bind(user_name)
        .fetch_optional(self.db().reader())
        .await?;
        let (user, hash) = match &row {
            Some(row) => (
                Some(user_record(row)?),
                sql::opt_text(row, "password_hash")?,
            ),
            None => (None, None),
        };
        // Verify against a dummy hash when there is none, so timing does not reveal users.
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        let password = password.to_owned();
        let is_match =
            tokio::task::spawn_blocking(move || crypto::verify_password(&password, &hash))
                .await
                .unwrap_or(false);
        Ok(user.filter(|user| is_match && !user.is_disabled))
    }

    async fn set_password(
        &self,
        user_id: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let hash = hash_blocking(password.to_owned()).await?;
        let user_id = user_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
                    )
                    .bind(&user_id)
                    .bind(&hash)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    expect_one(done.rows_affected())
                })
            })
            .await
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        is_disabled: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE users SET is_disabled = $2, updated_at = $3 WHERE id = $1",
                    )
                    .bind(&user_id)
                    .bind(sql::flag_value(is_disabled))
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    expect_one(done.rows_affected())
                })
            })
            .await
    }

    async fn issue_token(
        &self,
        user_id: &str,
        scope: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<IssuedToken, StoreError> {
        let token = format!("rnl_{}", crypto::random_hex(32));
        let record = TokenRecord {
            id: crypto::new_id(),
            user_id: user_id.to_owned(),
            scope: scope.to_owned(),
            issued_at: now,
            expires_at: now + ttl,
            revoked_at: None,
        };
        let row = record.clone();
        let digest = crypto::token_digest(&token);
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO tokens (id, token_hash, user_id, scope, issued_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&row.id)
                    .bind(digest)
                    .bind(&row.user_id)
                    .bind(&row.scope)
                    .bind(sql::millis(row.issued_at))
                    .bind(sql::millis(row.expires_at))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(IssuedToken { token, record })
    }

    async fn authenticate_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.user_id, t.scope, t.issued_at, t.expires_at, t.revoked_at, \
             u.id, u.domain_id, u.name, u.display_name, u.is_disabled, u.is_domain_admin, u.created_at, \
             u.updated_at FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.is_disabled = 0",
        )
        .bind(crypto::token_digest(token))
        .bind(sql::millis(now))
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| Ok((token_record(&row)?, user_record(&row)?)))
            .transpose()
    }

    async fn authenticate_token_in_project(
        &self,
        token: &str,
        now: Timestamp,
        project_id: &str,
    ) -> Result<Option<AuthenticatedMember>, StoreError> {
        // The conditions of `authenticate_token`, and those of `membership` on the joined
        // member and project (LEFT JOINs: a valid token of a non-member still authenticates).
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.user_id, t.scope, t.issued_at, t.expires_at, t.revoked_at, \
             u.id, u.domain_id, u.name, u.display_name, u.is_disabled, u.is_domain_admin, u.created_at, \
             u.updated_at, m.role, p.id AS project_id, p.domain_id AS project_domain_id, \
             p.name AS project_name, p.description AS project_description, \
             p.created_at AS project_created_at, p.updated_at AS project_updated_at \
             FROM tokens t JOIN users u ON u.id = t.user_id \
             LEFT JOIN members m ON m.project_id = $3 AND m.user_id = u.id \
             LEFT JOIN projects p ON p.id = m.project_id AND p.domain_id = u.domain_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.is_disabled = 0",
        )
        .bind(crypto::token_digest(token))
        .bind(sql::millis(now))
        .bind(project_id)
        .fetch_optional(self.db().reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let membership = match sql::opt_text(&row, "project_id")? {
            Some(id) => Some((
                ProjectRecord {
                    id,
                    domain_id: sql::text(&row, "project_domain_id")?,
                    name: sql::text(&row, "project_name")?,
                    description: sql::text(&row, "project_description")?,
                    created_at: sql::ts(&row, "project_created_at")?,
                    updated_at: sql::ts(&row, "project_updated_at")?,
                },
                role(&row)?,
            )),
            None => None,
        };
        Ok(Some((token_record(&row)?, user_record(&row)?, membership)))
    }

    async fn revoke_token(&self, token: &str, now: Timestamp) -> Result<bool, StoreError> {
        let digest = crypto::token_digest(token);
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL")
                        .bind(digest)
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                    Ok(done.rows_affected() > 0)
                })
            })
            .await
    }

    async fn revoke_user_tokens(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                        .bind(&user_id)
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }

    async fn create_access_key(
        &self,
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
        let row = record.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO access_keys (ak, user_id, sk_ciphertext, description, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&row.ak)
                    .bind(&row.user_id)
                    .bind(sealed)
                    .bind(&row.description)
                    .bind(sql::millis(row.created_at))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(record)
    }

    async fn access_key(&self, ak: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT ak, user_id, sk_ciphertext, description, is_disabled, created_at FROM access_keys WHERE ak = $1",
        )
        .bind(ak)
        .fetch_optional(self.db().reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let ak = sql::text(&row, "ak")?;
        let sk = self.secrets().open_text(
            &access_key_context(&ak),
            &sql::bytes(&row, "sk_ciphertext")?,
        )?;
        Ok(Some(AccessKeyRecord {
            sk,
            user_id: sql::text(&row, "user_id")?,
            description: sql::text(&row, "description")?,
            is_disabled: sql::flag(&row, "is_disabled")?,
            created_at: sql::ts(&row, "created_at")?,
            ak,
        }))
    }

    async fn set_access_key_disabled(&self, ak: &str, is_disabled: bool) -> Result<(), StoreError> {
        let ak = ak.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE access_keys SET is_disabled = $2 WHERE ak = $1")
                        .bind(&ak)
                        .bind(sql::flag_value(is_disabled))
                        .execute(&mut *conn)
                        .await?;
                    expect_one(done.rows_affected())
                })
            })
            .await
    }

    async fn delete_access_key(&self, ak: &str) -> Result<(), StoreError> {
        let ak = ak.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM access_keys WHERE ak = $1")
                        .bind(&ak)
                        .execute(&mut *conn)
                        .await?;
                    expect_one(done.rows_affected())
                })
            })
            .await
    }

    async fn create_project(
        &self,
        domain_id: &str,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<ProjectRecord, StoreError> {
        let record = ProjectRecord {
            id: crypto::new_id(),
            domain_id: domain_id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let row = record.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
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
                    Ok(())
                })
            })
            .await?;
        Ok(record)
    }

    async fn project(&self, id: &str) -> Result<Option<ProjectRecord>, StoreError> {
        let row = sqlx::query("SELECT id, domain_id, name, description, created_at, updated_at FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db().reader())
            .await?;
        row.map(|row| project_record(&row)).transpose()
    }

    async fn projects(&self, domain_id: &str) -> Result<Vec<ProjectRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, domain_id, name, description, created_at, updated_at FROM projects WHERE domain_id = $1 ORDER BY name",
        )
        .bind(domain_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter().map(project_record).collect()
    }

    async fn set_member(
        &self,
        project_id: &str,
        user_id: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let project_id = project_id.to_owned();
        let user_id = user_id.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
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
                    Ok(())
                })
            })
            .await
    }

    async fn remove_member(&self, project_id: &str, user_id: &str) -> Result<(), StoreError> {
        let project_id = project_id.to_owned();
        let user_id = user_id.to_owned();
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done =
                        sqlx::query("DELETE FROM members WHERE project_id = $1 AND user_id = $2")
                            .bind(&project_id)
                            .bind(&user_id)
                            .execute(&mut *conn)
                            .await?;
                    expect_one(done.rows_affected())
                })
            })
            .await
    }

    async fn member_role(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query("SELECT role FROM members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(self.db().reader())
            .await?;
        row.map(|row| role(&row)).transpose()
    }

    async fn membership(
        &self,
        project_id: &str,
        user_id: &str,
        domain_id: &str,
    ) -> Result<Option<(ProjectRecord, Role)>, StoreError> {
        let row = sqlx::query(
            "SELECT p.id, p.domain_id, p.name, p.description, p.created_at, p.updated_at, m.role \
             FROM projects p JOIN members m ON m.project_id = p.id \
             WHERE p.id = $1 AND m.user_id = $2 AND p.domain_id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(domain_id)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| Ok((project_record(&row)?, role(&row)?)))
            .transpose()
    }

    async fn members(&self, project_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT project_id, user_id, role, created_at FROM members WHERE project_id = $1 ORDER BY created_at, user_id",
        )
        .bind(project_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberRecord {
                    project_id: sql::text(row, "project_id")?,
                    user_id: sql::text(row, "user_id")?,
                    role: role(row)?,
                    created_at: sql::ts(row, "created_at")?,
                })
            })
            .collect()
    }
}

pub(super) fn expect_one(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

pub(super) fn access_key_context(ak: &str) -> String {
    format!("access_keys:{ak}")
}

pub(super) async fn hash_blocking(password: String) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || crypto::hash_password(&password))
        .await
        .map_err(|_| StoreError::Invalid("password hashing was interrupted".to_owned()))?
}

/// A valid argon2 hash of a random password, for constant-time misses.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| crypto::hash_password(&crypto::random_hex(16)).unwrap_or_default())
}

pub(super) fn role(row: &AnyRow) -> Result<Role, StoreError> {
    let text = sql::text(row, "role")?;
    Role::parse(&text).ok_or_else(|| StoreError::corrupt(format!("unknown role `{text}`")))
}

fn domain_record(row: &AnyRow) -> Result<DomainRecord, StoreError> {
    Ok(DomainRecord {
        id: sql::text(row, "id")?,
        name: sql::text(row, "name")?,
        created_at: sql::ts(row, "created_at")?,
    })
}

fn token_record(row: &AnyRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: sql::text(row, "token_id")?,
        user_id: sql::text(row, "user_id")?,
        scope: sql::text(row, "scope")?,
        issued_at: sql::ts(row, "issued_at")?,
        expires_at: sql::ts(row, "expires_at")?,
        revoked_at: sql::opt_ts(row, "revoked_at")?,
    })
}

pub(super) fn user_record(row: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: sql::text(row, "id")?,
        domain_id: sql::text(row, "domain_id")?,
        name: sql::text(row, "name")?,
        display_name: sql::text(row, "display_name")?,
        is_disabled: sql::flag(row, "is_disabled")?,
        is_domain_admin: sql::flag(row, "is_domain_admin")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}

pub(super) fn project_record(row: &AnyRow) -> Result<ProjectRecord, StoreError> {
    Ok(ProjectRecord {
        id: sql::text(row, "id")?,
        domain_id: sql::text(row, "domain_id")?,
        name: sql::text(row, "name")?,
        description: sql::text(row, "description")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}
