//! The OpenAPI 3 document at `GET /openapi.json` (unauthenticated), generated from the
//! handlers' `#[utoipa::path]` annotations and the wire types' `ToSchema` derives.
//!
//! What every operation shares is added here once instead of on each handler: the path
//! parameters (read from the `{name}` segments), the error answers (the CodeArts body, or the
//! Keystone one on the IAM routes) and the two ways to authenticate. A test
//! (`crates/api/tests/api/openapi.rs`) checks that every route the router serves is documented.

use crate::dto::organize::GroupVo;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Runnel API",
        description = "CodeArts Pipeline v5-compatible API of Runnel, with the IAM routes the Huawei Cloud SDKs use. \
            Authenticate with `X-Auth-Token` (from `POST /v3/auth/tokens`) or an AK/SK `SDK-HMAC-SHA256` signature. \
            Errors answer `{\"error_code\", \"error_msg\"}` with an `X-Request-Id` header."
    ),
    paths(
        document,
        crate::iam::issue_token,
        crate::iam::check_token,
        crate::iam::revoke_token,
        crate::iam::projects,
        crate::pipelines::create,
        crate::pipelines::list,
        crate::pipelines::detail,
        crate::pipelines::update,
        crate::pipelines::delete,
        crate::pipeline_ops::batch_status,
        crate::pipeline_ops::versions,
        crate::pipeline_ops::ban,
        crate::pipeline_ops::unban,
        crate::pipeline_ops::system_variables,
        crate::runs::run,
        crate::runs::list,
        crate::runs::detail,
        crate::logs::step_log,
        crate::logs::step_log_without_api,
        crate::stream::step_log_stream,
        crate::results::step_outputs,
        crate::results::artifacts,
        crate::actions::stop,
        crate::actions::retry,
        crate::actions::review_pass,
        crate::actions::review_refuse,
        crate::actions::delay,
        crate::actions::delay_pass,
        crate::actions::delay_refuse,
        crate::actions::manual_pass,
        crate::actions::manual_refuse,
        crate::actions::resume,
        crate::actions::cancel_queuing,
        crate::organize::groups::create_group,
        crate::organize::groups::rename_group,
        crate::organize::groups::delete_group,
        crate::organize::groups::group_tree,
        crate::organize::groups::move_pipelines,
        crate::organize::tags::create_tag,
        crate::organize::tags::list_tags,
        crate::organize::tags::list_tags_post,
        crate::organize::tags::update_tag,
        crate::organize::tags::delete_tag,
        crate::organize::tags::set_tags,
        crate::organize::variables::create_variable_group,
        crate::organize::variables::variable_group_detail,
        crate::organize::variables::list_variable_groups,
        crate::organize::variables::update_variable_group,
        crate::organize::variables::delete_variable_group,
        crate::organize::variables::bind_variable_groups,
        crate::organize::variables::bound_variable_groups,
        crate::admin::own_projects,
        crate::admin::list_users,
        crate::admin::create_user,
        crate::admin::disable_user,
        crate::admin::enable_user,
        crate::admin::revoke_tokens,
        crate::admin::list_access_keys,
        crate::admin::create_access_key,
        crate::admin::delete_access_key,
        crate::admin::list_projects,
        crate::admin::create_project,
        crate::admin::list_members,
        crate::admin::add_member,
        crate::admin::remove_member,
        crate::templates::v5::create,
        crate::templates::v5::list,
        crate::templates::v5::detail,
        crate::templates::v5::update,
        crate::templates::v5::delete,
        crate::templates::v5::favorite,
        crate::templates::v5::copy,
        crate::templates::v5::create_pipeline,
        crate::templates::v3::create_task,
        crate::templates::v3::task_status,
        crate::templates::v3::list,
        crate::templates::v3::detail,
        crate::templates::v3_list::list,
        crate::legacy::list,
        crate::legacy::start,
        crate::legacy::stop,
        crate::legacy::remove,
        crate::legacy::status::status,
        crate::legacy::status::build_result,
        crate::webhooks::receive,
        crate::webhooks::deliveries,
        crate::webhooks::create_endpoint,
        crate::webhooks::list_endpoints,
        crate::webhooks::delete_endpoint,
    ),
    components(schemas(ErrorBody, IamErrorBody, IamError, GroupVo)),
    modifiers(&Conventions),
    tags(
        (name = "IAM", description = "Tokens and the project lookup the SDKs use (spec §10)"),
        (name = "Pipelines", description = "Pipeline definitions (spec §4)"),
        (name = "Runs", description = "Runs, their logs and results (spec §5)"),
        (name = "Run actions", description = "Stop, retry, reviews, manual stages, delays, queue (spec §5.2–§5.11)"),
        (name = "Pipeline groups", description = "Folders of pipelines, three levels deep (spec §6)"),
        (name = "Pipeline tags", description = "Project-level labels (spec §7)"),
        (name = "Variable groups", description = "Shared parameter sets (spec §8)"),
        (name = "Templates", description = "Templates of the account (spec §9; `project_id` is the account id) and creating a pipeline from one (§4.7)"),
        (name = "Templates (v3)", description = "The v3 template list and detail, and creating a pipeline from a `flow`/`states` body as a polled task (spec §2)"),
        (name = "Pipelines (v3)", description = "The legacy v3 pipeline API (spec §3)"),
        (name = "Webhooks", description = "Git forge deliveries to a pipeline's triggers, and their log (spec §12.4)"),
        (name = "Service endpoints", description = "Git credentials of a project, used by code sources"),
        (name = "Administration", description = "Users, projects, members, access keys and tokens of the caller's domain (domain administrators; `GET /v5/projects` for everyone)"),
        (name = "Meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The CodeArts error body (spec §1.7.1).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// e.g. `DEVPIPE.00011401`.
    pub(crate) error_code: String,
    /// What went wrong, naming the field and why for bad input.
    pub(crate) error_msg: String,
}

/// The error body of the IAM routes (Keystone shape, spec §10).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IamErrorBody {
    pub(crate) error: IamError,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IamError {
    /// The HTTP status.
    pub(crate) code: u16,
    pub(crate) message: String,
    pub(crate) title: String,
    pub(crate) error_code: String,
}

/// The OpenAPI 3 document of this API (generated from the code).
#[utoipa::path(get, path = "/openapi.json", tag = "Meta", security(()),
    responses((status = 200, description = "This document", content_type = "application/json", body = serde_json::Value)))]
pub(crate) async fn document() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the generated document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()
}

/// Adds what every operation shares.
struct Conventions;

/// Error answers every operation may give (spec §1.7.2), with the body shape.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "Bad input (the field is named), an object that does not exist (also another project's), or a state that does not allow the action",
    ),
    (
        "401",
        "No credentials, or credentials that authenticate nobody",
    ),
    ("403", "The caller's role does not allow the action"),
    ("404", "No such route"),
    ("413", "The body is larger than the limit"),
    ("429", "Too many requests"),
    ("500", "Internal error (logged with the request id)"),
    ("503", "The database is unavailable; retry"),
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Token",
                "A token from POST /v3/auth/tokens (valid 24 h)",
            ))),
        );
        components.add_security_scheme(
            "aksk",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` with `X-Sdk-Date` (spec §1.4)",
            ))),
        );
        let schemas = components.schemas.clone();
        openapi.security = Some(vec![
            SecurityRequirement::new("token", Vec::<String>::new()),
            SecurityRequirement::new("aksk", Vec::<String>::new()),
        ]);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let is_iam = path.starts_with("/v3/auth/") || path == "/v3/projects";
            let segments: Vec<String> = path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_path_parameters(operation, &segments);
                add_errors(operation, is_iam);
                relax_optional_body(operation, &schemas);
            }
        }
    }
}

fn add_path_parameters(operation: &mut Operation, names: &[String]) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for name in names.iter().rev() {
        let is_present = parameters.iter().any(|parameter| match parameter {
            RefOr::T(parameter) => {
                parameter.name == *name && parameter.parameter_in == ParameterIn::Path
            }
            RefOr::Ref(_) => false,
        });
        if is_present {
            continue;
        }
        let description = match name.as_str() {
            "project_id" => {
                "CodeArts project id (32 hex); for the template routes, the account (tenant) id"
            }
            "pipeline_id" => "Pipeline id",
            "pipeline_run_id" => "Run id",
            "job_run_id" => "Job run id (`jobs[].id` of the run detail)",
            "step_run_id" => "Step run id (`steps[].id`, or a stage's `pre`/`post` step id)",
            "queue_id" => "The `queue_id` of a queued run's answer",
            "template_id" => "Template id",
            "endpoint_id" => "Service endpoint id",
            _ => "Id",
        };
        let parameter: Parameter = ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(String::schema()))
            .build();
        parameters.insert(0, RefOr::T(parameter));
    }
}

/// A body whose fields are all optional, or a list, may be left out: an empty body counts as
/// `{}` or `[]` (the SDKs send none for optional bodies, spec §1.5).
fn relax_optional_body(operation: &mut Operation, schemas: &BTreeMap<String, RefOr<Schema>>) {
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
        return;
    };
    let is_optional = !body.content.is_empty()
        && body.content.values().all(|content| match content {
            RefOr::T(content) => content
                .schema
                .as_ref()
                .is_some_and(|schema| accepts_empty(schema, schemas)),
            RefOr::Ref(_) => false,
        });
    if is_optional {
        body.required = Some(Required::False);
    }
}

fn accepts_empty(schema: &RefOr<Schema>, schemas: &BTreeMap<String, RefOr<Schema>>) -> bool {
    let schema = match schema {
        RefOr::T(schema) => schema,
        RefOr::Ref(reference) => match reference
            .ref_location
            .strip_prefix("#/components/schemas/")
            .and_then(|name| schemas.get(name))
        {
            Some(RefOr::T(schema)) => schema,
            _ => return false,
        },
    };
    match schema {
        Schema::Object(object) => !object.properties.is_empty() && object.required.is_empty(),
        Schema::Array(_) => true,
        _ => false,
    }
}

fn add_errors(operation: &mut Operation, is_iam: bool) {
    let schema = if is_iam { "IamErrorBody" } else { "ErrorBody" };
    for (status, description) in ERRORS {
        operation
            .responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(schema)))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}
