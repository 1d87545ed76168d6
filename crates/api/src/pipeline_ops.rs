//! Pipeline routes besides create/read/update/delete (spec §4.6, §4.8): the latest run of
//! several pipelines, disabling and enabling a pipeline, the system parameters a pipeline's
//! steps see, and the manifest version of several pipelines.

use crate::AppState;
use crate::authz::{Action, Member, is_valid_id};
use crate::dto::pipeline::pipeline_url;
use crate::dto::run::LatestRun;
use crate::dto::{PipelinePath, SUCCESS, Success};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonList, PathParams};
use axum::Json;
use axum::extract::State;
use runnel_domain::params::{PREDEFINED_NAMES, SourceInfo, source_key, source_parameter_names};
use runnel_store::{PipelineRecord, PipelineStore, RunQuery, RunStore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use utoipa::ToSchema;

/// The most pipelines one batch call may name.
const MAX_BATCH: usize = 100;

/// The latest run of each named pipeline that has one (§4.6). Ids of pipelines that do not
/// exist in the project (or belong to another) are skipped, like pipelines without runs.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/status", tag = "Pipelines",
    request_body(content = Vec<String>, description = "Pipeline ids (at most 100)"),
    responses((status = 200, description = "The latest run of each pipeline that has one", body = Vec<LatestRun>)))]
pub(crate) async fn batch_status(
    State(state): State<AppState>,
    member: Member,
    JsonList(ids): JsonList<String>,
) -> Result<Json<Vec<LatestRun>>, ApiError> {
    member.require(Action::View)?;
    let ids = batch_ids(ids.iter().map(String::as_str))?;
    let config = &state.api.config;
    let mut latest = Vec::new();
    for pipeline in pipelines(&state, &member, &ids).await? {
        let page = state
            .api
            .store
            .list_runs(
                &pipeline.id,
                &RunQuery {
                    limit: 1,
                    ..RunQuery::default()
                },
            )
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Run))?;
        if let Some(summary) = page.items.first() {
            let url = pipeline_url(&config.public_url, &pipeline.project_id, &pipeline.id);
            let detail_url = if url.is_empty() {
                url
            } else {
                format!("{url}/runs/{}", summary.run.id)
            };
            latest.push(LatestRun::from_summary(
                summary,
                detail_url,
                config.utc_offset_minutes,
            ));
        }
    }
    Ok(Json(latest))
}

/// An item of the pipelines-version body (§4.8).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct VersionQueryItem {
    pub(crate) pipeline_id: String,
}

/// The manifest version of a pipeline (§4.8): note the camelCase keys.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct PipelineVersion {
    #[serde(rename = "pipelineId")]
    pub(crate) pipeline_id: String,
    #[serde(rename = "manifestVersion")]
    pub(crate) manifest_version: String,
}

/// The manifest version of each named pipeline, keyed by pipeline id (§4.8); unknown ids are
/// left out.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/pipelines-version", tag = "Pipelines",
    request_body(content = Vec<VersionQueryItem>, description = "At most 100 pipelines"),
    responses((status = 200, description = "Pipeline id → version", body = std::collections::BTreeMap<String, PipelineVersion>)))]
pub(crate) async fn versions(
    State(state): State<AppState>,
    member: Member,
    JsonList(items): JsonList<VersionQueryItem>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    member.require(Action::View)?;
    let ids = batch_ids(items.iter().map(|item| item.pipeline_id.as_str()))?;
    let mut answer = Map::new();
    for pipeline in pipelines(&state, &member, &ids).await? {
        let version = PipelineVersion {
            pipeline_id: pipeline.id.clone(),
            manifest_version: pipeline.manifest_version.clone(),
        };
        let value = serde_json::to_value(version)
            .map_err(|err| ApiError::Internal(format!("cannot encode a version: {err}")))?;
        answer.insert(pipeline.id, value);
    }
    Ok(Json(answer))
}

/// Disables a pipeline (§4.8): runs are refused until it is enabled again; it cannot be updated.
#[utoipa::path(put, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/ban", tag = "Pipelines",
    responses((status = 200, description = "Disabled", body = Success)))]
pub(crate) async fn ban(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
) -> Result<Json<Success>, ApiError> {
    set_banned(&state, &member, &path, true).await
}

/// Enables a disabled pipeline again (§4.8).
#[utoipa::path(put, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/unban", tag = "Pipelines",
    responses((status = 200, description = "Enabled", body = Success)))]
pub(crate) async fn unban(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
) -> Result<Json<Success>, ApiError> {
    set_banned(&state, &member, &path, false).await
}

async fn set_banned(
    state: &AppState,
    member: &Member,
    path: &PipelinePath,
    is_banned: bool,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    let pipeline = member.pipeline(state, &path.pipeline_id).await?;
    state
        .api
        .store
        .set_banned(
            &member.project.id,
            &pipeline.id,
            is_banned,
            state.api.engine.now(),
        )
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    Ok(Json(SUCCESS))
}

/// A system parameter (§4.8 `list-system-vars`, §12.6): note the camelCase keys.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SystemVariable {
    pub(crate) name: String,
    /// Empty: the value is known when a run starts.
    pub(crate) value: String,
    #[serde(rename = "type")]
    pub(crate) var_type: String,
    pub(crate) description: String,
    #[serde(rename = "isShow")]
    pub(crate) is_show: bool,
    pub(crate) ordinal: i64,
    /// Whether the name comes from a source's alias (`<alias>_…`).
    #[serde(rename = "isAlias")]
    pub(crate) is_alias: bool,
    /// `system`.
    pub(crate) kind: String,
    /// The expression context the value is also found in (`pipeline`, `sources`), if any.
    #[serde(rename = "contextName")]
    pub(crate) context_name: Option<String>,
    /// The source key of a per-source parameter.
    #[serde(rename = "sourceIdentifier")]
    pub(crate) source_identifier: Option<String>,
}

/// The system parameters a run of this pipeline gets (§4.8, §12.6): the fixed ones, then the
/// seven `<alias>_…` ones of each source.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/list-system-vars", tag = "Pipelines",
    responses((status = 200, description = "The system parameters", body = Vec<SystemVariable>)))]
pub(crate) async fn system_variables(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
) -> Result<Json<Vec<SystemVariable>>, ApiError> {
    member.require(Action::View)?;
    let pipeline = member.pipeline(&state, &path.pipeline_id).await?;
    let mut variables = Vec::new();
    let mut push = |name: String, description: String, source: Option<String>| {
        let ordinal = i64::try_from(variables.len() + 1).unwrap_or(i64::MAX);
        let context_name = match (&source, pipeline_context_key(&name)) {
            (Some(_), _) => Some("sources".to_owned()),
            (None, Some(_)) => Some("pipeline".to_owned()),
            (None, None) => None,
        };
        variables.push(SystemVariable {
            name,
            value: String::new(),
            var_type: "string".to_owned(),
            description,
            is_show: true,
            ordinal,
            is_alias: source.is_some(),
            kind: "system".to_owned(),
            context_name,
            source_identifier: source,
        });
    };
    for name in PREDEFINED_NAMES {
        push((*name).to_owned(), describe(name).to_owned(), None);
    }
    let mut keys = HashSet::new();
    for source in pipeline.sources.as_array().into_iter().flatten() {
        let params = &source["params"];
        let field = |key: &str| params[key].as_str().unwrap_or_default().to_owned();
        let info = SourceInfo {
            alias: field("alias"),
            repo_name: field("repo_name"),
            ..SourceInfo::default()
        };
        let Some(key) = source_key(&info).filter(|key| keys.insert(key.clone())) else {
            continue;
        };
        for name in source_parameter_names(&key) {
            let suffix = name[key.len()..].to_owned();
            push(
                name,
                format!("{} of source `{key}`", describe_suffix(&suffix)),
                Some(key.clone()),
            );
        }
    }
    Ok(Json(variables))
}

/// Ids of a batch: at most 100; invalid and repeated ids are dropped (they cannot exist).
fn batch_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<Vec<String>, ApiError> {
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for (count, id) in ids.enumerate() {
        if count >= MAX_BATCH {
            return Err(ApiError::invalid(
                "body",
                format!("at most {MAX_BATCH} pipelines per call"),
            ));
        }
        if is_valid_id(id) && seen.insert(id) {
            kept.push(id.to_owned());
        }
    }
    Ok(kept)
}

/// The project's pipelines among `ids`, in the order given.
async fn pipelines(
    state: &AppState,
    member: &Member,
    ids: &[String],
) -> Result<Vec<PipelineRecord>, ApiError> {
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(pipeline) = state
            .api
            .store
            .pipeline(&member.project.id, id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?
        {
            found.push(pipeline);
        }
    }
    Ok(found)
}

/// The key of a predefined parameter in the `pipeline` expression context, if it has one.
fn pipeline_context_key(name: &str) -> Option<&'static str> {
    match name {
        "PROJECT_ID" => Some("project_id"),
        "PIPELINE_ID" => Some("pipeline_id"),
        "PIPELINE_NUMBER" => Some("run_number"),
        "PIPELINE_RUN_ID" => Some("run_id"),
        "PIPELINE_TRIGGER_TYPE" => Some("trigger_type"),
        "TIMESTAMP" => Some("timestamp"),
        _ => None,
    }
}

fn describe(name: &str) -> &'static str {
    match name {
        "PROJECT_ID" => "ID of the project the pipeline belongs to",
        "PIPELINE_ID" => "ID of the pipeline",
        "PIPELINE_NAME" => "Name of the pipeline",
        "PIPELINE_NUMBER" => "Run number of the pipeline run",
        "PIPELINE_RUN_ID" => "ID of the pipeline run",
        "PIPELINE_TRIGGER_TYPE" => "How the run was triggered",
        "TIMESTAMP" => "Time the run started, as yyyyMMddHHmmss",
        "EXECUTE_USER" => "User who started the run",
        "COMMIT_ID" => "Commit of the first source",
        "COMMIT_ID_SHORT" => "First 8 characters of the commit of the first source",
        "REPO_URL" => "Repository URL of the first source",
        "MERGE_ID" => "Merge request ID of a merge-request run",
        "WEBHOOK_PAYLOAD" => "Body of the webhook that triggered the run",
        "PASS_CONDITIONS_LINK" => "Link to the run's detail page",
        _ => "System parameter",
    }
}

fn describe_suffix(suffix: &str) -> &'static str {
    match suffix {
        "_REPOSITORY_NAME" => "Repository name",
        "_SOURCE_BRANCH" => "Source branch",
        "_TARGET_BRANCH" => "Target branch",
        "_TAG" => "Tag",
        "_COMMIT_ID" => "Commit",
        "_COMMIT_ID_SHORT" => "Short commit",
        "_REPO_URL" => "Repository URL",
        _ => "Parameter",
    }
}
