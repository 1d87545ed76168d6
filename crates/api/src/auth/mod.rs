//! Authentication: `X-Auth-Token` (opaque tokens from `POST /v3/auth/tokens`, stored hashed,
//! 24 h, revocable) or an AK/SK `SDK-HMAC-SHA256` signature (spec §1.3–§1.4). The middleware
//! puts the [`Caller`] into the request's extensions or answers 401.

pub(crate) mod ratelimit;
pub(crate) mod signature;

use crate::AppState;
use crate::error::{ApiError, AuthFailure, ErrorStyle};
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runnel_store::{IdentityStore, ProjectRecord, Role, StoreError, UserRecord};
use signature::{Authorization, SignedRequest};

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: UserRecord,
}

/// The caller's project and role in the `{project_id}` of the path, read together with the
/// token (`IdentityStore::authenticate_token_in_project`); `membership` is `None` for a
/// non-member. The `Member` extractor uses it instead of reading the membership again.
#[derive(Debug, Clone)]
pub(crate) struct PathMembership {
    pub(crate) project_id: String,
    pub(crate) membership: Option<(ProjectRecord, Role)>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated(AuthFailure::Missing))
    }
}

/// The middleware of every route except `POST /v3/auth/tokens`.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let style = ErrorStyle::for_path(request.uri().path());
    match resolve(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(err) => err.into_styled_response(style).into_response(),
    }
}

async fn resolve(state: &AppState, mut request: Request) -> Result<Request, ApiError> {
    let now = state.api.engine.now();
    let store = &state.api.store;
    if let Some(token) = request.headers().get("x-auth-token") {
        let token = token
            .to_str()
            .map_err(|_| ApiError::Unauthenticated(AuthFailure::BadToken))?
            .trim()
            .to_owned();
        let token = token.as_str();
        // A project-scoped route reads the token and the caller's membership in one statement.
        if let Some(project_id) = path_project_id(&mut request).await {
            let (_, user, membership) = store
                .authenticate_token_in_project(token, now, &project_id)
                .await
                .map_err(internal)?
                .ok_or(ApiError::Unauthenticated(AuthFailure::BadToken))?;
            request.extensions_mut().insert(Caller { user });
            request.extensions_mut().insert(PathMembership {
                project_id,
                membership,
            });
            return Ok(request);
        }
        let (_, user) = store
            .authenticate_token(token, now)
            .await
            .map_err(internal)?
            .ok_or(ApiError::Unauthenticated(AuthFailure::BadToken))?;
        request.extensions_mut().insert(Caller { user });
        return Ok(request);
    }
    let Some(header) = request.headers().get("authorization") else {
        return Err(ApiError::Unauthenticated(AuthFailure::Missing));
    };
    let authorization = header
        .to_str()
        .map_err(|_| AuthFailure::UnsupportedScheme)
        .and_then(signature::parse_authorization)
        .map_err(ApiError::Unauthenticated)?;
    signature::check_date(
        request
            .headers()
            .get("x-sdk-date")
            .and_then(|value| value.to_str().ok()),
        now,
        state.api.config.signature_max_skew,
    )
    .map_err(ApiError::Unauthenticated)?;
    let (parts, body) = request.into_parts();
    let limit = state.api.config.max_body_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge { limit })?;
    let user = check_signature(state, &parts, &bytes, &authorization).await?;
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(Caller { user });
    Ok(request)
}

/// The route's `{project_id}` (the middleware runs after routing), as `Member` reads it.
async fn path_project_id(request: &mut Request) -> Option<String> {
    let (mut parts, body) = std::mem::take(request).into_parts();
    let project_id = crate::authz::path_project_id(&mut parts).await;
    *request = Request::from_parts(parts, body);
    project_id
}

/// Checks the signature against the key's SK; an unknown or disabled key, or a disabled user,
/// fails exactly like a wrong signature (after the same work, so timing tells nothing).
async fn check_signature(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
    authorization: &Authorization,
) -> Result<UserRecord, ApiError> {
    let store = &state.api.store;
    let key = store
        .access_key(&authorization.access_key)
        .await
        .map_err(internal)?;
    let user = match &key {
        Some(key) if !key.is_disabled => store
            .user(&key.user_id)
            .await
            .map_err(internal)?
            .filter(|user| !user.is_disabled),
        _ => None,
    };
    let secret_key = key
        .as_ref()
        .map_or("unknown access key", |key| key.sk.as_str());
    let request = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        host: parts.uri.authority().map(|authority| authority.as_str()),
        body,
    };
    let verified = signature::verify(&request, authorization, secret_key);
    match (verified, user) {
        (Ok(()), Some(user)) => Ok(user),
        (Err(failure), _) => Err(ApiError::Unauthenticated(failure)),
        (Ok(()), None) => Err(ApiError::Unauthenticated(AuthFailure::BadSignature)),
    }
}

fn internal(err: StoreError) -> ApiError {
    ApiError::from_store(err, crate::error::Missing::Pipeline)
}
