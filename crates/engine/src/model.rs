//! Between the store's rows and the domain's state: a stored run becomes a `RunState` (with
//! the row ids of its stages, jobs and steps), and the difference between two states becomes
//! the `RunProgress` the store writes in one transaction.

use crate::config::EngineError;
use runnel_domain::Timestamp;
use runnel_domain::spec::{Admission, ExecKind, JobIdx, PipelineSpec, StageIdx};
use runnel_domain::state::{
    JobSnapshot, RunSnapshot, RunState, SkipReason, StageSnapshot, StepSnapshot,
};
use runnel_domain::status::{JobStatus, RunStatus, StepStatus};
use runnel_store::{JobUpdate, RunDetail, RunProgress, RunUpdate, StageUpdate, StepUpdateRow};
use std::collections::BTreeMap;
use std::time::Duration;

/// Row ids of a run's parts, parallel to the spec.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunIds {
    pub(crate) stages: Vec<String>,
    pub(crate) jobs: Vec<String>,
    pub(crate) steps: Vec<Vec<String>>,
    /// Stage admission gate step runs (`pre`), per stage.
    pub(crate) pre_steps: Vec<Vec<String>>,
}

impl RunIds {
    pub(crate) fn job_by_id(&self, spec: &PipelineSpec, job_run_id: &str) -> Option<JobIdx> {
        spec.job_at(self.jobs.iter().position(|id| id == job_run_id)?)
    }

    /// The job and step position of a job step run.
    pub(crate) fn step_by_id(
        &self,
        spec: &PipelineSpec,
        step_run_id: &str,
    ) -> Option<(JobIdx, usize)> {
        self.steps.iter().enumerate().find_map(|(job, steps)| {
            let step = steps.iter().position(|id| id == step_run_id)?;
            Some((spec.job_at(job)?, step))
        })
    }

    /// The stage of an admission gate step run.
    pub(crate) fn stage_by_gate(&self, spec: &PipelineSpec, step_run_id: &str) -> Option<StageIdx> {
        spec.stage_at(
            self.pre_steps
                .iter()
                .position(|steps| steps.iter().any(|id| id == step_run_id))?,
        )
    }
}

/// Reads a stored run into the domain's state and the row ids.
pub(crate) fn load(
    spec: &PipelineSpec,
    detail: &RunDetail,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(RunState, RunIds), EngineError> {
    let corrupt = |what: String| {
        EngineError::BadDefinition(format!(
            "run {} does not match its pipeline: {what}",
            detail.run.id
        ))
    };
    let mut stages: Vec<Option<StageSnapshot>> = vec![None; spec.stages().len()];
    let mut jobs: Vec<Option<JobSnapshot>> = vec![None; spec.jobs().len()];
    let mut ids = RunIds {
        stages: vec![String::new(); spec.stages().len()],
        jobs: vec![String::new(); spec.jobs().len()],
        steps: spec
            .jobs()
            .iter()
            .map(|job| vec![String::new(); job.steps.len()])
            .collect(),
        pre_steps: vec![Vec::new(); spec.stages().len()],
    };
    for stage_record in &detail.stages {
        let stage = spec
            .stage_by_identifier(&stage_record.identifier)
            .ok_or_else(|| corrupt(format!("unknown stage {}", stage_record.identifier)))?;
        ids.stages[stage.index()] = stage_record.id.clone();
        ids.pre_steps[stage.index()] = stage_record
            .pre
            .iter()
            .map(|step| step.id.clone())
            .collect();
        stages[stage.index()] = Some(StageSnapshot {
            status: stage_record.status,
            is_selected: stage_record.is_select,
            started_at: stage_record.start_time,
            finished_at: stage_record.end_time,
            skip_reason: skip_reason_of(stage_record.message.as_deref()),
            admitted: stage_record.is_admitted,
            message: stage_record.message.clone(),
        });
        for job_record in &stage_record.jobs {
            let index = usize::try_from(job_record.job_index)
                .map_err(|_| corrupt("negative job index".into()))?;
            let job_spec = spec
                .jobs()
                .get(index)
                .ok_or_else(|| corrupt(format!("job index {index}")))?;
            ids.jobs[index] = job_record.id.clone();
            let mut steps = vec![StepSnapshot::default(); job_spec.steps.len()];
            for step_record in &job_record.steps {
                let position = job_spec
                    .steps
                    .iter()
                    .position(|step| step.identifier == step_record.identifier)
                    .ok_or_else(|| corrupt(format!("unknown step {}", step_record.identifier)))?;
                ids.steps[index][position] = step_record.id.clone();
                steps[position] = StepSnapshot {
                    status: step_record.status,
                    started_at: step_record.start_time,
                    finished_at: step_record.end_time,
                    exit_code: step_record
                        .exit_code
                        .and_then(|code| i32::try_from(code).ok()),
                    message: step_record.message.clone(),
                };
            }
            let job_outputs = outputs.get(&job_record.id).cloned().unwrap_or_default();
            jobs[index] = Some(JobSnapshot {
                status: job_record.status,
                is_selected: job_record.is_select,
                attempt: u32::try_from(job_record.attempt).unwrap_or(0),
                started_at: job_record.start_time,
                finished_at: job_record.end_time,
                skip_reason: skip_reason_of(job_record.message.as_deref()),
                message: job_record.message.clone(),
                outputs: job_outputs,
                steps,
            });
        }
    }
    let run = &detail.run;
    let is_started = !matches!(run.status, RunStatus::Init | RunStatus::Queued);
    let snapshot = RunSnapshot {
        status: run.status,
        cancel_requested: run.is_cancel_requested,
        started_at: is_started.then_some(run.start_time),
        finished_at: run.end_time,
        paused_since: run.paused_since,
        pause_total: Duration::from_millis(u64::try_from(run.pause_time).unwrap_or(0)),
        stages: stages
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("a stage run is missing".into()))?,
        jobs: jobs
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("a job run is missing".into()))?,
    };
    let state = RunState::restore(spec, snapshot).map_err(|err| corrupt(err.to_string()))?;
    Ok((state, ids))
}

/// Skip reasons travel in the stored message (their texts are distinct and stable).
fn skip_reason_of(message: Option<&str>) -> Option<SkipReason> {
    let message = message?;
    [
        SkipReason::UpstreamFailed,
        SkipReason::ConditionFalse,
        SkipReason::StageSkipped,
    ]
    .into_iter()
    .find(|reason| reason.message() == message)
    .or_else(|| {
        message
            .strip_prefix("skipped: condition could not be evaluated: ")
            .map(|error| SkipReason::ConditionError(error.to_owned()))
    })
}

/// Who moves a job between two states: the engine writes only what it decided itself. Queue
/// transitions (QUEUED → RUNNING → final for executor jobs) are written by the queue's own
/// statements, and a stop ends queued or leased attempts through `JobQueue::cancel_job`.
fn engine_owns(spec: &PipelineSpec, job: JobIdx, before: JobStatus, after: JobStatus) -> bool {
    if spec.job(job).exec == ExecKind::Agentless {
        return true;
    }
    matches!(
        (before, after),
        (JobStatus::Init, _)
            | (
                JobStatus::Failed | JobStatus::Canceled | JobStatus::Skipped,
                JobStatus::Init
            )
    )
}

/// The rows that differ between `before` and `after`, as one `RunProgress`.
pub(crate) fn diff(
    spec: &PipelineSpec,
    ids: &RunIds,
    run_id: &str,
    expected_version: i64,
    before: &RunSnapshot,
    after: &RunSnapshot,
    now: Timestamp,
) -> RunProgress {
    let mut progress = RunProgress {
        run_id: run_id.to_owned(),
        expected_version,
        now,
        ..RunProgress::default()
    };
    let run_changed = before.status != after.status
        || before.cancel_requested != after.cancel_requested
        || before.started_at != after.started_at
        || before.finished_at != after.finished_at
        || before.paused_since != after.paused_since
        || before.pause_total != after.pause_total;
    if run_changed {
        progress.run = Some(RunUpdate {
            status: after.status,
            start_time: after.started_at,
            end_time: after.finished_at,
            pause_time: i64::try_from(after.pause_total.as_millis()).unwrap_or(i64::MAX),
            paused_since: after.paused_since,
            is_cancel_requested: after.cancel_requested,
        });
    }
    for (stage, (old, new)) in spec
        .stage_indices()
        .zip(before.stages.iter().zip(&after.stages))
    {
        let index = stage.index();
        let (old_gate, new_gate) = (gate_status(spec, stage, old), gate_status(spec, stage, new));
        if old_gate != new_gate {
            for gate_id in &ids.pre_steps[index] {
                progress.steps.push(StepUpdateRow {
                    id: gate_id.clone(),
                    status: new_gate,
                    message: None,
                    exit_code: None,
                    start_time: new.started_at,
                    end_time: new_gate.is_final().then_some(now),
                });
            }
        }
        if old != new {
            progress.stages.push(StageUpdate {
                id: ids.stages[index].clone(),
                status: new.status,
                message: new.message.clone(),
                is_admitted: new.admitted,
                start_time: new.started_at,
                end_time: new.finished_at,
                pause_time: 0,
            });
        }
    }
    for (job, (old, new)) in spec.job_indices().zip(before.jobs.iter().zip(&after.jobs)) {
        let index = job.index();
        if old.status == new.status
            && old.message == new.message
            && spec.job(job).exec != ExecKind::Agentless
        {
            continue;
        }
        if !engine_owns(spec, job, old.status, new.status) {
            continue;
        }
        if old.status != new.status
            || old.message != new.message
            || old.started_at != new.started_at
        {
            progress.jobs.push(JobUpdate {
                id: ids.jobs[index].clone(),
                status: new.status,
                message: new.message.clone(),
                start_time: new.started_at,
                end_time: new.finished_at,
            });
        }
        for (position, (old_step, new_step)) in old.steps.iter().zip(&new.steps).enumerate() {
            if old_step != new_step {
                progress.steps.push(StepUpdateRow {
                    id: ids.steps[index][position].clone(),
                    status: new_step.status,
                    message: new_step.message.clone(),
                    exit_code: new_step.exit_code.map(i64::from),
                    start_time: new_step.started_at,
                    end_time: new_step.finished_at,
                });
            }
        }
    }
    progress
}

/// The status of a stage's admission gate steps, derived from the stage: waiting (PAUSED) for
/// a manual start, COMPLETED once the stage was entered, CANCELED or SKIPPED with it.
fn gate_status(spec: &PipelineSpec, stage: StageIdx, snapshot: &StageSnapshot) -> StepStatus {
    let manual = spec.stage(stage).admission == Admission::Manual;
    match snapshot.status {
        JobStatus::Init | JobStatus::Unselected => StepStatus::Init,
        JobStatus::Skipped => StepStatus::Skipped,
        JobStatus::Paused | JobStatus::Canceled if manual && !snapshot.admitted => {
            if snapshot.status == JobStatus::Paused {
                StepStatus::Paused
            } else {
                StepStatus::Canceled
            }
        }
        JobStatus::Failed if snapshot.started_at.is_none() => StepStatus::Failed,
        _ => StepStatus::Completed,
    }
}

/// Whether the progress writes anything besides bumping the version.
pub(crate) fn is_empty(progress: &RunProgress) -> bool {
    progress.run.is_none()
        && progress.stages.is_empty()
        && progress.jobs.is_empty()
        && progress.steps.is_empty()
        && progress.enqueue.is_empty()
}
