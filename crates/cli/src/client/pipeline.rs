//! `runnel pipeline list|create|show|run|stop|retry` and `runnel run list|show`.

use super::error::ClientError;
use super::http::Call;
use super::output::{Table, duration, print, print_json, text, time};
use super::refs::{self, segment};
use super::show::{show_pipeline, show_run};
use super::{Common, Context, decide, definition};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// How often `--wait` and `--follow` look again.
pub(crate) const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PipelineCommand {
    /// The project's pipelines with their latest run.
    List(ListArgs),
    /// Create a pipeline from a JSON or YAML file (checked here first), or from a template.
    Create(CreateArgs),
    /// A pipeline's settings, variables and stages.
    Show {
        /// Pipeline id or name.
        pipeline: String,
    },
    /// Start a run; prints its id (and waits for its end with --wait).
    Run(StartArgs),
    /// Stop a run.
    Stop {
        /// Pipeline id or name.
        pipeline: String,
        /// Run id, or run number (`7` or `#7`).
        run: String,
    },
    /// Run a failed or stopped run's failed jobs again (the same run).
    Retry {
        /// Pipeline id or name.
        pipeline: String,
        /// Run id, or run number (`7` or `#7`).
        run: String,
        /// Only these job runs (ids from `runnel run show`); default: every failed one.
        #[arg(long = "job", value_name = "JOB_RUN_ID")]
        jobs: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only pipelines whose name contains this.
    #[arg(long)]
    name: Option<String>,
    /// At most this many (1–100).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Skip this many.
    #[arg(long, default_value_t = 0)]
    offset: i64,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "from_template"])))]
struct CreateArgs {
    /// A pipeline file: the CodeArts definition or pipeline body (JSON), or the YAML form.
    file: Option<PathBuf>,
    /// Create it from this v5 template instead (spec §4.7).
    #[arg(long, value_name = "TEMPLATE_ID", conflicts_with = "file")]
    from_template: Option<String>,
    /// The pipeline's name (default: the name in the file; required with --from-template).
    #[arg(long)]
    name: Option<String>,
    /// A description.
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, clap::Args)]
struct StartArgs {
    /// Pipeline id or name.
    pipeline: String,
    /// A run-time value for a variable declared `is_runtime` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// A description of this run.
    #[arg(long)]
    description: Option<String>,
    /// Run only these stages (identifiers; repeatable).
    #[arg(long = "stage", value_name = "STAGE")]
    stages: Vec<String>,
    /// Run only these jobs (identifiers; repeatable).
    #[arg(long = "job", value_name = "JOB")]
    jobs: Vec<String>,
    /// Retrying with the same key starts no second run.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Wait for the run to end; exit 0 only if it COMPLETED.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: RunCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RunCommand {
    /// A pipeline's runs, newest first.
    List {
        /// Pipeline id or name.
        pipeline: String,
        /// Only runs in these states (COMPLETED, RUNNING, FAILED, CANCELED, PAUSED, QUEUED, …).
        #[arg(long, value_name = "STATUS")]
        status: Vec<String>,
        /// At most this many (1–100).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// A run's stages, jobs and steps with their states and ids.
    Show {
        /// Run id (or run number with --pipeline).
        run: String,
        /// The run's pipeline (id or name); without it the project's pipelines are searched.
        #[arg(long, value_name = "PIPELINE")]
        pipeline: Option<String>,
    },
    /// Pass the manual review or manual stage start the run waits for.
    Approve(decide::DecideArgs),
    /// Refuse the manual review or manual stage start the run waits for.
    Reject(decide::DecideArgs),
}

pub(crate) async fn pipeline(args: PipelineArgs) -> Result<(), ClientError> {
    let ctx = Context::new(&args.common)?;
    let project_id = ctx.project_id().await?;
    let project = segment(&project_id);
    match args.command {
        PipelineCommand::List(list) => {
            let mut body = json!({"offset": list.offset, "limit": list.limit,
                                  "sort_key": "create_time", "sort_dir": "desc"});
            if let Some(name) = list.name {
                body["name"] = json!(name);
            }
            let page = ctx
                .post(format!("/v5/{project}/api/pipelines/list"), &body)
                .await?;
            if ctx.is_json() {
                print_json(&page);
                return Ok(());
            }
            let mut table = Table::new(&["PIPELINE ID", "NAME", "LATEST RUN", "STATUS", "STARTED"]);
            for pipeline in page["pipelines"].as_array().into_iter().flatten() {
                let latest = &pipeline["latest_run"];
                table.row(vec![
                    text(&pipeline["pipeline_id"]),
                    text(&pipeline["name"]),
                    latest["run_number"]
                        .as_i64()
                        .map_or_else(|| "-".to_owned(), |number| format!("#{number}")),
                    text(&latest["status"]),
                    time(&latest["start_time"]),
                ]);
            }
            print(&table.render());
            print(&format!(
                "{} of {} pipeline(s)\n",
                page["pipelines"].as_array().map_or(0, Vec::len),
                text(&page["total"])
            ));
        }
        PipelineCommand::Create(create) => {
            let answer = match (&create.file, &create.from_template) {
                (Some(file), _) => {
                    let file = definition::read(file)?;
                    let mut body = file.extra.clone();
                    let name = create.name.clone().or(file.name.clone()).ok_or_else(|| {
                        ClientError::Invalid(
                            "the file names no pipeline: pass --name NAME".to_owned(),
                        )
                    })?;
                    body.insert("name".to_owned(), json!(name));
                    if let Some(description) = create.description.clone().or(file.description) {
                        body.insert("description".to_owned(), json!(description));
                    }
                    body.entry("is_publish").or_insert(json!(false));
                    body.insert("variables".to_owned(), json!(file.variables));
                    if let Some(concurrency) = file.concurrency_control {
                        body.insert("concurrency_control".to_owned(), concurrency);
                    }
                    body.insert("definition".to_owned(), json!(file.definition));
                    ctx.post(format!("/v5/{project}/api/pipelines"), &Value::Object(body))
                        .await?
                }
                (None, Some(template_id)) => {
                    let name = create.name.clone().ok_or_else(|| {
                        ClientError::Invalid("--from-template needs --name NAME".to_owned())
                    })?;
                    let mut body = Map::new();
                    body.insert("name".to_owned(), json!(name));
                    body.insert("is_publish".to_owned(), json!(false));
                    body.insert("sources".to_owned(), json!([]));
                    if let Some(description) = &create.description {
                        body.insert("description".to_owned(), json!(description));
                    }
                    ctx.post(
                        format!(
                            "/v5/{project}/api/pipeline-templates/{}/create-pipeline",
                            segment(template_id)
                        ),
                        &Value::Object(body),
                    )
                    .await?
                }
                (None, None) => {
                    return Err(ClientError::Invalid(
                        "give a pipeline file or --from-template".to_owned(),
                    ));
                }
            };
            if ctx.is_json() {
                print_json(&answer);
            } else {
                print(&format!(
                    "Created pipeline {}\n",
                    text(&answer["pipeline_id"])
                ));
            }
        }
        PipelineCommand::Show { pipeline } => {
            let pipeline_id = refs::pipeline_id(&ctx, &project_id, &pipeline).await?;
            let detail = ctx
                .get(format!(
                    "/v5/{project}/api/pipelines/{}",
                    segment(&pipeline_id)
                ))
                .await?;
            if ctx.is_json() {
                print_json(&detail);
            } else {
                print(&show_pipeline(&detail));
            }
        }
        PipelineCommand::Run(start) => start_run(&ctx, &project_id, start).await?,
        PipelineCommand::Stop { pipeline, run } => {
            let (pipeline_id, run_id) = run_ids(&ctx, &project_id, &pipeline, &run).await?;
            let answer = ctx
                .post_empty(format!(
                    "/v5/{project}/api/pipelines/{}/pipeline-runs/{}/stop",
                    segment(&pipeline_id),
                    segment(&run_id)
                ))
                .await?;
            done(&ctx, &answer, &format!("Stopping run {run_id}.\n"));
        }
        PipelineCommand::Retry {
            pipeline,
            run,
            jobs,
        } => {
            let (pipeline_id, run_id) = run_ids(&ctx, &project_id, &pipeline, &run).await?;
            let body = if jobs.is_empty() {
                json!({})
            } else {
                json!({"job_run_ids": jobs})
            };
            let answer = ctx
                .send(
                    Call::new(
                        Method::PUT,
                        format!(
                            "/v5/{project}/api/pipelines/{}/pipeline-runs/{}/retry",
                            segment(&pipeline_id),
                            segment(&run_id)
                        ),
                    )
                    .body(&body),
                )
                .await?
                .body;
            done(&ctx, &answer, &format!("Retrying run {run_id}.\n"));
        }
    }
    Ok(())
}

pub(crate) async fn run(args: RunArgs) -> Result<(), ClientError> {
    let ctx = Context::new(&args.common)?;
    let project_id = ctx.project_id().await?;
    let project = segment(&project_id);
    match args.command {
        RunCommand::List {
            pipeline,
            status,
            limit,
            offset,
        } => {
            let pipeline_id = refs::pipeline_id(&ctx, &project_id, &pipeline).await?;
            let mut body = json!({"offset": offset, "limit": limit,
                                  "sort_key": "start_time", "sort_dir": "desc"});
            if !status.is_empty() {
                body["status"] = json!(status);
            }
            let page = ctx
                .post(
                    format!(
                        "/v5/{project}/api/pipelines/{}/pipeline-runs/list",
                        segment(&pipeline_id)
                    ),
                    &body,
                )
                .await?;
            if ctx.is_json() {
                print_json(&page);
                return Ok(());
            }
            let now = chrono::Utc::now().timestamp_millis();
            let mut table = Table::new(&[
                "RUN", "RUN ID", "STATUS", "TRIGGER", "BY", "STARTED", "DURATION",
            ]);
            for run in page["pipeline_runs"].as_array().into_iter().flatten() {
                table.row(vec![
                    format!("#{}", text(&run["run_number"])),
                    text(&run["pipeline_run_id"]),
                    text(&run["status"]),
                    text(&run["trigger_type"]),
                    text(&run["executor_name"]),
                    time(&run["start_time"]),
                    duration(&run["start_time"], &run["end_time"], now),
                ]);
            }
            print(&table.render());
            print(&format!(
                "{} of {} run(s)\n",
                page["pipeline_runs"].as_array().map_or(0, Vec::len),
                text(&page["total"])
            ));
        }
        RunCommand::Show { run, pipeline } => {
            let detail = match pipeline {
                Some(pipeline) => {
                    let pipeline_id = refs::pipeline_id(&ctx, &project_id, &pipeline).await?;
                    refs::run_detail(&ctx, &project_id, &pipeline_id, &run).await?
                }
                None => refs::locate_run(&ctx, &project_id, &run).await?.1,
            };
            if ctx.is_json() {
                print_json(&detail);
            } else {
                print(&show_run(&detail));
            }
        }
        RunCommand::Approve(args) => decide::decide(&ctx, &project_id, args, true).await?,
        RunCommand::Reject(args) => decide::decide(&ctx, &project_id, args, false).await?,
    }
    Ok(())
}

async fn start_run(ctx: &Context, project_id: &str, start: StartArgs) -> Result<(), ClientError> {
    let pipeline_id = refs::pipeline_id(ctx, project_id, &start.pipeline).await?;
    let mut variables = Vec::new();
    for pair in &start.vars {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| ClientError::Invalid(format!("--var {pair:?} must be NAME=VALUE")))?;
        variables.push(json!({"name": name, "value": value}));
    }
    let mut body = Map::new();
    if !variables.is_empty() {
        body.insert("variables".to_owned(), json!(variables));
    }
    if let Some(description) = &start.description {
        body.insert("description".to_owned(), json!(description));
    }
    if !start.stages.is_empty() {
        body.insert("choose_stages".to_owned(), json!(start.stages));
    }
    if !start.jobs.is_empty() {
        body.insert("choose_jobs".to_owned(), json!(start.jobs));
    }
    let body = Value::Object(body);
    let mut call = Call::new(
        Method::POST,
        format!(
            "/v5/{}/api/pipelines/{}/run",
            segment(project_id),
            segment(&pipeline_id)
        ),
    )
    .body(&body);
    if let Some(key) = &start.idempotency_key {
        call = call.header("idempotency-key", key.clone());
    }
    let answer = ctx.send(call).await?.body;
    let run_id = answer["pipeline_run_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol("the run answer has no pipeline_run_id".to_owned()))?;
    let queued = answer["error_code"].as_str().is_some();
    if !start.wait {
        if ctx.is_json() {
            print_json(&answer);
        } else if queued {
            print(&format!(
                "Queued run {run_id}: {}\n",
                text(&answer["error_msg"])
            ));
        } else {
            print(&format!("Started run {run_id}\n"));
        }
        return Ok(());
    }
    if !ctx.is_json() {
        eprintln!("Started run {run_id}; waiting for it to end…");
    }
    let detail = wait_for_end(ctx, project_id, &pipeline_id, &run_id).await?;
    let status = text(&detail["status"]);
    if ctx.is_json() {
        print_json(&detail);
    } else {
        print(&format!(
            "Run #{} ({run_id}) ended {status}\n",
            text(&detail["run_number"])
        ));
    }
    if status == "COMPLETED" {
        Ok(())
    } else {
        Err(ClientError::RunNotCompleted { status })
    }
}

/// Polls the run detail until the run is in a final state.
pub(crate) async fn wait_for_end(
    ctx: &Context,
    project_id: &str,
    pipeline_id: &str,
    run_id: &str,
) -> Result<Value, ClientError> {
    loop {
        let detail = refs::run_detail(ctx, project_id, pipeline_id, run_id).await?;
        if is_final_run(detail["status"].as_str().unwrap_or_default()) {
            return Ok(detail);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Terminal run states (spec §12.1).
pub(crate) fn is_final_run(status: &str) -> bool {
    matches!(status, "COMPLETED" | "FAILED" | "CANCELED" | "IGNORED")
}

async fn run_ids(
    ctx: &Context,
    project_id: &str,
    pipeline: &str,
    run: &str,
) -> Result<(String, String), ClientError> {
    let pipeline_id = refs::pipeline_id(ctx, project_id, pipeline).await?;
    if refs::run_number(run).is_none() {
        return Ok((pipeline_id, run.to_owned()));
    }
    let detail = refs::run_detail(ctx, project_id, &pipeline_id, run).await?;
    let run_id = detail["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol("the run detail has no id".to_owned()))?;
    Ok((pipeline_id, run_id))
}

fn done(ctx: &Context, answer: &Value, message: &str) {
    if ctx.is_json() {
        print_json(answer);
    } else {
        print(message);
    }
}
