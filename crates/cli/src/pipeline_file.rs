//! Reading and compiling a pipeline file, and printing diagnostics the way editors understand.

use runnel_domain::spec::PipelineSpec;
use runnel_domain::{Diagnostic, Format, compile_text};
use std::io::Write;
use std::path::Path;

/// Compiles `path`; on failure prints every diagnostic to stderr as `file:line:column: place: message`.
pub(crate) fn load(path: &Path) -> anyhow::Result<Result<PipelineSpec, usize>> {
    let text = std::fs::read(path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    let Ok(text) = String::from_utf8(text) else {
        print_diagnostics(
            path,
            &[Diagnostic::new(
                runnel_domain::DiagnosticCode::Syntax,
                "",
                "the file is not UTF-8 text",
            )],
        );
        return Ok(Err(1));
    };
    let format = Format::detect(path.file_name().and_then(|name| name.to_str()), &text);
    match compile_text(&text, format) {
        Ok(spec) => Ok(Ok(spec)),
        Err(diagnostics) => {
            print_diagnostics(path, &diagnostics);
            Ok(Err(diagnostics.len()))
        }
    }
}

pub(crate) fn print_diagnostics(path: &Path, diagnostics: &[Diagnostic]) {
    let stderr = std::io::stderr();
    let mut out = stderr.lock();
    for diagnostic in diagnostics {
        let place = if diagnostic.path.is_empty() {
            String::new()
        } else {
            format!(" {}:", diagnostic.path)
        };
        let position = match (diagnostic.line, diagnostic.column) {
            (Some(line), Some(column)) => format!(":{line}:{column}"),
            _ => String::new(),
        };
        // Best effort: a closed stderr must not turn a diagnostic into a panic.
        let _ = writeln!(
            out,
            "{}{position}:{place} {} [{}]",
            path.display(),
            diagnostic.message,
            diagnostic.code.as_str()
        );
    }
}
