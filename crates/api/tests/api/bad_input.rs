//! Bad input answers 4xx with the right code, names the field, and changes nothing.

use crate::harness::{Auth, Harness, two_stages};
use axum::http::{Method, StatusCode};
use runnel_api::ApiConfig;
use runnel_store::{PipelineQuery, PipelineStore, RunStore};
use serde_json::json;

async fn pipeline_count(harness: &Harness) -> i64 {
    harness
        .store
        .list_pipelines(&harness.project_a.id, &PipelineQuery::default())
        .await
        .expect("list")
        .total
}

#[tokio::test]
async fn bad_create_bodies_are_refused_naming_the_field_and_store_nothing() {
    let harness = Harness::with_config(ApiConfig {
        max_body_bytes: 64 * 1024,
        ..ApiConfig::new("https://ci.example.com", "local-1")
    })
    .await;
    let uri = format!("/v5/{}/api/pipelines", harness.project_a.id);
    let token = harness.alice.token.clone();
    let definition = two_stages().to_string();
    let cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
        (br#"{"name": "x", "is_publish": false, "definition": "#.to_vec(), StatusCode::BAD_REQUEST, "DEVPIPE.00010002", "not valid JSON"),
        (b"[1, 2]".to_vec(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "body: must be a JSON object"),
        (json!({"name": 5, "is_publish": false, "definition": definition}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "name: expected a string, found an integer"),
        (json!({"name": "x", "is_publish": "yes", "definition": definition}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "is_publish: expected a boolean"),
        (json!({"name": "x", "is_publish": false}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "definition: is required"),
        (json!({"is_publish": false, "definition": definition}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "name: is required"),
        (b"".to_vec(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "is required"),
        (json!({"name": "bad name!", "is_publish": false, "definition": definition}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "name: must be"),
        (json!({"name": "x", "is_publish": false, "definition": definition, "sources": [{"type": "code", "params": 5}]}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "sources[0].params"),
        (json!({"name": "x", "is_publish": false, "definition": definition, "group_id": "0123456789abcdef0123456789abcdef"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00011301", "group"),
        (json!({"name": "x", "is_publish": false, "definition": definition, "variable_group_ids": ["nope"]}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00011303", "variable group"),
        (json!({"name": "x", "is_publish": false, "definition": definition, "manifest_version": "4.0"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "manifest_version"),
        (json!({"name": "x", "is_publish": false, "definition": "not json"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "definition is invalid: definition:"),
        (vec![b' '; 70 * 1024], StatusCode::PAYLOAD_TOO_LARGE, "DEVPIPE.00010001", "larger than the limit"),
    ];
    for (body, status, code, message) in cases {
        let reply = harness
            .call_raw(Method::POST, &uri, Auth::Token(&token), body.clone(), &[])
            .await;
        let error_msg = reply.body["error_msg"].as_str().unwrap_or("");
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{}",
            reply.text
        );
        assert!(
            error_msg.contains(message),
            "`{error_msg}` should mention `{message}`"
        );
        // Signed requests buffer the body before verifying: the same limit applies.
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            let signed = harness
                .call_raw(Method::POST, &uri, Auth::Signed, body, &[])
                .await;
            assert_eq!(signed.status, StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    assert_eq!(pipeline_count(&harness).await, 0, "nothing was stored");
}

#[tokio::test]
async fn a_bad_definition_names_every_problem_with_its_path() {
    let harness = Harness::new().await;
    let definition = json!({"stages": [
        {"jobs": [{"name": "a", "identifier": "JOB_a", "steps": []}]},
        {"name": "Deploy", "jobs": [
            {"name": "b", "identifier": "JOB_b", "depends_on": ["JOB_nowhere"], "steps": [{"name": "no task"}]}
        ]}
    ]});
    let body = json!({"name": "broken", "is_publish": false, "definition": definition.to_string(),
                      "variables": [{"name": "PATH", "type": "string", "value": "/bin"}]});
    let reply = harness
        .call(
            Method::POST,
            &format!("/v5/{}/api/pipelines", harness.project_a.id),
            Auth::Token(&harness.alice.token),
            Some(body),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
        "{}",
        reply.text
    );
    let message = reply.body["error_msg"].as_str().expect("message");
    assert!(message.starts_with("definition is invalid: "), "{message}");
    for path in [
        "definition.stages[0].name",
        "definition.stages[0].jobs[0].steps",
        "definition.stages[1].jobs[0].depends_on[0]",
        "definition.stages[1].jobs[0].steps[0].task",
        "variables[0].name",
    ] {
        assert!(
            message.contains(&format!("{path}: ")),
            "{path} in {message}"
        );
    }
    assert_eq!(pipeline_count(&harness).await, 0);
}

#[tokio::test]
async fn bad_paging_log_queries_and_run_bodies_are_refused_and_change_nothing() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline("paging", two_stages(), json!({"variables": [{"name": "env", "type": "enum", "value": "dev", "is_runtime": true, "limits": ["dev", "prod"]}]}))
        .await;
    let project = &harness.project_a.id;
    let token = harness.alice.token.clone();
    let cases = [
        (
            format!("/v5/{project}/api/pipelines/list"),
            json!({"limit": 101}),
            "limit",
        ),
        (
            format!("/v5/{project}/api/pipelines/list"),
            json!({"offset": -1}),
            "offset",
        ),
        (
            format!("/v5/{project}/api/pipelines/list"),
            json!({"limit": "many"}),
            "limit",
        ),
        (
            format!("/v5/{project}/api/pipelines/list"),
            json!({"sort_key": "color"}),
            "sort_key",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/list"),
            json!({"limit": 1000}),
            "limit",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/list"),
            json!({"status": ["SLEEPING"]}),
            "status[0]",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/list"),
            json!({"start_time": "yesterday"}),
            "start_time",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/list"),
            json!({"sort_dir": "sideways"}),
            "sort_dir",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            json!({"variables": [{"name": "env", "value": "staging"}]}),
            "env",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            json!({"variables": [{"name": "env"}]}),
            "variables[0].value: is required",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            json!({"choose_jobs": ["JOB_nope"]}),
            "JOB_nope",
        ),
        (
            format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            json!({"sources": [{"type": "code", "params": {"git_type": "codehub", "git_url": "u", "build_params": {"build_type": "commit"}}}]}),
            "build_type",
        ),
    ];
    for (uri, body, field) in cases {
        let reply = harness
            .call(Method::POST, &uri, Auth::Token(&token), Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
            "{body}: {}",
            reply.text
        );
        assert!(
            reply.body["error_msg"]
                .as_str()
                .is_some_and(|message| message.contains(field)),
            "{field}: {}",
            reply.text
        );
    }
    assert_eq!(
        harness
            .store
            .count_runs(&pipeline, &[])
            .await
            .expect("count"),
        0,
        "no run was created"
    );
    let bad_key = harness
        .call_raw(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            Auth::Token(&token),
            Vec::new(),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(bad_key.code(), "DEVPIPE.00010001");

    let run = harness.run(&pipeline, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run");
    let dispatch = harness.claim().await;
    let logs = format!(
        "/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}/logs",
        dispatch.job_run_id, dispatch.step_run_ids[0]
    );
    for (body, field) in [
        (json!({"sort": "asc"}), "limit: is required"),
        (json!({"limit": 0, "sort": "asc"}), "limit"),
        (json!({"limit": 10, "sort": "up"}), "sort"),
        (
            json!({"limit": 10, "sort": "asc", "start_offset": -5}),
            "start_offset",
        ),
        (
            json!({"limit": 10, "sort": "asc", "level": "LOUD"}),
            "level",
        ),
    ] {
        let reply = harness
            .call(Method::POST, &logs, Auth::Token(&token), Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
            "{body}: {}",
            reply.text
        );
        assert!(
            reply.body["error_msg"]
                .as_str()
                .is_some_and(|message| message.contains(field)),
            "{field}: {}",
            reply.text
        );
    }
    let bad_number = harness
        .call(Method::GET, &format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/detail?pipeline_run_number=first"), Auth::Token(&token), None)
        .await;
    assert_eq!(bad_number.code(), "DEVPIPE.00010001");
    assert_eq!(
        harness
            .store
            .count_runs(&pipeline, &[])
            .await
            .expect("count"),
        1
    );
}
