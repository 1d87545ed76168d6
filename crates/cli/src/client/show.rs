//! The human forms of a pipeline detail and a run detail.

use super::output::{Table, duration, text, time};
use serde_json::Value;

/// The longest job or step name shown in a table (step names default to their script).
const MAX_NAME: usize = 48;

pub(crate) fn show_pipeline(detail: &Value) -> String {
    let mut out = format!("{}  ({})\n", text(&detail["name"]), text(&detail["id"]));
    let line = |out: &mut String, label: &str, value: String| {
        out.push_str(&format!("  {label:<13}{value}\n"));
    };
    if detail["description"]
        .as_str()
        .is_some_and(|text| !text.is_empty())
    {
        line(&mut out, "description", text(&detail["description"]));
    }
    line(
        &mut out,
        "created",
        format!(
            "{} by {}",
            time(&detail["create_time"]),
            text(&detail["creator_name"])
        ),
    );
    line(&mut out, "updated", time(&detail["update_time"]));
    if detail["banned"] == true {
        line(&mut out, "state", "disabled".to_owned());
    }
    let variables = detail["variables"].as_array().cloned().unwrap_or_default();
    if !variables.is_empty() {
        out.push_str("\nVariables\n");
        let mut table = Table::new(&["  NAME", "TYPE", "DEFAULT", "RUN-TIME"]);
        for variable in &variables {
            table.row(vec![
                format!("  {}", text(&variable["name"])),
                text(&variable["type"]),
                text(&variable["value"]),
                if variable["is_runtime"] == true {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
            ]);
        }
        out.push_str(&table.render());
    }
    let definition: Value = detail["definition"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let stages = definition["stages"].as_array().cloned().unwrap_or_default();
    if !stages.is_empty() {
        out.push_str("\nStages\n");
        for stage in &stages {
            let manual = stage["pre"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|step| step["task"] == "official_devcloud_manualTrigger");
            out.push_str(&format!(
                "  {}{}\n",
                text(&stage["name"]),
                if manual { "  (manual start)" } else { "" }
            ));
            for job in stage["jobs"].as_array().into_iter().flatten() {
                let steps = job["steps"].as_array().map_or(0, Vec::len);
                out.push_str(&format!(
                    "    {}  [{}]  {steps} step(s)\n",
                    text(&job["name"]),
                    text(&job["identifier"])
                ));
            }
        }
    }
    out
}

pub(crate) fn show_run(detail: &Value) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = format!(
        "{} #{}  {}  ({})\n",
        text(&detail["name"]),
        text(&detail["run_number"]),
        text(&detail["status"]),
        text(&detail["id"])
    );
    out.push_str(&format!(
        "  pipeline     {}\n  started      {} by {} ({})\n  duration     {}\n",
        text(&detail["pipeline_id"]),
        time(&detail["start_time"]),
        text(&detail["executor_name"]),
        text(&detail["trigger_type"]),
        duration(&detail["start_time"], &detail["end_time"], now)
    ));
    if detail["description"]
        .as_str()
        .is_some_and(|text| !text.is_empty())
    {
        out.push_str(&format!(
            "  description  {}\n",
            text(&detail["description"])
        ));
    }
    out.push('\n');
    let mut table = Table::new(&["STAGE / JOB / STEP", "STATUS", "DURATION", "ID"]);
    for stage in detail["stages"].as_array().into_iter().flatten() {
        table.row(vec![
            text(&stage["name"]),
            text(&stage["status"]),
            duration(&stage["start_time"], &stage["end_time"], now),
            text(&stage["id"]),
        ]);
        for gate in stage["pre"].as_array().into_iter().flatten() {
            if gate["task"] == "official_devcloud_manualTrigger" {
                table.row(vec![
                    "  (manual start)".to_owned(),
                    text(&gate["status"]),
                    String::new(),
                    text(&gate["id"]),
                ]);
            }
        }
        for job in stage["jobs"].as_array().into_iter().flatten() {
            table.row(vec![
                format!("  {}", shorten(&text(&job["name"]), MAX_NAME)),
                text(&job["status"]),
                duration(&job["start_time"], &job["end_time"], now),
                text(&job["id"]),
            ]);
            for step in job["steps"].as_array().into_iter().flatten() {
                table.row(vec![
                    format!("    {}", shorten(&text(&step["name"]), MAX_NAME)),
                    text(&step["status"]),
                    duration(&step["start_time"], &step["end_time"], now),
                    text(&step["id"]),
                ]);
            }
            if let Some(message) = job["message"].as_str().filter(|text| !text.is_empty()) {
                let message = shorten(message, 2 * MAX_NAME);
                table.row(vec![
                    format!("    ! {message}"),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
    }
    out.push_str(&table.render());
    out
}

/// `text` cut to `max` characters, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_by_characters() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("aaaaaaaaaaaa", 5), "aaaa…");
        assert_eq!(shorten("ééééééé", 3), "éé…");
    }
}
