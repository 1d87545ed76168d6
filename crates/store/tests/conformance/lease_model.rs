//! State-machine property test of the queue (G1, G2): random schedules of claim / heartbeat / report / append / complete / sweep / stale writes with a fake clock, checked against a model.

use crate::fixtures::*;
use crate::harness::{Kind, fresh};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_store::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

const WORKERS: usize = 3;
const LEASE_MS: i64 = 3000;
const MAX_TRIES: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Claim(usize),
    Heartbeat(usize),
    Report(usize),
    Append(usize),
    Complete(usize, bool),
    /// A write with the worker's most recent superseded token.
    Stale(usize, u8),
    Advance(u16),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let worker = 0..WORKERS;
    prop_oneof![
        3 => worker.clone().prop_map(Op::Claim),
        2 => worker.clone().prop_map(Op::Heartbeat),
        2 => worker.clone().prop_map(Op::Report),
        2 => worker.clone().prop_map(Op::Append),
        2 => (worker.clone(), any::<bool>()).prop_map(|(w, failed)| Op::Complete(w, failed)),
        4 => (worker, 0u8..4).prop_map(|(w, kind)| Op::Stale(w, kind)),
        3 => (0u16..4000).prop_map(Op::Advance),
        2 => Just(Op::Sweep),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum JobState {
    Queued,
    Leased { token: LeaseToken, expires: i64 },
    Done,
    Failed,
}

struct ModelJob {
    state: JobState,
    tries: u32,
    step_id: String,
    /// Bytes appended to the current attempt's log.
    log_len: u64,
}

#[derive(Default, Debug)]
struct Figures {
    schedules: u64,
    operations: u64,
    sweeps: u64,
    stale_attempts: u64,
    stale_accepted: u64,
    g1_violations: u64,
    requeued: u64,
    lost: u64,
}

struct Worker {
    lease: Option<Lease>,
    old_tokens: Vec<LeaseToken>,
}

fn check(condition: bool, message: impl Into<String>) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(message.into()))
    }
}

async fn run_schedule(
    store: &Store,
    pipeline_id: &str,
    case: u64,
    jobs: usize,
    ops: &[Op],
    figures: &RefCell<Figures>,
) -> Result<(), TestCaseError> {
    let pool = format!("case-{case}");
    let mut now = T0.as_millis() + (case as i64) * 100_000_000;
    let run = new_run(
        pipeline_id,
        &RunShape {
            jobs_per_stage: vec![jobs],
            steps_per_job: 1,
        },
        Timestamp::from_millis(now),
    );
    let mut model: HashMap<String, ModelJob> = HashMap::new();
    for stage in &run.stages {
        for job in &stage.jobs {
            model.insert(
                job.id.clone(),
                ModelJob {
                    state: JobState::Queued,
                    tries: 1,
                    step_id: job.steps[0].id.clone(),
                    log_len: 0,
                },
            );
        }
    }
    let job_ids: Vec<String> = model.keys().cloned().collect();
    store
        .create_run(run, parameters())
        .await
        .map_err(|err| TestCaseError::fail(err.to_string()))?;
    for job_id in &job_ids {
        let job = EnqueueJob {
            job_run_id: job_id.clone(),
            pool: Some(pool.clone()),
            labels: vec![],
            max_tries: MAX_TRIES,
        };
        store
            .enqueue(job, Timestamp::from_millis(now))
            .await
            .map_err(|err| TestCaseError::fail(err.to_string()))?;
    }
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|_| Worker {
            lease: None,
            old_tokens: Vec::new(),
        })
        .collect();
    let is_current = |model: &HashMap<String, ModelJob>, lease: &Lease| matches!(&model[&lease.job_run_id].state, JobState::Leased { token, .. } if *token == lease.token);
    for op in ops {
        figures.borrow_mut().operations += 1;
        let ts = Timestamp::from_millis(now);
        match op.clone() {
            Op::Advance(ms) => now += i64::from(ms),
            Op::Claim(w) => {
                if workers[w].lease.is_some() {
                    continue;
                }
                let claimed = store
                    .claim(claim_request(
                        &format!("w{w}"),
                        Some(&pool),
                        ts,
                        LEASE_MS as u64,
                    ))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let any_queued = model.values().any(|job| job.state == JobState::Queued);
                check(
                    claimed.is_some() == any_queued,
                    format!("claim returned {claimed:?} with queued = {any_queued}"),
                )?;
                if let Some(lease) = claimed {
                    let job = model
                        .get_mut(&lease.job_run_id)
                        .ok_or_else(|| TestCaseError::fail("claimed a foreign job"))?;
                    check(
                        job.state == JobState::Queued,
                        "claimed a job that was not queued",
                    )?;
                    job.state = JobState::Leased {
                        token: lease.token.clone(),
                        expires: now + LEASE_MS,
                    };
                    job.log_len = 0;
                    workers[w].lease = Some(lease);
                }
            }
            Op::Heartbeat(w) => {
                let Some(lease) = workers[w].lease.clone() else {
                    continue;
                };
                let result = store
                    .heartbeat(&lease.token, ts, Duration::from_millis(LEASE_MS as u64))
                    .await;
                if is_current(&model, &lease) {
                    let until = result.map_err(|e| {
                        TestCaseError::fail(format!("heartbeat of a current lease: {e}"))
                    })?;
                    if let JobState::Leased { expires, .. } =
                        &mut model.get_mut(&lease.job_run_id).expect("known").state
                    {
                        *expires = (*expires).max(now + LEASE_MS);
                        check(until.expires_at.as_millis() == *expires, "heartbeat expiry")?;
                    }
                } else {
                    check(
                        matches!(result, Err(StoreError::LeaseLost)),
                        format!("stale heartbeat answered {result:?}"),
                    )?;
                    retire(&mut workers[w]);
                }
            }
            Op::Report(w) => {
                let Some(lease) = workers[w].lease.clone() else {
                    continue;
                };
                let step_run_id = model[&lease.job_run_id].step_id.clone();
                let report = StepReport {
                    step_run_id,
                    status: StepStatus::Running,
                    exit_code: None,
                    message: None,
                    at: ts,
                    started_at: None,
                    outputs: vec![],
                };
                let result = store.report_step(&lease.token, report).await;
                if is_current(&model, &lease) {
                    result.map_err(|e| {
                        TestCaseError::fail(format!("report with a current lease: {e}"))
                    })?;
                } else {
                    check(
                        matches!(result, Err(StoreError::LeaseLost)),
                        format!("stale report answered {result:?}"),
                    )?;
                    retire(&mut workers[w]);
                }
            }
            Op::Append(w) => {
                let Some(lease) = workers[w].lease.clone() else {
                    continue;
                };
                let job = &model[&lease.job_run_id];
                let (step_id, offset) = (job.step_id.clone(), job.log_len);
                let result = store
                    .append(&lease.token, &step_id, offset, b"line\n".to_vec(), ts)
                    .await;
                if is_current(&model, &lease) {
                    let outcome = result.map_err(|e| {
                        TestCaseError::fail(format!("append with a current lease: {e}"))
                    })?;
                    check(outcome.next_offset == offset + 5, "append offset")?;
                    model.get_mut(&lease.job_run_id).expect("known").log_len += 5;
                } else {
                    check(
                        matches!(result, Err(StoreError::LeaseLost)),
                        format!("stale append answered {result:?}"),
                    )?;
                    retire(&mut workers[w]);
                }
            }
            Op::Complete(w, failed) => {
                let Some(lease) = workers[w].lease.clone() else {
                    continue;
                };
                let status = if failed {
                    JobStatus::Failed
                } else {
                    JobStatus::Completed
                };
                let result = store
                    .complete(
                        &lease.token,
                        JobOutcome {
                            status,
                            message: None,
                        },
                        ts,
                    )
                    .await;
                if is_current(&model, &lease) {
                    let finished = result.map_err(|e| {
                        TestCaseError::fail(format!("complete with a current lease: {e}"))
                    })?;
                    check(!finished.is_replay, "first completion reported as a replay")?;
                    model.get_mut(&lease.job_run_id).expect("known").state = JobState::Done;
                } else {
                    check(
                        matches!(result, Err(StoreError::LeaseLost)),
                        format!("stale completion answered {result:?}"),
                    )?;
                }
                retire(&mut workers[w]);
            }
            Op::Stale(w, kind) => {
                let Some(token) = workers[w].old_tokens.last().cloned() else {
                    continue;
                };
                figures.borrow_mut().stale_attempts += 1;
                let step_id = model
                    .values()
                    .next()
                    .map(|job| job.step_id.clone())
                    .unwrap_or_default();
                let accepted = match kind {
                    0 => store
                        .heartbeat(&token, ts, Duration::from_millis(LEASE_MS as u64))
                        .await
                        .is_ok(),
                    1 => {
                        let report = StepReport {
                            step_run_id: step_id,
                            status: StepStatus::Failed,
                            exit_code: Some(1),
                            message: None,
                            at: ts,
                            started_at: None,
                            outputs: vec![],
                        };
                        store.report_step(&token, report).await.is_ok()
                    }
                    2 => store
                        .append(&token, &step_id, 0, b"stale".to_vec(), ts)
                        .await
                        .is_ok(),
                    _ => {
                        // A completion replay of an attempt that did complete is idempotent, not a write.
                        matches!(store.complete(&token, JobOutcome { status: JobStatus::Canceled, message: None }, ts).await, Ok(done) if !done.is_replay)
                    }
                };
                if accepted {
                    figures.borrow_mut().stale_accepted += 1;
                }
            }
            Op::Sweep => {
                figures.borrow_mut().sweeps += 1;
                let expired = store
                    .expire_leases(ts)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mine: Vec<&ExpiredLease> = expired
                    .iter()
                    .filter(|lease| model.contains_key(&lease.job_run_id))
                    .collect();
                let mut expected = 0;
                for job in model.values_mut() {
                    if let JobState::Leased { expires, .. } = job.state.clone()
                        && expires <= now
                    {
                        expected += 1;
                        if job.tries < MAX_TRIES {
                            job.tries += 1;
                            job.state = JobState::Queued;
                            figures.borrow_mut().requeued += 1;
                        } else {
                            job.state = JobState::Failed;
                            figures.borrow_mut().lost += 1;
                        }
                    }
                }
                check(
                    mine.len() == expected,
                    format!(
                        "sweep ended {} leases, model expected {expected}",
                        mine.len()
                    ),
                )?;
                for lease in mine {
                    let wanted = match model[&lease.job_run_id].state {
                        JobState::Queued => matches!(lease.expiry, LeaseExpiry::Requeued { .. }),
                        JobState::Failed => lease.expiry == LeaseExpiry::Failed,
                        _ => false,
                    };
                    check(wanted, format!("sweep outcome {lease:?}"))?;
                }
                // G1: after a sweep at `now`, no attempt is leased with a lease expired at `now`.
                let stats = store
                    .queue_stats(ts)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if stats.expired != 0 {
                    figures.borrow_mut().g1_violations += 1;
                }
            }
        }
    }
    // Leave nothing queued or leased for later cases: they use other pools, but tidy anyway.
    for job_id in &job_ids {
        store
            .cancel_job(job_id, Timestamp::from_millis(now), None)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(())
}

/// A worker whose lease ended keeps its token as a stale one.
fn retire(worker: &mut Worker) {
    if let Some(lease) = worker.lease.take() {
        worker.old_tokens.push(lease.token);
    }
}

fn property(kind: Kind) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = runtime.block_on(fresh(kind)) else {
        return;
    };
    let store = runtime.block_on(db.open());
    let tenant = runtime.block_on(tenant(&store, "acme"));
    let pipeline = runtime.block_on(pipeline(&store, &tenant, "leases"));
    // Thousands of schedules per backend by default (issue 3); `RUNNEL_LEASE_CASES` changes it.
    let cases = std::env::var("RUNNEL_LEASE_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let figures = RefCell::new(Figures::default());
    let case = RefCell::new(0u64);
    let strategy = (1usize..=3, proptest::collection::vec(op(), 1..40));
    let result = runner.run(&strategy, |(jobs, ops)| {
        *case.borrow_mut() += 1;
        figures.borrow_mut().schedules += 1;
        let case_number = *case.borrow();
        runtime.block_on(run_schedule(
            &store,
            &pipeline.id,
            case_number,
            jobs,
            &ops,
            &figures,
        ))
    });
    let figures = figures.into_inner();
    println!(
        "G1/G2 {kind:?}: {} schedules, {} operations, {} sweeps ({} requeued, {} executor lost): \
         {} jobs RUNNING with an expired lease after a sweep (G1); {} of {} stale writes accepted (G2)",
        figures.schedules,
        figures.operations,
        figures.sweeps,
        figures.requeued,
        figures.lost,
        figures.g1_violations,
        figures.stale_accepted,
        figures.stale_attempts
    );
    if let Err(err) = result {
        panic!("{err}");
    }
    assert_eq!(figures.g1_violations, 0, "G1");
    assert_eq!(figures.stale_accepted, 0, "G2");
    runtime.block_on(store.close());
    drop(db);
}

#[test]
fn lease_state_machine_holds_g1_and_g2_on_sqlite() {
    property(Kind::Sqlite);
}

#[test]
fn lease_state_machine_holds_g1_and_g2_on_postgres() {
    property(Kind::Postgres);
}
