//! Pipeline routes (spec §4.1–§4.5): create, detail, update (a new version), delete, list with
//! the latest run.

use crate::AppState;
use crate::authz::{Action, Member, allows};
use crate::definition::{Prepared, prepare};
use crate::dto::pipeline::{
    ComponentQuery, DetailContext, ListPipelinesQuery, MASK, Permissions, PipelineBody,
    PipelineDetail, PipelineList, PipelineListItem, pipeline_url, tag_item,
};
use crate::dto::run::LatestRun;
use crate::dto::{PipelineIdResponse, PipelinePath, page, sort_dir};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_domain::params::VariableSpec;
use runnel_domain::status::RunStatus;
use runnel_store::{
    IdentityStore, LatestRunFilter, NewPipeline, OrganizeStore, PipelineQuery, PipelineRecord,
    PipelineSortKey, PipelineStore, PipelineUpdate, Role, RunQuery, RunStore, StoreError,
    TriggerStore, new_id,
};
use serde_json::{Value, json};

/// `POST /v5/{project_id}/api/pipelines` (§4.1).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines", tag = "Pipelines", params(ComponentQuery), request_body = PipelineBody,
    responses((status = 200, description = "The new pipeline's id", body = PipelineIdResponse)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    member: Member,
    QueryParams(query): QueryParams<ComponentQuery>,
    JsonBody(body): JsonBody<PipelineBody>,
) -> Result<Json<PipelineIdResponse>, ApiError> {
    let record = create_pipeline(&state, &member, &body, query.component_id, 0).await?;
    Ok(Json(PipelineIdResponse {
        pipeline_id: record.id,
    }))
}

/// The one way a pipeline is created: §4.1, and from templates (`from_source` 1, spec §4.7, §2.1).
pub(crate) async fn create_pipeline(
    state: &AppState,
    member: &Member,
    body: &PipelineBody,
    component_id: Option<String>,
    from_source: i64,
) -> Result<PipelineRecord, ApiError> {
    member.require(Action::Edit)?;
    let checked = check_body(state, member, body).await?;
    let events = crate::triggers::check(state, member, body, None).await?;
    let now = state.api.engine.now();
    let prepared = prepare(body, now)?;
    let settings = settings(body, &prepared);
    state
        .api
        .store
        .create_pipeline_with_events(
            NewPipeline {
                id: new_id(),
                project_id: member.project.id.clone(),
                name: body.name.clone(),
                description: body.description.clone().unwrap_or_default(),
                is_publish: body.is_publish,
                component_id: non_empty(component_id),
                group_id: checked.group_id,
                manifest_version: "3.0".to_owned(),
                definition: prepared.definition,
                compiled: prepared.compiled,
                sources: json!(body.sources.clone().unwrap_or_default()),
                settings,
                variables: prepared.variables,
                variable_group_ids: checked.variable_group_ids,
                tag_ids: Vec::new(),
                origin_id: non_empty(body.id.clone()),
                from_source,
                creator_id: member.caller.user.id.clone(),
                now,
            },
            events,
        )
        .await
        .map_err(|err| write_error(err, &body.name))
}

/// `PUT /v5/{project_id}/api/pipelines/{pipeline_id}` (§4.3): full replacement, a new version.
#[utoipa::path(put, path = "/v5/{project_id}/api/pipelines/{pipeline_id}", tag = "Pipelines", params(ComponentQuery), request_body = PipelineBody,
    responses((status = 200, description = "Updated (a new version)", body = PipelineIdResponse)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
    QueryParams(query): QueryParams<ComponentQuery>,
    JsonBody(body): JsonBody<PipelineBody>,
) -> Result<Json<PipelineIdResponse>, ApiError> {
    member.require(Action::Edit)?;
    let existing = member.pipeline(&state, &path.pipeline_id).await?;
    if existing.is_banned {
        return Err(ApiError::NotAllowed(
            "the pipeline is disabled and cannot be updated".to_owned(),
        ));
    }
    let checked = check_body(&state, &member, &body).await?;
    let events = crate::triggers::check(&state, &member, &body, Some(&existing)).await?;
    let now = state.api.engine.now();
    let mut prepared = prepare(&body, now)?;
    let stored = state
        .api
        .store
        .variables(&existing.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    keep_masked_secrets(&mut prepared.variables, &stored);
    let settings = settings(&body, &prepared);
    state
        .api
        .store
        .update_pipeline_with_events(
            &member.project.id,
            &existing.id,
            PipelineUpdate {
                name: body.name.clone(),
                description: body.description.clone().unwrap_or_default(),
                is_publish: body.is_publish,
                component_id: non_empty(query.component_id),
                group_id: checked.group_id,
                manifest_version: "3.0".to_owned(),
                definition: prepared.definition,
                compiled: prepared.compiled,
                sources: json!(body.sources.clone().unwrap_or_default()),
                settings,
                variables: prepared.variables,
                variable_group_ids: checked.variable_group_ids,
                tag_ids: None,
                updater_id: member.caller.user.id.clone(),
                now,
            },
            events,
        )
        .await
        .map_err(|err| write_error(err, &body.name))?;
    Ok(Json(PipelineIdResponse {
        pipeline_id: existing.id,
    }))
}

/// `GET /v5/{project_id}/api/pipelines/{pipeline_id}` (§4.2); secret values are `******`.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}", tag = "Pipelines",
    responses((status = 200, description = "The pipeline; secret values are `******`", body = PipelineDetail)))]
pub(crate) async fn detail(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
) -> Result<Json<PipelineDetail>, ApiError> {
    member.require(Action::View)?;
    let record = member.pipeline(&state, &path.pipeline_id).await?;
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Pipeline);
    let variables = store.variables(&record.id).await.map_err(fail)?;
    let creator_name = store
        .user(&record.creator_id)
        .await
        .map_err(fail)?
        .map(|user| user.name)
        .unwrap_or_default();
    let group_name = group_name(&state, &record).await?;
    let tags = store.tags(&member.project.id).await.map_err(fail)?;
    let tags = tags
        .iter()
        .filter(|tag| record.tag_ids.contains(&tag.id))
        .map(|tag| tag_item(tag, &member.project.domain_id))
        .collect();
    let is_collect = !store
        .favorites_among(&member.caller.user.id, std::slice::from_ref(&record.id))
        .await
        .map_err(fail)?
        .is_empty();
    let config = &state.api.config;
    let context = DetailContext {
        region: &config.region,
        public_url: &config.public_url,
        domain_id: &member.project.domain_id,
        project_name: &member.project.name,
        creator_name,
        group_name,
        variables: &variables,
        tags,
        is_collect,
        permissions: permissions(member.role),
    };
    let mut detail = PipelineDetail::from_record(&record, context);
    detail.triggers = crate::triggers::detail_triggers(&state, &member, &record).await?;
    detail.schedules = crate::triggers::detail_schedules(&state, &record).await?;
    Ok(Json(detail))
}

/// `DELETE /v5/{project_id}/api/pipelines/{pipeline_id}` (§4.4): its unfinished runs are
/// stopped first.
#[utoipa::path(delete, path = "/v5/{project_id}/api/pipelines/{pipeline_id}", tag = "Pipelines",
    responses((status = 200, description = "Deleted; its unfinished runs were stopped", body = PipelineIdResponse)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
) -> Result<Json<PipelineIdResponse>, ApiError> {
    member.require(Action::Delete)?;
    let record = member.pipeline(&state, &path.pipeline_id).await?;
    let store = &state.api.store;
    let unfinished = RunQuery {
        statuses: RunStatus::ALL
            .iter()
            .copied()
            .filter(|status| !status.is_final())
            .collect(),
        limit: 100,
        ..RunQuery::default()
    };
    loop {
        let page = store
            .list_runs(&record.id, &unfinished)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
        let mut stopped = 0;
        for summary in &page.items {
            match state
                .api
                .engine
                .stop(&summary.run.id, &member.actor())
                .await
            {
                Ok(()) => stopped += 1,
                // Finished meanwhile: nothing left to stop.
                Err(runnel_engine::EngineError::NotAllowed(_)) => {}
                Err(err) => return Err(ApiError::from_engine(err, Missing::Run)),
            }
        }
        if stopped == 0 || page.items.len() < 100 {
            break;
        }
    }
    store
        .delete_pipeline(&member.project.id, &record.id, state.api.engine.now())
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    Ok(Json(PipelineIdResponse {
        pipeline_id: record.id,
    }))
}

/// `POST /v5/{project_id}/api/pipelines/list` (§4.5).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/list", tag = "Pipelines", request_body = ListPipelinesQuery,
    responses((status = 200, description = "A page of pipelines with their latest run", body = PipelineList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    member: Member,
    JsonBody(query): JsonBody<ListPipelinesQuery>,
) -> Result<Json<PipelineList>, ApiError> {
    member.require(Action::View)?;
    let (offset, limit) = page(query.offset, query.limit)?;
    let sort_key = match query.sort_key.as_deref() {
        None | Some("") | Some("update_time") => PipelineSortKey::UpdateTime,
        Some("create_time") => PipelineSortKey::CreateTime,
        Some("name") => PipelineSortKey::Name,
        Some(_) => {
            return Err(ApiError::invalid(
                "sort_key",
                "must be name, create_time or update_time",
            ));
        }
    };
    let zone = state.api.config.utc_offset_minutes;
    let time = |filter: &Option<crate::dto::TimeFilter>, field: &str| match filter {
        Some(filter) => filter.resolve(field, zone),
        None => Ok(None),
    };
    let latest_run = LatestRunFilter {
        statuses: run_statuses(query.status.as_deref().unwrap_or_default())?,
        executor_ids: query.executor_ids.clone().unwrap_or_default(),
        started_from: time(&query.start_time, "start_time")?,
        started_to: time(&query.end_time, "end_time")?,
        updated_after: time(&query.pipeline_run_update_time, "pipeline_run_update_time")?,
    };
    let own = &member.project.id;
    if query
        .project_id
        .as_ref()
        .is_some_and(|id| !id.is_empty() && id != own)
        || query
            .project_ids
            .iter()
            .flatten()
            .any(|id| !id.is_empty() && id != own)
    {
        return Err(ApiError::invalid(
            "project_ids",
            "only the project in the path can be listed",
        ));
    }
    if query
        .manifest_version_list
        .as_ref()
        .is_some_and(|versions| !versions.is_empty() && !versions.iter().any(|v| v == "3.0"))
    {
        // Every pipeline here is manifest version 3.0.
        return Ok(Json(PipelineList {
            offset,
            limit,
            total: 0,
            current_system_time: state.api.engine.now().as_millis(),
            pipelines: Vec::new(),
        }));
    }
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Pipeline);
    let found = store
        .list_pipelines(
            own,
            &PipelineQuery {
                name_contains: non_empty(query.name.clone()),
                group_id: non_empty(query.group_path_id.clone()),
                creator_id: non_empty(query.creator_id.clone()),
                creator_ids: query.creator_ids.clone().unwrap_or_default(),
                component_id: non_empty(query.component_id.clone()),
                tag_ids: query.tag_list.clone().unwrap_or_default(),
                exclude_id: non_empty(query.exclude_pipeline_id.clone()),
                is_banned: query.is_banned,
                latest_run,
                is_publish: query.is_publish,
                favorites_of: None,
                sort_key,
                sort_dir: sort_dir(query.sort_dir.as_deref(), "sort_dir")?,
                offset,
                limit,
            },
        )
        .await
        .map_err(fail)?;
    let ids: Vec<String> = found.items.iter().map(|record| record.id.clone()).collect();
    let favorites = store
        .favorites_among(&member.caller.user.id, &ids)
        .await
        .map_err(fail)?;
    let tags = store.tags(&member.project.id).await.map_err(fail)?;
    let config = &state.api.config;
    let mut pipelines = Vec::with_capacity(found.items.len());
    for record in &found.items {
        let latest = store
            .list_runs(
                &record.id,
                &RunQuery {
                    limit: 1,
                    ..RunQuery::default()
                },
            )
            .await
            .map_err(fail)?;
        let latest_run = latest.items.first().map(|summary| {
            let url = pipeline_url(&config.public_url, &record.project_id, &record.id);
            let detail_url = if url.is_empty() {
                url
            } else {
                format!("{url}/runs/{}", summary.run.id)
            };
            LatestRun::from_summary(summary, detail_url, config.utc_offset_minutes)
        });
        pipelines.push(PipelineListItem {
            pipeline_id: record.id.clone(),
            name: record.name.clone(),
            project_id: record.project_id.clone(),
            project_name: member.project.name.clone(),
            component_id: record.component_id.clone(),
            is_publish: record.is_publish,
            is_collect: favorites.contains(&record.id),
            manifest_version: record.manifest_version.clone(),
            create_time: record.created_at.as_millis(),
            latest_run,
            convert_sign: 0,
            security_level: record
                .settings
                .get("security_level")
                .and_then(Value::as_i64),
            banned: record.is_banned,
            description: record.description.clone(),
            tag_list: tags
                .iter()
                .filter(|tag| record.tag_ids.contains(&tag.id))
                .map(|tag| tag_item(tag, &member.project.domain_id))
                .collect(),
        });
    }
    Ok(Json(PipelineList {
        offset,
        limit,
        total: found.total,
        current_system_time: state.api.engine.now().as_millis(),
        pipelines,
    }))
}

/// The parts of a body checked against the project before anything is written.
struct CheckedBody {
    group_id: Option<String>,
    variable_group_ids: Vec<String>,
}

async fn check_body(
    state: &AppState,
    member: &Member,
    body: &PipelineBody,
) -> Result<CheckedBody, ApiError> {
    let name_chars = body.name.chars().count();
    if !(1..=128).contains(&name_chars)
        || !body
            .name
            .chars()
            .all(|ch| ch.is_alphanumeric() || ch == '-' || ch == '_')
    {
        return Err(ApiError::invalid(
            "name",
            "must be 1 to 128 characters: letters (Chinese included), digits, - and _",
        ));
    }
    if body
        .description
        .as_ref()
        .is_some_and(|text| text.chars().count() > 1024)
    {
        return Err(ApiError::invalid(
            "description",
            "may have at most 1024 characters",
        ));
    }
    for (index, source) in body.sources.iter().flatten().enumerate() {
        if source
            .get("type")
            .is_some_and(|kind| kind != "code" && kind != "artifact")
        {
            return Err(ApiError::invalid(
                format!("sources[{index}].type"),
                "must be code or artifact",
            ));
        }
        if source
            .get("params")
            .is_some_and(|params| !params.is_object() && !params.is_null())
        {
            return Err(ApiError::invalid(
                format!("sources[{index}].params"),
                "must be an object",
            ));
        }
    }
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Pipeline);
    let group_id = non_empty(body.group_id.clone());
    if let Some(group_id) = &group_id {
        let groups = store.groups(&member.project.id).await.map_err(fail)?;
        if !groups.iter().any(|group| &group.id == group_id) {
            return Err(ApiError::NotFound(Missing::Group));
        }
    }
    let variable_group_ids = body.variable_group_ids.clone().unwrap_or_default();
    for group_id in &variable_group_ids {
        let found = if crate::authz::is_valid_id(group_id) {
            store
                .variable_group(&member.project.id, group_id)
                .await
                .map_err(fail)?
        } else {
            None
        };
        if found.is_none() {
            return Err(ApiError::NotFound(Missing::VariableGroup));
        }
    }
    Ok(CheckedBody {
        group_id,
        variable_group_ids,
    })
}

/// The settings stored and echoed as given (§4.1); trigger secrets are kept encrypted with the
/// triggers (`crate::triggers`), never here.
fn settings(body: &PipelineBody, prepared: &Prepared) -> Value {
    let mut triggers = body.triggers.clone().unwrap_or_default();
    for trigger in &mut triggers {
        crate::triggers::stored_trigger(trigger);
    }
    json!({
        "concurrency_control": prepared.concurrency,
        "schedules": body.schedules.clone().unwrap_or_default(),
        "triggers": triggers,
        "execution_plans": body.execution_plans.clone().unwrap_or_default(),
        "cancel_strategy": body.cancel_strategy.clone(),
        "agency_name": body.agency_name.clone(),
        "security_level": body.security_level,
        "confidentiality_code": body.confidentiality_code.clone(),
        "disable_release_branch_management": body.disable_release_branch_management.unwrap_or(false),
        "project_name": body.project_name.clone(),
    })
}

/// A secret variable sent back as `******` keeps its stored value (S2: it was never shown).
fn keep_masked_secrets(variables: &mut [VariableSpec], stored: &[VariableSpec]) {
    for variable in variables.iter_mut().filter(|variable| variable.is_secret) {
        if let Some(previous) = stored
            .iter()
            .find(|previous| previous.name == variable.name && previous.is_secret)
        {
            if variable.value == MASK {
                variable.value = previous.value.clone();
            }
            if variable.latest_value.as_deref() == Some(MASK) {
                variable.latest_value = previous.latest_value.clone();
            }
        }
    }
}

async fn group_name(state: &AppState, record: &PipelineRecord) -> Result<Option<String>, ApiError> {
    let Some(group_id) = &record.group_id else {
        return Ok(None);
    };
    let groups = state
        .api
        .store
        .groups(&record.project_id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    Ok(groups
        .into_iter()
        .find(|group| &group.id == group_id)
        .map(|group| group.name))
}

pub(crate) fn permissions(role: Role) -> Permissions {
    Permissions {
        view: allows(role, Action::View),
        execute: allows(role, Action::Execute),
        update: allows(role, Action::Edit),
        delete: allows(role, Action::Delete),
    }
}

/// Store errors of a pipeline write: a duplicate name, an unknown binding, …
fn write_error(err: StoreError, name: &str) -> ApiError {
    match err {
        StoreError::Conflict(_) => ApiError::NameExists(format!(
            "a pipeline named `{name}` already exists in this project"
        )),
        other => ApiError::from_store(other, Missing::Pipeline),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

/// The latest-run statuses of a pipeline list filter (§4.5): run statuses (§12.1).
fn run_statuses(texts: &[String]) -> Result<Vec<RunStatus>, ApiError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            text.parse::<RunStatus>()
                .map_err(|_| ApiError::invalid(format!("status[{index}]"), "is not a run status"))
        })
        .collect()
}
