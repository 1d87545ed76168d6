//! Turning a job that is about to start into concrete steps: scripts, environment and secrets.
//!
//! How values reach a shell script (S4: data never becomes code):
//! * Every parameter is exported as an environment variable of the same name.
//! * A `${NAME}` in a script is left as it is: bash itself expands it from the environment at
//!   run time, as a value, never re-parsed as script text. (So `${NAME}` in a script behaves
//!   exactly like a shell variable: unknown names expand to nothing, quoting rules apply.)
//! * A `${{ expression }}` in a script is evaluated when the job starts; its value is put in an
//!   environment variable `RUNNEL_EXPR_<n>` and the expression is replaced by `${RUNNEL_EXPR_<n>}`.
//!   Quote it as you would any variable (`"${{ env.name }}"`); inside single quotes it does not expand.
//! * Step `env` values and the inputs of other plugins are data: `${NAME}` is replaced by the
//!   parameter's value (an unknown name stays as written) and `${{ … }}` by its value.

use crate::expr::{EvalContext, Segment, StatusCheck, Template, Value};
use crate::params::ResolvedParameters;
use crate::scheduler::{RunContext, jobs_context};
use crate::spec::{CheckpointSpec, JobIdx, PipelineSpec, StepAction};
use crate::state::RunState;
use std::time::Duration;

/// Prefix of the environment variables that carry `${{ … }}` values into scripts.
pub const EXPRESSION_VAR_PREFIX: &str = "RUNNEL_EXPR_";

/// A job ready to hand to an executor (or, for agentless jobs, to the service).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedJob {
    /// Parameters for every step, as environment variables.
    pub env: Vec<(String, String)>,
    /// Values to mask in logs and outputs.
    pub secrets: Vec<String>,
    pub steps: Vec<PreparedStep>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreparedStep {
    pub identifier: String,
    pub name: String,
    pub kind: PreparedStepKind,
    /// The step's own `env` entries plus the `RUNNEL_EXPR_<n>` values of its script.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PreparedStepKind {
    /// Run with bash.
    Shell { script: String },
    /// `enable=false`.
    Disabled,
    /// A manual review (agentless).
    Checkpoint(CheckpointSpec),
    /// A wait (agentless).
    Delay(Duration),
    /// A plugin with no implementation here: fails with a clear message when run.
    Unsupported { task: String },
}

/// An expression in a step could not be evaluated; the job fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step `{step}`: {message}")]
pub struct PrepareError {
    pub step: String,
    pub message: String,
}

/// Prepares `job` of a run with the run's parameters. Expressions see the `pipeline`, `sources`
/// and `env` contexts and the jobs that are final so far.
pub fn prepare_job(
    spec: &PipelineSpec,
    state: &RunState,
    job: JobIdx,
    parameters: &ResolvedParameters,
    context: &RunContext,
) -> Result<PreparedJob, PrepareError> {
    let job_spec = spec.job(job);
    let jobs = jobs_context(spec, state);
    let eval = StepContext {
        run: context,
        jobs: &jobs,
    };
    let lookup = |name: &str| {
        parameters
            .get(name)
            .map(|parameter| parameter.value.clone())
    };
    let mut steps = Vec::with_capacity(job_spec.steps.len());
    for step in &job_spec.steps {
        let fail = |message: String| PrepareError {
            step: step.identifier.clone(),
            message,
        };
        let mut env = Vec::new();
        for (name, template) in &step.env {
            let value = template
                .render(&lookup, &eval)
                .map_err(|err| fail(err.to_string()))?;
            env.push((name.clone(), value));
        }
        let kind = if !step.enabled {
            PreparedStepKind::Disabled
        } else {
            match &step.action {
                StepAction::Shell { script } => {
                    let script = render_script(script, &eval, &mut env).map_err(fail)?;
                    PreparedStepKind::Shell { script }
                }
                StepAction::Checkpoint(checkpoint) => {
                    PreparedStepKind::Checkpoint(checkpoint.clone())
                }
                StepAction::Delay { duration } => PreparedStepKind::Delay(*duration),
                StepAction::Plugin => PreparedStepKind::Unsupported {
                    task: step.task.clone(),
                },
            }
        };
        steps.push(PreparedStep {
            identifier: step.identifier.clone(),
            name: step.name.clone(),
            kind,
            env,
        });
    }
    Ok(PreparedJob {
        env: parameters.env_pairs(),
        secrets: parameters.secret_values(),
        steps,
        timeout: job_spec.timeout,
    })
}

/// Rebuilds the script text: literals and `${NAME}` as written, `${{ … }}` as a variable reference.
fn render_script(
    script: &Template,
    eval: &StepContext<'_>,
    env: &mut Vec<(String, String)>,
) -> Result<String, String> {
    let mut text = String::new();
    let mut next = 0usize;
    for segment in &script.segments {
        match segment {
            Segment::Literal(literal) => text.push_str(literal),
            Segment::Param(name) => {
                text.push_str("${");
                text.push_str(name);
                text.push('}');
            }
            Segment::Expr(expr) => {
                let value = crate::expr::evaluate(expr, eval).map_err(|err| err.to_string())?;
                let name = format!("{EXPRESSION_VAR_PREFIX}{next}");
                next += 1;
                text.push_str("${");
                text.push_str(&name);
                text.push('}');
                env.push((name, value.to_display_string()));
            }
        }
    }
    Ok(text)
}

struct StepContext<'a> {
    run: &'a RunContext,
    jobs: &'a serde_json::Value,
}

impl EvalContext for StepContext<'_> {
    fn context(&self, name: &str) -> Option<Value> {
        match name {
            "pipeline" => Some(Value::from(self.run.pipeline.clone())),
            "sources" => Some(Value::from(self.run.sources.clone())),
            "env" => Some(Value::from(self.run.env.clone())),
            "jobs" => Some(Value::from(self.jobs.clone())),
            _ => None,
        }
    }

    /// A running job's condition held, so the status functions read as they did for it.
    fn status_check(&self, check: StatusCheck) -> bool {
        !matches!(check, StatusCheck::Failure | StatusCheck::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_text;
    use crate::definition::Format;
    use crate::params::{ResolveInput, resolve};
    use crate::state::Selection;

    fn prepare(yaml: &str) -> PreparedJob {
        let spec = compile_text(yaml, Format::Yaml)
            .unwrap_or_else(|diagnostics| panic!("{diagnostics:#?}"));
        let state = RunState::new(&spec, &Selection::default()).expect("valid");
        let predefined = vec![("PIPELINE_NUMBER".to_owned(), "7".to_owned())];
        let parameters = resolve(&ResolveInput {
            predefined: &predefined,
            variables: spec.variables(),
            groups: &[],
            runtime: &[],
            auto_increment_values: &[],
        })
        .expect("parameters resolve");
        let context = RunContext {
            env: parameters.env_context(),
            ..RunContext::default()
        };
        let job = spec.job_by_identifier("j").expect("job j");
        prepare_job(&spec, &state, job, &parameters, &context).expect("prepares")
    }

    #[test]
    fn parameters_reach_scripts_only_through_the_environment() {
        let job = prepare(
            r#"
variables:
  target: { value: "$(touch pwned); echo" }
  token: { value: s3cr3t, is_secret: true }
jobs:
  - name: j
    steps:
      - run: 'deploy ${target} "${{ env.target }}" #${PIPELINE_NUMBER}'
"#,
        );
        let PreparedStepKind::Shell { script } = &job.steps[0].kind else {
            panic!("shell step")
        };
        // The value is not in the script text: `${target}` stays a reference bash expands at run time.
        assert_eq!(
            script,
            r#"deploy ${target} "${RUNNEL_EXPR_0}" #${PIPELINE_NUMBER}"#
        );
        assert_eq!(
            job.steps[0].env,
            vec![(
                "RUNNEL_EXPR_0".to_owned(),
                "$(touch pwned); echo".to_owned()
            )]
        );
        assert!(
            job.env
                .contains(&("target".to_owned(), "$(touch pwned); echo".to_owned()))
        );
        assert!(
            job.env
                .contains(&("PIPELINE_NUMBER".to_owned(), "7".to_owned()))
        );
        assert_eq!(job.secrets, vec!["s3cr3t".to_owned()]);
    }

    #[test]
    fn step_env_values_are_rendered_as_data_and_unknown_references_stay_literal() {
        let job = prepare(
            r#"
variables: { region: eu }
jobs:
  - name: j
    steps:
      - run: "true"
        env: { TARGET: "${region}-${missing}", NUMBER: "${{ 1 == 1 }}" }
      - run: "true"
        enabled: false
      - task: some_unknown_plugin
"#,
        );
        assert!(
            job.steps[0]
                .env
                .contains(&("TARGET".to_owned(), "eu-${missing}".to_owned()))
        );
        assert!(
            job.steps[0]
                .env
                .contains(&("NUMBER".to_owned(), "true".to_owned()))
        );
        assert_eq!(job.steps[1].kind, PreparedStepKind::Disabled);
        assert_eq!(
            job.steps[2].kind,
            PreparedStepKind::Unsupported {
                task: "some_unknown_plugin".to_owned()
            }
        );
    }
}
