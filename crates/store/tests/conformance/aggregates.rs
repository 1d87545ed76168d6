//! Identity, pipelines, organization, templates, triggers, run lists and progress: behaviour and tenant scoping.

use crate::fixtures::*;
use runnel_domain::params::{VariableSpec, VariableType};
use runnel_domain::status::{JobStatus, RunStatus, StageStatus, StepStatus};
use runnel_store::*;
use std::time::Duration;

conformance! {
    async fn passwords_tokens_and_access_keys_are_stored_hashed_or_encrypted(db) {
        let store = db.open().await;
        let domain = store.create_domain("acme", T0).await.unwrap();
        let user = store.create_user(&domain.id, "bob", Some("s3cret!"), T0).await.unwrap();
        assert!(store.authenticate_password("acme", "bob", "s3cret!").await.unwrap().is_some());
        assert!(store.authenticate_password("acme", "bob", "wrong").await.unwrap().is_none());
        assert!(store.authenticate_password("acme", "nobody", "s3cret!").await.unwrap().is_none());
        let issued = store.issue_token(&user.id, "local-1", T0, Duration::from_secs(86_400)).await.unwrap();
        assert!(store.authenticate_token(&issued.token, at(1000)).await.unwrap().is_some());
        assert!(store.authenticate_token(&issued.token, at(86_400_000)).await.unwrap().is_none(), "expired");
        assert!(store.revoke_token(&issued.token, at(2000)).await.unwrap());
        assert!(store.authenticate_token(&issued.token, at(3000)).await.unwrap().is_none(), "revoked");
        let key = store.create_access_key(&user.id, "ci", T0).await.unwrap();
        let found = store.access_key(&key.ak).await.unwrap().unwrap();
        assert_eq!(found.sk, key.sk);
        assert!(!format!("{found:?}").contains(&key.sk), "Debug never shows the SK");
        store.set_user_disabled(&user.id, true, at(4000)).await.unwrap();
        assert!(store.authenticate_password("acme", "bob", "s3cret!").await.unwrap().is_none());
        store.close().await;
        // At rest: no plain SK, no plain token, no plain password; the wrong operator key cannot decrypt.
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let sealed: Vec<u8> = sqlx::Row::get(&sqlx::query("SELECT sk_ciphertext FROM access_keys").fetch_one(&mut conn).await.unwrap(), 0);
        assert!(!sealed.windows(key.sk.len()).any(|window| window == key.sk.as_bytes()));
        let hash: String = sqlx::Row::get(&sqlx::query("SELECT password_hash FROM users").fetch_one(&mut conn).await.unwrap(), 0);
        assert!(hash.starts_with("$argon2id$"));
        let other = db.open_with(|config| config.secret_key = SecretKey::generate()).await;
        assert!(matches!(other.access_key(&key.ak).await, Err(StoreError::Corrupt(_))));
    }
}

conformance! {
    async fn a_token_and_its_users_membership_are_read_together_with_the_same_rules(db) {
        let store = db.open().await;
        let domain = store.create_domain("acme", T0).await.unwrap();
        let elsewhere = store.create_domain("globex", T0).await.unwrap();
        let user = store.create_user(&domain.id, "bob", None, T0).await.unwrap();
        let project = store.create_project(&domain.id, "web", "", T0).await.unwrap();
        let not_joined = store.create_project(&domain.id, "api", "", T0).await.unwrap();
        let foreign = store.create_project(&elsewhere.id, "web", "", T0).await.unwrap();
        store.set_member(&project.id, &user.id, Role::Developer, T0).await.unwrap();
        // A member row in another domain's project grants nothing (as `membership`).
        store.set_member(&foreign.id, &user.id, Role::Admin, T0).await.unwrap();
        let issued = store.issue_token(&user.id, "local-1", T0, Duration::from_secs(60)).await.unwrap();

        let (token, caller, membership) =
            store.authenticate_token_in_project(&issued.token, at(1000), &project.id).await.unwrap().unwrap();
        assert_eq!((token.user_id.as_str(), caller.id.as_str()), (user.id.as_str(), user.id.as_str()));
        let (found, role) = membership.expect("a member");
        assert_eq!((found, role), (project.clone(), Role::Developer));
        assert_eq!(
            store.membership(&project.id, &user.id, &domain.id).await.unwrap(),
            Some((project.clone(), Role::Developer)),
            "the same answer as the separate read"
        );
        for other in [&not_joined.id, &foreign.id, &"0".repeat(32)] {
            let (_, _, membership) =
                store.authenticate_token_in_project(&issued.token, at(1000), other).await.unwrap().unwrap();
            assert_eq!(membership, None, "a valid token of a non-member: {other}");
        }
        assert!(store.authenticate_token_in_project("rnl_wrong", at(1000), &project.id).await.unwrap().is_none());
        assert!(store.authenticate_token_in_project(&issued.token, at(60_000), &project.id).await.unwrap().is_none(), "expired");
        store.remove_member(&project.id, &user.id).await.unwrap();
        let (_, _, membership) =
            store.authenticate_token_in_project(&issued.token, at(1000), &project.id).await.unwrap().unwrap();
        assert_eq!(membership, None, "removed at once");
        assert!(store.revoke_token(&issued.token, at(2000)).await.unwrap());
        assert!(store.authenticate_token_in_project(&issued.token, at(3000), &project.id).await.unwrap().is_none(), "revoked");
        let again = store.issue_token(&user.id, "local-2", T0, Duration::from_secs(60)).await.unwrap();
        store.set_user_disabled(&user.id, true, at(4000)).await.unwrap();
        assert!(store.authenticate_token_in_project(&again.token, at(5000), &project.id).await.unwrap().is_none(), "disabled user");
    }
}

conformance! {
    async fn pipelines_are_versioned_scoped_by_project_and_keep_secrets_encrypted(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let other = project_in(&store, &tenant, "other").await;
        let mut new = new_pipeline(&tenant, "build");
        let mut secret = VariableSpec::new("TOKEN", VariableType::String, "hunter2");
        secret.is_secret = true;
        new.variables = vec![secret, VariableSpec::new("ENV", VariableType::String, "dev")];
        let created = store.create_pipeline(new.clone()).await.unwrap();
        assert_eq!(created.current_version, 1);
        assert!(store.pipeline(&other.id, &created.id).await.unwrap().is_none(), "another project's id is not found");
        // Duplicate names in a project conflict.
        let mut duplicate = new_pipeline(&tenant, "build");
        duplicate.id = new_id();
        assert!(matches!(store.create_pipeline(duplicate).await, Err(StoreError::Conflict(_))));
        let variables = store.variables(&created.id).await.unwrap();
        assert_eq!(variables[0].value, "hunter2");
        let update = PipelineUpdate {
            name: "build".to_owned(),
            description: "v2".to_owned(),
            is_publish: false,
            component_id: None,
            group_id: None,
            manifest_version: "3.0".to_owned(),
            definition: r#"{"stages":[{"name":"b"}]}"#.to_owned(),
            compiled: serde_json::json!({"stages": [{"name": "b"}]}),
            sources: serde_json::json!([]),
            settings: serde_json::json!({"concurrency_control": {"concurrency_number": 1}}),
            variables: vec![],
            variable_group_ids: vec![],
            tag_ids: None,
            updater_id: tenant.user.id.clone(),
            now: at(1),
        };
        assert_eq!(store.update_pipeline(&tenant.project.id, &created.id, update.clone()).await.unwrap(), 2);
        assert!(matches!(store.update_pipeline(&other.id, &created.id, update).await, Err(StoreError::NotFound)));
        let v1 = store.pipeline_version(&created.id, 1).await.unwrap().unwrap();
        let v2 = store.pipeline_version(&created.id, 2).await.unwrap().unwrap();
        assert_eq!(v1.definition, r#"{"stages":[]}"#);
        assert!(v2.definition.contains("\"b\""));
        let current = store.pipeline(&tenant.project.id, &created.id).await.unwrap().unwrap();
        assert_eq!((current.current_version, current.description.as_str()), (2, "v2"));
        let page = store.list_pipelines(&tenant.project.id, &PipelineQuery { name_contains: Some("BUI".to_owned()), ..Default::default() }).await.unwrap();
        assert_eq!(page.total, 1);
        store.set_favorite(&tenant.user.id, &created.id, true, at(2)).await.unwrap();
        assert_eq!(store.favorites_among(&tenant.user.id, std::slice::from_ref(&created.id)).await.unwrap(), vec![created.id.clone()]);
        store.delete_pipeline(&tenant.project.id, &created.id, at(3)).await.unwrap();
        assert!(store.pipeline(&tenant.project.id, &created.id).await.unwrap().is_none());
        // The name is free again.
        store.create_pipeline(new_pipeline(&tenant, "build")).await.unwrap();
    }
}

conformance! {
    async fn groups_nest_three_levels_tags_and_variable_groups_bind_to_pipelines(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let project = tenant.project.id.clone();
        let group = |name: &str, parent: Option<String>| NewGroup {
            project_id: project.clone(),
            name: name.to_owned(),
            parent_id: parent,
            creator_id: tenant.user.id.clone(),
            now: T0,
        };
        let top = store.create_group(group("top", None)).await.unwrap();
        let middle = store.create_group(group("middle", Some(top.id.clone()))).await.unwrap();
        let bottom = store.create_group(group("bottom", Some(middle.id.clone()))).await.unwrap();
        assert_eq!(bottom.path_id, format!("{}.{}.{}", top.id, middle.id, bottom.id));
        assert!(matches!(store.create_group(group("too deep", Some(bottom.id.clone()))).await, Err(StoreError::Invalid(_))));
        assert!(matches!(store.create_group(group("middle", Some(top.id.clone()))).await, Err(StoreError::Conflict(_))));
        let pipeline = pipeline(&store, &tenant, "p").await;
        assert_eq!(store.move_pipelines(&project, Some(&bottom.id), std::slice::from_ref(&pipeline.id), at(1)).await.unwrap().len(), 1);
        let counts = store.groups(&project).await.unwrap();
        assert_eq!(counts.iter().find(|g| g.id == bottom.id).unwrap().pipeline_count, 1);
        store.delete_group(&project, &top.id).await.unwrap();
        assert!(store.groups(&project).await.unwrap().is_empty(), "subgroups go with their parent");
        assert_eq!(store.pipeline(&project, &pipeline.id).await.unwrap().unwrap().group_id, None);

        let tag = store.create_tag(NewTag { project_id: project.clone(), name: "release".to_owned(), color: "#0b81f6".to_owned(), now: T0 }).await.unwrap();
        store.tag_pipelines(&project, std::slice::from_ref(&pipeline.id), std::slice::from_ref(&tag.id)).await.unwrap();
        assert_eq!(store.pipeline(&project, &pipeline.id).await.unwrap().unwrap().tag_ids, vec![tag.id.clone()]);
        store.delete_tag(&project, &tag.id).await.unwrap();
        assert!(store.pipeline(&project, &pipeline.id).await.unwrap().unwrap().tag_ids.is_empty());

        let variable = |name: &str, value: &str, is_secret: bool| VariableGroupVariable {
            name: name.to_owned(), sequence: 1, var_type: VariableType::String, value: value.to_owned(), is_secret, description: String::new(),
        };
        let group_id = store
            .create_variable_group(NewVariableGroup {
                project_id: project.clone(),
                name: "common".to_owned(),
                description: String::new(),
                variables: vec![variable("REGISTRY", "r.example.com", false), variable("PASSWORD", "pw", true)],
                actor_id: tenant.user.id.clone(),
                now: T0,
            })
            .await
            .unwrap();
        let mut bound = new_pipeline(&tenant, "bound");
        bound.variable_group_ids = vec![group_id.clone()];
        let bound = store.create_pipeline(bound).await.unwrap();
        let groups = store.pipeline_variable_groups(&bound.id).await.unwrap();
        assert_eq!(groups[0].variables.iter().find(|v| v.name == "PASSWORD").unwrap().value, "pw");
        assert_eq!(groups[0].related_pipeline_ids, vec![bound.id.clone()]);
        let listed = store.list_variable_groups(&project, Some("COMM"), 0, 10).await.unwrap();
        assert_eq!(listed.total, 1);
        store.delete_variable_group(&project, &group_id).await.unwrap();
        assert!(store.pipeline(&project, &bound.id).await.unwrap().unwrap().variable_group_ids.is_empty());
    }
}

conformance! {
    async fn templates_triggers_schedules_and_audit_events(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let template = |is_system: bool| NewTemplate {
            domain_id: if is_system { None } else { Some(tenant.domain.id.clone()) },
            name: if is_system { "maven".to_owned() } else { "java-ci".to_owned() },
            description: String::new(),
            language: "Java".to_owned(),
            manifest_version: "3.0".to_owned(),
            icon: None,
            is_system,
            is_show_source: true,
            definition: r#"{"stages":[]}"#.to_owned(),
            variables: serde_json::json!([]),
            actor_id: tenant.user.id.clone(),
            now: T0,
        };
        let system = store.create_template(template(true)).await.unwrap();
        let custom = store.create_template(template(false)).await.unwrap();
        let page = store.list_templates(&tenant.domain.id, &TemplateQuery { language: Some("java".to_owned()), ..Default::default() }).await.unwrap();
        assert_eq!(page.total, 2);
        assert!(matches!(store.delete_template(&tenant.domain.id, &system).await, Err(StoreError::Invalid(_))));
        store.set_template_favorite(&tenant.user.id, &custom, true, T0).await.unwrap();
        assert!(store.is_template_favorite(&tenant.user.id, &custom).await.unwrap());
        assert!(store.template("another-domain", &custom).await.unwrap().is_none());

        let pipeline = pipeline(&store, &tenant, "hooked").await;
        let trigger = NewTrigger {
            git_type: "github".to_owned(), git_url: "https://git.example.com/a.git".to_owned(), repo_id: "1".to_owned(),
            endpoint_id: None, events: serde_json::json!([{"type": "push", "enable": true}]), is_auto_commit: false,
            secret: "webhook-secret".to_owned(),
        };
        let hook_id = store.create_trigger(&pipeline.id, trigger, T0).await.unwrap();
        assert_eq!(store.trigger(hook_id).await.unwrap().unwrap().secret, "webhook-secret");
        let delivery = WebhookDelivery {
            hook_id, delivery_id: "d-1".to_owned(), event: "push".to_owned(), outcome: WebhookOutcome::Accepted,
            message: String::new(), run_id: None, received_at: T0,
        };
        assert!(store.record_delivery(delivery.clone()).await.unwrap());
        assert!(!store.record_delivery(delivery).await.unwrap(), "a replayed delivery is recognised");

        let schedule = NewSchedule {
            id: None, name: "nightly".to_owned(), schedule_type: "fixed".to_owned(), is_enabled: true,
            spec: serde_json::json!({"days_of_week": [1, 2]}), next_fire_at: Some(at(1000)),
        };
        store.replace_schedules(&pipeline.id, vec![schedule], T0).await.unwrap();
        assert!(store.claim_due_schedules("s1", at(500), Duration::from_secs(30), 10).await.unwrap().is_empty());
        let due = store.claim_due_schedules("s1", at(1000), Duration::from_secs(30), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert!(store.claim_due_schedules("s2", at(1001), Duration::from_secs(30), 10).await.unwrap().is_empty(), "leased by s1");
        assert!(matches!(store.schedule_fired(&due[0].id, "s2", at(1002), Some(at(90_000))).await, Err(StoreError::LeaseLost)));
        store.schedule_fired(&due[0].id, "s1", at(1002), Some(at(90_000))).await.unwrap();
        assert_eq!(store.schedules(&pipeline.id).await.unwrap()[0].next_fire_at, Some(at(90_000)));

        let event = NewAuditEvent {
            occurred_at: T0, domain_id: Some(tenant.domain.id.clone()), project_id: Some(tenant.project.id.clone()),
            actor_id: Some(tenant.user.id.clone()), action: "pipeline.create".to_owned(), target_type: "pipeline".to_owned(),
            target_id: pipeline.id.clone(), details: serde_json::json!({}),
        };
        store.record_audit(event.clone()).await.unwrap();
        let events = store.audit_events(&AuditQuery { project_id: Some(tenant.project.id.clone()), before_id: None, limit: 10 }).await.unwrap();
        assert_eq!(events[0].event, event);
    }
}

conformance! {
    async fn run_lists_filter_sort_page_and_count(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "listed").await;
        for index in 0..30i64 {
            let mut run = new_run(&pipeline.id, &RunShape::default(), at(index * 1000));
            run.trigger_type = if index % 3 == 0 { "Scheduler".to_owned() } else { "Manual".to_owned() };
            let created = store.create_run(run, parameters()).await.unwrap();
            if index % 2 == 0 {
                let progress = RunProgress {
                    run_id: created.run.id.clone(),
                    expected_version: 0,
                    now: at(index * 1000 + 1),
                    run: Some(RunUpdate { status: RunStatus::Completed, start_time: None, end_time: Some(at(index * 1000 + 1)), pause_time: 0, paused_since: None, is_cancel_requested: false }),
                    ..Default::default()
                };
                store.save_progress(progress).await.unwrap();
            }
        }
        let query = RunQuery { statuses: vec![RunStatus::Completed], limit: 4, offset: 4, ..Default::default() };
        let page = store.list_runs(&pipeline.id, &query).await.unwrap();
        assert_eq!(page.total, 15);
        let numbers: Vec<i64> = page.items.iter().map(|item| item.run.run_number).collect();
        assert_eq!(numbers, vec![21, 19, 17, 15], "newest first, second page");
        assert_eq!(page.items[0].stages.len(), 1);
        let query = RunQuery { trigger_types: vec!["Scheduler".to_owned()], sort_dir: SortDir::Asc, limit: 100, ..Default::default() };
        let page = store.list_runs(&pipeline.id, &query).await.unwrap();
        assert_eq!(page.total, 10);
        assert_eq!(page.items[0].run.run_number, 1);
        let query = RunQuery { started_from: Some(at(10_000)), started_to: Some(at(12_000)), ..Default::default() };
        assert_eq!(store.list_runs(&pipeline.id, &query).await.unwrap().total, 3);
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Init]).await.unwrap(), 15);
        assert_eq!(store.active_runs().await.unwrap().len(), 15);
        assert_eq!(store.latest_run(&pipeline.id).await.unwrap().unwrap().run_number, 30);
        assert_eq!(store.run_by_number(&pipeline.id, 7).await.unwrap().unwrap().run_number, 7);
    }
}

conformance! {
    async fn progress_is_written_whole_or_not_at_all_and_guarded_by_version(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "progress").await;
        let mut run = new_run(&pipeline.id, &RunShape { jobs_per_stage: vec![2], steps_per_job: 1 }, T0);
        run.status = RunStatus::Queued;
        let stage_id = run.stages[0].id.clone();
        let jobs: Vec<String> = run.stages[0].jobs.iter().map(|job| job.id.clone()).collect();
        let created = store.create_run(run, parameters()).await.unwrap();
        assert_eq!(store.queue_position(&created.run.id).await.unwrap(), Some(1));
        let running = RunUpdate { status: RunStatus::Running, start_time: Some(at(1)), end_time: None, pause_time: 0, paused_since: None, is_cancel_requested: false };
        let stage = StageUpdate { id: stage_id.clone(), status: StageStatus::Running, message: None, is_admitted: false, start_time: Some(at(1)), end_time: None, pause_time: 0 };
        // One bad row (an unknown job) rolls back the whole step.
        let bad = RunProgress {
            run_id: created.run.id.clone(), expected_version: 0, now: at(1), run: Some(running.clone()), stages: vec![stage.clone()],
            jobs: vec![JobUpdate { id: "nope".to_owned(), status: JobStatus::Skipped, message: None, start_time: None, end_time: None }],
            ..Default::default()
        };
        assert!(matches!(store.save_progress(bad).await, Err(StoreError::NotFound)));
        let unchanged = store.run_detail(&created.run.id).await.unwrap().unwrap();
        assert_eq!((unchanged.run.status, unchanged.run.state_version), (RunStatus::Queued, 0));
        assert_eq!(unchanged.stages[0].status, StageStatus::Init);
        let good = RunProgress {
            run_id: created.run.id.clone(), expected_version: 0, now: at(1), run: Some(running), stages: vec![stage],
            enqueue: vec![EnqueueJob { job_run_id: jobs[0].clone(), pool: None, labels: vec![], max_tries: 1 }],
            ..Default::default()
        };
        assert_eq!(store.save_progress(good.clone()).await.unwrap(), 1);
        assert!(matches!(store.save_progress(good).await, Err(StoreError::Conflict(_))), "a stale version is refused");
        // A stale step that would end the run moves no run counter either.
        let stale_end = RunProgress {
            run_id: created.run.id.clone(), expected_version: 0, now: at(2),
            run: Some(RunUpdate { status: RunStatus::Completed, start_time: None, end_time: Some(at(2)), pause_time: 0, paused_since: None, is_cancel_requested: false }),
            ..Default::default()
        };
        assert!(matches!(store.save_progress(stale_end).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Completed]).await.unwrap(), 0);
        let detail = store.run_detail(&created.run.id).await.unwrap().unwrap();
        assert_eq!(detail.run.status, RunStatus::Running);
        assert_eq!(detail.stages[0].jobs.iter().find(|job| job.id == jobs[0]).unwrap().status, JobStatus::Queued);
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Running]).await.unwrap(), 1);
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Queued]).await.unwrap(), 0);
        assert_eq!(store.queue_position(&created.run.id).await.unwrap(), None);
    }
}

conformance! {
    async fn a_queued_run_counts_the_started_runs_and_the_older_queued_ones_ahead_of_it(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "queue").await;
        let mut ids = Vec::new();
        for index in 0..4i64 {
            let mut run = new_run(&pipeline.id, &RunShape::default(), at(index * 1000));
            run.status = RunStatus::Queued;
            ids.push(store.create_run(run, parameters()).await.unwrap().run.id);
        }
        let ahead = |index: usize| {
            let store = &store;
            let id = ids[index].clone();
            async move { store.runs_ahead_in_queue(&id).await.unwrap() }
        };
        assert_eq!(ahead(0).await, Some(0));
        assert_eq!(ahead(3).await, Some(3), "three older queued runs");
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Queued]).await.unwrap(), 4);
        // The oldest starts: still ahead of the others, now as a started run.
        let start = RunProgress {
            run_id: ids[0].clone(), expected_version: 0, now: at(5000),
            run: Some(RunUpdate { status: RunStatus::Running, start_time: None, end_time: None, pause_time: 0, paused_since: None, is_cancel_requested: false }),
            ..Default::default()
        };
        store.save_progress(start).await.unwrap();
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Queued]).await.unwrap(), 3);
        assert_eq!(ahead(0).await, None, "not queued any more");
        assert_eq!(ahead(1).await, Some(1));
        assert_eq!(ahead(3).await, Some(3));
        // It ends: it is ahead of nobody.
        let end = RunProgress {
            run_id: ids[0].clone(), expected_version: 1, now: at(6000),
            run: Some(RunUpdate { status: RunStatus::Completed, start_time: None, end_time: Some(at(6000)), pause_time: 0, paused_since: None, is_cancel_requested: false }),
            ..Default::default()
        };
        store.save_progress(end).await.unwrap();
        assert_eq!(ahead(1).await, Some(0));
        assert_eq!(ahead(3).await, Some(2));
        // A run just triggered into a free slot (INIT, not yet started) holds that slot.
        store.create_run(new_run(&pipeline.id, &RunShape::default(), at(7000)), parameters()).await.unwrap();
        assert_eq!(ahead(1).await, Some(1));
        assert_eq!(store.runs_ahead_in_queue("no-such-run").await.unwrap(), None);
    }
}

conformance! {
    async fn step_actions_are_recorded_in_order_and_checked(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "actions").await;
        let run = new_run(&pipeline.id, &RunShape { jobs_per_stage: vec![1], steps_per_job: 1 }, T0);
        let step_run_id = run.stages[0].jobs[0].steps[0].id.clone();
        let created = store.create_run(run, parameters()).await.unwrap();
        let action = |name: &str, detail: &str, offset: i64| NewStepAction {
            run_id: created.run.id.clone(),
            step_run_id: step_run_id.clone(),
            user_id: "u1".into(),
            user_name: "alice".into(),
            action: name.into(),
            detail: detail.into(),
            at: at(offset),
        };
        store.record_step_action(action("delay", "60", 2)).await.unwrap();
        store.record_step_action(action("pass", "LGTM", 3)).await.unwrap();
        assert!(matches!(store.record_step_action(action("approve", "", 4)).await, Err(StoreError::Invalid(_))));
        let mut wrong_step = action("pass", "", 5);
        wrong_step.step_run_id = "nope".into();
        assert!(matches!(store.record_step_action(wrong_step).await, Err(StoreError::NotFound)));
        let recorded = store.step_actions(&created.run.id).await.unwrap();
        let names: Vec<(&str, &str)> = recorded.iter().map(|action| (action.action.as_str(), action.detail.as_str())).collect();
        assert_eq!(names, vec![("delay", "60"), ("pass", "LGTM")]);
        assert!(store.step_actions("other-run").await.unwrap().is_empty());
    }
}

conformance! {
    async fn a_created_run_reads_back_as_the_detail_its_creation_describes(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "created").await;
        let mut run = new_run(&pipeline.id, &RunShape { jobs_per_stage: vec![2, 1], steps_per_job: 2 }, T0);
        let gate = |sequence: i64, identifier: &str| NewStepRun {
            id: new_id(),
            sequence,
            identifier: identifier.to_owned(),
            name: identifier.to_owned(),
            task: "gate".to_owned(),
            inputs: serde_json::json!([]),
            ..NewStepRun::default()
        };
        run.stages[1].pre = vec![gate(0, "pre_gate")];
        run.stages[1].post = vec![gate(1, "post_gate")];
        run.stages[1].is_select = false;
        run.stages[1].status = StageStatus::Unselected;
        run.stages[1].jobs[0].resource = Some("{\"pool_name\":\"p\"}".to_owned());
        let stages = run.stages.clone();
        let created = store.create_run(run, parameters()).await.unwrap();
        let mut described = RunDetail::created(created.run.clone(), &stages);
        let mut stored = store.run_detail(&created.run.id).await.unwrap().unwrap();
        // Rows of equal sequence may come back in any order.
        for detail in [&mut described, &mut stored] {
            for stage in &mut detail.stages {
                stage.jobs.sort_by(|left, right| left.id.cmp(&right.id));
                for job in &mut stage.jobs {
                    job.steps.sort_by(|left, right| left.id.cmp(&right.id));
                }
            }
        }
        assert_eq!(described, stored);
    }
}

/// A first step for a run of two jobs of two steps: the run and its stage start, the first job
/// is queued (the update and step change given for it are overridden by its queueing, as
/// `save_progress` would), the second is skipped with its steps.
fn first_progress(detail: &RunDetail) -> RunProgress {
    let stage = &detail.stages[0];
    let (queued, skipped) = (&stage.jobs[0], &stage.jobs[1]);
    let step = |id: &str, status: StepStatus| StepUpdateRow {
        id: id.to_owned(),
        status,
        message: Some(format!("{status:?}")),
        exit_code: None,
        start_time: None,
        end_time: Some(at(1)),
    };
    RunProgress {
        run_id: detail.run.id.clone(),
        expected_version: 0,
        now: at(1),
        run: Some(RunUpdate {
            status: RunStatus::Running,
            start_time: Some(at(1)),
            end_time: None,
            pause_time: 0,
            paused_since: None,
            is_cancel_requested: false,
        }),
        stages: vec![StageUpdate {
            id: stage.id.clone(),
            status: StageStatus::Running,
            message: None,
            is_admitted: true,
            start_time: Some(at(1)),
            end_time: None,
            pause_time: 0,
        }],
        jobs: vec![
            JobUpdate {
                id: queued.id.clone(),
                status: JobStatus::Queued,
                message: Some("replaced".to_owned()),
                start_time: Some(at(1)),
                end_time: None,
            },
            JobUpdate {
                id: skipped.id.clone(),
                status: JobStatus::Skipped,
                message: Some("condition false".to_owned()),
                start_time: None,
                end_time: Some(at(1)),
            },
        ],
        steps: vec![
            step(&queued.steps[0].id, StepStatus::Running),
            step(&skipped.steps[0].id, StepStatus::Skipped),
            step(&skipped.steps[1].id, StepStatus::Skipped),
        ],
        enqueue: vec![EnqueueJob {
            job_run_id: queued.id.clone(),
            pool: None,
            labels: vec![],
            max_tries: 2,
        }],
    }
}

/// What a run's stored state is, without its ids and dispatch ids.
fn stored_state(detail: &RunDetail) -> String {
    let run = &detail.run;
    let mut text = format!(
        "run {:?} {:?} {:?} {} {:?} {} v{} updated {:?}\n",
        run.status,
        run.start_time,
        run.end_time,
        run.pause_time,
        run.paused_since,
        run.is_cancel_requested,
        run.state_version,
        run.updated_at
    );
    for stage in &detail.stages {
        text += &format!(
            "stage {} {:?} {:?} {} {:?} {:?} {}\n",
            stage.identifier,
            stage.status,
            stage.message,
            stage.is_admitted,
            stage.start_time,
            stage.end_time,
            stage.pause_time
        );
        for job in &stage.jobs {
            text += &format!(
                "job {} {:?} {:?} attempt {} dispatched {} {:?} {:?} {:?}\n",
                job.identifier,
                job.status,
                job.message,
                job.attempt,
                job.last_dispatch_id.is_some(),
                job.exec_id,
                job.start_time,
                job.end_time
            );
            for step in &job.steps {
                text += &format!(
                    "step {} {:?} {:?} {:?} {:?} {:?}\n",
                    step.identifier,
                    step.status,
                    step.message,
                    step.exit_code,
                    step.start_time,
                    step.end_time
                );
            }
        }
    }
    text
}

conformance! {
    async fn a_run_created_with_its_first_step_is_stored_as_if_the_step_had_been_saved_after_it(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "first-step").await;
        let shape = RunShape { jobs_per_stage: vec![2], steps_per_job: 2 };

        // Two writes: the run, then its first step.
        let created = store.create_run(new_run(&pipeline.id, &shape, T0), parameters()).await.unwrap();
        assert!(!created.is_started);
        let detail = store.run_detail(&created.run.id).await.unwrap().unwrap();
        assert_eq!(store.save_progress(first_progress(&detail)).await.unwrap(), 1);
        let two_writes = store.run_detail(&created.run.id).await.unwrap().unwrap();

        // One write: the step decided inside the creation, from the run as created and its parameters.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_by_step = std::sync::Arc::clone(&seen);
        let step: FirstStep = Box::new(move |detail, parameters| {
            seen_by_step.lock().unwrap().push((detail.run.run_number, detail.run.status, parameters.to_vec()));
            Some(first_progress(detail))
        });
        let started = store.create_and_start_run(new_run(&pipeline.id, &shape, T0), parameters(), step).await.unwrap();
        assert!(started.is_started);
        assert_eq!((started.run.status, started.run.state_version, started.run.start_time), (RunStatus::Running, 1, at(1)));
        let one_write = store.run_detail(&started.run.id).await.unwrap().unwrap();
        assert_eq!(stored_state(&one_write), stored_state(&two_writes));
        assert_eq!(one_write.run.run_number, 2);
        let seen = seen.lock().unwrap().clone();
        let (number, status, parameters) = seen.last().unwrap();
        assert_eq!((*number, *status), (2, RunStatus::Init), "the step sees the run as created, with its number");
        assert!(parameters.iter().any(|parameter| parameter.name == "PIPELINE_NUMBER" && parameter.value == "2"));

        // Both runs count as running, and each queued job is claimable as its attempt 1.
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Running]).await.unwrap(), 2);
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Init]).await.unwrap(), 0);
        let mut claimed = Vec::new();
        while let Some(lease) = store.claim(ClaimRequest { worker_id: "w".to_owned(), pool: None, now: at(2), lease: Duration::from_secs(30) }).await.unwrap() {
            claimed.push(lease);
        }
        assert_eq!(claimed.len(), 2, "one job of each run, and nothing else");
        for (detail, lease) in [(&two_writes, &claimed[0]), (&one_write, &claimed[1])] {
            let job = &detail.stages[0].jobs[0];
            assert_eq!((&lease.run_id, &lease.job_run_id, lease.attempt), (&detail.run.id, &job.id, 1));
            assert_eq!(Some(&lease.attempt_id), job.last_dispatch_id.as_ref());
        }
    }
}

conformance! {
    async fn a_first_step_that_does_not_fit_its_run_stores_it_as_created_or_nothing(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "first-step-refused").await;
        let shape = RunShape { jobs_per_stage: vec![2], steps_per_job: 2 };

        // No step, or one for another run or version: the run is stored as created.
        let answers: [fn(&RunDetail) -> Option<RunProgress>; 3] = [
            |_| None,
            |detail| Some(RunProgress { run_id: "another run".to_owned(), ..first_progress(detail) }),
            |detail| Some(RunProgress { expected_version: 3, ..first_progress(detail) }),
        ];
        for (index, answer) in answers.into_iter().enumerate() {
            let step: FirstStep = Box::new(move |detail, _| answer(detail));
            let created = store.create_and_start_run(new_run(&pipeline.id, &shape, T0), parameters(), step).await.unwrap();
            assert!(!created.is_started);
            assert_eq!((created.run.status, created.run.state_version, created.run.run_number), (RunStatus::Init, 0, index as i64 + 1));
            let detail = store.run_detail(&created.run.id).await.unwrap().unwrap();
            assert_eq!(detail.run.status, RunStatus::Init);
            assert!(detail.stages[0].jobs.iter().all(|job| job.status == JobStatus::Init && job.attempt == 0));
        }
        assert_eq!(store.count_runs(&pipeline.id, &[RunStatus::Init]).await.unwrap(), 3);

        // A step that queues a job of another run, or with no tries, stores nothing and takes no number.
        let foreign = store.run_detail(&store.latest_run(&pipeline.id).await.unwrap().unwrap().id).await.unwrap().unwrap();
        let foreign_job = foreign.stages[0].jobs[0].id.clone();
        let bad_steps: Vec<FirstStep> = vec![
            Box::new(move |detail, _| {
                let mut progress = first_progress(detail);
                progress.enqueue[0].job_run_id = foreign_job.clone();
                Some(progress)
            }),
            Box::new(|detail, _| {
                let mut progress = first_progress(detail);
                progress.enqueue[0].max_tries = 0;
                Some(progress)
            }),
        ];
        for step in bad_steps {
            let refused = store.create_and_start_run(new_run(&pipeline.id, &shape, T0), parameters(), step).await;
            assert!(matches!(refused, Err(StoreError::NotFound | StoreError::Invalid(_))), "{refused:?}");
        }
        assert_eq!(store.count_runs(&pipeline.id, &[]).await.unwrap(), 3);
        assert!(store.claim(ClaimRequest { worker_id: "w".to_owned(), pool: None, now: at(2), lease: Duration::from_secs(30) }).await.unwrap().is_none());
        let next = store.create_run(new_run(&pipeline.id, &shape, T0), parameters()).await.unwrap();
        assert_eq!(next.run.run_number, 4, "refused creations used no number");
    }
}

conformance! {
    async fn a_run_detail_lists_jobs_and_steps_by_sequence_whatever_order_they_were_written_in(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "ordered").await;
        let shape = RunShape { jobs_per_stage: vec![3, 2], steps_per_job: 3 };
        let mut run = new_run(&pipeline.id, &shape, T0);
        // Written last sequence first: rows come back from the table in the order written
        // (ids are time-ordered), so only the read's own ordering can put them right.
        for stage in &mut run.stages {
            stage.jobs.reverse();
            for job in &mut stage.jobs {
                job.steps.reverse();
            }
        }
        let created = store.create_run(run, parameters()).await.unwrap();
        let detail = store.run_detail(&created.run.id).await.unwrap().unwrap();
        let jobs: Vec<Vec<&str>> = detail
            .stages
            .iter()
            .map(|stage| stage.jobs.iter().map(|job| job.identifier.as_str()).collect())
            .collect();
        assert_eq!(jobs, vec![vec!["JOB_0_0", "JOB_0_1", "JOB_0_2"], vec!["JOB_1_0", "JOB_1_1"]]);
        for job in detail.stages.iter().flat_map(|stage| &stage.jobs) {
            let steps: Vec<&str> = job.steps.iter().map(|step| step.identifier.as_str()).collect();
            assert_eq!(steps, vec!["step_0", "step_1", "step_2"], "steps of {}", job.identifier);
        }
    }
}
