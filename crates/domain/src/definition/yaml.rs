//! The YAML pipeline-as-code form: the CodeArts structure plus conveniences, rewritten
//! ("desugared") into the CodeArts shape so one reader and one compiler serve both formats.
//! The conveniences are documented in `docs/pipeline-yaml.md`.
//!
//! Unlike the CodeArts JSON (where unknown fields are UI bookkeeping and kept verbatim), a YAML
//! file is written by hand: an unknown key is a mistake and gets a diagnostic, with a suggestion.
//! Diagnostics name the keys as written: [`PathRewrites`] maps the CodeArts paths the compiler
//! reports (`stages[0].jobs[1].depends_on[0]`) back to the YAML (`jobs[1].needs[0]`).

use crate::diagnostic::{Diagnostic, DiagnosticCode, path_index, path_join};
use serde_json::{Map, Value, json};

/// The task name of the shell plugin, which `run:` expands to.
pub const SHELL_TASK: &str = "official_shell_plugin";
/// The input key holding a shell step's script.
pub const SHELL_SCRIPT_INPUT: &str = "OFFICIAL_SHELL_SCRIPT_INPUT";

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "variables",
    "concurrency",
    "concurrency_control",
    "stages",
    "jobs",
];
const STAGE_KEYS: &[&str] = &[
    "name",
    "id",
    "identifier",
    "sequence",
    "needs",
    "depends_on",
    "if",
    "run_condition",
    "always",
    "run_always",
    "parallel",
    "manual",
    "pre",
    "post",
    "jobs",
    "type",
];
const JOB_KEYS: &[&str] = &[
    "name",
    "id",
    "identifier",
    "sequence",
    "needs",
    "depends_on",
    "if",
    "condition",
    "select",
    "strategy",
    "timeout",
    "timeout_unit",
    "resource",
    "exec_type",
    "async",
    "env",
    "steps",
    // CodeArts UI bookkeeping, accepted so a definition converted to YAML still reads.
    "identifier_old",
    "stage_index",
    "type",
    "reusable_job_id",
    "condition_tag",
    "stage_id",
    "unfinished_steps",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "id",
    "identifier",
    "task",
    "run",
    "with",
    "inputs",
    "env",
    "enabled",
    "enable",
    "sequence",
    "business_type",
    "runtime_attribution",
    "official_task_version",
    "multi_step_editable",
    "endpoint_ids",
    "icon_url",
];

/// Maps paths in the desugared document back to the YAML as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRewrites {
    /// `(desugared prefix, written prefix)`, applied longest prefix first.
    rules: Vec<(String, String)>,
}

impl PathRewrites {
    fn add(&mut self, desugared: String, written: String) {
        if desugared != written {
            self.rules.push((desugared, written));
        }
    }

    /// The path as the author wrote it.
    pub fn apply(&self, path: &str) -> String {
        let mut rules: Vec<&(String, String)> = self.rules.iter().collect();
        rules.sort_by_key(|(desugared, _)| std::cmp::Reverse(desugared.len()));
        let mut path = path.to_owned();
        for (desugared, written) in rules {
            if let Some(rest) = path.strip_prefix(desugared.as_str())
                && (rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
            {
                path = format!("{written}{rest}");
            }
        }
        path.trim_start_matches('.').to_owned()
    }
}

/// Rewrites a YAML document into the pipeline-body shape `{name, variables, concurrency_control,
/// definition: {stages}}`, and says how to map diagnostic paths back to the YAML.
pub fn desugar(document: Value, diagnostics: &mut Vec<Diagnostic>) -> (Value, PathRewrites) {
    let mut rewrites = PathRewrites::default();
    let Value::Object(mut top) = document else {
        let (code, message) = if document.is_null() {
            (DiagnosticCode::Missing, "the pipeline file is empty")
        } else {
            (
                DiagnosticCode::InvalidValue,
                "a pipeline file must be a mapping with `stages` (or `jobs`)",
            )
        };
        diagnostics.push(Diagnostic::new(code, "", message));
        return (json!({"definition": {"stages": []}}), rewrites);
    };
    check_keys(
        &top,
        TOP_KEYS,
        "",
        "at the top of a pipeline file",
        diagnostics,
    );

    let mut body = Map::new();
    for key in ["name", "description", "variables"] {
        if let Some(value) = top.remove(key) {
            body.insert(key.to_owned(), value);
        }
    }
    rename(
        &mut top,
        "concurrency",
        "concurrency_control",
        "",
        &mut rewrites,
        diagnostics,
    );
    if let Some(concurrency) = top.remove("concurrency_control") {
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
            if let Some(Value::Array(stages)) = top.get_mut("stages")
                && let Some(Value::Object(stage)) = stages.first_mut()
                && let Some(Value::Array(jobs)) = stage.get_mut("jobs")
            {
                for (index, job) in jobs.iter_mut().enumerate() {
                    desugar_job(
                        job,
                        &format!("stages[0].jobs[{index}]"),
                        &mut rewrites,
                        diagnostics,
                    );
                }
            }
            rewrites.add("stages[0].jobs".to_owned(), "jobs".to_owned());
            body.insert("definition".to_owned(), Value::Object(top));
            return (Value::Object(body), rewrites);
        }
    }
    if let Some(Value::Array(stages)) = top.get_mut("stages") {
        for (index, stage) in stages.iter_mut().enumerate() {
            desugar_stage(
                stage,
                &path_index("stages", index),
                &mut rewrites,
                diagnostics,
            );
        }
    }
    body.insert("definition".to_owned(), Value::Object(top));
    (Value::Object(body), rewrites)
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

fn desugar_stage(
    stage: &mut Value,
    path: &str,
    rewrites: &mut PathRewrites,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Value::Object(map) = stage else { return };
    check_keys(map, STAGE_KEYS, path, "in a stage", diagnostics);
    rename(map, "id", "identifier", path, rewrites, diagnostics);
    rename(map, "needs", "depends_on", path, rewrites, diagnostics);
    rename(map, "if", "run_condition", path, rewrites, diagnostics);
    rename(map, "always", "run_always", path, rewrites, diagnostics);
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
            rewrites.add(path_join(path, "pre"), path_join(path, "manual"));
        }
    }
    if let Some(Value::Array(jobs)) = map.get_mut("jobs") {
        let jobs_path = path_join(path, "jobs");
        for (index, job) in jobs.iter_mut().enumerate() {
            desugar_job(job, &path_index(&jobs_path, index), rewrites, diagnostics);
        }
    }
}

fn desugar_job(
    job: &mut Value,
    path: &str,
    rewrites: &mut PathRewrites,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Value::Object(map) = job else { return };
    check_keys(map, JOB_KEYS, path, "in a job", diagnostics);
    rename(map, "id", "identifier", path, rewrites, diagnostics);
    rename(map, "needs", "depends_on", path, rewrites, diagnostics);
    rename(map, "if", "condition", path, rewrites, diagnostics);
    if let Some(select) = map.remove("select") {
        if map.contains_key("strategy") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                path_join(path, "select"),
                "use either `select` or `strategy`, not both",
            ));
        } else {
            map.insert("strategy".to_owned(), json!({"select_strategy": select}));
            rewrites.add(
                path_join(path, "strategy.select_strategy"),
                path_join(path, "select"),
            );
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
            rewrites.add(path_join(path, "timeout_unit"), path_join(path, "timeout"));
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
                rewrites,
                diagnostics,
            );
        }
    }
}

fn desugar_step(
    step: &mut Value,
    path: &str,
    job_env: Option<&Value>,
    rewrites: &mut PathRewrites,
    diagnostics: &mut Vec<Diagnostic>,
) {
    // A bare string step is a shell step: `- make test`.
    if let Value::String(script) = step {
        *step = json!({"run": script.clone()});
        rewrites.add(path_join(path, "inputs[0].value"), path.to_owned());
    }
    let Value::Object(map) = step else { return };
    if map.contains_key("if") {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::InvalidValue,
            path_join(path, "if"),
            "steps have no condition; put `if` on the job",
        ));
        map.remove("if");
    }
    check_keys(map, STEP_KEYS, path, "in a step", diagnostics);
    rename(map, "id", "identifier", path, rewrites, diagnostics);
    rename(map, "enabled", "enable", path, rewrites, diagnostics);
    rename(map, "with", "inputs", path, rewrites, diagnostics);
    if let Some(script) = map.remove("run") {
        if map.contains_key("task") {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::Duplicate,
                path_join(path, "run"),
                "use either `run` (a shell step) or `task`, not both",
            ));
        } else {
            desugar_run(map, script, path, rewrites, diagnostics);
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

/// `run: script` → the shell task with the script as its first input (other inputs kept).
fn desugar_run(
    map: &mut Map<String, Value>,
    script: Value,
    path: &str,
    rewrites: &mut PathRewrites,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut inputs = match map.remove("inputs") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(Value::Object(entries)) => entries
            .into_iter()
            .map(|(key, value)| json!({"key": key, "value": value}))
            .collect(),
        Some(other) => {
            map.insert("inputs".to_owned(), other);
            return;
        }
    };
    let has_script = inputs
        .iter()
        .any(|input| input.get("key").and_then(Value::as_str) == Some(SHELL_SCRIPT_INPUT));
    if has_script {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::Duplicate,
            path_join(path, "run"),
            format!("`run` and an input `{SHELL_SCRIPT_INPUT}` both give the script; use one"),
        ));
        return;
    }
    if !map.contains_key("name") {
        let name = script
            .as_str()
            .and_then(|text| text.lines().next())
            .unwrap_or("shell")
            .trim();
        map.insert(
            "name".to_owned(),
            Value::String(name.chars().take(60).collect()),
        );
    }
    inputs.insert(0, json!({"key": SHELL_SCRIPT_INPUT, "value": script}));
    // Inputs given with `with` moved down by one: map their paths back one by one.
    for index in 1..inputs.len() {
        rewrites.add(
            path_join(path, &format!("inputs[{index}]")),
            path_join(path, &format!("inputs[{}]", index - 1)),
        );
    }
    rewrites.add(path_join(path, "inputs[0].value"), path_join(path, "run"));
    map.insert("task".to_owned(), Value::String(SHELL_TASK.to_owned()));
    map.insert("inputs".to_owned(), Value::Array(inputs));
}

/// Moves `from` to `to`; both present is a diagnostic.
fn rename(
    map: &mut Map<String, Value>,
    from: &str,
    to: &str,
    path: &str,
    rewrites: &mut PathRewrites,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some(value) = map.remove(from) else {
        return;
    };
    if map.contains_key(to) {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::Duplicate,
            path_join(path, from),
            format!("`{from}` and `{to}` mean the same thing; use one"),
        ));
        return;
    }
    map.insert(to.to_owned(), value);
    rewrites.add(path_join(path, to), path_join(path, from));
}

/// An unknown key in hand-written YAML is a mistake: report it, with the closest known key.
fn check_keys(
    map: &Map<String, Value>,
    known: &[&str],
    path: &str,
    place: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let suggestion = known
            .iter()
            .map(|candidate| (edit_distance(key, candidate), *candidate))
            .filter(|(distance, _)| *distance <= 2)
            .min()
            .map(|(_, candidate)| format!("; did you mean `{candidate}`?"))
            .unwrap_or_default();
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::InvalidValue,
            path_join(path, key),
            format!("unknown key `{key}` {place}{suggestion}"),
        ));
    }
}

/// Levenshtein distance, for suggestions on short keys.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current.push(
                substitution
                    .min(previous[column + 1] + 1)
                    .min(current[column] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
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

    #[test]
    fn rewrites_map_desugared_paths_back_longest_prefix_first() {
        let mut rewrites = PathRewrites::default();
        rewrites.add(
            "stages[0].jobs[1].depends_on".into(),
            "stages[0].jobs[1].needs".into(),
        );
        rewrites.add("stages[0].jobs".into(), "jobs".into());
        assert_eq!(
            rewrites.apply("stages[0].jobs[1].depends_on[0]"),
            "jobs[1].needs[0]"
        );
        assert_eq!(
            rewrites.apply("stages[0].jobs[1].depends_on_x"),
            "jobs[1].depends_on_x"
        );
        assert_eq!(rewrites.apply("variables[0]"), "variables[0]");
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("need", "needs"), 1);
        assert_eq!(edit_distance("iff", "if"), 1);
        assert_eq!(edit_distance("steps", "steps"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
