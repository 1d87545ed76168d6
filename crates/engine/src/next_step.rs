//! A run's engine step right after one of its jobs ended, decided inside the completion's
//! transaction (`JobQueue::complete_advance_and_claim`): the completion, the step and the
//! worker's next claim are one write, and the step reads the run on the writer's connection
//! instead of a reader re-reading the pages the completion changed.
//!
//! It decides exactly what [`crate::advance`]'s step would on the same rows, for a run whose
//! compiled spec and info are cached and that needs no other read: a run waiting for admission
//! or with a review or delay under way is declined (`None`) and left to the event loop, as is
//! anything that goes wrong. The write is atomic with the read it was computed from, so it needs
//! no run lock for the store; the follow-up (rendering the queued jobs, forgetting a finished
//! run) is done under the run's lock, as the event loop's is.

use crate::advance::{self, Saved};
use crate::agentless::StepActions;
use crate::model::{self, RunIds};
use crate::runinfo::RunInfo;
use crate::{Event, Inner};
use runnel_domain::Timestamp;
use runnel_domain::spec::PipelineSpec;
use runnel_domain::state::RunState;
use runnel_domain::status::RunStatus;
use runnel_store::{FinishedJob, NextStep, RunDetail, RunProgress, StepOutputRecord};
use std::sync::{Arc, Mutex, PoisonError};

/// What the step needs on the store's writer, and where it leaves what it decided.
#[derive(Clone)]
pub(crate) struct NextStepInput {
    inner: Arc<Inner>,
    now: Timestamp,
    outcome: Arc<Mutex<Option<Decided>>>,
}

/// A step decided on the writer: the state after it, and what follows it once committed.
struct Decided {
    detail: RunDetail,
    spec: Arc<PipelineSpec>,
    info: Arc<RunInfo>,
    state: RunState,
    ids: RunIds,
    saved: Saved,
    /// The step changed nothing (no write to wait for).
    is_empty: bool,
}

impl NextStepInput {
    pub(crate) fn new(inner: &Arc<Inner>, now: Timestamp) -> Self {
        NextStepInput {
            inner: Arc::clone(inner),
            now,
            outcome: Arc::default(),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Decided>> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The step's decision, or why it was declined.
    fn try_decide(
        &self,
        detail: &RunDetail,
        outputs: &[StepOutputRecord],
    ) -> Result<(Decided, Option<RunProgress>), &'static str> {
        let inner = &self.inner;
        let run = &detail.run;
        let spec = inner
            .specs
            .cached(&run.pipeline_id, run.pipeline_version)
            .ok_or("the pipeline version is not compiled yet")?;
        let info = inner
            .cached_run_info(&run.id)
            .ok_or("the run's info is not at hand")?;
        let outputs = advance::outputs_by_job(detail, outputs.iter().cloned());
        let (mut state, ids) = model::load(&spec, detail, &outputs).map_err(|err| {
            tracing::warn!(run_id = %run.id, error = %err, "run not loaded for the step after a job");
            "the run could not be loaded"
        })?;
        let before = state.snapshot();
        if !state.status().is_final() {
            if matches!(state.status(), RunStatus::Init | RunStatus::Queued) {
                return Err("the run waits for admission");
            }
            // A review or a delay under way reads its stored actions.
            if StepActions::are_read(&spec, &state) {
                return Err("an agentless job is under way");
            }
        }
        let planned = if state.status().is_final() {
            None
        } else {
            Some(
                advance::plan(
                    inner.config.max_tries,
                    &spec,
                    &mut state,
                    &ids,
                    &before,
                    &info.context,
                    &StepActions::default(),
                    &run.id,
                    run.state_version,
                    self.now,
                )
                .map_err(|err| {
                    tracing::debug!(run_id = %run.id, error = %err, "step after a job left to the event loop");
                    "the scheduler refused"
                })?,
            )
        };
        let (progress, enqueued_jobs, wake_at) = match planned {
            Some(planned) => (
                Some(planned.progress),
                planned.enqueued_jobs,
                planned.wake_at,
            ),
            None => (None, Vec::new(), None),
        };
        let saved = Saved {
            enqueued: progress
                .as_ref()
                .map_or(0, |progress| progress.enqueue.len()),
            enqueued_jobs,
            wake_at,
            was_final: before.status.is_final(),
        };
        let progress = progress.filter(|progress| !model::is_empty(progress));
        let decided = Decided {
            detail: detail.clone(),
            spec,
            info,
            state,
            ids,
            saved,
            is_empty: progress.is_none(),
        };
        Ok((decided, progress))
    }
}

impl NextStep for NextStepInput {
    fn needs_outputs(&self, run: &RunDetail) -> bool {
        advance::reads_outputs(run)
    }

    fn decide(&self, run: &RunDetail, outputs: &[StepOutputRecord]) -> Option<RunProgress> {
        // Only the last call's answer is committed.
        *self.slot() = None;
        // Runs on the store's writer: a panic must not take it down; the event loop then makes
        // the step (and reports what went wrong).
        let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.try_decide(run, outputs)
        }));
        match decided {
            Ok(Ok((decided, progress))) => {
                *self.slot() = Some(decided);
                progress
            }
            Ok(Err(why)) => {
                tracing::debug!(run_id = %run.run.id, why, "step after a job left to the event loop");
                None
            }
            Err(_) => {
                tracing::error!(run_id = %run.run.id, "the step after a job panicked; left to the event loop");
                None
            }
        }
    }
}

/// After a completion written with its run's step: the step's follow-up when it was stored (or
/// had nothing to store), else the run's next step through the event loop.
pub(crate) async fn follow_up(
    inner: &Inner,
    input: &NextStepInput,
    finished: &FinishedJob,
    step_version: Option<i64>,
) {
    inner.forget_cancel(&finished.job_run_id);
    if finished.is_replay {
        inner.send(Event::Replayed(finished.run_id.clone()));
        return;
    }
    let decided = input.slot().take();
    let Some(decided) = decided.filter(|decided| step_version.is_some() || decided.is_empty) else {
        inner.send(Event::Advance(finished.run_id.clone()));
        return;
    };
    // As the event loop's follow-up: after the trigger's (which holds the lock until it is done).
    let guard = inner.lock_run(&finished.run_id).await;
    let advanced = decided.saved.follow_up(
        inner,
        &decided.spec,
        &decided.detail,
        &decided.state,
        &decided.ids,
        &decided.info,
    );
    drop(guard);
    inner.after_advance(&finished.run_id, &advanced);
}
