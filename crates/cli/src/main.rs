//! `runnel`: the one binary. `exec` and `lint` work on a pipeline file locally, without a server.

mod bench;
mod exec;
mod lint;
mod pipeline_file;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Runnel — a self-hosted CI/CD pipeline service.
#[derive(Debug, Parser)]
#[command(name = "runnel", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline file on this machine, without a server.
    ///
    /// Exit status: 0 when the run COMPLETED, 1 when it failed or was cancelled, 2 for invalid input.
    Exec(exec::ExecArgs),
    /// Check a pipeline file and print every problem found.
    ///
    /// Exit status: 0 when the file is valid, 2 otherwise.
    Lint(lint::LintArgs),
    /// Measure Runnel on this machine and print the figures as JSON.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Exec(args) => exec::run(args),
        Command::Lint(args) => lint::run(&args),
        Command::Bench { command } => bench::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runnel: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs of Runnel itself go to stderr, filtered by `RUNNEL_LOG` (default: warnings).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
