//! Custom variable definitions (`CustomVariable`, spec §13) and their validation.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::auto_increment::next_auto_increment;
use super::fields::{
    first_present, quoted_excerpt, read_bool, read_integer, read_string, read_string_list,
    scalar_to_string,
};
use super::names::name_problem;
use crate::diagnostic::{Diagnostic, DiagnosticCode, path_index, path_join};

/// At most this many custom variables per pipeline (spec §12.5).
pub const MAX_VARIABLES: usize = 100;
/// The longest value (default or run-time), in characters.
pub const MAX_VALUE_CHARS: usize = 8192;
/// The longest enum option, in characters.
pub const MAX_LIMIT_CHARS: usize = 1024;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// The largest accepted `sequence` (display order).
pub const MAX_SEQUENCE: i64 = 2_147_483_647;

/// The kind of a custom variable (spec §12.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VariableType {
    /// Free text.
    #[default]
    String,
    /// One of the variable's `limits`.
    Enum,
    /// A version-like value whose last number grows by one per run.
    AutoIncrement,
}

/// One custom variable of a pipeline, as defined (not as resolved for a run).
///
/// Values built by [`parse_variables`] satisfy every rule listed there; values built by hand are
/// re-checked where it matters for safety (names in [`super::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariableSpec {
    pub name: String,
    pub var_type: VariableType,
    /// The default value (for autoIncrement: the value to use when never run or after a reset).
    pub value: String,
    /// Masked in responses and logs (S2).
    pub is_secret: bool,
    /// May be given a value when a run starts (spec §5.1).
    pub is_runtime: bool,
    /// Enum options.
    pub limits: Vec<String>,
    pub description: String,
    /// Display order, from 1.
    pub sequence: Option<i64>,
    /// autoIncrement only: the user edited `value`, so the next run uses it as-is.
    pub is_reset: bool,
    /// autoIncrement only: the value the last run used.
    pub latest_value: Option<String>,
}

/// Parses custom variables and checks every rule, pushing one [`Diagnostic`] per problem
/// (all problems, not just the first) and returning the variables that are valid.
///
/// `input` is either
/// * a JSON array of `CustomVariable` objects (v5 field names; booleans may be given as
///   `"true"`/`1`, integers as strings, `value` as a number; v3 `param_type`/`paramtype` and
///   `is_static` are understood), or
/// * the YAML convenience form: an object mapping `NAME` to a scalar default or to an object
///   with the `CustomVariable` fields except `name`.
///
/// Null means "no variables". Paths in diagnostics start at `path`: `variables[2].limits` for the
/// array form, `variables.VERSION.limits` for the map form. Messages never quote a value (S2).
///
/// Rules: a valid, allowed name (see [`super::check_variable_name`]) used once; a known type
/// (`string`/`enum`/`autoIncrement`, or v3 `normalparam`/`enumparam`/`growthparam`); value and
/// `latest_value` ≤ 8192 characters without NUL; description ≤ 1024; `sequence` in
/// 0..=2147483647; enum: at least one option, each ≤ 1024, and a non-empty default among them
/// (`OutOfRange`); autoIncrement: the value (and `latest_value`, when set) must contain a number
/// that can be incremented; at most 100 variables (`TooLarge`).
pub fn parse_variables(
    input: &Value,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<VariableSpec> {
    let entries: Vec<Entry<'_>> = match input {
        Value::Null => return Vec::new(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, body)| Entry {
                path: path_index(path, index),
                key: None,
                body,
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(key, body)| Entry {
                path: path_join(path, key),
                key: Some(key),
                body,
            })
            .collect(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                path,
                "variables must be an array of variable objects or a map of NAME to default value",
            ));
            return Vec::new();
        }
    };
    if entries.len() > MAX_VARIABLES {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::TooLarge,
            path,
            format!(
                "a pipeline may have at most {MAX_VARIABLES} custom variables, this one has {}",
                entries.len()
            ),
        ));
    }

    let mut first_use: HashMap<String, String> = HashMap::new();
    let mut valid = Vec::new();
    for entry in &entries {
        let before = diagnostics.len();
        let Some(variable) = parse_entry(entry, diagnostics) else {
            continue;
        };
        if !variable.name.is_empty() {
            if let Some(first_path) = first_use.get(&variable.name) {
                diagnostics.push(Diagnostic::new(
                    DiagnosticCode::Duplicate,
                    entry.name_path(),
                    format!(
                        "variable {} is already defined at {first_path}",
                        quoted_excerpt(&variable.name)
                    ),
                ));
            } else {
                first_use.insert(variable.name.clone(), entry.path.clone());
            }
        }
        if diagnostics.len() == before {
            valid.push(variable);
        }
    }
    valid
}

impl VariableType {
    /// Every type, in declaration order.
    pub const ALL: &'static [VariableType] = &[Self::String, Self::Enum, Self::AutoIncrement];

    /// The v5 wire name: `string`, `enum`, `autoIncrement`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Enum => "enum",
            Self::AutoIncrement => "autoIncrement",
        }
    }

    /// The v3 `param_type` name: `normalparam`, `enumparam`, `growthparam`.
    pub const fn v3_name(self) -> &'static str {
        match self {
            Self::String => "normalparam",
            Self::Enum => "enumparam",
            Self::AutoIncrement => "growthparam",
        }
    }

    /// Reads a v5 or v3 type name, ignoring ASCII case and surrounding blanks.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL.iter().copied().find(|kind| {
            kind.as_str().eq_ignore_ascii_case(text) || kind.v3_name().eq_ignore_ascii_case(text)
        })
    }
}

impl VariableSpec {
    /// A variable with the given name, type and default; every flag false, no options.
    pub fn new(name: impl Into<String>, var_type: VariableType, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            var_type,
            value: value.into(),
            ..Self::default()
        }
    }
}

/// One variable of the input, with where it sits.
struct Entry<'a> {
    path: String,
    /// The map key in the YAML form; `None` in the array form.
    key: Option<&'a String>,
    body: &'a Value,
}

impl Entry<'_> {
    /// Where the name is: the map key itself, or the `name` field.
    fn name_path(&self) -> String {
        match self.key {
            Some(_) => self.path.clone(),
            None => path_join(&self.path, "name"),
        }
    }
}

/// Reads and checks one variable. `None` only when the entry is not an object or scalar at all.
fn parse_entry(entry: &Entry<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<VariableSpec> {
    let path = entry.path.as_str();
    let mut variable = match (entry.key, entry.body) {
        (_, Value::Object(object)) => read_fields(object, path, diagnostics),
        (Some(_), Value::Null) => VariableSpec::default(),
        (Some(_), scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            VariableSpec {
                value: scalar_to_string(scalar).unwrap_or_default(),
                ..VariableSpec::default()
            }
        }
        (Some(_), Value::Array(_)) => {
            let message =
                "a variable must be a default value or an object with the variable's fields";
            diagnostics.push(Diagnostic::new(DiagnosticCode::InvalidValue, path, message));
            return None;
        }
        (None, _) => {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                path,
                "a variable must be an object",
            ));
            return None;
        }
    };
    if let Some(key) = entry.key {
        if !variable.name.is_empty() && variable.name != *key {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                path_join(path, "name"),
                format!(
                    "`name` is {} but the variable is listed under {}",
                    quoted_excerpt(&variable.name),
                    quoted_excerpt(key)
                ),
            ));
        }
        variable.name.clone_from(key);
    }
    if let Some(problem) = name_problem(&variable.name) {
        diagnostics.push(Diagnostic::new(
            problem.code,
            entry.name_path(),
            problem.message,
        ));
    }
    check_variable(&variable, path, diagnostics);
    Some(variable)
}

/// Reads the `CustomVariable` fields of one object; type problems are reported, the rest is
/// left to [`check_variable`].
fn read_fields(
    object: &Map<String, Value>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> VariableSpec {
    // Fields are read in wire order so that diagnostics come out in that order too.
    let name = read_string(object, "name", path, diagnostics).unwrap_or_default();
    let type_key = first_present(object, &["type", "param_type", "paramtype"]).unwrap_or("type");
    let var_type = match read_string(object, type_key, path, diagnostics) {
        None => VariableType::String,
        Some(text) if text.trim().is_empty() => VariableType::String,
        Some(text) => VariableType::parse(&text).unwrap_or_else(|| {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                path_join(path, type_key),
                format!(
                    "unknown variable type {}; expected `string`, `enum` or `autoIncrement`",
                    quoted_excerpt(&text)
                ),
            ));
            VariableType::String
        }),
    };
    let value = read_string(object, "value", path, diagnostics).unwrap_or_default();
    let is_secret = read_bool(object, "is_secret", path, diagnostics).unwrap_or(false);
    let is_runtime = match read_bool(object, "is_runtime", path, diagnostics) {
        Some(flag) => flag,
        // v3: a static parameter is one that cannot be set per run.
        None => {
            read_bool(object, "is_static", path, diagnostics).is_some_and(|is_static| !is_static)
        }
    };
    VariableSpec {
        name,
        var_type,
        value,
        is_secret,
        is_runtime,
        limits: read_string_list(object, "limits", path, diagnostics),
        description: read_string(object, "description", path, diagnostics).unwrap_or_default(),
        sequence: read_integer(object, "sequence", path, diagnostics),
        is_reset: read_bool(object, "is_reset", path, diagnostics).unwrap_or(false),
        latest_value: read_string(object, "latest_value", path, diagnostics),
    }
}

/// The rules that do not depend on the input's shape.
fn check_variable(variable: &VariableSpec, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let mut report = |code, field: &str, message: String| {
        diagnostics.push(Diagnostic::new(code, path_join(path, field), message));
    };
    if let Some((code, message)) = value_problem(&variable.value) {
        report(code, "value", message);
    }
    if let Some(latest_value) = &variable.latest_value
        && let Some((code, message)) = value_problem(latest_value)
    {
        report(code, "latest_value", message);
    }
    let description_chars = variable.description.chars().count();
    if description_chars > MAX_DESCRIPTION_CHARS {
        report(
            DiagnosticCode::TooLarge,
            "description",
            format!(
                "a description may have at most {MAX_DESCRIPTION_CHARS} characters, this one has {description_chars}"
            ),
        );
    }
    if let Some(sequence) = variable.sequence
        && !(0..=MAX_SEQUENCE).contains(&sequence)
    {
        let message = format!("`sequence` must be between 0 and {MAX_SEQUENCE}");
        report(DiagnosticCode::OutOfRange, "sequence", message);
    }
    match variable.var_type {
        VariableType::String => {}
        VariableType::Enum => check_enum(variable, &mut report),
        VariableType::AutoIncrement => {
            if let Err(err) = next_auto_increment(&variable.value) {
                report(
                    DiagnosticCode::InvalidValue,
                    "value",
                    format!("an autoIncrement value {err}"),
                );
            }
            let latest_value = variable
                .latest_value
                .as_deref()
                .filter(|latest| !latest.is_empty());
            if let Some(Err(err)) = latest_value.map(next_auto_increment) {
                report(
                    DiagnosticCode::InvalidValue,
                    "latest_value",
                    format!("the last used value {err}"),
                );
            }
        }
    }
}

fn check_enum(variable: &VariableSpec, report: &mut impl FnMut(DiagnosticCode, &str, String)) {
    if variable.limits.is_empty() {
        report(
            DiagnosticCode::Missing,
            "limits",
            "an enum variable needs at least one option in `limits`".to_owned(),
        );
        return;
    }
    for (index, option) in variable.limits.iter().enumerate() {
        let option_chars = option.chars().count();
        if option_chars > MAX_LIMIT_CHARS {
            report(
                DiagnosticCode::TooLarge,
                &path_index("limits", index),
                format!(
                    "an enum option may have at most {MAX_LIMIT_CHARS} characters, this one has {option_chars}"
                ),
            );
        }
    }
    if !variable.value.is_empty() && !variable.limits.contains(&variable.value) {
        report(
            DiagnosticCode::OutOfRange,
            "value",
            enum_mismatch_message(variable),
        );
    }
}

/// The message for a value outside an enum's options; lists the options unless they are secret.
pub(crate) fn enum_mismatch_message(variable: &VariableSpec) -> String {
    if variable.is_secret {
        return format!(
            "the value of `{}` must be one of its options",
            variable.name
        );
    }
    let options: Vec<String> = variable
        .limits
        .iter()
        .take(10)
        .map(|option| quoted_excerpt(option))
        .collect();
    let more = if variable.limits.len() > options.len() {
        ", …"
    } else {
        ""
    };
    format!(
        "the value of `{}` must be one of its options: {}{more}",
        variable.name,
        options.join(", ")
    )
}

/// Length and NUL checks shared by defaults and run-time values.
pub(crate) fn value_problem(value: &str) -> Option<(DiagnosticCode, String)> {
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Some((
            DiagnosticCode::TooLarge,
            format!("a value may have at most {MAX_VALUE_CHARS} characters, this one has {chars}"),
        ));
    }
    if value.contains('\0') {
        return Some((
            DiagnosticCode::InvalidValue,
            "a value must not contain the NUL character (it cannot be passed to a step's environment)".to_owned(),
        ));
    }
    None
}
