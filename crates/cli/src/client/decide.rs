//! `runnel run approve|reject RUN`: the decision a paused run waits for — a manual review step
//! (`official_devcloud_checkpoint`, spec §5.9) or a stage's manual start or exit gate (§5.10–5.11).

use super::Context;
use super::error::ClientError;
use super::http::Call;
use super::output::{print, print_json};
use super::refs::{self, segment};
use reqwest::Method;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub(crate) struct DecideArgs {
    /// Run id (or run number with --pipeline).
    run: String,
    /// The run's pipeline (id or name); without it the project's pipelines are searched.
    #[arg(long, value_name = "PIPELINE")]
    pipeline: Option<String>,
    /// The waiting step (a step run id from `runnel run show`), when more than one waits.
    #[arg(long, value_name = "STEP_RUN_ID")]
    step: Option<String>,
    /// A comment recorded with a review decision.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
}

/// Something of the run that waits for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    /// A review step inside a job.
    Review {
        job_run_id: String,
        step_run_id: String,
        label: String,
    },
    /// A stage's manual start (or exit) gate.
    Gate { step_run_id: String, label: String },
}

impl Waiting {
    fn step_run_id(&self) -> &str {
        match self {
            Waiting::Review { step_run_id, .. } | Waiting::Gate { step_run_id, .. } => step_run_id,
        }
    }

    fn label(&self) -> &str {
        match self {
            Waiting::Review { label, .. } | Waiting::Gate { label, .. } => label,
        }
    }
}

pub(crate) async fn decide(
    ctx: &Context,
    project_id: &str,
    args: DecideArgs,
    pass: bool,
) -> Result<(), ClientError> {
    let (pipeline_id, detail) = match &args.pipeline {
        Some(pipeline) => {
            let pipeline_id = refs::pipeline_id(ctx, project_id, pipeline).await?;
            let detail = refs::run_detail(ctx, project_id, &pipeline_id, &args.run).await?;
            (pipeline_id, detail)
        }
        None => refs::locate_run(ctx, project_id, &args.run).await?,
    };
    let run_id = detail["id"].as_str().unwrap_or_default().to_owned();
    let waiting = waiting(&detail);
    let chosen = match (&args.step, waiting.as_slice()) {
        (Some(step), _) => waiting
            .iter()
            .find(|item| item.step_run_id() == step)
            .cloned()
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "step {step:?} of the run does not wait for a decision; `runnel run show {run_id}` shows what does"
                ))
            })?,
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(ClientError::Invalid(format!(
                "nothing in run {run_id} waits for a decision (its state is {})",
                detail["status"].as_str().unwrap_or("unknown")
            )));
        }
        (None, several) => {
            let listed: Vec<String> = several
                .iter()
                .map(|item| format!("  {}  {}", item.step_run_id(), item.label()))
                .collect();
            return Err(ClientError::Invalid(format!(
                "several steps wait for a decision; choose one with --step:\n{}",
                listed.join("\n")
            )));
        }
    };
    let base = format!(
        "/v5/{}/api/pipelines/{}/pipeline-runs/{}",
        segment(project_id),
        segment(&pipeline_id),
        segment(&run_id)
    );
    let verb = if pass { "pass" } else { "refuse" };
    let call = match &chosen {
        Waiting::Review {
            job_run_id,
            step_run_id,
            ..
        } => {
            let call = Call::new(
                Method::POST,
                format!(
                    "{base}/jobs/{}/steps/{}/{verb}",
                    segment(job_run_id),
                    segment(step_run_id)
                ),
            );
            match &args.comment {
                Some(comment) => call.query("approval_description", comment.clone()),
                None => call,
            }
        }
        Waiting::Gate { step_run_id, .. } => Call::new(
            Method::POST,
            format!("{base}/steps/{}/manual/{verb}", segment(step_run_id)),
        ),
    };
    let answer = ctx.send(call).await?.body;
    if ctx.is_json() {
        print_json(&answer);
    } else {
        let done = if pass { "Approved" } else { "Rejected" };
        print(&format!("{done} {} of run {run_id}.\n", chosen.label()));
    }
    Ok(())
}

/// Reviews and gates of the run that are PAUSED, in definition order.
fn waiting(detail: &Value) -> Vec<Waiting> {
    let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    let mut found = Vec::new();
    for stage in detail["stages"].as_array().into_iter().flatten() {
        let gates = stage["pre"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|gate| (gate, "manual start"))
            .chain(
                stage["post"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|gate| (gate, "exit gate")),
            );
        for (gate, kind) in gates {
            if gate["status"] == "PAUSED"
                && let Some(id) = gate["id"].as_str()
            {
                found.push(Waiting::Gate {
                    step_run_id: id.to_owned(),
                    label: format!("the {kind} of stage \"{}\"", text(&stage["name"])),
                });
            }
        }
        for job in stage["jobs"].as_array().into_iter().flatten() {
            for step in job["steps"].as_array().into_iter().flatten() {
                if step["status"] == "PAUSED"
                    && step["task"] == "official_devcloud_checkpoint"
                    && let (Some(job_run_id), Some(step_run_id)) =
                        (job["id"].as_str(), step["id"].as_str())
                {
                    found.push(Waiting::Review {
                        job_run_id: job_run_id.to_owned(),
                        step_run_id: step_run_id.to_owned(),
                        label: format!("the review \"{}\"", text(&step["name"])),
                    });
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paused_reviews_and_gates_are_found_in_order() {
        let detail = json!({"stages": [
            {"name": "Approve", "pre": [{"id": "g0", "task": "official_devcloud_autoTrigger", "status": "COMPLETED"}],
             "jobs": [{"id": "j1", "steps": [
                {"id": "s1", "name": "review", "task": "official_devcloud_checkpoint", "status": "PAUSED"},
                {"id": "s2", "name": "shell", "task": "official_shell_plugin", "status": "PAUSED"}]}]},
            {"name": "Deploy", "pre": [{"id": "g1", "task": "official_devcloud_manualTrigger", "status": "PAUSED"}],
             "jobs": []}
        ]});
        assert_eq!(
            waiting(&detail),
            [
                Waiting::Review {
                    job_run_id: "j1".into(),
                    step_run_id: "s1".into(),
                    label: "the review \"review\"".into()
                },
                Waiting::Gate {
                    step_run_id: "g1".into(),
                    label: "the manual start of stage \"Deploy\"".into()
                },
            ]
        );
    }
}
