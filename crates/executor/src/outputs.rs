//! Step outputs: the `$RUNNEL_OUTPUT` file format (`key=value`, or `key<<DELIM` … `DELIM`).

use crate::mask::Masker;

/// Outputs larger than this are ignored as a whole (GitHub caps outputs at 1 MiB too).
pub(crate) const MAX_OUTPUT_FILE_BYTES: u64 = 1024 * 1024;

/// Outputs found in a file plus one message per ignored part (messages carry no values).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedOutputs {
    pub(crate) outputs: Vec<(String, String)>,
    pub(crate) problems: Vec<String>,
}

/// Parses an output file like GitHub's `$GITHUB_OUTPUT`: lines `key=value`, or a multi-line
/// value `key<<DELIM`, its lines, then a line that is exactly `DELIM`. The first of `=` or `<<`
/// decides the form. A later value replaces an earlier one of the same key in place. Keys and
/// values are masked; non-UTF-8 bytes become U+FFFD.
pub(crate) fn parse_outputs(content: &[u8], masker: &Masker) -> ParsedOutputs {
    let mut parsed = ParsedOutputs::default();
    let mut lines = content.split(|byte| *byte == b'\n').enumerate().peekable();
    while let Some((index, raw_line)) = lines.next() {
        let line_number = index + 1;
        let line = String::from_utf8_lossy(strip_cr(raw_line));
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line
            .find("<<")
            .filter(|&at| equals.is_none_or(|equals| at < equals));
        let entry = match (equals, heredoc) {
            (_, Some(at)) => {
                let (key, delimiter) = (&line[..at], &line[at + 2..]);
                let mut value_lines: Vec<String> = Vec::new();
                let mut closed = false;
                for (_, value_line) in lines.by_ref() {
                    let value_line = String::from_utf8_lossy(strip_cr(value_line));
                    if value_line == delimiter {
                        closed = true;
                        break;
                    }
                    value_lines.push(value_line.into_owned());
                }
                if delimiter.is_empty() || !closed {
                    parsed.problems.push(format!(
                        "ignored output at line {line_number} of $RUNNEL_OUTPUT: `key<<DELIMITER` needs a non-empty delimiter and a closing line"
                    ));
                    continue;
                }
                (key.to_owned(), value_lines.join("\n"))
            }
            (Some(at), None) => (line[..at].to_owned(), line[at + 1..].to_owned()),
            (None, None) => {
                parsed.problems.push(format!(
                    "ignored malformed line {line_number} of $RUNNEL_OUTPUT (expected `key=value` or `key<<DELIMITER`)"
                ));
                continue;
            }
        };
        let (key, value) = entry;
        if key.is_empty() {
            parsed.problems.push(format!(
                "ignored output with an empty key at line {line_number} of $RUNNEL_OUTPUT"
            ));
            continue;
        }
        let (key, value) = (masker.mask_str(&key), masker.mask_str(&value));
        match parsed.outputs.iter_mut().find(|(known, _)| *known == key) {
            Some(existing) => existing.1 = value,
            None => parsed.outputs.push((key, value)),
        }
    }
    parsed
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ParsedOutputs {
        parse_outputs(
            text.as_bytes(),
            &Masker::new(&["s3cret"]).expect("compiles"),
        )
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn simple_and_multi_line_outputs_are_read_in_order() {
        let parsed = parse("a=1\r\nurl=http://x/?q=1\nnotes<<EOF\nline 1\nline=2\nEOF\nempty=\n");
        assert_eq!(
            parsed.outputs,
            pairs(&[
                ("a", "1"),
                ("url", "http://x/?q=1"),
                ("notes", "line 1\nline=2"),
                ("empty", "")
            ])
        );
        assert!(parsed.problems.is_empty());
    }

    #[test]
    fn later_values_replace_earlier_ones_and_secrets_are_masked() {
        let parsed = parse("a=1\ntoken=s3cret\na=2\n");
        assert_eq!(parsed.outputs, pairs(&[("a", "2"), ("token", "******")]));
    }

    #[test]
    fn malformed_lines_are_reported_without_their_content() {
        let parsed = parse("garbage s3cret\n=nokey\nx<<EOF\nnever closed\n");
        assert_eq!(parsed.outputs, vec![]);
        assert_eq!(parsed.problems.len(), 3, "{:?}", parsed.problems);
        assert!(
            parsed
                .problems
                .iter()
                .all(|problem| !problem.contains("s3cret"))
        );
    }
}
