//! Measures capture throughput: one step writes N bytes of 100-byte lines to a draining consumer.
//!
//! `cargo run --release -p runnel-executor --example capture_throughput [BYTES]` (default 1 GB).
//! Runs the job twice: without secrets (pass-through) and with secrets (streaming masker).

use std::time::{Duration, Instant};

use runnel_executor::{
    JobEvent, JobTask, LogStream, ShellExecutor, ShellExecutorConfig, StepAction, StepTask, run_job,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bytes: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1_000_000_000);
    let root = tempfile::tempdir().expect("temp dir");
    let executor = ShellExecutor::new(ShellExecutorConfig::new(root.path()));
    // 99 characters + '\n' = 100-byte lines.
    let line = "0123456789".repeat(10);
    let script = format!("yes '{}' | head -c {bytes}", &line[..99]);
    for secrets in [
        vec![],
        vec![
            "a-secret-that-never-appears".to_owned(),
            "another one".to_owned(),
        ],
    ] {
        let task = JobTask {
            job_key: "throughput".to_owned(),
            secrets: secrets.clone(),
            steps: vec![StepTask {
                identifier: "write".to_owned(),
                name: "write".to_owned(),
                action: StepAction::Shell {
                    script: script.clone(),
                },
                env: Vec::new(),
            }],
            ..JobTask::default()
        };
        let (tx, mut rx) = mpsc::channel(64);
        let consume = async {
            let (mut captured, mut chunks) = (0u64, 0u64);
            while let Some(event) = rx.recv().await {
                if let JobEvent::Log(chunk) = event
                    && chunk.stream == LogStream::Stdout
                {
                    captured += chunk.data.len() as u64;
                    chunks += 1;
                }
            }
            (captured, chunks)
        };
        let started = Instant::now();
        let (outcome, (captured, chunks)) = tokio::join!(
            run_job(&executor, &task, tx, CancellationToken::new()),
            consume
        );
        let elapsed = started.elapsed().max(Duration::from_millis(1));
        assert_eq!(captured, bytes, "every byte captured ({outcome:?})");
        println!(
            "secrets={} captured {captured} bytes in {chunks} chunks, {:.2} s = {:.0} MB/s",
            secrets.len(),
            elapsed.as_secs_f64(),
            captured as f64 / 1e6 / elapsed.as_secs_f64(),
        );
    }
}
