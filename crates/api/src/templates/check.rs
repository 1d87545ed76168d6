//! From a template body to what the store keeps: basic info checked, the definition compiled
//! with the domain (through the pipeline path, so a template always yields a valid pipeline),
//! no stage admission, no secret values, variables normalized to `CustomVariable` objects.

use super::dto::{TemplateBody, snake_case_variables};
use crate::definition::prepare;
use crate::dto::pipeline::PipelineBody;
use crate::error::ApiError;
use runnel_domain::Timestamp;
use runnel_domain::params::VariableSpec;
use serde_json::{Value, json};

/// The automatic stage entry, the only `pre` step a template may have.
const AUTO_TRIGGER: &str = "official_devcloud_autoTrigger";

/// A checked template, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct CheckedTemplate {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) language: String,
    pub(crate) is_show_source: bool,
    pub(crate) icon: Option<String>,
    /// As received, or re-encoded when identifiers had to be generated.
    pub(crate) definition: String,
    /// `CustomVariable` objects.
    pub(crate) variables: Value,
}

/// Checks a §9.1/§9.3 body for the account `tenant`; nothing is stored here.
pub(crate) fn check_template(
    body: &TemplateBody,
    tenant: &str,
    now: Timestamp,
) -> Result<CheckedTemplate, ApiError> {
    let name = check_name(&body.name)?;
    let description = body.description.clone().unwrap_or_default();
    if description.chars().count() > 1024 {
        return Err(ApiError::invalid(
            "description",
            "may have at most 1024 characters",
        ));
    }
    let language = check_language(body.language.as_deref())?;
    if body.is_system == Some(true) {
        return Err(ApiError::invalid(
            "is_system",
            "system templates are shipped with the server; create a custom template (is_system false)",
        ));
    }
    if body
        .domain_id
        .as_deref()
        .is_some_and(|domain| !domain.is_empty() && domain != tenant)
    {
        return Err(ApiError::invalid(
            "domain_id",
            "must be the account (tenant) id of the path",
        ));
    }
    if body
        .icon
        .as_ref()
        .is_some_and(|icon| icon.chars().count() > 1024)
    {
        return Err(ApiError::invalid(
            "icon",
            "may have at most 1024 characters",
        ));
    }
    let definition = match &body.definition {
        Value::String(text) => text.clone(),
        object @ Value::Object(_) => object.to_string(),
        _ => {
            return Err(ApiError::invalid(
                "definition",
                "must be a JSON document encoded as a string",
            ));
        }
    };
    let checked = check_definition(
        &definition,
        body.variables.clone(),
        body.manifest_version.clone(),
        now,
    )?;
    Ok(CheckedTemplate {
        name,
        description,
        language,
        is_show_source: body.is_show_source.unwrap_or(true),
        icon: body.icon.clone().filter(|icon| !icon.is_empty()),
        definition: checked.0,
        variables: checked.1,
    })
}

/// Compiles a template definition with its variables; returns the definition text to store and
/// the variables as `CustomVariable` objects.
pub(crate) fn check_definition(
    definition: &str,
    variables: Option<Value>,
    manifest_version: Option<String>,
    now: Timestamp,
) -> Result<(String, Value), ApiError> {
    let body = PipelineBody {
        name: "template".to_owned(),
        description: None,
        is_publish: false,
        sources: None,
        variables: variables.map(snake_case_variables),
        schedules: None,
        triggers: None,
        manifest_version,
        definition: definition.to_owned(),
        project_name: None,
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
    let prepared = prepare(&body, now)?;
    let stored: Value = serde_json::from_str(&prepared.definition).map_err(|err| {
        ApiError::Internal(format!("a prepared definition does not parse: {err}"))
    })?;
    refuse_admission(&stored)?;
    for (index, variable) in prepared.variables.iter().enumerate() {
        if variable.is_secret && !variable.value.is_empty() {
            return Err(ApiError::invalid(
                format!("variables[{index}].value"),
                "a template cannot hold secret values: leave it empty and set it on the pipelines created from the template",
            ));
        }
    }
    let variables = Value::Array(prepared.variables.iter().map(variable_json).collect());
    Ok((prepared.definition, variables))
}

/// Templates have no stage admission (seed: 模板编排暂不支持配置阶段准入): every `pre` step must be
/// the automatic entry.
fn refuse_admission(definition: &Value) -> Result<(), ApiError> {
    let stages = definition
        .get("stages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (stage_index, stage) in stages.enumerate() {
        let pre = stage
            .get("pre")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (step_index, step) in pre.enumerate() {
            let task = step.get("task").and_then(Value::as_str).unwrap_or("");
            if task != AUTO_TRIGGER {
                return Err(ApiError::BadDefinition {
                    problems: vec![format!(
                        "definition.stages[{stage_index}].pre[{step_index}].task: templates do not support stage admission \
                         (a manual start or admission rules); only {AUTO_TRIGGER} is allowed"
                    )],
                    in_definition: true,
                });
            }
        }
    }
    Ok(())
}

/// A template's variable as stored and shown (`CustomVariable`, §13).
pub(crate) fn variable_json(variable: &VariableSpec) -> Value {
    json!({
        "name": variable.name,
        "sequence": variable.sequence,
        "type": variable.var_type.as_str(),
        "value": variable.value,
        "is_secret": variable.is_secret,
        "description": variable.description,
        "is_runtime": variable.is_runtime,
        "limits": variable.limits,
    })
}

/// Template names: 1 to 128 characters, no control characters, no surrounding blanks.
pub(crate) fn check_name(name: &str) -> Result<String, ApiError> {
    let count = name.chars().count();
    if !(1..=128).contains(&count) || name.trim() != name || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "must be 1 to 128 characters without control characters or surrounding blanks",
        ));
    }
    Ok(name.to_owned())
}

/// Template languages (§9, §12.8): Java, Python, Node.js, Go, .Net, C++, PHP, Other or None,
/// compared without case or punctuation (`nodejs`, `.NET`, `net`, `cpp` and `C++` all read);
/// stored as given, `none` when absent.
pub(crate) fn check_language(language: Option<&str>) -> Result<String, ApiError> {
    let Some(given) = language.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok("none".to_owned());
    };
    if canonical_language(given).is_some() {
        Ok(given.to_owned())
    } else {
        Err(ApiError::invalid(
            "language",
            "must be one of Java, Python, Node.js, Go, .Net, C++, PHP, Other or None",
        ))
    }
}

/// The §12.8 value of a language in any of its spellings.
pub(crate) fn canonical_language(language: &str) -> Option<&'static str> {
    let key: String = language
        .to_lowercase()
        .chars()
        .filter(|ch| !matches!(ch, '.' | ' ' | '-' | '_'))
        .collect();
    Some(match key.as_str() {
        "java" => "java",
        "python" => "python",
        "nodejs" | "node" => "nodejs",
        "go" | "golang" => "go",
        "net" | "dotnet" => "net",
        "cpp" | "c++" => "cpp",
        "php" => "php",
        "other" => "other",
        "none" | "" => "none",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_read_in_every_documented_spelling() {
        for (given, canonical) in [
            ("Java", "java"),
            ("Node.js", "nodejs"),
            ("nodejs", "nodejs"),
            (".Net", "net"),
            (".NET", "net"),
            ("C++", "cpp"),
            ("cpp", "cpp"),
            ("PHP", "php"),
            ("None", "none"),
            ("Other", "other"),
        ] {
            assert_eq!(canonical_language(given), Some(canonical), "{given}");
        }
        assert_eq!(canonical_language("Rust"), None);
        assert_eq!(check_language(None).expect("default"), "none");
        assert_eq!(check_language(Some("Go")).expect("kept"), "Go");
        assert!(check_language(Some("Cobol")).is_err());
    }

    #[test]
    fn a_manual_stage_start_is_refused_with_its_path() {
        let definition = json!({"stages": [
            {"name": "Build", "pre": [{"task": AUTO_TRIGGER}], "jobs": []},
            {"name": "Deploy", "pre": [{"task": "official_devcloud_manualTrigger"}], "jobs": []}
        ]});
        let err = check_definition(
            &definition.to_string(),
            None,
            None,
            Timestamp::from_millis(0),
        )
        .expect_err("refused");
        let message = err.message();
        assert!(
            message.contains("definition.stages[1].pre[0].task")
                && message.contains("stage admission"),
            "{message}"
        );
    }

    #[test]
    fn secret_values_are_refused_and_variables_come_back_as_custom_variables() {
        let definition = json!({"stages": []}).to_string();
        let secret = json!([{"name": "token", "value": "hunter2", "is_secret": true}]);
        let err = check_definition(&definition, Some(secret), None, Timestamp::from_millis(0))
            .expect_err("refused");
        assert!(
            err.message().contains("variables[0].value"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("hunter2"));

        let variables = json!([
            {"name": "releaseVersion", "paramtype": "growthparam", "value": "1.0.0", "isStatic": false},
            {"name": "env", "type": "enum", "value": "dev", "limits": ["dev", "prod"], "isRuntime": true}
        ]);
        let (_, stored) = check_definition(
            &definition,
            Some(variables),
            None,
            Timestamp::from_millis(0),
        )
        .expect("valid");
        assert_eq!(stored[0]["type"], "autoIncrement");
        assert_eq!(
            stored[0]["is_runtime"], true,
            "is_static false = settable per run"
        );
        assert_eq!(stored[1]["type"], "enum");
        assert_eq!(stored[1]["is_runtime"], true, "camelCase read");
    }
}
