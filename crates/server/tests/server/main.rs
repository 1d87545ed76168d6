//! `runnel serve` end to end, through `runnel_server::start` on temporary data directories with
//! real shell steps: bootstrap, health, runs through the built-in pool, run control, shutdown
//! and recovery. Every wait is for an event or a state, with a timeout; no sleep is an assertion.

mod bootstrap;
mod common;
mod postgres;
mod recovery;
mod runs;
