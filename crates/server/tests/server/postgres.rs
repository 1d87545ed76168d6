//! The server on PostgreSQL (`TEST_DATABASE_URL`, default a local server): bootstrap into the database, credentials in the data directory, a run through the pool.
//! Skipped with a notice when PostgreSQL is unreachable, unless `CI=true`.

use crate::common::{create_pipeline, settings_with, start, trigger, wait_status};
use runnel_domain::Format;
use runnel_domain::status::RunStatus;
use runnel_server::CREDENTIALS_FILE;
use runnel_store::testing::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_bootstrap_goes_to_the_database_and_the_credentials_file_to_the_data_dir() {
    let Some(database) = TestDatabase::create("runnel_server_test").await else {
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
