//! Webhooks and checkouts end to end: real repositories made with the git CLI and served by
//! `git daemon` on loopback (the server is told to allow private networks), a real server
//! (store, engine, API, built-in executor pool), deliveries signed as GitHub and GitLab sign.

#[path = "webhooks/support.rs"]
mod support;

use runnel_store::PipelineStore;
use serde_json::{Value, json};
use support::{
    AuthGitServer, GitServer, TestServer, callback_path, deliver_github, git, github_push,
    pipeline_body,
};

/// Prints what the checkout gave the step, and fails unless HEAD is the run's commit.
const SHOW: &str = r#"set -eu
head=$(git rev-parse HEAD)
echo "head=$head"
echo "commit=$COMMIT_ID app=$app_COMMIT_ID short=$app_COMMIT_ID_SHORT trigger=$PIPELINE_TRIGGER_TYPE"
echo "branch=$app_TARGET_BRANCH source=$app_SOURCE_BRANCH tag=$app_TAG merge=$MERGE_ID"
test "$head" = "$COMMIT_ID"
"#;

const ALLOW_LOOPBACK: (&str, &str) = ("RUNNEL__SECURITY__ALLOW_PRIVATE_NETWORKS", "true");

struct Hook {
    pipeline_id: String,
    path: String,
    secret: String,
}

async fn hooked_pipeline(test: &TestServer, name: &str, url: &str, events: Value) -> Hook {
    let triggers = json!([{"git_type": "github", "git_url": url, "events": events}]);
    let pipeline_id = test
        .create_pipeline(pipeline_body(name, url, triggers, SHOW))
        .await;
    let detail = test.pipeline_detail(&pipeline_id).await;
    let trigger = &detail["triggers"][0];
    let callback = trigger["callback_url"].as_str().expect("callback_url");
    assert!(
        callback.starts_with(&format!("http://{}/webhooks/", test.addr())),
        "an absolute URL on the server's public address: {callback}"
    );
    assert!(
        trigger["hook_id"]
            .as_str()
            .is_some_and(|id| id.parse::<i64>().is_ok())
    );
    let secret = trigger["security_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(
        secret.len() >= 32 && secret != "******",
        "a generated secret is shown to editors"
    );
    Hook {
        pipeline_id,
        path: callback_path(callback),
        secret,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_github_push_starts_exactly_one_run_at_the_pushed_commit() {
    push_flow(&[ALLOW_LOOPBACK]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_github_push_starts_exactly_one_run_on_postgresql() {
    let Some(database) = runnel_store::testing::TestDatabase::create("runnel_webhook_test").await
    else {
        return;
    };
    push_flow(&[
        ALLOW_LOOPBACK,
        ("RUNNEL__STORAGE__DATABASE_URL", &database.url),
    ])
    .await;
    drop(database);
}

/// A push webhook starts one run at the pushed commit; replays, forged and unsigned deliveries
/// start nothing; every delivery is in the log; viewers never see the secret.
async fn push_flow(env: &[(&str, &str)]) {
    let git = GitServer::start().await;
    let repo = git.repo("app");
    let test = TestServer::start(env).await;
    let hook = hooked_pipeline(
        &test,
        "pushed",
        &repo.url,
        json!([{"type": "push", "enable": true}]),
    )
    .await;
    let before = repo.head();
    let commit = repo.commit("src/lib.rs", "fn main() {}\n", "add lib");
    repo.push("main");
    // An older commit stays the branch head on the server: the run must check out the pushed one.
    repo.commit("src/later.rs", "\n", "later");
    repo.push("main");

    let payload = github_push(
        &repo.url,
        "refs/heads/main",
        &before,
        &commit,
        "add lib",
        &["src/lib.rs"],
    );
    let reply = deliver_github(
        &test,
        &hook.path,
        "push",
        "delivery-1",
        &hook.secret,
        &payload,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "accepted");
    let run_id = reply.json["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert!(logs.contains(&format!("head={commit}")), "{logs}");
    assert!(
        logs.contains(&format!(
            "commit={commit} app={commit} short={} trigger=Push",
            &commit[..8]
        )),
        "{logs}"
    );
    assert!(logs.contains("branch=main source= tag= merge="), "{logs}");
    assert_eq!(detail.run.trigger_type, "Push");
    assert_eq!(detail.run.build_params["commit_id"], commit);
    assert_eq!(detail.run.build_params["target_branch"], "main");
    assert_eq!(detail.run.build_params["event_type"], "Push");
    assert_eq!(
        detail.run.sources[0]["params"]["build_params"]["commit_id"],
        commit
    );

    // The same delivery again starts nothing (G6), also after the first run ended.
    let replay = deliver_github(
        &test,
        &hook.path,
        "push",
        "delivery-1",
        &hook.secret,
        &payload,
    )
    .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.json["status"], "duplicate");
    // A wrong signature is refused (S3) and starts nothing either.
    let forged = deliver_github(
        &test,
        &hook.path,
        "push",
        "delivery-2",
        "not-the-secret",
        &payload,
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.text);
    let tampered = {
        let body = payload.to_string();
        let signature = support::github_signature(&hook.secret, body.as_bytes());
        let changed = body.replace("add lib", "add lib!");
        test.request(
            "POST",
            &hook.path,
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "delivery-3"),
                ("X-Hub-Signature-256", &signature),
            ],
            changed.as_bytes(),
        )
        .await
    };
    assert_eq!(
        tampered.status, 401,
        "a body changed after signing: {}",
        tampered.text
    );
    let unsigned = test
        .request(
            "POST",
            &hook.path,
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "delivery-4"),
            ],
            payload.to_string().as_bytes(),
        )
        .await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.text);
    assert_eq!(
        test.run_count(&hook.pipeline_id).await,
        1,
        "exactly one run"
    );

    // Every delivery is visible with its outcome.
    let deliveries = test.deliveries(&hook.pipeline_id).await;
    let outcomes: Vec<&str> = deliveries
        .iter()
        .filter_map(|item| item["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| **outcome == "accepted")
            .count(),
        1,
        "{deliveries:#?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| **outcome == "duplicate")
            .count(),
        1,
        "{deliveries:#?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| **outcome == "rejected")
            .count(),
        3,
        "{deliveries:#?}"
    );
    let accepted = deliveries
        .iter()
        .find(|item| item["outcome"] == "accepted")
        .expect("accepted");
    assert_eq!(accepted["pipeline_run_id"], run_id.as_str());
    assert_eq!(accepted["delivery_id"], "delivery-1");
    assert!(
        deliveries.iter().any(|item| item["outcome"] == "rejected"
            && item["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("does not match"))),
        "{deliveries:#?}"
    );
    // A viewer sees the secret masked; the stored pipeline settings never hold it.
    let viewer = test.viewer_token().await;
    let reply = test
        .request(
            "GET",
            &format!("/v5/{}/api/pipelines/{}", test.project_id, hook.pipeline_id),
            &[("X-Auth-Token", &viewer)],
            b"",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["triggers"][0]["security_token"], "******");
    let stored = test
        .server
        .store()
        .pipeline_by_id(&hook.pipeline_id)
        .await
        .expect("read")
        .expect("pipeline");
    assert!(
        !stored.settings.to_string().contains(&hook.secret),
        "the secret is not in the settings"
    );
    let unknown_hook = test
        .request(
            "POST",
            "/webhooks/999999",
            &[("X-GitHub-Event", "push")],
            b"{}",
        )
        .await;
    assert_eq!(unknown_hook.status, 404);
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_branch_filters_skip_unrelated_pushes() {
    let git = GitServer::start().await;
    let repo = git.repo("filtered");
    let test = TestServer::start(&[ALLOW_LOOPBACK]).await;
    let events = json!([{"type": "push", "enable": true, "branches": ["main", "release/*"], "paths": ["src/**"],
        "exclude_paths": ["src/**/*.md"]}]);
    let hook = hooked_pipeline(&test, "filtered", &repo.url, events).await;
    let base = repo.head();
    let docs = repo.commit("docs/guide.md", "guide\n", "docs only");
    repo.push("main");
    let payload = github_push(
        &repo.url,
        "refs/heads/main",
        &base,
        &docs,
        "docs only",
        &["docs/guide.md", "src/notes/readme.md"],
    );
    let reply = deliver_github(
        &test,
        &hook.path,
        "push",
        "docs-push",
        &hook.secret,
        &payload,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "filtered");
    assert!(
        reply.json["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("path")),
        "{}",
        reply.text
    );

    repo.checkout_new("feature");
    let feature = repo.commit("src/feature.rs", "\n", "feature");
    repo.push("feature");
    let payload = github_push(
        &repo.url,
        "refs/heads/feature",
        &docs,
        &feature,
        "feature",
        &["src/feature.rs"],
    );
    let reply = deliver_github(
        &test,
        &hook.path,
        "push",
        "feature-push",
        &hook.secret,
        &payload,
    )
    .await;
    assert_eq!(reply.json["status"], "filtered", "{}", reply.text);
    assert!(
        reply.json["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("feature")),
        "{}",
        reply.text
    );
    assert_eq!(test.run_count(&hook.pipeline_id).await, 0);

    repo.checkout("main");
    let code = repo.commit("src/main.rs", "fn main() {}\n", "code");
    repo.push("main");
    let payload = github_push(
        &repo.url,
        "refs/heads/main",
        &docs,
        &code,
        "code",
        &["src/main.rs"],
    );
    let reply = deliver_github(
        &test,
        &hook.path,
        "push",
        "code-push",
        &hook.secret,
        &payload,
    )
    .await;
    assert_eq!(reply.json["status"], "accepted", "{}", reply.text);
    let run_id = reply.json["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let (_, logs) = test.expect_completed(&run_id).await;
    assert!(logs.contains(&format!("head={code}")), "{logs}");
    let deliveries = test.deliveries(&hook.pipeline_id).await;
    let filtered = deliveries
        .iter()
        .filter(|item| item["outcome"] == "filtered")
        .count();
    assert_eq!(filtered, 2, "{deliveries:#?}");
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_request_and_tag_events_set_their_build_params() {
    let git = GitServer::start().await;
    let repo = git.repo("events");
    let test = TestServer::start(&[ALLOW_LOOPBACK]).await;
    let events = json!([{"type": "merge_request", "enable": true}, {"type": "tag_push", "enable": true, "tags": ["v*"]}]);
    let hook = hooked_pipeline(&test, "events", &repo.url, events).await;
    let base = repo.head();
    repo.checkout_new("feature/login");
    let head = repo.commit("src/login.rs", "\n", "login");
    repo.push("feature/login");

    let pull = json!({"action": "opened", "number": 42, "pull_request": {
        "number": 42, "title": "Add login", "merged": false,
        "head": {"ref": "feature/login", "sha": head, "repo": {"clone_url": repo.url}},
        "base": {"ref": "main", "sha": base}},
        "repository": {"clone_url": repo.url}, "sender": {"login": "octo"}});
    let reply = deliver_github(
        &test,
        &hook.path,
        "pull_request",
        "pr-42-opened",
        &hook.secret,
        &pull,
    )
    .await;
    assert_eq!(reply.json["status"], "accepted", "{}", reply.text);
    let run_id = reply.json["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert_eq!(detail.run.trigger_type, "MR");
    let build = &detail.run.build_params;
    assert_eq!(
        (
            build["event_type"].as_str(),
            build["merge_id"].as_str(),
            build["action"].as_str()
        ),
        (Some("MR"), Some("42"), Some("open"))
    );
    assert_eq!(
        (
            build["source_branch"].as_str(),
            build["target_branch"].as_str()
        ),
        (Some("feature/login"), Some("main"))
    );
    assert_eq!(build["commit_id"], head);
    assert!(logs.contains(&format!("head={head}")), "{logs}");
    assert!(
        logs.contains("branch=main source=feature/login tag= merge=42"),
        "{logs}"
    );
    assert!(logs.contains("trigger=MR"), "{logs}");

    // A merge without opting in does not run; an unsupported action is acknowledged.
    let merged = json!({"action": "closed", "number": 42, "pull_request": {"number": 42, "merged": true,
        "merge_commit_sha": head, "head": {"ref": "feature/login", "sha": head}, "base": {"ref": "main"}}});
    let reply = deliver_github(
        &test,
        &hook.path,
        "pull_request",
        "pr-42-merged",
        &hook.secret,
        &merged,
    )
    .await;
    assert_eq!(reply.json["status"], "filtered", "{}", reply.text);

    // A tag push, GitLab-style (annotated: `checkout_sha` is the commit), through the same hook.
    let tag_object = repo.tag("v1.0.0");
    let payload = json!({"object_kind": "tag_push", "ref": "refs/tags/v1.0.0", "before": "0000000000000000000000000000000000000000",
        "after": tag_object, "checkout_sha": head, "commits": [], "project": {"git_http_url": repo.url}, "user_username": "gl"});
    let reply = test
        .request(
            "POST",
            &hook.path,
            &[
                ("X-Gitlab-Event", "Tag Push Hook"),
                ("X-Gitlab-Token", &hook.secret),
                ("X-Gitlab-Event-UUID", "tag-1"),
            ],
            payload.to_string().as_bytes(),
        )
        .await;
    assert_eq!(reply.json["status"], "accepted", "{}", reply.text);
    let run_id = reply.json["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert_eq!(detail.run.trigger_type, "CreateTag");
    assert_eq!(detail.run.build_params["build_type"], "tag");
    assert_eq!(detail.run.build_params["tag"], "v1.0.0");
    assert_eq!(detail.run.build_params["commit_id"], head);
    assert!(logs.contains("tag=v1.0.0"), "{logs}");
    // A tag outside the filter does not run.
    let payload = json!({"object_kind": "tag_push", "ref": "refs/tags/nightly", "after": head, "project": {"git_http_url": repo.url}});
    let reply = test
        .request(
            "POST",
            &hook.path,
            &[
                ("X-Gitlab-Event", "Tag Push Hook"),
                ("X-Gitlab-Token", &hook.secret),
            ],
            payload.to_string().as_bytes(),
        )
        .await;
    assert_eq!(reply.json["status"], "filtered", "{}", reply.text);
    assert_eq!(test.run_count(&hook.pipeline_id).await, 2);
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_push_works_the_same_way() {
    let git = GitServer::start().await;
    let repo = git.repo("gl");
    let test = TestServer::start(&[ALLOW_LOOPBACK]).await;
    let triggers = json!([{"git_type": "gitlab", "git_url": repo.url, "security_token": "my-gitlab-token",
        "events": [{"type": "push", "enable": true}]}]);
    let pipeline_id = test
        .create_pipeline(pipeline_body("gitlab", &repo.url, triggers, SHOW))
        .await;
    let detail = test.pipeline_detail(&pipeline_id).await;
    assert_eq!(
        detail["triggers"][0]["security_token"], "******",
        "a token the caller gave is never shown"
    );
    let path = callback_path(detail["triggers"][0]["callback_url"].as_str().expect("url"));
    let before = repo.head();
    let commit = repo.commit("app.txt", "v2\n", "second");
    repo.push("main");
    let payload = json!({"object_kind": "push", "ref": "refs/heads/main", "before": before, "after": commit,
        "checkout_sha": commit, "user_username": "gl",
        "commits": [{"id": commit, "message": "second", "added": ["app.txt"], "modified": [], "removed": []}],
        "project": {"git_http_url": repo.url, "git_ssh_url": "git@127.0.0.1:gl.git"}});
    let body = payload.to_string();
    let wrong = test
        .request(
            "POST",
            &path,
            &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "wrong")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let headers = [
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Token", "my-gitlab-token"),
        ("X-Gitlab-Event-UUID", "gl-1"),
    ];
    let reply = test.request("POST", &path, &headers, body.as_bytes()).await;
    assert_eq!(reply.json["status"], "accepted", "{}", reply.text);
    let run_id = reply.json["pipeline_run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert_eq!(detail.run.trigger_type, "Push");
    assert!(logs.contains(&format!("head={commit}")), "{logs}");
    let replay = test.request("POST", &path, &headers, body.as_bytes()).await;
    assert_eq!(replay.json["status"], "duplicate", "{}", replay.text);
    assert_eq!(test.run_count(&pipeline_id).await, 1);
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_pin_the_chosen_branch_and_refuse_names_that_could_be_options() {
    let git = GitServer::start().await;
    let repo = git.repo("manual");
    repo.checkout_new("feature/x");
    let feature = repo.commit("f.txt", "f\n", "feature");
    repo.push("feature/x");
    repo.checkout("main");
    let main = repo.head();
    let test = TestServer::start(&[ALLOW_LOOPBACK]).await;
    // An explicit checkout step into a sub-directory, with the whole history.
    let definition = json!({"stages": [{"name": "Build", "jobs": [{"name": "check", "identifier": "JOB_Check1", "steps": [
        {"name": "clone", "task": "official_git_clone", "inputs": [{"key": "repo", "value": "app"}, {"key": "path", "value": "code"},
            {"key": "depth", "value": "0"}]},
        {"name": "verify", "task": "official_shell_plugin", "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT",
            "value": "cd code && echo \"head=$(git rev-parse HEAD) count=$(git rev-list --count HEAD) branch=$app_TARGET_BRANCH\" && test \"$(git rev-parse HEAD)\" = \"$app_COMMIT_ID\""}]}]}]}]});
    let body = json!({"name": "manual", "is_publish": false, "definition": definition.to_string(),
        "sources": [{"type": "code", "params": {"alias": "app", "git_url": repo.url, "default_branch": "main"}}]});
    let pipeline_id = test.create_pipeline(body).await;
    let run_path = format!("/v5/{}/api/pipelines/{pipeline_id}/run", test.project_id);
    let choose = |branch: &str| {
        json!({"sources": [{"type": "code", "params": {"git_type": "github", "alias": "app",
        "git_url": repo.url, "build_params": {"build_type": "branch", "target_branch": branch}}}]})
    };

    let run_id = test.start_run(&pipeline_id, choose("feature/x")).await;
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert_eq!(
        detail.run.sources[0]["params"]["build_params"]["commit_id"], feature,
        "pinned when created"
    );
    assert!(
        logs.contains(&format!("head={feature} count=2 branch=feature/x")),
        "{logs}"
    );

    // Without a choice: the default branch, pinned too.
    let run_id = test.start_run(&pipeline_id, json!({})).await;
    let (detail, _) = test.expect_completed(&run_id).await;
    assert_eq!(detail.run.build_params["commit_id"], main);

    // A tag: an annotated tag is pinned to the commit it points at.
    let tag_object = repo.tag("v2.0");
    assert_ne!(tag_object, main);
    let tag_run = json!({"sources": [{"type": "code", "params": {"git_type": "github", "alias": "app",
        "git_url": repo.url, "build_params": {"build_type": "tag", "tag": "v2.0"}}}]});
    let run_id = test.start_run(&pipeline_id, tag_run).await;
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert_eq!(
        detail.run.sources[0]["params"]["build_params"]["commit_id"],
        main
    );
    assert!(logs.contains(&format!("head={main}")), "{logs}");

    for bad in [
        "--upload-pack=touch /tmp/pwned",
        "-x",
        "a..b",
        "$(id)",
        "main;id",
    ] {
        let reply = test.call("POST", &run_path, Some(choose(bad))).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
        assert_eq!(reply.json["error_code"], "DEVPIPE.00010001");
    }
    let reply = test
        .call("POST", &run_path, Some(choose("no-such-branch")))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("does not exist"), "{}", reply.text);
    assert_eq!(
        test.run_count(&pipeline_id).await,
        3,
        "refused runs change nothing"
    );
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submodules_are_checked_out_only_when_asked() {
    let daemon = GitServer::start().await;
    let lib = daemon.repo("lib");
    let lib_head = lib.commit("lib.txt", "library v2\n", "library change");
    lib.push("main");
    let app = daemon.repo("app");
    git(
        &app.work,
        &["submodule", "add", "--quiet", "--", &lib.url, "vendor/lib"],
    );
    git(&app.work, &["commit", "--quiet", "-m", "add the library"]);
    app.push("main");
    let test = TestServer::start(&[ALLOW_LOOPBACK]).await;
    // The same check with the submodule asked for, and without: the library's file is there
    // at the recorded commit, or the directory is empty.
    let clone = |submodule: &str| {
        json!({"name": "clone", "task": "official_git_clone", "inputs": [{"key": "repo", "value": "app"},
            {"key": "path", "value": "code"}, {"key": "submodule", "value": submodule}]})
    };
    let verify = json!({"name": "verify", "task": "official_shell_plugin", "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT",
        "value": "cd code && if [ -f vendor/lib/lib.txt ]; then echo \"lib=$(git -C vendor/lib rev-parse HEAD) $(cat vendor/lib/lib.txt)\"; else echo \"lib=absent $(ls -A vendor/lib | wc -l)\"; fi"}]});
    for (submodule, expected) in [
        ("true", format!("lib={lib_head} library v2")),
        ("false", "lib=absent 0".to_owned()),
    ] {
        let definition = json!({"stages": [{"name": "Build", "jobs": [{"name": "check", "identifier": "JOB_Check1",
            "steps": [clone(submodule), verify.clone()]}]}]});
        let body = json!({"name": format!("submodules-{submodule}"), "is_publish": false, "definition": definition.to_string(),
            "sources": [{"type": "code", "params": {"alias": "app", "git_url": app.url, "default_branch": "main"}}]});
        let pipeline_id = test.create_pipeline(body).await;
        let run_id = test.start_run(&pipeline_id, json!({})).await;
        let (_, logs) = test.expect_completed(&run_id).await;
        assert!(logs.contains(&expected), "submodule {submodule}: {logs}");
    }
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_lets_the_server_and_the_job_read_a_private_repository() {
    use base64::Engine as _;
    let daemon = GitServer::start().await;
    let repo = daemon.repo("private");
    let head = repo.commit("app.txt", "secret sauce\n", "second");
    repo.push("main");
    let token = "glpat-Zx81qTestTokenValue";
    let forge = AuthGitServer::start(daemon.root.path(), "ci-bot", token).await;
    let url = forge.url("private");
    let test = TestServer::start(&[ALLOW_LOOPBACK]).await;
    let definition = json!({"stages": [{"name": "Build", "jobs": [{"name": "check", "identifier": "JOB_Check1", "steps": [
        {"name": "clone", "task": "official_git_clone", "inputs": [{"key": "repo", "value": "app"}, {"key": "path", "value": "code"}]},
        {"name": "verify", "task": "official_shell_plugin", "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT",
            "value": "cd code && test \"$(cat app.txt)\" = 'secret sauce' && echo \"head=$(git rev-parse HEAD)\""}]}]}]}]});
    let body = |name: &str, endpoint: Option<&str>| {
        json!({"name": name, "is_publish": false, "definition": definition.to_string(),
            "sources": [{"type": "code", "params": {"alias": "app", "git_url": url, "default_branch": "main",
                "endpoint_id": endpoint}}]})
    };

    // Without the token the server cannot read the branch: the run is refused, nothing made.
    let anonymous = test.create_pipeline(body("anonymous", None)).await;
    let reply = test
        .call(
            "POST",
            &format!("/v5/{}/api/pipelines/{anonymous}/run", test.project_id),
            Some(json!({})),
        )
        .await;
    assert!(
        (400..500).contains(&reply.status),
        "{}: {}",
        reply.status,
        reply.text
    );
    assert_eq!(test.run_count(&anonymous).await, 0);
    assert!(forge.refused.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert_eq!(forge.served.load(std::sync::atomic::Ordering::SeqCst), 0);

    let endpoints = format!("/v5/{}/api/endpoints", test.project_id);
    let reply = test
        .call(
            "POST",
            &endpoints,
            Some(
                json!({"name": "forge bot", "type": "token", "username": "ci-bot", "token": token}),
            ),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!reply.text.contains(token), "{}", reply.text);
    let endpoint_id = reply.json["id"].as_str().expect("id").to_owned();
    let listed = test.call("GET", &endpoints, None).await;
    assert!(listed.text.contains(&endpoint_id), "{}", listed.text);
    assert!(!listed.text.contains(token), "{}", listed.text);

    let private = test
        .create_pipeline(body("private", Some(&endpoint_id)))
        .await;
    let run_id = test.start_run(&private, json!({})).await;
    let (detail, logs) = test.expect_completed(&run_id).await;
    assert_eq!(
        detail.run.build_params["commit_id"], head,
        "pinned through the token"
    );
    assert!(logs.contains(&format!("head={head}")), "{logs}");
    assert!(forge.served.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci-bot:{token}"));
    for secret in [token, basic.as_str()] {
        assert!(
            !logs.contains(secret),
            "the credential leaked into the log: {logs}"
        );
    }
    let shown = test
        .call(
            "GET",
            &format!(
                "/v5/{}/api/pipelines/{private}/pipeline-runs/detail?pipeline_run_id={run_id}",
                test.project_id
            ),
            None,
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(!shown.text.contains(token) && !shown.text.contains(&basic));
    test.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_urls_on_internal_addresses_are_refused_unless_allowed() {
    let git = GitServer::start().await;
    let repo = git.repo("internal");
    let strict = TestServer::start(&[]).await;
    let body = |url: &str| pipeline_body("internal", url, json!([]), "true");
    for url in [
        repo.url.as_str(),
        "https://169.254.169.254/latest/meta-data.git",
        "http://localhost:8080/x.git",
        "file:///etc/passwd",
        "ext::sh -c id",
    ] {
        let reply = strict
            .call(
                "POST",
                &format!("/v5/{}/api/pipelines", strict.project_id),
                Some(body(url)),
            )
            .await;
        assert_eq!(reply.status, 400, "{url}: {}", reply.text);
        assert!(reply.text.contains("git_url"), "{}", reply.text);
    }
    strict.shutdown().await;
    let allowed = TestServer::start(&[("RUNNEL__SECURITY__ALLOWED_HOSTS", "127.0.0.1")]).await;
    allowed.create_pipeline(body(&repo.url)).await;
    allowed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_saved_through_the_api_fire_on_the_server() {
    let test = TestServer::start(&[]).await;
    let definition = json!({"stages": [{"name": "Build", "jobs": [{"name": "tick", "identifier": "JOB_Tick1",
        "steps": [{"name": "tick", "task": "official_shell_plugin",
            "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "echo trigger=$PIPELINE_TRIGGER_TYPE"}]}]}]}]});
    let body = |enable: bool| {
        json!({"name": "ticking", "is_publish": false, "definition": definition.to_string(),
            "schedules": [{"type": "cron", "name": "every second", "enable": enable, "cron": "* * * * * *",
                "time_zone": "China Standard Time"}]})
    };
    let bad = test
        .call(
            "POST",
            &format!("/v5/{}/api/pipelines", test.project_id),
            Some(json!({"name": "bad", "is_publish": false, "definition": definition.to_string(),
                "schedules": [{"type": "fixed", "start_time": "10:00", "time_zone": "Atlantis Standard Time"}]})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("schedules[0].time_zone"), "{}", bad.text);

    let pipeline_id = test.create_pipeline(body(true)).await;
    let detail = test.pipeline_detail(&pipeline_id).await;
    let schedule = &detail["schedules"][0];
    assert!(
        schedule["uuid"]
            .as_str()
            .is_some_and(|uuid| uuid.len() == 32),
        "{schedule}"
    );
    assert!(schedule["next_fire_time"].as_i64().is_some(), "{schedule}");
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while test.run_count(&pipeline_id).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the schedule never fired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let runs = test
        .call(
            "POST",
            &format!(
                "/v5/{}/api/pipelines/{pipeline_id}/pipeline-runs/list",
                test.project_id
            ),
            Some(json!({"limit": 1, "sort_dir": "asc"})),
        )
        .await;
    assert_eq!(
        runs.json["pipeline_runs"][0]["trigger_type"], "Scheduler",
        "{}",
        runs.text
    );

    // Disabled (the uuid sent back keeps the schedule): no more firings.
    let mut update = body(false);
    update["schedules"][0]["uuid"] = schedule["uuid"].clone();
    let reply = test
        .call(
            "PUT",
            &format!("/v5/{}/api/pipelines/{pipeline_id}", test.project_id),
            Some(update),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let detail = test.pipeline_detail(&pipeline_id).await;
    assert_eq!(detail["schedules"][0]["uuid"], schedule["uuid"]);
    assert_eq!(detail["schedules"][0]["enable"], false);
    // A firing under way while the update was written may still add its run.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let settled = test.run_count(&pipeline_id).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        test.run_count(&pipeline_id).await,
        settled,
        "a disabled schedule does not fire"
    );
    test.shutdown().await;
}
