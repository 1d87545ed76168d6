//! System predefined parameters (spec §12.6) and the `pipeline`/`sources` expression contexts (§12.7).

use chrono::{DateTime, Datelike, FixedOffset, Offset, Timelike, Utc};
use serde_json::{Map, Value};

use super::names::{has_name_syntax, is_dangerous_name};
use crate::time::Timestamp;

/// The predefined parameters whose names do not depend on the sources, in emission order.
pub const PREDEFINED_NAMES: &[&str] = &[
    "PROJECT_ID",
    "PIPELINE_ID",
    "PIPELINE_NAME",
    "PIPELINE_NUMBER",
    "PIPELINE_RUN_ID",
    "PIPELINE_TRIGGER_TYPE",
    "TIMESTAMP",
    "EXECUTE_USER",
    "COMMIT_ID",
    "COMMIT_ID_SHORT",
    "REPO_URL",
    "MERGE_ID",
    "WEBHOOK_PAYLOAD",
    "PASS_CONDITIONS_LINK",
];

/// Suffixes of the per-source parameters `<alias>_REPOSITORY_NAME`, …, in emission order.
pub const SOURCE_PARAMETER_SUFFIXES: &[&str] = &[
    "_REPOSITORY_NAME",
    "_SOURCE_BRANCH",
    "_TARGET_BRANCH",
    "_TAG",
    "_COMMIT_ID",
    "_COMMIT_ID_SHORT",
    "_REPO_URL",
];

/// How many characters `COMMIT_ID_SHORT` keeps.
pub const SHORT_COMMIT_CHARS: usize = 8;

/// One code source of a run, with the revision it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceInfo {
    /// The source's alias; empty when none is set (the repository name is used instead).
    pub alias: String,
    pub repo_name: String,
    /// HTTPS clone URL.
    pub repo_url: String,
    pub commit_id: String,
    pub commit_message: String,
    pub source_branch: String,
    pub target_branch: String,
    pub tag: String,
    pub merge_id: String,
    /// `git_type`: codehub, gitee, github, gitcode, gitlab.
    pub repo_type: String,
}

/// What a run knows about itself when it starts: the input of every predefined parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunContextInfo {
    pub project_id: String,
    pub pipeline_id: String,
    pub pipeline_name: String,
    pub run_number: u64,
    pub run_id: String,
    /// A trigger type of spec §12.3 (`Manual`, `Push`, …).
    pub trigger_type: String,
    pub started_at: Timestamp,
    /// The offset `TIMESTAMP` is shown in (e.g. 480 for UTC+8).
    pub utc_offset_minutes: i32,
    pub execute_user: String,
    pub sources: Vec<SourceInfo>,
    pub merge_id: String,
    /// The raw webhook body, for webhook-triggered runs.
    pub webhook_payload: Option<String>,
    /// Link to the run detail page (`PASS_CONDITIONS_LINK`).
    pub run_link: String,
}

/// The system predefined parameters of a run, in a stable order: the fixed ones of
/// [`PREDEFINED_NAMES`] (`WEBHOOK_PAYLOAD` only when there is a payload; `COMMIT_ID`,
/// `COMMIT_ID_SHORT` and `REPO_URL` from the first source, empty without sources), then the
/// seven `<alias>_…` parameters of each source.
///
/// `<alias>` is [`source_key`]: the alias, or the repository name without one, made into a valid
/// name. A later source with the same key as an earlier one gets no parameters of its own, and a
/// source whose parameter names would be refused for security (an alias such as `LD` or
/// `RUNNEL`, see [`super::check_variable_name`]) gets none either; both still appear in
/// [`sources_context`].
pub fn predefined_parameters(info: &RunContextInfo) -> Vec<(String, String)> {
    let first_source = info.sources.first();
    let from_first = |field: fn(&SourceInfo) -> String| first_source.map(field).unwrap_or_default();
    let mut parameters: Vec<(String, String)> = Vec::new();
    let mut push = |name: &str, value: String| parameters.push((name.to_owned(), value));
    push("PROJECT_ID", info.project_id.clone());
    push("PIPELINE_ID", info.pipeline_id.clone());
    push("PIPELINE_NAME", info.pipeline_name.clone());
    push("PIPELINE_NUMBER", info.run_number.to_string());
    push("PIPELINE_RUN_ID", info.run_id.clone());
    push("PIPELINE_TRIGGER_TYPE", info.trigger_type.clone());
    push(
        "TIMESTAMP",
        format_timestamp(info.started_at, info.utc_offset_minutes),
    );
    push("EXECUTE_USER", info.execute_user.clone());
    push("COMMIT_ID", from_first(|source| source.commit_id.clone()));
    push(
        "COMMIT_ID_SHORT",
        from_first(|source| short_commit(&source.commit_id)),
    );
    push("REPO_URL", from_first(|source| source.repo_url.clone()));
    push("MERGE_ID", info.merge_id.clone());
    if let Some(payload) = &info.webhook_payload {
        push("WEBHOOK_PAYLOAD", payload.clone());
    }
    push("PASS_CONDITIONS_LINK", info.run_link.clone());

    for (key, source) in keyed_sources(&info.sources) {
        let values = [
            source.repo_name.clone(),
            source.source_branch.clone(),
            source.target_branch.clone(),
            source.tag.clone(),
            source.commit_id.clone(),
            short_commit(&source.commit_id),
            source.repo_url.clone(),
        ];
        let names = source_parameter_names(&key);
        if names.iter().any(|name| is_dangerous_name(name)) {
            continue;
        }
        parameters.extend(names.into_iter().zip(values));
    }
    parameters
}

/// True for a fixed predefined name and for any `<alias>_REPOSITORY_NAME`-style name (with a
/// non-empty alias); ignores ASCII case.
///
/// Note the suffix forms include ordinary names such as `IMAGE_TAG`: this answers "could this be
/// a predefined parameter", not "is this name reserved" (see [`super::check_variable_name`]).
pub fn is_predefined_name(name: &str) -> bool {
    if PREDEFINED_NAMES
        .iter()
        .any(|predefined| predefined.eq_ignore_ascii_case(name))
    {
        return true;
    }
    SOURCE_PARAMETER_SUFFIXES.iter().any(|suffix| {
        name.len() > suffix.len() && {
            let split = name.len() - suffix.len();
            name.is_char_boundary(split) && name[split..].eq_ignore_ascii_case(suffix)
        }
    })
}

/// The names of the seven per-source parameters for a source key (see [`source_key`]).
pub fn source_parameter_names(key: &str) -> Vec<String> {
    SOURCE_PARAMETER_SUFFIXES
        .iter()
        .map(|suffix| format!("{key}{suffix}"))
        .collect()
}

/// The name a source goes by in `<alias>_…` parameters and in `sources.<alias>`: its alias, or
/// its repository name without one, with every character outside `[A-Za-z0-9_]` replaced by `_`
/// and a leading `_` when it would start with a digit. `None` when both are empty.
pub fn source_key(source: &SourceInfo) -> Option<String> {
    let raw = if source.alias.trim().is_empty() {
        source.repo_name.trim()
    } else {
        source.alias.trim()
    };
    if raw.is_empty() {
        return None;
    }
    let mut key: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !has_name_syntax(&key) {
        key.insert(0, '_');
    }
    Some(key)
}

/// The `pipeline` expression context: `project_id`, `pipeline_id`, `run_number` (a string),
/// `timestamp`, `trigger_type`, `run_id` — the values of the matching predefined parameters.
pub fn pipeline_context(info: &RunContextInfo) -> Value {
    let mut context = Map::new();
    let mut insert =
        |key: &str, value: String| context.insert(key.to_owned(), Value::String(value));
    insert("project_id", info.project_id.clone());
    insert("pipeline_id", info.pipeline_id.clone());
    insert("run_number", info.run_number.to_string());
    insert(
        "timestamp",
        format_timestamp(info.started_at, info.utc_offset_minutes),
    );
    insert("trigger_type", info.trigger_type.clone());
    insert("run_id", info.run_id.clone());
    Value::Object(context)
}

/// The `sources` expression context: `sources.<key>.{repo_name, commit_id, commit_id_short,
/// commit_message, repo_url, repo_type, source_branch, target_branch, tag, merge_id}`, keyed by
/// [`source_key`] (the first source wins a shared key).
pub fn sources_context(info: &RunContextInfo) -> Value {
    let mut context = Map::new();
    for (key, source) in keyed_sources(&info.sources) {
        let attributes = [
            ("repo_name", source.repo_name.clone()),
            ("commit_id", source.commit_id.clone()),
            ("commit_id_short", short_commit(&source.commit_id)),
            ("commit_message", source.commit_message.clone()),
            ("repo_url", source.repo_url.clone()),
            ("repo_type", source.repo_type.clone()),
            ("source_branch", source.source_branch.clone()),
            ("target_branch", source.target_branch.clone()),
            ("tag", source.tag.clone()),
            ("merge_id", source.merge_id.clone()),
        ];
        let object = attributes
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value)))
            .collect();
        context.insert(key, Value::Object(object));
    }
    Value::Object(context)
}

/// `started_at` as `yyyyMMddHHmmss` in the given offset from UTC.
///
/// An offset of a day or more is treated as UTC; an instant chrono cannot represent (hundreds
/// of thousands of years away) gives an empty string.
pub fn format_timestamp(at: Timestamp, utc_offset_minutes: i32) -> String {
    let offset = utc_offset_minutes
        .checked_mul(60)
        .and_then(FixedOffset::east_opt)
        .unwrap_or_else(|| Utc.fix());
    let Some(utc) = DateTime::from_timestamp_millis(at.as_millis()) else {
        return String::new();
    };
    let local = utc.with_timezone(&offset);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    )
}

/// The first `SHORT_COMMIT_CHARS` characters of a commit id.
fn short_commit(commit_id: &str) -> String {
    commit_id.chars().take(SHORT_COMMIT_CHARS).collect()
}

/// Sources with their keys, skipping sources without one and later sources sharing a key.
fn keyed_sources(sources: &[SourceInfo]) -> Vec<(String, &SourceInfo)> {
    let mut keyed: Vec<(String, &SourceInfo)> = Vec::new();
    for source in sources {
        let Some(key) = source_key(source) else {
            continue;
        };
        if !keyed.iter().any(|(seen, _)| seen == &key) {
            keyed.push((key, source));
        }
    }
    keyed
}
