//! The administration routes (`/v5/admin/…`, `GET /v5/projects`) through `Router::oneshot` on a
//! real store: domain administrators only, confined to their domain, bad input refused with
//! nothing changed, and the effects (logins, tokens, keys, memberships) seen through the API.

#[path = "api/harness.rs"]
#[allow(dead_code)]
mod harness;

use axum::http::{Method, StatusCode};
use harness::{Auth, Harness, Reply, login_body, sign};
use runnel_store::{IdentityAdminStore, IdentityStore};
use serde_json::{Value, json};
use std::time::Duration;

/// The harness with Alice made a domain administrator.
async fn world() -> Harness {
    let harness = Harness::new().await;
    harness
        .store
        .set_domain_admin(&harness.alice.id, true, harness.engine.now())
        .await
        .expect("alice administers the domain");
    harness
}

async fn admin(harness: &Harness, method: Method, uri: &str, body: Option<Value>) -> Reply {
    harness
        .call(method, uri, Auth::Token(&harness.alice.token), body)
        .await
}

async fn login(harness: &Harness, user: &str, password: &str) -> Reply {
    harness
        .call(
            Method::POST,
            "/v3/auth/tokens",
            Auth::None,
            Some(login_body(user, password)),
        )
        .await
}

/// Everything the admin routes can change, to prove a refusal changed nothing.
async fn snapshot(harness: &Harness) -> Value {
    let store = &harness.store;
    let domain = &harness.project_a.domain_id;
    let users: Vec<Value> = store
        .users(domain)
        .await
        .expect("users")
        .into_iter()
        .map(|user| json!([user.name, user.is_disabled, user.is_domain_admin]))
        .collect();
    let mut projects = Vec::new();
    for project in store.projects(domain).await.expect("projects") {
        let members: Vec<Value> = store
            .members(&project.id)
            .await
            .expect("members")
            .into_iter()
            .map(|member| json!([member.user_id, member.role.as_str()]))
            .collect();
        projects.push(json!([project.name, members]));
    }
    let mut keys = Vec::new();
    for user in store.users(domain).await.expect("users") {
        for key in store.access_keys_of(&user.id).await.expect("keys") {
            keys.push(json!([key.ak, key.is_disabled]));
        }
    }
    json!({"users": users, "projects": projects, "keys": keys})
}

/// Every admin route, with a body that would succeed for an administrator.
fn admin_routes(harness: &Harness) -> Vec<(Method, String, Option<Value>)> {
    let dave = &harness.dave.id;
    let project = &harness.project_a.id;
    vec![
        (Method::GET, "/v5/admin/users".to_owned(), None),
        (
            Method::POST,
            "/v5/admin/users".to_owned(),
            Some(json!({"name": "mallory"})),
        ),
        (
            Method::POST,
            format!("/v5/admin/users/{dave}/disable"),
            None,
        ),
        (Method::POST, format!("/v5/admin/users/{dave}/enable"), None),
        (
            Method::POST,
            format!("/v5/admin/users/{dave}/tokens/revoke"),
            None,
        ),
        (
            Method::GET,
            format!("/v5/admin/users/{dave}/access-keys"),
            None,
        ),
        (
            Method::POST,
            format!("/v5/admin/users/{dave}/access-keys"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/v5/admin/access-keys/{}", harness.ak),
            None,
        ),
        (Method::GET, "/v5/admin/projects".to_owned(), None),
        (
            Method::POST,
            "/v5/admin/projects".to_owned(),
            Some(json!({"name": "mallory's"})),
        ),
        (
            Method::GET,
            format!("/v5/admin/projects/{project}/members"),
            None,
        ),
        (
            Method::POST,
            format!("/v5/admin/projects/{project}/members"),
            Some(json!({"user_id": dave, "role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/v5/admin/projects/{project}/members/{dave}"),
            None,
        ),
    ]
}

#[tokio::test]
async fn only_domain_administrators_may_administer_and_refusals_change_nothing() {
    let harness = world().await;
    let before = snapshot(&harness).await;
    // Dave is a developer and Carol a project admin: neither administers the domain.
    for token in [&harness.dave.token, &harness.carol.token] {
        for (method, uri, body) in admin_routes(&harness) {
            let reply = harness
                .call(method.clone(), &uri, Auth::Token(token), body.clone())
                .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {uri}: {}",
                reply.text
            );
            assert_eq!(reply.code(), "DEVPIPE.00011405", "{method} {uri}");
        }
    }
    for (method, uri, body) in admin_routes(&harness) {
        let reply = harness.call(method.clone(), &uri, Auth::None, body).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(reply.code(), "DEV.00000001");
    }
    assert_eq!(snapshot(&harness).await, before);
    // The same routes work for Alice, also when she signs with her access key.
    let listed = harness
        .call(Method::GET, "/v5/admin/users", Auth::Signed, None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["total"], 4);
}

#[tokio::test]
async fn users_get_given_or_generated_passwords_and_disabling_stops_logins_tokens_and_keys() {
    let harness = world().await;
    let given = admin(
        &harness,
        Method::POST,
        "/v5/admin/users",
        Some(json!({"name": "erin", "password": "erin's long password"})),
    )
    .await;
    assert_eq!(given.status, StatusCode::OK, "{}", given.text);
    assert!(
        given.body.get("password").is_none(),
        "a given password is never echoed"
    );
    assert_eq!(given.body["is_domain_admin"], false);
    let erin_id = given.body["user_id"].as_str().expect("id").to_owned();
    let erin = login(&harness, "erin", "erin's long password").await;
    assert_eq!(erin.status, StatusCode::CREATED, "{}", erin.text);
    let erin_token = erin.headers["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned();

    let generated = admin(
        &harness,
        Method::POST,
        "/v5/admin/users",
        Some(json!({"name": "frank", "domain_admin": true})),
    )
    .await;
    assert_eq!(generated.status, StatusCode::OK, "{}", generated.text);
    assert_eq!(generated.headers["cache-control"], "no-store");
    assert_eq!(generated.body["is_domain_admin"], true);
    let password = generated.body["password"].as_str().expect("generated");
    assert!(password.len() >= 20);
    assert_eq!(
        login(&harness, "frank", password).await.status,
        StatusCode::CREATED
    );

    // Erin gets a key; disabling her stops her token, her key and her logins at once.
    let key = admin(
        &harness,
        Method::POST,
        &format!("/v5/admin/users/{erin_id}/access-keys"),
        Some(json!({"description": "erin's laptop"})),
    )
    .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.text);
    let (ak, sk) = (
        key.body["ak"].as_str().expect("ak").to_owned(),
        key.body["sk"].as_str().expect("sk").to_owned(),
    );
    let own_projects = "/v5/projects";
    assert_eq!(
        signed_get(&harness, own_projects, &ak, &sk).await.status,
        StatusCode::OK
    );
    let disabled = admin(
        &harness,
        Method::POST,
        &format!("/v5/admin/users/{erin_id}/disable"),
        None,
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(disabled.body, json!({"success": true, "revoked_tokens": 1}));
    let with_token = harness
        .call(Method::GET, own_projects, Auth::Token(&erin_token), None)
        .await;
    assert_eq!(with_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(with_token.code(), "APIGW.0301");
    assert_eq!(
        signed_get(&harness, own_projects, &ak, &sk).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&harness, "erin", "erin's long password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let users = admin(&harness, Method::GET, "/v5/admin/users", None).await;
    let erin_row = users.body["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|user| user["name"] == "erin")
        .expect("listed");
    assert_eq!(erin_row["is_disabled"], true);

    let enabled = admin(
        &harness,
        Method::POST,
        &format!("/v5/admin/users/{erin_id}/enable"),
        None,
    )
    .await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert_eq!(
        login(&harness, "erin", "erin's long password").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        harness
            .call(Method::GET, own_projects, Auth::Token(&erin_token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "a token revoked by the disable stays revoked"
    );

    let myself = admin(
        &harness,
        Method::POST,
        &format!("/v5/admin/users/{}/disable", harness.alice.id),
        None,
    )
    .await;
    assert_eq!(myself.status, StatusCode::BAD_REQUEST);
    assert_eq!(myself.code(), "DEVPIPE.00011404");
}

/// A GET signed with the given key pair.
async fn signed_get(harness: &Harness, uri: &str, ak: &str, sk: &str) -> Reply {
    let date = chrono::DateTime::from_timestamp_millis(harness.clock_now())
        .expect("time")
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let authorization = sign(&Method::GET, uri, &date, b"", ak, sk);
    harness
        .call_raw(
            Method::GET,
            uri,
            Auth::None,
            Vec::new(),
            &[("x-sdk-date", &date), ("authorization", &authorization)],
        )
        .await
}

#[tokio::test]
async fn bad_input_answers_400_naming_the_field_and_changes_nothing() {
    let harness = world().await;
    let project = harness.project_a.id.clone();
    let members = format!("/v5/admin/projects/{project}/members");
    let cases: Vec<(&str, String, Vec<u8>, &str, &str)> = vec![
        (
            "POST",
            "/v5/admin/users".into(),
            b"{\"name\": ".to_vec(),
            "DEVPIPE.00010002",
            "not valid JSON",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            b"[]".to_vec(),
            "DEVPIPE.00010001",
            "body",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            b"{}".to_vec(),
            "DEVPIPE.00010001",
            "name: is required",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": 7}"#.to_vec(),
            "DEVPIPE.00010001",
            "name",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": "-x"}"#.to_vec(),
            "DEVPIPE.00010001",
            "name",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": "has space"}"#.to_vec(),
            "DEVPIPE.00010001",
            "name",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": "ok", "password": "short"}"#.to_vec(),
            "DEVPIPE.00010001",
            "password",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": "ok", "domain_admin": "yes"}"#.to_vec(),
            "DEVPIPE.00010001",
            "domain_admin",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": "ok", "role": "admin"}"#.to_vec(),
            "DEVPIPE.00010001",
            "unknown field",
        ),
        (
            "POST",
            "/v5/admin/users".into(),
            br#"{"name": "dave"}"#.to_vec(),
            "DEVPIPE.00011304",
            "already exists",
        ),
        (
            "POST",
            "/v5/admin/projects".into(),
            br#"{"name": " padded"}"#.to_vec(),
            "DEVPIPE.00010001",
            "name",
        ),
        (
            "POST",
            "/v5/admin/projects".into(),
            br#"{"name": "semi;colon"}"#.to_vec(),
            "DEVPIPE.00010001",
            "name",
        ),
        (
            "POST",
            "/v5/admin/projects".into(),
            br#"{"name": "alpha"}"#.to_vec(),
            "DEVPIPE.00011304",
            "already exists",
        ),
        (
            "POST",
            "/v5/admin/projects".into(),
            format!(r#"{{"name": "x", "description": "{}"}}"#, "d".repeat(1025)).into_bytes(),
            "DEVPIPE.00010001",
            "description",
        ),
        (
            "POST",
            members.clone(),
            format!(r#"{{"user_id": "{}", "role": "owner"}}"#, harness.dave.id).into_bytes(),
            "DEVPIPE.00010001",
            "role",
        ),
        (
            "POST",
            members.clone(),
            br#"{"role": "viewer"}"#.to_vec(),
            "DEVPIPE.00010001",
            "user_id: is required",
        ),
        (
            "POST",
            members.clone(),
            format!(r#"{{"user_id": "{}", "role": "viewer"}}"#, "0".repeat(32)).into_bytes(),
            "DEVPIPE.00010001",
            "user_id",
        ),
        (
            "POST",
            format!("/v5/admin/projects/{}/members", "0".repeat(32)),
            format!(r#"{{"user_id": "{}", "role": "viewer"}}"#, harness.dave.id).into_bytes(),
            "DEVPIPE.00011412",
            "project",
        ),
        (
            "DELETE",
            format!("{members}/{}", harness.carol.id),
            Vec::new(),
            "DEVPIPE.00010001",
            "not a member",
        ),
        (
            "POST",
            format!("/v5/admin/users/{}/disable", "0".repeat(32)),
            Vec::new(),
            "DEVPIPE.00010001",
            "user_id",
        ),
        (
            "POST",
            "/v5/admin/users/bad%20id/tokens/revoke".into(),
            Vec::new(),
            "DEVPIPE.00010001",
            "user_id",
        ),
        (
            "POST",
            format!("/v5/admin/users/{}/access-keys", harness.dave.id),
            format!(r#"{{"description": "{}"}}"#, "k".repeat(256)).into_bytes(),
            "DEVPIPE.00010001",
            "description",
        ),
        (
            "DELETE",
            "/v5/admin/access-keys/NOSUCHKEY".into(),
            Vec::new(),
            "DEVPIPE.00010001",
            "ak",
        ),
    ];
    let before = snapshot(&harness).await;
    for (method, uri, body, code, says) in cases {
        let method: Method = method.parse().expect("method");
        let reply = harness
            .call_raw(
                method.clone(),
                &uri,
                Auth::Token(&harness.alice.token),
                body,
                &[],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {uri}: {}",
            reply.text
        );
        assert_eq!(reply.code(), code, "{method} {uri}: {}", reply.text);
        let message = reply.body["error_msg"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{method} {uri}: {message}");
        assert!(
            !message.contains("short\""),
            "passwords are never quoted: {message}"
        );
    }
    assert_eq!(snapshot(&harness).await, before, "nothing changed");
}

#[tokio::test]
async fn projects_come_with_their_creator_as_admin_and_members_get_what_their_role_allows() {
    let harness = world().await;
    let created = admin(
        &harness,
        Method::POST,
        "/v5/admin/projects",
        Some(json!({"name": "team b", "description": "the second team"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let project = created.body["project_id"].as_str().expect("id").to_owned();
    let members_uri = format!("/v5/admin/projects/{project}/members");
    let members = admin(&harness, Method::GET, &members_uri, None).await;
    assert_eq!(members.body["total"], 1);
    assert_eq!(members.body["members"][0]["user_name"], "alice");
    assert_eq!(members.body["members"][0]["role"], "admin");

    let pipelines = format!("/v5/{project}/api/pipelines");
    let dave = Auth::Token(&harness.dave.token);
    let outsider = harness
        .call(
            Method::POST,
            &format!("{pipelines}/list"),
            dave.clone(),
            Some(json!({})),
        )
        .await;
    assert_eq!(outsider.code(), "DEVPIPE.00011412", "not a member yet");

    let add = |role: &str| json!({"user_id": harness.dave.id, "role": role});
    let added = admin(&harness, Method::POST, &members_uri, Some(add("viewer"))).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let own = harness
        .call(Method::GET, "/v5/projects", dave.clone(), None)
        .await;
    let names: Vec<(String, String)> = own.body["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|project| {
            (
                project["name"].as_str().unwrap_or_default().to_owned(),
                project["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("alpha".to_owned(), "developer".to_owned()),
            ("team b".to_owned(), "viewer".to_owned())
        ]
    );
    let viewer_list = harness
        .call(
            Method::POST,
            &format!("{pipelines}/list"),
            dave.clone(),
            Some(json!({})),
        )
        .await;
    assert_eq!(viewer_list.status, StatusCode::OK, "{}", viewer_list.text);
    let body = json!({"name": "p", "is_publish": false, "definition": "{\"stages\":[]}"});
    let refused = harness
        .call(Method::POST, &pipelines, dave.clone(), Some(body.clone()))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "a viewer cannot create"
    );

    admin(&harness, Method::POST, &members_uri, Some(add("developer"))).await;
    let allowed = harness
        .call(Method::POST, &pipelines, dave.clone(), Some(body))
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);

    let removed = admin(
        &harness,
        Method::DELETE,
        &format!("{members_uri}/{}", harness.dave.id),
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    let gone = harness
        .call(
            Method::POST,
            &format!("{pipelines}/list"),
            dave,
            Some(json!({})),
        )
        .await;
    assert_eq!(gone.code(), "DEVPIPE.00011412");
    let listed = admin(&harness, Method::GET, "/v5/admin/projects", None).await;
    assert_eq!(listed.body["total"], 3);
}

#[tokio::test]
async fn access_keys_sign_until_deleted_and_revoked_tokens_stop_at_once() {
    let harness = world().await;
    let dave = harness.dave.id.clone();
    let created = admin(
        &harness,
        Method::POST,
        &format!("/v5/admin/users/{dave}/access-keys"),
        Some(json!({"description": "ci"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let (ak, sk) = (
        created.body["ak"].as_str().expect("ak").to_owned(),
        created.body["sk"].as_str().expect("sk").to_owned(),
    );
    let keys = admin(
        &harness,
        Method::GET,
        &format!("/v5/admin/users/{dave}/access-keys"),
        None,
    )
    .await;
    assert_eq!(keys.body["total"], 1);
    assert_eq!(keys.body["access_keys"][0]["ak"], ak.as_str());
    assert!(!keys.text.contains(&sk), "listings never show the SK");
    let uri = format!("/v5/{}/api/pipelines/list", harness.project_a.id);
    let signed = signed_get(&harness, "/v5/projects", &ak, &sk).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    assert_eq!(signed.body["projects"][0]["role"], "developer");

    let deleted = admin(
        &harness,
        Method::DELETE,
        &format!("/v5/admin/access-keys/{ak}"),
        None,
    )
    .await;
    assert_eq!(deleted.body, json!({"success": true}));
    let after = signed_get(&harness, "/v5/projects", &ak, &sk).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "APIGW.0301");

    let second = harness.login("dave").await;
    let revoked = admin(
        &harness,
        Method::POST,
        &format!("/v5/admin/users/{dave}/tokens/revoke"),
        None,
    )
    .await;
    assert_eq!(revoked.body, json!({"success": true, "revoked_tokens": 2}));
    for token in [&harness.dave.token, &second] {
        let reply = harness
            .call(Method::POST, &uri, Auth::Token(token), Some(json!({})))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "APIGW.0301");
    }
    assert_eq!(
        login(&harness, "dave", harness::PASSWORD).await.status,
        StatusCode::CREATED,
        "revoking tokens does not disable the user"
    );
}

#[tokio::test]
async fn another_domains_objects_answer_like_missing_ones() {
    let harness = world().await;
    let now = harness.engine.now();
    let store = &harness.store;
    let other = store.create_domain("globex", now).await.expect("domain");
    let boss = store
        .create_user(&other.id, "boss", None, now)
        .await
        .expect("user");
    store
        .set_domain_admin(&boss.id, true, now)
        .await
        .expect("admin");
    let token = store
        .issue_token(&boss.id, "domain", now, Duration::from_secs(3600))
        .await
        .expect("token")
        .token;
    let boss = Auth::Token(&token);
    let before = snapshot(&harness).await;
    let dave = &harness.dave.id;
    let project = &harness.project_a.id;
    for (method, uri, body, code) in [
        (
            Method::POST,
            format!("/v5/admin/users/{dave}/disable"),
            None,
            "DEVPIPE.00010001",
        ),
        (
            Method::POST,
            format!("/v5/admin/users/{dave}/tokens/revoke"),
            None,
            "DEVPIPE.00010001",
        ),
        (
            Method::GET,
            format!("/v5/admin/users/{dave}/access-keys"),
            None,
            "DEVPIPE.00010001",
        ),
        (
            Method::POST,
            format!("/v5/admin/users/{dave}/access-keys"),
            Some(json!({})),
            "DEVPIPE.00010001",
        ),
        (
            Method::DELETE,
            format!("/v5/admin/access-keys/{}", harness.ak),
            None,
            "DEVPIPE.00010001",
        ),
        (
            Method::GET,
            format!("/v5/admin/projects/{project}/members"),
            None,
            "DEVPIPE.00011412",
        ),
        (
            Method::POST,
            format!("/v5/admin/projects/{project}/members"),
            Some(json!({"user_id": dave, "role": "admin"})),
            "DEVPIPE.00011412",
        ),
    ] {
        let foreign = harness
            .call(method.clone(), &uri, boss.clone(), body.clone())
            .await;
        let missing_uri = uri
            .replace(dave, &"0".repeat(32))
            .replace(project, &"f".repeat(32))
            .replace(&harness.ak, "NOSUCHKEY");
        let missing = harness
            .call(method.clone(), &missing_uri, boss.clone(), body)
            .await;
        assert_eq!(
            foreign.status,
            StatusCode::BAD_REQUEST,
            "{method} {uri}: {}",
            foreign.text
        );
        assert_eq!(foreign.code(), code, "{method} {uri}");
        assert_eq!(
            foreign.body, missing.body,
            "{method} {uri}: a foreign id answers like a missing one"
        );
    }
    let users = harness
        .call(Method::GET, "/v5/admin/users", boss.clone(), None)
        .await;
    assert_eq!(
        users.body["total"], 1,
        "only the own domain: {}",
        users.text
    );
    let projects = harness
        .call(Method::GET, "/v5/admin/projects", boss, None)
        .await;
    assert_eq!(projects.body["total"], 0);
    assert_eq!(snapshot(&harness).await, before);
}
