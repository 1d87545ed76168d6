//! Git webhooks: one endpoint per pipeline trigger (§12.4), `POST /webhooks/{hook_id}`,
//! authenticated by the trigger's secret, not a token; the delivery log of a pipeline; and
//! the service endpoints (git credentials) of a project.
//!
//! A delivery goes through, in order (each step records the delivery with its outcome):
//! 1. the trigger exists (else 404, nothing recorded);
//! 2. the forge is recognised and the secret or signature checks out, compared in constant
//!    time (S3) — else 401, recorded as rejected;
//! 3. the delivery id (the forge's, else the body's SHA-256) was not seen before — else 200
//!    `duplicate`, nothing started (G6);
//! 4. the payload is a push, tag or merge-request event — other events (ping, issues) are
//!    recorded as ignored;
//! 5. the trigger's event types and filters accept it — else 200 `filtered`, with the reason;
//! 6. the run is created with the idempotency key `webhook:<hook_id>` / `<delivery id>`, so two
//!    copies of one delivery arriving at once still start one run.
//!
//! The run's `trigger_type` is `Push`, `CreateTag` or `MR`; the source the event is about (by
//! URL, else the first code source) runs the event's commit with `build_params` from the
//! payload; other sources run their default branches.

pub(crate) mod filter;
pub(crate) mod forge;

use crate::AppState;
use crate::authz::{Action, Member};
use crate::dto::{PipelinePath, SUCCESS, Success};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::openapi::ErrorBody;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use forge::{CodeEvent, EventKind, Forge, NotAnEvent};
use runnel_engine::{EngineError, TriggerRequest};
use runnel_store::{
    EndpointKind, EndpointRecord, EndpointStore, IdempotencyKey, NewEndpoint, PipelineRecord,
    PipelineStore, StoreError, TriggerRecord, TriggerStore, WebhookDelivery, WebhookOutcome,
    new_id,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The routes of this module that authenticate with a trigger's secret.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/webhooks/{hook_id}", post(receive))
}

/// The routes of this module behind the API's authentication.
pub(crate) fn authenticated_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/v5/{project_id}/api/pipelines/{pipeline_id}/webhook-deliveries",
            get(deliveries),
        )
        .route(
            "/v5/{project_id}/api/endpoints",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/v5/{project_id}/api/endpoints/{endpoint_id}",
            delete(delete_endpoint),
        )
}

/// An answer to a forge: a status and a small JSON body.
fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, json!({"error_code": code, "error_msg": message}))
}

/// `POST /webhooks/{hook_id}`.
#[utoipa::path(post, path = "/webhooks/{hook_id}", tag = "Webhooks", security(()),
    params(
        ("hook_id" = String, Path, description = "The trigger's `hook_id` (from its `callback_url`)"),
        ("X-GitHub-Event" = Option<String>, Header, description = "Or `X-Gitlab-Event`, `X-Gitea-Event`, `X-Gitee-Event`, the CodeArts Repo header: the forge's event name"),
    ),
    request_body(content = serde_json::Value, description = "The forge's event payload, signed or carrying the trigger's secret as the forge does"),
    responses(
        (status = 200, description = "`{status, run_id | reason, delivery_id}`: `accepted`, `filtered`, `ignored` or `duplicate`", body = serde_json::Value),
        (status = 401, description = "The secret or signature does not check out (recorded as rejected)", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(hook_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let not_found = || refusal(StatusCode::NOT_FOUND, "APIGW.0101", "No such webhook.");
    let Some(hook_id) = hook_id.parse::<i64>().ok().filter(|id| *id > 0) else {
        return not_found();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "DEVPIPE.00010001",
                "The webhook payload is larger than the server accepts.",
            );
        }
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00010002",
                "The body could not be read.",
            );
        }
    };
    let store = &state.api.store;
    let trigger = match store.trigger(hook_id).await {
        Ok(Some(trigger)) => trigger,
        Ok(None) => return not_found(),
        Err(err) => return ApiError::from_store(err, Missing::Pipeline).into_response(),
    };
    let delivery = Delivery {
        state: &state,
        hook_id,
        received_at: state.api.engine.now(),
    };
    let Some(forge) = Forge::detect(&headers) else {
        delivery
            .record_new(
                "",
                WebhookOutcome::Rejected,
                "rejected: no GitHub, GitLab, Gitea, Gitee or CodeArts Repo event header",
                None,
            )
            .await;
        return refusal(
            StatusCode::BAD_REQUEST,
            "DEVPIPE.00010001",
            "The request is not a webhook delivery of a known forge.",
        );
    };
    let event_name = forge.event_name(&headers);
    if let Err(why) = forge.verify(&headers, &body, &trigger.secret) {
        tracing::warn!(hook_id, forge = forge.as_str(), reason = %why, "webhook refused");
        delivery
            .record_new(
                &event_name,
                WebhookOutcome::Rejected,
                &format!("rejected: {why}"),
                None,
            )
            .await;
        return refusal(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            "The webhook signature or token is not valid for this trigger.",
        );
    }
    let delivery_id = forge::dedup_id(forge, &headers, &body);
    match store.delivery_seen(hook_id, &delivery_id).await {
        Ok(false) => {}
        Ok(true) => {
            delivery
                .record_new(
                    &event_name,
                    WebhookOutcome::Ignored,
                    &format!("duplicate: delivery {delivery_id} was received before"),
                    None,
                )
                .await;
            return answer(
                StatusCode::OK,
                json!({"status": "duplicate", "delivery_id": delivery_id}),
            );
        }
        Err(err) => return ApiError::from_store(err, Missing::Pipeline).into_response(),
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(_) => {
            delivery
                .record(
                    &delivery_id,
                    &event_name,
                    WebhookOutcome::Rejected,
                    "rejected: the payload is not JSON",
                    None,
                )
                .await;
            return refusal(
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00010002",
                "The webhook payload is not JSON.",
            );
        }
    };
    let event = match forge::parse_event(forge, &event_name, &payload) {
        Ok(event) => event,
        Err(NotAnEvent::Ignored(what)) => {
            delivery
                .record(
                    &delivery_id,
                    &event_name,
                    WebhookOutcome::Ignored,
                    &format!("ignored: {what}"),
                    None,
                )
                .await;
            return answer(
                StatusCode::OK,
                json!({"status": "ignored", "reason": what, "delivery_id": delivery_id}),
            );
        }
        Err(NotAnEvent::Malformed(why)) => {
            delivery
                .record(
                    &delivery_id,
                    &event_name,
                    WebhookOutcome::Rejected,
                    &format!("rejected: {why}"),
                    None,
                )
                .await;
            return refusal(
                StatusCode::BAD_REQUEST,
                "DEVPIPE.00010001",
                &format!("The webhook payload cannot be read: {why}"),
            );
        }
    };
    if let Err(why) = filter::accepts(&trigger.events, &event) {
        delivery
            .record(
                &delivery_id,
                &event_name,
                WebhookOutcome::Ignored,
                &format!("filtered out: {why}"),
                None,
            )
            .await;
        return answer(
            StatusCode::OK,
            json!({"status": "filtered", "reason": why, "delivery_id": delivery_id}),
        );
    }
    let pipeline = match store.pipeline_by_id(&trigger.pipeline_id).await {
        Ok(Some(pipeline)) => pipeline,
        Ok(None) => return not_found(),
        Err(err) => return ApiError::from_store(err, Missing::Pipeline).into_response(),
    };
    let (sources, build_params) = run_sources(&pipeline, &trigger, forge, &event);
    let request = TriggerRequest {
        pipeline_id: pipeline.id.clone(),
        user_id: String::new(),
        user_name: if event.user.is_empty() {
            "webhook".to_owned()
        } else {
            event.user.chars().take(128).collect()
        },
        trigger_type: event.kind.trigger_type().to_owned(),
        build_params,
        sources,
        idempotency: Some(IdempotencyKey {
            scope: format!("webhook:{hook_id}"),
            key: delivery_id.clone(),
        }),
        webhook_payload: Some(String::from_utf8_lossy(&body).into_owned()),
        ..TriggerRequest::default()
    };
    match state.api.engine.trigger(request).await {
        Ok(triggered) if triggered.is_replay => {
            delivery
                .record_new(
                    &event_name,
                    WebhookOutcome::Ignored,
                    &format!(
                        "duplicate: delivery {delivery_id} started run {} before",
                        triggered.run_id
                    ),
                    None,
                )
                .await;
            answer(
                StatusCode::OK,
                json!({"status": "duplicate", "delivery_id": delivery_id, "pipeline_run_id": triggered.run_id}),
            )
        }
        Ok(triggered) => {
            tracing::info!(hook_id, forge = forge.as_str(), run_id = %triggered.run_id, "webhook started a run");
            delivery
                .record(
                    &delivery_id,
                    &event_name,
                    WebhookOutcome::Accepted,
                    "accepted",
                    Some(triggered.run_id.clone()),
                )
                .await;
            answer(
                StatusCode::OK,
                json!({"status": "accepted", "delivery_id": delivery_id, "pipeline_run_id": triggered.run_id}),
            )
        }
        Err(EngineError::Store(err @ StoreError::Unavailable(_))) => {
            // Not recorded: the forge's retry of this delivery must still be able to run.
            ApiError::from_store(err, Missing::Pipeline).into_response()
        }
        Err(err) => {
            let reason = err.to_string();
            delivery
                .record(
                    &delivery_id,
                    &event_name,
                    WebhookOutcome::Rejected,
                    &format!("rejected: {reason}"),
                    None,
                )
                .await;
            ApiError::from_engine(err, Missing::Pipeline).into_response()
        }
    }
}

/// Records deliveries of one hook.
struct Delivery<'a> {
    state: &'a AppState,
    hook_id: i64,
    received_at: runnel_domain::Timestamp,
}

impl Delivery<'_> {
    /// Records the delivery under its id (a later delivery with this id is a duplicate).
    async fn record(
        &self,
        delivery_id: &str,
        event: &str,
        outcome: WebhookOutcome,
        message: &str,
        run_id: Option<String>,
    ) {
        let delivery = WebhookDelivery {
            hook_id: self.hook_id,
            delivery_id: delivery_id.to_owned(),
            event: event.to_owned(),
            outcome,
            message: message.chars().take(1000).collect(),
            run_id,
            received_at: self.received_at,
        };
        match self.state.api.store.record_delivery(delivery).await {
            Ok(true) => {}
            // Recorded meanwhile by a concurrent copy: that one is in the log.
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(hook_id = self.hook_id, error = %err, "cannot record a webhook delivery")
            }
        }
    }

    /// Records a delivery that must not take its id (refused or duplicate): under a fresh one.
    async fn record_new(
        &self,
        event: &str,
        outcome: WebhookOutcome,
        message: &str,
        run_id: Option<String>,
    ) {
        let kind = if outcome == WebhookOutcome::Rejected {
            "rejected"
        } else {
            "duplicate"
        };
        self.record(
            &format!("{kind}:{}", new_id()),
            event,
            outcome,
            message,
            run_id,
        )
        .await;
    }
}

/// The run's sources and `build_params` for `event`.
fn run_sources(
    pipeline: &PipelineRecord,
    trigger: &TriggerRecord,
    forge: Forge,
    event: &CodeEvent,
) -> (Value, Value) {
    let event_type = event.kind.trigger_type();
    let event_build = {
        let mut build = json!({
            "build_type": if event.kind == EventKind::Tag { "tag" } else { "branch" },
            "event_type": event_type,
            "commit_id": event.commit,
            "message": event.message,
        });
        match event.kind {
            EventKind::Push => build["target_branch"] = json!(event.branch),
            EventKind::Tag => build["tag"] = json!(event.tag),
            EventKind::MergeRequest => {
                build["target_branch"] = json!(event.branch);
                build["source_branch"] = json!(event.source_branch);
                build["merge_id"] = json!(event.merge_id);
                build["action"] = json!(event.action);
                if !event.source_repo_url.is_empty() {
                    build["source_codehub_http_url"] = json!(event.source_repo_url);
                }
            }
        }
        build
    };
    let mut wanted: Vec<String> = event
        .repo_urls
        .iter()
        .map(|url| normalize_url(url))
        .collect();
    if !trigger.git_url.is_empty() {
        wanted.push(normalize_url(&trigger.git_url));
    }
    let items: Vec<Value> = pipeline.sources.as_array().cloned().unwrap_or_default();
    let is_code = |item: &Value| {
        item.get("type").and_then(Value::as_str).unwrap_or("code") == "code"
            && item
                .pointer("/params/git_url")
                .and_then(Value::as_str)
                .is_some_and(|url| !url.is_empty())
    };
    let matched = items
        .iter()
        .position(|item| {
            is_code(item)
                && item
                    .pointer("/params/git_url")
                    .and_then(Value::as_str)
                    .is_some_and(|url| wanted.contains(&normalize_url(url)))
        })
        .or_else(|| items.iter().position(is_code));
    let mut sources: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut item = item.clone();
            if let Some(params) = item.get_mut("params").and_then(Value::as_object_mut) {
                let build = if Some(index) == matched {
                    event_build.clone()
                } else {
                    json!({"build_type": "branch", "event_type": event_type,
                        "target_branch": params.get("default_branch").cloned().unwrap_or(Value::Null)})
                };
                params.insert("build_params".to_owned(), build);
            }
            item
        })
        .collect();
    if matched.is_none() {
        // A pipeline without code sources runs the repository the trigger names.
        let url = if trigger.git_url.is_empty() {
            event.repo_urls.first().cloned().unwrap_or_default()
        } else {
            trigger.git_url.clone()
        };
        if !url.is_empty() {
            let mut params = Map::new();
            params.insert(
                "git_type".to_owned(),
                json!(if trigger.git_type.is_empty() {
                    forge.as_str()
                } else {
                    trigger.git_type.as_str()
                }),
            );
            params.insert("git_url".to_owned(), json!(url));
            params.insert("build_params".to_owned(), event_build.clone());
            if let Some(endpoint_id) = &trigger.endpoint_id {
                params.insert("endpoint_id".to_owned(), json!(endpoint_id));
            }
            sources.insert(0, json!({"type": "code", "params": params}));
        }
    }
    let first = matched.or(if sources.is_empty() { None } else { Some(0) });
    let mut build_params = event_build;
    if let Some(params) = first
        .and_then(|index| sources.get(index))
        .and_then(|item| item.get("params"))
    {
        build_params["git_url"] = params.get("git_url").cloned().unwrap_or(Value::Null);
        build_params["codehub_id"] = params.get("codehub_id").cloned().unwrap_or(Value::Null);
    }
    (Value::Array(sources), build_params)
}

/// `host/owner/repo` of a clone URL, for matching the same repository in its HTTPS and SSH forms.
fn normalize_url(url: &str) -> String {
    let url = url.trim().to_ascii_lowercase();
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_owned(),
        // scp-like: user@host:path
        None => url.replacen(':', "/", 1),
    };
    let rest = rest
        .rsplit_once('@')
        .map_or(rest.as_str(), |(_, host_path)| host_path);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host);
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /v5/{project_id}/api/pipelines/{pipeline_id}/webhook-deliveries`: the pipeline's
/// deliveries, newest first, with their outcome (`accepted`, `filtered`, `ignored`,
/// `duplicate`, `rejected`) and the reason.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/webhook-deliveries", tag = "Webhooks", params(PageQuery),
    responses((status = 200, description = "`{offset, limit, total, deliveries: [{hook_id, delivery_id, event, outcome, reason, pipeline_run_id, received_time}]}`", body = serde_json::Value)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<PipelinePath>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    member.require(Action::View)?;
    let pipeline = member.pipeline(&state, &path.pipeline_id).await?;
    let (offset, limit) = crate::dto::page(query.offset, query.limit)?;
    let page = state
        .api
        .store
        .deliveries(&pipeline.id, offset, limit)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    let items: Vec<Value> = page.items.iter().map(delivery_json).collect();
    Ok(Json(
        json!({"offset": offset, "limit": limit, "total": page.total, "deliveries": items}),
    ))
}

fn delivery_json(delivery: &WebhookDelivery) -> Value {
    let (outcome, reason) = match delivery.outcome {
        WebhookOutcome::Accepted => ("accepted", ""),
        WebhookOutcome::Rejected => (
            "rejected",
            delivery
                .message
                .strip_prefix("rejected: ")
                .unwrap_or(&delivery.message),
        ),
        WebhookOutcome::Ignored => {
            let message = delivery.message.as_str();
            if let Some(reason) = message.strip_prefix("filtered out: ") {
                ("filtered", reason)
            } else if let Some(reason) = message.strip_prefix("duplicate: ") {
                ("duplicate", reason)
            } else {
                (
                    "ignored",
                    message.strip_prefix("ignored: ").unwrap_or(message),
                )
            }
        }
    };
    let synthetic = delivery.delivery_id.starts_with("rejected:")
        || delivery.delivery_id.starts_with("duplicate:");
    json!({
        "hook_id": delivery.hook_id.to_string(),
        "delivery_id": if synthetic { Value::Null } else { json!(delivery.delivery_id) },
        "event": delivery.event,
        "outcome": outcome,
        "reason": reason,
        "pipeline_run_id": delivery.run_id,
        "received_time": delivery.received_at.as_millis(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct EndpointBody {
    name: String,
    /// `token` or `ssh_key`.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    known_hosts: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EndpointPath {
    endpoint_id: String,
}

/// `POST /v5/{project_id}/api/endpoints`: a service endpoint holding a token or an SSH key
/// (encrypted at rest; never shown again).
#[utoipa::path(post, path = "/v5/{project_id}/api/endpoints", tag = "Service endpoints", request_body = EndpointBody,
    responses((status = 200, description = "The endpoint, without its secret", body = EndpointView)))]
pub(crate) async fn create_endpoint(
    State(state): State<AppState>,
    member: Member,
    JsonBody(body): JsonBody<EndpointBody>,
) -> Result<Json<EndpointView>, ApiError> {
    member.require(Action::Edit)?;
    let name = body.name.trim();
    if !(1..=128).contains(&name.chars().count()) || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must be 1 to 128 characters"));
    }
    let kind = EndpointKind::parse(&body.kind)
        .ok_or_else(|| ApiError::invalid("type", "must be token or ssh_key"))?;
    let secret = match kind {
        EndpointKind::Token => body
            .token
            .clone()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::invalid("token", "is required for a token endpoint"))?,
        EndpointKind::SshKey => body
            .private_key
            .clone()
            .filter(|key| key.contains("PRIVATE KEY"))
            .ok_or_else(|| {
                ApiError::invalid(
                    "private_key",
                    "an SSH private key (OpenSSH or PEM) is required",
                )
            })?,
    };
    if secret.len() > 16 * 1024
        || (kind == EndpointKind::Token
            && secret.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(ApiError::invalid(
            if kind == EndpointKind::Token {
                "token"
            } else {
                "private_key"
            },
            "is malformed or too long",
        ));
    }
    let username = body.username.clone().unwrap_or_default();
    if username.len() > 128 || username.chars().any(|c| c.is_control() || c == ':') {
        return Err(ApiError::invalid(
            "username",
            "must be at most 128 characters without `:`",
        ));
    }
    let known_hosts = body.known_hosts.clone().unwrap_or_default();
    if known_hosts.len() > 64 * 1024 {
        return Err(ApiError::invalid("known_hosts", "is too long"));
    }
    let record = state
        .api
        .store
        .create_endpoint(NewEndpoint {
            project_id: member.project.id.clone(),
            name: name.to_owned(),
            kind,
            username,
            secret,
            known_hosts,
            creator_id: member.caller.user.id.clone(),
            now: state.api.engine.now(),
        })
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => ApiError::NameExists(format!(
                "an endpoint named `{name}` already exists in this project"
            )),
            other => ApiError::from_store(other, Missing::Pipeline),
        })?;
    Ok(Json(endpoint_json(&record)))
}

/// `GET /v5/{project_id}/api/endpoints`: the project's endpoints, without secrets.
#[utoipa::path(get, path = "/v5/{project_id}/api/endpoints", tag = "Service endpoints",
    responses((status = 200, description = "The project's endpoints", body = EndpointList)))]
pub(crate) async fn list_endpoints(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<EndpointList>, ApiError> {
    member.require(Action::View)?;
    let records = state
        .api
        .store
        .endpoints(&member.project.id)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?;
    Ok(Json(EndpointList {
        endpoints: records.iter().map(endpoint_json).collect(),
    }))
}

/// `DELETE /v5/{project_id}/api/endpoints/{endpoint_id}`.
#[utoipa::path(delete, path = "/v5/{project_id}/api/endpoints/{endpoint_id}", tag = "Service endpoints",
    responses((status = 200, description = "Deleted", body = Success)))]
pub(crate) async fn delete_endpoint(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<EndpointPath>,
) -> Result<Json<Success>, ApiError> {
    member.require(Action::Delete)?;
    if !crate::authz::is_valid_id(&path.endpoint_id) {
        return Err(ApiError::invalid(
            "endpoint_id",
            "no such service endpoint in this project",
        ));
    }
    state
        .api
        .store
        .delete_endpoint(&member.project.id, &path.endpoint_id)
        .await
        .map_err(|err| match err {
            StoreError::NotFound => {
                ApiError::invalid("endpoint_id", "no such service endpoint in this project")
            }
            other => ApiError::from_store(other, Missing::Pipeline),
        })?;
    Ok(Json(SUCCESS))
}

/// A service endpoint as answered: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointView {
    id: String,
    name: String,
    /// `token` or `ssh_key`.
    #[serde(rename = "type")]
    kind: &'static str,
    username: String,
    known_hosts: String,
    creator_id: String,
    create_time: i64,
    update_time: i64,
}

/// `GET /v5/{project_id}/api/endpoints`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointList {
    endpoints: Vec<EndpointView>,
}

fn endpoint_json(record: &EndpointRecord) -> EndpointView {
    EndpointView {
        id: record.id.clone(),
        name: record.name.clone(),
        kind: record.kind.as_str(),
        username: record.username.clone(),
        known_hosts: record.known_hosts.clone(),
        creator_id: record.creator_id.clone(),
        create_time: record.created_at.as_millis(),
        update_time: record.updated_at.as_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_one_repository_normalize_alike() {
        let forms = [
            "https://github.com/Team/App.git",
            "git@github.com:team/app.git",
            "ssh://git@github.com:22/team/app",
            "http://github.com/team/app/",
        ];
        for form in forms {
            assert_eq!(normalize_url(form), "github.com/team/app", "{form}");
        }
        assert_ne!(
            normalize_url("https://github.com/team/other.git"),
            "github.com/team/app"
        );
    }
}
