//! `runnel bench …`: measures Runnel on this machine and prints the figures as one JSON object.
//!
//! Each subcommand prints pretty JSON on stdout (for scripts and for comparing runs) and a short
//! human summary on stderr. This module holds what every benchmark shares: samples of wall
//! times, timed child processes and a scratch directory.

mod exec;
mod serve;

use anyhow::Context as _;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The benchmarks `runnel bench` can run.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Measure `runnel exec`: start-up overhead, many parallel trivial jobs, log capture throughput.
    ///
    /// Exit status: 0 when every run succeeded and every byte count checked out, 1 when a check
    /// failed (the JSON is still printed), 2 when a run could not be measured.
    Exec(exec::ExecBenchArgs),
    /// Measure `runnel serve`: trigger → COMPLETED latency of a one-job `true` pipeline, a storm
    /// of runs triggered at once, server CPU per run, memory idle and at peak.
    ///
    /// Exit status: 0 when every run completed, 1 when some did not (the JSON is still
    /// printed), 2 when the server could not be measured.
    Serve(serve::ServeBenchArgs),
}

pub(crate) fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Exec(args) => exec::run(&args),
        BenchCommand::Serve(args) => serve::run(&args),
    }
}

/// Wall times of repeated runs of one thing.
#[derive(Debug, Clone)]
struct Samples {
    // Invariant: not empty, sorted ascending.
    sorted: Vec<Duration>,
}

impl Samples {
    /// `None` when nothing was measured.
    fn new(mut durations: Vec<Duration>) -> Option<Samples> {
        if durations.is_empty() {
            return None;
        }
        durations.sort_unstable();
        Some(Samples { sorted: durations })
    }

    fn median(&self) -> Duration {
        let count = self.sorted.len();
        if count % 2 == 1 {
            self.sorted[count / 2]
        } else {
            (self.sorted[count / 2 - 1] + self.sorted[count / 2]) / 2
        }
    }

    /// Nearest-rank 90th percentile: the smallest sample not exceeded by 90 % of the runs.
    fn p90(&self) -> Duration {
        self.percentile(90)
    }

    /// Nearest-rank `percent`th percentile (1..=100).
    fn percentile(&self, percent: usize) -> Duration {
        let rank = (self.sorted.len() * percent.min(100)).div_ceil(100);
        self.sorted[rank.saturating_sub(1)]
    }

    fn min(&self) -> Duration {
        self.sorted[0]
    }

    fn max(&self) -> Duration {
        self.sorted[self.sorted.len() - 1]
    }

    fn to_json(&self) -> Value {
        json!({
            "runs": self.sorted.len(),
            "median_ms": millis(self.median()),
            "p90_ms": millis(self.p90()),
            "min_ms": millis(self.min()),
            "max_ms": millis(self.max()),
        })
    }
}

/// A directory for pipeline files and workspaces, removed when dropped.
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create() -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "runnel-bench-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("while creating {}", path.display()))?;
        Ok(ScratchDir { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `content` to `name` inside the directory and returns its path.
    fn write(&self, name: &str, content: &str) -> anyhow::Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::write(&path, content)
            .with_context(|| format!("while writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `command` to completion with stdout discarded and returns its wall time, spawn included.
/// A non-zero exit is an error carrying the end of its stderr.
fn time_command(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("while starting {command:?}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = {
            let chars: Vec<char> = stderr.trim_end().chars().collect();
            chars[chars.len().saturating_sub(2000)..].iter().collect()
        };
        anyhow::bail!("{command:?} ended with {}: {tail}", output.status);
    }
    Ok(elapsed)
}

/// Milliseconds with microsecond precision, the unit of every duration in the reports.
fn millis(duration: Duration) -> f64 {
    round3(duration.as_secs_f64() * 1000.0)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(millis: &[u64]) -> Samples {
        Samples::new(millis.iter().map(|&ms| Duration::from_millis(ms)).collect())
            .expect("not empty")
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(samples(&[4, 1, 3, 2]).median(), Duration::from_micros(2500));
        assert_eq!(samples(&[5, 1, 3]).median(), Duration::from_millis(3));
    }

    #[test]
    fn p90_is_the_nearest_rank() {
        let thirty: Vec<u64> = (1..=30).collect();
        assert_eq!(samples(&thirty).p90(), Duration::from_millis(27));
        assert_eq!(samples(&[7]).p90(), Duration::from_millis(7));
        assert_eq!(samples(&[1, 2]).p90(), Duration::from_millis(2));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(samples(&hundred).percentile(99), Duration::from_millis(99));
        assert_eq!(samples(&thirty).percentile(99), Duration::from_millis(30));
        assert_eq!(samples(&thirty).percentile(50), Duration::from_millis(15));
    }

    #[test]
    fn nothing_measured_gives_no_samples() {
        assert!(Samples::new(Vec::new()).is_none());
    }
}
