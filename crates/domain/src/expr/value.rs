//! Runtime values of expressions: truthiness, coercion to numbers, equality, ordering and display.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value an expression evaluates to, or a context hands in.
///
/// Objects use a `BTreeMap`, so object filters (`jobs.*`) and JSON rendering
/// visit members in key order, independent of the input's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// `null`, `false`, `0`, `-0`, `NaN` and `''` are falsy; everything else is truthy,
    /// including empty arrays and objects.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(flag) => *flag,
            Value::Number(number) => *number != 0.0 && !number.is_nan(),
            Value::String(text) => !text.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// How the value appears inside a rendered template.
    ///
    /// Strings are raw (no quotes), integral numbers have no `.0`, `null` is empty,
    /// arrays and objects are compact JSON.
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(flag) => flag.to_string(),
            Value::Number(number) => format_number(*number),
            Value::String(text) => text.clone(),
            Value::Array(_) | Value::Object(_) => {
                let mut out = String::new();
                write_json(self, &mut out);
                out
            }
        }
    }

    /// The number a value converts to when compared with a value of another type.
    ///
    /// `null` → 0, `false`/`true` → 0/1, strings → their numeric value
    /// (see [`parse_number_text`]) or NaN, arrays and objects → NaN.
    pub(crate) fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(flag) => f64::from(u8::from(*flag)),
            Value::Number(number) => *number,
            Value::String(text) => parse_number_text(text).unwrap_or(f64::NAN),
            Value::Array(_) | Value::Object(_) => f64::NAN,
        }
    }

    /// Whether this value is an array or an object.
    pub(crate) fn is_collection(&self) -> bool {
        matches!(self, Value::Array(_) | Value::Object(_))
    }
}

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(flag),
            // Without `arbitrary_precision` every JSON number has an f64 form.
            serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(text) => Value::String(text),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(key, value)| (key, Value::from(value)))
                    .collect(),
            ),
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl From<f64> for Value {
    fn from(number: f64) -> Self {
        Value::Number(number)
    }
}

/// `==` of the expression language.
///
/// Same types compare directly (strings case-sensitively, numbers by IEEE rules so NaN
/// equals nothing, arrays and objects member by member with this same rule). Different
/// types are both converted with [`Value::to_number`] and compared as numbers.
pub(crate) fn loose_equals(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(left), Value::Bool(right)) => left == right,
        (Value::Number(left), Value::Number(right)) => left == right,
        (Value::String(left), Value::String(right)) => left == right,
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| loose_equals(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|((left_key, left), (right_key, right))| {
                        left_key == right_key && loose_equals(left, right)
                    })
        }
        _ => left.to_number() == right.to_number(),
    }
}

/// Ordering for `<`, `<=`, `>`, `>=`: numbers numerically, strings by bytes
/// (case-sensitive). Any other pair, or a NaN, is unordered and every comparison is false.
pub(crate) fn ordering(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => left.partial_cmp(right),
        (Value::String(left), Value::String(right)) => Some(left.as_str().cmp(right.as_str())),
        _ => None,
    }
}

/// Parses the numeric value of a string for comparisons: surrounding whitespace is ignored,
/// blank text is 0, `0x…` is hexadecimal, otherwise a decimal with optional sign, fraction
/// and exponent. Words like `inf` or `NaN` are not numbers.
pub(crate) fn parse_number_text(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Some(0.0);
    }
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let magnitude = if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        parse_hex(hex)?
    } else {
        let is_decimal_text = unsigned.bytes().any(|byte| byte.is_ascii_digit())
            && unsigned
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
            && unsigned
                .bytes()
                .next()
                .is_some_and(|byte| byte.is_ascii_digit() || byte == b'.');
        if !is_decimal_text {
            return None;
        }
        unsigned.parse::<f64>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Parses hexadecimal digits (no prefix) into a number; `None` when empty or not hex.
pub(crate) fn parse_hex(digits: &str) -> Option<f64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0.0_f64, |total, digit| {
        Some(total * 16.0 + f64::from(digit.to_digit(16)?))
    })
}

/// Renders a number the way templates show it: `1` not `1.0`, `0` for negative zero,
/// and JavaScript's `NaN`/`Infinity` spellings for the non-finite values.
pub(crate) fn format_number(number: f64) -> String {
    if number.is_nan() {
        "NaN".to_owned()
    } else if number.is_infinite() {
        if number > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        }
    } else if number == 0.0 {
        "0".to_owned()
    } else {
        // Rust's `Display` for f64 is the shortest text that parses back to the same value,
        // and never uses an exponent or a trailing `.0`.
        number.to_string()
    }
}

/// Writes compact JSON; non-finite numbers become `null` as JSON has no spelling for them.
fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) if number.is_finite() => out.push_str(&format_number(*number)),
        Value::Number(_) => out.push_str("null"),
        Value::String(text) => write_json_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (position, (key, member)) in members.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_json(member, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}
