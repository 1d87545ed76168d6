//! Variable names: the allowed syntax, names refused for security (S4), and reserved predefined names.

use crate::diagnostic::DiagnosticCode;

/// The longest accepted variable name, in characters (spec §13 CustomVariable).
pub const MAX_NAME_CHARS: usize = 128;

/// Checks that `name` may be used for a custom variable, a run-time value or a step environment key.
///
/// A name must match `[A-Za-z_][A-Za-z0-9_]*`, be at most [`MAX_NAME_CHARS`] long, must not be
/// one that lets data become code or hijack a step's environment (S4: `PATH`, `LD_PRELOAD`,
/// `BASH_ENV`, anything starting with `LD_`, `BASH_FUNC_` or `RUNNEL_`, …), and must not be a
/// system predefined parameter name ([`super::PREDEFINED_NAMES`]). The last two checks ignore
/// ASCII case, because environments are case-insensitive on Windows agents; the exception is
/// the variables only POSIX shells read (`ENV`, `IFS`, `PS4`, …), which are case-sensitive
/// everywhere they matter, so `env` is allowed while `ENV` is not.
///
/// The error is a sentence suitable for a user; it quotes the name, never a value.
pub fn check_variable_name(name: &str) -> Result<(), String> {
    match name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(problem.message),
    }
}

/// Why a name is refused, with the diagnostic code that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameProblem {
    pub(crate) code: DiagnosticCode,
    pub(crate) message: String,
}

/// Every check of [`check_variable_name`], keeping the diagnostic code.
pub(crate) fn name_problem(name: &str) -> Option<NameProblem> {
    if let Some(problem) = env_name_problem(name) {
        return Some(problem);
    }
    if is_fixed_predefined(name) {
        return Some(NameProblem {
            code: DiagnosticCode::InvalidValue,
            message: format!(
                "variable name `{name}` is reserved for a system predefined parameter; predefined parameters take \
                 precedence, so a custom value would never be used — choose another name"
            ),
        });
    }
    None
}

/// The checks every name passed to a step's environment must pass, whatever its origin: all of
/// [`check_variable_name`] except the reservation of predefined names.
pub(crate) fn env_name_problem(name: &str) -> Option<NameProblem> {
    let problem = |code, message: String| Some(NameProblem { code, message });
    if name.is_empty() {
        return problem(
            DiagnosticCode::Missing,
            "a variable name is required".to_owned(),
        );
    }
    let length = name.chars().count();
    if length > MAX_NAME_CHARS {
        return problem(
            DiagnosticCode::TooLarge,
            format!(
                "a variable name may have at most {MAX_NAME_CHARS} characters, this one has {length}"
            ),
        );
    }
    if !has_name_syntax(name) {
        return problem(
            DiagnosticCode::InvalidValue,
            format!(
                "variable name {name:?} is not valid: it must start with a letter or `_` and contain only letters, digits and `_`"
            ),
        );
    }
    if let Some(reason) = dangerous_name_reason(name) {
        return problem(
            DiagnosticCode::InvalidValue,
            format!("variable name `{name}` is not allowed: {reason}"),
        );
    }
    None
}

/// True when `name` is refused for security (S4), whatever its origin.
pub(crate) fn is_dangerous_name(name: &str) -> bool {
    dangerous_name_reason(name).is_some()
}

/// Names that change how a loader, interpreter or tool finds and runs code, or that Windows
/// reads; compared ignoring ASCII case, because environments are case-insensitive on Windows
/// (`path` there *is* `PATH`).
const DANGEROUS_NAMES: &[&str] = &[
    // Program lookup and the user's files.
    "PATH",
    "HOME",
    "SHELL",
    // Dynamic loader and C library.
    "GCONV_PATH",
    // Interpreters and runtimes.
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONWARNINGS",
    "NODE_OPTIONS",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    // Git and tools that run helper programs.
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_EXEC_PATH",
    "GIT_PROXY_COMMAND",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "GIT_CONFIG",
    "PAGER",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    "LESSOPEN",
    "LESSCLOSE",
    // Windows.
    "COMSPEC",
    "PATHEXT",
    "SYSTEMROOT",
];

/// Variables that POSIX shells (sh, bash, zsh) read to run code or split words. Only those
/// shells read them, and they are case-sensitive everywhere, so these are compared exactly:
/// `ENV` is refused while `env` (the spec's own example variable, §4.1) stays usable.
const SHELL_NAMES: &[&str] = &[
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS0",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "IFS",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "ZDOTDIR",
    "BASH_XTRACEFD",
    "BASH_LOADABLES_PATH",
];

/// Prefixes refused for the same reason: whole families of loader, shell-function, git-config
/// and Runnel variables.
const DANGEROUS_PREFIXES: &[(&str, &str)] = &[
    (
        "BASH_FUNC_",
        "names starting with `BASH_FUNC_` define shell functions",
    ),
    (
        "LD_",
        "names starting with `LD_` configure the dynamic loader",
    ),
    (
        "DYLD_",
        "names starting with `DYLD_` configure the dynamic loader",
    ),
    (
        "GIT_CONFIG_",
        "names starting with `GIT_CONFIG_` inject git configuration",
    ),
    (
        "RUNNEL_",
        "names starting with `RUNNEL_` are reserved for Runnel itself",
    ),
];

fn dangerous_name_reason(name: &str) -> Option<&'static str> {
    if DANGEROUS_NAMES
        .iter()
        .any(|dangerous| dangerous.eq_ignore_ascii_case(name))
        || SHELL_NAMES.contains(&name)
    {
        return Some(
            "it controls how programs are found or run in a step, so a value could become code",
        );
    }
    DANGEROUS_PREFIXES
        .iter()
        .find(|(prefix, _)| starts_with_ignore_ascii_case(name, prefix))
        .map(|(_, reason)| *reason)
}

fn is_fixed_predefined(name: &str) -> bool {
    super::PREDEFINED_NAMES
        .iter()
        .any(|predefined| predefined.eq_ignore_ascii_case(name))
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn has_name_syntax(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn starts_with_ignore_ascii_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}
