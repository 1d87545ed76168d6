//! The YAML pipeline-as-code form: the CodeArts structure plus conveniences, rewritten
//! ("desugared") into the CodeArts shape so one reader and one compiler serve both formats.
//! The conveniences are documented in `docs/pipeline-yaml.md`.

use crate::diagnostic::{Diagnostic, DiagnosticCode, path_index, path_join};
use serde_json::{Map, Value, json};

/// The task name of the shell plugin, which `run:` expands to.
pub const SHELL_TASK: &str = "official_shell_plugin";
/// The input key holding a shell step's script.
pub const SHELL_SCRIPT_INPUT: &str = "OFFICIAL_SHELL_SCRIPT_INPUT";

/// Rewrites a YAML document into the pipeline-body shape `{name, variables, concurrency_control,
/// definition: {stages}}`. Paths in diagnostics refer to the YAML as written.
pub fn desugar(document: Value, diagnostics: &mut Vec<Diagnostic>) -> Value {
    let Value::Object(mut top) = document else {
        if document.is_null() {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Missing,
                "",
                "the pipeline file is empty",
            ));
        } else {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                "",
                "a pipeline file must be a mapping with `stages` (or `jobs`)",
            ));
        }
        return json!({"definition": {"stages": []}});
    };

    let mut body = Map::new();
    for key in ["name", "description", "variables"] {
        if let Some(value) = top.remove(key) {
            body.insert(key.to_owned(), value);
        }
    }
    if let Some(concurrency) = take_alias(
        &mut top,
        "concurrency",
        "concurrency_control",
        "",
        diagnostics,
    ) {
        body.insert(
            "concurrency_control".to_owned(),
            desugar_concurrency(concurrency),
        );
    }

    // Shorthand: a file with `jobs` and no `stages` is one stage named "default".
    if top.contains_key("jobs") {
        if top.contains_key("stages") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                "jobs",
                "use either top-level `jobs` (one implicit stage) or `stages`, not both",
            ));
            top.remove("jobs");
        } else if let Some(jobs) = top.remove("jobs") {
            top.insert(
                "stages".to_owned(),
                json!([{"name": "default", "identifier": "default", "jobs": jobs}]),
            );
        }
    }
    if let Some(Value::Array(stages)) = top.get_mut("stages") {
        for (index, stage) in stages.iter_mut().enumerate() {
            desugar_stage(stage, &path_index("stages", index), diagnostics);
        }
    }
    body.insert("definition".to_owned(), Value::Object(top));
    Value::Object(body)
}

fn desugar_concurrency(value: Value) -> Value {
    match value {
        Value::Object(mut map) => {
            if let Some(number) = map.remove("number") {
                map.entry("concurrency_number").or_insert(number);
            }
            map.entry("enable").or_insert(Value::Bool(true));
            Value::Object(map)
        }
        Value::Number(number) => {
            json!({"concurrency_number": number, "exceed_action": "QUEUE", "enable": true})
        }
        other => other,
    }
}

fn desugar_stage(stage: &mut Value, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let Value::Object(map) = stage else { return };
    rename(map, "id", "identifier", path, diagnostics);
    rename(map, "needs", "depends_on", path, diagnostics);
    rename(map, "if", "run_condition", path, diagnostics);
    rename(map, "always", "run_always", path, diagnostics);
    if let Some(manual) = map.remove("manual") {
        if map.contains_key("pre") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                path_join(path, "manual"),
                "use either `manual` or `pre`, not both",
            ));
        } else {
            let task = if manual.as_bool() == Some(true) {
                "official_devcloud_manualTrigger"
            } else {
                "official_devcloud_autoTrigger"
            };
            map.insert("pre".to_owned(), json!([{"task": task, "sequence": 0}]));
        }
    }
    if let Some(Value::Array(jobs)) = map.get_mut("jobs") {
        let jobs_path = path_join(path, "jobs");
        for (index, job) in jobs.iter_mut().enumerate() {
            desugar_job(job, &path_index(&jobs_path, index), diagnostics);
        }
    }
}

fn desugar_job(job: &mut Value, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let Value::Object(map) = job else { return };
    rename(map, "id", "identifier", path, diagnostics);
    rename(map, "needs", "depends_on", path, diagnostics);
    rename(map, "if", "condition", path, diagnostics);
    if let Some(select) = map.remove("select") {
        if map.contains_key("strategy") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                path_join(path, "select"),
                "use either `select` or `strategy`, not both",
            ));
        } else {
            map.insert("strategy".to_owned(), json!({"select_strategy": select}));
        }
    }
    // `timeout: 90s | 10m | 2h` → timeout + timeout_unit.
    if let (Some(Value::String(text)), false) =
        (map.get("timeout"), map.contains_key("timeout_unit"))
    {
        let text = text.trim().to_owned();
        if let Some((amount, unit)) = split_duration(&text) {
            map.insert("timeout".to_owned(), Value::String(amount));
            map.insert("timeout_unit".to_owned(), Value::String(unit));
        }
    }
    if let Some(resource @ Value::Object(_)) = map.get("resource") {
        let text = resource.to_string();
        map.insert("resource".to_owned(), Value::String(text));
    }
    let job_env = map.remove("env");
    if let Some(Value::Array(steps)) = map.get_mut("steps") {
        let steps_path = path_join(path, "steps");
        for (index, step) in steps.iter_mut().enumerate() {
            desugar_step(
                step,
                &path_index(&steps_path, index),
                job_env.as_ref(),
                diagnostics,
            );
        }
    }
}

fn desugar_step(
    step: &mut Value,
    path: &str,
    job_env: Option<&Value>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    // A bare string step is a shell step: `- make test`.
    if let Value::String(script) = step {
        *step = json!({"run": script.clone()});
    }
    let Value::Object(map) = step else { return };
    rename(map, "id", "identifier", path, diagnostics);
    rename(map, "enabled", "enable", path, diagnostics);
    if map.contains_key("if") {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::InvalidValue,
            path_join(path, "if"),
            "steps have no condition; put `if` on the job",
        ));
        map.remove("if");
    }
    if let Some(script) = map.remove("run") {
        if map.contains_key("task") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                path_join(path, "run"),
                "use either `run` (a shell step) or `task`, not both",
            ));
        } else {
            map.insert("task".to_owned(), Value::String(SHELL_TASK.to_owned()));
            map.insert(
                "inputs".to_owned(),
                json!([{"key": SHELL_SCRIPT_INPUT, "value": script}]),
            );
            if !map.contains_key("name") {
                let name = script
                    .as_str()
                    .and_then(|text| text.lines().next())
                    .unwrap_or("shell")
                    .trim();
                let short: String = name.chars().take(60).collect();
                map.insert("name".to_owned(), Value::String(short));
            }
        }
    }
    if let Some(with) = map.remove("with") {
        if map.contains_key("inputs") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                path_join(path, "with"),
                "use either `with` or `inputs`, not both",
            ));
        } else {
            map.insert("inputs".to_owned(), with);
        }
    }
    // Job-level `env` applies to every step; the step's own entries win.
    if let Some(Value::Object(job_env)) = job_env {
        let mut merged = job_env.clone();
        match map.remove("env") {
            Some(Value::Object(step_env)) => merged.extend(step_env),
            Some(other) => {
                map.insert("env".to_owned(), other);
                return;
            }
            None => {}
        }
        map.insert("env".to_owned(), Value::Object(merged));
    }
}

/// Moves `from` to `to`; both present is a diagnostic.
fn rename(
    map: &mut Map<String, Value>,
    from: &str,
    to: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    take_alias(map, from, to, path, diagnostics).map(|value| map.insert(to.to_owned(), value));
}

fn take_alias(
    map: &mut Map<String, Value>,
    from: &str,
    to: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Value> {
    let value = map.remove(from)?;
    if map.contains_key(to) {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::Duplicate,
            path_join(path, from),
            format!("`{from}` and `{to}` mean the same thing; use one"),
        ));
        return None;
    }
    Some(value)
}

/// `"90s"` → `("90", "S")`, `"10m"` → `("10", "M")`, `"2h"` → `("2", "H")`; anything else is left alone.
fn split_duration(text: &str) -> Option<(String, String)> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (amount, unit) = text.split_at(unit_at);
    if amount.is_empty() {
        return None;
    }
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => "S",
        "m" | "min" | "mins" | "minute" | "minutes" => "M",
        "h" | "hour" | "hours" => "H",
        _ => return None,
    };
    Some((amount.to_owned(), unit.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_split_into_amount_and_unit() {
        assert_eq!(split_duration("90s"), Some(("90".into(), "S".into())));
        assert_eq!(
            split_duration("10 minutes"),
            Some(("10".into(), "M".into()))
        );
        assert_eq!(split_duration("2h"), Some(("2".into(), "H".into())));
        assert_eq!(split_duration("10"), None);
        assert_eq!(split_duration("m"), None);
        assert_eq!(split_duration("5 fortnights"), None);
    }
}
