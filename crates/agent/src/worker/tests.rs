//! The worker against a scriptable in-memory coordinator and the real shell executor.

use super::*;
use runnel_executor::{ShellExecutor, ShellExecutorConfig};
use runnel_protocol::{
    ErrorKind, HeartbeatReply, JobTask as WireTask, LeaseRef, LogAppend, LogAppendReply,
    StepAction as WireAction, StepReport, StepTask as WireStep,
};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
struct Fake {
    state: Mutex<FakeState>,
    cancel: Notify,
}

#[derive(Default)]
struct FakeState {
    queue: Vec<ClaimedJob>,
    logs: HashMap<String, Vec<u8>>,
    reports: Vec<StepReport>,
    /// How many of `reports` came with a completion.
    carried: usize,
    /// Jobs handed out by `claim`, and by `complete_and_claim`.
    claimed_alone: u32,
    claimed_with_completion: u32,
    results: Vec<JobResult>,
    heartbeats: u32,
    /// Appends that fail with a transport error *after* storing the bytes (a lost answer).
    lose_answers: u32,
    /// Appends that fail with a transport error before storing anything.
    drop_requests: u32,
    /// Heartbeats after which the lease is lost.
    lose_lease_after: Option<u32>,
    lease_lost: bool,
    cancel_on_heartbeat: bool,
}

impl Fake {
    fn with_job(job: ClaimedJob) -> Arc<Fake> {
        let fake = Fake::default();
        fake.state.lock().expect("lock").queue.push(job);
        Arc::new(fake)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("lock")
    }
}

impl Coordinator for Fake {
    async fn claim(&self, _request: &ClaimRequest) -> Result<Option<ClaimedJob>, CallError> {
        let mut state = self.state();
        let job = state.queue.pop();
        state.claimed_alone += u32::from(job.is_some());
        Ok(job)
    }

    async fn heartbeat(&self, _lease: &LeaseRef) -> Result<HeartbeatReply, CallError> {
        let mut state = self.state();
        state.heartbeats += 1;
        if state
            .lose_lease_after
            .is_some_and(|after| state.heartbeats > after)
        {
            state.lease_lost = true;
        }
        if state.lease_lost {
            return Err(CallError::Refused(ErrorKind::LeaseLost));
        }
        Ok(HeartbeatReply {
            lease_ms: 3000,
            cancel: state.cancel_on_heartbeat,
        })
    }

    async fn append_log(
        &self,
        _lease: &LeaseRef,
        append: LogAppend,
    ) -> Result<LogAppendReply, CallError> {
        let mut state = self.state();
        if state.lease_lost {
            return Err(CallError::Refused(ErrorKind::LeaseLost));
        }
        if state.drop_requests > 0 {
            state.drop_requests -= 1;
            return Err(CallError::Transport("connection reset".into()));
        }
        let lose_answer = if state.lose_answers > 0 {
            state.lose_answers -= 1;
            true
        } else {
            false
        };
        let log = state.logs.entry(append.step_run_id.clone()).or_default();
        let length = log.len() as u64;
        let end = append.offset + append.data.len() as u64;
        if append.offset > length {
            return Err(CallError::Refused(ErrorKind::OffsetMismatch {
                expected: length,
            }));
        }
        if end > length {
            let skip = usize::try_from(length - append.offset).expect("small");
            log.extend_from_slice(&append.data[skip..]);
        }
        let length = log.len() as u64;
        if lose_answer {
            return Err(CallError::Transport("answer lost".into()));
        }
        Ok(LogAppendReply { length })
    }

    async fn report_step(&self, _lease: &LeaseRef, report: StepReport) -> Result<(), CallError> {
        let mut state = self.state();
        if state.lease_lost {
            return Err(CallError::Refused(ErrorKind::LeaseLost));
        }
        state.reports.push(report);
        Ok(())
    }

    async fn complete(&self, _lease: &LeaseRef, result: JobResult) -> Result<(), CallError> {
        let mut state = self.state();
        if state.lease_lost {
            return Err(CallError::Refused(ErrorKind::LeaseLost));
        }
        // Recorded in order before the result, as the server does.
        state.carried += result.steps.len();
        state.reports.extend(result.steps.iter().cloned());
        state.results.push(result);
        Ok(())
    }

    async fn complete_and_claim(
        &self,
        lease: &LeaseRef,
        result: JobResult,
        _next: &ClaimRequest,
    ) -> Result<Option<ClaimedJob>, CallError> {
        self.complete(lease, result).await?;
        let mut state = self.state();
        let job = state.queue.pop();
        state.claimed_with_completion += u32::from(job.is_some());
        Ok(job)
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        tokio::time::sleep(max_wait).await;
    }

    async fn cancelled(&self, _lease: &LeaseRef) {
        self.cancel.notified().await;
    }
}

fn job(scripts: &[&str]) -> ClaimedJob {
    ClaimedJob {
        lease: LeaseRef {
            job_run_id: "job-1".into(),
            token: "t".into(),
        },
        run_id: "run-1".into(),
        job_run_id: "job-1".into(),
        attempt: 1,
        heartbeat_interval_ms: 50,
        task: WireTask {
            job_key: "run-1-job".into(),
            env: vec![("GREETING".into(), "hello".into())],
            secrets: vec!["sekrit".into()],
            steps: scripts
                .iter()
                .enumerate()
                .map(|(index, script)| WireStep {
                    step_run_id: format!("step-{index}"),
                    identifier: format!("s{index}"),
                    name: format!("step {index}"),
                    action: WireAction::Shell {
                        script: (*script).to_owned(),
                    },
                    env: Vec::new(),
                    log_offset: 0,
                })
                .collect(),
            timeout_ms: Some(30_000),
            utc_offset_minutes: 0,
        },
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        worker_id: "test".into(),
        pool: None,
        labels: Vec::new(),
        slots: 1,
        idle_wait: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(5),
        // Each report at once, so tests see every call; the tests of held reports set one.
        report_delay: Duration::ZERO,
    }
}

fn executor(dir: &tempfile::TempDir) -> ShellExecutor {
    let mut config = ShellExecutorConfig::new(dir.path());
    config.kill_grace = Duration::from_millis(200);
    ShellExecutor::new(config)
}

/// Runs the worker loop until `results` jobs completed (or 10 s passed), then stops claiming
/// and waits for the loop to end.
async fn run_worker_until_results(
    fake: &Arc<Fake>,
    dir: &tempfile::TempDir,
    config: WorkerConfig,
    results: usize,
) {
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        Arc::clone(fake),
        Arc::new(executor(dir)),
        config,
        stop.clone(),
        CancellationToken::new(),
    ));
    for _ in 0..1000 {
        if fake.state().results.len() >= results {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops")
        .expect("no panic");
}

/// (step run id, status) of each report, in the order the fake received them.
fn statuses(reports: &[StepReport]) -> Vec<(&str, &str)> {
    reports
        .iter()
        .map(|report| (report.step_run_id.as_str(), report.status.as_str()))
        .collect()
}

/// The log text without the `[time] [LEVEL] ` prefixes.
fn lines(log: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(log)
        .lines()
        .map(|line| line.splitn(3, "] ").nth(2).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_job_streams_its_logs_reports_its_steps_and_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&[
        "echo $GREETING; echo sekrit",
        "seq 1 3",
        "exit 4",
        "echo never",
    ]));
    let claimed = fake
        .claim(&ClaimRequest {
            worker_id: "w".into(),
            pool: None,
            labels: vec![],
        })
        .await;
    let claimed = claimed.expect("claim").expect("a job");
    run_claimed_job(
        fake.as_ref(),
        &executor(&dir),
        claimed,
        &config(),
        &CancellationToken::new(),
    )
    .await;

    let state = fake.state();
    assert_eq!(lines(&state.logs["step-0"]), vec!["hello", "******"]);
    assert_eq!(lines(&state.logs["step-1"]), vec!["1", "2", "3"]);
    assert!(
        String::from_utf8_lossy(&state.logs["step-0"]).starts_with('['),
        "CodeArts line format"
    );
    let statuses = statuses(&state.reports);
    assert_eq!(
        statuses,
        vec![
            ("step-0", "RUNNING"),
            ("step-0", "COMPLETED"),
            ("step-1", "RUNNING"),
            ("step-1", "COMPLETED"),
            ("step-2", "RUNNING"),
            ("step-2", "FAILED"),
            ("step-3", "SKIPPED"),
        ]
    );
    assert_eq!(state.reports[5].exit_code, Some(4));
    assert_eq!(
        state.results,
        vec![JobResult {
            status: "FAILED".into(),
            message: Some("step `step 2` failed: exit code 4".into()),
            steps: Vec::new(),
        }]
    );
}

#[tokio::test]
async fn steps_that_end_within_the_report_delay_are_reported_once_with_the_completion() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&["echo one", "true", "exit 3", "echo never"]));
    let claimed = fake.state().queue.pop().expect("job");
    let config = WorkerConfig {
        // Longer than the whole job: every report waits for the completion.
        report_delay: Duration::from_secs(600),
        ..config()
    };
    run_claimed_job(
        fake.as_ref(),
        &executor(&dir),
        claimed,
        &config,
        &CancellationToken::new(),
    )
    .await;

    let state = fake.state();
    assert_eq!(
        state.carried,
        state.reports.len(),
        "no report was sent on its own"
    );
    let reports: Vec<(&str, &str, Option<i32>)> = state
        .reports
        .iter()
        .map(|report| {
            (
                report.step_run_id.as_str(),
                report.status.as_str(),
                report.exit_code,
            )
        })
        .collect();
    assert_eq!(
        reports,
        vec![
            ("step-0", "COMPLETED", Some(0)),
            ("step-1", "COMPLETED", Some(0)),
            ("step-2", "FAILED", Some(3)),
            ("step-3", "SKIPPED", None),
        ]
    );
    // A result whose start was not reported says when the step started.
    for report in &state.reports[..3] {
        let started_at = report
            .started_at
            .expect("the start time travels with the result");
        assert!(started_at <= report.at, "{report:?}");
    }
    assert_eq!(state.results.len(), 1);
    assert_eq!(state.results[0].status, "FAILED");
    // The log was stored before the result left (it arrived with the completion).
    assert_eq!(lines(&state.logs["step-0"]), vec!["one"]);
}

#[tokio::test]
async fn a_step_still_running_after_the_report_delay_is_reported_running_while_it_prints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = dir.path().join("gate");
    // It prints all the while: log events arriving without a pause must not keep its start
    // report back.
    let script = format!(
        "while [ ! -e {} ]; do echo waiting; sleep 0.002; done",
        gate.display()
    );
    let fake = Fake::with_job(job(&["true", &script]));
    let claimed = fake.state().queue.pop().expect("job");
    let config = WorkerConfig {
        report_delay: Duration::from_millis(20),
        ..config()
    };
    let watcher = Arc::clone(&fake);
    let opener = gate.clone();
    tokio::spawn(async move {
        // The step waits for the gate, which opens only once its start was reported.
        loop {
            let started = watcher
                .state()
                .reports
                .iter()
                .any(|report| report.step_run_id == "step-1" && report.status == "RUNNING");
            if started {
                std::fs::write(&opener, b"").expect("open the gate");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::timeout(
        Duration::from_secs(60),
        run_claimed_job(
            fake.as_ref(),
            &executor(&dir),
            claimed,
            &config,
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("the step's start was reported while it ran");

    let state = fake.state();
    let statuses = statuses(&state.reports);
    // The first step's result went out before the second step's start.
    assert_eq!(
        statuses,
        vec![
            ("step-0", "COMPLETED"),
            ("step-1", "RUNNING"),
            ("step-1", "COMPLETED"),
        ]
    );
    assert_eq!(state.results[0].status, "COMPLETED");
}

#[tokio::test]
async fn lost_answers_and_dropped_requests_are_retried_without_duplicating_log_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&["for i in $(seq 1 200); do echo line $i; done"]));
    {
        let mut state = fake.state();
        state.lose_answers = 3;
        state.drop_requests = 2;
    }
    let claimed = fake.state().queue.pop().expect("job");
    run_claimed_job(
        fake.as_ref(),
        &executor(&dir),
        claimed,
        &config(),
        &CancellationToken::new(),
    )
    .await;
    let state = fake.state();
    let expected: Vec<String> = (1..=200).map(|i| format!("line {i}")).collect();
    assert_eq!(lines(&state.logs["step-0"]), expected);
    assert_eq!(state.results.len(), 1);
    assert_eq!(state.results[0].status, "COMPLETED");
}

#[tokio::test]
async fn a_lost_lease_stops_the_job_and_reports_nothing_more() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("after");
    let script = format!("sleep 30; touch {}", marker.display());
    let fake = Fake::with_job(job(&[&script]));
    fake.state().lose_lease_after = Some(1);
    let claimed = fake.state().queue.pop().expect("job");
    let started = std::time::Instant::now();
    run_claimed_job(
        fake.as_ref(),
        &executor(&dir),
        claimed,
        &config(),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the job was stopped, not waited for"
    );
    assert!(!marker.exists());
    assert!(
        fake.state().results.is_empty(),
        "no result after the lease was lost"
    );
}

#[tokio::test]
async fn a_cancel_from_the_server_ends_the_job_canceled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&["echo started; sleep 30", "echo never"]));
    let claimed = fake.state().queue.pop().expect("job");
    let pusher = Arc::clone(&fake);
    tokio::spawn(async move {
        // Wait until the step has printed, then push a cancel.
        loop {
            if pusher
                .state()
                .logs
                .get("step-0")
                .is_some_and(|log| !log.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pusher.cancel.notify_waiters();
    });
    run_claimed_job(
        fake.as_ref(),
        &executor(&dir),
        claimed,
        &config(),
        &CancellationToken::new(),
    )
    .await;
    let state = fake.state();
    assert_eq!(
        state.results,
        vec![JobResult {
            status: "CANCELED".into(),
            message: None,
            steps: Vec::new(),
        }]
    );
    assert!(
        state
            .reports
            .iter()
            .any(|report| report.step_run_id == "step-1" && report.status == "SKIPPED")
    );
}

#[tokio::test]
async fn a_cancel_in_a_heartbeat_reply_ends_the_job_canceled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&["sleep 30"]));
    fake.state().cancel_on_heartbeat = true;
    let claimed = fake.state().queue.pop().expect("job");
    run_claimed_job(
        fake.as_ref(),
        &executor(&dir),
        claimed,
        &config(),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(fake.state().results[0].status, "CANCELED");
}

#[tokio::test]
async fn a_slot_claims_its_next_job_with_the_completion_of_the_last() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&["echo three"]));
    fake.state().queue.push(job(&["echo two"]));
    fake.state().queue.push(job(&["echo one"]));
    run_worker_until_results(&fake, &dir, config(), 3).await;
    let state = fake.state();
    assert_eq!(state.results.len(), 3);
    // The first job by a claim of its own, the others with the completion before them.
    assert_eq!((state.claimed_alone, state.claimed_with_completion), (1, 2));
}

#[tokio::test]
async fn the_worker_loop_runs_queued_jobs_and_stops_claiming_on_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = Fake::with_job(job(&["echo one"]));
    fake.state().queue.push(job(&["echo two"]));
    let config = WorkerConfig {
        slots: 2,
        ..config()
    };
    run_worker_until_results(&fake, &dir, config, 2).await;
    assert_eq!(fake.state().results.len(), 2);
}
