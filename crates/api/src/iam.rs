//! The IAM routes the clients rely on (spec §10): password tokens (rate limited per source IP
//! and per user), token check and revocation, and the one IAM project per domain.

use crate::AppState;
use crate::auth::Caller;
use crate::dto::iam::{NameOrId, ProjectsQuery, TokenQuery, TokenRequest};
use crate::error::{ApiError, AuthFailure, IamError, Missing};
use crate::extract::{QueryParams, parse_json};
use axum::Json;
use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runnel_domain::Timestamp;
use runnel_store::{DomainRecord, IdentityStore, StoreError, UserRecord};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// `POST /v3/auth/tokens` (password method): 201 with `X-Subject-Token`.
#[utoipa::path(post, path = "/v3/auth/tokens", tag = "IAM", request_body = TokenRequest, params(TokenQuery), security(()),
    responses((status = 201, description = "The token body; the token itself is the `X-Subject-Token` header", body = serde_json::Value,
        headers(("X-Subject-Token" = String, description = "The token (valid 24 h)")))))]
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, IamError> {
    let now = state.api.engine.now();
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
    if !state.login_per_ip.try_acquire(&source, now.as_millis()) {
        tracing::warn!(source = %source, "login rate limit reached for a source address");
        return Err(ApiError::RateLimited.into());
    }
    let nocatalog = axum::extract::Query::<TokenQuery>::try_from_uri(request.uri())
        .map(|query| query.0.nocatalog.is_some_and(|value| !value.is_empty()))
        .unwrap_or(false);
    let limit = state.api.config.max_body_bytes;
    let bytes = to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge { limit })?;
    let body: TokenRequest = parse_json(&bytes)?;
    let auth = body.auth;
    if !auth
        .identity
        .methods
        .iter()
        .any(|method| method == "password")
    {
        return Err(ApiError::invalid(
            "auth.identity.methods",
            "only the password method is supported",
        )
        .into());
    }
    let user = auth
        .identity
        .password
        .ok_or_else(|| ApiError::invalid("auth.identity.password", "is required"))?
        .user;
    let store = &state.api.store;
    let domain_name = match (&user.domain.name, &user.domain.id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => store
            .domain(id)
            .await
            .map_err(internal)?
            .map_or_else(String::new, |domain| domain.name),
        (None, None) => {
            return Err(ApiError::invalid(
                "auth.identity.password.user.domain",
                "needs a name or an id",
            )
            .into());
        }
    };
    let user_key = format!("{domain_name}\u{0}{}", user.name);
    if !state.login_per_user.try_acquire(&user_key, now.as_millis()) {
        tracing::warn!(user = %user.name, "login rate limit reached for a user");
        return Err(ApiError::RateLimited.into());
    }
    let account = store
        .authenticate_password(&domain_name, &user.name, &user.password)
        .await
        .map_err(internal)?
        .ok_or(ApiError::Unauthenticated(AuthFailure::BadCredentials))?;
    let domain = store
        .domain(&account.domain_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::Internal("the user's domain is missing".to_owned()))?;
    let scope = token_scope(&state, &domain, &auth.scope)?;
    let issued = store
        .issue_token(&account.id, &scope.text(), now, state.api.config.token_ttl)
        .await
        .map_err(internal)?;
    let body = token_body(
        &state,
        &account,
        &domain,
        &scope,
        now,
        issued.record.expires_at,
        !nocatalog,
    );
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let header = HeaderValue::from_str(&issued.token)
        .map_err(|_| ApiError::Internal("the token is not a valid header value".to_owned()))?;
    response.headers_mut().insert("x-subject-token", header);
    Ok(response)
}

/// `GET /v3/auth/tokens`: the caller's own token named by `X-Subject-Token`, or 404.
#[utoipa::path(get, path = "/v3/auth/tokens", tag = "IAM",
    params(("X-Subject-Token" = String, Header, description = "One of the caller's own tokens")),
    responses((status = 200, description = "The token body", body = serde_json::Value)))]
pub(crate) async fn check_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, IamError> {
    let now = state.api.engine.now();
    let (subject, record, user) = own_token(&state, &caller, &headers, now).await?;
    let domain = state
        .api
        .store
        .domain(&user.domain_id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::TokenNotFound)?;
    let scope = parse_scope(&record.scope, &state, &domain);
    let body = token_body(
        &state,
        &user,
        &domain,
        &scope,
        record.issued_at,
        record.expires_at,
        true,
    );
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&subject) {
        response.headers_mut().insert("x-subject-token", value);
    }
    Ok(response)
}

/// `DELETE /v3/auth/tokens`: revokes the caller's own token named by `X-Subject-Token` (204).
#[utoipa::path(delete, path = "/v3/auth/tokens", tag = "IAM",
    params(("X-Subject-Token" = String, Header, description = "One of the caller's own tokens")),
    responses((status = 204, description = "Revoked")))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode, IamError> {
    let now = state.api.engine.now();
    let (subject, _, _) = own_token(&state, &caller, &headers, now).await?;
    state
        .api
        .store
        .revoke_token(&subject, now)
        .await
        .map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/projects` (§10.2): the caller's domain has one IAM project, named like the region.
#[utoipa::path(get, path = "/v3/projects", tag = "IAM", params(ProjectsQuery),
    responses((status = 200, description = "`{projects, links}`: the domain's one IAM project when it matches", body = serde_json::Value)))]
pub(crate) async fn projects(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<QueryParams<ProjectsQuery>, ApiError>,
) -> Result<Json<Value>, IamError> {
    let QueryParams(query) = query?;
    if query.page.is_some_and(|page| page < 1) {
        return Err(ApiError::invalid("page", "must be 1 or more").into());
    }
    if query
        .per_page
        .is_some_and(|per_page| !(1..=5000).contains(&per_page))
    {
        return Err(ApiError::invalid("per_page", "must be from 1 to 5000").into());
    }
    let config = &state.api.config;
    let domain_id = &caller.user.domain_id;
    let project_id = iam_project_id(domain_id, &config.region);
    let base = config.public_url.trim_end_matches('/');
    let matches = query
        .name
        .as_ref()
        .is_none_or(|name| *name == config.region)
        && query.domain_id.as_ref().is_none_or(|id| id == domain_id)
        && query.enabled != Some(false)
        && query.is_domain != Some(true)
        && query.page.unwrap_or(1) == 1;
    let projects: Vec<Value> = if matches {
        vec![json!({
            "id": project_id, "name": config.region, "domain_id": domain_id, "parent_id": domain_id,
            "description": "", "enabled": true, "is_domain": false,
            "links": {"self": format!("{base}/v3/projects/{project_id}"), "previous": null, "next": null},
        })]
    } else {
        Vec::new()
    };
    let self_link = match &query.name {
        Some(name) => format!("{base}/v3/projects?name={name}"),
        None => format!("{base}/v3/projects"),
    };
    Ok(Json(json!({
        "projects": projects,
        "links": {"self": self_link, "previous": null, "next": null},
    })))
}

/// The IAM project of a domain in this installation: a stable 32-hex id.
pub(crate) fn iam_project_id(domain_id: &str, region: &str) -> String {
    let digest = Sha256::digest(format!("runnel:iam-project:{domain_id}:{region}").as_bytes());
    hex::encode(&digest[..16])
}

/// What a token was issued for.
enum TokenScope {
    Project { id: String, name: String },
    Domain,
}

impl TokenScope {
    fn text(&self) -> String {
        match self {
            TokenScope::Project { id, .. } => format!("project:{id}"),
            TokenScope::Domain => "domain".to_owned(),
        }
    }
}

fn token_scope(
    state: &AppState,
    domain: &DomainRecord,
    scope: &crate::dto::iam::Scope,
) -> Result<TokenScope, ApiError> {
    let region = &state.api.config.region;
    let project_id = iam_project_id(&domain.id, region);
    let is = |given: &NameOrId, id: &str, name: &str| {
        given.id.as_deref().is_none_or(|given| given == id)
            && given.name.as_deref().is_none_or(|given| given == name)
            && (given.id.is_some() || given.name.is_some())
    };
    match (&scope.project, &scope.domain) {
        (Some(project), None) if is(project, &project_id, region) => Ok(TokenScope::Project {
            id: project_id,
            name: region.clone(),
        }),
        (Some(_), None) => Err(ApiError::invalid(
            "auth.scope.project",
            "no such project in this domain",
        )),
        (None, Some(given)) if is(given, &domain.id, &domain.name) => Ok(TokenScope::Domain),
        (None, Some(_)) => Err(ApiError::invalid(
            "auth.scope.domain",
            "is not the user's domain",
        )),
        _ => Err(ApiError::invalid(
            "auth.scope",
            "must name exactly one of project or domain",
        )),
    }
}

fn parse_scope(text: &str, state: &AppState, _domain: &DomainRecord) -> TokenScope {
    match text.strip_prefix("project:") {
        Some(id) => TokenScope::Project {
            id: id.to_owned(),
            name: state.api.config.region.clone(),
        },
        None => TokenScope::Domain,
    }
}

/// The token body of §10.1.
fn token_body(
    state: &AppState,
    user: &UserRecord,
    domain: &DomainRecord,
    scope: &TokenScope,
    issued_at: Timestamp,
    expires_at: Timestamp,
    with_catalog: bool,
) -> Value {
    let config = &state.api.config;
    let domain_json = json!({"id": domain.id, "name": domain.name});
    let mut token = json!({
        "expires_at": iso_time(expires_at),
        "issued_at": iso_time(issued_at),
        "methods": ["password"],
        "user": {"id": user.id, "name": user.name, "password_expires_at": "", "domain": domain_json},
        "roles": [{"id": "0", "name": "runnel_user"}],
    });
    match scope {
        TokenScope::Project { id, name } => {
            token["project"] = json!({"id": id, "name": name, "domain": domain_json});
        }
        TokenScope::Domain => token["domain"] = domain_json,
    }
    if with_catalog {
        token["catalog"] = json!([{
            "type": "pipeline", "id": "runnel-pipeline", "name": "codearts-pipeline",
            "endpoints": [{"id": "runnel-public", "interface": "public", "region": config.region,
                           "region_id": config.region, "url": config.public_url}],
        }]);
    }
    json!({ "token": token })
}

/// ISO-8601 UTC with microseconds, as IAM writes it.
fn iso_time(time: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(time.as_millis())
        .map(|moment| moment.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// The live token named by `X-Subject-Token`, when it is the caller's own.
async fn own_token(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<(String, runnel_store::TokenRecord, UserRecord), ApiError> {
    let subject = headers
        .get("x-subject-token")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .ok_or_else(|| ApiError::invalid("X-Subject-Token", "is required"))?;
    let (record, user) = state
        .api
        .store
        .authenticate_token(&subject, now)
        .await
        .map_err(internal)?
        .filter(|(_, user)| user.id == caller.user.id)
        .ok_or(ApiError::TokenNotFound)?;
    Ok((subject, record, user))
}

fn internal(err: StoreError) -> ApiError {
    ApiError::from_store(err, Missing::Pipeline)
}
