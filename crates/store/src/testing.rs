//! Test support for crates that run the server or the API on PostgreSQL: a database of its own
//! per test, dropped afterwards (also when the test fails). Like [`crate::bench`], it is part of
//! the library so every crate's tests share one copy.

use sqlx::Connection as _;

/// A PostgreSQL database that exists for one test.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Creates `<prefix>_<random id>` on `$TEST_DATABASE_URL` (default the local server, user
    /// `root`). Without PostgreSQL: `None` with a notice, or a panic when `CI=true` (CI must
    /// fail rather than skip).
    pub async fn create(prefix: &str) -> Option<TestDatabase> {
        sqlx::any::install_default_drivers();
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned());
        let mut conn = match sqlx::AnyConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(err) if !std::env::var("CI").is_ok_and(|value| value == "true" || value == "1") => {
                eprintln!("NOTICE: PostgreSQL at {admin} is unreachable ({err}); skipping");
                return None;
            }
            Err(err) => panic!("PostgreSQL at {admin} is unreachable and CI=true: {err}"),
        };
        let name = format!("{prefix}_{}", crate::new_id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let url = crate::bench::with_database(&admin, &name);
        Some(TestDatabase { admin, name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}
