//! Shell executor tests with tiny real processes: job semantics, killing, capture, masking, S8.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runnel_domain::status::{JobStatus, StepStatus};
use runnel_executor::{
    EnvPolicy, Executor, JOB_COOKIE_VAR, JobEvent, JobOutcome, JobTask, LogStream, ProcessTracking,
    ShellExecutor, ShellExecutorConfig, ShellWorkspace, StepAction, StepEnd, StepTask, run_job,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Upper bound for any single job in these tests; they normally take well under a second.
const JOB_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers

struct Harness {
    root: tempfile::TempDir,
    config: ShellExecutorConfig,
}

impl Harness {
    fn new() -> Harness {
        let root = tempfile::tempdir().expect("temp dir");
        let mut config = ShellExecutorConfig::new(root.path().join("jobs"));
        config.kill_grace = Duration::from_secs(2);
        Harness { root, config }
    }

    fn executor(&self) -> ShellExecutor {
        ShellExecutor::new(self.config.clone())
    }

    fn executor_with(&self, tracking: ProcessTracking) -> ShellExecutor {
        ShellExecutor::with_tracking(self.config.clone(), tracking)
    }

    /// The executor with job cgroups, or `None` (and a note) where this host has none for us.
    fn cgroup_executor(&self) -> Option<ShellExecutor> {
        let executor = self.executor_with(ProcessTracking::CgroupIfAvailable);
        if executor.cgroup_parent().is_none() {
            eprintln!("no writable cgroup v2 here: the cgroup part of this test is skipped");
            return None;
        }
        Some(executor)
    }

    fn scratch(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }
}

#[derive(Default)]
struct JobBuilder {
    task: JobTask,
}

fn job() -> JobBuilder {
    JobBuilder {
        task: JobTask {
            job_key: "run-1-JOB_test".to_owned(),
            ..JobTask::default()
        },
    }
}

impl JobBuilder {
    fn step(self, script: &str) -> JobBuilder {
        self.step_with(
            StepAction::Shell {
                script: script.to_owned(),
            },
            &[],
        )
    }

    fn step_with(mut self, action: StepAction, env: &[(&str, &str)]) -> JobBuilder {
        let index = self.task.steps.len();
        self.task.steps.push(StepTask {
            identifier: format!("step-{index}"),
            name: format!("step {index}"),
            action,
            env: pairs(env),
        });
        self
    }

    fn env(mut self, name: &str, value: &str) -> JobBuilder {
        self.task.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn secret(mut self, value: &str) -> JobBuilder {
        self.task.secrets.push(value.to_owned());
        self
    }

    fn timeout(mut self, timeout: Duration) -> JobBuilder {
        self.task.timeout = Some(timeout);
        self
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Everything a job reported, for assertions.
struct Ran {
    outcome: JobOutcome,
    events: Vec<JobEvent>,
}

impl Ran {
    fn log(&self, step: usize, stream: LogStream) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|event| match event {
                JobEvent::Log(chunk) if chunk.step == step && chunk.stream == stream => {
                    Some(chunk.data.as_slice())
                }
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    fn stdout(&self, step: usize) -> String {
        String::from_utf8_lossy(&self.log(step, LogStream::Stdout)).into_owned()
    }

    fn system(&self, step: usize) -> String {
        String::from_utf8_lossy(&self.log(step, LogStream::System)).into_owned()
    }

    fn statuses(&self) -> Vec<StepStatus> {
        self.outcome
            .steps
            .iter()
            .map(|result| result.status)
            .collect()
    }

    /// `key=value` words the script echoed on stdout.
    fn echoed(&self, step: usize) -> BTreeMap<String, String> {
        self.stdout(step)
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }
}

/// Runs a job to its end, calling `on_event` for each event as it arrives (the consumer runs
/// concurrently, as in production).
async fn run_observed(
    executor: &ShellExecutor,
    task: &JobTask,
    cancel: CancellationToken,
    mut on_event: impl FnMut(&JobEvent) -> bool,
) -> Ran {
    let (tx, mut rx) = mpsc::channel(64);
    let consume = async {
        let mut kept = Vec::new();
        while let Some(event) = rx.recv().await {
            if on_event(&event) {
                kept.push(event);
            }
        }
        kept
    };
    let both = async { tokio::join!(run_job(executor, task, tx, cancel), consume) };
    let (outcome, events) = tokio::time::timeout(JOB_LIMIT, both)
        .await
        .expect("the job ends in time");
    Ran { outcome, events }
}

async fn run(executor: &ShellExecutor, builder: JobBuilder) -> Ran {
    run_observed(executor, &builder.task, CancellationToken::new(), |_| true).await
}

/// Whether `pid` is a living process (zombies are dead: they only wait to be reaped).
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

/// Living processes whose environment holds `RUNNEL_JOB_COOKIE=<cookie>` (scanned independently
/// of the executor's own scanner).
fn processes_with_cookie(cookie: &str) -> Vec<i32> {
    let needle = format!("RUNNEL_JOB_COOKIE={cookie}");
    std::fs::read_dir("/proc")
        .expect("/proc is mounted")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|entry| entry == needle.as_bytes())
            })
        })
        .filter(|pid| is_alive(*pid))
        .collect()
}

fn pid(echoed: &BTreeMap<String, String>, key: &str) -> i32 {
    echoed
        .get(key)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("script echoed {key}: {echoed:?}"))
}

/// Runs one step of a prepared workspace directly (no `run_job`, so no cleanup) and returns how
/// it ended and its stdout.
async fn run_one_step(
    executor: &ShellExecutor,
    workspace: &mut ShellWorkspace,
    step: &StepTask,
) -> (StepEnd, String) {
    let (exit, stdout) = try_one_step(executor, workspace, step).await;
    (exit.expect("runs").end, stdout)
}

/// [`run_one_step`], returning the executor's answer as it is (a refusal included).
async fn try_one_step(
    executor: &ShellExecutor,
    workspace: &mut ShellWorkspace,
    step: &StepTask,
) -> (
    Result<runnel_executor::StepExit, runnel_executor::ExecError>,
    String,
) {
    let (tx, mut rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let masker = runnel_executor::Masker::none();
    let io = runnel_executor::StepIo {
        step: 0,
        events: &tx,
        masker: &masker,
        stop: &stop,
    };
    let exit = tokio::time::timeout(JOB_LIMIT, executor.run_step(workspace, step, io))
        .await
        .expect("the step ends in time");
    drop(tx);
    let mut stdout = Vec::new();
    while let Some(event) = rx.recv().await {
        if let JobEvent::Log(chunk) = event
            && chunk.stream == LogStream::Stdout
        {
            stdout.extend_from_slice(&chunk.data);
        }
    }
    (exit, String::from_utf8_lossy(&stdout).into_owned())
}

/// `key=value` words of a step's stdout.
fn words(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// A process outside any job that carries `cookie` anyway, in a process group of its own (the
/// executor never signals its own group, so that would prove nothing). Killed on drop.
struct Decoy(std::process::Child);

impl Decoy {
    fn start(cookie: &str) -> Decoy {
        use std::os::unix::process::CommandExt as _;
        let child = std::process::Command::new("sleep")
            .arg("300")
            .env(JOB_COOKIE_VAR, cookie)
            .process_group(0)
            .spawn()
            .expect("start the decoy");
        Decoy(child)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid fits")
    }

    /// Waits until the boot clock has moved past the tick the decoy started in, so that a
    /// process started from now on is known to be younger.
    async fn wait_until_older_than_now(&self) {
        let start = start_ticks(self.pid());
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while boot_ticks() <= start {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the boot clock moves");
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Field 22 of `/proc/<pid>/stat`: start time in clock ticks since boot.
fn start_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process exists");
    let (_, after_name) = stat.rsplit_once(')').expect("stat has a name");
    after_name
        .split_whitespace()
        .nth(19)
        .and_then(|ticks| ticks.parse().ok())
        .expect("stat has a start time")
}

fn boot_ticks() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    use nix::unistd::{SysconfVar, sysconf};
    let per_second = sysconf(SysconfVar::CLK_TCK)
        .expect("sysconf")
        .expect("CLK_TCK is known") as u64;
    let now = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("the boot clock");
    (now.tv_sec() as u64 * per_second) + (now.tv_nsec() as u64 * per_second / 1_000_000_000)
}

// ---------------------------------------------------------------------------------------------
// Killing (S8)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_timeout_kills_the_step_and_every_escaped_grandchild() {
    let harness = Harness::new();
    check_a_timeout_kills_every_escaped_grandchild(&harness.executor()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cgroup_also_kills_every_escaped_grandchild() {
    let harness = Harness::new();
    let Some(executor) = harness.cgroup_executor() else {
        return;
    };
    check_a_timeout_kills_every_escaped_grandchild(&executor).await;
}

async fn check_a_timeout_kills_every_escaped_grandchild(executor: &ShellExecutor) {
    let script = r#"
        sleep 300 &
        echo "background=$!"
        setsid sleep 300 &
        echo "session=$!"
        ( setsid sleep 300 </dev/null >/dev/null 2>&1 & echo "daemon=$!" )
        echo "cookie=$RUNNEL_JOB_COOKIE"
        echo "ready"
        sleep 300
    "#;
    let builder = job()
        .step(script)
        .step("echo never")
        .timeout(Duration::from_secs(1));
    let ran = run(executor, builder).await;

    assert_eq!(ran.outcome.status, JobStatus::Failed);
    assert_eq!(ran.outcome.message.as_deref(), Some("timeout"));
    assert_eq!(ran.statuses(), [StepStatus::Failed, StepStatus::Skipped]);
    assert_eq!(ran.outcome.steps[0].message.as_deref(), Some("timeout"));
    assert_eq!(ran.system(0), "step timed out after 1s (job timeout)\n");
    let echoed = ran.echoed(0);
    for key in ["background", "session", "daemon"] {
        assert!(
            !is_alive(pid(&echoed, key)),
            "{key} process survived the job"
        );
    }
    assert_eq!(processes_with_cookie(&echoed["cookie"]), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_step_cancels_it_skips_the_rest_and_leaves_no_process() {
    let harness = Harness::new();
    let builder = job()
        .step(r#"sleep 300 & echo "background=$! cookie=$RUNNEL_JOB_COOKIE"; echo started; sleep 300"#)
        .step("echo never");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let ran = run_observed(&harness.executor(), &builder.task, cancel, |event| {
        if let JobEvent::Log(chunk) = event
            && chunk.data.windows(8).any(|window| window == b"started\n")
        {
            trigger.cancel();
        }
        true
    })
    .await;

    assert_eq!(ran.outcome.status, JobStatus::Canceled);
    assert_eq!(ran.statuses(), [StepStatus::Canceled, StepStatus::Skipped]);
    assert_eq!(ran.system(0), "step canceled\n");
    let echoed = ran.echoed(0);
    assert!(!is_alive(pid(&echoed, "background")));
    assert_eq!(processes_with_cookie(&echoed["cookie"]), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let mut harness = Harness::new();
    harness.config.kill_grace = Duration::from_millis(300);
    let script = r#"
        ( trap '' TERM; while true; do sleep 1; done ) &
        echo "stubborn=$! cookie=$RUNNEL_JOB_COOKIE"
        sleep 300
    "#;
    let ran = run(
        &harness.executor(),
        job().step(script).timeout(Duration::from_millis(500)),
    )
    .await;
    assert_eq!(ran.outcome.message.as_deref(), Some("timeout"));
    let echoed = ran.echoed(0);
    assert!(!is_alive(pid(&echoed, "stubborn")));
    assert_eq!(processes_with_cookie(&echoed["cookie"]), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_processes_of_a_finished_step_live_until_the_job_ends() {
    let harness = Harness::new();
    let builder = job()
        .step(r#"sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; echo "background=$! cookie=$RUNNEL_JOB_COOKIE""#)
        .step(r#"kill -0 "$(cat bg.pid)" && echo still-alive"#);
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(ran.outcome.status, JobStatus::Completed);
    assert_eq!(
        ran.stdout(1),
        "still-alive\n",
        "the next step still sees it"
    );
    let echoed = ran.echoed(0);
    assert!(
        !is_alive(pid(&echoed, "background")),
        "job cleanup kills what steps left running"
    );
    assert_eq!(processes_with_cookie(&echoed["cookie"]), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_holding_the_pipes_does_not_hang_the_step() {
    let harness = Harness::new();
    let builder = job().step("sleep 300 & echo parent done").step("echo next");
    let started = std::time::Instant::now();
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(
        ran.statuses(),
        [StepStatus::Completed, StepStatus::Completed]
    );
    assert_eq!(ran.stdout(0), "parent done\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Process tracking: the cookie scan's filters, job cgroups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_before_the_job_is_spared_even_with_the_job_cookie() {
    let harness = Harness::new();
    let executor = harness.executor();
    assert_eq!(
        executor.cgroup_parent(),
        None,
        "the default is the cookie scan"
    );
    let task = job()
        .step(r#"sleep 300 >/dev/null 2>&1 & echo "background=$!""#)
        .task;
    let mut workspace = executor.prepare(&task).await.expect("prepare");
    let decoy = Decoy::start(workspace.job_cookie());
    decoy.wait_until_older_than_now().await;

    let (end, stdout) = run_one_step(&executor, &mut workspace, &task.steps[0]).await;
    assert_eq!(end, StepEnd::Exited(0));
    let background = pid(&words(&stdout), "background");
    executor.cleanup(&mut workspace).await.expect("cleanup");

    assert!(!is_alive(background), "the job's own process is killed");
    assert!(
        is_alive(decoy.pid()),
        "a process older than the job's first step cannot be the job's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_started_no_process_scans_nothing_at_cleanup() {
    let harness = Harness::new();
    let executor = harness.executor();
    let mut workspace = executor.prepare(&job().task).await.expect("prepare");
    // Started after `prepare`: only the skipped scan spares it.
    let decoy = Decoy::start(workspace.job_cookie());
    executor.cleanup(&mut workspace).await.expect("cleanup");
    assert!(is_alive(decoy.pid()));
    assert_eq!(
        idle_dirs(&harness),
        [workspace.path().parent().expect("job dir").to_path_buf()],
        "nothing of the job was left: its directory serves the next job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_runs_in_a_cgroup_of_its_own_that_cleanup_removes() {
    let harness = Harness::new();
    let Some(executor) = harness.cgroup_executor() else {
        return;
    };
    let script = r#"echo "cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)""#;
    let ran = run(&executor, job().step(script).step(script)).await;
    assert_eq!(ran.outcome.status, JobStatus::Completed);
    let (first, second) = (ran.echoed(0), ran.echoed(1));
    assert_eq!(first["cgroup"], second["cgroup"], "one cgroup per job");
    let name = Path::new(&first["cgroup"])
        .file_name()
        .expect("a named cgroup")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("runnel-run-1-JOB_test-"), "{name}");
    let parent = executor.cgroup_parent().expect("cgroups");
    assert!(!parent.join(&name).exists(), "cleanup removed the cgroup");

    let other = run(&executor, job().step(script)).await;
    assert_ne!(other.echoed(0)["cgroup"], first["cgroup"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_cgroup_ends_a_forking_chain_that_left_the_group_and_dropped_the_cookie() {
    let harness = Harness::new();
    let Some(executor) = harness.cgroup_executor() else {
        return;
    };
    // Each link clears its environment (no cookie) and starts a new session (no step group):
    // invisible to the cookie scan. The last one keeps forking until it is killed (or, should
    // that fail, until the workspace is gone).
    let script = r#"
        env -i setsid /bin/bash -c '
            echo $$ > "$1/first.pid"
            env -i setsid /bin/bash -c "
                echo \$\$ > \"\$1/second.pid\"
                while [ -d \"\$1\" ]; do sleep 60 & sleep 0.01; done
            " _ "$1" &
            exec sleep 300
        ' _ "$PWD" </dev/null >/dev/null 2>&1 &
        while [ ! -s first.pid ] || [ ! -s second.pid ]; do sleep 0.01; done
        echo "first=$(cat first.pid) second=$(cat second.pid)"
    "#;
    let task = job().step(script).task;
    let mut workspace = executor.prepare(&task).await.expect("prepare");
    let (end, stdout) = run_one_step(&executor, &mut workspace, &task.steps[0]).await;
    assert_eq!(end, StepEnd::Exited(0));
    let echoed = words(&stdout);
    let (first, second) = (pid(&echoed, "first"), pid(&echoed, "second"));
    assert!(is_alive(first) && is_alive(second));
    let cgroup = workspace.cgroup().expect("a job cgroup").to_path_buf();
    executor.cleanup(&mut workspace).await.expect("cleanup");

    assert!(!is_alive(first) && !is_alive(second));
    assert!(!cgroup.exists(), "only an empty cgroup can be removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_removes_its_job_cgroup_sends_the_next_steps_to_the_cookie_scan() {
    let harness = Harness::new();
    let Some(executor) = harness.cgroup_executor() else {
        return;
    };
    let parent = executor.cgroup_parent().expect("cgroups").to_path_buf();
    // Moves itself back to the executor's cgroup and removes the emptied job cgroup: the next
    // step cannot enter it and must run outside, tracked by the cookie scan instead.
    let escape = r#"
        job_cgroup="$PARENT/$(basename "$(sed -n 's/^0:://p' /proc/self/cgroup)")"
        echo $$ > "$PARENT/cgroup.procs"
        rmdir "$job_cgroup"
    "#;
    let builder = job()
        .env("PARENT", &parent.to_string_lossy())
        .step(escape)
        .step(r#"sleep 300 >/dev/null 2>&1 & echo "background=$! cookie=$RUNNEL_JOB_COOKIE""#);
    let ran = run(&executor, builder).await;
    assert_eq!(
        ran.statuses(),
        [StepStatus::Completed, StepStatus::Completed],
        "{}",
        ran.system(0)
    );
    let echoed = ran.echoed(1);
    assert!(!is_alive(pid(&echoed, "background")));
    assert_eq!(processes_with_cookie(&echoed["cookie"]), Vec::<i32>::new());
}

// ---------------------------------------------------------------------------------------------
// Capture

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_of_output_arrive_complete_and_in_order() {
    const LAST: u64 = 12_500_000;
    let harness = Harness::new();
    let builder = job()
        .step(&format!("seq 1 {LAST}"))
        .secret("never-printed-secret");
    let mut received = std::hash::DefaultHasher::new();
    let (mut bytes, mut lines, mut chunks) = (0usize, 0usize, 0usize);
    let ran = run_observed(
        &harness.executor(),
        &builder.task,
        CancellationToken::new(),
        |event| {
            if let JobEvent::Log(chunk) = event
                && chunk.stream == LogStream::Stdout
            {
                received.write(&chunk.data);
                bytes += chunk.data.len();
                lines += memchr::memchr_iter(b'\n', &chunk.data).count();
                chunks += 1;
                assert_eq!(
                    chunk.data.last(),
                    Some(&b'\n'),
                    "chunks hold complete lines"
                );
                return false;
            }
            true
        },
    )
    .await;
    assert_eq!(ran.outcome.status, JobStatus::Completed);

    let mut expected = std::hash::DefaultHasher::new();
    let (mut expected_bytes, mut batch) = (0usize, Vec::with_capacity(1 << 16));
    for number in 1..=LAST {
        writeln!(batch, "{number}").expect("writing to a Vec");
        if batch.len() >= 1 << 16 || number == LAST {
            expected.write(&batch);
            expected_bytes += batch.len();
            batch.clear();
        }
    }
    assert!(expected_bytes > 100_000_000);
    assert_eq!((bytes, lines), (expected_bytes, LAST as usize));
    assert_eq!(
        received.finish(),
        expected.finish(),
        "same bytes in the same order"
    );
    assert!(
        chunks < lines / 100,
        "lines are batched: {chunks} chunks for {lines} lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_split_across_reads_and_lines_never_leaks() {
    let harness = Harness::new();
    let script = r#"
        printf 'token: sup3r'; sleep 0.2; printf 's3cr3t'; sleep 0.2; printf 'v4lue!\n'
        printf 'BEGIN-KEY-LINE-ONE\n'; sleep 0.2; printf 'SECOND-KEY-LINE\n'
        echo "alone: SECOND-KEY-LINE" >&2
        echo "public text"
    "#;
    let builder = job()
        .step(script)
        .secret("sup3rs3cr3tv4lue")
        .secret("BEGIN-KEY-LINE-ONE\nSECOND-KEY-LINE");
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(ran.outcome.status, JobStatus::Completed);
    assert_eq!(ran.stdout(0), "token: ******!\n******\npublic text\n");
    assert_eq!(ran.log(0, LogStream::Stderr), b"alone: ******\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_bytes_arrive_byte_exact() {
    let harness = Harness::new();
    let ran = run(
        &harness.executor(),
        job().step(r"printf '\xff\xfe\n'; printf 'tail \xc3'"),
    )
    .await;
    assert_eq!(ran.log(0, LogStream::Stdout), b"\xff\xfe\ntail \xc3\n");
}

// ---------------------------------------------------------------------------------------------
// Job semantics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_stops_the_job_and_reports_its_exit_code() {
    let harness = Harness::new();
    let ran = run(
        &harness.executor(),
        job().step("echo one").step("exit 3").step("echo never"),
    )
    .await;
    assert_eq!(ran.outcome.status, JobStatus::Failed);
    assert_eq!(
        ran.statuses(),
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    assert_eq!(ran.outcome.steps[0].exit_code, Some(0));
    assert_eq!(ran.outcome.steps[1].exit_code, Some(3));
    assert_eq!(ran.stdout(2), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_with_errexit_and_pipefail() {
    let harness = Harness::new();
    let ran = run(
        &harness.executor(),
        job().step("false | true\necho unreachable"),
    )
    .await;
    assert_eq!(ran.statuses(), [StepStatus::Failed]);
    assert_eq!(ran.stdout(0), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_short_scripts_alike_run_whole_in_a_reused_job_directory() {
    // A script over 64 KiB is written off the async workers, a short one inline; in a recycled
    // job directory each overwrites what the previous job left in its step file.
    let harness = Harness::new();
    let executor = harness.executor();
    let padding = "# padding\n".repeat(20_000);
    let long = format!("{padding}echo long done");
    for script in [long.as_str(), "echo short done", long.as_str()] {
        let ran = run(&executor, job().step(script)).await;
        assert_eq!(ran.statuses(), [StepStatus::Completed]);
        let expected = if script.len() > 64 * 1024 {
            "long done\n"
        } else {
            "short done\n"
        };
        assert_eq!(ran.stdout(0), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_unsupported_steps() {
    let harness = Harness::new();
    let builder = job()
        .step_with(StepAction::Disabled, &[])
        .step("echo ran")
        .step_with(
            StepAction::Unsupported {
                task: "official_devcloud_cloudBuild".to_owned(),
            },
            &[],
        )
        .step("echo never");
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(
        ran.statuses(),
        [
            StepStatus::Skipped,
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    assert_eq!(ran.outcome.status, JobStatus::Failed);
    let message = "plugin `official_devcloud_cloudBuild` is not supported by this executor";
    assert_eq!(ran.outcome.steps[2].message.as_deref(), Some(message));
    assert_eq!(ran.system(2), format!("{message}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_reach_the_script_as_data_never_as_code() {
    let harness = Harness::new();
    let marker = harness.scratch().join("pwned");
    let injection = format!("$(touch {})", marker.display());
    let builder = job()
        .env("INJECTION", &injection)
        .env("SHARED", "from job")
        .step_with(
            StepAction::Shell {
                script: r#"echo $INJECTION; echo "$SEMI"; echo "$SHARED"; echo "$CI $RUNNEL"; [ "$WORKSPACE" = "$PWD" ] && echo in-workspace"#.to_owned(),
            },
            &[("SEMI", "; rm -rf / ; `touch x`"), ("SHARED", "from step")],
        );
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(ran.statuses(), [StepStatus::Completed]);
    assert_eq!(
        ran.stdout(0),
        format!("{injection}\n; rm -rf / ; `touch x`\nfrom step\ntrue true\nin-workspace\n")
    );
    assert!(!marker.exists(), "a parameter value was executed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_keeps_this_process_environment_out() {
    // Cargo sets CARGO_MANIFEST_DIR for test binaries: present here, absent in the step.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let script = r#"echo "${CARGO_MANIFEST_DIR-unset} ${PATH:+path-set}""#;
    let mut harness = Harness::new();
    let ran = run(&harness.executor(), job().step(script)).await;
    assert_eq!(ran.stdout(0), "unset path-set\n");
    harness.config.env_policy = EnvPolicy::InheritAll;
    let ran = run(&harness.executor(), job().step(script)).await;
    assert_eq!(
        ran.stdout(0),
        format!("{} path-set\n", env!("CARGO_MANIFEST_DIR"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_parsed_masked_and_bad_lines_reported() {
    let harness = Harness::new();
    let script = r#"
        echo "version=1.2.3" >> "$RUNNEL_OUTPUT"
        printf 'notes<<EOF\nline one\nline two\nEOF\n' >> "$RUNNEL_OUTPUT"
        echo "token=$TOKEN" >> "$RUNNEL_OUTPUT"
        echo "not an output" >> "$RUNNEL_OUTPUT"
    "#;
    let builder = job()
        .env("TOKEN", "t0ps3cr3t")
        .secret("t0ps3cr3t")
        .step(script);
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(ran.statuses(), [StepStatus::Completed]);
    assert_eq!(
        ran.outcome.steps[0].outputs,
        pairs(&[
            ("version", "1.2.3"),
            ("notes", "line one\nline two"),
            ("token", "******")
        ])
    );
    assert!(
        ran.system(0)
            .contains("ignored malformed line 7 of $RUNNEL_OUTPUT"),
        "{}",
        ran.system(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_variable_name_fails_the_step_with_a_message() {
    let harness = Harness::new();
    let ran = run(
        &harness.executor(),
        job().env("BAD=NAME", "x").step("echo never"),
    )
    .await;
    assert_eq!(ran.statuses(), [StepStatus::Failed]);
    assert_eq!(
        ran.outcome.steps[0].message.as_deref(),
        Some("executor error: invalid environment variable name `BAD=NAME`")
    );
}

// ---------------------------------------------------------------------------------------------
// Workspaces

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_gets_its_own_workspace_and_cleanup_is_idempotent() {
    let harness = Harness::new();
    let executor = harness.executor();
    let task = job().step("true").task;
    let mut first = executor.prepare(&task).await.expect("prepare");
    let mut second = executor.prepare(&task).await.expect("prepare");
    assert_ne!(first.path(), second.path());
    assert_ne!(first.job_cookie(), second.job_cookie());
    assert!(first.path().is_dir() && second.path().is_dir());
    assert!(first.path().starts_with(harness.scratch().join("jobs")));

    std::fs::create_dir(first.path().join("read-only")).expect("mkdir");
    std::fs::write(first.path().join("read-only/file"), "x").expect("write");
    set_mode(&first.path().join("read-only"), 0o500);
    executor.cleanup(&mut first).await.expect("cleanup");
    executor.cleanup(&mut first).await.expect("cleanup again");
    assert_eq!(
        std::fs::read_dir(first.path())
            .expect("kept for the next job")
            .count(),
        0,
        "emptied, read-only directory and all"
    );
    assert!(
        second.path().join("..").is_dir(),
        "cleaning one job leaves the other alone"
    );
    executor.cleanup(&mut second).await.expect("cleanup");
    assert_eq!(idle_dirs(&harness).len(), 2);
}

/// The entries of the workspace root named `slot-…` (job directories that serve job after
/// job; after a cleanup they wait for the next job).
fn idle_dirs(harness: &Harness) -> Vec<PathBuf> {
    match std::fs::read_dir(harness.scratch().join("jobs")) {
        Ok(entries) => entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("slot-"))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_jobs_directory_is_emptied_and_serves_the_next_job() {
    use std::os::unix::fs::MetadataExt as _;
    let harness = Harness::new();
    let executor = harness.executor();
    let first_task = job()
        .step("mkdir -p deep/er && echo one > deep/er/file && echo secret > ../planted && chmod 755 .. && chmod 500 deep")
        .task;
    let mut first = executor.prepare(&first_task).await.expect("prepare");
    let (end, _) = run_one_step(&executor, &mut first, &first_task.steps[0]).await;
    assert_eq!(end, StepEnd::Exited(0));
    let first_job_dir = first.path().parent().expect("job dir").to_path_buf();
    let first_inode = std::fs::metadata(&first_job_dir).expect("job dir").ino();
    executor.cleanup(&mut first).await.expect("cleanup");
    assert_eq!(
        idle_dirs(&harness),
        std::slice::from_ref(&first_job_dir),
        "kept for the next job"
    );

    let second_task = job().step("ls -A; ls -A .. | sort | tr '\\n' ' '").task;
    let mut second = executor.prepare(&second_task).await.expect("prepare");
    let second_job_dir = second.path().parent().expect("job dir").to_path_buf();
    assert_eq!(second_job_dir, first_job_dir, "the same directory, reused");
    assert_eq!(
        std::fs::metadata(&second_job_dir).expect("job dir").ino(),
        first_inode,
        "the same directory, not a new one of the same name"
    );
    for dir in [&second_job_dir, &second.path().to_path_buf()] {
        assert_eq!(
            std::fs::metadata(dir).expect("exists").mode() & 0o777,
            0o700,
            "{} is private again",
            dir.display()
        );
    }
    let (end, stdout) = run_one_step(&executor, &mut second, &second_task.steps[0]).await;
    assert_eq!(end, StepEnd::Exited(0));
    // The workspace is empty; beside it only this job's step files (the planted file is gone).
    assert_eq!(stdout.trim(), "output-0 step-0.sh workspace");
    let StepAction::Shell { script } = &second_task.steps[0].action else {
        panic!("a shell step");
    };
    assert_eq!(
        &std::fs::read_to_string(second_job_dir.join("step-0.sh")).expect("script"),
        script
    );
    executor.cleanup(&mut second).await.expect("cleanup");
    assert_eq!(idle_dirs(&harness), std::slice::from_ref(&second_job_dir));

    let clone = executor.clone();
    drop(executor);
    assert_eq!(idle_dirs(&harness).len(), 1, "a clone still holds them");
    drop(clone);
    assert!(
        idle_dirs(&harness).is_empty(),
        "the last executor clone removes the idle directories"
    );
}

/// Regression: a job directory keeps its name from job to job, so a workspace handle used after
/// its cleanup reached the next job's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleaned_up_workspace_runs_no_more_steps() {
    let harness = Harness::new();
    let executor = harness.executor();
    let task = job().step("echo mine > file").task;
    let mut first = executor.prepare(&task).await.expect("prepare");
    executor.cleanup(&mut first).await.expect("cleanup");
    let mut second = executor.prepare(&task).await.expect("prepare");
    assert_eq!(first.path(), second.path(), "the same directory, reused");
    let (refused, _) = try_one_step(&executor, &mut first, &task.steps[0]).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        !second.path().join("file").exists(),
        "the next job's workspace is untouched"
    );
    executor.cleanup(&mut second).await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_directory_removed_by_the_operator_is_replaced() {
    let harness = Harness::new();
    let executor = harness.executor();
    let ran = run(&executor, job().step("touch made")).await;
    assert_eq!(ran.statuses(), [StepStatus::Completed]);
    let idle = idle_dirs(&harness);
    assert_eq!(idle.len(), 1);
    std::fs::remove_dir_all(&idle[0]).expect("cleared by the operator");
    let ran = run(&executor, job().step("ls -A; touch made")).await;
    assert_eq!(ran.statuses(), [StepStatus::Completed]);
    assert_eq!(ran.stdout(0), "", "a fresh, empty workspace");
    let replaced = idle_dirs(&harness);
    assert_eq!(replaced.len(), 1);
    assert_ne!(replaced, idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_left_processes_behind_gets_its_directory_removed_not_recycled() {
    let harness = Harness::new();
    let executor = harness.executor();
    let task = job()
        .step(r#"setsid sleep 300 >/dev/null 2>&1 & echo "escaped=$!""#)
        .task;
    let mut workspace = executor.prepare(&task).await.expect("prepare");
    let (end, stdout) = run_one_step(&executor, &mut workspace, &task.steps[0]).await;
    assert_eq!(end, StepEnd::Exited(0));
    let escaped = pid(&words(&stdout), "escaped");
    let job_dir = workspace.path().parent().expect("job dir").to_path_buf();
    executor.cleanup(&mut workspace).await.expect("cleanup");
    assert!(!is_alive(escaped));
    assert!(!job_dir.exists());
    assert!(idle_dirs(&harness).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_workspaces_stay_but_their_processes_die() {
    let mut harness = Harness::new();
    harness.config.keep_workspaces = true;
    let builder = job().step(r#"echo data > file; sleep 300 >/dev/null 2>&1 & echo "background=$! workspace=$WORKSPACE""#);
    let ran = run(&harness.executor(), builder).await;
    let echoed = ran.echoed(0);
    assert!(!is_alive(pid(&echoed, "background")));
    assert!(Path::new(&echoed["workspace"]).join("file").is_file());
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_workspace_without_cleanup_still_kills_its_processes() {
    let harness = Harness::new();
    check_dropping_a_workspace_kills_its_processes(&harness.executor()).await;
    if let Some(executor) = harness.cgroup_executor() {
        check_dropping_a_workspace_kills_its_processes(&executor).await;
    }
}

async fn check_dropping_a_workspace_kills_its_processes(executor: &ShellExecutor) {
    let task = job()
        .step(r#"setsid sleep 300 >/dev/null 2>&1 & echo "escaped=$!""#)
        .task;
    let mut workspace = executor.prepare(&task).await.expect("prepare");
    let cookie = workspace.job_cookie().to_owned();
    let (end, stdout) = run_one_step(executor, &mut workspace, &task.steps[0]).await;
    assert_eq!(end, StepEnd::Exited(0));
    let escaped = pid(&words(&stdout), "escaped");
    assert!(is_alive(escaped), "alive until the job ends");
    let job_dir = workspace.path().to_path_buf();
    let cgroup = workspace.cgroup().map(Path::to_path_buf);
    assert_eq!(cgroup.is_some(), executor.cgroup_parent().is_some());
    drop(workspace);
    assert!(!is_alive(escaped));
    assert_eq!(processes_with_cookie(&cookie), Vec::<i32>::new());
    assert!(job_dir.exists(), "only cleanup removes the directory");
    assert!(
        cgroup.is_none_or(|cgroup| !cgroup.exists()),
        "the emptied cgroup is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_can_be_spawned_as_tasks_and_run_concurrently() {
    let harness = Harness::new();
    let executor = std::sync::Arc::new(harness.executor());
    let mut handles = Vec::new();
    for index in 0..3 {
        let executor = executor.clone();
        let task = job().step(&format!("echo job-{index} in $WORKSPACE")).task;
        handles.push(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel(64);
            let drain = async { while rx.recv().await.is_some() {} };
            let (outcome, ()) = tokio::join!(
                run_job(&*executor, &task, tx, CancellationToken::new()),
                drain
            );
            outcome
        }));
    }
    for handle in handles {
        let outcome = tokio::time::timeout(JOB_LIMIT, handle)
            .await
            .expect("in time")
            .expect("no panic");
        assert_eq!(outcome.status, JobStatus::Completed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_symlink_or_fifo_as_output_file_is_refused_not_followed() {
    let harness = Harness::new();
    let builder = job()
        .step(r#"ln -sf /etc/hostname "$RUNNEL_OUTPUT""#)
        .step(r#"rm "$RUNNEL_OUTPUT"; mkfifo "$RUNNEL_OUTPUT""#);
    let ran = run(&harness.executor(), builder).await;
    assert_eq!(
        ran.statuses(),
        [StepStatus::Completed, StepStatus::Completed]
    );
    assert!(
        ran.outcome
            .steps
            .iter()
            .all(|result| result.outputs.is_empty())
    );
    assert!(
        ran.system(0).starts_with("cannot read $RUNNEL_OUTPUT"),
        "{}",
        ran.system(0)
    );
    assert_eq!(
        ran.system(1),
        "cannot read $RUNNEL_OUTPUT: not a regular file\n"
    );
}
