//! The access matrix: every route the router serves × {no credentials, expired token, revoked
//! token, wrong signature, stale `X-Sdk-Date`, a member of another project, an unknown project,
//! own project id with another project's ids, a viewer, a developer, the owner (token and AK/SK)}.
//!
//! The route list is read from the router itself (`routes::served_routes`) and compared with
//! [`ROWS`] below: a route without a row fails [`every_served_route_has_a_row`], so no new route
//! escapes the matrix. To add a route, add a row: its access class, the URI with placeholders
//! when the path alone is not enough, and a body.
//!
//! S1: a foreign id answers exactly like an id that does not exist, and no refused call changes
//! anything (a snapshot of both projects is compared before and after).

use crate::harness::{Auth, Harness, Reply, review_and_manual_stage};
use crate::routes::served_routes;
use axum::http::{Method, StatusCode};
use runnel_store::{IdentityStore, OrganizeStore, PipelineQuery, PipelineStore, RunStore};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a route needs from its caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Access {
    /// A `/v5/{project_id}/…` route of the v5 API: membership, then the role for this action.
    Project(Need),
    /// A project route of another area (its own tests check roles and ids): credentials and
    /// membership are checked here.
    Member,
    /// Authenticated, but not scoped by a project in the path (IAM, v3, administration, the
    /// tenant-level templates whose first segment is the account id): credentials are checked
    /// here, the rest by the area's own tests.
    Authenticated,
    /// No token: login, webhooks (their trigger's secret), the OpenAPI document.
    Public,
}

/// The permission a project route needs (`docs/permissions.md`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Need {
    View,
    Edit,
    Execute,
    Review,
    Delete,
}

pub(crate) struct Row {
    pub(crate) method: Method,
    /// The route exactly as the router serves it.
    pub(crate) path: &'static str,
    pub(crate) access: Access,
    /// The URI with placeholders; derived from `path` when empty.
    pub(crate) uri: &'static str,
    /// A JSON body with placeholders.
    pub(crate) body: Option<&'static str>,
    /// Placeholders whose missing id is answered without an error (batch reads, moves):
    /// only S1 (foreign = missing) is checked for them.
    pub(crate) missing_is_ok: &'static [&'static str],
}

const fn row(method: Method, path: &'static str, access: Access) -> Row {
    Row {
        method,
        path,
        access,
        uri: "",
        body: None,
        missing_is_ok: &[],
    }
}

impl Row {
    const fn uri(mut self, uri: &'static str) -> Row {
        self.uri = uri;
        self
    }
    const fn body(mut self, body: &'static str) -> Row {
        self.body = Some(body);
        self
    }
    const fn missing_is_ok(mut self, placeholders: &'static [&'static str]) -> Row {
        self.missing_is_ok = placeholders;
        self
    }
}

const V: Access = Access::Project(Need::View);
const E: Access = Access::Project(Need::Edit);
const X: Access = Access::Project(Need::Execute);
const R: Access = Access::Project(Need::Review);
const D: Access = Access::Project(Need::Delete);
const M: Access = Access::Member;
const A: Access = Access::Authenticated;
const P: Access = Access::Public;

const PIPELINE: &str = "/v5/{project_id}/api/pipelines/{pipeline_id}";
const EMPTY_DEFINITION: &str =
    r#"{"name": "matrix-{n}", "is_publish": false, "definition": "{\"stages\": []}"}"#;

/// Every route. Destructive routes come last within their area so the shared fixture of the
/// read checks stays intact (the owner's calls of write routes each get a fresh fixture).
pub(crate) fn rows() -> Vec<Row> {
    use Method as H;
    vec![
        // ---- v5 pipelines (§4)
        row(H::POST, "/v5/{project_id}/api/pipelines", E).body(EMPTY_DEFINITION),
        row(H::POST, "/v5/{project_id}/api/pipelines/list", V).body("{}"),
        row(H::POST, "/v5/{project_id}/api/pipelines/status", V).body(r#"["{pl}"]"#).missing_is_ok(&["{pl}"]),
        row(H::POST, "/v5/{project_id}/api/pipelines/pipelines-version", V)
            .body(r#"[{"pipeline_id": "{pl}"}]"#)
            .missing_is_ok(&["{pl}"]),
        row(H::GET, PIPELINE, V),
        row(H::GET, "/v5/{project_id}/api/pipelines/{pipeline_id}/list-system-vars", V),
        row(H::PUT, PIPELINE, E).body(r#"{"name": "renamed-{n}", "is_publish": false, "definition": "{\"stages\": []}"}"#),
        row(H::PUT, "/v5/{project_id}/api/pipelines/{pipeline_id}/ban", E),
        row(H::PUT, "/v5/{project_id}/api/pipelines/{pipeline_id}/unban", E),
        // ---- v5 runs (§5)
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/run", X).body("{}"),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/list", V).body(r#"{"limit": 5}"#),
        row(H::GET, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/detail", V)
            .uri("/v5/{p}/api/pipelines/{pl}/pipeline-runs/detail?pipeline_run_id={r}"),
        row(H::GET, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/steps/outputs", V)
            .uri("/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/steps/outputs?step_run_ids={s}"),
        row(H::GET, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/artifacts", V),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs", V)
            .body(r#"{"limit": 10, "sort": "asc"}"#),
        row(H::POST, "/v5/{project_id}/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs", V)
            .body(r#"{"limit": 10, "sort": "desc"}"#),
        row(H::GET, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs/stream", V),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/pass", R),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/refuse", R),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/delay", X).body("{}"),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/delay-pass", X),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/delay-refuse", X),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/resume", X),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}/manual/pass", X)
            .uri("/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/steps/{g}/manual/pass"),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}/manual/refuse", X)
            .uri("/v5/{p}/api/pipelines/{pl}/pipeline-runs/{r}/steps/{g}/manual/refuse"),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/{pipeline_run_id}/cancel-queuing/{queue_id}", X),
        row(H::PUT, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/retry", X).body("{}"),
        row(H::POST, "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/stop", X),
        // ---- groups (§6)
        row(H::GET, "/v5/{project_id}/api/pipeline-group/tree", V),
        row(H::POST, "/v5/{project_id}/api/pipeline-group/create", E)
            .body(r#"{"name": "group-{n}", "project_id": "{p}", "parent_id": "{grp}"}"#),
        row(H::POST, "/v5/{project_id}/api/pipeline-group/update", E).body(r#"{"id": "{grp}", "name": "group-{n}"}"#),
        row(H::POST, "/v5/{project_id}/api/pipeline-group/pipeline/move", E)
            .body(r#"{"group_id": "{grp}", "pipelines": [{"pipeline_id": "{pl}", "pipeline_name": "x"}]}"#)
            .missing_is_ok(&["{pl}"]),
        row(H::DELETE, "/v5/{project_id}/api/pipeline-group/delete", D).uri("/v5/{p}/api/pipeline-group/delete?id={grp}"),
        // ---- tags (§7)
        row(H::GET, "/v5/{project_id}/api/pipeline-tag/list", V).uri("/v5/{p}/api/pipeline-tag/list?proj_id={p}"),
        row(H::POST, "/v5/{project_id}/api/pipeline-tag/list", V),
        row(H::POST, "/v5/{project_id}/api/pipeline-tag/create", E).body(r##"{"name": "tag-{n}", "color": "#123456"}"##),
        row(H::POST, "/v5/{project_id}/api/pipeline-tag/update", E)
            .body(r##"{"tagId": "{tag}", "name": "tag-{n}", "color": "#654321"}"##),
        row(H::POST, "/v5/{project_id}/api/pipeline-tag/set-tags", E).body(r#"{"pipeline_ids": ["{pl}"], "tag_ids": ["{tag}"]}"#),
        row(H::DELETE, "/v5/{project_id}/api/pipeline-tag/delete", D).uri("/v5/{p}/api/pipeline-tag/delete?tagId={tag}"),
        // ---- variable groups (§8)
        row(H::GET, "/v5/{project_id}/api/pipeline/variable/group/{id}", V),
        row(H::POST, "/v5/{project_id}/api/pipeline/variable/group/list", V).body("{}"),
        row(H::GET, "/v5/{project_id}/api/pipeline/variable/group/pipeline", V)
            .uri("/v5/{p}/api/pipeline/variable/group/pipeline?pipelineId={pl}"),
        row(H::POST, "/v5/{project_id}/api/pipeline/variable/group/create", E).body(r#"{"name": "vars-{n}"}"#),
        row(H::PUT, "/v5/{project_id}/api/pipeline/variable/group/update", E).body(r#"{"id": "{vg}", "name": "vars-{n}"}"#),
        row(H::POST, "/v5/{project_id}/api/pipeline/variable/group/relation", E)
            .body(r#"{"pipeline_id": "{pl}", "variable_group_ids": ["{vg}"]}"#),
        row(H::DELETE, "/v5/{project_id}/api/pipeline/variable/group/delete", D)
            .uri("/v5/{p}/api/pipeline/variable/group/delete?id={vg}"),
        // Last: the owner's call deletes the shared pipeline.
        row(H::DELETE, PIPELINE, D),
        // ---- other areas' project routes: service endpoints and webhook deliveries (issue 6)
        row(H::GET, "/v5/{project_id}/api/endpoints", M),
        row(H::POST, "/v5/{project_id}/api/endpoints", M).body("{}"),
        row(H::DELETE, "/v5/{project_id}/api/endpoints/{endpoint_id}", M),
        row(H::GET, "/v5/{project_id}/api/pipelines/{pipeline_id}/webhook-deliveries", M),
        // ---- templates (§2, §4.7, §9): the first segment is the account id
        row(H::POST, "/v5/{project_id}/api/pipeline-templates", A).body("{}"),
        row(H::POST, "/v5/{project_id}/api/pipeline-templates/list", A).body("{}"),
        row(H::GET, "/v5/{project_id}/api/pipeline-templates/{template_id}", A),
        row(H::PUT, "/v5/{project_id}/api/pipeline-templates/{template_id}", A).body("{}"),
        row(H::DELETE, "/v5/{project_id}/api/pipeline-templates/{template_id}", A),
        row(H::POST, "/v5/{project_id}/api/pipeline-templates/{template_id}/favorite", A),
        row(H::POST, "/v5/{project_id}/api/pipeline-templates/{template_id}/copy", A).body("{}"),
        row(H::POST, "/v5/{project_id}/api/pipeline-templates/{template_id}/create-pipeline", A).body("{}"),
        row(H::GET, "/v3/templates", A),
        row(H::POST, "/v3/templates/task", A).body("{}"),
        row(H::GET, "/v3/templates/{template_id}", A),
        row(H::GET, "/v3/templates/{template_id}/status", A),
        row(H::POST, "/v3/pipeline/templates/list", A).body("{}"),
        // ---- legacy v3 pipelines (§3)
        row(H::POST, "/v3/pipelines/list", A).body("{}"),
        row(H::POST, "/v3/pipelines/{pipeline_id}/start", A),
        row(H::POST, "/v3/pipelines/{pipeline_id}/stop", A),
        row(H::GET, "/v3/pipelines/{pipeline_id}/status", A),
        row(H::GET, "/v3/pipelines/build-result", A),
        row(H::DELETE, "/v3/pipelines/{pipeline_id}", A),
        // ---- IAM (§10)
        row(H::POST, "/v3/auth/tokens", P),
        row(H::GET, "/v3/auth/tokens", A),
        row(H::DELETE, "/v3/auth/tokens", A),
        row(H::GET, "/v3/projects", A),
        // ---- administration (issue 5, admin-only)
        row(H::GET, "/v5/projects", A),
        row(H::GET, "/v5/admin/projects", A),
        row(H::POST, "/v5/admin/projects", A).body("{}"),
        row(H::GET, "/v5/admin/projects/{project_id}/members", A),
        row(H::POST, "/v5/admin/projects/{project_id}/members", A).body("{}"),
        row(H::DELETE, "/v5/admin/projects/{project_id}/members/{user_id}", A),
        row(H::GET, "/v5/admin/users", A),
        row(H::POST, "/v5/admin/users", A).body("{}"),
        row(H::POST, "/v5/admin/users/{user_id}/disable", A),
        row(H::POST, "/v5/admin/users/{user_id}/enable", A),
        row(H::POST, "/v5/admin/users/{user_id}/tokens/revoke", A),
        row(H::GET, "/v5/admin/users/{user_id}/access-keys", A),
        row(H::POST, "/v5/admin/users/{user_id}/access-keys", A).body("{}"),
        row(H::DELETE, "/v5/admin/access-keys/{ak}", A),
        // ---- public
        row(H::POST, "/webhooks/{hook_id}", P),
        row(H::GET, "/openapi.json", P),
    ]
}

/// The ids of one project's objects: a pipeline with a run paused at a review (job, step) and
/// a manual stage start (gate), a group, a tag and a variable group.
#[derive(Clone, Debug)]
pub(crate) struct Ids {
    project: String,
    pipeline: String,
    run: String,
    job: String,
    step: String,
    gate: String,
    group: String,
    tag: String,
    variable_group: String,
}

/// A syntactically valid id that names nothing.
const ABSENT: &str = "fedcba9876543210fedcba9876543210";

impl Ids {
    pub(crate) fn fill(&self, template: &str, n: usize) -> String {
        template
            .replace("{p}", &self.project)
            .replace("{pl}", &self.pipeline)
            .replace("{r}", &self.run)
            .replace("{j}", &self.job)
            .replace("{s}", &self.step)
            .replace("{g}", &self.gate)
            .replace("{grp}", &self.group)
            .replace("{tag}", &self.tag)
            .replace("{vg}", &self.variable_group)
            .replace("{n}", &n.to_string())
    }

    /// A copy whose object behind `placeholder` is `id`.
    fn with(&self, placeholder: &str, id: &str) -> Ids {
        let mut ids = self.clone();
        let slot = match placeholder {
            "{pl}" => &mut ids.pipeline,
            "{r}" => &mut ids.run,
            "{j}" => &mut ids.job,
            "{s}" => &mut ids.step,
            "{g}" => &mut ids.gate,
            "{grp}" => &mut ids.group,
            "{tag}" => &mut ids.tag,
            "{vg}" => &mut ids.variable_group,
            other => panic!("unknown placeholder {other}"),
        };
        *slot = id.to_owned();
        ids
    }

    fn get(&self, placeholder: &str) -> &str {
        match placeholder {
            "{pl}" => &self.pipeline,
            "{r}" => &self.run,
            "{j}" => &self.job,
            "{s}" => &self.step,
            "{g}" => &self.gate,
            "{grp}" => &self.group,
            "{tag}" => &self.tag,
            "{vg}" => &self.variable_group,
            other => panic!("unknown placeholder {other}"),
        }
    }
}

/// The placeholders that name objects, with the code a missing one answers.
const OBJECTS: &[(&str, &str)] = &[
    ("{pl}", "DEVPIPE.00011401"),
    ("{r}", "DEVPIPE.00011402"),
    ("{j}", "DEVPIPE.00011403"),
    ("{s}", "DEVPIPE.00011403"),
    ("{g}", "DEVPIPE.00011403"),
    ("{grp}", "DEVPIPE.00011301"),
    ("{tag}", "DEVPIPE.00011302"),
    ("{vg}", "DEVPIPE.00011303"),
];

impl Row {
    /// The URI template with placeholders.
    pub(crate) fn uri_template(&self) -> String {
        if !self.uri.is_empty() {
            return self.uri.to_owned();
        }
        let mut uri = self.path.to_owned();
        for (param, placeholder) in [
            ("{project_id}", "{p}"),
            ("{pipeline_id}", "{pl}"),
            ("{pipeline_run_id}", "{r}"),
            ("{queue_id}", "{r}"),
            ("{job_run_id}", "{j}"),
            ("{step_run_id}", "{s}"),
            ("{id}", "{vg}"),
        ] {
            uri = uri.replace(param, placeholder);
        }
        // Parameters of other areas: any valid id (credentials are checked first).
        fill_unknown(&uri)
    }

    fn placeholders(&self) -> Vec<&'static str> {
        let uri = self.uri_template();
        let body = self.body.unwrap_or("");
        OBJECTS
            .iter()
            .map(|(placeholder, _)| *placeholder)
            .filter(|placeholder| uri.contains(placeholder) || body.contains(placeholder))
            .collect()
    }
}

/// Replaces every `{name}` that is not one of our placeholders with a valid id.
fn fill_unknown(text: &str) -> String {
    let known = [
        "{p}", "{pl}", "{r}", "{j}", "{s}", "{g}", "{grp}", "{tag}", "{vg}", "{n}",
    ];
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |end| start + end + 1);
        let name = &rest[start..end];
        if known.contains(&name) {
            out.push_str(name);
        } else {
            out.push_str("0123456789abcdef0123456789abcdef");
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

async fn call(harness: &Harness, row: &Row, ids: &Ids, auth: Auth<'_>, n: usize) -> Reply {
    let uri = ids.fill(&row.uri_template(), n);
    let body = row
        .body
        .map(|body| ids.fill(body, n).into_bytes())
        .unwrap_or_default();
    harness
        .call_raw(row.method.clone(), &uri, auth, body, &[])
        .await
}

/// A pipeline of `project` with a run paused at a review by `approver` (then a manual stage),
/// plus a group, a tag and a variable group, all created by `token`'s user.
pub(crate) async fn fixture(
    harness: &Harness,
    project: &str,
    token: &str,
    approver: &str,
    n: usize,
) -> Ids {
    let pipeline = harness
        .create_pipeline_in(
            project,
            token,
            &format!("matrix-fixture-{n}"),
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
    let api = |path: &str| format!("/v5/{project}/api/{path}");
    let group = harness
        .call(
            Method::POST,
            &api("pipeline-group/create"),
            Auth::Token(token),
            Some(json!({"name": format!("g{n}"), "project_id": project})),
        )
        .await;
    harness
        .call(
            Method::POST,
            &api("pipeline-tag/create"),
            Auth::Token(token),
            Some(json!({"name": format!("t{n}"), "color": "#000000"})),
        )
        .await;
    let tags = harness.store.tags(project).await.expect("tags");
    let tag = tags
        .iter()
        .find(|tag| tag.name == format!("t{n}"))
        .expect("tag")
        .id
        .clone();
    let variables = harness
        .call(
            Method::POST,
            &api("pipeline/variable/group/create"),
            Auth::Token(token),
            Some(json!({"name": format!("v{n}")})),
        )
        .await;
    let review = &detail.stages[0].jobs[0];
    Ids {
        project: project.to_owned(),
        pipeline,
        run,
        job: review.id.clone(),
        step: review.steps[0].id.clone(),
        gate: detail.stages[1].pre[0].id.clone(),
        group: group.body["id"].as_str().expect("group").to_owned(),
        tag,
        variable_group: variables.body["pipeline_variable_group_id"]
            .as_str()
            .expect("variable group")
            .to_owned(),
    }
}

/// What no refused call may change, in both projects.
pub(crate) async fn snapshot(harness: &Harness, fixtures: &[&Ids]) -> Vec<String> {
    let store = &harness.store;
    let mut state = Vec::new();
    for ids in fixtures {
        let pipelines = store
            .list_pipelines(
                &ids.project,
                &PipelineQuery {
                    limit: 100,
                    ..PipelineQuery::default()
                },
            )
            .await
            .expect("list");
        for pipeline in &pipelines.items {
            state.push(format!(
                "{} {} v{} banned={} group={:?} tags={:?} variable groups={:?} runs={}",
                pipeline.id,
                pipeline.name,
                pipeline.current_version,
                pipeline.is_banned,
                pipeline.group_id,
                pipeline.tag_ids,
                pipeline.variable_group_ids,
                store.count_runs(&pipeline.id, &[]).await.expect("count"),
            ));
        }
        let detail = store
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
        for group in store.groups(&ids.project).await.expect("groups") {
            state.push(format!(
                "group {} {} {:?}",
                group.id, group.name, group.parent_id
            ));
        }
        for tag in store.tags(&ids.project).await.expect("tags") {
            state.push(format!("tag {} {} {}", tag.id, tag.name, tag.color));
        }
        let groups = store
            .list_variable_groups(&ids.project, None, 0, 100)
            .await
            .expect("variable groups");
        for group in groups.items {
            state.push(format!(
                "variables {} {} {}",
                group.id,
                group.name,
                group.variables.len()
            ));
        }
        state.push(format!(
            "members {}",
            store.members(&ids.project).await.expect("members").len()
        ));
    }
    state
}

#[tokio::test]
async fn every_served_route_has_a_row() {
    let harness = Harness::new().await;
    let served = served_routes(&harness.router);
    let listed: BTreeSet<(String, String)> = rows()
        .iter()
        .map(|row| (row.method.to_string(), row.path.to_owned()))
        .collect();
    let missing: Vec<String> = served
        .difference(&listed)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    let stale: Vec<String> = listed
        .difference(&served)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "routes served without a row in crates/api/tests/api/matrix.rs (add one):\n{}",
        missing.join("\n")
    );
    assert!(
        stale.is_empty(),
        "rows in crates/api/tests/api/matrix.rs for routes the router does not serve:\n{}",
        stale.join("\n")
    );
    assert_eq!(
        listed.len(),
        rows().len(),
        "every route has exactly one row"
    );
}

#[tokio::test]
async fn every_route_times_every_identity() {
    let harness = Harness::new().await;
    let served = served_routes(&harness.router);
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|row| served.contains(&(row.method.to_string(), row.path.to_owned())))
        .collect();
    let project_a = harness.project_a.id.clone();
    let project_b = harness.project_b.id.clone();
    let a = fixture(
        &harness,
        &project_a,
        &harness.alice.token,
        &harness.alice.id,
        0,
    )
    .await;
    let b = fixture(
        &harness,
        &project_b,
        &harness.carol.token,
        &harness.carol.id,
        0,
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
    let before = snapshot(&harness, &[&a, &b]).await;
    let mut n = 100;
    let mut checked = 0;
    let described = |row: &Row, reply: &Reply| {
        format!(
            "{} {}: {} {}",
            row.method, row.path, reply.status, reply.text
        )
    };

    for row in &rows {
        // Credentials.
        if row.access != Access::Public {
            for (auth, code) in [
                (Auth::None, "DEV.00000001"),
                (Auth::Token(&expired), "APIGW.0301"),
                (Auth::Token(&revoked), "APIGW.0301"),
                (Auth::BadSignature, "APIGW.0301"),
                (Auth::StaleDate, "APIGW.0301"),
            ] {
                n += 1;
                let reply = call(&harness, row, &a, auth, n).await;
                assert_eq!(
                    (reply.status, reply.code()),
                    (StatusCode::UNAUTHORIZED, code),
                    "{}",
                    described(row, &reply)
                );
                checked += 1;
            }
        }
        if !matches!(row.access, Access::Project(_) | Access::Member) {
            continue;
        }
        // Not a member: the project answers as if it did not exist, with either project's ids.
        let unknown_project = Ids {
            project: "0123456789abcdef0123456789abcdef".into(),
            ..a.clone()
        };
        for (ids, token) in [
            (&b, &harness.dave.token),
            (&a, &harness.carol.token),
            (&unknown_project, &harness.alice.token),
        ] {
            n += 1;
            let reply = call(&harness, row, ids, Auth::Token(token), n).await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::BAD_REQUEST, "DEVPIPE.00011412"),
                "{}",
                described(row, &reply)
            );
            checked += 1;
        }
        let Access::Project(need) = row.access else {
            continue;
        };
        // Own project id with another project's ids: exactly like ids that do not exist (S1).
        for placeholder in row.placeholders() {
            let code = OBJECTS
                .iter()
                .find(|(name, _)| *name == placeholder)
                .map(|(_, code)| *code)
                .expect("code");
            n += 1;
            let foreign = call(
                &harness,
                row,
                &a.with(placeholder, b.get(placeholder)),
                Auth::Token(&harness.alice.token),
                n,
            )
            .await;
            let missing = call(
                &harness,
                row,
                &a.with(placeholder, ABSENT),
                Auth::Token(&harness.alice.token),
                n,
            )
            .await;
            // An answer may echo the id it was given; apart from that it must be the same.
            assert_eq!(
                foreign.text.replace(b.get(placeholder), ABSENT),
                missing.text,
                "S1: a foreign {placeholder} answers like a missing one: {}",
                described(row, &foreign)
            );
            assert_eq!(foreign.status, missing.status);
            if !row.missing_is_ok.contains(&placeholder) {
                assert_eq!(
                    (foreign.status, foreign.code()),
                    (StatusCode::BAD_REQUEST, code),
                    "{placeholder}: {}",
                    described(row, &foreign)
                );
            }
            checked += 1;
        }
        // Roles: a viewer only reads; a developer does everything but delete (the allowed
        // writes are made below, on fresh fixtures).
        for (user, role_allows) in [
            (&harness.vera, need == Need::View),
            (&harness.dave, need != Need::Delete),
        ] {
            if role_allows && need != Need::View {
                continue;
            }
            n += 1;
            let reply = call(&harness, row, &a, Auth::Token(&user.token), n).await;
            if role_allows {
                assert!(is_served(&reply), "{}", described(row, &reply));
            } else {
                assert_eq!(
                    (reply.status, reply.code()),
                    (StatusCode::FORBIDDEN, "DEVPIPE.00011405"),
                    "{}",
                    described(row, &reply)
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        snapshot(&harness, &[&a, &b]).await,
        before,
        "no refused call and no read changed anything"
    );

    // The owner (by token and by AK/SK signature) and a developer (for what the role allows):
    // every project route answers without an authentication, permission or lookup error.
    // Reads share the fixture; every write gets a fresh one.
    for row in rows.iter() {
        let Access::Project(need) = row.access else {
            continue;
        };
        let mut callers = vec![Auth::Token(&harness.alice.token), Auth::Signed];
        if need != Need::Delete {
            callers.push(Auth::Token(&harness.dave.token));
        }
        for auth in callers {
            n += 1;
            let ids = if need == Need::View {
                a.clone()
            } else {
                fixture(
                    &harness,
                    &project_a,
                    &harness.alice.token,
                    &harness.alice.id,
                    n,
                )
                .await
            };
            let reply = call(&harness, row, &ids, auth, n).await;
            assert!(
                is_served(&reply),
                "allowed caller: {}",
                described(row, &reply)
            );
            checked += 1;
        }
    }
    assert!(checked > 600, "{checked} checks");
    println!(
        "S1 access matrix: {} routes, {checked} checks, 0 leaks",
        rows.len()
    );
}

/// Success, or a refusal that only says the current state does not allow it (a review that is
/// not waiting, a run that is not queued, …).
fn is_served(reply: &Reply) -> bool {
    reply.status == StatusCode::OK
        || (reply.status == StatusCode::BAD_REQUEST && reply.code() == "DEVPIPE.00011404")
}
