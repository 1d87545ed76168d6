//! IAM wire types (spec §10): the password-method token request and the project lookup query.

use serde::{Deserialize, Serialize};

/// `KeystoneCreateUserTokenByPasswordRequestBody` (§10.1).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct TokenRequest {
    pub(crate) auth: AuthBody,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct AuthBody {
    pub(crate) identity: Identity,
    pub(crate) scope: Scope,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct Identity {
    /// `["password"]`: the only method supported.
    #[schema(min_items = 1)]
    pub(crate) methods: Vec<String>,
    #[serde(default)]
    pub(crate) password: Option<PasswordIdentity>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct PasswordIdentity {
    pub(crate) user: PasswordUser,
}

#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct PasswordUser {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) domain: NameOrId,
}

impl std::fmt::Debug for PasswordUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordUser")
            .field("name", &self.name)
            .field("password", &"…")
            .field("domain", &self.domain)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub(crate) struct NameOrId {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// Exactly one of `project` or `domain`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct Scope {
    #[serde(default)]
    pub(crate) project: Option<NameOrId>,
    #[serde(default)]
    pub(crate) domain: Option<NameOrId>,
}

/// `GET /v3/projects` (§10.2).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProjectsQuery {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) domain_id: Option<String>,
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    #[serde(default)]
    pub(crate) is_domain: Option<bool>,
    #[serde(default)]
    #[param(minimum = 1)]
    pub(crate) page: Option<i64>,
    #[serde(default)]
    #[param(minimum = 1, maximum = 5000)]
    pub(crate) per_page: Option<i64>,
}

/// `?nocatalog=…` of `POST /v3/auth/tokens`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    pub(crate) nocatalog: Option<String>,
}
