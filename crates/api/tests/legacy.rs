//! The legacy v3 pipeline API through the router (spec §3): the list across projects with
//! every filter and its limits, start with build parameters, status, stop, build results and
//! delete, on the same store and engine as v5.

#[allow(dead_code)]
#[path = "api/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use harness::{Auth, Harness, Reply, shell, two_stages};
use runnel_domain::status::JobStatus;
use runnel_store::PipelineStore;
use serde_json::{Value, json};

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

async fn list(harness: &Harness, token: &str, body: Value) -> Reply {
    call(
        harness,
        Method::POST,
        "/v3/pipelines/list",
        token,
        Some(body),
    )
    .await
}

fn names(reply: &Reply) -> Vec<String> {
    ok(reply)["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|item| item["pipeline_name"].as_str().expect("name").to_owned())
        .collect()
}

/// One job that takes a run-time `version`.
fn versioned() -> Value {
    json!({"variables": [{"name": "version", "type": "string", "value": "1.0", "is_runtime": true}]})
}

fn one_job() -> Value {
    json!({"stages": [{"name": "Build", "jobs": [{"name": "make", "identifier": "JOB_Make1", "steps": [shell("make")]}]}]})
}

/// Runs every job of a run to `status` as the fake agent.
async fn finish_run(harness: &Harness, jobs: usize, status: JobStatus) {
    for _ in 0..jobs {
        let dispatch = harness.claim().await;
        harness.finish(&dispatch, &[], status).await;
    }
}

#[tokio::test]
async fn the_list_spans_the_callers_projects_with_every_filter() {
    let harness = Harness::new().await;
    let alice = harness.alice.token.clone();
    let sources = json!({"sources": [{"type": "code", "params": {"git_type": "codehub",
        "git_url": "https://git.example.com/team/web.git", "ssh_git_url": "git@git.example.com:team/web.git"}}]});
    let web = harness.create_pipeline("web-ci", one_job(), sources).await;
    harness.clock.advance(std::time::Duration::from_secs(1));
    let api = harness
        .create_pipeline("api-ci", one_job(), json!({}))
        .await;
    harness.clock.advance(std::time::Duration::from_secs(1));
    let beta = harness
        .create_pipeline_in(
            &harness.project_b.id,
            &harness.carol.token,
            "beta-deploy",
            one_job(),
            json!({}),
        )
        .await;

    let everything = list(&harness, &alice, json!({})).await;
    assert_eq!(ok(&everything)["total"], 3, "Alice is in both projects");
    assert_eq!(ok(&everything)["limit"], 10);
    let dave = list(&harness, &harness.dave.token, json!({})).await;
    assert_eq!(
        names(&dave),
        ["api-ci", "web-ci"],
        "Dave only sees project A; never run, newest first"
    );

    // web-ci: run by Alice, completed; api-ci: failed; beta-deploy: run by Carol, still running.
    let web_run = harness.run(&web, json!({})).await["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    finish_run(&harness, 1, JobStatus::Completed).await;
    harness.wait_status(&web, &web_run, "COMPLETED").await;
    harness.clock.advance(std::time::Duration::from_secs(1));
    let api_run = harness.run(&api, json!({})).await["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    finish_run(&harness, 1, JobStatus::Failed).await;
    harness.wait_status(&api, &api_run, "FAILED").await;
    harness.clock.advance(std::time::Duration::from_secs(1));
    let reply = call(
        &harness,
        Method::POST,
        &format!("/v3/pipelines/{beta}/start"),
        &harness.carol.token,
        None,
    )
    .await;
    let beta_run = ok(&reply)["build_id"]
        .as_str()
        .expect("build_id")
        .to_owned();
    // The filters below expect beta's run RUNNING: wait until it is rather than rely on its
    // first engine step being taken in its creation's transaction (a run under concurrency
    // control, or one whose first step is left to the event loop, is INIT for a while).
    harness
        .wait_for_in(
            &harness.project_b.id,
            &harness.carol.token,
            &beta,
            &beta_run,
            "RUNNING",
            |detail| detail["status"] == "RUNNING",
        )
        .await;
    harness
        .store
        .set_favorite(&harness.alice.id, &api, true, harness.engine.now())
        .await
        .expect("favorite");

    let item =
        ok(&list(&harness, &alice, json!({"pipeline_name": "web"})).await)["result"][0].clone();
    assert_eq!(item["project_id"], harness.project_a.id.as_str());
    assert_eq!(item["project_name"], "alpha");
    assert_eq!(
        (item["creator_name"].clone(), item["executor_name"].clone()),
        (json!("alice"), json!("alice"))
    );
    assert_eq!(item["executor_id"], harness.alice.id.as_str());
    assert_eq!(item["watched"], "false", "a string");
    assert!(
        item["start_time"].as_str().expect("start").len() == 19,
        "yyyy-MM-dd HH:mm:ss"
    );

    let a = harness.project_a.id.clone();
    let b = harness.project_b.id.clone();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"project_ids": b}), vec!["beta-deploy"]),
        (
            json!({"project_ids": format!("{a},{b}"), "sort_key": "pipeline_name", "sort_dir": "asc"}),
            vec!["api-ci", "beta-deploy", "web-ci"],
        ),
        (
            json!({"projectIds": [a.clone()], "sortKey": "pipeline_name", "sortDir": "DESC"}),
            vec!["web-ci", "api-ci"],
        ),
        (
            json!({"creator_ids": harness.carol.id}),
            vec!["beta-deploy"],
        ),
        (
            json!({"executor_ids": harness.alice.id}),
            vec!["api-ci", "web-ci"],
        ),
        (json!({"pipeline_name": "CI"}), vec!["api-ci", "web-ci"]),
        (json!({"status": "completed"}), vec!["api-ci", "web-ci"]),
        (json!({"status": "running,waiting"}), vec!["beta-deploy"]),
        (json!({"outcome": "error"}), vec!["api-ci"]),
        (
            json!({"status": "completed,running", "outcome": "success"}),
            vec!["beta-deploy", "web-ci"],
        ),
        (
            json!({"status": "waiting,running,verifying,handling,suspending,completed", "outcome": "error,success,aborted"}),
            vec!["beta-deploy", "api-ci", "web-ci"],
        ),
        (
            json!({"git_url": "git@git.example.com:team/web.git"}),
            vec!["web-ci"],
        ),
        (
            json!({"gitUrl": "https://git.example.com/team/web.git"}),
            vec!["web-ci"],
        ),
        (
            json!({"git_url": "git@git.example.com:team/other.git"}),
            vec![],
        ),
        (json!({"watched": true}), vec!["api-ci"]),
        (
            json!({"watched": "false", "sort_key": "create_time", "sort_dir": "asc"}),
            vec!["web-ci", "beta-deploy"],
        ),
        (
            json!({"sort_key": "start_time", "sort_dir": "asc"}),
            vec!["web-ci", "api-ci", "beta-deploy"],
        ),
    ];
    for (body, expected) in cases {
        let reply = list(&harness, &alice, body.clone()).await;
        if names(&reply) != expected {
            // Say where every run stands, so that a failure here tells why.
            let web_detail = harness.run_detail(&web, &web_run).await;
            let api_detail = harness.run_detail(&api, &api_run).await;
            let beta_detail = harness
                .run_detail_in(
                    &harness.project_b.id,
                    &harness.carol.token,
                    &beta,
                    &beta_run,
                )
                .await;
            panic!(
                "{body}: {:?} instead of {expected:?}; runs: web {}, api {}, beta {}",
                names(&reply),
                web_detail["status"],
                api_detail["status"],
                beta_detail["status"]
            );
        }
        assert_eq!(ok(&reply)["total"], expected.len(), "{body}");
    }
    let paged = list(
        &harness,
        &alice,
        json!({"offset": 2, "limit": 10, "sort_key": "pipeline_name", "sort_dir": "asc"}),
    )
    .await;
    assert_eq!(names(&paged), ["web-ci"]);
    assert_eq!(
        (ok(&paged)["offset"].clone(), ok(&paged)["total"].clone()),
        (json!(2), json!(3))
    );
    // The seed's example shape (every id list as one comma-separated string).
    let seed = list(&harness, &alice, json!({"pipeline_name": "", "project_ids": a, "creator_ids": harness.alice.id,
        "executor_ids": harness.alice.id, "status": "waiting,running,verifying,handling,suspending,completed",
        "outcome": "error,success,aborted", "sort_key": "pipeline_name", "sort_dir": "desc", "git_url": "", "offset": 0, "limit": 10})).await;
    assert_eq!(names(&seed), ["web-ci", "api-ci"]);
}

#[tokio::test]
async fn list_limits_are_enforced_with_an_error_code() {
    let harness = Harness::new().await;
    let alice = harness.alice.token.clone();
    let eleven: Vec<String> = (0..11).map(|index| format!("{index:032x}")).collect();
    let cases = [
        (json!({"limit": 9}), "limit"),
        (json!({"limit": 51}), "limit"),
        (json!({"limit": 0}), "limit"),
        (json!({"offset": -1}), "offset"),
        (json!({"project_ids": eleven.join(",")}), "project_ids"),
        (json!({"creator_ids": eleven}), "creator_ids"),
        (json!({"executor_ids": eleven.join(",")}), "executor_ids"),
        (json!({"project_ids": "not an id!"}), "project_ids"),
        (json!({"status": "finished"}), "status"),
        (json!({"outcome": "failed"}), "outcome"),
        (json!({"sort_key": "update_time"}), "sort_key"),
        (json!({"sort_dir": "up"}), "sort_dir"),
        (json!({"limit": "ten"}), "limit"),
    ];
    for (body, field) in cases {
        let reply = list(&harness, &alice, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), "DEVPIPE.00010001", "{body}");
        assert!(
            reply.body["error_msg"]
                .as_str()
                .expect("msg")
                .contains(field),
            "{body}: {}",
            reply.text
        );
    }
    for limit in [10, 50] {
        ok(&list(&harness, &alice, json!({"limit": limit})).await);
    }
    let ten: Vec<String> = (0..10).map(|index| format!("{index:032x}")).collect();
    ok(&list(&harness, &alice, json!({"project_ids": ten.join(",")})).await);
    let anonymous = harness
        .call(
            Method::POST,
            "/v3/pipelines/list",
            Auth::None,
            Some(json!({})),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn start_status_stop_build_results_and_delete_use_the_v5_engine() {
    let harness = Harness::new().await;
    let (alice, dave, vera, carol) = (
        harness.alice.token.clone(),
        harness.dave.token.clone(),
        harness.vera.token.clone(),
        harness.carol.token.clone(),
    );
    let pipeline = harness
        .create_pipeline("legacy", two_stages(), versioned())
        .await;
    let base = format!("/v3/pipelines/{pipeline}");

    let started = call(
        &harness,
        Method::POST,
        &format!("{base}/start"),
        &dave,
        Some(json!({"build_params": [{"name": "version", "value": "1.0.7"}]})),
    )
    .await;
    let started = ok(&started).clone();
    assert_eq!(started["pipeline_id"], pipeline.as_str());
    let build_id = started["build_id"].as_str().expect("build_id").to_owned();
    let detail = harness.run_detail(&pipeline, &build_id).await;
    assert_eq!(detail["executor_name"], "dave", "the same run in v5");
    assert_eq!(detail["trigger_type"], "Manual");

    let status = call(
        &harness,
        Method::GET,
        &format!("{base}/status?build_id={build_id}"),
        &vera,
        None,
    )
    .await;
    let status = ok(&status).clone();
    assert_eq!(status["build_id"], build_id.as_str());
    assert_eq!(status["executor"], "dave");
    assert!(
        ["waiting", "running"].contains(&status["status"].as_str().expect("status")),
        "{status}"
    );
    assert_eq!(status["outcome"], "");
    assert_eq!(
        status["parameters"],
        json!([{"name": "version", "value": "1.0.7"}])
    );
    assert_eq!(status["states"].as_array().expect("states").len(), 2);
    assert_eq!(status["states"][0]["type"], "stage");
    assert_eq!(status["states"][0]["children"][0]["type"], "task");
    assert_eq!(status["states"][0]["children"][0]["name"], "compile");

    finish_run(&harness, 3, JobStatus::Completed).await;
    harness.wait_status(&pipeline, &build_id, "COMPLETED").await;
    let status = call(
        &harness,
        Method::GET,
        &format!("{base}/status"),
        &vera,
        None,
    )
    .await;
    let status = ok(&status).clone();
    assert_eq!(
        status["build_id"],
        build_id.as_str(),
        "the latest run without build_id"
    );
    assert_eq!(
        (status["status"].clone(), status["outcome"].clone()),
        (json!("completed"), json!("success"))
    );
    assert_eq!(status["states"][1]["children"][0]["outcome"], "success");
    assert_eq!(status["elapsed_time"], "00:00:00");

    // A second run, stopped.
    let second = call(
        &harness,
        Method::POST,
        &format!("{base}/start"),
        &dave,
        None,
    )
    .await;
    let second = ok(&second)["build_id"].as_str().expect("build").to_owned();
    let stopped = call(
        &harness,
        Method::POST,
        &format!("{base}/stop?build_id={second}"),
        &dave,
        None,
    )
    .await;
    assert_eq!(
        ok(&stopped),
        &json!({"pipeline_id": pipeline, "pipeline_name": "legacy"})
    );
    harness.wait_status(&pipeline, &second, "CANCELED").await;
    let status = call(
        &harness,
        Method::GET,
        &format!("{base}/status?build_id={second}"),
        &dave,
        None,
    )
    .await;
    assert_eq!(
        (
            ok(&status)["status"].clone(),
            ok(&status)["outcome"].clone()
        ),
        (json!("completed"), json!("aborted"))
    );

    // Build results of the project over a date range (the harness clock is 2025-06-15 UTC).
    let results = call(&harness, Method::GET,
        &format!("/v3/pipelines/build-result?project_id={}&start_date=2025-06-15&end_date=2025-06-15&offset=0&limit=10", harness.project_a.id),
        &vera, None).await;
    let results = ok(&results).clone();
    assert_eq!(results["total"], 2);
    let outcomes: Vec<&str> = results["build_results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| item["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["aborted", "success"], "newest first");
    assert_eq!(results["build_results"][1]["elapse_time"], "0");
    let empty = call(&harness, Method::GET,
        &format!("/v3/pipelines/build-result?project_id={}&start_date=2025-06-16&end_date=2025-06-20&offset=0&limit=10", harness.project_a.id),
        &vera, None).await;
    assert_eq!(ok(&empty)["total"], 0);
    for (query, field) in [
        ("start_date=2025-05-01&end_date=2025-06-15", "end_date"),
        ("start_date=2025-06-15&end_date=2025-06-14", "end_date"),
        ("start_date=yesterday&end_date=2025-06-15", "start_date"),
        ("end_date=2025-06-15", "start_date"),
    ] {
        let reply = call(
            &harness,
            Method::GET,
            &format!(
                "/v3/pipelines/build-result?project_id={}&{query}&offset=0&limit=10",
                harness.project_a.id
            ),
            &vera,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.text.contains(field), "{query}: {}", reply.text);
    }
    let foreign = call(&harness, Method::GET,
        &format!("/v3/pipelines/build-result?project_id={}&start_date=2025-06-15&end_date=2025-06-15&offset=0&limit=10", harness.project_b.id),
        &dave, None).await;
    assert_eq!(foreign.code(), "DEVPIPE.00011412");

    // Who may do what; other projects' pipelines look like missing ones.
    let viewer = call(
        &harness,
        Method::POST,
        &format!("{base}/start"),
        &vera,
        None,
    )
    .await;
    assert_eq!(
        (viewer.status, viewer.code()),
        (StatusCode::FORBIDDEN, "DEVPIPE.00011405")
    );
    let outsider = call(
        &harness,
        Method::GET,
        &format!("{base}/status"),
        &carol,
        None,
    )
    .await;
    let missing = call(
        &harness,
        Method::GET,
        "/v3/pipelines/0123456789abcdef0123456789abcdef/status",
        &carol,
        None,
    )
    .await;
    assert_eq!(
        (outsider.status, outsider.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011401")
    );
    assert_eq!(
        outsider.body, missing.body,
        "no difference between foreign and missing"
    );
    let developer = call(&harness, Method::DELETE, &base, &dave, None).await;
    assert_eq!(
        developer.status,
        StatusCode::FORBIDDEN,
        "deleting needs the admin role"
    );
    let bad_param = call(
        &harness,
        Method::POST,
        &format!("{base}/start"),
        &dave,
        Some(json!({"build_params": [{"name": "version"}]})),
    )
    .await;
    assert!(
        bad_param.text.contains("build_params[0].value"),
        "{}",
        bad_param.text
    );
    let no_build = call(&harness, Method::POST, &format!("{base}/stop"), &dave, None).await;
    assert!(no_build.text.contains("build_id"), "{}", no_build.text);
    let unknown_run = call(
        &harness,
        Method::POST,
        &format!("{base}/stop?build_id=0123456789abcdef0123456789abcdef"),
        &dave,
        None,
    )
    .await;
    assert_eq!(unknown_run.code(), "DEVPIPE.00011402");

    let deleted = call(&harness, Method::DELETE, &base, &alice, None).await;
    assert_eq!(
        ok(&deleted),
        &json!({"pipeline_id": pipeline, "pipeline_name": "legacy"})
    );
    assert!(
        harness
            .store
            .pipeline_by_id(&pipeline)
            .await
            .expect("read")
            .is_none()
    );
    let again = call(&harness, Method::DELETE, &base, &alice, None).await;
    assert_eq!(again.code(), "DEVPIPE.00011401");
}
