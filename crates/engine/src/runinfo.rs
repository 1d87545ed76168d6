//! What stays the same for the whole of a run: its expression contexts and parameter snapshot,
//! read once and kept while the run is active.

use crate::Inner;
use crate::config::EngineError;
use runnel_domain::params::{
    ParameterOrigin, ResolvedParameter, ResolvedParameters, RunContextInfo, pipeline_context,
    sources_context,
};
use runnel_domain::scheduler::RunContext;
use runnel_store::{PipelineStore, RunRecord, RunStore};

#[derive(Debug)]
pub(crate) struct RunInfo {
    pub(crate) context: RunContext,
    pub(crate) parameters: ResolvedParameters,
}

pub(crate) async fn load(inner: &Inner, run: &RunRecord) -> Result<RunInfo, EngineError> {
    let pipeline = inner
        .store
        .pipeline_by_id(&run.pipeline_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("pipeline {}", run.pipeline_id)))?;
    let parameters = ResolvedParameters::from_parameters(
        inner
            .store
            .run_parameters(&run.id)
            .await?
            .into_iter()
            .map(|parameter| {
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
            }),
    );
    let info = RunContextInfo {
        project_id: pipeline.project_id.clone(),
        pipeline_id: pipeline.id.clone(),
        pipeline_name: pipeline.name.clone(),
        run_number: u64::try_from(run.run_number).unwrap_or(0),
        run_id: run.id.clone(),
        trigger_type: run.trigger_type.clone(),
        started_at: run.start_time,
        utc_offset_minutes: inner.config.utc_offset_minutes,
        execute_user: run.executor_name.clone(),
        sources: Vec::new(),
        merge_id: String::new(),
        webhook_payload: None,
        run_link: String::new(),
    };
    let context = RunContext {
        pipeline: pipeline_context(&info),
        sources: sources_context(&info),
        env: parameters.env_context(),
    };
    Ok(RunInfo {
        context,
        parameters,
    })
}
