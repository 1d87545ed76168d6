//! Tests of the system predefined parameters and the `pipeline`/`sources` contexts.

use serde_json::json;

use crate::params::{
    PREDEFINED_NAMES, RunContextInfo, SourceInfo, check_variable_name, format_timestamp,
    is_predefined_name, pipeline_context, predefined_parameters, sources_context,
};
use crate::time::Timestamp;

/// 2021-12-22T04:43:01Z: the spec's example, 12:43:01 in UTC+8.
const EXAMPLE_MILLIS: i64 = 1_640_148_181_000;

fn app_source() -> SourceInfo {
    SourceInfo {
        alias: "app".to_owned(),
        repo_name: "demo-app".to_owned(),
        repo_url: "https://git.example.com/team/demo-app.git".to_owned(),
        commit_id: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        commit_message: "fix: login".to_owned(),
        source_branch: "feature/login".to_owned(),
        target_branch: "main".to_owned(),
        tag: String::new(),
        merge_id: "42".to_owned(),
        repo_type: "codehub".to_owned(),
    }
}

fn run_info() -> RunContextInfo {
    RunContextInfo {
        project_id: "proj".to_owned(),
        pipeline_id: "pipe".to_owned(),
        pipeline_name: "demo-ci".to_owned(),
        run_number: 17,
        run_id: "run".to_owned(),
        trigger_type: "MR".to_owned(),
        started_at: Timestamp::from_millis(EXAMPLE_MILLIS),
        utc_offset_minutes: 480,
        execute_user: "alice".to_owned(),
        sources: vec![app_source()],
        merge_id: "42".to_owned(),
        webhook_payload: None,
        run_link: "https://runnel.example.com/runs/run".to_owned(),
    }
}

fn names_of(parameters: &[(String, String)]) -> Vec<&str> {
    parameters.iter().map(|(name, _)| name.as_str()).collect()
}

fn value_of<'a>(parameters: &'a [(String, String)], name: &str) -> Option<&'a str> {
    parameters
        .iter()
        .find(|(candidate, _)| candidate == name)
        .map(|(_, value)| value.as_str())
}

#[test]
fn a_run_has_every_predefined_parameter_in_order() {
    let parameters = predefined_parameters(&run_info());
    let expected = [
        ("PROJECT_ID", "proj"),
        ("PIPELINE_ID", "pipe"),
        ("PIPELINE_NAME", "demo-ci"),
        ("PIPELINE_NUMBER", "17"),
        ("PIPELINE_RUN_ID", "run"),
        ("PIPELINE_TRIGGER_TYPE", "MR"),
        ("TIMESTAMP", "20211222124301"),
        ("EXECUTE_USER", "alice"),
        ("COMMIT_ID", "0123456789abcdef0123456789abcdef01234567"),
        ("COMMIT_ID_SHORT", "01234567"),
        ("REPO_URL", "https://git.example.com/team/demo-app.git"),
        ("MERGE_ID", "42"),
        (
            "PASS_CONDITIONS_LINK",
            "https://runnel.example.com/runs/run",
        ),
        ("app_REPOSITORY_NAME", "demo-app"),
        ("app_SOURCE_BRANCH", "feature/login"),
        ("app_TARGET_BRANCH", "main"),
        ("app_TAG", ""),
        ("app_COMMIT_ID", "0123456789abcdef0123456789abcdef01234567"),
        ("app_COMMIT_ID_SHORT", "01234567"),
        ("app_REPO_URL", "https://git.example.com/team/demo-app.git"),
    ];
    let found: Vec<(&str, &str)> = parameters
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn the_webhook_payload_is_present_only_for_webhook_runs() {
    let info = RunContextInfo {
        webhook_payload: Some(r#"{"ref":"main"}"#.to_owned()),
        ..run_info()
    };
    let parameters = predefined_parameters(&info);
    assert_eq!(
        value_of(&parameters, "WEBHOOK_PAYLOAD"),
        Some(r#"{"ref":"main"}"#)
    );
    assert_eq!(
        value_of(&predefined_parameters(&run_info()), "WEBHOOK_PAYLOAD"),
        None
    );
}

#[test]
fn without_sources_the_source_parameters_are_empty() {
    let info = RunContextInfo {
        sources: Vec::new(),
        ..run_info()
    };
    let parameters = predefined_parameters(&info);
    for name in ["COMMIT_ID", "COMMIT_ID_SHORT", "REPO_URL"] {
        assert_eq!(value_of(&parameters, name), Some(""), "{name}");
    }
    assert_eq!(
        parameters.len(),
        PREDEFINED_NAMES.len() - 1,
        "all fixed names but WEBHOOK_PAYLOAD"
    );
}

#[test]
fn sources_are_named_by_alias_or_sanitized_repository_name() {
    let source = |alias: &str, repo_name: &str| SourceInfo {
        alias: alias.to_owned(),
        repo_name: repo_name.to_owned(),
        commit_id: "abc".to_owned(),
        ..SourceInfo::default()
    };
    let info = RunContextInfo {
        sources: vec![
            source("", "demo-app"),
            source("", "1st.repo"),
            source("Repo01", "ignored"),
            source("", ""),
            source("", "demo.app"),
            source("LD", "loader"),
            source("runnel", "runnel"),
        ],
        ..run_info()
    };
    let parameters = predefined_parameters(&info);
    let repository_names: Vec<&str> = names_of(&parameters)
        .into_iter()
        .filter(|name| name.ends_with("_REPOSITORY_NAME"))
        .collect();
    assert_eq!(
        repository_names,
        [
            "demo_app_REPOSITORY_NAME",
            "_1st_repo_REPOSITORY_NAME",
            "Repo01_REPOSITORY_NAME"
        ]
    );
    assert_eq!(
        value_of(&parameters, "COMMIT_ID_SHORT"),
        Some("abc"),
        "short ids of short commits stay whole"
    );
    for (name, _) in &parameters {
        assert_eq!(
            check_variable_name(name).is_ok(),
            !PREDEFINED_NAMES.contains(&name.as_str()),
            "{name}"
        );
    }

    let context = sources_context(&info);
    let keys: Vec<&String> = context.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["demo_app", "_1st_repo", "Repo01", "LD", "runnel"]);
}

#[test]
fn timestamp_is_formatted_in_the_run_offset() {
    let cases = [
        ("epoch", 0, 0, "19700101000000"),
        (
            "spec example in UTC+8",
            EXAMPLE_MILLIS,
            480,
            "20211222124301",
        ),
        ("spec example in UTC", EXAMPLE_MILLIS, 0, "20211222044301"),
        (
            "milliseconds are dropped",
            EXAMPLE_MILLIS + 999,
            0,
            "20211222044301",
        ),
        (
            "into the next year east of UTC",
            1_640_980_800_000,
            480,
            "20220101040000",
        ),
        (
            "into the previous year west of UTC",
            1_641_002_400_000,
            -300,
            "20211231210000",
        ),
        ("onto a leap day", 1_709_163_000_000, 60, "20240229003000"),
        ("half-hour offset", 1_709_163_000_000, 330, "20240229050000"),
        ("before the epoch", -1000, 0, "19691231235959"),
        (
            "an offset of a day or more counts as UTC",
            0,
            24 * 60,
            "19700101000000",
        ),
        (
            "an absurd offset counts as UTC",
            0,
            i32::MIN,
            "19700101000000",
        ),
        ("an instant out of range is empty", i64::MAX, 0, ""),
    ];
    for (situation, millis, offset, expected) in cases {
        assert_eq!(
            format_timestamp(Timestamp::from_millis(millis), offset),
            expected,
            "{situation}"
        );
    }
}

#[test]
fn predefined_names_include_the_per_source_forms() {
    let cases = [
        ("PIPELINE_ID", true),
        ("pipeline_number", true),
        ("PASS_CONDITIONS_LINK", true),
        ("app_REPO_URL", true),
        ("Repo01_COMMIT_ID_SHORT", true),
        ("x_tag", true),
        ("_TAG", false),
        ("REPO_URL_X", false),
        ("VERSION", false),
        ("", false),
    ];
    for (name, expected) in cases {
        assert_eq!(is_predefined_name(name), expected, "{name}");
    }
    assert!(PREDEFINED_NAMES.iter().all(|name| is_predefined_name(name)));
}

#[test]
fn the_pipeline_context_mirrors_the_predefined_parameters() {
    assert_eq!(
        pipeline_context(&run_info()),
        json!({
            "project_id": "proj", "pipeline_id": "pipe", "run_number": "17",
            "timestamp": "20211222124301", "trigger_type": "MR", "run_id": "run"
        })
    );
}

#[test]
fn the_sources_context_has_every_attribute() {
    assert_eq!(
        sources_context(&run_info()),
        json!({"app": {
            "repo_name": "demo-app",
            "commit_id": "0123456789abcdef0123456789abcdef01234567",
            "commit_id_short": "01234567",
            "commit_message": "fix: login",
            "repo_url": "https://git.example.com/team/demo-app.git",
            "repo_type": "codehub",
            "source_branch": "feature/login",
            "target_branch": "main",
            "tag": "",
            "merge_id": "42"
        }})
    );
}
