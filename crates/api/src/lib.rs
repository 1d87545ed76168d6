//! The HTTP API (being written): CodeArts Pipeline v5/v3-compatible routes, authentication
//! (`X-Auth-Token` from `POST /v3/auth/tokens`, AK/SK `SDK-HMAC-SHA256` signatures),
//! authorization per project, and the CodeArts error body `{"error_code", "error_msg"}`.
//!
//! Must not know: processes, SQL text. Reads go to the store; anything that changes
//! scheduling goes through the engine.

use runnel_engine::Engine;
use runnel_store::Store;
use std::sync::Arc;

/// What every handler may use. Built once by the server.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Engine,
    pub store: Store,
    pub config: Arc<ApiConfig>,
}

/// API settings, from the server's typed settings.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// The address clients use to reach this server (`endpoint` in bootstrap credentials,
    /// webhook callback URLs). Without a trailing slash.
    pub public_url: String,
    /// The region name reported in pipeline and run details.
    pub region: String,
}

/// Every route of the API, with its middleware.
pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new().with_state(state)
}
