//! The test world: a real SQLite store in a temp dir, a real engine on a manual clock, the
//! router called through `oneshot`, two projects, four users, an access key, and a fake agent
//! that drives jobs through the engine's claim/report/complete.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use runnel_api::{ApiConfig, ApiState};
use runnel_domain::Timestamp;
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_engine::{ClaimInput, Clock, Dispatch, Engine, EngineConfig, EngineTask, ManualClock};
use runnel_store::{
    IdentityStore, JobOutcome, ProjectRecord, Role, StepReport, Store, StoreConfig,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) token: String,
}

pub(crate) struct Harness {
    pub(crate) router: Router,
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    pub(crate) clock: ManualClock,
    /// Alice's project; Carol's is `project_b`.
    pub(crate) project_a: ProjectRecord,
    pub(crate) project_b: ProjectRecord,
    /// Admin of A, viewer of B.
    pub(crate) alice: User,
    /// Developer of A.
    pub(crate) dave: User,
    /// Viewer of A.
    pub(crate) vera: User,
    /// Admin of B only.
    pub(crate) carol: User,
    /// Alice's access key.
    pub(crate) ak: String,
    pub(crate) sk: String,
    _task: EngineTask,
    _dir: tempfile::TempDir,
}

/// How a request authenticates.
#[derive(Clone)]
pub(crate) enum Auth<'a> {
    None,
    Token(&'a str),
    /// Signed with the access key at the harness clock's time.
    Signed,
    /// Signed with a wrong secret key.
    BadSignature,
    /// Signed correctly, but `X-Sdk-Date` 16 minutes old.
    StaleDate,
}

/// A response: status, headers, JSON body (`Value::Null` when empty or not JSON).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    /// The error code, in the CodeArts shape or the IAM one (`{"error": {"error_code"}}`).
    pub(crate) fn code(&self) -> &str {
        self.body["error_code"]
            .as_str()
            .or_else(|| self.body["error"]["error_code"].as_str())
            .unwrap_or("")
    }
}

impl Harness {
    pub(crate) async fn new() -> Harness {
        Harness::with_config(ApiConfig::new("https://ci.example.com", "local-1")).await
    }

    pub(crate) async fn with_config(config: ApiConfig) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(StoreConfig::sqlite(
            &dir.path().join("runnel.db"),
            runnel_store::SecretKey::generate(),
        ))
        .await
        .expect("store opens");
        let clock = ManualClock::new(Timestamp::from_millis(1_750_000_000_000));
        let now = clock.now();
        let engine_config = EngineConfig {
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(3600),
            ..EngineConfig::default()
        };
        let (engine, task) = Engine::start(store.clone(), engine_config, Arc::new(clock.clone()))
            .await
            .expect("engine starts");
        let domain = store.create_domain("acme", now).await.expect("domain");
        let project_a = store
            .create_project(&domain.id, "alpha", "", now)
            .await
            .expect("project");
        let project_b = store
            .create_project(&domain.id, "beta", "", now)
            .await
            .expect("project");
        let router = runnel_api::router(ApiState {
            engine: engine.clone(),
            store: store.clone(),
            config: Arc::new(config),
        });
        let mut users = Vec::new();
        for (name, memberships) in [
            (
                "alice",
                vec![(&project_a, Role::Admin), (&project_b, Role::Viewer)],
            ),
            ("dave", vec![(&project_a, Role::Developer)]),
            ("vera", vec![(&project_a, Role::Viewer)]),
            ("carol", vec![(&project_b, Role::Admin)]),
        ] {
            let user = store
                .create_user(&domain.id, name, Some(PASSWORD), now)
                .await
                .expect("user");
            for (project, role) in memberships {
                store
                    .set_member(&project.id, &user.id, role, now)
                    .await
                    .expect("member");
            }
            users.push(user);
        }
        let key = store
            .create_access_key(&users[0].id, "tests", now)
            .await
            .expect("access key");
        let mut harness = Harness {
            router,
            engine,
            store,
            clock,
            project_a,
            project_b,
            alice: placeholder(),
            dave: placeholder(),
            vera: placeholder(),
            carol: placeholder(),
            ak: key.ak.clone(),
            sk: key.sk.clone(),
            _task: task,
            _dir: dir,
        };
        let mut logged_in = Vec::new();
        for user in users {
            let token = harness.login(&user.name).await;
            logged_in.push(User { id: user.id, token });
        }
        let mut logged_in = logged_in.into_iter();
        harness.alice = logged_in.next().expect("alice");
        harness.dave = logged_in.next().expect("dave");
        harness.vera = logged_in.next().expect("vera");
        harness.carol = logged_in.next().expect("carol");
        harness
    }

    pub(crate) fn clock_now(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// `POST /v3/auth/tokens` with the password; returns the `X-Subject-Token`.
    pub(crate) async fn login(&self, user: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/v3/auth/tokens",
                Auth::None,
                Some(login_body(user, PASSWORD)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.headers["x-subject-token"]
            .to_str()
            .expect("token")
            .to_owned()
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Reply {
        let bytes = body
            .map(|body| body.to_string().into_bytes())
            .unwrap_or_default();
        self.call_raw(method, uri, auth, bytes, &[]).await
    }

    pub(crate) async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        auth: Auth<'_>,
        body: Vec<u8>,
        extra_headers: &[(&str, &str)],
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header("host", "ci.example.com")
            .header("content-type", "application/json;charset=utf-8");
        for (name, value) in extra_headers {
            builder = builder.header(*name, *value);
        }
        match auth {
            Auth::None => {}
            Auth::Token(token) => builder = builder.header("x-auth-token", token),
            Auth::Signed | Auth::BadSignature | Auth::StaleDate => {
                let moment = if matches!(auth, Auth::StaleDate) {
                    self.clock.now().as_millis() - 16 * 60 * 1000
                } else {
                    self.clock.now().as_millis()
                };
                let date = chrono::DateTime::from_timestamp_millis(moment)
                    .expect("time")
                    .format("%Y%m%dT%H%M%SZ")
                    .to_string();
                let secret = if matches!(auth, Auth::BadSignature) {
                    "not the secret key"
                } else {
                    self.sk.as_str()
                };
                let authorization = sign(&method, uri, &date, &body, &self.ak, secret);
                builder = builder
                    .header("x-sdk-date", date)
                    .header("authorization", authorization);
            }
        }
        let request = builder.body(Body::from(body)).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        // A live event stream may never end: its body is not read here.
        let is_stream = headers
            .get("content-type")
            .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
        let bytes = if is_stream {
            axum::body::Bytes::new()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body")
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            headers.contains_key("x-request-id"),
            "every response has an X-Request-Id: {method} {uri} → {status}"
        );
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// Creates a pipeline in project A as Alice; returns its id.
    pub(crate) async fn create_pipeline(
        &self,
        name: &str,
        definition: Value,
        extra: Value,
    ) -> String {
        self.create_pipeline_in(
            &self.project_a.id,
            &self.alice.token,
            name,
            definition,
            extra,
        )
        .await
    }

    pub(crate) async fn create_pipeline_in(
        &self,
        project_id: &str,
        token: &str,
        name: &str,
        definition: Value,
        extra: Value,
    ) -> String {
        let mut body =
            json!({"name": name, "is_publish": false, "definition": definition.to_string()});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                body.insert(key.clone(), value.clone());
            }
        }
        let reply = self
            .call(
                Method::POST,
                &format!("/v5/{project_id}/api/pipelines"),
                Auth::Token(token),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["pipeline_id"].as_str().expect("id").to_owned()
    }

    /// Starts a run as Alice; returns the whole reply body.
    pub(crate) async fn run(&self, pipeline_id: &str, body: Value) -> Value {
        let reply = self
            .call(
                Method::POST,
                &format!("/v5/{}/api/pipelines/{pipeline_id}/run", self.project_a.id),
                Auth::Token(&self.alice.token),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    pub(crate) async fn run_detail(&self, pipeline_id: &str, run_id: &str) -> Value {
        self.run_detail_in(&self.project_a.id, &self.alice.token, pipeline_id, run_id)
            .await
    }

    /// A run's v5 detail in `project_id`, read with `token`.
    pub(crate) async fn run_detail_in(
        &self,
        project_id: &str,
        token: &str,
        pipeline_id: &str,
        run_id: &str,
    ) -> Value {
        let reply = self
            .call(
                Method::GET,
                &format!(
                    "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/detail?pipeline_run_id={run_id}"
                ),
                Auth::Token(token),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    pub(crate) async fn wait_for(
        &self,
        pipeline_id: &str,
        run_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_in(
            &self.project_a.id,
            &self.alice.token,
            pipeline_id,
            run_id,
            what,
            done,
        )
        .await
    }

    /// Waits until `done` holds for the run's detail in `project_id`, read with `token`.
    pub(crate) async fn wait_for_in(
        &self,
        project_id: &str,
        token: &str,
        pipeline_id: &str,
        run_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut changes = self.engine.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let detail = self
                .run_detail_in(project_id, token, pipeline_id, run_id)
                .await;
            if done(&detail) {
                return detail;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}: {detail:#}");
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), changes.recv()).await;
        }
    }

    pub(crate) async fn wait_status(&self, pipeline_id: &str, run_id: &str, status: &str) -> Value {
        self.wait_for(pipeline_id, run_id, status, |detail| {
            detail["status"] == status
        })
        .await
    }

    /// Claims the next job as a fake agent (waiting for one).
    pub(crate) async fn claim(&self) -> Dispatch {
        let input = ClaimInput {
            worker_id: "fake-agent".into(),
            pool: None,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(dispatch) = self.engine.claim(&input).await.expect("claim") {
                return dispatch;
            }
            assert!(tokio::time::Instant::now() < deadline, "no job to claim");
            self.engine.wait_for_work(Duration::from_millis(50)).await;
        }
    }

    /// Runs a claimed job: each step starts, logs `lines`, and ends with `status`.
    pub(crate) async fn finish(&self, dispatch: &Dispatch, lines: &[String], status: JobStatus) {
        self.start_steps(dispatch, lines).await;
        self.complete_steps(dispatch, status).await;
    }

    /// Ends a job whose steps were started: every step and the job end with `status`.
    pub(crate) async fn complete_steps(&self, dispatch: &Dispatch, status: JobStatus) {
        let now = self.engine.now();
        let step_status = if status == JobStatus::Completed {
            StepStatus::Completed
        } else {
            StepStatus::Failed
        };
        for step_run_id in &dispatch.step_run_ids {
            self.engine
                .report_step(&dispatch.token, report(step_run_id, step_status, now))
                .await
                .expect("report");
        }
        let message = (status != JobStatus::Completed).then(|| "exit code 1".to_owned());
        self.engine
            .complete(&dispatch.token, JobOutcome { status, message })
            .await
            .expect("complete");
    }

    /// Reports each step RUNNING and appends `lines` to its log (the job keeps running).
    pub(crate) async fn start_steps(&self, dispatch: &Dispatch, lines: &[String]) {
        let now = self.engine.now();
        let log: String = lines.iter().map(|line| format!("{line}\n")).collect();
        for step_run_id in &dispatch.step_run_ids {
            self.engine
                .report_step(
                    &dispatch.token,
                    report(step_run_id, StepStatus::Running, now),
                )
                .await
                .expect("report");
            if !log.is_empty() {
                self.engine
                    .append_log(&dispatch.token, step_run_id, 0, log.clone().into_bytes())
                    .await
                    .expect("log");
            }
        }
    }
}

fn report(step_run_id: &str, status: StepStatus, at: Timestamp) -> StepReport {
    StepReport {
        step_run_id: step_run_id.to_owned(),
        status,
        exit_code: None,
        message: None,
        at,
        started_at: None,
        outputs: Vec::new(),
    }
}

fn placeholder() -> User {
    User {
        id: String::new(),
        token: String::new(),
    }
}

pub(crate) fn login_body(user: &str, password: &str) -> Value {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": "acme"}}}},
        "scope": {"project": {"name": "local-1"}}
    }})
}

/// An independent `SDK-HMAC-SHA256` signer (spec §1.4), as the SDK computes it.
pub(crate) fn sign(
    method: &Method,
    uri: &str,
    date: &str,
    body: &[u8],
    ak: &str,
    sk: &str,
) -> String {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
    pairs.sort();
    let canonical = format!(
        "{method}\n{path}/\n{}\ncontent-type:application/json;charset=utf-8\nhost:ci.example.com\nx-sdk-date:{date}\n\ncontent-type;host;x-sdk-date\n{}",
        pairs.join("&"),
        hex::encode(Sha256::digest(body))
    );
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(sk.as_bytes()).expect("key");
    mac.update(to_sign.as_bytes());
    format!(
        "SDK-HMAC-SHA256 Access={ak}, SignedHeaders=content-type;host;x-sdk-date, Signature={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A shell step.
pub(crate) fn shell(name: &str) -> Value {
    json!({"name": name, "task": "official_shell_plugin",
           "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": format!("echo {name}")}]})
}

/// Two stages: build (compile → test) and deploy (ship).
pub(crate) fn two_stages() -> Value {
    json!({"stages": [
        {"name": "Build", "jobs": [
            {"name": "compile", "identifier": "JOB_Cmpl1", "steps": [shell("make")]},
            {"name": "test", "identifier": "JOB_Test1", "depends_on": ["JOB_Cmpl1"], "steps": [shell("check")]}
        ]},
        {"name": "Deploy", "jobs": [{"name": "ship", "identifier": "JOB_Ship1", "steps": [shell("ship")]}]}
    ]})
}

/// One job waiting for a review by `approver`, then a stage that waits for a manual start.
pub(crate) fn review_and_manual_stage(approver: &str) -> Value {
    json!({"stages": [
        {"name": "Approve", "jobs": [{"name": "review", "identifier": "JOB_Revw1", "steps": [
            {"name": "review", "task": "official_devcloud_checkpoint", "inputs": [
                {"key": "audit_source", "value": "members"}, {"key": "approvers", "value": approver},
                {"key": "check_strategy", "value": "all"}, {"key": "timeout_strategy", "value": "reject"},
                {"key": "timeout", "value": 3600}]}]}]},
        {"name": "Deploy", "pre": [{"task": "official_devcloud_manualTrigger", "sequence": 0}],
         "jobs": [{"name": "ship", "identifier": "JOB_Ship1", "steps": [shell("ship")]}]}
    ]})
}

/// Looks up a job of a run detail by identifier.
pub(crate) fn job<'a>(detail: &'a Value, identifier: &str) -> &'a Value {
    detail["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|stage| stage["jobs"].as_array().into_iter().flatten())
        .find(|job| job["identifier"] == identifier)
        .unwrap_or_else(|| panic!("job {identifier} in {detail:#}"))
}
