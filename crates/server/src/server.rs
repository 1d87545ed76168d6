//! Start-up wiring, the running server's handle, and the shutdown sequence.

use crate::bootstrap::{self, BootstrapCredentials};
use crate::coordinator::LocalCoordinator;
use crate::files;
use crate::health::{self, Health, Phase};
use crate::settings::Settings;
use anyhow::Context as _;
use runnel_api::ApiState;
use runnel_engine::{Clock as _, Engine, SystemClock};
use runnel_executor::ShellExecutor;
use runnel_store::Store;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server started by [`start`]. Stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    /// The address the HTTP server listens on (the real port when port 0 was asked for).
    pub local_addr: SocketAddr,
    public_url: String,
    data_dir: PathBuf,
    engine: Engine,
    store: Store,
    credentials: Option<BootstrapCredentials>,
    health: Arc<Health>,
    grace: Duration,
    stop_http: CancellationToken,
    http: JoinHandle<io::Result<()>>,
    stop_claiming: CancellationToken,
    abort_jobs: CancellationToken,
    pool: JoinHandle<()>,
}

/// Starts everything and returns once the server is ready.
///
/// Order: data directories, the listener (health checks answer from here on: live, not ready),
/// the secret key, the store (which checks its durability settings and migrates), bootstrap,
/// the engine (which recovers unfinished runs), the API router, the executor pool.
pub async fn start(mut settings: Settings) -> anyhow::Result<RunningServer> {
    crate::memory::return_large_blocks();
    // Steps see their workspace path (`$WORKSPACE`): it must not depend on their directory.
    for dir in [
        &mut settings.storage.data_dir,
        &mut settings.executor.workspace_root,
    ] {
        *dir = std::path::absolute(&*dir)
            .with_context(|| format!("while resolving {}", dir.display()))?;
    }
    tracing::debug!(?settings, "settings");
    files::ensure_dir(&settings.storage.data_dir)?;
    files::ensure_dir(&settings.executor.workspace_root)?;
    let listener = TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("while listening on {}", settings.server.listen))?;
    let local_addr = listener
        .local_addr()
        .context("while reading the listening address")?;
    let public_url = settings
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(local_addr));
    let health = Arc::new(Health::default());
    let stop_http = CancellationToken::new();
    let http = tokio::spawn(serve_http(
        listener,
        health::router(Arc::clone(&health)),
        stop_http.clone(),
    ));
    tracing::info!(listen = %local_addr, "listening; starting");
    match start_components(&settings, &health, &public_url).await {
        Ok(components) => {
            health.set_phase(Phase::Running);
            tracing::info!(listen = %local_addr, public_url = %public_url, slots = settings.executor.slots, "ready");
            Ok(RunningServer {
                local_addr,
                public_url,
                data_dir: settings.storage.data_dir.clone(),
                engine: components.engine,
                store: components.store,
                credentials: components.credentials,
                health,
                grace: settings.server.shutdown_grace,
                stop_http,
                http,
                stop_claiming: components.stop_claiming,
                abort_jobs: components.abort_jobs,
                pool: components.pool,
            })
        }
        Err(err) => {
            stop_http.cancel();
            log_join("http server", http.await);
            Err(err)
        }
    }
}

/// `runnel serve`: starts, prints the bootstrap notice (first start only) to stdout, runs until
/// SIGTERM or SIGINT, then shuts down gracefully. A second signal ends the grace period at once.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("while installing signal handlers")?;
    let server = tokio::select! {
        server = start(settings) => server?,
        () = signals.recv() => {
            tracing::info!("signal received while starting: exiting; the next start carries on");
            return Ok(());
        }
    };
    if let Some(credentials) = server.credentials() {
        let notice = credentials.notice(&server.credentials_file());
        let mut stdout = io::stdout().lock();
        if let Err(err) = stdout
            .write_all(notice.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // Not a reason to stop: the credentials file holds them.
            tracing::warn!(error = %err, file = %server.credentials_file().display(), "cannot print the bootstrap credentials; they are in the file");
        }
    }
    signals.recv().await;
    server.shutdown_with(signals.recv()).await;
    Ok(())
}

impl RunningServer {
    /// How clients reach this server (`endpoint` in the bootstrap credentials).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The credentials created by this start; `None` when the database was bootstrapped before.
    pub fn credentials(&self) -> Option<&BootstrapCredentials> {
        self.credentials.as_ref()
    }

    pub fn credentials_file(&self) -> PathBuf {
        bootstrap::credentials_path(&self.data_dir)
    }

    /// Graceful shutdown with the full grace period.
    pub async fn shutdown(self) {
        self.shutdown_with(std::future::pending()).await;
    }

    /// Graceful shutdown; when `force` resolves, the grace period ends at once.
    ///
    /// 1. Not ready; stop accepting connections; the pool stops claiming.
    /// 2. Running jobs may finish within `server.shutdown_grace`; then they are stopped (their
    ///    processes killed) WITHOUT reporting: their leases expire and the next start
    ///    recovers them like after a crash.
    /// 3. Requests in flight get what is left of the grace period (at least a second).
    /// 4. The engine loop stops; the store closes.
    pub async fn shutdown_with(self, force: impl Future<Output = ()>) {
        let started = Instant::now();
        tracing::info!(grace = ?self.grace, "shutting down: no new connections or jobs; running jobs may finish");
        self.health.set_phase(Phase::Stopping);
        self.stop_http.cancel();
        self.stop_claiming.cancel();
        let mut pool = self.pool;
        let force = std::pin::pin!(force);
        let is_pool_done = tokio::select! {
            result = &mut pool => {
                log_join("executor pool", result);
                true
            }
            () = tokio::time::sleep(self.grace) => false,
            () = force => false,
        };
        if !is_pool_done {
            tracing::warn!(
                "grace period over: stopping the remaining jobs without reporting them; the next start recovers them"
            );
            self.abort_jobs.cancel();
            log_join("executor pool", pool.await);
        }
        let mut http = self.http;
        let left = self
            .grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        match tokio::time::timeout(left, &mut http).await {
            Ok(result) => log_join("http server", result),
            Err(_) => {
                tracing::warn!("closing connections that are still open");
                http.abort();
                let _ = http.await;
            }
        }
        if let Some(engine_task) = self.health.take_engine_task() {
            engine_task.shutdown().await;
        }
        self.store.close().await;
        tracing::info!(elapsed = ?started.elapsed(), "stopped");
    }
}

/// What `start` builds after the listener.
struct Components {
    store: Store,
    engine: Engine,
    credentials: Option<BootstrapCredentials>,
    pool: JoinHandle<()>,
    stop_claiming: CancellationToken,
    abort_jobs: CancellationToken,
}

async fn start_components(
    settings: &Settings,
    health: &Arc<Health>,
    public_url: &str,
) -> anyhow::Result<Components> {
    let secret_key = match &settings.security.secret_key {
        Some(key) => key.clone(),
        None => files::load_or_create_secret_key(&settings.storage.data_dir)?,
    };
    let store = Store::open(settings.store_config(secret_key))
        .await
        .context("while opening the store")?;
    health.set_store(store.clone());
    let started = async {
        let credentials = bootstrap::bootstrap(
            &store,
            &settings.storage.data_dir,
            public_url,
            SystemClock.now(),
        )
        .await?;
        // Shipped system templates: added, upgraded in place or retired to match this build.
        runnel_api::sync_system_templates(&store, SystemClock.now())
            .await
            .context("while loading the system templates")?;
        let (engine, engine_task) = Engine::start(
            store.clone(),
            settings.engine_config(public_url),
            Arc::new(SystemClock),
        )
        .await
        .context("while starting the engine")?;
        anyhow::Ok((credentials, engine, engine_task))
    }
    .await;
    let (credentials, engine, engine_task) = match started {
        Ok(started) => started,
        Err(err) => {
            store.close().await;
            return Err(err);
        }
    };
    health.set_engine_task(engine_task);
    // Before the API answers: sources are checked (S5) and runs pinned to commits with git.
    engine.set_git_remote(Arc::new(crate::git::CliRemote(
        runnel_executor::git::GitCli::new(settings.network_policy()),
    )));
    health.set_api(runnel_api::router(ApiState {
        engine: engine.clone(),
        store: store.clone(),
        config: Arc::new(settings.api_config(public_url)),
    }));
    let executor = Arc::new(ShellExecutor::with_tracking(
        settings.shell_executor_config(),
        settings.executor.process_tracking,
    ));
    let coordinator = Arc::new(LocalCoordinator::new(engine.clone()));
    let stop_claiming = CancellationToken::new();
    let abort_jobs = CancellationToken::new();
    // Schedules fire until the shutdown begins.
    runnel_engine::schedule::spawn_scheduler_until(
        engine.clone(),
        runnel_engine::schedule::SchedulerConfig::default(),
        stop_claiming.clone(),
    );
    health.set_pool_running(true);
    let pool = tokio::spawn({
        let config = settings.worker_config();
        let health = Arc::clone(health);
        let stop_claiming = stop_claiming.clone();
        let abort_jobs = abort_jobs.clone();
        async move {
            runnel_agent::run_worker(coordinator, executor, config, stop_claiming, abort_jobs)
                .await;
            health.set_pool_running(false);
        }
    });
    Ok(Components {
        store,
        engine,
        credentials,
        pool,
        stop_claiming,
        abort_jobs,
    })
}

async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) -> io::Result<()> {
    // Connection info feeds the per-source login rate limit.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await
}

/// `http://<bound address>`, with a loopback address for an unspecified one (`0.0.0.0`).
fn default_public_url(local_addr: SocketAddr) -> String {
    let ip = match local_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, local_addr.port()))
}

fn log_join<T>(task: &str, result: Result<T, tokio::task::JoinError>) {
    if let Err(err) = result {
        tracing::error!(task, error = %err, "task ended abnormally");
    }
}

/// SIGTERM and SIGINT, as one stream.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_public_url_is_the_bound_address_with_loopback_for_any() {
        let url = |addr: &str| default_public_url(addr.parse().expect("address"));
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
    }
}
