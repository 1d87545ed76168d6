//! `runnel bench exec` end to end with tiny settings, so the harness cannot silently rot.

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::time::Duration;

#[test]
fn bench_exec_reports_every_figure_as_a_positive_number() {
    let output = cargo_bin_cmd!("runnel")
        .args([
            "bench",
            "exec",
            "--runs",
            "2",
            "--warmups",
            "1",
            "--jobs",
            "5",
            "--parallel-runs",
            "1",
            "--size-mb",
            "5",
            "--idle-processes",
            "20",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .expect("runnel bench exec runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");

    for pointer in [
        "/machine/cpus",
        "/exec_overhead/runnel_exec/median_ms",
        "/exec_overhead/runnel_exec/p90_ms",
        "/exec_overhead/bash_true/median_ms",
        "/exec_overhead/bash_true/p90_ms",
        "/exec_overhead/overhead_median_ms",
        "/exec_overhead_busy_host/runnel_exec/median_ms",
        "/exec_overhead_busy_host/idle_processes",
        "/parallel_jobs/jobs",
        "/parallel_jobs/all_at_once/median_ms",
        "/parallel_jobs/all_at_once/parallel",
        "/parallel_jobs/default_parallelism/median_ms",
        "/parallel_jobs/default_parallelism/parallel",
        "/log_throughput/bytes_written",
        "/log_throughput/generator/to_dev_null/mb_per_s",
        "/log_throughput/generator/through_pipe/mb_per_s",
        "/log_throughput/in_process/mb_per_s",
        "/log_throughput/in_process/captured_bytes",
        "/log_throughput/in_process_masked/mb_per_s",
        "/log_throughput/runnel_exec_quiet/mb_per_s",
    ] {
        let value = report.pointer(pointer).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|value| value > 0.0),
            "{pointer} is {value:?} in {report:#}"
        );
    }
    for pointer in [
        "/goals/exec_overhead_median_under_5_ms",
        "/goals/log_capture_at_least_300_mb_per_s",
        "/exec_overhead/goal_met",
        "/log_throughput/goal_met",
    ] {
        assert!(
            report.pointer(pointer).is_some_and(Value::is_boolean),
            "{pointer} in {report:#}"
        );
    }
    assert_eq!(report["parallel_jobs"]["jobs"], 5);
    assert_eq!(report["log_throughput"]["bytes_written"], 5_000_000);
    assert_eq!(report["log_throughput"]["in_process"]["bytes_match"], true);
    assert_eq!(
        report["log_throughput"]["in_process_masked"]["bytes_match"],
        true
    );
    assert!(
        stderr.contains("runnel bench exec"),
        "summary on stderr: {stderr}"
    );
}

#[test]
fn skipped_benchmarks_are_null() {
    let output = cargo_bin_cmd!("runnel")
        .args([
            "bench",
            "exec",
            "--runs",
            "1",
            "--warmups",
            "0",
            "--skip-parallel",
            "--skip-throughput",
        ])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("runnel bench exec runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert!(report["exec_overhead"].is_object(), "{report:#}");
    assert!(report["exec_overhead_busy_host"].is_null(), "{report:#}");
    assert!(report["parallel_jobs"].is_null(), "{report:#}");
    assert!(report["log_throughput"].is_null(), "{report:#}");
    assert!(report["goals"]["log_capture_at_least_300_mb_per_s"].is_null());
}
