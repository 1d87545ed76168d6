//! The `/proc` scan for processes carrying a job's cookie, limited to processes that are young
//! enough to be the job's: by start time, and by pid when the pids allocated since the job's
//! first process are known to form one window.
//!
//! `/proc/stat` is the costly file here (the kernel formats every interrupt counter of the host
//! for it), so each reading of the fork counters serves every job of the process that starts
//! within [`SHARED_READING_MAX_AGE`] (see [`PidWindow::since`] for why an older reading is safe),
//! and the few facts that do not change while the process runs are read once.

use std::fs::File;
use std::io::{self, Read as _};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};
use nix::unistd::{SysconfVar, getpgrp, getpid, sysconf};

/// Pid numbers below this are never reused once pids wrap around (the kernel's `RESERVED_PIDS`).
const RESERVED_PIDS: u64 = 300;
/// The widest pid window probed pid by pid rather than checked against a listing of `/proc`.
const MAX_PROBED_PIDS: usize = 2048;
/// Pid numbers a live task may hold: its own, its process group's and its session's.
const PIDS_PER_TASK: u64 = 3;
/// A job's first process may be bounded with a reading of the fork counters this recent, taken
/// by any job of this process, instead of a reading of its own.
const SHARED_READING_MAX_AGE: Duration = Duration::from_millis(250);
/// How long a reading of `kernel.pid_max` is used before it is read again.
const PID_MAX_MAX_AGE: Duration = Duration::from_secs(1);

/// The latest reading of the fork counters and when it was taken.
static LATEST_READING: Mutex<Option<(Instant, ForkCounters)>> = Mutex::new(None);
/// The latest reading of `/proc/sys/kernel/pid_max` and when it was taken.
static PID_MAX: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

/// Which processes a scan must look at: those started since a job's first process outside a
/// cgroup. Set before that process is forked; refined with its pid once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanFrom {
    since: StartTicks,
    first: Option<FirstProcess>,
}

/// Kernel counters read just before a process is forked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ForkCounters {
    /// Processes and threads forked since boot (`processes` in `/proc/stat`).
    forks: u64,
    /// Tasks alive, zombies included (the total in `/proc/loadavg`).
    tasks: u64,
}

/// A job's first process outside a cgroup and the counters read just before it was forked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FirstProcess {
    pid: i32,
    before: ForkCounters,
}

/// A process start time in clock ticks since boot, as in field 22 of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StartTicks(u64);

/// One living process seen in `/proc`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessInfo {
    pub(crate) pid: i32,
    pub(crate) group: i32,
    pub(crate) has_cookie: bool,
    /// Its environment read back empty: a process in the middle of `execve` shows none for a
    /// moment (the new image's environment is not mapped yet), so it may still be the job's.
    pub(crate) is_unknown: bool,
}

/// The pids allocated since a job's first process: `first..=last`, or, once pids wrapped
/// around, `first..` plus `..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PidWindow {
    first: i32,
    last: i32,
    /// Pids are below this (`/proc/sys/kernel/pid_max`).
    pid_max: i32,
}

/// The fields of `/proc/<pid>/stat` the scan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    parent: i32,
    group: i32,
    started: StartTicks,
}

impl ScanFrom {
    /// Every process forked from now on, whatever its pid.
    pub(crate) fn now() -> ScanFrom {
        ScanFrom {
            since: StartTicks::now(),
            first: None,
        }
    }

    /// Narrows the scan to pids allocated since `pid`, forked right after `before` was read.
    pub(crate) fn with_first_process(self, pid: i32, before: Option<ForkCounters>) -> ScanFrom {
        ScanFrom {
            first: before.map(|before| FirstProcess { pid, before }),
            ..self
        }
    }
}

impl ForkCounters {
    /// Counters to bound the pids of a process about to be forked: a reading that any job of
    /// this process took in the last [`SHARED_READING_MAX_AGE`], else a new one. `None` if
    /// `/proc` does not tell; then the scan considers every pid.
    pub(crate) fn before_fork() -> Option<ForkCounters> {
        let latest = *LATEST_READING
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((taken, counters)) = latest
            && taken.elapsed() <= SHARED_READING_MAX_AGE
        {
            return Some(counters);
        }
        Self::read()
    }

    /// A new reading, which later forks may share.
    fn read() -> Option<ForkCounters> {
        let mut reader = ProcReader::default();
        let forks = reader
            .read("/proc/stat", StopAt::End)
            .ok()
            .and_then(parse_forks)?;
        let loadavg = reader.read("/proc/loadavg", StopAt::Newline).ok()?;
        let (tasks, _) = parse_loadavg(loadavg)?;
        let counters = ForkCounters { forks, tasks };
        counters.share();
        Some(counters)
    }

    /// Offers this reading to the forks that follow. The instant is taken after the reading:
    /// a reading's age may only be underestimated by the time it took, never by more.
    fn share(self) {
        let mut latest = LATEST_READING
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Readings from concurrent jobs may arrive out of order; keep the one with most forks
        // (the newest), so that later windows count as few forks as they can.
        if latest.is_none_or(|(_, kept)| kept.forks <= self.forks) {
            *latest = Some((Instant::now(), self));
        }
    }
}

impl StartTicks {
    /// A lower bound for the start time of every process forked from now on. Rounded down (as
    /// the kernel rounds start times down); 0 (no filtering) if the clock cannot be read.
    fn now() -> StartTicks {
        let ticks_per_second = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|ticks| u64::try_from(ticks).ok())
            .filter(|ticks| *ticks > 0);
        let (Some(ticks_per_second), Ok(boot_time)) =
            (ticks_per_second, clock_gettime(ClockId::CLOCK_BOOTTIME))
        else {
            return StartTicks(0);
        };
        let nanos = u128::try_from(boot_time.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u128::try_from(boot_time.tv_nsec()).unwrap_or(0);
        let ticks = nanos / (1_000_000_000 / u128::from(ticks_per_second));
        StartTicks(u64::try_from(ticks).unwrap_or(0))
    }
}

impl PidWindow {
    /// The window of pids allocated since `first`, if pids cannot have wrapped all the way
    /// around since (then any pid could be new, and the scan looks at all of them).
    ///
    /// The kernel hands out pids cyclically: each new pid is the next free number after the
    /// previous one. Since `first`, the allocator moved by one step per new task plus one per
    /// number it skipped because it was taken. Fewer steps than numbers in a turn mean every
    /// pid since `first` lies between `first` and the last pid allocated.
    ///
    /// The counters (`first.before`) were read at some moment before `first` was forked, not
    /// necessarily just before: `forked`, the forks since that reading, counts every new task
    /// since `first` and more. A skipped number is held (as pid, process group or session id)
    /// by a task alive at the reading or forked since, so at most `PIDS_PER_TASK` times their
    /// number are skipped. An older reading only makes the bound looser, never wrong.
    fn since(first: FirstProcess, forks_now: u64, last: i32, pid_max: u64) -> Option<PidWindow> {
        let forked = forks_now.checked_sub(first.before.forks)?;
        let taken = first
            .before
            .tasks
            .saturating_add(forked)
            .saturating_mul(PIDS_PER_TASK);
        let turn = pid_max.checked_sub(RESERVED_PIDS)?;
        (forked.saturating_add(taken) < turn).then_some(PidWindow {
            first: first.pid,
            last,
            pid_max: i32::try_from(pid_max).ok()?,
        })
    }

    /// The pids of the window, in order, if there are at most `limit` of them.
    fn pids(&self, limit: usize) -> Option<Vec<i32>> {
        let reserved = i32::try_from(RESERVED_PIDS).unwrap_or(i32::MAX);
        let ranges = if self.first <= self.last {
            [self.first..self.last.saturating_add(1), 0..0]
        } else {
            [
                self.first..self.pid_max,
                reserved..self.last.saturating_add(1),
            ]
        };
        let count: usize = ranges.iter().map(ExactSizeIterator::len).sum();
        (count <= limit).then(|| ranges.into_iter().flatten().collect())
    }

    fn contains(&self, pid: i32) -> bool {
        if self.first <= self.last {
            (self.first..=self.last).contains(&pid)
        } else {
            pid >= self.first || pid <= self.last
        }
    }

    /// The window as the kernel sees it now, or `None` when it cannot be bounded. The reading
    /// of the counters is shared with jobs about to start.
    fn read(first: FirstProcess, reader: &mut ProcReader) -> Option<PidWindow> {
        // The last pid in `/proc/loadavg` is of this process's pid namespace: only usable if
        // `/proc` shows that namespace too.
        if !own_ids().is_proc_of_own_namespace {
            return None;
        }
        let forks_now = reader
            .read("/proc/stat", StopAt::End)
            .ok()
            .and_then(parse_forks)?;
        let (tasks, last) = reader
            .read("/proc/loadavg", StopAt::Newline)
            .ok()
            .and_then(parse_loadavg)?;
        ForkCounters {
            forks: forks_now,
            tasks,
        }
        .share();
        // A wrapped window reaches up to `pid_max`, so it needs the current value: a raised
        // `pid_max` lets the allocator go past the one read a moment ago.
        let pid_max = pid_max(reader, last < first.pid)?;
        PidWindow::since(first, forks_now, last, pid_max)
    }
}

/// This process's ids, which do not change while it runs.
#[derive(Debug, Clone, Copy)]
struct OwnIds {
    pid: i32,
    group: i32,
    /// `/proc/self` names this process: `/proc` shows this process's pid namespace.
    is_proc_of_own_namespace: bool,
}

/// This process's pid, without a system call.
pub(crate) fn own_pid() -> i32 {
    own_ids().pid
}

fn own_ids() -> OwnIds {
    static IDS: OnceLock<OwnIds> = OnceLock::new();
    *IDS.get_or_init(|| {
        let pid = getpid().as_raw();
        let is_proc_of_own_namespace = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|link| link.to_str()?.parse::<i32>().ok())
            == Some(pid);
        OwnIds {
            pid,
            group: getpgrp().as_raw(),
            is_proc_of_own_namespace,
        }
    })
}

/// `kernel.pid_max`: read again when `is_fresh_needed` or the last reading is older than
/// [`PID_MAX_MAX_AGE`].
fn pid_max(reader: &mut ProcReader, is_fresh_needed: bool) -> Option<u64> {
    let mut kept = PID_MAX.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((taken, pid_max)) = *kept
        && !is_fresh_needed
        && taken.elapsed() <= PID_MAX_MAX_AGE
    {
        return Some(pid_max);
    }
    let pid_max = reader
        .read("/proc/sys/kernel/pid_max", StopAt::Newline)
        .ok()
        .and_then(|text| std::str::from_utf8(text).ok()?.trim().parse().ok())?;
    *kept = Some((Instant::now(), pid_max));
    Some(pid_max)
}

/// Reads the processes in `/proc` that `from` says may be the job's, skipping this process
/// and its process group, pid 1, zombies, and processes whose files cannot be read (other users' processes: those
/// cannot be ours). Only processes that pass these checks have their environment read.
pub(crate) fn scan(cookie_entry: &[u8], from: ScanFrom) -> Vec<ProcessInfo> {
    scan_within(cookie_entry, from, MAX_PROBED_PIDS, true).unwrap_or_default()
}

/// [`scan`] if at most `limit` pids may be the job's and none of them needs its environment
/// read: probing `stat` files is a few microseconds each, cheap enough for an async worker,
/// while reading another process's environment takes its memory lock, which a process stuck
/// on a hung file system may hold indefinitely. `None` otherwise (the caller runs [`scan`] on
/// the blocking pool).
pub(crate) fn scan_narrow(
    cookie_entry: &[u8],
    from: ScanFrom,
    limit: usize,
) -> Option<Vec<ProcessInfo>> {
    scan_within(cookie_entry, from, limit, false)
}

/// Probes the pid window if it holds at most `limit` pids, else lists `/proc`; `is_thorough`:
/// may list `/proc` and read environments, else declines (`None`) where it would.
fn scan_within(
    cookie_entry: &[u8],
    from: ScanFrom,
    limit: usize,
    is_thorough: bool,
) -> Option<Vec<ProcessInfo>> {
    let OwnIds {
        pid: own_pid,
        group: own_group,
        ..
    } = own_ids();
    let mut reader = ProcReader::default();
    let window = from
        .first
        .and_then(|first| PidWindow::read(first, &mut reader));
    // A narrow window is probed pid by pid: listing `/proc` makes the kernel look up every
    // process of the host, which costs more than a failed open per unused pid. Either way the
    // scan sees every process that existed when the window was read.
    let mut pids = match window.and_then(|window| window.pids(limit)) {
        Some(pids) => pids,
        None if !is_thorough => return None,
        None => {
            let Ok(entries) = std::fs::read_dir("/proc") else {
                return Some(Vec::new());
            };
            let mut listed: Vec<i32> = entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect();
            // A window too wide to probe is read again after the listing: every listed pid
            // allocated since the first process is in that one.
            if let Some(window) = window
                .and(from.first)
                .and_then(|first| PidWindow::read(first, &mut reader))
            {
                listed.retain(|pid| window.contains(*pid));
            }
            listed
        }
    };
    pids.retain(|pid| *pid > 1 && *pid != own_pid);
    let mut processes = Vec::new();
    for pid in pids {
        let Some(stat) = reader
            .read_process(pid, "stat", StopAt::Newline)
            .ok()
            .and_then(parse_stat)
        else {
            continue;
        };
        // Kernel threads (children of kthreadd, pid 2) have no environment and are never ours;
        // nor is anything in this process's own group (its threads too, which a probed window
        // holds: step processes run in groups of their own).
        if stat.started < from.since || stat.parent == 2 || stat.group == own_group {
            continue;
        }
        if !is_thorough {
            return None;
        }
        let (has_cookie, is_unknown) = match reader.read_process(pid, "environ", StopAt::End) {
            Ok(environ) => (
                environ
                    .split(|byte| *byte == 0)
                    .any(|entry| entry == cookie_entry),
                environ.is_empty(),
            ),
            Err(_) => (false, false),
        };
        processes.push(ProcessInfo {
            pid,
            group: stat.group,
            has_cookie,
            is_unknown,
        });
    }
    Some(processes)
}

/// Reads `/proc` files into one buffer reused for every file of a scan.
#[derive(Debug, Default)]
struct ProcReader {
    path: String,
    buffer: Vec<u8>,
}

/// When a read of a `/proc` file may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopAt {
    /// At a trailing newline: a one-line file such as `stat` is complete (saves the read that
    /// would return end-of-file).
    Newline,
    End,
}

impl ProcReader {
    fn read_process(&mut self, pid: i32, file: &str, stop_at: StopAt) -> io::Result<&[u8]> {
        use std::fmt::Write as _;
        let mut path = std::mem::take(&mut self.path);
        path.clear();
        let _ = write!(path, "/proc/{pid}/{file}");
        let opened = File::open(&path);
        self.path = path;
        self.read_from(opened?, stop_at)
    }

    fn read(&mut self, path: &str, stop_at: StopAt) -> io::Result<&[u8]> {
        self.read_from(File::open(path)?, stop_at)
    }

    fn read_from(&mut self, mut file: File, stop_at: StopAt) -> io::Result<&[u8]> {
        if self.buffer.is_empty() {
            self.buffer.resize(4096, 0);
        }
        let mut filled = 0;
        loop {
            if filled == self.buffer.len() {
                self.buffer.resize(2 * filled, 0);
            }
            let read = match file.read(&mut self.buffer[filled..]) {
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            filled += read;
            let is_complete =
                stop_at == StopAt::Newline && self.buffer[..filled].last() == Some(&b'\n');
            if read == 0 || is_complete {
                break;
            }
        }
        Ok(&self.buffer[..filled])
    }
}

/// Whether `pid` has finished exiting: gone, or a zombie waiting for its parent. A process sent
/// SIGKILL runs on until the kernel schedules its exit, and meanwhile its environment may
/// already be unreadable (so a scan no longer counts it as the job's).
pub(crate) fn has_exited(pid: i32) -> bool {
    ProcReader::default()
        .read_process(pid, "stat", StopAt::Newline)
        .ok()
        .and_then(parse_stat)
        .is_none()
}

/// The process group and start time from `/proc/<pid>/stat`, or `None` for a zombie or an
/// unparsable line. The command name may contain spaces and parentheses, so fields are read
/// after the last `)`.
fn parse_stat(stat: &[u8]) -> Option<Stat> {
    let after_name = &stat[memchr::memrchr(b')', stat)? + 1..];
    let text = std::str::from_utf8(after_name).ok()?;
    let mut fields = text.split_ascii_whitespace();
    // Fields 3 (state), 4 (parent), 5 (process group), …, 22 (start time).
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    let started = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        parent,
        group,
        started: StartTicks(started),
    })
}

/// `processes <n>` of `/proc/stat`.
fn parse_forks(stat: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(stat).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("processes "))?
        .trim()
        .parse()
        .ok()
}

/// Tasks alive and the last pid allocated, from `/proc/loadavg` (`0.20 0.18 0.12 1/80 11206`).
fn parse_loadavg(loadavg: &[u8]) -> Option<(u64, i32)> {
    let text = std::str::from_utf8(loadavg).ok()?;
    let mut fields = text.split_ascii_whitespace().skip(3);
    let (_, tasks) = fields.next()?.split_once('/')?;
    Some((tasks.parse().ok()?, fields.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn the_group_and_start_time_are_read_after_the_last_parenthesis() {
        let stat = b"42 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100\n";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                parent: 1,
                group: 4242,
                started: StartTicks(987_654)
            })
        );
        assert_eq!(
            parse_stat(b"42 (defunct) Z 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"),
            None
        );
        assert_eq!(parse_stat(b"42 (short) S 1 4242 4242 0"), None);
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn fork_counters_come_from_proc_stat_and_loadavg() {
        assert_eq!(
            parse_forks(
                b"cpu  1 2 3\nintr 5 6\nctxt 7\nbtime 8\nprocesses 14161\nprocs_running 2\n"
            ),
            Some(14161)
        );
        assert_eq!(parse_forks(b"cpu 1\n"), None);
        assert_eq!(
            parse_loadavg(b"2.23 2.60 3.38 2/155 14161\n"),
            Some((155, 14161))
        );
        assert_eq!(parse_loadavg(b"2.23 2.60\n"), None);
        let counters = ForkCounters::read().expect("this host has /proc");
        assert!(counters.forks > 0 && counters.tasks > 0);
    }

    #[test]
    fn the_pid_window_covers_the_pids_since_the_first_process_even_across_a_wrap() {
        let first = |pid, forks, tasks| FirstProcess {
            pid,
            before: ForkCounters { forks, tasks },
        };
        let window = PidWindow::since(first(1000, 50, 100), 60, 1009, 32768).expect("no wrap");
        assert!(window.contains(1000) && window.contains(1009));
        assert!(!window.contains(999) && !window.contains(1010));

        let wrapped = PidWindow::since(first(32760, 50, 100), 70, 310, 32768).expect("bounded");
        assert!(wrapped.contains(32767) && wrapped.contains(300) && wrapped.contains(310));
        assert!(!wrapped.contains(311) && !wrapped.contains(32759));

        assert_eq!(window.pids(10), Some((1000..=1009).collect::<Vec<_>>()));
        assert_eq!(window.pids(9), None, "wider than the limit: listed instead");
        let expected: Vec<i32> = (32760..32768).chain(300..=310).collect();
        assert_eq!(wrapped.pids(100), Some(expected));

        // Enough forks (or taken numbers) for a full turn: no window, every pid is a candidate.
        assert_eq!(
            PidWindow::since(first(1000, 0, 100), 32_200, 1009, 32768),
            None
        );
        assert_eq!(
            PidWindow::since(first(1000, 0, 11_000), 100, 1100, 32768),
            None
        );
        // Counters that went backwards mean another kernel view: no window either.
        assert_eq!(
            PidWindow::since(first(1000, 50, 100), 40, 1009, 32768),
            None
        );
        // The reading may be older than the first process: tasks forked since it may hold
        // numbers the allocator skips, so they count three times more.
        assert!(PidWindow::since(first(1000, 0, 100), 8_000, 1009, 32768).is_some());
        assert_eq!(
            PidWindow::since(first(1000, 0, 100), 8_200, 1009, 32768),
            None
        );
    }

    /// nextest runs each test in a process of its own: the shared reading is this test's.
    #[test]
    fn a_recent_reading_is_shared_and_an_old_one_is_read_again() {
        let kept = |counters| {
            *LATEST_READING
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(counters);
        };
        let recent = ForkCounters { forks: 7, tasks: 3 };
        kept((Instant::now(), recent));
        assert_eq!(ForkCounters::before_fork(), Some(recent));
        let old = Instant::now().checked_sub(2 * SHARED_READING_MAX_AGE);
        kept((old.expect("the clock is past boot"), recent));
        let fresh = ForkCounters::before_fork().expect("this host has /proc");
        assert!(fresh.forks > recent.forks, "{fresh:?}");
        // The fresh reading replaced the old one; an older reading never replaces a newer one.
        assert_eq!(ForkCounters::before_fork(), Some(fresh));
        recent.share();
        assert_eq!(ForkCounters::before_fork(), Some(fresh));
    }

    /// A job's end reads the counters anyway: the next job's first process uses that reading.
    #[test]
    fn the_end_of_a_job_shares_its_reading() {
        let before = ForkCounters::read().expect("this host has /proc");
        let from = ScanFrom::now();
        let mut child = start_sleep();
        let pid = i32::try_from(child.id()).expect("pid fits");
        let found = scan(
            b"RUNNEL_JOB_COOKIE=none",
            from.with_first_process(pid, Some(before)),
        );
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|process| process.pid == pid));
        let shared = ForkCounters::before_fork().expect("shared");
        assert!(shared.forks > before.forks, "{shared:?} after {before:?}");
    }

    #[test]
    fn this_process_started_before_now_and_the_scan_reads_its_stat() {
        let stat = ProcReader::default()
            .read_process(getpid().as_raw(), "stat", StopAt::Newline)
            .map(parse_stat)
            .expect("/proc is mounted")
            .expect("parsable");
        assert_eq!(stat.group, nix::unistd::getpgrp().as_raw());
        assert!(stat.started <= StartTicks::now());
        assert!(stat.started > StartTicks(0));
    }

    #[test]
    fn only_processes_started_since_the_first_process_are_looked_at() {
        let cookie = b"RUNNEL_JOB_COOKIE=unit-test-cookie-that-nobody-has";
        let older = start_sleep();
        let older_started = ProcReader::default()
            .read_process(
                i32::try_from(older.id()).expect("pid fits"),
                "stat",
                StopAt::Newline,
            )
            .ok()
            .and_then(parse_stat)
            .expect("the process runs")
            .started;
        // Past the tick the older process started in, so that the start time tells them apart.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while StartTicks::now() <= older_started && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let from = ScanFrom::now();
        let before = ForkCounters::read();
        let younger = start_sleep();
        let [older_pid, younger_pid] =
            [&older, &younger].map(|child| i32::try_from(child.id()).expect("pid fits"));
        let everything = ScanFrom {
            since: StartTicks(0),
            first: None,
        };
        let by_pid_only = everything.with_first_process(younger_pid, before);
        let by_time = from;
        let future = ScanFrom {
            since: StartTicks(StartTicks::now().0 + 1_000_000),
            first: None,
        };
        let scans = [everything, by_pid_only, by_time, future].map(|from| {
            scan(cookie, from)
                .iter()
                .map(|process| (process.pid, process.has_cookie))
                .collect::<Vec<_>>()
        });
        // The narrow scan declines what would need a listing of `/proc` (no pid window), a
        // window wider than its limit, and a live candidate (its environment must be read);
        // a window of processes all older than the job it probes inline.
        let unbounded = scan_narrow(cookie, everything, usize::MAX);
        let too_wide = scan_narrow(cookie, by_pid_only, 0);
        let with_candidate = scan_narrow(cookie, by_pid_only, MAX_PROBED_PIDS);
        let nothing_new = scan_narrow(
            cookie,
            future.with_first_process(younger_pid, before),
            MAX_PROBED_PIDS,
        );
        for mut child in [older, younger] {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(unbounded.is_none());
        assert!(too_wide.is_none());
        assert!(with_candidate.is_none());
        assert_eq!(nothing_new.map(|found| found.len()), Some(0));
        let [everything, by_pid_only, by_time, future] = scans;
        assert!(everything.contains(&(older_pid, false)));
        assert!(everything.contains(&(younger_pid, false)));
        assert!(by_pid_only.contains(&(younger_pid, false)));
        assert!(!by_pid_only.iter().any(|(pid, _)| *pid == older_pid));
        assert!(by_time.contains(&(younger_pid, false)));
        assert!(!by_time.iter().any(|(pid, _)| *pid == older_pid));
        assert!(future.is_empty(), "{future:?}");
    }

    #[test]
    fn a_process_without_environment_is_unknown() {
        let from = ScanFrom::now();
        let mut bare = std::process::Command::new("sleep")
            .arg("30")
            .env_clear()
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let mut with_env = start_sleep();
        let pid = |child: &std::process::Child| i32::try_from(child.id()).expect("pid fits");
        let (bare_pid, with_env_pid) = (pid(&bare), pid(&with_env));
        // Right after `spawn` a child may still be inside `execve`, showing no environment
        // either: look until the one with an environment shows it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let scanned = loop {
            let scanned = scan(b"RUNNEL_JOB_COOKIE=none", from);
            let settled = scanned
                .iter()
                .any(|process| process.pid == with_env_pid && !process.is_unknown);
            if settled || std::time::Instant::now() > deadline {
                break scanned;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        for child in [&mut bare, &mut with_env] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let find = |pid: i32| scanned.iter().find(|process| process.pid == pid).copied();
        assert!(!find(with_env_pid).expect("scanned").is_unknown);
        assert!(
            find(bare_pid).expect("scanned").is_unknown,
            "an empty environment may be an execve in progress"
        );
    }

    fn start_sleep() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep")
    }
}
