//! G5 and G6: gapless run numbers and auto-increment values under concurrency; idempotent creation; failed creations leave nothing.

use crate::fixtures::*;
use runnel_domain::params::{VariableSpec, VariableType};
use runnel_store::*;
use std::collections::BTreeSet;

conformance! {
    async fn sixteen_concurrent_creators_get_run_numbers_exactly_one_to_n(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let mut new = new_pipeline(&tenant, "counted");
        new.variables = vec![VariableSpec::new("VERSION", VariableType::AutoIncrement, "1.0.0")];
        let pipeline = store.create_pipeline(new).await.unwrap();
        const TASKS: usize = 16;
        const PER_TASK: usize = 8;
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            let pipeline_id = pipeline.id.clone();
            handles.push(tokio::spawn(async move {
                let mut numbers = Vec::new();
                for index in 0..PER_TASK {
                    let run = new_run(&pipeline_id, &RunShape::default(), at((task * 100 + index) as i64));
                    let created = store.create_run(run, parameters()).await.unwrap();
                    numbers.push((created.run.run_number, created.run.id));
                }
                numbers
            }));
        }
        let mut numbers = Vec::new();
        for handle in handles {
            numbers.extend(handle.await.unwrap());
        }
        let total = TASKS * PER_TASK;
        let sorted: BTreeSet<i64> = numbers.iter().map(|(number, _)| *number).collect();
        let duplicates = total - sorted.len();
        let expected: BTreeSet<i64> = (1..=total as i64).collect();
        let gaps = expected.difference(&sorted).count();
        println!("G5 {:?}: {total} runs by {TASKS} tasks: {duplicates} duplicates, {gaps} gaps", db.kind);
        assert_eq!(sorted, expected);
        // Each run's auto-increment value is its own, with no gaps: 1.0.0 for run 1, 1.0.{n-1} for run n.
        for (number, run_id) in &numbers {
            let parameters = store.run_parameters(run_id).await.unwrap();
            let pipeline_number = parameters.iter().find(|p| p.name == "PIPELINE_NUMBER").unwrap();
            assert_eq!(pipeline_number.value, number.to_string());
            let version = parameters.iter().find(|p| p.name == "VERSION").unwrap();
            assert_eq!(version.value, format!("1.0.{}", number - 1));
        }
        let variables = store.variables(&pipeline.id).await.unwrap();
        assert_eq!(variables[0].latest_value.as_deref(), Some(format!("1.0.{}", total - 1).as_str()));
        assert!(!variables[0].is_reset);
        assert_eq!(store.count_runs(&pipeline.id, &[]).await.unwrap(), total as i64);
    }
}

conformance! {
    async fn an_edited_auto_increment_value_is_used_as_is_once(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let mut new = new_pipeline(&tenant, "versions");
        new.variables = vec![VariableSpec::new("VERSION", VariableType::AutoIncrement, "v1.9")];
        let pipeline = store.create_pipeline(new.clone()).await.unwrap();
        let value_of = |run: &str| {
            let store = store.clone();
            let run = run.to_owned();
            async move {
                store.run_parameters(&run).await.unwrap().into_iter().find(|p| p.name == "VERSION").unwrap().value
            }
        };
        let first = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(1)), parameters()).await.unwrap();
        let second = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(2)), parameters()).await.unwrap();
        assert_eq!(value_of(&first.run.id).await, "v1.9");
        assert_eq!(value_of(&second.run.id).await, "v1.10");
        let update = PipelineUpdate {
            name: new.name.clone(),
            description: String::new(),
            is_publish: false,
            component_id: None,
            group_id: None,
            manifest_version: "3.0".to_owned(),
            definition: new.definition.clone(),
            compiled: new.compiled.clone(),
            sources: new.sources.clone(),
            settings: new.settings.clone(),
            variables: vec![VariableSpec::new("VERSION", VariableType::AutoIncrement, "2.0.0")],
            variable_group_ids: Vec::new(),
            tag_ids: None,
            updater_id: tenant.user.id.clone(),
            now: at(3),
        };
        assert_eq!(store.update_pipeline(&tenant.project.id, &pipeline.id, update).await.unwrap(), 2);
        let variables = store.variables(&pipeline.id).await.unwrap();
        assert!(variables[0].is_reset, "an edited value marks the variable reset");
        let third = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(4)), parameters()).await.unwrap();
        let fourth = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(5)), parameters()).await.unwrap();
        assert_eq!(value_of(&third.run.id).await, "2.0.0");
        assert_eq!(value_of(&fourth.run.id).await, "2.0.1");
        assert_eq!(third.run.pipeline_version, 2);
        assert_eq!(first.run.pipeline_version, 1);
    }
}

conformance! {
    async fn replaying_an_idempotency_key_returns_the_first_run_and_creates_nothing(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "idem").await;
        let key = IdempotencyKey { scope: format!("api:{}", pipeline.id), key: "retry-me".to_owned() };
        // Concurrent replays: exactly one run.
        let mut handles = Vec::new();
        for index in 0..8 {
            let store = store.clone();
            let mut run = new_run(&pipeline.id, &RunShape::default(), at(index));
            run.idempotency = Some(key.clone());
            handles.push(tokio::spawn(async move { store.create_run(run, parameters()).await.unwrap() }));
        }
        let mut created = Vec::new();
        for handle in handles {
            created.push(handle.await.unwrap());
        }
        let first = created.iter().find(|run| !run.is_replay).expect("one creation").run.clone();
        assert_eq!(created.iter().filter(|run| !run.is_replay).count(), 1);
        assert!(created.iter().all(|run| run.run.id == first.id));
        // A later replay too.
        let mut again = new_run(&pipeline.id, &RunShape::default(), at(100));
        again.idempotency = Some(key.clone());
        let replay = store.create_run(again, parameters()).await.unwrap();
        assert!(replay.is_replay);
        assert_eq!(replay.run.id, first.id);
        let extra_runs = store.count_runs(&pipeline.id, &[]).await.unwrap() - 1;
        println!("G6 {:?}: 9 requests with one key: {extra_runs} extra runs", db.kind);
        assert_eq!(extra_runs, 0);
        // Another key makes run 2: the replays consumed no number.
        let mut other = new_run(&pipeline.id, &RunShape::default(), at(200));
        other.idempotency = Some(IdempotencyKey { scope: key.scope.clone(), key: "other".to_owned() });
        assert_eq!(store.create_run(other, parameters()).await.unwrap().run.run_number, 2);
        // Pruning old keys.
        assert_eq!(store.prune_idempotency_keys(at(1_000_000)).await.unwrap(), 2);
    }
}

conformance! {
    async fn a_failed_creation_leaves_no_run_and_uses_no_number(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let mut new = new_pipeline(&tenant, "atomic");
        new.variables = vec![VariableSpec::new("VERSION", VariableType::AutoIncrement, "7")];
        let pipeline = store.create_pipeline(new).await.unwrap();
        // The parameter builder refuses.
        let refused: ParameterBuilder = Box::new(|_| Err("bad parameter".to_owned()));
        let err = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(1)), refused).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        // A constraint fails half-way (two jobs with one id).
        let mut broken = new_run(&pipeline.id, &RunShape { jobs_per_stage: vec![2], steps_per_job: 1 }, at(2));
        let first_job = broken.stages[0].jobs[0].id.clone();
        broken.stages[0].jobs[1].id = first_job;
        let err = store.create_run(broken, parameters()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // An unknown pipeline.
        let err = store.create_run(new_run("nope", &RunShape::default(), at(3)), parameters()).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        assert_eq!(store.count_runs(&pipeline.id, &[]).await.unwrap(), 0);
        let variables = store.variables(&pipeline.id).await.unwrap();
        assert_eq!(variables[0].latest_value, None, "no auto-increment value was used");
        let created = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(4)), parameters()).await.unwrap();
        assert_eq!(created.run.run_number, 1);
        let version = store.run_parameters(&created.run.id).await.unwrap().into_iter().find(|p| p.name == "VERSION").unwrap();
        assert_eq!(version.value, "7");
        // A banned pipeline refuses runs.
        store.set_banned(&tenant.project.id, &pipeline.id, true, at(5)).await.unwrap();
        let err = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(6)), parameters()).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        assert_eq!(store.pipeline_by_id(&pipeline.id).await.unwrap().unwrap().last_run_number, 1);
    }
}

/// A snapshot with a secret, plain values with quotes and non-ASCII text, in a given order.
fn snapshot() -> Vec<RunParameter> {
    let parameter = |name: &str, value: &str, is_secret: bool, origin: &str| RunParameter {
        name: name.to_owned(),
        value: value.to_owned(),
        is_secret,
        origin: origin.to_owned(),
    };
    vec![
        parameter("PIPELINE_NUMBER", "1", false, "predefined"),
        parameter("TOKEN", "hunter2-run-secret", true, "custom"),
        parameter(
            "GREETING",
            "say \"hi\" — ünïcode; $(rm -rf /)",
            false,
            "group:g1",
        ),
        parameter("EMPTY", "", false, "custom"),
    ]
}

conformance! {
    async fn run_parameters_come_back_in_order_with_secrets_encrypted_at_rest(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "params").await;
        let run = new_run(&pipeline.id, &RunShape::default(), at(0));
        let created = store.create_run(run, Box::new(|_: &RunAllocation| Ok(snapshot()))).await.unwrap();
        assert_eq!(store.run_parameters(&created.run.id).await.unwrap(), snapshot());
        // The secret is not in the stored text, and a wrong key cannot open it.
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let stored: String = sqlx::Row::get(
            &sqlx::query("SELECT parameters FROM run_parameter_sets WHERE run_id = $1")
                .bind(created.run.id.clone())
                .fetch_one(&mut conn)
                .await
                .unwrap(),
            0,
        );
        assert!(!stored.contains("hunter2-run-secret"), "{stored}");
        assert!(stored.contains("GREETING") && stored.contains("\"sealed\""), "{stored}");
        sqlx::Connection::close(conn).await.unwrap();
        store.close().await;
        let other = db.open_with(|config| config.secret_key = SecretKey::generate()).await;
        assert!(matches!(other.run_parameters(&created.run.id).await, Err(StoreError::Corrupt(_))));
        other.close().await;
    }
}

conformance! {
    async fn a_parameter_named_twice_refuses_the_run_and_uses_no_number(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "twice").await;
        let run = new_run(&pipeline.id, &RunShape::default(), at(0));
        let twice = Box::new(|_: &RunAllocation| {
            let mut parameters = snapshot();
            parameters.push(parameters[0].clone());
            Ok(parameters)
        });
        // Refused with the name, and the whole creation is undone.
        let err = store.create_run(run, twice).await.unwrap_err();
        assert!(matches!(&err, StoreError::Invalid(message) if message.contains("PIPELINE_NUMBER")), "{err:?}");
        assert_eq!(store.count_runs(&pipeline.id, &[]).await.unwrap(), 0);
        let next = store.create_run(new_run(&pipeline.id, &RunShape::default(), at(1)), parameters()).await.unwrap();
        assert_eq!(next.run.run_number, 1);
    }
}
