//! Groups (§6), tags (§7) and variable groups (§8).

use crate::AppState;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}
