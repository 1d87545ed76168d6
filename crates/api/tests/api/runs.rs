//! Runs: start with variables → detail → log paging → stop → retry; idempotency keys (G6);
//! queued and refused runs; reviews and manual stage starts; the run list.

use crate::harness::{Auth, Harness, job, review_and_manual_stage, two_stages};
use axum::http::{Method, StatusCode};
use runnel_domain::status::JobStatus;
use runnel_store::RunStore;
use serde_json::{Value, json};

fn with_env() -> Value {
    json!({"variables": [{"name": "env", "type": "enum", "value": "dev", "is_runtime": true, "limits": ["dev", "prod"]}]})
}

#[tokio::test]
async fn run_with_variables_then_detail_log_pages_stop_and_retry() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline("flow", two_stages(), with_env())
        .await;
    let project = harness.project_a.id.clone();
    let started = harness
        .run(
            &pipeline,
            json!({"description": "nightly", "variables": [{"name": "env", "value": "prod"}]}),
        )
        .await;
    assert!(started.get("error_code").is_none(), "{started}");
    let run_id = started["pipeline_run_id"]
        .as_str()
        .expect("run id")
        .to_owned();

    let detail = harness.run_detail(&pipeline, &run_id).await;
    assert_eq!(detail["id"], run_id.as_str());
    assert_eq!(detail["run_number"], 1);
    assert_eq!(detail["description"], "nightly");
    assert_eq!(detail["executor_name"], "alice");
    assert_eq!(detail["trigger_type"], "Manual");
    assert_eq!(detail["name"], "flow");
    assert_eq!(detail["project_id"], project.as_str());
    assert_eq!(detail["stages"].as_array().map(Vec::len), Some(2));
    let compile = job(&detail, "JOB_Cmpl1");
    for field in [
        "id",
        "async",
        "name",
        "depends_on",
        "is_select",
        "status",
        "steps",
        "timeout",
    ] {
        assert!(compile.get(field).is_some(), "JobRun.{field}");
    }
    let step = &compile["steps"][0];
    for field in [
        "id",
        "name",
        "task",
        "inputs",
        "sequence",
        "identifier",
        "status",
        "multi_step_editable",
        "endpoint_ids",
    ] {
        assert!(step.get(field).is_some(), "StepRun.{field}");
    }
    for field in [
        "pre",
        "post",
        "jobs",
        "depends_on",
        "is_select",
        "pause_time",
        "run_always",
    ] {
        assert!(detail["stages"][0].get(field).is_some(), "StageRun.{field}");
    }

    // The compile job runs: the run-time value reached it, and its log pages by lines.
    let dispatch = harness.claim().await;
    assert!(
        dispatch
            .prepared
            .env
            .iter()
            .any(|(name, value)| name == "env" && value == "prod")
    );
    let lines: Vec<String> = (1..=5).map(|index| format!("line {index}")).collect();
    harness.start_steps(&dispatch, &lines).await;
    let step_id = &dispatch.step_run_ids[0];
    let logs = format!(
        "/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{step_id}/logs",
        dispatch.job_run_id
    );
    let page = harness
        .call(
            Method::POST,
            &logs,
            Auth::Token(&harness.vera.token),
            Some(json!({"start_offset": 0, "end_offset": 0, "limit": 2, "sort": "asc"})),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["log"], "line 1\nline 2\n");
    assert_eq!(page.body["start_offset"], "0");
    assert_eq!(page.body["end_offset"], "14");
    assert_eq!(page.body["has_more"], true);
    assert_eq!(page.body["step_run_id"], step_id.as_str());
    let next = harness
        .call(
            Method::POST,
            &logs,
            Auth::Token(&harness.vera.token),
            Some(json!({"start_offset": "14", "limit": 10, "sort": "asc"})),
        )
        .await;
    assert_eq!(next.body["log"], "line 3\nline 4\nline 5\n");
    assert_eq!(next.body["end_offset"], "35");
    assert_eq!(next.body["has_more"], true, "the step is still running");
    let tail = harness
        .call(
            Method::POST,
            &logs.replacen("/api/", "/", 1),
            Auth::Token(&harness.vera.token),
            Some(json!({"limit": 2, "sort": "desc"})),
        )
        .await;
    assert_eq!(
        tail.status,
        StatusCode::OK,
        "the route without /api: {}",
        tail.text
    );
    assert_eq!(tail.body["log"], "line 4\nline 5\n");
    assert_eq!(tail.body["start_offset"], "21");
    assert_eq!(tail.body["has_more"], true, "older lines exist");

    // compile completes, test fails: the run FAILS; a retry reruns only the failed job.
    harness
        .complete_steps(&dispatch, JobStatus::Completed)
        .await;
    let failing = harness.claim().await;
    harness
        .finish(&failing, &["boom".to_owned()], JobStatus::Failed)
        .await;
    harness.wait_status(&pipeline, &run_id, "FAILED").await;
    let done = harness
        .call(
            Method::POST,
            &logs,
            Auth::Token(&harness.vera.token),
            Some(json!({"limit": 100, "sort": "asc", "start_offset": 35})),
        )
        .await;
    assert_eq!(
        (done.body["log"].as_str(), done.body["has_more"].as_bool()),
        (Some(""), Some(false))
    );
    let retry = format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/retry");
    let refused = harness
        .call(Method::PUT, &retry, Auth::Token(&harness.vera.token), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let retried = harness
        .call(Method::PUT, &retry, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body, json!({"success": true}));
    let again = harness.claim().await;
    assert_eq!(
        again.job_run_id, failing.job_run_id,
        "only the failed job runs again"
    );
    harness.finish(&again, &[], JobStatus::Completed).await;
    let ship = harness.claim().await;
    harness.finish(&ship, &[], JobStatus::Completed).await;
    let finished = harness.wait_status(&pipeline, &run_id, "COMPLETED").await;
    assert_eq!(finished["run_number"], 1, "a retry reuses the run");
    let not_again = harness
        .call(Method::PUT, &retry, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(
        (not_again.status, not_again.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011404")
    );

    // A second run is stopped while its first job runs; stopping it again is refused.
    let second = harness.run(&pipeline, json!({})).await;
    let second_id = second["pipeline_run_id"].as_str().expect("run").to_owned();
    let _running = harness.claim().await;
    let stop = format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{second_id}/stop");
    let stopped = harness
        .call(Method::POST, &stop, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(stopped.body, json!({"success": true}), "{}", stopped.text);
    let canceled = harness.wait_status(&pipeline, &second_id, "CANCELED").await;
    assert_eq!(job(&canceled, "JOB_Cmpl1")["status"], "CANCELED");
    let twice = harness
        .call(Method::POST, &stop, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011404")
    );

    // The list: newest first by default, filters and paging.
    let list = format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/list");
    let all = harness
        .call(Method::POST, &list, Auth::Token(&harness.vera.token), None)
        .await;
    assert_eq!(all.body["total"], 2, "{}", all.text);
    assert_eq!(all.body["pipeline_runs"][0]["run_number"], 2);
    let filtered = harness
        .call(
            Method::POST,
            &list,
            Auth::Token(&harness.vera.token),
            Some(json!({"status": ["COMPLETED", "SKIPPED"], "trigger_type": ["Manual"], "sort_dir": "DESC",
                        "start_time": 1_749_999_999_000_i64, "end_time": "2030-01-01 00:00:00", "offset": 0, "limit": 5,
                        "show_job_details": true})),
        )
        .await;
    assert_eq!(filtered.body["total"], 1, "{}", filtered.text);
    let item = &filtered.body["pipeline_runs"][0];
    assert_eq!(item["pipeline_run_id"], run_id.as_str());
    assert_eq!(item["status"], "COMPLETED");
    assert!(
        item["stage_status_list"][1]["jobs"].is_array(),
        "job details of the last stage"
    );
    let by_number = harness
        .call(
            Method::GET,
            &format!(
                "/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/detail?pipeline_run_number=1"
            ),
            Auth::Token(&harness.vera.token),
            None,
        )
        .await;
    assert_eq!(by_number.body["id"], run_id.as_str());
    let latest = harness
        .call(
            Method::GET,
            &format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/detail"),
            Auth::Signed,
            None,
        )
        .await;
    assert_eq!(latest.body["id"], second_id.as_str());
}

#[tokio::test]
async fn replaying_an_idempotency_key_creates_no_second_run() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline("idem", two_stages(), json!({}))
        .await;
    let uri = format!("/v5/{}/api/pipelines/{pipeline}/run", harness.project_a.id);
    let mut ids = Vec::new();
    for (token, key) in [
        (&harness.alice.token, "key-1"),
        (&harness.alice.token, "key-1"),
        (&harness.alice.token, "key-2"),
        (&harness.dave.token, "key-1"),
    ] {
        let reply = harness
            .call_raw(
                Method::POST,
                &uri,
                Auth::Token(token),
                Vec::new(),
                &[("idempotency-key", key)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        ids.push(
            reply.body["pipeline_run_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_eq!(ids[0], ids[1], "the replay answers with the first run");
    assert_ne!(ids[0], ids[2]);
    assert_ne!(ids[0], ids[3], "keys are scoped to the caller");
    assert_eq!(
        harness
            .store
            .count_runs(&pipeline, &[])
            .await
            .expect("count"),
        3
    );
}

#[tokio::test]
async fn a_run_beyond_the_concurrency_limit_is_queued_or_refused() {
    let harness = Harness::new().await;
    let queue = harness
        .create_pipeline("queued", two_stages(), json!({"concurrency_control": {"concurrency_number": 1, "exceed_action": "QUEUE", "enable": true}}))
        .await;
    let first = harness.run(&queue, json!({})).await;
    let second = harness.run(&queue, json!({})).await;
    assert!(first.get("error_code").is_none(), "{first}");
    let second_id = second["pipeline_run_id"].as_str().expect("id");
    assert_eq!(second["error_code"], "DEVPIPE.00011169", "{second}");
    assert_eq!(second["error"]["pipeline_run_id"], second_id);
    assert!(second["error"]["queue_id"].is_string());

    let abort = harness
        .create_pipeline("aborting", two_stages(), json!({"concurrency_control": {"concurrency_number": 1, "exceed_action": "ABORT", "enable": true}}))
        .await;
    harness.run(&abort, json!({})).await;
    let refused = harness
        .call(
            Method::POST,
            &format!("/v5/{}/api/pipelines/{abort}/run", harness.project_a.id),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011104")
    );
    assert_eq!(
        harness.store.count_runs(&abort, &[]).await.expect("count"),
        1
    );
}

#[tokio::test]
async fn a_review_is_passed_by_its_approver_and_a_manual_stage_is_started() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline(
            "review",
            review_and_manual_stage(&harness.alice.id),
            json!({}),
        )
        .await;
    let project = harness.project_a.id.clone();
    let run = harness.run(&pipeline, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run").to_owned();
    let detail = harness.wait_status(&pipeline, &run_id, "PAUSED").await;
    let review = job(&detail, "JOB_Revw1");
    let review_uri = format!(
        "/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}",
        review["id"].as_str().expect("job"),
        review["steps"][0]["id"].as_str().expect("step")
    );
    let viewer = harness
        .call(
            Method::POST,
            &format!("{review_uri}/pass"),
            Auth::Token(&harness.vera.token),
            None,
        )
        .await;
    assert_eq!(
        (viewer.status, viewer.code()),
        (StatusCode::FORBIDDEN, "DEVPIPE.00011405")
    );
    let not_approver = harness
        .call(
            Method::POST,
            &format!("{review_uri}/pass"),
            Auth::Token(&harness.dave.token),
            None,
        )
        .await;
    assert_eq!(
        (not_approver.status, not_approver.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011404"),
        "{}",
        not_approver.text
    );
    let passed = harness
        .call(
            Method::POST,
            &format!("{review_uri}/pass?approval_description=LGTM%20ship%20it"),
            Auth::Signed,
            None,
        )
        .await;
    assert_eq!(passed.body, json!({"success": true}), "{}", passed.text);
    let waiting = harness
        .wait_for(&pipeline, &run_id, "the manual stage", |detail| {
            detail["stages"][1]["status"] == "PAUSED"
        })
        .await;
    let gate = waiting["stages"][1]["pre"][0]["id"]
        .as_str()
        .expect("gate")
        .to_owned();
    let manual = format!(
        "/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/steps/{gate}/manual/pass"
    );
    let wrong_gate = manual.replace(&gate, review["steps"][0]["id"].as_str().expect("step"));
    let refused = harness
        .call(
            Method::POST,
            &wrong_gate,
            Auth::Token(&harness.dave.token),
            None,
        )
        .await;
    assert_eq!(
        refused.code(),
        "DEVPIPE.00011403",
        "a job step is not a gate"
    );
    let started = harness
        .call(
            Method::POST,
            &manual,
            Auth::Token(&harness.dave.token),
            None,
        )
        .await;
    assert_eq!(started.body, json!({"success": true}), "{}", started.text);
    let ship = harness.claim().await;
    harness.finish(&ship, &[], JobStatus::Completed).await;
    harness.wait_status(&pipeline, &run_id, "COMPLETED").await;
}

#[tokio::test]
async fn a_refused_review_fails_the_run() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline(
            "refuse",
            review_and_manual_stage(&harness.dave.id),
            json!({}),
        )
        .await;
    let run = harness.run(&pipeline, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run").to_owned();
    let detail = harness.wait_status(&pipeline, &run_id, "PAUSED").await;
    let review = job(&detail, "JOB_Revw1");
    let uri = format!(
        "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}/refuse?approval_description=no",
        harness.project_a.id,
        review["id"].as_str().expect("job"),
        review["steps"][0]["id"].as_str().expect("step")
    );
    let refused = harness
        .call(Method::POST, &uri, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(refused.body, json!({"success": true}), "{}", refused.text);
    let failed = harness.wait_status(&pipeline, &run_id, "FAILED").await;
    assert_eq!(job(&failed, "JOB_Revw1")["status"], "FAILED");
}

#[tokio::test]
async fn a_delay_can_be_extended_passed_early_or_refused() {
    let harness = Harness::new().await;
    let definition = json!({"stages": [{"name": "Wait", "jobs": [
        {"name": "wait", "identifier": "JOB_Wait1", "steps": [
            {"name": "wait", "task": "official_devcloud_delay", "inputs": [{"key": "delay_time", "value": 600}]}]},
        {"name": "after", "identifier": "JOB_Aftr1", "depends_on": ["JOB_Wait1"], "steps": [crate::harness::shell("after")]}
    ]}]});
    let pipeline = harness
        .create_pipeline("delays", definition, json!({"concurrency_control": {"concurrency_number": 5, "exceed_action": "QUEUE", "enable": true}}))
        .await;
    let mut uris = Vec::new();
    for _ in 0..2 {
        let run = harness.run(&pipeline, json!({})).await;
        let run_id = run["pipeline_run_id"].as_str().expect("run").to_owned();
        let detail = harness.wait_status(&pipeline, &run_id, "PAUSED").await;
        let wait = job(&detail, "JOB_Wait1");
        uris.push((
            run_id.clone(),
            format!(
                "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/{run_id}/jobs/{}/steps/{}",
                harness.project_a.id,
                wait["id"].as_str().expect("job"),
                wait["steps"][0]["id"].as_str().expect("step")
            ),
        ));
    }
    let (first, first_uri) = &uris[0];
    let token = Auth::Token(&harness.dave.token);
    let extended = harness
        .call(
            Method::POST,
            &format!("{first_uri}/delay"),
            token.clone(),
            Some(json!({"delay_time": 30})),
        )
        .await;
    assert_eq!(extended.body, json!({"success": true}), "{}", extended.text);
    let too_long = harness
        .call(
            Method::POST,
            &format!("{first_uri}/delay"),
            token.clone(),
            Some(json!({"delay_time": 0})),
        )
        .await;
    assert_eq!(too_long.code(), "DEVPIPE.00010001");
    let passed = harness
        .call(
            Method::POST,
            &format!("{first_uri}/delay-pass"),
            token.clone(),
            None,
        )
        .await;
    assert_eq!(passed.body, json!({"success": true}), "{}", passed.text);
    let after = harness.claim().await;
    harness.finish(&after, &[], JobStatus::Completed).await;
    harness.wait_status(&pipeline, first, "COMPLETED").await;

    let (second, second_uri) = &uris[1];
    let refused = harness
        .call(
            Method::POST,
            &format!("{second_uri}/delay-refuse"),
            token.clone(),
            None,
        )
        .await;
    assert_eq!(refused.body, json!({"success": true}), "{}", refused.text);
    let failed = harness.wait_status(&pipeline, second, "FAILED").await;
    assert_eq!(job(&failed, "JOB_Wait1")["status"], "FAILED");
}
