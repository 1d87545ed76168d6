//! The v3 state-machine shape of a pipeline (`flow` + `states`, spec §2.1) to a definition
//! (§11), and a definition back to `flow` + `states` for the v3 template views (§2.3, §2.4).
//!
//! Forward: `flow` maps a state to its successors. Stages follow each other through
//! stage → stage edges from `initial` to `final`; a stage's task successors (and their task
//! successors) are its jobs. `execution_mode: serial` chains a stage's jobs in the order they
//! are listed; otherwise a task → task edge is a job dependency. `initial`, `final` and a
//! `source` stage are dropped unless they hold tasks. A task whose `module_or_template_id` names
//! a template this account sees and whose `job_id` names a job of it gets that job's steps;
//! any other task becomes a shell step that says the CodeArts job kind has no equivalent here
//! (the pipeline runs; the job's script is the user's to fill in).
//!
//! Backward: one `state_<n>` per stage, one `Task_<n>` per job with `module_or_template_id` =
//! the template and `job_id` = the job identifier, so a client that sends a template's
//! `flow`/`states` back to `POST /v3/templates/task` gets the template's real jobs.

use super::dto::lenient_bool;
use crate::error::ApiError;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};

/// The shell plugin and its script input.
const SHELL_TASK: &str = "official_shell_plugin";
const SHELL_INPUT: &str = "OFFICIAL_SHELL_SCRIPT_INPUT";

/// One node of the v3 graph (`TemplateState`, §2.1), every documented spelling accepted
/// (`is_manual_mxecution` too). `params`, `job_parameter_validate` (`job_parameter_palidate`),
/// `is_show_codehub_url` (`is_show_code_hub_url`) and `project_id` are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TemplateState {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) name: Option<String>,
    #[serde(
        default,
        alias = "moduleOrTemplateId",
        deserialize_with = "lenient_string"
    )]
    pub(crate) module_or_template_id: Option<String>,
    #[serde(
        default,
        alias = "moduleOrTemplateName",
        deserialize_with = "lenient_string"
    )]
    pub(crate) module_or_template_name: Option<String>,
    #[serde(default, alias = "displayName", deserialize_with = "lenient_string")]
    pub(crate) display_name: Option<String>,
    #[serde(default, alias = "dslMethod", deserialize_with = "lenient_string")]
    pub(crate) dsl_method: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
    #[serde(
        default,
        alias = "is_manual_mxecution",
        alias = "isManualExecution",
        deserialize_with = "lenient_bool"
    )]
    pub(crate) is_manual_execution: Option<bool>,
    #[serde(default, alias = "executionMode", deserialize_with = "lenient_string")]
    pub(crate) execution_mode: Option<String>,
    #[serde(default, alias = "isExecute", deserialize_with = "lenient_bool")]
    pub(crate) is_execute: Option<bool>,
    #[serde(default, alias = "jobId", deserialize_with = "lenient_string")]
    pub(crate) job_id: Option<String>,
    #[serde(default, alias = "jobName", deserialize_with = "lenient_string")]
    pub(crate) job_name: Option<String>,
}

/// A string sent as a string, a number or a boolean; null and absent are `None`.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(Value::Bool(flag)) => Ok(Some(flag.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stage,
    Task,
}

/// The graph of a v3 body, checked.
struct Graph<'a> {
    /// State keys in the order written.
    keys: Vec<&'a str>,
    parsed: HashMap<&'a str, (Kind, &'a TemplateState)>,
    successors: HashMap<&'a str, Vec<&'a str>>,
}

/// Reads each state of a v3 body; problems name their path (`states.Task_1.type: is required`).
pub(crate) fn parse_states(
    states: &Map<String, Value>,
) -> Result<Vec<(String, TemplateState)>, ApiError> {
    states
        .iter()
        .map(|(key, value)| {
            serde_path_to_error::deserialize::<_, TemplateState>(value)
                .map(|state| (key.clone(), state))
                .map_err(|err| {
                    let path = err.path().to_string();
                    let field = if path == "." {
                        format!("states.{key}")
                    } else {
                        format!("states.{key}.{path}")
                    };
                    let message = err.into_inner().to_string();
                    match message
                        .strip_prefix("missing field `")
                        .and_then(|rest| rest.split('`').next())
                    {
                        Some(missing) => {
                            ApiError::invalid(format!("{field}.{missing}"), "is required")
                        }
                        None => ApiError::invalid(field, "has the wrong type"),
                    }
                })
        })
        .collect()
}

/// Translates `flow` + `states` into a definition object `{"stages": […]}`. `templates` maps
/// template ids to their definitions (for tasks that name a template's job).
pub(crate) fn to_definition(
    flow: &Map<String, Value>,
    states: &[(String, TemplateState)],
    templates: &HashMap<String, Value>,
) -> Result<Value, ApiError> {
    let graph = Graph::new(flow, states)?;
    graph.check_shape()?;
    let order = graph.reachable_order();
    let owner = graph.task_owners(&order)?;
    let stage_order = graph.stage_order(&order);

    let tasks_of = |stage: &str| -> Vec<&str> {
        order
            .iter()
            .copied()
            .filter(|key| owner.get(key) == Some(&stage))
            .collect()
    };
    let is_kept = |stage: &str| {
        let (_, state) = graph.parsed[stage];
        let method = state.dsl_method.as_deref().unwrap_or("");
        let droppable = stage == "initial"
            || stage == "final"
            || method.eq_ignore_ascii_case("initial")
            || method.eq_ignore_ascii_case("final")
            || method.eq_ignore_ascii_case("source");
        !droppable || !tasks_of(stage).is_empty()
    };
    // A kept stage's prerequisites: its stage predecessors, looking through dropped ones.
    let mut kept_preds: HashMap<&str, Vec<&str>> = HashMap::new();
    for &stage in &stage_order {
        let mut preds: Vec<&str> = Vec::new();
        for &pred in &stage_order {
            if graph.successors[pred].contains(&stage) {
                let through: Vec<&str> = if is_kept(pred) {
                    vec![pred]
                } else {
                    kept_preds.get(pred).cloned().unwrap_or_default()
                };
                for item in through {
                    if !preds.contains(&item) {
                        preds.push(item);
                    }
                }
            }
        }
        kept_preds.insert(stage, preds);
    }

    let mut stages = Vec::new();
    let mut job_identifiers: HashSet<String> = HashSet::new();
    let mut stage_identifiers: HashMap<&str, String> = HashMap::new();
    let mut previous: Option<&str> = None;
    for &stage in stage_order.iter().filter(|stage| is_kept(stage)) {
        let (_, state) = graph.parsed[stage];
        if state.is_manual_execution == Some(true) {
            return Err(ApiError::invalid(
                format!("states.{stage}.is_manual_execution"),
                "templates do not support stage admission (a manual stage start)",
            ));
        }
        let stage_identifier = identifier(stage, "stage", &mut HashSet::new());
        stage_identifiers.insert(stage, stage_identifier.clone());
        let mut object = Map::new();
        object.insert(
            "name".to_owned(),
            json!(display(state.display_name.as_deref(), stage)),
        );
        object.insert("identifier".to_owned(), json!(stage_identifier));
        object.insert("sequence".to_owned(), json!(stages.len()));
        let preds = &kept_preds[stage];
        let follows_previous = match previous {
            None => true,
            Some(previous) => preds.as_slice() == [previous],
        };
        if !follows_previous {
            if preds.is_empty() {
                // Another root: starts together with the previous stage (also a root).
                object.insert("parallel".to_owned(), json!(true));
            } else {
                let depends: Vec<&String> =
                    preds.iter().map(|pred| &stage_identifiers[pred]).collect();
                object.insert("depends_on".to_owned(), json!(depends));
            }
        }
        object.insert(
            "pre".to_owned(),
            json!([{"task": "official_devcloud_autoTrigger", "sequence": 0}]),
        );
        let serial = state
            .execution_mode
            .as_deref()
            .is_some_and(|mode| mode.eq_ignore_ascii_case("serial"));
        let tasks = tasks_of(stage);
        let mut task_identifiers: HashMap<&str, String> = HashMap::new();
        let mut jobs = Vec::new();
        for (position, &task) in tasks.iter().enumerate() {
            let (_, task_state) = graph.parsed[task];
            let job_identifier = identifier(task, "job", &mut job_identifiers);
            let depends: Vec<String> = if serial {
                position
                    .checked_sub(1)
                    .map(|before| task_identifiers[tasks[before]].clone())
                    .into_iter()
                    .collect()
            } else {
                tasks
                    .iter()
                    .filter(|other| graph.successors[**other].contains(&task))
                    .filter_map(|other| task_identifiers.get(other).cloned())
                    .collect()
            };
            task_identifiers.insert(task, job_identifier.clone());
            jobs.push(job(
                task,
                task_state,
                job_identifier,
                position,
                depends,
                templates,
            ));
        }
        object.insert("jobs".to_owned(), Value::Array(jobs));
        stages.push(Value::Object(object));
        previous = Some(stage);
    }
    Ok(json!({"stages": stages}))
}

impl<'a> Graph<'a> {
    fn new(
        flow: &'a Map<String, Value>,
        states: &'a [(String, TemplateState)],
    ) -> Result<Graph<'a>, ApiError> {
        let mut parsed = HashMap::new();
        for (key, state) in states {
            let kind = match state.kind.trim().to_ascii_lowercase().as_str() {
                "stage" => Kind::Stage,
                "task" => Kind::Task,
                _ => {
                    return Err(ApiError::invalid(
                        format!("states.{key}.type"),
                        "must be stage or task",
                    ));
                }
            };
            if state
                .name
                .as_deref()
                .is_some_and(|name| !name.is_empty() && name != key)
            {
                return Err(ApiError::invalid(
                    format!("states.{key}.name"),
                    "must be the state's key",
                ));
            }
            parsed.insert(key.as_str(), (kind, state));
        }
        let mut successors: HashMap<&str, Vec<&str>> =
            parsed.keys().map(|key| (*key, Vec::new())).collect();
        for (key, next) in flow {
            let Some((&from, _)) = parsed.get_key_value(key.as_str()) else {
                return Err(ApiError::invalid(
                    format!("flow.{key}"),
                    "names no state of `states`",
                ));
            };
            let next = match next {
                Value::Null => continue,
                Value::Object(next) => next,
                _ => {
                    return Err(ApiError::invalid(
                        format!("flow.{key}"),
                        "must map successor states to conditions",
                    ));
                }
            };
            for (successor, condition) in next {
                let Some((&to, _)) = parsed.get_key_value(successor.as_str()) else {
                    return Err(ApiError::invalid(
                        format!("flow.{key}.{successor}"),
                        "names no state of `states`",
                    ));
                };
                if !(condition.is_null() || condition.is_string()) {
                    return Err(ApiError::invalid(
                        format!("flow.{key}.{successor}"),
                        "the condition must be a string such as always",
                    ));
                }
                if to == from {
                    return Err(ApiError::invalid(
                        format!("flow.{key}.{successor}"),
                        "a state cannot follow itself",
                    ));
                }
                successors
                    .get_mut(from)
                    .expect("every state has a successor list")
                    .push(to);
            }
        }
        Ok(Graph {
            keys: states.iter().map(|(key, _)| key.as_str()).collect(),
            parsed,
            successors,
        })
    }

    /// `initial` and `final` are stages, everything is reachable from `initial`, no cycles.
    fn check_shape(&self) -> Result<(), ApiError> {
        for required in ["initial", "final"] {
            match self.parsed.get(required) {
                Some((Kind::Stage, _)) => {}
                Some((Kind::Task, _)) => {
                    return Err(ApiError::invalid(
                        format!("states.{required}.type"),
                        "must be stage",
                    ));
                }
                None => {
                    return Err(ApiError::invalid(
                        format!("states.{required}"),
                        "is required: the graph runs from initial to final",
                    ));
                }
            }
        }
        if let Some(cycle) = self.cycle() {
            return Err(ApiError::invalid(
                "flow",
                format!("the states form a cycle: {}", cycle.join(" → ")),
            ));
        }
        let reached: HashSet<&str> = self.reachable_order().into_iter().collect();
        for key in &self.keys {
            if !reached.contains(key) {
                return Err(ApiError::invalid(
                    format!("flow.{key}"),
                    "the state cannot be reached from initial",
                ));
            }
        }
        Ok(())
    }

    fn cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        fn visit<'a>(
            graph: &Graph<'a>,
            node: &'a str,
            marks: &mut HashMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            marks.insert(node, Mark::Open);
            path.push(node);
            for &next in &graph.successors[node] {
                match marks.get(next) {
                    Some(Mark::Open) => {
                        let start = path.iter().position(|item| *item == next).unwrap_or(0);
                        let mut cycle: Vec<String> = path[start..]
                            .iter()
                            .map(|item| (*item).to_owned())
                            .collect();
                        cycle.push(next.to_owned());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        if let Some(cycle) = visit(graph, next, marks, path) {
                            return Some(cycle);
                        }
                    }
                }
            }
            path.pop();
            marks.insert(node, Mark::Done);
            None
        }
        let mut marks = HashMap::new();
        for &key in &self.keys {
            if !marks.contains_key(key)
                && let Some(cycle) = visit(self, key, &mut marks, &mut Vec::new())
            {
                return Some(cycle);
            }
        }
        None
    }

    /// Breadth-first from `initial`, successors in the order written.
    fn reachable_order(&self) -> Vec<&'a str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([self.key("initial")]);
        while let Some(node) = queue.pop_front() {
            if !seen.insert(node) {
                continue;
            }
            order.push(node);
            queue.extend(self.successors[node].iter().copied());
        }
        order
    }

    fn key(&self, name: &str) -> &'a str {
        self.parsed
            .get_key_value(name)
            .map(|(key, _)| *key)
            .expect("checked to exist")
    }

    /// The stage each task belongs to: the stage naming it, or the stage of a task naming it.
    fn task_owners(&self, order: &[&'a str]) -> Result<HashMap<&'a str, &'a str>, ApiError> {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for &node in order {
            let (kind, _) = self.parsed[node];
            let own_stage = match kind {
                Kind::Stage => Some(node),
                Kind::Task => owner.get(node).copied(),
            };
            let Some(stage) = own_stage else { continue };
            for &next in &self.successors[node] {
                if self.parsed[next].0 != Kind::Task {
                    continue;
                }
                match owner.get(next) {
                    Some(other) if *other != stage => {
                        return Err(ApiError::invalid(
                            format!("flow.{node}.{next}"),
                            format!(
                                "task {next} already belongs to stage {other}; a task belongs to one stage"
                            ),
                        ));
                    }
                    _ => {
                        owner.insert(next, stage);
                    }
                }
            }
        }
        Ok(owner)
    }

    /// Stages in a topological order of the stage → stage edges, ties in discovery order.
    fn stage_order(&self, order: &[&'a str]) -> Vec<&'a str> {
        let stages: Vec<&str> = order
            .iter()
            .copied()
            .filter(|node| self.parsed[node].0 == Kind::Stage)
            .collect();
        let mut indegree: HashMap<&str, usize> = stages.iter().map(|stage| (*stage, 0)).collect();
        for stage in &stages {
            for next in &self.successors[stage] {
                if let Some(count) = indegree.get_mut(next) {
                    *count += 1;
                }
            }
        }
        let mut sorted = Vec::new();
        let mut done: HashSet<&str> = HashSet::new();
        while sorted.len() < stages.len() {
            let Some(&next) = stages
                .iter()
                .find(|stage| !done.contains(*stage) && indegree[*stage] == 0)
            else {
                break; // unreachable: cycles were refused
            };
            done.insert(next);
            sorted.push(next);
            for successor in &self.successors[next] {
                if let Some(count) = indegree.get_mut(successor) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        sorted
    }
}

/// A job for a task: the named template job's steps, a script given in the parameters, or a
/// shell step explaining that the CodeArts job kind has no equivalent here.
fn job(
    key: &str,
    state: &TemplateState,
    identifier: String,
    position: usize,
    depends_on: Vec<String>,
    templates: &HashMap<String, Value>,
) -> Value {
    let name = display(
        state
            .display_name
            .as_deref()
            .or(state.job_name.as_deref())
            .or(state.module_or_template_name.as_deref()),
        key,
    );
    let is_selected = state.is_manual_execution != Some(true) && state.is_execute != Some(false);
    let mut object = Map::new();
    object.insert("name".to_owned(), json!(name));
    object.insert("identifier".to_owned(), json!(identifier));
    object.insert("sequence".to_owned(), json!(position));
    object.insert("depends_on".to_owned(), json!(depends_on));
    object.insert("condition".to_owned(), json!("${{ default() }}"));
    object.insert(
        "strategy".to_owned(),
        json!({"select_strategy": if is_selected { "selected" } else { "never" }}),
    );
    match template_job(state, templates) {
        Some(source) => {
            for key in ["resource", "timeout", "timeout_unit", "exec_type"] {
                if let Some(value) = source.get(key) {
                    object.insert(key.to_owned(), value.clone());
                }
            }
            let steps: Vec<Value> = source
                .get("steps")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|step| {
                    // Fresh identifiers: the same template job may be used twice.
                    let mut step = step.clone();
                    if let Some(step) = step.as_object_mut() {
                        step.remove("identifier");
                    }
                    step
                })
                .collect();
            object.insert("steps".to_owned(), Value::Array(steps));
        }
        None => {
            object.insert(
                "resource".to_owned(),
                json!("{\"type\":\"system\",\"arch\":\"x86\"}"),
            );
            object.insert("exec_type".to_owned(), json!("OCTOPUS_JOB"));
            object.insert("steps".to_owned(), json!([task_step(key, state, &name)]));
        }
    }
    Value::Object(object)
}

fn template_job<'t>(
    state: &TemplateState,
    templates: &'t HashMap<String, Value>,
) -> Option<&'t Value> {
    let definition = templates.get(state.module_or_template_id.as_deref()?)?;
    let jobs = definition
        .get("stages")?
        .as_array()?
        .iter()
        .filter_map(|stage| stage.get("jobs").and_then(Value::as_array))
        .flatten();
    let mut jobs = jobs.collect::<Vec<_>>().into_iter();
    match state.job_id.as_deref().filter(|id| !id.is_empty()) {
        Some(job_id) => {
            jobs.find(|job| job.get("identifier").and_then(Value::as_str) == Some(job_id))
        }
        None => {
            let name = state
                .job_name
                .as_deref()
                .or(state.module_or_template_name.as_deref())?;
            jobs.find(|job| job.get("name").and_then(Value::as_str) == Some(name))
        }
    }
}

/// The step of a task without a template job: a script from `parameters.script` (or the shell
/// plugin's input key), else a notice. Task names reach the script only as environment values.
fn task_step(key: &str, state: &TemplateState, name: &str) -> Value {
    let method = state.dsl_method.clone().unwrap_or_default();
    let business_type = match method.to_ascii_lowercase().as_str() {
        "buildjob" | "build" => "Build",
        "codecheck" | "check" => "Gate",
        "deploy" | "deployjob" => "Deploy",
        "test" | "apitest" | "testjob" => "Test",
        _ => "Normal",
    };
    let given = state.parameters.as_ref().and_then(|parameters| {
        ["script", SHELL_INPUT]
            .iter()
            .find_map(|field| parameters.get(*field).and_then(Value::as_str))
            .map(str::to_owned)
    });
    let script = given.unwrap_or_else(|| {
        [
            "echo \"Task ${V3_TASK_NAME}: the CodeArts job ${V3_TASK_MODULE} (${V3_TASK_METHOD}) has no equivalent on this server; nothing was run.\"",
            "echo \"Edit job ${V3_TASK_NAME} of this pipeline and put its commands in this shell step.\"",
        ]
        .join("\n")
    });
    // `$` is dropped from these values: step env values are templates (`${…}`, `${{ … }}`).
    let plain = |text: &str| text.replace('$', "");
    let module = state
        .module_or_template_name
        .clone()
        .or_else(|| state.module_or_template_id.clone())
        .unwrap_or_else(|| "unknown".to_owned());
    json!({
        "name": name,
        "task": SHELL_TASK,
        "sequence": 0,
        "business_type": business_type,
        "runtime_attribution": "agent",
        "inputs": [{"key": SHELL_INPUT, "value": script}],
        "env": [
            {"key": "V3_TASK_NAME", "value": plain(key)},
            {"key": "V3_TASK_MODULE", "value": plain(&module)},
            {"key": "V3_TASK_METHOD", "value": plain(&method)},
        ],
    })
}

/// A display name: the given one trimmed to 128 characters, else the state key.
fn display(given: Option<&str>, key: &str) -> String {
    let name = given
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(key);
    name.chars().take(128).collect()
}

/// An identifier from a state key: `[A-Za-z0-9_-]`, at most 64 characters, unique in `taken`.
fn identifier(key: &str, fallback: &str, taken: &mut HashSet<String>) -> String {
    let mut base: String = key
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if base.is_empty() {
        base = fallback.to_owned();
    }
    let mut candidate = base.clone();
    let mut counter = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{base}-{counter}");
        counter += 1;
    }
    candidate
}

/// `flow` and `states` of a stored definition (§2.3, §2.4).
pub(crate) fn to_v3(template_id: &str, definition: &str) -> (Value, Value) {
    let parsed: Value = serde_json::from_str(definition).unwrap_or_else(|_| json!({}));
    let mut stages: Vec<&Value> = parsed
        .get("stages")
        .and_then(Value::as_array)
        .map(|stages| stages.iter().collect())
        .unwrap_or_default();
    stages.sort_by_key(|stage| {
        stage
            .get("sequence")
            .and_then(sequence_of)
            .unwrap_or(i64::MAX)
    });
    let mut flow = Map::new();
    let mut states = Map::new();
    states.insert(
        "initial".to_owned(),
        stage_state(
            "initial",
            "Initial",
            "initial",
            "parallel",
            json!({"display": "hidden"}),
        ),
    );
    let stage_keys: Vec<String> = (1..=stages.len()).map(|n| format!("state_{n}")).collect();
    flow.insert(
        "initial".to_owned(),
        json!({stage_keys.first().map_or("final", String::as_str): "always"}),
    );
    let mut task_number = 0;
    for (index, stage) in stages.iter().enumerate() {
        let key = &stage_keys[index];
        let jobs: Vec<&Value> = stage
            .get("jobs")
            .and_then(Value::as_array)
            .map(|jobs| jobs.iter().collect())
            .unwrap_or_default();
        let identifiers: Vec<&str> = jobs
            .iter()
            .map(|job| job.get("identifier").and_then(Value::as_str).unwrap_or(""))
            .collect();
        let needs = |job: &Value| -> Vec<String> {
            job.get("depends_on")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let serial = jobs.len() > 1
            && jobs.iter().enumerate().all(|(position, job)| {
                let depends = needs(job);
                match position {
                    0 => depends.is_empty(),
                    _ => depends == [identifiers[position - 1].to_owned()],
                }
            });
        let task_keys: Vec<String> = jobs
            .iter()
            .map(|_| {
                task_number += 1;
                format!("Task_{task_number}")
            })
            .collect();
        let mut next = Map::new();
        for (position, job) in jobs.iter().enumerate() {
            let depends = needs(job);
            if serial || depends.is_empty() {
                next.insert(task_keys[position].clone(), json!("always"));
            }
            if !serial {
                let mut task_next = Map::new();
                for (other, other_job) in jobs.iter().enumerate() {
                    if needs(other_job)
                        .iter()
                        .any(|id| id == identifiers[position])
                    {
                        task_next.insert(task_keys[other].clone(), json!("always"));
                    }
                }
                if !task_next.is_empty() {
                    flow.insert(task_keys[position].clone(), Value::Object(task_next));
                }
            }
            states.insert(
                task_keys[position].clone(),
                task_state(&task_keys[position], template_id, job),
            );
        }
        next.insert(
            stage_keys
                .get(index + 1)
                .cloned()
                .unwrap_or_else(|| "final".to_owned()),
            json!("always"),
        );
        flow.insert(key.clone(), Value::Object(next));
        let name = stage.get("name").and_then(Value::as_str).unwrap_or(key);
        let is_deploy = jobs
            .iter()
            .any(|job| steps_of(job).any(|step| business_type(step) == "Deploy"));
        states.insert(
            key.clone(),
            stage_state(
                key,
                name,
                if is_deploy { "release" } else { "build" },
                if serial { "serial" } else { "parallel" },
                Value::Null,
            ),
        );
    }
    states.insert(
        "final".to_owned(),
        stage_state("final", "Final", "final", "parallel", Value::Null),
    );
    (Value::Object(flow), Value::Object(states))
}

fn sequence_of(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

fn steps_of(job: &Value) -> impl Iterator<Item = &Value> {
    job.get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn business_type(step: &Value) -> &str {
    step.get("business_type")
        .and_then(Value::as_str)
        .unwrap_or("Normal")
}

fn stage_state(key: &str, name: &str, method: &str, mode: &str, parameters: Value) -> Value {
    json!({
        "type": "stage", "name": key, "module_or_template_id": null, "module_or_template_name": null,
        "display_name": name, "dsl_method": method, "parameters": parameters, "params": null,
        "is_manual_execution": false, "execution_mode": mode, "job_parameter_validate": false,
        "is_show_codehub_url": false, "is_execute": true, "job_id": null, "job_name": null, "project_id": null,
    })
}

fn task_state(key: &str, template_id: &str, job: &Value) -> Value {
    let name = job.get("name").and_then(Value::as_str).unwrap_or(key);
    let identifier = job.get("identifier").and_then(Value::as_str).unwrap_or("");
    let method = match steps_of(job).next().map(business_type).unwrap_or("Normal") {
        "Build" => "buildJob",
        "Gate" | "Check" => "codeCheck",
        "Test" => "apiTest",
        "Deploy" => "deploy",
        _ => "shell",
    };
    let never = job
        .get("strategy")
        .and_then(|strategy| strategy.get("select_strategy"))
        .and_then(Value::as_str)
        == Some("never");
    json!({
        "type": "task", "name": key, "module_or_template_id": template_id, "module_or_template_name": name,
        "display_name": name, "dsl_method": method, "parameters": {}, "params": null,
        "is_manual_execution": never, "execution_mode": null, "job_parameter_validate": true,
        "is_show_codehub_url": false, "is_execute": true, "job_id": identifier, "job_name": name, "project_id": "",
    })
}

#[cfg(test)]
mod tests;
