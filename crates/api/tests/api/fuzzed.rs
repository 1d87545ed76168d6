//! Regressions found by fuzzing the API through its OpenAPI document (`tests/schemathesis/run`):
//! each request once answered a 500 (a panic in a handler); now it is bad input, a 4xx with the
//! CodeArts body, or an ordinary answer.

use crate::harness::{Auth, Harness, Reply, two_stages};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

async fn call(harness: &Harness, method: Method, uri: &str, body: Option<Value>) -> Reply {
    harness
        .call(method, uri, Auth::Token(&harness.alice.token), body)
        .await
}

fn assert_bad_input(reply: &Reply, field: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00010001"),
        "{}",
        reply.text
    );
    let message = reply.body["error_msg"].as_str().expect("error_msg");
    assert!(message.contains(field), "`{message}` should name `{field}`");
}

#[tokio::test]
async fn build_results_over_the_whole_epoch_range_are_refused_as_too_long() {
    let harness = Harness::new().await;
    let project = &harness.project_a.id;
    let cases = [
        (i64::MIN.to_string(), i64::MAX.to_string()),
        (i64::MIN.to_string(), "2025-06-15".to_owned()),
        ("2025-06-15".to_owned(), i64::MAX.to_string()),
    ];
    for (start, end) in cases {
        let reply = call(
            &harness,
            Method::GET,
            &format!(
                "/v3/pipelines/build-result?project_id={project}&start_date={start}&end_date={end}"
            ),
            None,
        )
        .await;
        assert_bad_input(&reply, "end_date");
        assert!(reply.text.contains("31 days"), "{}", reply.text);
    }
    // The extremes themselves, a day apart at most, are an ordinary (empty) answer.
    let reply = call(
        &harness,
        Method::GET,
        &format!(
            "/v3/pipelines/build-result?project_id={project}&start_date={}&end_date={}",
            i64::MIN,
            i64::MIN + 1
        ),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["total"], 0);
}

#[tokio::test]
async fn offsets_beyond_32_bits_are_refused_on_every_list() {
    let harness = Harness::new().await;
    let pipeline_id = harness
        .create_pipeline("paged", two_stages(), json!({}))
        .await;
    harness.run(&pipeline_id, json!({})).await;
    let project = harness.project_a.id.clone();
    let domain = harness.project_a.domain_id.clone();
    let runs = format!("/v5/{project}/api/pipelines/{pipeline_id}/pipeline-runs/list");
    let pipelines = format!("/v5/{project}/api/pipelines/list");
    let templates = format!("/v5/{domain}/api/pipeline-templates/list");
    for offset in [
        json!(i64::MAX),
        json!(i64::from(i32::MAX) + 1),
        json!("9223372036854775807"),
    ] {
        for uri in [
            &runs,
            &pipelines,
            &templates,
            &"/v3/pipelines/list".to_owned(),
        ] {
            let reply = call(
                &harness,
                Method::POST,
                uri,
                Some(json!({"offset": offset, "limit": 10})),
            )
            .await;
            assert_bad_input(&reply, "offset");
        }
    }
    let reply = call(
        &harness,
        Method::GET,
        &format!(
            "/v3/templates?template_type=pipeline&is_build_in=true&offset={}",
            i64::MAX
        ),
        None,
    )
    .await;
    assert_bad_input(&reply, "offset");
    // The largest offset still answers an empty page, and the run is still listed from 0.
    let reply = call(
        &harness,
        Method::POST,
        &runs,
        Some(json!({"offset": i32::MAX, "limit": 10})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["pipeline_runs"], json!([]));
    let reply = call(&harness, Method::POST, &runs, Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["total"], 1, "{}", reply.text);
}
