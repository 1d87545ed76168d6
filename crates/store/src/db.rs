//! Connections: opening and checking both backends, the read pool, and the write path (group commit on SQLite).
//!
//! Every write runs as an *operation*: an async closure over one connection inside one
//! transaction. On PostgreSQL each operation gets its own pooled connection and transaction
//! (or none, when its only write is one statement). On SQLite one writer task owns the only
//! write connection; it takes every operation queued while the previous commit was being made
//! durable and commits them together in one `BEGIN IMMEDIATE` transaction (group commit).
//! Callers get their answer only after the commit that holds their write returned.
//!
//! Upstream sqlx runs each SQLite statement on the connection's worker thread, a round trip
//! between threads (two wake-ups) that on this 2-core machine costs more than most statements
//! themselves. The vendored sqlx-sqlite runs a statement on the caller's thread instead when
//! nothing is queued for that worker (`vendor/README.md`); the writer task therefore has a
//! thread of its own, so its commits (`fsync`) block no runtime worker. Hot operations also
//! have a *fast form* sending their whole work as one command, and the batch's
//! `BEGIN IMMEDIATE` and `COMMIT` ride along with the first and last fast form of the batch.

use crate::config::{Backend, StoreConfig};
use crate::error::StoreError;
use futures_util::future::BoxFuture;
use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor, Row};
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

/// Which transaction statements a fast form sends along with its own (SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wrap {
    /// Opens the batch's transaction: `BEGIN IMMEDIATE` first.
    pub(crate) begin: bool,
    /// Ends it: `COMMIT` last.
    pub(crate) commit: bool,
}

impl Wrap {
    /// Inside a transaction the writer opened and will commit.
    pub(crate) const NONE: Wrap = Wrap {
        begin: false,
        commit: false,
    };
    /// A transaction of its own (and on PostgreSQL, where fast forms are one statement).
    pub(crate) const ALONE: Wrap = Wrap {
        begin: true,
        commit: true,
    };

    /// The variant of a SQLite command made by [`wrapped!`] for this wrap.
    pub(crate) fn pick(self, variants: &[&'static str; 4]) -> &'static str {
        variants[usize::from(self.begin) | usize::from(self.commit) << 1]
    }

    /// Like [`Wrap::pick`] for a command of ONE statement: alone it runs in autocommit mode,
    /// which is the same transaction without the two statements around it.
    pub(crate) fn pick_single(self, variants: &[&'static str; 4]) -> &'static str {
        if self == Wrap::ALONE {
            variants[0]
        } else {
            self.pick(variants)
        }
    }
}

/// The four variants of a SQLite command for [`Wrap::pick`]: as is, after `BEGIN IMMEDIATE`,
/// before `COMMIT`, and both.
macro_rules! wrapped {
    ($sql:expr) => {
        [
            $sql,
            concat!("BEGIN IMMEDIATE; ", $sql),
            concat!($sql, "; COMMIT"),
            concat!("BEGIN IMMEDIATE; ", $sql, "; COMMIT"),
        ]
    };
}
pub(crate) use wrapped;

/// What a fast form did.
pub(crate) enum Fast<T> {
    /// The whole operation, with this result (an `Err` here changed nothing).
    Done(Result<T, StoreError>),
    /// Nothing (it does not apply to the stored state): run the operation's general form.
    NotApplied,
}

impl<T> Fast<T> {
    /// The result of a fast form that always applies (a one-statement operation): a
    /// `NotApplied` from one is a bug, reported as corruption rather than a panic.
    pub(crate) fn always_applied(self) -> Result<T, StoreError> {
        match self {
            Fast::Done(result) => result,
            Fast::NotApplied => Err(StoreError::corrupt(
                "a one-statement operation reported that it did not apply",
            )),
        }
    }
}

/// The fast form of an operation: one command doing all of it or nothing, wrapped as `Wrap`
/// says. An `Err` means the command failed: a transaction it opened may still be open.
/// `NotApplied` is only allowed with `wrap.commit` when it is the batch's only operation
/// (its empty transaction then committed, nothing else in it).
pub(crate) type FastOp<D, T> =
    for<'c> fn(&'c mut AnyConnection, &'c D, Wrap) -> BoxFuture<'c, Result<Fast<T>, StoreError>>;

/// A write operation over owned inputs that can run again: batched without a savepoint; when it
/// fails, the batch is rolled back and run again without it (see `run_batch`).
trait RepeatableOp: Send {
    /// Can its next run open the batch's transaction (it has a fast form still to try)?
    fn can_begin(&self) -> bool;
    /// Can it commit the batch's transaction (its fast form always applies)?
    fn can_commit(&self) -> bool;
    /// Runs the operation in the batch's transaction, opening or committing it as `wrap` says
    /// (only when `can_begin` / `can_commit`, or `can_begin` for the batch's only operation).
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection, wrap: Wrap) -> BoxFuture<'c, Step>;
    /// Sends the answer: the kept result, or `commit_error` when the commit failed.
    fn deliver(self: Box<Self>, commit_error: Option<StoreError>);
}

/// What running a repeatable operation did to the batch.
enum Step {
    /// It ran (and, with `wrap.commit`, committed the batch); its result is kept.
    Done,
    /// It failed and changed nothing: roll back and run the batch again without it.
    Refused,
    /// Its fast form did not apply in a transaction of its own, which committed empty: run
    /// the batch again (now without the fast form).
    Restart,
    /// A command carrying the batch's `BEGIN` or `COMMIT` failed in the database: the whole
    /// batch fails with this error, as when the writer's own `BEGIN`/`COMMIT` fails.
    Broken(StoreError),
}

struct Repeat<D, T, F> {
    data: D,
    op: F,
    fast: Option<FastOp<D, T>>,
    /// The fast form always applies (`op` is then never needed on SQLite).
    fast_is_total: bool,
    /// The fast form did not apply (nothing changed since): go straight to `op`.
    fast_missed: bool,
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
    fn can_begin(&self) -> bool {
        self.fast.is_some() && !self.fast_missed
    }

    fn can_commit(&self) -> bool {
        self.fast.is_some() && self.fast_is_total
    }

    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection, wrap: Wrap) -> BoxFuture<'c, Step> {
        Box::pin(async move {
            if let Some(fast) = self.fast
                && !self.fast_missed
            {
                match fast(conn, &self.data, wrap).await {
                    Ok(Fast::Done(result)) => {
                        let is_ok = result.is_ok();
                        self.result = Some(result);
                        // Committed: its refusal (a read after the commit) changed nothing.
                        return if is_ok || wrap.commit {
                            Step::Done
                        } else {
                            Step::Refused
                        };
                    }
                    Ok(Fast::NotApplied) => {
                        self.fast_missed = true;
                        if wrap.commit {
                            return Step::Restart;
                        }
                        // With `wrap.begin` the transaction is open: go on in it.
                    }
                    Err(err) => {
                        let broken = matches!(err, StoreError::Unavailable(_))
                            && (wrap.begin || wrap.commit);
                        self.result = Some(Err(err.clone()));
                        return if broken {
                            Step::Broken(err)
                        } else {
                            Step::Refused
                        };
                    }
                }
            }
            let result = (self.op)(conn, &self.data).await;
            let is_ok = result.is_ok();
            self.result = Some(result);
            if is_ok { Step::Done } else { Step::Refused }
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

/// One queued write, or the request to stop the writer.
enum WriteOp {
    Once(OnceOp),
    Repeatable(Box<dyn RepeatableOp>),
    /// [`Db::close`]: commit what was queued before it, close the connections, answer, stop.
    Close(oneshot::Sender<()>),
}

/// The connections of one open store.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    backend: Backend,
    /// Reads; on PostgreSQL also writes.
    pool: AnyPool,
    /// SQLite: the queue of the writer task (which owns the only write connection).
    writer: Option<mpsc::Sender<WriteOp>>,
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
                let pool = pool_options()
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
                analyze_missing_statistics(&pool).await?;
                Ok(Db {
                    backend,
                    pool,
                    writer: None,
                })
            }
            Backend::Sqlite => {
                let busy_ms = i64::try_from(config.busy_timeout.as_millis()).unwrap_or(i64::MAX);
                // Every connection opens the WAL through the VFS that writes a commit's frames
                // at once (`wal_vfs.rs`); the database file and its locks are SQLite's own.
                let url = crate::wal_vfs::url_with_vfs(&config.url);
                // Migrations run on a connection of their own; the writer task opens its own.
                let setup_pool =
                    sqlite_pool(&url, 1, 1, config.acquire_timeout, busy_ms, false).await?;
                let migrated = async {
                    let mut conn = setup_pool.acquire().await?;
                    check_sqlite(&mut conn, busy_ms).await?;
                    drop(conn);
                    crate::migrate::run(&setup_pool, backend).await
                }
                .await;
                setup_pool.close().await;
                migrated?;
                let read_pool = sqlite_pool(
                    &url,
                    config.max_connections.max(1),
                    config.min_connections,
                    config.acquire_timeout,
                    busy_ms,
                    true,
                )
                .await?;
                check_sqlite(&mut *read_pool.acquire().await?, busy_ms).await?;
                let writer = Writer::open(&url, busy_ms).await?;
                let (tx, rx) = mpsc::channel::<WriteOp>(config.max_batch.max(1) * 8);
                writer.spawn(rx, config.max_batch.max(1))?;
                Ok(Db {
                    backend,
                    pool: read_pool,
                    writer: Some(tx),
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
        self.repeatable(single_statement, None, false, data, op)
            .await
    }

    /// Like [`Db::write_repeatable`] with a fast form tried first (see [`FastOp`]): it does the
    /// whole operation or nothing, and then `op` runs in a transaction. On PostgreSQL the fast
    /// form must be one statement (it runs without `BEGIN`/`COMMIT`).
    pub(crate) async fn write_repeatable_fast<D, T, F>(
        &self,
        data: D,
        fast: FastOp<D, T>,
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
        self.repeatable(false, Some(fast), false, data, op).await
    }

    /// A repeatable operation that is ONE write statement (plus reads after it that only
    /// classify a refusal), given as a fast form that always applies (never `NotApplied`).
    /// On PostgreSQL it runs without `BEGIN`/`COMMIT`; on SQLite it can carry its batch's.
    pub(crate) async fn write_one_statement<D, T>(
        &self,
        data: D,
        statement: FastOp<D, T>,
    ) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        let op = repeatable_op(move |conn, data| {
            Box::pin(async move { statement(conn, data, Wrap::NONE).await?.always_applied() })
        });
        self.repeatable(true, Some(statement), true, data, op).await
    }

    async fn repeatable<D, T, F>(
        &self,
        single_statement: bool,
        fast: Option<FastOp<D, T>>,
        fast_is_total: bool,
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
        if let Some(writer) = &self.writer {
            let (reply, rx) = oneshot::channel();
            let repeat = Repeat {
                data,
                op,
                fast,
                fast_is_total,
                fast_missed: false,
                result: None,
                reply,
            };
            writer
                .send(WriteOp::Repeatable(Box::new(repeat)))
                .await
                .map_err(|_| StoreError::from(sqlx::Error::PoolClosed))?;
            return rx
                .await
                .map_err(|_| StoreError::from(sqlx::Error::WorkerCrashed))?;
        }
        let mut conn = self.pool.acquire().await?;
        if let Some(fast) = fast
            && let Fast::Done(result) = fast(&mut conn, &data, Wrap::ALONE).await?
        {
            return result;
        }
        if single_statement {
            return op(&mut conn, &data).await;
        }
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

    /// Closes every connection; later operations fail with `Unavailable`. On SQLite the
    /// writer first commits what was queued before, then closes its connection and stops.
    pub(crate) async fn close(&self) {
        if let Some(writer) = &self.writer {
            let (tx, rx) = oneshot::channel();
            if writer.send(WriteOp::Close(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
        self.pool.close().await;
    }
}

/// Pins a closure to the signature of a repeatable operation (closures do not infer it).
fn repeatable_op<D, T, F>(op: F) -> F
where
    F: for<'c> Fn(&'c mut AnyConnection, &'c D) -> BoxFuture<'c, Result<T, StoreError>>,
{
    op
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

/// The SQLite writer task: owns the only write connection and commits whatever is queued
/// in one transaction per commit (group commit).
struct Writer {
    url: String,
    busy_ms: i64,
    /// `None` after the connection broke; reopened for the next batch.
    conn: Option<AnyConnection>,
}

impl Writer {
    async fn open(url: &str, busy_ms: i64) -> Result<Writer, StoreError> {
        let conn = connect_sqlite(url, busy_ms, Role::Writer).await?;
        Ok(Writer {
            url: url.to_owned(),
            busy_ms,
            conn: Some(conn),
        })
    }

    /// Runs the writer on a thread of its own. Its statements run on that thread (the vendored
    /// sqlx-sqlite executes them inline, `vendor/README.md`), so a commit waiting for `fsync`
    /// blocks no runtime worker, and the callers keep queueing operations for the next commit
    /// meanwhile.
    fn spawn(self, rx: mpsc::Receiver<WriteOp>, max_batch: usize) -> Result<(), StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| StoreError::from(sqlx::Error::Io(err)))?;
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runtime.block_on(self.run(rx, max_batch));
                }));
                if ran.is_err() {
                    abort_after_writer_panic();
                }
            })
            .map_err(|err| StoreError::from(sqlx::Error::Io(err)))?;
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::Receiver<WriteOp>, max_batch: usize) {
        let mut batch: Vec<WriteOp> = Vec::with_capacity(max_batch);
        let mut closing = None;
        while closing.is_none() {
            let Some(first) = rx.recv().await else {
                break;
            };
            match first {
                WriteOp::Close(reply) => {
                    closing = Some(reply);
                    break;
                }
                op => batch.push(op),
            }
            take_queued(&mut rx, &mut batch, max_batch, &mut closing);
            self.commit(&mut batch).await;
        }
        // Operations queued after `close` are dropped: their callers see `Unavailable`.
        rx.close();
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
        if let Some(reply) = closing {
            let _ = reply.send(());
        }
        tracing::debug!("store writer stopped");
    }

    async fn commit(&mut self, batch: &mut Vec<WriteOp>) {
        let mut repeatable = Vec::new();
        let mut once = Vec::new();
        for op in batch.drain(..) {
            match op {
                WriteOp::Repeatable(op) => repeatable.push(op),
                WriteOp::Once(op) => once.push(op),
                // `take_queued` never puts one in a batch.
                WriteOp::Close(reply) => drop(reply),
            }
        }
        let mut refused: Vec<Box<dyn RepeatableOp>> = Vec::new();
        let mut completions: Vec<Completion> = Vec::with_capacity(once.len());
        let outcome = match self.connection().await {
            Ok(conn) => {
                let outcome =
                    run_batch(conn, &mut repeatable, &mut refused, once, &mut completions).await;
                if outcome.is_err() {
                    // Whatever the failure left open is undone ("no transaction is active"
                    // when it was rolled back already).
                    let _ = execute(conn, "ROLLBACK").await;
                }
                outcome
            }
            Err(err) => Err(err),
        };
        if let Err(err) = &outcome {
            tracing::warn!(error = %err, operations = repeatable.len() + completions.len(), "group commit failed");
            if err.is_connection_lost() {
                self.conn = None;
            }
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

    async fn connection(&mut self) -> Result<&mut AnyConnection, StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => connect_sqlite(&self.url, self.busy_ms, Role::Writer).await?,
        };
        Ok(self.conn.insert(conn))
    }
}

/// Moves queued operations into `batch` (up to `max_batch`), stopping at a `Close`.
fn take_queued(
    rx: &mut mpsc::Receiver<WriteOp>,
    batch: &mut Vec<WriteOp>,
    max_batch: usize,
    closing: &mut Option<oneshot::Sender<()>>,
) {
    while batch.len() < max_batch && closing.is_none() {
        match rx.try_recv() {
            Ok(WriteOp::Close(reply)) => *closing = Some(reply),
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

async fn execute(conn: &mut AnyConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

/// Runs a batch in one `BEGIN IMMEDIATE` transaction. Repeatable operations run first, without
/// savepoints; when one fails, the transaction is rolled back, that operation is moved to
/// `refused` (its error stands: it ran after the ones before it and changed nothing) and the
/// others run again in a new transaction. The first one opens the transaction with its own
/// command when it has a fast form, and the last one commits it when its fast form always
/// applies and no once-operation follows. Once-operations run last, each in a savepoint when
/// there are several operations, so a failing one is undone alone. On an `Err` the caller
/// rolls back.
async fn run_batch(
    conn: &mut AnyConnection,
    repeatable: &mut Vec<Box<dyn RepeatableOp>>,
    refused: &mut Vec<Box<dyn RepeatableOp>>,
    once: Vec<OnceOp>,
    completions: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    'attempt: loop {
        let count = repeatable.len();
        let commit_with_last = once.is_empty()
            && repeatable
                .last()
                .is_some_and(|last| last.can_commit() || (count == 1 && last.can_begin()));
        for index in 0..count {
            let wrap = Wrap {
                begin: index == 0 && repeatable[0].can_begin(),
                commit: commit_with_last && index + 1 == count,
            };
            if index == 0 && !wrap.begin {
                execute(conn, "BEGIN IMMEDIATE").await?;
            }
            match repeatable[index].run(conn, wrap).await {
                Step::Done => {}
                Step::Refused => {
                    execute(conn, "ROLLBACK").await?;
                    refused.push(repeatable.remove(index));
                    continue 'attempt;
                }
                Step::Restart => continue 'attempt,
                Step::Broken(err) => return Err(err),
            }
        }
        if commit_with_last {
            return Ok(());
        }
        if count == 0 {
            execute(conn, "BEGIN IMMEDIATE").await?;
        }
        break;
    }
    let use_savepoints = repeatable.len() + once.len() > 1;
    for op in once {
        if use_savepoints {
            execute(conn, "SAVEPOINT once_op").await?;
            let completion = op(conn).await;
            let is_ok = completion.is_ok;
            completions.push(completion);
            if !is_ok {
                execute(conn, "ROLLBACK TO once_op").await?;
            }
            execute(conn, "RELEASE once_op").await?;
        } else {
            let completion = op(conn).await;
            let is_ok = completion.is_ok;
            completions.push(completion);
            if !is_ok {
                execute(conn, "ROLLBACK").await?;
                return Ok(());
            }
        }
    }
    execute(conn, "COMMIT").await?;
    Ok(())
}

/// What a SQLite connection is used for; each gets the durability pragmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The writer task's connection.
    Writer,
    /// A pooled connection: reads only (`query_only`), or the migrations at open.
    Pooled { read_only: bool },
}

/// Opens one SQLite connection outside any pool, with the pragmas of `role`, and checks it.
async fn connect_sqlite(url: &str, busy_ms: i64, role: Role) -> Result<AnyConnection, StoreError> {
    let mut conn = AnyConnection::connect(url).await?;
    apply_pragmas(&mut conn, busy_ms, role).await?;
    check_sqlite(&mut conn, busy_ms).await?;
    Ok(conn)
}

/// The durability pragmas every connection runs, plus per-role tuning that leaves durability
/// alone.
async fn apply_pragmas(
    conn: &mut AnyConnection,
    busy_ms: i64,
    role: Role,
) -> Result<(), sqlx::Error> {
    // The busy timeout comes first so the pragmas below wait for locks too.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {busy_ms}"
    )))
    .execute(&mut *conn)
    .await?;
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = FULL").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    match role {
        Role::Writer => {
            // 16 MiB of page cache (default 2 MiB) for the connection that touches every hot
            // index: the queue's random ids and tokens then mostly hit the cache instead of
            // `pread` (half the reads in the queue benchmark). Memory, not durability.
            conn.execute("PRAGMA cache_size = -16384").await?;
            // Each operation of a batch runs in a savepoint, whose statement journal SQLite
            // spills to a temporary file past 64 KiB: `pwrite`s that were 5 % of the server's
            // CPU in a run storm. In memory it is a `memcpy`. A statement journal only undoes
            // a savepoint inside a live transaction; crash recovery never reads it (the WAL
            // does that), so durability is unchanged.
            conn.execute("PRAGMA temp_store = MEMORY").await?;
            // Checkpoint every 250 WAL frames (1 MiB) rather than SQLite's 1 000. A checkpoint
            // runs on the commit that crosses the mark, so that commit's callers wait for it,
            // and a smaller one is a shorter wait: over six pairs of benchmarks the p99 of
            // trigger → COMPLETED was lower in each (4.1–7.3 ms against 4.6–9.4 ms), the CPU
            // per run the same within the noise; 4 000 frames was worse on both. Durability is
            // unchanged: this only moves when committed pages reach the database file.
            conn.execute("PRAGMA wal_autocheckpoint = 250").await?;
        }
        Role::Pooled { read_only } => {
            if read_only {
                // Reads go through this pool; every write must take the writer's path.
                conn.execute("PRAGMA query_only = ON").await?;
            }
        }
    }
    Ok(())
}

/// A connection idle at least this long is pinged before it is handed out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Pool options shared by both backends. sqlx pings a connection before every acquire by
/// default: one more round trip (to the server, or to SQLite's worker thread) per operation.
/// Only connections that sat idle are tested here; a broken one is replaced as before.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
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
    let pool = pool_options()
        .max_connections(max)
        .min_connections(min.min(max))
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move { apply_pragmas(conn, busy_ms, Role::Pooled { read_only }).await })
        })
        // sqlx pings every connection released to the pool, one more round trip to the
        // connection's worker thread per statement. SQLite's worker runs commands in order,
        // so an abandoned statement or a pending rollback is finished before the next user's
        // command anyway; vouching here skips that ping (patched sqlx-core, vendor/README.md).
        // Connections idle for a second are still pinged before use (`pool_options`).
        .after_release(|_conn, _meta| Box::pin(async { Ok(true) }))
        .connect(url)
        .await?;
    Ok(pool)
}

/// Reads the pragmas back and refuses a connection that is not durable (A1–A4).
async fn check_sqlite(conn: &mut AnyConnection, busy_ms: i64) -> Result<(), StoreError> {
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

/// PostgreSQL plans from statistics only `ANALYZE` (or autovacuum) collects. A database
/// restored, or filled while autovacuum was off, has none, and a plan can then be off by
/// orders of magnitude. Tables that hold rows but have no statistics are analyzed at open
/// (a sample of at most 30 000 rows each: well under a second). A server with autovacuum off
/// gets a warning, since statistics then never follow the data.
async fn analyze_missing_statistics(pool: &AnyPool) -> Result<(), StoreError> {
    let autovacuum: String = sqlx::query("SHOW autovacuum")
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    if autovacuum != "on" {
        tracing::warn!(
            "PostgreSQL autovacuum is off: planner statistics are refreshed only at start-up \
             and by Store::refresh_statistics"
        );
    }
    let tables = sqlx::query(
        "SELECT c.relname::text AS relname FROM pg_class c \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
           AND c.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_stats s \
                           WHERE s.schemaname = current_schema() AND s.tablename = c.relname) \
         ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    for row in tables {
        let table: String = row.try_get(0)?;
        // Names come from the catalog of our own schema; quoted as identifiers all the same.
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let rows: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {quoted} LIMIT 1) AS probe"
        )))
        .fetch_one(pool)
        .await?
        .try_get(0)?;
        if rows > 0 {
            tracing::info!(table = %table, "no planner statistics: analyzing");
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {quoted}")))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
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

/// Ends the process after a panic on the SQLite writer thread (a bug: the panic hook has
/// printed it). Without its writer the store would refuse every write from then on while reads
/// and health checks went on answering: a server alive in name only. Ended, it is restarted by
/// whatever supervises it and recovers as after `kill -9`: the transaction the panic interrupted
/// was never committed, so nothing acknowledged is lost (`docs/ARCHITECTURE.md`).
fn abort_after_writer_panic() -> ! {
    tracing::error!(
        "the SQLite writer thread panicked; ending the process so that a restart recovers the store"
    );
    eprintln!(
        "runnel: the SQLite writer thread panicked; ending the process so that a restart recovers the store"
    );
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretKey, StoreConfig};
    use std::os::unix::process::ExitStatusExt as _;

    /// `SIGABRT`, the signal `abort` raises (6 on Linux, the BSDs and macOS).
    const SIGABRT: i32 = 6;
    /// Set in the child process that the test below starts, which plays the doomed server.
    const CHILD_VAR: &str = "RUNNEL_TEST_WRITER_PANIC_CHILD";

    #[test]
    fn a_panic_on_the_sqlite_writer_thread_ends_the_process() {
        if let Some(dir) = std::env::var_os(CHILD_VAR) {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async {
                let path = std::path::Path::new(&dir).join("runnel.db");
                let db = Db::open(&StoreConfig::sqlite(&path, SecretKey::generate()))
                    .await
                    .expect("store");
                let planted: Result<(), StoreError> = db
                    .write(|_conn| Box::pin(async { panic!("a planted bug in a write") }))
                    .await;
                eprintln!("the write answered {planted:?}");
                // Only a process the panic did not end gets here and beyond.
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
            std::process::exit(0);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "db::tests::a_panic_on_the_sqlite_writer_thread_ends_the_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, dir.path())
            .output()
            .expect("child ran");
        let stderr = String::from_utf8_lossy(&child.stderr);
        assert_eq!(
            child.status.signal(),
            Some(SIGABRT),
            "the process ended itself ({:?}); its stderr:\n{stderr}",
            child.status
        );
        assert!(stderr.contains("a planted bug in a write"), "{stderr}");
        assert!(
            stderr.contains("the SQLite writer thread panicked"),
            "{stderr}"
        );
    }
}
