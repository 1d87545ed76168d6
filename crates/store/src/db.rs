//! Connections: opening and checking both backends, the read pool, and the write path (group commit on SQLite).
//!
//! Every write runs as an *operation*: an async closure over one connection inside one
//! transaction. On PostgreSQL each operation gets its own pooled connection and transaction.
//! On SQLite one writer task owns the only write connection; it takes every operation queued
//! while the previous commit was being made durable and commits them together in one
//! `BEGIN IMMEDIATE` transaction, each inside its own savepoint, so a failing operation is
//! rolled back alone and the others still commit (group commit). Callers get their answer only
//! after the commit that holds their write returned.

use crate::config::{Backend, StoreConfig};
use crate::error::StoreError;
use futures_util::future::BoxFuture;
use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::{Acquire, AnyPool, Connection, Executor, Row};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A write operation that runs once, inside its own savepoint when batched with others.
type OnceOp = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Completion> + Send>;

/// What a once-operation left behind: whether it succeeded, and how to deliver its answer once
/// the fate of its transaction is known.
struct Completion {
    is_ok: bool,
    deliver: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

/// A write operation over owned inputs that can run again: batched without a savepoint; when it
/// fails, the batch is rolled back and run again without it (see `run_batch`).
trait RepeatableOp: Send {
    /// Runs the operation; `false` when it failed (its error is kept for `deliver`).
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool>;
    /// Sends the answer: the kept result, or `commit_error` when the commit failed.
    fn deliver(self: Box<Self>, commit_error: Option<StoreError>);
}

struct Repeat<D, T, F> {
    data: D,
    op: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<D, T, F> RepeatableOp for Repeat<D, T, F>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    F: for<'c> Fn(&'c mut AnyConnection, &'c D) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + Sync
        + 'static,
{
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let result = (self.op)(conn, &self.data).await;
            let is_ok = result.is_ok();
            self.result = Some(result);
            is_ok
        })
    }

    fn deliver(self: Box<Self>, commit_error: Option<StoreError>) {
        let answer = match (self.result, commit_error) {
            (Some(Err(err)), _) => Err(err),
            (_, Some(err)) => Err(err),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::from(sqlx::Error::WorkerCrashed)),
        };
        // The caller may have gone away; the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// One queued write.
enum WriteOp {
    Once(OnceOp),
    Repeatable(Box<dyn RepeatableOp>),
}

/// The connections of one open store.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    backend: Backend,
    /// Reads; on PostgreSQL also writes.
    pool: AnyPool,
    /// SQLite: the queue of the writer task.
    writer: Option<mpsc::Sender<WriteOp>>,
    /// SQLite: the writer's pool (one connection), closed by `close`.
    write_pool: Option<AnyPool>,
}

impl Db {
    /// Opens the database of `config`, applies the durability settings and checks them.
    pub(crate) async fn open(config: &StoreConfig) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = config.backend().ok_or_else(|| {
            StoreError::Misconfigured(
                "database URL must start with sqlite: or postgres:".to_owned(),
            )
        })?;
        match backend {
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(config.max_connections.max(1))
                    .min_connections(config.min_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = on").await?;
                            Ok(())
                        })
                    })
                    .connect(&config.url)
                    .await?;
                check_postgres(&pool).await?;
                crate::migrate::run(&pool, backend).await?;
                Ok(Db {
                    backend,
                    pool,
                    writer: None,
                    write_pool: None,
                })
            }
            Backend::Sqlite => {
                let busy_ms = i64::try_from(config.busy_timeout.as_millis()).unwrap_or(i64::MAX);
                let write_pool =
                    sqlite_pool(&config.url, 1, 1, config.acquire_timeout, busy_ms, false).await?;
                check_sqlite(&write_pool, busy_ms).await?;
                crate::migrate::run(&write_pool, backend).await?;
                let read_pool = sqlite_pool(
                    &config.url,
                    config.max_connections.max(1),
                    config.min_connections,
                    config.acquire_timeout,
                    busy_ms,
                    true,
                )
                .await?;
                check_sqlite(&read_pool, busy_ms).await?;
                let (tx, rx) = mpsc::channel::<WriteOp>(config.max_batch.max(1) * 8);
                tokio::spawn(run_writer(write_pool.clone(), rx, config.max_batch.max(1)));
                Ok(Db {
                    backend,
                    pool: read_pool,
                    writer: Some(tx),
                    write_pool: Some(write_pool),
                })
            }
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads (see the module docs for SQLite's separate write connection).
    pub(crate) fn reader(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `op` in a transaction and returns its result once that transaction committed.
    /// An `Err` from `op` rolls back everything it did.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        match &self.writer {
            Some(writer) => submit(writer, op).await,
            None => {
                let mut conn = self.pool.acquire().await?;
                let mut txn = conn.begin().await?;
                match op(&mut txn).await {
                    Ok(value) => {
                        txn.commit().await?;
                        Ok(value)
                    }
                    Err(err) => {
                        // Dropping the transaction rolls it back too; an explicit rollback
                        // returns the connection clean at once.
                        let _ = txn.rollback().await;
                        Err(err)
                    }
                }
            }
        }
    }

    /// Like [`Db::write`] for an operation whose only write is ONE statement: on PostgreSQL
    /// it runs without an explicit transaction (the statement commits by itself, saving two
    /// round trips); on SQLite it joins the group commit like any write. Reads that follow
    /// the statement (to classify a refusal) see committed data.
    pub(crate) async fn write_statement<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        match &self.writer {
            Some(writer) => submit(writer, op).await,
            None => {
                let mut conn = self.pool.acquire().await?;
                op(&mut conn).await
            }
        }
    }

    /// Like [`Db::write`] for an operation over owned inputs `data` that may run more than once
    /// (it must not have effects outside the transaction). On SQLite it joins a batch without a
    /// savepoint, which makes the hot queue and log operations cheaper; `single_statement` has
    /// the meaning of [`Db::write_statement`] on PostgreSQL.
    pub(crate) async fn write_repeatable<D, T, F>(
        &self,
        single_statement: bool,
        data: D,
        op: F,
    ) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut AnyConnection, &'c D) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        match &self.writer {
            Some(writer) => {
                let (reply, rx) = oneshot::channel();
                let repeat = Repeat {
                    data,
                    op,
                    result: None,
                    reply,
                };
                writer
                    .send(WriteOp::Repeatable(Box::new(repeat)))
                    .await
                    .map_err(|_| StoreError::from(sqlx::Error::PoolClosed))?;
                rx.await
                    .map_err(|_| StoreError::from(sqlx::Error::WorkerCrashed))?
            }
            None if single_statement => {
                let mut conn = self.pool.acquire().await?;
                op(&mut conn, &data).await
            }
            None => {
                let mut conn = self.pool.acquire().await?;
                let mut txn = conn.begin().await?;
                match op(&mut txn, &data).await {
                    Ok(value) => {
                        txn.commit().await?;
                        Ok(value)
                    }
                    Err(err) => {
                        let _ = txn.rollback().await;
                        Err(err)
                    }
                }
            }
        }
    }

    /// Closes every connection; later operations fail with `Unavailable`. (The writer task
    /// itself ends when the last clone of the store is dropped.)
    pub(crate) async fn close(&self) {
        if let Some(write_pool) = &self.write_pool {
            write_pool.close().await;
        }
        self.pool.close().await;
    }
}

/// Queues `op` for the SQLite writer and waits for the commit that holds it.
async fn submit<T, F>(writer: &mpsc::Sender<WriteOp>, op: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static,
{
    let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
    let boxed: OnceOp = Box::new(move |conn: &mut AnyConnection| {
        Box::pin(async move {
            let result = op(conn).await;
            Completion {
                is_ok: result.is_ok(),
                deliver: Box::new(move |commit_error: Option<StoreError>| {
                    let answer = match commit_error {
                        Some(err) if result.is_ok() => Err(err),
                        _ => result,
                    };
                    // The caller may have gone away; the write stands regardless.
                    let _ = tx.send(answer);
                }),
            }
        })
    });
    writer
        .send(WriteOp::Once(boxed))
        .await
        .map_err(|_| StoreError::from(sqlx::Error::PoolClosed))?;
    rx.await
        .map_err(|_| StoreError::from(sqlx::Error::WorkerCrashed))?
}

/// The SQLite writer: batches whatever is queued into one transaction per commit.
async fn run_writer(pool: AnyPool, mut rx: mpsc::Receiver<WriteOp>, max_batch: usize) {
    let mut batch: Vec<WriteOp> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_batch(&pool, &mut batch).await;
    }
    pool.close().await;
    tracing::debug!("store writer stopped");
}

async fn commit_batch(pool: &AnyPool, batch: &mut Vec<WriteOp>) {
    let mut repeatable = Vec::new();
    let mut once = Vec::new();
    for op in batch.drain(..) {
        match op {
            WriteOp::Repeatable(op) => repeatable.push(op),
            WriteOp::Once(op) => once.push(op),
        }
    }
    let mut refused: Vec<Box<dyn RepeatableOp>> = Vec::new();
    let mut completions: Vec<Completion> = Vec::with_capacity(once.len());
    let outcome = run_batch(pool, &mut repeatable, &mut refused, once, &mut completions).await;
    if let Err(err) = &outcome {
        tracing::warn!(error = %err, operations = repeatable.len() + completions.len(), "group commit failed");
    }
    for op in refused {
        op.deliver(None);
    }
    for op in repeatable {
        op.deliver(outcome.clone().err());
    }
    for completion in completions {
        (completion.deliver)(outcome.clone().err());
    }
    // Once-operations that never ran (the transaction broke before them) are dropped here:
    // their callers see `Unavailable` (see `submit`), and nothing of them was written.
}

/// Runs a batch in one `BEGIN IMMEDIATE` transaction. Repeatable operations run first, without
/// savepoints; when one fails, the transaction is rolled back, that operation is moved to
/// `refused` (its error stands: it ran after the ones before it and changed nothing) and the
/// others run again in a new transaction. Once-operations run last, each in a savepoint when
/// there are several operations, so a failing one is undone alone.
async fn run_batch(
    pool: &AnyPool,
    repeatable: &mut Vec<Box<dyn RepeatableOp>>,
    refused: &mut Vec<Box<dyn RepeatableOp>>,
    once: Vec<OnceOp>,
    completions: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let mut txn = 'attempt: loop {
        let mut txn = conn.begin_with("BEGIN IMMEDIATE").await?;
        for index in 0..repeatable.len() {
            if !repeatable[index].run(&mut txn).await {
                txn.rollback().await?;
                refused.push(repeatable.remove(index));
                continue 'attempt;
            }
        }
        break txn;
    };
    let use_savepoints = repeatable.len() + once.len() > 1;
    for op in once {
        if use_savepoints {
            let mut savepoint = txn.begin().await?;
            let completion = op(&mut savepoint).await;
            if completion.is_ok {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            completions.push(completion);
        } else {
            let completion = op(&mut txn).await;
            let is_ok = completion.is_ok;
            completions.push(completion);
            if !is_ok {
                txn.rollback().await?;
                return Ok(());
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

/// A pool of SQLite connections with the durability pragmas applied to each.
async fn sqlite_pool(
    url: &str,
    max: u32,
    min: u32,
    acquire_timeout: Duration,
    busy_ms: i64,
    read_only: bool,
) -> Result<AnyPool, StoreError> {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(min.min(max))
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // The busy timeout comes first so the pragmas below wait for locks too.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "PRAGMA busy_timeout = {busy_ms}"
                )))
                .execute(&mut *conn)
                .await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                if read_only {
                    // Reads go through this pool; every write must take the writer's path.
                    conn.execute("PRAGMA query_only = ON").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    Ok(pool)
}

/// Reads the pragmas back and refuses a connection that is not durable (A1–A4).
async fn check_sqlite(pool: &AnyPool, busy_ms: i64) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let conn = conn.acquire().await?;
    let journal: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let synchronous: i64 = sqlx::query("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let foreign_keys: i64 = sqlx::query("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let busy_timeout: i64 = sqlx::query("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let mut problems = Vec::new();
    if !journal.eq_ignore_ascii_case("wal") {
        problems.push(format!("journal_mode is {journal}, not wal"));
    }
    // 2 = FULL, 3 = EXTRA (stronger); anything weaker is refused.
    if synchronous < 2 {
        problems.push(format!("synchronous is {synchronous}, not FULL (2)"));
    }
    if foreign_keys != 1 {
        problems.push("foreign_keys is off".to_owned());
    }
    if busy_timeout < busy_ms.min(1) {
        problems.push(format!("busy_timeout is {busy_timeout} ms"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Misconfigured(format!(
            "SQLite is not durable: {}",
            problems.join("; ")
        )))
    }
}

/// Refuses a PostgreSQL session that acknowledges commits before they are durable.
async fn check_postgres(pool: &AnyPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    for (setting, wanted) in [("synchronous_commit", "on"), ("fsync", "on")] {
        let value: String = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if value != wanted {
            return Err(StoreError::Misconfigured(format!(
                "PostgreSQL {setting} is {value}, not {wanted}"
            )));
        }
    }
    Ok(())
}
