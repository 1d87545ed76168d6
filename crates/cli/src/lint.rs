//! `runnel lint FILE`: compile a pipeline file and print its diagnostics.

use crate::pipeline_file;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct LintArgs {
    /// The pipeline file: CodeArts definition JSON (bare or in a pipeline body) or YAML.
    file: PathBuf,
}

pub(crate) fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    match pipeline_file::load(&args.file)? {
        Ok(spec) => {
            let steps: usize = spec.jobs().iter().map(|job| job.steps.len()).sum();
            println!(
                "{}: ok ({} stages, {} jobs, {} steps, {} variables)",
                args.file.display(),
                spec.stages().len(),
                spec.jobs().len(),
                steps,
                spec.variables().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(count) => {
            eprintln!(
                "{}: {count} problem{}",
                args.file.display(),
                if count == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(2))
        }
    }
}
