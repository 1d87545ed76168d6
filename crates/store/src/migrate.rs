//! Embedded migrations per backend, applied at open; a schema newer than this binary is refused.

use crate::config::Backend;
use crate::error::StoreError;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// The newest schema version this binary knows for `backend`.
pub(crate) fn known_version(backend: Backend) -> i64 {
    migrator(backend)
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// The newest schema version applied to the database (0 when none).
pub(crate) async fn applied_version(pool: &AnyPool, backend: Backend) -> Result<i64, StoreError> {
    // The bookkeeping table exists once any migration ran; a fresh database has none.
    let table_count = match backend {
        Backend::Sqlite => sqlx::query(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
        ),
    };
    let has_table = table_count.fetch_one(pool).await?.try_get::<i64, _>(0)? > 0;
    if !has_table {
        return Ok(0);
    }
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Refuses a newer schema, then applies the missing migrations (under sqlx's migration lock
/// on PostgreSQL, so several servers starting at once apply each migration once).
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<i64, StoreError> {
    let known = known_version(backend);
    let found = applied_version(pool, backend).await?;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    migrator(backend).run(pool).await?;
    Ok(known)
}
