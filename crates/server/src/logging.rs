//! The server's own logs: `tracing` to stderr, as text or JSON lines, filtered by `logging.level`.

use crate::settings::{LogFormat, LoggingSettings};
use anyhow::Context as _;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, before `start`; stdout stays free for the
/// one-time bootstrap notice.
pub fn init_logging(settings: &LoggingSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(&settings.level)
        .context("while reading logging.level")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into log files or collectors.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))
}
