//! Runnel's pipeline model.
//!
//! Owns: the CodeArts `definition` JSON (manifest 3.0) and the YAML pipeline-as-code form,
//! their compilation into a validated [`spec::PipelineSpec`] with *all* diagnostics at once,
//! `${{ … }}` expressions and `${NAME}` references, parameters, the run/stage/job/step state
//! machines and the pure scheduler.
//!
//! Must never know: tokio, databases, HTTP, files, environment variables or the wall clock.
//! Every input is a `&str` or a value; time comes in as an argument.

pub mod compile;
pub mod definition;
pub mod diagnostic;
pub mod expr;
pub mod params;
pub mod prepare;
pub mod scheduler;
pub mod spec;
pub mod state;
pub mod status;
pub mod time;

pub use compile::{compile, compile_text};
pub use definition::Format;
pub use diagnostic::{Diagnostic, DiagnosticCode};
pub use time::Timestamp;
