//! The slot loop and the handling of one claimed job.

use crate::coordinator::{CallError, Coordinator};
use crate::shipper::Shipper;
use runnel_executor::{Executor, JobOutcome, JobTask, StepAction, StepTask, run_job};
use runnel_protocol::{ClaimRequest, ClaimedJob, JobResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Settings of one worker (the built-in pool, or a remote agent).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker_id: String,
    pub pool: Option<String>,
    pub labels: Vec<String>,
    /// Jobs run at once.
    pub slots: usize,
    /// How long an idle slot waits for a nudge before asking again.
    pub idle_wait: Duration,
    /// Pause between retries of a failed call.
    pub retry_backoff: Duration,
    /// How long a step report may wait to be merged with later ones or sent with the job's
    /// completion ([`DEFAULT_REPORT_DELAY`]; zero sends each at once).
    pub report_delay: Duration,
}

/// A step that ends within this time is reported once, and the last reports of a job travel
/// with its completion: it bounds how late the server learns that a step started or ended.
/// A step's log bytes are never held back by it.
pub const DEFAULT_REPORT_DELAY: Duration = Duration::from_millis(50);

/// Runs `config.slots` slots until `stop_claiming` fires and their jobs are over.
///
/// Shutdown: `stop_claiming` stops taking new jobs; running jobs continue. `abort_jobs` stops
/// running jobs at once *without* reporting a result: their leases expire and the server
/// dispatches them again (a server restart recovers them); use it when the grace period is over.
pub async fn run_worker<C: Coordinator, E: Executor + 'static>(
    coordinator: Arc<C>,
    executor: Arc<E>,
    config: WorkerConfig,
    stop_claiming: CancellationToken,
    abort_jobs: CancellationToken,
) {
    let mut slots = JoinSet::new();
    for slot in 0..config.slots.max(1) {
        let coordinator = Arc::clone(&coordinator);
        let executor = Arc::clone(&executor);
        let config = config.clone();
        let stop_claiming = stop_claiming.clone();
        let abort_jobs = abort_jobs.clone();
        slots.spawn(async move {
            let request = ClaimRequest {
                worker_id: format!("{}/{slot}", config.worker_id),
                pool: config.pool.clone(),
                labels: config.labels.clone(),
            };
            // A job claimed together with the previous one's completion: it is this slot's
            // already, so it runs even when claiming stopped meanwhile.
            let mut next: Option<ClaimedJob> = None;
            while next.is_some() || !stop_claiming.is_cancelled() {
                let claimed = match next.take() {
                    Some(job) => Ok(Some(job)),
                    None => coordinator.claim(&request).await,
                };
                match claimed {
                    Ok(Some(job)) => {
                        next = run_slot_job(
                            coordinator.as_ref(),
                            executor.as_ref(),
                            job,
                            &config,
                            &abort_jobs,
                            Some((&request, &stop_claiming)),
                        )
                        .await;
                    }
                    Ok(None) => {
                        tokio::select! {
                            _ = coordinator.wait_for_work(config.idle_wait) => {}
                            _ = stop_claiming.cancelled() => {}
                        }
                    }
                    Err(err) => {
                        tracing::warn!(worker = %request.worker_id, error = %err, "claim failed");
                        tokio::select! {
                            _ = tokio::time::sleep(config.retry_backoff) => {}
                            _ = stop_claiming.cancelled() => {}
                        }
                    }
                }
            }
        });
    }
    while let Some(result) = slots.join_next().await {
        if let Err(err) = result {
            tracing::error!(error = %err, "a worker slot ended abnormally");
        }
    }
}

/// Runs one claimed job to its end and reports it. Returns after the result is acknowledged,
/// the lease was lost, or `abort` fired.
pub async fn run_claimed_job<C: Coordinator, E: Executor>(
    coordinator: &C,
    executor: &E,
    job: ClaimedJob,
    config: &WorkerConfig,
    abort: &CancellationToken,
) {
    run_slot_job(coordinator, executor, job, config, abort, None).await;
}

/// [`run_claimed_job`]; with `next` (the slot's claim request, and the signal that claiming
/// stopped) the completion also claims the slot's next job, which is returned.
async fn run_slot_job<C: Coordinator, E: Executor>(
    coordinator: &C,
    executor: &E,
    mut job: ClaimedJob,
    config: &WorkerConfig,
    abort: &CancellationToken,
    next: Option<(&ClaimRequest, &CancellationToken)>,
) -> Option<ClaimedJob> {
    let lease = job.lease.clone();
    let task = executor_task(&mut job.task);
    let cancel = CancellationToken::new();
    let lease_lost = CancellationToken::new();
    let done = CancellationToken::new();
    let (events_tx, events_rx) = mpsc::channel(256);
    let shipper = Shipper::new(
        coordinator,
        &lease,
        job.task
            .steps
            .iter()
            .map(|step| (step.step_run_id.clone(), step.log_offset))
            .collect(),
        job.task.utc_offset_minutes,
        &lease_lost,
        abort,
        config,
    );
    let run = async {
        let outcome = run_job(executor, &task, events_tx, cancel.clone()).await;
        done.cancel();
        outcome
    };
    let heartbeat = async {
        let interval = Duration::from_millis(job.heartbeat_interval_ms.max(50));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = done.cancelled() => return,
            }
            match coordinator.heartbeat(&lease).await {
                Ok(reply) if reply.cancel => cancel.cancel(),
                Ok(_) => {}
                Err(err) if err.is_lease_lost() => {
                    lease_lost.cancel();
                    return;
                }
                Err(err) => {
                    tracing::warn!(job_run_id = %lease.job_run_id, error = %err, "heartbeat failed")
                }
            }
        }
    };
    let watch = async {
        tokio::select! {
            _ = coordinator.cancelled(&lease) => cancel.cancel(),
            _ = lease_lost.cancelled() => cancel.cancel(),
            _ = abort.cancelled() => cancel.cancel(),
            _ = done.cancelled() => {}
        }
    };
    let (outcome, unsent, (), ()) = tokio::join!(run, shipper.ship(events_rx), heartbeat, watch);
    if lease_lost.is_cancelled() {
        tracing::warn!(job_run_id = %lease.job_run_id, "lease lost: the job was stopped and its result dropped");
        return None;
    }
    if abort.is_cancelled() {
        tracing::info!(job_run_id = %lease.job_run_id, "job stopped for shutdown; the server will dispatch it again");
        return None;
    }
    // Claim the next job with the completion only while the slot still takes jobs.
    let next = next
        .filter(|(_, stop_claiming)| !stop_claiming.is_cancelled())
        .map(|(request, _)| request);
    complete(coordinator, &lease, &outcome, unsent, config, abort, next).await
}

/// Sends the job's result with the step reports the shipper had not sent yet and, with `next`,
/// claims the slot's next job in the same call (returned).
async fn complete<C: Coordinator>(
    coordinator: &C,
    lease: &runnel_protocol::LeaseRef,
    outcome: &JobOutcome,
    steps: Vec<runnel_protocol::StepReport>,
    config: &WorkerConfig,
    abort: &CancellationToken,
    mut next: Option<&ClaimRequest>,
) -> Option<ClaimedJob> {
    let result = JobResult {
        status: outcome.status.as_str().to_owned(),
        message: outcome.message.clone(),
        steps,
    };
    loop {
        let answer = match next {
            Some(request) => {
                coordinator
                    .complete_and_claim(lease, result.clone(), request)
                    .await
            }
            None => coordinator
                .complete(lease, result.clone())
                .await
                .map(|()| None),
        };
        match answer {
            Ok(claimed) => return claimed,
            Err(err) if err.is_retryable() => {
                tracing::warn!(job_run_id = %lease.job_run_id, error = %err, "completion failed; retrying");
                // A lost answer may have claimed a job already: retry the completion alone, so
                // at most that one claim waits for its lease to expire.
                next = None;
                tokio::select! {
                    _ = tokio::time::sleep(config.retry_backoff) => {}
                    _ = abort.cancelled() => return None,
                }
            }
            Err(CallError::Refused(kind)) => {
                tracing::warn!(job_run_id = %lease.job_run_id, refused = ?kind, "completion refused");
                return None;
            }
            Err(err) => {
                tracing::warn!(job_run_id = %lease.job_run_id, error = %err, "completion failed");
                return None;
            }
        }
    }
}

/// The executor's view of a claimed job. Its environment, secrets and scripts move over rather
/// than being copied (a job's environment is dozens of strings); what the worker reports with
/// stays: the step run ids and log offsets, the heartbeat interval, the time zone.
fn executor_task(task: &mut runnel_protocol::JobTask) -> JobTask {
    JobTask {
        job_key: std::mem::take(&mut task.job_key),
        env: std::mem::take(&mut task.env),
        secrets: std::mem::take(&mut task.secrets),
        steps: task
            .steps
            .iter_mut()
            .map(|step| StepTask {
                identifier: std::mem::take(&mut step.identifier),
                name: std::mem::take(&mut step.name),
                action: match &mut step.action {
                    runnel_protocol::StepAction::Shell { script } => StepAction::Shell {
                        script: std::mem::take(script),
                    },
                    runnel_protocol::StepAction::Disabled => StepAction::Disabled,
                    runnel_protocol::StepAction::Unsupported { task } => StepAction::Unsupported {
                        task: std::mem::take(task),
                    },
                },
                env: std::mem::take(&mut step.env),
            })
            .collect(),
        timeout: task.timeout_ms.map(Duration::from_millis),
    }
}

#[cfg(test)]
mod tests;
