//! `runnel bench exec`: start-up overhead of `runnel exec` (optionally on a host made busy with
//! idle processes), many parallel trivial jobs, and log capture throughput.

mod throughput;

use super::{Samples, ScratchDir, millis, round3, time_command};
use anyhow::Context as _;
use serde_json::{Value, json};
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use throughput::Throughput;

#[derive(Debug, clap::Args)]
pub(crate) struct ExecBenchArgs {
    /// Timed runs of the one-step pipeline and of `bash -c true` (interleaved).
    #[arg(long, default_value = "30", value_name = "N")]
    runs: NonZeroU32,
    /// Untimed runs of each before timing starts (parallel jobs: at most one; throughput: none).
    #[arg(long, default_value_t = 3, value_name = "N")]
    warmups: u32,
    /// Independent jobs, each running `true`, in the parallel-jobs pipeline.
    #[arg(long, default_value = "100", value_name = "N")]
    jobs: NonZeroU32,
    /// Timed runs of the parallel-jobs pipeline, for each parallelism.
    #[arg(long, default_value = "5", value_name = "N")]
    parallel_runs: NonZeroU32,
    /// Megabytes (10^6 bytes) of 100-byte lines the throughput step writes.
    #[arg(long, default_value = "1000", value_name = "N")]
    size_mb: NonZeroU64,
    /// Skip the start-up overhead benchmark.
    #[arg(long)]
    skip_overhead: bool,
    /// Skip the parallel-jobs benchmark.
    #[arg(long)]
    skip_parallel: bool,
    /// Skip the log capture throughput benchmark.
    #[arg(long)]
    skip_throughput: bool,
    /// Measure the overhead again with this many extra idle processes on the host (sleeping
    /// children of this benchmark): the cleanup of every job looks at every process. 0 skips it.
    #[arg(long, default_value_t = 0, value_name = "N")]
    idle_processes: u32,
}

/// The goal for `runnel exec` minus `bash -c true`, median.
const OVERHEAD_GOAL_MS: f64 = 5.0;

pub(crate) fn run(args: &ExecBenchArgs) -> anyhow::Result<ExitCode> {
    let bench = Bench {
        runnel: std::env::current_exe().context("while locating the runnel executable")?,
        scratch: ScratchDir::create()?,
        args,
    };
    let overhead = if args.skip_overhead {
        None
    } else {
        Some(bench.overhead(0).context("while measuring exec overhead")?)
    };
    let busy_overhead = if args.skip_overhead || args.idle_processes == 0 {
        None
    } else {
        Some(
            bench
                .overhead(args.idle_processes)
                .context("while measuring exec overhead on a busy host")?,
        )
    };
    let parallel = if args.skip_parallel {
        None
    } else {
        Some(
            bench
                .parallel_jobs()
                .context("while measuring parallel jobs")?,
        )
    };
    let throughput = if args.skip_throughput {
        None
    } else {
        let bytes = args
            .size_mb
            .get()
            .checked_mul(1_000_000)
            .context("--size-mb is too large")?;
        Some(throughput::measure(&bench, bytes).context("while measuring log throughput")?)
    };
    let report = json!({
        "benchmark": "exec",
        "runnel_version": env!("CARGO_PKG_VERSION"),
        "build": build_profile(),
        "machine": machine(),
        "goals": {
            "exec_overhead_median_under_5_ms": overhead.as_ref().map(Overhead::is_goal_met),
            "log_capture_at_least_300_mb_per_s": throughput.as_ref().map(Throughput::is_goal_met),
        },
        "exec_overhead": overhead.as_ref().map(Overhead::to_json),
        "exec_overhead_busy_host": busy_overhead.as_ref().map(Overhead::to_json),
        "parallel_jobs": parallel.as_ref().map(ParallelJobs::to_json),
        "log_throughput": throughput.as_ref().map(Throughput::to_json),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("while printing the report")?
    );
    print_summary(&Figures {
        overhead: overhead.as_ref(),
        busy_overhead: busy_overhead.as_ref(),
        parallel: parallel.as_ref(),
        throughput: throughput.as_ref(),
    });
    let is_verified = throughput.as_ref().is_none_or(Throughput::is_verified);
    Ok(if is_verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What every measurement needs.
struct Bench<'a> {
    /// This very executable, so the figures describe the build that prints them.
    runnel: PathBuf,
    scratch: ScratchDir,
    args: &'a ExecBenchArgs,
}

/// `runnel exec` of a one-step `true` pipeline against `bash -c true`.
struct Overhead {
    /// Extra sleeping processes during the runs.
    idle_processes: u32,
    warmups: u32,
    runnel_exec: Samples,
    bash_true: Samples,
}

/// One pipeline of many independent `true` jobs, at full and at default parallelism.
struct ParallelJobs {
    jobs: u32,
    all_at_once: Samples,
    default_parallel: usize,
    at_default: Samples,
}

/// Everything measured, for the summary.
struct Figures<'a> {
    overhead: Option<&'a Overhead>,
    busy_overhead: Option<&'a Overhead>,
    parallel: Option<&'a ParallelJobs>,
    throughput: Option<&'a Throughput>,
}

/// Sleeping children that make the host look busier; killed and reaped when dropped.
struct IdleProcesses {
    children: Vec<Child>,
}

impl Bench<'_> {
    fn overhead(&self, idle_processes: u32) -> anyhow::Result<Overhead> {
        let args = self.args;
        let pipeline = self
            .scratch
            .write("one-step.yaml", &pipeline_yaml("bench-one-step", 1, "true"))?;
        eprintln!(
            "runnel bench: exec overhead, {} runs after {} warm-ups, {idle_processes} extra idle processes",
            args.runs, args.warmups
        );
        let _idle = IdleProcesses::start(idle_processes)?;
        let mut runnel_exec = Vec::new();
        let mut bash_true = Vec::new();
        // Interleaved, so drift (CPU frequency, other load) affects both sides alike.
        for run in 0..args.warmups + args.runs.get() {
            let runnel = time_command(&mut self.runnel_exec(&pipeline, &[]))?;
            let bash = time_command(Command::new("bash").args(["-c", "true"]))?;
            if run >= args.warmups {
                runnel_exec.push(runnel);
                bash_true.push(bash);
            }
        }
        Ok(Overhead {
            idle_processes,
            warmups: args.warmups,
            runnel_exec: Samples::new(runnel_exec).context("no run was timed")?,
            bash_true: Samples::new(bash_true).context("no run was timed")?,
        })
    }

    fn parallel_jobs(&self) -> anyhow::Result<ParallelJobs> {
        let jobs = self.args.jobs.get();
        let pipeline = self.scratch.write(
            "parallel.yaml",
            &pipeline_yaml("bench-parallel", jobs, "true"),
        )?;
        let default_parallel = std::thread::available_parallelism().map_or(2, |count| count.get());
        eprintln!(
            "runnel bench: {jobs} parallel jobs, {} runs with --parallel {jobs} and with the default ({default_parallel})",
            self.args.parallel_runs
        );
        let all_flag = jobs.to_string();
        let all_at_once = self.time_runs(&pipeline, &["--parallel", &all_flag])?;
        let at_default = self.time_runs(&pipeline, &[])?;
        Ok(ParallelJobs {
            jobs,
            all_at_once,
            default_parallel,
            at_default,
        })
    }

    /// `runnel exec FILE --quiet EXTRA…`, as a user would type it.
    fn runnel_exec(&self, pipeline: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(&self.runnel);
        command.arg("exec").arg(pipeline).arg("--quiet").args(extra);
        command
    }

    /// `parallel_runs` timed runs of `runnel exec`, after at most one warm-up.
    fn time_runs(&self, pipeline: &Path, extra: &[&str]) -> anyhow::Result<Samples> {
        let warmups = self.args.warmups.min(1);
        let mut durations = Vec::new();
        for run in 0..warmups + self.args.parallel_runs.get() {
            let elapsed = time_command(&mut self.runnel_exec(pipeline, extra))?;
            if run >= warmups {
                durations.push(elapsed);
            }
        }
        Samples::new(durations).context("no run was timed")
    }
}

impl Overhead {
    fn overhead_ms(&self) -> f64 {
        round3(millis(self.runnel_exec.median()) - millis(self.bash_true.median()))
    }

    fn overhead_p90_ms(&self) -> f64 {
        round3(millis(self.runnel_exec.p90()) - millis(self.bash_true.p90()))
    }

    fn is_goal_met(&self) -> bool {
        self.overhead_ms() < OVERHEAD_GOAL_MS
    }

    fn to_json(&self) -> Value {
        json!({
            "idle_processes": self.idle_processes,
            "warmups": self.warmups,
            "runnel_exec": self.runnel_exec.to_json(),
            "bash_true": self.bash_true.to_json(),
            "overhead_median_ms": self.overhead_ms(),
            "overhead_p90_ms": self.overhead_p90_ms(),
            "goal_ms": OVERHEAD_GOAL_MS,
            "goal_met": self.is_goal_met(),
        })
    }
}

impl ParallelJobs {
    fn to_json(&self) -> Value {
        json!({
            "jobs": self.jobs,
            "all_at_once": with_parallel(self.jobs as usize, &self.all_at_once),
            "default_parallelism": with_parallel(self.default_parallel, &self.at_default),
        })
    }
}

impl IdleProcesses {
    fn start(count: u32) -> anyhow::Result<IdleProcesses> {
        let mut idle = IdleProcesses {
            children: Vec::new(),
        };
        for _ in 0..count {
            let child = Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("while starting an idle process")?;
            idle.children.push(child);
        }
        Ok(idle)
    }
}

impl Drop for IdleProcesses {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A pipeline of `jobs` independent jobs in one stage, each with one shell step `script`.
fn pipeline_yaml(name: &str, jobs: u32, script: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar, so any script survives as is.
    let script = Value::String(script.to_owned()).to_string();
    let mut yaml = format!("name: {name}\njobs:\n");
    for index in 0..jobs {
        yaml.push_str(&format!(
            "  - id: job_{index}\n    name: job_{index}\n    steps:\n      - run: {script}\n"
        ));
    }
    yaml
}

fn with_parallel(parallel: usize, samples: &Samples) -> Value {
    let mut value = samples.to_json();
    value["parallel"] = json!(parallel);
    value
}

pub(super) fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// What the figures depend on: cores, other load, and how many processes the cleanup scan of
/// every job walks through.
pub(super) fn machine() -> Value {
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            text.split_ascii_whitespace()
                .next()
                .and_then(|first| first.parse::<f64>().ok())
        });
    let processes = std::fs::read_dir("/proc").ok().map(|entries| {
        entries
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.parse::<u32>().is_ok())
            })
            .count()
    });
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map_or(0, |count| count.get()),
        "processes": processes,
        "load_average_1m": load_average,
    })
}

fn print_summary(figures: &Figures<'_>) {
    let verdict = |is_met: bool| if is_met { "met" } else { "MISSED" };
    eprintln!("\nrunnel bench exec ({} build)", build_profile());
    if cfg!(debug_assertions) {
        eprintln!("  note: a debug build is slower; measure a release build for real figures");
    }
    if let Some(overhead) = figures.overhead {
        eprintln!(
            "  exec overhead   {:.2} ms median, {:.2} ms p90 (runnel exec {:.2} ms, bash -c true {:.2} ms); goal < {OVERHEAD_GOAL_MS} ms: {}",
            overhead.overhead_ms(),
            overhead.overhead_p90_ms(),
            millis(overhead.runnel_exec.median()),
            millis(overhead.bash_true.median()),
            verdict(overhead.is_goal_met()),
        );
    }
    if let Some(overhead) = figures.busy_overhead {
        eprintln!(
            "  busy host       {:.2} ms median overhead with {} extra idle processes (runnel exec {:.2} ms)",
            overhead.overhead_ms(),
            overhead.idle_processes,
            millis(overhead.runnel_exec.median()),
        );
    }
    if let Some(parallel) = figures.parallel {
        eprintln!(
            "  parallel jobs   {} jobs: {:.0} ms with --parallel {}, {:.0} ms with the default {} (medians)",
            parallel.jobs,
            millis(parallel.all_at_once.median()),
            parallel.jobs,
            millis(parallel.at_default.median()),
            parallel.default_parallel,
        );
    }
    if let Some(throughput) = figures.throughput {
        throughput.print_summary();
    }
}
