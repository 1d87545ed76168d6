//! What stays the same for the whole of a run: its expression contexts, parameter snapshot and
//! sources (with their credentials, for checkouts), read once and kept while the run is active.

mod checkout;

use crate::Inner;
use crate::config::EngineError;
use crate::trigger::sources::{self, CodeSource};
use checkout::Checkout;
use runnel_domain::params::source_key;
use runnel_domain::params::{
    ParameterOrigin, ResolvedParameter, ResolvedParameters, RunContextInfo, pipeline_context,
    sources_context,
};
use runnel_domain::prepare::PreparedJob;
use runnel_domain::scheduler::RunContext;
use runnel_domain::spec::{JobIdx, PipelineSpec};
use runnel_store::{PipelineStore, RunParameter, RunRecord, RunStore};

#[derive(Debug)]
pub(crate) struct RunInfo {
    pub(crate) context: RunContext,
    pub(crate) parameters: ResolvedParameters,
    /// The run's code sources, pinned to commits, with their credentials.
    checkouts: Vec<Checkout>,
}

impl RunInfo {
    /// Makes `official_git_clone` steps check out the run's sources, and adds the implicit
    /// checkout before the job's first shell step (`checkout.rs`).
    pub(crate) fn apply_checkout(
        &self,
        spec: &PipelineSpec,
        job: JobIdx,
        prepared: &mut PreparedJob,
    ) {
        checkout::apply(&self.checkouts, spec, job, prepared);
    }
}

pub(crate) async fn load(inner: &Inner, run: &RunRecord) -> Result<RunInfo, EngineError> {
    let pipeline = inner
        .store
        .pipeline_by_id(&run.pipeline_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("pipeline {}", run.pipeline_id)))?;
    let parameters = inner.store.run_parameters(&run.id).await?;
    let owner = PipelineNames {
        project_id: &pipeline.project_id,
        pipeline_id: &pipeline.id,
        pipeline_name: &pipeline.name,
    };
    build(inner, run, &owner, parameters).await
}

/// The names of a run's pipeline that its contexts show.
pub(crate) struct PipelineNames<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) pipeline_id: &'a str,
    pub(crate) pipeline_name: &'a str,
}

/// The part of a run's info that needs no reads (the first engine step, inside the run's
/// creation, decides with it).
#[derive(Debug)]
pub(crate) struct Contexts {
    pub(crate) parameters: ResolvedParameters,
    pub(crate) context: RunContext,
    code_sources: Vec<CodeSource>,
}

/// A run's [`Contexts`]: its parameters, its expression contexts and its code sources.
pub(crate) fn contexts(
    run: &RunRecord,
    pipeline: &PipelineNames<'_>,
    parameters: Vec<RunParameter>,
    utc_offset_minutes: i32,
) -> Contexts {
    let parameters = ResolvedParameters::from_parameters(parameters.into_iter().map(|parameter| {
        let origin = match parameter.origin.as_str() {
            "predefined" => ParameterOrigin::Predefined,
            "custom" => ParameterOrigin::Custom,
            other => ParameterOrigin::Group {
                group_id: other.trim_start_matches("group:").to_owned(),
            },
        };
        ResolvedParameter {
            name: parameter.name,
            value: parameter.value,
            is_secret: parameter.is_secret,
            origin,
        }
    }));
    let mut code_sources: Vec<CodeSource> = Vec::new();
    for item in run.sources.as_array().into_iter().flatten() {
        match CodeSource::read(item) {
            Ok(Some(source)) => code_sources.push(source),
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(run_id = %run.id, error = %why, "a stored source is invalid; ignored")
            }
        }
    }
    let source_infos: Vec<_> = code_sources.iter().map(CodeSource::info).collect();
    let info = RunContextInfo {
        project_id: pipeline.project_id.to_owned(),
        pipeline_id: pipeline.pipeline_id.to_owned(),
        pipeline_name: pipeline.pipeline_name.to_owned(),
        run_number: u64::try_from(run.run_number).unwrap_or(0),
        run_id: run.id.clone(),
        trigger_type: run.trigger_type.clone(),
        started_at: run.start_time,
        utc_offset_minutes,
        execute_user: run.executor_name.clone(),
        merge_id: source_infos
            .first()
            .map(|source| source.merge_id.clone())
            .unwrap_or_default(),
        sources: source_infos,
        webhook_payload: None,
        run_link: String::new(),
    };
    let context = RunContext {
        pipeline: pipeline_context(&info),
        sources: sources_context(&info),
        env: parameters.env_context(),
    };
    Contexts {
        parameters,
        context,
        code_sources,
    }
}

/// A run's info from what is known of it: its record, its pipeline and its stored parameter
/// snapshot (the trigger has all three in hand; an engine step reads them).
pub(crate) async fn build(
    inner: &Inner,
    run: &RunRecord,
    pipeline: &PipelineNames<'_>,
    parameters: Vec<RunParameter>,
) -> Result<RunInfo, EngineError> {
    let contexts = contexts(run, pipeline, parameters, inner.config.utc_offset_minutes);
    with_checkouts(inner, run, pipeline, contexts).await
}

/// A run's info from its [`Contexts`]: adds the checkouts of its code sources, with their
/// credentials.
pub(crate) async fn with_checkouts(
    inner: &Inner,
    run: &RunRecord,
    pipeline: &PipelineNames<'_>,
    contexts: Contexts,
) -> Result<RunInfo, EngineError> {
    let Contexts {
        parameters,
        context,
        code_sources,
    } = contexts;
    let mut checkouts: Vec<Checkout> = Vec::new();
    for source in &code_sources {
        let Some(key) = source_key(&source.info()) else {
            continue;
        };
        if checkouts.iter().any(|checkout| checkout.key == key) {
            continue;
        }
        let credential = match sources::credential(
            &inner.store,
            pipeline.project_id,
            source.endpoint_id.as_deref(),
        )
        .await
        {
            Ok(credential) => credential,
            Err(EngineError::Invalid(why)) => {
                tracing::warn!(run_id = %run.id, error = %why, "checking out without credentials");
                None
            }
            Err(err) => return Err(err),
        };
        checkouts.push(Checkout {
            key,
            source: source.clone(),
            credential,
        });
    }
    Ok(RunInfo {
        context,
        parameters,
        checkouts,
    })
}
