//! The legacy v3 pipeline API (spec §3): the pipeline list across the caller's projects, start,
//! stop, status, build results and delete, on the same store and engine as v5 (start, stop and
//! delete go through the v5 handlers, so both APIs behave alike).
//!
//! v3 paths carry no project: a pipeline is found by id, then the caller must be a member of
//! its project; a pipeline of a project the caller is not in answers like one that does not
//! exist (`DEVPIPE.00011401`, S1).

pub(crate) mod status;

use crate::AppState;
use crate::auth::Caller;
use crate::authz::{Action, Member, is_valid_id};
use crate::dto::run::{RunBody, RunVariable};
use crate::dto::{PipelinePath, RunPath, check_offset, datetime_text, lenient_i64, sort_dir};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::templates::member_of;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use runnel_store::{
    LegacyPipelineQuery, LegacyPipelineStore, LegacySortKey, PipelineRecord, PipelineStore,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The most ids one list filter may carry (§3.1).
const MAX_IDS: usize = 10;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v3/pipelines/list", post(list))
        .route("/v3/pipelines/build-result", get(status::build_result))
        .route("/v3/pipelines/{pipeline_id}", delete(remove))
        .route("/v3/pipelines/{pipeline_id}/start", post(start))
        .route("/v3/pipelines/{pipeline_id}/stop", post(stop))
        .route("/v3/pipelines/{pipeline_id}/status", get(status::status))
}

/// `ListPipelineSimpleInfoRequestBody` (§3.1). Lists are comma-separated strings (a JSON array
/// is accepted too).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct ListBody {
    #[serde(default, alias = "pipelineName")]
    pipeline_name: Option<String>,
    #[serde(default, alias = "projectIds", deserialize_with = "list_of")]
    #[schema(value_type = Option<String>)]
    project_ids: Option<Vec<String>>,
    #[serde(default, alias = "creatorIds", deserialize_with = "list_of")]
    #[schema(value_type = Option<String>)]
    creator_ids: Option<Vec<String>>,
    #[serde(default, alias = "executorIds", deserialize_with = "list_of")]
    #[schema(value_type = Option<String>)]
    executor_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "list_of")]
    #[schema(value_type = Option<String>)]
    status: Option<Vec<String>>,
    #[serde(default, deserialize_with = "list_of")]
    #[schema(value_type = Option<String>)]
    outcome: Option<Vec<String>>,
    #[serde(default, alias = "sortKey")]
    sort_key: Option<String>,
    #[serde(default, alias = "sortDir")]
    sort_dir: Option<String>,
    #[serde(default, alias = "gitUrl")]
    git_url: Option<String>,
    #[serde(default, deserialize_with = "crate::templates::lenient_bool")]
    watched: Option<bool>,
    #[serde(default, deserialize_with = "lenient_i64")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    limit: Option<i64>,
}

/// `"a,b"` or `["a", "b"]`; blanks dropped.
fn list_of<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    let split = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(split(&text))),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(split(text)),
                _ => Err(serde::de::Error::custom("expected strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|lists| Some(lists.concat())),
        Some(_) => Err(serde::de::Error::custom(
            "expected a comma-separated string",
        )),
    }
}

/// `PipelineBasicInfo` (§3.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineBasicInfo {
    project_id: String,
    project_name: String,
    pipeline_id: String,
    pipeline_name: String,
    creator_id: String,
    creator_name: String,
    executor_id: String,
    executor_name: String,
    start_time: String,
    create_time: String,
    /// A string on the wire: `"true"` / `"false"`.
    watched: String,
}

/// The answer of `POST /v3/pipelines/list` (§3.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LegacyPipelineList {
    offset: i64,
    limit: i64,
    total: i64,
    result: Vec<PipelineBasicInfo>,
}

/// The answer of start (§3.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Started {
    pipeline_id: String,
    /// The run id.
    build_id: String,
}

/// The answer of stop (§3.3) and delete (§3.6).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineName {
    pipeline_id: String,
    pipeline_name: String,
}

/// `POST /v3/pipelines/list` (§3.1).
#[utoipa::path(post, path = "/v3/pipelines/list", tag = "Pipelines (v3)", request_body = ListBody,
    responses((status = 200, description = "`{offset, limit, total, result: [PipelineBasicInfo]}`", body = LegacyPipelineList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ListBody>,
) -> Result<Json<LegacyPipelineList>, ApiError> {
    let offset = check_offset(body.offset.unwrap_or(0))?;
    let limit = body.limit.unwrap_or(10);
    if !(10..=50).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 10 to 50"));
    }
    let ids = |list: &Option<Vec<String>>, field: &str| -> Result<Vec<String>, ApiError> {
        let list = list.clone().unwrap_or_default();
        if list.len() > MAX_IDS {
            return Err(ApiError::invalid(
                field,
                format!("at most {MAX_IDS} ids, separated by commas"),
            ));
        }
        if list.iter().any(|id| !is_valid_id(id)) {
            return Err(ApiError::invalid(
                field,
                "ids are 1 to 64 letters, digits, - or _",
            ));
        }
        Ok(list)
    };
    let project_ids = ids(&body.project_ids, "project_ids")?;
    let creator_ids = ids(&body.creator_ids, "creator_ids")?;
    let executor_ids = ids(&body.executor_ids, "executor_ids")?;
    let latest_statuses = status::run_statuses(
        body.status.as_deref().unwrap_or_default(),
        body.outcome.as_deref().unwrap_or_default(),
    )?;
    let sort_key = match body.sort_key.as_deref().map(str::trim) {
        None | Some("") | Some("start_time") => LegacySortKey::StartTime,
        Some("create_time") => LegacySortKey::CreateTime,
        Some("pipeline_name") => LegacySortKey::Name,
        Some(_) => {
            return Err(ApiError::invalid(
                "sort_key",
                "must be pipeline_name, create_time or start_time",
            ));
        }
    };
    let query = LegacyPipelineQuery {
        domain_id: caller.user.domain_id.clone(),
        user_id: caller.user.id.clone(),
        project_ids,
        creator_ids,
        executor_ids,
        name_contains: body
            .pipeline_name
            .clone()
            .filter(|name| !name.trim().is_empty()),
        latest_statuses,
        git_url: body
            .git_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned),
        watched: body.watched,
        sort_key,
        sort_dir: sort_dir(body.sort_dir.as_deref(), "sort_dir")?,
        offset,
        limit,
    };
    let page = state
        .api
        .store
        .list_pipelines_v3(&query)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    let zone = state.api.config.utc_offset_minutes;
    let result: Vec<PipelineBasicInfo> = page
        .items
        .into_iter()
        .map(|row| PipelineBasicInfo {
            project_id: row.project_id,
            project_name: row.project_name,
            pipeline_id: row.pipeline_id,
            pipeline_name: row.pipeline_name,
            creator_id: row.creator_id,
            creator_name: row.creator_name,
            executor_id: row.executor_id.unwrap_or_default(),
            executor_name: row.executor_name.unwrap_or_default(),
            start_time: datetime_text(row.latest_start, zone).unwrap_or_default(),
            create_time: datetime_text(Some(row.created_at), zone).unwrap_or_default(),
            watched: row.is_watched.to_string(),
        })
        .collect();
    Ok(Json(LegacyPipelineList {
        offset,
        limit,
        total: page.total,
        result,
    }))
}

/// `/v3/pipelines/{pipeline_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdPath {
    pipeline_id: String,
}

/// The pipeline of a v3 path and the caller as a member of its project.
pub(crate) async fn pipeline_of(
    state: &AppState,
    caller: &Caller,
    pipeline_id: &str,
    action: Action,
) -> Result<(Member, PipelineRecord), ApiError> {
    if !is_valid_id(pipeline_id) {
        return Err(ApiError::NotFound(Missing::Pipeline));
    }
    let pipeline = state
        .api
        .store
        .pipeline_by_id(pipeline_id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?
        .ok_or(ApiError::NotFound(Missing::Pipeline))?;
    let member = member_of(state, caller, &pipeline.project_id)
        .await
        .map_err(|err| match err {
            ApiError::ProjectNotFound => ApiError::NotFound(Missing::Pipeline),
            other => other,
        })?;
    member.require(action)?;
    Ok((member, pipeline))
}

/// `StartPipelineParameters` (§3.2).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct StartBody {
    #[serde(default, alias = "buildParams")]
    build_params: Option<Vec<BuildParam>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
struct BuildParam {
    name: String,
    #[serde(default, deserialize_with = "crate::templates::lenient_string")]
    value: Option<String>,
}

/// `POST /v3/pipelines/{pipeline_id}/start` (§3.2): a manual run through the v5 run path;
/// `build_id` is the run id.
#[utoipa::path(post, path = "/v3/pipelines/{pipeline_id}/start", tag = "Pipelines (v3)", request_body(content = StartBody, description = "Optional run parameters"),
    responses((status = 200, description = "`{pipeline_id, build_id}`; `build_id` is the run id", body = Started)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Json<Started>, ApiError> {
    let (member, pipeline) =
        pipeline_of(&state, &caller, &path.pipeline_id, Action::Execute).await?;
    let mut variables = Vec::new();
    for (index, param) in body
        .build_params
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let value = param.value.ok_or_else(|| {
            ApiError::invalid(format!("build_params[{index}].value"), "is required")
        })?;
        variables.push(RunVariable {
            name: param.name,
            value,
        });
    }
    let Json(started) = crate::runs::run(
        State(state),
        member,
        PathParams(PipelinePath {
            pipeline_id: pipeline.id.clone(),
        }),
        headers,
        JsonBody(RunBody {
            variables: Some(variables),
            ..RunBody::default()
        }),
    )
    .await
    .map_err(|err| match err {
        // The v5 path names `variables`; the v3 body calls them `build_params`.
        ApiError::Invalid { field, reason } => ApiError::Invalid {
            field: field.replacen("variables", "build_params", 1),
            reason: reason.replacen("variables", "build_params", 1),
        },
        other => other,
    })?;
    Ok(Json(Started {
        pipeline_id: pipeline.id,
        build_id: started.pipeline_run_id,
    }))
}

/// `?build_id=` of stop and status.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BuildQuery {
    /// The run id (`build_id` of start).
    #[serde(default, alias = "buildId")]
    build_id: Option<String>,
}

/// `POST /v3/pipelines/{pipeline_id}/stop?build_id=` (§3.3).
#[utoipa::path(post, path = "/v3/pipelines/{pipeline_id}/stop", tag = "Pipelines (v3)", params(BuildQuery),
    responses((status = 200, description = "The stopped run's pipeline", body = PipelineName)))]
pub(crate) async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
    QueryParams(query): QueryParams<BuildQuery>,
) -> Result<Json<PipelineName>, ApiError> {
    let build_id = query
        .build_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::invalid("build_id", "is required"))?;
    let (member, pipeline) =
        pipeline_of(&state, &caller, &path.pipeline_id, Action::Execute).await?;
    let Json(_) = crate::actions::stop(
        State(state),
        member,
        PathParams(RunPath {
            pipeline_id: pipeline.id.clone(),
            pipeline_run_id: build_id,
        }),
    )
    .await?;
    Ok(Json(PipelineName {
        pipeline_id: pipeline.id,
        pipeline_name: pipeline.name,
    }))
}

/// `DELETE /v3/pipelines/{pipeline_id}` (§3.6): the v5 delete (unfinished runs stopped first).
#[utoipa::path(delete, path = "/v3/pipelines/{pipeline_id}", tag = "Pipelines (v3)",
    responses((status = 200, description = "The deleted pipeline", body = PipelineName)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
) -> Result<Json<PipelineName>, ApiError> {
    let (member, pipeline) =
        pipeline_of(&state, &caller, &path.pipeline_id, Action::Delete).await?;
    let Json(_) = crate::pipelines::delete(
        State(state),
        member,
        PathParams(PipelinePath {
            pipeline_id: pipeline.id.clone(),
        }),
    )
    .await?;
    Ok(Json(PipelineName {
        pipeline_id: pipeline.id,
        pipeline_name: pipeline.name,
    }))
}
