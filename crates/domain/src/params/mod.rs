//! Pipeline parameters: custom variables, the auto-increment rule, system predefined parameters, and the parameter set of a run.
//!
//! # Custom variables
//!
//! A pipeline declares up to 100 custom variables ([`parse_variables`]), each of type `string`,
//! `enum` (one of its options) or `autoIncrement` (spec §12.5). Names match
//! `[A-Za-z_][A-Za-z0-9_]*` and have at most 128 characters. Names that would let a value
//! change how programs are found or run (`PATH`, `LD_PRELOAD`, `BASH_ENV`, `NODE_OPTIONS`, any
//! name starting with `LD_`, `BASH_FUNC_` or `RUNNEL_`, …) are refused whatever their case, as
//! are the names of the system predefined parameters ([`check_variable_name`]). Variables only
//! POSIX shells read (`ENV`, `IFS`, `PS4`, …) are refused in exactly that case: `env` is fine.
//!
//! # Auto-increment rule
//!
//! An `autoIncrement` variable holds a version-like value such as `1.0.0`. The value a run uses is:
//!
//! * the variable's value as written, for its first run and for the first run after the value
//!   was edited (`is_reset`);
//! * otherwise the value the previous run used, with its **last** group of digits increased by
//!   one. Everything around that number is kept, and so are leading zeros as long as the number
//!   still fits in the same width: `1.0.9` → `1.0.10`, `v2.3` → `v2.4`, `build-007` →
//!   `build-008`, `build-099` → `build-100`, `1.0.0-rc1` → `1.0.0-rc2`.
//!
//! A value must contain at least one digit, and its last number may have at most 18 digits.
//! Each run of a pipeline gets its own value: two runs never use the same one (unless the value
//! is edited back to one already used), and no value is skipped between runs
//! ([`next_auto_increment`], [`auto_increment_for_run`]). A run-time value given for an
//! `autoIncrement` variable is ignored.
//!
//! # Precedence
//!
//! A run sees the system predefined parameters ([`predefined_parameters`], spec §12.6), the
//! custom variables and the variables of bound variable groups. When names collide, predefined
//! parameters win over custom variables, which win over variable groups; among groups, the one
//! bound last wins. A custom variable declared `is_runtime` may be given another value when the
//! run starts; an enum's run-time value must be one of its options. A value is secret when the
//! definition that supplied it says so ([`resolve`]).

mod auto_increment;
mod fields;
mod names;
mod predefined;
mod resolve;
mod variable;

#[cfg(test)]
mod tests;

pub use auto_increment::{
    AutoIncrementError, AutoIncrementStep, MAX_AUTO_INCREMENT_DIGITS, auto_increment_for_run,
    next_auto_increment,
};
pub use names::{MAX_NAME_CHARS, check_variable_name};
pub use predefined::{
    PREDEFINED_NAMES, RunContextInfo, SHORT_COMMIT_CHARS, SOURCE_PARAMETER_SUFFIXES, SourceInfo,
    format_timestamp, is_predefined_name, pipeline_context, predefined_parameters, source_key,
    source_parameter_names, sources_context,
};
pub use resolve::{
    GroupVariable, ParameterOrigin, ResolveInput, ResolvedParameter, ResolvedParameters,
    RuntimeValue, VariableGroup, resolve,
};
pub use variable::{
    MAX_DESCRIPTION_CHARS, MAX_LIMIT_CHARS, MAX_SEQUENCE, MAX_VALUE_CHARS, MAX_VARIABLES,
    VariableSpec, VariableType, parse_variables,
};
