//! Variable groups (spec §8): project-level parameter sets that pipelines bind. Secret values
//! are encrypted at rest by the store and answered as `******`.

use super::{check_name, check_same_project};
use crate::AppState;
use crate::authz::{Action, Member, is_valid_id};
use crate::dto::organize::{
    GroupVariable, GroupVariableInput, IdQuery, PipelineIdQuery, RelatedPipeline, RelationBody,
    VariableGroupBody, VariableGroupCreated, VariableGroupList, VariableGroupListBody,
    VariableGroupVo,
};
use crate::dto::pipeline::MASK;
use crate::dto::{SUCCESS, Success, page};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_domain::params::{VariableType, check_variable_name};
use runnel_store::{
    IdentityStore, NewVariableGroup, OrganizeStore, PipelineStore, StoreError, VariableGroupRecord,
    VariableGroupVariable,
};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// The most variables one group holds (spec §8).
const MAX_GROUP_VARIABLES: usize = 20;
/// The most groups one pipeline binds.
const MAX_BINDINGS: usize = 20;

/// `…/pipeline/variable/group/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VariableGroupPath {
    id: String,
}

/// Creates a variable group (§8.1).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline/variable/group/create", tag = "Variable groups",
    request_body = VariableGroupBody, responses((status = 200, description = "The new group's id", body = VariableGroupCreated)))]
pub(crate) async fn create_variable_group(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<VariableGroupBody>,
) -> Result<Json<VariableGroupCreated>, ApiError> {
    member.require(Action::Edit)?;
    let group = checked_group(&state, &member, &body, None)?;
    let id = state
        .api
        .store
        .create_variable_group(group)
        .await
        .map_err(group_error)?;
    Ok(Json(VariableGroupCreated {
        pipeline_variable_group_id: id,
    }))
}

/// A variable group with its variables (secrets masked) and the pipelines bound to it (§8.2).
#[utoipa::path(get, path = "/v5/{project_id}/api/pipeline/variable/group/{id}", tag = "Variable groups",
    responses((status = 200, description = "The group", body = VariableGroupVo)))]
pub(crate) async fn variable_group_detail(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<VariableGroupPath>,
) -> Result<Json<VariableGroupVo>, ApiError> {
    member.require(Action::View)?;
    let record = find(&state, &member, &path.id).await?;
    let mut names = Names::default();
    Ok(Json(vo(&state, &member, &record, &mut names).await?))
}

/// The project's variable groups, oldest first, with a name filter (§8.3).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline/variable/group/list", tag = "Variable groups",
    request_body = VariableGroupListBody, responses((status = 200, description = "A page of groups", body = VariableGroupList)))]
pub(crate) async fn list_variable_groups(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<VariableGroupListBody>,
) -> Result<Json<VariableGroupList>, ApiError> {
    member.require(Action::View)?;
    let (offset, limit) = page(body.offset, body.limit)?;
    let found = state
        .api
        .store
        .list_variable_groups(
            &member.project.id,
            body.name.as_deref().filter(|name| !name.is_empty()),
            offset,
            limit,
        )
        .await
        .map_err(|err| ApiError::from_store(err, Missing::VariableGroup))?;
    let mut names = Names::default();
    let mut items = Vec::with_capacity(found.items.len());
    for record in &found.items {
        items.push(vo(&state, &member, record, &mut names).await?);
    }
    Ok(Json(VariableGroupList {
        pipeline_variable_groups: items,
        offset,
        limit,
        total: found.total,
    }))
}

/// Replaces a variable group's name, description and variables (§8.4); a secret sent back as
/// `******` keeps its stored value.
#[utoipa::path(put, path = "/v5/{project_id}/api/pipeline/variable/group/update", tag = "Variable groups",
    request_body = VariableGroupBody, responses((status = 200, description = "Updated", body = Success)))]
pub(crate) async fn update_variable_group(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<VariableGroupBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    let id = body
        .id
        .clone()
        .ok_or_else(|| ApiError::invalid("id", "is required"))?;
    let stored = find(&state, &member, &id).await?;
    let group = checked_group(&state, &member, &body, Some(&stored.variables))?;
    state
        .api
        .store
        .update_variable_group(&id, group)
        .await
        .map_err(group_error)?;
    Ok(Json(SUCCESS))
}

/// Deletes a variable group; pipelines bound to it lose the binding (§8.5).
#[utoipa::path(delete, path = "/v5/{project_id}/api/pipeline/variable/group/delete", tag = "Variable groups",
    params(IdQuery), responses((status = 200, description = "Deleted", body = Success)))]
pub(crate) async fn delete_variable_group(
    State(state): State<AppState>,
    member: Member,
    QueryParams(query): QueryParams<IdQuery>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Delete)?;
    if !is_valid_id(&query.id) {
        return Err(ApiError::NotFound(Missing::VariableGroup));
    }
    state
        .api
        .store
        .delete_variable_group(&member.project.id, &query.id)
        .await
        .map_err(group_error)?;
    Ok(Json(SUCCESS))
}

/// Replaces the groups bound to a pipeline, in order: the last wins on a name (§8.6).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline/variable/group/relation", tag = "Variable groups",
    request_body = RelationBody, responses((status = 200, description = "Bound", body = Success)))]
pub(crate) async fn bind_variable_groups(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<RelationBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    let pipeline = member.pipeline(&state, &body.pipeline_id).await?;
    if body.variable_group_ids.len() > MAX_BINDINGS {
        return Err(ApiError::invalid(
            "variable_group_ids",
            format!("a pipeline binds at most {MAX_BINDINGS} variable groups"),
        ));
    }
    let mut seen = HashSet::new();
    for (index, id) in body.variable_group_ids.iter().enumerate() {
        if !seen.insert(id) {
            return Err(ApiError::invalid(
                format!("variable_group_ids[{index}]"),
                "is listed twice",
            ));
        }
        if !is_valid_id(id) {
            return Err(ApiError::NotFound(Missing::VariableGroup));
        }
    }
    state
        .api
        .store
        .bind_variable_groups(
            &member.project.id,
            &pipeline.id,
            &body.variable_group_ids,
            state.api.engine.now(),
        )
        .await
        .map_err(|err| match err {
            StoreError::NotFound => ApiError::NotFound(Missing::Pipeline),
            StoreError::Invalid(_) => ApiError::NotFound(Missing::VariableGroup),
            other => ApiError::from_store(other, Missing::VariableGroup),
        })?;
    Ok(Json(SUCCESS))
}

/// The groups bound to a pipeline, in binding order (§8.6).
#[utoipa::path(get, path = "/v5/{project_id}/api/pipeline/variable/group/pipeline", tag = "Variable groups",
    params(PipelineIdQuery), responses((status = 200, description = "The bound groups", body = Vec<VariableGroupVo>)))]
pub(crate) async fn bound_variable_groups(
    State(state): State<AppState>,
    member: Member,
    QueryParams(query): QueryParams<PipelineIdQuery>,
) -> Result<Json<Vec<VariableGroupVo>>, ApiError> {
    member.require(Action::View)?;
    let pipeline = member.pipeline(&state, &query.pipeline_id).await?;
    let groups = state
        .api
        .store
        .pipeline_variable_groups(&pipeline.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::VariableGroup))?;
    let mut names = Names::default();
    let mut items = Vec::with_capacity(groups.len());
    for record in &groups {
        items.push(vo(&state, &member, record, &mut names).await?);
    }
    Ok(Json(items))
}

async fn find(
    state: &AppState,
    member: &Member,
    id: &str,
) -> Result<VariableGroupRecord, ApiError> {
    if !is_valid_id(id) {
        return Err(ApiError::NotFound(Missing::VariableGroup));
    }
    state
        .api
        .store
        .variable_group(&member.project.id, id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::VariableGroup))?
        .ok_or(ApiError::NotFound(Missing::VariableGroup))
}

/// Checks a create or update body; `stored` are the variables a masked secret falls back to.
fn checked_group(
    state: &AppState,
    member: &Member,
    body: &VariableGroupBody,
    stored: Option<&[VariableGroupVariable]>,
) -> Result<NewVariableGroup, ApiError> {
    check_name("name", &body.name)?;
    check_same_project(body.project_id.as_deref(), &member.project.id)?;
    let description = body.description.clone().unwrap_or_default();
    if description.chars().count() > 1024 {
        return Err(ApiError::invalid(
            "description",
            "may have at most 1024 characters",
        ));
    }
    let inputs = body.variables.as_deref().unwrap_or_default();
    Ok(NewVariableGroup {
        project_id: member.project.id.clone(),
        name: body.name.clone(),
        description,
        variables: group_variables(inputs, stored.unwrap_or_default())?,
        actor_id: member.caller.user.id.clone(),
        now: state.api.engine.now(),
    })
}

/// Checks every variable; the first problem is answered with its path.
fn group_variables(
    inputs: &[GroupVariableInput],
    stored: &[VariableGroupVariable],
) -> Result<Vec<VariableGroupVariable>, ApiError> {
    if inputs.len() > MAX_GROUP_VARIABLES {
        return Err(ApiError::invalid(
            "variables",
            format!("a variable group may have at most {MAX_GROUP_VARIABLES} variables"),
        ));
    }
    let mut names = HashSet::new();
    let mut variables = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let field = |name: &str| format!("variables[{index}].{name}");
        check_variable_name(&input.name)
            .map_err(|reason| ApiError::invalid(field("name"), reason))?;
        if !names.insert(input.name.clone()) {
            return Err(ApiError::invalid(field("name"), "is used twice"));
        }
        let var_type = match input.var_type.as_deref() {
            None | Some("") => VariableType::String,
            Some(text) => VariableType::parse(text).ok_or_else(|| {
                ApiError::invalid(field("type"), "must be string, enum or autoIncrement")
            })?,
        };
        let mut value = input.value.clone().unwrap_or_default();
        if value.chars().count() > 8192 || value.contains('\0') {
            return Err(ApiError::invalid(
                field("value"),
                "must be at most 8192 characters, without NUL",
            ));
        }
        let description = input.description.clone().unwrap_or_default();
        if description.chars().count() > 1024 {
            return Err(ApiError::invalid(
                field("description"),
                "may have at most 1024 characters",
            ));
        }
        let sequence = input
            .sequence
            .unwrap_or_else(|| i64::try_from(index + 1).unwrap_or(i64::MAX));
        if !(0..=2_147_483_647).contains(&sequence) {
            return Err(ApiError::invalid(
                field("sequence"),
                "must be from 0 to 2147483647",
            ));
        }
        let is_secret = input.is_secret.unwrap_or(false);
        if is_secret
            && value == MASK
            && let Some(previous) = stored
                .iter()
                .find(|previous| previous.name == input.name && previous.is_secret)
        {
            value = previous.value.clone();
        }
        variables.push(VariableGroupVariable {
            name: input.name.clone(),
            sequence,
            var_type,
            value,
            is_secret,
            description,
        });
    }
    Ok(variables)
}

/// User and pipeline names already looked up while building one answer.
#[derive(Default)]
struct Names {
    users: HashMap<String, String>,
    pipelines: HashMap<String, Option<String>>,
}

async fn vo(
    state: &AppState,
    member: &Member,
    record: &VariableGroupRecord,
    names: &mut Names,
) -> Result<VariableGroupVo, ApiError> {
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::VariableGroup);
    let mut related_pipelines = Vec::new();
    for pipeline_id in &record.related_pipeline_ids {
        if !names.pipelines.contains_key(pipeline_id) {
            let name = store
                .pipeline(&member.project.id, pipeline_id)
                .await
                .map_err(fail)?
                .map(|pipeline| pipeline.name);
            names.pipelines.insert(pipeline_id.clone(), name);
        }
        if let Some(Some(name)) = names.pipelines.get(pipeline_id) {
            related_pipelines.push(RelatedPipeline {
                id: pipeline_id.clone(),
                name: name.clone(),
            });
        }
    }
    let mut user_name = async |user_id: &str| -> Result<String, ApiError> {
        if let Some(name) = names.users.get(user_id) {
            return Ok(name.clone());
        }
        let name = store
            .user(user_id)
            .await
            .map_err(fail)?
            .map(|user| user.name)
            .unwrap_or_default();
        names.users.insert(user_id.to_owned(), name.clone());
        Ok(name)
    };
    let creator_name = user_name(&record.creator_id).await?;
    let updater_name = user_name(&record.updater_id).await?;
    Ok(VariableGroupVo {
        id: record.id.clone(),
        project_id: record.project_id.clone(),
        domain_id: member.project.domain_id.clone(),
        name: record.name.clone(),
        description: record.description.clone(),
        variables: record.variables.iter().map(GroupVariable::masked).collect(),
        related_pipelines,
        creator_id: record.creator_id.clone(),
        updater_id: record.updater_id.clone(),
        creator_name,
        updater_name,
        create_time: record.created_at.as_millis(),
        update_time: record.updated_at.as_millis(),
    })
}

fn group_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(_) => ApiError::NameExists(
            "a variable group with this name already exists in this project".to_owned(),
        ),
        other => ApiError::from_store(other, Missing::VariableGroup),
    }
}
