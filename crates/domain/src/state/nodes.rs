//! Stage, job and step runs: their fields and their checked transitions.

use super::transition::{IllegalTransition, job_allows, stage_allows, step_allows};
use crate::Timestamp;
use crate::status::{JobStatus, StageStatus, StepStatus};
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a stage or job was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A prerequisite failed or was cancelled (or was itself skipped for that reason).
    UpstreamFailed,
    /// Its condition evaluated to false.
    ConditionFalse,
    /// Its condition could not be evaluated; the message says why.
    ConditionError(String),
    /// Its stage was skipped.
    StageSkipped,
}

impl SkipReason {
    pub fn message(&self) -> String {
        match self {
            SkipReason::UpstreamFailed => "skipped: an upstream stage or job failed".to_owned(),
            SkipReason::ConditionFalse => "skipped: condition is false".to_owned(),
            SkipReason::ConditionError(error) => {
                format!("skipped: condition could not be evaluated: {error}")
            }
            SkipReason::StageSkipped => "skipped: its stage was skipped".to_owned(),
        }
    }
}

/// A stage of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRun {
    pub(super) status: StageStatus,
    pub(super) is_selected: bool,
    pub(super) started_at: Option<Timestamp>,
    pub(super) finished_at: Option<Timestamp>,
    pub(super) skip_reason: Option<SkipReason>,
    /// Manual admission passed (only meaningful for stages with `Admission::Manual`).
    pub(super) admitted: bool,
    pub(super) message: Option<String>,
}

impl StageRun {
    pub(super) fn new(is_selected: bool) -> Self {
        Self {
            status: if is_selected {
                StageStatus::Init
            } else {
                StageStatus::Unselected
            },
            is_selected,
            started_at: None,
            finished_at: None,
            skip_reason: None,
            admitted: false,
            message: None,
        }
    }
    pub fn status(&self) -> StageStatus {
        self.status
    }
    pub fn is_selected(&self) -> bool {
        self.is_selected
    }
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        self.skip_reason.as_ref()
    }
    pub fn is_admitted(&self) -> bool {
        self.admitted
    }
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub(super) fn set(
        &mut self,
        name: &str,
        to: StageStatus,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        if self.status == to {
            return Ok(());
        }
        if !stage_allows(self.status, to) {
            return Err(IllegalTransition::new("stage", name, self.status, to));
        }
        if to == StageStatus::Init {
            self.started_at = None;
            self.finished_at = None;
            self.skip_reason = None;
            self.message = None;
        } else {
            if matches!(to, StageStatus::Running | StageStatus::Paused) && self.started_at.is_none()
            {
                self.started_at = Some(now);
            }
            if to.is_final() {
                self.finished_at = Some(now);
            }
        }
        self.status = to;
        Ok(())
    }
}

/// A job of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    pub(super) status: JobStatus,
    pub(super) is_selected: bool,
    /// 1 for the first dispatch; incremented by every re-dispatch and retry.
    pub(super) attempt: u32,
    pub(super) started_at: Option<Timestamp>,
    pub(super) finished_at: Option<Timestamp>,
    pub(super) skip_reason: Option<SkipReason>,
    pub(super) message: Option<String>,
    pub(super) steps: Vec<StepRun>,
    pub(super) outputs: BTreeMap<String, String>,
}

impl JobRun {
    pub(super) fn new(is_selected: bool, step_count: usize) -> Self {
        Self {
            status: if is_selected {
                JobStatus::Init
            } else {
                JobStatus::Unselected
            },
            is_selected,
            attempt: 0,
            started_at: None,
            finished_at: None,
            skip_reason: None,
            message: None,
            steps: vec![StepRun::default(); step_count],
            outputs: BTreeMap::new(),
        }
    }
    pub fn status(&self) -> JobStatus {
        self.status
    }
    pub fn is_selected(&self) -> bool {
        self.is_selected
    }
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        self.skip_reason.as_ref()
    }
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    pub fn steps(&self) -> &[StepRun] {
        &self.steps
    }
    pub fn outputs(&self) -> &BTreeMap<String, String> {
        &self.outputs
    }
    /// When a RUNNING job must be over, given its timeout.
    pub fn deadline(&self, timeout: Duration) -> Option<Timestamp> {
        match self.status {
            JobStatus::Running | JobStatus::Paused => {
                self.started_at.map(|started| started + timeout)
            }
            _ => None,
        }
    }

    pub(super) fn set(
        &mut self,
        name: &str,
        to: JobStatus,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        if self.status == to {
            return Ok(());
        }
        if !job_allows(self.status, to) {
            return Err(IllegalTransition::new("job", name, self.status, to));
        }
        match to {
            JobStatus::Init => {
                self.started_at = None;
                self.finished_at = None;
                self.skip_reason = None;
                self.message = None;
                self.outputs.clear();
                for step in &mut self.steps {
                    step.reset();
                }
            }
            JobStatus::Queued => {
                // A re-dispatch starts the job over on a new executor.
                if self.status == JobStatus::Running {
                    self.started_at = None;
                    for step in &mut self.steps {
                        step.reset();
                    }
                }
                self.attempt += 1;
            }
            JobStatus::Running if self.started_at.is_none() => self.started_at = Some(now),
            _ => {}
        }
        if to.is_final() {
            self.finished_at = Some(now);
            for step in &mut self.steps {
                step.close(to, now);
            }
        }
        self.status = to;
        Ok(())
    }
}

/// A step of a job run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepRun {
    pub(super) status: StepStatus,
    pub(super) started_at: Option<Timestamp>,
    pub(super) finished_at: Option<Timestamp>,
    pub(super) exit_code: Option<i32>,
    pub(super) message: Option<String>,
}

impl StepRun {
    pub fn status(&self) -> StepStatus {
        self.status
    }
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub(super) fn set(
        &mut self,
        name: &str,
        to: StepStatus,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        if self.status == to {
            return Ok(());
        }
        if !step_allows(self.status, to) {
            return Err(IllegalTransition::new("step", name, self.status, to));
        }
        if to == StepStatus::Running && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if to.is_final() {
            self.finished_at = Some(now);
        }
        self.status = to;
        Ok(())
    }

    fn reset(&mut self) {
        *self = StepRun::default();
    }

    /// When its job ends: steps still waiting are skipped, a step caught running ends with the job.
    fn close(&mut self, job_status: JobStatus, now: Timestamp) {
        let to = match (self.status, job_status) {
            (StepStatus::Init, _) => StepStatus::Skipped,
            (StepStatus::Running | StepStatus::Paused, JobStatus::Canceled) => StepStatus::Canceled,
            (StepStatus::Running | StepStatus::Paused, JobStatus::Completed) => {
                StepStatus::Completed
            }
            (StepStatus::Running | StepStatus::Paused, _) => StepStatus::Failed,
            (status, _) => status,
        };
        if to != self.status {
            self.status = to;
            self.finished_at = Some(now);
        }
    }
}
