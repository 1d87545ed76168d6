//! The store conformance suite: every test runs on SQLite and on PostgreSQL, each on a fresh database.

// Helpers shared by the tests (not `#[test]` functions themselves) unwrap too.
#![allow(clippy::unwrap_used)]

mod fixtures;
#[macro_use]
mod harness;

mod aggregates;
mod counters;
mod coverage;
mod lease_model;
mod logs;
mod queue;
mod schema;
mod smoke;
