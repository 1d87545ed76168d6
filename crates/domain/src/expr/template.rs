//! Templates: literal text with `${NAME}` parameter references and `${{ expr }}` expressions.

use super::ast::Expr;
use super::eval::{EvalContext, evaluate};
use super::parser::parse;
use super::{EvalError, ExprError};

/// Longest parameter name accepted in a `${NAME}` reference (spec §12.5).
const MAX_PARAM_NAME_LEN: usize = 128;

/// A parsed template, e.g. a step input `make build VERSION=${releaseVersion}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// `${NAME}`: a parameter reference, holding the name without `${` `}`.
    Param(String),
    /// `${{ expr }}`.
    Expr(Expr),
}

/// Parses template text.
///
/// Only `${NAME}` (NAME = `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes) and `${{ … }}` are
/// special; any other `$` is literal, so `$HOME`, `$1`, `${1}` and `${ open` are plain text.
/// An unterminated `${{` is an error, as is an expression that does not parse; offsets are
/// byte offsets into `text`.
pub fn parse_template(text: &str) -> Result<Template, ExprError> {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let mut literal_start = 0;
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        if byte != b'$' {
            position += 1;
            continue;
        }
        let segment = if bytes.get(position + 1..position + 3) == Some(b"{{".as_slice()) {
            let inner_start = position + 3;
            let inner_end = find_expression_end(text, inner_start)
                .ok_or_else(|| ExprError::new("unterminated '${{' (no closing '}}')", position))?;
            let inner = text.get(inner_start..inner_end).unwrap_or_default();
            let expr = parse(inner).map_err(|err| err.shifted(inner_start))?;
            Some((Segment::Expr(expr), inner_end + 2))
        } else {
            param_reference(text, position)
                .map(|(name, end)| (Segment::Param(name.to_owned()), end))
        };
        match segment {
            Some((segment, end)) => {
                push_literal(
                    &mut segments,
                    text.get(literal_start..position).unwrap_or_default(),
                );
                segments.push(segment);
                position = end;
                literal_start = end;
            }
            None => position += 1,
        }
    }
    push_literal(&mut segments, text.get(literal_start..).unwrap_or_default());
    Ok(Template { segments })
}

impl Template {
    /// Whether the template has no references, so rendering returns the text unchanged.
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Literal(_)))
    }

    /// Names of the `${NAME}` references, in order of appearance (repeats included).
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Renders: Param → params(name), or the literal `${NAME}` text when params returns None (unknown references stay literal);
    /// Expr → evaluate + to_display_string.
    pub fn render(
        &self,
        params: &dyn Fn(&str) -> Option<String>,
        ctx: &dyn EvalContext,
    ) -> Result<String, EvalError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(name) => match params(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        out.push_str("${");
                        out.push_str(name);
                        out.push('}');
                    }
                },
                Segment::Expr(expr) => out.push_str(&evaluate(expr, ctx)?.to_display_string()),
            }
        }
        Ok(out)
    }
}

/// The offset of the first `}}` at or after `start` that is not inside a single-quoted
/// string literal, i.e. where the expression of a `${{` ends.
pub(crate) fn find_expression_end(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut position = start;
    while let Some(&byte) = bytes.get(position) {
        match byte {
            // `''` inside a string toggles twice, which leaves us inside it: exactly right.
            b'\'' => in_string = !in_string,
            b'}' if !in_string && bytes.get(position + 1) == Some(&b'}') => return Some(position),
            _ => {}
        }
        position += 1;
    }
    None
}

/// A `${NAME}` reference at `dollar`: the name and the offset just past the `}`.
fn param_reference(text: &str, dollar: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(dollar + 1) != Some(&b'{') {
        return None;
    }
    let name_start = dollar + 2;
    let first = *bytes.get(name_start)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let length = bytes
        .get(name_start..)?
        .iter()
        .take(MAX_PARAM_NAME_LEN + 1)
        .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
        .count();
    if length > MAX_PARAM_NAME_LEN || bytes.get(name_start + length) != Some(&b'}') {
        return None;
    }
    Some((
        text.get(name_start..name_start + length)?,
        name_start + length + 1,
    ))
}

/// Appends literal text, merging with a preceding literal so segments alternate.
fn push_literal(segments: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    match segments.last_mut() {
        Some(Segment::Literal(previous)) => previous.push_str(text),
        _ => segments.push(Segment::Literal(text.to_owned())),
    }
}
