//! Pipeline input: the CodeArts `definition` JSON (optionally wrapped in a pipeline body with
//! `variables` and `concurrency_control`) and the YAML form, read into raw types.
//!
//! Phase one of two: text → [`RawPipeline`] (everything optional, unknown fields kept, every
//! problem a diagnostic). Phase two is [`crate::compile`].

mod document;
mod raw;
mod reader;
pub mod yaml;

pub use document::{Format, MAX_DEPTH, MAX_DOCUMENT_BYTES, parse_text};
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
    let document = match format {
        Format::Json => document,
        Format::Yaml => yaml::desugar(document, diagnostics),
    };
    Some(read_pipeline_value(&document, diagnostics))
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
            Ok(value) => value,
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
    }
}
