//! `runnel bench serve` end to end with tiny sizes, so the harness cannot silently rot.

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::time::Duration;

#[test]
fn bench_serve_reports_every_figure() {
    let output = cargo_bin_cmd!("runnel")
        .args([
            "bench",
            "serve",
            "--runs",
            "3",
            "--warmups",
            "1",
            "--storm",
            "12",
            "--connections",
            "4",
            "--settle",
            "0",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .expect("runnel bench serve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");

    for pointer in [
        "/machine/cpus",
        "/sequential/trigger_to_completed/p50_ms",
        "/sequential/trigger_to_completed/p99_ms",
        "/sequential/trigger_to_completed_seen_by_client/p50_ms",
        "/sequential/trigger_request/p50_ms",
        "/storm/runs_per_s",
        "/storm/all_final_in_s",
        "/rss/idle_mb",
        "/rss/peak_mb",
    ] {
        let value = report.pointer(pointer).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|value| value > 0.0),
            "{pointer} is {value:?} in {report:#}"
        );
    }
    // Step start times and CPU ticks may round to zero on a fast machine; they must be there.
    for pointer in [
        "/sequential/trigger_to_first_step_started/p50_ms",
        "/sequential/server_cpu_per_run_ms",
        "/storm/server_cpu_per_run_ms",
        "/storm/server_system_cpu_per_run_ms",
        "/storm/step_processes_cpu_per_run_ms",
    ] {
        let value = report.pointer(pointer).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|value| value >= 0.0),
            "{pointer} is {value:?} in {report:#}"
        );
    }
    // System time is part of the server's time.
    let storm = |key: &str| {
        report
            .pointer(&format!("/storm/{key}"))
            .and_then(Value::as_f64)
    };
    assert!(
        storm("server_system_cpu_per_run_ms") <= storm("server_cpu_per_run_ms"),
        "{report:#}"
    );
    for pointer in [
        "/goals/trigger_to_completed_median_under_5_ms",
        "/goals/storm_at_least_300_runs_per_s",
        "/goals/server_cpu_per_run_under_1_ms",
        "/goals/idle_rss_under_30_mb",
    ] {
        assert!(
            report.pointer(pointer).is_some_and(Value::is_boolean),
            "{pointer} in {report:#}"
        );
    }
    assert_eq!(report["sequential"]["runs"], 3);
    assert_eq!(report["sequential"]["not_completed"], 0);
    assert_eq!(report["storm"]["runs"], 12);
    assert_eq!(report["storm"]["completed"], 12);
    assert_eq!(report["server"]["journal_mode"], "wal");
    assert_eq!(
        report["server"]["exit_code"], 0,
        "the server stops gracefully"
    );
    assert!(
        report["rss"]["peak_mb"].as_f64() >= report["rss"]["idle_mb"].as_f64(),
        "{report:#}"
    );
    assert!(
        stderr.contains("runnel bench serve"),
        "summary on stderr: {stderr}"
    );
}
