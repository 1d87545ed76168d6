//! The test harness: servers on temporary data directories with test lease settings, pipelines created through the store, waits with timeouts.

use runnel_domain::status::{JobStatus, RunStatus};
use runnel_domain::{Format, compile_text};
use runnel_engine::{Actor, Clock as _, SystemClock, TriggerRequest};
use runnel_server::{Flags, RunningServer, Settings, SettingsSources};
use runnel_store::{
    IdentityStore, JobRunRecord, LogRead, LogStore, NewPipeline, PipelineStore, RunDetail,
    RunStore, new_id,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long any one wait may take before the test fails (debug builds, 2 cores, real processes).
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Settings for tests: port 0, the guarantees' test lease settings (lease 3 s, heartbeat 1 s,
/// sweep 1 s), a short kill grace, two slots; the data directory `data_dir`.
pub(crate) fn settings(data_dir: &Path) -> Settings {
    settings_with(data_dir, &[])
}

/// [`settings`] with more environment settings.
pub(crate) fn settings_with(data_dir: &Path, more_env: &[(&str, &str)]) -> Settings {
    let env: BTreeMap<String, String> = [
        ("RUNNEL__SERVER__LISTEN", "127.0.0.1:0"),
        ("RUNNEL__ENGINE__LEASE", "3s"),
        ("RUNNEL__ENGINE__HEARTBEAT", "1s"),
        ("RUNNEL__ENGINE__SWEEP", "1s"),
        ("RUNNEL__EXECUTOR__KILL_GRACE", "1s"),
        ("RUNNEL__EXECUTOR__SLOTS", "2"),
    ]
    .into_iter()
    .chain(more_env.iter().copied())
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let sources = SettingsSources {
        env,
        flags: Flags {
            data_dir: Some(data_dir.to_path_buf()),
            ..Flags::default()
        },
    };
    Settings::load(&sources).unwrap_or_else(|err| panic!("{err}"))
}

pub(crate) async fn start(settings: Settings) -> RunningServer {
    runnel_server::start(settings)
        .await
        .unwrap_or_else(|err| panic!("server starts: {err:#}"))
}

/// The bootstrap admin, as the engine sees a person.
pub(crate) async fn admin(server: &RunningServer) -> Actor {
    let domain = server
        .store()
        .domain_by_name("default")
        .await
        .expect("read")
        .expect("default domain");
    let user = server
        .store()
        .user_by_name(&domain.id, "admin")
        .await
        .expect("read")
        .expect("admin user");
    Actor {
        user_id: user.id,
        user_name: user.name,
        roles: vec!["admin".to_owned()],
    }
}

/// Creates a pipeline in the default project from a definition (YAML or CodeArts JSON).
pub(crate) async fn create_pipeline(server: &RunningServer, text: &str, format: Format) -> String {
    let store = server.store();
    let admin = admin(server).await;
    let domain = store
        .domain_by_name("default")
        .await
        .expect("read")
        .expect("domain");
    let project = store
        .projects(&domain.id)
        .await
        .expect("read")
        .into_iter()
        .find(|project| project.name == "default")
        .expect("default project");
    let spec = compile_text(text, format).unwrap_or_else(|diagnostics| panic!("{diagnostics:#?}"));
    let pipeline = store
        .create_pipeline(NewPipeline {
            id: new_id(),
            project_id: project.id,
            name: format!("pipeline-{}", new_id()),
            description: String::new(),
            is_publish: false,
            component_id: None,
            group_id: None,
            manifest_version: "3.0".into(),
            definition: spec.definition().to_string(),
            compiled: spec.definition().clone(),
            sources: serde_json::json!([]),
            settings: serde_json::json!({}),
            variables: spec.variables().to_vec(),
            variable_group_ids: Vec::new(),
            tag_ids: Vec::new(),
            origin_id: None,
            from_source: 0,
            creator_id: admin.user_id,
            now: SystemClock.now(),
        })
        .await
        .expect("pipeline created");
    pipeline.id
}

pub(crate) async fn trigger(server: &RunningServer, pipeline_id: &str) -> String {
    let admin = admin(server).await;
    let request = TriggerRequest {
        pipeline_id: pipeline_id.to_owned(),
        user_id: admin.user_id,
        user_name: admin.user_name,
        trigger_type: "Manual".into(),
        ..TriggerRequest::default()
    };
    server
        .engine()
        .trigger(request)
        .await
        .expect("trigger")
        .run_id
}

pub(crate) async fn detail(server: &RunningServer, run_id: &str) -> RunDetail {
    server
        .store()
        .run_detail(run_id)
        .await
        .expect("read")
        .expect("run exists")
}

/// Waits until `done` holds for the run: re-checked on every engine change and every 50 ms
/// (changes made by workers through the store do not always notify).
pub(crate) async fn wait_for(
    server: &RunningServer,
    run_id: &str,
    what: &str,
    done: impl Fn(&RunDetail) -> bool,
) -> RunDetail {
    let mut changes = server.engine().subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let detail = detail(server, run_id).await;
        if done(&detail) {
            return detail;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}:\n{}",
            summary(&detail)
        );
        let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), changes.recv()).await;
    }
}

pub(crate) async fn wait_status(
    server: &RunningServer,
    run_id: &str,
    status: RunStatus,
) -> RunDetail {
    wait_for(server, run_id, &format!("run {status}"), |detail| {
        detail.run.status == status
    })
    .await
}

pub(crate) fn job<'a>(detail: &'a RunDetail, identifier: &str) -> &'a JobRunRecord {
    detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .find(|job| job.identifier == identifier)
        .unwrap_or_else(|| panic!("no job {identifier}:\n{}", summary(detail)))
}

pub(crate) fn job_status(detail: &RunDetail, identifier: &str) -> JobStatus {
    job(detail, identifier).status
}

/// The stored log of a job's first step (its current attempt).
pub(crate) async fn step_log(server: &RunningServer, detail: &RunDetail, job_id: &str) -> String {
    let step = &job(detail, job_id).steps[0];
    let page = server
        .store()
        .read_log(
            &step.id,
            None,
            LogRead::Asc {
                start: 0,
                limit: 1 << 20,
            },
        )
        .await
        .expect("log read");
    String::from_utf8_lossy(&page.data).into_owned()
}

pub(crate) fn summary(detail: &RunDetail) -> String {
    let mut lines = vec![format!("run {}", detail.run.status)];
    for stage in &detail.stages {
        lines.push(format!("  stage {} {}", stage.name, stage.status));
        for job in &stage.jobs {
            lines.push(format!(
                "    job {} {} attempt {} {:?}",
                job.identifier, job.status, job.attempt, job.message
            ));
        }
    }
    lines.join("\n")
}

/// The status code of `GET path`, over a plain HTTP/1.1 connection.
pub(crate) async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    let response = http_get(addr, path, "").await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"))
}

/// The whole response (status line, headers, body) to a GET of `path` with `headers` (each
/// line ending in `\r\n`).
pub(crate) async fn http_get(addr: SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("response read");
    String::from_utf8_lossy(&response).into_owned()
}

/// The values of the response header `name` (lower case), in order.
pub(crate) fn header_values(response: &str, name: &str) -> Vec<String> {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().to_owned())
        .collect()
}

/// Waits until `path` exists (a step wrote it).
pub(crate) async fn wait_for_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process is alive: it exists and is not a zombie (this sandbox's pid 1 does not
/// reap orphans, so a killed, re-parented process may stay a zombie).
pub(crate) fn is_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Waits until the process is gone (or a zombie).
pub(crate) async fn wait_until_dead(pid: i32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while is_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} is still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory for files the steps of one test write, outside their workspaces.
pub(crate) fn marker_dir(root: &Path) -> PathBuf {
    let dir = root.join("markers");
    std::fs::create_dir_all(&dir).expect("marker dir");
    dir
}
