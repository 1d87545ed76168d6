//! `StoreConfig`: where the database is, pool sizes, the operator key and the log cap.

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The default cap on one step's stored log (100 MiB).
pub const DEFAULT_LOG_CAP_BYTES: u64 = 100 * 1024 * 1024;

/// How to open the store. Built by the server from its settings; the store reads no env.
#[derive(Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://…`.
    pub url: String,
    /// PostgreSQL: the pool size. SQLite: the number of reader connections (writes use one
    /// dedicated connection).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long an operation waits for a pooled connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits on a lock held by another process.
    pub busy_timeout: Duration,
    /// SQLite: the most write operations committed together in one transaction (group commit).
    pub max_batch: usize,
    /// The operator key encrypting secrets at rest (XChaCha20-Poly1305).
    pub secret_key: SecretKey,
    /// The most bytes stored per step log; see [`crate::LogStore`] for what happens past it.
    pub log_cap_bytes: u64,
}

impl StoreConfig {
    /// A config for `url` with defaults for everything else.
    pub fn new(url: impl Into<String>, secret_key: SecretKey) -> Self {
        StoreConfig {
            url: url.into(),
            max_connections: 8,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
            max_batch: 128,
            secret_key,
            log_cap_bytes: DEFAULT_LOG_CAP_BYTES,
        }
    }

    /// An SQLite database in the file `path` (created when missing).
    pub fn sqlite(path: &Path, secret_key: SecretKey) -> Self {
        Self::new(format!("sqlite://{}?mode=rwc", path.display()), secret_key)
    }

    /// Which backend `url` names.
    pub fn backend(&self) -> Option<Backend> {
        Backend::from_url(&self.url)
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show only its scheme.
        let scheme = self.url.split(':').next().unwrap_or_default();
        f.debug_struct("StoreConfig")
            .field("url", &format_args!("{scheme}:…"))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("max_batch", &self.max_batch)
            .field("secret_key", &self.secret_key)
            .field("log_cap_bytes", &self.log_cap_bytes)
            .finish()
    }
}

/// The two databases the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The 32-byte operator key that encrypts secrets at rest. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(SecretKey(bytes.try_into().ok()?))
    }

    /// A fresh random key (for a first start or tests).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        SecretKey(bytes)
    }

    /// The key as 64 hex digits, for the operator to keep.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(…)")
    }
}
