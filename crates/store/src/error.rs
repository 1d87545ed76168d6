//! `StoreError`: what a caller of the store can act on; backend errors are wrapped here, never re-exported.

use std::fmt;
use std::sync::Arc;

/// Why a store operation failed. Every variant except `Unavailable` means the operation
/// changed nothing and retrying it unchanged will fail the same way.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist (or belongs to another tenant or project).
    #[error("not found")]
    NotFound,
    /// The write contradicts what is stored: a duplicate name, a different result for an
    /// already finished attempt, log bytes that differ from the ones stored at that offset.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The lease token is not the current one of its job (expired and swept, superseded by a
    /// newer attempt, or the job ended): the write was refused and changed nothing (G2).
    #[error("lease lost: the job's lease token is no longer current")]
    LeaseLost,
    /// A log append started beyond the stored end; `expected` is the offset to send next (A2).
    #[error("log offset mismatch: the next expected offset is {expected}")]
    OffsetMismatch { expected: u64 },
    /// The input breaks a rule the store enforces (group depth, a bad status text, …).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database holds a schema newer than this binary knows: refuse to run on it.
    #[error(
        "the database schema is version {found}, newer than the newest this binary knows ({known}); \
         run a newer runnel or restore a matching backup"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The database is not set up as the durability contract requires (checked at open).
    #[error("database misconfigured: {0}")]
    Misconfigured(String),
    /// A stored value cannot be read back (unknown status text, undecryptable secret, bad JSON).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database could not be reached or failed; the outcome of a write is unknown unless
    /// the operation is idempotent and is retried.
    #[error("database unavailable")]
    Unavailable(#[source] BackendError),
}

/// An error of the database driver, kept opaque so `sqlx` never leaks into callers' types.
#[derive(Clone)]
pub struct BackendError(Arc<sqlx::Error>);

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = err {
            return StoreError::NotFound;
        }
        if let sqlx::Error::Database(db_err) = &err {
            // Constraint violations are the caller's to act on; everything else is the database's.
            match db_err.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return StoreError::Conflict(constraint_message("already exists", &**db_err));
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StoreError::Invalid(constraint_message(
                        "refers to a missing row or is still referenced",
                        &**db_err,
                    ));
                }
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => {
                    return StoreError::Invalid(constraint_message("violates a rule", &**db_err));
                }
                _ => {}
            }
        }
        StoreError::Unavailable(BackendError(Arc::new(err)))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Misconfigured(format!("migrations failed: {err}"))
    }
}

/// A short message naming the constraint, never quoting values (they may be secret).
fn constraint_message(what: &str, db_err: &dyn sqlx::error::DatabaseError) -> String {
    match db_err.constraint() {
        Some(constraint) => format!("{what} ({constraint})"),
        None => {
            // SQLite names the columns in its message ("UNIQUE constraint failed: tags.project_id, tags.name").
            let message = db_err.message();
            match message.split_once(": ") {
                Some((_, columns)) if !columns.is_empty() => format!("{what} ({columns})"),
                _ => what.to_owned(),
            }
        }
    }
}

impl StoreError {
    /// A `Corrupt` error for a value read back from the database.
    pub(crate) fn corrupt(what: impl fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }

    /// The connection itself failed (not a statement on it): open a new one.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, StoreError::Unavailable(BackendError(err))
            if matches!(**err, sqlx::Error::WorkerCrashed | sqlx::Error::Io(_)))
    }
}
