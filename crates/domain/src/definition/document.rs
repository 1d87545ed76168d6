//! Text → JSON value, for both input formats, with size and structure limits.

use crate::diagnostic::{Diagnostic, DiagnosticCode};
use serde_json::Value;

/// The largest pipeline file accepted, in bytes. A 100 000-step definition is refused by the
/// structural limits in `compile` well before this; this cap bounds parsing time and memory.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Nesting deeper than this is refused (JSON and YAML alike).
pub const MAX_DEPTH: usize = 64;

/// A document with more values than this (objects, lists and scalars) is refused before it is
/// read any further: the largest valid pipeline (`compile::MAX_STEPS` steps) needs far fewer,
/// and counting is cheap where reading is not.
pub const MAX_VALUES: usize = 300_000;

/// Which syntax a pipeline file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The CodeArts `definition` JSON, or a pipeline body wrapping it.
    Json,
    /// The YAML pipeline-as-code form (`docs/pipeline-yaml.md`).
    Yaml,
}

impl Format {
    /// Guesses the format from the file name, then from the first non-blank character.
    pub fn detect(file_name: Option<&str>, text: &str) -> Format {
        if let Some(name) = file_name {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".json") {
                return Format::Json;
            }
            if lower.ends_with(".yml") || lower.ends_with(".yaml") {
                return Format::Yaml;
            }
        }
        match text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .chars()
            .next()
        {
            Some('{') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Parses `text` into a JSON value. Syntax errors carry line and column.
pub fn parse_text(text: &str, format: Format) -> Result<Value, Diagnostic> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(Diagnostic::new(
            DiagnosticCode::TooLarge,
            "",
            format!(
                "the document is {} bytes; the limit is {} bytes",
                text.len(),
                MAX_DOCUMENT_BYTES
            ),
        ));
    }
    let value = match format {
        Format::Json => parse_json(text)?,
        Format::Yaml => parse_yaml(text)?,
    };
    check_shape(&value)?;
    Ok(value)
}

fn parse_json(text: &str) -> Result<Value, Diagnostic> {
    // serde_json refuses nesting deeper than 128 with an error, so hostile depth cannot overflow the stack.
    serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}')).map_err(|err| {
        if err.to_string().contains("recursion limit exceeded") {
            return Diagnostic::new(
                DiagnosticCode::TooLarge,
                "",
                format!("the document nests deeper than {MAX_DEPTH} levels"),
            )
            .at_position(err.line(), err.column());
        }
        Diagnostic::new(
            DiagnosticCode::Syntax,
            "",
            format!("invalid JSON: {}", strip_position(&err.to_string())),
        )
        .at_position(err.line(), err.column())
    })
}

fn parse_yaml(text: &str) -> Result<Value, Diagnostic> {
    // Tight budgets: a pipeline needs few aliases, and an alias bomb must fail fast.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_depth: MAX_DEPTH,
            max_nodes: MAX_VALUES,
            max_events: 2_000_000,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let value: Value = serde_saphyr::from_str_with_options(text, options).map_err(|err| {
        // Budget breaches reach us wrapped in other variants; the message names them reliably.
        let text = err.to_string();
        let (code, what) =
            if text.contains("budget breached") || text.contains("recursion limit exceeded") {
                (DiagnosticCode::TooLarge, "the YAML is over the size limits")
            } else {
                (DiagnosticCode::Syntax, "invalid YAML")
            };
        let mut diagnostic = Diagnostic::new(
            code,
            "",
            format!("{what}: {}", yaml_message(&err.to_string())),
        );
        if let Some(location) = err.location() {
            diagnostic = diagnostic.at_position(
                usize::try_from(location.line()).unwrap_or(usize::MAX),
                usize::try_from(location.column()).unwrap_or(usize::MAX),
            );
        }
        diagnostic
    })?;
    // An empty YAML file is `null`; report it as an empty document rather than a type error later.
    Ok(value)
}

fn check_shape(value: &Value) -> Result<(), Diagnostic> {
    // Iterative, so depth checking itself cannot overflow.
    let mut stack = vec![(value, 1usize)];
    let mut count = 0usize;
    while let Some((node, depth)) = stack.pop() {
        count += 1;
        if count > MAX_VALUES {
            return Err(Diagnostic::new(
                DiagnosticCode::TooLarge,
                "",
                format!(
                    "the document holds more than {MAX_VALUES} values; a pipeline is far smaller"
                ),
            ));
        }
        if depth > MAX_DEPTH {
            return Err(Diagnostic::new(
                DiagnosticCode::TooLarge,
                "",
                format!("the document nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        match node {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// serde_json appends " at line L column C"; we carry the position separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// The first line of a serde-saphyr message, without the `error: line L column C: ` prefix
/// (the position travels in the diagnostic's own fields).
fn yaml_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((position, rest)) if position.contains(" column ") => rest.to_owned(),
        _ => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_syntax_errors_carry_line_and_column() {
        let err = parse_text("{\n  \"stages\": [,]\n}", Format::Json).unwrap_err();
        assert_eq!(err.code, DiagnosticCode::Syntax);
        assert_eq!((err.line, err.column), (Some(2), Some(14)));
        assert!(err.message.starts_with("invalid JSON"), "{}", err.message);
    }

    #[test]
    fn yaml_alias_bomb_is_refused_quickly() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let previous = (b'a' + level - 1) as char;
            let name = (b'a' + level) as char;
            text.push_str(&format!("{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse_text(&text, Format::Yaml).unwrap_err();
        assert_eq!(err.code, DiagnosticCode::Syntax);
        // A guard against expansion, not a performance figure: expanding the aliases would
        // build 10^12 nodes, refusing them takes microseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn deep_nesting_is_refused_in_both_formats() {
        let json = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_text(&json, Format::Json).is_err());
        let yaml = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_text(&yaml, Format::Yaml).is_err());
    }

    #[test]
    fn duplicate_yaml_keys_are_an_error() {
        let err = parse_text("name: a\nname: b\n", Format::Yaml).unwrap_err();
        assert_eq!(err.code, DiagnosticCode::Syntax);
    }

    #[test]
    fn format_detection_prefers_the_file_extension() {
        assert_eq!(Format::detect(Some("p.yaml"), "{}"), Format::Yaml);
        assert_eq!(Format::detect(Some("p.json"), "stages: []"), Format::Json);
        assert_eq!(Format::detect(None, "  {\"stages\": []}"), Format::Json);
        assert_eq!(Format::detect(None, "stages: []"), Format::Yaml);
    }
}
