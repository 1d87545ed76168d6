//! Administration endpoints (admin-only): users, projects, members, AK/SK pairs, token revocation.
//!
//! Every `/v5/admin/…` route is for domain administrators (`docs/permissions.md`) and acts only
//! inside the caller's domain: a user, project or access key of another domain answers exactly
//! like one that does not exist. Each change is one store transaction with its audit event, and
//! bad input is refused before anything is written. `GET /v5/projects` (the caller's own
//! projects and roles) is for every authenticated user.

use crate::AppState;
use crate::auth::Caller;
use crate::authz::is_valid_id;
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{CACHE_CONTROL, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use runnel_store::{
    AccessKeyInfo, AdminActor, IdentityAdminStore, IdentityStore, NewUser, ProjectRecord, Role,
    StoreError, UserRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// The longest user name.
const MAX_USER_NAME: usize = 64;
/// Password length bounds (characters).
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
/// The longest project name.
const MAX_PROJECT_NAME: usize = 128;
/// The longest project description.
const MAX_PROJECT_DESCRIPTION: usize = 1024;
/// The longest access key description.
const MAX_KEY_DESCRIPTION: usize = 255;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v5/projects", get(own_projects))
        .route("/v5/admin/users", get(list_users).post(create_user))
        .route("/v5/admin/users/{user_id}/disable", post(disable_user))
        .route("/v5/admin/users/{user_id}/enable", post(enable_user))
        .route(
            "/v5/admin/users/{user_id}/tokens/revoke",
            post(revoke_tokens),
        )
        .route(
            "/v5/admin/users/{user_id}/access-keys",
            get(list_access_keys).post(create_access_key),
        )
        .route("/v5/admin/access-keys/{ak}", delete(delete_access_key))
        .route(
            "/v5/admin/projects",
            get(list_projects).post(create_project),
        )
        .route(
            "/v5/admin/projects/{project_id}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/v5/admin/projects/{project_id}/members/{user_id}",
            delete(remove_member),
        )
}

/// A caller who administers their domain; anybody else gets `403 DEVPIPE.00011405`.
pub(crate) struct DomainAdmin {
    user: UserRecord,
}

impl DomainAdmin {
    fn actor(&self) -> AdminActor {
        AdminActor {
            user_id: self.user.id.clone(),
            domain_id: self.user.domain_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for DomainAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.user.is_domain_admin {
            return Err(ApiError::Forbidden {
                action: "administer users, projects and keys (domain administrators only)",
            });
        }
        Ok(DomainAdmin { user: caller.user })
    }
}

// ---------------------------------------------------------------- wire types

/// No `Debug`: it may hold a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserBody {
    name: String,
    /// Absent: a password is generated and returned once.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    domain_admin: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProjectBody {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberBody {
    user_id: String,
    role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyBody {
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserPath {
    user_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeyPath {
    ak: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProjectPath {
    project_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MemberPath {
    project_id: String,
    user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    user_id: String,
    name: String,
    domain_id: String,
    is_disabled: bool,
    is_domain_admin: bool,
    create_time: i64,
    update_time: i64,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        UserView {
            user_id: user.id.clone(),
            name: user.name.clone(),
            domain_id: user.domain_id.clone(),
            is_disabled: user.is_disabled,
            is_domain_admin: user.is_domain_admin,
            create_time: user.created_at.as_millis(),
            update_time: user.updated_at.as_millis(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsersResponse {
    users: Vec<UserView>,
    total: usize,
}

/// No `Debug`: it holds a secret shown once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedUser {
    #[serde(flatten)]
    user: UserView,
    /// Only when generated: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevokedResponse {
    success: bool,
    revoked_tokens: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectView {
    project_id: String,
    name: String,
    description: String,
    create_time: i64,
    update_time: i64,
    /// The caller's role (`GET /v5/projects` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

impl ProjectView {
    fn new(project: &ProjectRecord, role: Option<Role>) -> ProjectView {
        ProjectView {
            project_id: project.id.clone(),
            name: project.name.clone(),
            description: project.description.clone(),
            create_time: project.created_at.as_millis(),
            update_time: project.updated_at.as_millis(),
            role: role.map(|role| role.as_str().to_owned()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectsResponse {
    projects: Vec<ProjectView>,
    total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberView {
    user_id: String,
    user_name: String,
    role: String,
    create_time: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MembersResponse {
    project_id: String,
    members: Vec<MemberView>,
    total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccessKeyView {
    ak: String,
    user_id: String,
    description: String,
    is_disabled: bool,
    create_time: i64,
}

impl From<&AccessKeyInfo> for AccessKeyView {
    fn from(key: &AccessKeyInfo) -> Self {
        AccessKeyView {
            ak: key.ak.clone(),
            user_id: key.user_id.clone(),
            description: key.description.clone(),
            is_disabled: key.is_disabled,
            create_time: key.created_at.as_millis(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccessKeysResponse {
    access_keys: Vec<AccessKeyView>,
    total: usize,
}

/// No `Debug`: it holds a secret shown once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedAccessKey {
    ak: String,
    /// Shown this once; stored encrypted.
    sk: String,
    user_id: String,
    description: String,
    create_time: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuccessResponse {
    success: bool,
}

const SUCCESS: SuccessResponse = SuccessResponse { success: true };

// ---------------------------------------------------------------- handlers

/// `GET /v5/projects`: the caller's projects with their role (any authenticated user).
#[utoipa::path(get, path = "/v5/projects", tag = "Administration",
    responses((status = 200, description = "The caller's projects and role in each", body = ProjectsResponse)))]
pub(crate) async fn own_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectsResponse>, ApiError> {
    let projects = state
        .api
        .store
        .member_projects(&caller.user.id)
        .await
        .map_err(internal)?;
    let projects: Vec<ProjectView> = projects
        .iter()
        .filter(|(project, _)| project.domain_id == caller.user.domain_id)
        .map(|(project, role)| ProjectView::new(project, Some(*role)))
        .collect();
    Ok(Json(ProjectsResponse {
        total: projects.len(),
        projects,
    }))
}

/// `GET /v5/admin/users`.
#[utoipa::path(get, path = "/v5/admin/users", tag = "Administration",
    responses((status = 200, description = "The domain's users", body = UsersResponse)))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    admin: DomainAdmin,
) -> Result<Json<UsersResponse>, ApiError> {
    let users = state
        .api
        .store
        .users(&admin.user.domain_id)
        .await
        .map_err(internal)?;
    let users: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(Json(UsersResponse {
        total: users.len(),
        users,
    }))
}

/// `POST /v5/admin/users`: `{"name", "password"?, "domain_admin"?}`; a generated password is
/// returned once.
#[utoipa::path(post, path = "/v5/admin/users", tag = "Administration", request_body = CreateUserBody,
    responses((status = 200, description = "The user; `password` only when generated (shown once)", body = CreatedUser)))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    admin: DomainAdmin,
    JsonBody(body): JsonBody<CreateUserBody>,
) -> Result<Response, ApiError> {
    check_user_name(&body.name)?;
    if let Some(password) = &body.password {
        check_password(password)?;
    }
    let generated = body
        .password
        .is_none()
        .then(runnel_store::generate_password);
    let password = body.password.clone().or_else(|| generated.clone());
    let user = state
        .api
        .store
        .admin_create_user(
            &admin.actor(),
            NewUser {
                name: body.name,
                password,
                is_domain_admin: body.domain_admin,
            },
            state.api.engine.now(),
        )
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => {
                ApiError::NameExists("a user with this name already exists".to_owned())
            }
            other => internal(other),
        })?;
    Ok(secret_response(CreatedUser {
        user: UserView::from(&user),
        password: generated,
    }))
}

/// `POST /v5/admin/users/{user_id}/disable`: the user can no longer log in, and their tokens
/// and access keys stop working at once.
#[utoipa::path(post, path = "/v5/admin/users/{user_id}/disable", tag = "Administration",
    responses((status = 200, description = "Disabled; its live tokens revoked", body = RevokedResponse)))]
pub(crate) async fn disable_user(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<UserPath>,
) -> Result<Json<RevokedResponse>, ApiError> {
    check_id(&path.user_id, user_not_found)?;
    if path.user_id == admin.user.id {
        return Err(ApiError::NotAllowed(
            "you cannot disable your own account; ask another domain administrator".to_owned(),
        ));
    }
    let revoked = state
        .api
        .store
        .admin_disable_user(&admin.actor(), &path.user_id, state.api.engine.now())
        .await
        .map_err(|err| not_found_as(err, user_not_found))?;
    Ok(Json(RevokedResponse {
        success: true,
        revoked_tokens: revoked,
    }))
}

/// `POST /v5/admin/users/{user_id}/enable`.
#[utoipa::path(post, path = "/v5/admin/users/{user_id}/enable", tag = "Administration",
    responses((status = 200, description = "Enabled", body = SuccessResponse)))]
pub(crate) async fn enable_user(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<UserPath>,
) -> Result<Json<SuccessResponse>, ApiError> {
    check_id(&path.user_id, user_not_found)?;
    state
        .api
        .store
        .admin_enable_user(&admin.actor(), &path.user_id, state.api.engine.now())
        .await
        .map_err(|err| not_found_as(err, user_not_found))?;
    Ok(Json(SUCCESS))
}

/// `POST /v5/admin/users/{user_id}/tokens/revoke`: every live token of the user.
#[utoipa::path(post, path = "/v5/admin/users/{user_id}/tokens/revoke", tag = "Administration",
    responses((status = 200, description = "The user's live tokens revoked", body = RevokedResponse)))]
pub(crate) async fn revoke_tokens(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<UserPath>,
) -> Result<Json<RevokedResponse>, ApiError> {
    check_id(&path.user_id, user_not_found)?;
    let revoked = state
        .api
        .store
        .admin_revoke_user_tokens(&admin.actor(), &path.user_id, state.api.engine.now())
        .await
        .map_err(|err| not_found_as(err, user_not_found))?;
    Ok(Json(RevokedResponse {
        success: true,
        revoked_tokens: revoked,
    }))
}

/// `GET /v5/admin/users/{user_id}/access-keys`: without secret keys.
#[utoipa::path(get, path = "/v5/admin/users/{user_id}/access-keys", tag = "Administration",
    responses((status = 200, description = "The user's access keys, without secret keys", body = AccessKeysResponse)))]
pub(crate) async fn list_access_keys(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<UserPath>,
) -> Result<Json<AccessKeysResponse>, ApiError> {
    let user = domain_user(&state, &admin, &path.user_id).await?;
    let keys = state
        .api
        .store
        .access_keys_of(&user.id)
        .await
        .map_err(internal)?;
    let access_keys: Vec<AccessKeyView> = keys.iter().map(AccessKeyView::from).collect();
    Ok(Json(AccessKeysResponse {
        total: access_keys.len(),
        access_keys,
    }))
}

/// `POST /v5/admin/users/{user_id}/access-keys`: `{"description"?}`; the SK is returned once.
#[utoipa::path(post, path = "/v5/admin/users/{user_id}/access-keys", tag = "Administration", request_body = CreateKeyBody,
    responses((status = 200, description = "The new AK/SK pair (the SK is shown once)", body = CreatedAccessKey)))]
pub(crate) async fn create_access_key(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<UserPath>,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<Response, ApiError> {
    check_id(&path.user_id, user_not_found)?;
    check_text("description", &body.description, MAX_KEY_DESCRIPTION)?;
    let key = state
        .api
        .store
        .admin_create_access_key(
            &admin.actor(),
            &path.user_id,
            &body.description,
            state.api.engine.now(),
        )
        .await
        .map_err(|err| not_found_as(err, user_not_found))?;
    Ok(secret_response(CreatedAccessKey {
        ak: key.ak.clone(),
        sk: key.sk.clone(),
        user_id: key.user_id.clone(),
        description: key.description.clone(),
        create_time: key.created_at.as_millis(),
    }))
}

/// `DELETE /v5/admin/access-keys/{ak}`: signatures with it fail from now on.
#[utoipa::path(delete, path = "/v5/admin/access-keys/{ak}", tag = "Administration",
    responses((status = 200, description = "Deleted", body = SuccessResponse)))]
pub(crate) async fn delete_access_key(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<KeyPath>,
) -> Result<Json<SuccessResponse>, ApiError> {
    let key_not_found = || ApiError::invalid("ak", "no such access key in this domain");
    check_id(&path.ak, key_not_found)?;
    state
        .api
        .store
        .admin_delete_access_key(&admin.actor(), &path.ak, state.api.engine.now())
        .await
        .map_err(|err| not_found_as(err, key_not_found))?;
    Ok(Json(SUCCESS))
}

/// `GET /v5/admin/projects`: every project of the domain.
#[utoipa::path(get, path = "/v5/admin/projects", tag = "Administration",
    responses((status = 200, description = "The domain's projects", body = ProjectsResponse)))]
pub(crate) async fn list_projects(
    State(state): State<AppState>,
    admin: DomainAdmin,
) -> Result<Json<ProjectsResponse>, ApiError> {
    let projects = state
        .api
        .store
        .projects(&admin.user.domain_id)
        .await
        .map_err(internal)?;
    let projects: Vec<ProjectView> = projects
        .iter()
        .map(|project| ProjectView::new(project, None))
        .collect();
    Ok(Json(ProjectsResponse {
        total: projects.len(),
        projects,
    }))
}

/// `POST /v5/admin/projects`: `{"name", "description"?}`; the caller becomes its `admin`.
#[utoipa::path(post, path = "/v5/admin/projects", tag = "Administration", request_body = CreateProjectBody,
    responses((status = 200, description = "The project; the caller is its admin", body = ProjectView)))]
pub(crate) async fn create_project(
    State(state): State<AppState>,
    admin: DomainAdmin,
    JsonBody(body): JsonBody<CreateProjectBody>,
) -> Result<Json<ProjectView>, ApiError> {
    check_project_name(&body.name)?;
    check_text("description", &body.description, MAX_PROJECT_DESCRIPTION)?;
    let project = state
        .api
        .store
        .admin_create_project(
            &admin.actor(),
            &body.name,
            &body.description,
            state.api.engine.now(),
        )
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => {
                ApiError::NameExists("a project with this name already exists".to_owned())
            }
            other => internal(other),
        })?;
    Ok(Json(ProjectView::new(&project, None)))
}

/// `GET /v5/admin/projects/{project_id}/members`.
#[utoipa::path(get, path = "/v5/admin/projects/{project_id}/members", tag = "Administration",
    responses((status = 200, description = "The project's members", body = MembersResponse)))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<ProjectPath>,
) -> Result<Json<MembersResponse>, ApiError> {
    let project = domain_project(&state, &admin, &path.project_id).await?;
    let store = &state.api.store;
    let members = store.members(&project.id).await.map_err(internal)?;
    let names: HashMap<String, String> = store
        .users(&admin.user.domain_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|user| (user.id, user.name))
        .collect();
    let members: Vec<MemberView> = members
        .iter()
        .map(|member| MemberView {
            user_name: names.get(&member.user_id).cloned().unwrap_or_default(),
            user_id: member.user_id.clone(),
            role: member.role.as_str().to_owned(),
            create_time: member.created_at.as_millis(),
        })
        .collect();
    Ok(Json(MembersResponse {
        project_id: project.id,
        total: members.len(),
        members,
    }))
}

/// `POST /v5/admin/projects/{project_id}/members`: `{"user_id", "role"}` adds the member or
/// changes their role.
#[utoipa::path(post, path = "/v5/admin/projects/{project_id}/members", tag = "Administration", request_body = MemberBody,
    responses((status = 200, description = "Added, or the role changed", body = SuccessResponse)))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<ProjectPath>,
    JsonBody(body): JsonBody<MemberBody>,
) -> Result<Json<SuccessResponse>, ApiError> {
    let role = parse_role(&body.role)?;
    let project = domain_project(&state, &admin, &path.project_id).await?;
    let user = domain_user(&state, &admin, &body.user_id).await?;
    state
        .api
        .store
        .admin_set_member(
            &admin.actor(),
            &project.id,
            &user.id,
            role,
            state.api.engine.now(),
        )
        .await
        .map_err(internal)?;
    Ok(Json(SUCCESS))
}

/// `DELETE /v5/admin/projects/{project_id}/members/{user_id}`.
#[utoipa::path(delete, path = "/v5/admin/projects/{project_id}/members/{user_id}", tag = "Administration",
    responses((status = 200, description = "Removed", body = SuccessResponse)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    admin: DomainAdmin,
    PathParams(path): PathParams<MemberPath>,
) -> Result<Json<SuccessResponse>, ApiError> {
    let project = domain_project(&state, &admin, &path.project_id).await?;
    check_id(&path.user_id, not_a_member)?;
    state
        .api
        .store
        .admin_remove_member(
            &admin.actor(),
            &project.id,
            &path.user_id,
            state.api.engine.now(),
        )
        .await
        .map_err(|err| not_found_as(err, not_a_member))?;
    Ok(Json(SUCCESS))
}

// ---------------------------------------------------------------- helpers

/// A JSON answer carrying a secret shown once: never cached.
fn secret_response(body: impl Serialize) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn domain_user(
    state: &AppState,
    admin: &DomainAdmin,
    user_id: &str,
) -> Result<UserRecord, ApiError> {
    check_id(user_id, user_not_found)?;
    state
        .api
        .store
        .user(user_id)
        .await
        .map_err(internal)?
        .filter(|user| user.domain_id == admin.user.domain_id)
        .ok_or_else(user_not_found)
}

async fn domain_project(
    state: &AppState,
    admin: &DomainAdmin,
    project_id: &str,
) -> Result<ProjectRecord, ApiError> {
    if !is_valid_id(project_id) {
        return Err(ApiError::ProjectNotFound);
    }
    state
        .api
        .store
        .project(project_id)
        .await
        .map_err(internal)?
        .filter(|project| project.domain_id == admin.user.domain_id)
        .ok_or(ApiError::ProjectNotFound)
}

fn user_not_found() -> ApiError {
    ApiError::invalid("user_id", "no such user in this domain")
}

fn not_a_member() -> ApiError {
    ApiError::invalid("user_id", "the user is not a member of this project")
}

/// An id that cannot exist answers like one that does not.
fn check_id(id: &str, missing: impl Fn() -> ApiError) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(missing())
    }
}

fn not_found_as(err: StoreError, missing: impl Fn() -> ApiError) -> ApiError {
    match err {
        StoreError::NotFound => missing(),
        other => internal(other),
    }
}

fn internal(err: StoreError) -> ApiError {
    ApiError::from_store(err, Missing::Pipeline)
}

/// 1–64 of ASCII letters, digits, `-`, `_`, `.`, `@`, starting with a letter or digit.
fn check_user_name(name: &str) -> Result<(), ApiError> {
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_allowed = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if name.is_empty() || name.len() > MAX_USER_NAME {
        Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_USER_NAME} characters long"),
        ))
    } else if !starts_well || !all_allowed {
        Err(ApiError::invalid(
            "name",
            "may contain only letters, digits, '-', '_', '.' and '@', and must start with a letter or digit",
        ))
    } else {
        Ok(())
    }
}

/// 8–128 characters without control characters. The message never quotes it.
fn check_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !PASSWORD_CHARS.contains(&chars) {
        return Err(ApiError::invalid(
            "password",
            format!(
                "must be {} to {} characters long",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            ),
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "password",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// 1–128 of letters (any script), digits, `-`, `_`, `.` and inner spaces.
fn check_project_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_PROJECT_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_PROJECT_NAME} characters long"),
        ));
    }
    let allowed = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if !allowed || name.trim() != name {
        return Err(ApiError::invalid(
            "name",
            "may contain only letters, digits, '-', '_', '.' and spaces between words",
        ));
    }
    Ok(())
}

fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    if text.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max_chars} characters long"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text)
        .ok_or_else(|| ApiError::invalid("role", "must be one of admin, developer, viewer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked() {
        for good in ["bob", "ci-bot", "a.b_c@example.com", "7up"] {
            assert!(check_user_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-bob", "bob smith", "bób", &"x".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_checked_without_being_quoted() {
        assert!(check_password("long enough").is_ok());
        let err = check_password("short").expect_err("too short");
        assert!(!err.message().contains("short\""), "{}", err.message());
        assert!(check_password("tab\tinside!").is_err());
        assert!(check_password(&"p".repeat(129)).is_err());
    }

    #[test]
    fn project_names_allow_inner_spaces_and_any_script() {
        for good in ["team b", "团队-2", "ops_2026.q1"] {
            assert!(check_project_name(good).is_ok(), "{good}");
        }
        for bad in ["", " lead", "trail ", "semi;colon", &"n".repeat(129)] {
            assert!(check_project_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_are_the_three_project_roles() {
        assert_eq!(parse_role("viewer").ok(), Some(Role::Viewer));
        assert!(parse_role("owner").is_err());
        assert!(parse_role("Admin").is_err());
    }
}
