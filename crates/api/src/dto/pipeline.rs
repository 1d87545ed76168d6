//! Pipeline wire types (spec §4.1–§4.5, §13) and their conversion from store records.

use super::{lenient_i64, millis};
use runnel_domain::params::VariableSpec;
use runnel_store::{PipelineRecord, TagRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What a secret value looks like in every response (S2).
pub(crate) const MASK: &str = "******";

/// `PipelineDTO`: the body of create (§4.1) and update (§4.3).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct PipelineBody {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    pub(crate) is_publish: bool,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) sources: Option<Vec<Map<String, Value>>>,
    /// Parsed and checked by the domain (`runnel_domain::params::parse_variables`).
    #[serde(default)]
    pub(crate) variables: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) schedules: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) triggers: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    pub(crate) manifest_version: Option<String>,
    /// A JSON document encoded as a string (§11.1).
    pub(crate) definition: String,
    #[serde(default)]
    pub(crate) project_name: Option<String>,
    #[serde(default)]
    pub(crate) group_id: Option<String>,
    /// Copy scenario: the pipeline copied (stored as `origin_id`).
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) concurrency_control: Option<Value>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) security_level: Option<i64>,
    #[serde(default)]
    pub(crate) disable_release_branch_management: Option<bool>,
    #[serde(default)]
    pub(crate) execution_plans: Option<Vec<Value>>,
    #[serde(default)]
    pub(crate) cancel_strategy: Option<Value>,
    #[serde(default)]
    pub(crate) confidentiality_code: Option<String>,
    #[serde(default)]
    pub(crate) agency_name: Option<String>,
    #[serde(default)]
    pub(crate) variable_group_ids: Option<Vec<String>>,
}

/// `component_id` of create and update.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ComponentQuery {
    #[serde(default)]
    pub(crate) component_id: Option<String>,
}

/// `ListPipelineQuery` (§4.5). Filters the store cannot apply yet are accepted and listed in
/// the crate docs as not applied.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct ListPipelinesQuery {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) is_publish: Option<bool>,
    #[serde(default)]
    pub(crate) creator_id: Option<String>,
    #[serde(default)]
    pub(crate) creator_ids: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) status: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) group_path_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) limit: Option<i64>,
    #[serde(default)]
    pub(crate) sort_key: Option<String>,
    #[serde(default)]
    pub(crate) sort_dir: Option<String>,
    /// The path's project, repeated; another one is refused.
    #[serde(default)]
    pub(crate) project_id: Option<String>,
    /// Only the path's project is listed; other ids are refused.
    #[serde(default)]
    pub(crate) project_ids: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) component_id: Option<String>,
    /// The latest run's executors.
    #[serde(default)]
    pub(crate) executor_ids: Option<Vec<String>>,
    /// The latest run started at or after / at or before (epoch ms or `yyyy-MM-dd HH:mm:ss`).
    #[serde(default)]
    pub(crate) start_time: Option<super::TimeFilter>,
    #[serde(default)]
    pub(crate) end_time: Option<super::TimeFilter>,
    /// The latest run changed after.
    #[serde(default)]
    pub(crate) pipeline_run_update_time: Option<super::TimeFilter>,
    #[serde(default)]
    pub(crate) exclude_pipeline_id: Option<String>,
    /// Tag ids: pipelines carrying any of them.
    #[serde(default)]
    pub(crate) tag_list: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) manifest_version_list: Option<Vec<String>>,
    /// `false`: leave disabled pipelines out.
    #[serde(default)]
    pub(crate) is_banned: Option<bool>,
}

/// `ShowPipelineDetailResponse` (§4.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineDetail {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) manifest_version: String,
    pub(crate) region: String,
    pub(crate) domain_id: String,
    pub(crate) project_id: String,
    pub(crate) project_name: String,
    pub(crate) component_id: Option<String>,
    pub(crate) is_publish: bool,
    pub(crate) creator_id: String,
    pub(crate) creator_name: String,
    pub(crate) updater_id: String,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
    pub(crate) is_collect: bool,
    pub(crate) sources: Value,
    pub(crate) variables: Vec<PipelineVariable>,
    pub(crate) schedules: Value,
    pub(crate) triggers: Value,
    pub(crate) group_id: Option<String>,
    pub(crate) group_name: Option<String>,
    pub(crate) definition: String,
    pub(crate) security_level: Option<i64>,
    pub(crate) origin_id: Option<String>,
    pub(crate) disable_release_branch_management: bool,
    pub(crate) deleted: bool,
    pub(crate) banned: bool,
    pub(crate) from_git_code: bool,
    pub(crate) from_git_code_repo: bool,
    pub(crate) agency_name: Option<String>,
    pub(crate) execution_plans: Value,
    pub(crate) from_source: i64,
    pub(crate) concurrency_control: Value,
    pub(crate) cancel_strategy: Value,
    pub(crate) tag_ids: Vec<String>,
    pub(crate) tags: Vec<TagItem>,
    pub(crate) variable_groups: Vec<String>,
    pub(crate) variable_group_ids: Vec<String>,
    pub(crate) permissions: Permissions,
    pub(crate) subject_id: String,
    pub(crate) detail_url: String,
    pub(crate) modify_url: String,
    pub(crate) is_cr_model: bool,
}

/// `PipelineVariable` (§13); secret values are masked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineVariable {
    pub(crate) name: String,
    pub(crate) sequence: Option<i64>,
    #[serde(rename = "type")]
    pub(crate) var_type: String,
    pub(crate) value: String,
    pub(crate) is_secret: bool,
    pub(crate) description: String,
    pub(crate) is_runtime: bool,
    pub(crate) limits: Vec<String>,
    pub(crate) is_reset: bool,
    pub(crate) latest_value: Option<String>,
}

/// The caller's permissions on the pipeline (spec §4.2 `permissions`, inferred shape).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(crate) struct Permissions {
    pub(crate) view: bool,
    pub(crate) execute: bool,
    pub(crate) update: bool,
    pub(crate) delete: bool,
}

/// A tag in pipeline lists and details.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct TagItem {
    pub(crate) tag_id: String,
    pub(crate) name: String,
    pub(crate) color: String,
    pub(crate) project_id: String,
    pub(crate) domain_id: String,
    pub(crate) creator_id: Option<String>,
    pub(crate) updater_id: Option<String>,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

/// Everything besides the record that a detail shows.
pub(crate) struct DetailContext<'a> {
    pub(crate) region: &'a str,
    pub(crate) public_url: &'a str,
    pub(crate) domain_id: &'a str,
    pub(crate) project_name: &'a str,
    pub(crate) creator_name: String,
    pub(crate) group_name: Option<String>,
    pub(crate) variables: &'a [VariableSpec],
    pub(crate) tags: Vec<TagItem>,
    pub(crate) is_collect: bool,
    pub(crate) permissions: Permissions,
}

impl PipelineDetail {
    pub(crate) fn from_record(record: &PipelineRecord, context: DetailContext<'_>) -> Self {
        let settings = &record.settings;
        let setting = |key: &str| settings.get(key).cloned().unwrap_or(Value::Null);
        let url = pipeline_url(context.public_url, &record.project_id, &record.id);
        PipelineDetail {
            id: record.id.clone(),
            name: record.name.clone(),
            description: record.description.clone(),
            manifest_version: record.manifest_version.clone(),
            region: context.region.to_owned(),
            domain_id: context.domain_id.to_owned(),
            project_id: record.project_id.clone(),
            project_name: context.project_name.to_owned(),
            component_id: record.component_id.clone(),
            is_publish: record.is_publish,
            creator_id: record.creator_id.clone(),
            creator_name: context.creator_name,
            updater_id: record.updater_id.clone(),
            create_time: millis(record.created_at),
            update_time: millis(record.updated_at),
            is_collect: context.is_collect,
            sources: list_or_empty(&record.sources),
            variables: context.variables.iter().map(masked_variable).collect(),
            schedules: list_or_empty(&setting("schedules")),
            triggers: masked_triggers(&record.id, &setting("triggers")),
            group_id: record.group_id.clone(),
            group_name: context.group_name,
            definition: record.definition.clone(),
            security_level: settings.get("security_level").and_then(Value::as_i64),
            origin_id: record.origin_id.clone(),
            disable_release_branch_management: settings
                .get("disable_release_branch_management")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            deleted: false,
            banned: record.is_banned,
            from_git_code: false,
            from_git_code_repo: false,
            agency_name: settings
                .get("agency_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            execution_plans: list_or_empty(&setting("execution_plans")),
            from_source: record.from_source,
            concurrency_control: concurrency_control(record),
            cancel_strategy: setting("cancel_strategy"),
            tag_ids: record.tag_ids.clone(),
            tags: context.tags,
            variable_groups: record.variable_group_ids.clone(),
            variable_group_ids: record.variable_group_ids.clone(),
            permissions: context.permissions,
            subject_id: record.id.clone(),
            modify_url: if url.is_empty() {
                String::new()
            } else {
                format!("{url}/edit")
            },
            detail_url: url,
            is_cr_model: false,
        }
    }
}

/// `concurrency_control` as stored, with the pipeline id and times (§4.2).
pub(crate) fn concurrency_control(record: &PipelineRecord) -> Value {
    let mut value = match record.settings.get("concurrency_control") {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => default_concurrency(),
    };
    value["pipeline_id"] = json!(record.id);
    value["create_time"] = json!(millis(record.created_at));
    value["update_time"] = json!(millis(record.updated_at));
    value
}

/// The default concurrency policy when a body has none (spec §13, inferred).
pub(crate) fn default_concurrency() -> Value {
    json!({"concurrency_number": 1, "exceed_action": "QUEUE", "enable": true})
}

pub(crate) fn masked_variable(variable: &VariableSpec) -> PipelineVariable {
    let mask = |value: &str| {
        if variable.is_secret {
            MASK.to_owned()
        } else {
            value.to_owned()
        }
    };
    PipelineVariable {
        name: variable.name.clone(),
        sequence: variable.sequence,
        var_type: variable.var_type.as_str().to_owned(),
        value: mask(&variable.value),
        is_secret: variable.is_secret,
        description: variable.description.clone(),
        is_runtime: variable.is_runtime,
        limits: variable.limits.clone(),
        is_reset: variable.is_reset,
        latest_value: variable.latest_value.as_deref().map(mask),
    }
}

/// Triggers as stored, with `pipeline_id` and the webhook secret masked (S2).
fn masked_triggers(pipeline_id: &str, triggers: &Value) -> Value {
    let Value::Array(items) = triggers else {
        return json!([]);
    };
    Value::Array(
        items
            .iter()
            .map(|trigger| {
                let mut trigger = trigger.clone();
                if let Value::Object(map) = &mut trigger {
                    map.insert("pipeline_id".to_owned(), json!(pipeline_id));
                    if map
                        .get("security_token")
                        .is_some_and(|token| !token.is_null())
                    {
                        map.insert("security_token".to_owned(), json!(MASK));
                    }
                }
                trigger
            })
            .collect(),
    )
}

fn list_or_empty(value: &Value) -> Value {
    if value.is_array() {
        value.clone()
    } else {
        json!([])
    }
}

/// The UI address of a pipeline; empty without a public URL.
pub(crate) fn pipeline_url(public_url: &str, project_id: &str, pipeline_id: &str) -> String {
    if public_url.is_empty() {
        return String::new();
    }
    format!(
        "{}/ui/projects/{project_id}/pipelines/{pipeline_id}",
        public_url.trim_end_matches('/')
    )
}

pub(crate) fn tag_item(tag: &TagRecord, domain_id: &str) -> TagItem {
    TagItem {
        tag_id: tag.id.clone(),
        name: tag.name.clone(),
        color: tag.color.clone(),
        project_id: tag.project_id.clone(),
        domain_id: domain_id.to_owned(),
        creator_id: None,
        updater_id: None,
        create_time: millis(tag.created_at),
        update_time: millis(tag.updated_at),
    }
}

/// `ListPipelinesPagePipelines` (§4.5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineListItem {
    pub(crate) pipeline_id: String,
    pub(crate) name: String,
    pub(crate) project_id: String,
    pub(crate) project_name: String,
    pub(crate) component_id: Option<String>,
    pub(crate) is_publish: bool,
    pub(crate) is_collect: bool,
    pub(crate) manifest_version: String,
    pub(crate) create_time: i64,
    pub(crate) latest_run: Option<super::run::LatestRun>,
    pub(crate) convert_sign: i64,
    pub(crate) security_level: Option<i64>,
    pub(crate) banned: bool,
    pub(crate) description: String,
    pub(crate) tag_list: Vec<TagItem>,
}

/// `ListPipelinesResponse` (§4.5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineList {
    pub(crate) offset: i64,
    pub(crate) limit: i64,
    pub(crate) total: i64,
    pub(crate) current_system_time: i64,
    pub(crate) pipelines: Vec<PipelineListItem>,
}
