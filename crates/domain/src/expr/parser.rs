//! Precedence-climbing parser from tokens to [`Expr`], with limits that keep hostile input cheap.

use super::ExprError;
use super::ast::{BinaryOp, Expr, Function, Node};
use super::lexer::{Token, TokenKind, tokenize};
use super::value::Value;

/// Longest accepted expression text, in bytes.
pub(crate) const MAX_EXPRESSION_LEN: usize = 64 * 1024;
/// Deepest syntactic nesting: each `(`, `[`, call argument list and prefix operator is a level.
pub(crate) const MAX_NESTING: usize = 64;
/// Tallest accepted tree. Long operator or member chains (`a || b || …`) grow the tree without
/// nesting; this bound keeps evaluation, `Display`, `Clone` and `Drop` recursion shallow.
pub(crate) const MAX_TREE_HEIGHT: usize = 256;
/// Most nodes in one expression.
pub(crate) const MAX_NODES: usize = 4096;

/// Parses the inner text of `${{ … }}`. Error offsets are byte offsets into `src`.
pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    if src.len() > MAX_EXPRESSION_LEN {
        return Err(ExprError::new(
            format!("expression is longer than {MAX_EXPRESSION_LEN} bytes"),
            0,
        ));
    }
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        nesting: 0,
        nodes: 0,
        end: src.len(),
    };
    let parsed = parser.expression()?;
    if let Some(token) = parser.peek() {
        return Err(ExprError::new(
            format!(
                "unexpected {} after the end of the expression",
                token.kind.describe()
            ),
            token.offset,
        ));
    }
    Ok(Expr { node: parsed.node })
}

/// A subtree under construction, with its height so limits are checked in O(1).
struct Parsed {
    node: Node,
    height: usize,
}

struct Parser<'src> {
    tokens: Vec<Token<'src>>,
    position: usize,
    /// Current syntactic nesting (see [`MAX_NESTING`]).
    nesting: usize,
    /// Nodes built so far (see [`MAX_NODES`]).
    nodes: usize,
    /// Offset reported for errors at the end of input.
    end: usize,
}

impl<'src> Parser<'src> {
    fn expression(&mut self) -> Result<Parsed, ExprError> {
        self.binary(1)
    }

    /// Parses operands joined by binary operators of at least `min_precedence`.
    fn binary(&mut self, min_precedence: u8) -> Result<Parsed, ExprError> {
        let mut left = self.unary()?;
        while let Some((op, offset)) = self.peek_binary_operator() {
            if op.precedence() < min_precedence {
                break;
            }
            self.position += 1;
            // `precedence + 1` makes every operator left-associative.
            let right = self.binary(op.precedence() + 1)?;
            let height = left.height.max(right.height);
            left = self.build(
                Node::Binary(op, Box::new(left.node), Box::new(right.node)),
                height,
                offset,
            )?;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Parsed, ExprError> {
        let Some(token) = self.peek() else {
            return self.postfix();
        };
        let offset = token.offset;
        let is_not = match token.kind {
            TokenKind::Not => true,
            TokenKind::Minus => false,
            _ => return self.postfix(),
        };
        self.position += 1;
        let operand = self.nested(offset, Self::unary)?;
        if is_not {
            self.build(Node::Not(Box::new(operand.node)), operand.height, offset)
        } else {
            match Node::negate(operand.node) {
                literal @ Node::Literal(_) => Ok(Parsed {
                    node: literal,
                    height: operand.height,
                }),
                negated => self.build(negated, operand.height, offset),
            }
        }
    }

    fn postfix(&mut self) -> Result<Parsed, ExprError> {
        let mut object = self.primary()?;
        while let Some(token) = self.peek() {
            let offset = token.offset;
            match token.kind {
                TokenKind::Dot => {
                    self.position += 1;
                    let node = match self.next_kind() {
                        Some(TokenKind::Identifier(name)) => {
                            Node::Member(Box::new(object.node), name.to_owned())
                        }
                        Some(TokenKind::Star) => Node::Filter(Box::new(object.node)),
                        _ => {
                            return Err(
                                self.error_at_previous("expected a property name or '*' after '.'")
                            );
                        }
                    };
                    object = self.build(node, object.height, offset)?;
                }
                TokenKind::LeftBracket => {
                    self.position += 1;
                    let index = self.nested(offset, |parser| {
                        let index = parser.expression()?;
                        parser.expect(&TokenKind::RightBracket, "expected ']' to close '['")?;
                        Ok(index)
                    })?;
                    let height = object.height.max(index.height);
                    object = self.build(
                        Node::Index(Box::new(object.node), Box::new(index.node)),
                        height,
                        offset,
                    )?;
                }
                _ => break,
            }
        }
        Ok(object)
    }

    fn primary(&mut self) -> Result<Parsed, ExprError> {
        let Some(token) = self.peek() else {
            return Err(ExprError::new(
                "expected an expression, found the end of the input",
                self.end,
            ));
        };
        let offset = token.offset;
        let node = match &token.kind {
            TokenKind::Number(number) => Node::Literal(Value::Number(*number)),
            TokenKind::String(text) => Node::Literal(Value::String(text.clone())),
            TokenKind::Identifier(name) => {
                let name = *name;
                self.position += 1;
                let node = match name {
                    "true" => Node::Literal(Value::Bool(true)),
                    "false" => Node::Literal(Value::Bool(false)),
                    "null" => Node::Literal(Value::Null),
                    _ if self
                        .peek()
                        .is_some_and(|next| next.kind == TokenKind::LeftParen) =>
                    {
                        return self.call(name, offset);
                    }
                    _ => Node::Context(name.to_owned()),
                };
                return self.build(node, 0, offset);
            }
            TokenKind::LeftParen => {
                self.position += 1;
                // Parentheses only group; they add no node.
                return self.nested(offset, |parser| {
                    let inner = parser.expression()?;
                    parser.expect(&TokenKind::RightParen, "expected ')' to close '('")?;
                    Ok(inner)
                });
            }
            other => {
                return Err(ExprError::new(
                    format!("expected an expression, found {}", other.describe()),
                    offset,
                ));
            }
        };
        self.position += 1;
        self.build(node, 0, offset)
    }

    /// Parses `name(arguments…)`; the name is checked before the arguments so the error
    /// points at it.
    fn call(&mut self, name: &str, name_offset: usize) -> Result<Parsed, ExprError> {
        let function =
            Function::from_name(name).ok_or_else(|| unknown_function(name, name_offset))?;
        self.position += 1; // the `(` seen by `primary`
        let arguments = self.nested(name_offset, |parser| {
            let mut arguments = Vec::new();
            if parser
                .peek()
                .is_some_and(|token| token.kind == TokenKind::RightParen)
            {
                parser.position += 1;
                return Ok(arguments);
            }
            loop {
                arguments.push(parser.expression()?);
                match parser.next_kind() {
                    Some(TokenKind::Comma) => {}
                    Some(TokenKind::RightParen) => return Ok(arguments),
                    _ => {
                        return Err(parser.error_at_previous(format!(
                            "expected ',' or ')' in the arguments of '{}'",
                            function.name()
                        )));
                    }
                }
            }
        })?;
        if arguments.len() != function.arity() {
            let expected = match function.arity() {
                0 => "no arguments".to_owned(),
                1 => "1 argument".to_owned(),
                count => format!("{count} arguments"),
            };
            return Err(ExprError::new(
                format!(
                    "'{}' takes {expected}, found {}",
                    function.name(),
                    arguments.len()
                ),
                name_offset,
            ));
        }
        let height = arguments
            .iter()
            .map(|argument| argument.height)
            .max()
            .unwrap_or(0);
        let node = Node::Call(
            function,
            arguments
                .into_iter()
                .map(|argument| argument.node)
                .collect(),
        );
        self.build(node, height, name_offset)
    }

    /// Runs `inner` one nesting level deeper, failing fast past [`MAX_NESTING`].
    fn nested<T>(
        &mut self,
        offset: usize,
        inner: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        if self.nesting >= MAX_NESTING {
            return Err(ExprError::new(
                format!("expression is nested more than {MAX_NESTING} levels deep"),
                offset,
            ));
        }
        self.nesting += 1;
        let result = inner(self);
        self.nesting -= 1;
        result
    }

    /// Wraps a new node whose tallest child has `child_height`, enforcing the size limits.
    fn build(
        &mut self,
        node: Node,
        child_height: usize,
        offset: usize,
    ) -> Result<Parsed, ExprError> {
        let height = child_height + 1;
        if height > MAX_TREE_HEIGHT {
            return Err(ExprError::new(
                format!(
                    "expression is too deeply nested or chained (more than {MAX_TREE_HEIGHT} levels)"
                ),
                offset,
            ));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ExprError::new(
                format!("expression has more than {MAX_NODES} parts"),
                offset,
            ));
        }
        Ok(Parsed { node, height })
    }

    fn peek(&self) -> Option<&Token<'src>> {
        self.tokens.get(self.position)
    }

    /// Consumes and returns the next token's kind.
    fn next_kind(&mut self) -> Option<TokenKind<'src>> {
        let kind = self
            .tokens
            .get(self.position)
            .map(|token| token.kind.clone());
        self.position += 1;
        kind
    }

    fn peek_binary_operator(&self) -> Option<(BinaryOp, usize)> {
        let token = self.peek()?;
        let op = match token.kind {
            TokenKind::Or => BinaryOp::Or,
            TokenKind::And => BinaryOp::And,
            TokenKind::Equal => BinaryOp::Equal,
            TokenKind::NotEqual => BinaryOp::NotEqual,
            TokenKind::Less => BinaryOp::Less,
            TokenKind::LessOrEqual => BinaryOp::LessOrEqual,
            TokenKind::Greater => BinaryOp::Greater,
            TokenKind::GreaterOrEqual => BinaryOp::GreaterOrEqual,
            _ => return None,
        };
        Some((op, token.offset))
    }

    fn expect(&mut self, kind: &TokenKind<'_>, message: &str) -> Result<(), ExprError> {
        match self.next_kind() {
            Some(found) if found == *kind => Ok(()),
            _ => Err(self.error_at_previous(message)),
        }
    }

    /// An error about the token just consumed by `next_kind`, naming what was found there.
    fn error_at_previous(&self, message: impl Into<String>) -> ExprError {
        let message = message.into();
        match self
            .position
            .checked_sub(1)
            .and_then(|index| self.tokens.get(index))
        {
            Some(token) => ExprError::new(
                format!("{message}, found {}", token.kind.describe()),
                token.offset,
            ),
            None => ExprError::new(format!("{message}, found the end of the input"), self.end),
        }
    }
}

fn unknown_function(name: &str, offset: usize) -> ExprError {
    let known: Vec<&str> = Function::ALL
        .iter()
        .map(|function| function.name())
        .collect();
    let hint = match Function::ALL
        .iter()
        .find(|function| function.name().eq_ignore_ascii_case(name))
    {
        Some(function) => format!(
            "; function names are case-sensitive, did you mean '{}'?",
            function.name()
        ),
        None if name.eq_ignore_ascii_case("canceled") => "; did you mean 'cancelled'?".to_owned(),
        None => format!(" (known functions: {})", known.join(", ")),
    };
    ExprError::new(format!("unknown function '{name}'{hint}"), offset)
}
