//! Run actions (spec §5.2, §5.3, §5.9–§5.11): stop, retry, manual review pass/refuse, manual
//! stage start pass/refuse, delay actions. Permission checks here; state checks and the
//! approver check are the engine's, its errors mapped in `error.rs`.

use crate::AppState;
use crate::authz::{Action, Member, is_valid_id};
use crate::dto::run::RetryBody;
use crate::dto::{GatePath, RunPath, SUCCESS, StepPath, Success, lenient_i64};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_domain::status::RunStatus;
use runnel_engine::DelayAction;
use runnel_store::{RunDetail, RunRecord, RunStore, StepPlacement};
use serde::Deserialize;

/// `POST …/pipeline-runs/{pipeline_run_id}/stop` (§5.2).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/stop", tag = "Run actions",
    responses((status = 200, description = "Stopped", body = Success)))]
pub(crate) async fn stop(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<RunPath>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Execute)?;
    let run = run_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    state
        .api
        .engine
        .stop(&run.id, &member.actor())
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Run))?;
    Ok(Json(SUCCESS))
}

/// `PUT …/pipeline-runs/{pipeline_run_id}/retry` (§5.3): the run's failed or cancelled jobs
/// (or `job_run_ids`) run again within the same run.
#[utoipa::path(put, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/retry", tag = "Run actions", request_body = RetryBody,
    responses((status = 200, description = "Retrying", body = Success)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<RunPath>,
    JsonBody(body): JsonBody<RetryBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Execute)?;
    let run = run_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let job_run_ids = body.job_run_ids.unwrap_or_default();
    if !job_run_ids.iter().all(|id| is_valid_id(id)) {
        return Err(ApiError::NotFound(Missing::Step));
    }
    state
        .api
        .engine
        .retry(&run.id, &job_run_ids)
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Step))?;
    Ok(Json(SUCCESS))
}

/// `?approval_description=`: the review comment (§5.9).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReviewQuery {
    #[serde(default)]
    approval_description: Option<String>,
}

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/pass` (§5.9).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/pass", tag = "Run actions", params(ReviewQuery),
    responses((status = 200, description = "Passed", body = Success)))]
pub(crate) async fn review_pass(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
    QueryParams(query): QueryParams<ReviewQuery>,
) -> Result<Json<Success>, ApiError> {
    review(&state, &member, &path, query, true).await
}

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/refuse` (§5.9).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/refuse", tag = "Run actions", params(ReviewQuery),
    responses((status = 200, description = "Refused", body = Success)))]
pub(crate) async fn review_refuse(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
    QueryParams(query): QueryParams<ReviewQuery>,
) -> Result<Json<Success>, ApiError> {
    review(&state, &member, &path, query, false).await
}

async fn review(
    state: &AppState,
    member: &Member,
    path: &StepPath,
    query: ReviewQuery,
    pass: bool,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Review)?;
    let comment = query.approval_description.unwrap_or_default();
    if comment.chars().count() > 1024 {
        return Err(ApiError::invalid(
            "approval_description",
            "may have at most 1024 characters",
        ));
    }
    let detail = run_detail_of(state, member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let run = &detail.run;
    let step_run_id = job_step(&detail, &path.job_run_id, &path.step_run_id)?;
    state
        .api
        .engine
        .review(&run.id, &step_run_id, &member.actor(), pass, &comment)
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Step))?;
    Ok(Json(SUCCESS))
}

/// Optional body of `…/delay`: how many seconds to extend the wait by (inferred; default 1 h).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct DelayBody {
    /// Seconds, from 1 to 604800 (default 3600).
    #[serde(default, deserialize_with = "lenient_i64")]
    #[schema(value_type = Option<i64>)]
    delay_time: Option<i64>,
}

/// The longest single extension of a delay step: seven days.
const MAX_DELAY_SECONDS: i64 = 7 * 24 * 3600;

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/delay` (§5.11).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/delay", tag = "Run actions", request_body = DelayBody,
    responses((status = 200, description = "The wait was extended", body = Success)))]
pub(crate) async fn delay(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
    JsonBody(body): JsonBody<DelayBody>,
) -> Result<Json<Success>, ApiError> {
    let seconds = body.delay_time.unwrap_or(3600);
    let seconds = u64::try_from(seconds)
        .ok()
        .filter(|seconds| (1..=MAX_DELAY_SECONDS.unsigned_abs()).contains(seconds))
        .ok_or_else(|| ApiError::invalid("delay_time", "must be from 1 to 604800 seconds"))?;
    delay_step(&state, &member, &path, DelayAction::Extend { seconds }).await
}

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/delay-pass` (§5.11).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/delay-pass", tag = "Run actions",
    responses((status = 200, description = "The delay ended; the run goes on", body = Success)))]
pub(crate) async fn delay_pass(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
) -> Result<Json<Success>, ApiError> {
    delay_step(&state, &member, &path, DelayAction::Pass).await
}

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/delay-refuse` (§5.11).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/delay-refuse", tag = "Run actions",
    responses((status = 200, description = "The delay ended; the step failed", body = Success)))]
pub(crate) async fn delay_refuse(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
) -> Result<Json<Success>, ApiError> {
    delay_step(&state, &member, &path, DelayAction::Refuse).await
}

async fn delay_step(
    state: &AppState,
    member: &Member,
    path: &StepPath,
    action: DelayAction,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Execute)?;
    let detail = run_detail_of(state, member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let run = &detail.run;
    let step_run_id = job_step(&detail, &path.job_run_id, &path.step_run_id)?;
    state
        .api
        .engine
        .delay(&run.id, &step_run_id, &member.actor(), action)
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Step))?;
    Ok(Json(SUCCESS))
}

/// `POST …/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}/manual/pass` (§5.10).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}/manual/pass", tag = "Run actions",
    responses((status = 200, description = "The stage starts", body = Success)))]
pub(crate) async fn manual_pass(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<GatePath>,
) -> Result<Json<Success>, ApiError> {
    admission(&state, &member, &path, true).await
}

/// `POST …/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}/manual/refuse` (§5.11).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}/manual/refuse", tag = "Run actions",
    responses((status = 200, description = "The stage does not start", body = Success)))]
pub(crate) async fn manual_refuse(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<GatePath>,
) -> Result<Json<Success>, ApiError> {
    admission(&state, &member, &path, false).await
}

async fn admission(
    state: &AppState,
    member: &Member,
    path: &GatePath,
    pass: bool,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Execute)?;
    let detail = run_detail_of(state, member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let run = &detail.run;
    let is_gate = detail
        .stages
        .iter()
        .flat_map(|stage| stage.pre.iter().chain(&stage.post))
        .any(|step| step.id == path.step_run_id && step.placement != StepPlacement::Job);
    if !is_gate {
        return Err(ApiError::NotFound(Missing::Step));
    }
    state
        .api
        .engine
        .admission(&run.id, &path.step_run_id, pass)
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Step))?;
    Ok(Json(SUCCESS))
}

/// The run, when it belongs to the pipeline, which belongs to the member's project.
pub(crate) async fn run_of(
    state: &AppState,
    member: &Member,
    pipeline_id: &str,
    run_id: &str,
) -> Result<RunRecord, ApiError> {
    let pipeline = member.pipeline_head(state, pipeline_id).await?;
    member.run_of_pipeline(state, &pipeline.id, run_id).await
}

/// The run with its stages, jobs and steps, when it belongs to the pipeline, which belongs to
/// the member's project.
pub(crate) async fn run_detail_of(
    state: &AppState,
    member: &Member,
    pipeline_id: &str,
    run_id: &str,
) -> Result<RunDetail, ApiError> {
    let pipeline = member.pipeline_head(state, pipeline_id).await?;
    member.run_detail(state, &pipeline.id, run_id).await
}

pub(crate) async fn detail_of(state: &AppState, run: &RunRecord) -> Result<RunDetail, ApiError> {
    state
        .api
        .store
        .run_detail(&run.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Run))?
        .ok_or(ApiError::NotFound(Missing::Run))
}

/// The step run id when the step belongs to the job run, which belongs to the run.
pub(crate) fn job_step(
    detail: &RunDetail,
    job_run_id: &str,
    step_run_id: &str,
) -> Result<String, ApiError> {
    detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .filter(|job| job.id == job_run_id)
        .flat_map(|job| &job.steps)
        .find(|step| step.id == step_run_id)
        .map(|step| step.id.clone())
        .ok_or(ApiError::NotFound(Missing::Step))
}

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/resume` (§5.11): resumes a step suspended
/// by the pipeline-suspend plugin. Runnel has no such plugin yet, so no step is ever suspended:
/// an existing step answers `DEVPIPE.00011404`.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/resume",
    tag = "Run actions", responses((status = 200, description = "Resumed", body = Success)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Execute)?;
    let detail = run_detail_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    job_step(&detail, &path.job_run_id, &path.step_run_id)?;
    Err(ApiError::NotAllowed(
        "the step is not suspended: nothing to resume".to_owned(),
    ))
}

/// `…/{pipeline_id}/{pipeline_run_id}/cancel-queuing/{queue_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct QueuePath {
    pipeline_id: String,
    pipeline_run_id: String,
    queue_id: String,
}

/// `POST …/{pipeline_run_id}/cancel-queuing/{queue_id}` (§5.11): removes a run waiting for a
/// concurrency slot; it ends CANCELED without having started. The `queue_id` is the one the
/// queued answer of §5.1 gave (the run id). A run that is not waiting answers
/// `DEVPIPE.00011404`; one that leaves the queue between the check and the stop is stopped
/// like `…/stop` would.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/{pipeline_run_id}/cancel-queuing/{queue_id}",
    tag = "Run actions", responses((status = 200, description = "Removed from the queue", body = Success)))]
pub(crate) async fn cancel_queuing(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<QueuePath>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Execute)?;
    let run = run_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    if path.queue_id != run.id {
        return Err(ApiError::NotFound(Missing::Run));
    }
    if run.status != RunStatus::Queued {
        return Err(ApiError::NotAllowed(format!(
            "the run is {}, not waiting in the queue",
            run.status
        )));
    }
    state
        .api
        .engine
        .stop(&run.id, &member.actor())
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Run))?;
    Ok(Json(SUCCESS))
}
