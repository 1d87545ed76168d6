//! The live log stream (Server-Sent Events): chunks with their offsets as the log grows, never
//! half a character, resumption from an offset or `Last-Event-ID`, one `end` event once the
//! step is final; refusals before streaming answer CodeArts errors.

use crate::harness::{Auth, Harness, two_stages};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use runnel_domain::status::JobStatus;
use serde_json::{Value, json};
use std::pin::Pin;
use std::time::Duration;
use tower::ServiceExt;

type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// Opens the stream; answers the status and either the events or the error body.
async fn open(
    harness: &Harness,
    uri: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> Result<Events, (StatusCode, Value)> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("host", "ci.example.com")
        .header("x-auth-token", token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = harness
        .router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    if status != StatusCode::OK {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        return Err((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ));
    }
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Ok(Box::pin(
        response
            .into_body()
            .into_data_stream()
            .eventsource()
            .map(|event| event.map_err(|err| err.to_string())),
    ))
}

/// The next event (keep-alive comments are not events), within a generous timeout.
async fn next(events: &mut Events) -> Option<(String, String, Value)> {
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")?
        .expect("a well-formed event");
    let data = serde_json::from_str(&event.data).expect("JSON data");
    Some((event.event, event.id, data))
}

#[tokio::test]
async fn a_running_steps_log_streams_as_it_grows_and_ends_once_the_step_is_final() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline("live", two_stages(), json!({}))
        .await;
    let run = harness.run(&pipeline, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run").to_owned();
    let dispatch = harness.claim().await;
    let step = dispatch.step_run_ids[0].clone();
    harness.start_steps(&dispatch, &["line 1".to_owned()]).await;
    let uri = format!(
        "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{step}/logs/stream",
        harness.project_a.id, dispatch.job_run_id
    );

    let mut events = open(
        &harness,
        &format!("{uri}?offset=0"),
        &harness.vera.token,
        None,
    )
    .await
    .expect("a viewer may follow");
    assert_eq!(
        next(&mut events).await,
        Some((
            "log".into(),
            "7".into(),
            json!({"start_offset": 0, "end_offset": 7, "log": "line 1\n", "attempt": 1})
        ))
    );
    let append = |offset: u64, bytes: &[u8]| {
        let bytes = bytes.to_vec();
        let step = step.clone();
        let token = dispatch.token.clone();
        let engine = harness.engine.clone();
        async move {
            engine
                .append_log(&token, &step, offset, bytes)
                .await
                .expect("append");
        }
    };
    append(7, b"line 2\n").await;
    assert_eq!(
        next(&mut events).await,
        Some((
            "log".into(),
            "14".into(),
            json!({"start_offset": 7, "end_offset": 14, "log": "line 2\n", "attempt": 1})
        ))
    );
    // "é" is two bytes; stored one at a time, it is never sent split.
    append(14, b"caf\xC3").await;
    let (_, _, partial) = next(&mut events).await.expect("event");
    assert_eq!(
        partial,
        json!({"start_offset": 14, "end_offset": 17, "log": "caf", "attempt": 1})
    );
    append(18, b"\xA9\n").await;
    let (_, _, rest) = next(&mut events).await.expect("event");
    assert_eq!(
        rest,
        json!({"start_offset": 17, "end_offset": 20, "log": "é\n", "attempt": 1})
    );

    harness
        .complete_steps(&dispatch, JobStatus::Completed)
        .await;
    assert_eq!(
        next(&mut events).await,
        Some((
            "end".into(),
            "20".into(),
            json!({"end_offset": 20, "status": "COMPLETED"})
        ))
    );
    assert_eq!(next(&mut events).await, None, "the stream ends after `end`");

    // A finished step: from an offset, or from the id a reconnecting client sends.
    let mut from_offset = open(
        &harness,
        &format!("{uri}?offset=7"),
        &harness.alice.token,
        None,
    )
    .await
    .expect("stream");
    let (kind, id, data) = next(&mut from_offset).await.expect("event");
    assert_eq!((kind.as_str(), id.as_str()), ("log", "20"));
    assert_eq!(data["log"], "line 2\ncafé\n");
    assert_eq!(next(&mut from_offset).await.expect("end").0, "end");
    let mut resumed = open(
        &harness,
        &format!("{uri}?offset=0"),
        &harness.alice.token,
        Some("20"),
    )
    .await
    .expect("stream");
    assert_eq!(
        next(&mut resumed).await,
        Some((
            "end".into(),
            "20".into(),
            json!({"end_offset": 20, "status": "COMPLETED"})
        )),
        "Last-Event-ID wins over offset"
    );
    let mut beyond = open(
        &harness,
        &format!("{uri}?offset=999"),
        &harness.alice.token,
        None,
    )
    .await
    .expect("stream");
    assert_eq!(
        next(&mut beyond).await.expect("end").2,
        json!({"end_offset": 20, "status": "COMPLETED"})
    );
}

#[tokio::test]
async fn a_stream_is_refused_before_it_starts_for_bad_input_and_foreign_ids() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline("refused", two_stages(), json!({}))
        .await;
    let run = harness.run(&pipeline, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run").to_owned();
    let dispatch = harness.claim().await;
    let base = format!(
        "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps",
        harness.project_a.id, dispatch.job_run_id
    );
    let good = format!("{base}/{}/logs/stream", dispatch.step_run_ids[0]);
    let cases = [
        (
            format!("{base}/fedcba9876543210fedcba9876543210/logs/stream"),
            None,
            StatusCode::BAD_REQUEST,
            "DEVPIPE.00011403",
        ),
        (
            format!("{good}?offset=-1"),
            None,
            StatusCode::BAD_REQUEST,
            "DEVPIPE.00010001",
        ),
        (
            format!("{good}?offset=lots"),
            None,
            StatusCode::BAD_REQUEST,
            "DEVPIPE.00010001",
        ),
        (
            good.clone(),
            Some("yesterday"),
            StatusCode::BAD_REQUEST,
            "DEVPIPE.00010001",
        ),
    ];
    for (uri, last_event_id, status, code) in cases {
        let Err((got, body)) = open(&harness, &uri, &harness.alice.token, last_event_id).await
        else {
            panic!("{uri} should be refused");
        };
        assert_eq!(
            (got, body["error_code"].as_str().unwrap_or("")),
            (status, code),
            "{uri}: {body}"
        );
    }
    let Err((status, body)) = open(&harness, &good, &harness.carol.token, None).await else {
        panic!("another project's member is refused");
    };
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::BAD_REQUEST, json!("DEVPIPE.00011412"))
    );
    let anonymous = harness.call(Method::GET, &good, Auth::None, None).await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (StatusCode::UNAUTHORIZED, "DEV.00000001")
    );
}
