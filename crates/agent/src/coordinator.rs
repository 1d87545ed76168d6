//! The `Coordinator` trait: the job protocol as the worker sees it.

use runnel_protocol::{
    ClaimRequest, ClaimedJob, ErrorKind, HeartbeatReply, JobResult, LeaseRef, LogAppend,
    LogAppendReply, StepReport,
};
use std::future::Future;
use std::time::Duration;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server answered and refused; see [`ErrorKind`].
    #[error("refused: {0:?}")]
    Refused(ErrorKind),
    /// The call may not have arrived (connection lost, server restarting): retry it.
    #[error("transport: {0}")]
    Transport(String),
}

impl CallError {
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, CallError::Refused(ErrorKind::LeaseLost))
    }

    /// Worth retrying with the same arguments.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Transport(_) | CallError::Refused(ErrorKind::Unavailable { .. })
        )
    }
}

/// The server side of the job protocol (see `runnel_protocol` for the sequence of calls).
///
/// Concurrency: one coordinator serves every slot of a worker; calls for different jobs run
/// concurrently. Idempotency: every call may be repeated with the same arguments after a
/// `Transport` error; the server answers the same again and changes nothing more.
pub trait Coordinator: Send + Sync + 'static {
    /// The oldest queued job of the worker's pool, leased to it, or `None`.
    fn claim(
        &self,
        request: &ClaimRequest,
    ) -> impl Future<Output = Result<Option<ClaimedJob>, CallError>> + Send;

    /// Extends the lease; the reply may ask to cancel.
    fn heartbeat(
        &self,
        lease: &LeaseRef,
    ) -> impl Future<Output = Result<HeartbeatReply, CallError>> + Send;

    /// Stores log bytes at the stated offset (A2).
    fn append_log(
        &self,
        lease: &LeaseRef,
        append: LogAppend,
    ) -> impl Future<Output = Result<LogAppendReply, CallError>> + Send;

    /// Records a step's start or result (A3).
    fn report_step(
        &self,
        lease: &LeaseRef,
        report: StepReport,
    ) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Records the job's result; the worker may forget the job afterwards.
    fn complete(
        &self,
        lease: &LeaseRef,
        result: JobResult,
    ) -> impl Future<Output = Result<(), CallError>> + Send;

    /// [`Coordinator::complete`], then — once that succeeded — [`Coordinator::claim`] with
    /// `next` for the slot the job leaves free. A coordinator that can do both in one round
    /// trip (and one transaction on the server) overrides this. `Err` is the completion's
    /// error (nothing was claimed); a failed claim after it is `Ok(None)`, and the slot asks
    /// again the usual way.
    fn complete_and_claim(
        &self,
        lease: &LeaseRef,
        result: JobResult,
        next: &ClaimRequest,
    ) -> impl Future<Output = Result<Option<ClaimedJob>, CallError>> + Send {
        async move {
            self.complete(lease, result).await?;
            Ok(self.claim(next).await.unwrap_or_else(|err| {
                tracing::warn!(worker = %next.worker_id, error = %err, "claim after a completion failed");
                None
            }))
        }
    }

    /// Resolves when a job may be waiting (a nudge from the server), or after `max_wait`.
    fn wait_for_work(&self, max_wait: Duration) -> impl Future<Output = ()> + Send;

    /// Resolves when the server wants this attempt stopped. Heartbeat replies are the fallback
    /// for coordinators that cannot push; those may simply never resolve.
    fn cancelled(&self, lease: &LeaseRef) -> impl Future<Output = ()> + Send;
}
