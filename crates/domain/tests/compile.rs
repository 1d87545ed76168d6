//! Fixture snapshot tests of `compile_text`: every file in `test_data/compile/` is compiled and its
//! spec summary (or its diagnostics) compared with `tests/snapshots/compile__check_compile@<file>.snap`.
//!
//! To add a case, drop a `.json`, `.yaml` or `.yml` file into `test_data/compile/`, run
//! `INSTA_UPDATE=always cargo test -p runnel-domain --test compile`, and read the new snapshot.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use runnel_domain::expr::{Segment, Template};
use runnel_domain::params::VariableSpec;
use runnel_domain::spec::{
    Admission, CheckpointSpec, ExecKind, GateStep, JobSpec, PipelineSpec, StageSpec, StepAction,
    StepSpec,
};
use runnel_domain::{Diagnostic, Format, compile_text};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/compile");

#[test]
fn every_fixture_compiles_to_its_snapshot() {
    // Like `insta::glob!` (same snapshot names: `check_compile@<file name>`), which needs insta's
    // `glob` feature; every fixture is checked and the failures are listed together.
    let mut failures = Vec::new();
    for path in fixture_paths() {
        let mut settings = insta::Settings::clone_current();
        settings.set_input_file(&path);
        settings.set_snapshot_suffix(file_name(&path));
        settings.set_prepend_module_to_snapshot(true);
        // The settings are not looked at again after a panic, so unwind safety is not a concern.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| check_compile(&path))
        }));
        if outcome.is_err() {
            failures.push(file_name(&path).to_owned());
        }
    }
    assert!(failures.is_empty(), "fixtures that failed: {failures:?}");
}

#[test]
fn unknown_fields_are_kept_in_the_stored_definition() {
    let text = std::fs::read_to_string(fixture("unknown_fields_preserved.json")).unwrap();
    let spec = compile_text(&text, Format::Json).unwrap();
    let definition = spec.definition();
    assert_eq!(
        definition["x_top_level"],
        serde_json::json!({"kept": "verbatim"})
    );
    assert_eq!(definition["parallel"], "future top-level key");
    let stage = &definition["stages"][0];
    assert_eq!(stage["x_stage_note"]["tags"][1], "linux");
    assert!(stage["type"].is_null());
    let job = &stage["jobs"][0];
    assert_eq!(job["x_job_color"], "#ff8800");
    assert_eq!(job["stage_id"], 1698069093677_i64);
    assert_eq!(job["unfinished_steps"], serde_json::json!([]));
    let step = &job["steps"][0];
    assert_eq!(step["x_step_future"]["nested"][2]["deep"], true);
    assert_eq!(step["endpoint_ids"], serde_json::json!(["ep-1"]));
    assert_eq!(
        step["icon_url"],
        "/api/v1/*/common/get-plugin-icon?name=shell"
    );
    // Verbatim: the stored definition is the input, field for field.
    let input: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(definition, &input);
}

#[test]
fn a_pipeline_body_with_a_string_definition_compiles_like_the_bare_definition() {
    let bare = std::fs::read_to_string(fixture("codearts_full_example.json")).unwrap();
    let body = std::fs::read_to_string(fixture("pipeline_body_string_definition.json")).unwrap();
    let bare = compile_text(&bare, Format::Json).unwrap();
    let body = compile_text(&body, Format::Json).unwrap();
    assert_eq!(render_stages(&bare), render_stages(&body));
    assert_eq!(bare.definition(), body.definition());
}

/// Compiles one fixture (format from its extension) and snapshots the rendering.
fn check_compile(path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let format = match path.extension().and_then(|extension| extension.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => panic!("{}: fixtures end in .json, .yaml or .yml", path.display()),
    };
    let rendered = match compile_text(&text, format) {
        Ok(spec) => render_spec(&spec),
        Err(diagnostics) => render_diagnostics(&diagnostics),
    };
    insta::assert_snapshot!(rendered);
}

fn fixture_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(FIXTURE_DIR)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|extension| extension.to_str()),
                Some("json" | "yaml" | "yml")
            )
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {FIXTURE_DIR}");
    paths
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURE_DIR).join(name)
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|name| name.to_str()).unwrap()
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut out = format!("error: {} diagnostic(s)\n", diagnostics.len());
    for diagnostic in diagnostics {
        let place = if diagnostic.path.is_empty() {
            "<document>"
        } else {
            diagnostic.path.as_str()
        };
        let position = match (diagnostic.line, diagnostic.column) {
            (Some(line), Some(column)) => format!(" ({line}:{column})"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{place}{position}: {} [{}]",
            diagnostic.message,
            diagnostic.code.as_str()
        )
        .unwrap();
    }
    out
}

fn render_spec(spec: &PipelineSpec) -> String {
    let mut out = String::from("ok\n");
    writeln!(out, "name: {}", spec.name().unwrap_or("-")).unwrap();
    writeln!(out, "description: {}", spec.description().unwrap_or("-")).unwrap();
    let concurrency = spec.concurrency();
    writeln!(
        out,
        "concurrency: enabled={} max_runs={} exceed_action={:?}",
        concurrency.enabled, concurrency.max_runs, concurrency.exceed_action
    )
    .unwrap();
    writeln!(out, "variables:{}", empty_marker(spec.variables().len())).unwrap();
    for variable in spec.variables() {
        render_variable(&mut out, variable);
    }
    out.push_str(&render_stages(spec));
    out
}

fn render_variable(out: &mut String, variable: &VariableSpec) {
    write!(
        out,
        "  - {} ({}) value={:?}",
        variable.name,
        variable.var_type.as_str(),
        variable.value
    )
    .unwrap();
    if !variable.limits.is_empty() {
        write!(out, " limits={:?}", variable.limits).unwrap();
    }
    for (flag, set) in [
        ("secret", variable.is_secret),
        ("runtime", variable.is_runtime),
        ("reset", variable.is_reset),
    ] {
        if set {
            write!(out, " {flag}").unwrap();
        }
    }
    if let Some(latest) = &variable.latest_value {
        write!(out, " latest={latest:?}").unwrap();
    }
    if let Some(sequence) = variable.sequence {
        write!(out, " sequence={sequence}").unwrap();
    }
    if !variable.description.is_empty() {
        write!(out, " description={:?}", variable.description).unwrap();
    }
    out.push('\n');
}

/// Stages and their jobs, in order; references shown by identifier.
fn render_stages(spec: &PipelineSpec) -> String {
    let mut out = String::new();
    writeln!(out, "stages:{}", empty_marker(spec.stages().len())).unwrap();
    for stage in spec.stages() {
        render_stage(&mut out, spec, stage);
    }
    out
}

fn render_stage(out: &mut String, spec: &PipelineSpec, stage: &StageSpec) {
    let stage_ids = |indices: &[runnel_domain::spec::StageIdx]| -> String {
        let names: Vec<&str> = indices
            .iter()
            .map(|index| spec.stage(*index).identifier.as_str())
            .collect();
        format!("[{}]", names.join(", "))
    };
    writeln!(out, "  - stage {} {:?}", stage.identifier, stage.name).unwrap();
    writeln!(out, "    sequence: {}", stage.sequence).unwrap();
    writeln!(
        out,
        "    prerequisites: {}",
        stage_ids(&stage.prerequisites)
    )
    .unwrap();
    writeln!(out, "    upstream: {}", stage_ids(&stage.upstream)).unwrap();
    writeln!(
        out,
        "    run_always: {}  parallel: {}  admission: {}",
        stage.run_always,
        stage.parallel,
        match stage.admission {
            Admission::Automatic => "automatic",
            Admission::Manual => "manual",
        }
    )
    .unwrap();
    writeln!(
        out,
        "    run_condition: {}{}",
        stage.run_condition.source(),
        written(stage.run_condition_text.as_deref())
    )
    .unwrap();
    render_gates(out, "pre", &stage.pre);
    render_gates(out, "post", &stage.post);
    writeln!(out, "    jobs:{}", empty_marker(stage.jobs.len())).unwrap();
    for job in &stage.jobs {
        render_job(out, spec, spec.job(*job));
    }
}

fn render_gates(out: &mut String, label: &str, gates: &[GateStep]) {
    if gates.is_empty() {
        return;
    }
    writeln!(out, "    {label}:").unwrap();
    for gate in gates {
        writeln!(
            out,
            "      - {} task={} kind={:?} sequence={}{}",
            gate.identifier,
            gate.task,
            gate.kind,
            gate.sequence,
            gate.name
                .as_deref()
                .map(|name| format!(" name={name:?}"))
                .unwrap_or_default()
        )
        .unwrap();
    }
}

fn render_job(out: &mut String, spec: &PipelineSpec, job: &JobSpec) {
    let job_ids = |indices: &[runnel_domain::spec::JobIdx]| -> String {
        let names: Vec<&str> = indices
            .iter()
            .map(|index| spec.job(*index).identifier.as_str())
            .collect();
        format!("[{}]", names.join(", "))
    };
    writeln!(out, "      - job {} {:?}", job.identifier, job.name).unwrap();
    writeln!(
        out,
        "        stage: {}  sequence: {}",
        spec.stage(job.stage).identifier,
        job.sequence
    )
    .unwrap();
    writeln!(out, "        needs: {}", job_ids(&job.needs)).unwrap();
    writeln!(out, "        upstream: {}", job_ids(&job.upstream)).unwrap();
    writeln!(
        out,
        "        condition: {}{}",
        job.condition.source(),
        written(job.condition_text.as_deref())
    )
    .unwrap();
    writeln!(
        out,
        "        select: {:?}  timeout: {}  exec: {}  async: {}",
        job.select,
        duration(job.timeout),
        match job.exec {
            ExecKind::Agent => "agent",
            ExecKind::Agentless => "agentless",
        },
        job.is_async
    )
    .unwrap();
    match &job.resource {
        Some(resource) => writeln!(out, "        resource: {resource}").unwrap(),
        None => writeln!(out, "        resource: -").unwrap(),
    }
    writeln!(out, "        steps:{}", empty_marker(job.steps.len())).unwrap();
    for step in &job.steps {
        render_step(out, step);
    }
}

fn render_step(out: &mut String, step: &StepSpec) {
    writeln!(
        out,
        "          - step {} {:?} task={} sequence={} enabled={}{}",
        step.identifier,
        step.name,
        step.task,
        step.sequence,
        step.enabled,
        step.business_type
            .as_deref()
            .map(|kind| format!(" business_type={kind}"))
            .unwrap_or_default()
    )
    .unwrap();
    match &step.action {
        StepAction::Shell { script } => {
            writeln!(out, "            action: shell").unwrap();
            writeln!(out, "            script: |").unwrap();
            for line in template_source(script).lines() {
                writeln!(out, "              {line}").unwrap();
            }
        }
        StepAction::Checkpoint(checkpoint) => render_checkpoint(out, checkpoint),
        StepAction::Delay { duration: wait } => {
            writeln!(out, "            action: delay {}", duration(*wait)).unwrap()
        }
        StepAction::Plugin => writeln!(out, "            action: plugin").unwrap(),
    }
    let other_inputs: Vec<_> = step
        .inputs
        .iter()
        .filter(|input| {
            !(matches!(step.action, StepAction::Shell { .. })
                && input.key == "OFFICIAL_SHELL_SCRIPT_INPUT")
        })
        .collect();
    if !other_inputs.is_empty() {
        writeln!(out, "            inputs:").unwrap();
        for input in other_inputs {
            writeln!(out, "              {} = {}", input.key, input.value).unwrap();
        }
    }
    if !step.env.is_empty() {
        writeln!(out, "            env:").unwrap();
        for (name, template) in &step.env {
            writeln!(
                out,
                "              {name} = {:?}",
                template_source(template)
            )
            .unwrap();
        }
    }
}

fn render_checkpoint(out: &mut String, checkpoint: &CheckpointSpec) {
    writeln!(
        out,
        "            action: review approvers={:?} audit_source={} audit_role={} strategy={:?} timeout={} on_timeout={:?} comment={:?}",
        checkpoint.approvers,
        checkpoint.audit_source,
        checkpoint.audit_role.as_deref().unwrap_or("-"),
        checkpoint.strategy,
        duration(checkpoint.timeout),
        checkpoint.timeout_action,
        checkpoint.comment
    )
    .unwrap();
}

/// A template as text again: literals, `${NAME}`, and `${{ expr }}` in canonical form.
fn template_source(template: &Template) -> String {
    template
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text.clone(),
            Segment::Param(name) => format!("${{{name}}}"),
            Segment::Expr(expr) => format!("${{{{ {expr} }}}}"),
        })
        .collect()
}

fn written(text: Option<&str>) -> String {
    match text {
        Some(text) => format!("  (written {text:?})"),
        None => "  (not written)".to_owned(),
    }
}

fn duration(value: Duration) -> String {
    let seconds = value.as_secs();
    match seconds {
        0 => "0s".to_owned(),
        _ if seconds.is_multiple_of(3600) => format!("{}h", seconds / 3600),
        _ if seconds.is_multiple_of(60) => format!("{}m", seconds / 60),
        _ => format!("{seconds}s"),
    }
}

fn empty_marker(count: usize) -> &'static str {
    if count == 0 { " []" } else { "" }
}
