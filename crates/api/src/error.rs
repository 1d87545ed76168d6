//! `ApiError`: every failure a client can see, its status and CodeArts code chosen in one place.
//!
//! Bodies are `{"error_code": "…", "error_msg": "…"}` (spec §1.7.1); the IAM routes of §10 use
//! the Keystone shape `{"error": {"code": 401, "message": "…", "title": "Unauthorized"}}`.
//! Internal causes never reach the body: `into_response` attaches them to the response as an
//! [`InternalCause`] extension, and the request middleware logs them once with the request id.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use runnel_engine::EngineError;
use runnel_store::StoreError;
use serde_json::json;

/// Why a request was not served. Messages are written for the caller and never quote secret
/// values, SQL or internal causes.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 401: no credentials, or credentials that do not authenticate anybody.
    Unauthenticated(AuthFailure),
    /// 403: a member of the project whose role does not allow the action.
    Forbidden { action: &'static str },
    /// 400 `DEVPIPE.00011412`: no such project, or the caller is not a member (indistinguishable).
    ProjectNotFound,
    /// 400 with the code of the missing kind; ids of other projects answer exactly the same (S1).
    NotFound(Missing),
    /// 400 `DEVPIPE.00010001`: a field is wrong; `field` is its path in the request.
    Invalid { field: String, reason: String },
    /// 400 `DEVPIPE.00010001`: the definition (or its variables) does not compile; every problem.
    BadDefinition {
        problems: Vec<String>,
        in_definition: bool,
    },
    /// 400 `DEVPIPE.00010002`: the body is not JSON.
    MalformedJson(String),
    /// 413 `DEVPIPE.00010001`: the body is larger than the configured limit.
    BodyTooLarge { limit: usize },
    /// 400 `DEVPIPE.00011304`.
    NameExists(String),
    /// 400 `DEVPIPE.00011404`: the action does not fit the current state.
    NotAllowed(String),
    /// 400 `DEVPIPE.00011104`: the pipeline's concurrency limit refuses another run (ABORT).
    ConcurrencyLimit(String),
    /// 429 `APIGW.0308`.
    RateLimited,
    /// 404 `APIGW.0101`: no such route (method and path).
    RouteNotFound,
    /// 404 `DEV.00000003`: `X-Subject-Token` names no live token of the caller (§10.1).
    TokenNotFound,
    /// 503 `DEVPIPE.00010003`: the database could not be reached; retrying may work.
    Unavailable(String),
    /// 500 `DEVPIPE.00010000`; the cause is logged, never sent.
    Internal(String),
}

/// What was not found, which picks the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Pipeline,
    Run,
    /// A job run or a step run.
    Step,
    Group,
    Tag,
    VariableGroup,
}

/// Why authentication failed. The text says what to fix without telling an attacker which part
/// of a credential was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// Neither `X-Auth-Token` nor an `Authorization` header.
    Missing,
    /// A token that is unknown, expired, revoked, or whose user is disabled.
    BadToken,
    /// Unknown or disabled access key, wrong signature, unsigned required headers.
    BadSignature,
    /// `X-Sdk-Date` missing, malformed or outside the allowed window.
    StaleDate,
    /// An `Authorization` scheme other than `SDK-HMAC-SHA256`, or a malformed one.
    UnsupportedScheme,
    /// `POST /v3/auth/tokens` with a wrong domain, user name or password.
    BadCredentials,
}

/// The cause of a 5xx, carried to the request middleware in the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct InternalCause(pub(crate) String);

/// Which body shape an error takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorStyle {
    CodeArts,
    /// The Keystone-style body of the IAM routes (spec §10.1).
    Iam,
}

impl ErrorStyle {
    /// The IAM routes answer in the IAM shape; everything else in the CodeArts shape.
    pub(crate) fn for_path(path: &str) -> ErrorStyle {
        if path.starts_with("/v3/auth/") || path == "/v3/projects" {
            ErrorStyle::Iam
        } else {
            ErrorStyle::CodeArts
        }
    }
}

impl ApiError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Maps a store error; `NotFound` becomes `missing` (the caller knows what it asked for).
    pub(crate) fn from_store(err: StoreError, missing: Missing) -> ApiError {
        match err {
            StoreError::NotFound => ApiError::NotFound(missing),
            // Store messages name constraints, not values; the fixed text keeps tables out of bodies.
            StoreError::Conflict(_) => ApiError::NameExists("the name is already used".to_owned()),
            // Messages written for callers ("unknown pipeline group"), naming no values.
            StoreError::Invalid(message) => ApiError::invalid("", message),
            StoreError::Unavailable(source) => ApiError::Unavailable(source.to_string()),
            other @ (StoreError::LeaseLost
            | StoreError::OffsetMismatch { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::Misconfigured(_)
            | StoreError::Corrupt(_)) => ApiError::Internal(other.to_string()),
        }
    }

    /// Maps an engine error; `NotFound` becomes `missing`.
    pub(crate) fn from_engine(err: EngineError, missing: Missing) -> ApiError {
        match err {
            EngineError::NotFound(_) => ApiError::NotFound(missing),
            // The engine's messages start with the offending path (`variables[0].value: …`).
            EngineError::Invalid(message) => ApiError::invalid("", message),
            EngineError::NotAllowed(message) => ApiError::NotAllowed(message),
            EngineError::ConcurrencyLimit { running } => ApiError::ConcurrencyLimit(format!(
                "the pipeline already runs {running} runs, its concurrency limit; try again later"
            )),
            EngineError::Banned => ApiError::NotAllowed("the pipeline is disabled".to_owned()),
            EngineError::BadDefinition(message) => {
                ApiError::Internal(format!("stored definition does not compile: {message}"))
            }
            EngineError::Store(err) => ApiError::from_store(err, missing),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::ProjectNotFound
            | ApiError::NotFound(_)
            | ApiError::Invalid { .. }
            | ApiError::BadDefinition { .. }
            | ApiError::MalformedJson(_)
            | ApiError::NameExists(_)
            | ApiError::NotAllowed(_)
            | ApiError::ConcurrencyLimit(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RouteNotFound | ApiError::TokenNotFound => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(AuthFailure::Missing) => "DEV.00000001",
            ApiError::Unauthenticated(_) => "APIGW.0301",
            ApiError::Forbidden { .. } => "DEVPIPE.00011405",
            ApiError::ProjectNotFound => "DEVPIPE.00011412",
            ApiError::NotFound(Missing::Pipeline) => "DEVPIPE.00011401",
            ApiError::NotFound(Missing::Run) => "DEVPIPE.00011402",
            ApiError::NotFound(Missing::Step) => "DEVPIPE.00011403",
            ApiError::NotFound(Missing::Group) => "DEVPIPE.00011301",
            ApiError::NotFound(Missing::Tag) => "DEVPIPE.00011302",
            ApiError::NotFound(Missing::VariableGroup) => "DEVPIPE.00011303",
            ApiError::Invalid { .. }
            | ApiError::BadDefinition { .. }
            | ApiError::BodyTooLarge { .. } => "DEVPIPE.00010001",
            ApiError::MalformedJson(_) => "DEVPIPE.00010002",
            ApiError::NameExists(_) => "DEVPIPE.00011304",
            ApiError::NotAllowed(_) => "DEVPIPE.00011404",
            ApiError::ConcurrencyLimit(_) => "DEVPIPE.00011104",
            ApiError::RateLimited => "APIGW.0308",
            ApiError::RouteNotFound => "APIGW.0101",
            ApiError::TokenNotFound => "DEV.00000003",
            ApiError::Unavailable(_) => "DEVPIPE.00010003",
            ApiError::Internal(_) => "DEVPIPE.00010000",
        }
    }

    /// The text sent to the client.
    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(failure) => failure.message().to_owned(),
            ApiError::Forbidden { action } => {
                format!("Your role in this project does not allow you to {action}.")
            }
            ApiError::ProjectNotFound => {
                "The project does not exist or you are not a member of it.".to_owned()
            }
            ApiError::NotFound(Missing::Pipeline) => "The pipeline does not exist.".to_owned(),
            ApiError::NotFound(Missing::Run) => "The pipeline run does not exist.".to_owned(),
            ApiError::NotFound(Missing::Step) => {
                "The job run or step run does not exist.".to_owned()
            }
            ApiError::NotFound(Missing::Group) => "The pipeline group does not exist.".to_owned(),
            ApiError::NotFound(Missing::Tag) => "The tag does not exist.".to_owned(),
            ApiError::NotFound(Missing::VariableGroup) => {
                "The variable group does not exist.".to_owned()
            }
            ApiError::Invalid { field, reason } if field.is_empty() => {
                format!("invalid parameter: {reason}")
            }
            ApiError::Invalid { field, reason } => format!("invalid parameter: {field}: {reason}"),
            ApiError::BadDefinition {
                problems,
                in_definition,
            } => {
                let lead = if *in_definition {
                    "definition is invalid"
                } else {
                    "invalid parameter"
                };
                format!("{lead}: {}", problems.join("; "))
            }
            ApiError::MalformedJson(detail) => {
                format!("the request body is not valid JSON: {detail}")
            }
            ApiError::BodyTooLarge { limit } => {
                format!("the request body is larger than the limit of {limit} bytes")
            }
            ApiError::NameExists(message)
            | ApiError::NotAllowed(message)
            | ApiError::ConcurrencyLimit(message) => message.clone(),
            ApiError::RateLimited => "Too many requests; slow down and retry later.".to_owned(),
            ApiError::RouteNotFound => {
                "The API does not exist or has not been published.".to_owned()
            }
            ApiError::TokenNotFound => "The token does not exist or has expired.".to_owned(),
            ApiError::Unavailable(_) => {
                "The service is temporarily unavailable; retry later.".to_owned()
            }
            ApiError::Internal(_) => "Internal server error.".to_owned(),
        }
    }

    /// The response in the given body shape.
    pub(crate) fn into_styled_response(self, style: ErrorStyle) -> Response {
        let status = self.status();
        let body = match style {
            ErrorStyle::CodeArts => json!({"error_code": self.code(), "error_msg": self.message()}),
            ErrorStyle::Iam => json!({"error": {
                "code": status.as_u16(),
                "message": self.message(),
                "title": status.canonical_reason().unwrap_or("Error"),
                "error_code": self.code(),
            }}),
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                response.extensions_mut().insert(InternalCause(cause));
            }
            _ => {}
        }
        response
    }
}

impl AuthFailure {
    fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "No user authentication information recognized: send X-Auth-Token or an SDK-HMAC-SHA256 Authorization header."
            }
            AuthFailure::BadToken => {
                "Incorrect IAM authentication information: the token is invalid, expired or revoked."
            }
            AuthFailure::BadSignature => {
                "Incorrect IAM authentication information: verify aksk signature fail."
            }
            AuthFailure::StaleDate => {
                "Incorrect IAM authentication information: X-Sdk-Date is missing, malformed or more than 15 minutes away from the server time."
            }
            AuthFailure::UnsupportedScheme => {
                "Incorrect IAM authentication information: the Authorization header must use SDK-HMAC-SHA256."
            }
            AuthFailure::BadCredentials => "The domain, user name or password is incorrect.",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_styled_response(ErrorStyle::CodeArts)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

/// An error of an IAM route (spec §10), in the IAM body shape.
#[derive(Debug)]
pub(crate) struct IamError(pub(crate) ApiError);

impl IntoResponse for IamError {
    fn into_response(self) -> Response {
        self.0.into_styled_response(ErrorStyle::Iam)
    }
}

impl From<ApiError> for IamError {
    fn from(err: ApiError) -> Self {
        IamError(err)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid("path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        // `body_text` names the parameter and what was expected ("Failed to deserialize query string: limit: invalid digit…").
        let text = rejection.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        ApiError::invalid("query", detail.to_owned())
    }
}

/// Answers unknown routes and wrong methods (the gateway's `APIGW.0101`).
pub(crate) async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}
