//! Run wire types (spec §5.1–§5.6, §13) and their conversion from store records.

use super::{TimeFilter, datetime_text, lenient_i64, millis, opt_millis};
use runnel_store::{
    JobRunRecord, RunRecord, RunSummary, StageRunRecord, StageStatusItem, StepRunRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `RunPipelineDTO` (§5.1); an empty body runs with the defaults.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct RunBody {
    #[serde(default)]
    pub(crate) sources: Option<Vec<RunSource>>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) variables: Option<Vec<RunVariable>>,
    #[serde(default)]
    pub(crate) choose_jobs: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) choose_stages: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) sub_hook: Option<bool>,
}

/// The answer of a run (§5.1). A queued run also carries `error_code` `DEVPIPE.00011169`,
/// `error_msg` and `error` (HTTP 200 all the same).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RunStarted {
    pub(crate) pipeline_run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<QueuedRun>,
}

/// `error` of a queued run's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct QueuedRun {
    pub(crate) pipeline_run_id: String,
    /// What `…/cancel-queuing/{queue_id}` takes (the run id).
    pub(crate) queue_id: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct RunSource {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) params: RunSourceParams,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub(crate) struct RunSourceParams {
    pub(crate) git_type: String,
    pub(crate) git_url: String,
    #[serde(default)]
    pub(crate) alias: Option<String>,
    #[serde(default)]
    pub(crate) codehub_id: Option<String>,
    #[serde(default)]
    pub(crate) default_branch: Option<String>,
    #[serde(default)]
    pub(crate) endpoint_id: Option<String>,
    #[serde(default)]
    pub(crate) build_params: Option<RunBuildParams>,
    #[serde(default)]
    pub(crate) change_request_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub(crate) struct RunBuildParams {
    pub(crate) build_type: String,
    #[serde(default)]
    pub(crate) event_type: Option<String>,
    #[serde(default)]
    pub(crate) target_branch: Option<String>,
    #[serde(default)]
    pub(crate) tag: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct RunVariable {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// `RetryPipelineRequest` (§5.3).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct RetryBody {
    #[serde(default)]
    #[allow(dead_code)]
    // Multi-repo retries are not distinguished yet: every failed job reruns.
    pub(crate) repo_https_url: Option<String>,
    #[serde(default)]
    pub(crate) job_run_ids: Option<Vec<String>>,
}

/// `ListPipelineRunsQuery` (§5.4).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct ListRunsQuery {
    #[serde(default)]
    pub(crate) status: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) start_time: Option<TimeFilter>,
    #[serde(default)]
    pub(crate) end_time: Option<TimeFilter>,
    #[serde(default)]
    pub(crate) update_time: Option<TimeFilter>,
    #[serde(default)]
    pub(crate) trigger_type: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) executor_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) limit: Option<i64>,
    #[serde(default)]
    pub(crate) sort_key: Option<String>,
    #[serde(default)]
    pub(crate) sort_dir: Option<String>,
    #[serde(default)]
    pub(crate) show_job_details: Option<bool>,
    #[serde(default)]
    pub(crate) stage_id: Option<String>,
    /// With `show_job_details`: only runs with a job of this identifier.
    #[serde(default)]
    pub(crate) job_id: Option<String>,
}

/// Query of the run detail (§5.5).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DetailQuery {
    #[serde(default)]
    pub(crate) pipeline_run_id: Option<String>,
    #[serde(default)]
    pub(crate) pipeline_run_number: Option<String>,
}

/// A run-list item (§5.4) and a pipeline's `latest_run` (§4.5) share this shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LatestRun {
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_run_id: String,
    pub(crate) executor_id: String,
    pub(crate) executor_name: String,
    pub(crate) stage_status_list: Vec<StageStatusEntry>,
    pub(crate) status: String,
    pub(crate) run_number: i64,
    pub(crate) trigger_type: String,
    pub(crate) build_params: Value,
    pub(crate) artifact_params: Option<Value>,
    pub(crate) start_time: i64,
    pub(crate) end_time: Option<i64>,
    pub(crate) modify_url: String,
    pub(crate) detail_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StageStatusEntry {
    pub(crate) name: String,
    pub(crate) sequence: i64,
    pub(crate) status: String,
    pub(crate) start_time: Option<String>,
    pub(crate) end_time: Option<String>,
    pub(crate) id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jobs: Option<Vec<JobStatusEntry>>,
}

/// With `show_job_details` (§5.4, inferred shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobStatusEntry {
    pub(crate) id: String,
    pub(crate) identifier: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) start_time: Option<i64>,
    pub(crate) end_time: Option<i64>,
}

impl LatestRun {
    pub(crate) fn from_summary(summary: &RunSummary, detail_url: String, offset: i32) -> Self {
        let run = &summary.run;
        LatestRun {
            pipeline_id: run.pipeline_id.clone(),
            pipeline_run_id: run.id.clone(),
            executor_id: run.executor_id.clone(),
            executor_name: run.executor_name.clone(),
            stage_status_list: summary
                .stages
                .iter()
                .map(|stage| stage_entry(stage, offset))
                .collect(),
            status: run.status.as_str().to_owned(),
            run_number: run.run_number,
            trigger_type: run.trigger_type.clone(),
            build_params: run.build_params.clone(),
            artifact_params: None,
            start_time: millis(run.start_time),
            end_time: opt_millis(run.end_time),
            modify_url: String::new(),
            detail_url,
        }
    }
}

fn stage_entry(stage: &StageStatusItem, offset: i32) -> StageStatusEntry {
    StageStatusEntry {
        name: stage.name.clone(),
        sequence: stage.sequence,
        status: stage.status.as_str().to_owned(),
        start_time: datetime_text(stage.start_time, offset),
        end_time: datetime_text(stage.end_time, offset),
        id: stage.id.clone(),
        jobs: None,
    }
}

pub(crate) fn job_entry(job: &JobRunRecord) -> JobStatusEntry {
    JobStatusEntry {
        id: job.id.clone(),
        identifier: job.identifier.clone(),
        name: job.name.clone(),
        status: job.status.as_str().to_owned(),
        start_time: opt_millis(job.start_time),
        end_time: opt_millis(job.end_time),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunList {
    pub(crate) offset: i64,
    pub(crate) limit: i64,
    pub(crate) total: i64,
    pub(crate) pipeline_runs: Vec<LatestRun>,
}

/// `ShowPipelineRunDetailResponse` (§5.5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunDetailResponse {
    pub(crate) id: String,
    pub(crate) pipeline_id: String,
    pub(crate) manifest_version: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) is_publish: bool,
    pub(crate) executor_id: String,
    pub(crate) executor_name: String,
    pub(crate) status: String,
    pub(crate) trigger_type: String,
    pub(crate) run_number: i64,
    pub(crate) pause_time: i64,
    pub(crate) start_time: i64,
    pub(crate) end_time: Option<i64>,
    pub(crate) stages: Vec<StageRunDto>,
    pub(crate) domain_id: String,
    pub(crate) project_id: String,
    pub(crate) region: String,
    pub(crate) component_id: Option<String>,
    pub(crate) language: String,
    pub(crate) sources: Value,
    pub(crate) artifacts: Vec<PackageInfo>,
    pub(crate) subject_id: String,
    pub(crate) group_id: Option<String>,
    pub(crate) group_name: Option<String>,
    pub(crate) detail_url: String,
    pub(crate) current_system_time: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StageRunDto {
    pub(crate) id: String,
    pub(crate) category: Option<String>,
    pub(crate) name: String,
    pub(crate) identifier: String,
    pub(crate) run_always: bool,
    pub(crate) parallel: Option<String>,
    pub(crate) is_select: bool,
    pub(crate) sequence: i64,
    pub(crate) depends_on: Vec<String>,
    pub(crate) condition: Option<String>,
    pub(crate) status: String,
    pub(crate) start_time: Option<i64>,
    pub(crate) end_time: Option<i64>,
    pub(crate) pause_time: i64,
    pub(crate) pre: Vec<StepRunDto>,
    pub(crate) post: Vec<StepRunDto>,
    pub(crate) jobs: Vec<JobRunDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobRunDto {
    pub(crate) id: String,
    pub(crate) category: Option<String>,
    pub(crate) sequence: i64,
    #[serde(rename = "async")]
    pub(crate) is_async: String,
    pub(crate) name: String,
    pub(crate) identifier: String,
    pub(crate) depends_on: Vec<String>,
    pub(crate) condition: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) is_select: bool,
    pub(crate) timeout: Option<String>,
    pub(crate) last_dispatch_id: Option<String>,
    pub(crate) status: String,
    pub(crate) message: Option<String>,
    pub(crate) start_time: Option<i64>,
    pub(crate) end_time: Option<i64>,
    pub(crate) steps: Vec<StepRunDto>,
    pub(crate) exec_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StepRunDto {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) task: String,
    pub(crate) business_type: Option<String>,
    pub(crate) inputs: Value,
    pub(crate) sequence: i64,
    pub(crate) official_task_version: Option<String>,
    pub(crate) identifier: String,
    pub(crate) multi_step_editable: i64,
    pub(crate) endpoint_ids: Vec<String>,
    pub(crate) last_dispatch_id: Option<String>,
    pub(crate) status: String,
    pub(crate) message: Option<String>,
    pub(crate) start_time: Option<i64>,
    pub(crate) end_time: Option<i64>,
    pub(crate) daily_build_number: Option<String>,
}

/// `PackageInfo` (§13): camelCase keys on purpose.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PackageInfo {
    pub(crate) name: String,
    #[serde(rename = "packageType")]
    pub(crate) package_type: String,
    pub(crate) version: String,
    #[serde(rename = "downloadUrl")]
    pub(crate) download_url: String,
}

pub(crate) fn stage_dto(stage: &StageRunRecord) -> StageRunDto {
    StageRunDto {
        id: stage.id.clone(),
        category: stage.category.clone(),
        name: stage.name.clone(),
        identifier: stage.identifier.clone(),
        run_always: stage.run_always,
        parallel: stage.parallel.clone(),
        is_select: stage.is_select,
        sequence: stage.sequence,
        depends_on: stage.depends_on.clone(),
        condition: stage.condition.clone(),
        status: stage.status.as_str().to_owned(),
        start_time: opt_millis(stage.start_time),
        end_time: opt_millis(stage.end_time),
        pause_time: stage.pause_time,
        pre: stage.pre.iter().map(step_dto).collect(),
        post: stage.post.iter().map(step_dto).collect(),
        jobs: stage.jobs.iter().map(job_dto).collect(),
    }
}

fn job_dto(job: &JobRunRecord) -> JobRunDto {
    JobRunDto {
        id: job.id.clone(),
        category: job.category.clone(),
        sequence: job.sequence,
        is_async: job.is_async.to_string(),
        name: job.name.clone(),
        identifier: job.identifier.clone(),
        depends_on: job.depends_on.clone(),
        condition: job.condition.clone(),
        resource: job.resource.clone(),
        is_select: job.is_select,
        timeout: job.timeout.clone(),
        last_dispatch_id: job.last_dispatch_id.clone(),
        status: job.status.as_str().to_owned(),
        message: job.message.clone(),
        start_time: opt_millis(job.start_time),
        end_time: opt_millis(job.end_time),
        steps: job.steps.iter().map(step_dto).collect(),
        exec_id: job.exec_id.clone(),
    }
}

fn step_dto(step: &StepRunRecord) -> StepRunDto {
    StepRunDto {
        id: step.id.clone(),
        name: step.name.clone(),
        task: step.task.clone(),
        business_type: step.business_type.clone(),
        inputs: step.inputs.clone(),
        sequence: step.sequence,
        official_task_version: step.official_task_version.clone(),
        identifier: step.identifier.clone(),
        multi_step_editable: step.multi_step_editable,
        endpoint_ids: step.endpoint_ids.clone(),
        last_dispatch_id: step.last_dispatch_id.clone(),
        status: step.status.as_str().to_owned(),
        message: step.message.clone(),
        start_time: opt_millis(step.start_time),
        end_time: opt_millis(step.end_time),
        daily_build_number: step.daily_build_number.clone(),
    }
}

/// Paused milliseconds including a pause still going on.
pub(crate) fn pause_time(run: &RunRecord, now: runnel_domain::Timestamp) -> i64 {
    let ongoing = run
        .paused_since
        .map_or(0, |since| (now.as_millis() - since.as_millis()).max(0));
    run.pause_time + ongoing
}

/// `LogQuery` (§5.6): `limit` (lines) and `sort` are required.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct LogQuery {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) start_offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) end_offset: Option<i64>,
    #[serde(deserialize_with = "required_i64")]
    pub(crate) limit: i64,
    pub(crate) sort: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    #[allow(dead_code)] // Jenkins-backed logs only (spec §5.6).
    pub(crate) offset: Option<i64>,
    #[serde(default)]
    pub(crate) level: Option<String>,
}

fn required_i64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    lenient_i64(deserializer)?.ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

/// `ShowPipelineLogResponse` (§5.6): offsets are strings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LogResponse {
    pub(crate) has_more: bool,
    pub(crate) start_offset: String,
    pub(crate) end_offset: String,
    pub(crate) log: String,
    pub(crate) step_run_id: String,
}
