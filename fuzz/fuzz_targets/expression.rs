//! Fuzzes `${{ … }}` expressions, conditions and templates: parsing never panics, a parsed
//! expression evaluates without panicking, and its canonical text parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_domain::expr::{
    EvalContext, StatusCheck, Value, evaluate, parse_condition, parse_expression, parse_template,
};

/// Contexts with a little of everything, so member access, `*` filters and comparisons have data.
struct Context {
    jobs: serde_json::Value,
}

impl EvalContext for Context {
    fn context(&self, name: &str) -> Option<Value> {
        match name {
            "jobs" => Some(Value::from(self.jobs.clone())),
            "env" => Some(Value::from(serde_json::json!({"region": "eu", "n": "1"}))),
            "pipeline" => Some(Value::from(serde_json::json!({"trigger_type": "Manual"}))),
            _ => None,
        }
    }

    fn status_check(&self, check: StatusCheck) -> bool {
        !matches!(check, StatusCheck::Failure)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let context = Context {
        jobs: serde_json::json!({
            "a": {"status": "COMPLETED", "outputs": {"x": "1"}},
            "b": {"status": "FAILED", "outputs": {}},
        }),
    };
    if let Ok(expr) = parse_expression(text) {
        let _ = evaluate(&expr, &context);
        let canonical = expr.to_string();
        let again = parse_expression(&canonical)
            .unwrap_or_else(|err| panic!("canonical text {canonical:?} does not parse: {err}"));
        assert_eq!(
            again, expr,
            "canonical text {canonical:?} parses to another tree"
        );
    }
    if let Ok(condition) = parse_condition(text) {
        let _ = condition.evaluate(&context);
        let source = condition.source();
        let again = parse_condition(&source)
            .unwrap_or_else(|err| panic!("condition source {source:?} does not parse: {err}"));
        assert_eq!(again, condition);
    }
    if let Ok(template) = parse_template(text) {
        let _ = template.render(
            &|name| (name == "NAME").then(|| "value".to_owned()),
            &context,
        );
    }
});
