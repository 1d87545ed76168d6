//! Turns a running job's events into protocol calls: log appends at stated offsets (batched,
//! retried idempotently) and step reports, in an order that keeps the acknowledgement points:
//! a step's log is stored before its result is reported.
//!
//! Step reports wait up to the worker's `report_delay` before they are sent: a step that ends
//! within it is reported once (its result carries its start time), and the results still
//! waiting when the job ends travel with the job's completion. A trivial job thus costs the server two
//! writes (claim, completion) instead of four. Reports never overtake one another, and a
//! step's log is always stored before its result leaves.

use crate::coordinator::{CallError, Coordinator};
use crate::worker::WorkerConfig;
use runnel_executor::{JobEvent, LogChunk, StepResult, format_codearts_log};
use runnel_protocol::{ErrorKind, LeaseRef, LogAppend, StepReport};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A batch is sent once it reaches this size, or when no more events are waiting.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

pub(crate) struct Shipper<'a, C> {
    pub(crate) coordinator: &'a C,
    pub(crate) lease: &'a LeaseRef,
    /// Per step: its run id and the offset its stored log ends at.
    pub(crate) steps: Vec<(String, u64)>,
    pub(crate) utc_offset_minutes: i32,
    /// Fired by the shipper when the lease is lost; fired by others to stop retrying.
    pub(crate) lease_lost: &'a CancellationToken,
    pub(crate) give_up: &'a CancellationToken,
    pub(crate) retry_backoff: Duration,
    /// How long a report may wait (see the module's documentation).
    report_delay: Duration,
    pending: BTreeMap<usize, Vec<u8>>,
    /// Step reports not sent yet, in order; the last may be a start (`RUNNING`).
    unsent: Vec<StepReport>,
    /// When `unsent` must go out at the latest.
    unsent_due: Option<Instant>,
}

impl<'a, C: Coordinator> Shipper<'a, C> {
    pub(crate) fn new(
        coordinator: &'a C,
        lease: &'a LeaseRef,
        steps: Vec<(String, u64)>,
        utc_offset_minutes: i32,
        lease_lost: &'a CancellationToken,
        give_up: &'a CancellationToken,
        config: &WorkerConfig,
    ) -> Self {
        Shipper {
            coordinator,
            lease,
            steps,
            utc_offset_minutes,
            lease_lost,
            give_up,
            retry_backoff: config.retry_backoff,
            report_delay: config.report_delay,
            pending: BTreeMap::new(),
            unsent: Vec::new(),
            unsent_due: None,
        }
    }

    /// Consumes every event until the job's runner closes the channel, and returns the step
    /// reports not sent yet: they go with the job's completion. Keeps draining after a lost
    /// lease (so the runner never blocks) but sends nothing more.
    pub(crate) async fn ship(mut self, mut events: Receiver<JobEvent>) -> Vec<StepReport> {
        loop {
            // Also when events keep arriving (a step streaming its log), which would win
            // every race against the timer below.
            if self.unsent_due.is_some_and(|due| due <= Instant::now()) {
                self.send_unsent().await;
            }
            let event = match self.unsent_due {
                Some(due) => match tokio::time::timeout_at(due, events.recv()).await {
                    Ok(event) => event,
                    Err(_) => {
                        self.send_unsent().await;
                        continue;
                    }
                },
                None => events.recv().await,
            };
            let Some(event) = event else {
                break;
            };
            self.handle(event).await;
            // Batch whatever else is already waiting, then send it.
            while let Ok(event) = events.try_recv() {
                self.handle(event).await;
            }
            self.flush_all().await;
        }
        self.flush_all().await;
        if self.is_stopped() {
            return Vec::new();
        }
        std::mem::take(&mut self.unsent)
    }

    fn is_stopped(&self) -> bool {
        self.lease_lost.is_cancelled() || self.give_up.is_cancelled()
    }

    async fn handle(&mut self, event: JobEvent) {
        match event {
            JobEvent::Log(chunk) => self.buffer(&chunk).await,
            JobEvent::StepStarted { step, at } => {
                self.flush_all().await;
                let report = StepReport {
                    step_run_id: self.step_run_id(step),
                    status: "RUNNING".to_owned(),
                    exit_code: None,
                    message: None,
                    at: at.as_millis(),
                    started_at: None,
                    outputs: Vec::new(),
                };
                self.hold(report).await;
            }
            JobEvent::StepFinished { step, result } => {
                // The log first: it is acknowledged before the result can leave.
                self.flush(step).await;
                let mut report = finished_report(self.step_run_id(step), &result);
                if let Some(start) = self.unsent.pop_if(|unsent| {
                    unsent.step_run_id == report.step_run_id && unsent.status == "RUNNING"
                }) {
                    // Its start was never sent: the result says when it was.
                    report.started_at = Some(start.at);
                }
                self.hold(report).await;
            }
        }
    }

    /// Keeps a report back for at most `report_delay` (from the oldest one kept); without a
    /// delay it leaves at once.
    async fn hold(&mut self, report: StepReport) {
        if self.report_delay.is_zero() {
            self.report(report).await;
            return;
        }
        self.unsent.push(report);
        let delay = self.report_delay;
        self.unsent_due
            .get_or_insert_with(|| Instant::now() + delay);
    }

    async fn send_unsent(&mut self) {
        self.unsent_due = None;
        for report in std::mem::take(&mut self.unsent) {
            self.report(report).await;
        }
    }

    fn step_run_id(&self, step: usize) -> String {
        self.steps
            .get(step)
            .map(|(id, _)| id.clone())
            .unwrap_or_default()
    }

    async fn buffer(&mut self, chunk: &LogChunk) {
        if self.is_stopped() {
            return;
        }
        let buffer = self.pending.entry(chunk.step).or_default();
        format_codearts_log(chunk, self.utc_offset_minutes, buffer);
        if buffer.len() >= MAX_BATCH_BYTES {
            self.flush(chunk.step).await;
        }
    }

    async fn flush_all(&mut self) {
        let steps: Vec<usize> = self.pending.keys().copied().collect();
        for step in steps {
            self.flush(step).await;
        }
    }

    /// Sends a step's buffered log at the offset where its stored log ends.
    async fn flush(&mut self, step: usize) {
        let Some(mut data) = self.pending.remove(&step) else {
            return;
        };
        let Some((step_run_id, offset)) = self.steps.get(step).cloned() else {
            return;
        };
        let mut offset = offset;
        while !data.is_empty() && !self.is_stopped() {
            let append = LogAppend {
                step_run_id: step_run_id.clone(),
                offset,
                data: data.clone(),
            };
            match self.coordinator.append_log(self.lease, append).await {
                Ok(reply) => {
                    offset = reply.length.max(offset + data.len() as u64);
                    data.clear();
                }
                Err(CallError::Refused(ErrorKind::OffsetMismatch { expected })) => {
                    let end = offset + data.len() as u64;
                    if expected >= end {
                        // An earlier try was stored before its answer was lost.
                        offset = expected;
                        data.clear();
                    } else if expected > offset {
                        // Part of it is stored already: send the rest.
                        data.drain(..usize::try_from(expected - offset).unwrap_or(data.len()));
                        offset = expected;
                    } else {
                        tracing::error!(step_run_id = %step_run_id, offset, expected, "the stored log is shorter than acknowledged; continuing where it ends");
                        offset = expected;
                    }
                }
                Err(err) if err.is_lease_lost() => self.lease_lost.cancel(),
                Err(err) if err.is_retryable() => self.pause(&err).await,
                Err(err) => {
                    tracing::error!(step_run_id = %step_run_id, error = %err, "log bytes refused; dropping them");
                    data.clear();
                }
            }
        }
        if let Some(entry) = self.steps.get_mut(step) {
            entry.1 = offset;
        }
    }

    async fn report(&mut self, report: StepReport) {
        while !self.is_stopped() {
            match self
                .coordinator
                .report_step(self.lease, report.clone())
                .await
            {
                Ok(()) => return,
                Err(err) if err.is_lease_lost() => self.lease_lost.cancel(),
                Err(err) if err.is_retryable() => self.pause(&err).await,
                Err(err) => {
                    tracing::error!(step_run_id = %report.step_run_id, error = %err, "step report refused");
                    return;
                }
            }
        }
    }

    async fn pause(&self, err: &CallError) {
        tracing::warn!(job_run_id = %self.lease.job_run_id, error = %err, "call failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(self.retry_backoff) => {}
            _ = self.give_up.cancelled() => {}
            _ = self.lease_lost.cancelled() => {}
        }
    }
}

fn finished_report(step_run_id: String, result: &StepResult) -> StepReport {
    StepReport {
        step_run_id,
        status: result.status.as_str().to_owned(),
        exit_code: result.exit_code,
        message: result.message.clone(),
        at: result.finished_at.as_millis(),
        started_at: None,
        outputs: result.outputs.clone(),
    }
}
