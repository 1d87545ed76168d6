//! Pipeline input: the CodeArts `definition` JSON (optionally wrapped in a pipeline body with
//! `variables` and `concurrency_control`) and the YAML form, read into raw types.
//!
//! Phase one of two: text → [`RawPipeline`] (everything optional, unknown fields kept, every
//! problem a diagnostic). Phase two is [`crate::compile`].

mod document;
mod raw;
pub(crate) mod reader;
pub mod yaml;

pub use document::{Format, MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_VALUES, parse_text};
pub use raw::{RawDefinition, RawInput, RawJob, RawStage, RawStep, read_definition};

use crate::diagnostic::{Diagnostic, DiagnosticCode};
use reader::ObjectReader;
use serde_json::Value;

/// A pipeline as written: its definition plus the pipeline-level settings that travel with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPipeline {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The `variables` value as written (a CustomVariable list, or the YAML map form).
    pub variables: Option<Value>,
    /// The `concurrency_control` value as written.
    pub concurrency: Option<Value>,
    pub definition: RawDefinition,
    /// The definition object exactly as given (YAML conveniences expanded), for storing verbatim.
    pub definition_value: Value,
    /// How to name places the way the file wrote them (YAML conveniences); empty for JSON.
    pub path_rewrites: yaml::PathRewrites,
}

/// Reads a pipeline file. Accepted shapes:
/// * a bare definition `{"stages": […]}`;
/// * a pipeline body `{"name", "variables", "concurrency_control", "definition": "<JSON string>" | {…}}`
///   as sent to `POST /v5/{project_id}/api/pipelines`;
/// * the YAML form (any of the above plus conveniences).
///
/// Returns `None` only when the text does not parse at all; otherwise what could be read, with
/// every problem pushed onto `diagnostics` (compilation goes on to find the rest).
pub fn read_pipeline(
    text: &str,
    format: Format,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RawPipeline> {
    let document = match parse_text(text, format) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            return None;
        }
    };
    if let Some(too_large) = check_size(definition_of(&document)) {
        diagnostics.push(too_large);
        return None;
    }
    match format {
        Format::Json => Some(read_pipeline_value(&document, diagnostics)),
        Format::Yaml => {
            let first = diagnostics.len();
            let (document, rewrites) = yaml::desugar(document, diagnostics);
            let mut pipeline = read_pipeline_value(&document, diagnostics);
            for diagnostic in &mut diagnostics[first..] {
                diagnostic.path = rewrites.apply(&diagnostic.path);
            }
            pipeline.path_rewrites = rewrites;
            Some(pipeline)
        }
    }
}

/// The definition inside a document: the document itself, its `definition` object, or (YAML
/// shorthand) the document with top-level `jobs`. A definition still encoded as a string is
/// checked after it is parsed, in [`read_pipeline_value`].
fn definition_of(document: &Value) -> &Value {
    match document.get("definition") {
        Some(definition @ Value::Object(_)) => definition,
        _ => document,
    }
}

/// Refuses a definition over the stage, job or step limits by counting, before any further work.
fn check_size(definition: &Value) -> Option<Diagnostic> {
    use crate::compile::{MAX_JOBS, MAX_STAGES, MAX_STEPS, MAX_STEPS_PER_JOB};
    fn list(value: Option<&Value>) -> &[Value] {
        match value {
            Some(Value::Array(items)) => items.as_slice(),
            _ => &[],
        }
    }
    let stages = list(definition.get("stages"));
    let shorthand_jobs = list(definition.get("jobs"));
    let jobs: Vec<&Value> = stages
        .iter()
        .flat_map(|stage| list(stage.get("jobs")))
        .chain(shorthand_jobs)
        .collect();
    let steps_per_job = jobs.iter().map(|job| list(job.get("steps")).len());
    let (most_steps, total_steps) = steps_per_job.fold((0, 0), |(most, total), count| {
        (most.max(count), total + count)
    });
    let too_large =
        |message: String| Some(Diagnostic::new(DiagnosticCode::TooLarge, "stages", message));
    if stages.len() > MAX_STAGES {
        too_large(format!(
            "{} stages; at most {MAX_STAGES} are allowed",
            stages.len()
        ))
    } else if jobs.len() > MAX_JOBS {
        too_large(format!(
            "{} jobs; at most {MAX_JOBS} are allowed",
            jobs.len()
        ))
    } else if total_steps > MAX_STEPS {
        too_large(format!(
            "{total_steps} steps; at most {MAX_STEPS} are allowed"
        ))
    } else if most_steps > MAX_STEPS_PER_JOB {
        too_large(format!(
            "a job has {most_steps} steps; at most {MAX_STEPS_PER_JOB} are allowed in one job"
        ))
    } else {
        None
    }
}

/// Reads an already-parsed pipeline body or bare definition, collecting diagnostics.
pub fn read_pipeline_value(document: &Value, diagnostics: &mut Vec<Diagnostic>) -> RawPipeline {
    let is_body = matches!(document, Value::Object(map) if map.contains_key("definition"));
    if !is_body {
        return RawPipeline {
            definition: read_definition(document, diagnostics),
            definition_value: document.clone(),
            ..RawPipeline::default()
        };
    }
    let Some(mut reader) = ObjectReader::new(document, "", "the pipeline", diagnostics) else {
        return RawPipeline::default();
    };
    let name = reader.string("name", diagnostics);
    let description = reader.string("description", diagnostics);
    let variables = reader.value("variables").cloned();
    let concurrency = reader.value("concurrency_control").cloned();
    let definition_value = match reader.value("definition") {
        // The CodeArts wire form: a JSON document encoded as a string (spec §11.1).
        Some(Value::String(text)) => match parse_text(text, Format::Json) {
            Ok(value) => match check_size(&value) {
                None => value,
                Some(too_large) => {
                    diagnostics.push(too_large);
                    return RawPipeline {
                        name,
                        description,
                        variables,
                        concurrency,
                        ..RawPipeline::default()
                    };
                }
            },
            Err(mut diagnostic) => {
                diagnostic.path = "definition".to_owned();
                diagnostic.message = format!("definition is invalid: {}", diagnostic.message);
                diagnostics.push(diagnostic);
                return RawPipeline {
                    name,
                    description,
                    variables,
                    concurrency,
                    ..RawPipeline::default()
                };
            }
        },
        Some(value @ Value::Object(_)) => value.clone(),
        Some(other) => {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                "definition",
                format!(
                    "definition must be a JSON string or an object, found {}",
                    reader::type_name(other)
                ),
            ));
            return RawPipeline {
                name,
                description,
                variables,
                concurrency,
                ..RawPipeline::default()
            };
        }
        None => {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Missing,
                "definition",
                "definition is required",
            ));
            return RawPipeline {
                name,
                description,
                variables,
                concurrency,
                ..RawPipeline::default()
            };
        }
    };
    RawPipeline {
        name,
        description,
        variables,
        concurrency,
        definition: read_definition(&definition_value, diagnostics),
        definition_value,
        path_rewrites: yaml::PathRewrites::default(),
    }
}
