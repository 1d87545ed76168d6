//! Bad bodies and queries on every v5 route of the matrix (`matrix::rows`): malformed JSON, the
//! wrong JSON kind, oversized bodies, wrong types, missing fields and out-of-range paging all
//! answer 4xx with the CodeArts body, name the field, and change nothing.

use crate::harness::{Auth, Harness};
use crate::matrix::{Access, fixture, rows, snapshot};
use axum::http::{Method, StatusCode};
use runnel_api::ApiConfig;
use serde_json::json;

const LIMIT: usize = 16 * 1024;

async fn small_bodies() -> Harness {
    Harness::with_config(ApiConfig {
        max_body_bytes: LIMIT,
        ..ApiConfig::new("https://ci.example.com", "local-1")
    })
    .await
}

#[tokio::test]
async fn every_route_with_a_body_refuses_malformed_misshapen_and_oversized_bodies() {
    let harness = small_bodies().await;
    let project = harness.project_a.id.clone();
    let ids = fixture(
        &harness,
        &project,
        &harness.alice.token,
        &harness.alice.id,
        0,
    )
    .await;
    let other = fixture(
        &harness,
        &harness.project_b.id.clone(),
        &harness.carol.token,
        &harness.carol.id,
        0,
    )
    .await;
    let before = snapshot(&harness, &[&ids, &other]).await;
    let mut checked = 0;
    for row in rows()
        .iter()
        .filter(|row| matches!(row.access, Access::Project(_)))
    {
        let Some(body) = row.body else {
            continue;
        };
        let uri = ids.fill(&row.uri_template(), 0);
        let is_list = body.trim_start().starts_with('[');
        let cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
            (
                b"{\"name\": ".to_vec(),
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00010002",
                "not valid JSON",
            ),
            (
                b"{\"a\": 1} trailing".to_vec(),
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00010002",
                "not valid JSON",
            ),
            if is_list {
                (
                    b"{}".to_vec(),
                    StatusCode::BAD_REQUEST,
                    "DEVPIPE.00010001",
                    "body: must be a JSON array",
                )
            } else {
                (
                    b"[]".to_vec(),
                    StatusCode::BAD_REQUEST,
                    "DEVPIPE.00010001",
                    "body: must be a JSON object",
                )
            },
            (
                b"\"text\"".to_vec(),
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00010001",
                "body: must be",
            ),
            (
                vec![b' '; LIMIT + 1],
                StatusCode::PAYLOAD_TOO_LARGE,
                "DEVPIPE.00010001",
                "larger than the limit",
            ),
        ];
        for (bytes, status, code, mentions) in cases {
            for auth in [Auth::Token(&harness.alice.token), Auth::Signed] {
                let reply = harness
                    .call_raw(row.method.clone(), &uri, auth, bytes.clone(), &[])
                    .await;
                assert_eq!(
                    (reply.status, reply.code()),
                    (status, code),
                    "{} {}: {}",
                    row.method,
                    row.path,
                    reply.text
                );
                let message = reply.body["error_msg"].as_str().unwrap_or("");
                assert!(
                    message.contains(mentions),
                    "{} {}: `{message}` should mention `{mentions}`",
                    row.method,
                    row.path
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        snapshot(&harness, &[&ids, &other]).await,
        before,
        "nothing changed"
    );
    let with_bodies = rows()
        .iter()
        .filter(|row| matches!(row.access, Access::Project(_)) && row.body.is_some())
        .count();
    assert_eq!(checked, with_bodies * 5 * 2);
    assert!(with_bodies > 20, "{with_bodies} routes with bodies");
}

#[tokio::test]
async fn wrong_types_missing_fields_and_paging_name_the_field_and_change_nothing() {
    let harness = small_bodies().await;
    let project = harness.project_a.id.clone();
    let ids = fixture(
        &harness,
        &project,
        &harness.alice.token,
        &harness.alice.id,
        0,
    )
    .await;
    let before = snapshot(&harness, &[&ids]).await;
    let run = "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}";
    let step = "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}";
    let cases: Vec<(Method, String, serde_json::Value, &str)> = vec![
        (
            Method::POST,
            "/v5/{p}/api/pipelines/list".into(),
            json!({"offset": -1}),
            "offset",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/list".into(),
            json!({"limit": 101}),
            "limit",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/list".into(),
            json!({"is_publish": "no"}),
            "is_publish: expected a boolean",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/pipelines-version".into(),
            json!([{}]),
            "[0].pipeline_id: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/pipelines-version".into(),
            json!([{"pipeline_id": 7}]),
            "[0].pipeline_id: expected a string",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/status".into(),
            json!([["{pl}"]]),
            "[0]",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/run".into(),
            json!({"variables": {"env": "x"}}),
            "variables: expected a sequence",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/run".into(),
            json!({"choose_jobs": "JOB_x"}),
            "choose_jobs",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/list".into(),
            json!({"offset": -3}),
            "offset",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/list".into(),
            json!({"limit": 500}),
            "limit",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/list".into(),
            json!({"show_job_details": "yes"}),
            "show_job_details",
        ),
        (
            Method::PUT,
            format!("{run}/retry"),
            json!({"job_run_ids": "x"}),
            "job_run_ids: expected a sequence",
        ),
        (
            Method::POST,
            format!("{step}/logs"),
            json!({"limit": "ten", "sort": "asc"}),
            "limit",
        ),
        (
            Method::POST,
            format!("{step}/delay"),
            json!({"delay_time": -5}),
            "delay_time",
        ),
        (
            Method::POST,
            format!("{step}/delay"),
            json!({"delay_time": [1]}),
            "delay_time",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/create".into(),
            json!({"project_id": "{p}"}),
            "name: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/create".into(),
            json!({"name": 5, "project_id": "{p}"}),
            "name: expected a string",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/create".into(),
            json!({"name": "x"}),
            "project_id: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/create".into(),
            json!({"name": "x".repeat(129), "project_id": "{p}"}),
            "name: must be 1 to 128",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/update".into(),
            json!({"name": "x"}),
            "id: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/pipeline/move".into(),
            json!({"group_id": ""}),
            "pipelines: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-group/pipeline/move".into(),
            json!({"group_id": "", "pipelines": [{"pipeline_id": "{pl}"}]}),
            "pipelines[0].pipeline_name: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-tag/create".into(),
            json!({"name": "x"}),
            "color: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-tag/create".into(),
            json!({"name": "x", "color": "#12345g"}),
            "color",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-tag/update".into(),
            json!({"name": "x", "color": "#fff"}),
            "tagId: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-tag/set-tags".into(),
            json!({"pipeline_ids": "{pl}", "tag_ids": []}),
            "pipeline_ids: expected a sequence",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline-tag/set-tags".into(),
            json!({"pipeline_ids": ["{pl}"]}),
            "tag_ids: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline/variable/group/list".into(),
            json!({"limit": 101}),
            "limit",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline/variable/group/list".into(),
            json!({"offset": -1}),
            "offset",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline/variable/group/list".into(),
            json!({"limit": "x"}),
            "limit",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline/variable/group/relation".into(),
            json!({"pipeline_id": "{pl}"}),
            "variable_group_ids: is required",
        ),
        (
            Method::POST,
            "/v5/{p}/api/pipeline/variable/group/relation".into(),
            json!({"pipeline_id": "{pl}", "variable_group_ids": ["{vg}", "{vg}"]}),
            "variable_group_ids[1]: is listed twice",
        ),
        (
            Method::PUT,
            "/v5/{p}/api/pipeline/variable/group/update".into(),
            json!({"id": "{vg}", "name": "x", "variables": [{"name": 1}]}),
            "variables[0].name: expected a string",
        ),
    ];
    for (method, uri, body, mentions) in cases {
        let uri = ids.fill(&uri, 0);
        let body = ids.fill(&body.to_string(), 0).into_bytes();
        let reply = harness
            .call_raw(
                method.clone(),
                &uri,
                Auth::Token(&harness.alice.token),
                body,
                &[],
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
            "{method} {uri}: {}",
            reply.text
        );
        let message = reply.body["error_msg"].as_str().unwrap_or("");
        assert!(
            message.contains(mentions),
            "{method} {uri}: `{message}` should mention `{mentions}`"
        );
    }
    let queries = [
        format!(
            "{run}/steps/outputs?step_run_ids={}",
            vec!["a"; 501].join(",")
        ),
        "/v5/{p}/api/pipelines/{pl}/pipeline-runs/detail?pipeline_run_number=0".to_owned(),
        "/v5/{p}/api/pipeline-group/delete".to_owned(),
        "/v5/{p}/api/pipeline-tag/delete?id={tag}".to_owned(),
        "/v5/{p}/api/pipeline/variable/group/pipeline".to_owned(),
        format!("{step}/logs/stream?offset=x"),
    ];
    for uri in queries {
        let uri = ids.fill(&uri, 0);
        let method = if uri.contains("/delete") {
            Method::DELETE
        } else {
            Method::GET
        };
        let reply = harness
            .call(
                method.clone(),
                &uri,
                Auth::Token(&harness.alice.token),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
            "{method} {uri}: {}",
            reply.text
        );
    }
    assert_eq!(snapshot(&harness, &[&ids]).await, before, "nothing changed");
}
