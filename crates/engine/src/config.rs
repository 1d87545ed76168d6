//! Engine settings, the clock, and the engine's error type.

use runnel_domain::Timestamp;
use runnel_store::StoreError;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How the engine runs: handed over by the server from its typed settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A claimed job's lease lasts this long unless heartbeats extend it (production 30 s).
    pub lease: Duration,
    /// How often workers heartbeat (production 10 s).
    pub heartbeat_interval: Duration,
    /// How often expired leases and due timers are looked for (production 5 s).
    pub sweep_interval: Duration,
    /// How many times a job is dispatched when executors are lost; after the last lost attempt
    /// it fails with `executor lost` (the recovery policy, `docs/ARCHITECTURE.md`).
    pub max_tries: u32,
    /// Minutes east of UTC for `TIMESTAMP` and log line times.
    pub utc_offset_minutes: i32,
    /// Base of the `PASS_CONDITIONS_LINK` parameter (the server's public address).
    pub public_url: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(5),
            max_tries: 2,
            utc_offset_minutes: 0,
            public_url: String::new(),
        }
    }
}

/// Where the engine reads the time. Tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.as_millis())))
    }
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// What a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such pipeline, run, job or step (or not in this project).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is wrong: an unknown job in `choose_jobs`, an enum value outside its list…
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The action does not fit the current state: stopping a finished run, passing a review
    /// that is not waiting, a user who is not an approver.
    #[error("{0}")]
    NotAllowed(String),
    /// The pipeline's concurrency limit is reached and it refuses extra runs (`ABORT`).
    #[error("the pipeline already runs {running} runs, its limit")]
    ConcurrencyLimit { running: i64 },
    /// The pipeline is disabled.
    #[error("the pipeline is disabled")]
    Banned,
    /// The stored pipeline no longer compiles (should not happen: it was validated on save).
    #[error("the stored pipeline definition is invalid: {0}")]
    BadDefinition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
