//! Wire types of the API (exact CodeArts names, spec §4–§5, §10, §13) and the conversions from
//! store records. Only these types are serialized; store and domain types never are.

pub(crate) mod iam;
pub(crate) mod organize;
pub(crate) mod pipeline;
pub(crate) mod run;

use crate::error::ApiError;
use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use runnel_domain::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `/v5/{project_id}/api/pipelines/{pipeline_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PipelinePath {
    pub(crate) pipeline_id: String,
}

/// `…/pipeline-runs/{pipeline_run_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RunPath {
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_run_id: String,
}

/// `…/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StepPath {
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_run_id: String,
    pub(crate) job_run_id: String,
    pub(crate) step_run_id: String,
}

/// `…/pipeline-runs/{pipeline_run_id}/steps/{step_run_id}` (stage gates, §5.10).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GatePath {
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_run_id: String,
    pub(crate) step_run_id: String,
}

/// The answer of most actions: `{"success": true}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Success {
    pub(crate) success: bool,
}

pub(crate) const SUCCESS: Success = Success { success: true };

/// `{"pipeline_id": …}`: the answer of create, update and delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PipelineIdResponse {
    pub(crate) pipeline_id: String,
}

/// The largest `offset` of a list: the SDKs' offsets are 32-bit integers, and larger ones would
/// overflow page arithmetic further down (`offset + limit`).
pub(crate) const MAX_OFFSET: i64 = i32::MAX as i64;

/// Paging of list bodies: `offset` 0 to [`MAX_OFFSET`], `limit` 0 (= default 10) to 100. Out of
/// range is a 400.
pub(crate) fn page(offset: Option<i64>, limit: Option<i64>) -> Result<(i64, i64), ApiError> {
    let offset = check_offset(offset.unwrap_or(0))?;
    let limit = match limit.unwrap_or(0) {
        0 => 10,
        limit @ 1..=100 => limit,
        _ => return Err(ApiError::invalid("limit", "must be from 0 to 100")),
    };
    Ok((offset, limit))
}

/// An `offset` from 0 to [`MAX_OFFSET`], else a 400 naming it.
pub(crate) fn check_offset(offset: i64) -> Result<i64, ApiError> {
    if (0..=MAX_OFFSET).contains(&offset) {
        Ok(offset)
    } else {
        Err(ApiError::invalid(
            "offset",
            format!("must be from 0 to {MAX_OFFSET}"),
        ))
    }
}

/// `asc`/`desc`, any case (the seed sends `DESC`).
pub(crate) fn sort_dir(
    value: Option<&str>,
    field: &str,
) -> Result<runnel_store::SortDir, ApiError> {
    match value {
        None | Some("") => Ok(runnel_store::SortDir::Desc),
        Some(text) if text.eq_ignore_ascii_case("desc") => Ok(runnel_store::SortDir::Desc),
        Some(text) if text.eq_ignore_ascii_case("asc") => Ok(runnel_store::SortDir::Asc),
        Some(_) => Err(ApiError::invalid(field, "must be asc or desc")),
    }
}

/// `yyyy-MM-dd HH:mm:ss` in the configured zone (stage lists, spec §1.8).
pub(crate) fn datetime_text(time: Option<Timestamp>, offset_minutes: i32) -> Option<String> {
    let time = time?;
    let zone = zone(offset_minutes);
    let moment = zone.timestamp_millis_opt(time.as_millis()).single()?;
    Some(moment.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn zone(offset_minutes: i32) -> FixedOffset {
    FixedOffset::east_opt(offset_minutes.saturating_mul(60))
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC is a valid offset"))
}

/// A time filter: epoch milliseconds as a number or a numeric string, or `yyyy-MM-dd HH:mm:ss`
/// in the configured zone (spec §1.8).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum TimeFilter {
    Millis(i64),
    Text(String),
}

impl TimeFilter {
    pub(crate) fn resolve(
        &self,
        field: &str,
        offset_minutes: i32,
    ) -> Result<Option<Timestamp>, ApiError> {
        match self {
            TimeFilter::Millis(millis) => Ok(Some(Timestamp::from_millis(*millis))),
            TimeFilter::Text(text) if text.trim().is_empty() => Ok(None),
            TimeFilter::Text(text) => {
                if let Ok(millis) = text.trim().parse::<i64>() {
                    return Ok(Some(Timestamp::from_millis(millis)));
                }
                let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S")
                    .map_err(|_| {
                        ApiError::invalid(
                            field,
                            "must be epoch milliseconds or a time as yyyy-MM-dd HH:mm:ss",
                        )
                    })?;
                let moment = zone(offset_minutes)
                    .from_local_datetime(&naive)
                    .single()
                    .ok_or_else(|| ApiError::invalid(field, "is not a valid time"))?;
                Ok(Some(Timestamp::from_millis(moment.timestamp_millis())))
            }
        }
    }
}

/// An optional integer sent as a number or a numeric string.
pub(crate) fn lenient_i64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected an integer")),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected an integer")),
        Some(_) => Err(serde::de::Error::custom("expected an integer")),
    }
}

/// Epoch milliseconds on the wire.
pub(crate) fn millis(time: Timestamp) -> i64 {
    time.as_millis()
}

pub(crate) fn opt_millis(time: Option<Timestamp>) -> Option<i64> {
    time.map(Timestamp::as_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_and_parsed_in_the_configured_zone() {
        let time = Timestamp::from_millis(1_740_820_805_000); // 2025-03-01T09:20:05Z
        assert_eq!(
            datetime_text(Some(time), 480).as_deref(),
            Some("2025-03-01 17:20:05")
        );
        let filter = TimeFilter::Text("2025-03-01 17:20:05".into());
        assert_eq!(
            filter.resolve("start_time", 480).expect("parses"),
            Some(time)
        );
        let numeric = TimeFilter::Text("1740820805000".into());
        assert_eq!(
            numeric.resolve("start_time", 0).expect("parses"),
            Some(time)
        );
        assert!(
            TimeFilter::Text("yesterday".into())
                .resolve("start_time", 0)
                .is_err()
        );
    }

    #[test]
    fn paging_limits_are_enforced() {
        assert_eq!(page(None, None).expect("defaults"), (0, 10));
        assert_eq!(page(Some(5), Some(100)).expect("max"), (5, 100));
        assert!(page(Some(-1), None).is_err());
        assert!(page(None, Some(101)).is_err());
        assert!(page(None, Some(-3)).is_err());
    }
}
