//! Evaluation of an [`Expr`] against caller-supplied contexts and status answers.

use super::EvalError;
use super::ast::{BinaryOp, Expr, Function, Node};
use super::value::{Value, loose_equals, ordering};

/// The zero-argument status functions. Their answer depends on the job's dependencies,
/// which only the caller knows (spec §12.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCheck {
    /// `default()`: all dependencies completed successfully (or there are none).
    Default,
    /// `success()`: the same as `default()`.
    Success,
    /// `completed()`: all dependencies reached a final state, whatever it was.
    Completed,
    /// `failure()`: some dependency failed.
    Failure,
    /// `cancelled()`: the run was cancelled.
    Cancelled,
    /// `always()`: true.
    Always,
}

/// What an expression can see while it is evaluated.
pub trait EvalContext {
    /// Root contexts: "pipeline", "sources", "env", "jobs". None → the name is unknown (evaluates to Null).
    fn context(&self, name: &str) -> Option<Value>;
    /// Status functions are answered by the caller, which knows the job's dependencies.
    fn status_check(&self, check: StatusCheck) -> bool;
}

/// Evaluates `expr`. Unknown contexts and missing members are `null`, never errors.
pub fn evaluate(expr: &Expr, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    eval(&expr.node, ctx)
}

/// The result of a member/index/filter chain. Once a chain passes a `*` filter, further
/// accesses apply to each element and the chain yields an array at its end.
enum Access {
    Single(Value),
    Filtered(Vec<Value>),
}

impl Access {
    fn into_value(self) -> Value {
        match self {
            Access::Single(value) => value,
            Access::Filtered(items) => Value::Array(items),
        }
    }
}

// Recursion depth is bounded by the tree height limit enforced by the parser.
fn eval(node: &Node, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    Ok(match node {
        Node::Literal(value) => value.clone(),
        Node::Context(name) => ctx.context(name).unwrap_or(Value::Null),
        Node::Member(..) | Node::Index(..) | Node::Filter(..) => {
            eval_access(node, ctx)?.into_value()
        }
        Node::Not(operand) => Value::Bool(!eval(operand, ctx)?.is_truthy()),
        Node::Negate(operand) => Value::Number(-eval(operand, ctx)?.to_number()),
        // `&&` and `||` short-circuit and yield the operand that decided the result.
        Node::Binary(BinaryOp::And, left, right) => {
            let left = eval(left, ctx)?;
            if left.is_truthy() {
                eval(right, ctx)?
            } else {
                left
            }
        }
        Node::Binary(BinaryOp::Or, left, right) => {
            let left = eval(left, ctx)?;
            if left.is_truthy() {
                left
            } else {
                eval(right, ctx)?
            }
        }
        Node::Binary(op, left, right) => {
            let left = eval(left, ctx)?;
            let right = eval(right, ctx)?;
            Value::Bool(compare(*op, &left, &right))
        }
        Node::Call(function, arguments) => call(*function, arguments, ctx)?,
    })
}

fn eval_access(node: &Node, ctx: &dyn EvalContext) -> Result<Access, EvalError> {
    let access_object = |object: &Node| match object {
        Node::Member(..) | Node::Index(..) | Node::Filter(..) => eval_access(object, ctx),
        other => Ok(Access::Single(eval(other, ctx)?)),
    };
    Ok(match node {
        Node::Member(object, name) => match access_object(object)? {
            Access::Single(value) => Access::Single(member(value, name).unwrap_or(Value::Null)),
            Access::Filtered(items) => Access::Filtered(
                items
                    .into_iter()
                    .filter_map(|item| member(item, name))
                    .collect(),
            ),
        },
        Node::Index(object, index) => {
            let object = access_object(object)?;
            let index = eval(index, ctx)?;
            match object {
                Access::Single(value) => {
                    Access::Single(element(value, &index).unwrap_or(Value::Null))
                }
                Access::Filtered(items) => Access::Filtered(
                    items
                        .into_iter()
                        .filter_map(|item| element(item, &index))
                        .collect(),
                ),
            }
        }
        Node::Filter(object) => match access_object(object)? {
            Access::Single(value) => Access::Filtered(children(value)),
            Access::Filtered(items) => {
                Access::Filtered(items.into_iter().flat_map(children).collect())
            }
        },
        other => Access::Single(eval(other, ctx)?),
    })
}

/// `value.name`: only objects have members. Lookup is case-sensitive.
fn member(value: Value, name: &str) -> Option<Value> {
    match value {
        Value::Object(mut members) => members.remove(name),
        _ => None,
    }
}

/// `value[index]`: arrays take an integral in-range number (strings that are numbers count);
/// objects take a key, with non-string indexes converted as they display.
fn element(value: Value, index: &Value) -> Option<Value> {
    match value {
        Value::Array(mut items) => {
            let position = index.to_number();
            let in_range =
                position.fract() == 0.0 && position >= 0.0 && position < items.len() as f64;
            // `as usize` is exact here: the value is a non-negative integer below `len`.
            in_range.then(|| items.swap_remove(position as usize))
        }
        Value::Object(mut members) if !index.is_collection() => {
            members.remove(&index.to_display_string())
        }
        _ => None,
    }
}

/// `value.*`: object members in key order, or array elements; nothing for other values.
fn children(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Object(members) => members.into_values().collect(),
        _ => Vec::new(),
    }
}

fn compare(op: BinaryOp, left: &Value, right: &Value) -> bool {
    match op {
        BinaryOp::Equal => loose_equals(left, right),
        BinaryOp::NotEqual => !loose_equals(left, right),
        BinaryOp::Less => ordering(left, right).is_some_and(std::cmp::Ordering::is_lt),
        BinaryOp::LessOrEqual => ordering(left, right).is_some_and(std::cmp::Ordering::is_le),
        BinaryOp::Greater => ordering(left, right).is_some_and(std::cmp::Ordering::is_gt),
        BinaryOp::GreaterOrEqual => ordering(left, right).is_some_and(std::cmp::Ordering::is_ge),
        // Handled with short-circuiting in `eval`; kept total so no operator can panic.
        BinaryOp::And => left.is_truthy() && right.is_truthy(),
        BinaryOp::Or => left.is_truthy() || right.is_truthy(),
    }
}

fn call(function: Function, arguments: &[Node], ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    let result = match (function, arguments) {
        (Function::Status(check), []) => ctx.status_check(check),
        (Function::Contains, [search, item]) => contains(&eval(search, ctx)?, &eval(item, ctx)?),
        (Function::StartsWith, [text, prefix]) => text_pair(&eval(text, ctx)?, &eval(prefix, ctx)?)
            .is_some_and(|(text, prefix)| text.starts_with(&prefix)),
        (Function::EndsWith, [text, suffix]) => text_pair(&eval(text, ctx)?, &eval(suffix, ctx)?)
            .is_some_and(|(text, suffix)| text.ends_with(&suffix)),
        // The parser checks arity, so this is reachable only through a bug.
        _ => {
            return Err(EvalError::new(format!(
                "'{}' takes {} arguments, found {}",
                function.name(),
                function.arity(),
                arguments.len()
            )));
        }
    };
    Ok(Value::Bool(result))
}

/// `contains(search, item)`: membership by `==` when `search` is an array; otherwise a
/// case-sensitive substring test on the display strings of two scalars.
fn contains(search: &Value, item: &Value) -> bool {
    match search {
        Value::Array(items) => items.iter().any(|candidate| loose_equals(candidate, item)),
        _ => text_pair(search, item).is_some_and(|(text, part)| text.contains(&part)),
    }
}

/// Both values as display strings, or `None` when either is an array or object.
fn text_pair(left: &Value, right: &Value) -> Option<(String, String)> {
    if left.is_collection() || right.is_collection() {
        return None;
    }
    Some((left.to_display_string(), right.to_display_string()))
}
