//! The offset-paged step log (spec §5.6). Offsets are byte positions in the step's stored log
//! (its current attempt); `limit` counts lines; pages end on line boundaries.
//!
//! `asc` reads forward from `start_offset` (bounded by `end_offset` when it is not 0) and
//! `has_more` says whether more is stored after `end_offset` or the step is still running;
//! `desc` reads the `limit` lines ending at `end_offset` (0 = the end) and `has_more` says
//! whether older lines exist before `start_offset`. `level` is accepted but not applied.

use crate::AppState;
use crate::actions::run_detail_of;
use crate::authz::{Action, Member};
use crate::dto::StepPath;
use crate::dto::run::{LogQuery, LogResponse};
use crate::error::{ApiError, Missing};
use crate::extract::{JsonBody, PathParams};
use axum::Json;
use axum::extract::State;
use runnel_domain::status::StepStatus;
use runnel_store::{LogRead, LogStore};

/// The most bytes one page reads from the store (a line is at most 64 KiB).
const PAGE_BYTES: u64 = 256 * 1024;
/// The most lines one page returns.
const MAX_LINES: i64 = 5000;

/// `POST …/jobs/{job_run_id}/steps/{step_run_id}/logs`.
#[utoipa::path(post, path = "/v5/{project_id}/api/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs", tag = "Runs", request_body = LogQuery,
    responses((status = 200, description = "A page of the step's log", body = LogResponse)))]
pub(crate) async fn step_log(
    State(state): State<AppState>,
    member: Member,
    PathParams(path): PathParams<StepPath>,
    JsonBody(query): JsonBody<LogQuery>,
) -> Result<Json<LogResponse>, ApiError> {
    member.require(Action::View)?;
    if !(1..=MAX_LINES).contains(&query.limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be from 1 to {MAX_LINES} lines"),
        ));
    }
    let is_ascending = if query.sort.eq_ignore_ascii_case("asc") {
        true
    } else if query.sort.eq_ignore_ascii_case("desc") {
        false
    } else {
        return Err(ApiError::invalid("sort", "must be asc or desc"));
    };
    let offset = |value: Option<i64>, field: &str| {
        u64::try_from(value.unwrap_or(0)).map_err(|_| ApiError::invalid(field, "must be 0 or more"))
    };
    let start_offset = offset(query.start_offset, "start_offset")?;
    let end_offset = offset(query.end_offset, "end_offset")?;
    if let Some(level) = &query.level
        && !["INFO", "WARN", "ERROR", "DEBUG", ""]
            .iter()
            .any(|known| level.eq_ignore_ascii_case(known))
    {
        return Err(ApiError::invalid(
            "level",
            "must be INFO, WARN, ERROR or DEBUG",
        ));
    }
    let detail = run_detail_of(&state, &member, &path.pipeline_id, &path.pipeline_run_id).await?;
    let run = &detail.run;
    let step = detail
        .stages
        .iter()
        .flat_map(|stage| &stage.jobs)
        .filter(|job| job.id == path.job_run_id)
        .flat_map(|job| &job.steps)
        .find(|step| step.id == path.step_run_id)
        .ok_or(ApiError::NotFound(Missing::Step))?;
    let is_running = matches!(step.status, StepStatus::Running)
        || !run.status.is_final() && !step.status.is_final();
    let lines = usize::try_from(query.limit).unwrap_or(1);
    let store = &state.api.store;
    let fail = |err| ApiError::from_store(err, Missing::Step);
    let (start, data, has_more) = if is_ascending {
        let budget = if end_offset > 0 {
            end_offset.saturating_sub(start_offset).min(PAGE_BYTES)
        } else {
            PAGE_BYTES
        };
        let page = store
            .read_log(
                &step.id,
                None,
                LogRead::Asc {
                    start: start_offset,
                    limit: budget,
                },
            )
            .await
            .map_err(fail)?;
        let is_whole = page.end >= page.stored || (end_offset > 0 && page.end >= end_offset);
        let taken = first_lines(&page.data, lines, is_whole);
        let end = page.start + taken as u64;
        (
            page.start,
            page.data[..taken].to_vec(),
            end < page.stored || is_running,
        )
    } else {
        let end = (end_offset > 0).then_some(end_offset);
        let page = store
            .read_log(
                &step.id,
                None,
                LogRead::Desc {
                    end,
                    limit: PAGE_BYTES,
                },
            )
            .await
            .map_err(fail)?;
        let skipped = last_lines_start(&page.data, lines, page.start == 0);
        let start = page.start + skipped as u64;
        (start, page.data[skipped..].to_vec(), start > 0)
    };
    let end = start + data.len() as u64;
    Ok(Json(LogResponse {
        has_more,
        start_offset: start.to_string(),
        end_offset: end.to_string(),
        log: String::from_utf8_lossy(&data).into_owned(),
        step_run_id: step.id.clone(),
    }))
}

/// The same page at the seed's path without `/api` (§5.6).
#[utoipa::path(post, path = "/v5/{project_id}/pipelines/{pipeline_id}/pipeline-runs/{pipeline_run_id}/jobs/{job_run_id}/steps/{step_run_id}/logs",
    tag = "Runs", request_body = LogQuery,
    responses((status = 200, description = "A page of the step's log", body = LogResponse)))]
pub(crate) async fn step_log_without_api(
    state: State<AppState>,
    member: Member,
    path: PathParams<StepPath>,
    query: JsonBody<LogQuery>,
) -> Result<Json<LogResponse>, ApiError> {
    step_log(state, member, path, query).await
}

/// How many bytes of `data` hold its first `lines` lines. When fewer are there: everything if
/// `is_whole` (the read reached the end), else up to the last complete line.
fn first_lines(data: &[u8], lines: usize, is_whole: bool) -> usize {
    let mut seen = 0;
    for (index, byte) in data.iter().enumerate() {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                return index + 1;
            }
        }
    }
    if is_whole {
        return data.len();
    }
    match data.iter().rposition(|byte| *byte == b'\n') {
        Some(index) => index + 1,
        // One line longer than the page: cut at a character boundary.
        None => utf8_prefix(data),
    }
}

/// Where the last `lines` lines of `data` start. When fewer are there: 0 if `is_whole` (the
/// read reached the start of the log), else after the first, partial, line.
fn last_lines_start(data: &[u8], lines: usize, is_whole: bool) -> usize {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (index, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == lines {
                return index + 1;
            }
        }
    }
    if is_whole {
        return 0;
    }
    match data.iter().position(|byte| *byte == b'\n') {
        Some(index) if index + 1 < data.len() => index + 1,
        // One line longer than the page: start at a character boundary.
        _ => data
            .iter()
            .position(|byte| byte & 0b1100_0000 != 0b1000_0000)
            .unwrap_or(data.len()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_pages_end_on_line_boundaries() {
        let data = b"one\ntwo\nthree\nfour";
        assert_eq!(first_lines(data, 2, false), 8);
        assert_eq!(first_lines(data, 10, true), data.len());
        assert_eq!(
            first_lines(data, 10, false),
            14,
            "a partial last line waits"
        );
    }

    #[test]
    fn backward_pages_take_the_last_lines() {
        let data = b"one\ntwo\nthree\n";
        assert_eq!(&data[last_lines_start(data, 2, true)..], b"two\nthree\n");
        assert_eq!(last_lines_start(data, 5, true), 0);
        let partial = b"ne\ntwo\n";
        assert_eq!(&partial[last_lines_start(partial, 5, false)..], b"two\n");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "aé".as_bytes();
        assert_eq!(utf8_prefix(&text[..2]), 1);
        assert_eq!(utf8_prefix(text), 3);
    }
}
