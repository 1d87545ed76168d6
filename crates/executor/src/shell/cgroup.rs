//! Per-job cgroup v2: every step process enters the job's cgroup before `exec`, so the job's
//! processes are exactly the cgroup's members and `cgroup.kill` ends all of them at once.
//!
//! A process cannot leave its cgroup by `setsid`, double forking or clearing its environment,
//! and the kernel's `cgroup.kill` also stops processes forked while it runs (fork bombs). Job
//! cgroups are children of this process's own cgroup, so limits an operator put on Runnel
//! (systemd `MemoryMax=`, a container's cgroup) still cover the jobs. Only a step allowed to
//! write to some `cgroup.procs` (root, or Runnel's own user in a delegated subtree) can move
//! itself out, just as it could drop the cookie: containment against accidents, not malice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::unistd::{AccessFlags, access};
use tokio::process::Command;

/// Where job cgroups are created: this process's own cgroup v2 directory, known to allow
/// children that support `cgroup.kill` and processes moving into them.
#[derive(Debug, Clone)]
pub(crate) struct CgroupParent {
    dir: Arc<Path>,
}

/// The cgroup of one job. Removed by [`JobCgroup::remove`] once empty.
#[derive(Debug)]
pub(crate) struct JobCgroup {
    dir: PathBuf,
    /// The cgroup's `cgroup.procs`, open for writing: a step process writes `0` to it between
    /// `fork` and `exec`, which moves it in before it can start anything.
    procs: Arc<File>,
}

impl CgroupParent {
    /// Finds this process's cgroup v2 directory and checks, with a throw-away child, that job
    /// cgroups can be created there. `Err` says why not (no cgroup v2 mount, read-only, a kernel
    /// without `cgroup.kill`, …): the caller falls back to the cookie scan.
    pub(crate) fn probe() -> Result<CgroupParent, String> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|err| format!("cannot read /proc/self/cgroup: {err}"))?;
        let own = own_cgroup(&own).ok_or("this process is in no cgroup v2")?;
        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|err| format!("cannot read /proc/self/mountinfo: {err}"))?;
        let dir =
            cgroup_dir(&mounts, own).ok_or("no cgroup v2 mount shows this process's cgroup")?;
        let probe = dir.join(format!(
            "runnel-probe-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        fs::create_dir(&probe)
            .map_err(|err| format!("cannot create a cgroup in {}: {err}", dir.display()))?;
        let usable = check_probe(&dir, &probe);
        let _ = fs::remove_dir(&probe);
        usable?;
        Ok(CgroupParent { dir: dir.into() })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the job's cgroup `name` (a fresh one: an existing directory is an error).
    pub(crate) fn create_job(&self, name: &str) -> io::Result<JobCgroup> {
        let dir = self.dir.join(name);
        fs::create_dir(&dir)?;
        match OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(procs) => Ok(JobCgroup {
                dir,
                procs: Arc::new(procs),
            }),
            Err(err) => {
                let _ = fs::remove_dir(&dir);
                Err(err)
            }
        }
    }
}

impl JobCgroup {
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the process `command` starts enter this cgroup before it runs any program. If that
    /// fails, `spawn` fails with the error (the process never runs outside the cgroup).
    pub(crate) fn enter_before_exec(&self, command: &mut Command) {
        let procs = Arc::clone(&self.procs);
        let enter = move || match (&*procs).write(b"0")? {
            1 => Ok(()),
            _ => Err(io::Error::from(io::ErrorKind::WriteZero)),
        };
        // SAFETY: the closure runs in the forked child of a multi-threaded process, where only
        // async-signal-safe calls are allowed. It makes exactly one `write(2)` on a descriptor
        // opened beforehand and builds an `io::Error` from errno or a kind, which does not
        // allocate; the `Arc` is only dereferenced, never cloned or dropped, in the child.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(enter);
        }
    }

    /// Whether any process is left in the cgroup or below it (`cgroup.events`). Zombies do not
    /// count: they have exited and only wait to be reaped. A removed cgroup holds nothing.
    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        let mut events = String::new();
        match File::open(self.dir.join("cgroup.events")) {
            Ok(mut file) => file.read_to_string(&mut events)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        Ok(events.lines().any(|line| line == "populated 1"))
    }

    /// Appends the pids of the processes in the cgroup and in any cgroup a step created below it.
    pub(crate) fn members(&self, pids: &mut Vec<i32>) -> io::Result<()> {
        let mut pending = vec![self.dir.clone()];
        let mut text = String::new();
        while let Some(dir) = pending.pop() {
            text.clear();
            match File::open(dir.join("cgroup.procs")) {
                Ok(mut procs) => {
                    procs.read_to_string(&mut text)?;
                }
                // Removed meanwhile by the step that created it.
                Err(err) if err.kind() == io::ErrorKind::NotFound && dir != self.dir => continue,
                Err(err) => return Err(err),
            }
            pids.extend(text.lines().filter_map(|line| line.parse::<i32>().ok()));
            pending.extend(child_cgroups(&dir));
        }
        Ok(())
    }

    /// Sends SIGKILL to every process in the cgroup and below, atomically with respect to
    /// `fork`: a process forked meanwhile is killed too.
    pub(crate) fn kill(&self) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"))?
            .write_all(b"1")
    }

    /// Removes the cgroup and any cgroup a step created below it, deepest first. Fails with
    /// `EBUSY` while a process is left. A cgroup that is already gone is fine.
    pub(crate) fn remove(&self) -> io::Result<()> {
        remove_cgroup_tree(&self.dir)
    }
}

/// The path of this process's cgroup v2 (the `0::` line of `/proc/self/cgroup`).
fn own_cgroup(proc_self_cgroup: &str) -> Option<&str> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?;
    // A cgroup removed under this process cannot take children.
    (path.starts_with('/') && !path.ends_with(" (deleted)")).then_some(path)
}

/// The directory of cgroup `own` in the first cgroup2 mount (of `/proc/self/mountinfo`) whose
/// root contains it.
fn cgroup_dir(mountinfo: &str, own: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        if filesystem.split(' ').next() != Some("cgroup2") {
            return None;
        }
        let mut fields = mount.split(' ');
        let root = unescape(fields.nth(3)?);
        let mount_point = unescape(fields.next()?);
        let relative = if root == "/" {
            own.strip_prefix('/')?
        } else {
            match own.strip_prefix(root.as_str())? {
                "" => "",
                rest => rest.strip_prefix('/')?,
            }
        };
        let mut dir = PathBuf::from(mount_point);
        if !relative.is_empty() {
            dir.push(relative);
        }
        Some(dir)
    })
}

/// Undoes the octal escapes (`\040` for a space) of paths in `/proc/self/mountinfo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 4)
            .filter(|_| bytes[index] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_probe(dir: &Path, probe: &Path) -> Result<(), String> {
    if !probe.join("cgroup.kill").exists() {
        return Err("the kernel has no cgroup.kill (Linux 5.14 or later)".to_owned());
    }
    // Moving a process needs write access to `cgroup.procs` of the target and of the common
    // ancestor (our own cgroup, where step processes are forked).
    for procs in [dir.join("cgroup.procs"), probe.join("cgroup.procs")] {
        access(&procs, AccessFlags::W_OK)
            .map_err(|err| format!("cannot write {}: {err}", procs.display()))?;
    }
    Ok(())
}

fn child_cgroups(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

fn remove_cgroup_tree(dir: &Path) -> io::Result<()> {
    for child in child_cgroups(dir) {
        remove_cgroup_tree(&child)?;
    }
    match fs::remove_dir(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_cgroup_is_the_unified_line() {
        let hybrid = "9:name=systemd:/\n4:memory:/x/y\n0::/runnel.service\n";
        assert_eq!(own_cgroup(hybrid), Some("/runnel.service"));
        assert_eq!(own_cgroup("1:cpu:/\n"), None);
        assert_eq!(own_cgroup("0::/gone (deleted)\n"), None);
    }

    #[test]
    fn the_cgroup_directory_joins_the_mount_point_and_the_path_below_its_root() {
        let mountinfo = "\
25 30 0:22 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
35 30 0:30 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup_dir(mountinfo, "/system.slice/runnel.service"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/runnel.service"
            ))
        );
        assert_eq!(
            cgroup_dir(mountinfo, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        // A container that sees only its part of the hierarchy, mounted with a space.
        let container = "40 30 0:30 /docker/abc /sys/fs/my\\040cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir(container, "/docker/abc/job"),
            Some(PathBuf::from("/sys/fs/my cgroup/job"))
        );
        assert_eq!(
            cgroup_dir(container, "/docker/abc"),
            Some(PathBuf::from("/sys/fs/my cgroup"))
        );
        assert_eq!(cgroup_dir(container, "/docker/abcdef"), None);
        assert_eq!(cgroup_dir(container, "/elsewhere"), None);
        assert_eq!(
            cgroup_dir("25 30 0:22 / /x rw - cgroup cgroup rw\n", "/"),
            None
        );
    }
}
