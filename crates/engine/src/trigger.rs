//! Creating a run (acknowledgement point A1): selection, concurrency policy, the run's sources
//! pinned to commits, every stage/job/step row, and the parameter snapshot resolved inside the
//! run's own transaction.

pub(crate) mod sources;

use crate::advance::{self, Saved};
use crate::config::EngineError;
use crate::model::RunIds;
use crate::runinfo::{self, PipelineNames};
use crate::{Engine, Event, Inner};
use runnel_domain::Timestamp;
use runnel_domain::params::{
    GroupVariable, ParameterOrigin, ResolveInput, RunContextInfo, RuntimeValue, VariableGroup,
    predefined_parameters, resolve,
};
use runnel_domain::spec::{ExceedAction, PipelineSpec};
use runnel_domain::state::{RunState, Selection};
use runnel_domain::status::{JobStatus, RunStatus, StageStatus};
use runnel_store::{
    FirstStep, IdempotencyKey, NewJobRun, NewRun, NewStageRun, NewStepRun, OrganizeStore,
    PipelineRecord, PipelineStore, RunDetail, RunParameter, RunProgress, RunStore, new_id,
};
use serde_json::{Value, json};
use sources::GitRemote;
use std::sync::Arc;

/// Who or what starts a run, and with what.
#[derive(Debug, Clone, Default)]
pub struct TriggerRequest {
    pub pipeline_id: String,
    pub user_id: String,
    pub user_name: String,
    /// `Manual`, `Scheduler`, `Push`, … (spec §12.3).
    pub trigger_type: String,
    pub description: String,
    /// Run-time values; only variables declared `is_runtime` take them.
    pub variables: Vec<RuntimeValue>,
    pub choose_stages: Vec<String>,
    pub choose_jobs: Vec<String>,
    pub build_params: Value,
    /// The run's sources (spec §5.5 `RunPipelineSource`s): the pipeline's, overlaid with the
    /// run's branch or tag choices. Code sources are pinned to a commit when the run is created.
    pub sources: Value,
    pub idempotency: Option<IdempotencyKey>,
    /// The raw body of the webhook that started the run (`WEBHOOK_PAYLOAD`); dropped when it
    /// is longer than [`MAX_WEBHOOK_PAYLOAD`] (an environment value cannot hold much more).
    pub webhook_payload: Option<String>,
    /// The pipeline `pipeline_id` as the caller has just read it (an API handler that checked
    /// the caller's access), which saves the engine reading it again (three statements of a
    /// trigger's twenty-odd); `None`, or another pipeline's record: the engine reads it.
    pub pipeline: Option<PipelineRecord>,
}

/// The longest `WEBHOOK_PAYLOAD` passed to steps, in bytes (Linux limits one environment
/// string to 128 KiB).
pub const MAX_WEBHOOK_PAYLOAD: usize = 64 * 1024;

impl Engine {
    /// Lets the engine read remote repositories (pinning sources to commits, S5 checks).
    /// Without one, sources run whatever their branch points at when a job checks out.
    pub fn set_git_remote(&self, remote: Arc<dyn GitRemote>) {
        *self
            .inner
            .git
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(remote);
    }

    /// Whether the server may fetch from this repository URL (S5); `Ok` without a git remote.
    pub async fn check_repository_url(&self, url: &str) -> Result<(), String> {
        match self.inner.git_remote() {
            Some(git) => git.check_url(url).await,
            None => Ok(()),
        }
    }
}

impl Inner {
    pub(crate) fn git_remote(&self) -> Option<Arc<dyn GitRemote>> {
        self.git
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    pub run_id: String,
    pub run_number: i64,
    /// The run waits for a concurrency slot (spec §5.1 answers this with a `queued` error body).
    pub is_queued: bool,
    /// The idempotency key was seen before: this is the run created then.
    pub is_replay: bool,
}

pub(crate) async fn trigger(
    inner: &Inner,
    mut request: TriggerRequest,
) -> Result<Triggered, EngineError> {
    let now = inner.clock.now();
    // A replay gets the run its key created, whatever the checks below would say now (a full
    // concurrency slot, a ban, a moved branch): the first request passed them (G6). The key is
    // checked again inside `create_run`'s transaction for concurrent first requests.
    if let Some(key) = &request.idempotency
        && let Some(run) = inner.store.run_by_idempotency_key(key).await?
        && run.pipeline_id == request.pipeline_id
    {
        return Ok(Triggered {
            run_id: run.id,
            run_number: run.run_number,
            is_queued: run.status == RunStatus::Queued,
            is_replay: true,
        });
    }
    let pipeline = match request.pipeline.take() {
        Some(pipeline) if pipeline.id == request.pipeline_id => pipeline,
        _ => inner
            .store
            .pipeline_by_id(&request.pipeline_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("pipeline {}", request.pipeline_id)))?,
    };
    if pipeline.is_banned {
        return Err(EngineError::Banned);
    }
    let spec = inner
        .specs
        .get(&inner.store, &pipeline.id, pipeline.current_version)
        .await?;
    let selection = Selection {
        stages: request.choose_stages.clone(),
        jobs: request.choose_jobs.clone(),
    };
    let state =
        RunState::new(&spec, &selection).map_err(|err| EngineError::Invalid(err.to_string()))?;

    let concurrency = spec.concurrency();
    let mut status = RunStatus::Init;
    if concurrency.enabled {
        let active = active_runs(inner, &pipeline.id).await?;
        if active >= i64::from(concurrency.max_runs) {
            match concurrency.exceed_action {
                ExceedAction::Abort => {
                    return Err(EngineError::ConcurrencyLimit { running: active });
                }
                ExceedAction::Queue => status = RunStatus::Queued,
            }
        } else if concurrency.exceed_action == ExceedAction::Queue
            && inner
                .store
                .count_runs(&pipeline.id, &[RunStatus::Queued])
                .await?
                > 0
        {
            // A free slot goes to the runs already waiting, oldest first (`start_next_queued`):
            // a new run waits behind them. (A slot can be free while runs wait: a run just
            // ended and the oldest is about to be admitted, or the limit was raised while they
            // wait under their own version's.)
            status = RunStatus::Queued;
        }
    }

    // Everything the parameter builder needs, gathered before the transaction.
    let variables = inner.store.variables(&pipeline.id).await?;
    let mut groups = Vec::new();
    for group_id in &pipeline.variable_group_ids {
        if let Some(group) = inner
            .store
            .variable_group(&pipeline.project_id, group_id)
            .await?
        {
            groups.push(VariableGroup {
                id: group.id,
                name: group.name,
                variables: group
                    .variables
                    .into_iter()
                    .map(|variable| GroupVariable {
                        name: variable.name,
                        value: variable.value,
                        is_secret: variable.is_secret,
                    })
                    .collect(),
            });
        }
    }
    // Validate run-time values before taking a run number, so bad input changes nothing.
    let check = resolve(&ResolveInput {
        predefined: &[],
        variables: &variables,
        groups: &groups,
        runtime: &request.variables,
        auto_increment_values: &[],
    });
    if let Err(diagnostics) = check {
        let message = diagnostics
            .iter()
            .map(|diagnostic| format!("{}: {}", diagnostic.path, diagnostic.message))
            .collect::<Vec<_>>();
        return Err(EngineError::Invalid(message.join("; ")));
    }

    // Pin code sources to commits (network I/O, before the run's transaction).
    let git = inner.git_remote();
    let (run_sources, source_infos) = sources::pin_sources(
        &inner.store,
        git.as_deref(),
        &pipeline.project_id,
        &request.sources,
    )
    .await?;
    let mut build_params = request.build_params.clone();
    if let (Some(first), Some(params)) = (source_infos.first(), build_params.as_object_mut())
        && params
            .get("commit_id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        && !first.commit_id.is_empty()
    {
        params.insert("commit_id".to_owned(), json!(first.commit_id));
    }
    let merge_id = source_infos
        .first()
        .map(|source| source.merge_id.clone())
        .unwrap_or_default();
    let webhook_payload = request.webhook_payload.clone().map(|payload| {
        if payload.len() > MAX_WEBHOOK_PAYLOAD {
            tracing::warn!(pipeline_id = %pipeline.id, bytes = payload.len(), "webhook payload too long for WEBHOOK_PAYLOAD; left empty");
            String::new()
        } else {
            payload
        }
    });

    let run_id = new_id();
    let info_template = RunContextInfo {
        project_id: pipeline.project_id.clone(),
        pipeline_id: pipeline.id.clone(),
        pipeline_name: pipeline.name.clone(),
        run_number: 0,
        run_id: run_id.clone(),
        trigger_type: request.trigger_type.clone(),
        started_at: now,
        utc_offset_minutes: inner.config.utc_offset_minutes,
        execute_user: request.user_name.clone(),
        sources: source_infos,
        merge_id,
        webhook_payload,
        run_link: run_link(
            &inner.config.public_url,
            &pipeline.project_id,
            &pipeline.id,
            &run_id,
        ),
    };
    let runtime = request.variables.clone();
    // The snapshot the committed transaction stored, kept for the run's info (see below).
    let snapshot: Arc<std::sync::Mutex<Option<Vec<RunParameter>>>> = Arc::default();
    let snapshot_in_builder = Arc::clone(&snapshot);
    let builder: runnel_store::ParameterBuilder = Box::new(move |allocation| {
        let info = RunContextInfo {
            run_number: u64::try_from(allocation.run_number).unwrap_or(0),
            ..info_template.clone()
        };
        let predefined = predefined_parameters(&info);
        let resolved = resolve(&ResolveInput {
            predefined: &predefined,
            variables: &variables,
            groups: &groups,
            runtime: &runtime,
            auto_increment_values: &allocation.auto_increment_values,
        })
        .map_err(|diagnostics| {
            diagnostics
                .iter()
                .map(|diagnostic| diagnostic.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let parameters: Vec<RunParameter> = resolved
            .iter()
            .map(|parameter| RunParameter {
                name: parameter.name.clone(),
                value: parameter.value.clone(),
                is_secret: parameter.is_secret,
                origin: match &parameter.origin {
                    ParameterOrigin::Predefined => "predefined".to_owned(),
                    ParameterOrigin::Custom => "custom".to_owned(),
                    ParameterOrigin::Group { group_id } => format!("group:{group_id}"),
                },
            })
            .collect();
        *snapshot_in_builder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(parameters.clone());
        Ok(parameters)
    });

    let new_run = NewRun {
        id: run_id,
        pipeline_id: pipeline.id.clone(),
        pipeline_version: Some(pipeline.current_version),
        status,
        trigger_type: request.trigger_type.clone(),
        executor_id: request.user_id.clone(),
        executor_name: request.user_name.clone(),
        description: request.description.clone(),
        build_params,
        sources: run_sources,
        selection: json!({"choose_stages": request.choose_stages, "choose_jobs": request.choose_jobs}),
        now,
        stages: stage_rows(&spec, &state),
        idempotency: request.idempotency.clone(),
    };
    let stages = new_run.stages.clone();
    // A run that takes no concurrency slot makes its first engine step in its creation's
    // transaction: one write instead of two, and no round through the event loop. Nobody can
    // know the run before it is committed, but its lock is held until the step's follow-up is
    // done, as the event loop would.
    let first_step = (!concurrency.enabled).then(|| FirstStepInput {
        spec: Arc::clone(&spec),
        project_id: pipeline.project_id.clone(),
        pipeline_id: pipeline.id.clone(),
        pipeline_name: pipeline.name.clone(),
        max_tries: inner.config.max_tries,
        utc_offset_minutes: inner.config.utc_offset_minutes,
        now,
        outcome: Arc::default(),
    });
    let _run_lock = if first_step.is_some() {
        Some(inner.lock_run(&new_run.id).await)
    } else {
        None
    };
    let created = match &first_step {
        Some(input) => {
            let step = input.clone().into_first_step();
            inner
                .store
                .create_and_start_run(new_run, builder, step)
                .await?
        }
        None => inner.store.create_run(new_run, builder).await?,
    };
    // The run's info from what is in hand (the builder's last snapshot is the committed one,
    // and so are the contexts the last first step built from it), sparing its engine steps
    // the reads of the pipeline and the parameters.
    let parameters = snapshot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let mut decided = first_step
        .as_ref()
        .and_then(FirstStepInput::take_outcome)
        .filter(|_| created.is_started);
    let mut info = None;
    if !created.is_replay {
        let names = PipelineNames {
            project_id: &pipeline.project_id,
            pipeline_id: &pipeline.id,
            pipeline_name: &pipeline.name,
        };
        let built = match (
            decided.as_mut().and_then(|decided| decided.contexts.take()),
            parameters,
        ) {
            (Some(contexts), _) => {
                Some(runinfo::with_checkouts(inner, &created.run, &names, contexts).await)
            }
            (None, Some(parameters)) => {
                Some(runinfo::build(inner, &created.run, &names, parameters).await)
            }
            (None, None) => None,
        };
        match built {
            Some(Ok(built)) => info = Some(inner.remember_run_info(&created.run.id, built)),
            // The engine step reads it from the store instead.
            Some(Err(err)) => {
                tracing::debug!(run_id = %created.run.id, error = %err, "run info not kept")
            }
            None => {}
        }
    }
    let triggered = Triggered {
        run_id: created.run.id.clone(),
        run_number: created.run.run_number,
        is_queued: created.run.status == RunStatus::Queued,
        is_replay: created.is_replay,
    };
    // The first step's follow-up (the last decision computed is the committed one).
    match (created.is_started, decided, info) {
        (true, Some(decided), Some(info)) => {
            let detail = RunDetail::created(created.run.clone(), &stages);
            let advanced =
                decided
                    .saved
                    .follow_up(inner, &spec, &detail, &decided.state, &decided.ids, &info);
            inner.after_advance(&triggered.run_id, &advanced);
        }
        // Stored started, but the run's info is not at hand: its jobs are claimable (the claim
        // renders them) and the next step reads the run.
        (true, decided, _) => {
            inner.nudge_workers(decided.map_or(0, |decided| decided.saved.enqueued));
            inner.send(Event::Advance(triggered.run_id.clone()));
        }
        (false, ..) => {
            if !created.is_replay {
                inner.remember_created(RunDetail::created(created.run.clone(), &stages));
            }
            inner.send(Event::Advance(triggered.run_id.clone()));
        }
    }
    Ok(triggered)
}

/// What a run's first engine step needs inside its creation's transaction, and where it leaves
/// what it decided.
#[derive(Clone)]
struct FirstStepInput {
    spec: Arc<PipelineSpec>,
    project_id: String,
    pipeline_id: String,
    pipeline_name: String,
    max_tries: u32,
    utc_offset_minutes: i32,
    now: Timestamp,
    outcome: Arc<std::sync::Mutex<Option<FirstStepOutcome>>>,
}

/// The state after a run's first step and what follows it once committed.
struct FirstStepOutcome {
    state: RunState,
    ids: RunIds,
    saved: Saved,
    /// The run's parameters and contexts the step decided with, for the run's info.
    contexts: Option<runinfo::Contexts>,
}

impl FirstStepInput {
    fn into_first_step(self) -> FirstStep {
        Box::new(move |detail, parameters| {
            // Runs on the store's writer: a panic must not take it down; the event loop then
            // makes the step (and reports what went wrong).
            let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.decide(detail, parameters)
            }));
            match decided {
                Ok(Ok(progress)) => Some(progress),
                Ok(Err(err)) => {
                    tracing::debug!(run_id = %detail.run.id, error = %err, "first step left to the event loop");
                    None
                }
                Err(_) => {
                    tracing::error!(run_id = %detail.run.id, "the first step panicked; left to the event loop");
                    None
                }
            }
        })
    }

    fn decide(
        &self,
        detail: &RunDetail,
        parameters: &[RunParameter],
    ) -> Result<RunProgress, EngineError> {
        let names = PipelineNames {
            project_id: &self.project_id,
            pipeline_id: &self.pipeline_id,
            pipeline_name: &self.pipeline_name,
        };
        let contexts = runinfo::contexts(
            &detail.run,
            &names,
            parameters.to_vec(),
            self.utc_offset_minutes,
        );
        let (planned, state, ids) = advance::first_step(
            self.max_tries,
            &self.spec,
            detail,
            &contexts.context,
            self.now,
        )?;
        let progress = planned.progress.clone();
        let outcome = FirstStepOutcome {
            saved: Saved {
                enqueued: progress.enqueue.len(),
                enqueued_jobs: planned.enqueued_jobs,
                wake_at: planned.wake_at,
                was_final: false,
            },
            state,
            ids,
            contexts: Some(contexts),
        };
        *self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
        Ok(progress)
    }

    fn take_outcome(&self) -> Option<FirstStepOutcome> {
        self.outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Runs of the pipeline that hold a concurrency slot: started and not finished.
pub(crate) async fn active_runs(inner: &Inner, pipeline_id: &str) -> Result<i64, EngineError> {
    Ok(inner
        .store
        .count_runs(
            pipeline_id,
            &[
                RunStatus::Init,
                RunStatus::Running,
                RunStatus::Paused,
                RunStatus::Suspend,
            ],
        )
        .await?)
}

fn run_link(public_url: &str, project_id: &str, pipeline_id: &str, run_id: &str) -> String {
    if public_url.is_empty() {
        return String::new();
    }
    format!(
        "{}/ui/projects/{project_id}/pipelines/{pipeline_id}/runs/{run_id}",
        public_url.trim_end_matches('/')
    )
}

/// Every stage, job and step row of a new run, in the spec's order.
fn stage_rows(spec: &PipelineSpec, state: &RunState) -> Vec<NewStageRun> {
    spec.stage_indices()
        .map(|stage| {
            let stage_spec = spec.stage(stage);
            let stage_run = state.stage(stage);
            let gate_rows = |gates: &[runnel_domain::spec::GateStep]| {
                gates
                    .iter()
                    .map(|gate| NewStepRun {
                        id: new_id(),
                        sequence: gate.sequence,
                        identifier: gate.identifier.clone(),
                        name: gate.name.clone().unwrap_or_default(),
                        task: gate.task.clone(),
                        inputs: json!([]),
                        ..NewStepRun::default()
                    })
                    .collect()
            };
            NewStageRun {
                id: new_id(),
                sequence: stage_spec.sequence,
                identifier: stage_spec.identifier.clone(),
                name: stage_spec.name.clone(),
                category: None,
                run_always: stage_spec.run_always,
                parallel: stage_spec.parallel.then(|| "true".to_owned()),
                is_select: stage_run.is_selected(),
                depends_on: stage_spec.prerequisites.iter().map(|index| spec.stage(*index).identifier.clone()).collect(),
                condition: stage_spec.run_condition_text.clone(),
                status: if stage_run.is_selected() { StageStatus::Init } else { StageStatus::Unselected },
                pre: gate_rows(&stage_spec.pre),
                post: gate_rows(&stage_spec.post),
                jobs: stage_spec
                    .jobs
                    .iter()
                    .map(|job| {
                        let job_spec = spec.job(*job);
                        let job_run = state.job(*job);
                        NewJobRun {
                            id: new_id(),
                            job_index: i64::try_from(job.index()).unwrap_or(i64::MAX),
                            sequence: job_spec.sequence,
                            identifier: job_spec.identifier.clone(),
                            name: job_spec.name.clone(),
                            category: None,
                            is_async: job_spec.is_async,
                            depends_on: job_spec.needs.iter().map(|need| spec.job(*need).identifier.clone()).collect(),
                            condition: job_spec.condition_text.clone(),
                            resource: job_spec.resource.as_ref().map(Value::to_string),
                            timeout: Some(format!("{}", job_spec.timeout.as_secs())),
                            is_select: job_run.is_selected(),
                            status: if job_run.is_selected() { JobStatus::Init } else { JobStatus::Unselected },
                            steps: job_spec
                                .steps
                                .iter()
                                .enumerate()
                                .map(|(position, step)| NewStepRun {
                                    id: new_id(),
                                    sequence: i64::try_from(position).unwrap_or(i64::MAX),
                                    identifier: step.identifier.clone(),
                                    name: step.name.clone(),
                                    task: step.task.clone(),
                                    business_type: step.business_type.clone(),
                                    official_task_version: None,
                                    inputs: Value::Array(
                                        step.inputs.iter().map(|input| json!({"key": input.key, "value": input.value})).collect(),
                                    ),
                                    multi_step_editable: 0,
                                    endpoint_ids: Vec::new(),
                                    daily_build_number: None,
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}
