//! The pure scheduler: from (compiled spec, run state, contexts, now) to the next actions.
//!
//! [`plan`] looks at one snapshot and says what should happen next; [`apply`] performs one
//! action on the state through its checked transitions. A driver (the server's engine, or
//! `runnel exec`) repeats plan → apply until `plan` returns nothing, then waits for an event
//! (a job finished, a review was passed) and repeats. Nothing here performs IO.
//!
//! Semantics (spec §11.8):
//! * A stage is ready when all its prerequisite stages are final. If one of them FAILED or was
//!   CANCELED (or was skipped because of such a failure), the stage is SKIPPED unless it is
//!   `run_always`. Otherwise its `run_condition` decides; then a manual admission pauses it.
//! * A job is ready as soon as its own `needs` are final — never "level by level" — and its
//!   stage is running. Its `condition` decides between QUEUED and SKIPPED.
//! * Readiness and status functions look at everything upstream, transitively (so a deselected
//!   stage or job in the middle of a chain neither lets later work start early nor hides a
//!   failure before it): a job's `needs` and theirs; for a job without `needs`, and for a
//!   stage's `run_condition`, every stage before it through `depends_on`/sequence.
//!   `success()` — every one succeeded (COMPLETED, UNSELECTED; for stages also SKIPPED by a
//!   condition); `failure()` — one FAILED or was skipped because of a failure upstream;
//!   `cancelled()` — one was CANCELED; `completed()`, `always()` — true.
//!   `default()` — the condition in force when none is written — is `success()` over `needs`,
//!   and true for a job without `needs` or a stage (the stage rules above already decided).
//! * Roll-up: a stage FAILED if a selected, non-async job FAILED, else CANCELED if one was
//!   CANCELED, else COMPLETED; a run likewise over its stages, and CANCELED when stopped.

use crate::Timestamp;
use crate::expr::{EvalContext, StatusCheck, Value};
use crate::spec::{Admission, GateKind, JobIdx, PipelineSpec, StageIdx};
use crate::state::{IllegalTransition, RunState, SkipReason};
use crate::status::{JobStatus, RunStatus, StageStatus};
use std::collections::BTreeSet;

/// The expression contexts that do not change during a run (`pipeline`, `sources`, `env`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunContext {
    pub pipeline: serde_json::Value,
    pub sources: serde_json::Value,
    pub env: serde_json::Value,
}

/// What should happen next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Prerequisites are final and the condition holds: the stage starts.
    StartStage(StageIdx),
    /// The stage waits (PAUSED) for a manual admission ([`RunState::admit_stage`]).
    AwaitAdmission(StageIdx),
    SkipStage {
        stage: StageIdx,
        reason: SkipReason,
    },
    /// The job's needs are final and its condition holds: hand it to an executor.
    QueueJob(JobIdx),
    SkipJob {
        job: JobIdx,
        reason: SkipReason,
    },
    FinishStage {
        stage: StageIdx,
        status: StageStatus,
        message: Option<String>,
    },
    FinishRun(RunStatus),
}

/// The next actions for this snapshot. Empty when the run waits for something outside
/// (an executor, a person, a timer) or is over.
pub fn plan(spec: &PipelineSpec, state: &RunState, context: &RunContext) -> Vec<Action> {
    let mut actions = Vec::new();
    if !matches!(state.status(), RunStatus::Running | RunStatus::Paused) {
        return actions;
    }
    if state.is_cancel_requested() {
        plan_cancel(spec, state, &mut actions);
        return actions;
    }
    for stage in spec.stage_indices() {
        match state.stage(stage).status() {
            StageStatus::Init => plan_stage_start(spec, state, context, stage, &mut actions),
            StageStatus::Running | StageStatus::Paused => {
                plan_stage_jobs(spec, state, context, stage, &mut actions)
            }
            _ => {}
        }
    }
    if actions.is_empty()
        && spec
            .stage_indices()
            .all(|stage| state.stage(stage).status().is_final())
    {
        actions.push(Action::FinishRun(roll_up_run(state)));
    }
    actions
}

/// Applies one action through the state's checked transitions.
pub fn apply(
    spec: &PipelineSpec,
    state: &mut RunState,
    action: &Action,
    now: Timestamp,
) -> Result<(), IllegalTransition> {
    match action {
        Action::StartStage(stage) => state.set_stage(spec, *stage, StageStatus::Running, now)?,
        Action::AwaitAdmission(stage) => state.set_stage(spec, *stage, StageStatus::Paused, now)?,
        Action::SkipStage { stage, reason } => {
            state.set_stage_skipped(spec, *stage, reason.clone(), now)?
        }
        Action::QueueJob(job) => state.set_job(spec, *job, JobStatus::Queued, now)?,
        Action::SkipJob { job, reason } => {
            state.set_job_skipped(spec, *job, reason.clone(), now)?
        }
        Action::FinishStage {
            stage,
            status,
            message,
        } => {
            state.set_stage(spec, *stage, *status, now)?;
            if let Some(message) = message {
                state.set_stage_message(*stage, message.clone());
            }
        }
        Action::FinishRun(status) => {
            state.finish_run(*status, now)?;
            return Ok(());
        }
    }
    state.refresh(spec, now);
    Ok(())
}

/// Runs plan → apply until nothing is left to do; returns every action applied, in order.
pub fn advance(
    spec: &PipelineSpec,
    state: &mut RunState,
    context: &RunContext,
    now: Timestamp,
) -> Result<Vec<Action>, IllegalTransition> {
    let mut applied = Vec::new();
    loop {
        let actions = plan(spec, state, context);
        if actions.is_empty() {
            return Ok(applied);
        }
        for action in actions {
            apply(spec, state, &action, now)?;
            applied.push(action);
        }
    }
}

/// Every job downstream of `roots` (inclusive): their dependents within each stage, and every
/// job of every stage that (transitively) follows one of their stages.
pub fn downstream_of(spec: &PipelineSpec, roots: &[JobIdx]) -> Vec<JobIdx> {
    let mut jobs: BTreeSet<JobIdx> = roots.iter().copied().collect();
    let mut queue: Vec<JobIdx> = roots.to_vec();
    while let Some(job) = queue.pop() {
        for dependent in spec.dependents(job) {
            if jobs.insert(dependent) {
                queue.push(dependent);
            }
        }
    }
    let mut stages: BTreeSet<StageIdx> = BTreeSet::new();
    let mut stage_queue: Vec<StageIdx> = roots.iter().map(|job| spec.job(*job).stage).collect();
    while let Some(stage) = stage_queue.pop() {
        for dependent in spec.stage_dependents(stage) {
            if stages.insert(dependent) {
                stage_queue.push(dependent);
            }
        }
    }
    for stage in stages {
        jobs.extend(spec.stage(stage).jobs.iter().copied());
    }
    jobs.into_iter().collect()
}

fn plan_cancel(spec: &PipelineSpec, state: &RunState, actions: &mut Vec<Action>) {
    let mut all_final = true;
    for stage in spec.stage_indices() {
        let status = state.stage(stage).status();
        if status.is_final() {
            continue;
        }
        let jobs_final = spec
            .stage(stage)
            .jobs
            .iter()
            .all(|job| state.job(*job).status().is_final());
        if jobs_final {
            actions.push(Action::FinishStage {
                stage,
                status: StageStatus::Canceled,
                message: None,
            });
        } else {
            all_final = false;
        }
    }
    if all_final && actions.is_empty() {
        actions.push(Action::FinishRun(RunStatus::Canceled));
    }
}

fn plan_stage_start(
    spec: &PipelineSpec,
    state: &RunState,
    context: &RunContext,
    stage: StageIdx,
    actions: &mut Vec<Action>,
) {
    let stage_spec = spec.stage(stage);
    let prerequisites: Vec<Outcome> = stage_spec
        .upstream
        .iter()
        .map(|prerequisite| stage_outcome(state, *prerequisite))
        .collect();
    if prerequisites.contains(&Outcome::Pending) {
        return;
    }
    let upstream_failed = prerequisites
        .iter()
        .any(|outcome| matches!(outcome, Outcome::Failure | Outcome::Cancelled));
    if upstream_failed && !stage_spec.run_always {
        actions.push(Action::SkipStage {
            stage,
            reason: SkipReason::UpstreamFailed,
        });
        return;
    }
    let checks = StatusChecks {
        dependencies: prerequisites,
        default_is_success: false,
    };
    match evaluate_condition(&stage_spec.run_condition, context, state, spec, &checks) {
        Ok(true) => {}
        Ok(false) => {
            actions.push(Action::SkipStage {
                stage,
                reason: SkipReason::ConditionFalse,
            });
            return;
        }
        Err(message) => {
            actions.push(Action::SkipStage {
                stage,
                reason: SkipReason::ConditionError(message),
            });
            return;
        }
    }
    if let Some(gate) = stage_spec
        .pre
        .iter()
        .chain(&stage_spec.post)
        .find(|gate| gate.kind == GateKind::Unsupported)
    {
        actions.push(Action::FinishStage {
            stage,
            status: StageStatus::Failed,
            message: Some(format!(
                "gate plugin `{}` is not supported by this server",
                gate.task
            )),
        });
        return;
    }
    match stage_spec.admission {
        Admission::Manual if !state.stage(stage).is_admitted() => {
            actions.push(Action::AwaitAdmission(stage))
        }
        _ => actions.push(Action::StartStage(stage)),
    }
}

fn plan_stage_jobs(
    spec: &PipelineSpec,
    state: &RunState,
    context: &RunContext,
    stage: StageIdx,
    actions: &mut Vec<Action>,
) {
    let stage_spec = spec.stage(stage);
    if stage_spec.admission == Admission::Manual && !state.stage(stage).is_admitted() {
        return;
    }
    let mut all_final = true;
    for &job in &stage_spec.jobs {
        let job_run = state.job(job);
        if job_run.status().is_final() {
            continue;
        }
        all_final = false;
        if job_run.status() != JobStatus::Init {
            continue;
        }
        let job_spec = spec.job(job);
        let checks = if job_spec.needs.is_empty() {
            StatusChecks {
                dependencies: stage_spec
                    .upstream
                    .iter()
                    .map(|stage| stage_outcome(state, *stage))
                    .collect(),
                default_is_success: false,
            }
        } else {
            StatusChecks {
                dependencies: job_spec
                    .upstream
                    .iter()
                    .map(|need| job_outcome(state, *need))
                    .collect(),
                default_is_success: true,
            }
        };
        if checks.dependencies.contains(&Outcome::Pending) {
            continue;
        }
        match evaluate_condition(&job_spec.condition, context, state, spec, &checks) {
            Ok(true) => actions.push(Action::QueueJob(job)),
            Ok(false) => {
                let upstream_failed = checks
                    .dependencies
                    .iter()
                    .any(|outcome| matches!(outcome, Outcome::Failure | Outcome::Cancelled));
                let reason = if upstream_failed {
                    SkipReason::UpstreamFailed
                } else {
                    SkipReason::ConditionFalse
                };
                actions.push(Action::SkipJob { job, reason });
            }
            Err(message) => actions.push(Action::SkipJob {
                job,
                reason: SkipReason::ConditionError(message),
            }),
        }
    }
    if all_final {
        actions.push(Action::FinishStage {
            stage,
            status: roll_up_stage(spec, state, stage),
            message: None,
        });
    }
}

/// How a dependency ended, for status functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Success,
    /// Skipped by its own condition: neither success nor failure.
    Skipped,
    Failure,
    Cancelled,
}

fn job_outcome(state: &RunState, job: JobIdx) -> Outcome {
    let job_run = state.job(job);
    match job_run.status() {
        JobStatus::Completed | JobStatus::Unselected | JobStatus::Ignored => Outcome::Success,
        JobStatus::Failed | JobStatus::AsyncFailed => Outcome::Failure,
        JobStatus::Canceled => Outcome::Cancelled,
        JobStatus::Skipped => match job_run.skip_reason() {
            Some(SkipReason::UpstreamFailed) => Outcome::Failure,
            _ => Outcome::Skipped,
        },
        _ => Outcome::Pending,
    }
}

fn stage_outcome(state: &RunState, stage: StageIdx) -> Outcome {
    let stage_run = state.stage(stage);
    match stage_run.status() {
        StageStatus::Completed | StageStatus::Unselected | StageStatus::Ignored => Outcome::Success,
        StageStatus::Failed | StageStatus::AsyncFailed => Outcome::Failure,
        StageStatus::Canceled => Outcome::Cancelled,
        // A stage skipped by its own condition does not hold later stages back.
        StageStatus::Skipped => match stage_run.skip_reason() {
            Some(SkipReason::UpstreamFailed) => Outcome::Failure,
            _ => Outcome::Success,
        },
        _ => Outcome::Pending,
    }
}

fn roll_up_stage(spec: &PipelineSpec, state: &RunState, stage: StageIdx) -> StageStatus {
    let jobs = &spec.stage(stage).jobs;
    let counted = || {
        jobs.iter()
            .filter(|job| !spec.job(**job).is_async)
            .map(|job| state.job(*job).status())
    };
    if counted().any(|status| matches!(status, JobStatus::Failed | JobStatus::AsyncFailed)) {
        StageStatus::Failed
    } else if counted().any(|status| status == JobStatus::Canceled) {
        StageStatus::Canceled
    } else {
        StageStatus::Completed
    }
}

fn roll_up_run(state: &RunState) -> RunStatus {
    if state.is_cancel_requested() {
        RunStatus::Canceled
    } else if state
        .stages()
        .iter()
        .any(|stage| stage.status() == StageStatus::Failed)
    {
        RunStatus::Failed
    } else if state
        .stages()
        .iter()
        .any(|stage| stage.status() == StageStatus::Canceled)
    {
        RunStatus::Canceled
    } else {
        RunStatus::Completed
    }
}

struct StatusChecks {
    dependencies: Vec<Outcome>,
    /// `default()` means `success()` (jobs with `needs`) or always true (other jobs, stages).
    default_is_success: bool,
}

impl StatusChecks {
    fn check(&self, check: StatusCheck) -> bool {
        let success = || {
            self.dependencies
                .iter()
                .all(|outcome| *outcome == Outcome::Success)
        };
        match check {
            StatusCheck::Always | StatusCheck::Completed => true,
            StatusCheck::Default => !self.default_is_success || success(),
            StatusCheck::Success => success(),
            StatusCheck::Failure => self.dependencies.contains(&Outcome::Failure),
            StatusCheck::Cancelled => self.dependencies.contains(&Outcome::Cancelled),
        }
    }
}

struct ConditionContext<'a> {
    run: &'a RunContext,
    state: &'a RunState,
    spec: &'a PipelineSpec,
    checks: &'a StatusChecks,
}

impl EvalContext for ConditionContext<'_> {
    fn context(&self, name: &str) -> Option<Value> {
        match name {
            "pipeline" => Some(Value::from(self.run.pipeline.clone())),
            "sources" => Some(Value::from(self.run.sources.clone())),
            "env" => Some(Value::from(self.run.env.clone())),
            "jobs" => Some(Value::from(jobs_context(self.spec, self.state))),
            _ => None,
        }
    }

    fn status_check(&self, check: StatusCheck) -> bool {
        self.checks.check(check)
    }
}

/// The `jobs` context: `jobs.<identifier>.{status, outputs, metrics}` for every final job.
pub fn jobs_context(spec: &PipelineSpec, state: &RunState) -> serde_json::Value {
    let mut jobs = serde_json::Map::new();
    for job in spec.job_indices() {
        let job_run = state.job(job);
        if !job_run.status().is_final() {
            continue;
        }
        let outputs: serde_json::Map<String, serde_json::Value> = job_run
            .outputs()
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect();
        jobs.insert(
            spec.job(job).identifier.clone(),
            serde_json::json!({"status": job_run.status().as_str(), "outputs": outputs, "metrics": {}}),
        );
    }
    serde_json::Value::Object(jobs)
}

fn evaluate_condition(
    condition: &crate::expr::Condition,
    run: &RunContext,
    state: &RunState,
    spec: &PipelineSpec,
    checks: &StatusChecks,
) -> Result<bool, String> {
    let context = ConditionContext {
        run,
        state,
        spec,
        checks,
    };
    condition.evaluate(&context).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests;
