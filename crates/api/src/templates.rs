//! Templates, v5 (§9) and v3 (§2).

use crate::AppState;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}
