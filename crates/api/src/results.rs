//! What a run produced: its steps' outputs (spec §5.7) and its artifacts' metadata (§5.8).

use crate::AppState;
use crate::actions::{detail_of, run_of};
use crate::authz::{Action, Member};
use crate::dto::RunPath;
use crate::error::{ApiError, Missing};
use crate::extract::{PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use runnel_store::RunStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use utoipa::{IntoParams, ToSchema};

/// The most step ids one outputs query may name.
const MAX_STEPS: usize = 500;

/// `?step_run_ids=a,b` (comma-separated; the SDK sends one string).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutputsQuery {
    /// Comma-separated step run ids; absent or empty = every step of the run that has outputs.
    #[serde(default)]
    pub(crate) step_run_ids: Option<String>,
}

/// `{"step_outputs", "current_system_time"}` (§5.7).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StepOutputs {
    pub(crate) step_outputs: Vec<StepOutput>,
    pub(crate) current_system_time: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StepOutput {
    pub(crate) step_run_id: String,
    pub(crate) output_result: Vec<OutputItem>,
}

/// One published output: a key and any JSON value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct OutputItem {
    pub(crate) key: String,
    pub(crate) value: Value,
}

/// The outputs of the run's steps (§5.7). A named step that is not in the run answers
/// `DEVPIPE.00011403`; a named step without outputs has an empty `output_result`.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/steps/outputs",
    tag = "Runs", params(OutputsQuery),
    responses((status = 200, description = "Outputs per step", body = StepOutputs)))]
pub(crate) async fn step_outputs(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<RunPath>,
    QueryParams(query): QueryParams<OutputsQuery>,
) -> Result<Json<StepOutputs>, ApiError> {
    member.require(Action::View)?;
    let wanted: Vec<String> = query
        .step_run_ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if wanted.len() > MAX_STEPS {
        return Err(ApiError::invalid(
            "step_run_ids",
            format!("at most {MAX_STEPS} step runs per query"),
        ));
    }
    let run = run_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let fail = |err| ApiError::from_store(err, Missing::Step);
    let step_outputs = if wanted.is_empty() {
        let outputs = state
            .api
            .store
            .step_outputs(&run.id, None)
            .await
            .map_err(fail)?;
        let mut order: Vec<String> = Vec::new();
        for output in &outputs {
            if !order.contains(&output.step_run_id) {
                order.push(output.step_run_id.clone());
            }
        }
        group(order, &outputs)
    } else {
        let detail = detail_of(&state, &run).await?;
        let steps: HashSet<&str> = detail
            .stages
            .iter()
            .flat_map(|stage| {
                stage
                    .pre
                    .iter()
                    .chain(&stage.post)
                    .chain(stage.jobs.iter().flat_map(|job| &job.steps))
            })
            .map(|step| step.id.as_str())
            .collect();
        if !wanted.iter().all(|id| steps.contains(id.as_str())) {
            return Err(ApiError::NotFound(Missing::Step));
        }
        let mut order = Vec::new();
        for id in &wanted {
            if !order.contains(id) {
                order.push(id.clone());
            }
        }
        let outputs = state
            .api
            .store
            .step_outputs(&run.id, Some(&order))
            .await
            .map_err(fail)?;
        group(order, &outputs)
    };
    Ok(Json(StepOutputs {
        step_outputs,
        current_system_time: state.api.engine.now().as_millis(),
    }))
}

fn group(order: Vec<String>, outputs: &[runnel_store::StepOutputRecord]) -> Vec<StepOutput> {
    order
        .into_iter()
        .map(|step_run_id| StepOutput {
            output_result: outputs
                .iter()
                .filter(|output| output.step_run_id == step_run_id)
                .map(|output| OutputItem {
                    key: output.key.clone(),
                    value: output.value.clone(),
                })
                .collect(),
            step_run_id,
        })
        .collect()
}

/// `{"artifacts"}` (§5.8).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Artifacts {
    pub(crate) artifacts: Vec<Artifact>,
}

/// `Artifact` (§13): every field a string except `hash_code`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Artifact {
    pub(crate) project_id: String,
    pub(crate) name: String,
    pub(crate) artifact_version: String,
    pub(crate) upload_target: String,
    pub(crate) artifact_package_type: String,
    pub(crate) artifact_uri: String,
    pub(crate) artifact_download_url_with_id: String,
    pub(crate) artifact_type: String,
    pub(crate) hash_code: Vec<HashCode>,
    /// The job run that produced it.
    pub(crate) job_id: Option<String>,
    pub(crate) build_no: String,
    pub(crate) daily_build_number: String,
    pub(crate) file_size: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct HashCode {
    pub(crate) hash_type: String,
    pub(crate) hash_value: String,
}

/// The metadata of the run's artifacts, oldest first (§5.8).
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/artifacts",
    tag = "Runs", responses((status = 200, description = "The run's artifacts", body = Artifacts)))]
pub(crate) async fn artifacts(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<RunPath>,
) -> Result<Json<Artifacts>, ApiError> {
    member.require(Action::View)?;
    let pipeline = member.pipeline_head(&state, &path.pipeline_id).await?;
    let run = member
        .run_of_pipeline(&state, &pipeline.id, &path.pipeline_run_id)
        .await?;
    let records = state
        .api
        .store
        .artifacts(&run.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Run))?;
    Ok(Json(Artifacts {
        artifacts: records
            .into_iter()
            .map(|record| Artifact {
                project_id: pipeline.project_id.clone(),
                name: record.name,
                artifact_version: record.version,
                upload_target: record.upload_target,
                artifact_package_type: record.package_type,
                artifact_uri: record.uri,
                artifact_download_url_with_id: record.download_url,
                artifact_type: record.artifact_type,
                hash_code: record
                    .sha256
                    .map(|digest| HashCode {
                        hash_type: "SHA256".to_owned(),
                        hash_value: digest,
                    })
                    .into_iter()
                    .collect(),
                job_id: record.job_run_id,
                build_no: record.build_no,
                daily_build_number: record.daily_build_number,
                file_size: record.file_size.map(|size| size.to_string()),
            })
            .collect(),
    }))
}
