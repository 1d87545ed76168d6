//! The routes the router really serves, read from the router itself (its `Debug` output lists
//! every path with the methods it allows), so tests that must cover every route cannot miss
//! one that is added later.

use axum::Router;
use std::collections::{BTreeMap, BTreeSet};

/// `(method, path template)` of every route, e.g. `("GET", "/v5/{project_id}/api/pipelines/{pipeline_id}")`.
/// `HEAD` (implied by `GET`) is left out.
pub(crate) fn served_routes(router: &Router) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    // Only the main path router; the fallback router has its own ids.
    let main = text.split("fallback_router:").next().unwrap_or(&text);
    let paths_at = main
        .find("paths: {")
        .expect("the router's Debug output lists its paths");
    let (routes_part, paths_part) = main.split_at(paths_at);
    let mut paths = BTreeMap::new();
    for entry in paths_part["paths: {".len()..].split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once(')').expect("RouteId(n)");
        let path = rest.split('"').nth(1).expect("a quoted path");
        paths.insert(id.to_owned(), path.to_owned());
    }
    let mut methods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in routes_part.split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once(')').expect("RouteId(n)");
        let end = rest.find("RouteId(").unwrap_or(rest.len());
        let endpoint = &rest[..end];
        let allowed = endpoint
            .split("allow_header: Bytes(b\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| {
                panic!("route {id} has no method list (a nested service?): {endpoint}")
            });
        methods.insert(
            id.to_owned(),
            allowed
                .split(',')
                .filter(|method| *method != "HEAD")
                .map(str::to_owned)
                .collect(),
        );
    }
    let mut served = BTreeSet::new();
    for (id, path) in paths {
        if path.contains("__private__") {
            continue;
        }
        for method in methods
            .get(&id)
            .unwrap_or_else(|| panic!("no methods for {path}"))
        {
            served.insert((method.clone(), path.clone()));
        }
    }
    served
}

#[tokio::test]
async fn zz_list_routes() {
    let harness = crate::harness::Harness::new().await;
    for (method, path) in served_routes(&harness.router) {
        println!("{method} {path}");
    }
}
