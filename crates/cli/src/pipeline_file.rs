//! Reading and compiling a pipeline file, and printing diagnostics the way editors understand.

use runnel_domain::spec::PipelineSpec;
use runnel_domain::{Diagnostic, Format, compile_text};
use std::io::{Read as _, Write};
use std::path::Path;

/// Compiles `path`; on failure prints every diagnostic to stderr as `file:line:column: place: message`.
pub(crate) fn load(path: &Path) -> anyhow::Result<Result<PipelineSpec, usize>> {
    // Never more than the limit and a byte: a huge file (or /dev/zero) is refused unread.
    let limit = runnel_domain::definition::MAX_DOCUMENT_BYTES;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| std::io::Read::take(file, limit as u64 + 1).read_to_end(&mut text))
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    if text.len() > limit {
        print_diagnostics(
            path,
            &[Diagnostic::new(
                runnel_domain::DiagnosticCode::TooLarge,
                "",
                format!("the file is larger than the limit of {limit} bytes"),
            )],
        );
        return Ok(Err(1));
    }
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
