//! The expression syntax tree and its canonical source text.

use std::fmt;

use super::eval::StatusCheck;
use super::value::Value;

/// A parsed expression. Build one with [`parse_expression`](super::parse_expression).
///
/// `Display` renders canonical source text (minimal parentheses, single spaces around
/// binary operators, decimal numbers) that parses back to an equal `Expr`.
/// Parentheses leave no trace in the tree: `(a).b` and `a.b` are the same expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub(crate) node: Node,
}

impl Expr {
    /// Whether the expression calls one of the status functions (`success()`, `always()`, …).
    ///
    /// Callers that follow GitHub Actions' rule of an implicit `success() &&` in front of
    /// conditions without a status function use this to decide.
    pub fn has_status_function(&self) -> bool {
        self.node.has_status_function()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(f, &self.node, 0)
    }
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// Invariant: `Null`, `Bool`, a finite `Number` or `String` — never an array or object.
    Literal(Value),
    /// A root context lookup (`pipeline`, `jobs`, …).
    /// Invariant: a valid identifier that is not `true`, `false` or `null`.
    Context(String),
    /// `object.name`. Invariant: `name` is a valid identifier.
    Member(Box<Node>, String),
    /// `object[index]`.
    Index(Box<Node>, Box<Node>),
    /// `object.*`: every member of an object or element of an array.
    Filter(Box<Node>),
    /// `!operand`.
    Not(Box<Node>),
    /// `-operand`. Invariant: the operand is never a number literal; those fold into
    /// a negative literal (see [`Node::negate`]), which keeps `-1` one literal.
    Negate(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    /// Invariant: `arguments.len() == function.arity()`.
    Call(Function, Vec<Node>),
}

impl Node {
    /// Builds `-operand`, folding a number literal into a negative literal.
    pub(crate) fn negate(operand: Node) -> Node {
        match operand {
            Node::Literal(Value::Number(number)) => Node::Literal(Value::Number(-number)),
            other => Node::Negate(Box::new(other)),
        }
    }

    fn has_status_function(&self) -> bool {
        match self {
            Node::Literal(_) | Node::Context(_) => false,
            Node::Member(object, _)
            | Node::Filter(object)
            | Node::Not(object)
            | Node::Negate(object) => object.has_status_function(),
            Node::Index(left, right) | Node::Binary(_, left, right) => {
                left.has_status_function() || right.has_status_function()
            }
            Node::Call(function, arguments) => {
                matches!(function, Function::Status(_))
                    || arguments.iter().any(Node::has_status_function)
            }
        }
    }

    /// Binding strength of the node's outermost syntax, used to decide on parentheses.
    fn precedence(&self) -> u8 {
        match self {
            Node::Binary(op, _, _) => op.precedence(),
            Node::Not(_) | Node::Negate(_) => UNARY_PRECEDENCE,
            // A negative literal prints with a leading `-`, so it binds like a unary operator.
            Node::Literal(Value::Number(number)) if number.is_sign_negative() => UNARY_PRECEDENCE,
            _ => POSTFIX_PRECEDENCE,
        }
    }
}

pub(crate) const UNARY_PRECEDENCE: u8 = 5;
const POSTFIX_PRECEDENCE: u8 = 6;

/// Binary operators, from loosest to tightest: `||`, `&&`, `==` `!=`, `<` `<=` `>` `>=`.
/// All are left-associative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Or,
    And,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl BinaryOp {
    #[cfg(test)]
    pub(crate) const ALL: [BinaryOp; 8] = [
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Equal,
        BinaryOp::NotEqual,
        BinaryOp::Less,
        BinaryOp::LessOrEqual,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
    ];

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessOrEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterOrEqual => ">=",
        }
    }

    pub(crate) fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Equal | BinaryOp::NotEqual => 3,
            BinaryOp::Less
            | BinaryOp::LessOrEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterOrEqual => 4,
        }
    }
}

/// The built-in functions. Names are case-sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Contains,
    StartsWith,
    EndsWith,
    Status(StatusCheck),
}

impl Function {
    pub(crate) const ALL: [Function; 9] = [
        Function::Contains,
        Function::StartsWith,
        Function::EndsWith,
        Function::Status(StatusCheck::Default),
        Function::Status(StatusCheck::Success),
        Function::Status(StatusCheck::Completed),
        Function::Status(StatusCheck::Failure),
        Function::Status(StatusCheck::Cancelled),
        Function::Status(StatusCheck::Always),
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Contains => "contains",
            Function::StartsWith => "startsWith",
            Function::EndsWith => "endsWith",
            Function::Status(StatusCheck::Default) => "default",
            Function::Status(StatusCheck::Success) => "success",
            Function::Status(StatusCheck::Completed) => "completed",
            Function::Status(StatusCheck::Failure) => "failure",
            Function::Status(StatusCheck::Cancelled) => "cancelled",
            Function::Status(StatusCheck::Always) => "always",
        }
    }

    pub(crate) fn arity(self) -> usize {
        match self {
            Function::Contains | Function::StartsWith | Function::EndsWith => 2,
            Function::Status(_) => 0,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|function| function.name() == name)
    }
}

/// Writes `node`, in parentheses when it binds looser than `min_precedence` requires.
fn write_node(f: &mut fmt::Formatter<'_>, node: &Node, min_precedence: u8) -> fmt::Result {
    let needs_parentheses = node.precedence() < min_precedence;
    if needs_parentheses {
        f.write_str("(")?;
    }
    match node {
        Node::Literal(value) => write_literal(f, value)?,
        Node::Context(name) => f.write_str(name)?,
        Node::Member(object, name) => {
            write_node(f, object, POSTFIX_PRECEDENCE)?;
            write!(f, ".{name}")?;
        }
        Node::Index(object, index) => {
            write_node(f, object, POSTFIX_PRECEDENCE)?;
            f.write_str("[")?;
            write_node(f, index, 0)?;
            f.write_str("]")?;
        }
        Node::Filter(object) => {
            write_node(f, object, POSTFIX_PRECEDENCE)?;
            f.write_str(".*")?;
        }
        Node::Not(operand) => {
            f.write_str("!")?;
            write_node(f, operand, UNARY_PRECEDENCE)?;
        }
        Node::Negate(operand) => {
            f.write_str("-")?;
            write_node(f, operand, UNARY_PRECEDENCE)?;
        }
        Node::Binary(op, left, right) => {
            // Left-associative: a right operand of the same precedence needs parentheses.
            write_node(f, left, op.precedence())?;
            write!(f, " {} ", op.symbol())?;
            write_node(f, right, op.precedence() + 1)?;
        }
        Node::Call(function, arguments) => {
            write!(f, "{}(", function.name())?;
            for (position, argument) in arguments.iter().enumerate() {
                if position > 0 {
                    f.write_str(", ")?;
                }
                write_node(f, argument, 0)?;
            }
            f.write_str(")")?;
        }
    }
    if needs_parentheses {
        f.write_str(")")?;
    }
    Ok(())
}

fn write_literal(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Null => f.write_str("null"),
        Value::Bool(flag) => write!(f, "{flag}"),
        // Shortest decimal text that parses back to the same f64; `-0` keeps its sign.
        Value::Number(number) => write!(f, "{number}"),
        Value::String(text) => write!(f, "'{}'", text.replace('\'', "''")),
        // Never produced by the parser (see the invariant on `Node::Literal`);
        // rendering `null` is safer than panicking.
        Value::Array(_) | Value::Object(_) => f.write_str("null"),
    }
}
