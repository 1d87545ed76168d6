//! `runnel serve`: one process running the store, the engine, the HTTP API and the built-in
//! executor pool.
//!
//! Owns: the typed [`Settings`] tree (defaults < TOML file < `RUNNEL__SECTION__KEY` environment
//! < flags, validated at start-up and handed to components as their `*Config` structs), the
//! secret key file, bootstrap of an empty database, the wiring (store → engine → API router and
//! the agent's worker loop over an in-process [`coordinator::LocalCoordinator`]), health
//! endpoints, graceful shutdown, and the server's own logs. [`start`] is the in-process entry
//! point tests use; [`serve`] adds signals and the one-time bootstrap notice for the binary.
//!
//! Must not know: SQL, scheduling decisions, API handlers, how steps run. It builds each
//! component from its config and connects them; everything durable lives in the store, so a
//! shutdown (or a crash) loses nothing: the next start carries every run on (see
//! `docs/ARCHITECTURE.md`, recovery policy). Library crates get their settings only from here.

mod bootstrap;
pub mod coordinator;
mod files;
mod git;
mod health;
mod logging;
mod memory;
mod server;
pub mod settings;

pub use bootstrap::{BootstrapCredentials, CREDENTIALS_FILE};
pub use files::SECRET_KEY_FILE;
pub use logging::init_logging;
pub use server::{RunningServer, serve, start};
pub use settings::{Flags, Settings, SettingsError, SettingsSources};
