//! A pipeline's sources, code-event triggers and schedules when it is created or updated, and
//! how its detail shows them (spec §4.1–§4.3, §12.4, §13 `CodeSource`, `PipelineTrigger`,
//! `PipelineSchedule`).
//!
//! * [`check`] runs before anything is written: source URLs must pass the server's network
//!   policy (S5), branch names and options must be valid, endpoints must exist in the project,
//!   trigger events and filters must be known, schedules must parse. Bad input is a 400 and
//!   changes nothing.
//! * What passed is written with the pipeline, in its transaction: the triggers (webhook
//!   secrets encrypted, hook ids kept across updates) and the schedules (each with its next
//!   firing).
//! * Each trigger gets a `hook_id`, its `callback_url` (`<public_url>/webhooks/<hook_id>`) and a
//!   `security_token`: the caller's, or a generated one (244 random bits). The pipeline detail
//!   shows a generated token to members who may edit the pipeline (they must configure the
//!   repository's webhook with it, and have no other way to learn it) and `******` to everyone
//!   else; a token the caller gave is always `******` (S2: they know it). A `******` sent back
//!   keeps the stored token. The stored pipeline settings never hold the token.

use crate::AppState;
use crate::authz::{Action, Member, allows};
use crate::dto::pipeline::{MASK, PipelineBody};
use crate::error::{ApiError, Missing};
use crate::webhooks::filter::{ACTION_KEYS, EVENT_TYPES, PATTERN_KEYS};
use runnel_domain::Timestamp;
use runnel_engine::check_ref_name;
use runnel_engine::schedule::Schedule;
use runnel_store::{
    EndpointStore, NewSchedule, NewTrigger, PipelineEvents, PipelineRecord, TriggerRecord,
    TriggerStore, TriggerUpsert,
};
use serde_json::{Map, Value, json};

/// Forges a trigger or source may name (`git_type`).
const GIT_TYPES: &[&str] = &["codehub", "gitee", "github", "gitcode", "gitlab", "gitea"];

/// The most triggers and schedules of one pipeline.
const MAX_TRIGGERS: usize = 20;
const MAX_SCHEDULES: usize = 20;

/// Checks the sources, triggers and schedules of a create (`existing` = `None`) or update body.
/// The result is written in the pipeline's own transaction
/// (`TriggerStore::create_pipeline_with_events`, `update_pipeline_with_events`).
pub(crate) async fn check(
    state: &AppState,
    member: &Member,
    body: &PipelineBody,
    existing: Option<&PipelineRecord>,
) -> Result<PipelineEvents, ApiError> {
    check_sources(state, member, body).await?;
    let stored = match existing {
        Some(pipeline) => state
            .api
            .store
            .triggers(&pipeline.id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?,
        None => Vec::new(),
    };
    let triggers = check_triggers(state, member, body, &stored).await?;
    let schedules = check_schedules(body, state.api.engine.now())?;
    Ok(PipelineEvents {
        triggers,
        schedules,
    })
}

/// A trigger as the stored pipeline settings keep it: without its secret.
pub(crate) fn stored_trigger(trigger: &mut Map<String, Value>) {
    trigger.remove("security_token");
}

/// The pipeline's triggers for its detail: `hook_id`, `callback_url`, and the secret for
/// members who may edit the pipeline.
pub(crate) async fn detail_triggers(
    state: &AppState,
    member: &Member,
    pipeline: &PipelineRecord,
) -> Result<Value, ApiError> {
    let records = state
        .api
        .store
        .triggers(&pipeline.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    let may_edit = allows(member.role, Action::Edit);
    Ok(Value::Array(
        records
            .iter()
            .map(|record| trigger_json(state, record, may_edit && record.is_secret_generated))
            .collect(),
    ))
}

/// The pipeline's schedules for its detail: as given, with `uuid` and `enable`.
pub(crate) async fn detail_schedules(
    state: &AppState,
    pipeline: &PipelineRecord,
) -> Result<Value, ApiError> {
    let records = state
        .api
        .store
        .schedules(&pipeline.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    Ok(Value::Array(
        records
            .iter()
            .map(|record| {
                let mut item = match &record.spec {
                    Value::Object(map) => map.clone(),
                    _ => Map::new(),
                };
                item.insert("uuid".to_owned(), json!(record.id));
                item.insert("name".to_owned(), json!(record.name));
                item.insert("enable".to_owned(), json!(record.is_enabled));
                item.insert(
                    "next_fire_time".to_owned(),
                    json!(record.next_fire_at.map(Timestamp::as_millis)),
                );
                Value::Object(item)
            })
            .collect(),
    ))
}

/// The webhook URL of a trigger.
pub(crate) fn callback_url(state: &AppState, hook_id: i64) -> String {
    format!(
        "{}/webhooks/{hook_id}",
        state.api.config.public_url.trim_end_matches('/')
    )
}

fn trigger_json(state: &AppState, record: &TriggerRecord, reveal: bool) -> Value {
    json!({
        "pipeline_id": record.pipeline_id,
        "git_type": record.git_type,
        "git_url": record.git_url,
        "repo_id": record.repo_id,
        "endpoint_id": record.endpoint_id,
        "is_auto_commit": record.is_auto_commit,
        "events": record.events,
        "hook_id": record.hook_id.to_string(),
        "callback_url": callback_url(state, record.hook_id),
        "security_token": if reveal { record.secret.clone() } else { MASK.to_owned() },
    })
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

async fn check_sources(
    state: &AppState,
    member: &Member,
    body: &PipelineBody,
) -> Result<(), ApiError> {
    for (index, source) in body.sources.iter().flatten().enumerate() {
        let field = |key: &str| format!("sources[{index}].params.{key}");
        let Some(params) = source.get("params").and_then(Value::as_object) else {
            continue;
        };
        if source.get("type").and_then(Value::as_str).unwrap_or("code") != "code" {
            continue;
        }
        if let Some(alias) = text(params, "alias")
            && (alias.len() > 128 || !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ApiError::invalid(
                field("alias"),
                "must be 1 to 128 letters, digits and _",
            ));
        }
        if let Some(git_type) = text(params, "git_type")
            && !GIT_TYPES.contains(&git_type)
        {
            return Err(ApiError::invalid(
                field("git_type"),
                format!("must be one of {}", GIT_TYPES.join(", ")),
            ));
        }
        if let Some(branch) = text(params, "default_branch") {
            let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
            check_ref_name(branch)
                .map_err(|why| ApiError::invalid(field("default_branch"), why))?;
        }
        if let Some(depth) = params.get("clone_depth").filter(|value| !value.is_null()) {
            let valid = depth.as_u64().is_some_and(|depth| depth <= 1_000_000)
                || depth
                    .as_str()
                    .is_some_and(|text| text.trim().parse::<u32>().is_ok());
            if !valid {
                return Err(ApiError::invalid(
                    field("clone_depth"),
                    "must be a whole number from 0 (0 = the whole history)",
                ));
            }
        }
        if let Some(submodules) = params.get("submodules").filter(|value| !value.is_null()) {
            let valid = submodules.is_boolean()
                || submodules
                    .as_str()
                    .is_some_and(|text| ["true", "false", "recursive"].contains(&text));
            if !valid {
                return Err(ApiError::invalid(
                    field("submodules"),
                    "must be false, true or recursive",
                ));
            }
        }
        if params
            .get("checkout")
            .is_some_and(|value| !value.is_boolean() && !value.is_null())
        {
            return Err(ApiError::invalid(
                field("checkout"),
                "must be true or false",
            ));
        }
        if let Some(endpoint_id) = text(params, "endpoint_id") {
            check_endpoint(state, member, endpoint_id, &field("endpoint_id")).await?;
        }
        if let Some(url) = text(params, "git_url") {
            state
                .api
                .engine
                .check_repository_url(url)
                .await
                .map_err(|why| ApiError::invalid(field("git_url"), why))?;
        }
    }
    Ok(())
}

async fn check_endpoint(
    state: &AppState,
    member: &Member,
    endpoint_id: &str,
    field: &str,
) -> Result<(), ApiError> {
    let found = if crate::authz::is_valid_id(endpoint_id) {
        state
            .api
            .store
            .endpoint_credential(&member.project.id, endpoint_id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?
            .is_some()
    } else {
        false
    };
    if found {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "no such service endpoint in this project",
        ))
    }
}

async fn check_triggers(
    state: &AppState,
    member: &Member,
    body: &PipelineBody,
    stored: &[TriggerRecord],
) -> Result<Vec<TriggerUpsert>, ApiError> {
    let triggers = body.triggers.as_deref().unwrap_or_default();
    if triggers.len() > MAX_TRIGGERS {
        return Err(ApiError::invalid(
            "triggers",
            format!("at most {MAX_TRIGGERS} triggers"),
        ));
    }
    let mut upserts: Vec<TriggerUpsert> = Vec::with_capacity(triggers.len());
    let mut used: Vec<i64> = Vec::new();
    for (index, trigger) in triggers.iter().enumerate() {
        let field = |key: &str| format!("triggers[{index}].{key}");
        let git_type = text(trigger, "git_type").unwrap_or("").to_owned();
        if !git_type.is_empty() && !GIT_TYPES.contains(&git_type.as_str()) {
            return Err(ApiError::invalid(
                field("git_type"),
                format!("must be one of {}", GIT_TYPES.join(", ")),
            ));
        }
        let git_url = text(trigger, "git_url").unwrap_or("").to_owned();
        if git_url.len() > 2048 {
            return Err(ApiError::invalid(field("git_url"), "is too long"));
        }
        let events = trigger.get("events").cloned().unwrap_or_else(|| json!([]));
        check_events(&events, index)?;
        let endpoint_id = text(trigger, "endpoint_id").map(str::to_owned);
        if let Some(endpoint_id) = &endpoint_id {
            check_endpoint(state, member, endpoint_id, &field("endpoint_id")).await?;
        }
        // The trigger this one updates: by hook id, else the first unused one with its URL.
        let hook_id = match trigger.get("hook_id") {
            Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
            Some(Value::Number(number)) => number.as_i64(),
            _ => None,
        };
        let previous = hook_id
            .and_then(|id| {
                stored
                    .iter()
                    .find(|record| record.hook_id == id && !used.contains(&id))
            })
            .or_else(|| {
                stored
                    .iter()
                    .find(|record| record.git_url == git_url && !used.contains(&record.hook_id))
            });
        if let Some(previous) = previous {
            used.push(previous.hook_id);
        }
        let mut is_secret_generated = false;
        let secret = match trigger.get("security_token") {
            Some(Value::String(token)) if token != MASK && !token.is_empty() => {
                if token.len() > 256 || token.chars().any(char::is_control) {
                    return Err(ApiError::invalid(
                        field("security_token"),
                        "must be 1 to 256 characters without control characters",
                    ));
                }
                token.clone()
            }
            None | Some(Value::Null | Value::String(_)) => match previous {
                Some(record) => {
                    is_secret_generated = record.is_secret_generated;
                    record.secret.clone()
                }
                None => {
                    is_secret_generated = true;
                    generate_secret()
                }
            },
            Some(_) => {
                return Err(ApiError::invalid(
                    field("security_token"),
                    "must be a string",
                ));
            }
        };
        upserts.push(TriggerUpsert {
            hook_id: previous.map(|record| record.hook_id),
            is_secret_generated,
            trigger: NewTrigger {
                git_type,
                git_url,
                repo_id: text(trigger, "repo_id").unwrap_or("").to_owned(),
                endpoint_id,
                events,
                is_auto_commit: trigger
                    .get("is_auto_commit")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                secret,
            },
        });
    }
    Ok(upserts)
}

fn check_events(events: &Value, trigger: usize) -> Result<(), ApiError> {
    let Some(items) = events.as_array() else {
        return Err(ApiError::invalid(
            format!("triggers[{trigger}].events"),
            "must be a list",
        ));
    };
    for (index, event) in items.iter().enumerate() {
        let field = |key: &str| format!("triggers[{trigger}].events[{index}].{key}");
        let Some(event) = event.as_object() else {
            return Err(ApiError::invalid(
                format!("triggers[{trigger}].events[{index}]"),
                "must be an object",
            ));
        };
        match event.get("type").and_then(Value::as_str) {
            Some(kind) if EVENT_TYPES.contains(&kind) => {}
            _ => {
                return Err(ApiError::invalid(
                    field("type"),
                    format!("must be one of {}", EVENT_TYPES.join(", ")),
                ));
            }
        }
        if event.get("enable").is_some_and(|value| !value.is_boolean()) {
            return Err(ApiError::invalid(field("enable"), "must be true or false"));
        }
        for key in PATTERN_KEYS {
            let Some(value) = event.get(*key).filter(|value| !value.is_null()) else {
                continue;
            };
            let valid = value.as_array().is_some_and(|patterns| {
                patterns.len() <= 100
                    && patterns.iter().all(|pattern| {
                        pattern
                            .as_str()
                            .is_some_and(|text| !text.is_empty() && text.len() <= 256)
                    })
            });
            if !valid {
                return Err(ApiError::invalid(
                    field(key),
                    "must be a list of at most 100 patterns of 1 to 256 characters",
                ));
            }
        }
        for key in ACTION_KEYS {
            if event
                .get(*key)
                .is_some_and(|value| !value.is_boolean() && !value.is_null())
            {
                return Err(ApiError::invalid(field(key), "must be true or false"));
            }
        }
    }
    Ok(())
}

fn check_schedules(body: &PipelineBody, now: Timestamp) -> Result<Vec<NewSchedule>, ApiError> {
    let schedules = body.schedules.as_deref().unwrap_or_default();
    if schedules.len() > MAX_SCHEDULES {
        return Err(ApiError::invalid(
            "schedules",
            format!("at most {MAX_SCHEDULES} schedules"),
        ));
    }
    let mut checked = Vec::with_capacity(schedules.len());
    for (index, schedule) in schedules.iter().enumerate() {
        let mut spec = schedule.clone();
        let id = spec
            .remove("uuid")
            .and_then(|uuid| uuid.as_str().map(str::to_owned))
            .filter(|uuid| crate::authz::is_valid_id(uuid));
        spec.remove("next_fire_time");
        let value = Value::Object(spec);
        let parsed = Schedule::parse(&value).map_err(|why| match why.split_once(": ") {
            Some((key, reason)) => ApiError::invalid(format!("schedules[{index}].{key}"), reason),
            None => ApiError::invalid(format!("schedules[{index}]"), why),
        })?;
        let is_enabled = schedule
            .get("enable")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let name = text(schedule, "name")
            .unwrap_or("")
            .chars()
            .take(128)
            .collect();
        checked.push(NewSchedule {
            id,
            name,
            schedule_type: if text(schedule, "type") == Some("periodic") {
                "periodic"
            } else {
                "fixed"
            }
            .to_owned(),
            is_enabled,
            next_fire_at: if is_enabled {
                parsed.next_after(now)
            } else {
                None
            },
            spec: value,
        });
    }
    Ok(checked)
}

/// Two random UUIDs (244 random bits from the OS generator), hexadecimal.
fn generate_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
