//! v3 template routes (spec §2.1–§2.4): create a pipeline from a `flow`/`states`/`workflow`
//! body as a polled task, the task's status, the template list and detail in the v3 shape.
//!
//! The creation task is recorded (`initializing` → `processing` → `succeeded`) and the
//! pipeline created within the request (spec §2.1 allows synchronous creation as long as the
//! status reports correctly): every problem, a taken name included, answers 400 at once.

use super::dto::lenient_bool;
use super::flow::{lenient_string, parse_states, to_definition, to_v3};
use super::v5::UserNames;
use super::{TemplateError, member_of, roles, template_of};
use crate::AppState;
use crate::auth::Caller;
use crate::authz::{Action, is_valid_id};
use crate::definition::prepare;
use crate::dto::pipeline::{PipelineBody, pipeline_url};
use crate::dto::{check_offset, datetime_text};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_store::{
    IdentityStore, NewTemplateTask, Role, SortDir, TemplateQuery, TemplateRecord, TemplateSortKey,
    TemplateStore, TemplateTaskStatus, new_id,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// `TemplateCddl` (§2.1). `changeInfo` is ignored.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct TemplateCddl {
    /// A state's successors: `{"initial": ["state_1"], "state_1": ["Task_1", "final"], …}`.
    #[schema(value_type = Object)]
    flow: Map<String, Value>,
    /// `TemplateState` objects, read by `flow::parse_states` (which keeps their order).
    #[schema(value_type = Object)]
    states: Map<String, Value>,
    workflow: Workflow,
}

/// `Workflow` (§2.1).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
struct Workflow {
    name: String,
    #[serde(alias = "projectId")]
    project_id: String,
    #[serde(default, alias = "projectName", deserialize_with = "lenient_string")]
    #[allow(dead_code)]
    project_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    description: Option<String>,
    #[serde(default, alias = "parameters")]
    parameter: Option<Vec<PipelineParam>>,
    #[serde(default, alias = "sources")]
    source: Option<Vec<Source>>,
}

/// `PipelineParam` (§2.1), SDK and doc-example spellings.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
struct PipelineParam {
    name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    value: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    description: Option<String>,
    #[serde(
        default,
        alias = "paramtype",
        alias = "paramType",
        deserialize_with = "lenient_string"
    )]
    param_type: Option<String>,
    #[serde(default, alias = "isStatic", deserialize_with = "lenient_bool")]
    is_static: Option<bool>,
    #[serde(default, alias = "isDefault", deserialize_with = "lenient_bool")]
    #[allow(dead_code)]
    is_default: Option<bool>,
    #[serde(default)]
    limits: Option<Value>,
}

/// `Source` (§2.1), SDK and doc-example spellings.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
struct Source {
    #[serde(default, alias = "scmType", deserialize_with = "lenient_string")]
    scm_type: Option<String>,
    #[serde(
        default,
        alias = "codeHubName",
        alias = "codehubName",
        deserialize_with = "lenient_string"
    )]
    codehub_name: Option<String>,
    #[serde(
        default,
        alias = "codeHubId",
        alias = "codehubId",
        deserialize_with = "lenient_string"
    )]
    codehub_id: Option<String>,
    #[serde(default, alias = "gitUrl", deserialize_with = "lenient_string")]
    git_url: Option<String>,
    #[serde(default, alias = "webUrl", deserialize_with = "lenient_string")]
    web_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    branch: Option<String>,
    #[serde(default, alias = "defaultBranch", deserialize_with = "lenient_string")]
    default_branch: Option<String>,
    #[serde(default, alias = "branchList")]
    branch_list: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient_bool")]
    disable: Option<bool>,
}

/// The answer of `POST /v3/templates/task` (§2.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskCreated {
    task_id: String,
}

/// The answer of `GET /v3/templates/{task_id}/status` (§2.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskStatus {
    task_id: String,
    /// `initializing`, `processing`, `succeeded` or `failed`.
    task_status: &'static str,
    /// Empty until the task succeeded.
    pipeline_id: String,
    pipeline_name: String,
    pipeline_url: String,
}

/// `POST /v3/templates/task` (§2.1).
#[utoipa::path(post, path = "/v3/templates/task", tag = "Templates (v3)", request_body = TemplateCddl,
    responses((status = 200, description = "The creation task (`{\"task_id\"}`); poll its status", body = TaskCreated)))]
pub(crate) async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<TemplateCddl>,
) -> Result<Json<TaskCreated>, TemplateError> {
    let member = member_of(&state, &caller, &body.workflow.project_id).await?;
    member.require(Action::Edit)?;
    check_pipeline_name(&body.workflow.name)?;
    let states = parse_states(&body.states)?;
    let mut templates = HashMap::new();
    for (_, task) in &states {
        let Some(template_id) = task.module_or_template_id.as_deref() else {
            continue;
        };
        if templates.contains_key(template_id) || !is_valid_id(template_id) {
            continue;
        }
        if let Some(record) = state
            .api
            .store
            .template(&member.project.domain_id, template_id)
            .await
            .map_err(TemplateError::store)?
            && let Ok(definition) = serde_json::from_str::<Value>(&record.definition)
        {
            templates.insert(template_id.to_owned(), definition);
        }
    }
    let definition = to_definition(&body.flow, &states, &templates)?;
    let pipeline = PipelineBody {
        name: body.workflow.name.clone(),
        description: body.workflow.description.clone(),
        is_publish: false,
        sources: Some(sources(body.workflow.source.as_deref().unwrap_or_default())),
        variables: Some(Value::Array(
            body.workflow
                .parameter
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(variable)
                .collect(),
        )),
        schedules: None,
        triggers: None,
        manifest_version: None,
        definition: definition.to_string(),
        project_name: Some(member.project.name.clone()),
        group_id: None,
        id: None,
        concurrency_control: None,
        security_level: None,
        disable_release_branch_management: None,
        execution_plans: None,
        cancel_strategy: None,
        confidentiality_code: None,
        agency_name: None,
        variable_group_ids: None,
    };
    let now = state.api.engine.now();
    // Every problem of the graph, definition or parameters answers 400 before a task exists.
    prepare(&pipeline, now)?;
    let store = &state.api.store;
    let task_id = new_id();
    store
        .create_template_task(NewTemplateTask {
            id: task_id.clone(),
            domain_id: member.project.domain_id.clone(),
            project_id: member.project.id.clone(),
            user_id: caller.user.id.clone(),
            pipeline_name: pipeline.name.clone(),
            now,
        })
        .await
        .map_err(TemplateError::store)?;
    let advance = |status, pipeline_id: Option<String>, message: String| {
        store.update_template_task(
            &task_id,
            status,
            pipeline_id,
            message,
            state.api.engine.now(),
        )
    };
    advance(TemplateTaskStatus::Processing, None, String::new())
        .await
        .map_err(TemplateError::store)?;
    match crate::pipelines::create_pipeline(&state, &member, &pipeline, None, 1).await {
        Ok(record) => {
            advance(
                TemplateTaskStatus::Succeeded,
                Some(record.id),
                String::new(),
            )
            .await
            .map_err(TemplateError::store)?;
            Ok(Json(TaskCreated { task_id }))
        }
        Err(err) => {
            // The task is kept as failed; the caller gets the reason now.
            if let Err(store_err) = advance(TemplateTaskStatus::Failed, None, err.message()).await {
                tracing::warn!(task_id = %task_id, error = %store_err, "cannot record a failed template task");
            }
            Err(err.into())
        }
    }
}

/// Pipeline names (§1.8): 1 to 128 letters (Chinese included), digits, `-` and `_`.
fn check_pipeline_name(name: &str) -> Result<(), ApiError> {
    let count = name.chars().count();
    if (1..=128).contains(&count)
        && name
            .chars()
            .all(|ch| ch.is_alphanumeric() || ch == '-' || ch == '_')
    {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "workflow.name",
            "must be 1 to 128 characters: letters (Chinese included), digits, - and _",
        ))
    }
}

/// A v3 parameter as a v5 `CustomVariable` (§12.5): normalparam → string, growthparam →
/// autoIncrement, enumparam → enum; `is_static` false = settable per run.
fn variable(param: &PipelineParam) -> Value {
    let kind = match param
        .param_type
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "growthparam" | "autoincrement" => "autoIncrement",
        "enumparam" | "enum" => "enum",
        _ => "string",
    };
    let limits: Vec<Value> = param
        .limits
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|limit| match limit {
            Value::String(text) => Some(json!(text)),
            Value::Object(option) => option.get("name").or_else(|| option.get("value")).cloned(),
            _ => None,
        })
        .collect();
    json!({
        "name": param.name,
        "type": kind,
        "value": param.value.clone().unwrap_or_default(),
        "description": param.description.clone().unwrap_or_default(),
        "is_runtime": param.is_static == Some(false),
        "limits": limits,
    })
}

/// v3 repositories as v5 code sources (§13 `CodeSource`); disabled ones are left out.
fn sources(sources: &[Source]) -> Vec<Map<String, Value>> {
    sources
        .iter()
        .filter(|source| source.disable != Some(true))
        .map(|source| {
            let mut params = Map::new();
            let git_type = source
                .scm_type
                .as_deref()
                .filter(|kind| !kind.is_empty())
                .unwrap_or("codehub")
                .to_ascii_lowercase();
            params.insert("git_type".to_owned(), json!(git_type));
            // v3 `git_url` is the SSH clone URL (§2.1); v5 `git_url` is the HTTPS one, which the
            // server clones. An SSH URL therefore becomes `ssh_git_url` only (the pipeline does
            // not check it out until an HTTPS `git_url` is set); an HTTP(S) URL is `git_url`.
            let url = source.git_url.clone().unwrap_or_default();
            let is_http = url.starts_with("https://") || url.starts_with("http://");
            if !url.is_empty() {
                let key = if is_http { "git_url" } else { "ssh_git_url" };
                params.insert(key.to_owned(), json!(url));
            }
            let branch = source
                .default_branch
                .clone()
                .filter(|branch| !branch.is_empty())
                .or_else(|| source.branch.clone().filter(|branch| !branch.is_empty()))
                .or_else(|| {
                    source
                        .branch_list
                        .as_ref()
                        .and_then(|list| list.first())
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            for (key, value) in [
                ("codehub_id", source.codehub_id.clone()),
                ("repo_name", source.codehub_name.clone()),
                ("web_url", source.web_url.clone()),
                ("default_branch", branch),
            ] {
                if let Some(value) = value.filter(|value| !value.is_empty()) {
                    params.insert(key.to_owned(), json!(value));
                }
            }
            let mut code = Map::new();
            code.insert("type".to_owned(), json!("code"));
            code.insert("params".to_owned(), Value::Object(params));
            code
        })
        .collect()
}

/// `/v3/templates/{task_id}/status` (the router names the segment `template_id`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdPath {
    template_id: String,
}

/// `GET /v3/templates/{task_id}/status` (§2.2). A task of another account, or of a project
/// the caller has left, answers like an unknown one.
#[utoipa::path(get, path = "/v3/templates/{template_id}/status", tag = "Templates (v3)",
    params(("template_id" = String, Path, description = "The `task_id` of `POST /v3/templates/task`")),
    responses((status = 200, description = "The task and, once it succeeded, its pipeline", body = TaskStatus)))]
pub(crate) async fn task_status(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
) -> Result<Json<TaskStatus>, TemplateError> {
    let unknown = || ApiError::invalid("task_id", "the template task does not exist");
    if !is_valid_id(&path.template_id) {
        return Err(unknown().into());
    }
    let task = state
        .api
        .store
        .template_task(&path.template_id)
        .await
        .map_err(TemplateError::store)?
        .filter(|task| task.domain_id == caller.user.domain_id)
        .ok_or_else(unknown)?;
    if task.user_id != caller.user.id {
        member_of(&state, &caller, &task.project_id)
            .await
            .map_err(|_| unknown())?;
    }
    let pipeline_url = task
        .pipeline_id
        .as_deref()
        .map(|pipeline_id| {
            pipeline_url(&state.api.config.public_url, &task.project_id, pipeline_id)
        })
        .unwrap_or_default();
    Ok(Json(TaskStatus {
        task_id: task.id,
        task_status: task.status.as_str(),
        pipeline_id: task.pipeline_id.unwrap_or_default(),
        pipeline_name: task.pipeline_name,
        pipeline_url,
    }))
}

/// Query of `GET /v3/templates` (§2.3); strings, parsed here to name the wrong one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `pipeline`.
    #[serde(default, alias = "templateType")]
    #[param(required = true)]
    template_type: Option<String>,
    /// System templates (`true`) or the account's own (`false`).
    #[serde(default, alias = "isBuildIn")]
    #[param(required = true, value_type = bool)]
    is_build_in: Option<String>,
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    asc: Option<String>,
}

/// `GET /v3/templates` (§2.3).
#[utoipa::path(get, path = "/v3/templates", tag = "Templates (v3)", params(ListQuery),
    responses((status = 200, description = "`{total, page_number, page_size, content: [TemplateView]}`", body = serde_json::Value)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, TemplateError> {
    check_template_type(query.template_type.as_deref(), true)?;
    let is_system = match query.is_build_in.as_deref().map(str::trim) {
        Some(text) if text.eq_ignore_ascii_case("true") => true,
        Some(text) if text.eq_ignore_ascii_case("false") => false,
        _ => {
            return Err(ApiError::invalid("is_build_in", "is required: true or false").into());
        }
    };
    let number = |text: Option<&str>, field: &str| -> Result<Option<i64>, ApiError> {
        match text.map(str::trim).filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(field, "must be a whole number")),
        }
    };
    let offset = check_offset(number(query.offset.as_deref(), "offset")?.unwrap_or(0))?;
    let limit = match number(query.limit.as_deref(), "limit")?.unwrap_or(0) {
        0 => 10,
        limit @ 1..=100 => limit,
        _ => return Err(ApiError::invalid("limit", "must be from 0 to 100").into()),
    };
    let sort_key = match query.sort.as_deref().unwrap_or("") {
        "" | "create_time" => TemplateSortKey::CreateTime,
        "last_modify_time" | "update_time" => TemplateSortKey::UpdateTime,
        "template_name" | "name" => TemplateSortKey::Name,
        _ => {
            return Err(ApiError::invalid(
                "sort",
                "must be create_time, last_modify_time or template_name",
            )
            .into());
        }
    };
    let sort_dir = if query
        .asc
        .as_deref()
        .is_some_and(|asc| asc.trim().eq_ignore_ascii_case("true"))
    {
        SortDir::Asc
    } else {
        SortDir::Desc
    };
    let domain_id = caller.user.domain_id.clone();
    let found = state
        .api
        .store
        .list_templates(
            &domain_id,
            &TemplateQuery {
                name_contains: query.name.clone().filter(|name| !name.is_empty()),
                is_system: Some(is_system),
                sort_key,
                sort_dir,
                offset,
                limit,
                ..TemplateQuery::default()
            },
        )
        .await
        .map_err(TemplateError::store)?;
    let mut views = Views::new(&state, &caller).await?;
    let ids: Vec<String> = found.items.iter().map(|record| record.id.clone()).collect();
    let favorites = state
        .api
        .store
        .template_favorites_among(&caller.user.id, &ids)
        .await
        .map_err(TemplateError::store)?;
    for id in ids {
        let is_favorite = favorites.contains(&id);
        views.favorites.insert(id, is_favorite);
    }
    let mut content = Vec::with_capacity(found.items.len());
    for record in &found.items {
        content.push(views.view(&state, record, true).await?);
    }
    Ok(Json(json!({
        "total": found.total,
        "page_number": offset / limit + 1,
        "page_size": limit,
        "content": content,
    })))
}

/// Query of `GET /v3/templates/{template_id}` (§2.4).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DetailQuery {
    #[serde(default, alias = "templateType")]
    template_type: Option<String>,
}

/// `GET /v3/templates/{template_id}` (§2.4).
#[utoipa::path(get, path = "/v3/templates/{template_id}", tag = "Templates (v3)", params(DetailQuery),
    responses((status = 200, description = "The `TemplateView` with `flow`, `states` and `parameter`", body = serde_json::Value)))]
pub(crate) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(path): PathParams<IdPath>,
    QueryParams(query): QueryParams<DetailQuery>,
) -> Result<Json<Value>, TemplateError> {
    check_template_type(query.template_type.as_deref(), false)?;
    let record = template_of(&state, &caller.user.domain_id, &path.template_id).await?;
    let mut views = Views::new(&state, &caller).await?;
    Ok(Json(views.view(&state, &record, false).await?))
}

/// `template_type` is `pipeline` (any case); required on the list, optional on the detail.
fn check_template_type(value: Option<&str>, required: bool) -> Result<(), ApiError> {
    match value.map(str::trim) {
        None | Some("") if !required => Ok(()),
        Some(kind) if kind.eq_ignore_ascii_case("pipeline") => Ok(()),
        None | Some("") => Err(ApiError::invalid("template_type", "is required: pipeline")),
        Some(_) => Err(ApiError::invalid("template_type", "must be pipeline")),
    }
}

/// What the v3 views need besides the template: the caller, names, the account's name.
struct Views {
    user_id: String,
    is_admin: bool,
    domain_name: String,
    names: UserNames,
    /// The caller's favorite mark per template id, read once per page.
    favorites: HashMap<String, bool>,
}

impl Views {
    async fn new(state: &AppState, caller: &Caller) -> Result<Views, TemplateError> {
        let domain_name = state
            .api
            .store
            .domain(&caller.user.domain_id)
            .await
            .map_err(TemplateError::store)?
            .map(|domain| domain.name)
            .unwrap_or_default();
        Ok(Views {
            user_id: caller.user.id.clone(),
            is_admin: roles(state, caller).await?.contains(&Role::Admin),
            domain_name,
            names: UserNames::default(),
            favorites: HashMap::new(),
        })
    }

    /// `TemplateView` (§13); `is_list` adds `template_url`, `can_update`, `can_delete`, `need_hub`.
    async fn view(
        &mut self,
        state: &AppState,
        record: &TemplateRecord,
        is_list: bool,
    ) -> Result<Value, TemplateError> {
        let zone = state.api.config.utc_offset_minutes;
        let is_watch = match self.favorites.get(&record.id) {
            Some(flag) => *flag,
            None => state
                .api
                .store
                .is_template_favorite(&self.user_id, &record.id)
                .await
                .map_err(TemplateError::store)?,
        };
        self.favorites.insert(record.id.clone(), is_watch);
        let (flow, states) = to_v3(&record.id, &record.definition);
        let mut view = json!({
            "template_id": record.id,
            "template_name": record.name,
            "template_type": "pipeline",
            "user_id": record.creator_id,
            "user_name": self.names.name(state, &record.creator_id).await?,
            "domain_id": record.domain_id.clone().unwrap_or_default(),
            "domain_name": if record.is_system { String::new() } else { self.domain_name.clone() },
            "is_build_in": record.is_system,
            "region": if record.is_system { "Cloud Pipeline".to_owned() } else { state.api.config.region.clone() },
            "project_id": "",
            "project_name": "",
            "create_time": datetime_text(Some(record.created_at), zone),
            "last_modify_time": datetime_text(Some(record.updated_at), zone),
            "is_watch": is_watch,
            "description": record.description,
            "parameter": parameters(&record.variables),
            "flow": flow,
            "states": states,
        });
        if is_list {
            let can_change =
                !record.is_system && (record.creator_id == self.user_id || self.is_admin);
            let url = match state.api.config.public_url.trim_end_matches('/') {
                "" => String::new(),
                base => format!("{base}/ui/templates/{}", record.id),
            };
            if let Some(object) = view.as_object_mut() {
                object.insert("template_url".to_owned(), json!(url));
                object.insert("can_update".to_owned(), json!(can_change));
                object.insert("can_delete".to_owned(), json!(can_change));
                object.insert("need_hub".to_owned(), json!(record.is_show_source));
            }
        }
        Ok(view)
    }
}

/// A template's variables as v3 `TemplateParam`s (§13).
fn parameters(variables: &Value) -> Vec<Value> {
    variables
        .as_array()
        .into_iter()
        .flatten()
        .map(|variable| {
            let text = |key: &str| variable.get(key).and_then(Value::as_str).unwrap_or_default();
            let (param_type, display_type) = match text("type") {
                "autoIncrement" => ("growthparam", "text"),
                "enum" => ("enumparam", "select"),
                _ => ("normalparam", "text"),
            };
            let limits: Vec<Value> = variable
                .get("limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|option| {
                    json!({"disable": "false", "name": option, "displayname": option, "id": option, "language": ""})
                })
                .collect();
            let is_runtime = variable.get("is_runtime").and_then(Value::as_bool) == Some(true);
            let is_secret = variable.get("is_secret").and_then(Value::as_bool) == Some(true);
            json!({
                "required": "false",
                "visible": (!is_secret).to_string(),
                "name": text("name"),
                "value": if is_secret { "" } else { text("value") },
                "description": text("description"),
                "paramtype": param_type,
                "display_type": display_type,
                "display_name": text("name"),
                "is_static": !is_runtime,
                "is_default": false,
                "limits": limits,
                "constraints": [],
            })
        })
        .collect()
}
