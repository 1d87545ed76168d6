//! Behaviour of expressions, conditions and templates, through a few `check_*` helpers.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::ast::{BinaryOp, Function, Node};
use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers: the only code that touches the API directly.

/// A context with fixed root values that records which status functions were asked.
struct FakeContext {
    roots: BTreeMap<String, Value>,
    passing: Vec<StatusCheck>,
    asked: RefCell<Vec<StatusCheck>>,
}

impl FakeContext {
    /// `roots` is a JSON object of root contexts; `default()`, `success()`, `completed()` and
    /// `always()` pass unless `with_passing` says otherwise.
    fn new(roots: serde_json::Value) -> Self {
        let roots = match Value::from(roots) {
            Value::Object(roots) => roots,
            other => panic!("contexts must be a JSON object, got {other:?}"),
        };
        let passing = vec![
            StatusCheck::Default,
            StatusCheck::Success,
            StatusCheck::Completed,
            StatusCheck::Always,
        ];
        FakeContext {
            roots,
            passing,
            asked: RefCell::new(Vec::new()),
        }
    }

    fn with_passing(mut self, passing: &[StatusCheck]) -> Self {
        self.passing = passing.to_vec();
        self
    }

    fn asked(&self) -> Vec<StatusCheck> {
        self.asked.borrow().clone()
    }
}

impl EvalContext for FakeContext {
    fn context(&self, name: &str) -> Option<Value> {
        self.roots.get(name).cloned()
    }

    fn status_check(&self, check: StatusCheck) -> bool {
        self.asked.borrow_mut().push(check);
        self.passing.contains(&check)
    }
}

/// Contexts shaped like spec §12.7.
fn sample_context() -> FakeContext {
    FakeContext::new(json!({
        "pipeline": {"trigger_type": "Manual", "run_number": "42", "project_id": "p1"},
        "sources": {"app": {"target_branch": "main", "commit_id": "abc123"}},
        "env": {"VERSION": "1.2.3", "COUNT": "10", "EMPTY": "", "list": [1, "two", null]},
        "jobs": {
            "JOB_a-b": {"status": "COMPLETED", "outputs": {"image": "app:1"}, "metrics": {"critical": 0, "major": 3}},
            "JOB_Cmpl1": {"status": "FAILED", "outputs": {}, "metrics": {"critical": 2}},
            "JOB_Test1": {"status": "COMPLETED", "outputs": {"count": 5}}
        }
    }))
}

/// Parses and evaluates `src`, compares with `expected`, and checks that the canonical text
/// parses back to the same expression.
#[track_caller]
fn check_eval(src: &str, ctx: &FakeContext, expected: serde_json::Value) {
    let expr = parse_expression(src).unwrap_or_else(|err| panic!("{src:?} should parse: {err}"));
    let actual =
        evaluate(&expr, ctx).unwrap_or_else(|err| panic!("{src:?} should evaluate: {err}"));
    assert_eq!(actual, Value::from(expected), "value of {src:?}");
    check_round_trip(&expr);
}

/// Evaluates an expression whose value JSON cannot spell (NaN).
#[track_caller]
fn eval_number(src: &str) -> f64 {
    let expr = parse_expression(src).unwrap_or_else(|err| panic!("{src:?} should parse: {err}"));
    match evaluate(&expr, &sample_context()) {
        Ok(Value::Number(number)) => number,
        other => panic!("{src:?} should be a number, got {other:?}"),
    }
}

#[track_caller]
fn check_round_trip(expr: &Expr) {
    let canonical = expr.to_string();
    let reparsed =
        parse_expression(&canonical).unwrap_or_else(|err| panic!("canonical {canonical:?}: {err}"));
    assert_eq!(
        &reparsed, expr,
        "canonical text {canonical:?} parses to a different tree"
    );
}

#[track_caller]
fn check_canonical(src: &str, expected: &str) {
    let expr = parse_expression(src).unwrap_or_else(|err| panic!("{src:?} should parse: {err}"));
    assert_eq!(expr.to_string(), expected, "canonical text of {src:?}");
    check_round_trip(&expr);
}

/// Checks that `result` failed at `offset` with a message containing `fragment`.
#[track_caller]
fn check_error<T: std::fmt::Debug>(
    src: &str,
    result: Result<T, ExprError>,
    offset: usize,
    fragment: &str,
) {
    match result {
        Ok(value) => panic!("{src:?} should fail, got {value:?}"),
        Err(err) => {
            assert!(
                err.message.contains(fragment),
                "{src:?}: message {:?} lacks {fragment:?}",
                err.message
            );
            assert_eq!(err.offset, offset, "{src:?}: offset of {:?}", err.message);
            assert!(
                err.to_string().ends_with(&format!(" at offset {offset}")),
                "{src:?}: display {err}"
            );
        }
    }
}

#[track_caller]
fn check_condition(text: &str, ctx: &FakeContext, expected: bool) {
    let condition =
        parse_condition(text).unwrap_or_else(|err| panic!("{text:?} should parse: {err}"));
    let actual = condition
        .evaluate(ctx)
        .unwrap_or_else(|err| panic!("{text:?} should evaluate: {err}"));
    assert_eq!(actual, expected, "condition {text:?}");
    let reparsed = parse_condition(&condition.source())
        .unwrap_or_else(|err| panic!("source of {text:?}: {err}"));
    assert_eq!(
        reparsed,
        condition,
        "source {:?} of {text:?}",
        condition.source()
    );
}

/// Renders `text` with `params` (name → value) against the sample context.
#[track_caller]
fn check_render(text: &str, params: &[(&str, &str)], expected: &str) {
    let template =
        parse_template(text).unwrap_or_else(|err| panic!("{text:?} should parse: {err}"));
    let lookup = |name: &str| {
        params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    };
    let rendered = template
        .render(&lookup, &sample_context())
        .unwrap_or_else(|err| panic!("{text:?}: {err}"));
    assert_eq!(rendered, expected, "rendering of {text:?}");
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

#[test]
fn literals_evaluate_to_themselves() {
    let ctx = sample_context();
    for (src, expected) in [
        ("true", json!(true)),
        ("false", json!(false)),
        ("null", json!(null)),
        ("42", json!(42)),
        ("1.5", json!(1.5)),
        ("0x1F", json!(31)),
        ("0XfF", json!(255)),
        ("2e3", json!(2000)),
        ("2.5E-1", json!(0.25)),
        ("-3", json!(-3)),
        ("- 3", json!(-3)),
        ("--3", json!(3)),
        ("'it''s'", json!("it's")),
        ("''", json!("")),
        ("'${{ }}'", json!("${{ }}")),
        ("'multi\nline'", json!("multi\nline")),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn operators_bind_by_precedence_and_associate_left() {
    let ctx = sample_context();
    for (src, expected) in [
        // `&&` binds tighter than `||`.
        ("true || false && false", json!(true)),
        ("false && true || true", json!(true)),
        ("(true || false) && false", json!(false)),
        // Comparison binds tighter than equality.
        ("1 < 2 == 2 < 3", json!(true)),
        // Equality is left-associative: (2 == 2) == true.
        ("2 == 2 == true", json!(true)),
        // `!` binds tighter than `==`: (!1) == 2 is false == 2.
        ("!1 == 2", json!(false)),
        ("!(1 == 2)", json!(true)),
        ("!!'x'", json!(true)),
        ("-1 < 0", json!(true)),
        ("-env.COUNT", json!(-10)),
        ("1 == 1 && 2 != 3 && 'a' < 'b'", json!(true)),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn and_or_return_the_deciding_operand() {
    let ctx = sample_context();
    for (src, expected) in [
        ("'' || 'x'", json!("x")),
        ("'a' || 'b'", json!("a")),
        ("0 && 'x'", json!(0)),
        ("1 && 'x'", json!("x")),
        ("null || null", json!(null)),
        ("env.MISSING || 'fallback'", json!("fallback")),
        ("env.VERSION && env.COUNT", json!("10")),
        ("env.list || false", json!([1, "two", null])),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn and_or_short_circuit_without_evaluating_the_right_operand() {
    let ctx = sample_context();
    check_eval("success() || failure()", &ctx, json!(true));
    assert_eq!(ctx.asked(), [StatusCheck::Success]);

    let ctx = sample_context();
    check_eval("failure() && success()", &ctx, json!(false));
    assert_eq!(ctx.asked(), [StatusCheck::Failure]);

    let ctx = sample_context();
    check_eval("failure() || cancelled() || always()", &ctx, json!(true));
    assert_eq!(
        ctx.asked(),
        [
            StatusCheck::Failure,
            StatusCheck::Cancelled,
            StatusCheck::Always
        ]
    );
}

#[test]
fn property_and_index_access_yield_null_when_missing() {
    let ctx = sample_context();
    for (src, expected) in [
        ("pipeline.trigger_type", json!("Manual")),
        ("pipeline['trigger_type']", json!("Manual")),
        ("jobs.JOB_a-b.status", json!("COMPLETED")),
        ("jobs['JOB_a-b'].outputs.image", json!("app:1")),
        ("(jobs).JOB_Test1.outputs.count", json!(5)),
        ("env.list[1]", json!("two")),
        ("env.list['1']", json!("two")),
        ("env.list[3]", json!(null)),
        ("env.list[-1]", json!(null)),
        ("env.list[0.5]", json!(null)),
        ("env.list.length", json!(null)),
        ("pipeline.missing.deeper", json!(null)),
        ("unknown_context", json!(null)),
        ("unknown_context.a['b'][0]", json!(null)),
        // Contexts and members are case-sensitive.
        ("Pipeline.trigger_type", json!(null)),
        ("pipeline.Trigger_Type", json!(null)),
        ("'abc'.x", json!(null)),
        ("null.x", json!(null)),
        // Keywords are ordinary names after a dot.
        ("pipeline.true", json!(null)),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn star_filters_collect_members_of_objects_and_arrays() {
    let ctx = sample_context();
    for (src, expected) in [
        // Members come in key order: `JOB_Cmpl1`, `JOB_Test1`, `JOB_a-b`.
        ("jobs.*.status", json!(["FAILED", "COMPLETED", "COMPLETED"])),
        (
            "jobs.*['status']",
            json!(["FAILED", "COMPLETED", "COMPLETED"]),
        ),
        // Elements without the member are skipped.
        ("jobs.*.metrics.critical", json!([2, 0])),
        // Nested filters flatten.
        ("jobs.*.outputs.*", json!([5, "app:1"])),
        ("env.list.*", json!([1, "two", null])),
        ("pipeline.trigger_type.*", json!([])),
        ("unknown.*", json!([])),
        // Parentheses do not end a filtered chain.
        (
            "(jobs.*).status",
            json!(["FAILED", "COMPLETED", "COMPLETED"]),
        ),
        ("contains(jobs.*.status, 'FAILED')", json!(true)),
        ("contains(jobs.*.status, 'CANCELED')", json!(false)),
        ("contains(unknown.*.status, 'FAILED')", json!(false)),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn comparisons_coerce_mixed_types_to_numbers() {
    let ctx = sample_context();
    for (src, expected) in [
        ("'1' == 1", json!(true)),
        ("1 == '1.0'", json!(true)),
        ("'0x10' == 16", json!(true)),
        ("' 2 ' == 2", json!(true)),
        ("pipeline.run_number == 42", json!(true)),
        ("'abc' == 0", json!(false)),
        ("'abc' != 0", json!(true)),
        ("'inf' == 0", json!(false)),
        ("true == 1", json!(true)),
        ("false == 0", json!(true)),
        ("true == 'true'", json!(false)),
        ("true == '1'", json!(true)),
        ("null == null", json!(true)),
        ("null == 0", json!(true)),
        ("null == ''", json!(true)),
        ("null == false", json!(true)),
        ("null == 'null'", json!(false)),
        ("env.MISSING == ''", json!(true)),
        ("jobs.JOB_Nope.status == 'FAILED'", json!(false)),
        // Strings compare case-sensitively.
        ("'Main' == 'main'", json!(false)),
        ("'main' == 'main'", json!(true)),
        // Arrays and objects compare member by member.
        ("env.list == env.list", json!(true)),
        ("jobs.JOB_Test1 == jobs.JOB_Test1", json!(true)),
        ("jobs.JOB_Test1 == jobs.JOB_Cmpl1", json!(false)),
        ("env.list == 1", json!(false)),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn ordering_compares_numbers_and_strings_only() {
    let ctx = sample_context();
    for (src, expected) in [
        ("1 < 2", json!(true)),
        ("2 <= 2", json!(true)),
        ("3 > 2", json!(true)),
        ("1 >= 1.5", json!(false)),
        ("jobs.JOB_Cmpl1.metrics.critical > 0", json!(true)),
        ("'a' < 'b'", json!(true)),
        // Byte order: uppercase sorts before lowercase, and '10' before '9'.
        ("'B' < 'a'", json!(true)),
        ("'10' < '9'", json!(true)),
        // Mixed types are unordered.
        ("'10' > 9", json!(false)),
        ("'10' <= 9", json!(false)),
        ("null < 1", json!(false)),
        ("true > false", json!(false)),
        ("env.list < 1", json!(false)),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn nan_is_falsy_and_equals_nothing() {
    assert!(eval_number("-'abc'").is_nan());
    assert!(eval_number("-env.list").is_nan());
    assert_eq!(eval_number("-null"), 0.0);
    let ctx = sample_context();
    check_eval("-'abc' == -'abc'", &ctx, json!(false));
    check_eval("-'abc' != -'abc'", &ctx, json!(true));
    check_eval("!-'abc'", &ctx, json!(true));
    check_eval("-'abc' < 1 || -'abc' >= 1", &ctx, json!(false));
}

#[test]
fn string_functions_are_case_sensitive() {
    let ctx = sample_context();
    for (src, expected) in [
        ("contains('hello world', 'o w')", json!(true)),
        ("contains('hello', 'H')", json!(false)),
        ("contains('abc', '')", json!(true)),
        ("contains(123, 2)", json!(true)),
        ("contains('abc', env.list)", json!(false)),
        ("contains(jobs, 'JOB_a-b')", json!(false)),
        ("contains(env.list, 'two')", json!(true)),
        ("contains(env.list, 1)", json!(true)),
        ("contains(env.list, '1')", json!(true)),
        ("contains(env.list, null)", json!(true)),
        ("contains(env.list, 'three')", json!(false)),
        ("startsWith(sources.app.target_branch, 'ma')", json!(true)),
        ("startsWith('main', 'Ma')", json!(false)),
        ("startsWith(12.5, 12)", json!(true)),
        ("startsWith(env.list, '1')", json!(false)),
        ("endsWith(env.VERSION, '.3')", json!(true)),
        ("endsWith('release/1.0', '1.0')", json!(true)),
        ("endsWith('release', 'SE')", json!(false)),
    ] {
        check_eval(src, &ctx, expected);
    }
}

#[test]
fn status_functions_ask_the_context() {
    for (src, check) in [
        ("default()", StatusCheck::Default),
        ("success()", StatusCheck::Success),
        ("completed()", StatusCheck::Completed),
        ("failure()", StatusCheck::Failure),
        ("cancelled()", StatusCheck::Cancelled),
        ("always()", StatusCheck::Always),
    ] {
        let ctx = FakeContext::new(json!({})).with_passing(&[check]);
        check_eval(src, &ctx, json!(true));
        assert_eq!(ctx.asked(), [check], "{src}");
        let ctx = FakeContext::new(json!({})).with_passing(&[]);
        check_eval(src, &ctx, json!(false));
        check_eval(&format!("!{src}"), &ctx, json!(true));
    }
    let ctx = FakeContext::new(json!({})).with_passing(&[StatusCheck::Completed]);
    check_eval("completed() && !failure()", &ctx, json!(true));
}

// ---------------------------------------------------------------------------------------------
// Parse errors and limits.

#[test]
fn bad_expressions_report_what_and_where() {
    for (src, offset, fragment) in [
        ("foo(1)", 0, "unknown function 'foo'"),
        (
            "a && bar()",
            5,
            "unknown function 'bar' (known functions: contains, startsWith",
        ),
        (
            "Contains('a', 'b')",
            0,
            "case-sensitive, did you mean 'contains'?",
        ),
        ("canceled()", 0, "did you mean 'cancelled'?"),
        ("contains('a')", 0, "'contains' takes 2 arguments, found 1"),
        (
            "x || success(1)",
            5,
            "'success' takes no arguments, found 1",
        ),
        (
            "endsWith('a', 'b', 'c')",
            0,
            "'endsWith' takes 2 arguments, found 3",
        ),
        ("'abc", 0, "unterminated string literal"),
        ("a == 'it''s", 5, "unterminated string literal"),
        ("a b", 2, "unexpected 'b' after the end of the expression"),
        ("a )", 2, "unexpected ')'"),
        ("jobs.contains('x')", 13, "unexpected '('"),
        ("true()", 4, "unexpected '('"),
        ("a - b", 2, "unexpected '-'"),
        (
            "a &&",
            4,
            "expected an expression, found the end of the input",
        ),
        (
            "a && ",
            5,
            "expected an expression, found the end of the input",
        ),
        ("a && || b", 5, "expected an expression, found '||'"),
        ("", 0, "expected an expression, found the end of the input"),
        (
            "(a",
            2,
            "expected ')' to close '(', found the end of the input",
        ),
        ("(a b)", 3, "expected ')' to close '(', found 'b'"),
        ("a[1", 3, "expected ']' to close '['"),
        ("a.", 2, "expected a property name or '*' after '.'"),
        (
            "a.1",
            2,
            "expected a property name or '*' after '.', found a number",
        ),
        (
            "contains('a', 'b',)",
            18,
            "expected an expression, found ')'",
        ),
        (
            "contains('a' 'b')",
            13,
            "expected ',' or ')' in the arguments of 'contains', found a string",
        ),
        ("a = b", 2, "did you mean '=='?"),
        ("a & b", 2, "did you mean '&&'?"),
        ("a | b", 2, "did you mean '||'?"),
        ("a # b", 2, "unexpected character '#'"),
        ("a == é", 5, "unexpected character 'é'"),
        ("0x", 0, "expected hexadecimal digits"),
        ("12abc", 0, "invalid number"),
        ("1e", 0, "invalid number"),
        ("1e999", 0, "number is too large"),
        ("${{ a }}", 0, "unexpected character '$'"),
    ] {
        check_error(src, parse_expression(src), offset, fragment);
    }
}

#[test]
fn limits_reject_hostile_input_with_errors_not_crashes() {
    const NESTED: &str = "nested more than 64 levels deep";
    const CHAINED: &str = "too deeply nested or chained";
    let balanced =
        |depth: u32| (0..depth).fold("a".to_owned(), |inner, _| format!("({inner} || {inner})"));
    for (src, offset, fragment) in [
        ("(".repeat(100_000), 0, "longer than 65536 bytes"),
        ("a".repeat(64 * 1024 + 1), 0, "longer than 65536 bytes"),
        // The 65th opening token, at offset 64, is one level too deep.
        ("(".repeat(60_000), 64, NESTED),
        (format!("{}a", "!".repeat(60_000)), 64, NESTED),
        (format!("{}1", "-".repeat(60_000)), 64, NESTED),
        // The 65th `[` sits at 1 + 2 * 64.
        (format!("a{}", "[a".repeat(20_000)), 129, NESTED),
        // The 256th `||` (index 255, at 5 * 255 + 2) makes the tree 257 levels tall.
        (format!("{}a", "a || ".repeat(10_000)), 1277, CHAINED),
        // Likewise the 256th `.` (index 255, at 1 + 2 * 255).
        (format!("a{}", ".b".repeat(20_000)), 511, CHAINED),
        // 8191 `||` and 8192 leaves, 57 KiB of text; node 4097 is the 2050th `a`.
        (balanced(13), 14352, "more than 4096 parts"),
    ] {
        let label = format!(
            "{}… ({} bytes)",
            src.chars().take(20).collect::<String>(),
            src.len()
        );
        check_error(&label, parse_expression(&src), offset, fragment);
        check_error(&label, parse_condition(&src), offset, fragment);
    }
    // Inside `${{ … }}` the same limits apply, with offsets into the whole text.
    let template = format!("x ${{{{ {} }}}}", "!".repeat(60_000));
    check_error("template", parse_template(&template), 6 + 64, NESTED);
    check_error("condition", parse_condition(&template[2..]), 4 + 64, NESTED);
}

#[test]
fn inputs_just_inside_the_limits_parse() {
    let ok = [
        format!("{}a{}", "(".repeat(64), ")".repeat(64)),
        format!("{}a", "!".repeat(64)),
        format!("{}a", "a || ".repeat(200)),
        format!("a{}", ".b".repeat(255)),
    ];
    for src in ok {
        let expr =
            parse_expression(&src).unwrap_or_else(|err| panic!("{} bytes: {err}", src.len()));
        check_round_trip(&expr);
        evaluate(&expr, &sample_context())
            .unwrap_or_else(|err| panic!("{} bytes: {err}", src.len()));
    }
    check_error(
        "65 parens",
        parse_expression(&format!("{}a{}", "(".repeat(65), ")".repeat(65))),
        64,
        "nested",
    );
    check_error(
        "65 nots",
        parse_expression(&format!("{}a", "!".repeat(65))),
        64,
        "nested",
    );
}

// ---------------------------------------------------------------------------------------------
// Canonical text.

#[test]
fn display_renders_canonical_text_with_minimal_parentheses() {
    for (src, canonical) in [
        ("a||b&&c", "a || b && c"),
        ("(a||b)&&c", "(a || b) && c"),
        ("a || (b || c)", "a || (b || c)"),
        ("(a || b) || c", "a || b || c"),
        ("!(a == b)", "!(a == b)"),
        ("((a))", "a"),
        ("- 1", "-1"),
        ("- -1", "1"),
        ("-(1).x", "-1.x"),
        ("(-1).x", "(-1).x"),
        ("(!a).b", "(!a).b"),
        ("0x1F", "31"),
        ("1.50", "1.5"),
        ("2e3", "2000"),
        ("a['b']", "a['b']"),
        ("jobs . * . status", "jobs.*.status"),
        ("contains( a ,'it''s' )", "contains(a, 'it''s')"),
        ("jobs.JOB_a-b.status", "jobs.JOB_a-b.status"),
        ("default ( )", "default()"),
        ("a\n&&\tb", "a && b"),
        ("1 < 2 == (3 < 4)", "1 < 2 == 3 < 4"),
        ("1 < (2 == 3)", "1 < (2 == 3)"),
    ] {
        check_canonical(src, canonical);
    }
}

// ---------------------------------------------------------------------------------------------
// Conditions.

#[test]
fn spec_example_condition_checks_trigger_and_branch() {
    let condition =
        "${{ pipeline.trigger_type == 'Manual' && sources.app.target_branch == 'main' }}";
    check_condition(condition, &sample_context(), true);
    let scheduled = FakeContext::new(json!({
        "pipeline": {"trigger_type": "Scheduler"},
        "sources": {"app": {"target_branch": "main"}}
    }));
    check_condition(condition, &scheduled, false);
    let other_branch = FakeContext::new(json!({
        "pipeline": {"trigger_type": "Manual"},
        "sources": {"app": {"target_branch": "dev"}}
    }));
    check_condition(condition, &other_branch, false);
    check_condition(condition, &FakeContext::new(json!({})), false);
}

#[test]
fn blank_conditions_mean_default() {
    for text in ["", "   ", "\n\t "] {
        let condition = parse_condition(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        assert_eq!(condition, Condition::default());
        assert_eq!(condition.source(), "${{ default() }}");
        assert_eq!(
            Some(&condition),
            parse_condition("${{ default() }}").ok().as_ref()
        );
    }
    check_condition(
        "",
        &FakeContext::new(json!({})).with_passing(&[StatusCheck::Default]),
        true,
    );
    check_condition(
        "",
        &FakeContext::new(json!({})).with_passing(&[StatusCheck::Completed]),
        false,
    );
}

#[test]
fn conditions_accept_braced_or_bare_expressions() {
    let ctx = sample_context().with_passing(&[StatusCheck::Completed]);
    for (text, expected) in [
        ("${{ completed() }}", true),
        ("  ${{completed()}}  \n", true),
        ("completed()", true),
        ("failure()", false),
        ("${{ '}}' == '}}' }}", true),
        ("${{ env.EMPTY }}", false),
        ("${{ env.list }}", true),
        ("${{ jobs.*.status }}", true),
        (
            "${{ contains(jobs.*.status, 'FAILED') && completed() }}",
            true,
        ),
    ] {
        check_condition(text, &ctx, expected);
    }
    let condition = parse_condition(" ${{completed()}} ").ok();
    assert_eq!(
        condition.map(|condition| condition.source()).as_deref(),
        Some("${{ completed() }}")
    );
}

#[test]
fn conditions_reject_text_mixed_with_expressions() {
    for (text, offset, fragment) in [
        ("${{ a }} extra", 9, "found text after its closing '}}'"),
        ("${{ a }}${{ b }}", 8, "found text after its closing '}}'"),
        ("run if ${{ a }}", 7, "not text mixed with '${{'"),
        ("${{ a", 0, "unterminated '${{'"),
        ("  ${{ 'a }}", 2, "unterminated '${{'"),
        ("${{ foo() }}", 4, "unknown function 'foo'"),
        ("  ${{ a && }}", 11, "expected an expression"),
        ("${{ }}", 4, "expected an expression"),
        ("a &&", 4, "expected an expression"),
        ("${NAME} == 'x'", 0, "unexpected character '$'"),
    ] {
        check_error(text, parse_condition(text), offset, fragment);
    }
}

#[test]
fn status_function_presence_is_visible_to_callers() {
    for (text, expected) in [
        ("${{ completed() }}", true),
        ("", true),
        ("${{ pipeline.trigger_type == 'Manual' }}", false),
        ("${{ contains(jobs.*.status, always()) }}", true),
    ] {
        let condition = parse_condition(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        assert_eq!(condition.expr().has_status_function(), expected, "{text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Templates.

#[test]
fn templates_substitute_known_params_and_keep_unknown_ones() {
    check_render(
        "make build VERSION=${releaseVersion}",
        &[("releaseVersion", "1.0")],
        "make build VERSION=1.0",
    );
    check_render(
        "./deploy.sh ${env} ${app_COMMIT_ID_SHORT}",
        &[("env", "prod")],
        "./deploy.sh prod ${app_COMMIT_ID_SHORT}",
    );
    check_render("${A}${A}-${B}", &[("A", "x"), ("B", "")], "xx-");
    check_render("$${NAME}", &[("NAME", "v")], "$v");
    let long_name = "N".repeat(128);
    check_render(
        &format!("${{{long_name}}}"),
        &[(long_name.as_str(), "ok")],
        "ok",
    );
    let too_long = "N".repeat(129);
    check_render(
        &format!("${{{too_long}}}"),
        &[(too_long.as_str(), "no")],
        &format!("${{{too_long}}}"),
    );
}

#[test]
fn dollar_signs_without_a_valid_reference_stay_literal() {
    for text in [
        "echo $HOME $$ $1 ${1} ${ not closed ${-x} ${a.b} $",
        "${",
        "$",
        "${}",
        "${name",
        "cost: 5$",
    ] {
        let template = parse_template(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        assert!(template.is_literal(), "{text:?}");
        assert_eq!(
            template.segments,
            [Segment::Literal(text.to_owned())],
            "{text:?}"
        );
        check_render(text, &[("HOME", "no"), ("name", "no")], text);
    }
    let empty = parse_template("").ok();
    assert_eq!(
        empty,
        Some(Template {
            segments: Vec::new()
        })
    );
}

#[test]
fn template_expressions_render_display_strings() {
    for (text, expected) in [
        (
            "run ${{ pipeline.run_number }}-${{ jobs.JOB_Test1.outputs.count }}",
            "run 42-5",
        ),
        ("${{ env.list }}", r#"[1,"two",null]"#),
        (
            "${{ jobs.JOB_Test1 }}",
            r#"{"outputs":{"count":5},"status":"COMPLETED"}"#,
        ),
        ("[${{ null }}]", "[]"),
        (
            "${{ 1.0 }} ${{ 0.5 }} ${{ -0 }} ${{ 1e21 }}",
            "1 0.5 0 1000000000000000000000",
        ),
        ("${{ true }}/${{ 1 == 2 }}", "true/false"),
        ("${{ 'a}}b' }}", "a}}b"),
        ("${{a}}}", "}"),
        ("${{ env.VERSION || 'dev' }}", "1.2.3"),
        ("${{ -'x' }}", "NaN"),
    ] {
        check_render(text, &[], expected);
    }
}

#[test]
fn template_segments_keep_their_order() {
    let template = parse_template("a${B}c${{ d }}${E}").ok();
    let expected = parse_expression("d").ok().map(|d| Template {
        segments: vec![
            Segment::Literal("a".to_owned()),
            Segment::Param("B".to_owned()),
            Segment::Literal("c".to_owned()),
            Segment::Expr(d),
            Segment::Param("E".to_owned()),
        ],
    });
    assert_eq!(template, expected);
    let names: Vec<&str> = template.iter().flat_map(Template::param_names).collect();
    assert_eq!(names, ["B", "E"]);
    assert!(!template.is_some_and(|template| template.is_literal()));
}

#[test]
fn bad_template_expressions_are_errors() {
    for (text, offset, fragment) in [
        ("echo ${{ pipeline.run_number", 5, "unterminated '${{'"),
        ("echo ${{ 'oops }}", 5, "unterminated '${{'"),
        ("x ${{ foo() }}", 6, "unknown function 'foo'"),
        ("${{ }}", 4, "expected an expression"),
        ("ok ${X} ${{ a b }}", 14, "unexpected 'b'"),
    ] {
        check_error(text, parse_template(text), offset, fragment);
    }
}

// ---------------------------------------------------------------------------------------------
// Values.

#[test]
fn values_have_truthiness_and_display_strings() {
    for (value, truthy, display) in [
        (Value::Null, false, ""),
        (Value::Bool(false), false, "false"),
        (Value::Bool(true), true, "true"),
        (Value::Number(0.0), false, "0"),
        (Value::Number(-0.0), false, "0"),
        (Value::Number(f64::NAN), false, "NaN"),
        (Value::Number(f64::INFINITY), true, "Infinity"),
        (Value::Number(f64::NEG_INFINITY), true, "-Infinity"),
        (Value::Number(1.0), true, "1"),
        (Value::Number(-2.5), true, "-2.5"),
        (Value::Number(1e21), true, "1000000000000000000000"),
        (Value::from(""), false, ""),
        (Value::from("0"), true, "0"),
        (Value::from("false"), true, "false"),
        (Value::Array(Vec::new()), true, "[]"),
        (Value::Object(BTreeMap::new()), true, "{}"),
        (
            Value::from(json!([1.5, "a\"b\\c\n\u{1}", null, true, f64::NAN])),
            true,
            r#"[1.5,"a\"b\\c\n\u0001",null,true,null]"#,
        ),
        (
            Value::from(json!({"b": {"x": []}, "a": 1})),
            true,
            r#"{"a":1,"b":{"x":[]}}"#,
        ),
    ] {
        assert_eq!(value.is_truthy(), truthy, "truthiness of {value:?}");
        assert_eq!(value.to_display_string(), display, "display of {value:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Pieces of the language, for inputs that get further into the parser than random text.
const TOKENS: &[&str] = &[
    "a",
    "b-c",
    "jobs",
    "true",
    "null",
    "1",
    "0x1F",
    "1.5",
    "2e3",
    "'s'",
    "'it''s'",
    "'",
    "(",
    ")",
    "[",
    "]",
    ".",
    "*",
    ",",
    "!",
    "-",
    "&&",
    "||",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "contains",
    "startsWith",
    "success",
    "default",
    "${{",
    "}}",
    "${",
    "}",
    "$",
    "{",
    " ",
    "é",
    "\n",
];

fn identifier() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_-]{0,6}"
}

fn literal() -> impl Strategy<Value = Node> {
    prop_oneof![
        Just(Node::Literal(Value::Null)),
        any::<bool>().prop_map(|flag| Node::Literal(Value::Bool(flag))),
        (-1000_i32..1000).prop_map(|number| Node::Literal(Value::Number(f64::from(number)))),
        any::<f64>()
            .prop_filter("literals are finite", |number| number.is_finite())
            .prop_map(|number| Node::Literal(Value::Number(number))),
        "[a-z' }{$\\\\é]{0,8}".prop_map(|text| Node::Literal(Value::String(text))),
        any::<String>().prop_map(|text| Node::Literal(Value::String(text))),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        literal(),
        identifier()
            .prop_filter("keywords are literals", |name| !matches!(
                name.as_str(),
                "true" | "false" | "null"
            ))
            .prop_map(Node::Context),
        prop::sample::select(Function::ALL[3..].to_vec())
            .prop_map(|function| Node::Call(function, Vec::new())),
    ]
}

fn arbitrary_node() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(6, 64, 3, |inner| {
        prop_oneof![
            (inner.clone(), identifier())
                .prop_map(|(object, name)| Node::Member(Box::new(object), name)),
            (inner.clone(), inner.clone())
                .prop_map(|(object, index)| Node::Index(Box::new(object), Box::new(index))),
            inner
                .clone()
                .prop_map(|object| Node::Filter(Box::new(object))),
            inner
                .clone()
                .prop_map(|operand| Node::Not(Box::new(operand))),
            inner.clone().prop_map(Node::negate),
            (
                prop::sample::select(BinaryOp::ALL.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, left, right)| Node::Binary(
                    op,
                    Box::new(left),
                    Box::new(right)
                )),
            (
                prop::sample::select(Function::ALL[..3].to_vec()),
                inner.clone(),
                inner
            )
                .prop_map(|(function, first, second)| Node::Call(function, vec![first, second])),
        ]
    })
}

/// Parses `text` every way there is; on success, the results must survive a round trip.
fn parse_everything(text: &str) {
    if let Ok(expr) = parse_expression(text) {
        check_round_trip(&expr);
        let _ = evaluate(&expr, &sample_context());
    }
    if let Ok(condition) = parse_condition(text) {
        assert_eq!(
            parse_condition(&condition.source()).ok(),
            Some(condition.clone())
        );
        let _ = condition.evaluate(&sample_context());
    }
    if let Ok(template) = parse_template(text) {
        let _ = template.render(&|_| None, &sample_context());
    }
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        parse_everything(&text);
    }

    #[test]
    fn parsing_token_soup_never_panics(
        pieces in prop::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..40),
    ) {
        let text: String = pieces
            .iter()
            .map(|(token, spaced)| if *spaced { format!("{token} ") } else { (*token).to_owned() })
            .collect();
        parse_everything(&text);
        parse_everything(&format!("${{{{ {text} }}}}"));
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_expression(node in arbitrary_node()) {
        let expr = Expr { node };
        let canonical = expr.to_string();
        let reparsed = parse_expression(&canonical);
        prop_assert_eq!(reparsed.as_ref(), Ok(&expr), "canonical text {:?}", canonical);
        let condition = parse_condition(&format!("${{{{ {canonical} }}}}"));
        prop_assert_eq!(condition.map(|condition| condition.expr().clone()), Ok(expr));
    }
}
