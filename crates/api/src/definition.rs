//! From a `PipelineDTO` to what the store keeps: missing identifiers generated (spec §11.6),
//! the definition compiled with `runnel_domain` (every problem reported with its path), the
//! definition text kept verbatim when nothing had to be added, and the normalized definition.

use crate::dto::pipeline::{PipelineBody, default_concurrency};
use crate::error::ApiError;
use runnel_domain::Timestamp;
use runnel_domain::compile::compile;
use runnel_domain::definition::{Format, parse_text, read_pipeline_value};
use runnel_domain::params::VariableSpec;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// A checked pipeline body, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The definition as received, or (when identifiers were generated) re-encoded with them.
    pub(crate) definition: String,
    /// The normalized definition (`PipelineSpec::definition`), which the engine compiles runs from.
    pub(crate) compiled: Value,
    pub(crate) variables: Vec<VariableSpec>,
    /// `concurrency_control` as given, or the default policy (spec §13).
    pub(crate) concurrency: Value,
}

/// Checks the definition, variables and concurrency policy of a body; nothing is stored here.
pub(crate) fn prepare(body: &PipelineBody, now: Timestamp) -> Result<Prepared, ApiError> {
    match body.manifest_version.as_deref() {
        None | Some("") | Some("3.0") => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "manifest_version",
                "only manifest version 3.0 is supported",
            ));
        }
    }
    let mut definition = parse_text(&body.definition, Format::Json).map_err(|diagnostic| {
        ApiError::BadDefinition {
            problems: vec![format!("definition: {}", diagnostic.message)],
            in_definition: true,
        }
    })?;
    let is_changed = fill_identifiers(&mut definition, now);
    let concurrency = match &body.concurrency_control {
        None | Some(Value::Null) => default_concurrency(),
        Some(given) => given.clone(),
    };
    let document = json!({
        "definition": definition,
        "variables": body.variables.clone().unwrap_or(Value::Null),
        "concurrency_control": concurrency,
    });
    let mut diagnostics = Vec::new();
    let raw = read_pipeline_value(&document, &mut diagnostics);
    let spec = match compile(&raw) {
        Ok(spec) if diagnostics.is_empty() => spec,
        Ok(_) => return Err(problems(&diagnostics)),
        Err(more) => {
            diagnostics.extend(more);
            return Err(problems(&diagnostics));
        }
    };
    let text = if is_changed {
        serde_json::to_string(&definition)
            .map_err(|err| ApiError::Internal(format!("cannot encode a definition: {err}")))?
    } else {
        body.definition.clone()
    };
    Ok(Prepared {
        definition: text,
        compiled: spec.definition().clone(),
        variables: spec.variables().to_vec(),
        concurrency,
    })
}

/// Every diagnostic as `path: message`, paths inside the definition prefixed `definition.`.
fn problems(diagnostics: &[runnel_domain::Diagnostic]) -> ApiError {
    let mut in_definition = false;
    let problems = diagnostics
        .iter()
        .map(|diagnostic| {
            let path = diagnostic.path.as_str();
            let is_setting =
                path.starts_with("variables") || path.starts_with("concurrency_control");
            let path = if is_setting || path.starts_with("definition") {
                path.to_owned()
            } else if path.is_empty() {
                "definition".to_owned()
            } else {
                format!("definition.{path}")
            };
            in_definition |= !is_setting;
            format!("{path}: {}", diagnostic.message)
        })
        .collect();
    ApiError::BadDefinition {
        problems,
        in_definition,
    }
}

/// Generates missing (absent, null or empty) identifiers of stages, jobs and job steps:
/// `<epoch-ms><uuid-v4>` for stages and steps, `JOB_` + 5 random letters for jobs. Returns
/// whether anything was added. Shapes it does not understand are left for the compiler.
pub(crate) fn fill_identifiers(definition: &mut Value, now: Timestamp) -> bool {
    let Some(stages) = definition.get_mut("stages").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut taken_jobs: HashSet<String> = stages
        .iter()
        .filter_map(|stage| stage.get("jobs").and_then(Value::as_array))
        .flatten()
        .filter_map(|job| job.get("identifier").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let mut is_changed = false;
    for stage in stages.iter_mut().filter_map(Value::as_object_mut) {
        is_changed |= fill(stage, || timestamp_identifier(now));
        let Some(jobs) = stage.get_mut("jobs").and_then(Value::as_array_mut) else {
            continue;
        };
        for job in jobs.iter_mut().filter_map(Value::as_object_mut) {
            is_changed |= fill(job, || job_identifier(&mut taken_jobs));
            let Some(steps) = job.get_mut("steps").and_then(Value::as_array_mut) else {
                continue;
            };
            for step in steps.iter_mut().filter_map(Value::as_object_mut) {
                is_changed |= fill(step, || timestamp_identifier(now));
            }
        }
    }
    is_changed
}

fn fill(object: &mut Map<String, Value>, generate: impl FnOnce() -> String) -> bool {
    let is_missing = match object.get("identifier") {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(_) => false,
    };
    if is_missing {
        object.insert("identifier".to_owned(), Value::String(generate()));
    }
    is_missing
}

fn timestamp_identifier(now: Timestamp) -> String {
    format!("{}{}", now.as_millis(), uuid::Uuid::new_v4())
}

fn job_identifier(taken: &mut HashSet<String>) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    loop {
        let random = uuid::Uuid::new_v4();
        let letters: String = random.as_bytes()[..5]
            .iter()
            .map(|byte| char::from(LETTERS[usize::from(*byte) % LETTERS.len()]))
            .collect();
        let identifier = format!("JOB_{letters}");
        if taken.insert(identifier.clone()) {
            return identifier;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_identifiers_are_generated_in_the_codearts_formats() {
        let mut definition = json!({"stages": [{"name": "Build", "identifier": "", "jobs": [
            {"name": "a", "steps": [{"task": "official_shell_plugin", "identifier": null}]},
            {"name": "b", "identifier": "JOB_given", "steps": [{"task": "x", "identifier": "kept"}]}
        ]}]});
        assert!(fill_identifiers(
            &mut definition,
            Timestamp::from_millis(1_735_689_600_000)
        ));
        let stage = definition["stages"][0]["identifier"]
            .as_str()
            .expect("stage id");
        assert!(
            stage.starts_with("1735689600000") && stage.len() == 13 + 36,
            "{stage}"
        );
        let job = definition["stages"][0]["jobs"][0]["identifier"]
            .as_str()
            .expect("job id");
        assert!(job.starts_with("JOB_") && job.len() == 9, "{job}");
        assert!(job[4..].chars().all(|ch| ch.is_ascii_alphabetic()), "{job}");
        let step = definition["stages"][0]["jobs"][0]["steps"][0]["identifier"].as_str();
        assert!(step.is_some_and(|step| step.starts_with("1735689600000")));
        assert_eq!(
            definition["stages"][0]["jobs"][1]["identifier"],
            "JOB_given"
        );
        assert_eq!(
            definition["stages"][0]["jobs"][1]["steps"][0]["identifier"],
            "kept"
        );

        let mut complete = definition.clone();
        assert!(!fill_identifiers(&mut complete, Timestamp::from_millis(0)));
    }
}
