//! v3 run states (spec §3): the legacy `status`/`outcome` vocabulary, `GET …/status` (§3.4)
//! and `GET /v3/pipelines/build-result` (§3.5).
//!
//! Mapping (§3, inferred there): INIT/QUEUED → waiting; RUNNING → running; PAUSED → verifying;
//! SUSPEND → suspending; COMPLETED → completed + success; FAILED → completed + error;
//! CANCELED/IGNORED → completed + aborted. Stages and jobs map alike (SKIPPED and UNSELECTED
//! count as success, as they do in the v5 roll-up).

use super::{BuildQuery, IdPath, pipeline_of};
use crate::AppState;
use crate::auth::Caller;
use crate::authz::Action;
use crate::dto::{TimeFilter, datetime_text, lenient_i64, page};
use crate::error::{ApiError, Missing};
use crate::extract::{PathParams, QueryParams};
use crate::templates::member_of;
use axum::Json;
use axum::extract::State;
use chrono::{FixedOffset, NaiveDate, TimeZone};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, RunStatus};
use runnel_store::{JobRunRecord, LegacyPipelineStore, RunStore, StageRunRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest date range of a build-result query.
const MAX_RANGE_DAYS: i64 = 31;

/// The v5 run statuses a v3 `status` + `outcome` filter selects (empty: no filter). `outcome`
/// narrows the completed runs; without `status` it means "completed with this outcome".
pub(crate) fn run_statuses(
    status: &[String],
    outcome: &[String],
) -> Result<Vec<RunStatus>, ApiError> {
    let mut outcomes: Vec<RunStatus> = Vec::new();
    for value in outcome {
        match value.to_ascii_lowercase().as_str() {
            "success" => outcomes.push(RunStatus::Completed),
            "error" => outcomes.push(RunStatus::Failed),
            "aborted" => outcomes.extend([RunStatus::Canceled, RunStatus::Ignored]),
            _ => {
                return Err(ApiError::invalid(
                    "outcome",
                    "values are success, error and aborted",
                ));
            }
        }
    }
    let finals = || -> Vec<RunStatus> {
        if outcomes.is_empty() {
            vec![
                RunStatus::Completed,
                RunStatus::Failed,
                RunStatus::Canceled,
                RunStatus::Ignored,
            ]
        } else {
            outcomes.clone()
        }
    };
    let mut selected: Vec<RunStatus> = Vec::new();
    if status.is_empty() && !outcomes.is_empty() {
        selected = finals();
    }
    for value in status {
        match value.to_ascii_lowercase().as_str() {
            "waiting" => selected.extend([RunStatus::Init, RunStatus::Queued]),
            "running" | "handling" => selected.push(RunStatus::Running),
            "verifying" => selected.push(RunStatus::Paused),
            "suspending" => selected.push(RunStatus::Suspend),
            "completed" => selected.extend(finals()),
            _ => {
                return Err(ApiError::invalid(
                    "status",
                    "values are waiting, running, verifying, handling, suspending and completed",
                ));
            }
        }
    }
    let mut unique = Vec::new();
    for status in selected {
        if !unique.contains(&status) {
            unique.push(status);
        }
    }
    Ok(unique)
}

/// A run status as v3 `(status, outcome)`; the outcome is empty until the run is final.
pub(crate) fn run_legacy(status: RunStatus) -> (&'static str, &'static str) {
    match status {
        RunStatus::Init | RunStatus::Queued => ("waiting", ""),
        RunStatus::Running => ("running", ""),
        RunStatus::Paused => ("verifying", ""),
        RunStatus::Suspend => ("suspending", ""),
        RunStatus::Completed => ("completed", "success"),
        RunStatus::Failed => ("completed", "error"),
        RunStatus::Canceled | RunStatus::Ignored => ("completed", "aborted"),
    }
}

/// A stage or job status as v3 `(status, outcome)`.
fn job_legacy(status: JobStatus) -> (&'static str, &'static str) {
    match status {
        JobStatus::Init | JobStatus::Queued | JobStatus::Redispatch => ("waiting", ""),
        JobStatus::Running | JobStatus::AsyncRunning => ("running", ""),
        JobStatus::Paused => ("verifying", ""),
        JobStatus::Suspend => ("suspending", ""),
        JobStatus::Completed | JobStatus::Skipped | JobStatus::Unselected => {
            ("completed", "success")
        }
        JobStatus::Failed | JobStatus::AsyncFailed => ("completed", "error"),
        JobStatus::Canceled | JobStatus::Ignored => ("completed", "aborted"),
    }
}

/// `PipelineStateStatus` (§3.4).
#[derive(Debug, Serialize)]
struct StateStatus {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    start_time: String,
    end_time: String,
    elapsed_time: String,
    status: &'static str,
    outcome: &'static str,
    error_code: String,
    error_msg: String,
    children: Vec<StateStatus>,
    detail_url: String,
}

/// `GET /v3/pipelines/{pipeline_id}/status?build_id=` (§3.4): the run (the latest without
/// `build_id`) with its stages, each stage's jobs as children.
#[utoipa::path(get, path = "/v3/pipelines/{pipeline_id}/status", tag = "Pipelines (v3)", params(BuildQuery),
    responses((status = 200, description = "The run with `status`/`outcome` in the v3 vocabulary and its stages and jobs as `states`", body = serde_json::Value)))]
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
    QueryParams(query): QueryParams<BuildQuery>,
) -> Result<Json<Value>, ApiError> {
    let (member, pipeline) = pipeline_of(&state, &caller, &path.pipeline_id, Action::View).await?;
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Run);
    let run = match query.build_id.filter(|id| !id.is_empty()) {
        Some(build_id) => member.run(&state, &pipeline, &build_id).await?,
        None => store
            .latest_run(&pipeline.id)
            .await
            .map_err(fail)?
            .ok_or(ApiError::NotFound(Missing::Run))?,
    };
    let detail = store
        .run_detail(&run.id)
        .await
        .map_err(fail)?
        .ok_or(ApiError::NotFound(Missing::Run))?;
    let parameters: Vec<Value> = store
        .run_parameters(&run.id)
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|parameter| parameter.origin != "predefined")
        .map(|parameter| {
            let value = if parameter.is_secret {
                crate::dto::pipeline::MASK.to_owned()
            } else {
                parameter.value
            };
            json!({"name": parameter.name, "value": value})
        })
        .collect();
    let zone = state.api.config.utc_offset_minutes;
    let now = state.api.engine.now();
    let run = &detail.run;
    let (status, outcome) = run_legacy(run.status);
    let url = crate::dto::pipeline::pipeline_url(
        &state.api.config.public_url,
        &pipeline.project_id,
        &pipeline.id,
    );
    let detail_url = if url.is_empty() {
        url
    } else {
        format!("{url}/runs/{}", run.id)
    };
    Ok(Json(json!({
        "pipeline_id": pipeline.id,
        "pipeline_name": pipeline.name,
        "executor": run.executor_name,
        "build_id": run.id,
        "start_time": text(Some(run.start_time), zone),
        "end_time": text(run.end_time, zone),
        "elapsed_time": elapsed(Some(run.start_time), run.end_time, now),
        "parameters": parameters,
        "states": detail.stages.iter().map(|stage| stage_status(stage, zone, now)).collect::<Vec<_>>(),
        "status": status,
        "outcome": outcome,
        "detail_url": detail_url,
    })))
}

fn stage_status(stage: &StageRunRecord, zone: i32, now: Timestamp) -> StateStatus {
    let (status, outcome) = job_legacy(stage.status);
    StateStatus {
        id: stage.id.clone(),
        name: stage.name.clone(),
        kind: "stage",
        start_time: text(stage.start_time, zone),
        end_time: text(stage.end_time, zone),
        elapsed_time: elapsed(stage.start_time, stage.end_time, now),
        status,
        outcome,
        error_code: String::new(),
        error_msg: stage.message.clone().unwrap_or_default(),
        children: stage
            .jobs
            .iter()
            .map(|job| job_status(job, zone, now))
            .collect(),
        detail_url: String::new(),
    }
}

fn job_status(job: &JobRunRecord, zone: i32, now: Timestamp) -> StateStatus {
    let (status, outcome) = job_legacy(job.status);
    StateStatus {
        id: job.id.clone(),
        name: job.name.clone(),
        kind: "task",
        start_time: text(job.start_time, zone),
        end_time: text(job.end_time, zone),
        elapsed_time: elapsed(job.start_time, job.end_time, now),
        status,
        outcome,
        error_code: String::new(),
        error_msg: job.message.clone().unwrap_or_default(),
        children: Vec::new(),
        detail_url: String::new(),
    }
}

fn text(time: Option<Timestamp>, zone: i32) -> String {
    datetime_text(time, zone).unwrap_or_default()
}

/// `HH:mm:ss` from start to end (or to now while running); empty before the start.
fn elapsed(start: Option<Timestamp>, end: Option<Timestamp>, now: Timestamp) -> String {
    let Some(start) = start else {
        return String::new();
    };
    let seconds = (end
        .unwrap_or(now)
        .as_millis()
        .saturating_sub(start.as_millis()))
    .max(0)
        / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Query of `GET /v3/pipelines/build-result` (§3.5).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BuildResultQuery {
    /// The project whose runs are listed.
    #[serde(default, alias = "projectId")]
    #[param(required = true)]
    project_id: Option<String>,
    /// `yyyy-MM-dd` (also epoch ms or `yyyy-MM-dd HH:mm:ss`).
    #[serde(default, alias = "startDate")]
    #[param(required = true)]
    start_date: Option<String>,
    /// `yyyy-MM-dd`; at most 31 days after `start_date`.
    #[serde(default, alias = "endDate")]
    #[param(required = true)]
    end_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    limit: Option<i64>,
}

/// `PipelineBuildResult` (§3.5).
#[derive(Debug, Serialize)]
struct BuildResult {
    build_id: String,
    pipeline_id: String,
    pipeline_name: String,
    start_time: String,
    end_time: String,
    status: &'static str,
    outcome: &'static str,
    /// Milliseconds, as a string.
    elapse_time: String,
}

/// `GET /v3/pipelines/build-result?project_id=&start_date=&end_date=&offset=&limit=` (§3.5):
/// runs of the project's pipelines started within the dates (inclusive, at most 31 days).
#[utoipa::path(get, path = "/v3/pipelines/build-result", tag = "Pipelines (v3)", params(BuildResultQuery),
    responses((status = 200, description = "`{offset, limit, total, build_results: [PipelineBuildResult]}`", body = serde_json::Value)))]
pub(crate) async fn build_result(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<BuildResultQuery>,
) -> Result<Json<Value>, ApiError> {
    let project_id = query
        .project_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::invalid("project_id", "is required"))?;
    let zone = state.api.config.utc_offset_minutes;
    let from = day_bound(query.start_date.as_deref(), "start_date", zone, false)?;
    let to = day_bound(query.end_date.as_deref(), "end_date", zone, true)?;
    if to < from {
        return Err(ApiError::invalid(
            "end_date",
            "must not be before start_date",
        ));
    }
    // Saturating: either bound may be any epoch millisecond.
    if to.as_millis().saturating_sub(from.as_millis()) > MAX_RANGE_DAYS * 24 * 3600 * 1000 {
        return Err(ApiError::invalid(
            "end_date",
            "the range may cover at most 31 days",
        ));
    }
    let (offset, limit) = page(query.offset, query.limit)?;
    let member = member_of(&state, &caller, &project_id).await?;
    member.require(Action::View)?;
    let page = state
        .api
        .store
        .build_results(&member.project.id, from, to, offset, limit)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Run))?;
    let now = state.api.engine.now();
    let build_results: Vec<BuildResult> = page
        .items
        .into_iter()
        .map(|row| {
            let (status, outcome) = run_legacy(row.status);
            let end = row.end_time.unwrap_or(now);
            BuildResult {
                build_id: row.run_id,
                pipeline_id: row.pipeline_id,
                pipeline_name: row.pipeline_name,
                start_time: text(Some(row.start_time), zone),
                end_time: text(row.end_time, zone),
                status,
                outcome,
                elapse_time: (end.as_millis().saturating_sub(row.start_time.as_millis()))
                    .max(0)
                    .to_string(),
            }
        })
        .collect();
    Ok(Json(json!({
        "offset": offset,
        "limit": limit,
        "total": page.total,
        "build_results": build_results,
    })))
}

/// `yyyy-MM-dd` (the day's first or last millisecond in the configured zone); also epoch
/// milliseconds or `yyyy-MM-dd HH:mm:ss`.
fn day_bound(
    value: Option<&str>,
    field: &str,
    zone: i32,
    end_of_day: bool,
) -> Result<Timestamp, ApiError> {
    let text = value
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ApiError::invalid(field, "is required (yyyy-MM-dd)"))?;
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let offset = FixedOffset::east_opt(zone.saturating_mul(60))
            .ok_or_else(|| ApiError::Internal("invalid configured offset".to_owned()))?;
        let time = if end_of_day {
            date.and_hms_milli_opt(23, 59, 59, 999)
        } else {
            date.and_hms_opt(0, 0, 0)
        }
        .ok_or_else(|| ApiError::invalid(field, "is not a valid date"))?;
        let moment = offset
            .from_local_datetime(&time)
            .single()
            .ok_or_else(|| ApiError::invalid(field, "is not a valid date"))?;
        return Ok(Timestamp::from_millis(moment.timestamp_millis()));
    }
    TimeFilter::Text(text.to_owned())
        .resolve(field, zone)
        .map_err(|_| ApiError::invalid(field, "must be a date as yyyy-MM-dd"))?
        .ok_or_else(|| ApiError::invalid(field, "is required (yyyy-MM-dd)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn status_and_outcome_select_run_statuses() {
        assert!(run_statuses(&[], &[]).expect("no filter").is_empty());
        assert_eq!(
            run_statuses(&strings(&["running", "completed"]), &strings(&["success"])).expect("ok"),
            vec![RunStatus::Running, RunStatus::Completed]
        );
        assert_eq!(
            run_statuses(&[], &strings(&["error", "ABORTED"])).expect("ok"),
            vec![RunStatus::Failed, RunStatus::Canceled, RunStatus::Ignored]
        );
        assert_eq!(
            run_statuses(
                &strings(&["waiting", "verifying", "suspending", "handling"]),
                &[]
            )
            .expect("ok"),
            vec![
                RunStatus::Init,
                RunStatus::Queued,
                RunStatus::Paused,
                RunStatus::Suspend,
                RunStatus::Running
            ]
        );
        assert!(run_statuses(&strings(&["done"]), &[]).is_err());
        assert!(run_statuses(&[], &strings(&["failed"])).is_err());
    }

    #[test]
    fn every_run_status_has_a_legacy_pair() {
        for status in RunStatus::ALL {
            let (legacy, outcome) = run_legacy(*status);
            assert_eq!(status.is_final(), legacy == "completed", "{status:?}");
            assert_eq!(status.is_final(), !outcome.is_empty(), "{status:?}");
        }
        assert_eq!(
            elapsed(
                Some(Timestamp::from_millis(0)),
                Some(Timestamp::from_millis(3_723_000)),
                Timestamp::from_millis(0)
            ),
            "01:02:03"
        );
    }

    #[test]
    fn dates_cover_whole_days_in_the_configured_zone() {
        let from = day_bound(Some("2025-03-01"), "start_date", 480, false).expect("date");
        let to = day_bound(Some("2025-03-01"), "end_date", 480, true).expect("date");
        assert_eq!(to.as_millis() - from.as_millis(), 24 * 3600 * 1000 - 1);
        assert_eq!(from.as_millis(), 1_740_758_400_000); // 2025-03-01T00:00+08:00
        assert!(day_bound(Some("March"), "start_date", 0, false).is_err());
        assert!(day_bound(None, "start_date", 0, false).is_err());
    }
}
