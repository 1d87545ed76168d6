//! Splits expression text into tokens, each with the byte offset where it starts.

use super::ExprError;
use super::value::parse_hex;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind<'src> {
    /// `[A-Za-z_][A-Za-z0-9_-]*`; keywords (`true`, `false`, `null`) are identifiers here
    /// because after a `.` they are ordinary member names.
    Identifier(&'src str),
    /// The content of a single-quoted string, with `''` already unescaped.
    String(String),
    /// Invariant: finite and not negative (a leading `-` is a separate token).
    Number(f64),
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Dot,
    Comma,
    Star,
    Not,
    Minus,
    And,
    Or,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl TokenKind<'_> {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        let symbol = match self {
            TokenKind::Identifier(name) => return format!("'{name}'"),
            TokenKind::String(_) => return "a string".to_owned(),
            TokenKind::Number(_) => return "a number".to_owned(),
            TokenKind::LeftParen => "(",
            TokenKind::RightParen => ")",
            TokenKind::LeftBracket => "[",
            TokenKind::RightBracket => "]",
            TokenKind::Dot => ".",
            TokenKind::Comma => ",",
            TokenKind::Star => "*",
            TokenKind::Not => "!",
            TokenKind::Minus => "-",
            TokenKind::And => "&&",
            TokenKind::Or => "||",
            TokenKind::Equal => "==",
            TokenKind::NotEqual => "!=",
            TokenKind::Less => "<",
            TokenKind::LessOrEqual => "<=",
            TokenKind::Greater => ">",
            TokenKind::GreaterOrEqual => ">=",
        };
        format!("'{symbol}'")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'src> {
    pub(crate) kind: TokenKind<'src>,
    pub(crate) offset: usize,
}

/// Tokenizes the whole text, or reports the first character that starts no token.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        let start = position;
        let two = |second: u8| bytes.get(start + 1) == Some(&second);
        let (kind, length) = match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {
                position += 1;
                continue;
            }
            b'(' => (TokenKind::LeftParen, 1),
            b')' => (TokenKind::RightParen, 1),
            b'[' => (TokenKind::LeftBracket, 1),
            b']' => (TokenKind::RightBracket, 1),
            b'.' => (TokenKind::Dot, 1),
            b',' => (TokenKind::Comma, 1),
            b'*' => (TokenKind::Star, 1),
            b'-' => (TokenKind::Minus, 1),
            b'!' if two(b'=') => (TokenKind::NotEqual, 2),
            b'!' => (TokenKind::Not, 1),
            b'=' if two(b'=') => (TokenKind::Equal, 2),
            b'<' if two(b'=') => (TokenKind::LessOrEqual, 2),
            b'<' => (TokenKind::Less, 1),
            b'>' if two(b'=') => (TokenKind::GreaterOrEqual, 2),
            b'>' => (TokenKind::Greater, 1),
            b'&' if two(b'&') => (TokenKind::And, 2),
            b'|' if two(b'|') => (TokenKind::Or, 2),
            b'=' | b'&' | b'|' => {
                let symbol = char::from(byte);
                return Err(ExprError::new(
                    format!("unexpected '{symbol}'; did you mean '{symbol}{symbol}'?"),
                    start,
                ));
            }
            b'\'' => lex_string(src, start)?,
            b'0'..=b'9' => lex_number(src, start)?,
            byte if is_identifier_start(byte) => {
                let length = bytes[start..]
                    .iter()
                    .take_while(|&&byte| is_identifier_continue(byte))
                    .count();
                (
                    TokenKind::Identifier(slice(src, start, start + length)),
                    length,
                )
            }
            _ => {
                let character = src
                    .get(start..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or('\u{fffd}');
                return Err(ExprError::new(
                    format!("unexpected character {character:?}"),
                    start,
                ));
            }
        };
        tokens.push(Token {
            kind,
            offset: start,
        });
        position = start + length;
    }
    Ok(tokens)
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_identifier_continue(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// A string literal starting at the quote at `start`; `''` inside it is one quote.
fn lex_string(src: &str, start: usize) -> Result<(TokenKind<'_>, usize), ExprError> {
    let bytes = src.as_bytes();
    let mut content = String::new();
    let mut segment_start = start + 1;
    let mut position = start + 1;
    loop {
        match bytes.get(position) {
            None => return Err(ExprError::new("unterminated string literal", start)),
            Some(b'\'') if bytes.get(position + 1) == Some(&b'\'') => {
                content.push_str(slice(src, segment_start, position + 1));
                position += 2;
                segment_start = position;
            }
            Some(b'\'') => {
                content.push_str(slice(src, segment_start, position));
                return Ok((TokenKind::String(content), position + 1 - start));
            }
            Some(_) => position += 1,
        }
    }
}

/// A decimal (`12`, `1.5`, `2e-3`) or hexadecimal (`0x1F`) number starting at `start`.
fn lex_number(src: &str, start: usize) -> Result<(TokenKind<'_>, usize), ExprError> {
    let bytes = src.as_bytes();
    let digits_from = |from: usize| {
        bytes.get(from..).map_or(0, |rest| {
            rest.iter().take_while(|byte| byte.is_ascii_digit()).count()
        })
    };
    let is_digit_at = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_digit);

    let (value, end) =
        if bytes.get(start) == Some(&b'0') && matches!(bytes.get(start + 1), Some(b'x' | b'X')) {
            let digits_start = start + 2;
            let length = bytes[digits_start..]
                .iter()
                .take_while(|byte| byte.is_ascii_hexdigit())
                .count();
            let value = parse_hex(slice(src, digits_start, digits_start + length))
                .ok_or_else(|| ExprError::new("expected hexadecimal digits after '0x'", start))?;
            (value, digits_start + length)
        } else {
            let mut end = start + digits_from(start);
            // A fraction needs a digit after the dot, so `1.x` is a member access on `1`.
            if bytes.get(end) == Some(&b'.') && is_digit_at(end + 1) {
                end += 1 + digits_from(end + 1);
            }
            if matches!(bytes.get(end), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
                if is_digit_at(end + 1 + sign) {
                    end += 1 + sign + digits_from(end + 1 + sign);
                }
            }
            let value = slice(src, start, end)
                .parse::<f64>()
                .map_err(|_| ExprError::new("invalid number", start))?;
            (value, end)
        };
    if bytes
        .get(end)
        .is_some_and(|&byte| is_identifier_continue(byte) && byte != b'-')
    {
        return Err(ExprError::new(
            "invalid number: letters directly after the digits",
            start,
        ));
    }
    if !value.is_finite() {
        return Err(ExprError::new("number is too large", start));
    }
    Ok((TokenKind::Number(value), end - start))
}

/// `src[from..to]`, or `""` if the bounds are not char boundaries. Callers only pass
/// offsets of ASCII bytes, so the fallback is never taken; it exists to rule out panics.
fn slice(src: &str, from: usize, to: usize) -> &str {
    src.get(from..to).unwrap_or_default()
}
