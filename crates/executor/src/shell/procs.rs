//! Finding and killing a job's processes: process groups plus a `/proc/*/environ` cookie scan.
//!
//! Like Jenkins' ProcessTreeKiller, every step process carries `RUNNEL_JOB_COOKIE=<uuid>` in its
//! environment, inherited by everything it starts, including processes that left the step's
//! process group (`setsid`, double fork). Members of a step's process group that dropped the
//! cookie (`env -i`) are found through the group, once the group is known to be ours.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp, getpid};
use tokio::process::Child;
use tokio::time::Instant;

/// How often the grace period checks whether everything has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// SIGKILL rounds; each catches children forked since the previous scan.
const KILL_ROUNDS: usize = 50;
/// How long to wait for a SIGKILLed main process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which processes belong to a job.
#[derive(Debug, Clone)]
pub(crate) struct JobProcesses {
    /// The exact environment entry `RUNNEL_JOB_COOKIE=<uuid>`.
    pub(crate) cookie_entry: Vec<u8>,
    /// Process groups of the job's steps (one per step, id = the step's main pid).
    pub(crate) groups: Vec<i32>,
}

/// Terminates every process of the job: SIGTERM, up to `grace` for them to exit, then SIGKILL
/// until none is left. `main` is a step's main process if it may still be running; its group is
/// signalled as a whole and it is reaped before this returns. Never signals this process or its
/// group. Returns how many processes other than `main`'s group leader were signalled.
pub(crate) async fn terminate(
    job: &JobProcesses,
    mut main: Option<&mut Child>,
    grace: Duration,
) -> usize {
    let mut trusted_groups: HashSet<i32> = HashSet::new();
    // While the main process is unreaped its pid cannot be reused, so its group id is ours.
    if let Some(group) = main.as_mut().and_then(|child| running_pid(child)) {
        trusted_groups.insert(group);
        let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
    }
    let mut signalled: HashSet<i32> = HashSet::new();
    let grace_end = Instant::now() + grace;
    loop {
        let targets = find(job, &mut trusted_groups).await;
        let main_running = main
            .as_mut()
            .is_some_and(|child| running_pid(child).is_some());
        if targets.is_empty() && !main_running {
            return signalled.len();
        }
        for pid in targets {
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
    for _ in 0..KILL_ROUNDS {
        let targets = find(job, &mut trusted_groups).await;
        if targets.is_empty() {
            break;
        }
        for pid in targets {
            signalled.insert(pid);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(child) = main {
        let _ = child.start_kill();
        // Bounded: a process stuck in the kernel (state D) is left to tokio's orphan reaper.
        let _ = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await;
    }
    signalled.len()
}

/// One living process seen in `/proc`.
#[derive(Debug, Clone, Copy)]
struct ProcessInfo {
    pid: i32,
    group: i32,
    has_cookie: bool,
}

/// Pids of the job's living processes. A step group becomes trusted once one of its members
/// shows the cookie; members of trusted groups are targets even without the cookie.
async fn find(job: &JobProcesses, trusted_groups: &mut HashSet<i32>) -> Vec<i32> {
    let cookie_entry = job.cookie_entry.clone();
    // The scan reads a few hundred small files: keep it off the async workers. Awaited here.
    let scanned = tokio::task::spawn_blocking(move || scan(&cookie_entry))
        .await
        .unwrap_or_default();
    select_targets(job, trusted_groups, scanned)
}

/// Sends SIGKILL to every process of the job right away, without a grace period or waiting:
/// the synchronous last resort for a workspace dropped before `cleanup` ran.
pub(crate) fn kill_now(job: &JobProcesses) {
    let mut trusted_groups = HashSet::new();
    for _ in 0..KILL_ROUNDS {
        let targets = select_targets(job, &mut trusted_groups, scan(&job.cookie_entry));
        if targets.is_empty() {
            return;
        }
        for pid in targets {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
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
    let own_group = getpgrp().as_raw();
    scanned
        .into_iter()
        .filter(|process| process.group != own_group)
        .filter(|process| process.has_cookie || trusted_groups.contains(&process.group))
        .map(|process| process.pid)
        .collect()
}

/// Reads every process in `/proc`, skipping this process, pid 1, zombies, and processes whose
/// files cannot be read (other users' processes: those cannot be ours).
fn scan(cookie_entry: &[u8]) -> Vec<ProcessInfo> {
    let own_pid = getpid().as_raw();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut processes = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if pid <= 1 || pid == own_pid {
            continue;
        }
        let Some(group) = fs::read(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| living_group(&stat))
        else {
            continue;
        };
        let has_cookie = fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
            environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == cookie_entry)
        });
        processes.push(ProcessInfo {
            pid,
            group,
            has_cookie,
        });
    }
    processes
}

/// The process group from `/proc/<pid>/stat`, or `None` for a zombie or an unparsable line.
/// The command name may contain spaces and parentheses, so fields are read after the last `)`.
fn living_group(stat: &[u8]) -> Option<i32> {
    let after_name = &stat[memchr::memrchr(b')', stat)? + 1..];
    let text = std::str::from_utf8(after_name).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let _parent = fields.next()?;
    fields.next()?.parse().ok()
}

/// The pid of `child` if it has not exited yet (reaping it if it has).
fn running_pid(child: &mut Child) -> Option<i32> {
    match child.try_wait() {
        Ok(None) => child.id().and_then(|pid| i32::try_from(pid).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_read_after_the_last_parenthesis() {
        assert_eq!(
            living_group(b"42 (a (weird) name) S 1 4242 4242 0"),
            Some(4242)
        );
        assert_eq!(living_group(b"42 (defunct) Z 1 4242 4242 0"), None);
        assert_eq!(living_group(b"garbage"), None);
    }
}
