//! Tests of `parse_variables` and `check_variable_name`: every rule, with paths.

use serde_json::{Value, json};

use crate::diagnostic::{Diagnostic, DiagnosticCode};
use crate::params::{VariableSpec, VariableType, check_variable_name, parse_variables};

use DiagnosticCode::{Duplicate, InvalidValue, Missing, OutOfRange, TooLarge};

/// Parses `input` under `variables`, asserts which variables are valid (by name, in order) and
/// which diagnostics are reported (path and code, in order), and returns the valid variables.
fn check_parse(
    input: Value,
    expect_valid: &[&str],
    expect_diagnostics: &[(&str, DiagnosticCode)],
) -> Vec<VariableSpec> {
    let (variables, diagnostics) = parse(&input);
    let names: Vec<&str> = variables
        .iter()
        .map(|variable| variable.name.as_str())
        .collect();
    assert_eq!(
        names, expect_valid,
        "valid variables; diagnostics: {diagnostics:#?}"
    );
    let found: Vec<(&str, DiagnosticCode)> = diagnostics
        .iter()
        .map(|diagnostic| (diagnostic.path.as_str(), diagnostic.code))
        .collect();
    assert_eq!(found, expect_diagnostics, "diagnostics: {diagnostics:#?}");
    variables
}

fn parse(input: &Value) -> (Vec<VariableSpec>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let variables = parse_variables(input, "variables", &mut diagnostics);
    (variables, diagnostics)
}

/// The single valid variable parsed from a one-element input.
fn parse_one(input: Value) -> VariableSpec {
    let mut variables = check_parse(input, &["V"], &[]);
    variables.remove(0)
}

#[test]
fn a_full_v5_variable_keeps_every_field() {
    let variable = parse_one(json!([{
        "pipeline_id": "0b1c", "name": "V", "sequence": 3, "type": "enum", "value": "dev",
        "is_secret": true, "description": "target env", "is_runtime": true, "limits": ["dev", "prod"],
        "is_reset": false, "latest_value": "", "runtime_value": "prod", "unknown_field": {"kept": "ignored"}
    }]));
    let expected = VariableSpec {
        name: "V".to_owned(),
        var_type: VariableType::Enum,
        value: "dev".to_owned(),
        is_secret: true,
        is_runtime: true,
        limits: vec!["dev".to_owned(), "prod".to_owned()],
        description: "target env".to_owned(),
        sequence: Some(3),
        is_reset: false,
        latest_value: Some(String::new()),
    };
    assert_eq!(variable, expected);
}

#[test]
fn absent_fields_take_their_defaults() {
    let variable = parse_one(json!([{"name": "V"}]));
    assert_eq!(variable, VariableSpec::new("V", VariableType::String, ""));
}

#[test]
fn null_means_no_variables() {
    check_parse(Value::Null, &[], &[]);
    check_parse(json!([]), &[], &[]);
    check_parse(json!({}), &[], &[]);
}

#[test]
fn type_names_of_v5_and_v3_are_accepted() {
    let cases = [
        ("string", VariableType::String),
        ("enum", VariableType::Enum),
        ("autoIncrement", VariableType::AutoIncrement),
        ("autoincrement", VariableType::AutoIncrement),
        ("normalparam", VariableType::String),
        ("enumparam", VariableType::Enum),
        ("growthparam", VariableType::AutoIncrement),
        ("", VariableType::String),
    ];
    for (wire, expected) in cases {
        let variable =
            parse_one(json!([{"name": "V", "type": wire, "value": "1", "limits": ["1"]}]));
        assert_eq!(variable.var_type, expected, "type {wire:?}");
    }
}

#[test]
fn v3_parameter_keys_are_understood() {
    let variable = parse_one(
        json!([{"name": "V", "param_type": "growthparam", "value": "1.0.0", "is_static": false}]),
    );
    assert_eq!(variable.var_type, VariableType::AutoIncrement);
    assert!(
        variable.is_runtime,
        "a non-static v3 parameter is settable per run"
    );

    let variable = parse_one(
        json!([{"name": "V", "paramtype": "normalparam", "value": "x", "is_static": "true"}]),
    );
    assert_eq!(variable.var_type, VariableType::String);
    assert!(!variable.is_runtime);
}

#[test]
fn scalars_given_as_other_types_are_tolerated() {
    let variable = parse_one(json!([{
        "name": "V", "type": "enum", "value": 42, "limits": [42, "43", 4.5],
        "is_secret": "true", "is_runtime": 1, "is_reset": "FALSE", "sequence": "7"
    }]));
    assert_eq!(variable.value, "42");
    assert_eq!(variable.limits, ["42", "43", "4.5"]);
    assert!(variable.is_secret);
    assert!(variable.is_runtime);
    assert!(!variable.is_reset);
    assert_eq!(variable.sequence, Some(7));

    let variable = parse_one(
        json!([{"name": "V", "value": true, "is_secret": "0", "is_runtime": "1", "sequence": 2.0}]),
    );
    assert_eq!(variable.value, "true");
    assert!(!variable.is_secret);
    assert!(variable.is_runtime);
    assert_eq!(variable.sequence, Some(2));
}

#[test]
fn fields_of_the_wrong_shape_are_reported() {
    check_parse(
        json!([{"name": "V", "value": ["a"], "is_secret": "yes", "is_runtime": 2, "sequence": "first",
                "limits": [{"name": "x"}], "description": {"a": 1}}]),
        &[],
        &[
            ("variables[0].value", InvalidValue),
            ("variables[0].is_secret", InvalidValue),
            ("variables[0].is_runtime", InvalidValue),
            ("variables[0].limits[0]", InvalidValue),
            ("variables[0].description", InvalidValue),
            ("variables[0].sequence", InvalidValue),
        ],
    );
    check_parse(
        json!([{"name": "V", "limits": {"a": "b"}}]),
        &[],
        &[("variables[0].limits", InvalidValue)],
    );
    check_parse(
        json!(["V", 3]),
        &[],
        &[
            ("variables[0]", InvalidValue),
            ("variables[1]", InvalidValue),
        ],
    );
    check_parse(json!("V"), &[], &[("variables", InvalidValue)]);
}

#[test]
fn each_rule_is_reported_with_its_path_and_code() {
    let long_value = "x".repeat(8193);
    let long_option = "o".repeat(1025);
    let long_description = "d".repeat(1025);
    let long_name = "N".repeat(129);
    let cases: Vec<(&str, Value, DiagnosticCode, &str)> = vec![
        ("name is required", json!({}), Missing, "variables[0].name"),
        (
            "name must not be empty",
            json!({"name": ""}),
            Missing,
            "variables[0].name",
        ),
        (
            "name syntax",
            json!({"name": "my-var"}),
            InvalidValue,
            "variables[0].name",
        ),
        (
            "name may not start with a digit",
            json!({"name": "1V"}),
            InvalidValue,
            "variables[0].name",
        ),
        (
            "name length",
            json!({"name": long_name}),
            TooLarge,
            "variables[0].name",
        ),
        (
            "unknown type",
            json!({"name": "V", "type": "number"}),
            InvalidValue,
            "variables[0].type",
        ),
        (
            "value length",
            json!({"name": "V", "value": long_value}),
            TooLarge,
            "variables[0].value",
        ),
        (
            "value with NUL",
            json!({"name": "V", "value": "a\u{0}b"}),
            InvalidValue,
            "variables[0].value",
        ),
        (
            "description length",
            json!({"name": "V", "description": long_description}),
            TooLarge,
            "variables[0].description",
        ),
        (
            "negative sequence",
            json!({"name": "V", "sequence": -1}),
            OutOfRange,
            "variables[0].sequence",
        ),
        (
            "huge sequence",
            json!({"name": "V", "sequence": 2_147_483_648_i64}),
            OutOfRange,
            "variables[0].sequence",
        ),
        (
            "enum needs options",
            json!({"name": "V", "type": "enum"}),
            Missing,
            "variables[0].limits",
        ),
        (
            "enum option length",
            json!({"name": "V", "type": "enum", "limits": ["a", long_option]}),
            TooLarge,
            "variables[0].limits[1]",
        ),
        (
            "enum default among options",
            json!({"name": "V", "type": "enum", "value": "c", "limits": ["a", "b"]}),
            OutOfRange,
            "variables[0].value",
        ),
        (
            "autoIncrement needs a number",
            json!({"name": "V", "type": "autoIncrement", "value": "vX"}),
            InvalidValue,
            "variables[0].value",
        ),
        (
            "autoIncrement needs a value",
            json!({"name": "V", "type": "autoIncrement"}),
            InvalidValue,
            "variables[0].value",
        ),
        (
            "autoIncrement number too large",
            json!({"name": "V", "type": "autoIncrement", "value": "1234567890123456789"}),
            InvalidValue,
            "variables[0].value",
        ),
        (
            "autoIncrement last value needs a number",
            json!({"name": "V", "type": "autoIncrement", "value": "1", "latest_value": "x"}),
            InvalidValue,
            "variables[0].latest_value",
        ),
    ];
    for (rule, variable, code, path) in cases {
        let (valid, diagnostics) = parse(&json!([variable]));
        assert!(valid.is_empty(), "{rule}: the variable must be refused");
        let found: Vec<(&str, DiagnosticCode)> = diagnostics
            .iter()
            .map(|d| (d.path.as_str(), d.code))
            .collect();
        assert_eq!(found, [(path, code)], "{rule}: {diagnostics:#?}");
    }
}

#[test]
fn an_enum_may_have_an_empty_default() {
    let variable =
        parse_one(json!([{"name": "V", "type": "enum", "value": "", "limits": ["a", "b"]}]));
    assert_eq!(variable.value, "");
}

#[test]
fn all_problems_are_reported_at_once() {
    check_parse(
        json!([
            {"name": "GOOD", "value": "1"},
            {"name": "bad name"},
            {"name": "GOOD", "value": "2"},
            {"name": "E", "type": "enum", "value": "x", "limits": ["a"]},
            {"name": "PATH"},
            {"name": "AUTO", "type": "growthparam", "value": "none"},
            {"name": "ALSO_GOOD", "type": "enum", "limits": ["a"], "value": "a"},
            {"type": "bogus"}
        ]),
        &["GOOD", "ALSO_GOOD"],
        &[
            ("variables[1].name", InvalidValue),
            ("variables[2].name", Duplicate),
            ("variables[3].value", OutOfRange),
            ("variables[4].name", InvalidValue),
            ("variables[5].value", InvalidValue),
            ("variables[7].type", InvalidValue),
            ("variables[7].name", Missing),
        ],
    );
}

#[test]
fn a_duplicate_is_reported_even_when_the_first_use_is_invalid() {
    check_parse(
        json!([{"name": "V", "type": "enum"}, {"name": "V"}]),
        &[],
        &[
            ("variables[0].limits", Missing),
            ("variables[1].name", Duplicate),
        ],
    );
}

#[test]
fn more_than_one_hundred_variables_are_too_many() {
    let variables: Vec<Value> = (0..101)
        .map(|index| json!({"name": format!("V{index}")}))
        .collect();
    let (valid, diagnostics) = parse(&Value::Array(variables));
    assert_eq!(
        valid.len(),
        101,
        "each variable is still checked on its own"
    );
    let found: Vec<(&str, DiagnosticCode)> = diagnostics
        .iter()
        .map(|d| (d.path.as_str(), d.code))
        .collect();
    assert_eq!(found, [("variables", TooLarge)]);

    let variables: Vec<Value> = (0..100)
        .map(|index| json!({"name": format!("V{index}")}))
        .collect();
    let (valid, diagnostics) = parse(&Value::Array(variables));
    assert_eq!((valid.len(), diagnostics.len()), (100, 0));
}

#[test]
fn the_yaml_map_form_takes_defaults_or_objects() {
    let variables = check_parse(
        json!({
            "VERSION": "1.0.0",
            "COUNT": 3,
            "EMPTY": null,
            "TARGET_ENV": {"type": "enum", "value": "dev", "limits": ["dev", "prod"], "is_runtime": true},
            "TOKEN": {"value": "s3cret", "is_secret": "true"}
        }),
        &["VERSION", "COUNT", "EMPTY", "TARGET_ENV", "TOKEN"],
        &[],
    );
    assert_eq!(
        variables[0],
        VariableSpec::new("VERSION", VariableType::String, "1.0.0")
    );
    assert_eq!(variables[1].value, "3");
    assert_eq!(variables[2].value, "");
    assert_eq!(variables[3].var_type, VariableType::Enum);
    assert!(variables[3].is_runtime);
    assert!(variables[4].is_secret);
}

#[test]
fn the_yaml_map_form_reports_at_the_key() {
    check_parse(
        json!({
            "LD_PRELOAD": "/tmp/x.so",
            "TARGET_ENV": {"type": "enum", "value": "qa", "limits": ["dev"]},
            "OTHER": {"name": "DIFFERENT"},
            "SAME": {"name": "SAME"},
            "LIST": ["a"]
        }),
        &["SAME"],
        &[
            ("variables.LD_PRELOAD", InvalidValue),
            ("variables.TARGET_ENV.value", OutOfRange),
            ("variables.OTHER.name", InvalidValue),
            ("variables.LIST", InvalidValue),
        ],
    );
}

#[test]
fn dangerous_names_are_refused_whatever_their_case() {
    let names = [
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "PROMPT_COMMAND",
        "HOME",
        "SHELL",
        "CDPATH",
        "GLOBIGNORE",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "NODE_OPTIONS",
        "PERL5OPT",
        "RUBYOPT",
        "JAVA_TOOL_OPTIONS",
        "GIT_SSH_COMMAND",
        "BASH_FUNC_foo",
        "LD_ANYTHING",
        "RUNNEL_TOKEN",
        "path",
        "Ld_Preload",
        "bash_func_x",
        "runnel_",
        "DYLD_INSERT_LIBRARIES",
        "GIT_CONFIG_COUNT",
    ];
    for name in names {
        let error = check_variable_name(name).expect_err(name);
        assert!(error.contains("not allowed"), "{name}: {error}");
        check_parse(
            json!([{"name": name}]),
            &[],
            &[("variables[0].name", InvalidValue)],
        );
    }
}

#[test]
fn shell_only_names_are_refused_in_their_exact_case() {
    for name in ["ENV", "IFS", "PS4", "BASH_ENV", "PROMPT_COMMAND"] {
        assert!(check_variable_name(name).is_err(), "{name}");
    }
    // The spec's own example (§4.1) declares a variable `env`; shells only read `ENV`.
    for name in ["env", "ifs", "Ps4", "bash_env", "prompt_command"] {
        assert_eq!(check_variable_name(name), Ok(()), "{name}");
    }
    check_parse(
        json!([{"name": "env", "sequence": 1, "type": "enum", "value": "dev", "is_secret": false,
                "description": "target env", "is_runtime": true, "limits": ["dev", "prod"]}]),
        &["env"],
        &[],
    );
}

#[test]
fn predefined_names_are_reserved_with_a_reason() {
    for name in ["PIPELINE_ID", "TIMESTAMP", "commit_id", "Webhook_Payload"] {
        let error = check_variable_name(name).expect_err(name);
        assert!(
            error.contains("reserved for a system predefined parameter"),
            "{name}: {error}"
        );
    }
}

#[test]
fn ordinary_names_are_accepted() {
    for name in [
        "VERSION",
        "_x",
        "a1",
        "IMAGE_TAG",
        "MY_PATH",
        "PATHS",
        "LD",
        "ENV_NAME",
        "HOME_DIR",
        &"N".repeat(128),
    ] {
        assert_eq!(check_variable_name(name), Ok(()), "{name}");
    }
}

#[test]
fn messages_never_quote_values() {
    let (_, diagnostics) = parse(&json!([
        {"name": "E", "type": "enum", "value": "hunter2", "limits": ["a"], "is_secret": true},
        {"name": "A", "type": "autoIncrement", "value": "hunter-without-number"}
    ]));
    assert_eq!(diagnostics.len(), 2);
    for diagnostic in diagnostics {
        assert!(!diagnostic.message.contains("hunter"), "{diagnostic}");
    }
}

#[test]
fn an_enum_mismatch_lists_the_options_when_they_are_not_secret() {
    let (_, diagnostics) =
        parse(&json!([{"name": "E", "type": "enum", "value": "qa", "limits": ["dev", "prod"]}]));
    assert_eq!(
        diagnostics[0].message,
        r#"the value of `E` must be one of its options: "dev", "prod""#
    );
}
