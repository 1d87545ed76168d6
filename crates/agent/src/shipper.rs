//! Turns a running job's events into protocol calls: log appends at stated offsets (batched,
//! retried idempotently) and step reports, in an order that keeps the acknowledgement points:
//! a step's log is stored before its result is reported.

use crate::coordinator::{CallError, Coordinator};
use runnel_executor::{JobEvent, LogChunk, StepResult, format_codearts_log};
use runnel_protocol::{ErrorKind, LeaseRef, LogAppend, StepReport};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
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
    pending: BTreeMap<usize, Vec<u8>>,
}

impl<'a, C: Coordinator> Shipper<'a, C> {
    pub(crate) fn new(
        coordinator: &'a C,
        lease: &'a LeaseRef,
        steps: Vec<(String, u64)>,
        utc_offset_minutes: i32,
        lease_lost: &'a CancellationToken,
        give_up: &'a CancellationToken,
        retry_backoff: Duration,
    ) -> Self {
        Shipper {
            coordinator,
            lease,
            steps,
            utc_offset_minutes,
            lease_lost,
            give_up,
            retry_backoff,
            pending: BTreeMap::new(),
        }
    }

    /// Consumes every event until the job's runner closes the channel. Keeps draining after a
    /// lost lease (so the runner never blocks) but sends nothing more.
    pub(crate) async fn ship(mut self, mut events: Receiver<JobEvent>) {
        while let Some(event) = events.recv().await {
            self.handle(event).await;
            // Batch whatever else is already waiting, then send it.
            while let Ok(event) = events.try_recv() {
                self.handle(event).await;
            }
            self.flush_all().await;
        }
        self.flush_all().await;
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
                    outputs: Vec::new(),
                };
                self.report(report).await;
            }
            JobEvent::StepFinished { step, result } => {
                self.flush(step).await;
                self.report(finished_report(self.step_run_id(step), &result))
                    .await;
            }
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
        outputs: result.outputs.clone(),
    }
}
