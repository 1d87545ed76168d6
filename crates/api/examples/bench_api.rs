//! Fills an SQLite store with one pipeline of many runs (100 000 by default) and serves the API
//! on it, for load tests of the run list and the run detail (`scripts/bench-api` drives it with
//! `wrk`).
//!
//! ```text
//! cargo run --release -p runnel-api --example bench_api -- [--runs N] [--listen ADDR] [--dir DIR] [--readers N] [--workers N]
//! ```
//!
//! Once serving it prints one JSON line on stdout with what a load generator needs:
//! `{"url", "token", "project_id", "pipeline_id", "run_id", "runs", "fill_seconds"}`, then
//! serves until it is interrupted. With `--dir`, the filled store is kept and used again by
//! the next start with the same `--runs`. Runs are final (COMPLETED, FAILED, CANCELED), so the engine
//! has nothing to recover; each has two stages of two jobs of two steps.

use runnel_api::{ApiConfig, ApiState};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, RunStatus, StageStatus};
use runnel_engine::{Engine, EngineConfig, SystemClock};
use runnel_store::{
    IdentityStore, NewJobRun, NewPipeline, NewRun, NewStageRun, NewStepRun, PipelineStore, Role,
    RunParameter, RunStore, SecretKey, Store, StoreConfig, StoreError, new_id,
};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    runs: usize,
    listen: String,
    dir: Option<PathBuf>,
    readers: u32,
    workers: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        runs: 100_000,
        listen: "127.0.0.1:0".to_owned(),
        dir: None,
        readers: 8,
        workers: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = value()?.parse().map_err(|_| "--runs: a number")?,
            "--listen" => options.listen = value()?,
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            "--readers" => options.readers = value()?.parse().map_err(|_| "--readers: a number")?,
            "--workers" => options.workers = value()?.parse().map_err(|_| "--workers: a number")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What `runnel serve` runs on: mimalloc (SQLite's allocations too) and SQLite's page cache
    // wrapper, installed before the first connection; freed memory handed back at once.
    let _ = runnel_process::init();
    runnel_process::tune_for_server();
    let options = options()?;
    // As `runnel serve` does: a multi-threaded runtime of `server.worker_threads` threads.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.workers)
        .enable_all()
        .build()?
        .block_on(serve(options))
}

async fn serve(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    // With `--dir`, a store filled by an earlier start is used again (`bench-api.json` holds
    // its key and ids), so repeated measurements skip the fill.
    let fixture_path = dir.join("bench-api.json");
    let earlier: Option<serde_json::Value> = std::fs::read(&fixture_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(|fixture: &serde_json::Value| fixture["runs"] == options.runs);
    let key = match earlier.as_ref().and_then(|fixture| fixture["key"].as_str()) {
        Some(hex) => SecretKey::from_hex(hex).ok_or("bench-api.json: a bad key")?,
        None => {
            let _ = std::fs::remove_file(dir.join("bench-api.db"));
            SecretKey::generate()
        }
    };
    let mut config = StoreConfig::sqlite(&dir.join("bench-api.db"), key.clone());
    config.max_connections = options.readers;
    let store = Store::open(config).await?;
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    let text = |fixture: &serde_json::Value, key: &str| {
        fixture[key].as_str().unwrap_or_default().to_owned()
    };
    let (user_id, project_id, pipeline_id, run_id, fill_seconds) = match &earlier {
        Some(fixture) => (
            text(fixture, "user_id"),
            text(fixture, "project_id"),
            text(fixture, "pipeline_id"),
            text(fixture, "run_id"),
            fixture["fill_seconds"].as_f64().unwrap_or_default(),
        ),
        None => {
            let domain = store.create_domain("bench", now).await?;
            let project = store.create_project(&domain.id, "bench", "", now).await?;
            let user = store.create_user(&domain.id, "bench", None, now).await?;
            store
                .set_member(&project.id, &user.id, Role::Admin, now)
                .await?;
            let pipeline_id = new_pipeline(&store, &project.id, now).await?;
            let started = Instant::now();
            let run_id = fill(&store, &pipeline_id, options.runs, now).await?;
            store.refresh_statistics().await?;
            let fill_seconds = started.elapsed().as_secs_f64();
            eprintln!("{} runs stored in {fill_seconds:.1} s", options.runs);
            if options.dir.is_some() {
                let fixture = json!({"key": key.to_hex(), "runs": options.runs, "user_id": user.id,
                    "project_id": project.id, "pipeline_id": pipeline_id, "run_id": run_id,
                    "fill_seconds": fill_seconds});
                std::fs::write(&fixture_path, fixture.to_string())?;
            }
            (user.id, project.id, pipeline_id, run_id, fill_seconds)
        }
    };

    let (engine, engine_task) = Engine::start(
        store.clone(),
        EngineConfig::default(),
        Arc::new(SystemClock),
    )
    .await?;
    let token = store
        .issue_token(
            &user_id,
            "project:bench",
            now,
            Duration::from_secs(24 * 3600),
        )
        .await?
        .token;
    let listener = tokio::net::TcpListener::bind(&options.listen).await?;
    let address = listener.local_addr()?;
    let url = format!("http://{address}");
    let router = runnel_api::router(ApiState {
        engine,
        store,
        config: Arc::new(ApiConfig::new(url.clone(), "local-1")),
    });
    println!(
        "{}",
        json!({"url": url, "token": token, "project_id": project_id, "pipeline_id": pipeline_id,
               "run_id": run_id, "runs": options.runs, "fill_seconds": fill_seconds})
    );
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    engine_task.shutdown().await;
    Ok(())
}

async fn new_pipeline(
    store: &Store,
    project_id: &str,
    now: Timestamp,
) -> Result<String, StoreError> {
    let record = store
        .create_pipeline(NewPipeline {
            id: new_id(),
            project_id: project_id.to_owned(),
            name: "bench".to_owned(),
            description: String::new(),
            is_publish: false,
            component_id: None,
            group_id: None,
            manifest_version: "3.0".to_owned(),
            definition: r#"{"stages":[]}"#.to_owned(),
            compiled: json!({"stages": []}),
            sources: json!([]),
            settings: json!({}),
            variables: Vec::new(),
            variable_group_ids: Vec::new(),
            tag_ids: Vec::new(),
            origin_id: None,
            from_source: 0,
            creator_id: "bench".to_owned(),
            now,
        })
        .await?;
    Ok(record.id)
}

/// Stores `runs` runs from 16 tasks (the store commits them in groups); returns the last one's id.
async fn fill(
    store: &Store,
    pipeline_id: &str,
    runs: usize,
    now: Timestamp,
) -> Result<String, StoreError> {
    let tasks = 16usize;
    let per_task = runs.div_ceil(tasks);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let pipeline_id = pipeline_id.to_owned();
        handles.push(tokio::spawn(async move {
            let mut last = String::new();
            for index in 0..per_task {
                let global = task * per_task + index;
                if global >= runs {
                    break;
                }
                let start = now.as_millis() - (runs - global) as i64 * 60_000;
                let run = bench_run(&pipeline_id, global, Timestamp::from_millis(start));
                last = store.create_run(run, number_parameter()).await?.run.id;
            }
            Ok::<String, StoreError>(last)
        }));
    }
    let mut last = String::new();
    for handle in handles {
        let id = handle
            .await
            .map_err(|err| StoreError::Invalid(format!("a filler panicked: {err}")))??;
        if !id.is_empty() {
            last = id;
        }
    }
    Ok(last)
}

/// A final run: two stages of two jobs of two steps.
fn bench_run(pipeline_id: &str, index: usize, at: Timestamp) -> NewRun {
    let status = [
        RunStatus::Completed,
        RunStatus::Completed,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Canceled,
    ][index % 5];
    let job_status = match status {
        RunStatus::Failed => JobStatus::Failed,
        RunStatus::Canceled => JobStatus::Canceled,
        _ => JobStatus::Completed,
    };
    let stage_status = match status {
        RunStatus::Failed => StageStatus::Failed,
        RunStatus::Canceled => StageStatus::Canceled,
        _ => StageStatus::Completed,
    };
    NewRun {
        id: new_id(),
        pipeline_id: pipeline_id.to_owned(),
        pipeline_version: None,
        status,
        trigger_type: if index.is_multiple_of(3) { "Push" } else { "Manual" }.to_owned(),
        executor_id: "bench".to_owned(),
        executor_name: "bench".to_owned(),
        description: format!("run {index}"),
        build_params: json!({"build_type": "branch", "target_branch": "main", "event_type": "Manual"}),
        sources: json!([]),
        selection: json!({}),
        now: at,
        stages: (0..2)
            .map(|stage| NewStageRun {
                id: new_id(),
                sequence: stage,
                identifier: format!("stage_{stage}"),
                name: format!("Stage {stage}"),
                category: None,
                run_always: false,
                parallel: None,
                is_select: true,
                depends_on: Vec::new(),
                condition: None,
                status: stage_status,
                pre: Vec::new(),
                post: Vec::new(),
                jobs: (0..2)
                    .map(|job| NewJobRun {
                        id: new_id(),
                        job_index: stage * 2 + job,
                        sequence: job,
                        identifier: format!("JOB_{stage}{job}"),
                        name: format!("job {stage}.{job}"),
                        category: None,
                        is_async: false,
                        depends_on: Vec::new(),
                        condition: None,
                        resource: None,
                        timeout: None,
                        is_select: true,
                        status: job_status,
                        steps: (0..2)
                            .map(|step| NewStepRun {
                                id: new_id(),
                                sequence: step,
                                identifier: format!("step_{step}"),
                                name: format!("step {step}"),
                                task: "official_shell_plugin".to_owned(),
                                inputs: json!([{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "make"}]),
                                ..NewStepRun::default()
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        idempotency: None,
    }
}

fn number_parameter() -> runnel_store::ParameterBuilder {
    Box::new(|allocation| {
        Ok(vec![RunParameter {
            name: "PIPELINE_NUMBER".to_owned(),
            value: allocation.run_number.to_string(),
            is_secret: false,
            origin: "predefined".to_owned(),
        }])
    })
}
