//! Git webhooks: one endpoint per pipeline trigger (§12.4), authenticated by the trigger's secret, not a token.

use crate::AppState;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}
