//! The access matrix: every project route × {no credentials, expired, revoked, wrong signature,
//! stale `X-Sdk-Date`, another project, own project with another project's ids, viewer, own}.
//! S1: a foreign id answers exactly like an id that does not exist; nothing but the own-project
//! calls changes the store.

use crate::harness::{Auth, Harness, Reply, review_and_manual_stage};
use axum::http::{Method, StatusCode};
use runnel_store::{IdentityStore, PipelineStore, RunStore};
use serde_json::{Value, json};
use std::time::Duration;

/// The ids of one project's pipeline, run, review job and step, and manual-start gate.
#[derive(Clone)]
struct Ids {
    project: String,
    pipeline: String,
    run: String,
    job: String,
    step: String,
    gate: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

struct Route {
    method: Method,
    template: &'static str,
    body: Option<Value>,
    kind: Kind,
}

fn routes() -> Vec<Route> {
    let definition = json!({"stages": []}).to_string();
    let route = |method: Method, template: &'static str, body: Option<Value>, kind| Route {
        method,
        template,
        body,
        kind,
    };
    vec![
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/list",
            Some(json!({})),
            Kind::Read,
        ),
        route(Method::GET, "/v5/{p}/api/pipelines/{pl}", None, Kind::Read),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/list",
            Some(json!({"limit": 5})),
            Kind::Read,
        ),
        route(
            Method::GET,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/detail?pipeline_run_id={r}",
            None,
            Kind::Read,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/logs",
            Some(json!({"limit": 10, "sort": "asc"})),
            Kind::Read,
        ),
        route(
            Method::POST,
            "/v5/{p}/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/logs",
            Some(json!({"limit": 10, "sort": "desc"})),
            Kind::Read,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines",
            Some(json!({"name": "matrix-{n}", "is_publish": false, "definition": definition})),
            Kind::Write,
        ),
        route(
            Method::PUT,
            "/v5/{p}/api/pipelines/{pl}",
            Some(json!({"name": "renamed-{n}", "is_publish": false, "definition": definition})),
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/run",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/pass",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/refuse",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/delay",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/delay-pass",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/jobs/{j}/steps/{s}/delay-refuse",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/steps/{g}/manual/pass",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/steps/{g}/manual/refuse",
            None,
            Kind::Write,
        ),
        route(
            Method::POST,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/stop",
            None,
            Kind::Write,
        ),
        route(
            Method::PUT,
            "/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/retry",
            None,
            Kind::Write,
        ),
        // Last: the own-project call deletes the pipeline.
        route(
            Method::DELETE,
            "/v5/{p}/api/pipelines/{pl}",
            None,
            Kind::Write,
        ),
    ]
}

fn fill(template: &str, ids: &Ids, n: usize) -> String {
    template
        .replace("{p}", &ids.project)
        .replace("{pl}", &ids.pipeline)
        .replace("{r}", &ids.run)
        .replace("{j}", &ids.job)
        .replace("{s}", &ids.step)
        .replace("{g}", &ids.gate)
        .replace("{n}", &n.to_string())
}

async fn call(harness: &Harness, route: &Route, ids: &Ids, auth: Auth<'_>, n: usize) -> Reply {
    let uri = fill(route.template, ids, n);
    let body = route
        .body
        .as_ref()
        .map(|body| serde_json::from_str(&fill(&body.to_string(), ids, n)).expect("body"));
    harness.call(route.method.clone(), &uri, auth, body).await
}

async fn paused_run(harness: &Harness, project: &str, token: &str, approver: &str) -> Ids {
    let pipeline = harness
        .create_pipeline_in(
            project,
            token,
            "matrix",
            review_and_manual_stage(approver),
            json!({}),
        )
        .await;
    let reply = harness
        .call(
            Method::POST,
            &format!("/v5/{project}/api/pipelines/{pipeline}/run"),
            Auth::Token(token),
            None,
        )
        .await;
    let run = reply.body["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let mut changes = harness.engine.subscribe();
    let detail = loop {
        let detail = harness
            .store
            .run_detail(&run)
            .await
            .expect("read")
            .expect("run");
        if detail.run.status.as_str() == "PAUSED" {
            break detail;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), changes.recv()).await;
    };
    let review = &detail.stages[0].jobs[0];
    Ids {
        project: project.to_owned(),
        pipeline,
        run,
        job: review.id.clone(),
        step: review.steps[0].id.clone(),
        gate: detail.stages[1].pre[0].id.clone(),
    }
}

/// What must not change unless the caller may change it.
async fn snapshot(harness: &Harness, a: &Ids, b: &Ids) -> Vec<String> {
    let mut state = Vec::new();
    for ids in [a, b] {
        let pipeline = harness
            .store
            .pipeline(&ids.project, &ids.pipeline)
            .await
            .expect("read");
        state.push(format!(
            "{:?}",
            pipeline.map(|record| (record.name, record.current_version))
        ));
        state.push(format!(
            "runs {}",
            harness
                .store
                .count_runs(&ids.pipeline, &[])
                .await
                .expect("count")
        ));
        let detail = harness
            .store
            .run_detail(&ids.run)
            .await
            .expect("read")
            .expect("run");
        state.push(format!(
            "{} {:?}",
            detail.run.status,
            detail
                .stages
                .iter()
                .map(|stage| stage.status)
                .collect::<Vec<_>>()
        ));
        let page = harness
            .store
            .list_pipelines(
                &ids.project,
                &runnel_store::PipelineQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .expect("list");
        state.push(format!("pipelines {}", page.total));
    }
    state
}

#[tokio::test]
async fn every_route_times_every_identity() {
    let harness = Harness::new().await;
    let a = paused_run(
        &harness,
        &harness.project_a.id.clone(),
        &harness.alice.token,
        &harness.alice.id,
    )
    .await;
    let b = paused_run(
        &harness,
        &harness.project_b.id.clone(),
        &harness.carol.token,
        &harness.carol.id,
    )
    .await;
    let now = harness.engine.now();
    let expired = harness
        .store
        .issue_token(
            &harness.alice.id,
            "project:x",
            now - Duration::from_secs(25 * 3600),
            Duration::from_secs(24 * 3600),
        )
        .await
        .expect("token")
        .token;
    let revoked = harness.login("alice").await;
    harness
        .store
        .revoke_token(&revoked, now)
        .await
        .expect("revoke");
    let before = snapshot(&harness, &a, &b).await;
    let routes = routes();
    let mut n = 0;
    let mut checked = 0;

    for route in &routes {
        for (auth, code) in [
            (Auth::None, "DEV.00000001"),
            (Auth::Token(&expired), "APIGW.0301"),
            (Auth::Token(&revoked), "APIGW.0301"),
            (Auth::BadSignature, "APIGW.0301"),
            (Auth::StaleDate, "APIGW.0301"),
        ] {
            n += 1;
            let reply = call(&harness, route, &a, auth, n).await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::UNAUTHORIZED, code),
                "{} {}: {}",
                route.method,
                route.template,
                reply.text
            );
            checked += 1;
        }
        // Not a member: the project answers as if it did not exist, with either project's ids.
        for (ids, token) in [(&b, &harness.dave.token), (&a, &harness.carol.token)] {
            n += 1;
            let reply = call(&harness, route, ids, Auth::Token(token), n).await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::BAD_REQUEST, "DEVPIPE.00011412"),
                "{} {}: {}",
                route.method,
                route.template,
                reply.text
            );
            checked += 1;
        }
        let unknown_project = Ids {
            project: "0123456789abcdef0123456789abcdef".into(),
            ..a.clone()
        };
        n += 1;
        let reply = call(
            &harness,
            route,
            &unknown_project,
            Auth::Token(&harness.alice.token),
            n,
        )
        .await;
        assert_eq!(reply.code(), "DEVPIPE.00011412");
        checked += 1;

        // Own project id with another project's ids: exactly like ids that do not exist (S1).
        let absent = "fedcba9876543210fedcba9876543210".to_owned();
        let mixes = [
            (
                "pipeline",
                Ids {
                    pipeline: b.pipeline.clone(),
                    ..a.clone()
                },
                Ids {
                    pipeline: absent.clone(),
                    ..a.clone()
                },
                "DEVPIPE.00011401",
            ),
            (
                "run",
                Ids {
                    run: b.run.clone(),
                    ..a.clone()
                },
                Ids {
                    run: absent.clone(),
                    ..a.clone()
                },
                "DEVPIPE.00011402",
            ),
            (
                "job",
                Ids {
                    job: b.job.clone(),
                    ..a.clone()
                },
                Ids {
                    job: absent.clone(),
                    ..a.clone()
                },
                "DEVPIPE.00011403",
            ),
            (
                "step",
                Ids {
                    step: b.step.clone(),
                    ..a.clone()
                },
                Ids {
                    step: absent.clone(),
                    ..a.clone()
                },
                "DEVPIPE.00011403",
            ),
            (
                "gate",
                Ids {
                    gate: b.gate.clone(),
                    ..a.clone()
                },
                Ids {
                    gate: absent.clone(),
                    ..a.clone()
                },
                "DEVPIPE.00011403",
            ),
        ];
        for (what, foreign, missing, code) in mixes {
            let placeholder = match what {
                "pipeline" => "{pl}",
                "run" => "{r}",
                "job" => "{j}",
                "step" => "{s}",
                _ => "{g}",
            };
            if !route.template.contains(placeholder) {
                continue;
            }
            n += 1;
            let leaked = call(
                &harness,
                route,
                &foreign,
                Auth::Token(&harness.alice.token),
                n,
            )
            .await;
            let plain = call(
                &harness,
                route,
                &missing,
                Auth::Token(&harness.alice.token),
                n,
            )
            .await;
            assert_eq!(
                (leaked.status, leaked.code()),
                (StatusCode::BAD_REQUEST, code),
                "{what}: {} {}: {}",
                route.method,
                route.template,
                leaked.text
            );
            assert_eq!(
                leaked.body, plain.body,
                "S1: a foreign {what} id answers like a missing one"
            );
            checked += 1;
        }

        // A viewer reads and is refused every change.
        n += 1;
        let reply = call(&harness, route, &a, Auth::Token(&harness.vera.token), n).await;
        match route.kind {
            Kind::Read => assert_eq!(
                reply.status,
                StatusCode::OK,
                "{} {}: {}",
                route.method,
                route.template,
                reply.text
            ),
            Kind::Write => assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::FORBIDDEN, "DEVPIPE.00011405"),
                "{} {}: {}",
                route.method,
                route.template,
                reply.text
            ),
        }
        checked += 1;
    }
    assert_eq!(
        snapshot(&harness, &a, &b).await,
        before,
        "no refused call changed anything"
    );

    // The owner: every route answers without an authentication, permission or lookup error.
    for route in &routes {
        for auth in [Auth::Token(&harness.alice.token), Auth::Signed] {
            if route.method == Method::DELETE && matches!(auth, Auth::Signed) {
                continue;
            }
            n += 1;
            let reply = call(&harness, route, &a, auth, n).await;
            let allowed_state_errors = ["", "DEVPIPE.00011404"];
            assert!(
                reply.status == StatusCode::OK
                    || (reply.status == StatusCode::BAD_REQUEST
                        && allowed_state_errors.contains(&reply.code())),
                "{} {}: {} {}",
                route.method,
                route.template,
                reply.status,
                reply.text
            );
            checked += 1;
        }
    }
    let users = harness
        .store
        .members(&harness.project_a.id)
        .await
        .expect("members");
    assert_eq!(users.len(), 3);
    assert!(checked > 250, "{checked} checks");
    println!(
        "S1 access matrix: {} routes, {checked} checks, 0 leaks",
        routes.len()
    );
}
