//! Compiling steps: identifiers, input templates, env entries, and the plugin-specific action.

use super::{Compiler, IdentifierKind};
use crate::definition::RawStep;
use crate::definition::yaml::{SHELL_SCRIPT_INPUT, SHELL_TASK};
use crate::diagnostic::{DiagnosticCode, path_join};
use crate::expr::{Template, parse_template};
use crate::params::check_variable_name;
use crate::spec::{
    CheckpointSpec, ReviewStrategy, ReviewTimeoutAction, StepAction, StepInput, StepSpec,
};
use base64::Engine as _;
use serde_json::Value;
use std::time::Duration;

/// The manual review plugin.
pub const CHECKPOINT_TASK: &str = "official_devcloud_checkpoint";
/// The delay plugin.
pub const DELAY_TASK: &str = "official_devcloud_delay";
/// Prefix marking a base64-encoded shell script (spec §11.7).
const DECODE_PREFIX: &str = "(decode)";
/// A review without a timeout waits this long (CodeArts default: 1 hour).
const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest review or delay accepted.
const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

pub(super) fn compile_step(
    compiler: &mut Compiler,
    raw: &RawStep,
    job_identifier: &str,
    index: usize,
) -> StepSpec {
    let task = match raw.task.as_deref().map(str::trim) {
        Some(task) if !task.is_empty() => task.to_owned(),
        _ => {
            compiler.push(
                DiagnosticCode::Missing,
                path_join(&raw.path, "task"),
                "a step needs a `task` (or `run:` in YAML)",
            );
            String::new()
        }
    };
    let name = raw
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| task.clone());
    let fallback = format!("{job_identifier}-step-{index}");
    let identifier = compiler.identifier(
        IdentifierKind::Step,
        raw.identifier.as_deref(),
        "",
        &fallback,
        &raw.path,
    );

    let inputs: Vec<StepInput> = raw
        .inputs
        .iter()
        .map(|input| {
            let template = match &input.value {
                Value::String(_) if input.key == SHELL_SCRIPT_INPUT && task == SHELL_TASK => None,
                Value::String(text) => template_or_report(compiler, text, &input.path),
                _ => None,
            };
            StepInput {
                key: input.key.clone(),
                value: input.value.clone(),
                template,
            }
        })
        .collect();

    let env = raw
        .env
        .iter()
        .filter_map(|entry| {
            if let Err(reason) = check_variable_name(&entry.key) {
                compiler.push(
                    DiagnosticCode::InvalidValue,
                    entry.path.clone(),
                    format!("env `{}`: {reason}", entry.key),
                );
                return None;
            }
            let text = scalar_text(&entry.value);
            template_or_report(compiler, &text, &entry.path)
                .map(|template| (entry.key.clone(), template))
        })
        .collect();

    let action = match task.as_str() {
        SHELL_TASK => shell_action(compiler, raw),
        CHECKPOINT_TASK => StepAction::Checkpoint(checkpoint(compiler, raw)),
        DELAY_TASK => StepAction::Delay {
            duration: delay(compiler, raw),
        },
        _ => StepAction::Plugin,
    };

    StepSpec {
        identifier,
        name,
        task,
        sequence: raw.sequence.unwrap_or(index as i64),
        enabled: raw.enable,
        business_type: raw.business_type.clone(),
        action,
        inputs,
        env,
    }
}

fn template_or_report(compiler: &mut Compiler, text: &str, path: &str) -> Option<Template> {
    match parse_template(text) {
        Ok(template) => Some(template),
        Err(err) => {
            compiler.push(
                DiagnosticCode::BadExpression,
                path,
                format!("bad expression: {err}"),
            );
            None
        }
    }
}

fn shell_action(compiler: &mut Compiler, raw: &RawStep) -> StepAction {
    let Some(input) = raw
        .inputs
        .iter()
        .find(|input| input.key == SHELL_SCRIPT_INPUT)
    else {
        compiler.push(
            DiagnosticCode::Missing,
            path_join(&raw.path, "inputs"),
            format!("a shell step needs the input `{SHELL_SCRIPT_INPUT}` with its script"),
        );
        return StepAction::Plugin;
    };
    let text = match &input.value {
        Value::String(text) => text.clone(),
        other => {
            compiler.push(
                DiagnosticCode::InvalidValue,
                input.path.clone(),
                "the shell script must be a string",
            );
            scalar_text(other)
        }
    };
    let script = match text.strip_prefix(DECODE_PREFIX) {
        None => text,
        Some(encoded) => match decode_base64(encoded) {
            Some(decoded) => decoded,
            None => {
                compiler.push(
                    DiagnosticCode::InvalidValue,
                    input.path.clone(),
                    "a `(decode)` script must be valid base64 of UTF-8 text",
                );
                String::new()
            }
        },
    };
    match template_or_report(compiler, &script, &input.path) {
        Some(script) => StepAction::Shell { script },
        None => StepAction::Plugin,
    }
}

fn decode_base64(encoded: &str) -> Option<String> {
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.as_bytes()))
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn input<'a>(raw: &'a RawStep, key: &str) -> Option<&'a crate::definition::RawInput> {
    raw.inputs.iter().find(|input| input.key == key)
}

fn input_text(raw: &RawStep, key: &str) -> Option<String> {
    input(raw, key)
        .map(|input| scalar_text(&input.value))
        .filter(|text| !text.trim().is_empty())
}

fn checkpoint(compiler: &mut Compiler, raw: &RawStep) -> CheckpointSpec {
    let approvers: Vec<String> = match input(raw, "approvers").map(|input| &input.value) {
        Some(Value::Array(items)) => items
            .iter()
            .map(scalar_text)
            .filter(|text| !text.is_empty())
            .collect(),
        Some(value) => scalar_text(value)
            .split(',')
            .map(str::trim)
            .filter(|approver| !approver.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let audit_source = input_text(raw, "audit_source").unwrap_or_else(|| "members".to_owned());
    let audit_role = input_text(raw, "audit_role");
    if approvers.is_empty() && audit_role.is_none() {
        compiler.push(
            DiagnosticCode::Missing,
            path_join(&raw.path, "inputs"),
            "a manual review needs `approvers` (comma-separated user ids) or an `audit_role`",
        );
    }
    let strategy = match input_text(raw, "check_strategy")
        .map(|text| text.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("all") => ReviewStrategy::All,
        Some("any") | Some("one") => ReviewStrategy::Any,
        Some(other) => {
            compiler.push(
                DiagnosticCode::OutOfRange,
                path_join(&raw.path, "inputs"),
                format!("check_strategy must be all or any, not `{other}`"),
            );
            ReviewStrategy::All
        }
    };
    let timeout_action = match input_text(raw, "timeout_strategy")
        .map(|text| text.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("reject") | Some("refuse") => ReviewTimeoutAction::Reject,
        Some("pass") | Some("accept") => ReviewTimeoutAction::Pass,
        Some(other) => {
            compiler.push(
                DiagnosticCode::OutOfRange,
                path_join(&raw.path, "inputs"),
                format!("timeout_strategy must be reject or pass, not `{other}`"),
            );
            ReviewTimeoutAction::Reject
        }
    };
    let timeout = wait_duration(compiler, raw, &["timeout"], DEFAULT_REVIEW_TIMEOUT);
    CheckpointSpec {
        audit_source,
        approvers,
        audit_role,
        strategy,
        timeout,
        timeout_action,
        comment: input_text(raw, "comment").unwrap_or_default(),
    }
}

fn delay(compiler: &mut Compiler, raw: &RawStep) -> Duration {
    let duration = wait_duration(
        compiler,
        raw,
        &["delay_time", "delay", "duration", "time", "timeout"],
        Duration::ZERO,
    );
    if duration.is_zero() {
        compiler.push(
            DiagnosticCode::Missing,
            path_join(&raw.path, "inputs"),
            "a delay step needs `delay_time` (seconds, or a duration like 90s, 10m, 2h)",
        );
    }
    duration
}

/// Reads the first present key as seconds (`3600`, `"3600"`) or a duration (`"90s"`, `"10m"`, `"2h"`).
fn wait_duration(
    compiler: &mut Compiler,
    raw: &RawStep,
    keys: &[&str],
    default: Duration,
) -> Duration {
    let Some(entry) = keys.iter().find_map(|key| input(raw, key)) else {
        return default;
    };
    let text = scalar_text(&entry.value);
    let text = text.trim();
    if text.is_empty() {
        return default;
    }
    match parse_wait(text) {
        Some(duration) if duration <= MAX_WAIT => duration,
        Some(_) => {
            compiler.push(
                DiagnosticCode::OutOfRange,
                entry.path.clone(),
                "a wait may be at most 30 days",
            );
            MAX_WAIT
        }
        None => {
            compiler.push(
                DiagnosticCode::InvalidValue,
                entry.path.clone(),
                format!("`{text}` is not a duration: give seconds, or a number with s, m or h"),
            );
            default
        }
    }
}

fn parse_wait(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    let amount: u64 = amount.parse().ok()?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => amount,
        "m" => amount.checked_mul(60)?,
        "h" => amount.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// How a scalar input value reads as text (strings raw, numbers and booleans printed, null empty).
pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
