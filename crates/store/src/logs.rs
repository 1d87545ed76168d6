//! Step logs: append-only at stated byte offsets, fenced by the lease token, read by offset range, capped per step.
//!
//! Layout: chunks are rows (`step_log_chunks`, key `(step_run_id, attempt, start_offset)`) of at
//! most [`CHUNK_BYTES`]; small appends are merged into the last chunk until it reaches
//! [`MERGE_BELOW`], so a log written line by line does not become millions of rows. A head
//! row per step and attempt (`step_logs`) holds the lengths. A read finds the chunk holding its
//! first byte with one index probe and reads forward, so its cost depends on the page size,
//! not on the log's size. Keeping chunks in the database (not in files it references) gives
//! both backends one code path, one transaction per append and one backup.

use crate::config::Backend;
use crate::db::{Fast, Wrap, wrapped};
use crate::error::StoreError;
use crate::queue::{LeaseToken, guard};
use crate::{Store, sql};
use futures_util::future::BoxFuture;
use runnel_domain::Timestamp;
use sqlx::AnyConnection;
use std::future::Future;

/// The line stored once when a step's log reaches the cap.
pub const TRUNCATION_MARKER: &str =
    "\n[runnel] log truncated: this step's log reached its size cap; later output was dropped\n";

/// Chunks never exceed this many bytes (a 64 KiB page touches at most two chunks).
const CHUNK_BYTES: usize = 64 * 1024;
/// An append is merged into the last chunk while that chunk is smaller than this.
const MERGE_BELOW: usize = 16 * 1024;

/// The answer to an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The offset the next append must start at.
    pub next_offset: u64,
    /// Every byte of the append was already stored (a retry after a lost answer).
    pub is_duplicate: bool,
    /// The cap was reached: bytes past it are acknowledged and dropped.
    pub is_truncated: bool,
}

/// Which part of a log to read. Offsets are byte positions in the stored log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRead {
    /// At most `limit` bytes starting at `start` (oldest first).
    Asc { start: u64, limit: u64 },
    /// At most `limit` bytes ending at `end` (`None` = the end of what is stored).
    Desc { end: Option<u64>, limit: u64 },
}

/// A piece of a log: bytes `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub start: u64,
    pub end: u64,
    pub data: Vec<u8>,
    /// The stored length of the whole log (the marker included).
    pub stored: u64,
    pub is_truncated: bool,
}

/// The lengths of one step's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogInfo {
    pub attempt: i64,
    /// The offset the next append must start at (dropped bytes included).
    pub received: u64,
    /// Bytes stored, the truncation marker included.
    pub stored: u64,
    pub is_truncated: bool,
}

/// Step logs (A2, G4).
///
/// Each step has one log per attempt of its job. The worker holding the job's lease appends
/// bytes at stated offsets:
/// * an append starting beyond the stored end is refused with `OffsetMismatch { expected }`
///   and changes nothing;
/// * an append lying entirely within what is stored is a no-op success when its bytes equal
///   the stored ones (a retry after a lost answer), and a `Conflict` when they differ;
/// * an append that overlaps the end stores only its new suffix (the overlap is verified).
///
/// Cap: at most the configured number of bytes is stored per log; the append that crosses it
/// stores what fits plus [`TRUNCATION_MARKER`] once, and every later append is acknowledged
/// (its offset still advances `next_offset`) and dropped, so an executor never retries forever.
/// Overlaps past the cap cannot be verified and are accepted.
///
/// Reads never need the lease and may run while the step writes.
pub trait LogStore {
    fn append(
        &self,
        token: &LeaseToken,
        step_run_id: &str,
        offset: u64,
        bytes: Vec<u8>,
        now: Timestamp,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Reads a range of the log of `attempt` (`None` = the job's current attempt).
    fn read_log(
        &self,
        step_run_id: &str,
        attempt: Option<i64>,
        read: LogRead,
    ) -> impl Future<Output = Result<LogPage, StoreError>> + Send;

    /// `None` when nothing was appended to that attempt's log yet.
    fn log_info(
        &self,
        step_run_id: &str,
        attempt: Option<i64>,
    ) -> impl Future<Output = Result<Option<LogInfo>, StoreError>> + Send;
}

impl LogStore for Store {
    async fn append(
        &self,
        token: &LeaseToken,
        step_run_id: &str,
        offset: u64,
        bytes: Vec<u8>,
        now: Timestamp,
    ) -> Result<AppendOutcome, StoreError> {
        let input = AppendInput {
            backend: self.backend(),
            token: token.clone(),
            step_run_id: step_run_id.to_owned(),
            offset,
            bytes,
            cap: self.log_cap_bytes(),
            now,
        };
        if input.bytes.is_empty() {
            return self
                .db()
                .write_repeatable(false, input, |conn, input| {
                    Box::pin(append_fenced(conn, input))
                })
                .await;
        }
        self.db()
            .write_repeatable_fast(input, append_at_end, |conn, input| {
                Box::pin(append_fenced(conn, input))
            })
            .await
    }

    async fn read_log(
        &self,
        step_run_id: &str,
        attempt: Option<i64>,
        read: LogRead,
    ) -> Result<LogPage, StoreError> {
        let mut conn = self.db().reader().acquire().await?;
        let Some(info) = head(&mut conn, step_run_id, attempt).await? else {
            return Ok(LogPage {
                start: 0,
                end: 0,
                data: Vec::new(),
                stored: 0,
                is_truncated: false,
            });
        };
        let (start, end) = match read {
            LogRead::Asc { start, limit } => {
                let start = start.min(info.stored);
                (start, start.saturating_add(limit).min(info.stored))
            }
            LogRead::Desc { end, limit } => {
                let end = end.unwrap_or(info.stored).min(info.stored);
                (end.saturating_sub(limit), end)
            }
        };
        let data = read_range(&mut conn, step_run_id, info.attempt, start, end).await?;
        Ok(LogPage {
            start,
            end,
            data,
            stored: info.stored,
            is_truncated: info.is_truncated,
        })
    }

    async fn log_info(
        &self,
        step_run_id: &str,
        attempt: Option<i64>,
    ) -> Result<Option<LogInfo>, StoreError> {
        let mut conn = self.db().reader().acquire().await?;
        head(&mut conn, step_run_id, attempt).await
    }
}

/// The inputs of one append, owned so the operation can run again inside a group commit.
struct AppendInput {
    backend: Backend,
    token: LeaseToken,
    step_run_id: String,
    offset: u64,
    bytes: Vec<u8>,
    cap: u64,
    now: Timestamp,
}

/// The common append in one round trip: the lease holds, the log exists, is not truncated,
/// and the append starts exactly at its end and fits under the cap. A small append (< 16 KiB)
/// is merged into a small last chunk; otherwise the bytes become new chunks of at most 64 KiB
/// (split inside the statement); the head is updated in the same command, and no stored bytes
/// are read back. Anything else (a new log, a duplicate, an overlap, a gap, the cap) changes
/// nothing here and takes [`append_fenced`].
fn append_at_end<'c>(
    conn: &'c mut AnyConnection,
    input: &'c AppendInput,
    wrap: Wrap,
) -> BoxFuture<'c, Result<Fast<AppendOutcome>, StoreError>> {
    Box::pin(async move {
        let statement = match input.backend {
            Backend::Sqlite => wrap.pick(&APPEND_AT_END_SQLITE),
            Backend::Postgres if input.bytes.len() >= MERGE_BELOW => APPEND_NEW_CHUNKS_POSTGRES,
            Backend::Postgres => APPEND_AT_END_POSTGRES,
        };
        let rows = sqlx::query(statement)
            .bind(input.token.as_str())
            .bind(&input.step_run_id)
            .bind(to_i64(input.offset))
            .bind(input.bytes.as_slice())
            .bind(input.bytes.len() as i64)
            .bind(sql::millis(input.now))
            .bind(to_i64(input.cap))
            .fetch_all(&mut *conn)
            .await?;
        if rows.is_empty() {
            return Ok(Fast::NotApplied);
        }
        Ok(Fast::Done(Ok(AppendOutcome {
            next_offset: input.offset + input.bytes.len() as u64,
            is_duplicate: false,
            is_truncated: false,
        })))
    })
}

/// SQLite: `$1` token, `$2` step run, `$3` offset, `$4` bytes, `$5` their length (> 0), `$6`
/// now, `$7` cap. Four statements sent at once: a merge into the last chunk (A) and its head
/// update (B, only when A changed the chunk), or the head update for new chunks (C) and the
/// chunks, 64 KiB each (D, only when C changed the head). `changes()` is the row count of the
/// statement before. B or D returns rows exactly when the append was stored.
macro_rules! append_at_end_sqlite {
    () => {
        concat!(
            "UPDATE step_log_chunks SET data = CAST(data || $4 AS BLOB) \
             WHERE step_run_id = $2 AND attempt = (SELECT a.attempt FROM job_attempts a \
               JOIN step_runs s ON s.job_run_id = a.job_run_id \
               WHERE a.lease_token = $1 AND a.state = 'leased' AND s.id = $2) \
             AND start_offset = (SELECT h.last_chunk_offset FROM step_logs h \
               WHERE h.step_run_id = $2 AND h.attempt = (SELECT a.attempt FROM job_attempts a \
                 JOIN step_runs s ON s.job_run_id = a.job_run_id \
                 WHERE a.lease_token = $1 AND a.state = 'leased' AND s.id = $2) \
               AND h.received = $3 AND h.stored = h.received AND h.is_truncated = 0 \
               AND h.stored + $5 <= $7 AND $5 > 0 AND $5 < 16384 \
               AND h.stored - h.last_chunk_offset < 16384); ",
            "UPDATE step_logs SET received = received + $5, stored = stored + $5, updated_at = $6 \
             WHERE changes() = 1 AND step_run_id = $2 AND attempt = (SELECT a.attempt FROM job_attempts a \
               JOIN step_runs s ON s.job_run_id = a.job_run_id \
               WHERE a.lease_token = $1 AND a.state = 'leased' AND s.id = $2) \
             RETURNING 1 AS stored; ",
            "UPDATE step_logs SET received = received + $5, stored = stored + $5, \
               last_chunk_offset = stored + (($5 - 1) / 65536) * 65536, updated_at = $6 \
             WHERE step_run_id = $2 AND attempt = (SELECT a.attempt FROM job_attempts a \
               JOIN step_runs s ON s.job_run_id = a.job_run_id \
               WHERE a.lease_token = $1 AND a.state = 'leased' AND s.id = $2) \
             AND received = $3 AND stored = received AND is_truncated = 0 \
             AND stored + $5 <= $7 AND $5 > 0 \
             AND NOT ($5 < 16384 AND last_chunk_offset IS NOT NULL AND stored - last_chunk_offset < 16384); ",
            "WITH RECURSIVE piece (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM piece WHERE (i + 1) * 65536 < $5) \
             INSERT INTO step_log_chunks (step_run_id, attempt, start_offset, data) \
             SELECT h.step_run_id, h.attempt, $3 + piece.i * 65536, substr($4, piece.i * 65536 + 1, 65536) \
             FROM step_logs h, piece \
             WHERE changes() = 1 AND h.step_run_id = $2 AND h.attempt = (SELECT a.attempt FROM job_attempts a \
               JOIN step_runs s ON s.job_run_id = a.job_run_id \
               WHERE a.lease_token = $1 AND a.state = 'leased' AND s.id = $2) \
             RETURNING 1 AS stored"
        )
    };
}
const APPEND_AT_END_SQLITE: [&str; 4] = wrapped!(append_at_end_sqlite!());

/// The start of both PostgreSQL append statements (`$1` token, `$2` step run, `$5` length):
/// the 64 KiB pieces to insert (`piece`) and the attempt, share-locked, with its state (`g`).
macro_rules! append_prefix_postgres {
    () => {
        "WITH RECURSIVE piece (i) AS ( \
           SELECT CAST(0 AS BIGINT) UNION ALL SELECT i + 1 FROM piece WHERE (i + 1) * 65536 < $5), \
         g AS ( \
           SELECT a.attempt, a.state FROM job_attempts a JOIN step_runs s ON s.job_run_id = a.job_run_id \
           WHERE a.lease_token = $1 AND s.id = $2 FOR SHARE OF a), "
    };
}

/// PostgreSQL, an append of at least 16 KiB: it is never merged, so only the lease, the head
/// and the new chunks (the plan of [`APPEND_AT_END_POSTGRES`] without its merge branch, which
/// is cheaper to start on every execution).
const APPEND_NEW_CHUNKS_POSTGRES: &str = concat!(
    append_prefix_postgres!(),
    "h AS ( \
       UPDATE step_logs l SET received = l.received + $5, stored = l.stored + $5, \
         last_chunk_offset = l.stored + (($5 - 1) / 65536) * 65536, updated_at = $6 \
       FROM g WHERE g.state = 'leased' AND l.step_run_id = $2 AND l.attempt = g.attempt AND l.received = $3 \
         AND l.stored = l.received AND l.is_truncated = 0 AND l.stored + $5 <= $7 AND $5 >= 16384 \
       RETURNING l.attempt), \
     i AS ( \
       INSERT INTO step_log_chunks (step_run_id, attempt, start_offset, data) \
       SELECT $2, h.attempt, $3 + piece.i * 65536, substring($4 FROM CAST(piece.i * 65536 + 1 AS INTEGER) FOR 65536) \
       FROM h, piece) \
     SELECT 1 AS stored FROM h"
);

/// PostgreSQL: the same as one statement (which commits by itself). The share lock on the
/// attempt row makes the sweeper wait until the append committed; the merge case requires the
/// last chunk to exist, so the head never moves without its bytes.
///
/// The pieces come from a recursive CTE, not `generate_series`: with a parameter as its bound,
/// `generate_series` is estimated at 1 000 rows, which made the generic plan look dearer than
/// a fresh one, so PostgreSQL planned this statement again on every append (half of the
/// backend's time for a stream of 64 KiB appends). With the small estimate of the recursive
/// CTE the prepared statement keeps its generic plan after its first executions. The lease's
/// state is tested in `h`, not in `g`, so the attempt is found by its unique token index (see
/// [`append_fenced`]).
const APPEND_AT_END_POSTGRES: &str = concat!(
    append_prefix_postgres!(),
    "h AS ( \
       UPDATE step_logs l SET received = l.received + $5, stored = l.stored + $5, \
         last_chunk_offset = CASE WHEN $5 < 16384 AND l.last_chunk_offset IS NOT NULL \
           AND l.stored - l.last_chunk_offset < 16384 THEN l.last_chunk_offset \
           ELSE l.stored + (($5 - 1) / 65536) * 65536 END, \
         updated_at = $6 \
       FROM g WHERE g.state = 'leased' AND l.step_run_id = $2 AND l.attempt = g.attempt AND l.received = $3 \
         AND l.stored = l.received AND l.is_truncated = 0 AND l.stored + $5 <= $7 AND $5 > 0 \
         AND (NOT ($5 < 16384 AND l.last_chunk_offset IS NOT NULL AND l.stored - l.last_chunk_offset < 16384) \
           OR EXISTS (SELECT 1 FROM step_log_chunks c WHERE c.step_run_id = $2 \
             AND c.attempt = l.attempt AND c.start_offset = l.last_chunk_offset)) \
       RETURNING l.attempt, l.last_chunk_offset), \
     m AS ( \
       UPDATE step_log_chunks c SET data = c.data || $4 FROM h \
       WHERE h.last_chunk_offset < $3 AND c.step_run_id = $2 AND c.attempt = h.attempt \
         AND c.start_offset = h.last_chunk_offset), \
     i AS ( \
       INSERT INTO step_log_chunks (step_run_id, attempt, start_offset, data) \
       SELECT $2, h.attempt, $3 + piece.i * 65536, substring($4 FROM CAST(piece.i * 65536 + 1 AS INTEGER) FOR 65536) \
       FROM h, piece WHERE h.last_chunk_offset >= $3) \
     SELECT 1 AS stored FROM h"
);

/// Checks the lease, that the step belongs to its job, and reads the log's head — in one
/// query on the common path — then appends.
async fn append_fenced(
    conn: &mut AnyConnection,
    input: &AppendInput,
) -> Result<AppendOutcome, StoreError> {
    let query = match input.backend {
        Backend::Sqlite => sqlx::query(
            "SELECT a.attempt, a.state, l.received, l.stored, l.is_truncated, l.last_chunk_offset \
             FROM job_attempts a JOIN step_runs s ON s.job_run_id = a.job_run_id \
             LEFT JOIN step_logs l ON l.step_run_id = s.id AND l.attempt = a.attempt \
             WHERE a.lease_token = $1 AND s.id = $2",
        ),
        // The share lock on the attempt row makes the sweeper wait until this append commits.
        Backend::Postgres => sqlx::query(
            "SELECT a.attempt, a.state, l.received, l.stored, l.is_truncated, l.last_chunk_offset \
             FROM job_attempts a JOIN step_runs s ON s.job_run_id = a.job_run_id \
             LEFT JOIN step_logs l ON l.step_run_id = s.id AND l.attempt = a.attempt \
             WHERE a.lease_token = $1 AND s.id = $2 FOR SHARE OF a",
        ),
    };
    // The state is checked here, not in the query: `state = 'leased'` there would let the
    // planner pick the partial index of leased attempts (which holds an entry for every attempt
    // that was ever leased until it is vacuumed) over the unique token index.
    let row = query
        .bind(input.token.as_str())
        .bind(&input.step_run_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row
        .map(|row| sql::text(&row, "state").map(|state| (state == "leased").then_some(row)))
        .transpose()?
        .flatten()
    else {
        // Either the token is not current or the step is not its job's.
        guard(conn, input.backend, &input.token).await?;
        return Err(StoreError::NotFound);
    };
    let head = match sql::opt_int(&row, "received")? {
        Some(received) => Some(Head {
            received: to_u64(received),
            stored: to_u64(sql::int(&row, "stored")?),
            is_truncated: sql::flag(&row, "is_truncated")?,
            last_chunk: sql::opt_int(&row, "last_chunk_offset")?.map(to_u64),
        }),
        None => None,
    };
    let append = Append {
        backend: input.backend,
        step_run_id: &input.step_run_id,
        attempt: sql::int(&row, "attempt")?,
        offset: input.offset,
        bytes: &input.bytes,
        cap: input.cap,
        now: input.now,
    };
    append_bytes(conn, append, head).await
}

/// The stored lengths of one log.
struct Head {
    received: u64,
    stored: u64,
    is_truncated: bool,
    last_chunk: Option<u64>,
}

struct Append<'a> {
    backend: Backend,
    step_run_id: &'a str,
    attempt: i64,
    offset: u64,
    bytes: &'a [u8],
    cap: u64,
    now: Timestamp,
}

async fn append_bytes(
    conn: &mut AnyConnection,
    append: Append<'_>,
    head: Option<Head>,
) -> Result<AppendOutcome, StoreError> {
    let Append {
        backend: _,
        step_run_id,
        attempt,
        offset,
        bytes,
        cap,
        now,
    } = append;
    let is_new_log = head.is_none();
    let Head {
        received,
        stored,
        is_truncated,
        last_chunk,
    } = head.unwrap_or(Head {
        received: 0,
        stored: 0,
        is_truncated: false,
        last_chunk: None,
    });
    if offset > received {
        return Err(StoreError::OffsetMismatch { expected: received });
    }
    let end = offset + bytes.len() as u64;
    // Bytes below `verifiable_end` are stored as sent; past the cap they were dropped.
    let verifiable_end = if is_truncated {
        stored.saturating_sub(TRUNCATION_MARKER.len() as u64)
    } else {
        stored
    };
    let overlap_end = end.min(received);
    let check_end = overlap_end.min(verifiable_end);
    if offset < check_end {
        let stored_bytes = read_range(conn, step_run_id, attempt, offset, check_end).await?;
        if stored_bytes.as_slice() != &bytes[..(check_end - offset) as usize] {
            return Err(StoreError::Conflict(
                "these log bytes differ from the ones already stored at that offset".to_owned(),
            ));
        }
    }
    if end <= received {
        return Ok(AppendOutcome {
            next_offset: received,
            is_duplicate: true,
            is_truncated,
        });
    }
    let new_bytes = &bytes[(received - offset) as usize..];
    let mut stored_now = stored;
    let mut last_chunk_now = last_chunk;
    let mut truncated_now = is_truncated;
    if is_new_log {
        // The head row first: chunks refer to it.
        sqlx::query(
            "INSERT INTO step_logs (step_run_id, attempt, received, stored, is_truncated, updated_at) \
             VALUES ($1, $2, 0, 0, 0, $3)",
        )
        .bind(step_run_id)
        .bind(attempt)
        .bind(sql::millis(now))
        .execute(&mut *conn)
        .await?;
    }
    if !is_truncated {
        let room = cap.saturating_sub(stored);
        let kept = &new_bytes[..new_bytes
            .len()
            .min(usize::try_from(room).unwrap_or(usize::MAX))];
        let mut writer = ChunkWriter {
            conn: &mut *conn,
            backend: append.backend,
            step_run_id,
            attempt,
            stored: &mut stored_now,
            last_chunk: &mut last_chunk_now,
        };
        writer.write(kept).await?;
        if kept.len() < new_bytes.len() {
            // The marker goes in a chunk of its own so the log's bytes stay exactly as sent.
            writer.write_separate(TRUNCATION_MARKER.as_bytes()).await?;
            truncated_now = true;
        }
    }
    let head_statement = sqlx::query(
        "UPDATE step_logs SET received = $3, stored = $4, is_truncated = $5, last_chunk_offset = $6, \
         updated_at = $7 WHERE step_run_id = $1 AND attempt = $2",
    );
    head_statement
        .bind(step_run_id)
        .bind(attempt)
        .bind(to_i64(end))
        .bind(to_i64(stored_now))
        .bind(sql::flag_value(truncated_now))
        .bind(last_chunk_now.map(to_i64))
        .bind(sql::millis(now))
        .execute(&mut *conn)
        .await?;
    Ok(AppendOutcome {
        next_offset: end,
        is_duplicate: false,
        is_truncated: truncated_now,
    })
}

/// Writes bytes at the end of a log: merged into a small last chunk, else in new chunks.
struct ChunkWriter<'a> {
    conn: &'a mut AnyConnection,
    backend: Backend,
    step_run_id: &'a str,
    attempt: i64,
    stored: &'a mut u64,
    last_chunk: &'a mut Option<u64>,
}

impl ChunkWriter<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Some(last) = *self.last_chunk {
            let last_len = (*self.stored - last) as usize;
            // Small appends (a line or a few) are merged into a small last chunk, appended in
            // place without reading it back; large ones always make chunks of their own.
            if last_len < MERGE_BELOW && bytes.len() < MERGE_BELOW {
                let statement = match self.backend {
                    Backend::Sqlite => sqlx::query(
                        "UPDATE step_log_chunks SET data = CAST(data || $4 AS BLOB) \
                         WHERE step_run_id = $1 AND attempt = $2 AND start_offset = $3",
                    ),
                    Backend::Postgres => sqlx::query(
                        "UPDATE step_log_chunks SET data = data || $4 \
                         WHERE step_run_id = $1 AND attempt = $2 AND start_offset = $3",
                    ),
                };
                let done = statement
                    .bind(self.step_run_id)
                    .bind(self.attempt)
                    .bind(to_i64(last))
                    .bind(bytes)
                    .execute(&mut *self.conn)
                    .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::corrupt("a log's last chunk is missing"));
                }
                *self.stored += bytes.len() as u64;
                return Ok(());
            }
        }
        for piece in bytes.chunks(CHUNK_BYTES) {
            self.write_separate(piece).await?;
        }
        Ok(())
    }

    async fn write_separate(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let start = *self.stored;
        sqlx::query(
            "INSERT INTO step_log_chunks (step_run_id, attempt, start_offset, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.step_run_id)
        .bind(self.attempt)
        .bind(to_i64(start))
        .bind(bytes)
        .execute(&mut *self.conn)
        .await?;
        *self.stored += bytes.len() as u64;
        *self.last_chunk = Some(start);
        Ok(())
    }
}

/// The head of a log; `attempt` `None` = the current attempt of the step's job.
async fn head(
    conn: &mut AnyConnection,
    step_run_id: &str,
    attempt: Option<i64>,
) -> Result<Option<LogInfo>, StoreError> {
    let attempt = match attempt {
        Some(attempt) => attempt,
        None => {
            let row = sqlx::query(
                "SELECT COALESCE(j.attempt, 0) AS attempt FROM step_runs s \
                 LEFT JOIN job_runs j ON j.id = s.job_run_id WHERE s.id = $1",
            )
            .bind(step_run_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
            sql::int(&row, "attempt")?
        }
    };
    let row = sqlx::query(
        "SELECT received, stored, is_truncated FROM step_logs WHERE step_run_id = $1 AND attempt = $2",
    )
    .bind(step_run_id)
    .bind(attempt)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(LogInfo {
            attempt,
            received: to_u64(sql::int(&row, "received")?),
            stored: to_u64(sql::int(&row, "stored")?),
            is_truncated: sql::flag(&row, "is_truncated")?,
        })
    })
    .transpose()
}

/// Stored bytes `[start, end)`: one index probe for the chunk holding `start`, then forward.
async fn read_range(
    conn: &mut AnyConnection,
    step_run_id: &str,
    attempt: i64,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, StoreError> {
    if start >= end {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT start_offset, data FROM step_log_chunks \
         WHERE step_run_id = $1 AND attempt = $2 AND start_offset < $4 AND start_offset >= \
           COALESCE((SELECT start_offset FROM step_log_chunks \
                     WHERE step_run_id = $1 AND attempt = $2 AND start_offset <= $3 \
                     ORDER BY start_offset DESC LIMIT 1), 0) \
         ORDER BY start_offset",
    )
    .bind(step_run_id)
    .bind(attempt)
    .bind(to_i64(start))
    .bind(to_i64(end))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity((end - start) as usize);
    for row in rows {
        let chunk_start = to_u64(sql::int(&row, "start_offset")?);
        let data = sql::bytes(&row, "data")?;
        let chunk_end = chunk_start + data.len() as u64;
        let from = start.max(chunk_start);
        let to = end.min(chunk_end);
        if from < to {
            if from != start + out.len() as u64 {
                return Err(StoreError::corrupt("a log has a gap between its chunks"));
            }
            out.extend_from_slice(
                &data[(from - chunk_start) as usize..(to - chunk_start) as usize],
            );
        }
    }
    if out.len() as u64 != end - start {
        return Err(StoreError::corrupt(
            "a log is shorter than its recorded length",
        ));
    }
    Ok(out)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod plan_tests {
    use super::{APPEND_AT_END_POSTGRES, APPEND_NEW_CHUNKS_POSTGRES};
    use crate::testing::TestDatabase;
    use crate::{SecretKey, Store, StoreConfig};
    use sqlx::Connection as _;

    /// Regression: PostgreSQL planned the append statement again on every append (a generic
    /// plan priced above a fresh one because of `generate_series`' estimate), half of the
    /// backend's time in a stream of appends. After its first executions on a connection, each
    /// append statement must run on its generic plan.
    #[tokio::test]
    async fn postgres_append_statements_keep_their_generic_plan() {
        let Some(db) = TestDatabase::create("runnel_plans").await else {
            return;
        };
        // The schema, as the server has it.
        Store::open(StoreConfig::new(db.url.clone(), SecretKey::generate()))
            .await
            .expect("open the store")
            .close()
            .await;
        // Each statement with the sizes it serves (a merge of one line; one 64 KiB piece, as a
        // step streaming its output sends; several pieces), on a connection of its own.
        for (statement, size) in [
            (APPEND_AT_END_POSTGRES, 100),
            (APPEND_NEW_CHUNKS_POSTGRES, 65_536),
            (APPEND_NEW_CHUNKS_POSTGRES, 200_000),
        ] {
            let bytes = vec![b'x'; size];
            let mut conn = sqlx::AnyConnection::connect(&db.url)
                .await
                .expect("connect");
            // No lease has this token: each execution changes nothing, but is planned.
            for _ in 0..10 {
                let rows = sqlx::query(statement)
                    .bind("no-such-token")
                    .bind("no-such-step")
                    .bind(0_i64)
                    .bind(bytes.as_slice())
                    .bind(bytes.len() as i64)
                    .bind(0_i64)
                    .bind(1_i64 << 30)
                    .fetch_all(&mut conn)
                    .await
                    .expect("append statement");
                assert!(rows.is_empty());
            }
            let (generic, custom): (i64, i64) = sqlx::query_as(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            )
            .bind(statement)
            .fetch_one(&mut conn)
            .await
            .expect("the statement is prepared on this connection");
            assert!(
                generic >= 5,
                "{generic} generic and {custom} custom plans for {size} bytes: {statement}"
            );
        }
    }
}
