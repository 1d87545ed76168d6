//! `runnel bench serve`: a `runnel serve` child process on a temporary SQLite data directory
//! with its durable settings (WAL, `synchronous=FULL`), driven over its HTTP API like a user
//! would: trigger latency of a one-job `true` pipeline, a storm of runs triggered at once,
//! server CPU per run and memory.
//!
//! Times come from the server's own records (the run's end time, the step's start time, in
//! milliseconds), read from the database file over a read-only connection, so measuring adds no
//! work to the server. CPU and memory come from `/proc/<pid>` of the child.

use super::exec::{build_profile, machine};
use super::{Samples, ScratchDir, millis, round3};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeBenchArgs {
    /// Timed runs triggered one after the other (each waits for the previous to complete).
    #[arg(long, default_value = "200", value_name = "N")]
    runs: NonZeroU32,
    /// Untimed runs before timing starts.
    #[arg(long, default_value_t = 20, value_name = "N")]
    warmups: u32,
    /// Runs triggered at once for the throughput figure.
    #[arg(long, default_value = "1000", value_name = "N")]
    storm: NonZeroU32,
    /// HTTP requests in flight while the storm is triggered.
    #[arg(long, default_value = "64", value_name = "N")]
    connections: NonZeroU32,
    /// Executor slots of the server (default: the server's default, two per core).
    #[arg(long, value_name = "N")]
    executor_slots: Option<NonZeroU32>,
    /// Seconds the server sits idle before its idle memory is read.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    settle: u64,
}

/// The goals on a 2-core machine.
const COMPLETED_MEDIAN_GOAL_MS: f64 = 5.0;
const RUNS_PER_S_GOAL: f64 = 300.0;
const CPU_PER_RUN_GOAL_MS: f64 = 1.0;
const IDLE_RSS_GOAL_MB: f64 = 30.0;
/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;
/// Generous bounds for waits; a bench never asserts a duration, but it must not hang.
const START_DEADLINE: Duration = Duration::from_secs(60);
const RUN_DEADLINE: Duration = Duration::from_secs(60);
const FINAL_STATUSES: [&str; 3] = ["COMPLETED", "FAILED", "CANCELED"];

pub(crate) fn run(args: &ServeBenchArgs) -> anyhow::Result<ExitCode> {
    // reqwest's TLS layer wants a process-wide crypto provider, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    runtime.block_on(measure(args))
}

async fn measure(args: &ServeBenchArgs) -> anyhow::Result<ExitCode> {
    let scratch = ScratchDir::create()?;
    let data_dir = scratch.path().join("data");
    let mut server = Server::start(
        &std::env::current_exe().context("while locating the runnel executable")?,
        &data_dir,
        &scratch.path().join("server.log"),
        args.executor_slots,
    )?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("while building the HTTP client")?;
    server.wait_ready(&client).await?;
    let api = Api::connect(client, &server, &data_dir).await?;
    let mut db = connect_db(&data_dir.join("runnel.db")).await?;
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut db)
        .await
        .context("while reading the journal mode")?;

    eprintln!(
        "runnel bench serve: server ready; idle for {} s",
        args.settle
    );
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let idle_rss_kb = server.status_kb("VmRSS:")?;

    let pipeline = api.create_pipeline("bench-sequential").await?;
    eprintln!(
        "runnel bench serve: {} sequential runs after {} warm-ups",
        args.runs, args.warmups
    );
    for _ in 0..args.warmups {
        run_one(&api, &mut db, &pipeline).await?;
    }
    let cpu_before = server.cpu_ticks()?;
    let mut started = Vec::new();
    let mut completed = Vec::new();
    let mut observed = Vec::new();
    let mut acked = Vec::new();
    let mut sequential_failures = 0_u32;
    for _ in 0..args.runs.get() {
        let timing = run_one(&api, &mut db, &pipeline).await?;
        if timing.status != "COMPLETED" {
            sequential_failures += 1;
        }
        started.extend(timing.first_step_started);
        completed.push(timing.completed);
        observed.push(timing.observed);
        acked.push(timing.acked);
    }
    let cpu_after_sequential = server.cpu_ticks()?;

    let storm_pipeline = api.create_pipeline("bench-storm").await?;
    eprintln!(
        "runnel bench serve: a storm of {} runs, {} requests in flight",
        args.storm, args.connections
    );
    let storm = storm(&api, &mut db, &storm_pipeline, args).await?;
    let cpu_after_storm = server.cpu_ticks()?;
    let peak_rss_kb = server.status_kb("VmHWM:")?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let idle_after_kb = server.status_kb("VmRSS:")?;
    db.close().await.context("while closing the database")?;
    let exit = server.stop()?;

    let started = Samples::new(started).context("no step start was recorded")?;
    let completed = Samples::new(completed).context("no run was timed")?;
    let observed = Samples::new(observed).context("no run was timed")?;
    let acked = Samples::new(acked).context("no run was timed")?;
    let per_run_ms =
        |ticks: u64, runs: u32| ticks as f64 * 1000.0 / TICKS_PER_SECOND / f64::from(runs);
    let sequential_cpu_ms = per_run_ms(cpu_after_sequential.own - cpu_before.own, args.runs.get());
    let storm_cpu_ms = per_run_ms(
        cpu_after_storm.own - cpu_after_sequential.own,
        args.storm.get(),
    );
    let storm_system_cpu_ms = per_run_ms(
        cpu_after_storm.own_system - cpu_after_sequential.own_system,
        args.storm.get(),
    );
    let storm_children_cpu_ms = per_run_ms(
        cpu_after_storm.children - cpu_after_sequential.children,
        args.storm.get(),
    );
    let mb = |kb: u64| round3(kb as f64 / 1024.0);
    let is_verified = sequential_failures == 0 && storm.completed == args.storm.get();
    let report = json!({
        "benchmark": "serve",
        "runnel_version": env!("CARGO_PKG_VERSION"),
        "build": build_profile(),
        "machine": machine(),
        "server": {
            "database": "sqlite",
            "journal_mode": journal_mode,
            "synchronous": "FULL (checked by the server at start)",
            "executor_slots": args.executor_slots.map(NonZeroU32::get),
            "exit_code": exit,
        },
        "goals": {
            "trigger_to_completed_median_under_5_ms": completed_median_ms(&completed) <= COMPLETED_MEDIAN_GOAL_MS,
            "storm_at_least_300_runs_per_s": storm.runs_per_s >= RUNS_PER_S_GOAL,
            "server_cpu_per_run_under_1_ms": storm_cpu_ms <= CPU_PER_RUN_GOAL_MS,
            "idle_rss_under_30_mb": mb(idle_rss_kb) <= IDLE_RSS_GOAL_MB,
        },
        "sequential": {
            "runs": args.runs.get(),
            "warmups": args.warmups,
            "not_completed": sequential_failures,
            "trigger_to_first_step_started": percentiles(&started),
            "trigger_to_completed": percentiles(&completed),
            "trigger_to_completed_seen_by_client": percentiles(&observed),
            "trigger_request": percentiles(&acked),
            "server_cpu_per_run_ms": round3(sequential_cpu_ms),
        },
        "storm": {
            "runs": args.storm.get(),
            "connections": args.connections.get(),
            "completed": storm.completed,
            "triggered_in_s": round3(storm.triggered_in.as_secs_f64()),
            "all_final_in_s": round3(storm.all_final_in.as_secs_f64()),
            "runs_per_s": round3(storm.runs_per_s),
            "server_cpu_per_run_ms": round3(storm_cpu_ms),
            "server_system_cpu_per_run_ms": round3(storm_system_cpu_ms),
            "step_processes_cpu_per_run_ms": round3(storm_children_cpu_ms),
        },
        "rss": {
            "idle_mb": mb(idle_rss_kb),
            "peak_mb": mb(peak_rss_kb),
            "idle_after_storm_mb": mb(idle_after_kb),
        },
        "notes": "times from the server's records have millisecond resolution; CPU from /proc/<pid>/stat (10 ms ticks) over the whole phase",
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("while printing the report")?
    );
    eprintln!(
        "runnel bench serve: trigger→COMPLETED median {:.2} ms, p99 {:.2} ms; trigger→step started median {:.2} ms; storm {:.0} runs/s; server CPU {:.3} ms/run; RSS idle {:.1} MB, peak {:.1} MB",
        millis(completed.median()),
        millis(completed.percentile(99)),
        millis(started.median()),
        storm.runs_per_s,
        storm_cpu_ms,
        mb(idle_rss_kb),
        mb(peak_rss_kb),
    );
    if !is_verified {
        eprintln!(
            "runnel bench serve: not every run completed ({sequential_failures} sequential, {} of {} in the storm)",
            storm.completed, args.storm
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn completed_median_ms(samples: &Samples) -> f64 {
    millis(samples.median())
}

fn percentiles(samples: &Samples) -> Value {
    json!({
        "runs": samples.sorted.len(),
        "p50_ms": millis(samples.median()),
        "p99_ms": millis(samples.percentile(99)),
        "min_ms": millis(samples.min()),
        "max_ms": millis(samples.max()),
    })
}

/// The child `runnel serve`; killed if still running when dropped.
struct Server {
    child: Option<Child>,
    pid: u32,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(
        runnel: &Path,
        data_dir: &Path,
        log: &Path,
        slots: Option<NonZeroU32>,
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("while looking for a free port")?
            .port();
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("while creating {}", log.display()))?;
        let mut command = Command::new(runnel);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(slots) = slots {
            command.arg("--executor-slots").arg(slots.to_string());
        }
        // Only the defaults: settings of the caller's environment must not change the figures.
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(|name| name.starts_with("RUNNEL_"))
            {
                command.env_remove(name);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("while starting {}", runnel.display()))?;
        Ok(Server {
            pid: child.id(),
            child: Some(child),
            port,
            log: log.to_owned(),
        })
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/health/ready", self.base());
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(reply) = client.get(&url).send().await
                && reply.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("while checking the server")?
            {
                bail!("the server exited with {status}: {}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("the server was not ready in time: {}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU ticks of the server itself and of its reaped children (the step processes).
    fn cpu_ticks(&self) -> anyhow::Result<CpuTicks> {
        let path = format!("/proc/{}/stat", self.pid);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("while reading {path}"))?;
        // Fields after the command name (which may hold spaces) start with field 3, `state`.
        let fields: Vec<&str> = text
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_ascii_whitespace().collect())
            .unwrap_or_default();
        let field = |number: usize| -> anyhow::Result<u64> {
            fields
                .get(number - 3)
                .and_then(|value| value.parse().ok())
                .with_context(|| format!("field {number} of {path}"))
        };
        Ok(CpuTicks {
            own: field(14)? + field(15)?,
            own_system: field(15)?,
            children: field(16)? + field(17)?,
        })
    }

    /// A `kB` line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`).
    fn status_kb(&self, key: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("while reading {path}"))?;
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("{key} in {path}"))
    }

    /// SIGTERM and the exit code.
    fn stop(&mut self) -> anyhow::Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let pid = i32::try_from(child.id()).context("pid")?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("while sending SIGTERM")?;
        if !status.success() {
            let _ = child.kill();
        }
        Ok(child.wait().context("while waiting for the server")?.code())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    /// User and system time.
    own: u64,
    /// System time alone (in the kernel on the server's behalf: syscalls, page faults).
    own_system: u64,
    children: u64,
}

/// The server's API as the bootstrap admin.
struct Api {
    client: reqwest::Client,
    base: String,
    project_id: String,
    token: String,
}

impl Api {
    async fn connect(
        client: reqwest::Client,
        server: &Server,
        data_dir: &Path,
    ) -> anyhow::Result<Api> {
        let path = data_dir.join("bootstrap-credentials.json");
        let credentials: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("while reading {}", path.display()))?,
        )
        .context("the bootstrap credentials are not JSON")?;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": credentials["user_name"], "password": credentials["password"],
                "domain": {"name": credentials["domain_name"]}}}},
            "scope": {"domain": {"name": credentials["domain_name"]}}
        }});
        let base = server.base();
        let reply = client
            .post(format!("{base}/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
            .context("while logging in")?;
        if reply.status() != reqwest::StatusCode::CREATED {
            bail!("login answered {}", reply.status());
        }
        let token = reply
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .context("no X-Subject-Token")?
            .to_owned();
        Ok(Api {
            client,
            base,
            project_id: credentials["project_id"]
                .as_str()
                .context("no project_id in the credentials")?
                .to_owned(),
            token,
        })
    }

    /// A pipeline of one job with one step running `true`, without a concurrency limit.
    async fn create_pipeline(&self, name: &str) -> anyhow::Result<String> {
        let definition = json!({"stages": [{"name": "Run", "jobs": [{
            "name": "true", "identifier": "JOB_True1",
            "steps": [{"name": "true", "task": "official_shell_plugin",
                       "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "true"}]}]
        }]}]});
        let body = json!({"name": name, "is_publish": false, "definition": definition.to_string(),
                          "concurrency_control": {"concurrency_number": 1, "exceed_action": "QUEUE", "enable": false}});
        let reply: Value = self
            .client
            .post(format!(
                "{}/v5/{}/api/pipelines",
                self.base, self.project_id
            ))
            .header("X-Auth-Token", &self.token)
            .json(&body)
            .send()
            .await
            .context("while creating the pipeline")?
            .json()
            .await
            .context("while reading the pipeline reply")?;
        reply["pipeline_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no pipeline_id in {reply}"))
    }

    /// Triggers a run; returns its id.
    async fn trigger(&self, pipeline_id: &str) -> anyhow::Result<String> {
        let reply = self
            .client
            .post(format!(
                "{}/v5/{}/api/pipelines/{pipeline_id}/run",
                self.base, self.project_id
            ))
            .header("X-Auth-Token", &self.token)
            .json(&json!({}))
            .send()
            .await
            .context("while triggering a run")?;
        let status = reply.status();
        let body: Value = reply.json().await.context("while reading the run reply")?;
        match body["pipeline_run_id"].as_str() {
            Some(id) if status.is_success() => Ok(id.to_owned()),
            _ => bail!("the trigger answered {status}: {body}"),
        }
    }
}

async fn connect_db(path: &Path) -> anyhow::Result<SqliteConnection> {
    // Read-only: the bench never writes to the server's database, nor checkpoints its WAL.
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("while opening {}", path.display()))
}

/// Milliseconds since the epoch, with sub-millisecond precision, on the clock the server uses.
fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// A non-negative duration of `ms` milliseconds.
fn duration_ms(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

struct RunTiming {
    status: String,
    first_step_started: Option<Duration>,
    completed: Duration,
    observed: Duration,
    acked: Duration,
}

/// Triggers one run and waits until it is final.
async fn run_one(
    api: &Api,
    db: &mut SqliteConnection,
    pipeline_id: &str,
) -> anyhow::Result<RunTiming> {
    let sent_ms = epoch_ms();
    let sent = Instant::now();
    let run_id = api.trigger(pipeline_id).await?;
    let acked = sent.elapsed();
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let row: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT status, end_time FROM runs WHERE id = ?")
                .bind(&run_id)
                .fetch_optional(&mut *db)
                .await
                .context("while reading the run")?;
        if let Some((status, Some(end_ms))) = row
            && FINAL_STATUSES.contains(&status.as_str())
        {
            let observed = sent.elapsed();
            let step_started: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(start_time) FROM step_runs WHERE run_id = ? AND placement = 'job'",
            )
            .bind(&run_id)
            .fetch_one(&mut *db)
            .await
            .context("while reading the step")?;
            return Ok(RunTiming {
                status,
                first_step_started: step_started.map(|ms| duration_ms(ms as f64 - sent_ms)),
                completed: duration_ms(end_ms as f64 - sent_ms),
                observed,
                acked,
            });
        }
        if Instant::now() > deadline {
            bail!("run {run_id} did not end in time");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

struct Storm {
    completed: u32,
    triggered_in: Duration,
    all_final_in: Duration,
    runs_per_s: f64,
}

/// Triggers `args.storm` runs at once and waits until all are final.
async fn storm(
    api: &Api,
    db: &mut SqliteConnection,
    pipeline_id: &str,
    args: &ServeBenchArgs,
) -> anyhow::Result<Storm> {
    let api = Arc::new(Api {
        client: api.client.clone(),
        base: api.base.clone(),
        project_id: api.project_id.clone(),
        token: api.token.clone(),
    });
    let limit = Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(args.connections.get()).unwrap_or(64),
    ));
    let sent_ms = epoch_ms();
    let sent = Instant::now();
    let mut triggers = tokio::task::JoinSet::new();
    for _ in 0..args.storm.get() {
        let api = Arc::clone(&api);
        let limit = Arc::clone(&limit);
        let pipeline_id = pipeline_id.to_owned();
        triggers.spawn(async move {
            let _permit = limit.acquire_owned().await;
            api.trigger(&pipeline_id).await
        });
    }
    while let Some(result) = triggers.join_next().await {
        result.context("a trigger task failed")??;
    }
    let triggered_in = sent.elapsed();
    let deadline =
        Instant::now() + RUN_DEADLINE + Duration::from_millis(u64::from(args.storm.get()) * 50);
    loop {
        let (final_runs, completed, last_end): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END), 0), MAX(end_time) \
             FROM runs WHERE pipeline_id = ? AND status IN ('COMPLETED', 'FAILED', 'CANCELED')",
        )
        .bind(pipeline_id)
        .fetch_one(&mut *db)
        .await
        .context("while counting final runs")?;
        if final_runs >= i64::from(args.storm.get()) {
            let all_final_in = duration_ms(last_end.unwrap_or_default() as f64 - sent_ms);
            return Ok(Storm {
                completed: u32::try_from(completed).unwrap_or(0),
                triggered_in,
                all_final_in,
                runs_per_s: f64::from(args.storm.get()) / all_final_in.as_secs_f64().max(1e-9),
            });
        }
        if Instant::now() > deadline {
            bail!("only {final_runs} of {} runs ended in time", args.storm);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
