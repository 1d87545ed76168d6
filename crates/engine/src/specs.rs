//! Compiled pipeline versions, cached: a run executes the version it was created with.

use crate::config::EngineError;
use runnel_domain::compile::compile;
use runnel_domain::definition::read_pipeline_value;
use runnel_domain::spec::PipelineSpec;
use runnel_store::{PipelineStore, Store};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `(pipeline id, version)` → compiled spec. Versions never change once written, so entries
/// never go stale; the cache is bounded by evicting everything past a size (rare, cheap).
#[derive(Default)]
pub(crate) struct SpecCache {
    specs: Mutex<HashMap<(String, i64), Arc<PipelineSpec>>>,
}

const MAX_CACHED: usize = 1024;

impl SpecCache {
    pub(crate) async fn get(
        &self,
        store: &Store,
        pipeline_id: &str,
        version: i64,
    ) -> Result<Arc<PipelineSpec>, EngineError> {
        let key = (pipeline_id.to_owned(), version);
        if let Some(spec) = self.lock().get(&key) {
            return Ok(Arc::clone(spec));
        }
        let record = store
            .pipeline_version(pipeline_id, version)
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("pipeline {pipeline_id} version {version}"))
            })?;
        let spec = Arc::new(compile_stored(&record.compiled, &record.settings)?);
        let mut specs = self.lock();
        if specs.len() >= MAX_CACHED {
            specs.clear();
        }
        specs.insert(key, Arc::clone(&spec));
        Ok(spec)
    }

    /// The compiled spec if it is cached (no read).
    pub(crate) fn cached(&self, pipeline_id: &str, version: i64) -> Option<Arc<PipelineSpec>> {
        self.lock()
            .get(&(pipeline_id.to_owned(), version))
            .map(Arc::clone)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i64), Arc<PipelineSpec>>> {
        // A panic while holding this lock leaves a valid map; keep using it.
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Compiles a stored definition (the normalized definition object, or a body holding one) with
/// the pipeline's settings (`concurrency_control`).
pub(crate) fn compile_stored(
    compiled: &Value,
    settings: &Value,
) -> Result<PipelineSpec, EngineError> {
    let definition = compiled
        .get("definition")
        .filter(|value| value.is_object())
        .unwrap_or(compiled);
    let mut body = json!({ "definition": definition });
    if let Some(concurrency) = settings
        .get("concurrency_control")
        .filter(|value| !value.is_null())
    {
        body["concurrency_control"] = concurrency.clone();
    }
    let mut diagnostics = Vec::new();
    let raw = read_pipeline_value(&body, &mut diagnostics);
    let spec = compile(&raw).map_err(|more| {
        diagnostics.extend(more);
        EngineError::BadDefinition(
            diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    if diagnostics.is_empty() {
        Ok(spec)
    } else {
        Err(EngineError::BadDefinition(
            diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ))
    }
}
