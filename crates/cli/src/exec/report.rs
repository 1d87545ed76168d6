//! What `runnel exec` prints: live log lines prefixed by job and step, and the summary table.

use runnel_domain::Timestamp;
use runnel_domain::spec::{JobIdx, PipelineSpec};
use runnel_domain::state::RunState;
use runnel_executor::{LogChunk, LogStream};
use std::io::Write;
use std::time::Duration;

/// Prints log chunks as `[job/step] line`. Bytes are written as they came (masked, maybe not UTF-8).
pub(super) struct LogPrinter {
    quiet: bool,
    /// `[job/step] ` prefixes, per job then per step.
    prefixes: Vec<Vec<Vec<u8>>>,
}

impl LogPrinter {
    pub(super) fn new(spec: &PipelineSpec, quiet: bool) -> LogPrinter {
        let prefixes = spec
            .jobs()
            .iter()
            .map(|job| {
                job.steps
                    .iter()
                    .map(|step| format!("[{}/{}] ", job.identifier, step.name).into_bytes())
                    .collect()
            })
            .collect();
        LogPrinter { quiet, prefixes }
    }

    pub(super) fn print(&self, _spec: &PipelineSpec, job: JobIdx, chunk: &LogChunk) {
        if self.quiet {
            return;
        }
        let Some(prefix) = self
            .prefixes
            .get(job.index())
            .and_then(|steps| steps.get(chunk.step))
        else {
            return;
        };
        let mut buffer = Vec::with_capacity(chunk.data.len() + 64);
        for line in chunk.data.split_inclusive(|byte| *byte == b'\n') {
            buffer.extend_from_slice(prefix);
            if chunk.stream == LogStream::System {
                buffer.extend_from_slice(b"runnel: ");
            }
            buffer.extend_from_slice(line);
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        // A closed stdout (`runnel exec … | head`) must not stop the run.
        let _ = out.write_all(&buffer);
    }

    /// A message from Runnel about a job (skipped, could not start).
    pub(super) fn note(&self, spec: &PipelineSpec, job: JobIdx, message: &str) {
        if !self.quiet {
            println!("[{}] runnel: {message}", spec.job(job).identifier);
        }
    }
}

/// The table printed at the end: every stage, job and step with its status and duration.
pub(super) fn print_summary(spec: &PipelineSpec, state: &RunState, elapsed: Duration) {
    let mut rows: Vec<[String; 3]> = Vec::new();
    for stage in spec.stage_indices() {
        let stage_spec = spec.stage(stage);
        let stage_run = state.stage(stage);
        rows.push([
            format!("{} (stage)", stage_spec.name),
            stage_run.status().to_string(),
            duration(stage_run.started_at(), stage_run.finished_at()),
        ]);
        for &job in &stage_spec.jobs {
            let job_spec = spec.job(job);
            let job_run = state.job(job);
            let status = match job_run.message() {
                Some(message) => format!("{} ({message})", job_run.status()),
                None => job_run.status().to_string(),
            };
            rows.push([
                format!("  {}", job_spec.identifier),
                status,
                duration(job_run.started_at(), job_run.finished_at()),
            ]);
            for (step_spec, step_run) in job_spec.steps.iter().zip(job_run.steps()) {
                let status = match (step_run.exit_code(), step_run.message()) {
                    (_, Some(message)) => format!("{} ({message})", step_run.status()),
                    (Some(code), None) if code != 0 => {
                        format!("{} (exit {code})", step_run.status())
                    }
                    _ => step_run.status().to_string(),
                };
                rows.push([
                    format!("    {}", step_spec.name),
                    status,
                    duration(step_run.started_at(), step_run.finished_at()),
                ]);
            }
        }
    }
    let headers = ["STAGE / JOB / STEP", "STATUS"];
    let widths = [0, 1].map(|column| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .chain([headers[column].len()])
            .max()
            .unwrap_or(0)
    });
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<w0$}  {:<w1$}  DURATION\n",
        headers[0],
        headers[1],
        w0 = widths[0],
        w1 = widths[1]
    ));
    for row in &rows {
        out.push_str(&format!(
            "{:<w0$}  {:<w1$}  {}\n",
            row[0],
            row[1],
            row[2],
            w0 = widths[0],
            w1 = widths[1]
        ));
    }
    out.push_str(&format!(
        "\nrun {} in {}\n",
        state.status(),
        format_duration(elapsed)
    ));
    let stdout = std::io::stdout();
    let _ = stdout.lock().write_all(out.as_bytes());
}

fn duration(started: Option<Timestamp>, finished: Option<Timestamp>) -> String {
    match (started, finished) {
        (Some(started), Some(finished)) => format_duration(finished.since(started)),
        (Some(_), None) => "running".to_owned(),
        _ => "-".to_owned(),
    }
}

fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}m{:02}s", millis / 60_000, (millis % 60_000) / 1000)
    }
}
