//! Groups (§6), tags (§7) and variable groups (§8): full CRUD with the exact wire names, roles,
//! bindings seen from pipelines and runs, secrets masked (S2), and bad input changing nothing.

use crate::harness::{Auth, Harness, Reply, two_stages};
use axum::http::{Method, StatusCode};
use runnel_store::{OrganizeStore, RunStore};
use serde_json::{Value, json};

impl Harness {
    /// Calls a project-A route as Alice (admin).
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let uri = format!("/v5/{}/api/{path}", self.project_a.id);
        self.call(method, &uri, Auth::Token(&self.alice.token), body)
            .await
    }

    async fn as_user(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let uri = format!("/v5/{}/api/{path}", self.project_a.id);
        self.call(method, &uri, Auth::Token(token), body).await
    }
}

fn ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

fn refused(reply: &Reply, status: StatusCode, code: &str, mentions: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{}",
        reply.text
    );
    let message = reply.body["error_msg"].as_str().unwrap_or("");
    assert!(
        message.contains(mentions),
        "`{message}` should mention `{mentions}`"
    );
}

#[tokio::test]
async fn groups_nest_three_levels_hold_pipelines_and_delete_with_their_subgroups() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let create = |name: &str, parent: &str| json!({"name": name, "project_id": project, "parent_id": parent});
    let top = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("backend", "")),
        )
        .await;
    ok(&top);
    let top_id = top.body["id"].as_str().expect("id").to_owned();
    for field in [
        "id",
        "domain_id",
        "project_id",
        "name",
        "parent_id",
        "path_id",
        "ordinal",
        "creator",
        "updater",
        "create_time",
        "update_time",
        "pipeline_count",
        "no_group_count",
        "children",
    ] {
        assert!(
            top.body.get(field).is_some(),
            "PipelineGroupVo.{field}: {}",
            top.text
        );
    }
    assert_eq!(top.body["parent_id"], "");
    assert_eq!(top.body["path_id"], top_id.as_str());
    assert_eq!(top.body["ordinal"], 1);
    assert_eq!(top.body["creator"], harness.alice.id.as_str());
    let second_top = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("frontend", "")),
        )
        .await;
    assert_eq!(second_top.body["ordinal"], 2);

    let middle = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("payments", &top_id)),
        )
        .await;
    ok(&middle);
    let middle_id = middle.body["id"].as_str().expect("id").to_owned();
    assert_eq!(middle.body["path_id"], format!("{top_id}.{middle_id}"));
    let bottom = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("api", &middle_id)),
        )
        .await;
    ok(&bottom);
    let bottom_id = bottom.body["id"].as_str().expect("id").to_owned();
    let too_deep = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("deeper", &bottom_id)),
        )
        .await;
    refused(
        &too_deep,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "parent_id: groups nest at most 3 levels",
    );
    let twin = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("payments", &top_id)),
        )
        .await;
    refused(
        &twin,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00011304",
        "already exists",
    );
    let orphan = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("lost", "0123456789abcdef0123456789abcdef")),
        )
        .await;
    refused(
        &orphan,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00011301",
        "group does not exist",
    );
    let elsewhere = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(json!({"name": "x", "project_id": harness.project_b.id})),
        )
        .await;
    refused(
        &elsewhere,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "project_id",
    );
    let blank = harness
        .admin(
            Method::POST,
            "pipeline-group/create",
            Some(create("   ", "")),
        )
        .await;
    refused(&blank, StatusCode::BAD_REQUEST, "DEVPIPE.00010001", "name");

    // Pipelines move in and out; the tree counts them.
    let first = harness
        .create_pipeline("one", two_stages(), json!({}))
        .await;
    let second = harness
        .create_pipeline("two", two_stages(), json!({}))
        .await;
    harness
        .create_pipeline("three", two_stages(), json!({}))
        .await;
    let moved = harness
        .admin(
            Method::POST,
            "pipeline-group/pipeline/move",
            Some(json!({"group_id": middle_id, "pipelines": [
                {"pipeline_id": first, "pipeline_name": "one"},
                {"pipeline_id": second, "pipeline_name": "two"},
                {"pipeline_id": "fedcba9876543210fedcba9876543210", "pipeline_name": "ghost"}
            ]})),
        )
        .await;
    ok(&moved);
    assert_eq!(
        moved.body,
        json!([
            {"code": "success", "pipeline_id": first, "pipeline_name": "one"},
            {"code": "success", "pipeline_id": second, "pipeline_name": "two"},
            {"code": "failed", "pipeline_id": "fedcba9876543210fedcba9876543210", "pipeline_name": "ghost"}
        ])
    );
    let ungroup = harness
        .admin(
            Method::POST,
            "pipeline-group/pipeline/move",
            Some(json!({"group_id": "", "pipelines": [
            {"pipeline_id": second, "pipeline_name": "two"}]})),
        )
        .await;
    assert_eq!(ungroup.body[0]["code"], "success");
    let tree = harness
        .as_user(
            &harness.vera.token,
            Method::GET,
            "pipeline-group/tree",
            None,
        )
        .await;
    ok(&tree);
    let roots = tree.body.as_array().expect("a top-level array");
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0]["name"], "backend");
    assert_eq!(
        roots[0]["no_group_count"], 2,
        "two and three are in no group"
    );
    let payments = &roots[0]["children"][0];
    assert_eq!(payments["name"], "payments");
    assert_eq!(payments["pipeline_count"], 1);
    assert_eq!(payments["children"][0]["id"], bottom_id.as_str());
    assert_eq!(
        payments["children"][0]["path_id"],
        format!("{top_id}.{middle_id}.{bottom_id}")
    );
    let detail = harness
        .admin(Method::GET, &format!("pipelines/{first}"), None)
        .await;
    assert_eq!(detail.body["group_id"], middle_id.as_str());
    assert_eq!(detail.body["group_name"], "payments");
    let filtered = harness
        .admin(
            Method::POST,
            "pipelines/list",
            Some(json!({"group_path_id": middle_id})),
        )
        .await;
    assert_eq!(filtered.body["total"], 1);

    // Rename, then delete the top group: its subgroups go, its pipelines stay, ungrouped.
    let renamed = harness
        .admin(
            Method::POST,
            "pipeline-group/update",
            Some(json!({"id": middle_id, "name": "billing"})),
        )
        .await;
    assert_eq!(renamed.body, json!({"success": true}));
    let detail = harness
        .admin(Method::GET, &format!("pipelines/{first}"), None)
        .await;
    assert_eq!(detail.body["group_name"], "billing");
    let developer = harness
        .as_user(
            &harness.dave.token,
            Method::DELETE,
            &format!("pipeline-group/delete?id={top_id}"),
            None,
        )
        .await;
    refused(
        &developer,
        StatusCode::FORBIDDEN,
        "DEVPIPE.00011405",
        "delete",
    );
    let deleted = harness
        .admin(
            Method::DELETE,
            &format!("pipeline-group/delete?id={top_id}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(deleted.body, json!({"success": true}));
    let groups = harness.store.groups(&project).await.expect("groups");
    assert_eq!(
        groups
            .iter()
            .map(|group| group.name.as_str())
            .collect::<Vec<_>>(),
        ["frontend"]
    );
    let detail = harness
        .admin(Method::GET, &format!("pipelines/{first}"), None)
        .await;
    assert_eq!(detail.body["group_id"], Value::Null);
    let again = harness
        .admin(
            Method::DELETE,
            &format!("pipeline-group/delete?id={top_id}"),
            None,
        )
        .await;
    refused(&again, StatusCode::BAD_REQUEST, "DEVPIPE.00011301", "group");
    let missing_id = harness
        .admin(Method::DELETE, "pipeline-group/delete", None)
        .await;
    refused(
        &missing_id,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "id",
    );
    let viewer = harness
        .as_user(
            &harness.vera.token,
            Method::POST,
            "pipeline-group/create",
            Some(create("nope", "")),
        )
        .await;
    refused(&viewer, StatusCode::FORBIDDEN, "DEVPIPE.00011405", "");
    assert_eq!(
        harness.store.groups(&project).await.expect("groups").len(),
        1
    );
}

#[tokio::test]
async fn tags_are_created_listed_renamed_set_on_pipelines_and_deleted() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let created = harness
        .admin(
            Method::POST,
            "pipeline-tag/create",
            Some(json!({"name": "release", "color": "#0b81f6"})),
        )
        .await;
    assert_eq!(created.body, json!({"success": true}));
    let dupe = harness
        .admin(
            Method::POST,
            "pipeline-tag/create",
            Some(json!({"name": "release", "color": "#000000"})),
        )
        .await;
    refused(
        &dupe,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00011304",
        "already exists",
    );
    let bad_color = harness
        .admin(
            Method::POST,
            "pipeline-tag/create",
            Some(json!({"name": "other", "color": "blue"})),
        )
        .await;
    refused(
        &bad_color,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "color",
    );
    let listed = harness
        .as_user(
            &harness.vera.token,
            Method::GET,
            &format!("pipeline-tag/list?proj_id={project}"),
            None,
        )
        .await;
    ok(&listed);
    let tags = listed.body.as_array().expect("a top-level array");
    assert_eq!(tags.len(), 1);
    let tag_id = tags[0]["tag_id"].as_str().expect("tag id").to_owned();
    assert_eq!(
        tags[0],
        json!({"tag_id": tag_id, "name": "release", "color": "#0b81f6", "project_id": project, "project_name": "alpha"})
    );
    let by_post = harness.admin(Method::POST, "pipeline-tag/list", None).await;
    assert_eq!(by_post.body, listed.body, "Terraform lists tags with POST");
    let wrong_project = harness
        .admin(
            Method::GET,
            &format!("pipeline-tag/list?proj_id={}", harness.project_b.id),
            None,
        )
        .await;
    refused(
        &wrong_project,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "proj_id",
    );

    let updated = harness
        .admin(
            Method::POST,
            "pipeline-tag/update",
            Some(json!({"tagId": tag_id, "name": "stable", "color": "#e54545"})),
        )
        .await;
    assert_eq!(updated.body, json!({"success": true}));
    let unknown = harness
        .admin(
            Method::POST,
            "pipeline-tag/update",
            Some(
                json!({"tagId": "0123456789abcdef0123456789abcdef", "name": "x", "color": "#fff"}),
            ),
        )
        .await;
    refused(&unknown, StatusCode::BAD_REQUEST, "DEVPIPE.00011302", "tag");

    let pipeline = harness
        .create_pipeline("tagged", two_stages(), json!({}))
        .await;
    let set = harness
        .admin(
            Method::POST,
            "pipeline-tag/set-tags",
            Some(json!({"pipeline_ids": [pipeline], "tag_ids": [tag_id]})),
        )
        .await;
    assert_eq!(set.body, json!({"success": true}));
    let bad_set = harness
        .admin(Method::POST, "pipeline-tag/set-tags", Some(json!({"pipeline_ids": [pipeline], "tag_ids": [tag_id, "0123456789abcdef0123456789abcdef"]})))
        .await;
    refused(&bad_set, StatusCode::BAD_REQUEST, "DEVPIPE.00011302", "tag");
    let detail = harness
        .admin(Method::GET, &format!("pipelines/{pipeline}"), None)
        .await;
    assert_eq!(detail.body["tag_ids"], json!([tag_id]));
    assert_eq!(detail.body["tags"][0]["name"], "stable");
    assert_eq!(detail.body["tags"][0]["color"], "#e54545");
    let list = harness
        .admin(Method::POST, "pipelines/list", Some(json!({})))
        .await;
    assert_eq!(
        list.body["pipelines"][0]["tag_list"][0]["tag_id"],
        tag_id.as_str()
    );

    let developer = harness
        .as_user(
            &harness.dave.token,
            Method::DELETE,
            &format!("pipeline-tag/delete?tagId={tag_id}"),
            None,
        )
        .await;
    refused(&developer, StatusCode::FORBIDDEN, "DEVPIPE.00011405", "");
    // The Go SDK's lower-cased key works too.
    let deleted = harness
        .admin(
            Method::DELETE,
            &format!("pipeline-tag/delete?tagid={tag_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.body, json!({"success": true}));
    let detail = harness
        .admin(Method::GET, &format!("pipelines/{pipeline}"), None)
        .await;
    assert_eq!(detail.body["tag_ids"], json!([]));
    let again = harness
        .admin(
            Method::DELETE,
            &format!("pipeline-tag/delete?tagId={tag_id}"),
            None,
        )
        .await;
    refused(&again, StatusCode::BAD_REQUEST, "DEVPIPE.00011302", "tag");
    assert!(harness.store.tags(&project).await.expect("tags").is_empty());
}

#[tokio::test]
async fn variable_groups_mask_secrets_bind_to_pipelines_and_reach_runs() {
    let harness = Harness::new().await;
    let project = harness.project_a.id.clone();
    let created = harness
        .admin(Method::POST, "pipeline/variable/group/create", Some(json!({
            "name": "common", "description": "shared settings", "project_id": project,
            "variables": [
                {"sequence": 1, "name": "REGISTRY", "type": "string", "value": "registry.example.com", "description": "image registry", "is_secret": false},
                {"sequence": 2, "name": "PUSH_TOKEN", "value": "canary-group-secret", "is_secret": true}
            ]})))
        .await;
    ok(&created);
    let group_id = created.body["pipeline_variable_group_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let detail = harness
        .as_user(
            &harness.vera.token,
            Method::GET,
            &format!("pipeline/variable/group/{group_id}"),
            None,
        )
        .await;
    ok(&detail);
    for field in [
        "id",
        "project_id",
        "domain_id",
        "name",
        "description",
        "variables",
        "related_pipelines",
        "creator_id",
        "updater_id",
        "creator_name",
        "updater_name",
        "create_time",
        "update_time",
    ] {
        assert!(detail.body.get(field).is_some(), "{field}: {}", detail.text);
    }
    assert_eq!(detail.body["creator_name"], "alice");
    assert_eq!(
        detail.body["variables"][0],
        json!({"name": "REGISTRY", "sequence": 1, "type": "string", "value": "registry.example.com", "is_secret": false, "description": "image registry"})
    );
    assert_eq!(detail.body["variables"][1]["value"], "******");
    assert!(!detail.text.contains("canary-group-secret"));

    // Bound to a pipeline, its values reach the run's parameters.
    let pipeline = harness
        .create_pipeline("uses-group", two_stages(), json!({}))
        .await;
    let bound = harness
        .admin(
            Method::POST,
            "pipeline/variable/group/relation",
            Some(json!({"pipeline_id": pipeline, "variable_group_ids": [group_id]})),
        )
        .await;
    assert_eq!(bound.body, json!({"success": true}));
    let by_pipeline = harness
        .admin(
            Method::GET,
            &format!("pipeline/variable/group/pipeline?pipelineId={pipeline}"),
            None,
        )
        .await;
    assert_eq!(by_pipeline.body[0]["id"], group_id.as_str());
    assert_eq!(
        by_pipeline.body[0]["related_pipelines"],
        json!([{"id": pipeline, "name": "uses-group"}])
    );
    let pipeline_detail = harness
        .admin(Method::GET, &format!("pipelines/{pipeline}"), None)
        .await;
    assert_eq!(
        pipeline_detail.body["variable_group_ids"],
        json!([group_id])
    );
    let run = harness.run(&pipeline, json!({})).await;
    let run_id = run["pipeline_run_id"].as_str().expect("run");
    let parameters = harness
        .store
        .run_parameters(run_id)
        .await
        .expect("parameters");
    let value = |name: &str| {
        parameters
            .iter()
            .find(|parameter| parameter.name == name)
            .map(|parameter| parameter.value.clone())
    };
    assert_eq!(value("REGISTRY").as_deref(), Some("registry.example.com"));
    assert_eq!(value("PUSH_TOKEN").as_deref(), Some("canary-group-secret"));

    // An update that sends the mask back keeps the secret; the list pages and filters.
    let updated = harness
        .admin(Method::PUT, "pipeline/variable/group/update", Some(json!({
            "id": group_id, "project_id": project, "name": "common", "description": "v2",
            "variables": [
                {"sequence": 1, "name": "REGISTRY", "type": "string", "value": "registry2.example.com", "is_secret": false},
                {"sequence": 2, "name": "PUSH_TOKEN", "value": "******", "is_secret": true}
            ]})))
        .await;
    assert_eq!(updated.body, json!({"success": true}), "{}", updated.text);
    let stored = harness
        .store
        .variable_group(&project, &group_id)
        .await
        .expect("read")
        .expect("group");
    assert_eq!(stored.description, "v2");
    assert_eq!(stored.variables[0].value, "registry2.example.com");
    assert_eq!(stored.variables[1].value, "canary-group-secret");
    for name in ["alpha-extra", "beta-extra"] {
        let reply = harness
            .admin(
                Method::POST,
                "pipeline/variable/group/create",
                Some(json!({"name": name})),
            )
            .await;
        ok(&reply);
    }
    let list = harness
        .admin(
            Method::POST,
            "pipeline/variable/group/list",
            Some(json!({"offset": 0, "limit": 2})),
        )
        .await;
    ok(&list);
    assert_eq!(
        (
            list.body["total"].clone(),
            list.body["offset"].clone(),
            list.body["limit"].clone()
        ),
        (json!(3), json!(0), json!(2))
    );
    assert_eq!(
        list.body["pipeline_variable_groups"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let everything = harness
        .admin(
            Method::POST,
            "pipeline/variable/group/list",
            Some(json!({"limit": 10})),
        )
        .await;
    let common = everything.body["pipeline_variable_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|group| group["name"] == "common")
        .expect("common is listed");
    assert_eq!(common["variables"][1]["value"], "******");
    assert!(!everything.text.contains("canary-group-secret"));
    let filtered = harness
        .admin(
            Method::POST,
            "pipeline/variable/group/list",
            Some(json!({"name": "BETA"})),
        )
        .await;
    assert_eq!(filtered.body["total"], 1);
    assert_eq!(
        filtered.body["pipeline_variable_groups"][0]["name"],
        "beta-extra"
    );
    let dupe = harness
        .admin(
            Method::POST,
            "pipeline/variable/group/create",
            Some(json!({"name": "common"})),
        )
        .await;
    refused(
        &dupe,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00011304",
        "already exists",
    );

    // Deleting unbinds it.
    let developer = harness
        .as_user(
            &harness.dave.token,
            Method::DELETE,
            &format!("pipeline/variable/group/delete?id={group_id}"),
            None,
        )
        .await;
    refused(&developer, StatusCode::FORBIDDEN, "DEVPIPE.00011405", "");
    let deleted = harness
        .admin(
            Method::DELETE,
            &format!("pipeline/variable/group/delete?id={group_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.body, json!({"success": true}));
    let pipeline_detail = harness
        .admin(Method::GET, &format!("pipelines/{pipeline}"), None)
        .await;
    assert_eq!(pipeline_detail.body["variable_group_ids"], json!([]));
    let gone = harness
        .admin(
            Method::GET,
            &format!("pipeline/variable/group/{group_id}"),
            None,
        )
        .await;
    refused(
        &gone,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00011303",
        "variable group",
    );
}

#[tokio::test]
async fn bad_variable_groups_are_refused_naming_the_variable_and_store_nothing() {
    let harness = Harness::new().await;
    let many: Vec<Value> = (0..21)
        .map(|index| json!({"name": format!("V{index}"), "value": "x"}))
        .collect();
    let cases = [
        (
            json!({"name": "g", "variables": many}),
            "DEVPIPE.00010001",
            "variables: a variable group may have at most 20",
        ),
        (
            json!({"name": "g", "variables": [{"name": "PATH", "value": "/tmp"}]}),
            "DEVPIPE.00010001",
            "variables[0].name",
        ),
        (
            json!({"name": "g", "variables": [{"name": "A"}, {"name": "A"}]}),
            "DEVPIPE.00010001",
            "variables[1].name: is used twice",
        ),
        (
            json!({"name": "g", "variables": [{"name": "A", "type": "list"}]}),
            "DEVPIPE.00010001",
            "variables[0].type",
        ),
        (
            json!({"name": "g", "variables": [{"name": "A", "value": "x".repeat(8193)}]}),
            "DEVPIPE.00010001",
            "variables[0].value",
        ),
        (
            json!({"name": "g", "variables": [{"name": "A", "is_secret": "yes"}]}),
            "DEVPIPE.00010001",
            "variables[0].is_secret: expected a boolean",
        ),
        (
            json!({"name": "g", "variables": [{"value": "x"}]}),
            "DEVPIPE.00010001",
            "variables[0].name: is required",
        ),
        (
            json!({"name": "g", "project_id": "0123456789abcdef0123456789abcdef"}),
            "DEVPIPE.00010001",
            "project_id",
        ),
        (
            json!({"variables": []}),
            "DEVPIPE.00010001",
            "name: is required",
        ),
        (
            json!({"name": "g", "description": "d".repeat(1025)}),
            "DEVPIPE.00010001",
            "description",
        ),
    ];
    for (body, code, mentions) in cases {
        let reply = harness
            .admin(Method::POST, "pipeline/variable/group/create", Some(body))
            .await;
        refused(&reply, StatusCode::BAD_REQUEST, code, mentions);
        assert!(!reply.text.contains("/tmp"), "values are never quoted");
    }
    let listed = harness
        .store
        .list_variable_groups(&harness.project_a.id, None, 0, 10)
        .await
        .expect("list");
    assert_eq!(listed.total, 0, "nothing was stored");
    let update_without_id = harness
        .admin(
            Method::PUT,
            "pipeline/variable/group/update",
            Some(json!({"name": "g"})),
        )
        .await;
    refused(
        &update_without_id,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "id: is required",
    );
    let paging = harness
        .admin(
            Method::POST,
            "pipeline/variable/group/list",
            Some(json!({"limit": 101})),
        )
        .await;
    refused(
        &paging,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00010001",
        "limit",
    );
    let relation = harness
        .admin(Method::POST, "pipeline/variable/group/relation", Some(json!({"pipeline_id": "0123456789abcdef0123456789abcdef", "variable_group_ids": []})))
        .await;
    refused(
        &relation,
        StatusCode::BAD_REQUEST,
        "DEVPIPE.00011401",
        "pipeline",
    );
}
