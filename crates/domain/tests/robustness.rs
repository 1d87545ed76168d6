//! Hostile and random input: `compile_text` answers with diagnostics, never panics, and answers
//! fast: well under a second in a debug build for every document here. The assertion only
//! guards against blow-ups ([`TIME_LIMIT`]); run with `--nocapture` to see the measured times.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use runnel_domain::compile::MAX_DIAGNOSTICS;
use runnel_domain::{Diagnostic, DiagnosticCode, Format, compile_text};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A guard against blow-ups, not a performance figure: a hostile document that made the
/// compiler do exponential or quadratic work (alias expansion, re-scanning a 14 MB script per
/// reference) would take hours, while a linear pass takes well under a second in a debug
/// build. The limit is far above anything a loaded CI machine needs, so it fails only on a
/// real blow-up; the measured time is printed with each case (performance figures come from
/// `runnel lint` and the benchmark commands, never from test timings).
const TIME_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_hundred_thousand_steps_in_one_job_are_refused_quickly() {
    let mut json =
        String::from(r#"{"stages":[{"name":"big","jobs":[{"name":"everything","steps":["#);
    for index in 0..100_000 {
        if index > 0 {
            json.push(',');
        }
        write!(
            json,
            r#"{{"task":"official_shell_plugin","inputs":[{{"key":"OFFICIAL_SHELL_SCRIPT_INPUT","value":"echo {index}"}}]}}"#
        )
        .unwrap();
    }
    json.push_str("]}]}]}");
    let diagnostics = refused_in_time("100 000 steps, one job (JSON)", &json, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    let mut yaml = String::from("jobs:\n  - name: everything\n    steps:\n");
    for index in 0..100_000 {
        writeln!(yaml, "      - echo {index}").unwrap();
    }
    let diagnostics = refused_in_time("100 000 steps, one job (YAML)", &yaml, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
}

#[test]
fn a_hundred_thousand_steps_spread_over_many_jobs_are_refused_quickly() {
    let step = json!({"task": "official_shell_plugin",
        "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "true"}]});
    let jobs: Vec<Value> = (0..500)
        .map(|job| json!({"name": format!("job {job}"), "steps": vec![step.clone(); 200]}))
        .collect();
    let json = json!({"stages": [{"name": "wide", "jobs": jobs}]}).to_string();
    let diagnostics = refused_in_time("100 000 steps, 500 jobs (JSON)", &json, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    let mut yaml = String::from("jobs:\n");
    for job in 0..500 {
        writeln!(yaml, "  - name: job {job}\n    steps:").unwrap();
        for _ in 0..200 {
            yaml.push_str("      - run: 'true'\n");
        }
    }
    let diagnostics = refused_in_time("100 000 steps, 500 jobs (YAML)", &yaml, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    // "Billion laughs": nine levels of nine aliases each expand to 9^9 strings.
    let mut yaml = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 9].join(", ");
        writeln!(yaml, "a{level}: &a{level} [{items}]").unwrap();
    }
    yaml.push_str("stages: *a9\n");
    let diagnostics = refused_in_time("alias bomb (YAML)", &yaml, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::Syntax);

    // The same bomb where a pipeline expects a script.
    let mut yaml = String::from("x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let previous = format!("*x{}", level - 1);
        let items = [previous.as_str(); 9].join(", ");
        writeln!(yaml, "x{level}: &x{level} [{items}]").unwrap();
    }
    yaml.push_str("jobs:\n  - name: j\n    steps:\n      - run: *x9\n");
    let diagnostics = refused_in_time("alias bomb in a step (YAML)", &yaml, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::Syntax);
}

#[test]
fn ten_thousand_stages_are_refused_quickly() {
    let stages: Vec<Value> = (0..10_000)
        .map(|index| {
            json!({"name": format!("stage {index}"), "identifier": format!("s{index}"),
                "jobs": [{"name": "j", "identifier": format!("j{index}"),
                          "steps": [{"task": "official_shell_plugin",
                                     "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "true"}]}]}]})
        })
        .collect();
    let json = json!({ "stages": stages }).to_string();
    let diagnostics = refused_in_time("10 000 stages (JSON)", &json, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    let mut yaml = String::from("stages:\n");
    for index in 0..10_000 {
        writeln!(
            yaml,
            "  - name: stage {index}\n    jobs:\n      - name: j{index}\n        steps: ['true']"
        )
        .unwrap();
    }
    let diagnostics = refused_in_time("10 000 stages (YAML)", &yaml, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
}

#[test]
fn deeply_nested_documents_are_refused_quickly() {
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let diagnostics = refused_in_time("100 000 nested arrays (JSON)", &arrays, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
    let diagnostics = refused_in_time("100 000 nested flow arrays (YAML)", &arrays, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let diagnostics = refused_in_time("100 000 nested objects (JSON)", &objects, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    let mut block = String::new();
    for level in 0..1_000 {
        writeln!(block, "{}a:", "  ".repeat(level)).unwrap();
    }
    let diagnostics = refused_in_time("1 000 nested block mappings (YAML)", &block, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    // Nesting the parsers accept (under serde_json's 128) but the document limit refuses,
    // inside an otherwise valid pipeline.
    let value = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let json = format!(
        r#"{{"stages":[{{"name":"s","jobs":[{{"name":"j","steps":[{{"task":"x","inputs":[{{"key":"k","value":{value}}}]}}]}}]}}]}}"#
    );
    let diagnostics = refused_in_time("100 levels inside a step input (JSON)", &json, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
}

#[test]
fn deeply_nested_expressions_are_refused_quickly() {
    for (label, expression) in [
        (
            "100 000 parentheses",
            format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        ),
        ("100 000 negations", format!("{}true", "!".repeat(100_000))),
        ("20 000 `||` operands", vec!["true"; 20_000].join(" || ")),
        (
            "20 000 member accesses",
            format!("jobs{}", ".a".repeat(20_000)),
        ),
    ] {
        let yaml = format!(
            "jobs:\n  - name: j\n    if: ${{{{ {expression} }}}}\n    steps: ['echo \"${{{{ {expression} }}}}\"']\n"
        );
        let diagnostics = refused_in_time(label, &yaml, Format::Yaml);
        assert_has_code(&diagnostics, DiagnosticCode::BadExpression);
    }
}

#[test]
fn a_twenty_megabyte_document_is_refused_quickly() {
    let padding = "x".repeat(20 * 1024 * 1024);
    let json = format!(r#"{{"stages":[],"padding":"{padding}"}}"#);
    let diagnostics = refused_in_time("20 MB (JSON)", &json, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
    let yaml = format!("stages: []\npadding: {padding}\n");
    let diagnostics = refused_in_time("20 MB (YAML)", &yaml, Format::Yaml);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);

    // A pipeline body whose `definition` string is itself 20 MB.
    let body =
        json!({"definition": format!(r#"{{"stages":[],"padding":"{padding}"}}"#)}).to_string();
    let diagnostics = refused_in_time("20 MB body (JSON)", &body, Format::Json);
    assert_has_code(&diagnostics, DiagnosticCode::TooLarge);
}

#[test]
fn a_script_just_under_the_size_limit_compiles_quickly() {
    let script = "echo ${NAME} $HOME ${{ pipeline.run_number }}\n".repeat(300_000);
    let json = json!({"stages": [{"name": "s", "jobs": [{"name": "j", "steps": [
        {"task": "official_shell_plugin", "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": script}]}
    ]}]}]})
    .to_string();
    assert!(json.len() > 13 * 1024 * 1024, "{} bytes", json.len());
    let started = Instant::now();
    let result = compile_text(&json, Format::Json);
    let elapsed = started.elapsed();
    println!("14 MB script (JSON): {elapsed:?}");
    assert!(result.is_ok(), "{:?}", result.err());
    assert!(elapsed < TIME_LIMIT, "took {elapsed:?}");
}

#[test]
fn a_malformed_definition_string_is_reported_at_definition() {
    let body = json!({
        "name": "broken",
        "variables": [{"name": "region", "type": "string", "value": "eu"}],
        "definition": "{\"stages\": [{\"name\": \"Build\", \"jobs\": [ oops"
    })
    .to_string();
    let diagnostics = refused_in_time("malformed definition string", &body, Format::Json);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].path, "definition");
    assert_eq!(diagnostics[0].code, DiagnosticCode::Syntax);
    assert!(
        diagnostics[0].message.starts_with("definition is invalid"),
        "{}",
        diagnostics[0].message
    );

    let body = json!({"definition": "[1, 2, 3]"}).to_string();
    let diagnostics = refused_in_time("definition string holding a list", &body, Format::Json);
    assert!(!diagnostics.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/robustness.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn compile_text_never_panics_on_arbitrary_text(text in any::<String>()) {
        for format in [Format::Json, Format::Yaml] {
            if let Err(diagnostics) = compile_text(&text, format) {
                check_diagnostics(&diagnostics);
            }
        }
    }

    #[test]
    fn compile_text_never_panics_on_text_that_looks_like_a_pipeline(
        text in r#"(\{|\}|\[|\]|"|:|,|-|\n|  |stages|jobs|steps|name|run|needs|if|\$\{\{|\}\}|&a|\*a|[a-z ]){0,80}"#
    ) {
        for format in [Format::Json, Format::Yaml] {
            if let Err(diagnostics) = compile_text(&text, format) {
                check_diagnostics(&diagnostics);
            }
        }
    }

    #[test]
    fn compile_text_never_panics_on_plausible_json_pipelines(document in json_document()) {
        let text = document.to_string();
        match compile_text(&text, Format::Json) {
            Ok(spec) => check_spec_invariants(&spec),
            Err(diagnostics) => check_diagnostics(&diagnostics),
        }
    }

    #[test]
    fn compile_text_never_panics_on_plausible_yaml_pipelines(
        document in yaml_document(),
        as_block in any::<bool>(),
    ) {
        // JSON text is YAML too; block style exercises the YAML parser proper.
        let text = if as_block {
            serde_saphyr::to_string(&document).unwrap_or_else(|_| document.to_string())
        } else {
            document.to_string()
        };
        match compile_text(&text, Format::Yaml) {
            Ok(spec) => check_spec_invariants(&spec),
            Err(diagnostics) => check_diagnostics(&diagnostics),
        }
    }

    #[test]
    fn valid_pipelines_compile_and_jobs_need_only_jobs_of_their_stage(
        plan in valid_plan(),
        format in prop_oneof![Just(Format::Json), Just(Format::Yaml)],
    ) {
        let text = match format {
            Format::Json => plan.to_codearts_json().to_string(),
            Format::Yaml => serde_saphyr::to_string(&plan.to_yaml_value()).unwrap(),
        };
        let spec = match compile_text(&text, format) {
            Ok(spec) => spec,
            Err(diagnostics) => {
                return Err(TestCaseError::fail(format!("{diagnostics:#?}\n{text}")));
            }
        };
        check_spec_invariants(&spec);
        prop_assert_eq!(spec.stages().len(), plan.stages.len());
        for (stage_index, stage_plan) in plan.stages.iter().enumerate() {
            let stage = &spec.stages()[stage_index];
            prop_assert_eq!(&stage.identifier, &stage_id(stage_index));
            let prerequisites: BTreeSet<String> = stage
                .prerequisites
                .iter()
                .map(|index| spec.stage(*index).identifier.clone())
                .collect();
            let expected: BTreeSet<String> = match (stage_plan.depends_on.is_empty(), stage_index) {
                (true, 0) => BTreeSet::new(),
                (true, _) => BTreeSet::from([stage_id(stage_index - 1)]),
                (false, _) => stage_plan.depends_on.iter().map(|&index| stage_id(index)).collect(),
            };
            prop_assert_eq!(prerequisites, expected);
            prop_assert_eq!(stage.jobs.len(), stage_plan.jobs.len());
            for (job_position, job_plan) in stage_plan.jobs.iter().enumerate() {
                let job_index = spec
                    .job_by_identifier(&job_id(stage_index, job_position))
                    .expect("every planned job is in the spec");
                let job = spec.job(job_index);
                prop_assert_eq!(job.stage.index(), stage_index);
                prop_assert_eq!(job.steps.len(), job_plan.steps);
                let needs: BTreeSet<String> = job
                    .needs
                    .iter()
                    .map(|need| {
                        assert_eq!(spec.job(*need).stage, job.stage, "needs stay in the stage");
                        spec.job(*need).identifier.clone()
                    })
                    .collect();
                let expected: BTreeSet<String> = job_plan
                    .needs
                    .iter()
                    .map(|&need| job_id(stage_index, need))
                    .collect();
                prop_assert_eq!(needs, expected);
            }
        }
    }
}

/// Compiles `text`, prints how long it took, and checks it was refused within [`TIME_LIMIT`].
fn refused_in_time(label: &str, text: &str, format: Format) -> Vec<Diagnostic> {
    let limit = TIME_LIMIT;
    let started = Instant::now();
    let result = compile_text(text, format);
    let elapsed = started.elapsed();
    println!("{label}: {elapsed:?} for {} bytes", text.len());
    assert!(
        elapsed < limit,
        "{label}: took {elapsed:?}, the limit is {limit:?}"
    );
    let diagnostics = match result {
        Ok(_) => panic!("{label}: compiled, but it should have been refused"),
        Err(diagnostics) => diagnostics,
    };
    check_diagnostics(&diagnostics);
    diagnostics
}

fn assert_has_code(diagnostics: &[Diagnostic], code: DiagnosticCode) {
    assert!(
        diagnostics.iter().any(|diagnostic| diagnostic.code == code),
        "expected a {} diagnostic, got {diagnostics:#?}",
        code.as_str()
    );
}

/// Every refusal says something, and there are never more than the cap (plus its summary line).
fn check_diagnostics(diagnostics: &[Diagnostic]) {
    assert!(!diagnostics.is_empty(), "an Err carries diagnostics");
    assert!(
        diagnostics.len() <= MAX_DIAGNOSTICS + 1,
        "{}",
        diagnostics.len()
    );
    for diagnostic in diagnostics {
        assert!(!diagnostic.message.is_empty(), "{diagnostic:?}");
    }
}

/// The `PipelineSpec` invariants that hold for any compiled input.
fn check_spec_invariants(spec: &runnel_domain::spec::PipelineSpec) {
    let mut identifiers = BTreeSet::new();
    for job_index in spec.job_indices() {
        let job = spec.job(job_index);
        assert!(identifiers.insert(job.identifier.clone()), "unique job ids");
        assert!(
            !job.upstream.contains(&job_index),
            "acyclic: {}",
            job.identifier
        );
        assert!(!job.steps.is_empty());
        for need in &job.needs {
            assert_eq!(spec.job(*need).stage, job.stage, "needs stay in the stage");
            assert!(job.upstream.contains(need));
        }
        assert!(spec.stage(job.stage).jobs.contains(&job_index));
    }
    for stage_index in spec.stage_indices() {
        let stage = spec.stage(stage_index);
        assert!(!stage.upstream.contains(&stage_index), "acyclic stages");
    }
}

// ---------------------------------------------------------------------------------------------
// Random, structurally plausible pipelines: right shapes, random field types, random references.

const IDS: &[&str] = &[
    "a", "b", "c", "d", "s0", "s1", "default", "", "bad id!", "JOB_x",
];
const TASKS: &[&str] = &[
    "official_shell_plugin",
    "official_devcloud_checkpoint",
    "official_devcloud_delay",
    "md_check@0.0.7",
    "",
];
const CONDITIONS: &[&str] = &[
    "",
    "${{ default() }}",
    "${{ completed() }}",
    "always()",
    "${{ failure() || cancelled() }}",
    "${{ jobs.a.status == 'FAILED' }}",
    "${{ contains(jobs.*.status, 'FAILED') }}",
    "${{ ",
    "${{ success() && }}",
    "x ${{ y }}",
    "${{ default(1) }}",
    "${{ 'unterminated }}",
];
const SCRIPTS: &[&str] = &[
    "make",
    "echo ${NAME} $HOME ${1}",
    "echo \"${{ pipeline.run_number }}\"",
    "echo ${{ oops",
    "(decode)ZWNobyAiaGVsbG8i",
    "(decode)!!!",
    "line one\nline two",
];
const INPUT_KEYS: &[&str] = &[
    "OFFICIAL_SHELL_SCRIPT_INPUT",
    "approvers",
    "audit_role",
    "check_strategy",
    "timeout_strategy",
    "timeout",
    "delay_time",
    "comment",
];

fn pick(options: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(options)
        .prop_map(|text| Value::String(text.to_owned()))
        .boxed()
}

/// Any small JSON value: the "wrong type" a field may get.
fn junk() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A field: usually well-typed, sometimes junk, sometimes absent (`None`).
fn field(proper: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => proper.prop_map(Some),
        1 => junk().prop_map(Some),
        2 => Just(None),
    ]
    .boxed()
}

/// An object built from named fields; absent fields are left out.
fn object(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Value> {
    let entries: Vec<BoxedStrategy<(&'static str, Option<Value>)>> = fields
        .into_iter()
        .map(|(key, strategy)| strategy.prop_map(move |value| (key, value)).boxed())
        .collect();
    entries
        .prop_map(|entries| {
            let map: Map<String, Value> = entries
                .into_iter()
                .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
                .collect();
            Value::Object(map)
        })
        .boxed()
}

fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..max)
        .prop_map(Value::from)
        .boxed()
}

fn references() -> BoxedStrategy<Value> {
    prop_oneof![list(pick(IDS), 4), pick(IDS)].boxed()
}

fn boolish() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        pick(&["true", "false", "TRUE", "", "yes"]),
        (0..3i64).prop_map(Value::from),
    ]
    .boxed()
}

fn numberish() -> BoxedStrategy<Value> {
    prop_oneof![
        (-2..400i64).prop_map(Value::from),
        pick(&["0", "30", "", "ten", "99999999999999999999", "10m"]),
    ]
    .boxed()
}

fn input_entry() -> BoxedStrategy<Value> {
    object(vec![
        ("key", field(pick(INPUT_KEYS))),
        (
            "value",
            field(prop_oneof![pick(SCRIPTS), numberish(), pick(&["alice, bob", "any"])].boxed()),
        ),
    ])
}

fn step(yaml: bool) -> BoxedStrategy<Value> {
    let mut fields = vec![
        ("name", field(pick(&["build", "test", ""]))),
        ("identifier", field(pick(IDS))),
        ("task", field(pick(TASKS))),
        ("sequence", field(numberish())),
        ("inputs", field(list(input_entry(), 4))),
        ("env", field(list(input_entry(), 2))),
        ("enable", field(boolish())),
    ];
    if yaml {
        fields.extend([
            ("id", field(pick(IDS))),
            ("run", field(pick(SCRIPTS))),
            (
                "with",
                field(
                    prop::collection::btree_map(
                        proptest::sample::select(INPUT_KEYS),
                        pick(SCRIPTS),
                        0..3,
                    )
                    .prop_map(|map| {
                        Value::Object(
                            map.into_iter()
                                .map(|(key, value)| (key.to_owned(), value))
                                .collect(),
                        )
                    })
                    .boxed(),
                ),
            ),
            ("enabled", field(boolish())),
            ("if", field(pick(CONDITIONS))),
        ]);
        prop_oneof![3 => object(fields), 1 => pick(SCRIPTS)].boxed()
    } else {
        object(fields)
    }
}

fn job(yaml: bool) -> BoxedStrategy<Value> {
    let mut fields = vec![
        ("name", field(pick(&["build", "test", "deploy", ""]))),
        ("identifier", field(pick(IDS))),
        ("sequence", field(numberish())),
        ("depends_on", field(references())),
        ("condition", field(pick(CONDITIONS))),
        (
            "strategy",
            field(object(vec![(
                "select_strategy",
                field(pick(&["selected", "never", "always", "sometimes"])),
            )])),
        ),
        ("timeout", field(numberish())),
        ("timeout_unit", field(pick(&["H", "M", "S", "D", ""]))),
        (
            "resource",
            field(pick(&[
                r#"{"type":"system","arch":"x86"}"#,
                "{oops",
                "",
                "[]",
            ])),
        ),
        (
            "exec_type",
            field(pick(&["AGENTLESS_JOB", "OCTOPUS_JOB", "?"])),
        ),
        ("async", field(boolish())),
        ("steps", field(list(step(yaml), 4))),
    ];
    if yaml {
        fields.extend([
            ("id", field(pick(IDS))),
            ("needs", field(references())),
            ("if", field(pick(CONDITIONS))),
            ("select", field(pick(&["never", "always", "maybe"]))),
            (
                "timeout",
                field(pick(&["10m", "90s", "2h", "3 days", "8d"])),
            ),
            ("env", field(object(vec![("REGION", field(pick(SCRIPTS)))]))),
        ]);
    }
    object(fields)
}

fn stage(yaml: bool) -> BoxedStrategy<Value> {
    let gate = object(vec![
        (
            "task",
            field(pick(&[
                "official_devcloud_autoTrigger",
                "official_devcloud_manualTrigger",
                "quality_gate",
            ])),
        ),
        ("identifier", field(pick(IDS))),
    ]);
    let mut fields = vec![
        ("name", field(pick(&["Build", "Deploy", ""]))),
        ("identifier", field(pick(IDS))),
        ("sequence", field(numberish())),
        ("depends_on", field(references())),
        ("run_always", field(boolish())),
        ("parallel", field(boolish())),
        ("run_condition", field(pick(CONDITIONS))),
        ("pre", field(list(gate.clone(), 2))),
        ("post", field(list(gate, 2))),
        ("jobs", field(list(job(yaml), 4))),
    ];
    if yaml {
        fields.extend([
            ("id", field(pick(IDS))),
            ("needs", field(references())),
            ("if", field(pick(CONDITIONS))),
            ("always", field(boolish())),
            ("manual", field(boolish())),
        ]);
    }
    object(fields)
}

fn variable() -> BoxedStrategy<Value> {
    object(vec![
        (
            "name",
            field(pick(&["region", "env", "LD_PRELOAD", "1bad", "PATH", ""])),
        ),
        (
            "type",
            field(pick(&["string", "enum", "autoIncrement", "secret"])),
        ),
        ("value", field(pick(&["eu", "1.0.0", "prod", ""]))),
        ("limits", field(list(pick(&["eu", "prod", "staging"]), 3))),
        ("is_secret", field(boolish())),
        ("is_runtime", field(boolish())),
    ])
}

fn concurrency() -> BoxedStrategy<Value> {
    object(vec![
        ("concurrency_number", field(numberish())),
        ("exceed_action", field(pick(&["QUEUE", "ABORT", "WAIT"]))),
        ("enable", field(boolish())),
    ])
}

fn definition(yaml: bool) -> BoxedStrategy<Value> {
    object(vec![
        ("stages", field(list(stage(yaml), 4))),
        ("x_future", field(junk())),
    ])
}

/// A bare definition, or a pipeline body with the definition as an object, a JSON string or junk.
fn json_document() -> BoxedStrategy<Value> {
    let body = |definition: BoxedStrategy<Value>| {
        object(vec![
            ("name", field(pick(&["pipeline", ""]))),
            ("variables", field(list(variable(), 3))),
            ("concurrency_control", field(concurrency())),
            ("definition", field(definition)),
        ])
    };
    prop_oneof![
        definition(false),
        body(definition(false)),
        body(
            definition(false)
                .prop_map(|definition| Value::String(definition.to_string()))
                .boxed()
        ),
        body(junk()),
    ]
    .boxed()
}

/// The YAML form: conveniences mixed with CodeArts keys, variables as a map, `jobs` shorthand.
fn yaml_document() -> BoxedStrategy<Value> {
    let variables_map = prop::collection::btree_map(
        proptest::sample::select(&["region", "env", "LD_PRELOAD", "version"][..]),
        prop_oneof![pick(&["eu", "1.0.0"]), variable()],
        0..3,
    )
    .prop_map(|map| {
        Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        )
    })
    .boxed();
    object(vec![
        ("name", field(pick(&["pipeline", ""]))),
        (
            "variables",
            field(prop_oneof![variables_map, list(variable(), 2)].boxed()),
        ),
        (
            "concurrency",
            field(prop_oneof![(0..5i64).prop_map(Value::from), concurrency()].boxed()),
        ),
        ("stages", field(list(stage(true), 3))),
        ("jobs", field(list(job(true), 3))),
    ])
}

// ---------------------------------------------------------------------------------------------
// Valid pipelines: unique identifiers, dependencies only on earlier stages / earlier jobs of the
// same stage (so acyclic), valid conditions and scripts.

const VALID_CONDITIONS: &[&str] = &[
    "",
    "${{ default() }}",
    "${{ completed() }}",
    "always()",
    "${{ failure() || cancelled() }}",
    "${{ jobs.j0_0.status == 'COMPLETED' }}",
    "${{ contains(jobs.*.status, 'FAILED') }}",
    "${{ env.region == 'eu' && pipeline.trigger_type != 'Manual' }}",
];
const VALID_SCRIPTS: &[&str] = &[
    "make",
    "echo ${NAME} $HOME ${1}",
    "echo \"${{ pipeline.run_number }}\"",
    "set -e\nmake test\necho done",
    "true",
];

#[derive(Debug, Clone)]
struct ValidPlan {
    stages: Vec<StagePlan>,
}

#[derive(Debug, Clone)]
struct StagePlan {
    /// Indices of earlier stages.
    depends_on: Vec<usize>,
    jobs: Vec<JobPlan>,
}

#[derive(Debug, Clone)]
struct JobPlan {
    /// Positions of earlier jobs of the same stage.
    needs: Vec<usize>,
    condition: &'static str,
    script: &'static str,
    steps: usize,
    /// Leave the identifier out and let it be derived from the name (which equals it).
    derive_identifier: bool,
}

fn valid_plan() -> impl Strategy<Value = ValidPlan> {
    let job = (
        prop::collection::vec(any::<Index>(), 0..3),
        proptest::sample::select(VALID_CONDITIONS),
        proptest::sample::select(VALID_SCRIPTS),
        1..4usize,
        any::<bool>(),
    );
    let stage = (
        prop::collection::vec(any::<Index>(), 0..3),
        prop::collection::vec(job, 0..5),
    );
    prop::collection::vec(stage, 1..6).prop_map(|stages| ValidPlan {
        stages: stages
            .into_iter()
            .enumerate()
            .map(|(stage_index, (depends_on, jobs))| StagePlan {
                depends_on: earlier(stage_index, &depends_on),
                jobs: jobs
                    .into_iter()
                    .enumerate()
                    .map(
                        |(position, (needs, condition, script, steps, derive_identifier))| {
                            JobPlan {
                                needs: earlier(position, &needs),
                                condition,
                                script,
                                steps,
                                derive_identifier,
                            }
                        },
                    )
                    .collect(),
            })
            .collect(),
    })
}

/// Picks distinct positions before `count` (none when `count` is 0).
fn earlier(count: usize, picks: &[Index]) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let set: BTreeSet<usize> = picks.iter().map(|pick| pick.index(count)).collect();
    set.into_iter().collect()
}

fn stage_id(index: usize) -> String {
    format!("s{index}")
}

fn job_id(stage: usize, position: usize) -> String {
    format!("j{stage}_{position}")
}

impl ValidPlan {
    /// The CodeArts definition JSON.
    fn to_codearts_json(&self) -> Value {
        let stages: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(stage_index, stage)| {
                let jobs: Vec<Value> = stage
                    .jobs
                    .iter()
                    .enumerate()
                    .map(|(position, job)| {
                        let steps: Vec<Value> = (0..job.steps)
                            .map(|_| {
                                json!({"task": "official_shell_plugin", "inputs": [
                                    {"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": job.script}]})
                            })
                            .collect();
                        let mut value = json!({
                            "name": job_id(stage_index, position),
                            "depends_on": job.needs.iter().map(|&need| job_id(stage_index, need)).collect::<Vec<_>>(),
                            "condition": job.condition,
                            "steps": steps,
                        });
                        if !job.derive_identifier {
                            value["identifier"] = Value::from(job_id(stage_index, position));
                        }
                        value
                    })
                    .collect();
                json!({
                    "name": format!("Stage {stage_index}"),
                    "identifier": stage_id(stage_index),
                    "sequence": stage_index,
                    "depends_on": stage.depends_on.iter().map(|&index| stage_id(index)).collect::<Vec<_>>(),
                    "jobs": jobs,
                })
            })
            .collect();
        json!({ "stages": stages })
    }

    /// The YAML form with its conveniences: `id`, `needs`, `if`, `run`, bare string steps.
    fn to_yaml_value(&self) -> Value {
        let stages: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(stage_index, stage)| {
                let jobs: Vec<Value> = stage
                    .jobs
                    .iter()
                    .enumerate()
                    .map(|(position, job)| {
                        let steps: Vec<Value> = (0..job.steps)
                            .map(|step| {
                                if step % 2 == 0 {
                                    Value::from(job.script)
                                } else {
                                    json!({"name": format!("step {step}"), "run": job.script})
                                }
                            })
                            .collect();
                        let mut value = json!({
                            "name": job_id(stage_index, position),
                            "steps": steps,
                        });
                        if !job.derive_identifier {
                            value["id"] = Value::from(job_id(stage_index, position));
                        }
                        if !job.needs.is_empty() {
                            value["needs"] = job
                                .needs
                                .iter()
                                .map(|&need| job_id(stage_index, need))
                                .collect();
                        }
                        if !job.condition.is_empty() {
                            value["if"] = Value::from(job.condition);
                        }
                        value
                    })
                    .collect();
                let mut value = json!({
                    "name": format!("Stage {stage_index}"),
                    "id": stage_id(stage_index),
                    "jobs": jobs,
                });
                if !stage.depends_on.is_empty() {
                    value["needs"] = stage
                        .depends_on
                        .iter()
                        .map(|&index| stage_id(index))
                        .collect();
                }
                value
            })
            .collect();
        json!({ "stages": stages })
    }
}
