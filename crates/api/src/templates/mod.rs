//! Templates (spec §2, §4.7, §9): the v5 tenant-level template CRUD, list, favorite and copy;
//! creating a pipeline from a template (v5 §4.7 and the v3 task of §2.1–§2.2); the v3 template
//! list and detail, and the older v3 list of §3.7; and the shipped system templates loaded at
//! start.
//!
//! Who may do what (`docs/templates.md`): every user of the account reads, favorites and copies
//! templates and creates pipelines from them (with the Edit role in the target project); users
//! who are a developer or admin in at least one project of the account create templates; a
//! custom template is changed or deleted by its creator or by an admin of any project of the
//! account. System templates are never changed or deleted through the API
//! (`DEVPIPE.00011204`), only by the server when its shipped content changes.

mod check;
mod dto;
mod flow;
mod system;
pub(crate) mod v3;
pub(crate) mod v3_list;
pub(crate) mod v5;

pub(crate) use dto::lenient_bool;
pub(crate) use flow::lenient_string;
pub use system::{TemplateSyncError, sync_system_templates};

use crate::AppState;
use crate::auth::Caller;
use crate::authz::{Member, is_valid_id};
use crate::error::{ApiError, Missing};
use axum::Json;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use runnel_store::{IdentityStore, Role, TemplateRecord, TemplateStore};
use serde_json::json;

/// The routes of this module, merged into the API router. The first path segment after `/v5`
/// is named `project_id` in every route (the router needs one name per position); for the
/// tenant-level routes of §9 it holds the account (tenant) id.
pub(crate) fn routes() -> axum::Router<AppState> {
    let templates = "/v5/{project_id}/api/pipeline-templates";
    axum::Router::new()
        .route(templates, post(v5::create))
        .route(&format!("{templates}/list"), post(v5::list))
        .route(
            &format!("{templates}/{{template_id}}"),
            get(v5::detail).put(v5::update).delete(v5::delete),
        )
        .route(
            &format!("{templates}/{{template_id}}/favorite"),
            post(v5::favorite),
        )
        .route(&format!("{templates}/{{template_id}}/copy"), post(v5::copy))
        .route(
            &format!("{templates}/{{template_id}}/create-pipeline"),
            post(v5::create_pipeline),
        )
        .route("/v3/templates", get(v3::list))
        .route("/v3/templates/task", post(v3::create_task))
        .route("/v3/templates/{template_id}", get(v3::detail))
        .route("/v3/templates/{template_id}/status", get(v3::task_status))
        .route("/v3/pipeline/templates/list", post(v3_list::list))
}

/// Failures of the template routes: the API's own errors plus the template codes of §1.7.3.
#[derive(Debug)]
pub(crate) enum TemplateError {
    Api(ApiError),
    /// 400 `DEVPIPE.00011203`.
    NotFound,
    /// 400 `DEVPIPE.00011204`: what was refused.
    SystemTemplate(&'static str),
    /// 403 `DEVPIPE.00011405`: another account's templates, or an action the caller may not do.
    Forbidden(String),
}

impl From<ApiError> for TemplateError {
    fn from(err: ApiError) -> Self {
        TemplateError::Api(err)
    }
}

impl TemplateError {
    fn store(err: runnel_store::StoreError) -> TemplateError {
        match err {
            runnel_store::StoreError::NotFound => TemplateError::NotFound,
            other => TemplateError::Api(ApiError::from_store(other, Missing::Pipeline)),
        }
    }
}

impl IntoResponse for TemplateError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            TemplateError::Api(err) => return err.into_response(),
            TemplateError::NotFound => (
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00011203",
                "The template does not exist.".to_owned(),
            ),
            TemplateError::SystemTemplate(action) => (
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00011204",
                format!(
                    "System templates cannot be {action}; copy the template and change the copy."
                ),
            ),
            TemplateError::Forbidden(message) => {
                (StatusCode::FORBIDDEN, "DEVPIPE.00011405", message)
            }
        };
        (
            status,
            Json(json!({"error_code": code, "error_msg": message})),
        )
            .into_response()
    }
}

/// A caller of a tenant-level route: the path's account must be the caller's own.
#[derive(Debug, Clone)]
pub(crate) struct TenantCaller {
    pub(crate) caller: Caller,
}

impl TenantCaller {
    pub(crate) fn domain_id(&self) -> &str {
        &self.caller.user.domain_id
    }

    pub(crate) fn user_id(&self) -> &str {
        &self.caller.user.id
    }
}

impl FromRequestParts<AppState> for TenantCaller {
    type Rejection = TemplateError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| other_tenant())?;
        let tenant = params
            .iter()
            .find(|(name, _)| *name == "project_id")
            .map(|(_, value)| value.to_owned())
            .ok_or_else(other_tenant)?;
        if tenant != caller.user.domain_id {
            return Err(other_tenant());
        }
        Ok(TenantCaller { caller })
    }
}

fn other_tenant() -> TemplateError {
    TemplateError::Forbidden(
        "The account (tenant) id in the path is not your account: templates are managed per account."
            .to_owned(),
    )
}

/// The caller's roles across the projects of their account.
async fn roles(state: &AppState, caller: &Caller) -> Result<Vec<Role>, TemplateError> {
    let store = &state.api.store;
    let projects = store
        .projects(&caller.user.domain_id)
        .await
        .map_err(TemplateError::store)?;
    let mut roles = Vec::new();
    for project in projects {
        if let Some(role) = store
            .member_role(&project.id, &caller.user.id)
            .await
            .map_err(TemplateError::store)?
        {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Creating templates needs the developer or admin role in some project of the account.
pub(crate) async fn require_author(state: &AppState, caller: &Caller) -> Result<(), TemplateError> {
    let roles = roles(state, caller).await?;
    if roles
        .iter()
        .any(|role| matches!(role, Role::Admin | Role::Developer))
    {
        Ok(())
    } else {
        Err(TemplateError::Forbidden(
            "Creating templates needs the developer or admin role in a project of your account."
                .to_owned(),
        ))
    }
}

/// Changing or deleting a custom template: its creator, or an admin of a project of the account.
pub(crate) async fn require_manager(
    state: &AppState,
    caller: &Caller,
    template: &TemplateRecord,
    action: &'static str,
) -> Result<(), TemplateError> {
    if template.is_system {
        return Err(TemplateError::SystemTemplate(action));
    }
    if template.creator_id == caller.user.id {
        return Ok(());
    }
    let roles = roles(state, caller).await?;
    if roles.contains(&Role::Admin) {
        Ok(())
    } else {
        Err(TemplateError::Forbidden(format!(
            "Only the template's creator or a project admin may {} it.",
            match action {
                "deleted" => "delete",
                _ => "change",
            }
        )))
    }
}

/// A template the caller's account sees (its own or a system template), or `DEVPIPE.00011203`.
pub(crate) async fn template_of(
    state: &AppState,
    domain_id: &str,
    template_id: &str,
) -> Result<TemplateRecord, TemplateError> {
    if !is_valid_id(template_id) {
        return Err(TemplateError::NotFound);
    }
    state
        .api
        .store
        .template(domain_id, template_id)
        .await
        .map_err(TemplateError::store)?
        .ok_or(TemplateError::NotFound)
}

/// A caller as a member of a project named in a body (v3 routes carry no project in the path);
/// fails like the `Member` extractor.
pub(crate) async fn member_of(
    state: &AppState,
    caller: &Caller,
    project_id: &str,
) -> Result<Member, ApiError> {
    if !is_valid_id(project_id) {
        return Err(ApiError::ProjectNotFound);
    }
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Pipeline);
    let project = store
        .project(project_id)
        .await
        .map_err(fail)?
        .filter(|project| project.domain_id == caller.user.domain_id)
        .ok_or(ApiError::ProjectNotFound)?;
    let role = store
        .member_role(&project.id, &caller.user.id)
        .await
        .map_err(fail)?
        .ok_or(ApiError::ProjectNotFound)?;
    Ok(Member {
        caller: caller.clone(),
        project,
        role,
    })
}
