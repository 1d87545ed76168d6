//! The HTTP front: `/health/live`, `/health/ready`, and the API router once the server is up (503 before).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use runnel_engine::EngineTask;
use runnel_store::Store;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt as _;

/// How long `/health/ready` waits for the store to answer.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness depends on, updated by the server as it starts and stops.
#[derive(Default)]
pub(crate) struct Health {
    phase: AtomicU8,
    is_pool_running: AtomicBool,
    store: OnceLock<Store>,
    api: OnceLock<Router>,
    /// The engine's event loop, held here so readiness sees it; taken back for shutdown.
    engine_task: Mutex<Option<EngineTask>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Starting = 0,
    Running = 1,
    Stopping = 2,
}

impl Health {
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Running,
            _ => Phase::Stopping,
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    pub(crate) fn set_pool_running(&self, is_running: bool) {
        self.is_pool_running.store(is_running, Ordering::SeqCst);
    }

    pub(crate) fn set_store(&self, store: Store) {
        let _ = self.store.set(store);
    }

    pub(crate) fn set_engine_task(&self, task: EngineTask) {
        *self
            .engine_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    pub(crate) fn take_engine_task(&self) -> Option<EngineTask> {
        self.engine_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn is_engine_running(&self) -> bool {
        self.engine_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(EngineTask::is_running)
    }

    /// Routes every request that is not a health check to `api` from now on.
    pub(crate) fn set_api(&self, api: Router) {
        let _ = self.api.set(api);
    }
}

/// The server's router: health checks, then the API (or 503 while it is not there yet).
pub(crate) fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Arc::clone(&health))
        .fallback_service(LateApi(health))
        // An `X-Request-Id` on every answer, health checks and the 503 while starting included
        // (the API router's own layer keeps the id given here).
        .layer(axum::middleware::from_fn(runnel_api::request_context))
}

async fn live() -> Response {
    (StatusCode::OK, "live\n").into_response()
}

async fn ready(State(health): State<Arc<Health>>) -> Response {
    let unavailable =
        |why: &str| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
    match health.phase() {
        Phase::Starting => return unavailable("starting"),
        Phase::Stopping => return unavailable("shutting down"),
        Phase::Running => {}
    }
    if !health.is_engine_running() {
        return unavailable("the engine is not running");
    }
    if !health.is_pool_running.load(Ordering::SeqCst) {
        return unavailable("the executor pool is not running");
    }
    let Some(store) = health.store.get() else {
        return unavailable("starting");
    };
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.schema_version()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the store does not answer");
            unavailable("the database does not answer")
        }
        Err(_) => unavailable("the database does not answer in time"),
    }
}

/// Forwards to the API router once it is set.
#[derive(Clone)]
struct LateApi(Arc<Health>);

impl tower::Service<Request<Body>> for LateApi {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let api = self.0.api.get().cloned();
        Box::pin(async move {
            match api {
                Some(api) => api.oneshot(request).await,
                None => Ok((StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(router: &Router, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).expect("request");
        router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
            .status()
    }

    #[tokio::test]
    async fn while_starting_the_server_is_live_but_not_ready_and_the_api_answers_503() {
        let health = Arc::new(Health::default());
        let router = router(Arc::clone(&health));
        assert_eq!(status(&router, "/health/live").await, StatusCode::OK);
        assert_eq!(
            status(&router, "/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&router, "/v5/anything").await,
            StatusCode::SERVICE_UNAVAILABLE
        );

        health.set_api(Router::new().route("/v5/anything", get(|| async { "api" })));
        assert_eq!(status(&router, "/v5/anything").await, StatusCode::OK);
        health.set_phase(Phase::Stopping);
        assert_eq!(
            status(&router, "/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&router, "/health/live").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn ready_needs_the_engine_loop_to_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = runnel_store::StoreConfig::sqlite(
            &dir.path().join("runnel.db"),
            runnel_store::SecretKey::generate(),
        );
        let store = Store::open(config).await.expect("store");
        let (_engine, task) = runnel_engine::Engine::start(
            store.clone(),
            runnel_engine::EngineConfig::default(),
            Arc::new(runnel_engine::SystemClock),
        )
        .await
        .expect("engine");
        let health = Arc::new(Health::default());
        let router = router(Arc::clone(&health));
        health.set_store(store.clone());
        health.set_pool_running(true);
        health.set_phase(Phase::Running);
        assert_eq!(
            status(&router, "/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE,
            "no engine yet"
        );
        health.set_engine_task(task);
        assert_eq!(status(&router, "/health/ready").await, StatusCode::OK);
        health.take_engine_task().expect("task").shutdown().await;
        assert_eq!(
            status(&router, "/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine stopped"
        );
        store.close().await;
    }
}
