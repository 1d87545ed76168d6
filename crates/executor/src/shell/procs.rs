//! Finding and killing a job's processes: the job's cgroup where there is one, otherwise process
//! groups plus a `/proc/*/environ` cookie scan.
//!
//! Like Jenkins' ProcessTreeKiller, every step process carries `RUNNEL_JOB_COOKIE=<uuid>` in its
//! environment, inherited by everything it starts, including processes that left the step's
//! process group (`setsid`, double fork). Members of a step's process group that dropped the
//! cookie (`env -i`) are found through the group, once the group is known to be ours. The scan
//! only looks at processes started since the job's first step process outside a cgroup (older
//! ones cannot be the job's, see `scan`), and does not run at all when there is none.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::time::Instant;

use super::cgroup::JobCgroup;
use super::scan::{ForkCounters, ProcessInfo, ScanFrom, has_exited, own_pid, scan, scan_narrow};

/// How often the grace period checks whether everything has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// SIGKILL rounds; each catches children forked since the previous scan.
const KILL_ROUNDS: usize = 50;
/// How long to wait for a SIGKILLed main process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive scans that must find nothing before a kill loop ends: a process in the middle
/// of `execve` (a `setsid cmd &` the step just started) can have an unreadable environment for
/// an instant, so one empty scan does not prove the job has no process left.
const QUIET_ROUNDS: usize = 2;
/// How long a dropped workspace waits for its SIGKILLed cgroup to empty before removing it.
const DROP_EMPTY_TIMEOUT: Duration = Duration::from_millis(500);

/// Which processes belong to a job.
#[derive(Debug)]
pub(crate) struct JobProcesses {
    /// The exact environment entry `RUNNEL_JOB_COOKIE=<uuid>`.
    pub(crate) cookie_entry: Vec<u8>,
    /// Process groups of the job's steps (one per step, id = the step's main pid).
    pub(crate) groups: Vec<i32>,
    /// The job's cgroup, once a step process was started in it.
    pub(crate) cgroup: Option<JobCgroup>,
    /// Set just before the first step process started outside a cgroup: the scan looks only at
    /// processes started since. `None`: no such process, nothing to scan for.
    pub(crate) scan_from: Option<ScanFrom>,
}

impl JobProcesses {
    pub(crate) fn new(cookie_entry: Vec<u8>) -> JobProcesses {
        JobProcesses {
            cookie_entry,
            groups: Vec::new(),
            cgroup: None,
            scan_from: None,
        }
    }

    /// Called before starting a process outside a cgroup: from now on the scan is needed, for
    /// processes started from now on. Returns whether this is the job's first such process.
    pub(crate) fn begin_scan(&mut self) -> bool {
        let is_first = self.scan_from.is_none();
        if is_first {
            // Set before the spawn, so that a workspace dropped meanwhile still scans.
            self.scan_from = Some(ScanFrom::now());
        }
        is_first
    }

    /// Limits the scan to pids allocated since `first`, the job's first process outside a
    /// cgroup, forked right after `before` was read.
    pub(crate) fn narrow_scan(&mut self, first: &Child, before: Option<ForkCounters>) {
        let pid = first.id().and_then(|pid| i32::try_from(pid).ok());
        if let (Some(from), Some(pid)) = (self.scan_from, pid) {
            self.scan_from = Some(from.with_first_process(pid, before));
        }
    }
}

/// What [`terminate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Terminated {
    /// Processes other than the main process's group leader that were signalled.
    pub(crate) signalled: usize,
    /// The last look found nothing that might still be the job's. False when a process showed
    /// no environment on every one of `UNKNOWN_LOOKS` looks, or after the SIGKILL phase.
    pub(crate) is_certain: bool,
}

/// Looks again, this far apart and at most this often, when the only processes that might be
/// the job's showed no environment (caught in the middle of `execve`, which takes moments).
const UNKNOWN_RETRY: Duration = Duration::from_millis(2);
const UNKNOWN_LOOKS: usize = 5;

/// Terminates every process of the job: SIGTERM, up to `grace` for them to exit, then SIGKILL
/// until none is left. `main` is a step's main process if it may still be running; its group is
/// signalled as a whole and it is reaped before this returns. Never signals this process or its
/// group.
pub(crate) async fn terminate(
    job: &JobProcesses,
    mut main: Option<&mut Child>,
    grace: Duration,
) -> Terminated {
    let mut trusted_groups: HashSet<i32> = HashSet::new();
    // While the main process is unreaped its pid cannot be reused, so its group id is ours.
    if let Some(group) = main.as_mut().and_then(|child| running_pid(child)) {
        trusted_groups.insert(group);
        let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
    }
    let mut signalled: HashSet<i32> = HashSet::new();
    let grace_end = Instant::now() + grace;
    let mut unknown_looks = 0;
    loop {
        let found = find(job, &mut trusted_groups).await;
        let main_running = main
            .as_mut()
            .is_some_and(|child| running_pid(child).is_some());
        if found.is_empty() && !main_running && all_exited(&signalled) {
            if found.unknown > 0 && unknown_looks < UNKNOWN_LOOKS {
                unknown_looks += 1;
                tokio::time::sleep(UNKNOWN_RETRY).await;
                continue;
            }
            return Terminated {
                signalled: signalled.len(),
                is_certain: found.unknown == 0,
            };
        }
        for pid in found.targets {
            if signalled.insert(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        if Instant::now() >= grace_end {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    if let Some(group) = main.as_mut().and_then(|child| running_pid(child)) {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    if let Some(cgroup) = &job.cgroup
        && let Err(err) = cgroup.kill()
    {
        tracing::warn!(cgroup = %cgroup.dir().display(), error = %err, "cgroup.kill failed");
    }
    let mut quiet = 0;
    for _ in 0..KILL_ROUNDS {
        let found = find(job, &mut trusted_groups).await;
        if kill_round(found.targets, &mut signalled, &mut quiet) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(child) = main {
        let _ = child.start_kill();
        // Bounded: a process stuck in the kernel (state D) is left to tokio's orphan reaper.
        let _ = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await;
    }
    Terminated {
        signalled: signalled.len(),
        is_certain: false,
    }
}

/// Sends SIGKILL to every process of the job right away, without a grace period: the
/// synchronous last resort for a workspace dropped before `cleanup` ran. Then releases the
/// job's cgroup.
pub(crate) fn kill_now(job: &JobProcesses) {
    if let Some(cgroup) = &job.cgroup {
        let _ = cgroup.kill();
    }
    if let Some(from) = job.scan_from {
        let mut trusted_groups = HashSet::new();
        let mut signalled = HashSet::new();
        let mut quiet = 0;
        for _ in 0..KILL_ROUNDS {
            let scanned = scan(&job.cookie_entry, from);
            let targets = select_targets(job, &mut trusted_groups, scanned);
            if kill_round(targets, &mut signalled, &mut quiet) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    release_cgroup(job);
}

/// One round of a kill loop: SIGKILLs `targets` and remembers them in `signalled`. Answers
/// true (stop) once `QUIET_ROUNDS` scans in a row (counted in `quiet`) found nothing and every
/// signalled process has exited.
fn kill_round(targets: Vec<i32>, signalled: &mut HashSet<i32>, quiet: &mut usize) -> bool {
    if targets.is_empty() && all_exited(signalled) {
        *quiet += 1;
        return *quiet >= QUIET_ROUNDS;
    }
    *quiet = 0;
    for pid in targets {
        signalled.insert(pid);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    false
}

/// Whether every signalled process has finished exiting (bounded by the callers' rounds: a
/// reused pid only makes them wait longer).
fn all_exited(signalled: &HashSet<i32>) -> bool {
    signalled.iter().all(|pid| has_exited(*pid))
}

/// SIGKILLs whatever is left in the job's cgroup, waits briefly for it to empty and removes it.
pub(crate) fn release_cgroup(job: &JobProcesses) {
    let Some(cgroup) = &job.cgroup else {
        return;
    };
    let _ = cgroup.kill();
    let deadline = std::time::Instant::now() + DROP_EMPTY_TIMEOUT;
    while cgroup.is_populated().unwrap_or(false) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Err(err) = cgroup.remove() {
        tracing::warn!(cgroup = %cgroup.dir().display(), error = %err, "cannot remove the job cgroup");
    }
}

/// What one look for the job's processes found.
#[derive(Debug, Default)]
struct Found {
    /// Pids to signal.
    targets: Vec<i32>,
    /// The job's cgroup still holds a process, perhaps one not in `targets` yet (it is exiting,
    /// or sits in a cgroup the step created below the job's).
    is_cgroup_populated: bool,
    /// Processes that may be the job's but showed no environment (in the middle of `execve`).
    unknown: usize,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.targets.is_empty() && !self.is_cgroup_populated
    }
}

/// The most pids a scan probes on an async worker (each a failed `open` or one `stat` read).
const INLINE_PROBED_PIDS: usize = 256;

/// The job's living processes. A step group becomes trusted once one of its members shows the
/// cookie; members of trusted groups are targets even without the cookie.
async fn find(job: &JobProcesses, trusted_groups: &mut HashSet<i32>) -> Found {
    let mut found = Found::default();
    if let Some(cgroup) = &job.cgroup {
        // Two small kernel-generated files, read inline: cheaper than a hand-off to the
        // blocking pool, and they never wait for a disk.
        found.is_cgroup_populated = cgroup.is_populated().unwrap_or(true);
        if found.is_cgroup_populated
            && let Err(err) = cgroup.members(&mut found.targets)
        {
            tracing::warn!(cgroup = %cgroup.dir().display(), error = %err, "cannot list the job cgroup");
        }
    }
    if let Some(from) = job.scan_from {
        // A job's few pids are probed inline when none of them is a live candidate (a hand-off
        // to the blocking pool and back cost more than that); a wide window, or a candidate
        // whose environment must be read (which can hang), is scanned again off the workers.
        let scanned = match scan_narrow(&job.cookie_entry, from, INLINE_PROBED_PIDS) {
            Some(scanned) => scanned,
            None => {
                let cookie_entry = job.cookie_entry.clone();
                tokio::task::spawn_blocking(move || scan(&cookie_entry, from))
                    .await
                    .unwrap_or_default()
            }
        };
        // The scan leaves out this process's own group.
        found.unknown = scanned.iter().filter(|process| process.is_unknown).count();
        found
            .targets
            .extend(select_targets(job, trusted_groups, scanned));
    }
    let own_pid = own_pid();
    found.targets.retain(|pid| *pid != own_pid);
    found.targets.sort_unstable();
    found.targets.dedup();
    found
}

fn select_targets(
    job: &JobProcesses,
    trusted_groups: &mut HashSet<i32>,
    scanned: Vec<ProcessInfo>,
) -> Vec<i32> {
    for process in &scanned {
        if process.has_cookie && job.groups.contains(&process.group) {
            trusted_groups.insert(process.group);
        }
    }
    scanned
        .into_iter()
        .filter(|process| process.has_cookie || trusted_groups.contains(&process.group))
        .map(|process| process.pid)
        .collect()
}

/// The pid of `child` if it has not exited yet (reaping it if it has).
fn running_pid(child: &mut Child) -> Option<i32> {
    match child.try_wait() {
        Ok(None) => child.id().and_then(|pid| i32::try_from(pid).ok()),
        _ => None,
    }
}
