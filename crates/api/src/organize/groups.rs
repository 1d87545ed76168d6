//! Pipeline groups (spec §6): folders nested at most three levels deep.

use super::{check_name, check_same_project};
use crate::AppState;
use crate::authz::{Action, Member, is_valid_id};
use crate::dto::organize::{
    GroupCreateBody, GroupUpdateBody, GroupVo, IdQuery, MoveBody, MoveOutcome,
};
use crate::dto::{SUCCESS, Success};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_store::{
    GroupRecord, MAX_GROUP_DEPTH, NewGroup, OrganizeStore, PipelineQuery, PipelineStore, StoreError,
};

/// The most pipelines one move may name.
const MAX_MOVE: usize = 100;

/// Creates a group (§6.1); answers the group.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-group/create", tag = "Pipeline groups",
    request_body = GroupCreateBody, responses((status = 200, description = "The new group", body = GroupVo)))]
pub(crate) async fn create_group(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<GroupCreateBody>,
) -> Result<Json<GroupVo>, ApiError> {
    member.require(Action::Edit)?;
    check_name("name", &body.name)?;
    check_same_project(Some(&body.project_id), &member.project.id)?;
    let store = &state.api.store;
    let groups = project_groups(&state, &member).await?;
    let parent_id = body.parent_id.filter(|id| !id.is_empty());
    if let Some(parent_id) = &parent_id {
        let parent = groups
            .iter()
            .find(|group| &group.id == parent_id)
            .ok_or(ApiError::NotFound(Missing::Group))?;
        if parent.depth >= MAX_GROUP_DEPTH {
            return Err(ApiError::invalid(
                "parent_id",
                format!("groups nest at most {MAX_GROUP_DEPTH} levels deep"),
            ));
        }
    }
    let record = store
        .create_group(NewGroup {
            project_id: member.project.id.clone(),
            name: body.name.clone(),
            parent_id,
            creator_id: member.caller.user.id.clone(),
            now: state.api.engine.now(),
        })
        .await
        .map_err(|err| name_error(err, "a group with this name already exists at this level"))?;
    let ungrouped = ungrouped_count(&state, &member, &groups).await?;
    Ok(Json(GroupVo::from_record(
        &record,
        &member.project.domain_id,
        ungrouped,
    )))
}

/// Renames a group (§6.2).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-group/update", tag = "Pipeline groups",
    request_body = GroupUpdateBody, responses((status = 200, description = "Renamed", body = Success)))]
pub(crate) async fn rename_group(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<GroupUpdateBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    check_name("name", &body.name)?;
    if !is_valid_id(&body.id) {
        return Err(ApiError::NotFound(Missing::Group));
    }
    state
        .api
        .store
        .rename_group(
            &member.project.id,
            &body.id,
            &body.name,
            &member.caller.user.id,
            state.api.engine.now(),
        )
        .await
        .map_err(|err| name_error(err, "a group with this name already exists at this level"))?;
    Ok(Json(SUCCESS))
}

/// Deletes a group with its subgroups; their pipelines become ungrouped (§6.3).
#[utoipa::path(delete, path = "/v5/{project_id}/api/pipeline-group/delete", tag = "Pipeline groups",
    params(IdQuery), responses((status = 200, description = "Deleted", body = Success)))]
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    member: Member,
    QueryParams(query): QueryParams<IdQuery>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Delete)?;
    if !is_valid_id(&query.id) {
        return Err(ApiError::NotFound(Missing::Group));
    }
    state
        .api
        .store
        .delete_group(&member.project.id, &query.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Group))?;
    Ok(Json(SUCCESS))
}

/// The project's groups as a tree (§6.4): top-level groups with nested `children`.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipeline-group/tree", tag = "Pipeline groups",
    responses((status = 200, description = "Top-level groups, each with its subgroups", body = Vec<GroupVo>)))]
pub(crate) async fn group_tree(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<Vec<GroupVo>>, ApiError> {
    member.require(Action::View)?;
    let groups = project_groups(&state, &member).await?;
    let ungrouped = ungrouped_count(&state, &member, &groups).await?;
    Ok(Json(tree(
        &groups,
        None,
        &member.project.domain_id,
        ungrouped,
    )))
}

/// Moves pipelines into a group, or out of every group with `group_id: ""` (§6.5). Answers
/// one outcome per pipeline; pipelines not in the project fail, the others move together.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-group/pipeline/move", tag = "Pipeline groups",
    request_body = MoveBody, responses((status = 200, description = "One outcome per pipeline", body = Vec<MoveOutcome>)))]
pub(crate) async fn move_pipelines(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<MoveBody>,
) -> Result<Json<Vec<MoveOutcome>>, ApiError> {
    member.require(Action::Edit)?;
    if body.pipelines.len() > MAX_MOVE {
        return Err(ApiError::invalid(
            "pipelines",
            format!("at most {MAX_MOVE} pipelines per move"),
        ));
    }
    let group_id = Some(body.group_id.as_str()).filter(|id| !id.is_empty());
    if let Some(group_id) = group_id {
        let groups = project_groups(&state, &member).await?;
        if !groups.iter().any(|group| group.id == group_id) {
            return Err(ApiError::NotFound(Missing::Group));
        }
    }
    let ids: Vec<String> = body
        .pipelines
        .iter()
        .map(|pipeline| pipeline.pipeline_id.clone())
        .filter(|id| is_valid_id(id))
        .collect();
    let moved = if ids.is_empty() {
        Vec::new()
    } else {
        state
            .api
            .store
            .move_pipelines(&member.project.id, group_id, &ids, state.api.engine.now())
            .await
            .map_err(|err| match err {
                // The group was deleted meanwhile.
                StoreError::Invalid(_) => ApiError::NotFound(Missing::Group),
                other => ApiError::from_store(other, Missing::Pipeline),
            })?
    };
    Ok(Json(
        body.pipelines
            .iter()
            .map(|pipeline| MoveOutcome {
                code: if moved.contains(&pipeline.pipeline_id) {
                    "success"
                } else {
                    "failed"
                }
                .to_owned(),
                pipeline_id: pipeline.pipeline_id.clone(),
                pipeline_name: pipeline.pipeline_name.clone(),
            })
            .collect(),
    ))
}

async fn project_groups(state: &AppState, member: &Member) -> Result<Vec<GroupRecord>, ApiError> {
    state
        .api
        .store
        .groups(&member.project.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Group))
}

/// Pipelines of the project in no group: all of them minus those in a group.
async fn ungrouped_count(
    state: &AppState,
    member: &Member,
    groups: &[GroupRecord],
) -> Result<i64, ApiError> {
    let all = state
        .api
        .store
        .list_pipelines(
            &member.project.id,
            &PipelineQuery {
                limit: 1,
                ..PipelineQuery::default()
            },
        )
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?
        .total;
    let grouped: i64 = groups.iter().map(|group| group.pipeline_count).sum();
    Ok((all - grouped).max(0))
}

/// The groups whose parent is `parent`, each with its subtree, in the store's order.
fn tree(
    groups: &[GroupRecord],
    parent: Option<&str>,
    domain_id: &str,
    ungrouped: i64,
) -> Vec<GroupVo> {
    groups
        .iter()
        .filter(|group| group.parent_id.as_deref() == parent)
        .map(|group| {
            let mut node = GroupVo::from_record(group, domain_id, ungrouped);
            node.children = tree(groups, Some(&group.id), domain_id, ungrouped);
            node
        })
        .collect()
}

/// A duplicate name is `DEVPIPE.00011304`; a group that does not exist `DEVPIPE.00011301`.
fn name_error(err: StoreError, duplicate: &str) -> ApiError {
    match err {
        StoreError::Conflict(_) => ApiError::NameExists(duplicate.to_owned()),
        StoreError::Invalid(_) => ApiError::NotFound(Missing::Group),
        other => ApiError::from_store(other, Missing::Group),
    }
}
