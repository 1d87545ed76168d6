//! Tests of the auto-increment rule and of what a run uses and stores.

use proptest::prelude::*;

use crate::params::{
    AutoIncrementError, AutoIncrementStep, VariableSpec, VariableType, auto_increment_for_run,
    next_auto_increment,
};

fn check_next(previous: &str, expected: Result<&str, AutoIncrementError>) {
    assert_eq!(
        next_auto_increment(previous)
            .as_deref()
            .map_err(Clone::clone),
        expected,
        "after {previous:?}"
    );
}

#[test]
fn the_last_number_grows_by_one() {
    let cases = [
        ("1.0.0", "1.0.1"),
        ("1.0.9", "1.0.10"),
        ("v2.3", "v2.4"),
        ("build-007", "build-008"),
        ("build-099", "build-100"),
        ("build-999", "build-1000"),
        ("1.0.0-rc1", "1.0.0-rc2"),
        ("0", "1"),
        ("9", "10"),
        ("00", "01"),
        ("release-2024.1-final", "release-2024.2-final"),
        ("x1y", "x2y"),
        ("版本7号", "版本8号"),
        ("99999999999999999", "100000000000000000"),
    ];
    for (previous, next) in cases {
        check_next(previous, Ok(next));
    }
}

#[test]
fn values_without_an_incrementable_number_are_refused() {
    let cases = [
        ("", AutoIncrementError::NoNumber),
        ("v", AutoIncrementError::NoNumber),
        ("release-final", AutoIncrementError::NoNumber),
        ("1234567890123456789", AutoIncrementError::NumberTooLarge),
        ("999999999999999999", AutoIncrementError::NumberTooLarge),
        (
            "v0000000000000000000001",
            AutoIncrementError::NumberTooLarge,
        ),
    ];
    for (previous, error) in cases {
        check_next(previous, Err(error));
    }
}

#[test]
fn incrementing_n_times_from_1_0_0_gives_1_0_n() {
    let mut value = "1.0.0".to_owned();
    for n in 1..=1000 {
        value = next_auto_increment(&value).expect("a version always has a number");
        assert_eq!(value, format!("1.0.{n}"));
    }
}

proptest! {
    #[test]
    fn incrementing_changes_only_the_last_number(
        prefix in "[a-z.\\-]{0,4}([0-9]{1,3}[a-z.\\-]{1,4}){0,2}",
        number in "[0-9]{1,17}",
        suffix in "[a-zA-Z.\\-_]{0,6}",
    ) {
        let previous = format!("{prefix}{number}{suffix}");
        let next = next_auto_increment(&previous).expect("at most 17 digits always increments");
        prop_assert_ne!(&next, &previous);
        prop_assert!(next.starts_with(&prefix), "{} does not start with {}", next, prefix);
        prop_assert!(next.ends_with(&suffix), "{} does not end with {}", next, suffix);
        let grown = &next[prefix.len()..next.len() - suffix.len()];
        let before: u64 = number.parse().expect("digits");
        let after: u64 = grown.parse().expect("digits");
        prop_assert_eq!(after, before + 1);
        prop_assert!(grown.len() >= number.len(), "the width never shrinks");
    }

    #[test]
    fn any_text_is_incremented_or_refused_without_panicking(previous in "\\PC{0,40}") {
        match next_auto_increment(&previous) {
            Ok(next) => prop_assert_ne!(next, previous),
            Err(err) => prop_assert!(matches!(err, AutoIncrementError::NoNumber | AutoIncrementError::NumberTooLarge)),
        }
    }
}

/// An autoIncrement variable with the given state.
fn auto_variable(value: &str, latest_value: Option<&str>, is_reset: bool) -> VariableSpec {
    VariableSpec {
        latest_value: latest_value.map(str::to_owned),
        is_reset,
        ..VariableSpec::new("VERSION", VariableType::AutoIncrement, value)
    }
}

#[test]
fn a_run_uses_the_value_as_is_when_never_run_or_reset_and_the_next_value_otherwise() {
    let cases = [
        ("never run", auto_variable("1.0.0", None, false), "1.0.0"),
        (
            "never run, empty latest value",
            auto_variable("1.0.0", Some(""), false),
            "1.0.0",
        ),
        (
            "never run, flagged reset",
            auto_variable("1.0.0", None, true),
            "1.0.0",
        ),
        (
            "ran before",
            auto_variable("1.0.0", Some("1.0.4"), false),
            "1.0.5",
        ),
        (
            "edited by the user",
            auto_variable("2.0.0", Some("1.0.4"), true),
            "2.0.0",
        ),
        (
            "edited to a value without a number is used as written",
            auto_variable("next", Some("1.0.4"), true),
            "next",
        ),
    ];
    for (situation, variable, expected) in cases {
        let step = auto_increment_for_run(&variable).expect(situation);
        let expected_step = AutoIncrementStep {
            value_for_run: expected.to_owned(),
            new_latest_value: expected.to_owned(),
        };
        assert_eq!(step, expected_step, "{situation}");
    }
}

#[test]
fn a_run_refuses_what_cannot_be_incremented() {
    let broken_latest = auto_variable("1.0.0", Some("none"), false);
    assert_eq!(
        auto_increment_for_run(&broken_latest),
        Err(AutoIncrementError::NoNumber)
    );
    let plain = VariableSpec::new("V", VariableType::String, "1.0.0");
    assert_eq!(
        auto_increment_for_run(&plain),
        Err(AutoIncrementError::NotAutoIncrement)
    );
}

#[test]
fn successive_runs_count_up_and_restart_from_an_edit() {
    let mut variable = auto_variable("1.0.0", None, false);
    let mut used = Vec::new();
    let mut run = |variable: &mut VariableSpec| {
        let step = auto_increment_for_run(variable).expect("incrementable");
        variable.latest_value = Some(step.new_latest_value);
        variable.is_reset = false;
        used.push(step.value_for_run);
    };
    run(&mut variable);
    run(&mut variable);
    run(&mut variable);
    variable.value = "2.0.0".to_owned();
    variable.is_reset = true;
    run(&mut variable);
    run(&mut variable);
    assert_eq!(used, ["1.0.0", "1.0.1", "1.0.2", "2.0.0", "2.0.1"]);
}
