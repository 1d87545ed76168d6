//! Tests of `resolve`: precedence, run-time values, auto-increment values and secrets.

use serde_json::json;

use crate::diagnostic::{Diagnostic, DiagnosticCode};
use crate::params::{
    GroupVariable, ParameterOrigin, ResolveInput, ResolvedParameter, ResolvedParameters,
    RuntimeValue, VariableGroup, VariableSpec, VariableType, resolve,
};

/// Builds the input of `resolve` step by step.
#[derive(Default)]
struct Scenario {
    predefined: Vec<(String, String)>,
    variables: Vec<VariableSpec>,
    groups: Vec<VariableGroup>,
    runtime: Vec<RuntimeValue>,
    auto_increment_values: Vec<(String, String)>,
}

impl Scenario {
    fn predefined(mut self, name: &str, value: &str) -> Self {
        self.predefined.push((name.to_owned(), value.to_owned()));
        self
    }

    fn variable(mut self, variable: VariableSpec) -> Self {
        self.variables.push(variable);
        self
    }

    /// A group named after its id, with `(name, value, is_secret)` variables.
    fn group(mut self, id: &str, variables: &[(&str, &str, bool)]) -> Self {
        let variables = variables
            .iter()
            .map(|&(name, value, is_secret)| GroupVariable {
                name: name.to_owned(),
                value: value.to_owned(),
                is_secret,
            })
            .collect();
        self.groups.push(VariableGroup {
            id: id.to_owned(),
            name: id.to_owned(),
            variables,
        });
        self
    }

    fn runtime(mut self, name: &str, value: &str) -> Self {
        self.runtime.push(RuntimeValue {
            name: name.to_owned(),
            value: value.to_owned(),
        });
        self
    }

    fn auto_increment(mut self, name: &str, value: &str) -> Self {
        self.auto_increment_values
            .push((name.to_owned(), value.to_owned()));
        self
    }

    fn resolve(&self) -> Result<ResolvedParameters, Vec<Diagnostic>> {
        resolve(&ResolveInput {
            predefined: &self.predefined,
            variables: &self.variables,
            groups: &self.groups,
            runtime: &self.runtime,
            auto_increment_values: &self.auto_increment_values,
        })
    }

    fn resolve_ok(&self) -> ResolvedParameters {
        self.resolve()
            .unwrap_or_else(|diagnostics| panic!("resolution failed: {diagnostics:#?}"))
    }

    fn resolve_err(&self) -> Vec<(String, DiagnosticCode)> {
        match self.resolve() {
            Ok(resolved) => panic!("resolution succeeded: {resolved:#?}"),
            Err(diagnostics) => diagnostics
                .into_iter()
                .map(|diagnostic| (diagnostic.path, diagnostic.code))
                .collect(),
        }
    }
}

fn string(name: &str, value: &str) -> VariableSpec {
    VariableSpec::new(name, VariableType::String, value)
}

fn runtime_string(name: &str, value: &str) -> VariableSpec {
    VariableSpec {
        is_runtime: true,
        ..string(name, value)
    }
}

fn runtime_enum(name: &str, value: &str, limits: &[&str]) -> VariableSpec {
    VariableSpec {
        is_runtime: true,
        limits: limits.iter().map(|option| (*option).to_owned()).collect(),
        ..VariableSpec::new(name, VariableType::Enum, value)
    }
}

fn secret(variable: VariableSpec) -> VariableSpec {
    VariableSpec {
        is_secret: true,
        ..variable
    }
}

/// `(value, origin)` of a resolved parameter.
fn lookup(resolved: &ResolvedParameters, name: &str) -> Option<(String, ParameterOrigin)> {
    resolved
        .get(name)
        .map(|parameter| (parameter.value.clone(), parameter.origin.clone()))
}

fn from_group(id: &str) -> ParameterOrigin {
    ParameterOrigin::Group {
        group_id: id.to_owned(),
    }
}

#[test]
fn predefined_beats_custom_beats_groups_and_the_last_group_wins() {
    let resolved = Scenario::default()
        .predefined("PIPELINE_ID", "pipe")
        .variable(string("PIPELINE_ID", "custom"))
        .variable(string("SHARED", "custom"))
        .group(
            "g1",
            &[
                ("PIPELINE_ID", "g1", false),
                ("SHARED", "g1", false),
                ("ONLY_GROUPS", "g1", false),
            ],
        )
        .group(
            "g2",
            &[("ONLY_GROUPS", "g2", false), ("ONLY_G1", "x", false)],
        )
        .group("g3", &[("ONLY_GROUPS", "g3", false)])
        .resolve_ok();
    let cases = [
        ("PIPELINE_ID", Some(("pipe", ParameterOrigin::Predefined))),
        ("SHARED", Some(("custom", ParameterOrigin::Custom))),
        ("ONLY_GROUPS", Some(("g3", from_group("g3")))),
        ("ONLY_G1", Some(("x", from_group("g2")))),
        ("MISSING", None),
    ];
    for (name, expected) in cases {
        let expected = expected.map(|(value, origin)| (value.to_owned(), origin));
        assert_eq!(lookup(&resolved, name), expected, "{name}");
    }
    let order: Vec<&str> = resolved
        .iter()
        .map(|parameter| parameter.name.as_str())
        .collect();
    assert_eq!(order, ["PIPELINE_ID", "SHARED", "ONLY_GROUPS", "ONLY_G1"]);
}

#[test]
fn runtime_values_apply_only_to_runtime_variables() {
    let resolved = Scenario::default()
        .predefined("PIPELINE_ID", "pipe")
        .variable(runtime_string("BRANCH", "main"))
        .variable(string("FIXED", "declared"))
        .variable(runtime_string("UNTOUCHED", "default"))
        .group("g1", &[("FROM_GROUP", "group", false)])
        .runtime("BRANCH", "feature")
        .runtime("FIXED", "overridden?")
        .runtime("UNKNOWN", "x")
        .runtime("FROM_GROUP", "overridden?")
        .runtime("PIPELINE_ID", "overridden?")
        .runtime("UNKNOWN", "y")
        .resolve_ok();
    let cases = [
        ("BRANCH", "feature"),
        ("FIXED", "declared"),
        ("UNTOUCHED", "default"),
        ("FROM_GROUP", "group"),
        ("PIPELINE_ID", "pipe"),
    ];
    for (name, value) in cases {
        assert_eq!(
            resolved.get(name).map(|parameter| parameter.value.as_str()),
            Some(value),
            "{name}"
        );
    }
    assert_eq!(resolved.get("UNKNOWN"), None);
    assert_eq!(
        resolved.ignored_runtime_names(),
        ["FIXED", "UNKNOWN", "FROM_GROUP", "PIPELINE_ID"]
    );
}

#[test]
fn the_last_runtime_value_for_a_name_counts() {
    let resolved = Scenario::default()
        .variable(runtime_string("V", "a"))
        .runtime("V", "b")
        .runtime("V", "c")
        .resolve_ok();
    assert_eq!(
        lookup(&resolved, "V"),
        Some(("c".to_owned(), ParameterOrigin::Custom))
    );
    assert!(resolved.ignored_runtime_names().is_empty());
}

#[test]
fn an_enum_runtime_value_must_be_one_of_its_options() {
    let scenario =
        || Scenario::default().variable(runtime_enum("TARGET_ENV", "dev", &["dev", "prod"]));
    let resolved = scenario().runtime("TARGET_ENV", "prod").resolve_ok();
    assert_eq!(
        lookup(&resolved, "TARGET_ENV"),
        Some(("prod".to_owned(), ParameterOrigin::Custom))
    );

    let refused = [
        ("outside the list", "staging"),
        ("empty", ""),
        ("injection", "dev; rm -rf /"),
        ("case", "Prod"),
    ];
    for (situation, value) in refused {
        let problems = scenario()
            .runtime("OTHER", "x")
            .runtime("TARGET_ENV", value)
            .resolve_err();
        assert_eq!(
            problems,
            [("variables[1].value".to_owned(), DiagnosticCode::OutOfRange)],
            "{situation}"
        );
    }
}

#[test]
fn runtime_values_are_size_checked_and_all_problems_reported() {
    let problems = Scenario::default()
        .variable(runtime_string("LONG", ""))
        .variable(runtime_string("NUL", ""))
        .variable(runtime_enum("TARGET_ENV", "dev", &["dev"]))
        .runtime("LONG", &"x".repeat(8193))
        .runtime("NUL", "a\u{0}")
        .runtime("TARGET_ENV", "prod")
        .resolve_err();
    let expected = [
        ("variables[0].value", DiagnosticCode::TooLarge),
        ("variables[1].value", DiagnosticCode::InvalidValue),
        ("variables[2].value", DiagnosticCode::OutOfRange),
    ];
    let expected: Vec<(String, DiagnosticCode)> = expected
        .iter()
        .map(|(path, code)| ((*path).to_owned(), *code))
        .collect();
    assert_eq!(problems, expected);

    let resolved = Scenario::default()
        .variable(runtime_string("MAX", ""))
        .runtime("MAX", &"x".repeat(8192))
        .resolve_ok();
    assert_eq!(
        resolved.get("MAX").map(|parameter| parameter.value.len()),
        Some(8192)
    );
}

#[test]
fn auto_increment_variables_take_the_allocated_value() {
    let auto = |name: &str| VariableSpec {
        is_runtime: true,
        ..VariableSpec::new(name, VariableType::AutoIncrement, "1.0.0")
    };
    let resolved = Scenario::default()
        .variable(auto("ALLOCATED"))
        .variable(auto("NOT_ALLOCATED"))
        .auto_increment("ALLOCATED", "1.0.7")
        .runtime("ALLOCATED", "9.9.9")
        .resolve_ok();
    assert_eq!(
        lookup(&resolved, "ALLOCATED"),
        Some(("1.0.7".to_owned(), ParameterOrigin::Custom))
    );
    assert_eq!(
        lookup(&resolved, "NOT_ALLOCATED"),
        Some(("1.0.0".to_owned(), ParameterOrigin::Custom))
    );
    assert_eq!(resolved.ignored_runtime_names(), ["ALLOCATED"]);
}

#[test]
fn secrets_follow_the_definition_that_supplied_the_value() {
    let resolved = Scenario::default()
        .predefined("PIPELINE_ID", "pipe")
        .variable(secret(string("TOKEN", "t0ken")))
        .variable(string("PLAIN", "visible"))
        .variable(secret(runtime_string("PASSWORD", "default-password")))
        .variable(secret(string("EMPTY_SECRET", "")))
        .variable(secret(string("SAME_AS_TOKEN", "t0ken")))
        .group(
            "g1",
            &[
                ("PLAIN", "group-secret", true),
                ("GROUP_KEY", "k3y", true),
                ("GROUP_HOST", "host", false),
            ],
        )
        .runtime("PASSWORD", "hunter2")
        .resolve_ok();
    assert_eq!(resolved.secret_values(), ["t0ken", "hunter2", "k3y"]);
    let secret_names: Vec<&str> = resolved
        .iter()
        .filter(|parameter| parameter.is_secret)
        .map(|parameter| parameter.name.as_str())
        .collect();
    assert_eq!(
        secret_names,
        [
            "TOKEN",
            "PASSWORD",
            "EMPTY_SECRET",
            "SAME_AS_TOKEN",
            "GROUP_KEY"
        ]
    );
}

#[test]
fn env_pairs_hold_everything_and_the_env_context_holds_custom_and_group_values() {
    let resolved = Scenario::default()
        .predefined("PIPELINE_ID", "pipe")
        .variable(secret(string("TOKEN", "t0ken")))
        .group("g1", &[("HOST", "host", false)])
        .resolve_ok();
    let pairs = [
        ("PIPELINE_ID", "pipe"),
        ("TOKEN", "t0ken"),
        ("HOST", "host"),
    ];
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    assert_eq!(resolved.env_pairs(), pairs);
    assert_eq!(
        resolved.env_context(),
        json!({"TOKEN": "t0ken", "HOST": "host"})
    );
}

#[test]
fn refused_names_fail_resolution_whatever_the_stored_data_says() {
    let problems = Scenario::default()
        .variable(string("LD_PRELOAD", "/tmp/evil.so"))
        .variable(string("bad name", "x"))
        .group(
            "g1",
            &[("OK", "1", false), ("BASH_ENV", "/tmp/evil.sh", false)],
        )
        .resolve_err();
    let expected = [
        ("pipeline.variables[0].name", DiagnosticCode::InvalidValue),
        ("pipeline.variables[1].name", DiagnosticCode::InvalidValue),
        (
            "variable_groups[0].variables[1].name",
            DiagnosticCode::InvalidValue,
        ),
    ];
    let expected: Vec<(String, DiagnosticCode)> = expected
        .iter()
        .map(|(path, code)| ((*path).to_owned(), *code))
        .collect();
    assert_eq!(problems, expected);
}

#[test]
fn a_snapshot_can_be_rebuilt_and_keeps_the_first_of_a_name() {
    let parameter = |name: &str, value: &str| ResolvedParameter {
        name: name.to_owned(),
        value: value.to_owned(),
        is_secret: false,
        origin: ParameterOrigin::Custom,
    };
    let rebuilt = ResolvedParameters::from_parameters([
        parameter("A", "1"),
        parameter("B", "2"),
        parameter("A", "3"),
    ]);
    assert_eq!(rebuilt.len(), 2);
    assert_eq!(
        rebuilt.get("A").map(|found| found.value.as_str()),
        Some("1")
    );
    let names: Vec<&str> = (&rebuilt)
        .into_iter()
        .map(|found| found.name.as_str())
        .collect();
    assert_eq!(names, ["A", "B"]);
}
