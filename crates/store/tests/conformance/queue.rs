//! The leased job queue: order, leases, fencing (G2), idempotent completion, the sweeper (G1), cancellation.

use crate::fixtures::*;
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, RunStatus, StepStatus};
use runnel_store::*;

fn completed() -> JobOutcome {
    JobOutcome {
        status: JobStatus::Completed,
        message: None,
    }
}

conformance! {
    async fn jobs_are_claimed_oldest_first_once_each_and_by_pool(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (_, first) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(10)).await;
        let (_, second) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(20)).await;
        let (_, pooled) = queued_run(&store, &pipeline.id, &RunShape::default(), Some("arm"), at(5)).await;
        let a = store.claim(claim_request("w1", None, at(30), 3000)).await.unwrap().unwrap();
        let b = store.claim(claim_request("w2", None, at(30), 3000)).await.unwrap().unwrap();
        assert_eq!((a.job_run_id.as_str(), b.job_run_id.as_str()), (first[0].as_str(), second[0].as_str()));
        assert_ne!(a.token, b.token);
        assert!(store.claim(claim_request("w3", None, at(30), 3000)).await.unwrap().is_none());
        let c = store.claim(claim_request("w3", Some("arm"), at(30), 3000)).await.unwrap().unwrap();
        assert_eq!(c.job_run_id, pooled[0]);
        assert_eq!(c.attempt, 1);
        let stats = store.queue_stats(at(30)).await.unwrap();
        assert_eq!((stats.queued, stats.leased, stats.expired), (0, 3, 0));
        // A second enqueue while one attempt lives is refused.
        let err = store
            .enqueue(EnqueueJob { job_run_id: first[0].clone(), pool: None, labels: vec![], max_tries: 1 }, at(31))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
}

conformance! {
    async fn concurrent_workers_never_claim_the_same_job(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (_, jobs) = queued_run(&store, &pipeline.id, &RunShape { jobs_per_stage: vec![40], steps_per_job: 1 }, None, at(0)).await;
        let mut handles = Vec::new();
        for worker in 0..8 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(lease) = store.claim(claim_request(&format!("w{worker}"), None, at(1), 60_000)).await.unwrap() {
                    claimed.push(lease.job_run_id);
                }
                claimed
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.unwrap());
        }
        all.sort();
        let mut expected = jobs.clone();
        expected.sort();
        assert_eq!(all, expected, "every job claimed exactly once");
    }
}

conformance! {
    async fn completion_is_idempotent_and_fenced(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (run, _) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(0)).await;
        let lease = store.claim(claim_request("w1", None, at(1), 3000)).await.unwrap().unwrap();
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        let steps: Vec<String> = detail.stages[0].jobs[0].steps.iter().map(|s| s.id.clone()).collect();
        let report = StepReport {
            step_run_id: steps[0].clone(),
            status: StepStatus::Completed,
            exit_code: Some(0),
            message: None,
            at: at(2),
            started_at: None,
            outputs: vec![("tests".to_owned(), serde_json::json!(42))],
        };
        store.report_step(&lease.token, report.clone()).await.unwrap();
        store.report_step(&lease.token, report.clone()).await.unwrap(); // same final status: no-op
        let mut contradicting = report.clone();
        contradicting.status = StepStatus::Failed;
        assert!(matches!(store.report_step(&lease.token, contradicting).await, Err(StoreError::Conflict(_))));
        let first = store.complete(&lease.token, completed(), at(3)).await.unwrap();
        let again = store.complete(&lease.token, completed(), at(4)).await.unwrap();
        assert!(!first.is_replay && again.is_replay);
        let other = JobOutcome { status: JobStatus::Failed, message: None };
        assert!(matches!(store.complete(&lease.token, other, at(5)).await, Err(StoreError::Conflict(_))));
        // Writes after completion are stale.
        assert!(matches!(store.report_step(&lease.token, report).await, Err(StoreError::LeaseLost)));
        assert!(matches!(store.append(&lease.token, &steps[1], 0, b"x".to_vec(), at(6)).await, Err(StoreError::LeaseLost)));
        assert!(matches!(store.heartbeat(&lease.token, at(6), std::time::Duration::from_secs(3)).await, Err(StoreError::LeaseLost)));
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        let job = &detail.stages[0].jobs[0];
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.steps[0].status, StepStatus::Completed);
        assert_eq!(job.steps[0].exit_code, Some(0));
        assert_eq!(job.steps[1].status, StepStatus::Skipped, "a step that never ran is skipped");
        assert_eq!(job.end_time, Some(at(3)));
        let outputs = store.step_outputs(&run.id, None).await.unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].value, serde_json::json!(42));
        // A token nobody issued.
        let forged = LeaseToken::new("0123456789abcdef0123456789abcdef");
        assert!(matches!(store.complete(&forged, completed(), at(7)).await, Err(StoreError::LeaseLost)));
    }
}

conformance! {
    async fn step_reports_sent_with_the_completion_are_recorded_in_its_transaction(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let shape = RunShape { jobs_per_stage: vec![1], steps_per_job: 3 };
        let (run, _) = queued_run(&store, &pipeline.id, &shape, None, at(0)).await;
        let lease = store.claim(claim_request("w1", None, at(1), 3000)).await.unwrap().unwrap();
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        let steps: Vec<String> = detail.stages[0].jobs[0].steps.iter().map(|s| s.id.clone()).collect();
        let report = |step: &str, status, exit_code, started_at, ended_at, outputs: Vec<(String, serde_json::Value)>| StepReport {
            step_run_id: step.to_owned(),
            status,
            exit_code,
            message: None,
            at: at(ended_at),
            started_at,
            outputs,
        };
        // The first step's start was reported on its own; the rest travel with the completion.
        store.report_step(&lease.token, report(&steps[0], StepStatus::Running, None, None, 2, vec![])).await.unwrap();
        let carried = vec![
            report(&steps[0], StepStatus::Completed, Some(0), Some(at(9)), 3, vec![]),
            report(&steps[1], StepStatus::Failed, Some(2), Some(at(4)), 5, vec![("k".to_owned(), serde_json::json!("v"))]),
            // Refused on its own (no such step of this job): skipped, the rest still counts.
            report("no-such-step", StepStatus::Completed, Some(0), Some(at(5)), 6, vec![]),
        ];
        let failed = JobOutcome { status: JobStatus::Failed, message: Some("step 2 failed".to_owned()) };
        // A token that is not current refuses everything and changes nothing.
        let forged = LeaseToken::new("0123456789abcdef0123456789abcdef");
        assert!(matches!(
            store.complete_with_steps(&forged, carried.clone(), failed.clone(), at(7)).await,
            Err(StoreError::LeaseLost)
        ));
        let before = store.run_detail(&run.id).await.unwrap().unwrap();
        assert_eq!(before.stages[0].jobs[0].steps[1].status, StepStatus::Init);

        let first = store.complete_with_steps(&lease.token, carried.clone(), failed.clone(), at(7)).await.unwrap();
        assert!(!first.is_replay);
        assert_eq!(first.status, JobStatus::Failed);
        let job = store.run_detail(&run.id).await.unwrap().unwrap().stages[0].jobs[0].clone();
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.end_time, Some(at(7)));
        assert_eq!(
            (job.steps[0].status, job.steps[0].exit_code, job.steps[0].start_time, job.steps[0].end_time),
            (StepStatus::Completed, Some(0), Some(at(2)), Some(at(3))),
            "a start time already recorded is kept"
        );
        assert_eq!(
            (job.steps[1].status, job.steps[1].exit_code, job.steps[1].start_time, job.steps[1].end_time),
            (StepStatus::Failed, Some(2), Some(at(4)), Some(at(5))),
            "an unreported start comes with the result"
        );
        assert_eq!(job.steps[2].status, StepStatus::Skipped, "a step that never ran is skipped");
        let outputs = store.step_outputs(&run.id, None).await.unwrap();
        assert_eq!(outputs.len(), 1);

        // A replay (the answer was lost) answers the same and changes nothing.
        let again = store.complete_with_steps(&lease.token, carried, failed, at(8)).await.unwrap();
        assert!(again.is_replay);
        let after = store.run_detail(&run.id).await.unwrap().unwrap().stages[0].jobs[0].clone();
        assert_eq!(after.end_time, Some(at(7)));
        assert_eq!(after.steps[1].end_time, Some(at(5)));
    }
}

conformance! {
    async fn a_completion_can_claim_the_next_job_in_its_transaction(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (first_run, _) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(0)).await;
        let (_, second) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(1)).await;
        let lease = store.claim(claim_request("w1", None, at(2), 3000)).await.unwrap().unwrap();
        let (finished, next) = store
            .complete_and_claim(&lease.token, vec![], completed(), claim_request("w1", None, at(3), 3000))
            .await
            .unwrap();
        assert!(!finished.is_replay);
        assert_eq!(finished.run_id, first_run.id);
        let next = next.expect("the queued job, claimed with the completion");
        assert_eq!(next.job_run_id, second[0]);
        assert_ne!(next.token, lease.token);
        let first_job = store.run_detail(&first_run.id).await.unwrap().unwrap().stages[0].jobs[0].clone();
        assert_eq!((first_job.status, first_job.end_time), (JobStatus::Completed, Some(at(3))));
        let stats = store.queue_stats(at(3)).await.unwrap();
        assert_eq!((stats.queued, stats.leased), (0, 1));

        // A stale token completes nothing and claims nothing.
        let (_, third) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(4)).await;
        assert!(matches!(
            store.complete_and_claim(&lease.token, vec![], JobOutcome { status: JobStatus::Failed, message: None }, claim_request("w1", None, at(5), 3000)).await,
            Err(StoreError::Conflict(_))
        ), "another result for a completed attempt");
        let forged = LeaseToken::new("0123456789abcdef0123456789abcdef");
        assert!(matches!(
            store.complete_and_claim(&forged, vec![], completed(), claim_request("w1", None, at(5), 3000)).await,
            Err(StoreError::LeaseLost)
        ));
        let stats = store.queue_stats(at(5)).await.unwrap();
        assert_eq!((stats.queued, stats.leased), (1, 1), "the third job still waits");

        let (_, claimed) = store
            .complete_and_claim(&next.token, vec![], completed(), claim_request("w1", None, at(6), 3000))
            .await
            .unwrap();
        assert_eq!(claimed.map(|lease| lease.job_run_id), Some(third[0].clone()));
        // A replayed completion claims too; with the queue empty, nothing.
        let (replay, none) = store
            .complete_and_claim(&next.token, vec![], completed(), claim_request("w1", None, at(7), 3000))
            .await
            .unwrap();
        assert!(replay.is_replay);
        assert!(none.is_none());
    }
}

conformance! {
    async fn an_expired_lease_is_requeued_then_failed_as_executor_lost(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        // max_tries = 2 (see `queued_run`).
        let (run, jobs) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(0)).await;
        let first = store.claim(claim_request("w1", None, at(0), 3000)).await.unwrap().unwrap();
        // A heartbeat extends the lease; the sweeper leaves it alone.
        let until = store.heartbeat(&first.token, at(2000), std::time::Duration::from_secs(3)).await.unwrap();
        assert_eq!(until.expires_at, at(5000));
        assert!(!until.is_cancel_requested);
        assert!(store.expire_leases(at(4000)).await.unwrap().is_empty());
        let expired = store.expire_leases(at(5000)).await.unwrap();
        assert_eq!(expired, vec![ExpiredLease {
            run_id: run.id.clone(),
            job_run_id: jobs[0].clone(),
            lost_attempt: 1,
            expiry: LeaseExpiry::Requeued { attempt: 2 },
        }]);
        // The old attempt is fenced out; the job is queued again as attempt 2.
        assert!(matches!(store.complete(&first.token, completed(), at(5001)).await, Err(StoreError::LeaseLost)));
        let second = store.claim(claim_request("w2", None, at(6000), 3000)).await.unwrap().unwrap();
        assert_eq!((second.attempt, second.try_number), (2, 2));
        let expired = store.expire_leases(at(10_000)).await.unwrap();
        assert_eq!(expired[0].expiry, LeaseExpiry::Failed);
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        let job = &detail.stages[0].jobs[0];
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.message.as_deref(), Some("executor lost"));
        assert!(store.claim(claim_request("w3", None, at(11_000), 3000)).await.unwrap().is_none());
    }
}

conformance! {
    async fn cancelling_a_job_fences_its_worker(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (run, jobs) = queued_run(&store, &pipeline.id, &RunShape { jobs_per_stage: vec![2], steps_per_job: 1 }, None, at(0)).await;
        let lease = store.claim(claim_request("w1", None, at(1), 3000)).await.unwrap().unwrap();
        // Stopping the run shows in the worker's next heartbeat.
        let stop = RunProgress {
            run_id: run.id.clone(),
            expected_version: 0,
            now: at(2),
            run: Some(RunUpdate { status: RunStatus::Running, start_time: Some(at(1)), end_time: None, pause_time: 0, paused_since: None, is_cancel_requested: true }),
            ..Default::default()
        };
        store.save_progress(stop).await.unwrap();
        assert!(store.heartbeat(&lease.token, at(2), std::time::Duration::from_secs(3)).await.unwrap().is_cancel_requested);
        assert!(store.cancel_job(&lease.job_run_id, at(2), Some("stopped".to_owned())).await.unwrap());
        let queued = jobs.iter().find(|job| **job != lease.job_run_id).unwrap();
        assert!(store.cancel_job(queued, at(2), None).await.unwrap(), "a queued job is withdrawn");
        assert!(!store.cancel_job(queued, at(3), None).await.unwrap());
        assert!(matches!(store.complete(&lease.token, completed(), at(4)).await, Err(StoreError::LeaseLost)));
        assert!(store.claim(claim_request("w2", None, at(5), 3000)).await.unwrap().is_none());
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        assert!(detail.stages[0].jobs.iter().all(|job| job.status == JobStatus::Canceled));
    }
}

conformance! {
    async fn refusals_committed_in_the_same_batch_change_nothing_and_undo_nothing(db) {
        // Many workers at once: on SQLite their claims, heartbeats and completions share
        // commits, and refused ones (stale heartbeats, replays, a superseded token) sit among
        // them in every position of a batch. Each job must be claimed and completed exactly
        // once, every refusal must change nothing, and no accepted write may be lost or
        // applied twice.
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (run, jobs) = queued_run(&store, &pipeline.id, &RunShape { jobs_per_stage: vec![120], steps_per_job: 1 }, None, at(0)).await;
        let stale = LeaseToken::new(new_id());
        let mut handles = Vec::new();
        for worker in 0..12 {
            let store = store.clone();
            let stale = stale.clone();
            handles.push(tokio::spawn(async move {
                let mut done = Vec::new();
                while let Some(lease) = store.claim(claim_request(&format!("w{worker}"), None, at(1), 60_000)).await.unwrap() {
                    let beat = store.heartbeat(&lease.token, at(2), std::time::Duration::from_secs(120)).await.unwrap();
                    assert_eq!(beat.expires_at, at(120_002));
                    assert!(matches!(store.heartbeat(&stale, at(2), std::time::Duration::from_secs(1)).await, Err(StoreError::LeaseLost)));
                    let first = store.complete(&lease.token, completed(), at(3)).await.unwrap();
                    assert!(!first.is_replay);
                    let again = store.complete(&lease.token, completed(), at(4)).await.unwrap();
                    assert!(again.is_replay);
                    assert!(matches!(store.heartbeat(&lease.token, at(5), std::time::Duration::from_secs(1)).await, Err(StoreError::LeaseLost)));
                    assert!(matches!(store.complete(&stale, completed(), at(5)).await, Err(StoreError::LeaseLost)));
                    done.push(lease.job_run_id);
                }
                done
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.unwrap());
        }
        all.sort();
        let mut expected = jobs.clone();
        expected.sort();
        assert_eq!(all, expected, "every job claimed and completed exactly once");
        let stats = store.queue_stats(at(10)).await.unwrap();
        assert_eq!((stats.queued, stats.leased), (0, 0), "nothing claimed behind a worker's back");
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        for job in &detail.stages[0].jobs {
            assert_eq!(job.status, JobStatus::Completed);
            assert_eq!(job.attempt, 1);
            assert_eq!(job.steps[0].status, StepStatus::Skipped, "never reported: skipped by the completion");
        }
    }
}

/// What a scripted step was shown, call by call: the job statuses and the outputs.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Vec<JobStatus>, Vec<StepOutputRecord>)>>>;

/// A run's next step for tests: answers with `answer` on the run it is shown, and records
/// what it was shown (the job statuses and the outputs).
struct ScriptedStep<F> {
    answer: F,
    wants_outputs: bool,
    seen: Seen,
}

impl<F> NextStep for ScriptedStep<F>
where
    F: Fn(&RunDetail) -> Option<RunProgress> + Send + Sync,
{
    fn needs_outputs(&self, _run: &RunDetail) -> bool {
        self.wants_outputs
    }

    fn decide(&self, run: &RunDetail, outputs: &[StepOutputRecord]) -> Option<RunProgress> {
        let jobs = run
            .stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .map(|job| job.status)
            .collect();
        self.seen.lock().unwrap().push((jobs, outputs.to_vec()));
        (self.answer)(run)
    }
}

fn scripted<F>(wants_outputs: bool, answer: F) -> (Box<dyn NextStep>, Seen)
where
    F: Fn(&RunDetail) -> Option<RunProgress> + Send + Sync + 'static,
{
    let seen = Seen::default();
    let step = ScriptedStep {
        answer,
        wants_outputs,
        seen: seen.clone(),
    };
    (Box::new(step), seen)
}

/// The step an engine makes when a run's first job ended: the run goes on and its second job
/// is queued.
fn queue_second_job(
    now: Timestamp,
) -> impl Fn(&RunDetail) -> Option<RunProgress> + Send + Sync + 'static {
    move |run: &RunDetail| {
        Some(RunProgress {
            run_id: run.run.id.clone(),
            expected_version: run.run.state_version,
            now,
            run: Some(RunUpdate {
                status: RunStatus::Running,
                start_time: Some(now),
                end_time: None,
                pause_time: 0,
                paused_since: None,
                is_cancel_requested: false,
            }),
            enqueue: vec![EnqueueJob {
                job_run_id: run.stages[1].jobs[0].id.clone(),
                pool: None,
                labels: vec![],
                max_tries: 2,
            }],
            ..RunProgress::default()
        })
    }
}

/// A run of two stages of one job each, with only the first job queued and claimed.
async fn first_job_claimed(store: &Store, pipeline_id: &str) -> (RunRecord, Lease) {
    let shape = RunShape {
        jobs_per_stage: vec![1, 1],
        steps_per_job: 1,
    };
    let run = new_run(pipeline_id, &shape, at(0));
    let first_job = run.stages[0].jobs[0].id.clone();
    let created = store.create_run(run, parameters()).await.unwrap();
    store
        .enqueue(
            EnqueueJob {
                job_run_id: first_job.clone(),
                pool: None,
                labels: vec![],
                max_tries: 2,
            },
            at(1),
        )
        .await
        .unwrap();
    let lease = store
        .claim(claim_request("w1", None, at(2), 3000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.job_run_id, first_job);
    (created.run, lease)
}

conformance! {
    async fn a_completion_writes_its_runs_next_step_and_claims_the_job_that_step_queued(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (run, lease) = first_job_claimed(&store, &pipeline.id).await;
        let report = StepReport {
            step_run_id: store.run_detail(&run.id).await.unwrap().unwrap().stages[0].jobs[0].steps[0].id.clone(),
            status: StepStatus::Completed,
            exit_code: Some(0),
            message: None,
            at: at(3),
            started_at: Some(at(2)),
            outputs: vec![("version".to_owned(), serde_json::json!("1.2.3"))],
        };
        let (step, seen) = scripted(true, queue_second_job(at(4)));
        let done = store
            .complete_advance_and_claim(&lease.token, vec![report], completed(), at(4), step, Some(claim_request("w1", None, at(4), 3000)))
            .await
            .unwrap();
        // The step saw the run as the completion left it, with the output reported with it.
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "asked once");
        assert_eq!(seen[0].0, vec![JobStatus::Completed, JobStatus::Init]);
        assert_eq!(seen[0].1.iter().map(|output| (output.key.as_str(), output.value.clone())).collect::<Vec<_>>(), vec![("version", serde_json::json!("1.2.3"))]);
        // Its write is in, and the job it queued was claimed by the same call.
        assert!(!done.finished.is_replay);
        assert_eq!(done.step_version, Some(run.state_version + 1));
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        assert_eq!((detail.run.status, detail.run.state_version), (RunStatus::Running, run.state_version + 1));
        let second_job = &detail.stages[1].jobs[0];
        assert_eq!(done.lease.as_ref().map(|lease| lease.job_run_id.as_str()), Some(second_job.id.as_str()));
        assert_eq!((second_job.status, second_job.attempt), (JobStatus::Running, 1));

        // A replay of that completion asks nothing and writes nothing more.
        let (step, seen) = scripted(false, queue_second_job(at(5)));
        let replay = store
            .complete_advance_and_claim(&lease.token, vec![], completed(), at(5), step, None)
            .await
            .unwrap();
        assert!(replay.finished.is_replay);
        assert_eq!((replay.step_version, replay.lease), (None, None));
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(store.run_detail(&run.id).await.unwrap().unwrap().run.state_version, run.state_version + 1);
    }
}

conformance! {
    async fn a_declined_or_stale_next_step_leaves_the_completion_alone(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (run, lease) = first_job_claimed(&store, &pipeline.id).await;
        let (declined, seen) = scripted(false, |_: &RunDetail| None);
        let done = store
            .complete_advance_and_claim(&lease.token, vec![], completed(), at(3), declined, Some(claim_request("w1", None, at(3), 3000)))
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap()[0].1, vec![], "no outputs unless asked");
        assert_eq!((done.step_version, done.lease), (None, None));
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        assert_eq!(detail.stages[0].jobs[0].status, JobStatus::Completed);
        assert_eq!(detail.run.state_version, run.state_version);

        // An answer computed from another version (or for another run) is not written.
        let (run, lease) = first_job_claimed(&store, &pipeline.id).await;
        let stale = queue_second_job(at(4));
        let (step, _) = scripted(false, move |detail: &RunDetail| {
            stale(detail).map(|progress| RunProgress { expected_version: progress.expected_version + 1, ..progress })
        });
        let done = store
            .complete_advance_and_claim(&lease.token, vec![], completed(), at(4), step, Some(claim_request("w1", None, at(4), 3000)))
            .await
            .unwrap();
        assert_eq!((done.step_version, done.lease), (None, None));
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        assert_eq!((detail.stages[0].jobs[0].status, detail.stages[1].jobs[0].status), (JobStatus::Completed, JobStatus::Init));
        assert_eq!(detail.run.state_version, run.state_version);
    }
}

conformance! {
    async fn a_next_step_that_cannot_be_written_fails_the_completion_with_it(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "q").await;
        let (run, lease) = first_job_claimed(&store, &pipeline.id).await;
        let (other_run, _) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(0)).await;
        let other_job = store.run_detail(&other_run.id).await.unwrap().unwrap().stages[0].jobs[0].id.clone();
        // Queues a job of another run: refused, so nothing of the call is written.
        let (step, _) = scripted(false, move |detail: &RunDetail| {
            Some(RunProgress {
                run_id: detail.run.id.clone(),
                expected_version: detail.run.state_version,
                now: at(3),
                enqueue: vec![EnqueueJob { job_run_id: other_job.clone(), pool: None, labels: vec![], max_tries: 2 }],
                ..RunProgress::default()
            })
        });
        let err = store
            .complete_advance_and_claim(&lease.token, vec![], completed(), at(3), step, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        assert_eq!((detail.stages[0].jobs[0].status, detail.run.state_version), (JobStatus::Running, run.state_version));
        // The lease still holds: the completion alone goes through.
        let finished = store.complete(&lease.token, completed(), at(4)).await.unwrap();
        assert!(!finished.is_replay);
    }
}
