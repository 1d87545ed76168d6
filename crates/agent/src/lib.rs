//! The worker: claims jobs, runs them with an [`Executor`](runnel_executor::Executor), streams
//! their logs and reports their results — through a [`Coordinator`], the only way it talks to
//! the server.
//!
//! Owns: the slot loop (claim → run → complete), heartbeats, log shipping at stated offsets
//! (with batching and idempotent retries), step reports, and what to do when the lease is lost.
//! The server's built-in executor pool runs this loop with an in-process coordinator; a remote
//! agent runs the same loop with an HTTP one.
//!
//! Must not know: the store, the engine, HTTP. Invariants: every write carries the lease
//! token; after `LeaseLost` the worker stops the job and writes nothing more for it; a job's
//! logs are acknowledged before its step results, and step results before (or with, in the
//! same transaction) the job's result.

mod coordinator;
mod shipper;
mod worker;

pub use coordinator::{CallError, Coordinator};
pub use worker::{DEFAULT_REPORT_DELAY, WorkerConfig, run_claimed_job, run_worker};
