//! The OpenAPI document: served without credentials, generated from the code, and covering
//! every route the router serves (read from the router itself, as the access matrix does).

use crate::harness::{Auth, Harness};
use crate::routes::served_routes;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;

/// Routes served but not yet in the document. Empty: every route is documented, and a new
/// route without `#[utoipa::path]` fails the test below.
const KNOWN_MISSING: &[&str] = &[];

async fn document(harness: &Harness) -> Value {
    let reply = harness
        .call(Method::GET, "/openapi.json", Auth::None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json");
    reply.body
}

fn documented(document: &Value) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_served_route_is_in_the_document() {
    let harness = Harness::new().await;
    let document = document(&harness).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    let documented = documented(&document);
    let served: BTreeSet<String> = served_routes(&harness.router)
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    let known: BTreeSet<String> = KNOWN_MISSING
        .iter()
        .map(|route| (*route).to_owned())
        .collect();
    let missing: Vec<&String> = served
        .iter()
        .filter(|route| !documented.contains(*route) && !known.contains(*route))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not in /openapi.json (annotate the handler with #[utoipa::path] and list it in src/openapi.rs):\n{}",
        missing
            .iter()
            .map(|route| route.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stale: Vec<&String> = documented.difference(&served).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
    let documented_now: Vec<&String> = known
        .iter()
        .filter(|route| documented.contains(*route))
        .collect();
    assert!(
        documented_now.is_empty(),
        "documented now, remove from KNOWN_MISSING: {documented_now:?}"
    );
    let gone: Vec<&String> = known.difference(&served).collect();
    assert!(
        gone.is_empty(),
        "no longer served, remove from KNOWN_MISSING: {gone:?}"
    );
    println!(
        "{} of {} routes documented; {} of other areas not yet",
        documented.len(),
        served.len(),
        known.len()
    );
}

#[tokio::test]
async fn the_document_describes_parameters_errors_and_authentication() {
    let harness = Harness::new().await;
    let document = document(&harness).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["token"]["name"], "X-Auth-Token");
    assert_eq!(schemes["aksk"]["name"], "Authorization");
    assert_eq!(
        document["paths"]["/v3/auth/tokens"]["post"]["security"],
        serde_json::json!([{}]),
        "login needs no credentials"
    );
    let detail = &document["paths"]["/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/detail"]
        ["get"];
    let names: Vec<&str> = detail["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|parameter| parameter["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "project_id",
            "pipeline_id",
            "pipeline_run_id",
            "pipeline_run_number"
        ]
    );
    assert_eq!(
        detail["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(
        document["paths"]["/v3/projects"]["get"]["responses"]["401"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/IamErrorBody"
    );
    let schemas = &document["components"]["schemas"];
    // Exact wire names, including the camelCase exceptions.
    assert!(
        schemas["PackageInfo"]["properties"]
            .get("packageType")
            .is_some()
    );
    assert!(
        schemas["TagUpdateBody"]["properties"]
            .get("tagId")
            .is_some()
    );
    assert!(schemas["JobRunDto"]["properties"].get("async").is_some());
    assert_eq!(
        schemas["PipelineBody"]["required"],
        serde_json::json!(["name", "is_publish", "definition"])
    );
    // A body whose fields are all optional may be left out (an empty body counts as `{}`).
    let paths = &document["paths"];
    assert_eq!(
        paths["/v5/{project_id}/api/pipelines/list"]["post"]["requestBody"]["required"],
        false
    );
    assert_eq!(
        paths["/v3/pipelines/list"]["post"]["requestBody"]["required"],
        false
    );
    assert_eq!(
        paths["/v5/{project_id}/api/pipelines"]["post"]["requestBody"]["required"],
        true
    );
    let stream = &document["paths"]["/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs/stream"]
        ["get"];
    assert!(
        stream["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "{stream}"
    );
}
