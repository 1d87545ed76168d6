//! `runnel logs RUN [--follow]`: every step's log in definition order, through the offset-paged
//! step log API (spec §5.6). `--follow` reads each step's live log stream (Server-Sent Events,
//! `…/steps/{step_run_id}/logs/stream?offset=N`) until the step ends, in order, then waits for
//! the run's end; against a server without the stream it polls the paged API instead.

use super::error::ClientError;
use super::http::Call;
use super::output::print;
use super::pipeline::{POLL, is_final_run, wait_for_end};
use super::refs::{self, segment};
use super::{Common, Context};
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

/// Lines asked for per page.
const PAGE_LINES: u64 = 500;
/// Reconnections of a live log stream in a row before giving up.
const MAX_RECONNECTS: u32 = 5;

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    common: Common,
    /// Run id (or run number with --pipeline).
    run: String,
    /// The run's pipeline (id or name); without it the project's pipelines are searched.
    #[arg(long, value_name = "PIPELINE")]
    pipeline: Option<String>,
    /// Only this step (a step run id from `runnel run show`); printed without a header.
    #[arg(long, value_name = "STEP_RUN_ID")]
    step: Option<String>,
    /// Keep printing new output until the run ends; exit 1 unless it COMPLETED.
    #[arg(long, short = 'f')]
    follow: bool,
    /// With --follow: poll the paged log API instead of reading the live stream (for proxies
    /// that hold back streamed responses).
    #[arg(long, requires = "follow")]
    poll: bool,
}

/// The run whose logs are read.
struct Target<'a> {
    ctx: &'a Context,
    project_id: String,
    pipeline_id: String,
    run_id: String,
    /// Print a `==> stage / job / step <==` line before each step's log.
    with_headers: bool,
}

impl Target<'_> {
    fn log_path(&self, step: &StepLog) -> String {
        format!(
            "/v5/{}/api/pipelines/{}/pipeline-runs/{}/jobs/{}/steps/{}/logs",
            segment(&self.project_id),
            segment(&self.pipeline_id),
            segment(&self.run_id),
            segment(&step.job_run_id),
            segment(&step.step_run_id),
        )
    }

    async fn detail(&self) -> Result<Value, ClientError> {
        refs::run_detail(self.ctx, &self.project_id, &self.pipeline_id, &self.run_id).await
    }
}

/// Where reading one step's log has got to.
#[derive(Debug)]
struct StepLog {
    label: String,
    job_run_id: String,
    step_run_id: String,
    offset: u64,
    has_header: bool,
    is_done: bool,
}

impl StepLog {
    fn print(&mut self, target: &Target<'_>, log: &str) {
        if log.is_empty() {
            return;
        }
        if target.with_headers && !self.has_header {
            print(&format!("==> {} <==\n", self.label));
            self.has_header = true;
        }
        print(log);
    }
}

pub(crate) async fn logs(args: LogsArgs) -> Result<(), ClientError> {
    let ctx = Context::new(&args.common)?;
    let project_id = ctx.project_id().await?;
    let (pipeline_id, detail) = match &args.pipeline {
        Some(pipeline) => {
            let pipeline_id = refs::pipeline_id(&ctx, &project_id, pipeline).await?;
            let detail = refs::run_detail(&ctx, &project_id, &pipeline_id, &args.run).await?;
            (pipeline_id, detail)
        }
        None => refs::locate_run(&ctx, &project_id, &args.run).await?,
    };
    let run_id = detail["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol("the run detail has no id".to_owned()))?;
    if let Some(step) = &args.step
        && !step_statuses(&detail).iter().any(|(id, _)| id == step)
    {
        return Err(ClientError::Invalid(format!(
            "the run has no step {step:?}; `runnel run show {run_id}` lists its steps"
        )));
    }
    let target = Target {
        ctx: &ctx,
        project_id,
        pipeline_id,
        run_id,
        with_headers: args.step.is_none(),
    };
    let mut steps = Vec::new();
    merge_steps(&mut steps, &detail, args.step.as_deref());
    if !args.follow {
        for step in &mut steps {
            read_step(&target, step).await?;
        }
        return Ok(());
    }
    if args.poll || !stream_steps(&target, &mut steps).await? {
        poll_steps(&target, &mut steps, detail, args.step.as_deref()).await?;
    }
    let detail = wait_for_end(
        target.ctx,
        &target.project_id,
        &target.pipeline_id,
        &target.run_id,
    )
    .await?;
    let status = detail["status"].as_str().unwrap_or_default().to_owned();
    if status == "COMPLETED" {
        Ok(())
    } else {
        Err(ClientError::RunNotCompleted { status })
    }
}

/// Follows every step's live stream to its `end`, in order. `false` when the server has no
/// live log streams (nothing was printed then).
async fn stream_steps(target: &Target<'_>, steps: &mut [StepLog]) -> Result<bool, ClientError> {
    for step in steps.iter_mut() {
        match stream_step(target, step).await {
            Ok(()) => step.is_done = true,
            Err(ClientError::Refused {
                status: 404, code, ..
            }) if code == "APIGW.0101" => {
                tracing::debug!(
                    "the server has no live log streams: polling the paged log instead"
                );
                return Ok(false);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(true)
}

/// Prints one step's live log until its `end` event, reconnecting from the last offset when
/// the connection drops.
async fn stream_step(target: &Target<'_>, step: &mut StepLog) -> Result<(), ClientError> {
    let path = format!("{}/stream", target.log_path(step));
    let mut failures = 0;
    loop {
        let call = Call::new(Method::GET, path.clone())
            .query("offset", step.offset.to_string())
            .header("accept", "text/event-stream");
        match target.ctx.api.open(call).await {
            Ok(response) => {
                tracing::debug!(step_run_id = %step.step_run_id, offset = step.offset, "following the live log stream");
                let mut events = response.bytes_stream().eventsource();
                while let Some(Ok(event)) = events.next().await {
                    failures = 0;
                    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    match event.event.as_str() {
                        "log" => {
                            step.print(target, data["log"].as_str().unwrap_or_default());
                            step.offset = offset(&data["end_offset"]).unwrap_or(step.offset);
                        }
                        "reset" => {
                            // The job was retried: its log starts again.
                            step.offset = 0;
                            if target.with_headers {
                                print(&format!(
                                    "==> {} (attempt {}) <==\n",
                                    step.label,
                                    super::output::text(&data["attempt"])
                                ));
                                step.has_header = true;
                            }
                        }
                        "end" => {
                            step.offset = offset(&data["end_offset"]).unwrap_or(step.offset);
                            return Ok(());
                        }
                        _ => {}
                    }
                }
            }
            Err(err @ ClientError::Unreachable { .. }) if failures >= MAX_RECONNECTS => {
                return Err(err);
            }
            Err(ClientError::Unreachable { .. }) => {}
            Err(other) => return Err(other),
        }
        failures += 1;
        if failures > MAX_RECONNECTS {
            return Err(ClientError::Unreachable {
                endpoint: target.ctx.api.endpoint().to_owned(),
                cause: "the live log stream kept closing".to_owned(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows by polling the paged API: each step is read until it is final, in order.
async fn poll_steps(
    target: &Target<'_>,
    steps: &mut Vec<StepLog>,
    mut detail: Value,
    only: Option<&str>,
) -> Result<(), ClientError> {
    loop {
        merge_steps(steps, &detail, only);
        let statuses = step_statuses(&detail);
        let run_is_final = is_final_run(detail["status"].as_str().unwrap_or_default());
        for step in steps.iter_mut().filter(|step| !step.is_done) {
            let status = statuses
                .iter()
                .find(|(id, _)| *id == step.step_run_id)
                .map_or("", |(_, status)| status.as_str());
            let read_all = read_step(target, step).await?;
            // Once the run has ended, nothing more will be written anywhere.
            if run_is_final || (is_final_step(status) && read_all) {
                step.is_done = true;
            } else {
                // Keep the order: later steps wait until this one is done.
                break;
            }
        }
        if run_is_final && steps.iter().all(|step| step.is_done) {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        detail = target.detail().await?;
    }
}

/// Reads the step's log from where it got to; returns whether the server has nothing more.
async fn read_step(target: &Target<'_>, step: &mut StepLog) -> Result<bool, ClientError> {
    let path = target.log_path(step);
    loop {
        let body = json!({"start_offset": step.offset, "end_offset": 0, "limit": PAGE_LINES, "sort": "asc"});
        let page = target.ctx.post(path.clone(), &body).await?;
        let log = page["log"].as_str().unwrap_or_default();
        let has_more = page["has_more"].as_bool().unwrap_or(false);
        let end = offset(&page["end_offset"]).unwrap_or(step.offset);
        step.print(target, log);
        let moved = end > step.offset;
        step.offset = end.max(step.offset);
        if !has_more {
            return Ok(true);
        }
        if !moved || log.is_empty() {
            // More may come (the step is still running), but nothing is there yet.
            return Ok(false);
        }
    }
}

/// Offsets arrive as strings (spec §5.6); numbers are accepted too.
fn offset(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// Adds the run's job steps not known yet, in definition order (a retry may add none, but a
/// run detail read before jobs were created may have fewer).
fn merge_steps(steps: &mut Vec<StepLog>, detail: &Value, only: Option<&str>) {
    for stage in detail["stages"].as_array().into_iter().flatten() {
        for job in stage["jobs"].as_array().into_iter().flatten() {
            for step in job["steps"].as_array().into_iter().flatten() {
                let (Some(job_run_id), Some(step_run_id)) =
                    (job["id"].as_str(), step["id"].as_str())
                else {
                    continue;
                };
                if only.is_some_and(|only| only != step_run_id)
                    || steps.iter().any(|known| known.step_run_id == step_run_id)
                {
                    continue;
                }
                steps.push(StepLog {
                    label: format!(
                        "{} / {} / {}",
                        text(&stage["name"]),
                        text(&job["name"]),
                        text(&step["name"])
                    ),
                    job_run_id: job_run_id.to_owned(),
                    step_run_id: step_run_id.to_owned(),
                    offset: 0,
                    has_header: false,
                    is_done: false,
                });
            }
        }
    }
}

fn step_statuses(detail: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stage in detail["stages"].as_array().into_iter().flatten() {
        for job in stage["jobs"].as_array().into_iter().flatten() {
            for step in job["steps"].as_array().into_iter().flatten() {
                if let Some(id) = step["id"].as_str() {
                    out.push((
                        id.to_owned(),
                        step["status"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

/// A step that will not write more (spec §12.2; unselected and ignored steps never run).
fn is_final_step(status: &str) -> bool {
    matches!(
        status,
        "COMPLETED" | "FAILED" | "CANCELED" | "SKIPPED" | "IGNORED" | "UNSELECTED"
    )
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("?").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_taken_in_definition_order_once() {
        let detail = json!({"stages": [
            {"name": "Build", "jobs": [
                {"id": "j1", "name": "compile", "steps": [{"id": "s1", "name": "make"}, {"id": "s2", "name": "pack"}]},
                {"id": "j2", "name": "lint", "steps": [{"id": "s3", "name": "check"}]}
            ]},
            {"name": "Deploy", "jobs": [{"id": "j3", "name": "ship", "steps": [{"id": "s4", "name": "push"}]}]}
        ]});
        let mut steps = Vec::new();
        merge_steps(&mut steps, &detail, None);
        merge_steps(&mut steps, &detail, None);
        let ids: Vec<&str> = steps.iter().map(|step| step.step_run_id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2", "s3", "s4"]);
        assert_eq!(steps[2].label, "Build / lint / check");
        let mut only = Vec::new();
        merge_steps(&mut only, &detail, Some("s4"));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].job_run_id, "j3");
    }

    #[test]
    fn offsets_are_read_from_strings_or_numbers() {
        assert_eq!(offset(&json!("214")), Some(214));
        assert_eq!(offset(&json!(7)), Some(7));
        assert_eq!(offset(&Value::Null), None);
    }
}
