//! Raw types: the CodeArts definition as written, every field optional, unknown fields kept.

use super::reader::{ObjectReader, wrong_type};
use crate::diagnostic::{Diagnostic, DiagnosticCode, path_index, path_join};
use serde_json::{Map, Value};

/// The `definition` object (spec §11.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawDefinition {
    pub stages: Vec<RawStage>,
    pub extra: Map<String, Value>,
}

/// A stage as written (spec §11.3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawStage {
    pub path: String,
    pub name: Option<String>,
    pub identifier: Option<String>,
    pub sequence: Option<i64>,
    pub depends_on: Vec<String>,
    pub run_always: bool,
    pub parallel: bool,
    pub run_condition: Option<String>,
    pub pre: Vec<RawStep>,
    pub post: Vec<RawStep>,
    pub jobs: Vec<RawJob>,
    pub extra: Map<String, Value>,
}

/// A job as written (spec §11.4).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawJob {
    pub path: String,
    pub name: Option<String>,
    pub identifier: Option<String>,
    pub sequence: Option<i64>,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
    pub select_strategy: Option<String>,
    pub timeout: Option<String>,
    pub timeout_unit: Option<String>,
    /// The `resource` JSON string, already parsed.
    pub resource: Option<Value>,
    pub exec_type: Option<String>,
    pub is_async: bool,
    pub steps: Vec<RawStep>,
    pub extra: Map<String, Value>,
}

/// A step as written (spec §11.5); also used for stage `pre`/`post` gate steps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawStep {
    pub path: String,
    pub name: Option<String>,
    pub identifier: Option<String>,
    pub task: Option<String>,
    pub sequence: Option<i64>,
    pub inputs: Vec<RawInput>,
    pub env: Vec<RawInput>,
    pub enable: bool,
    pub business_type: Option<String>,
    pub runtime_attribution: Option<String>,
    pub official_task_version: Option<String>,
    pub extra: Map<String, Value>,
}

/// One `{key, value}` entry of `inputs` or `env`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInput {
    pub path: String,
    pub key: String,
    pub value: Value,
}

/// Reads a `definition` object. Every problem becomes a diagnostic; what can be read is returned.
pub fn read_definition(value: &Value, diagnostics: &mut Vec<Diagnostic>) -> RawDefinition {
    let Some(mut reader) = ObjectReader::new(value, "", "the definition", diagnostics) else {
        return RawDefinition::default();
    };
    if !reader.has("stages") {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::Missing,
            "stages",
            "the definition needs a `stages` list (it may be empty)",
        ));
    }
    let stages = reader
        .array("stages", diagnostics)
        .iter()
        .enumerate()
        .filter_map(|(index, stage)| read_stage(stage, &path_index("stages", index), diagnostics))
        .collect();
    RawDefinition {
        stages,
        extra: reader.unread(),
    }
}

fn read_stage(value: &Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<RawStage> {
    let mut reader = ObjectReader::new(value, path, "a stage", diagnostics)?;
    let jobs_path = reader.field_path("jobs");
    let pre_path = reader.field_path("pre");
    let post_path = reader.field_path("post");
    Some(RawStage {
        name: reader.string("name", diagnostics),
        identifier: reader.string("identifier", diagnostics),
        sequence: reader.integer("sequence", diagnostics),
        depends_on: reader.string_list("depends_on", diagnostics),
        run_always: reader.boolean("run_always", diagnostics).unwrap_or(false),
        // `parallel` is documented as string/boolean/null; any truthy spelling counts.
        parallel: reader.boolean("parallel", diagnostics).unwrap_or(false),
        run_condition: reader.string("run_condition", diagnostics),
        pre: read_steps(reader.array("pre", diagnostics), &pre_path, diagnostics),
        post: read_steps(reader.array("post", diagnostics), &post_path, diagnostics),
        jobs: reader
            .array("jobs", diagnostics)
            .iter()
            .enumerate()
            .filter_map(|(index, job)| read_job(job, &path_index(&jobs_path, index), diagnostics))
            .collect(),
        extra: reader.unread(),
        path: path.to_owned(),
    })
}

fn read_job(value: &Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<RawJob> {
    let mut reader = ObjectReader::new(value, path, "a job", diagnostics)?;
    let steps_path = reader.field_path("steps");
    let select_strategy = match reader.value("strategy") {
        None => None,
        Some(strategy) => {
            let strategy_path = reader.field_path("strategy");
            let mut strategy_reader =
                ObjectReader::new(strategy, &strategy_path, "`strategy`", diagnostics)?;
            strategy_reader.string("select_strategy", diagnostics)
        }
    };
    let resource = read_resource(&mut reader, diagnostics);
    Some(RawJob {
        name: reader.string("name", diagnostics),
        identifier: reader.string("identifier", diagnostics),
        sequence: reader.integer("sequence", diagnostics),
        depends_on: reader.string_list("depends_on", diagnostics),
        condition: reader.string("condition", diagnostics),
        select_strategy,
        timeout: reader.string("timeout", diagnostics),
        timeout_unit: reader.string("timeout_unit", diagnostics),
        resource,
        exec_type: reader.string("exec_type", diagnostics),
        is_async: reader.boolean("async", diagnostics).unwrap_or(false),
        steps: read_steps(reader.array("steps", diagnostics), &steps_path, diagnostics),
        extra: reader.unread(),
        path: path.to_owned(),
    })
}

/// `resource` is a JSON document carried as a string; an object is accepted too.
fn read_resource(
    reader: &mut ObjectReader<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Value> {
    let path = reader.field_path("resource");
    match reader.value("resource")? {
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => Some(value),
            Err(err) => {
                diagnostics.push(Diagnostic::new(
                    DiagnosticCode::InvalidValue,
                    path,
                    format!("`resource` must hold a JSON document: {err}"),
                ));
                None
            }
        },
        value @ Value::Object(_) => Some(value.clone()),
        other => {
            diagnostics.push(wrong_type(&path, "a JSON string", other));
            None
        }
    }
}

fn read_steps(values: &[Value], path: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<RawStep> {
    values
        .iter()
        .enumerate()
        .filter_map(|(index, step)| read_step(step, &path_index(path, index), diagnostics))
        .collect()
}

fn read_step(value: &Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<RawStep> {
    let mut reader = ObjectReader::new(value, path, "a step", diagnostics)?;
    let inputs_path = reader.field_path("inputs");
    let env_path = reader.field_path("env");
    Some(RawStep {
        name: reader.string("name", diagnostics),
        identifier: reader.string("identifier", diagnostics),
        task: reader.string("task", diagnostics),
        sequence: reader.integer("sequence", diagnostics),
        inputs: read_key_values(reader.value("inputs"), &inputs_path, diagnostics),
        env: read_key_values(reader.value("env"), &env_path, diagnostics),
        enable: reader.boolean("enable", diagnostics).unwrap_or(true),
        business_type: reader.string("business_type", diagnostics),
        runtime_attribution: reader.string("runtime_attribution", diagnostics),
        official_task_version: reader.string("official_task_version", diagnostics),
        extra: reader.unread(),
        path: path.to_owned(),
    })
}

/// `[{"key": …, "value": …}]`. A `{KEY: value}` object is accepted too (the YAML form).
fn read_key_values(
    value: Option<&Value>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<RawInput> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                let item_path = path_index(path, index);
                let mut reader = ObjectReader::new(item, &item_path, "an entry", diagnostics)?;
                let key = reader.string("key", diagnostics);
                let value = reader.value("value").cloned().unwrap_or(Value::Null);
                match key {
                    Some(key) if !key.is_empty() => Some(RawInput {
                        path: path_join(&item_path, "value"),
                        key,
                        value,
                    }),
                    _ => {
                        diagnostics.push(Diagnostic::new(
                            DiagnosticCode::Missing,
                            path_join(&item_path, "key"),
                            "an entry needs a non-empty `key`",
                        ));
                        None
                    }
                }
            })
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| RawInput {
                path: path_join(path, key),
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        Some(other) => {
            diagnostics.push(wrong_type(path, "a list of {key, value} entries", other));
            Vec::new()
        }
    }
}
