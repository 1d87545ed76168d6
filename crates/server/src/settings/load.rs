//! Loading settings: merge the layers (file < env < flags) into raw values, then read every key into its type, collecting every problem.

use super::{
    ApiSettings, DatabaseUrl, EngineSettings, ExecutorSettings, LogFormat, LoggingSettings,
    SecuritySettings, ServerSettings, Settings, StorageSettings,
};
use runnel_executor::{EnvPolicy, ProcessTracking};
use runnel_store::{Backend, DEFAULT_LOG_CAP_BYTES, SecretKey};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Value;

/// Where settings come from, besides the defaults. Tests build it by hand (no global env).
#[derive(Debug, Clone, Default)]
pub struct SettingsSources {
    /// Environment variables: `RUNNEL__SECTION__KEY` set keys, `RUNNEL_CONFIG` names the file.
    /// Other names are ignored.
    pub env: BTreeMap<String, String>,
    pub flags: Flags,
}

/// Command-line flags of `runnel serve`, as typed by the user (validated with the rest).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// The TOML settings file (overrides `RUNNEL_CONFIG`).
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub executor_slots: Option<String>,
    /// `--allow-private-networks`: sets `security.allow_private_networks`.
    pub allow_private_networks: bool,
}

/// Every problem found in the settings, each naming its key and where the value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid settings:\n  {}", .problems.join("\n  "))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

/// The environment variable naming the settings file.
pub(crate) const CONFIG_ENV: &str = "RUNNEL_CONFIG";
const ENV_PREFIX: &str = "RUNNEL__";

/// Each flag and the key it sets.
pub(crate) const FLAG_KEYS: &[(&str, &str)] = &[
    ("--data-dir", "storage.data_dir"),
    ("--listen", "server.listen"),
    ("--database-url", "storage.database_url"),
    ("--executor-slots", "executor.slots"),
    (
        "--allow-private-networks",
        "security.allow_private_networks",
    ),
];

impl SettingsSources {
    /// The process environment (only `RUNNEL_*` names are kept) and `flags`.
    pub fn from_process(flags: Flags) -> Result<SettingsSources, SettingsError> {
        let mut env = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().map(str::to_owned) else {
                continue;
            };
            if !name.starts_with("RUNNEL") {
                continue;
            }
            match value.into_string() {
                Ok(value) => {
                    env.insert(name, value);
                }
                Err(_) => problems.push(format!("{name}: the value is not valid UTF-8")),
            }
        }
        if !problems.is_empty() {
            return Err(SettingsError { problems });
        }
        Ok(SettingsSources { env, flags })
    }
}

impl Settings {
    /// Reads and validates the settings: defaults < file < environment < flags.
    pub fn load(sources: &SettingsSources) -> Result<Settings, SettingsError> {
        let mut reader = Reader::new(collect(sources));
        let settings = read(&mut reader);
        let problems = reader.finish();
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError { problems })
        }
    }

    /// Every key, as `section.key`, in the order they are read.
    pub fn keys() -> Vec<String> {
        let mut reader = Reader::new(Layers::default());
        read(&mut reader);
        reader.known
    }
}

/// Where a raw value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Env(name) => write!(f, "from {name}"),
            Origin::Flag(flag) => write!(f, "from {flag}"),
        }
    }
}

#[derive(Debug, Default)]
struct Layers {
    values: BTreeMap<(String, String), (Value, Origin)>,
    problems: Vec<String>,
}

impl Layers {
    fn set(&mut self, section: &str, key: &str, value: Value, origin: Origin) {
        self.values
            .insert((section.to_owned(), key.to_owned()), (value, origin));
    }
}

/// Merges the layers; later ones replace earlier values key by key.
fn collect(sources: &SettingsSources) -> Layers {
    let mut layers = Layers::default();
    let file = sources
        .flags
        .config
        .clone()
        .or_else(|| sources.env.get(CONFIG_ENV).map(PathBuf::from));
    if let Some(path) = file {
        read_file(&path, &mut layers);
    }
    for (name, value) in &sources.env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        match rest.split_once("__") {
            Some((section, key))
                if !section.is_empty() && !key.is_empty() && !key.contains("__") =>
            {
                layers.set(
                    &section.to_ascii_lowercase(),
                    &key.to_ascii_lowercase(),
                    Value::String(value.clone()),
                    Origin::Env(name.clone()),
                );
            }
            _ => layers.problems.push(format!(
                "{name}: not a setting; environment settings are named RUNNEL__SECTION__KEY"
            )),
        }
    }
    let flags = &sources.flags;
    let path_text = |path: &PathBuf| path.to_string_lossy().into_owned();
    for (flag, value) in [
        ("--data-dir", flags.data_dir.as_ref().map(path_text)),
        ("--listen", flags.listen.clone()),
        ("--database-url", flags.database_url.clone()),
        ("--executor-slots", flags.executor_slots.clone()),
        (
            "--allow-private-networks",
            flags.allow_private_networks.then(|| "true".to_owned()),
        ),
    ] {
        let Some(value) = value else { continue };
        let Some((_, key)) = FLAG_KEYS.iter().find(|(name, _)| *name == flag) else {
            continue;
        };
        let (section, key) = key.split_once('.').unwrap_or((key, ""));
        layers.set(section, key, Value::String(value), Origin::Flag(flag));
    }
    layers
}

fn read_file(path: &PathBuf, layers: &mut Layers) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            layers.problems.push(format!(
                "cannot read the settings file {}: {err}",
                path.display()
            ));
            return;
        }
    };
    let table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(err) => {
            let message = err.to_string().trim_end().replace('\n', "\n  ");
            layers.problems.push(format!(
                "the settings file {} is not valid TOML: {message}",
                path.display()
            ));
            return;
        }
    };
    for (section, value) in table {
        let Value::Table(keys) = value else {
            layers.problems.push(format!(
                "unknown setting `{section}` in {}: settings live in sections such as [server]",
                path.display()
            ));
            continue;
        };
        for (key, value) in keys {
            layers.set(&section, &key, value, Origin::File(path.clone()));
        }
    }
}

/// Takes values out of the layers key by key; what is left at the end is unknown.
struct Reader {
    values: BTreeMap<(String, String), (Value, Origin)>,
    problems: Vec<String>,
    known: Vec<String>,
}

impl Reader {
    fn new(layers: Layers) -> Reader {
        Reader {
            values: layers.values,
            problems: layers.problems,
            known: Vec::new(),
        }
    }

    /// The value of `section.key` parsed by `parse`, `None` when unset or invalid.
    fn get<T>(
        &mut self,
        section: &str,
        key: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        self.known.push(format!("{section}.{key}"));
        let (value, origin) = self.values.remove(&(section.to_owned(), key.to_owned()))?;
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                self.problems
                    .push(format!("{section}.{key} ({origin}): {why}"));
                None
            }
        }
    }

    fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    fn finish(mut self) -> Vec<String> {
        for ((section, key), (_, origin)) in std::mem::take(&mut self.values) {
            self.problems
                .push(format!("unknown setting `{section}.{key}` ({origin})"));
        }
        self.problems
    }
}

/// Reads every key with its default. The only place that knows the keys.
fn read(reader: &mut Reader) -> Settings {
    let server = ServerSettings {
        listen: reader
            .get("server", "listen", socket_addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        public_url: reader.get("server", "public_url", public_url),
        shutdown_grace: reader
            .get("server", "shutdown_grace", duration)
            .unwrap_or(Duration::from_secs(10)),
        worker_threads: reader
            .get("server", "worker_threads", positive::<usize>)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(1, |cores| (usize::from(cores) / 2).max(1))
            }),
    };
    let data_dir = reader
        .get("storage", "data_dir", path)
        .unwrap_or_else(|| PathBuf::from("./runnel-data"));
    let storage = StorageSettings {
        database_url: reader.get("storage", "database_url", database_url),
        max_connections: reader
            .get("storage", "max_connections", positive::<u32>)
            .unwrap_or(8),
        log_cap_bytes: reader
            .get("storage", "log_cap_bytes", positive::<u64>)
            .unwrap_or(DEFAULT_LOG_CAP_BYTES),
        data_dir,
    };
    let executor = ExecutorSettings {
        slots: reader
            .get("executor", "slots", positive::<usize>)
            .unwrap_or_else(default_executor_slots),
        workspace_root: reader
            .get("executor", "workspace_root", path)
            .unwrap_or_else(|| storage.data_dir.join("workspaces")),
        kill_grace: reader
            .get("executor", "kill_grace", duration)
            .unwrap_or(Duration::from_secs(10)),
        process_tracking: reader
            .get("executor", "process_tracking", process_tracking)
            .unwrap_or(ProcessTracking::CookieScan),
        env_allowlist: reader
            .get("executor", "env_allowlist", env_names)
            .unwrap_or_else(|| {
                EnvPolicy::DEFAULT_ALLOWLIST
                    .iter()
                    .map(|name| (*name).to_owned())
                    .collect()
            }),
        keep_workspaces: reader
            .get("executor", "keep_workspaces", boolean)
            .unwrap_or(false),
    };
    let engine = EngineSettings {
        lease: reader
            .get("engine", "lease", nonzero_duration)
            .unwrap_or(Duration::from_secs(30)),
        heartbeat: reader
            .get("engine", "heartbeat", nonzero_duration)
            .unwrap_or(Duration::from_secs(10)),
        sweep: reader
            .get("engine", "sweep", nonzero_duration)
            .unwrap_or(Duration::from_secs(5)),
        max_tries: reader
            .get("engine", "max_tries", positive::<u32>)
            .unwrap_or(2),
        utc_offset_minutes: reader.get("engine", "utc_offset", utc_offset).unwrap_or(0),
    };
    if engine.heartbeat >= engine.lease {
        reader.problem(format!(
            "engine.heartbeat ({:?}) must be shorter than engine.lease ({:?}), or every lease expires between heartbeats",
            engine.heartbeat, engine.lease
        ));
    }
    let security = SecuritySettings {
        secret_key: reader.get("security", "secret_key", secret_key),
        allow_private_networks: reader
            .get("security", "allow_private_networks", boolean)
            .unwrap_or(false),
        allowed_hosts: reader
            .get("security", "allowed_hosts", host_names)
            .unwrap_or_default(),
    };
    let api = ApiSettings {
        region: reader
            .get("api", "region", nonempty_text)
            .unwrap_or_else(|| "local-1".to_owned()),
    };
    let logging = LoggingSettings {
        level: reader
            .get("logging", "level", log_filter)
            .unwrap_or_else(|| "info".to_owned()),
        format: reader
            .get("logging", "format", log_format)
            .unwrap_or(LogFormat::Text),
    };
    Settings {
        server,
        storage,
        executor,
        engine,
        security,
        api,
        logging,
    }
}

// ---- value parsers: native TOML values, or text from the environment and flags ----

fn text(value: &Value) -> Result<&str, String> {
    match value {
        Value::String(text) => Ok(text.trim()),
        other => Err(format!("expected a string, found {}", other.type_str())),
    }
}

fn nonempty_text(value: &Value) -> Result<String, String> {
    let text = text(value)?;
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(text.to_owned())
}

fn path(value: &Value) -> Result<PathBuf, String> {
    nonempty_text(value).map(PathBuf::from)
}

fn positive<T>(value: &Value) -> Result<T, String>
where
    T: TryFrom<i64> + std::str::FromStr + PartialEq + From<u8>,
{
    let parsed = match value {
        Value::Integer(number) => T::try_from(*number).ok(),
        Value::String(text) => text.trim().parse::<T>().ok(),
        _ => None,
    };
    match parsed {
        Some(number) if number != T::from(0) => Ok(number),
        _ => Err("expected a positive whole number".to_owned()),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(flag) => Ok(*flag),
        Value::String(text) => match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        },
        other => Err(format!(
            "expected true or false, found {}",
            other.type_str()
        )),
    }
}

fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
    let text = text(value)?;
    text.parse()
        .map_err(|_| format!("`{text}` is not an IP address and port such as 127.0.0.1:8080"))
}

fn public_url(value: &Value) -> Result<String, String> {
    let text = text(value)?;
    let url = url::Url::parse(text).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("expected an http:// or https:// URL with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn database_url(value: &Value) -> Result<DatabaseUrl, String> {
    // Never echo the value: it may carry a password.
    let text = text(value)?;
    match Backend::from_url(text) {
        Some(_) => Ok(DatabaseUrl(text.to_owned())),
        None => Err("expected a postgres:// (or sqlite://) URL".to_owned()),
    }
}

fn secret_key(value: &Value) -> Result<SecretKey, String> {
    // Never echo the value.
    let text = text(value)?;
    SecretKey::from_hex(text).ok_or_else(|| "expected 64 hexadecimal digits".to_owned())
}

fn process_tracking(value: &Value) -> Result<ProcessTracking, String> {
    match text(value)? {
        "cookie" => Ok(ProcessTracking::CookieScan),
        "cgroup" => Ok(ProcessTracking::CgroupIfAvailable),
        other => Err(format!("`{other}` is neither `cookie` nor `cgroup`")),
    }
}

fn env_names(value: &Value) -> Result<Vec<String>, String> {
    let names: Vec<String> = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| text(item).map(str::to_owned))
            .collect::<Result<_, _>>()?,
        Value::String(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect(),
        other => {
            return Err(format!(
                "expected a list of names, found {}",
                other.type_str()
            ));
        }
    };
    if let Some(bad) = names.iter().find(|name| !is_env_name(name)) {
        return Err(format!("`{bad}` is not a variable name"));
    }
    Ok(names)
}

/// A list of host names (`git.example.com`, `*.corp.example`, `10.0.0.5`), as a TOML array
/// or comma-separated text.
fn host_names(value: &Value) -> Result<Vec<String>, String> {
    let names: Vec<String> = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| text(item).map(str::to_owned))
            .collect::<Result<_, _>>()?,
        Value::String(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect(),
        other => {
            return Err(format!(
                "expected a list of host names, found {}",
                other.type_str()
            ));
        }
    };
    let is_host = |name: &str| {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        !bare.is_empty()
            && !bare.starts_with(['-', '.'])
            && bare.chars().all(|char| {
                char.is_ascii_alphanumeric() || matches!(char, '.' | '-' | ':' | '[' | ']')
            })
    };
    if let Some(bad) = names.iter().find(|name| !is_host(name)) {
        return Err(format!("`{bad}` is not a host name"));
    }
    Ok(names
        .into_iter()
        .map(|name| name.to_ascii_lowercase())
        .collect())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|char| char.is_ascii_alphanumeric() || char == '_')
}

fn log_filter(value: &Value) -> Result<String, String> {
    let text = nonempty_text(value)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(&text)
        .map_err(|err| format!("not a log filter: {err}"))?;
    Ok(text)
}

fn log_format(value: &Value) -> Result<LogFormat, String> {
    match text(value)? {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is neither `text` nor `json`")),
    }
}

fn duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::String(text) => parse_duration(text.trim()).ok_or_else(|| {
            format!(
                "`{}` is not a duration such as 500ms, 30s, 5m or 1h",
                text.trim()
            )
        }),
        Value::Integer(_) => {
            Err("a duration needs a unit: write it as a string such as \"30s\"".to_owned())
        }
        other => Err(format!("expected a duration, found {}", other.type_str())),
    }
}

fn nonzero_duration(value: &Value) -> Result<Duration, String> {
    let parsed = duration(value)?;
    if parsed.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(parsed)
}

/// `<whole number><unit>` with unit `ms`, `s`, `m` or `h`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|char: char| !char.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(Duration::from_millis(number.checked_mul(millis_per_unit)?))
}

/// `+HH:MM`, `-HH:MM`, `Z` or `UTC`, between -12:00 and +14:00, as minutes east of UTC.
fn utc_offset(value: &Value) -> Result<i32, String> {
    let text = text(value)?;
    parse_utc_offset(text)
        .ok_or_else(|| format!("`{text}` is not a UTC offset such as +08:00, -05:30 or Z"))
}

pub(crate) fn parse_utc_offset(text: &str) -> Option<i32> {
    if text == "Z" || text.eq_ignore_ascii_case("UTC") {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if minutes >= 60 {
        return None;
    }
    let total = sign * (hours * 60 + minutes);
    (-12 * 60..=14 * 60).contains(&total).then_some(total)
}

/// Built-in executor slots per CPU core by default. A job's steps spend much of their time
/// waiting (process start-up, I/O, network, the commits of their reports), so two jobs per
/// core keep the cores busy: on a 2-core machine 4 slots finish a storm of trivial runs about
/// 40 % faster than 2 (`runnel bench serve --executor-slots`). CPU-bound jobs share the cores.
const DEFAULT_SLOTS_PER_CORE: usize = 2;

/// The default number of executor slots: [`DEFAULT_SLOTS_PER_CORE`] per core.
fn default_executor_slots() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * DEFAULT_SLOTS_PER_CORE
}
