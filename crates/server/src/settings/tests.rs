//! The settings loader: precedence, validation, unknown keys, and `docs/configuration.md` kept in step.

use super::load::{FLAG_KEYS, parse_duration, parse_utc_offset};
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

fn load(sources: SettingsSources) -> Settings {
    Settings::load(&sources).unwrap_or_else(|err| panic!("{err}"))
}

fn problems(sources: SettingsSources) -> String {
    Settings::load(&sources)
        .expect_err("settings should be refused")
        .to_string()
}

#[test]
fn the_defaults_are_valid_and_as_documented_in_the_brief() {
    let settings = Settings::defaults();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.server.public_url, None);
    assert_eq!(settings.server.shutdown_grace, Duration::from_secs(10));
    assert_eq!(settings.storage.data_dir, PathBuf::from("./runnel-data"));
    assert!(settings.storage.database_url.is_none());
    assert_eq!(
        settings.executor.workspace_root,
        PathBuf::from("./runnel-data/workspaces")
    );
    assert_eq!(
        settings.executor.slots,
        2 * std::thread::available_parallelism().map_or(1, usize::from)
    );
    assert_eq!(
        settings.executor.process_tracking,
        ProcessTracking::CookieScan
    );
    assert_eq!(settings.engine.lease, Duration::from_secs(30));
    assert_eq!(settings.engine.heartbeat, Duration::from_secs(10));
    assert_eq!(settings.engine.sweep, Duration::from_secs(5));
    assert_eq!(settings.engine.max_tries, 2);
    assert!(settings.security.secret_key.is_none());
    assert_eq!(settings.logging.format, LogFormat::Text);
    let store = settings.store_config(SecretKey::generate());
    assert_eq!(store.url, "sqlite://./runnel-data/runnel.db?mode=rwc");
}

#[test]
fn precedence_is_defaults_then_file_then_env_then_flags() {
    let settings_file = file(
        "[server]\nlisten = \"127.0.0.1:1111\"\nshutdown_grace = \"3s\"\n\
         [engine]\nlease = \"40s\"\nmax_tries = 5\n\
         [executor]\nslots = 3\n",
    );
    let file_only = load(SettingsSources {
        env: env(&[(
            "RUNNEL_CONFIG",
            settings_file.path().to_str().expect("utf-8"),
        )]),
        flags: Flags::default(),
    });
    assert_eq!(file_only.server.listen.port(), 1111);
    assert_eq!(file_only.server.shutdown_grace, Duration::from_secs(3));
    assert_eq!(file_only.engine.lease, Duration::from_secs(40));
    assert_eq!(file_only.engine.max_tries, 5);
    assert_eq!(file_only.executor.slots, 3);
    assert_eq!(
        file_only.engine.sweep,
        Duration::from_secs(5),
        "default kept"
    );

    let environment = env(&[
        (
            "RUNNEL_CONFIG",
            settings_file.path().to_str().expect("utf-8"),
        ),
        ("RUNNEL__SERVER__LISTEN", "127.0.0.1:2222"),
        ("RUNNEL__ENGINE__MAX_TRIES", "7"),
        ("RUNNEL__EXECUTOR__SLOTS", "4"),
    ]);
    let with_env = load(SettingsSources {
        env: environment.clone(),
        flags: Flags::default(),
    });
    assert_eq!(with_env.server.listen.port(), 2222);
    assert_eq!(with_env.engine.max_tries, 7);
    assert_eq!(with_env.engine.lease, Duration::from_secs(40), "file kept");

    let with_flags = load(SettingsSources {
        env: environment,
        flags: Flags {
            listen: Some("127.0.0.1:3333".into()),
            executor_slots: Some("6".into()),
            data_dir: Some("/srv/runnel".into()),
            ..Flags::default()
        },
    });
    assert_eq!(with_flags.server.listen.port(), 3333);
    assert_eq!(with_flags.executor.slots, 6);
    assert_eq!(with_flags.engine.max_tries, 7, "env kept");
    assert_eq!(with_flags.storage.data_dir, PathBuf::from("/srv/runnel"));
    assert_eq!(
        with_flags.executor.workspace_root,
        PathBuf::from("/srv/runnel/workspaces"),
        "derived defaults follow the data directory"
    );
}

#[test]
fn the_config_flag_wins_over_runnel_config() {
    let from_env = file("[api]\nregion = \"from-env\"\n");
    let from_flag = file("[api]\nregion = \"from-flag\"\n");
    let settings = load(SettingsSources {
        env: env(&[("RUNNEL_CONFIG", from_env.path().to_str().expect("utf-8"))]),
        flags: Flags {
            config: Some(from_flag.path().to_path_buf()),
            ..Flags::default()
        },
    });
    assert_eq!(settings.api.region, "from-flag");
}

#[test]
fn unknown_keys_in_the_file_or_the_environment_are_errors_naming_them() {
    let settings_file = file("[server]\nlistne = \"127.0.0.1:1\"\n[nonsense]\nx = 1\n");
    let message = problems(SettingsSources {
        env: env(&[
            (
                "RUNNEL_CONFIG",
                settings_file.path().to_str().expect("utf-8"),
            ),
            ("RUNNEL__ENGINE__LEASES", "30s"),
            ("RUNNEL__LOGGING", "debug"),
            ("RUNNEL_LOG", "debug"),
            ("HOME", "/root"),
        ]),
        flags: Flags::default(),
    });
    assert!(
        message.contains("unknown setting `server.listne`"),
        "{message}"
    );
    assert!(
        message.contains("unknown setting `nonsense.x`"),
        "{message}"
    );
    assert!(
        message.contains("unknown setting `engine.leases` (from RUNNEL__ENGINE__LEASES)"),
        "{message}"
    );
    assert!(
        message.contains("RUNNEL__LOGGING: not a setting"),
        "{message}"
    );
    assert!(!message.contains("RUNNEL_LOG:"), "{message}");
}

#[test]
fn bad_values_are_all_reported_with_their_key_and_origin() {
    let settings_file = file("[engine]\nlease = 30\n");
    let message = problems(SettingsSources {
        env: env(&[
            (
                "RUNNEL_CONFIG",
                settings_file.path().to_str().expect("utf-8"),
            ),
            ("RUNNEL__SERVER__LISTEN", "localhost"),
            ("RUNNEL__EXECUTOR__SLOTS", "0"),
            ("RUNNEL__EXECUTOR__PROCESS_TRACKING", "ptrace"),
            ("RUNNEL__ENGINE__UTC_OFFSET", "+25:00"),
            ("RUNNEL__LOGGING__FORMAT", "xml"),
        ]),
        flags: Flags::default(),
    });
    for expected in [
        "engine.lease (in ",
        "a duration needs a unit",
        "server.listen (from RUNNEL__SERVER__LISTEN)",
        "executor.slots (from RUNNEL__EXECUTOR__SLOTS): expected a positive whole number",
        "executor.process_tracking",
        "engine.utc_offset",
        "logging.format",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing in:\n{message}"
        );
    }
}

#[test]
fn secrets_are_never_echoed_in_errors_or_debug_output() {
    let message = problems(SettingsSources {
        env: env(&[
            ("RUNNEL__SECURITY__SECRET_KEY", "topsecret-not-hex"),
            (
                "RUNNEL__STORAGE__DATABASE_URL",
                "mysql://root:hunter2@db/runnel",
            ),
        ]),
        flags: Flags::default(),
    });
    assert!(!message.contains("topsecret"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let key = "ab".repeat(32);
    let settings = load(SettingsSources {
        env: env(&[
            ("RUNNEL__SECURITY__SECRET_KEY", &key),
            (
                "RUNNEL__STORAGE__DATABASE_URL",
                "postgres://runnel:hunter2@db/runnel",
            ),
        ]),
        flags: Flags::default(),
    });
    assert_eq!(
        settings.security.secret_key.as_ref().map(SecretKey::to_hex),
        Some(key.clone())
    );
    let debug = format!("{settings:?}");
    assert!(!debug.contains(&key), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        settings
            .store_config(SecretKey::generate())
            .url
            .starts_with("postgres://")
    );
}

#[test]
fn heartbeats_must_come_more_often_than_leases_expire() {
    let message = problems(SettingsSources {
        env: env(&[
            ("RUNNEL__ENGINE__LEASE", "5s"),
            ("RUNNEL__ENGINE__HEARTBEAT", "5s"),
        ]),
        flags: Flags::default(),
    });
    assert!(
        message.contains("must be shorter than engine.lease"),
        "{message}"
    );
}

#[test]
fn lists_booleans_and_urls_are_read_from_text_and_from_toml() {
    let settings_file = file(
        "[executor]\nenv_allowlist = [\"PATH\", \"LANG\"]\nkeep_workspaces = true\n\
         [server]\npublic_url = \"https://ci.example.com/\"\n",
    );
    let from_file = load(SettingsSources {
        env: env(&[(
            "RUNNEL_CONFIG",
            settings_file.path().to_str().expect("utf-8"),
        )]),
        flags: Flags::default(),
    });
    assert_eq!(from_file.executor.env_allowlist, ["PATH", "LANG"]);
    assert!(from_file.executor.keep_workspaces);
    assert_eq!(
        from_file.server.public_url.as_deref(),
        Some("https://ci.example.com")
    );
    let from_env = load(SettingsSources {
        env: env(&[
            ("RUNNEL__EXECUTOR__ENV_ALLOWLIST", "PATH, HOME,"),
            ("RUNNEL__EXECUTOR__KEEP_WORKSPACES", "false"),
        ]),
        flags: Flags::default(),
    });
    assert_eq!(from_env.executor.env_allowlist, ["PATH", "HOME"]);
    assert!(!from_env.executor.keep_workspaces);
}

#[test]
fn durations_and_utc_offsets_parse() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("30"), None);
    assert_eq!(parse_duration("1.5s"), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_utc_offset("+08:00"), Some(480));
    assert_eq!(parse_utc_offset("-05:30"), Some(-330));
    assert_eq!(parse_utc_offset("Z"), Some(0));
    assert_eq!(parse_utc_offset("+14:01"), None);
    assert_eq!(parse_utc_offset("08:00"), None);
}

/// One row of a settings table in `docs/configuration.md`.
struct DocRow {
    key: String,
    env: String,
    flag: String,
    default: String,
}

fn doc_rows() -> Vec<DocRow> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_owned();
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 5, "a settings row has five cells: {line}");
            DocRow {
                key: unquote(cells[0]),
                env: unquote(cells[1]),
                flag: unquote(cells[2]),
                default: cells[3].trim().to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_setting_is_documented_with_its_environment_variable_and_flag() {
    let rows = doc_rows();
    let documented: BTreeSet<String> = rows.iter().map(|row| row.key.clone()).collect();
    let known: BTreeSet<String> = Settings::keys().into_iter().collect();
    assert_eq!(
        documented, known,
        "docs/configuration.md and the loader disagree"
    );
    assert_eq!(rows.len(), known.len(), "a key is documented twice");
    for row in &rows {
        let expected_env = format!("RUNNEL__{}", row.key.replace('.', "__").to_uppercase());
        assert_eq!(row.env, expected_env, "environment variable of {}", row.key);
        let expected_flag = FLAG_KEYS
            .iter()
            .find(|(_, key)| *key == row.key)
            .map_or("—", |(flag, _)| *flag);
        assert_eq!(row.flag, expected_flag, "flag of {}", row.key);
    }
}

#[test]
fn documented_literal_defaults_are_the_real_defaults() {
    // A default written as one `literal` is fed back as that key's value: the result must be
    // exactly the defaults. Computed defaults are written as prose and skipped.
    let mut environment = BTreeMap::new();
    for row in doc_rows() {
        let literal = row
            .default
            .strip_prefix('`')
            .and_then(|rest| rest.strip_suffix('`'));
        if let Some(literal) = literal.filter(|literal| !literal.contains('`')) {
            environment.insert(row.env.clone(), literal.to_owned());
        }
    }
    assert!(environment.len() >= 15, "{environment:?}");
    let documented = load(SettingsSources {
        env: environment,
        flags: Flags::default(),
    });
    assert_eq!(
        format!("{documented:?}"),
        format!("{:?}", Settings::defaults())
    );
}

#[test]
fn the_shell_is_resolved_to_an_absolute_path_once() {
    let everything = vec!["PATH".to_owned()];
    let bash = super::resolve_shell(std::path::Path::new("bash"), &everything);
    assert!(bash.is_absolute(), "{}", bash.display());
    assert!(bash.ends_with("bash"));
    // Without PATH in the allowlist, steps get the C library's default search path.
    let without_path = super::resolve_shell(std::path::Path::new("sh"), &[]);
    assert!(without_path.starts_with("/bin") || without_path.starts_with("/usr/bin"));
    let given = std::path::Path::new("/opt/bash-5/bin/bash");
    assert_eq!(super::resolve_shell(given, &everything), given);
    let missing = std::path::Path::new("no-such-shell-anywhere");
    assert_eq!(super::resolve_shell(missing, &everything), missing);
}
