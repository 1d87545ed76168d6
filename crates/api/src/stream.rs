//! The live log of a step as Server-Sent Events (for the UI and `runnel logs --follow`).
//!
//! `GET …/jobs/{job_run_id}/steps/{step_run_id}/logs/stream?offset=N` sends what the step's log
//! holds from byte `offset` (or from the `Last-Event-ID` a reconnecting client sends), then
//! each new piece as it is stored, then one `end` event once the step is final and everything
//! stored was sent:
//!
//! ```text
//! event: log
//! id: 14
//! data: {"start_offset":0,"end_offset":14,"log":"line 1\nline 2\n","attempt":1}
//!
//! event: end
//! id: 14
//! data: {"end_offset":14,"status":"COMPLETED"}
//! ```
//!
//! Offsets are byte positions of the step's current attempt (as in the paged log, §5.6); an
//! event never splits a UTF-8 character. When the job is retried the log starts again: a
//! `reset` event (`{"attempt"}`) comes first and offsets restart at 0.
//!
//! Waking: log appends carry no notification the API could subscribe to (they go from the
//! workers to the engine and the store), so new bytes are found by polling the store every
//! `ApiConfig::log_poll_interval` (default 250 ms; a poll is one indexed read). Status changes
//! do wake the stream at once through the engine's change notifications, and are also
//! re-checked every [`STATUS_RECHECK`] in case a notification was missed.

use crate::AppState;
use crate::actions::{job_step, run_detail_of};
use crate::authz::{Action, Member};
use crate::dto::StepPath;
use crate::error::{ApiError, Missing};
use crate::extract::{PathParams, QueryParams};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use runnel_domain::status::StepStatus;
use runnel_store::{LogRead, LogStore, RunStore, Store};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use utoipa::IntoParams;

/// The most bytes one `log` event carries.
const EVENT_BYTES: u64 = 64 * 1024;
/// How often the step's status is read again without a change notification.
const STATUS_RECHECK: Duration = Duration::from_secs(2);

/// `?offset=N`: the byte offset to start from (default 0).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    pub(crate) offset: Option<u64>,
}

/// `data` of a `log` event.
#[derive(Debug, Clone, Serialize)]
struct LogChunk<'a> {
    start_offset: u64,
    end_offset: u64,
    log: &'a str,
    attempt: i64,
}

/// `data` of the `end` event.
#[derive(Debug, Clone, Serialize)]
struct End<'a> {
    end_offset: u64,
    status: &'a str,
}

/// The live log of a step (Server-Sent Events): `log` events with their offsets as the log
/// grows, then `end` once the step is final.
#[utoipa::path(get, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs/stream",
    tag = "Runs", params(StreamQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this offset (sent by reconnecting clients)")),
    responses((status = 200, description = "`text/event-stream`: `log` events `{start_offset, end_offset, log, attempt}` (id = end offset), `reset` `{attempt}` when the job is retried, and a last `end` event `{end_offset, status}`", content_type = "text/event-stream", body = String)))]
pub(crate) async fn step_log_stream(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
    QueryParams(query): QueryParams<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    member.require(Action::View)?;
    let resume_from = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "must be a byte offset (a whole number)")
                })?,
        ),
        None => None,
    };
    let detail = run_detail_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let run = &detail.run;
    let step_run_id = job_step(&detail, &path.job_run_id, &path.step_run_id)?;
    let attempt = state
        .api
        .store
        .log_info(&step_run_id, None)
        .await
        .map_err(|err| ApiError::from_store(err, Missing::Step))?
        .map_or(1, |info| info.attempt);
    let follower = Follower {
        store: state.api.store.clone(),
        changes: state.api.engine.subscribe(),
        run_id: run.id.clone(),
        step_run_id,
        offset: resume_from.or(query.offset).unwrap_or(0),
        attempt,
        poll: state.api.config.log_poll_interval,
        status_due: true,
        last_status_check: Instant::now(),
        final_status: None,
        is_done: false,
    };
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next_event().await?;
        Some((Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The state of one stream.
struct Follower {
    store: Store,
    changes: broadcast::Receiver<String>,
    run_id: String,
    step_run_id: String,
    /// The next byte to send.
    offset: u64,
    attempt: i64,
    poll: Duration,
    /// The step's status must be read before the next log read.
    status_due: bool,
    last_status_check: Instant,
    /// Set once the step (or its run) was seen final.
    final_status: Option<String>,
    is_done: bool,
}

impl Follower {
    /// The next event, waiting as long as needed; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.is_done {
                return None;
            }
            if self.status_due && self.final_status.is_none() {
                match self.check_status().await {
                    Ok(()) => {}
                    Err(message) => return Some(self.fail(message)),
                }
            }
            // The status is read before the log: a worker stores a step's log before it
            // reports the step final, so an empty read after a final status means all was sent.
            match self.read().await {
                Ok(Some(event)) => return Some(event),
                Ok(None) => {}
                Err(message) => return Some(self.fail(message)),
            }
            if let Some(status) = &self.final_status {
                self.is_done = true;
                let end = End {
                    end_offset: self.offset,
                    status,
                };
                return Some(
                    Event::default()
                        .event("end")
                        .id(self.offset.to_string())
                        .json_data(&end)
                        .unwrap_or_else(|_| Event::default().event("end")),
                );
            }
            self.wait().await;
        }
    }

    /// One store read from `offset`: a `log` event, a `reset` event, or nothing new.
    async fn read(&mut self) -> Result<Option<Event>, String> {
        let info = self
            .store
            .log_info(&self.step_run_id, None)
            .await
            .map_err(|err| err.to_string())?;
        let Some(info) = info else {
            return Ok(None);
        };
        if info.attempt != self.attempt {
            self.attempt = info.attempt;
            self.offset = 0;
            return Ok(Some(
                Event::default()
                    .event("reset")
                    .id("0")
                    .data(format!("{{\"attempt\":{}}}", info.attempt)),
            ));
        }
        if info.stored <= self.offset {
            if self.final_status.is_some() {
                // Nothing more will come: report where the log really ends.
                self.offset = info.stored;
            }
            return Ok(None);
        }
        let page = self
            .store
            .read_log(
                &self.step_run_id,
                Some(self.attempt),
                LogRead::Asc {
                    start: self.offset,
                    limit: EVENT_BYTES,
                },
            )
            .await
            .map_err(|err| err.to_string())?;
        // A running step may have stored half a character: it waits for the rest.
        let is_whole = page.end >= page.stored && self.final_status.is_some();
        let taken = if is_whole {
            page.data.len()
        } else {
            utf8_prefix(&page.data)
        };
        if taken == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&page.data[..taken]);
        let chunk = LogChunk {
            start_offset: page.start,
            end_offset: page.start + taken as u64,
            log: &text,
            attempt: self.attempt,
        };
        self.offset = chunk.end_offset;
        Ok(Some(
            Event::default()
                .event("log")
                .id(chunk.end_offset.to_string())
                .json_data(&chunk)
                .map_err(|err| err.to_string())?,
        ))
    }

    /// Reads the step's status; a final step (or run) is remembered.
    async fn check_status(&mut self) -> Result<(), String> {
        self.status_due = false;
        self.last_status_check = Instant::now();
        let detail = self
            .store
            .run_detail(&self.run_id)
            .await
            .map_err(|err| err.to_string())?
            .ok_or_else(|| "the run is gone".to_owned())?;
        let status = detail
            .stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .flat_map(|job| &job.steps)
            .find(|step| step.id == self.step_run_id)
            .map(|step| step.status)
            .ok_or_else(|| "the step is gone".to_owned())?;
        if status.is_final() {
            self.final_status = Some(status.as_str().to_owned());
        } else if detail.run.status.is_final() && status != StepStatus::Running {
            // A step that never ran in a finished run will not run any more.
            self.final_status = Some(status.as_str().to_owned());
        }
        Ok(())
    }

    /// Sleeps one poll interval, or less when the run changed (then the status is re-read).
    async fn wait(&mut self) {
        let sleep = tokio::time::sleep(self.poll);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                change = self.changes.recv() => match change {
                    Ok(run_id) if run_id == self.run_id => {
                        self.status_due = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.status_due = true;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        // Cannot happen while the engine lives; poll the status instead.
                        self.status_due = true;
                        (&mut sleep).await;
                        break;
                    }
                },
            }
        }
        if self.last_status_check.elapsed() >= STATUS_RECHECK {
            self.status_due = true;
        }
    }

    /// Ends the stream with an `error` event (the cause is logged, not sent).
    fn fail(&mut self, cause: String) -> Event {
        tracing::warn!(run_id = %self.run_id, step_run_id = %self.step_run_id, error = %cause, "log stream ended");
        self.is_done = true;
        Event::default()
            .event("error")
            .data("{\"error_code\":\"DEVPIPE.00010000\",\"error_msg\":\"Internal server error.\"}")
    }
}

/// The longest prefix that does not end inside a UTF-8 character.
fn utf8_prefix(data: &[u8]) -> usize {
    match std::str::from_utf8(data) {
        Ok(_) => data.len(),
        Err(err) if err.error_len().is_none() => err.valid_up_to(),
        Err(_) => data.len(),
    }
}
