//! Graceful shutdown: a short step finishes within the grace period; a long one is stopped unreported and the next start recovers its run.

use crate::common::{
    create_pipeline, job, marker_dir, settings, start, step_log, summary, trigger, wait_for_file,
    wait_status, wait_until_dead,
};
use runnel_domain::Format;
use runnel_domain::status::{JobStatus, RunStatus};
use runnel_server::SECRET_KEY_FILE;
use runnel_store::{RunStore, SecretKey, Store, StoreConfig};
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_running_at_shutdown_may_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("temp dir");
    let markers = marker_dir(dir.path());
    let mut settings = settings(dir.path());
    settings.server.shutdown_grace = Duration::from_secs(60);
    let server = start(settings.clone()).await;
    let definition = r#"
jobs:
  - name: short
    steps:
      - run: |
          echo started > DIR/started
          sleep 1
          echo finished
"#
    .replace("DIR", &markers.display().to_string());
    let pipeline = create_pipeline(&server, &definition, Format::Yaml).await;
    let run_id = trigger(&server, &pipeline).await;
    wait_for_file(&markers.join("started")).await;
    server.shutdown().await;

    let state = stored_detail(dir.path(), &run_id).await;
    assert_eq!(
        job(&state, "short").status,
        JobStatus::Completed,
        "{}",
        summary(&state)
    );

    let server = start(settings).await;
    let detail = wait_status(&server, &run_id, RunStatus::Completed).await;
    assert_eq!(job(&detail, "short").attempt, 1, "not run again");
    let log = step_log(&server, &detail, "short").await;
    assert!(log.contains("finished"), "{log}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_still_running_after_the_grace_period_is_stopped_and_recovered_by_the_next_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let markers = marker_dir(dir.path());
    let mut settings = settings(dir.path());
    settings.server.shutdown_grace = Duration::from_millis(500);
    let server = start(settings.clone()).await;
    let definition = r#"
jobs:
  - name: long
    steps:
      - run: |
          if [ -f DIR/second ]; then echo "second attempt"; exit 0; fi
          touch DIR/second
          echo $$ > DIR/bash.pid
          sleep 300 &
          echo $! > DIR/sleep.pid
          wait
"#
    .replace("DIR", &markers.display().to_string());
    let pipeline = create_pipeline(&server, &definition, Format::Yaml).await;
    let run_id = trigger(&server, &pipeline).await;
    let bash: i32 = wait_for_file(&markers.join("bash.pid"))
        .await
        .parse()
        .expect("pid");
    let sleep: i32 = wait_for_file(&markers.join("sleep.pid"))
        .await
        .parse()
        .expect("pid");
    server.shutdown().await;
    wait_until_dead(sleep).await;
    wait_until_dead(bash).await;

    // Stopped without a report: the job is still RUNNING on its (expiring) lease.
    let state = stored_detail(dir.path(), &run_id).await;
    assert_eq!(state.run.status, RunStatus::Running, "{}", summary(&state));
    assert_eq!(job(&state, "long").status, JobStatus::Running);
    assert_eq!(job(&state, "long").attempt, 1);

    let server = start(settings).await;
    let detail = wait_status(&server, &run_id, RunStatus::Completed).await;
    let long = job(&detail, "long");
    assert_eq!(
        long.attempt,
        2,
        "re-queued after the lease expired: {}",
        summary(&detail)
    );
    let log = step_log(&server, &detail, "long").await;
    assert!(log.contains("second attempt"), "{log}");
    server.shutdown().await;
}

/// The run as stored, read with a store of its own while no server runs.
async fn stored_detail(data_dir: &Path, run_id: &str) -> runnel_store::RunDetail {
    let key = std::fs::read_to_string(data_dir.join(SECRET_KEY_FILE)).expect("secret key");
    let key = SecretKey::from_hex(&key).expect("64 hex digits");
    let store = Store::open(StoreConfig::sqlite(&data_dir.join("runnel.db"), key))
        .await
        .expect("store opens");
    let detail = store
        .run_detail(run_id)
        .await
        .expect("read")
        .expect("run exists");
    store.close().await;
    detail
}
