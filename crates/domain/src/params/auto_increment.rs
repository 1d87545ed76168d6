//! The auto-increment rule: which number grows, and what a run uses and stores (G5).

use super::variable::{VariableSpec, VariableType};

/// The most digits an incrementable number may have (before and after incrementing).
pub const MAX_AUTO_INCREMENT_DIGITS: usize = 18;

/// Why a value cannot be incremented. Messages never quote the value: it may be secret (S2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoIncrementError {
    #[error("contains no number to increment")]
    NoNumber,
    #[error("has a number too large to increment (at most {MAX_AUTO_INCREMENT_DIGITS} digits)")]
    NumberTooLarge,
    #[error("belongs to a variable that is not of type autoIncrement")]
    NotAutoIncrement,
}

/// What a run uses for an autoIncrement variable, and what to store afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoIncrementStep {
    /// The value this run sees.
    pub value_for_run: String,
    /// The variable's new `latest_value`; its `is_reset` becomes `false`.
    pub new_latest_value: String,
}

/// Increments the last run of ASCII digits in `previous` by one, keeping everything else and the
/// number's zero-padding width when the result still fits in it.
///
/// `1.0.9` → `1.0.10`, `v2.3` → `v2.4`, `build-007` → `build-008`, `build-099` → `build-100`,
/// `1.0.0-rc1` → `1.0.0-rc2`. No digits → [`AutoIncrementError::NoNumber`]; a number of more than
/// [`MAX_AUTO_INCREMENT_DIGITS`] digits, before or after incrementing →
/// [`AutoIncrementError::NumberTooLarge`].
pub fn next_auto_increment(previous: &str) -> Result<String, AutoIncrementError> {
    let bytes = previous.as_bytes();
    let end = bytes
        .iter()
        .rposition(u8::is_ascii_digit)
        .ok_or(AutoIncrementError::NoNumber)?
        + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|byte| !byte.is_ascii_digit())
        .map_or(0, |index| index + 1);
    let digits = &previous[start..end];
    if digits.len() > MAX_AUTO_INCREMENT_DIGITS {
        return Err(AutoIncrementError::NumberTooLarge);
    }
    // At most 18 ASCII digits always parse into a u64, and adding one cannot overflow it.
    let number: u64 = digits
        .parse()
        .map_err(|_| AutoIncrementError::NumberTooLarge)?;
    let next = format!("{:0width$}", number + 1, width = digits.len());
    if next.len() > MAX_AUTO_INCREMENT_DIGITS {
        return Err(AutoIncrementError::NumberTooLarge);
    }
    Ok(format!("{}{next}{}", &previous[..start], &previous[end..]))
}

/// What a run uses for an autoIncrement variable and what to store as its new `latest_value`.
///
/// * Never run (`latest_value` is `None` or empty) or reset by the user (`is_reset = true`):
///   the run uses `value` as-is.
/// * Otherwise: the run uses [`next_auto_increment`] of `latest_value`.
///
/// After the run is committed: `latest_value` = the value used, `is_reset = false`. The store
/// calls this inside the run's own transaction, with the variable as committed, so concurrent
/// runs never see the same value (G5). This function is the only place the rule lives.
pub fn auto_increment_for_run(var: &VariableSpec) -> Result<AutoIncrementStep, AutoIncrementError> {
    if var.var_type != VariableType::AutoIncrement {
        return Err(AutoIncrementError::NotAutoIncrement);
    }
    let value_for_run = match var.latest_value.as_deref() {
        Some(latest_value) if !latest_value.is_empty() && !var.is_reset => {
            next_auto_increment(latest_value)?
        }
        _ => var.value.clone(),
    };
    Ok(AutoIncrementStep {
        new_latest_value: value_for_run.clone(),
        value_for_run,
    })
}
