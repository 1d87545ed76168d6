//! Webhook → first step started latency, on a real server (SQLite, built-in executor pool) with
//! a local repository served by `git daemon`.
//!
//! Each iteration pushes a commit, delivers a signed GitHub push webhook for it, and measures
//! from just before the request is sent to the `start_time` the worker reports for the run's
//! first step (both on this machine's wall clock, millisecond precision), and to the moment the
//! step's own script runs after the implicit checkout of the pushed commit. Runs are sequential
//! (each waits for the previous one to finish), so queueing behind another run is not measured.
//!
//! `cargo run -p runnel-api --example bench_webhook [iterations]` (add `--release` for an
//! optimized build). Prints one JSON object.

#[path = "../tests/webhooks/support.rs"]
mod support;

use runnel_store::RunStore;
use serde_json::json;
use support::{GitServer, TestServer, callback_path, deliver_github, github_push, pipeline_body};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(30);
    let git = GitServer::start().await;
    let repo = git.repo("bench");
    let test = TestServer::start(&[("RUNNEL__SECURITY__ALLOW_PRIVATE_NETWORKS", "true")]).await;
    let triggers = json!([{"git_type": "github", "git_url": repo.url, "events": [{"type": "push", "enable": true}]}]);
    let script =
        "echo \"SCRIPT_AT=$(date +%s%3N)\"; test \"$(git rev-parse HEAD)\" = \"$COMMIT_ID\"";
    let pipeline_id = test
        .create_pipeline(pipeline_body("bench", &repo.url, triggers, script))
        .await;
    let detail = test.pipeline_detail(&pipeline_id).await;
    let path = callback_path(detail["triggers"][0]["callback_url"].as_str().expect("url"));
    let secret = detail["triggers"][0]["security_token"]
        .as_str()
        .expect("secret")
        .to_owned();

    let mut to_first_step = Vec::new();
    let mut to_script = Vec::new();
    let mut accept = Vec::new();
    for iteration in 0..iterations + 3 {
        let before = repo.head();
        let commit = repo.commit("counter", &format!("{iteration}\n"), "bench");
        repo.push("main");
        let payload = github_push(
            &repo.url,
            "refs/heads/main",
            &before,
            &commit,
            "bench",
            &["counter"],
        );
        let sent = now_ms();
        let reply = deliver_github(
            &test,
            &path,
            "push",
            &format!("bench-{iteration}"),
            &secret,
            &payload,
        )
        .await;
        let answered = now_ms();
        assert_eq!(reply.json["status"], "accepted", "{}", reply.text);
        let run_id = reply.json["pipeline_run_id"]
            .as_str()
            .expect("run")
            .to_owned();
        let (run, logs) = test.expect_completed(&run_id).await;
        let first_step = run
            .stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .flat_map(|job| &job.steps)
            .filter_map(|step| step.start_time)
            .min()
            .expect("a step started");
        let script_at: i64 = logs
            .lines()
            .find_map(|line| line.split("SCRIPT_AT=").nth(1))
            .and_then(|value| value.trim().parse().ok())
            .expect("the script ran");
        // The first iterations warm caches and connections.
        if iteration >= 3 {
            to_first_step.push(first_step.as_millis() - sent);
            to_script.push(script_at - sent);
            accept.push(answered - sent);
        }
        assert!(
            test.server
                .store()
                .run(&run_id)
                .await
                .expect("read")
                .is_some()
        );
    }
    to_first_step.sort_unstable();
    to_script.sort_unstable();
    accept.sort_unstable();
    let summary = |values: &[i64]| {
        json!({"median_ms": percentile(values, 0.5), "p90_ms": percentile(values, 0.9),
            "min_ms": values[0], "max_ms": values[values.len() - 1]})
    };
    println!(
        "{}",
        json!({
            "benchmark": "webhook_to_first_step_started",
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "iterations": iterations,
            "webhook_to_first_step_started": summary(&to_first_step),
            "webhook_to_script_after_checkout": summary(&to_script),
            "webhook_answered": summary(&accept),
            "goal_median_ms": 50,
        })
    );
    test.shutdown().await;
}
