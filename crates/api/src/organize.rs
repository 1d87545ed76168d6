//! Groups (§6), tags (§7) and variable groups (§8): how a project organizes its pipelines.
//! Reads need the view permission, creating and changing the edit permission, deleting the
//! delete permission (`docs/permissions.md`).

pub(crate) mod groups;
pub(crate) mod tags;
pub(crate) mod variables;

use crate::AppState;
use crate::error::ApiError;
use axum::routing::{delete, get, post, put};

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    let group = "/v5/{project_id}/api/pipeline-group";
    let tag = "/v5/{project_id}/api/pipeline-tag";
    let variable_group = "/v5/{project_id}/api/pipeline/variable/group";
    axum::Router::new()
        .route(&format!("{group}/create"), post(groups::create_group))
        .route(&format!("{group}/update"), post(groups::rename_group))
        .route(&format!("{group}/delete"), delete(groups::delete_group))
        .route(&format!("{group}/tree"), get(groups::group_tree))
        .route(
            &format!("{group}/pipeline/move"),
            post(groups::move_pipelines),
        )
        .route(&format!("{tag}/create"), post(tags::create_tag))
        .route(
            &format!("{tag}/list"),
            get(tags::list_tags).post(tags::list_tags_post),
        )
        .route(&format!("{tag}/update"), post(tags::update_tag))
        .route(&format!("{tag}/delete"), delete(tags::delete_tag))
        .route(&format!("{tag}/set-tags"), post(tags::set_tags))
        .route(
            &format!("{variable_group}/create"),
            post(variables::create_variable_group),
        )
        .route(
            &format!("{variable_group}/list"),
            post(variables::list_variable_groups),
        )
        .route(
            &format!("{variable_group}/update"),
            put(variables::update_variable_group),
        )
        .route(
            &format!("{variable_group}/delete"),
            delete(variables::delete_variable_group),
        )
        .route(
            &format!("{variable_group}/relation"),
            post(variables::bind_variable_groups),
        )
        .route(
            &format!("{variable_group}/pipeline"),
            get(variables::bound_variable_groups),
        )
        .route(
            &format!("{variable_group}/{{id}}"),
            get(variables::variable_group_detail),
        )
}

/// A display name: 1–128 characters, not only whitespace.
fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if !(1..=128).contains(&chars) || name.trim().is_empty() {
        return Err(ApiError::invalid(
            field,
            "must be 1 to 128 characters and not blank",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// When a body repeats the project id, it must be the path's.
fn check_same_project(given: Option<&str>, project_id: &str) -> Result<(), ApiError> {
    match given {
        Some(given) if !given.is_empty() && given != project_id => Err(ApiError::invalid(
            "project_id",
            "must be the project in the path",
        )),
        _ => Ok(()),
    }
}
