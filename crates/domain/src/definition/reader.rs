//! A tolerant field reader over JSON objects that records a diagnostic for every wrong field
//! instead of stopping at the first, accepts numbers and booleans written as strings, and keeps
//! the fields it did not read (unknown fields are preserved verbatim).

use crate::diagnostic::{Diagnostic, DiagnosticCode, path_index, path_join};
use serde_json::{Map, Value};

pub(crate) struct ObjectReader<'a> {
    map: &'a Map<String, Value>,
    path: String,
    read: Vec<&'static str>,
}

impl<'a> ObjectReader<'a> {
    /// Starts reading `value` at `path`; a non-object gets a diagnostic and reads as empty.
    pub(crate) fn new(
        value: &'a Value,
        path: &str,
        what: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self {
                map,
                path: path.to_owned(),
                read: Vec::new(),
            }),
            other => {
                diagnostics.push(Diagnostic::new(
                    DiagnosticCode::InvalidValue,
                    path,
                    format!("{what} must be an object, found {}", type_name(other)),
                ));
                None
            }
        }
    }

    pub(crate) fn field_path(&self, key: &str) -> String {
        path_join(&self.path, key)
    }

    /// The raw value of `key`, treating JSON `null` as absent.
    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        matches!(self.map.get(key), Some(value) if !value.is_null())
    }

    /// A string; numbers and booleans are accepted and rendered as text.
    pub(crate) fn string(
        &mut self,
        key: &'static str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<String> {
        let path = self.field_path(key);
        match self.value(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            other => {
                diagnostics.push(wrong_type(&path, "a string", other));
                None
            }
        }
    }

    /// An integer; a string holding an integer is accepted (`"sequence": "0"`); `""` reads as absent.
    pub(crate) fn integer(
        &mut self,
        key: &'static str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<i64> {
        let path = self.field_path(key);
        match self.value(key)? {
            Value::Number(number) => match number.as_i64() {
                Some(value) => Some(value),
                None => {
                    diagnostics.push(Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        path,
                        format!("expected an integer, found {number}"),
                    ));
                    None
                }
            },
            Value::String(text) if text.trim().is_empty() => None,
            Value::String(text) => match text.trim().parse::<i64>() {
                Ok(value) => Some(value),
                Err(_) => {
                    diagnostics.push(Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        path,
                        format!("expected an integer, found \"{text}\""),
                    ));
                    None
                }
            },
            other => {
                diagnostics.push(wrong_type(&path, "an integer", other));
                None
            }
        }
    }

    /// A boolean; `"true"`/`"false"` (any case), `1`/`0` and `""` (absent) are accepted.
    pub(crate) fn boolean(
        &mut self,
        key: &'static str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<bool> {
        let path = self.field_path(key);
        match self.value(key)? {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) if number.as_i64() == Some(0) => Some(false),
            Value::Number(number) if number.as_i64() == Some(1) => Some(true),
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "" => None,
                "true" => Some(true),
                "false" => Some(false),
                _ => {
                    diagnostics.push(Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        path,
                        format!("expected true or false, found \"{text}\""),
                    ));
                    None
                }
            },
            other => {
                diagnostics.push(wrong_type(&path, "a boolean", other));
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a one-element list.
    pub(crate) fn string_list(
        &mut self,
        key: &'static str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Vec<String> {
        let path = self.field_path(key);
        match self.value(key) {
            None => Vec::new(),
            Some(Value::String(text)) => vec![text.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| match item {
                    Value::String(text) => Some(text.clone()),
                    other => {
                        diagnostics.push(wrong_type(&path_index(&path, index), "a string", other));
                        None
                    }
                })
                .collect(),
            Some(other) => {
                diagnostics.push(wrong_type(&path, "a list of strings", other));
                Vec::new()
            }
        }
    }

    /// An array; absent reads as empty.
    pub(crate) fn array(
        &mut self,
        key: &'static str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> &'a [Value] {
        let path = self.field_path(key);
        match self.value(key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                diagnostics.push(wrong_type(&path, "a list", other));
                &[]
            }
        }
    }

    /// The fields this reader never asked for, kept verbatim.
    pub(crate) fn unread(&self) -> Map<String, Value> {
        self.map
            .iter()
            .filter(|(key, _)| !self.read.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

pub(crate) fn wrong_type(path: &str, expected: &str, found: &Value) -> Diagnostic {
    Diagnostic::new(
        DiagnosticCode::InvalidValue,
        path,
        format!("expected {expected}, found {}", type_name(found)),
    )
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
