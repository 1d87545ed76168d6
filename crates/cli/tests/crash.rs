//! The crash test: `runnel serve` is killed with SIGKILL at random moments while ten runs of a
//! pipeline that prints numbered lines progress, and restarted each time. At the end it checks
//! and prints the figures of `GUARANTEES.md`:
//!
//! - G7: every run is final;
//! - G3: every acknowledged trigger is there, and retries with the same `Idempotency-Key`
//!   created no extra run (G6);
//! - G5: run numbers are unique and gapless, 1..N;
//! - G4: the log of every step attempt holds lines 1..k in order, without gaps, duplicates or
//!   torn lines; a COMPLETED step's log holds all its lines; and no log is ever shorter than
//!   what a reader saw committed earlier (acknowledged bytes survive the kills);
//! - G1: no job is RUNNING without a lease, or with a lease expired for longer than
//!   2 × sweep while a server was up (sampled from the database file all along), and at the
//!   end nothing is RUNNING or leased.
//!
//! Recovery policy under test (`docs/ARCHITECTURE.md`): a job whose process died with the
//! server is re-queued as a new attempt, with a fresh log, once its lease expires, until it was
//! dispatched `engine.max_tries` times; then it fails with `executor lost`. Earlier attempts'
//! logs stay stored, so they are checked too.
//!
//! Nothing here asserts a duration: every wait is for a condition, with a generous deadline.
//! The kill moments come from a seed printed at the start (`RUNNEL_CRASH_SEED` replays one).

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUNS: usize = 10;
const KILLS: usize = 12;
/// Numbered lines each step prints (with a short sleep after each).
const LINES: u32 = 5;
/// The test settings of `GUARANTEES.md`.
const LEASE: Duration = Duration::from_secs(3);
const SWEEP: Duration = Duration::from_secs(1);
const MAX_TRIES: u32 = 3;
/// Generous: the machine may be busy with other builds.
const DEADLINE: Duration = Duration::from_secs(100);

/// One `runnel serve` process on a fixed port, restarted in place.
struct Servers {
    binary: PathBuf,
    data_dir: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: usize,
    /// Which process is up, and since when (for G1): `epoch` changes on every start and kill.
    epoch: Arc<AtomicU64>,
    ready_at_ms: Arc<AtomicU64>,
    is_ready: Arc<AtomicBool>,
}

impl Servers {
    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.data_dir.join(format!("server-{}.log", self.starts)))
            .expect("server log file");
        let child = Command::new(&self.binary)
            .args(["serve", "--executor-slots", "4"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUNNEL__ENGINE__LEASE", format!("{}s", LEASE.as_secs()))
            .env("RUNNEL__ENGINE__HEARTBEAT", "1s")
            .env("RUNNEL__ENGINE__SWEEP", format!("{}s", SWEEP.as_secs()))
            .env("RUNNEL__ENGINE__MAX_TRIES", MAX_TRIES.to_string())
            .env("RUNNEL__EXECUTOR__KILL_GRACE", "1s")
            .env("RUNNEL__SERVER__SHUTDOWN_GRACE", "1s")
            .env("RUNNEL__LOGGING__LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn runnel serve");
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.child = Some(child);
    }

    async fn wait_ready(&self, client: &reqwest::Client) {
        let url = format!("http://127.0.0.1:{}/health/ready", self.port);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(reply) = client.get(&url).send().await
                && reply.status() == StatusCode::OK
            {
                self.ready_at_ms.store(now_ms(), Ordering::SeqCst);
                self.is_ready.store(true, Ordering::SeqCst);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server start {} never ready:\n{}",
                self.starts,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and reap the process.
    fn kill(&mut self) {
        self.is_ready.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM, and the exit status.
    fn terminate(&mut self) -> Option<i32> {
        self.is_ready.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut child = self.child.take()?;
        let pid = i32::try_from(child.id()).expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        child.wait().expect("exit").code()
    }

    fn log_tail(&self) -> String {
        let path = self.data_dir.join(format!("server-{}.log", self.starts));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A shell step printing `LINES` numbered lines.
fn step(name: &str) -> Value {
    let script = format!("for i in $(seq 1 {LINES}); do echo \"crash-line $i\"; sleep 0.1; done");
    json!({"name": name, "task": "official_shell_plugin",
           "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": script}]})
}

/// Two stages: two parallel jobs of two steps, then one job of one step.
fn definition() -> Value {
    json!({"stages": [
        {"name": "Build", "jobs": [
            {"name": "left", "identifier": "JOB_Left1", "steps": [step("left-1"), step("left-2")]},
            {"name": "right", "identifier": "JOB_Right1", "steps": [step("right-1"), step("right-2")]}
        ]},
        {"name": "Ship", "jobs": [
            {"name": "ship", "identifier": "JOB_Ship1", "steps": [step("ship-1")]}
        ]}
    ]})
}

struct Api {
    client: reqwest::Client,
    base: String,
    project_id: String,
    token: String,
}

impl Api {
    /// POST `path` until the server answers (it may be down or starting); 5xx answers are
    /// retried too. Returns the status and body of the first real answer.
    async fn post_retrying(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut request = self
                .client
                .post(format!("{}{path}", self.base))
                .header("X-Auth-Token", &self.token)
                .json(body);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            match request.send().await {
                Ok(reply) if !reply.status().is_server_error() => {
                    let status = reply.status();
                    let body = reply.json().await.unwrap_or(Value::Null);
                    return (status, body);
                }
                Ok(_) | Err(_) => {}
            }
            assert!(Instant::now() < deadline, "POST {path} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn login(client: &reqwest::Client, base: &str, credentials: &Value) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": credentials["user_name"], "password": credentials["password"],
            "domain": {"name": credentials["domain_name"]}}}},
        "scope": {"domain": {"name": credentials["domain_name"]}}
    }});
    let reply = client
        .post(format!("{base}/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("login");
    assert_eq!(reply.status(), StatusCode::CREATED);
    reply.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned()
}

async fn connect_db(path: &Path) -> Result<SqliteConnection, sqlx::Error> {
    // Read-only: the test never writes, and never checkpoints the server's WAL.
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    SqliteConnection::connect_with(&options).await
}

/// What the sampler saw while the server was being killed.
#[derive(Default)]
struct Observed {
    samples: usize,
    /// (step run id, attempt) → the longest stored log length seen committed.
    log_lengths: BTreeMap<(String, i64), i64>,
    /// Jobs RUNNING without a live lease (G1), as seen.
    g1_violations: Vec<String>,
    g1_checks: usize,
}

/// Reads the database file now and then: log lengths (for G4) and RUNNING jobs' leases (G1).
async fn sample(
    db: &Path,
    observed: &Mutex<Observed>,
    epoch: &AtomicU64,
    ready_at_ms: &AtomicU64,
    is_ready: &AtomicBool,
) {
    let before_epoch = epoch.load(Ordering::SeqCst);
    let was_ready = is_ready.load(Ordering::SeqCst);
    let ready_at = ready_at_ms.load(Ordering::SeqCst);
    let now = now_ms();
    let Ok(mut conn) = connect_db(db).await else {
        return;
    };
    let logs: Result<Vec<(String, i64, i64)>, _> =
        sqlx::query_as("SELECT step_run_id, attempt, stored FROM step_logs")
            .fetch_all(&mut conn)
            .await;
    let running: Result<Vec<(String, Option<i64>)>, _> = sqlx::query_as(
        "SELECT j.id, a.lease_expires_at FROM job_runs j \
         LEFT JOIN job_attempts a ON a.job_run_id = j.id AND a.state = 'leased' \
         WHERE j.status = 'RUNNING'",
    )
    .fetch_all(&mut conn)
    .await;
    let _ = conn.close().await;
    let same_server = was_ready && epoch.load(Ordering::SeqCst) == before_epoch;
    let mut observed = observed.lock().expect("observed");
    observed.samples += 1;
    if let Ok(logs) = logs {
        for (step, attempt, stored) in logs {
            let seen = observed.log_lengths.entry((step, attempt)).or_default();
            *seen = (*seen).max(stored);
        }
    }
    // G1: a lease that expired at E is swept by max(E, start) + sweep; allow 2 × sweep.
    let grace = u64::try_from((SWEEP * 2).as_millis()).expect("fits");
    if let Ok(running) = running
        && same_server
        && ready_at + grace < now
    {
        observed.g1_checks += 1;
        for (job, expires_at) in running {
            match expires_at {
                None => observed
                    .g1_violations
                    .push(format!("job {job} RUNNING without a lease")),
                Some(expires_at) => {
                    let expires_at = u64::try_from(expires_at).unwrap_or_default();
                    if expires_at.max(ready_at) + grace < now {
                        observed.g1_violations.push(format!(
                            "job {job} RUNNING with a lease expired {} ms ago",
                            now - expires_at
                        ));
                    }
                }
            }
        }
    }
}

/// The numbers of the `crash-line <n>` lines of a log, or why it is malformed.
fn line_numbers(log: &[u8]) -> Result<Vec<u32>, String> {
    let text = std::str::from_utf8(log).map_err(|_| "not UTF-8".to_owned())?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("a torn last line".to_owned());
    }
    let mut numbers = Vec::new();
    for line in text.lines() {
        if let Some((_, number)) = line.rsplit_once("crash-line ") {
            numbers.push(
                number
                    .trim()
                    .parse()
                    .map_err(|_| format!("a torn line: {line:?}"))?,
            );
        }
    }
    Ok(numbers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_survive_repeated_kill_9_of_the_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seed: u64 = std::env::var("RUNNEL_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(now_ms);
    println!("crash test seed: {seed} (RUNNEL_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("runnel.db");
    let mut servers = Servers {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_runnel")),
        data_dir: dir.path().to_owned(),
        port: free_port(),
        child: None,
        starts: 0,
        epoch: Arc::new(AtomicU64::new(0)),
        ready_at_ms: Arc::new(AtomicU64::new(0)),
        is_ready: Arc::new(AtomicBool::new(false)),
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    servers.spawn();
    servers.wait_ready(&client).await;
    let credentials: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("bootstrap-credentials.json")).expect("credentials"),
    )
    .expect("JSON");
    let base = format!("http://127.0.0.1:{}", servers.port);
    let token = login(&client, &base, &credentials).await;
    let api = Arc::new(Api {
        client: client.clone(),
        base,
        project_id: credentials["project_id"]
            .as_str()
            .expect("project")
            .to_owned(),
        token,
    });
    let (status, created) = api
        .post_retrying(
            &format!("/v5/{}/api/pipelines", api.project_id),
            &json!({"name": "crash", "is_publish": false,
                    "definition": definition().to_string(),
                    "concurrency_control": {"concurrency_number": RUNS, "exceed_action": "QUEUE", "enable": true}}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let pipeline_id = created["pipeline_id"].as_str().expect("id").to_owned();

    // The sampler reads the database file all along.
    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let observed = Arc::clone(&observed);
        let stop = Arc::clone(&stop_sampling);
        let (epoch, ready_at, is_ready) = (
            Arc::clone(&servers.epoch),
            Arc::clone(&servers.ready_at_ms),
            Arc::clone(&servers.is_ready),
        );
        let db_path = db_path.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                sample(&db_path, &observed, &epoch, &ready_at, &is_ready).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    // Ten triggers at once, each retried with its own Idempotency-Key until acknowledged.
    let triggers: Vec<_> = (0..RUNS)
        .map(|index| {
            let api = Arc::clone(&api);
            let path = format!("/v5/{}/api/pipelines/{pipeline_id}/run", api.project_id);
            tokio::spawn(async move {
                let key = format!("crash-{index}");
                let (status, body) = api.post_retrying(&path, &json!({}), Some(&key)).await;
                assert_eq!(status, StatusCode::OK, "trigger {index}: {body}");
                body["pipeline_run_id"].as_str().expect("run id").to_owned()
            })
        })
        .collect();

    // Chaos: kill -9 at random moments, some even before the server is ready.
    let mut kills = 0;
    let chaos_started = Instant::now();
    while kills < KILLS {
        if rng.random_bool(0.2) {
            // Mid-start: the previous process is ready; kill a fresh one early.
            servers.kill();
            kills += 1;
            servers.spawn();
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
        }
        servers.kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        servers.spawn();
        servers.wait_ready(&client).await;
    }
    let chaos = chaos_started.elapsed();

    // Faults stop: every trigger gets its answer, every run ends.
    let mut acked = Vec::new();
    for trigger in triggers {
        acked.push(
            tokio::time::timeout(DEADLINE, trigger)
                .await
                .expect("every trigger is answered")
                .expect("trigger task"),
        );
    }
    let deadline = Instant::now() + DEADLINE;
    let final_statuses = ["COMPLETED", "FAILED", "CANCELED"];
    let runs: Vec<(String, i64, String)> = loop {
        let mut conn = connect_db(&db_path).await.expect("open the database");
        let runs: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT id, run_number, status FROM runs WHERE pipeline_id = ? ORDER BY run_number",
        )
        .bind(&pipeline_id)
        .fetch_all(&mut conn)
        .await
        .expect("read runs");
        conn.close().await.expect("close");
        if runs
            .iter()
            .all(|(_, _, status)| final_statuses.contains(&status.as_str()))
        {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "runs not final: {runs:?}\n{}",
            servers.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A last look with the server still up, then stop sampling.
    tokio::time::sleep(SWEEP * 3).await;
    stop_sampling.store(true, Ordering::SeqCst);
    sampler.await.expect("sampler");

    // G3 through the API: every acknowledged run answers.
    let mut acked_missing = 0;
    for run_id in &acked {
        let reply = client
            .get(format!(
                "{}/v5/{}/api/pipelines/{pipeline_id}/pipeline-runs/detail?pipeline_run_id={run_id}",
                api.base, api.project_id
            ))
            .header("X-Auth-Token", &api.token)
            .send()
            .await
            .expect("run detail");
        if reply.status() != StatusCode::OK {
            acked_missing += 1;
        }
    }
    let exit = servers.terminate();

    // Everything else from the database file, now at rest.
    let mut conn = connect_db(&db_path).await.expect("open the database");
    let jobs: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT j.id, j.status, j.attempt, j.message FROM job_runs j JOIN runs r ON r.id = j.run_id \
         WHERE r.pipeline_id = ?",
    )
    .bind(&pipeline_id)
    .fetch_all(&mut conn)
    .await
    .expect("read jobs");
    let leased: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM job_attempts WHERE state = 'leased'")
            .fetch_one(&mut conn)
            .await
            .expect("count leases");
    let steps: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT s.id, s.job_run_id, s.status, j.identifier FROM step_runs s \
         JOIN job_runs j ON j.id = s.job_run_id JOIN runs r ON r.id = s.run_id \
         WHERE r.pipeline_id = ? AND s.placement = 'job'",
    )
    .bind(&pipeline_id)
    .fetch_all(&mut conn)
    .await
    .expect("read steps");
    let logs: Vec<(String, i64, i64, i64)> =
        sqlx::query_as("SELECT step_run_id, attempt, received, stored FROM step_logs")
            .fetch_all(&mut conn)
            .await
            .expect("read logs");
    let mut log_bytes: BTreeMap<(String, i64), Vec<u8>> = BTreeMap::new();
    let mut chunk_gaps = 0;
    for (step, attempt, _, stored) in &logs {
        let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT start_offset, data FROM step_log_chunks WHERE step_run_id = ? AND attempt = ? \
             ORDER BY start_offset",
        )
        .bind(step)
        .bind(attempt)
        .fetch_all(&mut conn)
        .await
        .expect("read chunks");
        let mut bytes = Vec::new();
        for (offset, data) in chunks {
            if usize::try_from(offset).ok() != Some(bytes.len()) {
                chunk_gaps += 1;
            }
            bytes.extend_from_slice(&data);
        }
        if i64::try_from(bytes.len()).ok() != Some(*stored) {
            chunk_gaps += 1;
        }
        log_bytes.insert((step.clone(), *attempt), bytes);
    }
    conn.close().await.expect("close");

    // G4: every attempt's log is lines 1..k; a COMPLETED step's current log has all lines;
    // nothing seen committed is gone.
    let observed = Arc::try_unwrap(observed)
        .ok()
        .expect("sampler done")
        .into_inner()
        .expect("observed");
    let mut g4_problems = Vec::new();
    let mut lines_checked = 0_usize;
    for ((step, attempt), bytes) in &log_bytes {
        match line_numbers(bytes) {
            Ok(numbers) => {
                lines_checked += numbers.len();
                let expected: Vec<u32> = (1..=u32::try_from(numbers.len()).expect("few")).collect();
                if numbers != expected {
                    g4_problems.push(format!("step {step} attempt {attempt}: lines {numbers:?}"));
                }
            }
            Err(why) => g4_problems.push(format!("step {step} attempt {attempt}: {why}")),
        }
    }
    let job_attempt: BTreeMap<&str, i64> = jobs
        .iter()
        .map(|(id, _, attempt, _)| (id.as_str(), *attempt))
        .collect();
    let mut completed_steps = 0;
    for (step, job, status, _) in &steps {
        if status != "COMPLETED" {
            continue;
        }
        completed_steps += 1;
        let attempt = job_attempt[job.as_str()];
        let numbers = log_bytes
            .get(&(step.clone(), attempt))
            .map(|bytes| line_numbers(bytes).unwrap_or_default())
            .unwrap_or_default();
        if numbers.len() != usize::try_from(LINES).expect("few") {
            g4_problems.push(format!(
                "COMPLETED step {step} attempt {attempt} has {} of {LINES} lines",
                numbers.len()
            ));
        }
    }
    let mut acked_bytes_lost = 0;
    for (key, seen) in &observed.log_lengths {
        let now = log_bytes.get(key).map_or(0, Vec::len);
        if i64::try_from(now).expect("fits") < *seen {
            acked_bytes_lost += 1;
            g4_problems.push(format!("{key:?}: {seen} bytes seen, {now} left"));
        }
    }

    // G5 and G3/G6.
    let numbers: Vec<i64> = runs.iter().map(|(_, number, _)| *number).collect();
    let expected_numbers: Vec<i64> = (1..=i64::try_from(runs.len()).expect("few")).collect();
    let run_ids: BTreeSet<&str> = runs.iter().map(|(id, _, _)| id.as_str()).collect();
    let acked_ids: BTreeSet<&str> = acked.iter().map(String::as_str).collect();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, status) in &runs {
        *by_status.entry(status.as_str()).or_default() += 1;
    }
    let mut jobs_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (_, status, _, message) in &jobs {
        let key = match message.as_deref() {
            Some("executor lost") => format!("{status} (executor lost)"),
            _ => status.clone(),
        };
        *jobs_by_status.entry(key).or_default() += 1;
    }
    let reattempted = jobs
        .iter()
        .filter(|(_, _, attempt, _)| *attempt > 1)
        .count();
    let running_at_end = jobs
        .iter()
        .filter(|(_, status, _, _)| status == "RUNNING")
        .count();
    let final_runs = runs
        .iter()
        .filter(|(_, _, status)| final_statuses.contains(&status.as_str()))
        .count();

    println!("crash test figures (seed {seed}):");
    println!(
        "  kills: {kills} (kill -9) over {chaos:.1?}; server starts: {}",
        servers.starts
    );
    println!("  G7 runs final: {final_runs}/{} {by_status:?}", runs.len());
    println!("  jobs: {jobs_by_status:?}; re-dispatched after a kill: {reattempted}");
    println!(
        "  G3 acknowledged triggers: {}; missing: {acked_missing}; runs stored: {} (extra from retried requests: {})",
        acked.len(),
        runs.len(),
        run_ids.difference(&acked_ids).count()
    );
    println!("  G5 run numbers: {numbers:?}");
    println!(
        "  G4 step logs: {} attempts, {lines_checked} lines, {completed_steps} COMPLETED steps complete; \
         {} logs seen while running, {acked_bytes_lost} shorter later; chunk gaps: {chunk_gaps}; problems: {}",
        log_bytes.len(),
        observed.log_lengths.len(),
        g4_problems.len()
    );
    println!(
        "  G1 database samples: {} ({} with a server up long enough); jobs RUNNING without a live lease: {}; \
         RUNNING at the end: {running_at_end}; leases held at the end: {leased}",
        observed.samples,
        observed.g1_checks,
        observed.g1_violations.len()
    );
    println!("  graceful exit after the test: {exit:?}");
    // Killed servers leave their job directories behind; each start removes those of servers
    // that are gone, and the last one, stopping, its idle ones.
    let left_dirs: Vec<String> = std::fs::read_dir(servers.data_dir.join("workspaces"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    println!("  job directories left after the last stop: {left_dirs:?}");

    assert_eq!(final_runs, RUNS, "G7: every run final");
    assert_eq!(acked_missing, 0, "G3: no acknowledged run missing");
    assert_eq!(acked_ids.len(), RUNS, "one run per trigger");
    assert_eq!(run_ids, acked_ids, "G3/G6: exactly the acknowledged runs");
    assert_eq!(numbers, expected_numbers, "G5: unique and gapless");
    assert!(g4_problems.is_empty(), "G4: {g4_problems:#?}");
    assert_eq!(chunk_gaps, 0, "G4: chunks contiguous");
    assert!(!observed.log_lengths.is_empty(), "the sampler saw logs");
    assert!(
        observed.g1_violations.is_empty(),
        "G1: {:#?}",
        observed.g1_violations
    );
    assert_eq!(running_at_end, 0, "G1: nothing RUNNING at the end");
    assert_eq!(leased, 0, "G1: no lease held at the end");
    assert!(kills >= 10);
    assert_eq!(exit, Some(0), "the last server stops gracefully");
    assert!(
        left_dirs.is_empty(),
        "job directories of killed servers are swept: {left_dirs:?}"
    );
}
