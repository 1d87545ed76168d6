//! `${{ … }}` expressions, job and stage conditions, and `${NAME}` / `${{ … }}` templates (spec §12.7).
//!
//! Three entry points: [`parse_expression`] for the inner text of `${{ … }}`,
//! [`parse_condition`] for a job `condition` or stage `run_condition`, and
//! [`parse_template`] for step inputs. Evaluation sees the outside world only through
//! [`EvalContext`]: root contexts (`pipeline`, `sources`, `env`, `jobs`) and the answers to
//! the status functions, which depend on job dependencies only the caller knows.
//!
//! # Grammar
//!
//! ```text
//! expression = or ;
//! or         = and , { "||" , and } ;
//! and        = equality , { "&&" , equality } ;
//! equality   = comparison , { ( "==" | "!=" ) , comparison } ;
//! comparison = unary , { ( "<" | "<=" | ">" | ">=" ) , unary } ;
//! unary      = ( "!" | "-" ) , unary | postfix ;
//! postfix    = primary , { "." , ( identifier | "*" ) | "[" , expression , "]" } ;
//! primary    = literal | call | context | "(" , expression , ")" ;
//! call       = function , "(" , [ expression , { "," , expression } ] , ")" ;
//! context    = identifier - ( "true" | "false" | "null" ) ;
//! literal    = "true" | "false" | "null" | number | string ;
//! number     = digit , { digit } , [ "." , digit , { digit } ] , [ ( "e" | "E" ) , [ "+" | "-" ] , digit , { digit } ]
//!            | "0" , ( "x" | "X" ) , hexdigit , { hexdigit } ;
//! string     = "'" , { ? any character but "'" ? | "''" } , "'" ;
//! identifier = ( letter | "_" ) , { letter | digit | "_" | "-" } ;
//! function   = "contains" | "startsWith" | "endsWith"
//!            | "default" | "success" | "completed" | "failure" | "cancelled" | "always" ;
//! ```
//!
//! Whitespace (space, tab, newline) separates tokens. All binary operators are
//! left-associative. A `-` inside an identifier is part of it (`jobs.JOB_a-b.status`), so a
//! minus sign needs space or a non-identifier character before it. Negative numbers are a
//! unary minus applied to a literal, folded into one literal. Function names are
//! case-sensitive; an unknown name or a wrong argument count is a parse error pointing at the
//! name. A root identifier not followed by `(` is a context lookup.
//!
//! Limits keep hostile input cheap and recursion shallow: 64 KiB of text, 64 levels of
//! syntactic nesting (parentheses, brackets, argument lists, prefix operators), a tree at most
//! 256 levels tall (long `a || b || …` or `a.b.c…` chains) and 4096 nodes.
//!
//! # Semantics
//!
//! - **Truthiness**: `null`, `false`, `0`, `-0`, `NaN` and `''` are falsy; everything else,
//!   including empty arrays and objects, is truthy. `!x` is a boolean; `-x` negates
//!   `x` converted to a number.
//! - **`&&` / `||`** short-circuit and return the operand that decided the result
//!   (`'' || 'x'` is `'x'`, `0 && f()` is `0`), as in GitHub Actions.
//! - **Equality** (`==`, `!=`): values of the same type compare directly — strings
//!   case-sensitively, numbers by IEEE rules (NaN equals nothing), arrays and objects member
//!   by member with this same rule. Values of different types are both converted to numbers
//!   and compared: `null` → 0, `false`/`true` → 0/1, a string → its number (whitespace
//!   trimmed, blank → 0, decimal or `0x` hex) or NaN, arrays and objects → NaN. So
//!   `'1' == 1` and `true == 1` hold, `'abc' == 0` does not, and — as in GitHub Actions —
//!   `null == ''` and `null == 0` hold.
//! - **Ordering** (`<`, `<=`, `>`, `>=`): numbers numerically, strings lexicographically by
//!   bytes (case-sensitive). Any other combination, including mixed types, is `false`.
//! - **Access**: `a.b` and `a['b']` look up an object member (case-sensitive), `a[0]` an
//!   array element; anything missing, or access on a non-object, is `null`. An unknown
//!   root context is `null`. `a.*` yields every member (in key order) or element; after a `*`,
//!   later accesses apply to each element and skip elements where the member is missing,
//!   so `jobs.*.status` is an array of statuses.
//! - **Functions**: `contains(search, item)` tests membership with `==` when `search` is an
//!   array, otherwise a substring test on the display strings of two scalars;
//!   `startsWith`/`endsWith` compare display strings; all three are case-sensitive and are
//!   false when a string argument is an array or object. The status functions
//!   (`default()`, `success()`, `completed()`, `failure()`, `cancelled()`, `always()`) ask
//!   [`EvalContext::status_check`].
//! - **Display** in templates ([`Value::to_display_string`]): strings raw, integral numbers
//!   without `.0`, `null` empty, arrays and objects as compact JSON.

mod ast;
mod condition;
mod eval;
mod lexer;
mod parser;
mod template;
mod value;

#[cfg(test)]
mod tests;

pub use ast::Expr;
pub use condition::{Condition, parse_condition};
pub use eval::{EvalContext, StatusCheck, evaluate};
pub use template::{Segment, Template, parse_template};
pub use value::Value;

/// Parses the inner text of `${{ … }}` (without the braces).
pub fn parse_expression(src: &str) -> Result<Expr, ExprError> {
    parser::parse(src)
}

/// Text that is not a valid expression, condition or template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at offset {offset}")]
pub struct ExprError {
    pub message: String,
    /// Byte offset of the problem in the text that was parsed.
    pub offset: usize,
}

impl ExprError {
    pub(crate) fn new(message: impl Into<String>, offset: usize) -> Self {
        ExprError {
            message: message.into(),
            offset,
        }
    }

    /// Moves the offset from the inner text of `${{ … }}` into the surrounding text.
    pub(crate) fn shifted(self, by: usize) -> Self {
        ExprError {
            offset: self.offset + by,
            ..self
        }
    }
}

/// An expression that parsed but could not be evaluated.
///
/// The parser rejects what it can (unknown functions, wrong argument counts), so with the
/// current function set evaluation does not fail in practice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        EvalError {
            message: message.into(),
        }
    }
}
