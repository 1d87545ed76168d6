//! Wire types between workers (the built-in executor pool, remote agents) and the server.
//!
//! Owns: the messages of the job protocol — claim, heartbeat, fenced log appends, step
//! reports, completion — as plain serde types. Must never know: the domain model, the store,
//! HTTP frameworks. Statuses travel as their CodeArts spellings (`"COMPLETED"`); binary log
//! data as base64.
//!
//! Protocol (one attempt of one job):
//! 1. `claim` → a [`ClaimedJob`] with a lease token, or nothing.
//! 2. While running: `heartbeat` every `heartbeat_interval_ms` (the reply may ask to cancel);
//!    `append_log` with the byte offset each step's log continues at; `report_step` when a step
//!    starts and ends. A worker may leave out the start report of a step that ends soon
//!    (its result then carries `started_at`), and may send the last results with `complete`
//!    instead ([`JobResult::steps`]): a trivial job then costs two calls, not four.
//! 3. `complete` with the job's result; a worker slot that takes another job may ask for it
//!    in the same call (`complete_and_claim`: one transaction on the server).
//!
//! Every call after the claim carries the lease token; a superseded token is refused
//! ([`ErrorKind::LeaseLost`]) and changes nothing. `append_log` at the wrong offset is refused
//! ([`ErrorKind::OffsetMismatch`]) with the offset the server expects. Retrying any call with the
//! same arguments is safe.

use serde::{Deserialize, Serialize};

/// A worker with a free slot asks for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub worker_id: String,
    /// The agent pool; `None` = the default pool.
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A job handed to a worker: everything it needs to run, resolved by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedJob {
    pub lease: LeaseRef,
    pub run_id: String,
    pub job_run_id: String,
    pub attempt: i64,
    /// How often to heartbeat; the lease lasts a few intervals.
    pub heartbeat_interval_ms: u64,
    pub task: JobTask,
}

/// Identifies the attempt a call is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    pub job_run_id: String,
    pub token: String,
}

/// A job, resolved: parameters as environment, secrets to mask, steps in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTask {
    pub job_key: String,
    pub env: Vec<(String, String)>,
    pub secrets: Vec<String>,
    pub steps: Vec<StepTask>,
    /// What is left of the job's timeout.
    pub timeout_ms: Option<u64>,
    /// Minutes east of UTC for log line timestamps.
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTask {
    pub step_run_id: String,
    pub identifier: String,
    pub name: String,
    pub action: StepAction,
    pub env: Vec<(String, String)>,
    /// Where this step's stored log ends already (0 for a fresh attempt).
    #[serde(default)]
    pub log_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    Shell { script: String },
    Disabled,
    Unsupported { task: String },
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The lease now lasts this long from the server's receipt of the heartbeat.
    pub lease_ms: u64,
    /// The run was stopped: stop the job and complete it as CANCELED.
    pub cancel: bool,
}

/// Bytes of a step's log, to be stored at `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAppend {
    pub step_run_id: String,
    pub offset: u64,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// The answer to an append: where the step's log now ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAppendReply {
    pub length: u64,
}

/// A step started or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub step_run_id: String,
    /// `RUNNING`, `COMPLETED`, `FAILED`, `CANCELED` or `SKIPPED`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// Epoch milliseconds on the worker.
    pub at: i64,
    /// When the step started (epoch milliseconds), for a result whose start was not reported;
    /// a start time already recorded is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default)]
    pub outputs: Vec<(String, String)>,
}

/// How the attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: String,
    pub message: Option<String>,
    /// Step reports not sent yet, recorded in order before the result and in the same
    /// transaction (their logs must be acknowledged already). A report the server refuses
    /// (another final status recorded, an unknown step) is skipped; the result still counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepReport>,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorKind {
    /// The token is not the attempt's current one: stop working on this job.
    LeaseLost,
    /// The log continues at `expected`, not at the offset sent.
    OffsetMismatch { expected: u64 },
    /// The request contradicts what is stored (e.g. another result for a completed step).
    Conflict { message: String },
    /// Try again later.
    Unavailable { message: String },
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bytes_travel_as_base64_and_come_back_exact() {
        let append = LogAppend {
            step_run_id: "s".into(),
            offset: 7,
            data: vec![0xff, 0, b'\n'],
        };
        let text = serde_json::to_string(&append).expect("serializes");
        assert_eq!(text, r#"{"step_run_id":"s","offset":7,"data":"/wAK"}"#);
        assert_eq!(
            serde_json::from_str::<LogAppend>(&text).expect("parses"),
            append
        );
    }

    #[test]
    fn step_actions_are_tagged() {
        let text = serde_json::to_string(&StepAction::Shell {
            script: "true".into(),
        })
        .expect("serializes");
        assert_eq!(text, r#"{"kind":"shell","script":"true"}"#);
        let error =
            serde_json::to_string(&ErrorKind::OffsetMismatch { expected: 3 }).expect("serializes");
        assert_eq!(error, r#"{"kind":"offset_mismatch","expected":3}"#);
    }
}
