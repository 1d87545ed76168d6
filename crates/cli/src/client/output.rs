//! Human output (aligned tables, local times, durations) and `--output json`.

use serde_json::Value;
use std::io::Write as _;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Output {
    /// Aligned tables and short summaries for people.
    #[default]
    Table,
    /// The server's JSON answer (or the command's result as JSON), pretty-printed.
    Json,
}

/// A table with a header row; columns are as wide as their widest cell.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self
            .header
            .iter()
            .map(|cell| cell.chars().count())
            .collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (index, cell) in cells.iter().enumerate() {
                if index + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let pad = widths[index].saturating_sub(cell.chars().count());
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(self.header.clone());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        out
    }
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print(text: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub(crate) fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    print(&format!("{text}\n"));
}

/// A field as text: strings as they are, numbers and booleans printed, null/missing as `-`.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Epoch milliseconds as local time `yyyy-MM-dd HH:mm:ss`; `-` when absent.
pub(crate) fn time(value: &Value) -> String {
    let Some(millis) = as_millis(value) else {
        return "-".to_owned();
    };
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(time) => time
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => "-".to_owned(),
    }
}

/// `end - start` as `1h02m`, `3m05s` or `12s`; running ones count to `now`.
pub(crate) fn duration(start: &Value, end: &Value, now_millis: i64) -> String {
    let Some(start) = as_millis(start) else {
        return "-".to_owned();
    };
    let end = as_millis(end).unwrap_or(now_millis);
    let seconds = (end - start).max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

fn as_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().filter(|millis| *millis > 0),
        Value::String(text) => text.parse().ok().filter(|millis: &i64| *millis > 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_trim_trailing_blanks() {
        let mut table = Table::new(&["ID", "NAME", "STATUS"]);
        table.row(vec!["1".into(), "a-long-name".into(), "OK".into()]);
        table.row(vec!["22".into(), "b".into(), String::new()]);
        assert_eq!(
            table.render(),
            "ID  NAME         STATUS\n1   a-long-name  OK\n22  b\n"
        );
    }

    #[test]
    fn durations_and_missing_values() {
        assert_eq!(duration(&json!(1000), &json!(13_000), 0), "12s");
        assert_eq!(duration(&json!(0), &json!(5), 0), "-");
        assert_eq!(duration(&json!(1000), &Value::Null, 186_000), "3m05s");
        assert_eq!(duration(&json!(1000), &json!(3_721_000), 0), "1h02m");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(time(&Value::Null), "-");
    }
}
