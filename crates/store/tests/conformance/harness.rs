//! Per-test databases for the conformance suite: an SQLite file in a temp dir, or a fresh PostgreSQL database dropped afterwards.

use runnel_store::{SecretKey, Store, StoreConfig};
use sqlx::Connection;
use std::future::Future;
use std::path::PathBuf;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

/// A database that exists for one test; dropped (PostgreSQL) or deleted (SQLite) afterwards,
/// also when the test fails.
pub(crate) struct TestDb {
    pub(crate) kind: Kind,
    pub(crate) url: String,
    pub(crate) key: SecretKey,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub(crate) fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.url.clone(), self.key.clone());
        config.max_connections = 8;
        config
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open(self.config()).await.expect("store opens")
    }

    pub(crate) async fn open_with(&self, change: impl FnOnce(&mut StoreConfig)) -> Store {
        let mut config = self.config();
        change(&mut config);
        Store::open(config).await.expect("store opens")
    }

    /// The SQLite file, for tests that look at it directly.
    pub(crate) fn sqlite_path(&self) -> Option<PathBuf> {
        self._dir.as_ref().map(|dir| dir.path().join("runnel.db"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = admin_url();
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                sqlx::any::install_default_drivers();
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// A fresh database of `kind`, or `None` when PostgreSQL is unreachable (outside CI).
pub(crate) async fn fresh(kind: Kind) -> Option<TestDb> {
    let key = SecretKey::generate();
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("runnel.db").display()
            );
            Some(TestDb {
                kind,
                url,
                key,
                _dir: Some(dir),
                pg_name: None,
            })
        }
        Kind::Postgres => {
            sqlx::any::install_default_drivers();
            let admin = admin_url();
            let mut conn = match sqlx::AnyConnection::connect(&admin).await {
                Ok(conn) => conn,
                Err(err) if !is_ci() => {
                    eprintln!(
                        "NOTICE: PostgreSQL at {admin} is unreachable ({err}); skipping the PostgreSQL run of this test"
                    );
                    return None;
                }
                Err(err) => panic!("PostgreSQL at {admin} is unreachable and CI=true: {err}"),
            };
            let name = format!("runnel_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            Some(TestDb {
                kind,
                url: runnel_store::bench::with_database(&admin, &name),
                key,
                _dir: None,
                pg_name: Some(name),
            })
        }
    }
}

/// Runs `test` on a fresh database of `kind` (skipping PostgreSQL when unreachable outside CI).
pub(crate) async fn with_db<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(db) = fresh(kind).await {
        test(db).await;
    }
}

/// Declares one test per backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! conformance {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($db: $crate::harness::TestDb) $body

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::harness::with_db($crate::harness::Kind::Sqlite, body).await;
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::harness::with_db($crate::harness::Kind::Postgres, body).await;
            }
        }
    };
}
