//! The compiled, validated pipeline: `PipelineSpec` and its stages, jobs and steps.
//!
//! The only way to obtain a `PipelineSpec` is [`crate::compile`]; it is not `Deserialize`.

use crate::expr::{Condition, Template};
use crate::params::VariableSpec;
use serde_json::Value;
use std::time::Duration;

/// Index of a stage in [`PipelineSpec::stages`]. Only a spec hands these out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageIdx(u32);

/// Index of a job in [`PipelineSpec::jobs`]. Only a spec hands these out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobIdx(u32);

impl StageIdx {
    pub(crate) fn new(index: usize) -> Self {
        Self(u32::try_from(index).expect("stage count is limited far below u32::MAX by compile"))
    }
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl JobIdx {
    pub(crate) fn new(index: usize) -> Self {
        Self(u32::try_from(index).expect("job count is limited far below u32::MAX by compile"))
    }
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A validated pipeline.
///
/// Invariant: every `StageIdx`/`JobIdx` stored inside points into `stages`/`jobs`; stage
/// prerequisites and job `needs` are acyclic; a job's `needs` are jobs of its own stage;
/// identifiers are unique; `stages` are in execution-display order (by `sequence`).
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) stages: Vec<StageSpec>,
    pub(crate) jobs: Vec<JobSpec>,
    pub(crate) variables: Vec<VariableSpec>,
    pub(crate) concurrency: ConcurrencySpec,
    pub(crate) definition: Value,
}

impl PipelineSpec {
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    pub fn stages(&self) -> &[StageSpec] {
        &self.stages
    }
    pub fn jobs(&self) -> &[JobSpec] {
        &self.jobs
    }
    pub fn variables(&self) -> &[VariableSpec] {
        &self.variables
    }
    pub fn concurrency(&self) -> &ConcurrencySpec {
        &self.concurrency
    }
    /// The definition object as written (YAML conveniences expanded), for storing verbatim.
    pub fn definition(&self) -> &Value {
        &self.definition
    }
    pub fn stage(&self, index: StageIdx) -> &StageSpec {
        &self.stages[index.index()]
    }
    pub fn job(&self, index: JobIdx) -> &JobSpec {
        &self.jobs[index.index()]
    }
    pub fn stage_indices(&self) -> impl Iterator<Item = StageIdx> + '_ {
        (0..self.stages.len()).map(StageIdx::new)
    }
    pub fn job_indices(&self) -> impl Iterator<Item = JobIdx> + '_ {
        (0..self.jobs.len()).map(JobIdx::new)
    }
    /// The stage at `position` in [`PipelineSpec::stages`], if there is one.
    pub fn stage_at(&self, position: usize) -> Option<StageIdx> {
        (position < self.stages.len()).then(|| StageIdx::new(position))
    }
    /// The job at `position` in [`PipelineSpec::jobs`], if there is one.
    pub fn job_at(&self, position: usize) -> Option<JobIdx> {
        (position < self.jobs.len()).then(|| JobIdx::new(position))
    }
    pub fn stage_by_identifier(&self, identifier: &str) -> Option<StageIdx> {
        self.stages
            .iter()
            .position(|stage| stage.identifier == identifier)
            .map(StageIdx::new)
    }
    pub fn job_by_identifier(&self, identifier: &str) -> Option<JobIdx> {
        self.jobs
            .iter()
            .position(|job| job.identifier == identifier)
            .map(JobIdx::new)
    }
    /// Jobs that list `job` in their `needs`.
    pub fn dependents(&self, job: JobIdx) -> impl Iterator<Item = JobIdx> + '_ {
        self.job_indices()
            .filter(move |candidate| self.job(*candidate).needs.contains(&job))
    }
    /// Stages that list `stage` among their prerequisites.
    pub fn stage_dependents(&self, stage: StageIdx) -> impl Iterator<Item = StageIdx> + '_ {
        self.stage_indices()
            .filter(move |candidate| self.stage(*candidate).prerequisites.contains(&stage))
    }
}

/// A stage (spec §11.3).
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub identifier: String,
    pub name: String,
    pub sequence: i64,
    /// Stages that must be final before this one starts: explicit `depends_on`, else the
    /// previous stage by sequence (or, for a `parallel` stage, the previous stage's own prerequisites).
    pub prerequisites: Vec<StageIdx>,
    /// Every stage before this one, transitively through `prerequisites` (sorted).
    pub upstream: Vec<StageIdx>,
    pub run_always: bool,
    pub parallel: bool,
    pub run_condition: Condition,
    /// `run_condition` as written, for run detail.
    pub run_condition_text: Option<String>,
    pub admission: Admission,
    pub pre: Vec<GateStep>,
    pub post: Vec<GateStep>,
    pub jobs: Vec<JobIdx>,
}

/// How a stage is entered (its first `pre` step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// `official_devcloud_autoTrigger` or no `pre` at all.
    Automatic,
    /// `official_devcloud_manualTrigger`: the stage waits PAUSED until passed.
    Manual,
}

/// A stage admission (`pre`) or exit (`post`) step.
#[derive(Debug, Clone)]
pub struct GateStep {
    pub identifier: String,
    pub name: Option<String>,
    pub task: String,
    pub sequence: i64,
    pub kind: GateKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateKind {
    AutoTrigger,
    ManualTrigger,
    /// A gate plugin this server does not implement; it fails its stage with a clear message.
    Unsupported,
}

/// A job (spec §11.4).
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub identifier: String,
    pub name: String,
    pub stage: StageIdx,
    pub sequence: i64,
    /// Jobs of the same stage that must be final before this one starts.
    pub needs: Vec<JobIdx>,
    /// Every job this one waits for, transitively through `needs` (sorted).
    pub upstream: Vec<JobIdx>,
    pub condition: Condition,
    /// `condition` as written, for run detail.
    pub condition_text: Option<String>,
    pub select: SelectStrategy,
    pub timeout: Duration,
    /// The `resource` document (spec: a JSON string), parsed.
    pub resource: Option<Value>,
    pub exec: ExecKind,
    pub is_async: bool,
    pub steps: Vec<StepSpec>,
}

/// `strategy.select_strategy`: whether a manual run includes the job by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectStrategy {
    /// Included unless the run chooses other jobs.
    Selected,
    /// Excluded unless named in `choose_jobs`.
    Never,
    /// Always included, even when the run chooses other jobs.
    Always,
}

/// Where a job runs (spec `exec_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// `OCTOPUS_JOB`: on an executor (shell steps and other agent plugins).
    Agent,
    /// `AGENTLESS_JOB`: inside the service (manual review, delay).
    Agentless,
}

/// A step (spec §11.5).
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub identifier: String,
    pub name: String,
    pub task: String,
    pub sequence: i64,
    pub enabled: bool,
    pub business_type: Option<String>,
    pub action: StepAction,
    /// Every input as written; string values also parsed as templates.
    pub inputs: Vec<StepInput>,
    /// Step environment entries (`env`), values as templates.
    pub env: Vec<(String, Template)>,
}

/// One plugin input.
#[derive(Debug, Clone)]
pub struct StepInput {
    pub key: String,
    pub value: Value,
    /// Present when `value` is a string: its `${NAME}` / `${{ … }}` template.
    pub template: Option<Template>,
}

/// What a step does, decided at compile time from its `task`.
#[derive(Debug, Clone)]
pub enum StepAction {
    /// `official_shell_plugin`; the script with any `(decode)` base64 prefix already decoded.
    Shell { script: Template },
    /// `official_devcloud_checkpoint`: a manual review.
    Checkpoint(CheckpointSpec),
    /// `official_devcloud_delay`: wait, then continue.
    Delay { duration: Duration },
    /// Any other plugin: kept, and failed at run time with a clear message if no executor supports it.
    Plugin,
}

impl StepAction {
    pub fn is_agentless(&self) -> bool {
        matches!(self, StepAction::Checkpoint(_) | StepAction::Delay { .. })
    }
}

/// Inputs of a manual review step (spec §11.7 `official_devcloud_checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSpec {
    pub audit_source: String,
    pub approvers: Vec<String>,
    pub audit_role: Option<String>,
    pub strategy: ReviewStrategy,
    pub timeout: Duration,
    pub timeout_action: ReviewTimeoutAction,
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStrategy {
    /// Every approver must pass.
    All,
    /// One pass suffices.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewTimeoutAction {
    Reject,
    Pass,
}

/// Per-pipeline concurrency control (`concurrency_control`, spec §5.1 / §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySpec {
    pub enabled: bool,
    pub max_runs: u32,
    pub exceed_action: ExceedAction,
}

impl Default for ConcurrencySpec {
    fn default() -> Self {
        Self {
            enabled: false,
            max_runs: 1,
            exceed_action: ExceedAction::Queue,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceedAction {
    /// Extra runs wait in order.
    Queue,
    /// Extra runs are refused.
    Abort,
}
