//! CodeArts log line format (spec §5.6): `[yyyy/MM/dd HH:mm:ss.SSS GMT+08:00] [LEVEL] text`.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use memchr::memchr_iter;
use runnel_domain::Timestamp;

use crate::task::{LogChunk, LogStream};

/// The prefix of one log line, e.g. `[2025/03/01 17:20:07.101 GMT+08:00] [INFO] `.
/// Stdout and system lines are `INFO`, stderr lines `ERROR`. An offset beyond ±23:59 is clamped.
pub fn format_log_line_prefix(at: Timestamp, utc_offset_minutes: i32, stream: LogStream) -> String {
    let mut prefix = String::with_capacity(48);
    let minutes = utc_offset_minutes.clamp(-(24 * 60 - 1), 24 * 60 - 1);
    let offset = FixedOffset::east_opt(minutes * 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset is valid"));
    let local = DateTime::from_timestamp_millis(at.as_millis())
        .unwrap_or_default()
        .with_timezone(&offset);
    let sign = if minutes < 0 { '-' } else { '+' };
    let level = match stream {
        LogStream::Stdout | LogStream::System => "INFO",
        LogStream::Stderr => "ERROR",
    };
    // Writing to a String cannot fail.
    let _ = write!(
        prefix,
        "[{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:03} GMT{sign}{:02}:{:02}] [{level}] ",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.second(),
        local.timestamp_subsec_millis(),
        minutes.unsigned_abs() / 60,
        minutes.unsigned_abs() % 60,
    );
    prefix
}

/// Appends the lines of `chunk` to `out`, each with its CodeArts prefix. The prefix is computed
/// once per chunk (all its lines share one millisecond); a missing final `\n` is added.
pub fn format_codearts_log(chunk: &LogChunk, utc_offset_minutes: i32, out: &mut Vec<u8>) {
    if chunk.data.is_empty() {
        return;
    }
    let prefix = format_log_line_prefix(chunk.at, utc_offset_minutes, chunk.stream);
    let line_count = memchr_iter(b'\n', &chunk.data).count() + 1;
    out.reserve(chunk.data.len() + line_count * prefix.len() + 1);
    let mut line_start = 0;
    for newline in memchr_iter(b'\n', &chunk.data) {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&chunk.data[line_start..=newline]);
        line_start = newline + 1;
    }
    if line_start < chunk.data.len() {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&chunk.data[line_start..]);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2025-03-01 09:20:07.101 UTC.
    const AT: Timestamp = Timestamp::from_millis(1_740_820_807_101);

    #[test]
    fn the_prefix_matches_the_spec_example() {
        assert_eq!(
            format_log_line_prefix(AT, 8 * 60, LogStream::Stdout),
            "[2025/03/01 17:20:07.101 GMT+08:00] [INFO] "
        );
    }

    #[test]
    fn stderr_is_error_and_negative_offsets_keep_their_minutes() {
        assert_eq!(
            format_log_line_prefix(AT, -(5 * 60 + 30), LogStream::Stderr),
            "[2025/03/01 03:50:07.101 GMT-05:30] [ERROR] "
        );
        assert_eq!(
            format_log_line_prefix(AT, 0, LogStream::System),
            "[2025/03/01 09:20:07.101 GMT+00:00] [INFO] "
        );
    }

    #[test]
    fn every_line_of_a_chunk_is_prefixed_and_bytes_are_kept() {
        let chunk = LogChunk {
            step: 0,
            stream: LogStream::Stdout,
            at: AT,
            data: b"ok: 42 tests\n\xff\xfe\n".to_vec(),
        };
        let mut out = Vec::new();
        format_codearts_log(&chunk, 8 * 60, &mut out);
        let prefix = "[2025/03/01 17:20:07.101 GMT+08:00] [INFO] ";
        let mut expected = format!("{prefix}ok: 42 tests\n{prefix}").into_bytes();
        expected.extend_from_slice(b"\xff\xfe\n");
        assert_eq!(out, expected);
    }
}
