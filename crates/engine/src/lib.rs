//! The engine: keeps every run moving, from trigger to a final state, through anything.
//!
//! Owns: run creation (selection, concurrency, parameter snapshot — A1), the event loop that
//! advances runs with the pure scheduler (`runnel_domain::scheduler`) over the store, job
//! dispatch through the store's leased queue (the path the built-in executor pool and remote
//! agents share), agentless steps (reviews, delays), run control (stop, retry, admission),
//! timers and the lease sweeper (G1), and recovery after a restart.
//!
//! Must not know: HTTP, SQL text, processes. State lives only in the store, so a server killed
//! with `kill -9` restarts into the same runs: at start every non-final run is advanced again,
//! expired leases are swept (their jobs re-queued, or failed with `executor lost` after
//! `max_tries`), and deadlines are recomputed from stored start times.
//!
//! Concurrency: every change of one run happens under that run's lock (an engine step or a
//! command), except the step written with a job's completion, which is computed and written
//! inside the very transaction that read the run (`next_step`); different runs advance
//! independently. Writes are optimistic (`state_version`), so several engines on one database
//! stay correct (a lost race is retried from a fresh read).

mod advance;
mod agentless;
mod config;
mod control;
mod dispatch;
mod model;
mod next_step;
mod runinfo;
pub mod schedule;
mod specs;
mod trigger;

pub use config::{Clock, EngineConfig, EngineError, ManualClock, SystemClock};
pub use control::{Actor, DelayAction};
pub use dispatch::{ClaimInput, Dispatch};
pub use trigger::sources::{
    BoxFuture, GitCredential, GitRemote, RemoteRef, check_ref_name, is_commit_id,
};
pub use trigger::{MAX_WEBHOOK_PAYLOAD, TriggerRequest, Triggered};

use advance::Advanced;
use runinfo::RunInfo;
use runnel_domain::Timestamp;
use runnel_store::{
    AppendOutcome, FinishedJob, Heartbeat, JobOutcome, JobQueue, LeaseToken, RunStore, StepReport,
    Store,
};
use specs::SpecCache;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// The running event loop; stop it with [`EngineTask::shutdown`].
pub struct EngineTask {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

impl EngineTask {
    /// Whether the event loop is alive: not stopped, not ended (a panic ends it).
    pub fn is_running(&self) -> bool {
        !self.stop.is_cancelled() && !self.handle.is_finished()
    }

    /// Stops the loop and waits for it. Runs stay as stored; the next start carries on.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(err) = self.handle.await {
            tracing::error!(error = %err, "engine loop ended abnormally");
        }
    }
}

/// What wakes the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Something changed in this run.
    Advance(String),
    /// A run of this pipeline ended: a queued run may start.
    PipelineFreed(String),
    /// Look at this run again at this time.
    WakeAt(String, Timestamp),
    /// A job of this run had its completion replayed. The first answer carried the
    /// completion's follow-up (the run's next step, a freed concurrency slot); if that answer
    /// was lost — the store committed but could not say so — the follow-up was lost with it.
    /// Both are done again: a step finds nothing new to do when there is none, and a freed
    /// slot starts only the queued runs that fit.
    Replayed(String),
    /// Sweep expired leases and fire due timers now.
    Sweep,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) specs: SpecCache,
    run_infos: Mutex<HashMap<String, Arc<RunInfo>>>,
    /// Runs just created, as stored, until their first engine step (which then need not read
    /// them). Memory only: a stale one cannot be saved over (`state_version`), a missing one
    /// is read.
    created: Mutex<HashMap<String, runnel_store::RunDetail>>,
    run_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    /// Jobs rendered when they were queued, for their claim.
    pub(crate) ready: dispatch::ReadyJobs,
    events: mpsc::UnboundedSender<Event>,
    /// One permit per job that became claimable (capped at [`MAX_NUDGES`]): an idle worker
    /// takes one and claims. Permits wait for a waiter, so a nudge is never missed.
    work: Semaphore,
    changes: broadcast::Sender<String>,
    /// Reads remote repositories (set by the server; `trigger::sources`).
    git: std::sync::RwLock<Option<Arc<dyn trigger::sources::GitRemote>>>,
}

impl Engine {
    /// Starts the engine on `store` and recovers every run that was not finished.
    pub async fn start(
        store: Store,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Engine, EngineTask), EngineError> {
        let (events, receiver) = mpsc::unbounded_channel();
        let (changes, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            store,
            config,
            clock,
            specs: SpecCache::default(),
            run_infos: Mutex::new(HashMap::new()),
            created: Mutex::new(HashMap::new()),
            run_locks: Mutex::new(HashMap::new()),
            cancels: Mutex::new(HashMap::new()),
            ready: dispatch::ReadyJobs::default(),
            events,
            work: Semaphore::new(0),
            changes,
            git: std::sync::RwLock::new(None),
        });
        let active = inner.store.active_runs().await?;
        tracing::info!(
            runs = active.len(),
            "recovering runs that were not finished"
        );
        for run in active {
            inner.send(Event::Advance(run.id));
        }
        inner.send(Event::Sweep);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(run_loop(Arc::clone(&inner), receiver, stop.clone()));
        Ok((Engine { inner }, EngineTask { handle, stop }))
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Creates a run (committed before this returns — A1) and starts it, or queues it.
    pub async fn trigger(&self, request: TriggerRequest) -> Result<Triggered, EngineError> {
        trigger::trigger(&self.inner, request).await
    }

    pub async fn stop(&self, run_id: &str, actor: &Actor) -> Result<(), EngineError> {
        control::stop(&self.inner, run_id, actor).await
    }

    /// Retries a FAILED or CANCELED run: `job_run_ids` (empty = every failed or cancelled job).
    pub async fn retry(&self, run_id: &str, job_run_ids: &[String]) -> Result<(), EngineError> {
        control::retry(&self.inner, run_id, job_run_ids).await
    }

    pub async fn review(
        &self,
        run_id: &str,
        step_run_id: &str,
        actor: &Actor,
        pass: bool,
        comment: &str,
    ) -> Result<(), EngineError> {
        control::review(&self.inner, run_id, step_run_id, actor, pass, comment).await
    }

    pub async fn delay(
        &self,
        run_id: &str,
        step_run_id: &str,
        actor: &Actor,
        action: DelayAction,
    ) -> Result<(), EngineError> {
        control::delay_action(&self.inner, run_id, step_run_id, actor, action).await
    }

    /// Passes (`pass`) or refuses the manual admission of a stage, by its `pre` step run id.
    pub async fn admission(
        &self,
        run_id: &str,
        step_run_id: &str,
        pass: bool,
    ) -> Result<(), EngineError> {
        control::admission(&self.inner, run_id, step_run_id, pass).await
    }

    // ---- the worker path ----

    pub async fn claim(&self, input: &ClaimInput) -> Result<Option<Dispatch>, EngineError> {
        dispatch::claim(&self.inner, input).await
    }

    /// Extends the lease; `is_cancel_requested` tells the worker to stop the job.
    pub async fn heartbeat(&self, token: &LeaseToken) -> Result<Heartbeat, EngineError> {
        dispatch::heartbeat(&self.inner, token).await
    }

    pub async fn append_log(
        &self,
        token: &LeaseToken,
        step_run_id: &str,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<AppendOutcome, EngineError> {
        dispatch::append_log(&self.inner, token, step_run_id, offset, bytes).await
    }

    pub async fn report_step(
        &self,
        token: &LeaseToken,
        report: StepReport,
    ) -> Result<(), EngineError> {
        dispatch::report_step(&self.inner, token, report).await
    }

    pub async fn complete(
        &self,
        token: &LeaseToken,
        outcome: JobOutcome,
    ) -> Result<FinishedJob, EngineError> {
        dispatch::complete(&self.inner, token, Vec::new(), outcome).await
    }

    /// [`Engine::complete`] after the step reports the worker had not sent yet, in one
    /// transaction (`JobQueue::complete_with_steps`).
    pub async fn complete_with_steps(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
    ) -> Result<FinishedJob, EngineError> {
        dispatch::complete(&self.inner, token, steps, outcome).await
    }

    /// [`Engine::complete_with_steps`], then [`Engine::claim`] for the worker's free slot, in
    /// one write (`JobQueue::complete_and_claim`).
    pub async fn complete_and_claim(
        &self,
        token: &LeaseToken,
        steps: Vec<StepReport>,
        outcome: JobOutcome,
        next: &ClaimInput,
    ) -> Result<(FinishedJob, Option<Dispatch>), EngineError> {
        dispatch::complete_and_claim(&self.inner, token, steps, outcome, next).await
    }

    /// Resolves when a job may have been queued, or after `max_wait`.
    ///
    /// Every job queued (or re-queued by the sweeper) leaves a permit, also when nobody waits
    /// yet, so a worker that asks between an empty claim and this call does not miss it.
    pub async fn wait_for_work(&self, max_wait: Duration) {
        if let Ok(Ok(permit)) = tokio::time::timeout(max_wait, self.inner.work.acquire()).await {
            permit.forget();
        }
    }

    /// Resolves when the run of this job is stopped (pushed at once to local workers).
    pub async fn cancelled(&self, job_run_id: &str) {
        let token = self.inner.cancel_token(job_run_id);
        token.cancelled().await;
    }

    /// Run ids, each time a run was advanced or changed by a command (for tests and live views).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.changes.subscribe()
    }

    /// Sweeps expired leases and fires due timers now (tests use it with a manual clock).
    pub fn tick(&self) {
        self.inner.send(Event::Sweep);
    }
}

impl Inner {
    pub(crate) fn send(&self, event: Event) {
        // The loop owns the receiver for the engine's lifetime; after shutdown events are moot.
        let _ = self.events.send(event);
    }

    pub(crate) async fn run_info(
        &self,
        run: &runnel_store::RunRecord,
    ) -> Result<Arc<RunInfo>, EngineError> {
        if let Some(info) = lock(&self.run_infos).get(&run.id) {
            return Ok(Arc::clone(info));
        }
        let info = Arc::new(runinfo::load(self, run).await?);
        lock(&self.run_infos).insert(run.id.clone(), Arc::clone(&info));
        Ok(info)
    }

    /// The run's info if it is cached (no read).
    pub(crate) fn cached_run_info(&self, run_id: &str) -> Option<Arc<RunInfo>> {
        lock(&self.run_infos).get(run_id).map(Arc::clone)
    }

    /// Keeps the info of a run just created, so its engine steps need not read it back.
    pub(crate) fn remember_run_info(&self, run_id: &str, info: RunInfo) -> Arc<RunInfo> {
        Arc::clone(
            lock(&self.run_infos)
                .entry(run_id.to_owned())
                .or_insert_with(|| Arc::new(info)),
        )
    }

    /// Keeps a run just created, as stored, for its first engine step.
    pub(crate) fn remember_created(&self, detail: runnel_store::RunDetail) {
        lock(&self.created).insert(detail.run.id.clone(), detail);
    }

    /// The run as it was created, once, if nothing read it since.
    pub(crate) fn take_created(&self, run_id: &str) -> Option<runnel_store::RunDetail> {
        lock(&self.created).remove(run_id)
    }

    /// Drops what is cached for a finished run.
    pub(crate) fn forget_run(&self, run_id: &str) {
        lock(&self.created).remove(run_id);
        lock(&self.run_infos).remove(run_id);
        self.ready.forget_run(run_id);
    }

    pub(crate) async fn lock_run(&self, run_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = Arc::clone(lock(&self.run_locks).entry(run_id.to_owned()).or_default());
        mutex.lock_owned().await
    }

    fn cancel_token(&self, job_run_id: &str) -> CancellationToken {
        lock(&self.cancels)
            .entry(job_run_id.to_owned())
            .or_default()
            .clone()
    }

    pub(crate) fn push_cancel(&self, job_run_id: &str) {
        self.cancel_token(job_run_id).cancel();
    }

    pub(crate) fn forget_cancel(&self, job_run_id: &str) {
        lock(&self.cancels).remove(job_run_id);
    }

    /// Tells idle workers that `jobs` jobs became claimable.
    pub(crate) fn nudge_workers(&self, jobs: usize) {
        let room = MAX_NUDGES.saturating_sub(self.work.available_permits());
        let permits = jobs.min(room);
        if permits > 0 {
            self.work.add_permits(permits);
        }
    }

    /// Follow-ups of an engine step: wake workers, start queued runs, arm a timer, tell watchers.
    pub(crate) fn after_advance(&self, run_id: &str, advanced: &Advanced) {
        self.nudge_workers(advanced.enqueued);
        if let Some(pipeline_id) = &advanced.pipeline_freed {
            self.send(Event::PipelineFreed(pipeline_id.clone()));
            lock(&self.run_locks).remove(run_id);
        }
        if let Some(at) = advanced.wake_at {
            self.send(Event::WakeAt(run_id.to_owned(), at));
        }
        let _ = self.changes.send(run_id.to_owned());
    }
}

/// The most unclaimed nudges kept: surplus ones (jobs claimed without waiting) cost an idle
/// worker one empty claim each, so they are bounded.
const MAX_NUDGES: usize = 64;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // These maps stay valid even if a holder panicked.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The event loop: advances runs as events arrive, fires timers, sweeps leases.
async fn run_loop(
    inner: Arc<Inner>,
    mut events: mpsc::UnboundedReceiver<Event>,
    stop: CancellationToken,
) {
    let mut timers: BinaryHeap<Reverse<(Timestamp, String)>> = BinaryHeap::new();
    let mut sweep = tokio::time::interval(inner.config.sweep_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_timer = timers
            .peek()
            .map(|Reverse((at, _))| at.since(inner.clock.now()));
        let mut batch = Vec::new();
        tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => batch.push(event),
                None => return,
            },
            _ = sweep.tick() => batch.push(Event::Sweep),
            _ = tokio::time::sleep(next_timer.unwrap_or(Duration::from_secs(3600))), if next_timer.is_some() => {
                batch.push(Event::Sweep);
            }
        }
        while let Ok(event) = events.try_recv() {
            batch.push(event);
        }
        let mut runs: Vec<String> = Vec::new();
        let mut freed: Vec<String> = Vec::new();
        for event in batch {
            match event {
                Event::Advance(run_id) => runs.push(run_id),
                Event::Replayed(run_id) => {
                    // A run that ended with the lost answer frees its slot here (a run still
                    // going holds it: nothing starts); one that ends with its step below frees
                    // it then.
                    match inner.store.run(&run_id).await {
                        Ok(Some(run)) => freed.push(run.pipeline_id),
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(run_id = %run_id, error = %err, "cannot read a run after a replayed completion");
                        }
                    }
                    runs.push(run_id);
                }
                Event::WakeAt(run_id, at) => timers.push(Reverse((at, run_id))),
                // Once per pipeline and round, below: in a storm many runs of one pipeline end
                // together, and each look costs a read.
                Event::PipelineFreed(pipeline_id) => freed.push(pipeline_id),
                Event::Sweep => {
                    let now = inner.clock.now();
                    while timers.peek().is_some_and(|Reverse((at, _))| *at <= now) {
                        if let Some(Reverse((_, run_id))) = timers.pop() {
                            runs.push(run_id);
                        }
                    }
                    match inner.store.expire_leases(now).await {
                        Ok(expired) => {
                            let requeued = expired
                                .iter()
                                .filter(|lease| {
                                    matches!(
                                        lease.expiry,
                                        runnel_store::LeaseExpiry::Requeued { .. }
                                    )
                                })
                                .count();
                            inner.nudge_workers(requeued);
                            for lease in expired {
                                tracing::warn!(run_id = %lease.run_id, job_run_id = %lease.job_run_id, expiry = ?lease.expiry, "executor lost");
                                runs.push(lease.run_id);
                            }
                        }
                        Err(err) => tracing::warn!(error = %err, "lease sweep failed"),
                    }
                }
            }
        }
        freed.sort();
        freed.dedup();
        if !freed.is_empty() {
            for pipeline_id in &freed {
                if let Err(err) = advance::start_next_queued(&inner, pipeline_id).await {
                    tracing::warn!(pipeline_id = %pipeline_id, error = %err, "cannot start the next queued run");
                }
            }
            // The queued runs just sent start in this round; any other event waits for the
            // next one (sent again, never dropped).
            let mut later = Vec::new();
            while let Ok(event) = events.try_recv() {
                match event {
                    Event::Advance(run_id) => runs.push(run_id),
                    Event::WakeAt(run_id, at) => timers.push(Reverse((at, run_id))),
                    other => later.push(other),
                }
            }
            for event in later {
                inner.send(event);
            }
        }
        runs.sort();
        runs.dedup();
        advance_all(&inner, runs).await;
    }
}

/// Engine steps of different runs at once (each under its run's lock), so their writes share
/// the store's group commits instead of waiting for one commit each.
const MAX_CONCURRENT_ADVANCES: usize = 32;

async fn advance_all(inner: &Arc<Inner>, runs: Vec<String>) {
    let mut steps = tokio::task::JoinSet::new();
    for run_id in runs {
        while steps.len() >= MAX_CONCURRENT_ADVANCES {
            log_step_end(steps.join_next().await);
        }
        let inner = Arc::clone(inner);
        steps.spawn(async move {
            let guard = inner.lock_run(&run_id).await;
            let result = advance::advance(&inner, &run_id).await;
            drop(guard);
            match result {
                Ok(advanced) => inner.after_advance(&run_id, &advanced),
                Err(err) => tracing::warn!(run_id = %run_id, error = %err, "cannot advance run"),
            }
        });
    }
    while let Some(ended) = steps.join_next().await {
        log_step_end(Some(ended));
    }
}

fn log_step_end(ended: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(err)) = ended {
        tracing::error!(error = %err, "an engine step ended abnormally");
    }
}
