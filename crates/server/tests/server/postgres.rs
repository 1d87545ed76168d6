//! The server on PostgreSQL (`TEST_DATABASE_URL`, default a local server): bootstrap into the database, credentials in the data directory, a run through the pool.
//! Skipped with a notice when PostgreSQL is unreachable, unless `CI=true`.

use crate::common::{create_pipeline, settings_with, start, trigger, wait_status};
use runnel_domain::Format;
use runnel_domain::status::RunStatus;
use runnel_server::CREDENTIALS_FILE;
use sqlx::Connection as _;

/// A database that exists for one test and is dropped afterwards, also when the test fails.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> Option<TestDatabase> {
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
        let name = format!("runnel_server_test_{}", runnel_store::new_id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let url = runnel_store::bench::with_database(&admin, &name);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_bootstrap_goes_to_the_database_and_the_credentials_file_to_the_data_dir() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings_with(
        dir.path(),
        &[("RUNNEL__STORAGE__DATABASE_URL", database.url.as_str())],
    );
    let server = start(settings.clone()).await;
    assert!(server.credentials().is_some(), "the first start bootstraps");
    assert!(dir.path().join(CREDENTIALS_FILE).exists());
    assert!(!dir.path().join("runnel.db").exists(), "no SQLite database");
    let pipeline = create_pipeline(
        &server,
        "jobs:\n  - name: solo\n    steps:\n      - run: echo on postgres\n",
        Format::Yaml,
    )
    .await;
    let run_id = trigger(&server, &pipeline).await;
    wait_status(&server, &run_id, RunStatus::Completed).await;
    server.shutdown().await;

    // The data directory does not decide: with the file gone, the database still says "done".
    std::fs::remove_file(dir.path().join(CREDENTIALS_FILE)).expect("remove");
    let again = start(settings).await;
    assert!(again.credentials().is_none());
    assert!(!dir.path().join(CREDENTIALS_FILE).exists(), "not rewritten");
    again.shutdown().await;
}
