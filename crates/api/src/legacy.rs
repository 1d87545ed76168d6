//! The legacy v3 pipeline API (§3).

use crate::AppState;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}
