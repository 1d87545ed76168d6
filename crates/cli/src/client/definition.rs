//! Pipeline files for `pipeline create` and `template create`: compiled locally first (every
//! problem is printed and nothing is sent), then turned into the CodeArts body — YAML
//! conveniences expanded, `variables` as the CodeArts list, `definition` as a JSON string.

use super::error::ClientError;
use runnel_domain::definition::read_pipeline;
use runnel_domain::params::VariableSpec;
use runnel_domain::{Format, compile_text};
use serde_json::{Map, Value, json};
use std::path::Path;

/// A pipeline file, ready to send.
#[derive(Debug)]
pub(crate) struct PipelineFile {
    /// The name written in the file, if any.
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    /// `variables` in the CodeArts list form (empty when none).
    pub(crate) variables: Vec<Value>,
    pub(crate) concurrency_control: Option<Value>,
    /// The definition as the JSON string the API wants.
    pub(crate) definition: String,
    /// Other fields of a CodeArts pipeline body given as a JSON file (sources, triggers, …),
    /// sent as they are.
    pub(crate) extra: Map<String, Value>,
}

/// Reads and compiles `path`. Problems are printed to stderr as `file:line:column: …`.
pub(crate) fn read(path: &Path) -> Result<PipelineFile, ClientError> {
    let bytes = std::fs::read(path)
        .map_err(|err| ClientError::Invalid(format!("cannot read {}: {err}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ClientError::Invalid(format!("{} is not UTF-8 text", path.display())))?;
    let format = Format::detect(path.file_name().and_then(|name| name.to_str()), &text);
    let spec = match compile_text(&text, format) {
        Ok(spec) => spec,
        Err(diagnostics) => {
            crate::pipeline_file::print_diagnostics(path, &diagnostics);
            return Err(ClientError::Invalid(format!(
                "{} has {} problem(s), listed above; nothing was sent",
                path.display(),
                diagnostics.len()
            )));
        }
    };
    let mut diagnostics = Vec::new();
    let raw = read_pipeline(&text, format, &mut diagnostics)
        .ok_or_else(|| ClientError::Invalid(format!("{} could not be read", path.display())))?;
    let mut extra = match (format, runnel_domain::definition::parse_text(&text, format)) {
        (Format::Json, Ok(Value::Object(body))) if body.contains_key("definition") => body,
        _ => Map::new(),
    };
    // The compiled definition names every stage, job and step (identifiers derived here, so
    // `needs: [compile]` keeps meaning the job named `compile`). A JSON body's definition string
    // that already did is sent verbatim.
    let compiled = spec.definition();
    let definition = match extra.remove("definition") {
        Some(Value::String(text))
            if serde_json::from_str::<Value>(&text).ok().as_ref() == Some(compiled) =>
        {
            text
        }
        _ => serde_json::to_string(compiled)
            .map_err(|err| ClientError::Invalid(format!("cannot encode the definition: {err}")))?,
    };
    for key in ["name", "description", "variables", "concurrency_control"] {
        extra.remove(key);
    }
    Ok(PipelineFile {
        name: spec.name().map(str::to_owned).or(raw.name),
        description: raw.description,
        variables: spec.variables().iter().map(variable_json).collect(),
        concurrency_control: raw.concurrency,
        definition,
        extra,
    })
}

/// The CodeArts `CustomVariable` of a variable (spec §13).
fn variable_json(variable: &VariableSpec) -> Value {
    let mut value = json!({
        "name": variable.name,
        "type": variable.var_type.as_str(),
        "value": variable.value,
        "is_secret": variable.is_secret,
        "is_runtime": variable.is_runtime,
        "description": variable.description,
        "limits": variable.limits,
    });
    if let (Some(sequence), Some(object)) = (variable.sequence, value.as_object_mut()) {
        object.insert("sequence".to_owned(), json!(sequence));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn yaml_is_expanded_into_the_codearts_body() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            dir.path(),
            "ci.yml",
            "name: demo\nvariables:\n  TARGET: dev\njobs:\n  - name: build\n    steps:\n      - run: echo $TARGET\n",
        );
        let file = read(&path).expect("valid");
        assert_eq!(file.name.as_deref(), Some("demo"));
        assert_eq!(file.variables.len(), 1);
        assert_eq!(file.variables[0]["name"], "TARGET");
        assert_eq!(file.variables[0]["value"], "dev");
        let definition: Value = serde_json::from_str(&file.definition).expect("a JSON string");
        assert_eq!(
            definition["stages"][0]["jobs"][0]["steps"][0]["task"],
            "official_shell_plugin"
        );
    }

    #[test]
    fn identifiers_derived_here_are_sent_so_needs_by_name_keeps_working() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            dir.path(),
            "ci.yml",
            "jobs:\n  - name: compile\n    steps: [make]\n  - name: test\n    needs: [compile]\n    steps: [make test]\n",
        );
        let file = read(&path).expect("valid");
        let definition: Value = serde_json::from_str(&file.definition).expect("a JSON string");
        let jobs = &definition["stages"][0]["jobs"];
        assert_eq!(jobs[0]["identifier"], "compile");
        assert_eq!(jobs[1]["depends_on"], json!(["compile"]));
        assert!(jobs[1]["steps"][0]["identifier"].is_string());
    }

    #[test]
    fn a_json_body_keeps_its_definition_string_and_other_fields() {
        let dir = tempfile::tempdir().expect("temp dir");
        let definition = r#"{"stages":[{"name":"Build","identifier":"build","jobs":[{"name":"b","identifier":"JOB_b","steps":[{"name":"s","identifier":"s1","task":"official_shell_plugin","inputs":[{"key":"OFFICIAL_SHELL_SCRIPT_INPUT","value":"true"}]}]}]}]}"#;
        let body =
            json!({"name": "p", "is_publish": false, "sources": [], "definition": definition});
        let path = write(dir.path(), "p.json", &body.to_string());
        let file = read(&path).expect("valid");
        assert_eq!(file.definition, definition);
        assert_eq!(file.extra.get("sources"), Some(&json!([])));
        assert_eq!(file.extra.get("is_publish"), Some(&json!(false)));
    }

    #[test]
    fn an_invalid_file_is_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            dir.path(),
            "bad.yml",
            "jobs:\n  - name: a\n    needs: [nowhere]\n    steps: [true]\n",
        );
        let err = read(&path).expect_err("invalid");
        assert!(err.to_string().contains("nothing was sent"), "{err}");
    }
}
