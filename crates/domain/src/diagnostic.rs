//! Diagnostics: what is wrong with an input, and where.

use std::fmt;

/// One problem found in a pipeline definition or parameter set.
///
/// `path` names the place in the input as a JSON-pointer-like dotted path
/// (`stages[1].jobs[0].depends_on[0]`); an empty path means the whole document.
/// `line`/`column` are filled when the parser knows them (syntax errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: DiagnosticCode,
    pub path: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// A stable, machine-readable category for each diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiagnosticCode {
    /// The text is not valid JSON/YAML, or too large/deep to accept.
    Syntax,
    /// A value has the wrong type or format.
    InvalidValue,
    /// A required field is absent or empty.
    Missing,
    /// An identifier or name is used twice.
    Duplicate,
    /// A reference names something that does not exist.
    UnknownReference,
    /// Dependencies form a cycle.
    Cycle,
    /// A job depends on a job of another stage.
    CrossStageDependency,
    /// An expression does not parse.
    BadExpression,
    /// A value is outside the allowed set or range.
    OutOfRange,
    /// The input exceeds a size limit.
    TooLarge,
}

impl DiagnosticCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::InvalidValue => "invalid-value",
            Self::Missing => "missing",
            Self::Duplicate => "duplicate",
            Self::UnknownReference => "unknown-reference",
            Self::Cycle => "cycle",
            Self::CrossStageDependency => "cross-stage-dependency",
            Self::BadExpression => "bad-expression",
            Self::OutOfRange => "out-of-range",
            Self::TooLarge => "too-large",
        }
    }
}

impl Diagnostic {
    pub fn new(code: DiagnosticCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            path: path.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    pub fn at_position(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.path.is_empty() {
            "<document>"
        } else {
            self.path.as_str()
        };
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{place} (line {line}, column {column})")?,
            _ => f.write_str(place)?,
        }
        write!(f, ": {} [{}]", self.message, self.code.as_str())
    }
}

/// Builds child paths: `path_join("stages[0]", "jobs")` → `stages[0].jobs`.
pub fn path_join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// Builds indexed paths: `path_index("stages", 2)` → `stages[2]`.
pub fn path_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}
