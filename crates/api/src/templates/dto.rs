//! Template wire types (spec §2.1–§2.4, §4.7, §9, §13). Request types accept the snake_case
//! names of the SDK, the camelCase names of the doc examples and the documented typos; responses
//! use the SDK's names.

use crate::dto::lenient_i64;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `PipelineTemplateDTO` (§9.1, §9.3).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct TemplateBody {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) language: Option<String>,
    /// `CustomVariable` objects, checked by the domain.
    #[serde(default)]
    pub(crate) variables: Option<Value>,
    /// A JSON document encoded as a string (§11.1); an object is accepted too.
    pub(crate) definition: Value,
    #[serde(default, alias = "isSystem", deserialize_with = "lenient_bool")]
    pub(crate) is_system: Option<bool>,
    #[serde(default, alias = "domainId")]
    pub(crate) domain_id: Option<String>,
    #[serde(default, alias = "isShowSource", deserialize_with = "lenient_bool")]
    pub(crate) is_show_source: Option<bool>,
    #[serde(default, alias = "manifestVersion")]
    pub(crate) manifest_version: Option<String>,
    #[serde(default)]
    pub(crate) icon: Option<String>,
}

/// `{"templateId": …}`: the answer of create, update, delete and copy (§9.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TemplateIdResponse {
    #[serde(rename = "templateId")]
    pub(crate) template_id: String,
}

/// §9.2 detail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TemplateDetail {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) icon: Option<String>,
    pub(crate) manifest_version: String,
    pub(crate) language: String,
    pub(crate) description: String,
    pub(crate) is_system: bool,
    pub(crate) region: String,
    pub(crate) domain_id: Option<String>,
    pub(crate) variables: Vec<Value>,
    pub(crate) creator_id: String,
    pub(crate) updater_id: String,
    /// A string in the SDK model of this response (§9.2).
    pub(crate) is_collect: String,
    pub(crate) is_show_source: bool,
    pub(crate) definition: String,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

/// `ListPipelineTemplatesQuery` (§9.5).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct ListTemplatesQuery {
    #[serde(default)]
    pub(crate) language: Option<String>,
    #[serde(default, alias = "isSystem", deserialize_with = "lenient_bool")]
    pub(crate) is_system: Option<bool>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub(crate) limit: Option<i64>,
    #[serde(default, alias = "sortKey")]
    pub(crate) sort_key: Option<String>,
    #[serde(default, alias = "sortDir")]
    pub(crate) sort_dir: Option<String>,
    /// Only the caller's favorites (`true`) or only the others (`false`). Not in the SDK.
    #[serde(default, alias = "isCollect", deserialize_with = "lenient_bool")]
    pub(crate) is_collect: Option<bool>,
}

/// §9.5 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TemplateList {
    pub(crate) offset: i64,
    pub(crate) limit: i64,
    pub(crate) total: i64,
    pub(crate) templates: Vec<TemplateListItem>,
}

/// `PipelineTemplateSimpleVO` (§9.5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TemplateListItem {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) icon: Option<String>,
    pub(crate) manifest_version: String,
    pub(crate) language: String,
    pub(crate) description: String,
    pub(crate) is_system: bool,
    pub(crate) region: String,
    pub(crate) domain_id: Option<String>,
    pub(crate) creator_id: String,
    pub(crate) creator_name: String,
    pub(crate) updater_id: String,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
    pub(crate) is_collect: bool,
    pub(crate) is_show_source: bool,
    pub(crate) stages: Vec<StageSummary>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StageSummary {
    pub(crate) name: String,
    pub(crate) sequence: i64,
}

/// `?flag=true|false` of §9.6.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FavoriteQuery {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub(crate) flag: Option<bool>,
}

/// Optional body of `…/{template_id}/copy` (not in the spec: the UI's copy, §2.5).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct CopyBody {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// `PipelineByTemplateDTO` (§4.7).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct PipelineByTemplateBody {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default, alias = "isPublish", deserialize_with = "lenient_bool")]
    pub(crate) is_publish: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) sources: Option<Vec<Map<String, Value>>>,
    #[serde(default, alias = "securityLevel", deserialize_with = "lenient_i64")]
    pub(crate) security_level: Option<i64>,
    #[serde(default, alias = "confidentialityCode")]
    pub(crate) confidentiality_code: Option<String>,
    /// Values overriding the template's variables by name (`CustomVariable` objects).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub(crate) variables: Option<Vec<Map<String, Value>>>,
    #[serde(default, alias = "groupId")]
    pub(crate) group_id: Option<String>,
}

/// `component_id` of §4.7.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ComponentQuery {
    #[serde(default)]
    pub(crate) component_id: Option<String>,
}

/// A boolean sent as a JSON boolean, a `"true"`/`"false"` string (any case), `1`/`0`, or null.
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(flag)),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) if text.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(text)) if text.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Value::Number(number)) if number.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(number)) if number.as_i64() == Some(0) => Ok(Some(false)),
        Some(_) => Err(serde::de::Error::custom("expected a boolean")),
    }
}

/// camelCase keys of `CustomVariable` objects (as some clients send them) renamed to the SDK's
/// snake_case, so one parser reads both spellings. A key already present in snake_case wins.
pub(crate) fn snake_case_variable(mut variable: Map<String, Value>) -> Map<String, Value> {
    const RENAMES: &[(&str, &str)] = &[
        ("isSecret", "is_secret"),
        ("isRuntime", "is_runtime"),
        ("isReset", "is_reset"),
        ("latestValue", "latest_value"),
        ("runtimeValue", "runtime_value"),
        ("paramType", "param_type"),
        ("isStatic", "is_static"),
        ("isDefault", "is_default"),
        ("displayName", "display_name"),
        ("pipelineId", "pipeline_id"),
    ];
    for (camel, snake) in RENAMES {
        if let Some(value) = variable.remove(*camel) {
            variable.entry((*snake).to_owned()).or_insert(value);
        }
    }
    variable
}

/// Applies [`snake_case_variable`] to each object of a variables array; anything else is left
/// for the domain to report.
pub(crate) fn snake_case_variables(variables: Value) -> Value {
    match variables {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(map) => Value::Object(snake_case_variable(map)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}
