//! The client commands end to end: `runnel login`, `pipeline`, `run`, `logs`, `template` and
//! `admin` against a real `runnel serve` child process on a temporary data directory.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);
const RUNNEL: &str = env!("CARGO_BIN_EXE_runnel");

/// A server and a client home: `runnel serve` on its own data dir, and a config dir for the
/// client commands (`XDG_CONFIG_HOME`).
struct World {
    child: Child,
    endpoint: String,
    credentials: Value,
    home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

/// What a client command did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(self) -> Ran {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}\n{}", self.stdout, self.stderr))
    }
}

impl From<Output> for Ran {
    fn from(output: Output) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl World {
    fn start() -> World {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(RUNNEL)
            .args(["serve", "--listen", "127.0.0.1:0", "--executor-slots", "4"])
            .arg("--data-dir")
            .arg(data.path())
            .env("RUNNEL__LOGGING__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runnel serve");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "ready"
                    && let Some(listen) = event["listen"].as_str()
                {
                    let _ = ready_tx.send(listen.to_owned());
                }
            }
        });
        let Ok(listen) = ready_rx.recv_timeout(WAIT) else {
            let _ = child.kill();
            panic!("runnel serve never got ready");
        };
        let credentials: Value = serde_json::from_slice(
            &std::fs::read(data.path().join("bootstrap-credentials.json")).expect("credentials"),
        )
        .expect("JSON");
        World {
            child,
            endpoint: format!("http://{listen}"),
            credentials,
            home: tempfile::tempdir().expect("temp dir"),
            _data: data,
        }
    }

    fn credential(&self, key: &str) -> String {
        self.credentials[key].as_str().expect(key).to_owned()
    }

    /// `runnel ARGS` with this world's config dir and no RUNNEL_* variables from outside.
    fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(RUNNEL);
        command
            .args(args)
            .env("XDG_CONFIG_HOME", config)
            .env("HOME", config)
            .stdin(Stdio::null());
        for name in [
            "RUNNEL_ENDPOINT",
            "RUNNEL_PROJECT",
            "RUNNEL_AK",
            "RUNNEL_SK",
            "RUNNEL_USER",
            "RUNNEL_DOMAIN",
        ] {
            command.env_remove(name);
        }
        command
    }

    fn runnel(&self, args: &[&str]) -> Ran {
        self.command(self.home.path(), args)
            .output()
            .expect("runnel runs")
            .into()
    }

    /// Runs with `input` on stdin, in `config` as the config dir.
    fn runnel_with_input(&self, config: &Path, args: &[&str], input: &str) -> Ran {
        let mut child = self
            .command(config, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runnel runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("runnel ends").into()
    }

    fn login_as(&self, config: &Path, user: &str, password: &str) -> Ran {
        self.runnel_with_input(
            config,
            &[
                "login",
                "--endpoint",
                &self.endpoint,
                "--user",
                user,
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
    }

    fn login_admin(&self) {
        self.login_as(self.home.path(), "admin", &self.credential("password"))
            .ok();
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Waits until `probe` is true (polling a command, with a timeout).
fn wait_until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const BUILD_YAML: &str = "\
name: demo
variables:
  TARGET:
    value: dev
    is_runtime: true
stages:
  - name: Build
    jobs:
      - name: compile
        steps:
          - name: compile it
            run: for i in 1 2 3; do echo \"compile $i for $TARGET\"; done
      - name: test
        needs: [compile]
        steps:
          - name: test it
            run: echo \"tests pass\"
";

#[test]
fn login_saves_a_private_token_and_a_yaml_pipeline_runs_end_to_end() {
    let world = World::start();
    let login = world
        .login_as(world.home.path(), "admin", &world.credential("password"))
        .ok();
    assert!(login.stdout.contains("Logged in to"), "{}", login.stdout);
    assert!(
        login.stdout.contains("Project: default"),
        "the only project is chosen: {}",
        login.stdout
    );
    let config = world.home.path().join("runnel").join("config.json");
    let mode = std::fs::metadata(&config)
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config file holds a token");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("JSON");
    let token = saved["token"].as_str().expect("a token");
    assert!(!login.stdout.contains(token) && !login.stderr.contains(token));
    assert_eq!(saved["project_id"], world.credentials["project_id"]);

    let file = world.write("ci.yml", BUILD_YAML);
    let created = world
        .runnel(&["pipeline", "create", path_arg(&file), "-o", "json"])
        .ok()
        .json();
    let pipeline_id = created["pipeline_id"].as_str().expect("id").to_owned();
    let list = world.runnel(&["pipeline", "list"]).ok();
    assert!(
        list.stdout.contains(&pipeline_id) && list.stdout.contains("demo"),
        "{}",
        list.stdout
    );
    let shown = world.runnel(&["pipeline", "show", "demo"]).ok();
    assert!(shown.stdout.contains("TARGET"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("[compile]"),
        "derived identifiers were sent: {}",
        shown.stdout
    );

    let finished = world
        .runnel(&[
            "pipeline",
            "run",
            "demo",
            "--var",
            "TARGET=prod",
            "--wait",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(finished["status"], "COMPLETED");
    let run_id = finished["id"].as_str().expect("run id").to_owned();

    let runs = world.runnel(&["run", "list", "demo"]).ok();
    assert!(
        runs.stdout.contains("#1") && runs.stdout.contains("COMPLETED"),
        "{}",
        runs.stdout
    );
    let runs = world
        .runnel(&["run", "list", "demo", "--status", "FAILED", "-o", "json"])
        .ok()
        .json();
    assert_eq!(runs["total"], 0, "the status filter reaches the server");

    // Without --pipeline the run is found among the project's pipelines.
    let show = world.runnel(&["run", "show", &run_id]).ok();
    for expected in ["demo #1", "COMPLETED", "compile", "test it"] {
        assert!(
            show.stdout.contains(expected),
            "{expected}: {}",
            show.stdout
        );
    }
    let logs = world.runnel(&["logs", &run_id]).ok();
    let compile = logs
        .stdout
        .find("compile 1 for prod")
        .expect("compile's log");
    let tests = logs.stdout.find("tests pass").expect("test's log");
    assert!(
        compile < tests,
        "steps in definition order: {}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("==> Build / compile / compile it <=="),
        "{}",
        logs.stdout
    );
    let one = world
        .runnel(&[
            "logs",
            "1",
            "--pipeline",
            "demo",
            "--step",
            &step_id(&world, &run_id, "test it"),
        ])
        .ok();
    assert!(
        one.stdout.contains("tests pass") && !one.stdout.contains("compile 1"),
        "{}",
        one.stdout
    );

    let logout = world.runnel(&["logout"]).ok();
    assert!(logout.stdout.contains("Logged out"), "{}", logout.stdout);
    let after = world.runnel(&["pipeline", "list"]);
    assert_eq!(after.code, Some(3), "{}", after.stderr);
    assert!(after.stderr.contains("not logged in"), "{}", after.stderr);
}

/// The id of the step named `name` in a run (from `run show -o json`).
fn step_id(world: &World, run_id: &str, name: &str) -> String {
    let detail = world
        .runnel(&["run", "show", run_id, "-o", "json"])
        .ok()
        .json();
    detail["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|stage| stage["jobs"].as_array().into_iter().flatten())
        .flat_map(|job| job["steps"].as_array().into_iter().flatten())
        .find(|step| step["name"] == name)
        .and_then(|step| step["id"].as_str())
        .unwrap_or_else(|| panic!("step {name} in {detail:#}"))
        .to_owned()
}

#[test]
fn failures_print_the_servers_error_code_and_exit_non_zero() {
    let world = World::start();
    let nobody = world.runnel(&["pipeline", "list", "--endpoint", &world.endpoint]);
    assert_eq!(nobody.code, Some(3));
    assert!(
        nobody.stderr.contains("hint: run `runnel login`"),
        "{}",
        nobody.stderr
    );

    let wrong = world.login_as(world.home.path(), "admin", "not the password");
    assert_eq!(wrong.code, Some(3), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("APIGW.0301"), "{}", wrong.stderr);

    world.login_admin();
    let missing = world.runnel(&["pipeline", "show", &"0".repeat(32)]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("DEVPIPE.00011401 (400): The pipeline does not exist."),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("hint: check the pipeline id"),
        "{}",
        missing.stderr
    );

    let bad = world.write(
        "bad.yml",
        "jobs:\n  - name: a\n    needs: [nowhere]\n    steps: [echo]\n",
    );
    let refused = world.runnel(&["pipeline", "create", path_arg(&bad)]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused
            .stderr
            .contains("bad.yml: jobs[0].needs[0]: no job has identifier `nowhere`"),
        "diagnostics name the file and the place: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing was sent"),
        "{}",
        refused.stderr
    );
    let listed = world
        .runnel(&["pipeline", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(listed["total"], 0, "nothing was created");

    let failing = world.write(
        "fail.yml",
        "name: failing\njobs:\n  - name: a\n    steps: [exit 4]\n",
    );
    world
        .runnel(&["pipeline", "create", path_arg(&failing)])
        .ok();
    let run = world.runnel(&["pipeline", "run", "failing", "--wait"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("ended FAILED"), "{}", run.stdout);

    let bad_var = world.runnel(&["pipeline", "run", "failing", "--var", "novalue"]);
    assert_eq!(bad_var.code, Some(2));
    assert!(bad_var.stderr.contains("NAME=VALUE"), "{}", bad_var.stderr);

    let unreachable = world.runnel(&["pipeline", "list", "--endpoint", "http://127.0.0.1:9"]);
    assert_eq!(
        unreachable.code,
        Some(3),
        "the saved token is not sent to another server"
    );
    let forged = world.runnel(&[
        "pipeline",
        "list",
        "--endpoint",
        "http://127.0.0.1:9",
        "--ak",
        "AK",
        "--sk",
        "SK",
        "--project",
        "p",
    ]);
    assert_eq!(forged.code, Some(4), "{}", forged.stderr);
    assert!(
        forged.stderr.contains("cannot reach the server"),
        "{}",
        forged.stderr
    );
}

#[test]
fn logs_follow_a_running_run_to_its_end_and_runs_stop_and_retry() {
    let world = World::start();
    world.login_admin();
    let slow = world.write(
        "slow.yml",
        "name: slow\njobs:\n  - name: a\n    steps:\n      - name: count\n        run: for i in 1 2 3 4 5; do echo \"tick $i\"; sleep 0.4; done\n  - name: b\n    needs: [a]\n    steps:\n      - name: last\n        run: echo \"last words\"\n",
    );
    world.runnel(&["pipeline", "create", path_arg(&slow)]).ok();
    let started = world
        .runnel(&["pipeline", "run", "slow", "-o", "json"])
        .ok()
        .json();
    let run_id = started["pipeline_run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let follow = world
        .runnel(&["logs", &run_id, "--pipeline", "slow", "--follow"])
        .ok();
    let ticks: Vec<&str> = follow
        .stdout
        .lines()
        .filter(|line| line.contains("tick "))
        .collect();
    assert_eq!(ticks.len(), 5, "{}", follow.stdout);
    assert!(
        follow.stdout.contains("last words"),
        "it followed until the run ended: {}",
        follow.stdout
    );

    // The same by polling the paged API (for proxies that hold streams back), on a new run.
    let started = world
        .runnel(&["pipeline", "run", "slow", "-o", "json"])
        .ok()
        .json();
    let second = started["pipeline_run_id"].as_str().expect("run id");
    let polled = world
        .runnel(&["logs", second, "--pipeline", "slow", "--follow", "--poll"])
        .ok();
    let ticks = polled
        .stdout
        .lines()
        .filter(|line| line.contains("tick "))
        .count();
    assert_eq!(ticks, 5, "{}", polled.stdout);
    assert!(polled.stdout.contains("last words"), "{}", polled.stdout);

    let long = world.write(
        "long.yml",
        "name: long\njobs:\n  - name: a\n    steps: [sleep 600]\n",
    );
    world.runnel(&["pipeline", "create", path_arg(&long)]).ok();
    world.runnel(&["pipeline", "run", "long"]).ok();
    wait_until("the long run to run", || {
        world
            .runnel(&["run", "show", "1", "--pipeline", "long", "-o", "json"])
            .ok()
            .json()["status"]
            == "RUNNING"
    });
    world.runnel(&["pipeline", "stop", "long", "#1"]).ok();
    wait_until("the long run to stop", || {
        world
            .runnel(&["run", "show", "1", "--pipeline", "long", "-o", "json"])
            .ok()
            .json()["status"]
            == "CANCELED"
    });
    let again = world.runnel(&["pipeline", "stop", "long", "1"]);
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains("DEVPIPE.00011404"),
        "{}",
        again.stderr
    );

    let marker = world.home.path().join("tried-once");
    let flaky = world.write(
        "flaky.yml",
        &format!(
            "name: flaky\njobs:\n  - name: a\n    steps:\n      - run: if [ -e {m} ]; then echo second; else touch {m}; exit 1; fi\n",
            m = marker.display()
        ),
    );
    world.runnel(&["pipeline", "create", path_arg(&flaky)]).ok();
    let first = world.runnel(&["pipeline", "run", "flaky", "--wait", "-o", "json"]);
    assert_eq!(first.code, Some(1));
    let run_id = first.json()["id"].as_str().expect("id").to_owned();
    world.runnel(&["pipeline", "retry", "flaky", &run_id]).ok();
    wait_until("the retried run to complete", || {
        world
            .runnel(&["run", "show", &run_id, "-o", "json"])
            .ok()
            .json()["status"]
            == "COMPLETED"
    });
    let runs = world
        .runnel(&["run", "list", "flaky", "-o", "json"])
        .ok()
        .json();
    assert_eq!(runs["total"], 1, "a retry reuses the run");
}

#[test]
fn reviews_and_manual_stages_are_approved_or_rejected_from_the_command_line() {
    let world = World::start();
    world.login_admin();
    let approver = world.credential("user_id");
    let definition = serde_json::json!({"stages": [
        {"name": "Approve", "jobs": [{"name": "review", "identifier": "JOB_review", "steps": [
            {"name": "sign-off", "task": "official_devcloud_checkpoint", "inputs": [
                {"key": "audit_source", "value": "members"}, {"key": "approvers", "value": approver},
                {"key": "check_strategy", "value": "all"}, {"key": "timeout_strategy", "value": "reject"},
                {"key": "timeout", "value": 3600}]}]}]},
        {"name": "Deploy", "pre": [{"task": "official_devcloud_manualTrigger", "sequence": 0}],
         "jobs": [{"name": "ship", "identifier": "JOB_ship", "steps": [
            {"name": "ship", "task": "official_shell_plugin",
             "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": "echo shipped"}]}]}]}
    ]});
    let file = world.write(
        "reviewed.json",
        &serde_json::json!({"name": "reviewed", "definition": definition}).to_string(),
    );
    world.runnel(&["pipeline", "create", path_arg(&file)]).ok();
    let status = |run: &str| {
        world
            .runnel(&["run", "show", run, "--pipeline", "reviewed", "-o", "json"])
            .ok()
            .json()
    };
    world.runnel(&["pipeline", "run", "reviewed"]).ok();
    wait_until("the review to wait", || status("1")["status"] == "PAUSED");
    let approved = world
        .runnel(&[
            "run",
            "approve",
            "1",
            "--pipeline",
            "reviewed",
            "--comment",
            "LGTM",
        ])
        .ok();
    assert!(
        approved.stdout.contains("Approved the review \"sign-off\""),
        "{}",
        approved.stdout
    );
    wait_until("the manual stage to wait", || {
        status("1")["stages"][1]["pre"][0]["status"] == "PAUSED"
    });
    let started = world
        .runnel(&["run", "approve", "1", "--pipeline", "reviewed"])
        .ok();
    assert!(
        started.stdout.contains("manual start of stage \"Deploy\""),
        "{}",
        started.stdout
    );
    wait_until("the run to complete", || {
        status("1")["status"] == "COMPLETED"
    });
    let nothing = world.runnel(&["run", "approve", "1", "--pipeline", "reviewed"]);
    assert_eq!(nothing.code, Some(2));
    assert!(
        nothing.stderr.contains("waits for a decision"),
        "{}",
        nothing.stderr
    );

    world.runnel(&["pipeline", "run", "reviewed"]).ok();
    wait_until("the second review to wait", || {
        status("2")["status"] == "PAUSED"
    });
    world
        .runnel(&[
            "run",
            "reject",
            "#2",
            "--pipeline",
            "reviewed",
            "--comment",
            "not now",
        ])
        .ok();
    wait_until("the rejected run to fail", || {
        status("2")["status"] == "FAILED"
    });
}

#[test]
fn an_admin_sets_up_a_second_team_without_touching_the_database() {
    let world = World::start();
    world.login_admin();
    let bob = world
        .runnel(&["admin", "user", "create", "bob", "-o", "json"])
        .ok()
        .json();
    let password = bob["password"]
        .as_str()
        .expect("a generated password")
        .to_owned();
    assert_eq!(bob["is_domain_admin"], false);
    world
        .runnel(&[
            "admin",
            "project",
            "create",
            "team b",
            "--description",
            "second team",
        ])
        .ok();
    world
        .runnel(&[
            "admin",
            "member",
            "add",
            "team b",
            "bob",
            "--role",
            "developer",
        ])
        .ok();
    let members = world.runnel(&["admin", "member", "list", "team b"]).ok();
    assert!(
        members.stdout.contains("bob") && members.stdout.contains("developer"),
        "{}",
        members.stdout
    );
    let bad_role = world.runnel(&["admin", "member", "add", "team b", "bob", "--role", "owner"]);
    assert_eq!(bad_role.code, Some(1));
    assert!(
        bad_role.stderr.contains("DEVPIPE.00010001") && bad_role.stderr.contains("role"),
        "{}",
        bad_role.stderr
    );

    // Bob logs in with the generated password; his only project is chosen.
    let bob_home = tempfile::tempdir().expect("temp dir");
    let login = world.login_as(bob_home.path(), "bob", &password).ok();
    assert!(login.stdout.contains("Project: team b"), "{}", login.stdout);
    let refused = world
        .command(bob_home.path(), &["admin", "user", "list"])
        .output()
        .expect("runs");
    let refused = Ran::from(refused);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("DEVPIPE.00011405 (403)"),
        "{}",
        refused.stderr
    );

    // An access key for Bob signs requests (RUNNEL_AK/RUNNEL_SK), without any saved login.
    let key = world
        .runnel(&[
            "admin",
            "key",
            "create",
            "bob",
            "--description",
            "ci",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let (ak, sk) = (
        key["ak"].as_str().expect("ak"),
        key["sk"].as_str().expect("sk"),
    );
    let keys = world.runnel(&["admin", "key", "list", "bob"]).ok();
    assert!(
        keys.stdout.contains(ak) && !keys.stdout.contains(sk),
        "{}",
        keys.stdout
    );
    let empty_home = tempfile::tempdir().expect("temp dir");
    let signed = |args: &[&str]| -> Ran {
        world
            .command(empty_home.path(), args)
            .env("RUNNEL_ENDPOINT", &world.endpoint)
            .env("RUNNEL_PROJECT", "team b")
            .env("RUNNEL_AK", ak)
            .env("RUNNEL_SK", sk)
            .output()
            .expect("runs")
            .into()
    };
    let file = world.write(
        "team.yml",
        "name: team-ci\njobs:\n  - name: a\n    steps: [echo team]\n",
    );
    signed(&["pipeline", "create", path_arg(&file)]).ok();
    let run = signed(&["pipeline", "run", "team-ci", "--wait"]).ok();
    assert!(run.stdout.contains("COMPLETED"), "{}", run.stdout);

    // Revoking Bob's tokens logs him out; disabling him stops his key too.
    let revoked = world
        .runnel(&["admin", "token", "revoke", "bob", "-o", "json"])
        .ok()
        .json();
    assert_eq!(revoked["revoked_tokens"], 1);
    let stale = Ran::from(
        world
            .command(bob_home.path(), &["pipeline", "list"])
            .output()
            .expect("runs"),
    );
    assert_eq!(stale.code, Some(3));
    assert!(stale.stderr.contains("APIGW.0301"), "{}", stale.stderr);
    world.runnel(&["admin", "user", "disable", "bob"]).ok();
    let disabled = signed(&["pipeline", "list"]);
    assert_eq!(disabled.code, Some(3), "{}", disabled.stderr);
    let relogin = world.login_as(bob_home.path(), "bob", &password);
    assert_eq!(relogin.code, Some(3), "{}", relogin.stderr);
    let users = world
        .runnel(&["admin", "user", "list", "-o", "json"])
        .ok()
        .json();
    let bob_row = users["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|user| user["name"] == "bob")
        .expect("bob listed");
    assert_eq!(bob_row["is_disabled"], true);
    let myself = world.runnel(&["admin", "user", "disable", "admin"]);
    assert_eq!(myself.code, Some(1));
    assert!(
        myself.stderr.contains("DEVPIPE.00011404"),
        "{}",
        myself.stderr
    );

    world.runnel(&["admin", "user", "enable", "bob"]).ok();
    signed(&["pipeline", "list"]).ok();
    world.runnel(&["admin", "key", "delete", ak]).ok();
    assert_eq!(
        signed(&["pipeline", "list"]).code,
        Some(3),
        "a deleted key signs nothing"
    );
    world
        .runnel(&["admin", "member", "remove", "team b", "bob"])
        .ok();
    world.login_as(bob_home.path(), "bob", &password).ok();
    let projects = Ran::from(
        world
            .command(bob_home.path(), &["project", "list", "-o", "json"])
            .output()
            .expect("runs"),
    )
    .ok()
    .json();
    assert_eq!(projects["total"], 0, "{projects}");
}

#[test]
fn templates_are_listed_created_copied_and_used_for_pipelines() {
    let world = World::start();
    world.login_admin();
    let file = world.write("tpl.yml", BUILD_YAML);
    let created = world
        .runnel(&[
            "template",
            "create",
            path_arg(&file),
            "--name",
            "demo-template",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let template_id = created["templateId"]
        .as_str()
        .expect("templateId")
        .to_owned();
    let shown = world.runnel(&["template", "show", &template_id]).ok();
    assert!(
        shown.stdout.contains("demo-template") && shown.stdout.contains("TARGET"),
        "{}",
        shown.stdout
    );
    let copy = world
        .runnel(&[
            "template",
            "copy",
            &template_id,
            "--name",
            "demo-copy",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let copy_id = copy["templateId"].as_str().expect("templateId").to_owned();
    assert_ne!(copy_id, template_id);
    world.runnel(&["template", "favorite", &copy_id]).ok();
    let list = world
        .runnel(&["template", "list", "--name", "demo", "-o", "json"])
        .ok()
        .json();
    let names: Vec<&str> = list["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|template| template["name"].as_str())
        .collect();
    assert!(
        names.contains(&"demo-template") && names.contains(&"demo-copy"),
        "{list}"
    );
    let is_favorite = |list: &serde_json::Value, id: &str| {
        list["templates"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|template| template["id"] == id)
            .map(|template| template["is_collect"] == true)
            .unwrap_or_else(|| panic!("{id} listed: {list}"))
    };
    assert!(
        is_favorite(&list, &copy_id),
        "the copy is a favorite: {list}"
    );
    assert!(!is_favorite(&list, &template_id), "{list}");
    let shown = world.runnel(&["template", "show", &copy_id]).ok();
    assert!(
        shown.stdout.contains("favorite     yes"),
        "{}",
        shown.stdout
    );
    world
        .runnel(&["template", "favorite", &copy_id, "--off"])
        .ok();
    let list = world
        .runnel(&["template", "list", "--name", "demo", "-o", "json"])
        .ok()
        .json();
    assert!(!is_favorite(&list, &copy_id), "unmarked: {list}");

    let pipeline = world
        .runnel(&[
            "pipeline",
            "create",
            "--from-template",
            &template_id,
            "--name",
            "from-tpl",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert!(pipeline["pipeline_id"].is_string(), "{pipeline}");
    let run = world
        .runnel(&[
            "pipeline",
            "run",
            "from-tpl",
            "--var",
            "TARGET=staging",
            "--wait",
        ])
        .ok();
    assert!(run.stdout.contains("COMPLETED"), "{}", run.stdout);

    world.runnel(&["template", "delete", &copy_id]).ok();
    let gone = world.runnel(&["template", "show", &copy_id]);
    assert_eq!(gone.code, Some(1));
    assert!(gone.stderr.contains("DEVPIPE.00011203"), "{}", gone.stderr);
}
