//! v5 template routes (spec §9): create, detail, update, delete, list, favorite, copy; and
//! creating a pipeline from a template (§4.7) through the pipeline module's create path.

use super::check::{canonical_language, check_name, check_template};
use super::dto::{
    ComponentQuery, CopyBody, FavoriteQuery, ListTemplatesQuery, PipelineByTemplateBody,
    StageSummary, TemplateBody, TemplateDetail, TemplateIdResponse, TemplateList, TemplateListItem,
    snake_case_variable,
};
use super::{TemplateError, TenantCaller, require_author, require_manager, template_of};
use crate::AppState;
use crate::authz::{Action, Member};
use crate::dto::pipeline::PipelineBody;
use crate::dto::{PipelineIdResponse, SUCCESS, Success, page, sort_dir};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_store::{
    IdentityStore, NewTemplate, TemplateQuery, TemplateRecord, TemplateSortKey, TemplateStore,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// `…/pipeline-templates/{template_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TemplatePath {
    pub(crate) template_id: String,
}

/// `POST /v5/{tenant_id}/api/pipeline-templates` (§9.1).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-templates", tag = "Templates", request_body = TemplateBody,
    responses((status = 200, description = "The new custom template's id", body = TemplateIdResponse)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    tenant: TenantCaller,
    JsonBody(body): JsonBody<TemplateBody>,
) -> Result<Json<TemplateIdResponse>, TemplateError> {
    require_author(&state, &tenant.caller).await?;
    let now = state.api.engine.now();
    let checked = check_template(&body, tenant.domain_id(), now)?;
    let template_id = state
        .api
        .store
        .create_template(NewTemplate {
            domain_id: Some(tenant.domain_id().to_owned()),
            name: checked.name,
            description: checked.description,
            language: checked.language,
            manifest_version: "3.0".to_owned(),
            icon: checked.icon,
            is_system: false,
            is_show_source: checked.is_show_source,
            definition: checked.definition,
            variables: checked.variables,
            actor_id: tenant.user_id().to_owned(),
            now,
        })
        .await
        .map_err(TemplateError::store)?;
    Ok(Json(TemplateIdResponse { template_id }))
}

/// `GET /v5/{tenant_id}/api/pipeline-templates/{template_id}` (§9.2).
#[utoipa::path(get, path = "/v5/{project_id}/api/pipeline-templates/{template_id}", tag = "Templates",
    responses((status = 200, description = "The template, with the caller's favorite mark", body = TemplateDetail)))]
pub(crate) async fn detail(
    State(state): State<AppState>,
    tenant: TenantCaller,
    PathParams(path): PathParams<TemplatePath>,
) -> Result<Json<TemplateDetail>, TemplateError> {
    let record = template_of(&state, tenant.domain_id(), &path.template_id).await?;
    let is_collect = state
        .api
        .store
        .is_template_favorite(tenant.user_id(), &record.id)
        .await
        .map_err(TemplateError::store)?;
    Ok(Json(TemplateDetail {
        id: record.id.clone(),
        name: record.name.clone(),
        icon: record.icon.clone(),
        manifest_version: record.manifest_version.clone(),
        language: record.language.clone(),
        description: record.description.clone(),
        is_system: record.is_system,
        region: state.api.config.region.clone(),
        domain_id: record.domain_id.clone(),
        variables: variables_of(&record),
        creator_id: record.creator_id.clone(),
        updater_id: record.updater_id.clone(),
        is_collect: is_collect.to_string(),
        is_show_source: record.is_show_source,
        definition: record.definition.clone(),
        create_time: record.created_at.as_millis(),
        update_time: record.updated_at.as_millis(),
    }))
}

/// `PUT /v5/{tenant_id}/api/pipeline-templates/{template_id}` (§9.3): full replacement.
/// A system template answers `DEVPIPE.00011204` and stays as it is.
#[utoipa::path(put, path = "/v5/{project_id}/api/pipeline-templates/{template_id}", tag = "Templates", request_body = TemplateBody,
    responses((status = 200, description = "Replaced", body = TemplateIdResponse)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    tenant: TenantCaller,
    PathParams(path): PathParams<TemplatePath>,
    JsonBody(body): JsonBody<TemplateBody>,
) -> Result<Json<TemplateIdResponse>, TemplateError> {
    let record = template_of(&state, tenant.domain_id(), &path.template_id).await?;
    require_manager(&state, &tenant.caller, &record, "changed").await?;
    let now = state.api.engine.now();
    let checked = check_template(&body, tenant.domain_id(), now)?;
    state
        .api
        .store
        .update_template(
            tenant.domain_id(),
            &record.id,
            NewTemplate {
                domain_id: Some(tenant.domain_id().to_owned()),
                name: checked.name,
                description: checked.description,
                language: checked.language,
                manifest_version: "3.0".to_owned(),
                icon: checked.icon,
                is_system: false,
                is_show_source: checked.is_show_source,
                definition: checked.definition,
                variables: checked.variables,
                actor_id: tenant.user_id().to_owned(),
                now,
            },
        )
        .await
        .map_err(system_refusal("changed"))?;
    Ok(Json(TemplateIdResponse {
        template_id: record.id,
    }))
}

/// `DELETE /v5/{tenant_id}/api/pipeline-templates/{template_id}` (§9.4).
#[utoipa::path(delete, path = "/v5/{project_id}/api/pipeline-templates/{template_id}", tag = "Templates",
    responses((status = 200, description = "Deleted", body = TemplateIdResponse)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    tenant: TenantCaller,
    PathParams(path): PathParams<TemplatePath>,
) -> Result<Json<TemplateIdResponse>, TemplateError> {
    let record = template_of(&state, tenant.domain_id(), &path.template_id).await?;
    require_manager(&state, &tenant.caller, &record, "deleted").await?;
    state
        .api
        .store
        .delete_template(tenant.domain_id(), &record.id)
        .await
        .map_err(system_refusal("deleted"))?;
    Ok(Json(TemplateIdResponse {
        template_id: record.id,
    }))
}

/// The store refuses system templates with `Invalid` (a race with the check above).
fn system_refusal(action: &'static str) -> impl Fn(runnel_store::StoreError) -> TemplateError {
    move |err| match err {
        runnel_store::StoreError::Invalid(_) => TemplateError::SystemTemplate(action),
        other => TemplateError::store(other),
    }
}

/// `POST /v5/{tenant_id}/api/pipeline-templates/list` (§9.5): the account's custom templates
/// and the system templates, each with the caller's favorite mark.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-templates/list", tag = "Templates", request_body = ListTemplatesQuery,
    responses((status = 200, description = "A page of templates", body = TemplateList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    tenant: TenantCaller,
    JsonBody(query): JsonBody<ListTemplatesQuery>,
) -> Result<Json<TemplateList>, TemplateError> {
    let (offset, limit) = page(query.offset, query.limit)?;
    let sort_key = match query.sort_key.as_deref() {
        None | Some("") | Some("create_time") => TemplateSortKey::CreateTime,
        Some("update_time") => TemplateSortKey::UpdateTime,
        Some("name") => TemplateSortKey::Name,
        Some(_) => {
            return Err(
                ApiError::invalid("sort_key", "must be name, create_time or update_time").into(),
            );
        }
    };
    let languages = match query.language.as_deref().map(str::trim) {
        None | Some("") => Vec::new(),
        Some(given) => spellings(given)?,
    };
    let store = &state.api.store;
    let found = store
        .list_templates(
            tenant.domain_id(),
            &TemplateQuery {
                name_contains: query.name.clone().filter(|name| !name.is_empty()),
                language: None,
                languages,
                is_system: query.is_system,
                favorites_of: (query.is_collect == Some(true)).then(|| tenant.user_id().to_owned()),
                sort_key,
                sort_dir: sort_dir(query.sort_dir.as_deref(), "sort_dir")?,
                offset,
                limit,
            },
        )
        .await
        .map_err(TemplateError::store)?;
    let ids: Vec<String> = found.items.iter().map(|record| record.id.clone()).collect();
    let favorites = store
        .template_favorites_among(tenant.user_id(), &ids)
        .await
        .map_err(TemplateError::store)?;
    let mut names = UserNames::default();
    let mut templates = Vec::with_capacity(found.items.len());
    for record in &found.items {
        templates.push(TemplateListItem {
            id: record.id.clone(),
            name: record.name.clone(),
            icon: record.icon.clone(),
            manifest_version: record.manifest_version.clone(),
            language: record.language.clone(),
            description: record.description.clone(),
            is_system: record.is_system,
            region: state.api.config.region.clone(),
            domain_id: record.domain_id.clone(),
            creator_id: record.creator_id.clone(),
            creator_name: names.name(&state, &record.creator_id).await?,
            updater_id: record.updater_id.clone(),
            create_time: record.created_at.as_millis(),
            update_time: record.updated_at.as_millis(),
            is_collect: favorites.contains(&record.id),
            is_show_source: record.is_show_source,
            stages: stage_summaries(&record.definition),
        });
    }
    Ok(Json(TemplateList {
        offset,
        limit,
        total: found.total,
        templates,
    }))
}

/// Every stored spelling of a language (`Node.js`, `nodejs`, `node`, …), for the list filter.
pub(crate) fn spellings(language: &str) -> Result<Vec<String>, TemplateError> {
    let canonical = canonical_language(language).ok_or_else(|| {
        ApiError::invalid(
            "language",
            "must be one of Java, Python, Node.js, Go, .Net, C++, PHP, Other or None",
        )
    })?;
    let all: &[&str] = match canonical {
        "nodejs" => &["nodejs", "node.js", "node"],
        "go" => &["go", "golang"],
        "net" => &["net", ".net", "dotnet"],
        "cpp" => &["cpp", "c++"],
        other => &[other],
    };
    Ok(all.iter().map(|spelling| (*spelling).to_owned()).collect())
}

/// User names by id, looked up once per request.
#[derive(Default)]
pub(crate) struct UserNames(HashMap<String, String>);

impl UserNames {
    pub(crate) async fn name(
        &mut self,
        state: &AppState,
        user_id: &str,
    ) -> Result<String, TemplateError> {
        if let Some(name) = self.0.get(user_id) {
            return Ok(name.clone());
        }
        let name = if user_id == "system" {
            "system".to_owned()
        } else {
            state
                .api
                .store
                .user(user_id)
                .await
                .map_err(TemplateError::store)?
                .map(|user| user.name)
                .unwrap_or_default()
        };
        self.0.insert(user_id.to_owned(), name.clone());
        Ok(name)
    }
}

/// `{name, sequence}` of each stage of a definition (§9.5 `stages`).
fn stage_summaries(definition: &str) -> Vec<StageSummary> {
    let parsed: Value = serde_json::from_str(definition).unwrap_or(Value::Null);
    parsed
        .get("stages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, stage)| StageSummary {
            name: stage
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            sequence: stage
                .get("sequence")
                .and_then(|sequence| {
                    sequence
                        .as_i64()
                        .or_else(|| sequence.as_str().and_then(|text| text.parse().ok()))
                })
                .unwrap_or(index as i64),
        })
        .collect()
}

/// A template's variables as stored (`CustomVariable` objects).
pub(crate) fn variables_of(record: &TemplateRecord) -> Vec<Value> {
    record.variables.as_array().cloned().unwrap_or_default()
}

/// `POST /v5/{tenant_id}/api/pipeline-templates/{template_id}/favorite?flag=true|false` (§9.6).
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-templates/{template_id}/favorite", tag = "Templates", params(FavoriteQuery),
    responses((status = 200, description = "Marked or unmarked", body = Success)))]
pub(crate) async fn favorite(
    State(state): State<AppState>,
    tenant: TenantCaller,
    PathParams(path): PathParams<TemplatePath>,
    QueryParams(query): QueryParams<FavoriteQuery>,
) -> Result<Json<Success>, TemplateError> {
    let flag = query
        .flag
        .ok_or_else(|| ApiError::invalid("flag", "is required: true or false"))?;
    let record = template_of(&state, tenant.domain_id(), &path.template_id).await?;
    state
        .api
        .store
        .set_template_favorite(tenant.user_id(), &record.id, flag, state.api.engine.now())
        .await
        .map_err(TemplateError::store)?;
    Ok(Json(SUCCESS))
}

/// `POST /v5/{tenant_id}/api/pipeline-templates/{template_id}/copy` (the UI's copy, §2.5): a
/// custom template with the same content; system templates can be copied.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-templates/{template_id}/copy", tag = "Templates", request_body(content = CopyBody, description = "Optional: the copy's name (default `<name>-copy`) and description"),
    responses((status = 200, description = "The copy's id", body = TemplateIdResponse)))]
pub(crate) async fn copy(
    State(state): State<AppState>,
    tenant: TenantCaller,
    PathParams(path): PathParams<TemplatePath>,
    JsonBody(body): JsonBody<CopyBody>,
) -> Result<Json<TemplateIdResponse>, TemplateError> {
    let record = template_of(&state, tenant.domain_id(), &path.template_id).await?;
    require_author(&state, &tenant.caller).await?;
    let name = match body.name.filter(|name| !name.is_empty()) {
        Some(name) => name,
        None => {
            let base: String = record.name.chars().take(123).collect();
            format!("{base}-copy")
        }
    };
    let name = check_name(&name)?;
    let description = body
        .description
        .unwrap_or_else(|| record.description.clone());
    if description.chars().count() > 1024 {
        return Err(ApiError::invalid("description", "may have at most 1024 characters").into());
    }
    let template_id = state
        .api
        .store
        .create_template(NewTemplate {
            domain_id: Some(tenant.domain_id().to_owned()),
            name,
            description,
            language: record.language.clone(),
            manifest_version: record.manifest_version.clone(),
            icon: record.icon.clone(),
            is_system: false,
            is_show_source: record.is_show_source,
            definition: record.definition.clone(),
            variables: record.variables.clone(),
            actor_id: tenant.user_id().to_owned(),
            now: state.api.engine.now(),
        })
        .await
        .map_err(TemplateError::store)?;
    Ok(Json(TemplateIdResponse { template_id }))
}

/// `POST /v5/{project_id}/api/pipeline-templates/{template_id}/create-pipeline` (§4.7): the
/// template's definition and variables (overlaid by name with the body's) become a new
/// pipeline of the project, `from_source` 1.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipeline-templates/{template_id}/create-pipeline", tag = "Templates", params(ComponentQuery), request_body = PipelineByTemplateBody,
    responses((status = 200, description = "The new pipeline's id (`project_id` is a project here, not the account)", body = PipelineIdResponse)))]
pub(crate) async fn create_pipeline(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<TemplatePath>,
    QueryParams(query): QueryParams<ComponentQuery>,
    JsonBody(body): JsonBody<PipelineByTemplateBody>,
) -> Result<Json<PipelineIdResponse>, TemplateError> {
    member.require(Action::Edit)?;
    let template = template_of(&state, &member.project.domain_id, &path.template_id).await?;
    let variables = overlay_variables(
        &variables_of(&template),
        body.variables.clone().unwrap_or_default(),
    );
    let pipeline = PipelineBody {
        name: body.name.clone(),
        description: body.description.clone(),
        is_publish: body.is_publish.unwrap_or(false),
        sources: body.sources.clone(),
        variables: Some(Value::Array(variables)),
        schedules: None,
        triggers: None,
        manifest_version: Some(template.manifest_version.clone()),
        definition: template.definition.clone(),
        project_name: Some(member.project.name.clone()),
        group_id: body.group_id.clone(),
        id: None,
        concurrency_control: None,
        security_level: body.security_level,
        disable_release_branch_management: None,
        execution_plans: None,
        cancel_strategy: None,
        confidentiality_code: body.confidentiality_code.clone(),
        agency_name: None,
        variable_group_ids: None,
    };
    let record =
        crate::pipelines::create_pipeline(&state, &member, &pipeline, query.component_id, 1)
            .await?;
    Ok(Json(PipelineIdResponse {
        pipeline_id: record.id,
    }))
}

/// The template's variables with the given ones laid over them by name (fields given win);
/// variables the template does not have are added at the end.
pub(crate) fn overlay_variables(template: &[Value], given: Vec<Map<String, Value>>) -> Vec<Value> {
    let mut merged: Vec<Value> = template.to_vec();
    for variable in given {
        let variable = snake_case_variable(variable);
        let name = variable
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let existing = name.as_deref().and_then(|name| {
            merged
                .iter_mut()
                .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
        });
        match existing {
            Some(Value::Object(target)) => {
                for (key, value) in variable {
                    target.insert(key, value);
                }
            }
            _ => merged.push(Value::Object(variable)),
        }
    }
    merged
}
