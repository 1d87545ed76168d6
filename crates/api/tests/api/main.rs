//! The API through `Router::oneshot` on a real SQLite store and a real engine (spec §1, §4, §5,
//! §10): authentication, the access matrix (S1), bad input changing nothing, the run flow,
//! idempotency (G6) and secrets (S2).

mod bad_bodies;
mod bad_input;
mod extras;
mod fuzzed;
mod harness;
mod iam;
mod matrix;
mod openapi;
mod organize;
mod pipelines;
mod routes;
mod runs;
mod stream;
