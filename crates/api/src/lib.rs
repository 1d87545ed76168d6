//! The HTTP API: CodeArts Pipeline v5-compatible routes (spec §4–§5) and the IAM routes the
//! clients rely on (§10), authentication (`X-Auth-Token` from `POST /v3/auth/tokens`, AK/SK
//! `SDK-HMAC-SHA256` signatures), authorization per project and role, and the CodeArts error
//! body `{"error_code", "error_msg"}` with an `X-Request-Id` on every response.
//!
//! Must not know: processes, SQL text. Reads go to the store; anything that changes
//! scheduling goes through the engine. Wire types live in [`dto`] and are converted from store
//! records explicitly, so a store or domain refactor never silently changes the wire.
//!
//! Request path: `request_context` (request id, logging of internal causes) → panic catcher →
//! route → `auth::authenticate` (every route but `POST /v3/auth/tokens`) → extractors
//! (`authz::Member` checks the project and role, `extract::JsonBody` the body) → handler.

mod actions;
mod admin;
mod auth;
mod authz;
mod definition;
mod dto;
mod error;
mod extract;
mod iam;
mod legacy;
mod logs;
mod middleware;
mod openapi;
mod organize;
mod pipeline_ops;
mod pipelines;
mod results;
mod runs;
mod stream;
mod templates;
mod triggers;
mod webhooks;

pub use auth::ratelimit::RateLimit;
pub use middleware::request_context;
pub use templates::{TemplateSyncError, sync_system_templates};

use auth::ratelimit::Limiter;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use runnel_engine::Engine;
use runnel_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;

/// What every handler may use. Built once by the server.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Engine,
    pub store: Store,
    pub config: Arc<ApiConfig>,
}

/// API settings, from the server's typed settings. Build it with `..ApiConfig::default()` so
/// new settings keep their defaults.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The address clients use to reach this server (`endpoint` in bootstrap credentials,
    /// webhook callback URLs, UI links). Without a trailing slash.
    pub public_url: String,
    /// The region name reported in pipeline and run details; also the name of the one IAM
    /// project per domain (`GET /v3/projects?name=…`).
    pub region: String,
    /// Minutes east of UTC for `yyyy-MM-dd HH:mm:ss` times (sent and accepted), as the engine's.
    pub utc_offset_minutes: i32,
    /// Validity of tokens issued by `POST /v3/auth/tokens` (S6: 24 h).
    pub token_ttl: Duration,
    /// How far `X-Sdk-Date` may be from the server's clock (spec §1.4.4: 15 minutes).
    pub signature_max_skew: Duration,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// `POST /v3/auth/tokens` attempts per source IP.
    pub login_per_ip: RateLimit,
    /// `POST /v3/auth/tokens` attempts per domain + user name.
    pub login_per_user: RateLimit,
    /// How often a live log stream looks for new bytes (appends carry no notification).
    pub log_poll_interval: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            public_url: String::new(),
            region: "local-1".to_owned(),
            utc_offset_minutes: 0,
            token_ttl: Duration::from_secs(24 * 3600),
            signature_max_skew: Duration::from_secs(15 * 60),
            max_body_bytes: 4 * 1024 * 1024,
            login_per_ip: RateLimit {
                burst: 20,
                per_minute: 20,
            },
            login_per_user: RateLimit {
                burst: 10,
                per_minute: 10,
            },
            log_poll_interval: Duration::from_millis(250),
        }
    }
}

impl ApiConfig {
    /// The defaults with the two settings every installation sets.
    pub fn new(public_url: impl Into<String>, region: impl Into<String>) -> ApiConfig {
        ApiConfig {
            public_url: public_url.into(),
            region: region.into(),
            ..ApiConfig::default()
        }
    }
}

/// The router's state: the server's [`ApiState`] plus what the API keeps in memory.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) api: ApiState,
    pub(crate) login_per_ip: Arc<Limiter>,
    pub(crate) login_per_user: Arc<Limiter>,
}

/// Every route of the API, with its middleware. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so login rate limits see client IPs.
pub fn router(state: ApiState) -> axum::Router {
    let max_body_bytes = state.config.max_body_bytes;
    let state = AppState {
        login_per_ip: Arc::new(Limiter::new(state.config.login_per_ip)),
        login_per_user: Arc::new(Limiter::new(state.config.login_per_user)),
        api: state,
    };
    let authenticate = axum::middleware::from_fn_with_state(state.clone(), auth::authenticate);
    let pipeline = "/v5/{project_id}/api/pipelines/{pipeline_id}";
    let run = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}";
    let step = "jobs/{job_run_id}/steps/{step_run_id}";
    let protected = axum::Router::new()
        .route("/v5/{project_id}/api/pipelines", post(pipelines::create))
        .route("/v5/{project_id}/api/pipelines/list", post(pipelines::list))
        .route(
            pipeline,
            get(pipelines::detail)
                .put(pipelines::update)
                .delete(pipelines::delete),
        )
        .route(&format!("{pipeline}/run"), post(runs::run))
        .route(&format!("{pipeline}/pipeline-runs/list"), post(runs::list))
        .route(&format!("{pipeline}/pipeline-runs/detail"), get(runs::detail))
        .route(
            "/v5/{project_id}/api/pipelines/status",
            post(pipeline_ops::batch_status),
        )
        .route(
            "/v5/{project_id}/api/pipelines/pipelines-version",
            post(pipeline_ops::versions),
        )
        .route(&format!("{pipeline}/ban"), put(pipeline_ops::ban))
        .route(&format!("{pipeline}/unban"), put(pipeline_ops::unban))
        .route(
            &format!("{pipeline}/list-system-vars"),
            get(pipeline_ops::system_variables),
        )
        .route(&format!("{run}/steps/outputs"), get(results::step_outputs))
        .route(&format!("{run}/artifacts"), get(results::artifacts))
        .route(&format!("{run}/{step}/resume"), post(actions::resume))
        .route(
            &format!("{run}/{step}/logs/stream"),
            get(stream::step_log_stream),
        )
        .route(
            &format!("{pipeline}/{{pipeline_run_id}}/cancel-queuing/{{queue_id}}"),
            post(actions::cancel_queuing),
        )
        .route(&format!("{run}/stop"), post(actions::stop))
        .route(&format!("{run}/retry"), put(actions::retry))
        .route(&format!("{run}/{step}/logs"), post(logs::step_log))
        .route(
            &format!(
                "/v5/{{project_id}}/pipelines/{{pipeline_id}}/pipeline-runs/{{pipeline_run_id}}/{step}/logs"
            ),
            post(logs::step_log_without_api),
        )
        .route(&format!("{run}/{step}/pass"), post(actions::review_pass))
        .route(&format!("{run}/{step}/refuse"), post(actions::review_refuse))
        .route(&format!("{run}/{step}/delay"), post(actions::delay))
        .route(&format!("{run}/{step}/delay-pass"), post(actions::delay_pass))
        .route(&format!("{run}/{step}/delay-refuse"), post(actions::delay_refuse))
        .route(
            &format!("{run}/steps/{{step_run_id}}/manual/pass"),
            post(actions::manual_pass),
        )
        .route(
            &format!("{run}/steps/{{step_run_id}}/manual/refuse"),
            post(actions::manual_refuse),
        )
        .route("/v3/projects", get(iam::projects))
        // Each area's routes live in its own module.
        .merge(organize::routes())
        .merge(templates::routes())
        .merge(legacy::routes())
        .merge(admin::routes())
        .merge(webhooks::authenticated_routes())
        .route_layer(authenticate.clone());
    let tokens = axum::Router::new().route(
        "/v3/auth/tokens",
        post(iam::issue_token).merge(
            get(iam::check_token)
                .delete(iam::revoke_token)
                .layer(authenticate),
        ),
    );
    protected
        .merge(tokens)
        // The OpenAPI document needs no credentials.
        .route("/openapi.json", get(openapi::document))
        // Webhooks authenticate with their trigger's secret, not with a token.
        .merge(webhooks::routes())
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::route_not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::request_context))
        .with_state(state)
}
