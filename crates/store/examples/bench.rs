//! Prints the store benchmark as JSON: `cargo run --release -p runnel-store --example bench [-- --quick] [--workers N] [--log-mb N] [--queue-jobs N] [--list-runs N] [--postgres URL | --no-postgres] [--no-sqlite]`.
//!
//! `--log-mb 0`, `--queue-jobs 0` or `--list-runs 0` skip that measurement.

use runnel_store::bench::{BenchConfig, run};

#[tokio::main]
async fn main() {
    let mut config = BenchConfig {
        postgres_url: Some("postgres://root@127.0.0.1:5432/postgres".to_owned()),
        ..BenchConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                config.queue_jobs = 5_000;
                config.log_bytes = 64 << 20;
                config.tail_reads = 200;
                config.line_appends = 1_000;
                config.list_runs = 5_000;
                config.list_reads = 100;
            }
            "--postgres" => config.postgres_url = args.next(),
            "--workers" => {
                config.workers = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(config.workers)
            }
            "--no-postgres" => config.postgres_url = None,
            "--no-sqlite" => config.sqlite_dir = None,
            "--log-mb" => {
                let megabytes: u64 = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(1024);
                config.log_bytes = megabytes << 20;
            }
            "--queue-jobs" => {
                config.queue_jobs = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(config.queue_jobs)
            }
            "--list-runs" => {
                config.list_runs = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(config.list_runs)
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let report = run(config).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_else(|err| err.to_string())
    );
}
