//! Job `condition` and stage `run_condition`: one expression deciding whether to run.

use super::ast::{Expr, Function, Node};
use super::eval::{EvalContext, StatusCheck, evaluate};
use super::parser::parse;
use super::template::find_expression_end;
use super::{EvalError, ExprError};

/// A parsed condition. Evaluates to run (true) or skip (false) by truthiness.
///
/// The expression is evaluated as written: there is no implicit `success() &&` in front of
/// conditions without a status function; [`Expr::has_status_function`] lets a caller add one.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    expr: Expr,
}

/// Parses a condition.
///
/// - empty or whitespace-only text is the default condition, `${{ default() }}`;
/// - `${{ expr }}`, with optional whitespace around it, is `expr`;
/// - a bare `expr` without the braces is accepted too (YAML `if: completed()`);
/// - anything else mixing literal text with `${{ }}` is an error.
///
/// Error offsets are byte offsets into `text`.
pub fn parse_condition(text: &str) -> Result<Condition, ExprError> {
    let trimmed = text.trim_start();
    if trimmed.trim_end().is_empty() {
        return Ok(Condition::default());
    }
    let open = text.len() - trimmed.len();
    if trimmed.starts_with("${{") {
        let inner_start = open + 3;
        let inner_end = find_expression_end(text, inner_start)
            .ok_or_else(|| ExprError::new("unterminated '${{' (no closing '}}')", open))?;
        let after = text.get(inner_end + 2..).unwrap_or_default();
        if let Some(extra) = after.find(|character: char| !character.is_whitespace()) {
            return Err(ExprError::new(
                "a condition must be a single '${{ … }}' expression; found text after its closing '}}'",
                inner_end + 2 + extra,
            ));
        }
        let inner = text.get(inner_start..inner_end).unwrap_or_default();
        let expr = parse(inner).map_err(|err| err.shifted(inner_start))?;
        return Ok(Condition { expr });
    }
    parse(text).map(|expr| Condition { expr }).map_err(|err| match text.find("${{") {
        // The text is neither one `${{ … }}` nor a bare expression, but mixes text with `${{`.
        Some(mixed) => ExprError::new(
            "a condition must be a single '${{ … }}' expression or a bare expression, not text mixed with '${{'",
            mixed,
        ),
        None => err,
    })
}

impl Condition {
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the job or stage should run: the truthiness of the expression's value.
    pub fn evaluate(&self, ctx: &dyn EvalContext) -> Result<bool, EvalError> {
        Ok(evaluate(&self.expr, ctx)?.is_truthy())
    }

    /// Canonical `${{ … }}` text; it parses back to an equal condition.
    pub fn source(&self) -> String {
        format!("${{{{ {} }}}}", self.expr)
    }
}

impl Default for Condition {
    /// `${{ default() }}`, the condition of a job that states none.
    fn default() -> Self {
        Condition {
            expr: Expr {
                node: Node::Call(Function::Status(StatusCheck::Default), Vec::new()),
            },
        }
    }
}
