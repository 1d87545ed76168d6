//! Test support for the webhook, checkout and schedule tests: git repositories made with the
//! git CLI and served by `git daemon` on loopback, a real server (store, engine, API, executor
//! pool) on a temporary directory, a small HTTP client, forge payload signing.

#![allow(dead_code)]

use hmac::{Hmac, KeyInit, Mac};
use runnel_domain::status::RunStatus;
use runnel_server::{Flags, RunningServer, Settings, SettingsSources};
use runnel_store::{IdentityStore, LogRead, LogStore, Role, RunDetail, RunStore};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long any one wait may take (debug builds, 2 cores, real processes).
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Runs git with a fixed identity and no user or system configuration.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A bare repository served by `git daemon`, and a working clone to make commits in.
pub(crate) struct GitServer {
    pub(crate) root: tempfile::TempDir,
    daemon: Child,
    pub(crate) port: u16,
}

pub(crate) struct Repo {
    pub(crate) work: PathBuf,
    pub(crate) url: String,
}

impl GitServer {
    pub(crate) async fn start() -> GitServer {
        let root = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let daemon = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.path().display()),
                &root.path().display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "git daemon never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        GitServer { root, daemon, port }
    }

    /// A new repository `name` with one commit on `main` (README), pushed.
    pub(crate) fn repo(&self, name: &str) -> Repo {
        let bare = self.root.path().join(format!("{name}.git"));
        std::fs::create_dir_all(&bare).expect("bare dir");
        git(
            &bare,
            &["init", "--quiet", "--bare", "--initial-branch=main"],
        );
        let work = self.root.path().join(format!("{name}-work"));
        std::fs::create_dir_all(&work).expect("work dir");
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        let repo = Repo {
            work,
            url: format!("git://127.0.0.1:{}/{name}.git", self.port),
        };
        repo.commit("README", "hello\n", "first commit");
        repo.push("main");
        repo
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl Repo {
    /// Writes `path` and commits it on the current branch; returns the commit id.
    pub(crate) fn commit(&self, path: &str, content: &str, message: &str) -> String {
        let file = self.work.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("dirs");
        }
        std::fs::write(&file, content).expect("write");
        git(&self.work, &["add", "--", path]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        self.head()
    }

    pub(crate) fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub(crate) fn checkout_new(&self, branch: &str) {
        git(&self.work, &["checkout", "--quiet", "-b", branch]);
    }

    pub(crate) fn checkout(&self, branch: &str) {
        git(&self.work, &["checkout", "--quiet", branch]);
    }

    pub(crate) fn push(&self, reference: &str) {
        git(&self.work, &["push", "--quiet", "origin", reference]);
    }

    /// An annotated tag at HEAD, pushed; returns the tag object's id.
    pub(crate) fn tag(&self, name: &str) -> String {
        git(&self.work, &["tag", "-a", name, "-m", name]);
        self.push(&format!("refs/tags/{name}"));
        git(&self.work, &["rev-parse", &format!("refs/tags/{name}")])
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A server with test lease settings on a temporary directory; `env` adds settings.
pub(crate) struct TestServer {
    pub(crate) server: RunningServer,
    pub(crate) token: String,
    pub(crate) project_id: String,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub(crate) async fn start(env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: BTreeMap<String, String> = [
            ("RUNNEL__SERVER__LISTEN", "127.0.0.1:0"),
            ("RUNNEL__ENGINE__LEASE", "3s"),
            ("RUNNEL__ENGINE__HEARTBEAT", "1s"),
            ("RUNNEL__ENGINE__SWEEP", "1s"),
            ("RUNNEL__EXECUTOR__KILL_GRACE", "1s"),
            ("RUNNEL__EXECUTOR__SLOTS", "2"),
            ("RUNNEL__LOGGING__LEVEL", "warn"),
        ]
        .into_iter()
        .chain(env.iter().copied())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let settings = Settings::load(&SettingsSources {
            env,
            flags: Flags {
                data_dir: Some(dir.path().to_path_buf()),
                ..Flags::default()
            },
        })
        .unwrap_or_else(|err| panic!("{err}"));
        let server = runnel_server::start(settings)
            .await
            .unwrap_or_else(|err| panic!("server starts: {err:#}"));
        let credentials = server.credentials().expect("first start").clone();
        let mut test = TestServer {
            server,
            token: String::new(),
            project_id: credentials.project_id.clone(),
            _dir: dir,
        };
        let login = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": credentials.user_name, "password": credentials.password,
                "domain": {"name": credentials.domain_name}}}},
            "scope": {"project": {"name": "local-1"}}
        }});
        let reply = test
            .request("POST", "/v3/auth/tokens", &[], login.to_string().as_bytes())
            .await;
        assert_eq!(reply.status, 201, "login: {}", reply.text);
        test.token = reply.header("x-subject-token").expect("token").to_owned();
        test
    }

    /// A token of a new user who is a viewer of the project.
    pub(crate) async fn viewer_token(&self) -> String {
        let store = self.server.store();
        let now = self.server.engine().now();
        let project = store
            .project(&self.project_id)
            .await
            .expect("read")
            .expect("project");
        let user = store
            .create_user(
                &project.domain_id,
                &format!("viewer-{}", runnel_store::new_id()),
                None,
                now,
            )
            .await
            .expect("user");
        store
            .set_member(&project.id, &user.id, Role::Viewer, now)
            .await
            .expect("member");
        store
            .issue_token(
                &user.id,
                &format!("project:{}", project.id),
                now,
                Duration::from_secs(3600),
            )
            .await
            .expect("token")
            .token
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.local_addr
    }

    /// An HTTP/1.1 request; the body is sent as is.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        http(self.addr(), method, path, headers, body).await
    }

    /// An authenticated JSON call.
    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let bytes = body
            .map(|body| body.to_string().into_bytes())
            .unwrap_or_default();
        let token = self.token.clone();
        self.request(
            method,
            path,
            &[
                ("X-Auth-Token", &token),
                ("Content-Type", "application/json"),
            ],
            &bytes,
        )
        .await
    }

    /// Creates a pipeline; returns its id.
    pub(crate) async fn create_pipeline(&self, body: Value) -> String {
        let reply = self
            .call(
                "POST",
                &format!("/v5/{}/api/pipelines", self.project_id),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, 200, "create pipeline: {}", reply.text);
        reply.json["pipeline_id"]
            .as_str()
            .expect("pipeline id")
            .to_owned()
    }

    /// Runs a pipeline through the v5 API with `body`; returns the run id.
    pub(crate) async fn start_run(&self, pipeline_id: &str, body: Value) -> String {
        let reply = self
            .call(
                "POST",
                &format!("/v5/{}/api/pipelines/{pipeline_id}/run", self.project_id),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, 200, "run: {}", reply.text);
        reply.json["pipeline_run_id"]
            .as_str()
            .expect("run id")
            .to_owned()
    }

    pub(crate) async fn pipeline_detail(&self, pipeline_id: &str) -> Value {
        let reply = self
            .call(
                "GET",
                &format!("/v5/{}/api/pipelines/{pipeline_id}", self.project_id),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "detail: {}", reply.text);
        reply.json
    }

    pub(crate) async fn run_count(&self, pipeline_id: &str) -> i64 {
        let reply = self
            .call(
                "POST",
                &format!(
                    "/v5/{}/api/pipelines/{pipeline_id}/pipeline-runs/list",
                    self.project_id
                ),
                Some(json!({"limit": 100})),
            )
            .await;
        assert_eq!(reply.status, 200, "run list: {}", reply.text);
        reply.json["total"].as_i64().expect("total")
    }

    pub(crate) async fn deliveries(&self, pipeline_id: &str) -> Vec<Value> {
        let reply = self
            .call(
                "GET",
                &format!(
                    "/v5/{}/api/pipelines/{pipeline_id}/webhook-deliveries?limit=100",
                    self.project_id
                ),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "deliveries: {}", reply.text);
        reply.json["deliveries"].as_array().expect("list").clone()
    }

    /// Waits until the run is final; returns its detail.
    pub(crate) async fn wait_final(&self, run_id: &str) -> RunDetail {
        let store = self.server.store();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let detail = store
                .run_detail(run_id)
                .await
                .expect("read")
                .expect("run exists");
            if detail.run.status.is_final() {
                return detail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} is still {}",
                detail.run.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every step log of the run, concatenated.
    pub(crate) async fn logs(&self, detail: &RunDetail) -> String {
        let mut text = String::new();
        for step in detail
            .stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .flat_map(|job| &job.steps)
        {
            let page = self
                .server
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
                .expect("log");
            text.push_str(&String::from_utf8_lossy(&page.data));
        }
        text
    }

    /// Waits until the run completed; panics with its logs otherwise.
    pub(crate) async fn expect_completed(&self, run_id: &str) -> (RunDetail, String) {
        let detail = self.wait_final(run_id).await;
        let logs = self.logs(&detail).await;
        assert_eq!(
            detail.run.status,
            RunStatus::Completed,
            "run failed; logs:\n{logs}"
        );
        (detail, logs)
    }

    pub(crate) async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// An HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) json: Value,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    stream.write_all(body).await.expect("body sent");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("response read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let is_chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    let body = if is_chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        headers,
        text: body,
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// `sha256=<hex>` of the body with the secret, as GitHub signs.
pub(crate) fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A pipeline body: one code source `app`, the given triggers, and one job whose one shell step
/// runs `script` (after the implicit checkout of the source).
pub(crate) fn pipeline_body(name: &str, repo_url: &str, triggers: Value, script: &str) -> Value {
    let definition = json!({"stages": [{"name": "Build", "jobs": [{"name": "check", "identifier": "JOB_Check1",
        "steps": [{"name": "verify", "task": "official_shell_plugin",
            "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": script}]}]}]}]});
    json!({
        "name": name,
        "is_publish": false,
        "sources": [{"type": "code", "params": {"git_type": "github", "alias": "app", "git_url": repo_url,
            "default_branch": "main", "repo_name": "app"}}],
        "triggers": triggers,
        "definition": definition.to_string(),
    })
}

/// A GitHub push payload for `branch` at `after`, touching `paths`.
pub(crate) fn github_push(
    repo_url: &str,
    reference: &str,
    before: &str,
    after: &str,
    message: &str,
    paths: &[&str],
) -> Value {
    json!({
        "ref": reference, "before": before, "after": after, "deleted": false,
        "head_commit": {"id": after, "message": message},
        "commits": [{"id": after, "message": message, "added": [], "removed": [], "modified": paths}],
        "repository": {"clone_url": repo_url, "name": "app"},
        "pusher": {"name": "octo"}, "sender": {"login": "octo"}
    })
}

/// Delivers a GitHub event signed with `secret`.
pub(crate) async fn deliver_github(
    test: &TestServer,
    callback: &str,
    event: &str,
    delivery: &str,
    secret: &str,
    payload: &Value,
) -> Reply {
    let body = payload.to_string();
    let signature = github_signature(secret, body.as_bytes());
    test.request(
        "POST",
        callback,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &signature),
        ],
        body.as_bytes(),
    )
    .await
}

/// The path of a callback URL (`http://host:port/webhooks/7` → `/webhooks/7`).
pub(crate) fn callback_path(callback_url: &str) -> String {
    let rest = callback_url
        .split_once("://")
        .map_or(callback_url, |(_, rest)| rest);
    format!("/{}", rest.split_once('/').map_or("", |(_, path)| path))
}

/// `git http-backend` behind HTTP basic authentication, serving the bare repositories of a
/// [`GitServer`]'s root: what a forge asking for an access token looks like to git.
pub(crate) struct AuthGitServer {
    pub(crate) port: u16,
    /// Requests answered 401 (no or wrong credentials) and requests served.
    pub(crate) refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthGitServer {
    /// Serves `root`'s repositories to `username` with `token`.
    pub(crate) async fn start(root: &Path, username: &str, token: &str) -> AuthGitServer {
        use axum::body::{Body, Bytes};
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        use axum::response::Response;
        use base64::Engine as _;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"))
        );
        let refused = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let root = root.to_path_buf();
        let (counted_refused, counted_served) = (Arc::clone(&refused), Arc::clone(&served));
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (expected, root) = (expected.clone(), root.clone());
            let (refused, served) = (Arc::clone(&counted_refused), Arc::clone(&counted_served));
            async move {
                let authorized = headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    == Some(expected.as_str());
                if !authorized {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .header("WWW-Authenticate", "Basic realm=\"git\"")
                        .body(Body::empty())
                        .expect("response");
                }
                served.fetch_add(1, Ordering::SeqCst);
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (content_type, encoding) = (header("content-type"), header("content-encoding"));
                let output = tokio::task::spawn_blocking(move || {
                    use std::io::Write as _;
                    let mut child = Command::new("git")
                        .arg("http-backend")
                        .env_clear()
                        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                        .env("GIT_CONFIG_NOSYSTEM", "1")
                        .env("GIT_CONFIG_GLOBAL", "/dev/null")
                        .env("GIT_PROJECT_ROOT", &root)
                        .env("GIT_HTTP_EXPORT_ALL", "1")
                        .env("REQUEST_METHOD", method.as_str())
                        .env("PATH_INFO", uri.path())
                        .env("QUERY_STRING", uri.query().unwrap_or_default())
                        .env("CONTENT_TYPE", content_type)
                        .env("HTTP_CONTENT_ENCODING", encoding)
                        .env("REMOTE_USER", "tester")
                        .env("REMOTE_ADDR", "127.0.0.1")
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("git http-backend starts");
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(&body)
                        .expect("request body written");
                    child.wait_with_output().expect("git http-backend ends")
                })
                .await
                .expect("joined");
                // A CGI answer: headers (`Status:` among them), a blank line, the body.
                let split = output
                    .stdout
                    .windows(4)
                    .position(|window| window == b"\r\n\r\n")
                    .map(|at| (at, 4))
                    .or_else(|| {
                        output
                            .stdout
                            .windows(2)
                            .position(|window| window == b"\n\n")
                            .map(|at| (at, 2))
                    })
                    .expect("CGI headers");
                let head = String::from_utf8_lossy(&output.stdout[..split.0]).into_owned();
                let mut response = Response::builder();
                for line in head.lines() {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    if name.eq_ignore_ascii_case("status") {
                        let code: u16 = value.trim()[..3].parse().expect("status");
                        response = response.status(code);
                    } else {
                        response = response.header(name.trim(), value.trim());
                    }
                }
                response
                    .body(Body::from(output.stdout[split.0 + split.1..].to_vec()))
                    .expect("response")
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serves");
        });
        AuthGitServer {
            port,
            refused,
            served,
            task,
        }
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }
}

impl Drop for AuthGitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
