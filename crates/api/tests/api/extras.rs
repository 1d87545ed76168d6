//! The routes around pipelines and runs besides CRUD: batch latest status and versions,
//! disable/enable, system parameters (§4.6, §4.8); step outputs and artifacts (§5.7, §5.8);
//! resume and cancel-queuing (§5.11).

use crate::harness::{Auth, Harness, two_stages};
use axum::http::{Method, StatusCode};
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_store::{JobQueue, NewArtifact, RunStore, StepReport};
use serde_json::{Value, json};

const ABSENT: &str = "fedcba9876543210fedcba9876543210";

#[tokio::test]
async fn batch_status_and_versions_answer_top_level_arrays_for_own_pipelines_only() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let ran = harness
        .create_pipeline("ran", two_stages(), json!({}))
        .await;
    let idle = harness
        .create_pipeline("idle", two_stages(), json!({}))
        .await;
    let foreign = harness
        .create_pipeline_in(
            &harness.project_b.id,
            &harness.carol.token,
            "foreign",
            two_stages(),
            json!({}),
        )
        .await;
    harness.run(&ran, json!({})).await;
    let second = harness.run(&ran, json!({})).await;
    harness
        .call(
            Method::POST,
            &format!("/v5/{}/api/pipelines/{foreign}/run", harness.project_b.id),
            Auth::Token(&harness.carol.token),
            None,
        )
        .await;

    let status = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/status"),
            Auth::Token(&harness.vera.token),
            Some(json!([ran, idle, foreign, ABSENT, "not an id!"])),
        )
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    let items = status.body.as_array().expect("a top-level array");
    assert_eq!(
        items.len(),
        1,
        "only the own pipeline with runs: {}",
        status.text
    );
    assert_eq!(items[0]["pipeline_id"], ran.as_str());
    assert_eq!(items[0]["pipeline_run_id"], second["pipeline_run_id"]);
    assert_eq!(items[0]["run_number"], 2);
    for field in [
        "executor_id",
        "executor_name",
        "stage_status_list",
        "status",
        "trigger_type",
        "build_params",
        "start_time",
        "detail_url",
    ] {
        assert!(items[0].get(field).is_some(), "PipelineLatestRun.{field}");
    }
    let empty = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/status"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(empty.body, json!([]));
    let object = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/status"),
            Auth::Token(&harness.alice.token),
            Some(json!({"ids": [ran]})),
        )
        .await;
    assert_eq!(object.code(), "DEVPIPE.00010001", "{}", object.text);
    let too_many: Vec<String> = (0..101).map(|index| format!("{index:032x}")).collect();
    let refused = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/status"),
            Auth::Token(&harness.alice.token),
            Some(json!(too_many)),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00010001")
    );
    let wrong_type = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/status"),
            Auth::Token(&harness.alice.token),
            Some(json!([5])),
        )
        .await;
    assert!(
        wrong_type.body["error_msg"]
            .as_str()
            .unwrap_or("")
            .contains("[0]"),
        "{}",
        wrong_type.text
    );

    let versions = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/pipelines-version"),
            Auth::Token(&harness.alice.token),
            Some(json!([{"pipeline_id": ran}, {"pipeline_id": foreign}, {"pipeline_id": idle}])),
        )
        .await;
    assert_eq!(versions.status, StatusCode::OK, "{}", versions.text);
    assert_eq!(
        versions.body,
        json!({
            ran.clone(): {"pipelineId": ran, "manifestVersion": "3.0"},
            idle.clone(): {"pipelineId": idle, "manifestVersion": "3.0"},
        })
    );
}

#[tokio::test]
async fn a_disabled_pipeline_refuses_runs_and_updates_until_enabled() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let pipeline = harness
        .create_pipeline("switch", two_stages(), json!({}))
        .await;
    let ban = format!("/v5/{project}/api/pipelines/{pipeline}/ban");
    let viewer = harness
        .call(Method::PUT, &ban, Auth::Token(&harness.vera.token), None)
        .await;
    assert_eq!(
        (viewer.status, viewer.code()),
        (StatusCode::FORBIDDEN, "DEVPIPE.00011405")
    );
    let banned = harness
        .call(Method::PUT, &ban, Auth::Token(&harness.dave.token), None)
        .await;
    assert_eq!(banned.body, json!({"success": true}), "{}", banned.text);
    let detail = harness
        .call(
            Method::GET,
            &format!("/v5/{project}/api/pipelines/{pipeline}"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(detail.body["banned"], true);
    let run = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        (run.status, run.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011404"),
        "{}",
        run.text
    );
    assert_eq!(
        harness
            .store
            .count_runs(&pipeline, &[])
            .await
            .expect("count"),
        0
    );
    let update = harness
        .call(
            Method::PUT,
            &format!("/v5/{project}/api/pipelines/{pipeline}"),
            Auth::Token(&harness.alice.token),
            Some(json!({"name": "switch", "is_publish": false, "definition": two_stages().to_string()})),
        )
        .await;
    assert_eq!(update.code(), "DEVPIPE.00011404");
    let unbanned = harness
        .call(
            Method::PUT,
            &format!("/v5/{project}/api/pipelines/{pipeline}/unban"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(unbanned.body, json!({"success": true}));
    harness.run(&pipeline, json!({})).await;
    assert_eq!(
        harness
            .store
            .count_runs(&pipeline, &[])
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn system_parameters_list_the_fixed_ones_and_each_sources_seven() {
    let harness = Harness::new().await;
    let sources = json!({"sources": [
        {"type": "code", "params": {"git_type": "github", "git_url": "https://git.example.com/app.git", "alias": "app", "repo_name": "demo-app"}},
        {"type": "code", "params": {"git_type": "github", "git_url": "https://git.example.com/lib-x.git", "repo_name": "lib-x"}}
    ]});
    let pipeline = harness.create_pipeline("vars", two_stages(), sources).await;
    let reply = harness
        .call(
            Method::GET,
            &format!(
                "/v5/{}/api/pipelines/{pipeline}/list-system-vars",
                harness.project_a.id
            ),
            Auth::Token(&harness.vera.token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let items = reply.body.as_array().expect("array");
    let names: Vec<&str> = items
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert_eq!(
        names[..4],
        [
            "PROJECT_ID",
            "PIPELINE_ID",
            "PIPELINE_NAME",
            "PIPELINE_NUMBER"
        ]
    );
    assert!(names.contains(&"app_TARGET_BRANCH"), "{names:?}");
    assert!(
        names.contains(&"lib_x_COMMIT_ID_SHORT"),
        "repository name made a key: {names:?}"
    );
    assert_eq!(names.len(), 14 + 2 * 7);
    let first = &items[0];
    for key in [
        "name",
        "value",
        "type",
        "description",
        "isShow",
        "ordinal",
        "isAlias",
        "kind",
        "contextName",
        "sourceIdentifier",
    ] {
        assert!(first.get(key).is_some(), "{key}: {first}");
    }
    let alias = items
        .iter()
        .find(|item| item["name"] == "app_TAG")
        .expect("app_TAG");
    assert_eq!(
        (alias["isAlias"].clone(), alias["sourceIdentifier"].clone()),
        (json!(true), json!("app"))
    );
    let ordinals: Vec<i64> = items
        .iter()
        .filter_map(|item| item["ordinal"].as_i64())
        .collect();
    assert_eq!(ordinals, (1..=28).collect::<Vec<_>>());
}

#[tokio::test]
async fn step_outputs_and_artifacts_of_a_run_are_listed_for_its_own_steps_only() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let pipeline = harness
        .create_pipeline("outputs", two_stages(), json!({}))
        .await;
    let started = harness.run(&pipeline, json!({})).await;
    let run_id = started["pipeline_run_id"].as_str().expect("run").to_owned();
    let dispatch = harness.claim().await;
    let step = dispatch.step_run_ids[0].clone();
    let now = harness.engine.now();
    harness
        .engine
        .report_step(
            &dispatch.token,
            StepReport {
                step_run_id: step.clone(),
                status: StepStatus::Completed,
                exit_code: Some(0),
                message: None,
                at: now,
                started_at: None,
                outputs: vec![
                    ("tests_passed".into(), json!("42")),
                    ("coverage".into(), json!(81.5)),
                ],
            },
        )
        .await
        .expect("report");
    harness
        .store
        .record_artifact(
            &dispatch.token,
            NewArtifact {
                step_run_id: step.clone(),
                name: "demo-app.jar".into(),
                version: "1.0.7".into(),
                package_type: "jar".into(),
                artifact_type: "file".into(),
                upload_target: "local".into(),
                uri: "/demo-app/1.0.7/demo-app.jar".into(),
                download_url: "https://ci.example.com/artifacts/1/download".into(),
                sha256: Some(
                    "9e76662fa829a1e942908ba320bbf7bc0fe0c1ddccf563f5868f8be3e7bb4cef".into(),
                ),
                file_size: Some(1_048_576),
                build_no: "1".into(),
                daily_build_number: "20250301.1".into(),
                at: now,
            },
        )
        .await
        .expect("artifact");
    harness
        .complete_steps(&dispatch, JobStatus::Completed)
        .await;

    let run = format!("/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{run_id}");
    let all = harness
        .call(
            Method::GET,
            &format!("{run}/steps/outputs"),
            Auth::Token(&harness.vera.token),
            None,
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.body["current_system_time"], harness.clock_now());
    assert_eq!(
        all.body["step_outputs"],
        json!([{"step_run_id": step, "output_result": [{"key": "coverage", "value": 81.5}, {"key": "tests_passed", "value": "42"}]}]),
        "{}",
        all.text
    );
    let detail = harness.run_detail(&pipeline, &run_id).await;
    let other_step = detail["stages"][1]["jobs"][0]["steps"][0]["id"]
        .as_str()
        .expect("step")
        .to_owned();
    let chosen = harness
        .call(
            Method::GET,
            &format!("{run}/steps/outputs?step_run_ids={other_step}%2C{step}"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        chosen.body["step_outputs"][0],
        json!({"step_run_id": other_step, "output_result": []})
    );
    assert_eq!(chosen.body["step_outputs"][1]["step_run_id"], step.as_str());
    let unknown = harness
        .call(
            Method::GET,
            &format!("{run}/steps/outputs?step_run_ids={ABSENT}"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011403")
    );

    let artifacts = harness
        .call(
            Method::GET,
            &format!("{run}/artifacts"),
            Auth::Token(&harness.vera.token),
            None,
        )
        .await;
    assert_eq!(artifacts.status, StatusCode::OK, "{}", artifacts.text);
    assert_eq!(
        artifacts.body,
        json!({"artifacts": [{
            "project_id": project, "name": "demo-app.jar", "artifact_version": "1.0.7", "upload_target": "local",
            "artifact_package_type": "jar", "artifact_uri": "/demo-app/1.0.7/demo-app.jar",
            "artifact_download_url_with_id": "https://ci.example.com/artifacts/1/download", "artifact_type": "file",
            "hash_code": [{"hash_type": "SHA256", "hash_value": "9e76662fa829a1e942908ba320bbf7bc0fe0c1ddccf563f5868f8be3e7bb4cef"}],
            "job_id": dispatch.job_run_id, "build_no": "1", "daily_build_number": "20250301.1", "file_size": "1048576"
        }]})
    );
    let detail = harness.run_detail(&pipeline, &run_id).await;
    assert_eq!(
        detail["artifacts"],
        json!([{"name": "demo-app.jar", "packageType": "jar", "version": "1.0.7", "downloadUrl": "https://ci.example.com/artifacts/1/download"}])
    );
}

#[tokio::test]
async fn a_queued_run_can_be_taken_out_of_the_queue_and_resume_needs_a_suspended_step() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let pipeline = harness
        .create_pipeline("queue", two_stages(), json!({"concurrency_control": {"concurrency_number": 1, "exceed_action": "QUEUE", "enable": true}}))
        .await;
    let first = harness.run(&pipeline, json!({})).await;
    let first_id = first["pipeline_run_id"].as_str().expect("run").to_owned();
    let second = harness.run(&pipeline, json!({})).await;
    let queued = second["pipeline_run_id"].as_str().expect("run").to_owned();
    let queue_id = second["error"]["queue_id"]
        .as_str()
        .expect("queue id")
        .to_owned();
    let cancel = |run: &str, queue: &str| {
        format!("/v5/{project}/api/pipelines/{pipeline}/{run}/cancel-queuing/{queue}")
    };

    let wrong_queue = harness
        .call(
            Method::POST,
            &cancel(&queued, ABSENT),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        wrong_queue.code(),
        "DEVPIPE.00011402",
        "{}",
        wrong_queue.text
    );
    let running = harness
        .call(
            Method::POST,
            &cancel(&first_id, &first_id),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        (running.status, running.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011404"),
        "{}",
        running.text
    );
    let viewer = harness
        .call(
            Method::POST,
            &cancel(&queued, &queue_id),
            Auth::Token(&harness.vera.token),
            None,
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    let removed = harness
        .call(
            Method::POST,
            &cancel(&queued, &queue_id),
            Auth::Token(&harness.dave.token),
            None,
        )
        .await;
    assert_eq!(removed.body, json!({"success": true}), "{}", removed.text);
    let detail = harness.wait_status(&pipeline, &queued, "CANCELED").await;
    assert!(
        detail["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|stage| stage["jobs"].as_array().into_iter().flatten())
            .all(|job| job["start_time"] == Value::Null),
        "nothing of the queued run started: {detail:#}"
    );
    let first_detail = harness.run_detail(&pipeline, &first_id).await;
    assert_ne!(
        first_detail["status"], "CANCELED",
        "the running run is untouched"
    );

    // Resume: an existing step that is not suspended is refused; a foreign step is not found.
    let dispatch = harness.claim().await;
    let resume = |job: &str, step: &str| {
        format!(
            "/v5/{project}/api/pipelines/{pipeline}/pipeline-runs/{first_id}/jobs/{job}/steps/{step}/resume"
        )
    };
    let not_suspended = harness
        .call(
            Method::POST,
            &resume(&dispatch.job_run_id, &dispatch.step_run_ids[0]),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(
        (not_suspended.status, not_suspended.code()),
        (StatusCode::BAD_REQUEST, "DEVPIPE.00011404")
    );
    let missing = harness
        .call(
            Method::POST,
            &resume(&dispatch.job_run_id, ABSENT),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(missing.code(), "DEVPIPE.00011403");
}

#[tokio::test]
async fn the_pipeline_list_filters_by_latest_run_tags_creators_groups_and_components() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let one_job = json!({"stages": [{"name": "Build", "jobs": [{"name": "a", "identifier": "JOB_a1", "steps": [crate::harness::shell("x")]}]}]});
    let done = harness
        .create_pipeline("done", one_job.clone(), json!({}))
        .await;
    let failed = harness
        .create_pipeline_in(
            &project,
            &harness.dave.token,
            "failed",
            one_job.clone(),
            json!({}),
        )
        .await;
    let component = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines?component_id=c1"),
            Auth::Token(&harness.alice.token),
            Some(
                json!({"name": "running", "is_publish": false, "definition": one_job.to_string()}),
            ),
        )
        .await;
    let running = component.body["pipeline_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let idle = harness.create_pipeline("idle", one_job, json!({})).await;

    // done: COMPLETED by alice; failed: FAILED, started by dave, then disabled; running: RUNNING.
    harness.run(&done, json!({})).await;
    let dispatch = harness.claim().await;
    harness.finish(&dispatch, &[], JobStatus::Completed).await;
    let by_dave = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/{failed}/run"),
            Auth::Token(&harness.dave.token),
            None,
        )
        .await;
    let failed_run = by_dave.body["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let dispatch = harness.claim().await;
    harness.finish(&dispatch, &[], JobStatus::Failed).await;
    harness.wait_status(&failed, &failed_run, "FAILED").await;
    harness
        .call(
            Method::PUT,
            &format!("/v5/{project}/api/pipelines/{failed}/ban"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    harness.run(&running, json!({})).await;
    let dispatch = harness.claim().await;
    harness.start_steps(&dispatch, &[]).await;

    // A tag on `done`, which also sits in a subgroup.
    harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipeline-tag/create"),
            Auth::Token(&harness.alice.token),
            Some(json!({"name": "gold", "color": "#ffd700"})),
        )
        .await;
    let tags = harness
        .call(
            Method::GET,
            &format!("/v5/{project}/api/pipeline-tag/list"),
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    let tag = tags.body[0]["tag_id"].as_str().expect("tag").to_owned();
    harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipeline-tag/set-tags"),
            Auth::Token(&harness.alice.token),
            Some(json!({"pipeline_ids": [done], "tag_ids": [tag]})),
        )
        .await;
    let parent = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipeline-group/create"),
            Auth::Token(&harness.alice.token),
            Some(json!({"name": "parent", "project_id": project})),
        )
        .await;
    let parent = parent.body["id"].as_str().expect("group").to_owned();
    let child = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipeline-group/create"),
            Auth::Token(&harness.alice.token),
            Some(json!({"name": "child", "project_id": project, "parent_id": parent})),
        )
        .await;
    let child = child.body["id"].as_str().expect("group").to_owned();
    harness
        .call(Method::POST, &format!("/v5/{project}/api/pipeline-group/pipeline/move"), Auth::Token(&harness.alice.token), Some(json!({"group_id": child, "pipelines": [{"pipeline_id": done, "pipeline_name": "done"}]})))
        .await;

    let now = harness.clock_now();
    let cases = [
        (json!({"status": ["COMPLETED"]}), vec![&done]),
        (
            json!({"status": ["FAILED", "RUNNING"]}),
            vec![&failed, &running],
        ),
        (json!({"status": ["PAUSED"]}), vec![]),
        (json!({"tag_list": [tag]}), vec![&done]),
        (json!({"creator_ids": [harness.dave.id]}), vec![&failed]),
        (
            json!({"creator_ids": [harness.dave.id, harness.alice.id]}),
            vec![&done, &failed, &running, &idle],
        ),
        (json!({"executor_ids": [harness.dave.id]}), vec![&failed]),
        (json!({"component_id": "c1"}), vec![&running]),
        (
            json!({"exclude_pipeline_id": done}),
            vec![&failed, &running, &idle],
        ),
        (json!({"is_banned": false}), vec![&done, &running, &idle]),
        (json!({"group_path_id": parent}), vec![&done]),
        (json!({"group_path_id": child}), vec![&done]),
        (
            json!({"start_time": now, "end_time": now.to_string()}),
            vec![&done, &failed, &running],
        ),
        (json!({"start_time": now + 1}), vec![]),
        (
            json!({"pipeline_run_update_time": now - 1}),
            vec![&done, &failed, &running],
        ),
        (json!({"manifest_version_list": ["2.0"]}), vec![]),
        (
            json!({"manifest_version_list": ["3.0"], "project_ids": [project]}),
            vec![&done, &failed, &running, &idle],
        ),
    ];
    for (body, expected) in cases {
        let mut body = body;
        body["sort_key"] = json!("name");
        body["sort_dir"] = json!("asc");
        let reply = harness
            .call(
                Method::POST,
                &format!("/v5/{project}/api/pipelines/list"),
                Auth::Token(&harness.vera.token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text);
        let mut got: Vec<String> = reply.body["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .map(|item| item["pipeline_id"].as_str().unwrap_or("").to_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = expected.into_iter().cloned().collect();
        want.sort();
        assert_eq!(got, want, "{body}");
        assert_eq!(reply.body["total"], want.len(), "{body}");
    }
    for (body, field) in [
        (json!({"status": ["SLEEPING"]}), "status[0]"),
        (
            json!({"project_ids": [harness.project_b.id]}),
            "project_ids",
        ),
        (json!({"start_time": "yesterday"}), "start_time"),
        (json!({"tag_list": "gold"}), "tag_list"),
    ] {
        let reply = harness
            .call(
                Method::POST,
                &format!("/v5/{project}/api/pipelines/list"),
                Auth::Token(&harness.alice.token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.code(), "DEVPIPE.00010001", "{body}: {}", reply.text);
        assert!(
            reply.body["error_msg"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{body}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn the_run_list_with_job_details_keeps_only_runs_with_the_job() {
    let harness = Harness::new().await;
    let pipeline = harness
        .create_pipeline("jobs", two_stages(), json!({}))
        .await;
    harness.run(&pipeline, json!({})).await;
    harness.run(&pipeline, json!({})).await;
    let list = format!(
        "/v5/{}/api/pipelines/{pipeline}/pipeline-runs/list",
        harness.project_a.id
    );
    for (body, expected) in [
        (json!({"show_job_details": true, "job_id": "JOB_Cmpl1"}), 2),
        (json!({"show_job_details": true, "job_id": "JOB_nope"}), 0),
        (json!({"job_id": "JOB_nope"}), 2),
    ] {
        let reply = harness
            .call(
                Method::POST,
                &list,
                Auth::Token(&harness.vera.token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(
            (
                reply.body["total"].clone(),
                reply.body["pipeline_runs"].as_array().map(Vec::len)
            ),
            (json!(expected), Some(expected)),
            "{body}"
        );
    }
    let detailed = harness
        .call(
            Method::POST,
            &list,
            Auth::Token(&harness.vera.token),
            Some(json!({"show_job_details": true, "job_id": "JOB_Cmpl1", "stage_id": ""})),
        )
        .await;
    let jobs = &detailed.body["pipeline_runs"][0]["stage_status_list"][1]["jobs"];
    assert_eq!(
        jobs[0]["identifier"], "JOB_Ship1",
        "the last stage's jobs by default: {}",
        detailed.text
    );
}
