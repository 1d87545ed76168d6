//! `POST /v3/pipeline/templates/list` (spec §3.7): the older template list of the v3 pipeline
//! docs, answered like the v5 list of the caller's own account (§9.5).

use super::dto::{ListTemplatesQuery, TemplateList, lenient_bool};
use super::{TemplateError, TenantCaller};
use crate::AppState;
use crate::auth::Caller;
use crate::dto::lenient_i64;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

/// The body of §3.7; SDK-style snake_case and the camelCase spellings.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct LegacyListBody {
    /// System templates (`true`), the account's own (`false`), or both (absent).
    #[serde(default, alias = "isSystem", deserialize_with = "lenient_bool")]
    is_system: Option<bool>,
    /// Part of the name, any case.
    #[serde(default, alias = "templateName")]
    template_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    offset: Option<i64>,
    /// 1 to 100; 0 or absent is 10.
    #[serde(default, deserialize_with = "lenient_i64")]
    limit: Option<i64>,
    /// `create_time` (default), `update_time` or `name`.
    #[serde(default, alias = "sortKey")]
    sort_key: Option<String>,
    /// `asc` or `desc` (default).
    #[serde(default, alias = "sortDir")]
    sort_dir: Option<String>,
}

/// `POST /v3/pipeline/templates/list` (§3.7): `{offset, limit, total, templates}` with the
/// items of the v5 list (`PipelineTemplateSimpleVO`), system templates and the caller's
/// account's own.
#[utoipa::path(post, path = "/v3/pipeline/templates/list", tag = "Templates (v3)",
    request_body(content = LegacyListBody, description = "Filters and paging; all optional"),
    responses((status = 200, description = "A page of templates, as the v5 list answers", body = TemplateList)))]
pub(crate) async fn list(
    state: State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<LegacyListBody>,
) -> Result<Json<TemplateList>, TemplateError> {
    let query = ListTemplatesQuery {
        is_system: body.is_system,
        name: body.template_name,
        offset: body.offset,
        limit: body.limit,
        sort_key: body.sort_key,
        sort_dir: body.sort_dir,
        ..ListTemplatesQuery::default()
    };
    super::v5::list(state, TenantCaller { caller }, JsonBody(query)).await
}
