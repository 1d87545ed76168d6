//! Tolerant readers for JSON fields: strings, booleans and integers as CodeArts clients really send them.

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, DiagnosticCode, path_join};

/// A JSON scalar as text: strings as-is, numbers and booleans in their JSON spelling.
/// `None` for null, arrays and objects.
pub(crate) fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Reads a text field. Absent or null → `None`; numbers and booleans are accepted as text;
/// arrays and objects are reported.
pub(crate) fn read_string(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let value = object.get(key)?;
    if value.is_null() {
        return None;
    }
    let text = scalar_to_string(value);
    if text.is_none() {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::InvalidValue,
            path_join(path, key),
            format!("`{key}` must be a string"),
        ));
    }
    text
}

/// Reads a boolean field, also accepting `"true"`/`"false"` (any case), `1`/`0` and `"1"`/`"0"`.
pub(crate) fn read_bool(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<bool> {
    let value = object.get(key)?;
    let flag = match value {
        Value::Null => return None,
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(text) => match text.trim() {
            "1" => Some(true),
            "0" => Some(false),
            word if word.eq_ignore_ascii_case("true") => Some(true),
            word if word.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        },
        Value::Array(_) | Value::Object(_) => None,
    };
    if flag.is_none() {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::InvalidValue,
            path_join(path, key),
            format!("`{key}` must be a boolean (true or false)"),
        ));
    }
    flag
}

/// Reads an integer field, also accepting integral floats (`1.0`) and numeric strings (`"3"`).
pub(crate) fn read_integer(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<i64> {
    let value = object.get(key)?;
    let number = match value {
        Value::Null => return None,
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().and_then(integral_f64)),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(integral_f64))
        }
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    };
    if number.is_none() {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::InvalidValue,
            path_join(path, key),
            format!("`{key}` must be an integer"),
        ));
    }
    number
}

/// Reads a list of texts. Absent or null → empty; a lone scalar counts as a one-element list;
/// elements that are not scalars are reported at their index.
pub(crate) fn read_string_list(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let field_path = path_join(path, key);
    match object.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                let text = scalar_to_string(item);
                if text.is_none() {
                    diagnostics.push(Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        format!("{field_path}[{index}]"),
                        format!("each entry of `{key}` must be a string"),
                    ));
                }
                text
            })
            .collect(),
        Some(Value::Object(_)) => {
            diagnostics.push(Diagnostic::new(
                DiagnosticCode::InvalidValue,
                field_path,
                format!("`{key}` must be an array of strings"),
            ));
            Vec::new()
        }
        Some(scalar) => scalar_to_string(scalar).into_iter().collect(),
    }
}

/// The first of `keys` present (and not null) in `object`: for fields with several spellings.
pub(crate) fn first_present<'k>(object: &Map<String, Value>, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter()
        .copied()
        .find(|key| object.get(*key).is_some_and(|value| !value.is_null()))
}

/// Shortens user text for a message: at most 64 characters, escaped.
pub(crate) fn quoted_excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}…")
    }
}

fn integral_f64(number: f64) -> Option<i64> {
    // The range check keeps the cast exact: every integral f64 in (-2^63, 2^63) fits in an i64.
    let in_range = number.fract() == 0.0
        && number > -9.223_372_036_854_775e18
        && number < 9.223_372_036_854_775e18;
    in_range.then_some(number as i64)
}
