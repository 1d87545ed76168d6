//! The reads and writes the v5 API added to the pipeline, run and organize aggregates, on
//! SQLite and PostgreSQL: a pipeline's head, variable-group bindings replaced in one
//! transaction, and run lists filtered by status (their totals read from the counters).

#![allow(clippy::unwrap_used)]

#[path = "conformance/harness.rs"]
#[macro_use]
#[allow(dead_code)]
mod harness;

#[path = "conformance/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use fixtures::{T0, at, new_pipeline, new_run, parameters, pipeline, tenant};
use runnel_domain::params::VariableType;
use runnel_domain::status::RunStatus;
use runnel_store::*;

conformance! {
    async fn a_pipeline_head_is_scoped_by_project_and_leaves_out_deleted_pipelines(db) {
        let store = db.open().await;
        let first = tenant(&store, "acme").await;
        let second = tenant(&store, "other").await;
        let mut created = new_pipeline(&first, "head");
        created.description = "the description".to_owned();
        created.component_id = Some("component-1".to_owned());
        let record = store.create_pipeline(created).await.unwrap();
        let head = store.pipeline_head(&first.project.id, &record.id).await.unwrap().unwrap();
        assert_eq!(
            head,
            PipelineHead {
                id: record.id.clone(),
                project_id: first.project.id.clone(),
                name: "head".to_owned(),
                description: "the description".to_owned(),
                is_publish: false,
                component_id: Some("component-1".to_owned()),
                group_id: None,
                manifest_version: "3.0".to_owned(),
                current_version: record.current_version,
                last_run_number: 0,
                is_banned: false,
                created_at: T0,
                updated_at: T0,
            }
        );
        assert_eq!(store.pipeline_head(&second.project.id, &record.id).await.unwrap(), None, "another project's id is not found");
        store.set_banned(&first.project.id, &record.id, true, at(1)).await.unwrap();
        assert!(store.pipeline_head(&first.project.id, &record.id).await.unwrap().unwrap().is_banned);
        store.delete_pipeline(&first.project.id, &record.id, at(2)).await.unwrap();
        assert_eq!(store.pipeline_head(&first.project.id, &record.id).await.unwrap(), None);
    }
}

conformance! {
    async fn binding_variable_groups_replaces_the_bindings_in_order_or_changes_nothing(db) {
        let store = db.open().await;
        let first = tenant(&store, "acme").await;
        let second = tenant(&store, "other").await;
        let group = |tenant: &fixtures::Tenant, name: &str| NewVariableGroup {
            project_id: tenant.project.id.clone(),
            name: name.to_owned(),
            description: String::new(),
            variables: vec![VariableGroupVariable {
                name: "REGION".to_owned(),
                sequence: 1,
                var_type: VariableType::String,
                value: name.to_owned(),
                is_secret: false,
                description: String::new(),
            }],
            actor_id: tenant.user.id.clone(),
            now: T0,
        };
        let a = store.create_variable_group(group(&first, "a")).await.unwrap();
        let b = store.create_variable_group(group(&first, "b")).await.unwrap();
        let foreign = store.create_variable_group(group(&second, "foreign")).await.unwrap();
        let bound = pipeline(&store, &first, "bound").await;
        let project = first.project.id.clone();

        store.bind_variable_groups(&project, &bound.id, &[b.clone(), a.clone()], at(1)).await.unwrap();
        let names: Vec<String> = store.pipeline_variable_groups(&bound.id).await.unwrap().into_iter().map(|group| group.name).collect();
        assert_eq!(names, ["b", "a"], "binding order is kept");
        let record = store.pipeline(&project, &bound.id).await.unwrap().unwrap();
        assert_eq!(record.variable_group_ids, vec![b.clone(), a.clone()]);
        assert_eq!(record.updated_at, at(1));

        // Another project's group: refused, the bindings stay as they were.
        let refused = store.bind_variable_groups(&project, &bound.id, &[a.clone(), foreign], at(2)).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
        assert_eq!(store.pipeline(&project, &bound.id).await.unwrap().unwrap().variable_group_ids, vec![b.clone(), a.clone()]);
        // Another project's pipeline: not found.
        let elsewhere = store.bind_variable_groups(&second.project.id, &bound.id, &[], at(3)).await;
        assert!(matches!(elsewhere, Err(StoreError::NotFound)), "{elsewhere:?}");

        store.bind_variable_groups(&project, &bound.id, &[], at(4)).await.unwrap();
        assert!(store.pipeline_variable_groups(&bound.id).await.unwrap().is_empty());
    }
}

conformance! {
    async fn a_run_list_filtered_by_status_counts_from_the_counters(db) {
        let store = db.open().await;
        let first = tenant(&store, "acme").await;
        let listed = pipeline(&store, &first, "listed").await;
        let statuses = [RunStatus::Completed, RunStatus::Failed, RunStatus::Completed, RunStatus::Canceled, RunStatus::Completed];
        for (index, status) in statuses.iter().enumerate() {
            let mut run = new_run(&listed.id, &fixtures::RunShape::default(), at(index as i64 * 1000));
            run.status = *status;
            store.create_run(run, parameters()).await.unwrap();
        }
        let query = |statuses: Vec<RunStatus>, offset: i64, limit: i64| RunQuery {
            statuses,
            sort_dir: SortDir::Desc,
            offset,
            limit,
            ..RunQuery::default()
        };
        let page = store.list_runs(&listed.id, &query(vec![RunStatus::Completed, RunStatus::Canceled], 0, 2)).await.unwrap();
        assert_eq!(page.total, 4);
        assert_eq!(page.items.iter().map(|item| item.run.run_number).collect::<Vec<_>>(), [5, 4]);
        let rest = store.list_runs(&listed.id, &query(vec![RunStatus::Completed, RunStatus::Canceled], 2, 10)).await.unwrap();
        assert_eq!(rest.items.iter().map(|item| item.run.run_number).collect::<Vec<_>>(), [3, 1]);
        let failed = store.list_runs(&listed.id, &query(vec![RunStatus::Failed], 0, 10)).await.unwrap();
        assert_eq!((failed.total, failed.items.len()), (1, 1));
        let none = store.list_runs(&listed.id, &query(vec![RunStatus::Running], 0, 10)).await.unwrap();
        assert_eq!((none.total, none.items.len()), (0, 0));
        let all = store.list_runs(&listed.id, &query(Vec::new(), 0, 10)).await.unwrap();
        assert_eq!(all.total, 5);
        assert!(all.items.iter().all(|item| item.stages.len() == 1), "each item has its stages");
        let with_job = |identifier: &str| RunQuery {
            job_identifier: Some(identifier.to_owned()),
            statuses: vec![RunStatus::Completed],
            limit: 10,
            ..RunQuery::default()
        };
        let page = store.list_runs(&listed.id, &with_job("JOB_0_0")).await.unwrap();
        assert_eq!((page.total, page.items.len()), (3, 3));
        let page = store.list_runs(&listed.id, &with_job("JOB_9_9")).await.unwrap();
        assert_eq!((page.total, page.items.len()), (0, 0));
    }
}

conformance! {
    async fn pipeline_lists_filter_by_latest_run_tags_creators_subgroups_and_state(db) {
        let store = db.open().await;
        let first = tenant(&store, "acme").await;
        let project = first.project.id.clone();
        let other_user = store.create_user(&first.domain.id, "bob", None, T0).await.unwrap();
        let mut by_bob = new_pipeline(&first, "by-bob");
        by_bob.creator_id = other_user.id.clone();
        by_bob.component_id = Some("c1".to_owned());
        let by_bob = store.create_pipeline(by_bob).await.unwrap();
        let finished = pipeline(&store, &first, "finished").await;
        let idle = pipeline(&store, &first, "idle").await;
        // `finished`: a FAILED run, then a COMPLETED one (the latest); `by-bob`: one RUNNING run by bob.
        for (index, status) in [RunStatus::Failed, RunStatus::Completed].into_iter().enumerate() {
            let mut run = new_run(&finished.id, &fixtures::RunShape::default(), at(1000 + index as i64));
            run.status = status;
            store.create_run(run, parameters()).await.unwrap();
        }
        let mut run = new_run(&by_bob.id, &fixtures::RunShape::default(), at(5000));
        run.status = RunStatus::Running;
        run.executor_id = other_user.id.clone();
        store.create_run(run, parameters()).await.unwrap();
        store.set_banned(&project, &by_bob.id, true, at(6000)).await.unwrap();
        let top = store.create_group(NewGroup { project_id: project.clone(), name: "top".to_owned(), parent_id: None, creator_id: first.user.id.clone(), now: T0 }).await.unwrap();
        let inner = store.create_group(NewGroup { project_id: project.clone(), name: "inner".to_owned(), parent_id: Some(top.id.clone()), creator_id: first.user.id.clone(), now: T0 }).await.unwrap();
        store.move_pipelines(&project, Some(&inner.id), std::slice::from_ref(&finished.id), at(7000)).await.unwrap();
        let tag = store.create_tag(NewTag { project_id: project.clone(), name: "t".to_owned(), color: "#000000".to_owned(), now: T0 }).await.unwrap();
        store.tag_pipelines(&project, std::slice::from_ref(&idle.id), std::slice::from_ref(&tag.id)).await.unwrap();

        let names = |query: PipelineQuery| {
            let store = store.clone();
            let project = project.clone();
            async move {
                let page = store
                    .list_pipelines(&project, &PipelineQuery { sort_key: PipelineSortKey::Name, sort_dir: SortDir::Asc, limit: 100, ..query })
                    .await
                    .unwrap();
                let names: Vec<String> = page.items.into_iter().map(|item| item.name).collect();
                assert_eq!(page.total, names.len() as i64);
                names
            }
        };
        let latest = |filter: LatestRunFilter| PipelineQuery { latest_run: filter, ..PipelineQuery::default() };
        assert_eq!(names(latest(LatestRunFilter { statuses: vec![RunStatus::Completed], ..Default::default() })).await, ["finished"]);
        assert!(names(latest(LatestRunFilter { statuses: vec![RunStatus::Failed], ..Default::default() })).await.is_empty(), "only the latest run counts");
        assert_eq!(names(latest(LatestRunFilter { executor_ids: vec![other_user.id.clone()], ..Default::default() })).await, ["by-bob"]);
        assert_eq!(names(latest(LatestRunFilter { started_from: Some(at(1001)), started_to: Some(at(5000)), ..Default::default() })).await, ["by-bob", "finished"]);
        assert_eq!(names(latest(LatestRunFilter { updated_after: Some(at(4000)), ..Default::default() })).await, ["by-bob"]);
        assert_eq!(names(PipelineQuery { tag_ids: vec![tag.id.clone()], ..Default::default() }).await, ["idle"]);
        assert_eq!(names(PipelineQuery { creator_ids: vec![other_user.id.clone(), first.user.id.clone()], ..Default::default() }).await, ["by-bob", "finished", "idle"]);
        assert_eq!(names(PipelineQuery { component_id: Some("c1".to_owned()), ..Default::default() }).await, ["by-bob"]);
        assert_eq!(names(PipelineQuery { exclude_id: Some(idle.id.clone()), ..Default::default() }).await, ["by-bob", "finished"]);
        assert_eq!(names(PipelineQuery { is_banned: Some(false), ..Default::default() }).await, ["finished", "idle"]);
        assert_eq!(names(PipelineQuery { group_id: Some(top.id.clone()), ..Default::default() }).await, ["finished"], "subgroups count");
        assert_eq!(names(PipelineQuery { group_id: Some(inner.id.clone()), ..Default::default() }).await, ["finished"]);
    }
}
