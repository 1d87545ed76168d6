//! Pipeline tags (spec §7): project-level labels with a colour.

use super::{check_name, check_same_project};
use crate::AppState;
use crate::authz::{Action, Member, is_valid_id};
use crate::dto::organize::{
    SetTagsBody, TagCreateBody, TagIdQuery, TagListQuery, TagUpdateBody, TagVo,
};
use crate::dto::{SUCCESS, Success};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_store::{NewTag, OrganizeStore, StoreError};

/// The most pipelines or tags one set-tags call may name.
const MAX_SET: usize = 100;

/// Creates a tag (§7.1). No id is returned: clients find the new tag by name in the list.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-tag/create", tag = "Pipeline tags",
    request_body = TagCreateBody, responses((status = 200, description = "Created", body = Success)))]
pub(crate) async fn create_tag(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<TagCreateBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    check_name("name", &body.name)?;
    check_color(&body.color)?;
    state
        .api
        .store
        .create_tag(NewTag {
            project_id: member.project.id.clone(),
            name: body.name,
            color: body.color,
            now: state.api.engine.now(),
        })
        .await
        .map_err(tag_error)?;
    Ok(Json(SUCCESS))
}

/// The project's tags, by name (§7.2).
#[utoipa::path(get, path = "/v5/{project_id}/api/pipeline-tag/list", tag = "Pipeline tags",
    params(TagListQuery), responses((status = 200, description = "Every tag of the project", body = Vec<TagVo>)))]
pub(crate) async fn list_tags(
    State(state): State<AppState>,
    member: Member,
    QueryParams(query): QueryParams<TagListQuery>,
) -> Result<Json<Vec<TagVo>>, ApiError> {
    member.require(Action::View)?;
    check_same_project(query.proj_id.as_deref(), &member.project.id)
        .map_err(|_| ApiError::invalid("proj_id", "must be the project in the path"))?;
    let tags = state
        .api
        .store
        .tags(&member.project.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Tag))?;
    Ok(Json(
        tags.into_iter()
            .map(|tag| TagVo {
                tag_id: tag.id,
                name: tag.name,
                color: tag.color,
                project_id: tag.project_id,
                project_name: member.project.name.clone(),
            })
            .collect(),
    ))
}

/// The tag list by POST, as Huawei's Terraform provider calls it (§7.2); the body is ignored.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-tag/list", tag = "Pipeline tags",
    params(TagListQuery), responses((status = 200, description = "Every tag of the project", body = Vec<TagVo>)))]
pub(crate) async fn list_tags_post(
    state: State<AppState>,
    member: Member,
    query: QueryParams<TagListQuery>,
) -> Result<Json<Vec<TagVo>>, ApiError> {
    list_tags(state, member, query).await
}

/// Renames or recolours a tag (§7.3).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-tag/update", tag = "Pipeline tags",
    request_body = TagUpdateBody, responses((status = 200, description = "Updated", body = Success)))]
pub(crate) async fn update_tag(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<TagUpdateBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    check_name("name", &body.name)?;
    check_color(&body.color)?;
    if !is_valid_id(&body.tag_id) {
        return Err(ApiError::NotFound(Missing::Tag));
    }
    state
        .api
        .store
        .update_tag(
            &member.project.id,
            &body.tag_id,
            &body.name,
            &body.color,
            state.api.engine.now(),
        )
        .await
        .map_err(tag_error)?;
    Ok(Json(SUCCESS))
}

/// Deletes a tag; it is removed from every pipeline (§7.4).
#[utoipa::path(delete, path = "/v5/{project_id}/api/pipeline-tag/delete", tag = "Pipeline tags",
    params(TagIdQuery), responses((status = 200, description = "Deleted", body = Success)))]
pub(crate) async fn delete_tag(
    State(state): State<AppState>,
    member: Member,
    QueryParams(query): QueryParams<TagIdQuery>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Delete)?;
    if !is_valid_id(&query.tag_id) {
        return Err(ApiError::NotFound(Missing::Tag));
    }
    state
        .api
        .store
        .delete_tag(&member.project.id, &query.tag_id)
        .await
        .map_err(tag_error)?;
    Ok(Json(SUCCESS))
}

/// Adds every listed tag to every listed pipeline, all or nothing (§7.5).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-tag/set-tags", tag = "Pipeline tags",
    request_body = SetTagsBody, responses((status = 200, description = "Tagged", body = Success)))]
pub(crate) async fn set_tags(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<SetTagsBody>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Edit)?;
    for (field, ids) in [
        ("pipeline_ids", &body.pipeline_ids),
        ("tag_ids", &body.tag_ids),
    ] {
        if ids.len() > MAX_SET {
            return Err(ApiError::invalid(field, format!("at most {MAX_SET} ids")));
        }
    }
    if !body.pipeline_ids.iter().all(|id| is_valid_id(id)) {
        return Err(ApiError::NotFound(Missing::Pipeline));
    }
    if !body.tag_ids.iter().all(|id| is_valid_id(id)) {
        return Err(ApiError::NotFound(Missing::Tag));
    }
    state
        .api
        .store
        .tag_pipelines(&member.project.id, &body.pipeline_ids, &body.tag_ids)
        .await
        .map_err(|err| match err {
            StoreError::NotFound => ApiError::NotFound(Missing::Pipeline),
            StoreError::Invalid(_) => ApiError::NotFound(Missing::Tag),
            other => ApiError::from_store(other, Missing::Tag),
        })?;
    Ok(Json(SUCCESS))
}

/// `#rgb` or `#rrggbb`.
fn check_color(color: &str) -> Result<(), ApiError> {
    let digits = color.strip_prefix('#').unwrap_or("");
    if matches!(digits.len(), 3 | 6) && digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "color",
            "must be a colour as #rrggbb or #rgb",
        ))
    }
}

fn tag_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(_) => {
            ApiError::NameExists("a tag with this name already exists in this project".to_owned())
        }
        other => ApiError::from_store(other, Missing::Tag),
    }
}
