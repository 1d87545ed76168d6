//! Runs through the real built-in pool: completion with stored logs, the spec §11.9 example (review passed and refused), stop, retry.

use crate::common::{
    admin, create_pipeline, is_alive, job, job_status, marker_dir, settings, start, step_log,
    summary, trigger, wait_for, wait_for_file, wait_status, wait_until_dead,
};
use runnel_domain::Format;
use runnel_domain::status::{JobStatus, RunStatus, StageStatus, StepStatus};
use runnel_server::RunningServer;

const TWO_JOBS: &str = r#"
stages:
  - name: build
    jobs:
      - name: greet
        steps:
          - run: echo hello from runnel
      - name: after
        needs: [greet]
        steps:
          - run: |
              echo "second job"
              echo "to stderr" >&2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_to_completed_through_the_built_in_pool_and_its_logs_are_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(settings(dir.path())).await;
    let pipeline = create_pipeline(&server, TWO_JOBS, Format::Yaml).await;
    let run_id = trigger(&server, &pipeline).await;
    let detail = wait_status(&server, &run_id, RunStatus::Completed).await;
    for identifier in ["greet", "after"] {
        let job = job(&detail, identifier);
        assert_eq!(job.status, JobStatus::Completed, "{}", summary(&detail));
        assert_eq!(job.steps[0].status, StepStatus::Completed);
        assert_eq!(job.steps[0].exit_code, Some(0));
        assert!(
            job.exec_id
                .as_deref()
                .is_some_and(|id| id.starts_with("builtin-"))
        );
    }
    let log = step_log(&server, &detail, "greet").await;
    assert!(log.contains("[INFO] hello from runnel\n"), "{log}");
    let log = step_log(&server, &detail, "after").await;
    assert!(log.contains("[INFO] second job\n"), "{log}");
    assert!(log.contains("[ERROR] to stderr\n"), "{log}");
    server.shutdown().await;
}

/// The spec §11.9 example with `make` and `./deploy.sh` replaced by `echo` and the approver
/// replaced by the bootstrap admin.
async fn codearts_example(server: &RunningServer) -> String {
    let admin = admin(server).await;
    let text = include_str!("codearts_example.json")
        .replace(
            "make build VERSION=${releaseVersion}",
            "echo build VERSION=${releaseVersion}",
        )
        .replace("make lint", "echo lint")
        .replace("make test", "echo test")
        .replace(
            "./deploy.sh ${env} ${app_COMMIT_ID_SHORT}",
            "echo deploy ${env} ${app_COMMIT_ID_SHORT}",
        )
        .replace("8d7c6b5a4f3e42d1c0b9a8f7e6d5c4b3", &admin.user_id);
    assert!(!text.contains("make ") && !text.contains("deploy.sh"));
    create_pipeline(server, &text, Format::Json).await
}

/// Runs the example up to its review and returns the run id and the review's step run id.
async fn run_to_review(server: &RunningServer) -> (String, String) {
    let pipeline = codearts_example(server).await;
    let run_id = trigger(server, &pipeline).await;
    let detail = wait_for(server, &run_id, "the review", |detail| {
        detail.run.status == RunStatus::Paused
            && job_status(detail, "JOB_Revw1") == JobStatus::Paused
    })
    .await;
    assert_eq!(job_status(&detail, "JOB_Cmpl1"), JobStatus::Completed);
    assert_eq!(job_status(&detail, "JOB_Test1"), JobStatus::Completed);
    assert_eq!(job_status(&detail, "JOB_Lint1"), JobStatus::Unselected);
    let log = step_log(server, &detail, "JOB_Cmpl1").await;
    assert!(log.contains("build VERSION="), "{log}");
    let review = job(&detail, "JOB_Revw1").steps[0].id.clone();
    (run_id, review)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_codearts_example_with_the_review_passed_and_the_stage_admitted_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(settings(dir.path())).await;
    let admin = admin(&server).await;
    let (run_id, review) = run_to_review(&server).await;
    server
        .engine()
        .review(&run_id, &review, &admin, true, "ship it")
        .await
        .expect("review passed");
    let detail = wait_for(&server, &run_id, "the deploy stage's admission", |detail| {
        detail.stages[2].status == StageStatus::Paused
    })
    .await;
    assert_eq!(detail.run.status, RunStatus::Paused);
    assert_eq!(job_status(&detail, "JOB_Revw1"), JobStatus::Completed);
    let gate = detail.stages[2]
        .pre
        .first()
        .expect("admission gate")
        .id
        .clone();
    server
        .engine()
        .admission(&run_id, &gate, true)
        .await
        .expect("stage admitted");
    let detail = wait_status(&server, &run_id, RunStatus::Completed).await;
    assert!(
        detail
            .stages
            .iter()
            .all(|stage| stage.status == StageStatus::Completed),
        "{}",
        summary(&detail)
    );
    // The deploy job runs only for manual runs of branch `main`; this run has no sources, so
    // its condition is false and it is skipped, which counts as success for its stage.
    assert_eq!(
        job_status(&detail, "JOB_Depl1"),
        JobStatus::Skipped,
        "{}",
        summary(&detail)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_codearts_example_with_the_review_refused_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(settings(dir.path())).await;
    let admin = admin(&server).await;
    let (run_id, review) = run_to_review(&server).await;
    server
        .engine()
        .review(&run_id, &review, &admin, false, "not today")
        .await
        .expect("review refused");
    let detail = wait_status(&server, &run_id, RunStatus::Failed).await;
    assert_eq!(job_status(&detail, "JOB_Revw1"), JobStatus::Failed);
    assert_eq!(
        detail.stages[2].status,
        StageStatus::Skipped,
        "{}",
        summary(&detail)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_run_kills_its_step_processes_and_a_retry_runs_the_job_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let markers = marker_dir(dir.path());
    let server = start(settings(dir.path())).await;
    let definition = r#"
jobs:
  - name: sleeper
    steps:
      - run: |
          if [ -f DIR/stopped ]; then echo "running again"; exit 0; fi
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
    assert!(is_alive(bash) && is_alive(sleep));

    let admin = admin(&server).await;
    server.engine().stop(&run_id, &admin).await.expect("stop");
    let detail = wait_status(&server, &run_id, RunStatus::Canceled).await;
    assert_eq!(job_status(&detail, "sleeper"), JobStatus::Canceled);
    wait_until_dead(sleep).await;
    wait_until_dead(bash).await;

    std::fs::write(markers.join("stopped"), "").expect("marker");
    server.engine().retry(&run_id, &[]).await.expect("retry");
    let detail = wait_status(&server, &run_id, RunStatus::Completed).await;
    let job = job(&detail, "sleeper");
    assert_eq!(job.attempt, 2, "{}", summary(&detail));
    let log = step_log(&server, &detail, "sleeper").await;
    assert!(log.contains("running again"), "{log}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_retried_within_the_same_run_and_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let markers = marker_dir(dir.path());
    let server = start(settings(dir.path())).await;
    let definition = r#"
jobs:
  - name: flaky
    steps:
      - run: |
          if [ -f DIR/fixed ]; then echo "fixed now"; exit 0; fi
          echo "broken" >&2
          exit 3
"#
    .replace("DIR", &markers.display().to_string());
    let pipeline = create_pipeline(&server, &definition, Format::Yaml).await;
    let run_id = trigger(&server, &pipeline).await;
    let failed = wait_status(&server, &run_id, RunStatus::Failed).await;
    let flaky = job(&failed, "flaky");
    assert_eq!(flaky.status, JobStatus::Failed);
    assert_eq!(flaky.steps[0].exit_code, Some(3));
    let log = step_log(&server, &failed, "flaky").await;
    assert!(log.contains("[ERROR] broken"), "{log}");

    std::fs::write(markers.join("fixed"), "").expect("marker");
    server
        .engine()
        .retry(&run_id, std::slice::from_ref(&flaky.id))
        .await
        .expect("retry");
    let detail = wait_status(&server, &run_id, RunStatus::Completed).await;
    assert_eq!(detail.run.run_number, failed.run.run_number, "the same run");
    assert_eq!(job(&detail, "flaky").attempt, 2);
    let log = step_log(&server, &detail, "flaky").await;
    assert!(log.contains("fixed now"), "{log}");
    server.shutdown().await;
}
