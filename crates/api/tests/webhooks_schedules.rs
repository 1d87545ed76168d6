//! Schedules fire once across servers: two engines, each with its own connections and schedule
//! loop, share one PostgreSQL database (`TEST_DATABASE_URL`, default a local server) and one
//! manual clock. Skipped with a notice when PostgreSQL is unreachable, unless `CI=true`.

#[path = "webhooks/support.rs"]
mod support;

use chrono::DateTime;
use runnel_domain::status::RunStatus;
use runnel_domain::{Format, Timestamp, compile_text};
use runnel_engine::schedule::{Schedule, SchedulerConfig, SchedulerTask, spawn_scheduler};
use runnel_engine::{Clock as _, Engine, EngineConfig, EngineTask, ManualClock};
use runnel_store::testing::TestDatabase;
use runnel_store::{
    IdentityStore, NewPipeline, NewSchedule, PipelineStore, RunQuery, RunStore, SecretKey, Store,
    StoreConfig, TriggerStore, new_id,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn at(text: &str) -> Timestamp {
    Timestamp::from_millis(
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .timestamp_millis(),
    )
}

struct Server {
    engine: Engine,
    task: EngineTask,
    scheduler: Option<SchedulerTask>,
}

impl Server {
    async fn start(url: &str, key: &SecretKey, clock: &ManualClock, owner: &str) -> Server {
        let store = Store::open(StoreConfig::new(url, key.clone()))
            .await
            .expect("store opens");
        let config = EngineConfig {
            sweep_interval: Duration::from_secs(3600),
            ..EngineConfig::default()
        };
        let (engine, task) = Engine::start(store, config, Arc::new(clock.clone()))
            .await
            .expect("engine starts");
        let scheduler = Some(spawn_scheduler(
            engine.clone(),
            SchedulerConfig {
                owner: owner.to_owned(),
                poll: Duration::from_millis(10),
                ..SchedulerConfig::default()
            },
        ));
        Server {
            engine,
            task,
            scheduler,
        }
    }

    async fn stop_scheduler(&mut self) {
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.shutdown().await;
        }
    }

    async fn shutdown(mut self) {
        self.stop_scheduler().await;
        self.task.shutdown().await;
        self.engine.store().close().await;
    }
}

async fn runs(store: &Store, pipeline_id: &str) -> Vec<runnel_store::RunSummary> {
    store
        .list_runs(
            pipeline_id,
            &RunQuery {
                limit: 100,
                ..RunQuery::default()
            },
        )
        .await
        .expect("runs")
        .items
}

/// Lets both schedule loops poll many times (10 ms each) at the current manual time.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_firing_with_two_servers_on_one_postgresql() {
    let Some(database) = TestDatabase::create("runnel_webhook_test").await else {
        return;
    };
    let key = SecretKey::generate();
    let clock = ManualClock::new(at("2026-11-26T09:59:30Z"));
    let mut first = Server::start(&database.url, &key, &clock, "server-a").await;
    let mut second = Server::start(&database.url, &key, &clock, "server-b").await;
    let store = first.engine.store().clone();
    let now = clock.now();

    let domain = store.create_domain("acme", now).await.expect("domain");
    let project = store
        .create_project(&domain.id, "alpha", "", now)
        .await
        .expect("project");
    let user = store
        .create_user(&domain.id, "alice", None, now)
        .await
        .expect("user");
    let spec = compile_text(
        "jobs:\n  - name: j\n    steps:\n      - run: echo scheduled\n",
        Format::Yaml,
    )
    .unwrap_or_else(|diagnostics| panic!("{diagnostics:#?}"));
    let pipeline = store
        .create_pipeline(NewPipeline {
            id: new_id(),
            project_id: project.id,
            name: "nightly".to_owned(),
            description: String::new(),
            is_publish: false,
            component_id: None,
            group_id: None,
            manifest_version: "3.0".to_owned(),
            definition: spec.definition().to_string(),
            compiled: spec.definition().clone(),
            sources: json!([]),
            settings: json!({}),
            variables: spec.variables().to_vec(),
            variable_group_ids: Vec::new(),
            tag_ids: Vec::new(),
            origin_id: None,
            from_source: 0,
            creator_id: user.id,
            now,
        })
        .await
        .expect("pipeline");
    // Every day at 10:00 in Europe/London (UTC+0 in November), CodeArts form: Sunday = 1 … 7.
    let spec = json!({"type": "fixed", "days_of_week": [1, 2, 3, 4, 5, 6, 7], "start_time": "10:00",
        "time_zone": "GMT Standard Time"});
    let schedule = Schedule::parse(&spec).expect("valid");
    assert_eq!(schedule.next_after(now), Some(at("2026-11-26T10:00:00Z")));
    store
        .replace_schedules(
            &pipeline.id,
            vec![NewSchedule {
                id: None,
                name: "nightly".to_owned(),
                schedule_type: "fixed".to_owned(),
                is_enabled: true,
                spec,
                next_fire_at: schedule.next_after(now),
            }],
            now,
        )
        .await
        .expect("schedule");

    settle().await;
    assert!(runs(&store, &pipeline.id).await.is_empty(), "not due yet");
    // Into the firing minute: both loops see it due; one run.
    clock.advance(Duration::from_millis(30_250));
    settle().await;
    let fired = runs(&store, &pipeline.id).await;
    assert_eq!(fired.len(), 1, "exactly one run for the firing");
    assert_eq!(fired[0].run.trigger_type, "Scheduler");
    clock.advance(Duration::from_secs(40));
    settle().await;
    assert_eq!(
        runs(&store, &pipeline.id).await.len(),
        1,
        "still one within the minute"
    );
    let stored = &store.schedules(&pipeline.id).await.expect("read")[0];
    assert_eq!(stored.next_fire_at, Some(at("2026-11-27T10:00:00Z")));

    // The next day's firing, once again.
    clock.advance(Duration::from_secs(24 * 3600 - 40));
    settle().await;
    assert_eq!(runs(&store, &pipeline.id).await.len(), 2);

    // Down for three days, back 30 minutes after a firing: the latest missed firing runs once.
    first.stop_scheduler().await;
    second.stop_scheduler().await;
    clock.advance(Duration::from_secs(3 * 24 * 3600 + 30 * 60));
    let restarted = runnel_engine::schedule::fire_due(
        &first.engine,
        &SchedulerConfig {
            owner: "server-a".to_owned(),
            ..SchedulerConfig::default()
        },
    )
    .await
    .expect("fires");
    assert_eq!(restarted.len(), 1, "one run for the missed firings");
    let caught_up = runs(&store, &pipeline.id).await;
    assert_eq!(caught_up.len(), 3);
    assert!(
        caught_up
            .iter()
            .all(|summary| summary.run.status != RunStatus::Failed)
    );
    let stored = &store.schedules(&pipeline.id).await.expect("read")[0];
    assert_eq!(stored.next_fire_at, Some(at("2026-12-01T10:00:00Z")));
    // Down past a firing by more than the catch-up window (one hour): skipped.
    clock.advance(Duration::from_secs(24 * 3600 + 90 * 60));
    let late = runnel_engine::schedule::fire_due(
        &second.engine,
        &SchedulerConfig {
            owner: "server-b".to_owned(),
            ..SchedulerConfig::default()
        },
    )
    .await
    .expect("fires");
    assert!(late.is_empty(), "a firing missed by 2 hours is skipped");
    assert_eq!(runs(&store, &pipeline.id).await.len(), 3);
    first.shutdown().await;
    second.shutdown().await;
    drop(database);
}
