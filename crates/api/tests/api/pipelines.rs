//! Pipelines: create (identifiers generated, definition kept verbatim), detail (secrets
//! masked), update (a new version), delete, list with the latest run; secrets never leave.

use crate::harness::{Auth, Harness, shell, two_stages};
use axum::http::{Method, StatusCode};
use runnel_store::PipelineStore;
use serde_json::{Value, json};

const CANARY: &str = "canary-7f3a9c1e-secret";
const HOOK_CANARY: &str = "canary-hook-51d0b2";

fn secret_extras() -> Value {
    json!({
        "description": "build and test",
        "variables": [
            {"name": "env", "sequence": 1, "type": "enum", "value": "dev", "is_runtime": true, "limits": ["dev", "prod"]},
            {"name": "TOKEN", "sequence": 2, "type": "string", "value": CANARY, "is_secret": true, "is_runtime": true}
        ],
        "concurrency_control": {"concurrency_number": 2, "exceed_action": "QUEUE", "enable": true},
        "schedules": [{"type": "fixed", "name": "nightly", "enable": true, "days_of_week": [1, 2], "time_zone": "China Standard Time", "start_time": "02:00"}],
        "triggers": [{"git_type": "codehub", "git_url": "https://git.example.com/a.git", "security_token": HOOK_CANARY,
                      "events": [{"type": "push", "enable": true}]}],
        "sources": [{"type": "code", "params": {"git_type": "codehub", "alias": "app", "git_url": "https://git.example.com/a.git", "default_branch": "main"}}],
        "agency_name": "deployer",
        "execution_plans": [{"id": "plan-1"}]
    })
}

#[tokio::test]
async fn create_detail_update_and_delete_a_pipeline() {
    let harness = Harness::new().await;
    let definition = json!({"stages": [{"name": "Build", "jobs": [{"name": "compile", "steps": [shell("make")]}]}]});
    let id = harness
        .create_pipeline("demo-ci", definition, secret_extras())
        .await;
    assert_eq!(id.len(), 32);
    let uri = format!("/v5/{}/api/pipelines/{id}", harness.project_a.id);

    let detail = harness
        .call(Method::GET, &uri, Auth::Token(&harness.vera.token), None)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    let body = &detail.body;
    assert_eq!(body["name"], "demo-ci");
    assert_eq!(body["description"], "build and test");
    assert_eq!(body["creator_name"], "alice");
    assert_eq!(body["region"], "local-1");
    assert_eq!(body["manifest_version"], "3.0");
    assert_eq!(body["create_time"], 1_750_000_000_000_i64);
    assert_eq!(body["concurrency_control"]["concurrency_number"], 2);
    assert_eq!(body["concurrency_control"]["pipeline_id"], id.as_str());
    assert_eq!(body["schedules"][0]["name"], "nightly");
    assert_eq!(body["triggers"][0]["security_token"], "******");
    assert_eq!(body["agency_name"], "deployer");
    assert_eq!(body["execution_plans"][0]["id"], "plan-1");
    assert_eq!(body["sources"][0]["params"]["alias"], "app");
    assert_eq!(body["variables"][1]["value"], "******");
    assert_eq!(body["variables"][0]["limits"], json!(["dev", "prod"]));
    assert_eq!(
        body["permissions"],
        json!({"view": true, "execute": false, "update": false, "delete": false})
    );
    assert_eq!(
        body["detail_url"],
        format!(
            "https://ci.example.com/ui/projects/{}/pipelines/{id}",
            harness.project_a.id
        )
    );
    assert!(!detail.text.contains(CANARY) && !detail.text.contains(HOOK_CANARY));
    // Identifiers were generated (§11.6) and the definition is a JSON string.
    let stored: Value =
        serde_json::from_str(body["definition"].as_str().expect("string")).expect("json");
    let stage_id = stored["stages"][0]["identifier"]
        .as_str()
        .expect("stage id");
    assert!(
        stage_id.starts_with("1750000000000") && stage_id.len() == 49,
        "{stage_id}"
    );
    let job_id = stored["stages"][0]["jobs"][0]["identifier"]
        .as_str()
        .expect("job id");
    assert!(job_id.starts_with("JOB_") && job_id.len() == 9, "{job_id}");

    // Update: full replacement, a new version; a masked secret sent back keeps its value.
    let mut variables = body["variables"].clone();
    variables[0]["value"] = json!("prod");
    let update = json!({
        "name": "demo-ci-2", "is_publish": false, "description": "changed",
        "definition": body["definition"], "variables": variables,
        "triggers": body["triggers"],
    });
    let reply = harness
        .call(
            Method::PUT,
            &uri,
            Auth::Token(&harness.dave.token),
            Some(update),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body, json!({"pipeline_id": id}));
    let record = harness
        .store
        .pipeline(&harness.project_a.id, &id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(record.current_version, 2);
    assert_eq!(record.name, "demo-ci-2");
    let variables = harness.store.variables(&id).await.expect("variables");
    assert_eq!(
        variables[1].value, CANARY,
        "the masked secret kept its value"
    );
    // The webhook secret is kept encrypted with the trigger, never in the settings.
    let triggers = runnel_store::TriggerStore::triggers(&harness.store, &id)
        .await
        .expect("triggers");
    assert_eq!(
        triggers[0].secret, HOOK_CANARY,
        "the masked token kept its value"
    );
    assert!(!record.settings.to_string().contains(HOOK_CANARY));
    assert_eq!(
        record.settings["concurrency_control"],
        json!({"concurrency_number": 1, "exceed_action": "QUEUE", "enable": true}),
        "omitted settings take the defaults (full replacement)"
    );

    let refused = harness
        .call(Method::DELETE, &uri, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "DEVPIPE.00011405")
    );
    let deleted = harness
        .call(
            Method::DELETE,
            &uri,
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body, json!({"pipeline_id": id}));
    let gone = harness
        .call(Method::GET, &uri, Auth::Token(&harness.alice.token), None)
        .await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011401")
    );
}

#[tokio::test]
async fn a_complete_definition_is_stored_verbatim() {
    let harness = Harness::new().await;
    let text = r#"{"stages":[{"name":"Build","identifier":"1735689600000a1b2c3d4-e5f6-4789-8abc-def012345678","unknown_ui_field":{"x":1},
        "jobs":[{"name":"unit-test","identifier":"JOB_aBcDe","steps":[{"name":"t","task":"official_shell_plugin","identifier":"s1",
        "inputs":[{"key":"OFFICIAL_SHELL_SCRIPT_INPUT","value":"make test"}]}]}]}]}"#;
    let body = json!({"name": "verbatim", "is_publish": false, "definition": text});
    let reply = harness
        .call(
            Method::POST,
            &format!("/v5/{}/api/pipelines", harness.project_a.id),
            Auth::Signed,
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let id = reply.body["pipeline_id"].as_str().expect("id");
    let detail = harness
        .call(
            Method::GET,
            &format!("/v5/{}/api/pipelines/{id}", harness.project_a.id),
            Auth::Signed,
            None,
        )
        .await;
    assert_eq!(detail.body["definition"], text);
    let duplicate = harness
        .call(
            Method::POST,
            &format!("/v5/{}/api/pipelines", harness.project_a.id),
            Auth::Signed,
            Some(json!({"name": "verbatim", "is_publish": false, "definition": "{\"stages\":[]}"})),
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011304")
    );
}

#[tokio::test]
async fn the_list_shows_the_latest_run_and_filters_by_name() {
    let harness = Harness::new().await;
    let first = harness
        .create_pipeline("alpha-ci", two_stages(), json!({}))
        .await;
    harness
        .create_pipeline("beta-ci", two_stages(), json!({}))
        .await;
    let run = harness.run(&first, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run");
    let uri = format!("/v5/{}/api/pipelines/list", harness.project_a.id);
    let reply = harness
        .call(
            Method::POST,
            &uri,
            Auth::Token(&harness.vera.token),
            Some(json!({"sort_key": "name", "sort_dir": "ASC"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["total"], 2);
    assert_eq!(reply.body["limit"], 10);
    let pipelines = reply.body["pipelines"].as_array().expect("pipelines");
    assert_eq!(pipelines[0]["name"], "alpha-ci");
    assert_eq!(pipelines[0]["latest_run"]["pipeline_run_id"], run_id);
    assert_eq!(pipelines[0]["latest_run"]["run_number"], 1);
    assert_eq!(pipelines[0]["latest_run"]["trigger_type"], "Manual");
    assert_eq!(
        pipelines[0]["latest_run"]["stage_status_list"][0]["name"],
        "Build"
    );
    assert!(pipelines[1]["latest_run"].is_null());
    let filtered = harness
        .call(
            Method::POST,
            &uri,
            Auth::Token(&harness.vera.token),
            Some(json!({"name": "BETA", "limit": 5, "offset": 0})),
        )
        .await;
    assert_eq!(filtered.body["total"], 1);
    assert_eq!(filtered.body["pipelines"][0]["name"], "beta-ci");
}

#[tokio::test]
async fn secret_values_never_appear_in_any_response() {
    let harness = Harness::new().await;
    let id = harness
        .create_pipeline("secretive", two_stages(), secret_extras())
        .await;
    let project = &harness.project_a.id;
    let run = harness
        .run(
            &id,
            json!({"variables": [{"name": "TOKEN", "value": CANARY}]}),
        )
        .await;
    let run_id = run["pipeline_run_id"].as_str().expect("run").to_owned();
    let dispatch = harness.claim().await;
    assert!(
        dispatch
            .prepared
            .env
            .iter()
            .any(|(name, value)| name == "TOKEN" && value == CANARY),
        "the job gets it"
    );
    let mut texts = Vec::new();
    for (method, uri, body) in [
        (
            Method::GET,
            format!("/v5/{project}/api/pipelines/{id}"),
            None,
        ),
        (
            Method::POST,
            format!("/v5/{project}/api/pipelines/list"),
            None,
        ),
        (
            Method::POST,
            format!("/v5/{project}/api/pipelines/{id}/pipeline-runs/list"),
            None,
        ),
        (
            Method::GET,
            format!(
                "/v5/{project}/api/pipelines/{id}/pipeline-runs/detail?pipeline_run_id={run_id}"
            ),
            None,
        ),
        // Errors never quote values either: a wrong type, an enum value outside its options.
        (
            Method::POST,
            format!("/v5/{project}/api/pipelines/{id}/run"),
            Some(json!({"variables": [{"name": "TOKEN", "value": [CANARY]}]})),
        ),
        (
            Method::POST,
            format!("/v5/{project}/api/pipelines/{id}/run"),
            Some(json!({"variables": [{"name": "env", "value": CANARY}]})),
        ),
        (
            Method::POST,
            format!("/v5/{project}/api/pipelines"),
            Some(json!({"name": "x", "is_publish": CANARY, "definition": "{}"})),
        ),
    ] {
        let reply = harness
            .call(method, &uri, Auth::Token(&harness.alice.token), body)
            .await;
        texts.push(format!("{} {}", reply.status, reply.text));
    }
    for text in &texts {
        assert!(
            !text.contains(CANARY) && !text.contains(HOOK_CANARY),
            "a secret leaked: {text}"
        );
    }
    assert!(texts[4].starts_with("400"), "{}", texts[4]);
    assert!(texts[5].starts_with("400"), "{}", texts[5]);
}
