//! The queue's SQL, one function per operation, each run inside the caller's transaction.

use super::{
    ClaimRequest, EnqueueJob, ExpiredLease, JobOutcome, Lease, LeaseExpiry, LeaseToken,
    NewArtifact, QueueStats, StepReport,
};
use crate::config::Backend;
use crate::db::{Fast, Wrap, wrapped};
use crate::error::StoreError;
use crate::runs::NextStep;
use crate::sql;
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, StepStatus};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// The sweeper handles at most this many expired leases per transaction.
pub(crate) const SWEEP_BATCH: usize = 256;

/// The message of a job failed because its executor stopped renewing the lease.
pub(crate) const EXECUTOR_LOST: &str = "executor lost";

/// The attempt a valid lease token designates.
#[derive(Debug, Clone)]
pub(crate) struct LeaseGuard {
    pub(crate) attempt_id: String,
    pub(crate) job_run_id: String,
    pub(crate) run_id: String,
}

/// Checks that `token` is the current lease of its job and keeps it so until the caller's
/// transaction ends (PostgreSQL: a share lock on the attempt row, which the sweeper's update
/// waits for; SQLite: the single writer already serializes everything).
pub(crate) async fn guard(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
) -> Result<LeaseGuard, StoreError> {
    let query = match backend {
        Backend::Sqlite => sqlx::query(
            "SELECT id, job_run_id, run_id FROM job_attempts WHERE lease_token = $1 AND state = 'leased'",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT id, job_run_id, run_id FROM job_attempts WHERE lease_token = $1 AND state = 'leased' FOR SHARE",
        ),
    };
    let row = query
        .bind(token.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::LeaseLost)?;
    Ok(LeaseGuard {
        attempt_id: sql::text(&row, "id")?,
        job_run_id: sql::text(&row, "job_run_id")?,
        run_id: sql::text(&row, "run_id")?,
    })
}

pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    job: &EnqueueJob,
    now: Timestamp,
) -> Result<i64, StoreError> {
    enqueue_in_run(conn, job, now, None).await
}

/// Like [`enqueue`]; with `run_id`, a job of another run is `NotFound` (what the caller's
/// transaction wrote before the refusal is rolled back with it).
pub(crate) async fn enqueue_in_run(
    conn: &mut AnyConnection,
    job: &EnqueueJob,
    now: Timestamp,
    run_id: Option<&str>,
) -> Result<i64, StoreError> {
    let attempt_id = crate::new_id();
    // One statement checks that no attempt is queued or running and takes the next attempt.
    let row = sqlx::query(
        "UPDATE job_runs SET status = 'QUEUED', attempt = attempt + 1, last_dispatch_id = $2, \
         exec_id = NULL, start_time = NULL, end_time = NULL, message = NULL \
         WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM job_attempts \
           WHERE job_attempts.job_run_id = $1 AND job_attempts.state IN ('queued', 'leased')) \
         RETURNING attempt, run_id",
    )
    .bind(&job.job_run_id)
    .bind(&attempt_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        // Refused: an unknown job (or one of another run), or one with a live attempt.
        let owner = sqlx::query("SELECT run_id FROM job_runs WHERE id = $1")
            .bind(&job.job_run_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        let owner = sql::text(&owner, "run_id")?;
        if run_id.is_some_and(|run_id| run_id != owner) {
            return Err(StoreError::NotFound);
        }
        return Err(StoreError::Conflict(
            "the job already has a queued or running attempt".to_owned(),
        ));
    };
    let attempt = sql::int(&row, "attempt")?;
    let run_id_of_job = sql::text(&row, "run_id")?;
    if run_id.is_some_and(|run_id| run_id != run_id_of_job) {
        return Err(StoreError::NotFound);
    }
    let run_id = run_id_of_job;
    reset_steps(conn, &job.job_run_id).await?;
    insert_attempt(conn, &attempt_id, job, &run_id, attempt, now).await?;
    Ok(attempt)
}

/// The queue entry of a job's `attempt` (its dispatch id `attempt_id`), queued at `now`. The
/// job run row must already say so (QUEUED, this attempt, this dispatch id): `enqueue_in_run`
/// moves it there, a run's creation inserts it so (`runs::create`).
pub(crate) async fn insert_attempt(
    conn: &mut AnyConnection,
    attempt_id: &str,
    job: &EnqueueJob,
    run_id: &str,
    attempt: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    if job.max_tries == 0 {
        return Err(StoreError::Invalid(
            "max_tries must be at least 1".to_owned(),
        ));
    }
    sqlx::query(
        "INSERT INTO job_attempts (id, job_run_id, run_id, attempt, try_number, max_tries, pool, labels, \
         state, queued_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $7, 'queued', $8)",
    )
    .bind(attempt_id)
    .bind(&job.job_run_id)
    .bind(run_id)
    .bind(attempt)
    .bind(i64::from(job.max_tries))
    .bind(job.pool.as_deref())
    .bind(sql::to_json(&job.labels)?)
    .bind(sql::millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The claim statements: one per backend and pool mode. Each also marks the job run RUNNING:
/// PostgreSQL with a data-modifying CTE, SQLite with the `job_attempts_claimed` trigger.
macro_rules! claim_sqlite {
    ($pool:literal) => {
        concat!(
            "UPDATE job_attempts SET state = 'leased', lease_token = $1, worker_id = $2, \
             claimed_at = $3, lease_expires_at = $4 \
             WHERE id = (SELECT id FROM job_attempts WHERE state = 'queued' AND ",
            $pool,
            " ORDER BY queued_at, id LIMIT 1) \
             RETURNING id, job_run_id, run_id, attempt, try_number"
        )
    };
}
const CLAIM_SQLITE_DEFAULT_POOL: [&str; 4] = wrapped!(claim_sqlite!("pool IS NULL"));
const CLAIM_SQLITE_POOL: [&str; 4] = wrapped!(claim_sqlite!("pool = $5"));
const CLAIM_POSTGRES_DEFAULT_POOL: &str = "WITH claimed AS ( \
       UPDATE job_attempts SET state = 'leased', lease_token = $1, worker_id = $2, \
       claimed_at = $3, lease_expires_at = $4 \
       WHERE state = 'queued' AND id = (SELECT id FROM job_attempts WHERE state = 'queued' AND pool IS NULL \
                   ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
       RETURNING id, job_run_id, run_id, attempt, try_number), \
     started AS ( \
       UPDATE job_runs SET status = 'RUNNING', start_time = COALESCE(job_runs.start_time, $3), \
       exec_id = $2, last_dispatch_id = claimed.id FROM claimed WHERE job_runs.id = claimed.job_run_id) \
     SELECT id, job_run_id, run_id, attempt, try_number FROM claimed";
const CLAIM_POSTGRES_POOL: &str = "WITH claimed AS ( \
       UPDATE job_attempts SET state = 'leased', lease_token = $1, worker_id = $2, \
       claimed_at = $3, lease_expires_at = $4 \
       WHERE state = 'queued' AND id = (SELECT id FROM job_attempts WHERE state = 'queued' AND pool = $5 \
                   ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
       RETURNING id, job_run_id, run_id, attempt, try_number), \
     started AS ( \
       UPDATE job_runs SET status = 'RUNNING', start_time = COALESCE(job_runs.start_time, $3), \
       exec_id = $2, last_dispatch_id = claimed.id FROM claimed WHERE job_runs.id = claimed.job_run_id) \
     SELECT id, job_run_id, run_id, attempt, try_number FROM claimed";

/// Claims in ONE statement (see [`Wrap`] for what the SQLite writer sends along with it).
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    request: &ClaimRequest,
    token: &LeaseToken,
    wrap: Wrap,
) -> Result<Fast<Option<Lease>>, StoreError> {
    let expires_at = request.now + request.lease;
    let statement = match (backend, request.pool.is_some()) {
        (Backend::Sqlite, false) => wrap.pick_single(&CLAIM_SQLITE_DEFAULT_POOL),
        (Backend::Sqlite, true) => wrap.pick_single(&CLAIM_SQLITE_POOL),
        (Backend::Postgres, false) => CLAIM_POSTGRES_DEFAULT_POOL,
        (Backend::Postgres, true) => CLAIM_POSTGRES_POOL,
    };
    let mut query = sqlx::query(statement)
        .bind(token.as_str())
        .bind(&request.worker_id)
        .bind(sql::millis(request.now))
        .bind(sql::millis(expires_at));
    if let Some(pool) = &request.pool {
        query = query.bind(pool);
    }
    // `fetch_all`: a command carrying `COMMIT` must run to its end.
    let rows = query.fetch_all(&mut *conn).await?;
    let Some(row) = rows.first() else {
        return Ok(Fast::Done(Ok(None)));
    };
    // The job run became RUNNING in the same statement (CTE on PostgreSQL, trigger on SQLite).
    Ok(Fast::Done(lease_from(row, token, expires_at).map(Some)))
}

fn lease_from(
    row: &AnyRow,
    token: &LeaseToken,
    expires_at: Timestamp,
) -> Result<Lease, StoreError> {
    Ok(Lease {
        token: token.clone(),
        attempt_id: sql::text(row, "id")?,
        job_run_id: sql::text(row, "job_run_id")?,
        run_id: sql::text(row, "run_id")?,
        attempt: sql::int(row, "attempt")?,
        try_number: sql::int(row, "try_number")?,
        expires_at,
    })
}

macro_rules! heartbeat_statement {
    () => {
        "UPDATE job_attempts SET lease_expires_at = CASE WHEN lease_expires_at > $2 \
         THEN lease_expires_at ELSE $2 END \
         WHERE lease_token = $1 AND state = 'leased' RETURNING lease_expires_at, \
         (SELECT is_cancel_requested FROM runs WHERE runs.id = job_attempts.run_id) AS is_cancel_requested"
    };
}
const HEARTBEAT: [&str; 4] = wrapped!(heartbeat_statement!());

pub(crate) async fn heartbeat(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
    until: i64,
    wrap: Wrap,
) -> Result<Fast<super::Heartbeat>, StoreError> {
    let statement = match backend {
        Backend::Sqlite => wrap.pick_single(&HEARTBEAT),
        Backend::Postgres => heartbeat_statement!(),
    };
    let rows = sqlx::query(statement)
        .bind(token.as_str())
        .bind(until)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Fast::Done(
        rows.first().ok_or(StoreError::LeaseLost).and_then(|row| {
            Ok(super::Heartbeat {
                expires_at: sql::ts(row, "lease_expires_at")?,
                is_cancel_requested: sql::opt_int(row, "is_cancel_requested")?.unwrap_or(0) != 0,
            })
        }),
    ))
}

pub(crate) async fn report_step(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
    report: &StepReport,
) -> Result<(), StoreError> {
    let lease = guard(conn, backend, token).await?;
    let row = sqlx::query("SELECT status FROM step_runs WHERE id = $1 AND job_run_id = $2")
        .bind(&report.step_run_id)
        .bind(&lease.job_run_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let current: StepStatus = sql::status(&row, "status")?;
    if current.is_final() {
        if current == report.status {
            return Ok(());
        }
        return Err(StoreError::Conflict(format!(
            "the step already ended {current}; it cannot become {}",
            report.status
        )));
    }
    let at = sql::millis(report.at);
    let is_final = report.status.is_final();
    sqlx::query(
        "UPDATE step_runs SET status = $2, \
         exit_code = COALESCE($3, exit_code), message = COALESCE($4, message), \
         start_time = CASE WHEN start_time IS NULL AND $5 = 1 THEN COALESCE($9, $6) ELSE start_time END, \
         end_time = CASE WHEN $7 = 1 THEN $6 ELSE end_time END, last_dispatch_id = $8 \
         WHERE id = $1",
    )
    .bind(&report.step_run_id)
    .bind(report.status.as_str())
    .bind(report.exit_code.map(i64::from))
    .bind(report.message.as_deref())
    .bind(sql::flag_value(report.status != StepStatus::Init))
    .bind(at)
    .bind(sql::flag_value(is_final))
    .bind(&lease.attempt_id)
    .bind(report.started_at.map(sql::millis))
    .execute(&mut *conn)
    .await?;
    for (key, value) in &report.outputs {
        sqlx::query(
            "INSERT INTO step_outputs (step_run_id, run_id, key, value, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (step_run_id, key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
        )
        .bind(&report.step_run_id)
        .bind(&lease.run_id)
        .bind(key)
        .bind(sql::to_json(value)?)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

macro_rules! report_step_sqlite {
    () => {
        "UPDATE step_runs SET status = $2, \
         exit_code = COALESCE($3, exit_code), message = COALESCE($4, message), \
         start_time = CASE WHEN start_time IS NULL AND $5 = 1 THEN COALESCE($9, $6) ELSE start_time END, \
         end_time = CASE WHEN $7 = 1 THEN $6 ELSE end_time END, \
         last_dispatch_id = (SELECT id FROM job_attempts WHERE lease_token = $8 AND state = 'leased') \
         WHERE id = $1 AND status <> 'COMPLETED' AND status <> 'FAILED' AND status <> 'CANCELED' \
         AND status <> 'SKIPPED' \
         AND job_run_id = (SELECT job_run_id FROM job_attempts WHERE lease_token = $8 AND state = 'leased') \
         RETURNING id"
    };
}
const REPORT_STEP_SQLITE: [&str; 4] = wrapped!(report_step_sqlite!());

/// The fast form of [`report_step`] on SQLite, for a report without outputs: ONE statement
/// that checks the lease, the step's job and that the step is not final yet, and writes the
/// report. When it changes nothing (a replay, a refusal, an unknown step) the general form
/// decides, in a transaction of its own. SQLite's single writer orders it against the sweeper.
pub(crate) async fn report_step_fast(
    conn: &mut AnyConnection,
    token: &LeaseToken,
    report: &StepReport,
    wrap: Wrap,
) -> Result<Fast<()>, StoreError> {
    let rows = sqlx::query(wrap.pick_single(&REPORT_STEP_SQLITE))
        .bind(&report.step_run_id)
        .bind(report.status.as_str())
        .bind(report.exit_code.map(i64::from))
        .bind(report.message.as_deref())
        .bind(sql::flag_value(report.status != StepStatus::Init))
        .bind(sql::millis(report.at))
        .bind(sql::flag_value(report.status.is_final()))
        .bind(token.as_str())
        .bind(report.started_at.map(sql::millis))
        // `fetch_all`: a command carrying `COMMIT` must run to its end.
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        Ok(Fast::NotApplied)
    } else {
        Ok(Fast::Done(Ok(())))
    }
}

pub(crate) async fn record_artifact(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
    artifact: &NewArtifact,
    id: &str,
) -> Result<String, StoreError> {
    let lease = guard(conn, backend, token).await?;
    let belongs: i64 =
        sqlx::query("SELECT COUNT(*) FROM step_runs WHERE id = $1 AND job_run_id = $2")
            .bind(&artifact.step_run_id)
            .bind(&lease.job_run_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
    if belongs == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "INSERT INTO artifacts (id, run_id, job_run_id, step_run_id, name, version, package_type, \
         artifact_type, upload_target, uri, download_url, sha256, file_size, build_no, daily_build_number, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id)
    .bind(&lease.run_id)
    .bind(&lease.job_run_id)
    .bind(&artifact.step_run_id)
    .bind(&artifact.name)
    .bind(&artifact.version)
    .bind(&artifact.package_type)
    .bind(&artifact.artifact_type)
    .bind(&artifact.upload_target)
    .bind(&artifact.uri)
    .bind(&artifact.download_url)
    .bind(artifact.sha256.as_deref())
    .bind(artifact.file_size)
    .bind(&artifact.build_no)
    .bind(&artifact.daily_build_number)
    .bind(sql::millis(artifact.at))
    .execute(&mut *conn)
    .await?;
    Ok(id.to_owned())
}

macro_rules! complete_sqlite {
    () => {
        "UPDATE job_attempts SET state = 'completed', outcome = $2, outcome_message = $3, finished_at = $4 \
         WHERE lease_token = $1 AND state = 'leased' RETURNING job_run_id, run_id, attempt"
    };
}
const COMPLETE_SQLITE: [&str; 4] = wrapped!(complete_sqlite!());
const COMPLETE_POSTGRES: &str = "WITH ended AS ( \
       UPDATE job_attempts SET state = 'completed', outcome = $2, outcome_message = $3, finished_at = $4 \
       WHERE lease_token = $1 AND state = 'leased' RETURNING job_run_id, run_id, attempt), \
     job AS ( \
       UPDATE job_runs SET status = $2, message = COALESCE($3, job_runs.message), end_time = $4 \
       FROM ended WHERE job_runs.id = ended.job_run_id), \
     steps AS ( \
       UPDATE step_runs SET status = CASE WHEN step_runs.status IN ('INIT', 'QUEUED') THEN 'SKIPPED' \
       ELSE $5 END, end_time = $4 FROM ended WHERE step_runs.job_run_id = ended.job_run_id \
       AND step_runs.status IN ('INIT', 'QUEUED', 'RUNNING', 'PAUSED')) \
     SELECT job_run_id, run_id, attempt FROM ended";

/// Completes in ONE statement that also ends the job run and closes its steps (CTE on
/// PostgreSQL, the `job_attempts_completed` trigger on SQLite); the row lock it takes orders it
/// against the sweeper. When it changes nothing, reads tell a replay from a stale token.
pub(crate) async fn complete(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
    outcome: &JobOutcome,
    now: Timestamp,
    wrap: Wrap,
) -> Result<Fast<super::FinishedJob>, StoreError> {
    let running_becomes = match outcome.status {
        JobStatus::Canceled => StepStatus::Canceled,
        JobStatus::Completed => StepStatus::Completed,
        _ => StepStatus::Failed,
    };
    let statement = match backend {
        Backend::Sqlite => wrap.pick_single(&COMPLETE_SQLITE),
        Backend::Postgres => COMPLETE_POSTGRES,
    };
    let mut query = sqlx::query(statement)
        .bind(token.as_str())
        .bind(outcome.status.as_str())
        .bind(outcome.message.as_deref())
        .bind(sql::millis(now));
    if backend == Backend::Postgres {
        query = query.bind(running_becomes.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    if let Some(row) = rows.first() {
        return Ok(Fast::Done((|| {
            Ok(super::FinishedJob {
                run_id: sql::text(row, "run_id")?,
                job_run_id: sql::text(row, "job_run_id")?,
                attempt: sql::int(row, "attempt")?,
                status: outcome.status,
                is_replay: false,
            })
        })()));
    }
    Ok(Fast::Done(completed_before(conn, token, outcome).await))
}

/// Records the worker's last step reports, then completes (see
/// `JobQueue::complete_with_steps`), inside the batch's transaction.
pub(crate) async fn complete_with_steps(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
    steps: &[StepReport],
    outcome: &JobOutcome,
    now: Timestamp,
) -> Result<super::FinishedJob, StoreError> {
    for report in steps {
        // The one-statement form first (SQLite, no outputs); when it changes nothing, the
        // general form tells a replay, a refusal or a lost lease apart.
        if backend == Backend::Sqlite
            && report.outputs.is_empty()
            && let Fast::Done(result) = report_step_fast(conn, token, report, Wrap::NONE).await?
        {
            result?;
            continue;
        }
        match report_step(conn, backend, token, report).await {
            Ok(()) => {}
            // Not leased (any more): a replay of this completion, or a stale token.
            Err(StoreError::LeaseLost) => return completed_before(conn, token, outcome).await,
            Err(err @ (StoreError::Conflict(_) | StoreError::NotFound)) => {
                tracing::warn!(step_run_id = %report.step_run_id, error = %err, "a step report sent with the job's completion was refused; skipped");
            }
            Err(err) => return Err(err),
        }
    }
    complete(conn, backend, token, outcome, now, Wrap::NONE)
        .await?
        .always_applied()
}

/// [`complete_with_steps`], then the claim of the worker's next job (see
/// `JobQueue::complete_and_claim`), inside the batch's transaction.
pub(crate) async fn complete_and_claim(
    conn: &mut AnyConnection,
    backend: Backend,
    token: &LeaseToken,
    steps: &[StepReport],
    outcome: &JobOutcome,
    next: &ClaimRequest,
    next_token: &LeaseToken,
) -> Result<(super::FinishedJob, Option<Lease>), StoreError> {
    let finished = complete_with_steps(conn, backend, token, steps, outcome, next.now).await?;
    let lease = claim(conn, backend, next, next_token, Wrap::NONE)
        .await?
        .always_applied()?;
    Ok((finished, lease))
}

/// What `JobQueue::complete_advance_and_claim` writes.
pub(crate) struct AdvanceAndClaim {
    pub(crate) backend: Backend,
    pub(crate) token: LeaseToken,
    pub(crate) steps: Vec<StepReport>,
    pub(crate) outcome: JobOutcome,
    pub(crate) now: Timestamp,
    pub(crate) step: Box<dyn NextStep>,
    /// The worker's next claim, with the token it gets.
    pub(crate) next: Option<(ClaimRequest, LeaseToken)>,
}

/// [`complete_with_steps`], the run's next engine step, then the claim of the worker's next
/// job (see `JobQueue::complete_advance_and_claim`), inside the batch's transaction. The step
/// comes before the claim, so the claim can take a job the step queued.
pub(crate) async fn complete_advance_and_claim(
    conn: &mut AnyConnection,
    input: &AdvanceAndClaim,
) -> Result<super::CompletedJob, StoreError> {
    let finished = complete_with_steps(
        conn,
        input.backend,
        &input.token,
        &input.steps,
        &input.outcome,
        input.now,
    )
    .await?;
    let step_version = if finished.is_replay {
        None
    } else {
        crate::runs::next_step(conn, &finished.run_id, input.step.as_ref()).await?
    };
    let lease = match &input.next {
        Some((next, next_token)) => claim(conn, input.backend, next, next_token, Wrap::NONE)
            .await?
            .always_applied()?,
        None => None,
    };
    Ok(super::CompletedJob {
        finished,
        step_version,
        lease,
    })
}

/// Not leased (any more): a replay of this very completion, or a stale token.
async fn completed_before(
    conn: &mut AnyConnection,
    token: &LeaseToken,
    outcome: &JobOutcome,
) -> Result<super::FinishedJob, StoreError> {
    let row = sqlx::query(
        "SELECT job_run_id, run_id, attempt, state, outcome FROM job_attempts WHERE lease_token = $1",
    )
    .bind(token.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::LeaseLost)?;
    if sql::text(&row, "state")? != "completed" {
        return Err(StoreError::LeaseLost);
    }
    let recorded = sql::opt_text(&row, "outcome")?;
    if recorded.as_deref() != Some(outcome.status.as_str()) {
        return Err(StoreError::Conflict(format!(
            "the attempt already completed as {}",
            recorded.unwrap_or_default()
        )));
    }
    Ok(super::FinishedJob {
        run_id: sql::text(&row, "run_id")?,
        job_run_id: sql::text(&row, "job_run_id")?,
        attempt: sql::int(&row, "attempt")?,
        status: outcome.status,
        is_replay: true,
    })
}

/// Ends a job run: its status, message and end time, and its steps closed like the domain's
/// `StepRun::close` (waiting steps SKIPPED, a running step ends with the job).
async fn finish_job(
    conn: &mut AnyConnection,
    job_run_id: &str,
    status: JobStatus,
    message: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE job_runs SET status = $2, message = COALESCE($3, message), end_time = $4 WHERE id = $1",
    )
    .bind(job_run_id)
    .bind(status.as_str())
    .bind(message)
    .bind(sql::millis(now))
    .execute(&mut *conn)
    .await?;
    let running_becomes = match status {
        JobStatus::Canceled => StepStatus::Canceled,
        JobStatus::Completed => StepStatus::Completed,
        _ => StepStatus::Failed,
    };
    sqlx::query(
        "UPDATE step_runs SET \
         status = CASE WHEN status IN ('INIT', 'QUEUED') THEN 'SKIPPED' ELSE $2 END, end_time = $3 \
         WHERE job_run_id = $1 \
         AND status <> 'COMPLETED' AND status <> 'FAILED' AND status <> 'CANCELED' AND status <> 'SKIPPED'",
    )
    .bind(job_run_id)
    .bind(running_becomes.as_str())
    .bind(sql::millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Steps of a job that starts over: back to INIT with nothing recorded.
async fn reset_steps(conn: &mut AnyConnection, job_run_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE step_runs SET status = 'INIT', message = NULL, exit_code = NULL, start_time = NULL, \
         end_time = NULL WHERE job_run_id = $1 AND (status <> 'INIT' OR message IS NOT NULL \
         OR exit_code IS NOT NULL OR start_time IS NOT NULL OR end_time IS NOT NULL)",
    )
    .bind(job_run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn expire_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    now: Timestamp,
) -> Result<Vec<ExpiredLease>, StoreError> {
    let query = match backend {
        Backend::Sqlite => sqlx::query(
            "SELECT id, job_run_id, run_id, attempt, try_number, max_tries, pool, labels, queued_at \
             FROM job_attempts WHERE state = 'leased' AND lease_expires_at <= $1 \
             ORDER BY lease_expires_at LIMIT $2",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT id, job_run_id, run_id, attempt, try_number, max_tries, pool, labels, queued_at \
             FROM job_attempts WHERE state = 'leased' AND lease_expires_at <= $1 \
             ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        ),
    };
    let rows = query
        .bind(sql::millis(now))
        .bind(SWEEP_BATCH as i64)
        .fetch_all(&mut *conn)
        .await?;
    let mut expired = Vec::with_capacity(rows.len());
    for row in rows {
        let attempt_id = sql::text(&row, "id")?;
        let job_run_id = sql::text(&row, "job_run_id")?;
        let run_id = sql::text(&row, "run_id")?;
        let attempt = sql::int(&row, "attempt")?;
        let try_number = sql::int(&row, "try_number")?;
        let max_tries = sql::int(&row, "max_tries")?;
        sqlx::query(
            "UPDATE job_attempts SET state = 'lost', finished_at = $2, outcome_message = $3 WHERE id = $1",
        )
        .bind(&attempt_id)
        .bind(sql::millis(now))
        .bind(EXECUTOR_LOST)
        .execute(&mut *conn)
        .await?;
        let expiry = if try_number < max_tries {
            let new_attempt_id = crate::new_id();
            let new_attempt = attempt + 1;
            sqlx::query(
                "INSERT INTO job_attempts (id, job_run_id, run_id, attempt, try_number, max_tries, pool, \
                 labels, state, queued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9)",
            )
            .bind(&new_attempt_id)
            .bind(&job_run_id)
            .bind(&run_id)
            .bind(new_attempt)
            .bind(try_number + 1)
            .bind(max_tries)
            .bind(sql::opt_text(&row, "pool")?)
            .bind(sql::text(&row, "labels")?)
            // The job keeps its place in the queue: it was waiting longer than later arrivals.
            .bind(sql::int(&row, "queued_at")?)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE job_runs SET status = 'QUEUED', attempt = $2, last_dispatch_id = $3, exec_id = NULL, \
                 start_time = NULL, end_time = NULL, message = NULL WHERE id = $1",
            )
            .bind(&job_run_id)
            .bind(new_attempt)
            .bind(&new_attempt_id)
            .execute(&mut *conn)
            .await?;
            reset_steps(conn, &job_run_id).await?;
            LeaseExpiry::Requeued {
                attempt: new_attempt,
            }
        } else {
            finish_job(
                conn,
                &job_run_id,
                JobStatus::Failed,
                Some(EXECUTOR_LOST),
                now,
            )
            .await?;
            LeaseExpiry::Failed
        };
        expired.push(ExpiredLease {
            run_id,
            job_run_id,
            lost_attempt: attempt,
            expiry,
        });
    }
    Ok(expired)
}

pub(crate) async fn cancel_job(
    conn: &mut AnyConnection,
    backend: Backend,
    job_run_id: &str,
    now: Timestamp,
    message: Option<String>,
) -> Result<bool, StoreError> {
    let query = match backend {
        Backend::Sqlite => sqlx::query(
            "SELECT id FROM job_attempts WHERE job_run_id = $1 AND state IN ('queued', 'leased')",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT id FROM job_attempts WHERE job_run_id = $1 AND state IN ('queued', 'leased') FOR UPDATE",
        ),
    };
    let rows = query.bind(job_run_id).fetch_all(&mut *conn).await?;
    if rows.is_empty() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE job_attempts SET state = 'canceled', outcome = 'CANCELED', outcome_message = $2, finished_at = $3 \
         WHERE job_run_id = $1 AND state IN ('queued', 'leased')",
    )
    .bind(job_run_id)
    .bind(message.as_deref())
    .bind(sql::millis(now))
    .execute(&mut *conn)
    .await?;
    finish_job(
        conn,
        job_run_id,
        JobStatus::Canceled,
        message.as_deref(),
        now,
    )
    .await?;
    Ok(true)
}

pub(crate) async fn queue_stats(pool: &AnyPool, now: Timestamp) -> Result<QueueStats, StoreError> {
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM job_attempts WHERE state = 'queued') AS queued, \
           (SELECT COUNT(*) FROM job_attempts WHERE state = 'leased') AS leased, \
           (SELECT COUNT(*) FROM job_attempts WHERE state = 'leased' AND lease_expires_at <= $1) AS expired, \
           (SELECT MIN(queued_at) FROM job_attempts WHERE state = 'queued') AS oldest",
    )
    .bind(sql::millis(now))
    .fetch_one(pool)
    .await?;
    Ok(QueueStats {
        queued: sql::int(&row, "queued")?,
        leased: sql::int(&row, "leased")?,
        expired: sql::int(&row, "expired")?,
        oldest_queued_at: sql::opt_ts(&row, "oldest")?,
    })
}
