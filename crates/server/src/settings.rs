//! The typed `Settings` of `runnel serve` and the component `*Config` structs built from them.
//!
//! One tree, layered defaults < TOML file < environment (`RUNNEL__SECTION__KEY`) < flags, and
//! validated once at start-up into real types (see `load.rs`). Components never see this tree:
//! they get their own config struct from the methods below. `docs/configuration.md` documents
//! every key; a test keeps the two in step.

mod load;
#[cfg(test)]
mod tests;

pub use load::{Flags, SettingsError, SettingsSources};

use runnel_agent::WorkerConfig;
use runnel_api::ApiConfig;
use runnel_engine::EngineConfig;
use runnel_executor::{EnvPolicy, ProcessTracking, ShellExecutorConfig};
use runnel_store::{SecretKey, StoreConfig};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `runnel serve` can be told, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub executor: ExecutorSettings,
    pub engine: EngineSettings,
    pub security: SecuritySettings,
    pub api: ApiSettings,
    pub logging: LoggingSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the HTTP server listens; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How clients reach this server, without a trailing slash; `None`: `http://<bound address>`.
    pub public_url: Option<String>,
    /// How long running steps may go on after a shutdown signal before they are stopped.
    pub shutdown_grace: Duration,
    /// Threads of the async runtime (HTTP, engine, executor pool); the database connections and
    /// step processes run on threads of their own.
    pub worker_threads: usize,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The SQLite database, the secret key file, bootstrap credentials and (by default) workspaces.
    pub data_dir: PathBuf,
    /// A PostgreSQL (or SQLite) URL; `None`: SQLite in `<data_dir>/runnel.db`.
    pub database_url: Option<DatabaseUrl>,
    pub max_connections: u32,
    pub log_cap_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Jobs the built-in executor pool runs at once.
    pub slots: usize,
    pub workspace_root: PathBuf,
    pub kill_grace: Duration,
    pub process_tracking: ProcessTracking,
    /// Variables of the server's environment that steps see.
    pub env_allowlist: Vec<String>,
    pub keep_workspaces: bool,
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub lease: Duration,
    pub heartbeat: Duration,
    pub sweep: Duration,
    pub max_tries: u32,
    /// Minutes east of UTC.
    pub utc_offset_minutes: i32,
}

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// `None`: read from (or generated into) `<data_dir>/secret.key` at start.
    pub secret_key: Option<SecretKey>,
    /// Let the server fetch repositories on loopback, private and link-local addresses (S5).
    pub allow_private_networks: bool,
    /// Repository hosts allowed whatever they resolve to: names, or `*.suffix`.
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub region: String,
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    /// A `tracing` filter: `info`, `warn,runnel_engine=debug`, …
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A database URL; it may carry a password, so `Debug` shows only its scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.split(':').next().unwrap_or_default();
        write!(f, "DatabaseUrl({scheme}:…)")
    }
}

/// The shell as an absolute path, looked up once in the `PATH` steps get (the server's own when
/// `PATH` is allowlisted, else the C library's default), which is where each step's lookup would
/// find it. With no lookup left to do at spawn time, the standard library starts steps with
/// `posix_spawn` (no copy of the server's page tables) instead of `fork` + `exec`.
/// A shell that is not found stays as given: the step's spawn reports it.
fn resolve_shell(shell: &std::path::Path, env_allowlist: &[String]) -> PathBuf {
    if shell.components().count() != 1 {
        return shell.to_owned();
    }
    let search = if env_allowlist.iter().any(|name| name == "PATH") {
        std::env::var_os("PATH").unwrap_or_default()
    } else {
        std::ffi::OsString::from("/bin:/usr/bin")
    };
    std::env::split_paths(&search)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(shell))
        .find(|candidate| is_executable_file(candidate))
        .unwrap_or_else(|| shell.to_owned())
}

fn is_executable_file(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The file name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "runnel.db";

impl Settings {
    /// The async runtime `runnel serve` runs on, sized by `server.worker_threads`.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.server.worker_threads)
            .enable_all()
            .build()
    }

    /// The settings with every default and nothing else (no file, no environment, no flags).
    pub fn defaults() -> Settings {
        // Defaults are valid by construction; a test checks it.
        Settings::load(&SettingsSources::default()).expect("the defaults are valid")
    }

    pub fn store_config(&self, secret_key: SecretKey) -> StoreConfig {
        let mut config = match &self.storage.database_url {
            Some(url) => StoreConfig::new(url.as_str(), secret_key),
            None => StoreConfig::sqlite(&self.storage.data_dir.join(DATABASE_FILE), secret_key),
        };
        config.max_connections = self.storage.max_connections;
        config.log_cap_bytes = self.storage.log_cap_bytes;
        config
    }

    pub fn engine_config(&self, public_url: &str) -> EngineConfig {
        EngineConfig {
            lease: self.engine.lease,
            heartbeat_interval: self.engine.heartbeat,
            sweep_interval: self.engine.sweep,
            max_tries: self.engine.max_tries,
            utc_offset_minutes: self.engine.utc_offset_minutes,
            public_url: public_url.to_owned(),
        }
    }

    /// Which repository hosts the server may fetch from (S5).
    pub fn network_policy(&self) -> runnel_executor::git::NetworkPolicy {
        runnel_executor::git::NetworkPolicy {
            allow_private_networks: self.security.allow_private_networks,
            allowed_hosts: self.security.allowed_hosts.clone(),
        }
    }

    pub fn shell_executor_config(&self) -> ShellExecutorConfig {
        let mut config = ShellExecutorConfig::new(&self.executor.workspace_root);
        config.keep_workspaces = self.executor.keep_workspaces;
        config.kill_grace = self.executor.kill_grace;
        config.env_policy = EnvPolicy::Allowlist(self.executor.env_allowlist.clone());
        config.shell = resolve_shell(&config.shell, &self.executor.env_allowlist);
        config
    }

    // `ApiConfig` is growing (the API is being written); the server sets what it decides and
    // keeps the API's own defaults for the rest, whichever fields exist.
    #[allow(clippy::field_reassign_with_default)]
    pub fn api_config(&self, public_url: &str) -> ApiConfig {
        let mut config = ApiConfig::default();
        config.public_url = public_url.to_owned();
        config.region = self.api.region.clone();
        config.utc_offset_minutes = self.engine.utc_offset_minutes;
        config
    }

    /// The built-in pool: the default agent pool, one id per server process.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            worker_id: format!("builtin-{}", std::process::id()),
            pool: None,
            labels: Vec::new(),
            slots: self.executor.slots,
            // Workers are nudged when jobs are queued; this only bounds a missed nudge and
            // how late a job re-queued by the lease sweeper is noticed.
            idle_wait: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(500),
            report_delay: runnel_agent::DEFAULT_REPORT_DELAY,
        }
    }
}
