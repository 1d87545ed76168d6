//! The leased job queue: enqueue, claim in one statement, heartbeat, fenced reports, completion and the lease sweeper.

mod ops;

use crate::config::Backend;
use crate::error::StoreError;
use crate::runs::NextStep;
use crate::{Store, sql};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, StepStatus};
use std::fmt;
use std::future::Future;
use std::time::Duration;

pub(crate) use ops::{enqueue_in_run, guard, insert_attempt};

/// Proof of holding the current attempt of a job: the time, then 128 random bits; fresh for
/// every claim.
///
/// Every write an executor makes for its job carries it; a token that is not the current one
/// is refused with [`StoreError::LeaseLost`] and the write changes nothing (G2).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A token received from an executor (e.g. over HTTP).
    pub fn new(token: impl Into<String>) -> Self {
        LeaseToken(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn generate() -> Self {
        // The time first (12 hex digits of milliseconds), so tokens issued one after another
        // sort together in the unique index on tokens (a random key touched a random page of
        // it in every commit); the 128 random bits after it are what makes the token.
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        LeaseToken(format!(
            "{:012x}{}",
            millis & 0xffff_ffff_ffff,
            crate::crypto::random_hex(16)
        ))
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to correlate in logs, not enough to use.
        let prefix: String = self.0.chars().take(6).collect();
        write!(f, "LeaseToken({prefix}…)")
    }
}

/// Puts a job run on the queue as a new attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueJob {
    pub job_run_id: String,
    /// The agent pool that may run it; `None` = the default pool (the built-in executors).
    pub pool: Option<String>,
    /// Labels an agent must have (kept for agent selection; not yet used by `claim`).
    pub labels: Vec<String>,
    /// How many times the job may be dispatched when executors are lost (≥ 1); after the
    /// last lost attempt the sweeper fails the job with `executor lost`.
    pub max_tries: u32,
}

/// What a worker asks for when it has a free slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Who takes the job (agent or built-in slot id); shown as the job's `exec_id`.
    pub worker_id: String,
    /// Claim only jobs of this pool (`None` = the default pool).
    pub pool: Option<String>,
    pub now: Timestamp,
    /// The lease lasts until `now + lease` unless heartbeats extend it.
    pub lease: Duration,
}

/// A claimed job: the worker now holds its current attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub token: LeaseToken,
    /// The attempt's id (the job's `last_dispatch_id`).
    pub attempt_id: String,
    pub job_run_id: String,
    pub run_id: String,
    /// 1 for the first dispatch of the job run; grows with every re-dispatch and retry.
    pub attempt: i64,
    /// Which try of this dispatch (1 unless executors were lost before).
    pub try_number: i64,
    pub expires_at: Timestamp,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The lease now lasts until then.
    pub expires_at: Timestamp,
    /// The run was stopped: the worker should stop the job and complete it as CANCELED.
    pub is_cancel_requested: bool,
}

/// A step's progress or result, reported by the worker holding the lease (A3).
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub step_run_id: String,
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub at: Timestamp,
    /// When the step started, for a result whose start was not reported (the step's start
    /// time is then this instead of `at`); a start time already recorded is kept.
    pub started_at: Option<Timestamp>,
    /// Outputs the step published (`key`, JSON value); a key given again replaces its value.
    pub outputs: Vec<(String, serde_json::Value)>,
}

/// How a job attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// COMPLETED, FAILED or CANCELED.
    pub status: JobStatus,
    pub message: Option<String>,
}

/// The answer to a completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedJob {
    pub run_id: String,
    pub job_run_id: String,
    pub attempt: i64,
    pub status: JobStatus,
    /// The same completion had already been recorded (a retry after a lost answer).
    pub is_replay: bool,
}

/// The answer to [`JobQueue::complete_advance_and_claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedJob {
    pub finished: FinishedJob,
    /// The run's `state_version` after the engine step written with the completion; `None`
    /// when none was (the step declined, or the completion was a replay).
    pub step_version: Option<i64>,
    /// The worker's next job, when asked for and one was queued.
    pub lease: Option<Lease>,
}

/// What the sweeper did with one expired lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseExpiry {
    /// Queued again as this new attempt.
    Requeued { attempt: i64 },
    /// Out of tries: the job FAILED with message `executor lost`.
    Failed,
}

/// One lease the sweeper ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    pub run_id: String,
    pub job_run_id: String,
    pub lost_attempt: i64,
    pub expiry: LeaseExpiry,
}

/// Metadata of a build artifact a step produced (spec §5.8).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewArtifact {
    pub step_run_id: String,
    pub name: String,
    pub version: String,
    pub package_type: String,
    pub artifact_type: String,
    pub upload_target: String,
    pub uri: String,
    pub download_url: String,
    pub sha256: Option<String>,
    pub file_size: Option<i64>,
    pub build_no: String,
    pub daily_build_number: String,
    pub at: Timestamp,
}

/// Queue figures for metrics and "why is it waiting".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub queued: i64,
    pub leased: i64,
    /// Leased with an expired lease the sweeper has not handled yet.
    pub expired: i64,
    /// When the oldest queued attempt was queued.
    pub oldest_queued_at: Option<Timestamp>,
}

/// The job queue with leases (G1, G2).
///
/// Lifecycle of one attempt: `enqueue` (queued) → `claim` (leased, with a fresh token) →
/// `heartbeat`* and fenced writes (`report_step`, [`crate::LogStore::append`],
/// `record_artifact`) → `complete` (completed). When a lease expires, `expire_leases` marks
/// the attempt lost and either queues a new attempt (while `max_tries` allows) or fails the
/// job with `executor lost`. `cancel_job` ends the live attempt at once.
///
/// Concurrency: any number of workers and sweepers may call these at once, in one process or
/// several servers on one PostgreSQL: a queued attempt is claimed by exactly one worker
/// (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite), oldest first.
/// No transaction stays open while a job runs: each call is one short transaction.
///
/// Idempotency: `complete` with the same token and outcome answers the same again
/// (`is_replay`); with another outcome it is a `Conflict`. `report_step` with a final status
/// already recorded is a no-op; a different final status is a `Conflict`. A write with a token
/// that is not current fails with `LeaseLost` and changes nothing.
pub trait JobQueue {
    /// Queues the job run as a new attempt: the job becomes QUEUED, its steps INIT.
    /// `Conflict` when the job already has a queued or leased attempt.
    fn enqueue(
        &self,
        job: EnqueueJob,
        now: Timestamp,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Claims the oldest queued attempt of the pool, if any: one statement that commits the
    /// lease. The job becomes RUNNING with this worker as its `exec_id`.
    fn claim(
        &self,
        request: ClaimRequest,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Extends the lease to `now + lease` (never shortens it). Accepted until the sweeper
    /// has ended the attempt, even if the lease expired meanwhile. Returns the new expiry and
    /// whether the run was stopped.
    fn heartbeat(
        &self,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
    ) -> impl Future<Output = Result<Heartbeat, StoreError>> + Send;

    /// Records a step's status, exit code, message and outputs (A3).
    fn report_step(
        &self,
        token: &LeaseToken,
        report: StepReport,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records an artifact produced by a step of the leased job.
    fn record_artifact(
        &self,
        token: &LeaseToken,
        artifact: NewArtifact,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Ends the attempt with its outcome: the job becomes COMPLETED, FAILED or CANCELED, and
    /// steps still waiting become SKIPPED (running ones end with the job).
    fn complete(
        &self,
        token: &LeaseToken,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> impl Future<Output = Result<FinishedJob, StoreError>> + Send;

    /// [`JobQueue::complete`] after the step reports the worker had not sent yet, in ONE
    /// transaction: the reports are recorded in order, then the attempt ends. A report refused
    /// on its own (the step ended otherwise already, an unknown step) is skipped and the
    /// completion still counts; a token that is not current refuses everything, and a replay
    /// of a recorded completion answers it again (`is_replay`) and changes nothing.
    fn complete_with_steps(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> impl Future<Output = Result<FinishedJob, StoreError>> + Send;
    /// [`JobQueue::complete_with_steps`], then — in the same transaction — [`JobQueue::claim`]
    /// with `next` for the worker's now free slot: one write instead of two. When the
    /// completion is refused nothing is claimed; a replayed completion still claims.
    fn complete_and_claim(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        next: ClaimRequest,
    ) -> impl Future<Output = Result<(FinishedJob, Option<Lease>), StoreError>> + Send;
    /// [`JobQueue::complete_with_steps`] at `now`, then — in the same transaction — the run's
    /// next engine step decided by `step` on the run as the completion left it (see
    /// [`NextStep`]; not for a replayed completion), then, with `next`, [`JobQueue::claim`] for
    /// the worker's free slot (which may take a job that step queued). One write instead of two
    /// or three. When the completion is refused nothing else happens; a step that fails to be
    /// written fails the whole call (the caller may complete again without it).
    fn complete_advance_and_claim(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        now: Timestamp,
        step: Box<dyn NextStep>,
        next: Option<ClaimRequest>,
    ) -> impl Future<Output = Result<CompletedJob, StoreError>> + Send;
    /// The sweeper: ends every leased attempt whose lease expired at or before `now`.
    /// Afterwards no attempt is leased with an expired lease (G1).
    fn expire_leases(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<ExpiredLease>, StoreError>> + Send;

    /// Ends the job's queued or leased attempt as CANCELED (the job too, with `message`);
    /// its token is refused from now on. Returns whether there was such an attempt.
    fn cancel_job(
        &self,
        job_run_id: &str,
        now: Timestamp,
        message: Option<String>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn queue_stats(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<QueueStats, StoreError>> + Send;
}

impl JobQueue for Store {
    async fn enqueue(&self, job: EnqueueJob, now: Timestamp) -> Result<i64, StoreError> {
        if job.max_tries == 0 {
            return Err(StoreError::Invalid(
                "max_tries must be at least 1".to_owned(),
            ));
        }
        self.db()
            .write_repeatable(false, (job, now), |conn, (job, now)| {
                Box::pin(ops::enqueue(conn, job, *now))
            })
            .await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Option<Lease>, StoreError> {
        let backend = self.backend();
        let token = LeaseToken::generate();
        self.db()
            .write_one_statement((backend, request, token), |conn, data, wrap| {
                let (backend, request, token) = data;
                Box::pin(ops::claim(conn, *backend, request, token, wrap))
            })
            .await
    }

    async fn heartbeat(
        &self,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        let backend = self.backend();
        let token = token.clone();
        let until = sql::millis(now + lease);
        self.db()
            .write_one_statement((backend, token, until), |conn, data, wrap| {
                let (backend, token, until) = data;
                Box::pin(ops::heartbeat(conn, *backend, token, *until, wrap))
            })
            .await
    }

    async fn report_step(&self, token: &LeaseToken, report: StepReport) -> Result<(), StoreError> {
        let backend = self.backend();
        let token = token.clone();
        let general = report_step_general;
        // The common report (a step starts or ends, no outputs) is one statement on SQLite.
        if backend == Backend::Sqlite && report.outputs.is_empty() {
            return self
                .db()
                .write_repeatable_fast(
                    (backend, token, report),
                    |conn, data, wrap| {
                        let (_, token, report) = data;
                        Box::pin(ops::report_step_fast(conn, token, report, wrap))
                    },
                    general,
                )
                .await;
        }
        self.db()
            .write_repeatable(false, (backend, token, report), general)
            .await
    }

    async fn record_artifact(
        &self,
        token: &LeaseToken,
        artifact: NewArtifact,
    ) -> Result<String, StoreError> {
        let backend = self.backend();
        let token = token.clone();
        let id = crate::new_id();
        self.db()
            .write_repeatable(
                false,
                (backend, token, artifact, id),
                |conn, (backend, token, artifact, id)| {
                    Box::pin(ops::record_artifact(conn, *backend, token, artifact, id))
                },
            )
            .await
    }

    async fn complete(
        &self,
        token: &LeaseToken,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> Result<FinishedJob, StoreError> {
        check_final(&outcome)?;
        let backend = self.backend();
        let token = token.clone();
        self.db()
            .write_one_statement((backend, token, outcome, now), |conn, data, wrap| {
                let (backend, token, outcome, now) = data;
                Box::pin(ops::complete(conn, *backend, token, outcome, *now, wrap))
            })
            .await
    }

    async fn complete_with_steps(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> Result<FinishedJob, StoreError> {
        if steps.is_empty() {
            return self.complete(token, outcome, now).await;
        }
        check_final(&outcome)?;
        let backend = self.backend();
        let token = token.clone();
        self.db()
            .write_repeatable(
                false,
                (backend, token, steps, outcome, now),
                |conn, (backend, token, steps, outcome, now)| {
                    Box::pin(ops::complete_with_steps(
                        conn, *backend, token, steps, outcome, *now,
                    ))
                },
            )
            .await
    }

    async fn complete_and_claim(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        next: ClaimRequest,
    ) -> Result<(FinishedJob, Option<Lease>), StoreError> {
        check_final(&outcome)?;
        let backend = self.backend();
        let data = (
            backend,
            token.clone(),
            steps,
            outcome,
            next,
            LeaseToken::generate(),
        );
        self.db()
            .write_repeatable(false, data, |conn, data| {
                let (backend, token, steps, outcome, next, next_token) = data;
                Box::pin(ops::complete_and_claim(
                    conn, *backend, token, steps, outcome, next, next_token,
                ))
            })
            .await
    }

    async fn complete_advance_and_claim(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        now: Timestamp,
        step: Box<dyn NextStep>,
        next: Option<ClaimRequest>,
    ) -> Result<CompletedJob, StoreError> {
        check_final(&outcome)?;
        let input = ops::AdvanceAndClaim {
            backend: self.backend(),
            token: token.clone(),
            steps,
            outcome,
            now,
            step,
            next: next.map(|next| (next, LeaseToken::generate())),
        };
        self.db()
            .write_repeatable(false, input, |conn, input| {
                Box::pin(ops::complete_advance_and_claim(conn, input))
            })
            .await
    }

    async fn expire_leases(&self, now: Timestamp) -> Result<Vec<ExpiredLease>, StoreError> {
        let backend = self.backend();
        let mut expired = Vec::new();
        loop {
            let batch = self
                .db()
                .write(move |conn| {
                    Box::pin(async move { ops::expire_batch(conn, backend, now).await })
                })
                .await?;
            let is_last = batch.len() < ops::SWEEP_BATCH;
            expired.extend(batch);
            if is_last {
                return Ok(expired);
            }
        }
    }

    async fn cancel_job(
        &self,
        job_run_id: &str,
        now: Timestamp,
        message: Option<String>,
    ) -> Result<bool, StoreError> {
        let backend = self.backend();
        let job_run_id = job_run_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(
                    async move { ops::cancel_job(conn, backend, &job_run_id, now, message).await },
                )
            })
            .await
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        ops::queue_stats(self.db().reader(), now).await
    }
}

/// A job attempt ends COMPLETED, FAILED or CANCELED.
fn check_final(outcome: &JobOutcome) -> Result<(), StoreError> {
    if matches!(
        outcome.status,
        JobStatus::Completed | JobStatus::Failed | JobStatus::Canceled
    ) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "a job attempt ends COMPLETED, FAILED or CANCELED, not {}",
            outcome.status
        )))
    }
}

/// The general form of a step report: one transaction over the lease guard and the step.
fn report_step_general<'c>(
    conn: &'c mut sqlx::AnyConnection,
    data: &'c (Backend, LeaseToken, StepReport),
) -> futures_util::future::BoxFuture<'c, Result<(), StoreError>> {
    let (backend, token, report) = data;
    Box::pin(ops::report_step(conn, *backend, token, report))
}
