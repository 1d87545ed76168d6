//! `runnel exec` and `runnel lint` end to end: real processes, real files, exit codes and output.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn runnel() -> Command {
    Command::cargo_bin("runnel").expect("the runnel binary is built")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn write_pipeline(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write pipeline");
    path
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn exec(args: &[&str]) -> Outcome {
    let output = runnel()
        .arg("exec")
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("runnel runs");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The summary row for `name` (a stage, job or step), trimmed.
fn row<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no summary row for {name} in:\n{stdout}"))
        .trim()
}

#[test]
fn the_codearts_example_runs_to_completion() {
    let out = exec(&[example("codearts-pipeline.json")
        .to_str()
        .expect("utf-8 path")]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("make build VERSION=1.0.0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("make test: 42 tests passed"),
        "the (decode) script ran: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("./deploy.sh dev release 1.0.0"),
        "{}",
        out.stdout
    );
    assert!(row(&out.stdout, "JOB_Lint1").contains("UNSELECTED"));
    assert!(out.stdout.contains("run COMPLETED"));
}

#[test]
fn choosing_jobs_and_setting_params_changes_the_run() {
    let file = example("codearts-pipeline.json");
    let out = exec(&[
        file.to_str().expect("utf-8 path"),
        "--jobs",
        "JOB_Lint1,JOB_Depl1",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(row(&out.stdout, "JOB_Lint1").contains("COMPLETED"));
    assert!(row(&out.stdout, "JOB_Cmpl1").contains("UNSELECTED"));
    // deploy's condition reads jobs.JOB_Cmpl1.status, which is not COMPLETED in this run.
    assert!(
        row(&out.stdout, "JOB_Depl1").contains("SKIPPED"),
        "{}",
        out.stdout
    );

    let out = exec(&[file.to_str().expect("utf-8 path"), "--param", "env=prod"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("./deploy.sh prod release 1.0.0"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_failure_runs_completed_jobs_and_skips_default_ones() {
    let out = exec(&[example("failure-handling.yml")
        .to_str()
        .expect("utf-8 path")]);
    assert_eq!(out.code, 1);
    assert!(row(&out.stdout, "compile ").contains("FAILED"));
    assert!(row(&out.stdout, "report").contains("COMPLETED"));
    assert!(row(&out.stdout, "test").contains("SKIPPED"));
    assert!(row(&out.stdout, "notify").contains("COMPLETED"));
    assert!(!out.stdout.contains("never printed"));
}

#[test]
fn run_always_stages_run_after_a_failed_stage() {
    let out = exec(&[example("run-always.yml").to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 1);
    assert!(row(&out.stdout, "Deploy (stage)").contains("SKIPPED"));
    assert!(row(&out.stdout, "Cleanup (stage)").contains("COMPLETED"));
    assert!(out.stdout.contains("cleaning up after the run"));
    assert!(out.stdout.contains("the pipeline failed upstream"));
}

#[test]
fn a_job_over_its_timeout_fails_with_timeout() {
    let out = exec(&[
        example("timeout.yml").to_str().expect("utf-8 path"),
        "--kill-grace",
        "1",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        row(&out.stdout, "slow").contains("FAILED (timeout)"),
        "{}",
        out.stdout
    );
    assert!(row(&out.stdout, "fast").contains("COMPLETED"));
}

#[test]
fn the_parallel_example_completes() {
    let out = exec(&[example("parallel.yml").to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("publishing release 1.4.0"));
}

#[test]
fn independent_jobs_run_at_the_same_time() {
    // Each job waits until it sees the other's marker file: this only completes when both
    // run concurrently (with --parallel 1 it times out, which the second run checks).
    let dir = tempfile::tempdir().expect("temp dir");
    let meeting = dir.path().join("meeting");
    std::fs::create_dir(&meeting).expect("dir");
    let pipeline = write_pipeline(
        &dir,
        "rendezvous.yml",
        r#"
variables: { meeting: "" }
jobs:
  - name: left
    timeout: 10s
    steps: [{ run: 'touch "$meeting/left"; until [ -e "$meeting/right" ]; do sleep 0.05; done' }]
  - name: right
    timeout: 10s
    steps: [{ run: 'touch "$meeting/right"; until [ -e "$meeting/left" ]; do sleep 0.05; done' }]
"#,
    );
    let meeting_param = format!("meeting={}", meeting.display());
    let out = exec(&[
        pipeline.to_str().expect("utf-8"),
        "--param",
        &meeting_param,
        "--parallel",
        "2",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);

    std::fs::remove_dir_all(&meeting).expect("reset");
    std::fs::create_dir(&meeting).expect("dir");
    let mut serial = runnel();
    serial.args([
        "exec",
        pipeline.to_str().expect("utf-8"),
        "--param",
        &meeting_param,
        "--parallel",
        "1",
        "--kill-grace",
        "1",
    ]);
    // With one slot, each job waits for a job that cannot start: the first times out.
    let output = serial
        .timeout(Duration::from_secs(60))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn secrets_are_masked_and_values_never_run_as_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("pwned");
    let pipeline = write_pipeline(
        &dir,
        "secrets.yml",
        r#"
variables:
  token: { value: hunter2-s3cr3t, is_secret: true }
  target: { value: "" }
jobs:
  - name: j
    steps:
      - run: |
          echo "token is $token"
          echo "target is ${target}"
          echo ${{ env.target }}
"#,
    );
    let payload = format!(
        "target=$(touch {}); `touch {}`",
        marker.display(),
        marker.display()
    );
    let out = exec(&[pipeline.to_str().expect("utf-8"), "--param", &payload]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("token is ******"), "{}", out.stdout);
    assert!(!out.stdout.contains("hunter2"));
    assert!(
        out.stdout.contains("target is $(touch"),
        "the value is printed, not run: {}",
        out.stdout
    );
    assert!(!marker.exists(), "a parameter value was executed");
}

#[test]
fn invalid_input_is_refused_with_exit_code_2_and_says_what_to_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = write_pipeline(&dir, "broken.yml", "stages: [\n");
    let out = exec(&[broken.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("broken.yml:"), "{}", out.stderr);
    assert!(out.stderr.contains("[syntax]"), "{}", out.stderr);

    let cycle = write_pipeline(
        &dir,
        "cycle.yml",
        "jobs:\n  - { name: a, needs: [b], steps: [{ run: 'true' }] }\n  - { name: b, needs: [a], steps: [{ run: 'true' }] }\n  - { name: c, needs: [nope] }\n",
    );
    let out = exec(&[cycle.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("a → b → a"), "{}", out.stderr);
    assert!(
        out.stderr.contains("no job has identifier `nope`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("a job needs at least one step"),
        "all problems at once: {}",
        out.stderr
    );

    let enumerated = write_pipeline(
        &dir,
        "enum.yml",
        "variables:\n  env: { type: enum, value: dev, limits: [dev, prod] }\njobs:\n  - { name: a, steps: [{ run: 'true' }] }\n",
    );
    let out = exec(&[
        enumerated.to_str().expect("utf-8"),
        "--param",
        "env=staging",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--param"), "{}", out.stderr);
    let out = exec(&[enumerated.to_str().expect("utf-8"), "--param", "colour=red"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("declares no variable `colour`"),
        "{}",
        out.stderr
    );
    let out = exec(&[enumerated.to_str().expect("utf-8"), "--jobs", "zzz"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("`zzz`"), "{}", out.stderr);
    let out = exec(&[dir.path().join("missing.yml").to_str().expect("utf-8")]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);

    // Hostile files: far over the size limit (refused unread), and 100 000 steps in one job.
    let huge = dir.path().join("huge.yml");
    std::fs::File::create(&huge)
        .expect("created")
        .set_len(1 << 30)
        .expect("a sparse gigabyte");
    for command in ["exec", "lint"] {
        let output = runnel()
            .args([command, huge.to_str().expect("utf-8")])
            .timeout(Duration::from_secs(60))
            .output()
            .expect("runnel runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("larger than the limit") && stderr.contains("[too-large]"),
            "{command}: {stderr}"
        );
    }
    let mut steps = String::from("jobs:\n  - name: everything\n    steps:\n");
    for index in 0..100_000 {
        steps.push_str(&format!("      - run: echo {index}\n"));
    }
    let many = write_pipeline(&dir, "many.yml", &steps);
    let out = exec(&[many.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("many.yml:"), "{}", out.stderr);
}

#[test]
fn a_manual_stage_stops_a_local_run_instead_of_waiting_forever() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = write_pipeline(
        &dir,
        "manual.yml",
        "stages:\n  - { name: build, jobs: [{ name: a, steps: [{ run: 'true' }] }] }\n  - { name: deploy, manual: true, jobs: [{ name: b, steps: [{ run: 'true' }] }] }\n",
    );
    let out = exec(&[pipeline.to_str().expect("utf-8")]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("waits for a manual start"),
        "{}",
        out.stderr
    );
    assert!(
        row(&out.stdout, "a ").contains("COMPLETED"),
        "{}",
        out.stdout
    );
    assert!(
        row(&out.stdout, "b ").contains("CANCELED"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("run CANCELED"));
}

#[test]
fn lint_reports_problems_with_exit_code_2_and_passes_valid_files() {
    let output = runnel()
        .args(["lint", example("parallel.yml").to_str().expect("utf-8")])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok (2 stages, 5 jobs"));

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = write_pipeline(
        &dir,
        "bad.json",
        r#"{"stages":[{"name":"s","jobs":[{"name":"j","steps":[{"name":"x"}]}]}]}"#,
    );
    let output = runnel()
        .args(["lint", bad.to_str().expect("utf-8")])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stages[0].jobs[0].steps[0].task"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_cancels_the_run_and_leaves_no_process_behind() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let pipeline = write_pipeline(
        &dir,
        "long.yml",
        r#"
variables: { pid_file: "" }
jobs:
  - name: long
    steps:
      - run: 'sleep 300 & echo $! > "$pid_file"; wait'
      - run: echo never
  - name: later
    needs: [long]
    steps: [{ run: echo never }]
"#,
    );
    let binary = assert_cmd::cargo::cargo_bin("runnel");
    let child = std::process::Command::new(binary)
        .args([
            "exec",
            pipeline.to_str().expect("utf-8"),
            "--kill-grace",
            "1",
        ])
        .arg("--param")
        .arg(format!("pid_file={}", pid_file.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn runnel");
    let deadline = Instant::now() + Duration::from_secs(20);
    let sleeper: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("send SIGINT");
    let output = child.wait_with_output().expect("runnel exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(row(&stdout, "long").contains("CANCELED"), "{stdout}");
    assert!(row(&stdout, "later").contains("CANCELED"), "{stdout}");
    assert!(stdout.contains("run CANCELED"));
    assert!(!is_alive(sleeper), "the step's child process survived");
}

/// Running or sleeping; a zombie (`Z`, waiting to be reaped by a pid 1 that may never do it) is dead.
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
    }
}
