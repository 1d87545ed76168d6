//! Templates through the router (spec §2, §4.7, §9): system templates loaded and protected,
//! custom template CRUD and its rules, favorites per user, copies, pipelines created from
//! templates (v5 and the v3 task) whose runs really execute the templates' shell steps, and the
//! auto-increment parameter under concurrent runs.
//!
//! Jobs are run by a small agent in this file: it claims each job from the engine and runs its
//! prepared shell steps with bash (PATH restricted to an empty directory, so no toolchain is
//! found), reporting steps, logs and the job's end like the real worker.

#[allow(dead_code)]
#[path = "api/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use harness::{Auth, Harness, Reply};
use runnel_domain::prepare::PreparedStepKind;
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_engine::Dispatch;
use runnel_store::{JobOutcome, RunStore, StepReport};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const GENERIC: &str = "28af821f47ae420ba041bb10b62ee128";
const JAVA: &str = "9ec7fb6baca24dc29bf98475219deb44";
const LANGUAGE_TEMPLATES: &[(&str, &str)] = &[
    ("9ec7fb6baca24dc29bf98475219deb44", "mvn is not installed"),
    (
        "fb1dd0c51c7f4917bc9accad3248f972",
        "python3 is not installed",
    ),
    ("759a96348fa140b6b3c8aa04c0113262", "npm is not installed"),
    ("a923223632cb45efb1cf5d808f0b6c6a", "go is not installed"),
    (
        "00d5026a59ae4bb2989f472c4cf47456",
        "dotnet is not installed",
    ),
    ("84e6c183e6d246eca736aa5ed364df60", "cmake is not installed"),
    (
        "52fa46c2906f421ebabba1005e4b25c2",
        "composer is not installed",
    ),
];

async fn world() -> Harness {
    let harness = Harness::new().await;
    runnel_api::sync_system_templates(&harness.store, harness.engine.now())
        .await
        .expect("system templates load");
    harness
}

fn tenant(harness: &Harness) -> String {
    harness.project_a.domain_id.clone()
}

async fn call(
    harness: &Harness,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    harness.call(method, uri, Auth::Token(token), body).await
}

fn ok(reply: &Reply) -> &Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    &reply.body
}

fn templates_uri(harness: &Harness) -> String {
    format!("/v5/{}/api/pipeline-templates", tenant(harness))
}

/// A valid custom template body: one stage, one shell job, a string and an auto-increment variable.
fn custom_body(name: &str) -> Value {
    let definition = json!({"stages": [{"name": "Build", "identifier": "build", "jobs": [
        {"name": "compile", "identifier": "compile", "steps": [
            {"name": "make", "task": "official_shell_plugin",
             "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "echo building ${releaseVersion}"}]}]}]}]});
    json!({
        "name": name, "description": "build only", "language": "Go", "is_system": false,
        "is_show_source": true, "manifest_version": "3.0",
        "variables": [
            {"name": "releaseVersion", "type": "autoIncrement", "value": "2.0.0"},
            {"name": "env", "type": "enum", "value": "dev", "limits": ["dev", "prod"], "is_runtime": true}
        ],
        "definition": definition.to_string(),
    })
}

async fn create_custom(harness: &Harness, token: &str, name: &str) -> String {
    let reply = call(
        harness,
        Method::POST,
        &templates_uri(harness),
        token,
        Some(custom_body(name)),
    )
    .await;
    ok(&reply)["templateId"]
        .as_str()
        .expect("templateId")
        .to_owned()
}

async fn list(harness: &Harness, token: &str, body: Value) -> Value {
    let reply = call(
        harness,
        Method::POST,
        &format!("{}/list", templates_uri(harness)),
        token,
        Some(body),
    )
    .await;
    ok(&reply).clone()
}

async fn detail(harness: &Harness, token: &str, id: &str) -> Reply {
    call(
        harness,
        Method::GET,
        &format!("{}/{id}", templates_uri(harness)),
        token,
        None,
    )
    .await
}

fn ids(list: &Value) -> Vec<String> {
    list["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn system_templates_are_listed_and_cannot_be_changed_or_deleted() {
    let harness = world().await;
    let alice = harness.alice.token.clone();
    let listed = list(&harness, &alice, json!({"is_system": true, "limit": 100})).await;
    assert_eq!(listed["total"], 8, "one per language plus the generic one");
    let item = listed["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|item| item["id"] == JAVA)
        .expect("the Java template");
    assert_eq!(item["is_system"], true);
    assert_eq!(item["language"], "Java");
    assert_eq!(
        item["stages"],
        json!([{"name": "Build", "sequence": 0}, {"name": "Code check", "sequence": 1},
               {"name": "Test", "sequence": 2}, {"name": "Deploy", "sequence": 3}])
    );
    let java = list(&harness, &alice, json!({"language": "java"})).await;
    assert_eq!(ids(&java), [JAVA]);
    let node = list(&harness, &alice, json!({"language": "nodejs"})).await;
    assert_eq!(node["total"], 1, "nodejs finds Node.js");

    let before = ok(&detail(&harness, &alice, JAVA).await).clone();
    assert_eq!(before["is_system"], true);
    assert_eq!(before["domain_id"], Value::Null);
    let edit = call(
        &harness,
        Method::PUT,
        &format!("{}/{JAVA}", templates_uri(&harness)),
        &alice,
        Some(custom_body("hijack")),
    )
    .await;
    assert_eq!(edit.status, StatusCode::BAD_REQUEST, "{}", edit.text);
    assert_eq!(edit.code(), "DEVPIPE.00011204");
    let remove = call(
        &harness,
        Method::DELETE,
        &format!("{}/{JAVA}", templates_uri(&harness)),
        &alice,
        None,
    )
    .await;
    assert_eq!(remove.status, StatusCode::BAD_REQUEST);
    assert_eq!(remove.code(), "DEVPIPE.00011204");
    assert_eq!(
        ok(&detail(&harness, &alice, JAVA).await),
        &before,
        "nothing changed"
    );

    // v3: the same templates, read-only.
    let v3 = call(
        &harness,
        Method::GET,
        "/v3/templates?template_type=pipeline&is_build_in=true&offset=0&limit=5",
        &alice,
        None,
    )
    .await;
    let v3 = ok(&v3);
    assert_eq!(v3["total"], 8);
    assert_eq!(
        (v3["page_number"].clone(), v3["page_size"].clone()),
        (json!(1), json!(5))
    );
    let first = &v3["content"][0];
    assert_eq!(
        (
            first["is_build_in"].clone(),
            first["can_update"].clone(),
            first["can_delete"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(first["region"], "Cloud Pipeline");
    assert_eq!(first["states"]["initial"]["type"], "stage");
    assert!(
        first["parameter"]
            .as_array()
            .expect("parameter")
            .iter()
            .any(|param| param["name"] == "releaseVersion" && param["paramtype"] == "growthparam")
    );

    // Loading again changes nothing; the sync is idempotent.
    let again = runnel_api::sync_system_templates(&harness.store, harness.engine.now())
        .await
        .expect("sync");
    assert_eq!(again.unchanged, 8);
    assert!(again.inserted.is_empty() && again.upgraded.is_empty() && again.removed.is_empty());
}

#[tokio::test]
async fn custom_templates_are_created_read_updated_and_deleted_by_who_may() {
    let harness = world().await;
    let (alice, dave, vera) = (
        harness.alice.token.clone(),
        harness.dave.token.clone(),
        harness.vera.token.clone(),
    );
    let id = create_custom(&harness, &dave, "go-build").await;
    let shown = detail(&harness, &dave, &id).await;
    let shown = ok(&shown);
    assert_eq!(shown["name"], "go-build");
    assert_eq!(shown["is_system"], false);
    assert_eq!(
        shown["is_collect"], "false",
        "a string in this response (§9.2)"
    );
    assert_eq!(shown["domain_id"], tenant(&harness).as_str());
    assert_eq!(shown["creator_id"], harness.dave.id.as_str());
    assert_eq!(shown["variables"][0]["type"], "autoIncrement");
    let definition: Value =
        serde_json::from_str(shown["definition"].as_str().expect("definition")).expect("json");
    assert_eq!(definition["stages"][0]["jobs"][0]["identifier"], "compile");
    assert!(
        definition["stages"][0]["jobs"][0]["steps"][0]["identifier"].is_string(),
        "generated step identifier"
    );

    // Vera is only a viewer: she may read, not author or delete.
    ok(&detail(&harness, &vera, &id).await);
    let refused = call(
        &harness,
        Method::POST,
        &templates_uri(&harness),
        &vera,
        Some(custom_body("nope")),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "DEVPIPE.00011405")
    );
    let refused = call(
        &harness,
        Method::DELETE,
        &format!("{}/{id}", templates_uri(&harness)),
        &vera,
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The creator updates; camelCase spellings are read too.
    let mut update = custom_body("go-build-2");
    update
        .as_object_mut()
        .expect("body")
        .remove("is_show_source");
    update["isShowSource"] = json!(false);
    let updated = call(
        &harness,
        Method::PUT,
        &format!("{}/{id}", templates_uri(&harness)),
        &dave,
        Some(update),
    )
    .await;
    assert_eq!(ok(&updated)["templateId"], id.as_str());
    let shown = detail(&harness, &dave, &id).await;
    assert_eq!(ok(&shown)["name"], "go-build-2");
    assert_eq!(ok(&shown)["is_show_source"], false);

    // Bad input: 400, nothing stored.
    let count = list(&harness, &dave, json!({"is_system": false})).await["total"].clone();
    let manual = json!({"stages": [{"name": "Deploy", "pre": [{"task": "official_devcloud_manualTrigger"}],
        "jobs": [{"name": "ship", "steps": [{"task": "official_shell_plugin",
            "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "true"}]}]}]}]});
    let cases = [
        (
            json!({"definition": manual.to_string()}),
            "definition.stages[0].pre[0].task",
        ),
        (json!({"language": "Cobol"}), "language"),
        (json!({"is_system": true}), "is_system"),
        (json!({"name": ""}), "name"),
        (
            json!({"variables": [{"name": "token", "value": "hunter2", "is_secret": true}]}),
            "variables[0].value",
        ),
        (
            json!({"definition": "{\"stages\": [{\"jobs\": []}]}"}),
            "definition.stages[0].name",
        ),
        (
            json!({"domain_id": harness.project_b.id.clone()}),
            "domain_id",
        ),
    ];
    for (change, field) in cases {
        let mut body = custom_body("bad");
        for (key, value) in change.as_object().expect("object") {
            body[key] = value.clone();
        }
        let reply = call(
            &harness,
            Method::POST,
            &templates_uri(&harness),
            &dave,
            Some(body),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "DEVPIPE.00010001", "{field}");
        assert!(
            reply.body["error_msg"]
                .as_str()
                .expect("msg")
                .contains(field),
            "{field}: {}",
            reply.text
        );
        assert!(!reply.text.contains("hunter2"), "secrets are never echoed");
    }
    assert_eq!(
        list(&harness, &dave, json!({"is_system": false})).await["total"],
        count,
        "nothing was stored"
    );

    // Another account's path, unknown ids.
    let foreign = call(
        &harness,
        Method::GET,
        &format!("/v5/{}/api/pipeline-templates/{id}", harness.project_a.id),
        &dave,
        None,
    )
    .await;
    assert_eq!(
        (foreign.status, foreign.code()),
        (StatusCode::FORBIDDEN, "DEVPIPE.00011405")
    );
    let missing = detail(&harness, &dave, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011203")
    );

    // A project admin (Alice) may delete Dave's template; then it is gone.
    let deleted = call(
        &harness,
        Method::DELETE,
        &format!("{}/{id}", templates_uri(&harness)),
        &alice,
        None,
    )
    .await;
    assert_eq!(ok(&deleted)["templateId"], id.as_str());
    let gone = detail(&harness, &dave, &id).await;
    assert_eq!(gone.code(), "DEVPIPE.00011203");
}

#[tokio::test]
async fn favorites_are_per_user_and_shown_in_lists() {
    let harness = world().await;
    let (alice, dave) = (harness.alice.token.clone(), harness.dave.token.clone());
    let favorite =
        |id: &str, flag: bool| format!("{}/{id}/favorite?flag={flag}", templates_uri(&harness));
    let reply = call(&harness, Method::POST, &favorite(JAVA, true), &alice, None).await;
    assert_eq!(ok(&reply)["success"], true);
    let is_collect = |list: &Value| -> bool {
        list["templates"]
            .as_array()
            .expect("templates")
            .iter()
            .find(|item| item["id"] == JAVA)
            .expect("java")["is_collect"]
            .as_bool()
            .expect("bool")
    };
    assert!(is_collect(
        &list(&harness, &alice, json!({"limit": 100})).await
    ));
    assert!(
        !is_collect(&list(&harness, &dave, json!({"limit": 100})).await),
        "Dave did not favorite it"
    );
    assert_eq!(
        ok(&detail(&harness, &alice, JAVA).await)["is_collect"],
        "true"
    );
    assert_eq!(
        ok(&detail(&harness, &dave, JAVA).await)["is_collect"],
        "false"
    );
    assert_eq!(
        ids(&list(&harness, &alice, json!({"is_collect": true})).await),
        [JAVA]
    );
    let v3 = call(
        &harness,
        Method::GET,
        &format!("/v3/templates/{JAVA}?template_type=pipeline"),
        &alice,
        None,
    )
    .await;
    assert_eq!(ok(&v3)["is_watch"], true);
    assert!(
        ok(&v3).get("can_update").is_none(),
        "detail has no list-only fields"
    );

    ok(&call(&harness, Method::POST, &favorite(JAVA, false), &alice, None).await);
    assert!(!is_collect(
        &list(&harness, &alice, json!({"limit": 100})).await
    ));
    let missing_flag = call(
        &harness,
        Method::POST,
        &format!("{}/{JAVA}/favorite", templates_uri(&harness)),
        &alice,
        None,
    )
    .await;
    assert_eq!(missing_flag.status, StatusCode::BAD_REQUEST);
    let unknown = call(
        &harness,
        Method::POST,
        &favorite("0123456789abcdef0123456789abcdef", true),
        &alice,
        None,
    )
    .await;
    assert_eq!(unknown.code(), "DEVPIPE.00011203");
}

#[tokio::test]
async fn a_copy_of_a_system_template_is_an_editable_custom_template() {
    let harness = world().await;
    let dave = harness.dave.token.clone();
    let copied = call(
        &harness,
        Method::POST,
        &format!("{}/{GENERIC}/copy", templates_uri(&harness)),
        &dave,
        None,
    )
    .await;
    let copy_id = ok(&copied)["templateId"].as_str().expect("id").to_owned();
    assert_ne!(copy_id, GENERIC);
    let original = ok(&detail(&harness, &dave, GENERIC).await).clone();
    let copy = ok(&detail(&harness, &dave, &copy_id).await).clone();
    assert_eq!(copy["is_system"], false);
    assert_eq!(
        copy["name"],
        format!("{}-copy", original["name"].as_str().expect("name"))
    );
    assert_eq!(copy["definition"], original["definition"]);
    assert_eq!(copy["variables"], original["variables"]);
    assert_eq!(copy["creator_id"], harness.dave.id.as_str());

    let mut edit = custom_body("my-generic");
    edit["definition"] = original["definition"].clone();
    let edited = call(
        &harness,
        Method::PUT,
        &format!("{}/{copy_id}", templates_uri(&harness)),
        &dave,
        Some(edit),
    )
    .await;
    ok(&edited);
    assert_eq!(
        ok(&detail(&harness, &dave, &copy_id).await)["name"],
        "my-generic"
    );
    assert_eq!(
        ok(&detail(&harness, &dave, GENERIC).await),
        &original,
        "the system template is untouched"
    );
    let deleted = call(
        &harness,
        Method::DELETE,
        &format!("{}/{copy_id}", templates_uri(&harness)),
        &dave,
        None,
    )
    .await;
    ok(&deleted);
}

/// The first `bash` on the test process's PATH.
fn bash() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("bash"))
        .find(|candidate| candidate.is_file())
        .expect("bash is installed")
}

/// Runs a claimed job like the worker: each shell step with bash in one fresh workspace, with
/// the job's and step's environment and PATH = `path`; steps after a failure are not run.
async fn execute(harness: &Harness, dispatch: &Dispatch, path: &Path) -> JobStatus {
    let workspace = tempfile::tempdir().expect("workspace");
    let mut job_status = JobStatus::Completed;
    for (step, step_run_id) in dispatch.prepared.steps.iter().zip(&dispatch.step_run_ids) {
        let PreparedStepKind::Shell { script } = &step.kind else {
            panic!("only shell steps in these templates: {step:?}");
        };
        let report = |status, exit_code| StepReport {
            step_run_id: step_run_id.clone(),
            status,
            exit_code,
            message: None,
            at: harness.engine.now(),
            started_at: None,
            outputs: Vec::new(),
        };
        harness
            .engine
            .report_step(&dispatch.token, report(StepStatus::Running, None))
            .await
            .expect("report");
        let output = std::process::Command::new(bash())
            .args([
                "--noprofile",
                "--norc",
                "-e",
                "-o",
                "pipefail",
                "-c",
                script,
            ])
            .current_dir(workspace.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", workspace.path())
            .env("WORKSPACE", workspace.path())
            .envs(dispatch.prepared.env.iter().cloned())
            .envs(step.env.iter().cloned())
            .output()
            .expect("bash runs");
        let mut log = output.stdout.clone();
        log.extend_from_slice(&output.stderr);
        if !log.is_empty() {
            harness
                .engine
                .append_log(&dispatch.token, step_run_id, 0, log)
                .await
                .expect("log");
        }
        let succeeded = output.status.success();
        let status = if succeeded {
            StepStatus::Completed
        } else {
            StepStatus::Failed
        };
        harness
            .engine
            .report_step(&dispatch.token, report(status, output.status.code()))
            .await
            .expect("report");
        if !succeeded {
            eprintln!(
                "step {} failed: {}{}",
                step.name,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            job_status = JobStatus::Failed;
            break;
        }
    }
    let message = (job_status == JobStatus::Failed).then(|| "a step failed".to_owned());
    harness
        .engine
        .complete(
            &dispatch.token,
            JobOutcome {
                status: job_status,
                message,
            },
        )
        .await
        .expect("complete");
    job_status
}

/// Claims and executes jobs until the run is final; returns the final detail.
async fn run_to_end(harness: &Harness, pipeline_id: &str, run_id: &str, path: &Path) -> Value {
    let is_final = |detail: &Value| {
        ["COMPLETED", "FAILED", "CANCELED"].contains(&detail["status"].as_str().unwrap_or(""))
    };
    loop {
        let detail = harness
            .wait_for(
                pipeline_id,
                run_id,
                "a queued job or the run's end",
                |detail| {
                    is_final(detail)
                        || detail["stages"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .flat_map(|stage| stage["jobs"].as_array().into_iter().flatten())
                            .any(|job| job["status"] == "QUEUED")
                },
            )
            .await;
        if is_final(&detail) {
            return detail;
        }
        let dispatch = harness.claim().await;
        execute(harness, &dispatch, path).await;
    }
}

async fn create_from_template(
    harness: &Harness,
    template_id: &str,
    name: &str,
    extra: Value,
) -> String {
    let mut body = json!({"name": name, "is_publish": false, "sources": []});
    for (key, value) in extra.as_object().expect("object") {
        body[key] = value.clone();
    }
    let reply = call(
        harness,
        Method::POST,
        &format!(
            "/v5/{}/api/pipeline-templates/{template_id}/create-pipeline",
            harness.project_a.id
        ),
        &harness.dave.token,
        Some(body),
    )
    .await;
    ok(&reply)["pipeline_id"]
        .as_str()
        .expect("pipeline_id")
        .to_owned()
}

async fn parameter(harness: &Harness, run_id: &str, name: &str) -> String {
    harness
        .store
        .run_parameters(run_id)
        .await
        .expect("parameters")
        .into_iter()
        .find(|parameter| parameter.name == name)
        .map(|parameter| parameter.value)
        .unwrap_or_else(|| panic!("{name} in the run's parameters"))
}

#[tokio::test]
async fn a_pipeline_created_from_the_generic_template_runs_to_completed() {
    let harness = world().await;
    let pipeline = create_from_template(
        &harness,
        GENERIC,
        "from-generic",
        json!({"description": "made from a template", "variables": [{"name": "releaseVersion", "value": "3.1.0"}]}),
    )
    .await;
    let shown = call(
        &harness,
        Method::GET,
        &format!("/v5/{}/api/pipelines/{pipeline}", harness.project_a.id),
        &harness.dave.token,
        None,
    )
    .await;
    let shown = ok(&shown);
    assert_eq!(shown["from_source"], 1);
    assert_eq!(shown["description"], "made from a template");
    let release = shown["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|variable| variable["name"] == "releaseVersion")
        .expect("releaseVersion");
    assert_eq!(
        (release["type"].clone(), release["value"].clone()),
        (json!("autoIncrement"), json!("3.1.0"))
    );

    let empty_path = tempfile::tempdir().expect("empty PATH");
    let run_id = harness.run(&pipeline, json!({})).await["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let detail = run_to_end(&harness, &pipeline, &run_id, empty_path.path()).await;
    assert_eq!(detail["status"], "COMPLETED", "{detail:#}");
    let stages: Vec<&str> = detail["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|stage| stage["name"].as_str().expect("name"))
        .collect();
    assert_eq!(stages, ["Build", "Code check", "Test", "Deploy"]);
    assert_eq!(
        parameter(&harness, &run_id, "releaseVersion").await,
        "3.1.0"
    );

    // The deploy step's log shows the version it released.
    let deploy = &detail["stages"][3]["jobs"][0];
    let step = &deploy["steps"][0];
    let log = call(
        &harness,
        Method::POST,
        &format!(
            "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}/logs",
            harness.project_a.id,
            deploy["id"].as_str().expect("job"),
            step["id"].as_str().expect("step")
        ),
        &harness.dave.token,
        Some(json!({"start_offset": 0, "end_offset": 0, "limit": 500, "sort": "asc"})),
    )
    .await;
    let text = ok(&log)["log"].as_str().expect("log").to_owned();
    assert!(
        text.contains("Release 3.1.0 of from-generic (run 1)."),
        "{text}"
    );
    assert!(text.contains("nothing deployed"), "{text}");
}

#[tokio::test]
async fn language_templates_fail_with_a_readable_log_where_their_tools_are_missing() {
    let harness = world().await;
    let empty_path = tempfile::tempdir().expect("empty PATH");
    for (index, (template_id, expected)) in LANGUAGE_TEMPLATES.iter().enumerate() {
        let pipeline =
            create_from_template(&harness, template_id, &format!("lang-{index}"), json!({})).await;
        let run_id = harness.run(&pipeline, json!({})).await["pipeline_run_id"]
            .as_str()
            .expect("run")
            .to_owned();
        let detail = run_to_end(&harness, &pipeline, &run_id, empty_path.path()).await;
        assert_eq!(detail["status"], "FAILED", "{template_id}");
        let build = &detail["stages"][0]["jobs"][0];
        assert_eq!(build["status"], "FAILED");
        assert_eq!(
            detail["stages"][1]["status"], "SKIPPED",
            "later stages do not run"
        );
        let failed_step = build["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|step| step["status"] == "FAILED")
            .expect("a failed step");
        let log = call(
            &harness,
            Method::POST,
            &format!(
                "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}/logs",
                harness.project_a.id,
                build["id"].as_str().expect("job"),
                failed_step["id"].as_str().expect("step")
            ),
            &harness.dave.token,
            Some(json!({"start_offset": 0, "end_offset": 0, "limit": 500, "sort": "asc"})),
        )
        .await;
        let text = ok(&log)["log"].as_str().expect("log").to_owned();
        assert!(
            text.contains(expected) && text.contains("install"),
            "{template_id}: {text}"
        );
    }
}

#[tokio::test]
async fn auto_increment_grows_by_one_per_run_and_never_repeats_under_concurrent_runs() {
    let harness = Arc::new(world().await);
    let pipeline = create_from_template(&harness, GENERIC, "counted", json!({})).await;
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let harness = Arc::clone(&harness);
        let pipeline = pipeline.clone();
        runs.spawn(async move {
            harness.run(&pipeline, json!({})).await["pipeline_run_id"]
                .as_str()
                .expect("run")
                .to_owned()
        });
    }
    let mut values = BTreeSet::new();
    while let Some(run_id) = runs.join_next().await {
        let run_id = run_id.expect("task");
        assert!(
            values.insert(parameter(&harness, &run_id, "releaseVersion").await),
            "no value twice"
        );
    }
    let expected: BTreeSet<String> = (0..8).map(|patch| format!("1.0.{patch}")).collect();
    assert_eq!(values, expected, "one step per run, none skipped");
}

/// The seed's v3 example with this world's project.
fn seed_task(harness: &Harness, name: &str) -> Value {
    let mut body: Value = serde_json::from_str(SEED_BODY).expect("seed body");
    body["workflow"]["project_id"] = json!(harness.project_a.id);
    body["workflow"]["name"] = json!(name);
    body
}

/// The request example of the seed document (`POST /v3/templates/task`), verbatim but for
/// `project_id` and `name`, which the test sets.
const SEED_BODY: &str = r#"{ "flow" : { "initial" : { "state_3" : "always" }, "state_3" : { "state_4" : "always" }, "state_4" : { "state_5" : "always", "Task_1" : "always", "Task_2" : "always" }, "state_5" : { "final" : "always" } }, "states" : { "initial" : { "type" : "stage", "name" : "initial", "module_or_template_id" : null, "module_or_template_name" : null, "display_name" : "Initial", "dsl_method" : "initial", "parameters" : { "display" : "hidden" }, "params" : null, "is_manual_mxecution" : false, "execution_mode" : "parallel" }, "state_3" : { "type" : "stage", "name" : "state_3", "module_or_template_id" : null, "module_or_template_name" : null, "display_name" : "Source", "dsl_method" : "source", "parameters" : null, "params" : null, "is_manual_execution" : false, "execution_mode" : "parallel" }, "Task_1" : { "type" : "task", "name" : "Task_1", "module_or_template_id" : "00012", "module_or_template_name" : "Maven", "display_name" : "Build_Task", "dsl_method" : "buildJob", "parameters" : { "__repository__" : { "repo_name" : "fdfdfdf", "url" : "git@example.com:CloudPipelineTest-Copy00001/fdfdfdf.git" } }, "params" : null, "is_manual_execution" : false, "execution_mode" : null, "job_parameter_palidate" : true, "is_show_code_hub_url" : false, "is_execute" : true, "job_id" : "00012", "job_name" : "Maven", "project_id" : "4719b59466624abfbae0f83c3ce3a0dc" }, "Task_2" : { "type" : "task", "name" : "Task_2", "module_or_template_id" : "d7dffaefb6d94c63a09cf141668356c7", "module_or_template_name" : "codecheck_template", "display_name" : "Code_Check_Task", "dsl_method" : "codeCheck", "parameters" : { "language" : { "disable" : null, "name" : "Java", "display_name" : "Java", "id" : "782aade71ffb4ab780303555eb2e4825", "language" : "java" }, "codeBranch" : "master", "__repository__" : { "repo_name" : "fdfdfdf", "url" : "git@example.com:CloudPipelineTest-Copy00001/fdfdfdf.git" } }, "params" : null, "is_manual_execution" : false, "execution_mode" : null, "job_parameter_palidate" : true, "is_show_code_hub_url" : false, "is_execute" : true, "job_id" : "d7dffaefb6d94c63a09cf141668356c7", "job_name" : "codecheck_template", "project_id" : "4719b59466624abfbae0f83c3ce3a0dc" }, "state_4" : { "type" : "stage", "name" : "state_4", "module_or_template_id" : null, "module_or_template_name" : null, "display_name" : "Build_and_Check", "dsl_method" : "build", "parameters" : null, "params" : null, "is_manual_mxecution" : false, "execution_mode" : "parallel" }, "state_5" : { "type" : "stage", "name" : "state_5", "module_or_template_id" : null, "module_or_template_name" : null, "display_name" : "Release", "dsl_method" : "release", "parameters" : null, "params" : null, "is_manual_mxecution" : false, "execution_mode" : "parallel" }, "final" : { "type" : "stage", "name" : "final", "module_or_template_id" : null, "module_or_template_name" : null, "display_name" : "Final", "dsl_method" : "final", "parameters" : null, "params" : null, "is_manual_mxecution" : false, "execution_mode" : "parallel" } }, "workflow" : { "parameter" : [ { "name" : "serviceName", "value" : "pipeline-20201229165622", "description" : "this is a text type param", "paramtype" : "normalparam", "display_name" : null, "isStatic" : true, "isDefault" : true, "constraints" : null }, { "name" : "releaseVersion", "value" : "1.0.0", "description" : "this is a growth type param", "paramtype" : "growthparam", "display_name" : null, "isStatic" : false, "isDefault" : true, "constraints" : null } ], "source" : [ { "scmType" : "codehub", "codeHubName" : "fdfdfdf", "hookFlag" : false, "branches" : [ ], "defaultBranch" : "master", "branch" : "", "codeHubId" : "5224040", "gitUrl" : "git@example.com:CloudPipelineTest-Copy00001/fdfdfdf.git", "webUrl" : "https://example.com/codehub/project/bc97c4d99c7d4f98bb6cd104a77fddd6/codehub/140000127/home", "branchList" : [ "master" ] } ], "name" : "pipeline-123123", "description" : "", "project_id" : "bc97c4d99c7d4f98bb6cd104a77fddd6", "project_name" : "CloudPipelineTest-Copy" }, "changeInfo" : null }"#;

async fn create_task(harness: &Harness, body: Value) -> Reply {
    call(
        harness,
        Method::POST,
        "/v3/templates/task",
        &harness.dave.token,
        Some(body),
    )
    .await
}

async fn task_status(harness: &Harness, task_id: &str) -> Value {
    let reply = call(
        harness,
        Method::GET,
        &format!("/v3/templates/{task_id}/status"),
        &harness.dave.token,
        None,
    )
    .await;
    ok(&reply).clone()
}

#[tokio::test]
async fn the_seed_v3_example_creates_a_pipeline_whose_run_completes() {
    let harness = world().await;
    let created = create_task(&harness, seed_task(&harness, "pipeline-123123")).await;
    let task_id = ok(&created)["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    assert_eq!(task_id.len(), 32);
    let status = task_status(&harness, &task_id).await;
    assert_eq!(status["task_status"], "succeeded");
    assert_eq!(status["pipeline_name"], "pipeline-123123");
    let pipeline = status["pipeline_id"].as_str().expect("pipeline").to_owned();
    assert!(
        status["pipeline_url"]
            .as_str()
            .expect("url")
            .ends_with(&pipeline)
    );

    let shown = call(
        &harness,
        Method::GET,
        &format!("/v5/{}/api/pipelines/{pipeline}", harness.project_a.id),
        &harness.dave.token,
        None,
    )
    .await;
    let shown = ok(&shown);
    let source = &shown["sources"][0]["params"];
    assert_eq!(
        source["ssh_git_url"],
        "git@example.com:CloudPipelineTest-Copy00001/fdfdfdf.git"
    );
    assert!(
        source.get("git_url").is_none(),
        "v5 git_url is the HTTPS URL the server clones"
    );
    assert_eq!(
        (
            source["repo_name"].clone(),
            source["default_branch"].clone()
        ),
        (json!("fdfdfdf"), json!("master"))
    );
    let variables = shown["variables"].as_array().expect("variables");
    assert_eq!(variables[0]["type"], "string");
    assert_eq!(variables[1]["type"], "autoIncrement");
    assert_eq!(variables[1]["is_runtime"], true, "isStatic false");

    let empty_path = tempfile::tempdir().expect("empty PATH");
    let run_id = harness.run(&pipeline, json!({})).await["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let detail = run_to_end(&harness, &pipeline, &run_id, empty_path.path()).await;
    assert_eq!(detail["status"], "COMPLETED", "{detail:#}");
    let jobs: Vec<&str> = detail["stages"][0]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["name"].as_str().expect("name"))
        .collect();
    assert_eq!(jobs, ["Build_Task", "Code_Check_Task"]);

    // The same name again: 400 at once (creation is checked within the request).
    let again = create_task(&harness, seed_task(&harness, "pipeline-123123")).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011304")
    );
}

#[tokio::test]
async fn a_templates_v3_view_sent_back_creates_its_real_jobs() {
    let harness = world().await;
    let view = call(
        &harness,
        Method::GET,
        &format!("/v3/templates/{GENERIC}?template_type=pipeline"),
        &harness.dave.token,
        None,
    )
    .await;
    let view = ok(&view).clone();
    assert_eq!(view["template_id"], GENERIC);
    assert_eq!(view["is_build_in"], true);
    let body = json!({
        "flow": view["flow"], "states": view["states"],
        "workflow": {"name": "via-v3", "project_id": harness.project_a.id, "project_name": "alpha",
            "parameter": [{"name": "releaseVersion", "value": "7.0.0", "description": "", "param_type": "growthparam", "is_static": false, "is_default": true}],
            "source": []}
    });
    let created = create_task(&harness, body).await;
    let task_id = ok(&created)["task_id"].as_str().expect("task").to_owned();
    let pipeline = task_status(&harness, &task_id).await["pipeline_id"]
        .as_str()
        .expect("pipeline")
        .to_owned();
    let empty_path = tempfile::tempdir().expect("empty PATH");
    let run_id = harness.run(&pipeline, json!({})).await["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let detail = run_to_end(&harness, &pipeline, &run_id, empty_path.path()).await;
    assert_eq!(detail["status"], "COMPLETED", "{detail:#}");
    let deploy = &detail["stages"][3]["jobs"][0];
    let log = call(
        &harness,
        Method::POST,
        &format!(
            "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}/logs",
            harness.project_a.id,
            deploy["id"].as_str().expect("job"),
            deploy["steps"][0]["id"].as_str().expect("step")
        ),
        &harness.dave.token,
        Some(json!({"start_offset": 0, "end_offset": 0, "limit": 500, "sort": "asc"})),
    )
    .await;
    assert!(
        ok(&log)["log"]
            .as_str()
            .expect("log")
            .contains("Release 7.0.0 of via-v3"),
        "the template's own deploy script ran"
    );
}

#[tokio::test]
async fn v3_requests_with_bad_input_change_nothing() {
    let harness = world().await;
    let mut cycle = seed_task(&harness, "cyclic");
    cycle["flow"]["state_5"] = json!({"state_4": "always"});
    let reply = create_task(&harness, cycle).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00010001")
    );
    assert!(reply.text.contains("cycle"), "{}", reply.text);

    let mut manual = seed_task(&harness, "manual");
    manual["states"]["state_5"]["is_manual_mxecution"] = json!(true);
    let reply = create_task(&harness, manual).await;
    assert!(reply.text.contains("stage admission"), "{}", reply.text);

    let mut foreign = seed_task(&harness, "foreign");
    foreign["workflow"]["project_id"] = json!(harness.project_b.id);
    let reply = create_task(&harness, foreign).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011412"),
        "Dave is not in project B"
    );

    let viewer = call(
        &harness,
        Method::POST,
        "/v3/templates/task",
        &harness.vera.token,
        Some(seed_task(&harness, "viewer")),
    )
    .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);

    let mut missing = seed_task(&harness, "missing");
    missing["workflow"]
        .as_object_mut()
        .expect("workflow")
        .remove("name");
    let reply = create_task(&harness, missing).await;
    assert!(
        reply.text.contains("workflow.name: is required"),
        "{}",
        reply.text
    );

    let pipelines = call(
        &harness,
        Method::POST,
        &format!("/v5/{}/api/pipelines/list", harness.project_a.id),
        &harness.dave.token,
        Some(json!({})),
    )
    .await;
    assert_eq!(ok(&pipelines)["total"], 0, "no pipeline was created");

    let unknown = call(
        &harness,
        Method::GET,
        "/v3/templates/0123456789abcdef0123456789abcdef/status",
        &harness.dave.token,
        None,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00010001")
    );
    // Another user's task is not Carol's to see: she is not in project A.
    let created = create_task(&harness, seed_task(&harness, "mine")).await;
    let task_id = ok(&created)["task_id"].as_str().expect("task").to_owned();
    let other = call(
        &harness,
        Method::GET,
        &format!("/v3/templates/{task_id}/status"),
        &harness.carol.token,
        None,
    )
    .await;
    assert_eq!(other.code(), "DEVPIPE.00010001");
    let member = call(
        &harness,
        Method::GET,
        &format!("/v3/templates/{task_id}/status"),
        &harness.alice.token,
        None,
    )
    .await;
    assert_eq!(
        ok(&member)["task_status"],
        "succeeded",
        "a member of the project sees it"
    );

    for (query, field) in [
        ("is_build_in=true", "template_type"),
        ("template_type=pipeline", "is_build_in"),
        ("template_type=job&is_build_in=true", "template_type"),
        ("template_type=pipeline&is_build_in=true&limit=101", "limit"),
        ("template_type=pipeline&is_build_in=true&sort=size", "sort"),
    ] {
        let reply = call(
            &harness,
            Method::GET,
            &format!("/v3/templates?{query}"),
            &harness.dave.token,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.text.contains(field), "{query}: {}", reply.text);
    }
}

#[tokio::test]
async fn the_v3_template_list_pages_filters_and_sorts() {
    let harness = world().await;
    let dave = harness.dave.token.clone();
    for name in ["beta-ci", "alpha-ci", "gamma-build"] {
        create_custom(&harness, &dave, name).await;
    }
    let names = |reply: &Reply| -> Vec<String> {
        ok(reply)["content"]
            .as_array()
            .expect("content")
            .iter()
            .map(|item| item["template_name"].as_str().expect("name").to_owned())
            .collect()
    };
    let reply = call(&harness, Method::GET, "/v3/templates?template_type=pipeline&is_build_in=false&name=CI&sort=template_name&asc=true", &dave, None).await;
    assert_eq!(names(&reply), ["alpha-ci", "beta-ci"]);
    assert_eq!(ok(&reply)["total"], 2);
    let item = &ok(&reply)["content"][0];
    assert_eq!(
        (item["can_update"].clone(), item["can_delete"].clone()),
        (json!(true), json!(true)),
        "Dave created it"
    );
    assert_eq!(item["user_name"], "dave");
    assert_eq!(item["domain_name"], "acme");
    assert_eq!(item["region"], "local-1");
    let vera = call(
        &harness,
        Method::GET,
        "/v3/templates?template_type=pipeline&is_build_in=false&name=alpha",
        &harness.vera.token,
        None,
    )
    .await;
    assert_eq!(
        ok(&vera)["content"][0]["can_update"],
        false,
        "a viewer cannot change Dave's template"
    );
    let reply = call(&harness, Method::GET, "/v3/templates?template_type=pipeline&is_build_in=false&offset=2&limit=2&sort=template_name&asc=true", &dave, None).await;
    assert_eq!(names(&reply), ["gamma-build"]);
    assert_eq!(ok(&reply)["page_number"], 2);
}

#[tokio::test]
async fn the_older_v3_template_list_filters_pages_and_sorts_like_the_v5_list() {
    let harness = world().await;
    let dave = harness.dave.token.clone();
    for name in ["beta-ci", "alpha-ci", "gamma-build"] {
        create_custom(&harness, &dave, name).await;
    }
    let legacy = |body: Value| {
        let harness = &harness;
        let dave = dave.clone();
        async move {
            call(
                harness,
                Method::POST,
                "/v3/pipeline/templates/list",
                &dave,
                Some(body),
            )
            .await
        }
    };
    let names = |reply: &Reply| -> Vec<String> {
        ok(reply)["templates"]
            .as_array()
            .expect("templates")
            .iter()
            .map(|item| item["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let reply = legacy(
        json!({"is_system": false, "template_name": "CI", "sort_key": "name", "sort_dir": "asc"}),
    )
    .await;
    assert_eq!(names(&reply), ["alpha-ci", "beta-ci"]);
    assert_eq!(
        (
            ok(&reply)["offset"].clone(),
            ok(&reply)["limit"].clone(),
            ok(&reply)["total"].clone()
        ),
        (json!(0), json!(10), json!(2))
    );
    // The same page as the v5 list of the caller's account.
    let v5 = list(
        &harness,
        &dave,
        json!({"is_system": false, "name": "CI", "sort_key": "name", "sort_dir": "asc"}),
    )
    .await;
    assert_eq!(ok(&reply)["templates"], v5["templates"]);
    // camelCase spellings, string numbers and paging.
    let reply = legacy(json!({"isSystem": "false", "templateName": "", "offset": "2", "limit": 2, "sortKey": "name", "sortDir": "ASC"})).await;
    assert_eq!(names(&reply), ["gamma-build"]);
    // No body: system and custom templates, newest first.
    let reply = call(
        &harness,
        Method::POST,
        "/v3/pipeline/templates/list",
        &dave,
        None,
    )
    .await;
    let everything = ok(&reply)["total"].as_i64().expect("total");
    assert!(everything > 3, "{}", reply.text);
    let system = legacy(json!({"is_system": true})).await;
    assert_eq!(ok(&system)["total"].as_i64(), Some(everything - 3));
    // Bad input is a 400 naming the field.
    for (body, field) in [
        (json!({"limit": 101}), "limit"),
        (json!({"offset": -1}), "offset"),
        (json!({"sort_key": "color"}), "sort_key"),
        (json!({"sort_dir": "up"}), "sort_dir"),
        (json!({"is_system": "maybe"}), "is_system"),
    ] {
        let reply = legacy(body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
            "{}",
            reply.text
        );
        assert!(reply.text.contains(field), "{}", reply.text);
    }
    // Without credentials: 401, as every v3 route.
    let reply = harness
        .call(
            Method::POST,
            "/v3/pipeline/templates/list",
            Auth::None,
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
}
