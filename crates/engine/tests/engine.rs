//! The engine through its public interface, deterministic: a manual clock, a real SQLite store
//! in a temporary directory, and a scripted fake agent that claims jobs and reports outcomes
//! (or vanishes mid-job). No sleeps: every wait is for an event, with a timeout.

use runnel_domain::status::{JobStatus, RunStatus, StageStatus, StepStatus};
use runnel_domain::{Format, Timestamp, compile_text};
use runnel_engine::{
    Actor, ClaimInput, DelayAction, Dispatch, Engine, EngineConfig, EngineTask, ManualClock,
    TriggerRequest,
};
use runnel_store::{
    IdentityStore, JobOutcome, JobQueue, NewPipeline, PipelineStore, PipelineUpdate, RunDetail,
    RunStore, SecretKey, StepReport, Store, StoreConfig, new_id,
};
use std::sync::Arc;
use std::time::Duration;

struct Harness {
    engine: Engine,
    task: Option<EngineTask>,
    clock: ManualClock,
    store: Store,
    pipeline_id: String,
    user: Actor,
    _dir: tempfile::TempDir,
}

fn config() -> EngineConfig {
    EngineConfig {
        lease: Duration::from_secs(3),
        heartbeat_interval: Duration::from_secs(1),
        // Tests sweep explicitly with `tick()`.
        sweep_interval: Duration::from_secs(3600),
        max_tries: 2,
        utc_offset_minutes: 0,
        public_url: String::new(),
    }
}

impl Harness {
    async fn new(yaml: &str) -> Harness {
        Harness::with_format(yaml, Format::Yaml).await
    }

    async fn with_format(text: &str, format: Format) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store_config =
            StoreConfig::sqlite(&dir.path().join("runnel.db"), SecretKey::generate());
        let store = Store::open(store_config).await.expect("store opens");
        let clock = ManualClock::new(Timestamp::from_millis(1_750_000_000_000));
        let now = runnel_engine::Clock::now(&clock);
        let domain = store.create_domain("default", now).await.expect("domain");
        let user = store
            .create_user(&domain.id, "alice", None, now)
            .await
            .expect("user");
        let project = store
            .create_project(&domain.id, "demo", "", now)
            .await
            .expect("project");
        // Reviews name their approvers by user id: let `APPROVER` stand for alice.
        let text = text.replace("APPROVER", &user.id);
        let spec =
            compile_text(&text, format).unwrap_or_else(|diagnostics| panic!("{diagnostics:#?}"));
        let concurrency = spec.concurrency();
        let pipeline = store
            .create_pipeline(NewPipeline {
                id: new_id(),
                project_id: project.id.clone(),
                name: "demo".into(),
                description: String::new(),
                is_publish: false,
                component_id: None,
                group_id: None,
                manifest_version: "3.0".into(),
                definition: spec.definition().to_string(),
                compiled: spec.definition().clone(),
                sources: serde_json::json!([]),
                settings: serde_json::json!({"concurrency_control": {
                    "enable": concurrency.enabled,
                    "concurrency_number": concurrency.max_runs,
                    "exceed_action": if concurrency.exceed_action == runnel_domain::spec::ExceedAction::Queue { "QUEUE" } else { "ABORT" },
                }}),
                variables: spec.variables().to_vec(),
                variable_group_ids: Vec::new(),
                tag_ids: Vec::new(),
                origin_id: None,
                from_source: 0,
                creator_id: user.id.clone(),
                now,
            })
            .await
            .expect("pipeline");
        let (engine, task) = Engine::start(store.clone(), config(), Arc::new(clock.clone()))
            .await
            .expect("engine starts");
        Harness {
            engine,
            task: Some(task),
            clock,
            store,
            pipeline_id: pipeline.id,
            user: Actor {
                user_id: user.id,
                user_name: "alice".into(),
                roles: Vec::new(),
            },
            _dir: dir,
        }
    }

    /// Claims and completes one job at a time: each is of the next run of `runs`, in order,
    /// and once a run is COMPLETED the next one is RUNNING.
    async fn finish_one_by_one(&self, runs: &[&String]) {
        for (index, run) in runs.iter().enumerate() {
            let dispatch = self.claim().await;
            assert_eq!(
                &dispatch.run_id, *run,
                "runs start in the order they were triggered"
            );
            self.finish(&dispatch, JobStatus::Completed).await;
            self.wait_status(run, RunStatus::Completed).await;
            if let Some(next) = runs.get(index + 1) {
                self.wait_status(next, RunStatus::Running).await;
            }
        }
    }

    /// Stops the engine and starts a new one on the same store (a restart).
    async fn restart(&mut self) {
        if let Some(task) = self.task.take() {
            task.shutdown().await;
        }
        let (engine, task) =
            Engine::start(self.store.clone(), config(), Arc::new(self.clock.clone()))
                .await
                .expect("engine starts");
        self.engine = engine;
        self.task = Some(task);
    }

    async fn trigger(&self) -> String {
        self.trigger_with(TriggerRequest::default()).await
    }

    async fn trigger_with(&self, request: TriggerRequest) -> String {
        let request = TriggerRequest {
            pipeline_id: self.pipeline_id.clone(),
            user_id: self.user.user_id.clone(),
            user_name: self.user.user_name.clone(),
            trigger_type: "Manual".into(),
            ..request
        };
        self.engine.trigger(request).await.expect("trigger").run_id
    }

    async fn detail(&self, run_id: &str) -> RunDetail {
        self.store
            .run_detail(run_id)
            .await
            .expect("read")
            .expect("run exists")
    }

    /// Waits until `done` holds for the run, re-checking on every engine change.
    async fn wait(&self, run_id: &str, what: &str, done: impl Fn(&RunDetail) -> bool) -> RunDetail {
        let mut changes = self.engine.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let detail = self.detail(run_id).await;
            if done(&detail) {
                return detail;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}: {:#?}",
                summary(&detail)
            );
            // A change or a short poll interval (store writes made outside the engine do not notify).
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), changes.recv()).await;
        }
    }

    async fn wait_status(&self, run_id: &str, status: RunStatus) -> RunDetail {
        self.wait(run_id, &format!("run {status}"), |detail| {
            detail.run.status == status
        })
        .await
    }

    /// Claims the next job (waiting for one), as an agent would.
    async fn claim(&self) -> Dispatch {
        let input = ClaimInput {
            worker_id: "fake-agent".into(),
            pool: None,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(dispatch) = self.engine.claim(&input).await.expect("claim") {
                return dispatch;
            }
            assert!(tokio::time::Instant::now() < deadline, "no job to claim");
            self.engine.wait_for_work(Duration::from_millis(50)).await;
        }
    }

    /// Runs a claimed job as a fake agent: every step reports, logs a line, ends with `status`.
    async fn finish(&self, dispatch: &Dispatch, status: JobStatus) {
        let now = self.engine.now();
        for (position, step_run_id) in dispatch.step_run_ids.iter().enumerate() {
            let step_status =
                if status == JobStatus::Completed || position + 1 < dispatch.step_run_ids.len() {
                    StepStatus::Completed
                } else {
                    StepStatus::Failed
                };
            let report = |status| StepReport {
                step_run_id: step_run_id.clone(),
                status,
                exit_code: None,
                message: None,
                at: now,
                started_at: None,
                outputs: Vec::new(),
            };
            self.engine
                .report_step(&dispatch.token, report(StepStatus::Running))
                .await
                .expect("report");
            self.engine
                .append_log(&dispatch.token, step_run_id, 0, b"hello\n".to_vec())
                .await
                .expect("log");
            self.engine
                .report_step(&dispatch.token, report(step_status))
                .await
                .expect("report");
        }
        let message = (status != JobStatus::Completed).then(|| "exit code 1".to_owned());
        self.engine
            .complete(&dispatch.token, JobOutcome { status, message })
            .await
            .expect("complete");
    }

    async fn run_next(&self, status: JobStatus) -> String {
        let dispatch = self.claim().await;
        self.finish(&dispatch, status).await;
        dispatch.job_run_id
    }
}

fn job_status(detail: &RunDetail, identifier: &str) -> JobStatus {
    detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .find(|job| job.identifier == identifier)
        .expect("job")
        .status
}

fn job_id(detail: &RunDetail, identifier: &str) -> String {
    detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .find(|job| job.identifier == identifier)
        .expect("job")
        .id
        .clone()
}

fn summary(detail: &RunDetail) -> Vec<String> {
    let mut lines = vec![format!("run {}", detail.run.status)];
    for stage in &detail.stages {
        lines.push(format!("stage {} {}", stage.identifier, stage.status));
        for job in &stage.jobs {
            lines.push(format!(
                "  job {} {} {:?}",
                job.identifier, job.status, job.message
            ));
        }
    }
    lines
}

const TWO_STAGES: &str = r#"
stages:
  - name: build
    jobs:
      - { name: compile, steps: [{ run: make }] }
      - { name: test, needs: [compile], steps: [{ run: make test }, { run: make check }] }
  - name: deploy
    jobs:
      - { name: ship, steps: [{ run: ./ship }] }
"#;

#[tokio::test]
async fn a_run_goes_from_trigger_to_completed_through_the_queue() {
    let harness = Harness::new(TWO_STAGES).await;
    let run_id = harness.trigger().await;
    let detail = harness.detail(&run_id).await;
    assert_eq!(detail.run.run_number, 1);

    let dispatch = harness.claim().await;
    assert_eq!(dispatch.job_key, format!("{run_id}-compile"));
    assert_eq!(dispatch.prepared.steps.len(), 1);
    assert!(
        dispatch
            .prepared
            .env
            .iter()
            .any(|(name, value)| name == "PIPELINE_NUMBER" && value == "1")
    );
    harness.finish(&dispatch, JobStatus::Completed).await;
    harness.run_next(JobStatus::Completed).await;
    let detail = harness
        .wait(&run_id, "stage build done", |detail| {
            detail.stages[0].status == StageStatus::Completed
        })
        .await;
    assert_eq!(job_status(&detail, "test"), JobStatus::Completed);
    harness.run_next(JobStatus::Completed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Completed).await;
    assert!(detail.run.end_time.is_some());
    assert!(
        detail
            .stages
            .iter()
            .all(|stage| stage.status == StageStatus::Completed)
    );
}

/// The first stage's conditions read the run's number and its auto-increment value, which its
/// creation's transaction allocates: the first step, taken in that transaction, sees them.
const FIRST_STAGE_CONDITIONS: &str = r#"
variables:
  VERSION: { type: autoIncrement, value: 1.0.0 }
stages:
  - name: build
    jobs:
      - { name: first, if: "${{ pipeline.run_number == '1' }}", steps: [{ run: make }] }
      - { name: second, if: "${{ env.VERSION == '1.0.1' }}", steps: [{ run: make }] }
      - { name: always, steps: [{ run: make }] }
"#;

#[tokio::test]
async fn a_run_without_a_concurrency_limit_is_started_when_its_trigger_answers() {
    let harness = Harness::new(FIRST_STAGE_CONDITIONS).await;
    for number in 1..=2 {
        let run_id = harness.trigger().await;
        // Read at once, without waiting for the event loop: the creation made the first step.
        let detail = harness.detail(&run_id).await;
        assert_eq!(detail.run.run_number, number);
        assert_eq!(
            (detail.run.status, detail.run.state_version),
            (RunStatus::Running, 1)
        );
        assert_eq!(detail.stages[0].status, StageStatus::Running);
        let (first, second) = if number == 1 {
            (JobStatus::Queued, JobStatus::Skipped)
        } else {
            (JobStatus::Skipped, JobStatus::Queued)
        };
        assert_eq!(job_status(&detail, "first"), first, "run {number}");
        assert_eq!(job_status(&detail, "second"), second, "run {number}");
        assert_eq!(job_status(&detail, "always"), JobStatus::Queued);
        for _ in 0..2 {
            let dispatch = harness.claim().await;
            assert!(dispatch.prepared.env.iter().any(|(name, value)| {
                name == "VERSION" && *value == format!("1.0.{}", number - 1)
            }));
            harness.finish(&dispatch, JobStatus::Completed).await;
        }
        harness.wait_status(&run_id, RunStatus::Completed).await;
    }
}

#[tokio::test]
async fn a_completion_carries_its_step_results_and_claims_the_next_job() {
    let harness = Harness::new(TWO_STAGES).await;
    let first_run = harness.trigger().await;
    let second_run = harness.trigger().await;
    let first = harness.claim().await;
    assert_eq!(first.job_key, format!("{first_run}-compile"));
    // The second run's engine step queues its first job after its trigger returned.
    harness
        .wait(&second_run, "its first job queued", |detail| {
            job_status(detail, "compile") == JobStatus::Queued
        })
        .await;
    let now = harness.engine.now();
    let result = StepReport {
        step_run_id: first.step_run_ids[0].clone(),
        status: StepStatus::Completed,
        exit_code: Some(0),
        message: None,
        at: now,
        started_at: Some(now),
        outputs: Vec::new(),
    };
    let input = ClaimInput {
        worker_id: "fake-agent".into(),
        pool: None,
    };
    let (finished, next) = harness
        .engine
        .complete_and_claim(
            &first.token,
            vec![result],
            JobOutcome {
                status: JobStatus::Completed,
                message: None,
            },
            &input,
        )
        .await
        .expect("complete and claim");
    assert_eq!(finished.status, JobStatus::Completed);
    // The oldest queued job: the second run's first, rendered like any claimed job.
    let next = next.expect("the next job");
    assert_eq!(next.job_key, format!("{second_run}-compile"));
    assert!(
        next.prepared
            .env
            .iter()
            .any(|(name, value)| name == "PIPELINE_NUMBER" && value == "2")
    );
    let detail = harness.detail(&first_run).await;
    let compile = &detail.stages[0].jobs[0];
    assert_eq!(compile.status, JobStatus::Completed);
    assert_eq!(
        (
            compile.steps[0].status,
            compile.steps[0].exit_code,
            compile.steps[0].start_time
        ),
        (StepStatus::Completed, Some(0), Some(now))
    );
    // The first run goes on (its engine step after the completion queues its next jobs).
    harness.finish(&next, JobStatus::Completed).await;
    for _ in 0..4 {
        harness.run_next(JobStatus::Completed).await;
    }
    harness.wait_status(&first_run, RunStatus::Completed).await;
    harness.wait_status(&second_run, RunStatus::Completed).await;
}

#[tokio::test]
async fn a_completion_writes_the_runs_next_step_and_hands_out_the_job_it_queued() {
    let harness = Harness::new(TWO_STAGES).await;
    let run_id = harness.trigger().await;
    let input = ClaimInput {
        worker_id: "fake-agent".into(),
        pool: None,
    };
    let completed = || JobOutcome {
        status: JobStatus::Completed,
        message: None,
    };
    let compile = harness.claim().await;
    assert_eq!(compile.job_key, format!("{run_id}-compile"));
    let version = harness.detail(&run_id).await.run.state_version;
    // `test` needs `compile`: the step written with the completion queues it, and the claim in
    // the same write takes it, rendered.
    let (_, next) = harness
        .engine
        .complete_and_claim(&compile.token, Vec::new(), completed(), &input)
        .await
        .expect("complete and claim");
    let test = next.expect("the run's next job, claimed with the completion");
    assert_eq!(test.job_key, format!("{run_id}-test"));
    assert_eq!(test.step_run_ids.len(), 2);
    let detail = harness.detail(&run_id).await;
    assert_eq!(detail.run.state_version, version + 1, "one engine step");
    assert_eq!(job_status(&detail, "compile"), JobStatus::Completed);
    assert_eq!(job_status(&detail, "test"), JobStatus::Running);
    // The deploy stage starts with the end of the build stage.
    let (_, next) = harness
        .engine
        .complete_and_claim(&test.token, Vec::new(), completed(), &input)
        .await
        .expect("complete and claim");
    let ship = next.expect("the deploy stage's job");
    assert_eq!(ship.job_key, format!("{run_id}-ship"));
    // The last completion ends the run before it answers.
    let mut changes = harness.engine.subscribe();
    let (_, next) = harness
        .engine
        .complete_and_claim(&ship.token, Vec::new(), completed(), &input)
        .await
        .expect("complete and claim");
    assert!(next.is_none());
    let detail = harness.detail(&run_id).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Completed,
        "{:?}",
        summary(&detail)
    );
    assert_eq!(detail.run.state_version, version + 3);
    assert_eq!(changes.try_recv().ok(), Some(run_id), "watchers are told");
}

#[tokio::test]
async fn a_failed_job_fails_the_run_and_a_retry_reruns_only_what_failed() {
    let harness = Harness::new(TWO_STAGES).await;
    let run_id = harness.trigger().await;
    harness.run_next(JobStatus::Completed).await;
    let failed = harness.run_next(JobStatus::Failed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Failed).await;
    assert_eq!(job_status(&detail, "ship"), JobStatus::Skipped);
    assert_eq!(job_status(&detail, "compile"), JobStatus::Completed);

    harness
        .engine
        .retry(&run_id, std::slice::from_ref(&failed))
        .await
        .expect("retry");
    let dispatch = harness.claim().await;
    assert_eq!(
        dispatch.job_run_id, failed,
        "only the failed job runs again"
    );
    assert_eq!(dispatch.attempt, 2);
    harness.finish(&dispatch, JobStatus::Completed).await;
    harness.run_next(JobStatus::Completed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Completed).await;
    assert_eq!(job_status(&detail, "compile"), JobStatus::Completed);
    assert_eq!(detail.run.run_number, 1, "a retry reuses the run");

    let err = harness
        .engine
        .retry(&run_id, &[])
        .await
        .expect_err("a completed run cannot be retried");
    assert!(err.to_string().contains("FAILED or CANCELED"), "{err}");
}

#[tokio::test]
async fn stopping_cancels_waiting_jobs_and_fences_the_running_one() {
    let harness = Harness::new(TWO_STAGES).await;
    let run_id = harness.trigger().await;
    let dispatch = harness.claim().await;
    harness
        .engine
        .stop(&run_id, &harness.user)
        .await
        .expect("stop");
    let detail = harness.wait_status(&run_id, RunStatus::Canceled).await;
    assert!(
        detail.stages.iter().all(|stage| stage.status.is_final()),
        "{:#?}",
        summary(&detail)
    );
    assert_eq!(job_status(&detail, "compile"), JobStatus::Canceled);
    // The running attempt learns it at once, and its late writes are refused (G2).
    tokio::time::timeout(
        Duration::from_secs(5),
        harness.engine.cancelled(&dispatch.job_run_id),
    )
    .await
    .expect("cancel pushed");
    let late = harness
        .engine
        .complete(
            &dispatch.token,
            JobOutcome {
                status: JobStatus::Completed,
                message: None,
            },
        )
        .await;
    assert!(late.is_err());
    assert_eq!(
        harness.detail(&run_id).await.run.status,
        RunStatus::Canceled
    );
    let again = harness
        .engine
        .stop(&run_id, &harness.user)
        .await
        .expect_err("already stopped");
    assert!(again.to_string().contains("already"), "{again}");
}

#[tokio::test]
async fn a_lost_executor_is_requeued_once_then_fails_with_executor_lost() {
    let harness = Harness::new("jobs:\n  - { name: solo, steps: [{ run: make }] }\n").await;
    let run_id = harness.trigger().await;
    let first = harness.claim().await;
    // The agent vanishes: no heartbeat. Past the lease, the sweeper re-queues the job.
    harness.clock.advance(Duration::from_secs(4));
    harness.engine.tick();
    let second = harness.claim().await;
    assert_eq!(second.job_run_id, first.job_run_id);
    assert_eq!(second.attempt, 2);
    assert!(
        harness
            .engine
            .append_log(&first.token, &first.step_run_ids[0], 0, b"x\n".to_vec())
            .await
            .is_err(),
        "G2"
    );
    harness.clock.advance(Duration::from_secs(4));
    harness.engine.tick();
    let detail = harness.wait_status(&run_id, RunStatus::Failed).await;
    let job = detail.stages[0].jobs.first().expect("job");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.message.as_deref(), Some("executor lost"));
}

/// A one-job pipeline that runs one run at a time and queues the others.
const ONE_AT_A_TIME: &str = "concurrency: { number: 1, exceed_action: QUEUE }\njobs:\n  - { name: solo, steps: [{ run: make }] }\n";

#[tokio::test]
async fn with_concurrency_one_three_runs_start_in_order() {
    let harness = Harness::new(ONE_AT_A_TIME).await;
    let first = harness.trigger().await;
    let second = harness.trigger().await;
    let third = harness.trigger().await;
    harness.wait_status(&first, RunStatus::Running).await;
    assert_eq!(harness.detail(&second).await.run.status, RunStatus::Queued);
    assert_eq!(harness.detail(&third).await.run.status, RunStatus::Queued);
    harness.finish_one_by_one(&[&first, &second, &third]).await;
}

/// Regression: a completion the store committed but whose answer was lost (a dropped
/// PostgreSQL connection) came back from the worker's retry as a replay, and nothing followed
/// it: the run stayed RUNNING with its only job COMPLETED, and the run queued behind it never
/// started.
#[tokio::test]
async fn a_completion_replayed_after_its_answer_was_lost_still_ends_the_run_and_frees_its_slot() {
    let harness = Harness::new(ONE_AT_A_TIME).await;
    let first = harness.trigger().await;
    let second = harness.trigger().await;
    harness.wait_status(&first, RunStatus::Running).await;
    let dispatch = harness.claim().await;
    let outcome = JobOutcome {
        status: JobStatus::Completed,
        message: None,
    };
    // Committed, and the engine never heard of it.
    let stored = harness
        .store
        .complete(&dispatch.token, outcome.clone(), harness.engine.now())
        .await
        .expect("the store records the completion");
    assert!(!stored.is_replay);
    assert_eq!(harness.detail(&first).await.run.status, RunStatus::Running);
    // The worker, without an answer, sends it again.
    let replayed = harness
        .engine
        .complete(&dispatch.token, outcome)
        .await
        .expect("a replay is answered");
    assert!(replayed.is_replay);
    harness.wait_status(&first, RunStatus::Completed).await;
    harness.wait_status(&second, RunStatus::Running).await;
    let next = harness.claim().await;
    assert_eq!(next.run_id, second);
}

/// Regression: when runs ended together, only the oldest queued run was started, even with
/// more slots free; the others waited for that run to end.
#[tokio::test]
async fn runs_that_end_together_free_their_slots_for_as_many_queued_runs_in_order() {
    let harness = Harness::new(
        "concurrency: { number: 2, exceed_action: QUEUE }\njobs:\n  - { name: solo, steps: [{ run: make }] }\n",
    )
    .await;
    let runs = [
        harness.trigger().await,
        harness.trigger().await,
        harness.trigger().await,
        harness.trigger().await,
        harness.trigger().await,
    ];
    harness.wait_status(&runs[0], RunStatus::Running).await;
    harness.wait_status(&runs[1], RunStatus::Running).await;
    for queued in &runs[2..] {
        assert_eq!(harness.detail(queued).await.run.status, RunStatus::Queued);
    }
    let first = harness.claim().await;
    let second = harness.claim().await;
    // Both jobs end at once, so both runs end in one round of the engine.
    tokio::join!(
        harness.finish(&first, JobStatus::Completed),
        harness.finish(&second, JobStatus::Completed)
    );
    harness.wait_status(&runs[0], RunStatus::Completed).await;
    harness.wait_status(&runs[1], RunStatus::Completed).await;
    // Two free slots: the two oldest queued runs start, the youngest still waits.
    harness.wait_status(&runs[2], RunStatus::Running).await;
    harness.wait_status(&runs[3], RunStatus::Running).await;
    let mut statuses = Vec::new();
    for run in &runs {
        let detail = harness.detail(run).await;
        statuses.push((
            detail.run.run_number,
            detail.run.status,
            detail.run.start_time,
        ));
    }
    assert_eq!(statuses[4].1, RunStatus::Queued, "{statuses:?}");
    for _ in 0..2 {
        let dispatch = harness.claim().await;
        assert!(runs[2..4].contains(&dispatch.run_id));
        harness.finish(&dispatch, JobStatus::Completed).await;
    }
    let last = harness.claim().await;
    assert_eq!(last.run_id, runs[4]);
    harness.finish(&last, JobStatus::Completed).await;
    harness.wait_status(&runs[4], RunStatus::Completed).await;
}

/// Regression: a run triggered while older runs waited started at once if a slot was free for
/// it (here the limit was raised while they waited), ahead of them.
#[tokio::test]
async fn a_new_run_waits_behind_queued_runs_even_when_a_slot_is_free() {
    let harness = Harness::new(ONE_AT_A_TIME).await;
    let first = harness.trigger().await;
    let second = harness.trigger().await;
    harness.wait_status(&first, RunStatus::Running).await;
    assert_eq!(harness.detail(&second).await.run.status, RunStatus::Queued);
    // Two slots from now on; the queued run keeps its own version's limit of one.
    let record = harness
        .store
        .pipeline_by_id(&harness.pipeline_id)
        .await
        .expect("read")
        .expect("pipeline");
    let version = harness
        .store
        .pipeline_version(&harness.pipeline_id, record.current_version)
        .await
        .expect("read")
        .expect("version");
    let mut settings = record.settings.clone();
    settings["concurrency_control"]["concurrency_number"] = serde_json::json!(2);
    harness
        .store
        .update_pipeline(
            &record.project_id,
            &record.id,
            PipelineUpdate {
                name: record.name.clone(),
                description: record.description.clone(),
                is_publish: record.is_publish,
                component_id: record.component_id.clone(),
                group_id: record.group_id.clone(),
                manifest_version: record.manifest_version.clone(),
                definition: record.definition.clone(),
                compiled: version.compiled.clone(),
                sources: record.sources.clone(),
                settings,
                variables: Vec::new(),
                variable_group_ids: Vec::new(),
                tag_ids: None,
                updater_id: harness.user.user_id.clone(),
                now: runnel_engine::Clock::now(&harness.clock),
            },
        )
        .await
        .expect("limit raised");

    let third = harness.trigger().await;
    assert_eq!(
        harness.detail(&third).await.run.status,
        RunStatus::Queued,
        "behind the run that waited first"
    );
    harness.finish_one_by_one(&[&first, &second, &third]).await;
}

#[tokio::test]
async fn with_abort_an_extra_run_is_refused_and_nothing_is_stored() {
    let harness = Harness::new(
        "concurrency: { number: 1, exceed_action: ABORT }\njobs:\n  - { name: solo, steps: [{ run: make }] }\n",
    )
    .await;
    let first = harness.trigger().await;
    harness.wait_status(&first, RunStatus::Running).await;
    let request = TriggerRequest {
        pipeline_id: harness.pipeline_id.clone(),
        ..TriggerRequest::default()
    };
    let err = harness
        .engine
        .trigger(request)
        .await
        .expect_err("limit reached");
    assert!(
        matches!(err, runnel_engine::EngineError::ConcurrencyLimit { .. }),
        "{err}"
    );
    assert_eq!(
        harness
            .store
            .count_runs(&harness.pipeline_id, &[])
            .await
            .expect("count"),
        1
    );
}

/// Regression: a repeated request with the key of a running run got the concurrency refusal
/// (`ABORT`, slot taken by that very run) instead of the run (G6).
#[tokio::test]
async fn a_replayed_key_gets_its_run_even_when_the_concurrency_slot_is_full() {
    let harness = Harness::new(
        "concurrency: { number: 1, exceed_action: ABORT }\njobs:\n  - { name: solo, steps: [{ run: make }] }\n",
    )
    .await;
    let key = runnel_store::IdempotencyKey {
        scope: format!("user-1:{}", harness.pipeline_id),
        key: "retry-me".into(),
    };
    let first = harness
        .trigger_with(TriggerRequest {
            idempotency: Some(key.clone()),
            ..TriggerRequest::default()
        })
        .await;
    harness.wait_status(&first, RunStatus::Running).await;
    let replay = harness
        .engine
        .trigger(TriggerRequest {
            pipeline_id: harness.pipeline_id.clone(),
            idempotency: Some(key),
            ..TriggerRequest::default()
        })
        .await
        .expect("a replay is answered with the first run");
    assert_eq!(replay.run_id, first);
    assert!(replay.is_replay);
    assert_eq!(replay.run_number, 1);
    assert_eq!(
        harness
            .store
            .count_runs(&harness.pipeline_id, &[])
            .await
            .expect("count"),
        1
    );
}

const REVIEW: &str = r#"
stages:
  - name: build
    jobs: [{ name: compile, steps: [{ run: make }] }]
  - name: approve
    jobs:
      - name: review
        steps:
          - task: official_devcloud_checkpoint
            with: { approvers: APPROVER, check_strategy: all, timeout_strategy: reject, timeout: 3600, comment: ship it? }
  - name: deploy
    manual: true
    jobs: [{ name: ship, steps: [{ run: ./ship }] }]
"#;

fn step_run_id(detail: &RunDetail, job: &str) -> String {
    detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .find(|candidate| candidate.identifier == job)
        .expect("job")
        .steps[0]
        .id
        .clone()
}

#[tokio::test]
async fn a_passed_review_and_a_manual_start_after_a_restart_let_the_run_complete() {
    let mut harness = Harness::new(REVIEW).await;
    let run_id = harness.trigger().await;
    harness.run_next(JobStatus::Completed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Paused).await;
    assert_eq!(job_status(&detail, "review"), JobStatus::Paused);
    let review_step = step_run_id(&detail, "review");

    let stranger = Actor {
        user_id: "someone-else".into(),
        user_name: "mallory".into(),
        roles: Vec::new(),
    };
    let err = harness
        .engine
        .review(&run_id, &review_step, &stranger, true, "")
        .await
        .expect_err("not an approver");
    assert!(err.to_string().contains("not an approver"), "{err}");
    harness
        .engine
        .review(&run_id, &review_step, &harness.user, true, "LGTM")
        .await
        .expect("pass");

    let detail = harness
        .wait(&run_id, "deploy awaiting admission", |detail| {
            detail.stages[2].status == StageStatus::Paused
        })
        .await;
    assert_eq!(job_status(&detail, "review"), JobStatus::Completed);
    assert_eq!(detail.run.status, RunStatus::Paused);

    // The server restarts while the stage waits: it still waits, and can be started.
    harness.restart().await;
    let detail = harness.detail(&run_id).await;
    assert_eq!(detail.run.status, RunStatus::Paused);
    let gate = detail.stages[2].pre.first().expect("admission gate");
    assert_eq!(
        gate.status,
        StepStatus::Paused,
        "the gate step shows the wait"
    );
    let gate = gate.id.clone();
    harness
        .engine
        .admission(&run_id, &gate, true)
        .await
        .expect("admit");
    harness.run_next(JobStatus::Completed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Completed).await;
    assert!(detail.run.pause_time > 0 || detail.run.paused_since.is_none());
}

#[tokio::test]
async fn a_refused_review_fails_the_run() {
    let harness = Harness::new(REVIEW).await;
    let run_id = harness.trigger().await;
    harness.run_next(JobStatus::Completed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Paused).await;
    let review_step = step_run_id(&detail, "review");
    harness
        .engine
        .review(&run_id, &review_step, &harness.user, false, "not today")
        .await
        .expect("refuse");
    let detail = harness.wait_status(&run_id, RunStatus::Failed).await;
    let review = detail.stages[1].jobs.first().expect("review job");
    assert_eq!(review.status, JobStatus::Failed);
    assert_eq!(
        review.steps[0].message.as_deref(),
        Some("refused by alice: not today")
    );
    assert_eq!(detail.stages[2].status, StageStatus::Skipped);
}

#[tokio::test]
async fn a_review_that_times_out_is_rejected_by_its_policy_even_across_a_restart() {
    let mut harness = Harness::new(REVIEW).await;
    let run_id = harness.trigger().await;
    harness.run_next(JobStatus::Completed).await;
    harness.wait_status(&run_id, RunStatus::Paused).await;
    harness.restart().await;
    harness.clock.advance(Duration::from_secs(3601));
    harness.engine.tick();
    let detail = harness.wait_status(&run_id, RunStatus::Failed).await;
    assert_eq!(
        detail.stages[1].jobs[0].steps[0].message.as_deref(),
        Some("review timed out")
    );
}

/// A 60 s delay step, then a job that needs it.
const DELAY_THEN_JOB: &str = r#"
jobs:
  - name: wait
    steps: [{ task: official_devcloud_delay, with: { delay_time: 60 } }]
  - name: after
    needs: [wait]
    steps: [{ run: make }]
"#;

#[tokio::test]
async fn a_delay_waits_its_time_and_can_be_passed_early() {
    let harness = Harness::new(DELAY_THEN_JOB).await;
    let run_id = harness.trigger().await;
    harness.wait_status(&run_id, RunStatus::Paused).await;
    harness.clock.advance(Duration::from_secs(61));
    harness.engine.tick();
    harness.run_next(JobStatus::Completed).await;
    harness.wait_status(&run_id, RunStatus::Completed).await;

    let second = harness.trigger().await;
    let detail = harness.wait_status(&second, RunStatus::Paused).await;
    let delay_step = step_run_id(&detail, "wait");
    harness
        .engine
        .delay(&second, &delay_step, &harness.user, DelayAction::Pass)
        .await
        .expect("pass");
    harness.run_next(JobStatus::Completed).await;
    harness.wait_status(&second, RunStatus::Completed).await;
}

/// Waits until the engine tells it advanced `run_id` (it tells every engine step, changed or not).
async fn wait_for_step(changes: &mut tokio::sync::broadcast::Receiver<String>, run_id: &str) {
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match changes.recv().await {
                Ok(changed) if changed == run_id => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    panic!("the engine stopped")
                }
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "no engine step of run {run_id}");
}

#[tokio::test]
async fn a_delay_started_before_a_restart_ends_at_its_due_time_after_it_and_not_before() {
    let mut harness = Harness::new(DELAY_THEN_JOB).await;
    let triggered_at = harness.engine.now();
    let run_id = harness.trigger().await;
    let detail = harness.wait_status(&run_id, RunStatus::Paused).await;
    let delay_step = |detail: &RunDetail| {
        detail
            .stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .find(|job| job.identifier == "wait")
            .expect("job")
            .steps[0]
            .clone()
    };
    let started = delay_step(&detail).start_time.expect("the delay started");
    assert_eq!(started, triggered_at);
    let due = started + Duration::from_secs(60);

    // The server goes down and comes back one second before the delay is due: the recovered
    // run is advanced then, and must keep waiting.
    harness.clock.advance(Duration::from_secs(59));
    harness.restart().await;
    // The new engine's loop has not run yet (the test has not yielded): its recovery step is seen.
    let mut changes = harness.engine.subscribe();
    wait_for_step(&mut changes, &run_id).await;
    let detail = harness.detail(&run_id).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Paused,
        "{:#?}",
        summary(&detail)
    );
    assert_eq!(job_status(&detail, "wait"), JobStatus::Paused);
    assert_eq!(job_status(&detail, "after"), JobStatus::Init);
    let step = delay_step(&detail);
    assert_eq!((step.status, step.end_time), (StepStatus::Paused, None));

    // At its due time (the recovered engine's timer, fired by a sweep), the delay ends.
    harness.clock.advance(Duration::from_secs(1));
    assert_eq!(harness.engine.now(), due);
    harness.engine.tick();
    let detail = harness
        .wait(&run_id, "the delay done", |detail| {
            job_status(detail, "wait") == JobStatus::Completed
        })
        .await;
    let step = delay_step(&detail);
    assert_eq!(
        (step.status, step.end_time),
        (StepStatus::Completed, Some(due))
    );
    harness.run_next(JobStatus::Completed).await;
    harness.wait_status(&run_id, RunStatus::Completed).await;
}

#[tokio::test]
async fn a_job_requeued_after_a_restart_starts_over_with_its_whole_timeout_and_fails_at_its_deadline()
 {
    let mut harness =
        Harness::new("jobs:\n  - { name: solo, timeout: 60s, steps: [{ run: make }] }\n").await;
    let run_id = harness.trigger().await;
    let first = harness.claim().await;
    let started = harness.engine.now();
    assert_eq!(first.timeout, Duration::from_secs(60), "a fresh attempt");
    let detail = harness.detail(&run_id).await;
    assert_eq!(detail.stages[0].jobs[0].start_time, Some(started));

    // The server dies with the job's executor and is back 20 s later: the expired lease is
    // swept at start and the job queued again.
    harness.clock.advance(Duration::from_secs(20));
    harness.restart().await;
    let second = harness.claim().await;
    assert_eq!((&second.job_run_id, second.attempt), (&first.job_run_id, 2));
    // The new attempt starts the job over from its first step: its timeout counts from this
    // claim, whole (the lost attempt's 20 s are not taken from it).
    assert_eq!(second.timeout, Duration::from_secs(60));
    let reclaimed = harness.engine.now();
    assert_eq!(reclaimed, started + Duration::from_secs(20));
    let detail = harness.detail(&run_id).await;
    assert_eq!(
        detail.stages[0].jobs[0].start_time,
        Some(reclaimed),
        "the job's start is the new attempt's"
    );
    let deadline = reclaimed + second.timeout;

    // The fake agent runs it as the executor's runner does: it heartbeats, and stops the job
    // with "timeout" once its deadline passes. Until then nothing ends it.
    let step_run_id = second.step_run_ids[0].clone();
    let report = |status, message: Option<&str>| StepReport {
        step_run_id: step_run_id.clone(),
        status,
        exit_code: None,
        message: message.map(str::to_owned),
        at: harness.engine.now(),
        started_at: None,
        outputs: Vec::new(),
    };
    harness
        .engine
        .report_step(&second.token, report(StepStatus::Running, None))
        .await
        .expect("report");
    while harness.engine.now() + Duration::from_secs(1) < deadline {
        harness.clock.advance(Duration::from_secs(1));
        // A lease swept in between would make this fail.
        harness
            .engine
            .heartbeat(&second.token)
            .await
            .expect("the lease is held");
        harness.engine.tick();
    }
    assert_eq!(harness.engine.now(), deadline - Duration::from_secs(1));
    let detail = harness.detail(&run_id).await;
    let job = &detail.stages[0].jobs[0];
    assert_eq!(
        (
            detail.run.status,
            job.status,
            job.attempt,
            job.message.as_deref()
        ),
        (RunStatus::Running, JobStatus::Running, 2, None)
    );

    harness.clock.advance(Duration::from_secs(1));
    assert!(harness.engine.now() >= deadline);
    harness
        .engine
        .report_step(&second.token, report(StepStatus::Failed, Some("timeout")))
        .await
        .expect("report");
    harness
        .engine
        .complete(
            &second.token,
            JobOutcome {
                status: JobStatus::Failed,
                message: Some("timeout".to_owned()),
            },
        )
        .await
        .expect("complete");
    let detail = harness.wait_status(&run_id, RunStatus::Failed).await;
    let job = &detail.stages[0].jobs[0];
    assert_eq!(
        (job.status, job.message.as_deref(), job.end_time),
        (JobStatus::Failed, Some("timeout"), Some(deadline))
    );
    assert_eq!(job.steps[0].message.as_deref(), Some("timeout"));
}

#[tokio::test]
async fn choose_jobs_selects_and_unknown_jobs_are_refused_without_storing_a_run() {
    let harness = Harness::new(TWO_STAGES).await;
    let request = TriggerRequest {
        choose_jobs: vec!["ship".into()],
        ..TriggerRequest::default()
    };
    let run_id = harness.trigger_with(request).await;
    let detail = harness.detail(&run_id).await;
    assert_eq!(job_status(&detail, "compile"), JobStatus::Unselected);
    assert_eq!(detail.stages[0].status, StageStatus::Unselected);
    let dispatch = harness.claim().await;
    assert_eq!(dispatch.job_run_id, job_id(&detail, "ship"));

    let request = TriggerRequest {
        pipeline_id: harness.pipeline_id.clone(),
        choose_jobs: vec!["nope".into()],
        ..TriggerRequest::default()
    };
    let err = harness
        .engine
        .trigger(request)
        .await
        .expect_err("unknown job");
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(
        harness
            .store
            .count_runs(&harness.pipeline_id, &[])
            .await
            .expect("count"),
        1
    );
}

/// Whether the push-cancellation of this job has fired (polled once, without waiting).
async fn is_cancel_pushed(engine: &Engine, job_run_id: &str) -> bool {
    // `timeout` polls the inner future before its timer: zero means "already resolved?".
    tokio::time::timeout(Duration::ZERO, engine.cancelled(job_run_id))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_job_stopped_then_retried_gets_a_fresh_cancellation_and_runs_to_completion() {
    let harness = Harness::new("jobs:\n  - { name: solo, steps: [{ run: make }] }\n").await;
    let run_id = harness.trigger().await;
    let first = harness.claim().await;
    assert!(!is_cancel_pushed(&harness.engine, &first.job_run_id).await);
    harness
        .engine
        .stop(&run_id, &harness.user)
        .await
        .expect("stop");
    harness.wait_status(&run_id, RunStatus::Canceled).await;
    assert!(is_cancel_pushed(&harness.engine, &first.job_run_id).await);

    harness.engine.retry(&run_id, &[]).await.expect("retry");
    let second = harness.claim().await;
    assert_eq!(second.job_run_id, first.job_run_id);
    assert_eq!(second.attempt, 2);
    assert!(
        !is_cancel_pushed(&harness.engine, &second.job_run_id).await,
        "the stop of the first attempt must not stop the retried one"
    );
    harness.finish(&second, JobStatus::Completed).await;
    let detail = harness.wait_status(&run_id, RunStatus::Completed).await;
    assert_eq!(job_status(&detail, "solo"), JobStatus::Completed);
}

#[tokio::test]
async fn a_job_queued_while_no_worker_waits_still_wakes_the_next_waiter() {
    let harness = Harness::new("jobs:\n  - { name: solo, steps: [{ run: make }] }\n").await;
    let run_id = harness.trigger().await;
    harness
        .wait(&run_id, "job queued", |detail| {
            job_status(detail, "solo") == JobStatus::Queued
        })
        .await;
    // Nobody waited when the job was queued; the nudge must still be there.
    tokio::time::timeout(
        Duration::from_secs(10),
        harness.engine.wait_for_work(Duration::from_secs(3600)),
    )
    .await
    .expect("a pending nudge wakes the waiter at once");
}

#[tokio::test]
async fn a_job_requeued_by_the_sweeper_wakes_a_waiting_worker() {
    let harness = Harness::new("jobs:\n  - { name: solo, steps: [{ run: make }] }\n").await;
    harness.trigger().await;
    // Take the nudge of the first enqueue, then the job.
    tokio::time::timeout(
        Duration::from_secs(10),
        harness.engine.wait_for_work(Duration::from_secs(3600)),
    )
    .await
    .expect("nudged for the first attempt");
    let first = harness.claim().await;
    let waiter = {
        let engine = harness.engine.clone();
        tokio::spawn(async move { engine.wait_for_work(Duration::from_secs(3600)).await })
    };
    // The agent vanishes; past the lease the sweeper re-queues the job and must say so.
    harness.clock.advance(Duration::from_secs(4));
    harness.engine.tick();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the re-queue wakes the waiting worker")
        .expect("waiter task");
    let second = harness.claim().await;
    assert_eq!(second.job_run_id, first.job_run_id);
    assert_eq!(second.attempt, 2);
}

/// Finishes a claimed one-step job, its step publishing `outputs`.
async fn finish_with_outputs(harness: &Harness, dispatch: &Dispatch, outputs: &[(&str, &str)]) {
    let now = harness.engine.now();
    let step_run_id = dispatch.step_run_ids[0].clone();
    for status in [StepStatus::Running, StepStatus::Completed] {
        let report = StepReport {
            step_run_id: step_run_id.clone(),
            status,
            exit_code: (status == StepStatus::Completed).then_some(0),
            message: None,
            at: now,
            started_at: None,
            outputs: outputs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), serde_json::json!(value)))
                .collect(),
        };
        harness
            .engine
            .report_step(&dispatch.token, report)
            .await
            .expect("report");
    }
    harness
        .engine
        .complete(
            &dispatch.token,
            JobOutcome {
                status: JobStatus::Completed,
                message: None,
            },
        )
        .await
        .expect("complete");
}

const OUTPUTS: &str = r#"
jobs:
  - { name: a, steps: [{ run: make }] }
  - { name: b, needs: [a], steps: [{ run: "echo ${{ jobs.a.outputs.version }}" }] }
"#;

fn expression_values(dispatch: &Dispatch) -> Vec<String> {
    dispatch.prepared.steps[0]
        .env
        .iter()
        .filter(|(name, _)| name.starts_with("RUNNEL_EXPR_"))
        .map(|(_, value)| value.clone())
        .collect()
}

#[tokio::test]
async fn a_job_sees_upstream_outputs_whether_rendered_when_queued_or_after_a_restart() {
    let mut harness = Harness::new(OUTPUTS).await;
    // Claimed from what the engine rendered when it queued the job.
    let run_id = harness.trigger().await;
    let a = harness.claim().await;
    finish_with_outputs(&harness, &a, &[("version", "1.2")]).await;
    let b = harness.claim().await;
    assert_eq!(expression_values(&b), ["1.2"]);
    harness.finish(&b, JobStatus::Completed).await;
    harness.wait_status(&run_id, RunStatus::Completed).await;

    // Rendered at the claim from the store: a restart dropped what was in memory.
    let run_id = harness.trigger().await;
    let a = harness.claim().await;
    finish_with_outputs(&harness, &a, &[("version", "2.0")]).await;
    harness
        .wait(&run_id, "b queued", |detail| {
            job_status(detail, "b") == JobStatus::Queued
        })
        .await;
    harness.restart().await;
    let b = harness.claim().await;
    assert_eq!(expression_values(&b), ["2.0"]);
    assert_eq!(b.attempt, 1);
    harness.finish(&b, JobStatus::Completed).await;
    harness.wait_status(&run_id, RunStatus::Completed).await;
}

#[tokio::test]
async fn parameters_reach_the_job_and_secret_ones_are_marked_for_masking() {
    let harness = Harness::new(
        "variables:\n  region: eu-west-1\n  token:\n    value: hunter2\n    is_secret: true\njobs:\n  - { name: solo, steps: [{ run: make }] }\n",
    )
    .await;
    harness.trigger().await;
    let dispatch = harness.claim().await;
    let env = |name: &str| {
        dispatch
            .prepared
            .env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(env("region").as_deref(), Some("eu-west-1"));
    assert_eq!(env("token").as_deref(), Some("hunter2"));
    assert_eq!(env("PIPELINE_NUMBER").as_deref(), Some("1"));
    assert_eq!(dispatch.prepared.secrets, ["hunter2"]);
}
