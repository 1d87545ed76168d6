//! Administration endpoints (admin-only): users, projects, members, AK/SK pairs, token revocation.

use crate::AppState;

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}
