//! Log capture throughput: one step writes N bytes of 100-byte lines; the generator alone, a plain
//! pipe reader, `run_job` in-process (plain and masked) and `runnel exec --quiet` are timed.

use super::{Bench, pipeline_yaml};
use crate::bench::{round3, time_command};
use anyhow::Context as _;
use runnel_domain::status::JobStatus;
use runnel_executor::{
    EnvPolicy, JobEvent, JobTask, LogStream, ShellExecutor, ShellExecutorConfig, StepAction,
    StepTask, run_job,
};
use serde_json::{Value, json};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The goal for captured log bytes per second, in 10^6 bytes.
const THROUGHPUT_GOAL_MB_PER_S: f64 = 300.0;
/// One generated line without its `\n`: 99 + 1 bytes, so whole megabytes are whole lines and the
/// capture adds no `\n` of its own.
const LINE: &str = "runnel bench log line: the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstu";
/// Masker input for the masked run; they never occur in the output, so byte counts still match.
const SECRETS: [&str; 2] = ["a-secret-that-never-appears", "another one"];
/// The read size of the capture, used by the plain pipe reader too.
const READ_BYTES: usize = 128 * 1024;

/// One step writing `bytes` of 100-byte lines, captured several ways.
pub(super) struct Throughput {
    bytes: u64,
    script: String,
    generator_to_dev_null: Duration,
    generator_through_pipe: Duration,
    in_process: Capture,
    in_process_masked: Capture,
    runnel_exec_quiet: Duration,
}

/// What a consumer of `JobEvent`s counted during one in-process job.
struct Capture {
    elapsed: Duration,
    counts: LogCounts,
}

#[derive(Debug, Default)]
struct LogCounts {
    stdout_bytes: u64,
    stdout_chunks: u64,
    other_bytes: u64,
}

/// Runs every throughput measurement for `bytes` bytes.
pub(super) fn measure(bench: &Bench<'_>, bytes: u64) -> anyhow::Result<Throughput> {
    // `yes` dies of SIGPIPE once `head` has enough; `|| true` keeps that from failing the step
    // under `-o pipefail`.
    let script = format!("(yes '{LINE}' || true) | head -c {bytes}");
    eprintln!(
        "runnel bench: log throughput, {bytes} bytes: generator alone, in-process (plain, masked), runnel exec"
    );
    let generator_to_dev_null = time_command(&mut bash_script(&format!("{script} > /dev/null")))?;
    let generator_through_pipe = read_all_stdout(&mut bash_script(&script), bytes)?;
    // The runtime `runnel exec` builds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let in_process = runtime.block_on(capture_in_process(bench, &script, &[]))?;
    let in_process_masked = runtime.block_on(capture_in_process(bench, &script, &SECRETS))?;
    drop(runtime);
    let pipeline = bench.scratch.write(
        "throughput.yaml",
        &pipeline_yaml("bench-throughput", 1, &script),
    )?;
    let runnel_exec_quiet = time_command(&mut bench.runnel_exec(&pipeline, &[]))?;
    Ok(Throughput {
        bytes,
        script,
        generator_to_dev_null,
        generator_through_pipe,
        in_process,
        in_process_masked,
        runnel_exec_quiet,
    })
}

impl Throughput {
    pub(super) fn is_goal_met(&self) -> bool {
        self.in_process.rate(self.bytes) >= THROUGHPUT_GOAL_MB_PER_S
    }

    /// Every byte the generator wrote was captured, no more and no less.
    pub(super) fn is_verified(&self) -> bool {
        self.in_process.counts.stdout_bytes == self.bytes
            && self.in_process_masked.counts.stdout_bytes == self.bytes
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "bytes_written": self.bytes,
            "generator": {
                "script": self.script,
                "to_dev_null": rate_json(self.bytes, self.generator_to_dev_null),
                "through_pipe": rate_json(self.bytes, self.generator_through_pipe),
            },
            "in_process": self.in_process.to_json(self.bytes, 0),
            "in_process_masked": self.in_process_masked.to_json(self.bytes, SECRETS.len()),
            "runnel_exec_quiet": rate_json(self.bytes, self.runnel_exec_quiet),
            "goal_mb_per_s": THROUGHPUT_GOAL_MB_PER_S,
            "goal_met": self.is_goal_met(),
        })
    }

    pub(super) fn print_summary(&self) {
        let bytes = self.bytes;
        eprintln!(
            "  log capture     {:.0} MB/s in-process ({:.0} MB/s masked, {:.0} MB/s through runnel exec --quiet; generator {:.0} MB/s to /dev/null, {:.0} MB/s through a pipe); goal >= {THROUGHPUT_GOAL_MB_PER_S} MB/s: {}",
            self.in_process.rate(bytes),
            self.in_process_masked.rate(bytes),
            mb_per_s(bytes, self.runnel_exec_quiet),
            mb_per_s(bytes, self.generator_to_dev_null),
            mb_per_s(bytes, self.generator_through_pipe),
            if self.is_goal_met() { "met" } else { "MISSED" },
        );
        if !self.is_verified() {
            eprintln!(
                "  BYTE COUNT MISMATCH: wrote {bytes}, captured {} (masked: {})",
                self.in_process.counts.stdout_bytes, self.in_process_masked.counts.stdout_bytes
            );
        }
    }
}

impl Capture {
    fn rate(&self, bytes: u64) -> f64 {
        mb_per_s(bytes, self.elapsed)
    }

    fn to_json(&self, bytes: u64, secrets: usize) -> Value {
        let counts = &self.counts;
        json!({
            "secrets": secrets,
            "seconds": round3(self.elapsed.as_secs_f64()),
            "mb_per_s": round3(self.rate(bytes)),
            "captured_bytes": counts.stdout_bytes,
            "chunks": counts.stdout_chunks,
            "mean_chunk_bytes": counts.stdout_bytes / counts.stdout_chunks.max(1),
            "other_log_bytes": counts.other_bytes,
            "bytes_match": counts.stdout_bytes == bytes,
        })
    }
}

/// Runs `script` as the only step of a job through `run_job` and a `ShellExecutor` set up like
/// `runnel exec`'s, with a consumer task that counts log bytes instead of printing them.
async fn capture_in_process(
    bench: &Bench<'_>,
    script: &str,
    secrets: &[&str],
) -> anyhow::Result<Capture> {
    let executor = ShellExecutor::new(ShellExecutorConfig {
        workspace_root: bench.scratch.path().join("workspaces"),
        keep_workspaces: false,
        kill_grace: Duration::from_secs(5),
        env_policy: EnvPolicy::InheritAll,
        shell: PathBuf::from("bash"),
    });
    let task = JobTask {
        job_key: "bench-throughput".to_owned(),
        secrets: secrets.iter().map(|secret| (*secret).to_owned()).collect(),
        steps: vec![StepTask {
            identifier: "write".to_owned(),
            name: "write".to_owned(),
            action: StepAction::Shell {
                script: script.to_owned(),
            },
            env: Vec::new(),
        }],
        ..JobTask::default()
    };
    // The capacity `runnel exec` gives each job.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let consumer = tokio::spawn(async move {
        let mut counts = LogCounts::default();
        while let Some(event) = rx.recv().await {
            if let JobEvent::Log(chunk) = event {
                if chunk.stream == LogStream::Stdout {
                    counts.stdout_bytes += chunk.data.len() as u64;
                    counts.stdout_chunks += 1;
                } else {
                    counts.other_bytes += chunk.data.len() as u64;
                }
            }
        }
        counts
    });
    let started = Instant::now();
    let outcome = run_job(&executor, &task, tx, CancellationToken::new()).await;
    // `run_job` dropped the sender, so the consumer ends once it has drained every event.
    let counts = consumer.await.context("the log consumer task failed")?;
    let elapsed = started.elapsed();
    if outcome.status != JobStatus::Completed {
        anyhow::bail!(
            "the throughput job ended {}: {}",
            outcome.status,
            outcome.message.as_deref().unwrap_or("no message")
        );
    }
    Ok(Capture { elapsed, counts })
}

/// `bash -c SCRIPT` with the flags the shell executor uses.
fn bash_script(script: &str) -> Command {
    let mut command = Command::new("bash");
    command.args([
        "--noprofile",
        "--norc",
        "-e",
        "-o",
        "pipefail",
        "-c",
        script,
    ]);
    command
}

/// Runs `command` with stdout piped into this process and read in blocks of the capture's read
/// size, doing nothing else: the ceiling any capture of this generator can reach.
fn read_all_stdout(command: &mut Command, expected: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("while starting {command:?}"))?;
    let mut stdout = child.stdout.take().context("stdout is piped")?;
    let mut buffer = vec![0u8; READ_BYTES];
    let mut total = 0u64;
    loop {
        match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => total += count as u64,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err).context("while reading the generator's output"),
        }
    }
    let status = child.wait().context("while waiting for the generator")?;
    let elapsed = started.elapsed();
    if !status.success() || total != expected {
        anyhow::bail!("the generator ended with {status} after {total} of {expected} bytes");
    }
    Ok(elapsed)
}

fn rate_json(bytes: u64, elapsed: Duration) -> Value {
    json!({
        "seconds": round3(elapsed.as_secs_f64()),
        "mb_per_s": round3(mb_per_s(bytes, elapsed)),
    })
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}
