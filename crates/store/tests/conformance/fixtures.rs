//! Builders for the data most tests need: a tenant, a project, a pipeline, runs with jobs and steps.

use runnel_domain::Timestamp;
use runnel_domain::params::VariableSpec;
use runnel_domain::status::{JobStatus, RunStatus, StageStatus};
use runnel_store::*;

pub(crate) const T0: Timestamp = Timestamp::from_millis(1_740_000_000_000);

pub(crate) fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + offset_ms)
}

/// A tenant with one user and one project.
pub(crate) struct Tenant {
    pub(crate) domain: DomainRecord,
    pub(crate) user: UserRecord,
    pub(crate) project: ProjectRecord,
}

pub(crate) async fn tenant(store: &Store, name: &str) -> Tenant {
    let domain = store.create_domain(name, T0).await.expect("domain");
    let user = store
        .create_user(&domain.id, "alice", None, T0)
        .await
        .expect("user");
    let project = store
        .create_project(&domain.id, "demo", "", T0)
        .await
        .expect("project");
    store
        .set_member(&project.id, &user.id, Role::Admin, T0)
        .await
        .expect("member");
    Tenant {
        domain,
        user,
        project,
    }
}

/// Another project in the tenant's domain.
pub(crate) async fn project_in(store: &Store, tenant: &Tenant, name: &str) -> ProjectRecord {
    store
        .create_project(&tenant.domain.id, name, "", T0)
        .await
        .expect("project")
}

/// A pipeline to create, with defaults for everything but the name.
pub(crate) fn new_pipeline(tenant: &Tenant, name: &str) -> NewPipeline {
    NewPipeline {
        id: new_id(),
        project_id: tenant.project.id.clone(),
        name: name.to_owned(),
        description: String::new(),
        is_publish: false,
        component_id: None,
        group_id: None,
        manifest_version: "3.0".to_owned(),
        definition: r#"{"stages":[]}"#.to_owned(),
        compiled: serde_json::json!({"stages": []}),
        sources: serde_json::json!([]),
        settings: serde_json::json!({}),
        variables: Vec::<VariableSpec>::new(),
        variable_group_ids: Vec::new(),
        tag_ids: Vec::new(),
        origin_id: None,
        from_source: 0,
        creator_id: tenant.user.id.clone(),
        now: T0,
    }
}

pub(crate) async fn pipeline(store: &Store, tenant: &Tenant, name: &str) -> PipelineRecord {
    store
        .create_pipeline(new_pipeline(tenant, name))
        .await
        .expect("pipeline")
}

/// The shape of a run: stages of jobs of steps.
#[derive(Clone)]
pub(crate) struct RunShape {
    pub(crate) jobs_per_stage: Vec<usize>,
    pub(crate) steps_per_job: usize,
}

impl Default for RunShape {
    fn default() -> Self {
        RunShape {
            jobs_per_stage: vec![1],
            steps_per_job: 2,
        }
    }
}

pub(crate) fn new_run(pipeline_id: &str, shape: &RunShape, now: Timestamp) -> NewRun {
    let mut job_index = 0;
    let stages = shape
        .jobs_per_stage
        .iter()
        .enumerate()
        .map(|(stage_seq, &jobs)| NewStageRun {
            id: new_id(),
            sequence: stage_seq as i64,
            identifier: format!("stage_{stage_seq}"),
            name: format!("Stage {stage_seq}"),
            category: None,
            run_always: false,
            parallel: None,
            is_select: true,
            depends_on: Vec::new(),
            condition: None,
            status: StageStatus::Init,
            pre: Vec::new(),
            post: Vec::new(),
            jobs: (0..jobs)
                .map(|job_seq| {
                    job_index += 1;
                    NewJobRun {
                        id: new_id(),
                        job_index: job_index - 1,
                        sequence: job_seq as i64,
                        identifier: format!("JOB_{stage_seq}_{job_seq}"),
                        name: format!("job {stage_seq}.{job_seq}"),
                        category: None,
                        is_async: false,
                        depends_on: Vec::new(),
                        condition: None,
                        resource: None,
                        timeout: None,
                        is_select: true,
                        status: JobStatus::Init,
                        steps: (0..shape.steps_per_job)
                            .map(|step_seq| NewStepRun {
                                id: new_id(),
                                sequence: step_seq as i64,
                                identifier: format!("step_{step_seq}"),
                                name: format!("step {step_seq}"),
                                task: "official_shell_plugin".to_owned(),
                                inputs: serde_json::json!([]),
                                ..NewStepRun::default()
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    NewRun {
        id: new_id(),
        pipeline_id: pipeline_id.to_owned(),
        pipeline_version: None,
        status: RunStatus::Init,
        trigger_type: "Manual".to_owned(),
        executor_id: String::new(),
        executor_name: String::new(),
        description: String::new(),
        build_params: serde_json::json!({}),
        sources: serde_json::json!([]),
        selection: serde_json::json!({}),
        now,
        stages,
        idempotency: None,
    }
}

/// A parameter builder recording `PIPELINE_NUMBER` and the auto-increment values.
pub(crate) fn parameters() -> ParameterBuilder {
    Box::new(|allocation: &RunAllocation| {
        let mut parameters = vec![RunParameter {
            name: "PIPELINE_NUMBER".to_owned(),
            value: allocation.run_number.to_string(),
            is_secret: false,
            origin: "predefined".to_owned(),
        }];
        for (name, value) in &allocation.auto_increment_values {
            parameters.push(RunParameter {
                name: name.clone(),
                value: value.clone(),
                is_secret: false,
                origin: "custom".to_owned(),
            });
        }
        Ok(parameters)
    })
}

/// Creates a run and queues all its jobs; returns (run, job ids).
pub(crate) async fn queued_run(
    store: &Store,
    pipeline_id: &str,
    shape: &RunShape,
    pool: Option<&str>,
    now: Timestamp,
) -> (RunRecord, Vec<String>) {
    let run = new_run(pipeline_id, shape, now);
    let job_ids: Vec<String> = run
        .stages
        .iter()
        .flat_map(|stage| stage.jobs.iter().map(|job| job.id.clone()))
        .collect();
    let created = store.create_run(run, parameters()).await.expect("run");
    for job_id in &job_ids {
        store
            .enqueue(
                EnqueueJob {
                    job_run_id: job_id.clone(),
                    pool: pool.map(str::to_owned),
                    labels: Vec::new(),
                    max_tries: 2,
                },
                now,
            )
            .await
            .expect("enqueue");
    }
    (created.run, job_ids)
}

pub(crate) fn claim_request(
    worker: &str,
    pool: Option<&str>,
    now: Timestamp,
    lease_ms: u64,
) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.to_owned(),
        pool: pool.map(str::to_owned),
        now,
        lease: std::time::Duration::from_millis(lease_ms),
    }
}
