//! Process-wide set-up of a Runnel server process, shared by the `runnel` binary and the
//! benchmarks that must measure what it runs (`crates/api/examples/bench_api.rs`).
//!
//! * [`allocator`]: mimalloc is the global allocator of any program that links this crate,
//!   and [`init`] routes SQLite's own allocations to it;
//! * [`sqlite_cache`]: SQLite's default page cache behind a wrapper that skips needless
//!   truncations.
//!
//! Both SQLite hooks must be installed before SQLite initializes, i.e. before the process
//! opens its first connection: call [`init`] first thing in `main`.

pub mod allocator;
pub mod sqlite_cache;

/// Installs both SQLite hooks (allocator, page cache). Either is refused only when SQLite
/// already runs, which leaves SQLite with what it started with (correct, just slower); the
/// codes are returned for a caller that wants to report them.
pub fn init() -> (Result<(), std::ffi::c_int>, Result<(), std::ffi::c_int>) {
    (allocator::route_sqlite(), sqlite_cache::install())
}

/// For a long-lived server: memory a thread frees goes back to the system at once
/// ([`allocator::tune`]).
pub fn tune_for_server() {
    allocator::tune();
}
