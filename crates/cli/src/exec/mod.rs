//! `runnel exec FILE`: compile a pipeline and run its whole DAG on this machine, without a server.

mod driver;
mod report;

use crate::pipeline_file;
use anyhow::Context as _;
use runnel_domain::Timestamp;
use runnel_domain::params::{
    ResolveInput, ResolvedParameters, RunContextInfo, RuntimeValue, VariableType,
    auto_increment_for_run, pipeline_context, predefined_parameters, resolve, sources_context,
};
use runnel_domain::scheduler::RunContext;
use runnel_domain::spec::PipelineSpec;
use runnel_domain::state::Selection;
use runnel_executor::{EnvPolicy, ShellExecutor, ShellExecutorConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// The pipeline file: CodeArts definition JSON (bare or in a pipeline body) or YAML.
    file: PathBuf,
    /// Give a custom variable a value for this run (repeatable). Every declared variable may be
    /// set here; enum values must be one of the variable's options.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Run only these jobs (identifiers, comma-separated); the rest are UNSELECTED.
    #[arg(long, value_delimiter = ',', value_name = "ID,…")]
    jobs: Vec<String>,
    /// Run only these stages (identifiers, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID,…")]
    stages: Vec<String>,
    /// How many jobs may run at once (default: the number of CPU cores).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Where job workspaces are created (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    workspace_root: Option<PathBuf>,
    /// Keep job workspaces after the run.
    #[arg(long)]
    keep_workspaces: bool,
    /// Seconds between SIGTERM and SIGKILL when a step is stopped.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    kill_grace: u64,
    /// Do not print step logs, only the summary.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let spec = match pipeline_file::load(&args.file)? {
        Ok(spec) => spec,
        Err(_) => return Ok(ExitCode::from(2)),
    };
    let started_at = now();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let pipeline_name = spec
        .name()
        .map(str::to_owned)
        .or_else(|| {
            args.file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pipeline".to_owned());
    let info = RunContextInfo {
        project_id: "local".to_owned(),
        pipeline_id: "local".to_owned(),
        pipeline_name,
        run_number: 1,
        run_id: run_id.clone(),
        trigger_type: "Manual".to_owned(),
        started_at,
        utc_offset_minutes: chrono::Local::now().offset().local_minus_utc() / 60,
        execute_user: std::env::var("USER").unwrap_or_default(),
        sources: Vec::new(),
        merge_id: String::new(),
        webhook_payload: None,
        run_link: String::new(),
    };
    let parameters = match resolve_parameters(&spec, &info, &args.params) {
        Ok(parameters) => parameters,
        Err(message) => {
            eprintln!("runnel: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let context = RunContext {
        pipeline: pipeline_context(&info),
        sources: sources_context(&info),
        env: parameters.env_context(),
    };
    let selection = Selection {
        stages: args.stages.clone(),
        jobs: args.jobs.clone(),
    };
    let state = match runnel_domain::state::RunState::new(&spec, &selection) {
        Ok(state) => state,
        Err(err) => {
            eprintln!("runnel: {err}");
            return Ok(ExitCode::from(2));
        }
    };

    let (workspace_root, _temporary) = match &args.workspace_root {
        Some(root) => (root.clone(), None),
        None => {
            let dir = tempfile_dir().context("while creating a temporary workspace directory")?;
            if args.keep_workspaces {
                eprintln!("runnel: workspaces are kept in {}", dir.display());
                (dir, None)
            } else {
                (dir.clone(), Some(TemporaryDir(dir)))
            }
        }
    };
    let executor = ShellExecutor::new(ShellExecutorConfig {
        workspace_root,
        keep_workspaces: args.keep_workspaces,
        kill_grace: Duration::from_secs(args.kill_grace),
        env_policy: EnvPolicy::InheritAll,
        shell: PathBuf::from("bash"),
    });
    let parallel = args
        .parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |count| count.get()))
        .max(1);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let driver = driver::Driver::new(driver::DriverConfig {
        spec,
        state,
        context,
        parameters,
        executor,
        parallel,
        run_id,
        quiet: args.quiet,
    });
    let outcome = runtime.block_on(driver.run());
    // The run is over (every job ended and was cleaned up): the process exits next, so the
    // runtime's threads are not waited for (a join of each, and their allocator caches freed
    // one by one, were a millisecond of a trivial run).
    runtime.shutdown_background();
    let outcome = outcome?;
    Ok(if outcome == runnel_domain::status::RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Predefined parameters, declared variables with `--param` values (any declared variable may be
/// set locally), auto-increment variables at their declared value (a local run is a first run).
fn resolve_parameters(
    spec: &PipelineSpec,
    info: &RunContextInfo,
    params: &[String],
) -> Result<ResolvedParameters, String> {
    let mut runtime = Vec::new();
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            return Err(format!("--param `{param}` must be NAME=VALUE"));
        };
        if !spec
            .variables()
            .iter()
            .any(|variable| variable.name == name)
        {
            let declared: Vec<&str> = spec
                .variables()
                .iter()
                .map(|variable| variable.name.as_str())
                .collect();
            return Err(format!(
                "--param {name}: the pipeline declares no variable `{name}` (declared: {})",
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ));
        }
        runtime.push(RuntimeValue {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }
    let mut variables = spec.variables().to_vec();
    for variable in &mut variables {
        variable.is_runtime = true;
    }
    let mut auto_increment_values = Vec::new();
    for variable in variables
        .iter()
        .filter(|variable| variable.var_type == VariableType::AutoIncrement)
    {
        let step = auto_increment_for_run(variable)
            .map_err(|err| format!("variable {}: {err}", variable.name))?;
        auto_increment_values.push((variable.name.clone(), step.value_for_run));
    }
    let predefined = predefined_parameters(info);
    resolve(&ResolveInput {
        predefined: &predefined,
        variables: &variables,
        groups: &[],
        runtime: &runtime,
        auto_increment_values: &auto_increment_values,
    })
    .map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|diagnostic| format!("--param: {}", diagnostic.message))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "runnel-exec-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes the temporary workspace root when the run is over.
struct TemporaryDir(PathBuf);

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
