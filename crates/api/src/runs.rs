//! Run routes (spec §5.1, §5.4, §5.5): start a run (idempotent with `Idempotency-Key`, G6),
//! the run history with filters, the full run detail.

use crate::AppState;
use crate::authz::{Action, Member};
use crate::dto::pipeline::pipeline_url;
use crate::dto::run::{
    DetailQuery, LatestRun, ListRunsQuery, PackageInfo, QueuedRun, RunBody, RunDetailResponse,
    RunList, RunSource, RunStarted, job_entry, pause_time, stage_dto,
};
use crate::dto::{PipelinePath, page, sort_dir};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use runnel_domain::params::RuntimeValue;
use runnel_domain::status::{JobStatus, RunStatus};
use runnel_engine::TriggerRequest;
use runnel_store::{
    IdempotencyKey, OrganizeStore, PipelineHead, PipelineRecord, RunQuery, RunSortKey, RunStore,
};
use serde_json::{Map, Value, json};
use std::str::FromStr;

/// Trigger types of spec §12.3.
const TRIGGER_TYPES: &[&str] = &[
    "Manual",
    "Scheduler",
    "MR",
    "Push",
    "CreateTag",
    "Issue",
    "Note",
    "RollBack",
    "CR",
    "Generic",
    "SubPipeline",
];

/// `POST …/pipelines/{pipeline_id}/run` (§5.1). A queued run answers 200 with the
/// `DEVPIPE.00011169` body; `ABORT` at the limit answers 400 `DEVPIPE.00011104`.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/run", tag = "Runs", request_body = RunBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key (same caller and pipeline) answers the same run and creates none")),
    responses((status = 200, description = "The new run; a queued run also carries `error_code` DEVPIPE.00011169 and `error`", body = RunStarted)))]
pub(crate) async fn run(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RunBody>,
) -> Result<Json<RunStarted>, ApiError> {
    member.require(Action::Execute)?;
    let pipeline = member.pipeline(&state, &path.pipeline_id).await?;
    let idempotency = idempotency_key(&headers, &member, &pipeline)?;
    let description = body.description.clone().unwrap_or_default();
    if description.chars().count() > 1024 {
        return Err(ApiError::invalid(
            "description",
            "may have at most 1024 characters",
        ));
    }
    let variables = body.variables.clone().unwrap_or_default();
    for (index, variable) in variables.iter().enumerate() {
        if variable.name.is_empty() {
            return Err(ApiError::invalid(
                format!("variables[{index}].name"),
                "must not be empty",
            ));
        }
        if variable.value.chars().count() > 8192 {
            return Err(ApiError::invalid(
                format!("variables[{index}].value"),
                "may have at most 8192 characters",
            ));
        }
    }
    let run_sources = body.sources.clone().unwrap_or_default();
    let trigger_type = trigger_type(&body, &run_sources)?;
    let (sources, build_params) = resolve_sources(&pipeline.sources, &run_sources, &trigger_type);
    let request = TriggerRequest {
        pipeline_id: pipeline.id.clone(),
        user_id: member.caller.user.id.clone(),
        user_name: member.caller.user.name.clone(),
        trigger_type,
        description,
        variables: variables
            .into_iter()
            .map(|variable| RuntimeValue {
                name: variable.name,
                value: variable.value,
            })
            .collect(),
        choose_stages: body.choose_stages.clone().unwrap_or_default(),
        choose_jobs: body.choose_jobs.clone().unwrap_or_default(),
        build_params,
        sources,
        idempotency,
        webhook_payload: None,
        pipeline: Some(pipeline),
    };
    let triggered = state
        .api
        .engine
        .trigger(request)
        .await
        .map_err(|err| ApiError::from_engine(err, Missing::Pipeline))?;
    if triggered.is_queued {
        return Ok(Json(RunStarted {
            pipeline_run_id: triggered.run_id.clone(),
            error_code: Some("DEVPIPE.00011169".to_owned()),
            error_msg: Some(
                "The pipeline reached its concurrency limit; the run was queued.".to_owned(),
            ),
            error: Some(QueuedRun {
                pipeline_run_id: triggered.run_id.clone(),
                queue_id: triggered.run_id,
            }),
        }));
    }
    Ok(Json(RunStarted {
        pipeline_run_id: triggered.run_id,
        error_code: None,
        error_msg: None,
        error: None,
    }))
}

/// `POST …/{pipeline_id}/pipeline-runs/list` (§5.4).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/list", tag = "Runs", request_body = ListRunsQuery,
    responses((status = 200, description = "A page of runs", body = RunList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
    JsonBody(query): JsonBody<ListRunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    member.require(Action::View)?;
    let pipeline = member.pipeline_head(&state, &path.pipeline_id).await?;
    let (offset, limit) = page(query.offset, query.limit)?;
    let zone = state.api.config.utc_offset_minutes;
    let mut statuses = Vec::new();
    for (index, text) in query.status.iter().flatten().enumerate() {
        match RunStatus::from_str(text) {
            Ok(status) => statuses.push(status),
            // Stage/job statuses (§12.2) are accepted and match no run.
            Err(_) if JobStatus::from_str(text).is_ok() => {}
            Err(_) => {
                return Err(ApiError::invalid(
                    format!("status[{index}]"),
                    "is not a run status",
                ));
            }
        }
    }
    let only_stage_statuses =
        statuses.is_empty() && query.status.as_ref().is_some_and(|list| !list.is_empty());
    for (index, trigger) in query.trigger_type.iter().flatten().enumerate() {
        if !TRIGGER_TYPES.contains(&trigger.as_str()) {
            return Err(ApiError::invalid(
                format!("trigger_type[{index}]"),
                "is not a trigger type",
            ));
        }
    }
    let resolve = |filter: &Option<crate::dto::TimeFilter>, field: &str| match filter {
        Some(filter) => filter.resolve(field, zone),
        None => Ok(None),
    };
    let sort_key = match query.sort_key.as_deref() {
        None | Some("") | Some("start_time") => RunSortKey::StartTime,
        Some("update_time") => RunSortKey::UpdateTime,
        Some(_) => {
            return Err(ApiError::invalid(
                "sort_key",
                "must be start_time or update_time",
            ));
        }
    };
    let run_query = RunQuery {
        statuses,
        trigger_types: query.trigger_type.clone().unwrap_or_default(),
        executor_ids: query.executor_ids.clone().unwrap_or_default(),
        started_from: resolve(&query.start_time, "start_time")?,
        started_to: resolve(&query.end_time, "end_time")?,
        updated_after: resolve(&query.update_time, "update_time")?,
        job_identifier: query
            .job_id
            .clone()
            .filter(|id| !id.is_empty() && query.show_job_details == Some(true)),
        sort_key,
        sort_dir: sort_dir(query.sort_dir.as_deref(), "sort_dir")?,
        offset,
        limit,
    };
    if only_stage_statuses {
        return Ok(Json(RunList {
            offset,
            limit,
            total: 0,
            pipeline_runs: Vec::new(),
        }));
    }
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Run);
    let found = store
        .list_runs(&pipeline.id, &run_query)
        .await
        .map_err(fail)?;
    let mut pipeline_runs = Vec::with_capacity(found.items.len());
    for summary in &found.items {
        let url = run_url(&state, &pipeline, &summary.run.id);
        let mut item = LatestRun::from_summary(summary, url, zone);
        if query.show_job_details == Some(true)
            && let Some(detail) = store.run_detail(&summary.run.id).await.map_err(fail)?
        {
            let chosen = query.stage_id.as_deref().and_then(|wanted| {
                detail
                    .stages
                    .iter()
                    .position(|stage| stage.id == wanted || stage.identifier == wanted)
            });
            let index = chosen.or_else(|| detail.stages.len().checked_sub(1));
            if let Some(index) = index
                && let Some(entry) = item.stage_status_list.get_mut(index)
            {
                entry.jobs = Some(detail.stages[index].jobs.iter().map(job_entry).collect());
            }
        }
        pipeline_runs.push(item);
    }
    Ok(Json(RunList {
        offset,
        limit,
        total: found.total,
        pipeline_runs,
    }))
}

/// `GET …/{pipeline_id}/pipeline-runs/detail` (§5.5): by id, by number, or the latest run.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/detail", tag = "Runs", params(DetailQuery),
    responses((status = 200, description = "The run with its stages, jobs and steps", body = RunDetailResponse)))]
pub(crate) async fn detail(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
    QueryParams(query): QueryParams<DetailQuery>,
) -> Result<Json<RunDetailResponse>, ApiError> {
    member.require(Action::View)?;
    let pipeline = member.pipeline_head(&state, &path.pipeline_id).await?;
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Run);
    let run_id = match (
        query.pipeline_run_id.as_deref().filter(|id| !id.is_empty()),
        query
            .pipeline_run_number
            .as_deref()
            .filter(|number| !number.is_empty()),
    ) {
        (Some(run_id), _) => run_id.to_owned(),
        (None, Some(number)) => {
            let number: i64 = number
                .parse()
                .ok()
                .filter(|number| *number >= 1)
                .ok_or_else(|| {
                    ApiError::invalid("pipeline_run_number", "must be a whole number from 1")
                })?;
            store
                .run_by_number(&pipeline.id, number)
                .await
                .map_err(fail)?
                .ok_or(ApiError::NotFound(Missing::Run))?
                .id
        }
        (None, None) => {
            store
                .latest_run(&pipeline.id)
                .await
                .map_err(fail)?
                .ok_or(ApiError::NotFound(Missing::Run))?
                .id
        }
    };
    let detail = member.run_detail(&state, &pipeline.id, &run_id).await?;
    let artifacts = store.artifacts(&run_id).await.map_err(fail)?;
    let group_name = match &pipeline.group_id {
        Some(group_id) => store
            .groups(&pipeline.project_id)
            .await
            .map_err(fail)?
            .into_iter()
            .find(|group| &group.id == group_id)
            .map(|group| group.name),
        None => None,
    };
    let now = state.api.engine.now();
    let run = &detail.run;
    Ok(Json(RunDetailResponse {
        id: run.id.clone(),
        pipeline_id: pipeline.id.clone(),
        manifest_version: pipeline.manifest_version.clone(),
        name: pipeline.name.clone(),
        description: run.description.clone(),
        is_publish: pipeline.is_publish,
        executor_id: run.executor_id.clone(),
        executor_name: run.executor_name.clone(),
        status: run.status.as_str().to_owned(),
        trigger_type: run.trigger_type.clone(),
        run_number: run.run_number,
        pause_time: pause_time(run, now),
        start_time: run.start_time.as_millis(),
        end_time: run.end_time.map(|time| time.as_millis()),
        stages: detail.stages.iter().map(stage_dto).collect(),
        domain_id: member.project.domain_id.clone(),
        project_id: pipeline.project_id.clone(),
        region: state.api.config.region.clone(),
        component_id: pipeline.component_id.clone(),
        language: "en-us".to_owned(),
        sources: if run.sources.is_array() {
            run.sources.clone()
        } else {
            json!([])
        },
        artifacts: artifacts
            .iter()
            .map(|artifact| PackageInfo {
                name: artifact.name.clone(),
                package_type: artifact.package_type.clone(),
                version: artifact.version.clone(),
                download_url: artifact.download_url.clone(),
            })
            .collect(),
        subject_id: run.id.clone(),
        group_id: pipeline.group_id.clone(),
        group_name,
        detail_url: run_url(&state, &pipeline, &run.id),
        current_system_time: now.as_millis(),
    }))
}

fn run_url(state: &AppState, pipeline: &PipelineHead, run_id: &str) -> String {
    let url = pipeline_url(
        &state.api.config.public_url,
        &pipeline.project_id,
        &pipeline.id,
    );
    if url.is_empty() {
        url
    } else {
        format!("{url}/runs/{run_id}")
    }
}

/// `Idempotency-Key`, scoped to the caller and the pipeline (G6).
fn idempotency_key(
    headers: &HeaderMap,
    member: &Member,
    pipeline: &PipelineRecord,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| {
            (1..=255).contains(&key.len()) && key.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(IdempotencyKey {
        scope: format!("api:{}:{}", member.caller.user.id, pipeline.id),
        key: key.to_owned(),
    }))
}

/// `SubPipeline` for sub-pipeline runs, else the first source's `event_type`, else `Manual`.
fn trigger_type(body: &RunBody, sources: &[RunSource]) -> Result<String, ApiError> {
    if body.sub_hook == Some(true) {
        return Ok("SubPipeline".to_owned());
    }
    for (index, source) in sources.iter().enumerate() {
        if source.kind != "code" && source.kind != "artifact" {
            return Err(ApiError::invalid(
                format!("sources[{index}].type"),
                "must be code or artifact",
            ));
        }
        if let Some(build) = &source.params.build_params {
            if build.build_type != "branch" && build.build_type != "tag" {
                return Err(ApiError::invalid(
                    format!("sources[{index}].params.build_params.build_type"),
                    "must be branch or tag",
                ));
            }
            if let Some(event) = &build.event_type
                && !TRIGGER_TYPES.contains(&event.as_str())
            {
                return Err(ApiError::invalid(
                    format!("sources[{index}].params.build_params.event_type"),
                    "is not a trigger type",
                ));
            }
        }
    }
    Ok(sources
        .first()
        .and_then(|source| source.params.build_params.as_ref())
        .and_then(|build| build.event_type.clone())
        .unwrap_or_else(|| "Manual".to_owned()))
}

/// The run's sources: the pipeline's, overridden by the run's (matched by alias, codehub id,
/// then git URL); and the run's `build_params` (of the first source).
fn resolve_sources(
    pipeline_sources: &Value,
    run_sources: &[RunSource],
    trigger_type: &str,
) -> (Value, Value) {
    let mut resolved: Vec<Value> = Vec::new();
    let mut used = vec![false; run_sources.len()];
    for source in pipeline_sources.as_array().into_iter().flatten() {
        let params = source
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let field = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
        let matched = run_sources.iter().position(|run| {
            let run = &run.params;
            (run.alias.is_some() && run.alias == field("alias"))
                || (run.codehub_id.is_some() && run.codehub_id == field("codehub_id"))
                || Some(&run.git_url) == field("git_url").as_ref()
        });
        let mut merged: Map<String, Value> = params.clone();
        let build_params = match matched {
            Some(index) => {
                used[index] = true;
                overlay(&mut merged, &run_sources[index]);
                build_params_of(&run_sources[index], trigger_type)
            }
            None => {
                json!({"build_type": "branch", "event_type": trigger_type, "target_branch": field("default_branch")})
            }
        };
        merged.insert("build_params".to_owned(), build_params);
        resolved.push(
            json!({"type": source.get("type").cloned().unwrap_or(json!("code")), "params": merged}),
        );
    }
    for (index, source) in run_sources
        .iter()
        .enumerate()
        .filter(|(index, _)| !used[*index])
    {
        let mut merged = Map::new();
        overlay(&mut merged, source);
        merged.insert(
            "build_params".to_owned(),
            build_params_of(&run_sources[index], trigger_type),
        );
        resolved.push(json!({"type": source.kind, "params": merged}));
    }
    let build_params = match resolved.first() {
        Some(first) => {
            let params = &first["params"];
            let mut build = params["build_params"].clone();
            build["codehub_id"] = params.get("codehub_id").cloned().unwrap_or(Value::Null);
            build["git_url"] = params.get("git_url").cloned().unwrap_or(Value::Null);
            build
        }
        None => json!({"event_type": trigger_type}),
    };
    (Value::Array(resolved), build_params)
}

fn overlay(params: &mut Map<String, Value>, source: &RunSource) {
    let run = &source.params;
    params.insert("git_type".to_owned(), json!(run.git_type));
    params.insert("git_url".to_owned(), json!(run.git_url));
    for (key, value) in [
        ("alias", &run.alias),
        ("codehub_id", &run.codehub_id),
        ("default_branch", &run.default_branch),
        ("endpoint_id", &run.endpoint_id),
    ] {
        if let Some(value) = value {
            params.insert(key.to_owned(), json!(value));
        }
    }
}

fn build_params_of(source: &RunSource, trigger_type: &str) -> Value {
    match &source.params.build_params {
        Some(build) => json!({
            "build_type": build.build_type,
            "event_type": build.event_type.clone().unwrap_or_else(|| trigger_type.to_owned()),
            "target_branch": build.target_branch.clone().or_else(|| source.params.default_branch.clone()),
            "tag": build.tag,
        }),
        None => {
            json!({"build_type": "branch", "event_type": trigger_type, "target_branch": source.params.default_branch})
        }
    }
}
