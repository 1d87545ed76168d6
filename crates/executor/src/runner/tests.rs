//! Job semantics of `run_job`, driven by the fake executor (no processes).

use std::sync::atomic::Ordering;
use std::time::Duration;

use runnel_domain::status::{JobStatus, StepStatus};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::run_job;
use crate::fake::{FakeBehavior, FakeExecutor};
use crate::task::{JobEvent, JobOutcome, JobTask, LogStream, StepAction, StepTask};

fn step(identifier: &str) -> StepTask {
    StepTask {
        identifier: identifier.to_owned(),
        name: identifier.to_owned(),
        action: StepAction::Shell {
            script: String::new(),
        },
        env: Vec::new(),
    }
}

fn job(steps: Vec<StepTask>) -> JobTask {
    JobTask {
        job_key: "run-1-JOB_test".to_owned(),
        steps,
        ..JobTask::default()
    }
}

fn exit(code: i32, stdout: &str) -> FakeBehavior {
    FakeBehavior::Exit {
        code,
        stdout: stdout.as_bytes().to_vec(),
        outputs: Vec::new(),
    }
}

/// Runs the job to its end (bounded by a generous timeout) and returns the events it sent.
async fn run(
    executor: &FakeExecutor,
    task: &JobTask,
    cancel: CancellationToken,
) -> (JobOutcome, Vec<JobEvent>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collect = async {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    };
    let both = async { tokio::join!(run_job(executor, task, tx, cancel), collect) };
    tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("the job ends")
}

fn statuses(outcome: &JobOutcome) -> Vec<StepStatus> {
    outcome.steps.iter().map(|result| result.status).collect()
}

fn system_text(events: &[JobEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            JobEvent::Log(chunk) if chunk.stream == LogStream::System => {
                Some(String::from_utf8_lossy(&chunk.data).into_owned())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_failing_step_fails_the_job_and_skips_the_rest() {
    let executor = FakeExecutor::new().with_step("b", exit(2, "boom\n"));
    let (outcome, events) = run(
        &executor,
        &job(vec![step("a"), step("b"), step("c")]),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.status, JobStatus::Failed);
    assert_eq!(
        outcome.message.as_deref(),
        Some("step `b` failed: exit code 2")
    );
    assert_eq!(
        statuses(&outcome),
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    assert_eq!(outcome.steps[1].exit_code, Some(2));
    assert_eq!(executor.counters().steps_run.load(Ordering::SeqCst), 2);
    assert_eq!(executor.counters().cleaned_up.load(Ordering::SeqCst), 1);
    let finished = events
        .iter()
        .filter(|event| matches!(event, JobEvent::StepFinished { .. }))
        .count();
    assert_eq!(finished, 3, "every step gets exactly one StepFinished");
}

#[tokio::test]
async fn disabled_steps_are_skipped_without_failing_the_job() {
    let mut disabled = step("b");
    disabled.action = StepAction::Disabled;
    let executor = FakeExecutor::new();
    let (outcome, _) = run(
        &executor,
        &job(vec![step("a"), disabled, step("c")]),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.status, JobStatus::Completed);
    assert_eq!(
        statuses(&outcome),
        [
            StepStatus::Completed,
            StepStatus::Skipped,
            StepStatus::Completed
        ]
    );
    assert_eq!(outcome.steps[1].started_at, None);
}

#[tokio::test]
async fn unsupported_plugins_fail_with_a_clear_message() {
    let mut plugin = step("b");
    plugin.action = StepAction::Unsupported {
        task: "official_devcloud_deploy".to_owned(),
    };
    let executor = FakeExecutor::new();
    let (outcome, events) = run(
        &executor,
        &job(vec![step("a"), plugin, step("c")]),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.status, JobStatus::Failed);
    assert_eq!(
        statuses(&outcome),
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    let expected = "plugin `official_devcloud_deploy` is not supported by this executor";
    assert_eq!(outcome.steps[1].message.as_deref(), Some(expected));
    assert_eq!(system_text(&events), format!("{expected}\n"));
}

#[tokio::test]
async fn the_job_timeout_stops_the_running_step_with_message_timeout() {
    let executor = FakeExecutor::new().with_step("b", FakeBehavior::EndlessOutput);
    let mut task = job(vec![step("a"), step("b"), step("c")]);
    task.timeout = Some(Duration::from_millis(200));
    let (outcome, events) = run(&executor, &task, CancellationToken::new()).await;
    assert_eq!(outcome.status, JobStatus::Failed);
    assert_eq!(outcome.message.as_deref(), Some("timeout"));
    assert_eq!(
        statuses(&outcome),
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    assert_eq!(outcome.steps[1].message.as_deref(), Some("timeout"));
    assert_eq!(
        system_text(&events),
        "step timed out after 200ms (job timeout)\n"
    );
}

#[tokio::test]
async fn cancelling_a_job_cancels_the_running_step_and_skips_the_rest() {
    let executor = FakeExecutor::new().with_step("b", FakeBehavior::Hang);
    let task = job(vec![step("a"), step("b"), step("c")]);
    let cancel = CancellationToken::new();
    let trigger = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
    };
    let ((outcome, _), ()) = tokio::join!(run(&executor, &task, cancel.clone()), trigger);
    assert_eq!(outcome.status, JobStatus::Canceled);
    assert_eq!(
        statuses(&outcome),
        [
            StepStatus::Completed,
            StepStatus::Canceled,
            StepStatus::Skipped
        ]
    );
    assert_eq!(executor.counters().cleaned_up.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_job_cancelled_before_it_starts_runs_nothing() {
    let executor = FakeExecutor::new();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (outcome, _) = run(&executor, &job(vec![step("a")]), cancel).await;
    assert_eq!(outcome.status, JobStatus::Canceled);
    assert_eq!(statuses(&outcome), [StepStatus::Skipped]);
    assert_eq!(executor.counters().prepared.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failed_prepare_fails_the_job_without_running_steps() {
    let executor = FakeExecutor::new().failing_prepare();
    let (outcome, _) = run(
        &executor,
        &job(vec![step("a"), step("b")]),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.status, JobStatus::Failed);
    assert_eq!(
        outcome.message.as_deref(),
        Some("cannot prepare the job workspace: fake prepare: disk full")
    );
    assert_eq!(
        statuses(&outcome),
        [StepStatus::Skipped, StepStatus::Skipped]
    );
    assert_eq!(executor.counters().steps_run.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_step_that_cannot_start_fails_and_cleanup_still_runs() {
    let executor = FakeExecutor::new().with_step("a", FakeBehavior::FailToStart);
    let (outcome, events) = run(
        &executor,
        &job(vec![step("a"), step("b")]),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        statuses(&outcome),
        [StepStatus::Failed, StepStatus::Skipped]
    );
    assert!(system_text(&events).starts_with("executor error: cannot start the step process"));
    assert_eq!(executor.counters().cleaned_up.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn logs_outputs_and_messages_are_masked() {
    let behavior = FakeBehavior::Exit {
        code: 0,
        stdout: b"token is hunter2\n".to_vec(),
        outputs: vec![("token".to_owned(), "hunter2".to_owned())],
    };
    let executor = FakeExecutor::new().with_step("a", behavior);
    let mut task = job(vec![step("a")]);
    task.secrets = vec!["hunter2".to_owned()];
    let (outcome, events) = run(&executor, &task, CancellationToken::new()).await;
    let log: Vec<u8> = events
        .iter()
        .filter_map(|event| match event {
            JobEvent::Log(chunk) => Some(chunk.data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(log, b"token is ******\n");
    assert_eq!(
        outcome.steps[0].outputs,
        vec![("token".to_owned(), "******".to_owned())]
    );
}
