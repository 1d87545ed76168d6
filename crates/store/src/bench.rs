//! The store benchmark (`runnel bench store`): queue claim+complete cycles/s, log append MB/s, log tail reads, run-list pages — per backend, as JSON.

use crate::{
    ClaimRequest, EnqueueJob, IdentityStore, JobOutcome, JobQueue, Lease, LogRead, LogStore,
    NewJobRun, NewPipeline, NewRun, NewStageRun, NewStepRun, PipelineStore, RunParameter,
    RunProgress, RunQuery, RunStore, SecretKey, SortDir, Store, StoreConfig, StoreError, new_id,
};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, RunStatus, StageStatus};
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A directory for the SQLite database (a fresh file is created in it and removed after);
    /// `None` skips SQLite.
    pub sqlite_dir: Option<PathBuf>,
    /// A PostgreSQL URL of a database the benchmark may connect to; it creates a database of
    /// its own next to it and drops it afterwards. `None` skips PostgreSQL.
    pub postgres_url: Option<String>,
    /// Concurrent workers claiming and completing jobs (an executor pool).
    pub workers: usize,
    /// Jobs claimed and completed.
    pub queue_jobs: usize,
    /// Size of the log written by one step, then read at its end.
    pub log_bytes: u64,
    /// Bytes per append (64 KiB).
    pub append_bytes: usize,
    /// Steps appending at once in the concurrent log measurement.
    pub log_streams: usize,
    /// Appends of one log line each, to a log of their own (0 skips them).
    pub line_appends: usize,
    /// Reads of a 64 KiB page at the end of the log.
    pub tail_reads: usize,
    /// Runs in the pipeline whose list is paged.
    pub list_runs: usize,
    /// Run-list pages read.
    pub list_reads: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            sqlite_dir: Some(std::env::temp_dir()),
            postgres_url: None,
            workers: 8,
            queue_jobs: 20_000,
            log_bytes: 1 << 30,
            append_bytes: 64 * 1024,
            log_streams: 4,
            line_appends: 5_000,
            tail_reads: 1000,
            list_runs: 100_000,
            list_reads: 500,
        }
    }
}

/// Runs every measurement on SQLite and (when configured) PostgreSQL. Errors are reported in
/// the JSON (`"error"`), never panics. A measurement whose size is 0 (`queue_jobs`,
/// `log_bytes`, `list_runs`) is skipped.
pub async fn run(config: BenchConfig) -> Value {
    let mut results = serde_json::Map::new();
    if let Some(dir) = &config.sqlite_dir {
        results.insert(
            "sqlite".to_owned(),
            on_sqlite(config.clone(), dir)
                .await
                .unwrap_or_else(error_json),
        );
    }
    if let Some(url) = &config.postgres_url {
        results.insert(
            "postgres".to_owned(),
            on_postgres(&config, url).await.unwrap_or_else(error_json),
        );
    }
    Value::Object(results)
}

/// `url` with its database name replaced by `name` (a query string such as `?host=…` is kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Names the measurement that failed.
fn stage(name: &str, err: StoreError) -> StoreError {
    StoreError::Invalid(format!("{name}: {err}"))
}

fn error_json(err: StoreError) -> Value {
    json!({ "error": err.to_string() })
}

async fn on_sqlite(config: BenchConfig, dir: &std::path::Path) -> Result<Value, StoreError> {
    let path = dir.join(format!("runnel-bench-{}.db", new_id()));
    let mut store_config = StoreConfig::sqlite(&path, SecretKey::generate());
    store_config.log_cap_bytes = u64::MAX;
    let store = Store::open(store_config).await?;
    let result = measure(&store, &config).await;
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut value = result?;
    value["durability"] = json!("journal_mode=WAL, synchronous=FULL, group commit");
    Ok(value)
}

async fn on_postgres(config: &BenchConfig, url: &str) -> Result<Value, StoreError> {
    sqlx::any::install_default_drivers();
    let name = format!("runnel_bench_{}", new_id());
    let mut admin = sqlx::AnyConnection::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    let mut store_config = StoreConfig::new(with_database(url, &name), SecretKey::generate());
    store_config.log_cap_bytes = u64::MAX;
    store_config.max_connections = (config.workers as u32 + 4).max(8);
    let result = match Store::open(store_config).await {
        Ok(store) => {
            let result = measure(&store, config).await;
            store.close().await;
            result
        }
        Err(err) => Err(err),
    };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let mut value = result?;
    value["durability"] = json!("synchronous_commit=on");
    Ok(value)
}

async fn measure(store: &Store, config: &BenchConfig) -> Result<Value, StoreError> {
    let now = Timestamp::from_millis(1_740_000_000_000);
    let domain = store
        .create_domain(&format!("bench-{}", new_id()), now)
        .await?;
    let project = store.create_project(&domain.id, "bench", "", now).await?;
    let clock = Instant::now();
    let mut result = json!({ "backend": store.backend().as_str() });
    if config.queue_jobs > 0 {
        result["queue_claim_complete"] = queue_cycles(store, config, &project.id, now)
            .await
            .map_err(|err| stage("queue", err))?;
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "bench: queue done");
    }
    if config.log_bytes > 0 {
        let (append, tail) = logs(store, config, &project.id, now)
            .await
            .map_err(|err| stage("logs", err))?;
        result["log_append"] = append;
        result["log_tail_read"] = tail;
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "bench: logs done");
    }
    if config.list_runs > 0 {
        result["run_list_page"] = run_list(store, config, &project.id, now)
            .await
            .map_err(|err| stage("run list", err))?;
        tracing::info!(
            seconds = clock.elapsed().as_secs_f64(),
            "bench: run list done"
        );
    }
    Ok(result)
}

async fn new_pipeline(
    store: &Store,
    project_id: &str,
    name: &str,
    now: Timestamp,
) -> Result<String, StoreError> {
    let pipeline = NewPipeline {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: name.to_owned(),
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
    };
    Ok(store.create_pipeline(pipeline).await?.id)
}

/// A run of one stage with `jobs` jobs of one step each.
fn bench_run(pipeline_id: &str, jobs: usize, status: RunStatus, now: Timestamp) -> NewRun {
    NewRun {
        id: new_id(),
        pipeline_id: pipeline_id.to_owned(),
        pipeline_version: None,
        status,
        trigger_type: "Manual".to_owned(),
        executor_id: "bench".to_owned(),
        executor_name: "bench".to_owned(),
        description: String::new(),
        build_params: json!({"build_type": "branch", "target_branch": "main"}),
        sources: json!([]),
        selection: json!({}),
        now,
        stages: vec![NewStageRun {
            id: new_id(),
            sequence: 0,
            identifier: "build".to_owned(),
            name: "Build".to_owned(),
            category: None,
            run_always: false,
            parallel: None,
            is_select: true,
            depends_on: Vec::new(),
            condition: None,
            status: StageStatus::Init,
            pre: Vec::new(),
            post: Vec::new(),
            jobs: (0..jobs)
                .map(|index| NewJobRun {
                    id: new_id(),
                    job_index: index as i64,
                    sequence: index as i64,
                    identifier: format!("JOB_{index}"),
                    name: format!("job {index}"),
                    category: None,
                    is_async: false,
                    depends_on: Vec::new(),
                    condition: None,
                    resource: None,
                    timeout: None,
                    is_select: true,
                    status: JobStatus::Init,
                    steps: vec![NewStepRun {
                        id: new_id(),
                        identifier: "step".to_owned(),
                        name: "step".to_owned(),
                        task: "official_shell_plugin".to_owned(),
                        inputs: json!([]),
                        ..NewStepRun::default()
                    }],
                })
                .collect(),
        }],
        idempotency: None,
    }
}

fn number_parameter() -> crate::ParameterBuilder {
    Box::new(|allocation| {
        Ok(vec![RunParameter {
            name: "PIPELINE_NUMBER".to_owned(),
            value: allocation.run_number.to_string(),
            is_secret: false,
            origin: "predefined".to_owned(),
        }])
    })
}

/// Creates a run of `jobs` jobs and queues them all in one transaction.
/// Returns the `(job_run_id, step_run_id)` of every job.
async fn queued_run(
    store: &Store,
    pipeline_id: &str,
    jobs: usize,
    pool: Option<&str>,
    now: Timestamp,
) -> Result<Vec<(String, String)>, StoreError> {
    let run = bench_run(pipeline_id, jobs, RunStatus::Running, now);
    let job_ids: Vec<String> = run.stages[0]
        .jobs
        .iter()
        .map(|job| job.id.clone())
        .collect();
    let step_ids: Vec<String> = run.stages[0]
        .jobs
        .iter()
        .map(|job| job.steps[0].id.clone())
        .collect();
    let created = store.create_run(run, number_parameter()).await?;
    let progress = RunProgress {
        run_id: created.run.id,
        expected_version: 0,
        now,
        enqueue: job_ids
            .iter()
            .map(|id| EnqueueJob {
                job_run_id: id.clone(),
                pool: pool.map(str::to_owned),
                labels: Vec::new(),
                max_tries: 3,
            })
            .collect(),
        ..RunProgress::default()
    };
    store.save_progress(progress).await?;
    Ok(job_ids.into_iter().zip(step_ids).collect())
}

async fn queue_cycles(
    store: &Store,
    config: &BenchConfig,
    project_id: &str,
    now: Timestamp,
) -> Result<Value, StoreError> {
    let pipeline_id = new_pipeline(store, project_id, "queue", now).await?;
    let per_run = 100;
    let mut remaining = config.queue_jobs;
    while remaining > 0 {
        let jobs = remaining.min(per_run);
        queued_run(store, &pipeline_id, jobs, None, now).await?;
        remaining -= jobs;
    }
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..config.workers.max(1) {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut cycles = 0u64;
            loop {
                let request = ClaimRequest {
                    worker_id: format!("bench-{worker}"),
                    pool: None,
                    now,
                    lease: Duration::from_secs(30),
                };
                let Some(lease) = store.claim(request).await? else {
                    return Ok::<u64, StoreError>(cycles);
                };
                store
                    .complete(
                        &lease.token,
                        JobOutcome {
                            status: JobStatus::Completed,
                            message: None,
                        },
                        now,
                    )
                    .await?;
                cycles += 1;
            }
        }));
    }
    let mut cycles = 0;
    for worker in workers {
        cycles += worker
            .await
            .map_err(|err| StoreError::Invalid(format!("worker panicked: {err}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let goal = if store.backend() == crate::Backend::Sqlite {
        2000.0
    } else {
        1000.0
    };
    let rate = cycles as f64 / seconds;
    Ok(json!({
        "cycles": cycles, "workers": config.workers, "seconds": round(seconds),
        "cycles_per_sec": round(rate), "goal_per_sec": goal, "met": rate >= goal,
    }))
}

async fn logs(
    store: &Store,
    config: &BenchConfig,
    project_id: &str,
    now: Timestamp,
) -> Result<(Value, Value), StoreError> {
    let pipeline_id = new_pipeline(store, project_id, "logs", now).await?;
    let pool = format!("logs-{}", new_id());
    let chunk: Vec<u8> = (0..config.append_bytes)
        .map(|index| b"0123456789abcdefghijklmnopqrstuvwxyz\n"[index % 37])
        .collect();
    // One step writes the whole log (as one executor streaming one step would).
    let steps: Vec<String> = queued_run(store, &pipeline_id, 1, Some(&pool), now)
        .await?
        .into_iter()
        .map(|(_, step)| step)
        .collect();
    let lease = claim_in(store, &pool, now).await?;
    let appends = (config.log_bytes / config.append_bytes as u64).max(1);
    let started = Instant::now();
    let mut offset = 0u64;
    for _ in 0..appends {
        offset = store
            .append(&lease.token, &steps[0], offset, chunk.clone(), now)
            .await?
            .next_offset;
    }
    let single_seconds = started.elapsed().as_secs_f64();
    let single_rate = offset as f64 / single_seconds / 1e6;

    // Several steps appending at once (several jobs running): commits are shared.
    let streams = config.log_streams.max(1);
    let stream_steps: std::collections::HashMap<String, String> =
        queued_run(store, &pipeline_id, streams, Some(&pool), now)
            .await?
            .into_iter()
            .collect();
    let mut leases = Vec::new();
    for _ in 0..streams {
        leases.push(claim_in(store, &pool, now).await?);
    }
    let per_stream = (appends / streams as u64 / 4).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lease in leases {
        let step = stream_steps
            .get(&lease.job_run_id)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        let store = store.clone();
        let chunk = chunk.clone();
        tasks.push(tokio::spawn(async move {
            let mut offset = 0u64;
            for _ in 0..per_stream {
                offset = store
                    .append(&lease.token, &step, offset, chunk.clone(), now)
                    .await?
                    .next_offset;
            }
            Ok::<u64, StoreError>(offset)
        }));
    }
    let mut concurrent_bytes = 0;
    for task in tasks {
        concurrent_bytes += task
            .await
            .map_err(|err| StoreError::Invalid(format!("append task panicked: {err}")))??;
    }
    let concurrent_seconds = started.elapsed().as_secs_f64();
    let concurrent_rate = concurrent_bytes as f64 / concurrent_seconds / 1e6;

    let lines = line_appends(store, &pipeline_id, &pool, config, now).await?;

    let mut latencies = Vec::with_capacity(config.tail_reads);
    for _ in 0..config.tail_reads {
        let started = Instant::now();
        let page = store
            .read_log(
                &steps[0],
                None,
                LogRead::Desc {
                    end: None,
                    limit: 65_536,
                },
            )
            .await?;
        latencies.push(started.elapsed());
        if page.data.len() != 65_536.min(offset as usize) {
            return Err(StoreError::corrupt("short tail page"));
        }
    }
    let append = json!({
        "append_bytes": config.append_bytes,
        "one_stream": { "bytes": offset, "seconds": round(single_seconds), "mb_per_sec": round(single_rate) },
        "concurrent": { "streams": streams, "bytes": concurrent_bytes, "seconds": round(concurrent_seconds), "mb_per_sec": round(concurrent_rate) },
        "line_by_line": lines,
        "goal_mb_per_sec": 100.0, "met": single_rate >= 100.0,
    });
    let tail = percentiles(&mut latencies, offset, 5.0);
    Ok((append, tail))
}

/// A step printing one line at a time, each line its own append (a slow step's log): these
/// are merged into the log's last chunk, next to the big log written before.
async fn line_appends(
    store: &Store,
    pipeline_id: &str,
    pool: &str,
    config: &BenchConfig,
    now: Timestamp,
) -> Result<Value, StoreError> {
    if config.line_appends == 0 {
        return Ok(Value::Null);
    }
    let step = queued_run(store, pipeline_id, 1, Some(pool), now)
        .await?
        .into_iter()
        .map(|(_, step)| step)
        .next()
        .ok_or(StoreError::NotFound)?;
    let lease = claim_in(store, pool, now).await?;
    let line = b"2026-11-29 12:00:00.000 [INFO] compiling module 0042 of 0100 (release)\n".to_vec();
    let mut latencies = Vec::with_capacity(config.line_appends);
    let mut offset = 0u64;
    for _ in 0..config.line_appends {
        let started = Instant::now();
        offset = store
            .append(&lease.token, &step, offset, line.clone(), now)
            .await?
            .next_offset;
        latencies.push(started.elapsed());
    }
    let seconds: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
    latencies.sort();
    Ok(json!({
        "appends": latencies.len(),
        "line_bytes": line.len(),
        "appends_per_sec": round(latencies.len() as f64 / seconds.max(f64::EPSILON)),
        "p50_ms": round(quantile_ms(&latencies, 0.5)),
        "p99_ms": round(quantile_ms(&latencies, 0.99)),
    }))
}

/// Claims a job of the bench's `pool` (one must be queued) under a lease of an hour.
async fn claim_in(store: &Store, pool: &str, now: Timestamp) -> Result<Lease, StoreError> {
    store
        .claim(ClaimRequest {
            worker_id: "bench".to_owned(),
            pool: Some(pool.to_owned()),
            now,
            lease: Duration::from_secs(3600),
        })
        .await?
        .ok_or(StoreError::NotFound)
}

async fn run_list(
    store: &Store,
    config: &BenchConfig,
    project_id: &str,
    now: Timestamp,
) -> Result<Value, StoreError> {
    let pipeline_id = new_pipeline(store, project_id, "listed", now).await?;
    let statuses = [
        RunStatus::Completed,
        RunStatus::Completed,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Canceled,
        RunStatus::Running,
    ];
    let started = Instant::now();
    let tasks = 16usize;
    let per_task = config.list_runs.div_ceil(tasks);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let pipeline_id = pipeline_id.clone();
        handles.push(tokio::spawn(async move {
            for index in 0..per_task {
                let global = task * per_task + index;
                let at = Timestamp::from_millis(now.as_millis() + global as i64 * 1000);
                let run = bench_run(&pipeline_id, 1, statuses[global % statuses.len()], at);
                store.create_run(run, number_parameter()).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for handle in handles {
        handle
            .await
            .map_err(|err| StoreError::Invalid(format!("creator panicked: {err}")))??;
    }
    let populate_seconds = started.elapsed().as_secs_f64();
    let query = RunQuery {
        statuses: vec![RunStatus::Completed, RunStatus::Failed],
        sort_dir: SortDir::Desc,
        offset: 90,
        limit: 10,
        ..RunQuery::default()
    };
    let (mut result, total) = list_pages(store, config, &pipeline_id, &query).await?;
    // A table filled in seconds has no planner statistics yet; autovacuum analyzes it within
    // about a minute. Measure both.
    store.refresh_statistics().await?;
    let (analyzed, _) = list_pages(store, config, &pipeline_id, &query).await?;
    result["after_analyze"] = analyzed;
    result["runs"] = json!(config.list_runs);
    result["runs_created_per_sec"] = json!(round(config.list_runs as f64 / populate_seconds));
    result["filter"] = json!("status IN (COMPLETED, FAILED), sort start_time DESC, page 10 of 10");
    result["total"] = json!(total);
    Ok(result)
}

async fn list_pages(
    store: &Store,
    config: &BenchConfig,
    pipeline_id: &str,
    query: &RunQuery,
) -> Result<(Value, i64), StoreError> {
    let mut latencies = Vec::with_capacity(config.list_reads);
    let mut total = 0;
    for _ in 0..config.list_reads {
        let started = Instant::now();
        let page = store.list_runs(pipeline_id, query).await?;
        latencies.push(started.elapsed());
        total = page.total;
    }
    Ok((percentiles(&mut latencies, 0, 10.0), total))
}

fn percentiles(latencies: &mut [Duration], log_bytes: u64, goal_ms: f64) -> Value {
    latencies.sort();
    let at = |fraction: f64| quantile_ms(latencies, fraction);
    let p99 = at(0.99);
    let mut value = json!({
        "samples": latencies.len(), "p50_ms": round(at(0.5)), "p99_ms": round(p99), "max_ms": round(at(1.0)),
        "goal_p99_ms": goal_ms, "met": p99 <= goal_ms,
    });
    if log_bytes > 0 {
        value["log_bytes"] = json!(log_bytes);
        value["page_bytes"] = json!(65_536);
    }
    value
}

/// The latency at `fraction` (0–1, nearest rank) of `sorted` latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], fraction: f64) -> f64 {
    let index =
        ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted
        .get(index)
        .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
