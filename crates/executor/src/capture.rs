//! Log capture: raw bytes → masked → complete lines → batched `LogChunk`s, for any byte stream.

use std::io;
use std::time::Duration;

use memchr::memrchr;
use runnel_domain::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::mask::{MaskStream, Masker};
use crate::task::{JobEvent, LogChunk, LogStream, now};

/// A line longer than this (without its `\n`) is emitted in pieces of this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// A chunk is sent once it holds this many bytes of complete lines.
const CHUNK_BYTES: usize = 64 * 1024;
/// Complete lines never wait longer than this for more output before they are sent.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Largest read from the pipe (a Linux pipe holds 64 KiB by default).
const READ_BYTES: usize = 128 * 1024;
/// First read size. Most steps print little or nothing: their two streams then cost two small
/// heap blocks instead of fresh `mmap`ed regions (page faults, `munmap`) per step. A read that
/// fills the buffer doubles it, up to `READ_BYTES`.
const FIRST_READ_BYTES: usize = 8 * 1024;

/// Reads `reader` until EOF or until `stop_reading` fires, sending masked, batched lines of
/// `stream` for step `step` to `events`. A trailing partial line is sent with a `\n` appended.
/// Returns how many raw bytes were read. Sending blocks while the channel is full (backpressure
/// reaches the writer through the pipe); a closed channel discards the chunks.
pub(crate) async fn capture_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    target: CaptureTarget<'_>,
    stop_reading: &CancellationToken,
) -> io::Result<u64> {
    let mut lines = LineCapture::new(target.step, target.stream, target.masker);
    let mut read_buffer = vec![0u8; FIRST_READ_BYTES];
    let mut ready = Vec::new();
    let mut flush_at: Option<Instant> = None;
    let mut total: u64 = 0;
    let result = loop {
        tokio::select! {
            biased;
            _ = stop_reading.cancelled() => break Ok(total),
            read = reader.read(&mut read_buffer) => match read {
                Ok(0) => break Ok(total),
                Ok(count) => {
                    total += count as u64;
                    lines.push(&read_buffer[..count], now(), &mut ready);
                    if count == read_buffer.len() && count < READ_BYTES {
                        read_buffer.resize((count * 2).min(READ_BYTES), 0);
                    }
                    send_all(target.events, &mut ready).await;
                    if lines.has_pending() {
                        flush_at.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
                    } else {
                        flush_at = None;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            },
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                lines.idle(now(), &mut ready);
                send_all(target.events, &mut ready).await;
            }
        }
    };
    lines.finish(now(), &mut ready);
    send_all(target.events, &mut ready).await;
    result
}

/// Where captured lines go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaptureTarget<'a> {
    pub(crate) step: usize,
    pub(crate) stream: LogStream,
    pub(crate) masker: &'a Masker,
    pub(crate) events: &'a Sender<JobEvent>,
}

/// Turns masked bytes into batches of complete lines for one stream of one step.
#[derive(Debug)]
pub(crate) struct LineCapture {
    step: usize,
    stream: LogStream,
    mask: MaskStream,
    // Masked bytes not yet sent. Invariant: `buffer[..complete_end]` is complete lines, each at
    // most MAX_LINE_BYTES + 1 long; `buffer[complete_end..]` is one partial line, shorter than
    // MAX_LINE_BYTES + 1 once `split_lines` has run.
    buffer: Vec<u8>,
    complete_end: usize,
    // Time of the reads that completed `buffer[..complete_end]`.
    chunk_at: Timestamp,
}

impl LineCapture {
    pub(crate) fn new(step: usize, stream: LogStream, masker: &Masker) -> LineCapture {
        LineCapture {
            step,
            stream,
            mask: masker.stream(),
            // Grows with the output; kept across chunks (see `take_complete`).
            buffer: Vec::new(),
            complete_end: 0,
            chunk_at: Timestamp::default(),
        }
    }

    /// Adds raw bytes read at `at`. Lines completed by an earlier millisecond are shipped first,
    /// so every chunk carries a single, exact per-line timestamp.
    pub(crate) fn push(&mut self, raw: &[u8], at: Timestamp, ready: &mut Vec<LogChunk>) {
        if self.complete_end > 0 && self.chunk_at != at {
            ready.push(self.take_complete());
        }
        self.mask.feed(raw, &mut self.buffer);
        self.settle(at, ready);
    }

    /// The stream went quiet: release what the masker can prove harmless and ship complete lines.
    pub(crate) fn idle(&mut self, at: Timestamp, ready: &mut Vec<LogChunk>) {
        self.mask.release_undecided(&mut self.buffer);
        self.settle(at, ready);
        if self.complete_end > 0 {
            ready.push(self.take_complete());
        }
    }

    /// End of stream: everything left is shipped, a partial last line gets its `\n`.
    pub(crate) fn finish(&mut self, at: Timestamp, ready: &mut Vec<LogChunk>) {
        self.mask.finish(&mut self.buffer);
        self.settle(at, ready);
        if self.buffer.len() > self.complete_end {
            self.buffer.push(b'\n');
            self.complete_end = self.buffer.len();
            self.chunk_at = at;
        }
        if self.complete_end > 0 {
            ready.push(self.take_complete());
        }
    }

    /// True when bytes wait for a flush (complete lines unsent, or bytes held by the masker).
    pub(crate) fn has_pending(&self) -> bool {
        self.complete_end > 0 || self.mask.held_len() > 0
    }

    fn settle(&mut self, at: Timestamp, ready: &mut Vec<LogChunk>) {
        let before = self.complete_end;
        self.split_lines();
        if self.complete_end > before {
            self.chunk_at = at;
        }
        if self.complete_end >= CHUNK_BYTES {
            ready.push(self.take_complete());
        }
    }

    /// Advances `complete_end` over the complete lines in the buffer, cutting over-long lines.
    /// Looks at a window of MAX_LINE_BYTES + 1 bytes at a time and jumps to its last `\n`, so the
    /// cost is per window, not per line.
    fn split_lines(&mut self) {
        loop {
            let start = self.complete_end;
            let window_end = self.buffer.len().min(start + MAX_LINE_BYTES + 1);
            match memrchr(b'\n', &self.buffer[start..window_end]) {
                Some(last_newline) => self.complete_end = start + last_newline + 1,
                None if window_end - start == MAX_LINE_BYTES + 1 => {
                    self.buffer.insert(start + MAX_LINE_BYTES, b'\n');
                    self.complete_end = start + MAX_LINE_BYTES + 1;
                }
                None => return,
            }
        }
    }

    /// The complete lines as a chunk of their own size (a copy of at most ~64 KiB); the buffer
    /// keeps its capacity for the partial line and what follows.
    fn take_complete(&mut self) -> LogChunk {
        let data = self.buffer[..self.complete_end].to_vec();
        self.buffer.drain(..self.complete_end);
        self.complete_end = 0;
        LogChunk {
            step: self.step,
            stream: self.stream,
            at: self.chunk_at,
            data,
        }
    }
}

/// Sends one `System` line (or several, if `text` has newlines) for `step`, masked.
pub(crate) async fn send_system_line(
    events: &Sender<JobEvent>,
    masker: &Masker,
    step: usize,
    text: &str,
) {
    let mut data = masker.mask(text.trim_end_matches('\n').as_bytes());
    data.push(b'\n');
    let chunk = LogChunk {
        step,
        stream: LogStream::System,
        at: now(),
        data,
    };
    // A closed channel means nobody listens any more; the job still runs to its end.
    let _ = events.send(JobEvent::Log(chunk)).await;
}

async fn send_all(events: &Sender<JobEvent>, ready: &mut Vec<LogChunk>) {
    for chunk in ready.drain(..) {
        // A closed channel means nobody listens any more; the step still runs to its end.
        let _ = events.send(JobEvent::Log(chunk)).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
