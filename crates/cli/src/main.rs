//! `runnel`: the one binary. `serve` runs the server; `exec` and `lint` work on a pipeline file
//! locally, without a server; the client commands (`login`, `pipeline`, `run`, `logs`,
//! `template`, `admin`, …) talk to a server through its HTTP API.

mod bench;
mod client;
mod exec;
mod lint;
mod pipeline_file;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
    /// Run the server: API, engine and the built-in executor pool.
    ///
    /// Settings: defaults < TOML file (--config or $RUNNEL_CONFIG) < environment
    /// (RUNNEL__SECTION__KEY) < these flags; see docs/configuration.md.
    /// Exit status: 0 after a graceful shutdown (SIGTERM or SIGINT), 1 when the server fails,
    /// 2 for invalid settings.
    Serve(ServeArgs),
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
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The TOML settings file (default: $RUNNEL_CONFIG, else none).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the SQLite database, the secret key and the bootstrap credentials live
    /// (storage.data_dir, default ./runnel-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The address to listen on (server.listen, default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// A PostgreSQL URL (storage.database_url); prefer RUNNEL__STORAGE__DATABASE_URL, since
    /// flags are visible in `ps`.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Jobs the built-in executor pool runs at once (executor.slots, default: two per CPU core).
    #[arg(long, value_name = "N")]
    executor_slots: Option<String>,
    /// Let the server fetch repositories on loopback, private and link-local addresses
    /// (security.allow_private_networks).
    #[arg(long)]
    allow_private_networks: bool,
}

fn main() -> ExitCode {
    // Before anything opens a database; refused only if SQLite already runs, which it cannot.
    let _ = runnel_process::init();
    let cli = Cli::parse();
    let result = match cli.command {
        // The server sets up its own logging from its settings. Only the long-lived server
        // gives freed memory back at once; a short command lets mimalloc keep it.
        Command::Serve(args) => {
            runnel_process::tune_for_server();
            serve(args)
        }
        Command::Exec(args) => {
            init_tracing();
            exec::run(args)
        }
        Command::Lint(args) => {
            init_tracing();
            lint::run(&args)
        }
        Command::Bench { command } => {
            init_tracing();
            bench::run(command)
        }
        Command::Client(command) => {
            init_tracing();
            client::run(command)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runnel: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `runnel serve`: invalid settings are an error (exit 2); a failure of the server exits 1.
fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let flags = runnel_server::Flags {
        config: args.config,
        data_dir: args.data_dir,
        listen: args.listen,
        database_url: args.database_url,
        executor_slots: args.executor_slots,
        allow_private_networks: args.allow_private_networks,
    };
    let sources = runnel_server::SettingsSources::from_process(flags)?;
    let settings = runnel_server::Settings::load(&sources)?;
    runnel_server::init_logging(&settings.logging)?;
    let runtime = settings
        .runtime()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))?;
    match runtime.block_on(runnel_server::serve(settings)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("runnel: {err:#}");
            Ok(ExitCode::from(1))
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
