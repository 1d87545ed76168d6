//! The state of one run: run, stage, job and step statuses with checked transitions.
//!
//! Every status change goes through a transition table (`transition.rs`), so an illegal change
//! (a final job starting again, a run completing twice) is an `Err`, never a silent overwrite.
//! Stage and run statuses while running (RUNNING vs PAUSED) are derived from their jobs after
//! every change; their final statuses come from the scheduler's roll-up (spec §11.8.8).
//! Nothing here reads the clock: every operation takes `now`.

mod nodes;
mod snapshot;
mod transition;

pub use nodes::{JobRun, SkipReason, StageRun, StepRun};
pub use snapshot::{JobSnapshot, RestoreError, RunSnapshot, StageSnapshot, StepSnapshot};
pub use transition::IllegalTransition;

use crate::Timestamp;
use crate::spec::{Admission, JobIdx, PipelineSpec, SelectStrategy, StageIdx};
use crate::status::{JobStatus, RunStatus, StageStatus, StepStatus};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which stages and jobs a run includes (`choose_stages` / `choose_jobs`, spec §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Stage identifiers; empty = every stage.
    pub stages: Vec<String>,
    /// Job identifiers; empty = the jobs whose `select_strategy` is not `never`.
    pub jobs: Vec<String>,
}

/// A selection naming something the pipeline does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("choose_stages names `{0}`, which is not a stage of this pipeline")]
    UnknownStage(String),
    #[error("choose_jobs names `{0}`, which is not a job of this pipeline")]
    UnknownJob(String),
}

/// Why a retry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("only a FAILED or CANCELED run can be retried; this run is {0}")]
    NotRetryable(RunStatus),
    #[error("job `{0}` did not fail and was not cancelled, so it cannot be retried")]
    JobNotRetryable(String),
    #[error("nothing to retry: no job failed or was cancelled")]
    NothingToRetry,
}

/// The state of one run.
///
/// Invariant: `stages` and `jobs` are parallel to the spec's stages and jobs; each job run has
/// one step run per step of its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    status: RunStatus,
    stages: Vec<StageRun>,
    jobs: Vec<JobRun>,
    cancel_requested: bool,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    paused_since: Option<Timestamp>,
    pause_total: Duration,
}

impl RunState {
    /// A new run in INIT, with unselected stages and jobs marked UNSELECTED (spec §11.8.1).
    pub fn new(spec: &PipelineSpec, selection: &Selection) -> Result<RunState, SelectionError> {
        for stage in &selection.stages {
            spec.stage_by_identifier(stage)
                .ok_or_else(|| SelectionError::UnknownStage(stage.clone()))?;
        }
        for job in &selection.jobs {
            spec.job_by_identifier(job)
                .ok_or_else(|| SelectionError::UnknownJob(job.clone()))?;
        }
        let stage_chosen: Vec<bool> = spec
            .stages()
            .iter()
            .map(|stage| {
                selection.stages.is_empty() || selection.stages.contains(&stage.identifier)
            })
            .collect();
        let jobs: Vec<JobRun> = spec
            .jobs()
            .iter()
            .map(|job| {
                let chosen = if !stage_chosen[job.stage.index()] {
                    false
                } else if selection.jobs.is_empty() {
                    job.select != SelectStrategy::Never
                } else {
                    job.select == SelectStrategy::Always || selection.jobs.contains(&job.identifier)
                };
                JobRun::new(chosen, job.steps.len())
            })
            .collect();
        let stages = spec
            .stages()
            .iter()
            .enumerate()
            .map(|(index, stage)| {
                // A stage whose jobs were all deselected is not part of the run; an empty stage still is.
                let has_selected_job = stage.jobs.is_empty()
                    || stage.jobs.iter().any(|job| jobs[job.index()].is_selected());
                StageRun::new(stage_chosen[index] && has_selected_job)
            })
            .collect();
        Ok(RunState {
            status: RunStatus::Init,
            stages,
            jobs,
            cancel_requested: false,
            started_at: None,
            finished_at: None,
            paused_since: None,
            pause_total: Duration::ZERO,
        })
    }

    pub fn status(&self) -> RunStatus {
        self.status
    }
    pub fn stage(&self, stage: StageIdx) -> &StageRun {
        &self.stages[stage.index()]
    }
    pub fn job(&self, job: JobIdx) -> &JobRun {
        &self.jobs[job.index()]
    }
    pub fn stages(&self) -> &[StageRun] {
        &self.stages
    }
    pub fn jobs(&self) -> &[JobRun] {
        &self.jobs
    }
    pub fn is_cancel_requested(&self) -> bool {
        self.cancel_requested
    }
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }
    /// Total time spent PAUSED so far (spec `pause_time`), including a pause still going on.
    pub fn pause_time(&self, now: Timestamp) -> Duration {
        self.pause_total
            + self
                .paused_since
                .map(|since| now.since(since))
                .unwrap_or_default()
    }

    /// INIT → QUEUED: the run waits for a concurrency slot.
    pub fn queue(&mut self) -> Result<(), IllegalTransition> {
        self.set_run(RunStatus::Queued, Timestamp::default())
    }

    /// INIT/QUEUED → RUNNING.
    pub fn start(&mut self, now: Timestamp) -> Result<(), IllegalTransition> {
        self.set_run(RunStatus::Running, now)?;
        if self.started_at.is_none() {
            self.started_at = Some(now);
        }
        Ok(())
    }

    /// Stops the run (spec §5.2): jobs that have not started, and waiting (PAUSED) jobs and
    /// stages, are CANCELED at once. Returns the RUNNING jobs, whose processes the caller must
    /// stop and then report as CANCELED through [`RunState::finish_job`]. The run becomes
    /// CANCELED when the last of them ends (the scheduler's roll-up).
    pub fn request_cancel(
        &mut self,
        spec: &PipelineSpec,
        now: Timestamp,
    ) -> Result<Vec<JobIdx>, IllegalTransition> {
        if self.status.is_final() {
            return Err(IllegalTransition::new(
                "run",
                "run",
                self.status,
                RunStatus::Canceled,
            ));
        }
        self.cancel_requested = true;
        if matches!(self.status, RunStatus::Init | RunStatus::Queued) {
            for index in 0..self.jobs.len() {
                if !self.jobs[index].status.is_final() {
                    self.set_job(spec, JobIdx::new(index), JobStatus::Canceled, now)?;
                }
            }
            for index in 0..self.stages.len() {
                if !self.stages[index].status.is_final() {
                    self.set_stage(spec, StageIdx::new(index), StageStatus::Canceled, now)?;
                }
            }
            self.set_run(RunStatus::Canceled, now)?;
            self.finished_at = Some(now);
            return Ok(Vec::new());
        }
        let mut running = Vec::new();
        for index in 0..self.jobs.len() {
            let job = JobIdx::new(index);
            match self.jobs[index].status {
                JobStatus::Init | JobStatus::Queued | JobStatus::Paused => {
                    self.set_job(spec, job, JobStatus::Canceled, now)?;
                }
                JobStatus::Running => running.push(job),
                _ => {}
            }
        }
        self.refresh(spec, now);
        Ok(running)
    }

    /// QUEUED → RUNNING: an executor took the job (or the service started an agentless job).
    pub fn start_job(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_job(spec, job, JobStatus::Running, now)?;
        self.refresh(spec, now);
        Ok(())
    }

    /// RUNNING → QUEUED: the executor was lost; the job will be dispatched again as a new attempt.
    pub fn requeue_job(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_job(spec, job, JobStatus::Queued, now)?;
        self.refresh(spec, now);
        Ok(())
    }

    /// RUNNING ↔ PAUSED for a job waiting on a person (review) or a timer (delay).
    pub fn pause_job(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_job(spec, job, JobStatus::Paused, now)?;
        self.refresh(spec, now);
        Ok(())
    }

    pub fn resume_job(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_job(spec, job, JobStatus::Running, now)?;
        self.refresh(spec, now);
        Ok(())
    }

    /// A step of a running job changed status.
    pub fn set_step(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        step: usize,
        update: StepUpdate,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        let job_status = self.jobs[job.index()].status;
        let name = &spec.job(job).steps[step].identifier;
        if !matches!(job_status, JobStatus::Running | JobStatus::Paused) {
            return Err(IllegalTransition::new(
                "step",
                name,
                self.jobs[job.index()].steps[step].status,
                update.status,
            ));
        }
        let step_run = &mut self.jobs[job.index()].steps[step];
        step_run.set(name, update.status, now)?;
        if update.exit_code.is_some() {
            step_run.exit_code = update.exit_code;
        }
        if update.message.is_some() {
            step_run.message = update.message;
        }
        Ok(())
    }

    /// A job ended: COMPLETED, FAILED or CANCELED, with an optional message ("timeout", "executor lost").
    /// Steps that had not run become SKIPPED.
    pub fn finish_job(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        status: JobStatus,
        message: Option<String>,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        if !matches!(
            status,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Canceled
        ) {
            return Err(IllegalTransition::new(
                "job",
                &spec.job(job).identifier,
                self.jobs[job.index()].status,
                status,
            ));
        }
        self.set_job(spec, job, status, now)?;
        self.jobs[job.index()].message = message;
        self.refresh(spec, now);
        Ok(())
    }

    /// Records outputs a job's steps published (`jobs.<id>.outputs.<key>`).
    pub fn add_job_outputs(
        &mut self,
        job: JobIdx,
        outputs: impl IntoIterator<Item = (String, String)>,
    ) {
        self.jobs[job.index()].outputs.extend(outputs);
    }

    /// Manual admission of a PAUSED stage was passed: the scheduler starts it next.
    pub fn admit_stage(
        &mut self,
        spec: &PipelineSpec,
        stage: StageIdx,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        let stage_run = &self.stages[stage.index()];
        if stage_run.status != StageStatus::Paused || stage_run.admitted {
            return Err(IllegalTransition::new(
                "stage",
                &spec.stage(stage).identifier,
                stage_run.status,
                StageStatus::Running,
            ));
        }
        self.stages[stage.index()].admitted = true;
        self.set_stage(spec, stage, StageStatus::Running, now)?;
        self.refresh(spec, now);
        Ok(())
    }

    /// Manual admission of a PAUSED stage was refused: the stage and its jobs are CANCELED
    /// (later stages are skipped, as after any cancelled stage, unless `run_always`).
    pub fn refuse_stage(
        &mut self,
        spec: &PipelineSpec,
        stage: StageIdx,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        let stage_run = &self.stages[stage.index()];
        if stage_run.status != StageStatus::Paused || stage_run.admitted {
            return Err(IllegalTransition::new(
                "stage",
                &spec.stage(stage).identifier,
                stage_run.status,
                StageStatus::Canceled,
            ));
        }
        for &job in &spec.stage(stage).jobs {
            if self.jobs[job.index()].status == JobStatus::Init {
                self.set_job(spec, job, JobStatus::Canceled, now)?;
            }
        }
        self.set_stage(spec, stage, StageStatus::Canceled, now)?;
        self.stages[stage.index()].message = Some("manual start refused".to_owned());
        self.refresh(spec, now);
        Ok(())
    }

    /// Retries a FAILED or CANCELED run within the same run (spec §5.3): the chosen jobs (default:
    /// every FAILED or CANCELED job) go back to INIT, with every job downstream of them that did
    /// not complete, and the stages holding them. COMPLETED jobs keep their results.
    /// Returns the jobs that were reset.
    pub fn retry(
        &mut self,
        spec: &PipelineSpec,
        only: Option<&[JobIdx]>,
        now: Timestamp,
    ) -> Result<Vec<JobIdx>, RetryError> {
        if !matches!(self.status, RunStatus::Failed | RunStatus::Canceled) {
            return Err(RetryError::NotRetryable(self.status));
        }
        let retryable =
            |status: JobStatus| matches!(status, JobStatus::Failed | JobStatus::Canceled);
        let roots: Vec<JobIdx> = match only {
            Some(chosen) => {
                for &job in chosen {
                    if !retryable(self.jobs[job.index()].status) {
                        return Err(RetryError::JobNotRetryable(
                            spec.job(job).identifier.clone(),
                        ));
                    }
                }
                chosen.to_vec()
            }
            None => spec
                .job_indices()
                .filter(|job| retryable(self.jobs[job.index()].status))
                .collect(),
        };
        if roots.is_empty() {
            return Err(RetryError::NothingToRetry);
        }
        let mut reset = super::scheduler::downstream_of(spec, &roots);
        reset.retain(|job| {
            let status = self.jobs[job.index()].status;
            roots.contains(job)
                || matches!(
                    status,
                    JobStatus::Skipped | JobStatus::Canceled | JobStatus::Failed
                )
        });
        for &job in &reset {
            self.jobs[job.index()]
                .set(&spec.job(job).identifier, JobStatus::Init, now)
                .expect("only FAILED, CANCELED and SKIPPED jobs are reset, and those may return to INIT");
        }
        for stage in spec.stage_indices() {
            let touched = spec.stage(stage).jobs.iter().any(|job| reset.contains(job));
            let stage_run = &mut self.stages[stage.index()];
            let was_skipped = matches!(
                stage_run.status,
                StageStatus::Skipped | StageStatus::Canceled
            );
            if (touched || was_skipped)
                && stage_run.status != StageStatus::Init
                && stage_run.status != StageStatus::Unselected
            {
                let admitted = stage_run.admitted;
                stage_run
                    .set(&spec.stage(stage).identifier, StageStatus::Init, now)
                    .expect("final stages may return to INIT");
                // A manual admission already passed stays passed.
                stage_run.admitted = admitted;
            }
        }
        // Stages skipped or cancelled only because of what is now being retried run again too;
        // their jobs, if skipped or cancelled, go back to INIT with them.
        for stage in spec.stage_indices() {
            if self.stages[stage.index()].status == StageStatus::Init {
                for &job in &spec.stage(stage).jobs {
                    let job_run = &mut self.jobs[job.index()];
                    if matches!(job_run.status, JobStatus::Skipped | JobStatus::Canceled) {
                        job_run
                            .set(&spec.job(job).identifier, JobStatus::Init, now)
                            .expect("skipped jobs may return to INIT");
                        if !reset.contains(&job) {
                            reset.push(job);
                        }
                    }
                }
            }
        }
        self.cancel_requested = false;
        self.set_run(RunStatus::Running, now)
            .expect("FAILED/CANCELED → RUNNING is the retry transition");
        self.finished_at = None;
        reset.sort();
        Ok(reset)
    }

    // ---- used by the scheduler's `apply` ----

    pub(crate) fn set_stage(
        &mut self,
        spec: &PipelineSpec,
        stage: StageIdx,
        to: StageStatus,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.stages[stage.index()].set(&spec.stage(stage).identifier, to, now)
    }

    pub(crate) fn set_stage_skipped(
        &mut self,
        spec: &PipelineSpec,
        stage: StageIdx,
        reason: SkipReason,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_stage(spec, stage, StageStatus::Skipped, now)?;
        self.stages[stage.index()].message = Some(reason.message());
        self.stages[stage.index()].skip_reason = Some(reason);
        for &job in &spec.stage(stage).jobs {
            if self.jobs[job.index()].status == JobStatus::Init {
                self.set_job_skipped(spec, job, SkipReason::StageSkipped, now)?;
            }
        }
        Ok(())
    }

    pub(crate) fn set_job(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        to: JobStatus,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.jobs[job.index()].set(&spec.job(job).identifier, to, now)
    }

    pub(crate) fn set_job_skipped(
        &mut self,
        spec: &PipelineSpec,
        job: JobIdx,
        reason: SkipReason,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_job(spec, job, JobStatus::Skipped, now)?;
        let job_run = &mut self.jobs[job.index()];
        job_run.message = Some(reason.message());
        job_run.skip_reason = Some(reason);
        Ok(())
    }

    pub(crate) fn set_stage_message(&mut self, stage: StageIdx, message: String) {
        self.stages[stage.index()].message = Some(message);
    }

    pub(crate) fn finish_run(
        &mut self,
        to: RunStatus,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.set_run(to, now)?;
        self.finished_at = Some(now);
        Ok(())
    }

    fn set_run(&mut self, to: RunStatus, now: Timestamp) -> Result<(), IllegalTransition> {
        if self.status == to {
            return Ok(());
        }
        if !transition::run_allows(self.status, to) {
            return Err(IllegalTransition::new("run", "run", self.status, to));
        }
        // pause_time accumulates time spent PAUSED.
        if self.status == RunStatus::Paused
            && let Some(since) = self.paused_since.take()
        {
            self.pause_total += now.since(since);
        }
        if to == RunStatus::Paused {
            self.paused_since = Some(now);
        }
        self.status = to;
        Ok(())
    }

    /// Derives RUNNING/PAUSED of active stages and of the run from their jobs: PAUSED when
    /// something waits on a person or a timer and nothing is running or queued. A stage waiting
    /// for manual admission stays PAUSED until admitted.
    pub(crate) fn refresh(&mut self, spec: &PipelineSpec, now: Timestamp) {
        if self.status.is_final() || matches!(self.status, RunStatus::Init | RunStatus::Queued) {
            return;
        }
        for stage in spec.stage_indices() {
            let stage_run = &self.stages[stage.index()];
            if !matches!(stage_run.status, StageStatus::Running | StageStatus::Paused) {
                continue;
            }
            if spec.stage(stage).admission == Admission::Manual && !stage_run.admitted {
                continue;
            }
            let jobs = &spec.stage(stage).jobs;
            let any_active = jobs.iter().any(|job| {
                matches!(
                    self.jobs[job.index()].status,
                    JobStatus::Running | JobStatus::Queued
                )
            });
            let any_paused = jobs
                .iter()
                .any(|job| self.jobs[job.index()].status == JobStatus::Paused);
            let to = if any_paused && !any_active {
                StageStatus::Paused
            } else {
                StageStatus::Running
            };
            self.set_stage(spec, stage, to, now)
                .expect("RUNNING ↔ PAUSED is always allowed for an active stage");
        }
        let any_running = self
            .stages
            .iter()
            .any(|stage| stage.status == StageStatus::Running);
        let any_paused = self
            .stages
            .iter()
            .any(|stage| stage.status == StageStatus::Paused);
        let to = if any_paused && !any_running {
            RunStatus::Paused
        } else {
            RunStatus::Running
        };
        self.set_run(to, now)
            .expect("RUNNING ↔ PAUSED is always allowed for an active run");
    }
}

/// A step status change reported by an executor or the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpdate {
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
}

impl StepUpdate {
    pub fn status(status: StepStatus) -> Self {
        Self {
            status,
            exit_code: None,
            message: None,
        }
    }
}

/// Outputs keyed by name, as published by a job's steps.
pub type Outputs = BTreeMap<String, String>;
