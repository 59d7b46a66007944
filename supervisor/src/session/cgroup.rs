//! The session's cgroups: exact membership of the session's processes (daemons included) and
//! the resource limits of the isolation layers (`memory-max`, `pids-max`, `cpu-max`).
//!
//! With systemd-logind running, `pam_systemd` puts each session in its own scope and the
//! supervisor never writes into systemd's tree: it reads the scope for membership, and hands
//! the memory and task limits to `pam_systemd` ([`crate::session::from_pam`] passes them to
//! the module, which sets `systemd.memory_max` and `systemd.tasks_max`). Without logind, the supervisor
//! creates the cgroups, moves the process that opens the session into them before that
//! process starts anything, writes the limits, and removes them when the session is over:
//! - membership (and the limits whose controller is there): `<cgroup2>/session-wrapper/<id>`;
//! - a limit whose controller is mounted as cgroup v1 (a hybrid or legacy host): in that
//!   hierarchy, `<the leader's cgroup there>/session-wrapper/<id>`, under whatever already
//!   contains the leader, so that limits set above still apply.

use std::io;
use std::path::{Path, PathBuf};

use session_wrapper_config::isolation::CpuMax;
use session_wrapper_config::Layers;

/// Where cgroup v2 is mounted, if it is (and reachable: not covered by another mount).
pub fn v2_mount() -> Option<PathBuf> {
    mounts().into_iter().find_map(|m| (m.fstype == "cgroup2" && is_fs(&m.point, CGROUP2_SUPER_MAGIC)).then_some(m.point))
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// Whether `path` is the root of a file system of type `magic` as seen from here: a mount
/// listed in mountinfo may be covered by a later one (a container's tmpfs over
/// `/sys/fs/cgroup`, say), and writing "limits" into that would write plain files.
fn is_fs(path: &Path, magic: i64) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: a zeroed statfs is a valid out-buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path, valid buffer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == magic }
}

struct MountEntry {
    point: PathBuf,
    fstype: String,
    options: String,
}

fn mounts() -> Vec<MountEntry> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split(' ');
            let fstype = post.next()?.to_owned();
            let _source = post.next();
            let options = post.next().unwrap_or("").to_owned();
            let point = PathBuf::from(unescape_mount(pre.split(' ').nth(4)?));
            Some(MountEntry { point, fstype, options })
        })
        .collect()
}

/// mountinfo escapes spaces and a few others as octal `\NNN`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The v2 cgroup of `pid`, relative to the v2 mount.
pub fn of(pid: i32) -> Option<String> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    t.lines().find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

/// The cgroup of `pid` in the v1 hierarchy holding `controller`.
fn of_v1(pid: i32, controller: &str) -> Option<String> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    t.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        list.split(',').any(|c| c == controller).then(|| path.to_owned())
    })
}

/// Whether the session is in a systemd-logind scope (`.../session-N.scope`).
pub fn in_logind_scope(pid: i32) -> bool {
    of(pid).is_some_and(|c| is_session_scope(&c))
}

/// Whether a v2 cgroup is a logind session scope (`.../session-N.scope`).
pub fn is_session_scope(cgroup: &str) -> bool {
    cgroup.contains("/session-") && cgroup.ends_with(".scope")
}

/// Whether systemd-logind is running: systemd is the init system (`sd_booted`'s check) and
/// logind keeps its state (sd-login's check).
pub fn logind_running() -> bool {
    Path::new("/run/systemd/system").is_dir() && Path::new("/run/systemd/seats").is_dir()
}

/// A resource controller the isolation layers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `memory-max`.
    Memory,
    /// `pids-max`.
    Pids,
    /// `cpu-max`.
    Cpu,
}

impl Controller {
    /// The kernel's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// Where a controller can be used on this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// In the cgroup v2 hierarchy mounted here.
    V2(PathBuf),
    /// In its own cgroup v1 hierarchy mounted here.
    V1(PathBuf),
}

impl Home {
    /// `v2` or `v1`, for messages.
    pub fn version(&self) -> &'static str {
        match self {
            Home::V2(_) => "v2",
            Home::V1(_) => "v1",
        }
    }
}

/// Where `c` can be used: cgroup v2 when its root offers it, else a v1 hierarchy.
pub fn home(c: Controller) -> Option<Home> {
    let all = mounts();
    if let Some(m) = all.iter().find(|m| m.fstype == "cgroup2" && is_fs(&m.point, CGROUP2_SUPER_MAGIC)) {
        let offered = std::fs::read_to_string(m.point.join("cgroup.controllers")).unwrap_or_default();
        if offered.split_whitespace().any(|x| x == c.name()) {
            return Some(Home::V2(m.point.clone()));
        }
    }
    all.iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == c.name()) && is_fs(&m.point, CGROUP_SUPER_MAGIC))
        .map(|m| Home::V1(m.point.clone()))
}

/// The limit `pid` is under for controller `c`, as the kernel shows it (`max` or a number;
/// for the CPU, `QUOTA PERIOD` with `max` or -1 for no quota), with the cgroup version.
pub fn limit_of(pid: i32, c: Controller) -> Option<(String, &'static str)> {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok().map(|t| t.trim().to_owned());
    match home(c)? {
        Home::V2(mount) => {
            let dir = mount.join(of(pid)?.trim_start_matches('/'));
            let file = match c {
                Controller::Memory => "memory.max",
                Controller::Pids => "pids.max",
                Controller::Cpu => "cpu.max",
            };
            Some((read(dir.join(file))?, "v2"))
        }
        Home::V1(mount) => {
            let dir = mount.join(of_v1(pid, c.name())?.trim_start_matches('/'));
            let value = match c {
                Controller::Memory => read(dir.join("memory.limit_in_bytes"))?,
                Controller::Pids => read(dir.join("pids.max"))?,
                Controller::Cpu => format!("{} {}", read(dir.join("cpu.cfs_quota_us"))?, read(dir.join("cpu.cfs_period_us"))?),
            };
            Some((value, "v1"))
        }
    }
}

/// Retries an operation that fails with `EBUSY` while the kernel finishes taking a cgroup or
/// its last task down (both happen asynchronously), for up to about a second.
fn retry_busy(mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..50 {
        last = f();
        match &last {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => break,
        }
    }
    last
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("writing {value:?} to {}: {e}", path.display())))
}

fn limit_error(what: String) -> io::Error {
    io::Error::other(what)
}

/// The limits a session gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory.
    pub memory_max: Option<u64>,
    /// Tasks.
    pub pids_max: Option<u64>,
    /// CPU bandwidth.
    pub cpu_max: Option<CpuMax>,
}

impl Limits {
    /// The limits of merged isolation layers.
    pub fn of(layers: &Layers) -> Self {
        Limits { memory_max: layers.memory_max, pids_max: layers.pids_max, cpu_max: layers.cpu_max }
    }

    /// Whether there is any.
    pub fn any(&self) -> bool {
        self.memory_max.is_some() || self.pids_max.is_some() || self.cpu_max.is_some()
    }

    fn get(&self, c: Controller) -> bool {
        match c {
            Controller::Memory => self.memory_max.is_some(),
            Controller::Pids => self.pids_max.is_some(),
            Controller::Cpu => self.cpu_max.is_some(),
        }
    }

    /// The controllers these limits need.
    pub fn controllers(&self) -> Vec<Controller> {
        [Controller::Memory, Controller::Pids, Controller::Cpu].into_iter().filter(|c| self.get(*c)).collect()
    }
}

/// A v1 cgroup the supervisor made for one controller.
#[derive(Debug, Clone)]
struct V1Dir {
    controller: Controller,
    path: PathBuf,
}

/// The cgroups holding a session's processes.
#[derive(Debug)]
pub struct SessionCgroup {
    /// The v2 cgroup (ours, or logind's scope), if any.
    path: Option<PathBuf>,
    /// Created (and to be removed) by the supervisor, rather than logind's scope.
    owned: bool,
    /// Limits applied in the v2 cgroup.
    v2_limits: Vec<Controller>,
    /// Cgroups made in v1 hierarchies for limits.
    v1: Vec<V1Dir>,
    /// `cgroup.freeze`, opened while the supervisor may still open files for writing.
    freezer: Option<std::fs::File>,
}

impl SessionCgroup {
    /// logind's scope when the leader is in one; otherwise new cgroups for session `id` with
    /// `leader` moved into them and `limits` written. Limits must all hold, or nothing is
    /// left behind and the error says which could not be applied; membership alone is best
    /// effort (without cgroup v2 the session has none).
    ///
    /// Under logind the caller hands the limits to pam_systemd instead: pass none here.
    ///
    /// # Errors
    /// When a limit cannot be applied, or (without limits) when no cgroup can be made.
    pub fn for_session(id: &str, leader: i32, limits: &Limits) -> io::Result<Self> {
        if in_logind_scope(leader) {
            let mount = v2_mount().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "cgroup v2 is not mounted"))?;
            let rel = of(leader).unwrap_or_default();
            return Ok(SessionCgroup {
                path: Some(mount.join(rel.trim_start_matches('/'))),
                owned: false,
                v2_limits: Vec::new(),
                v1: Vec::new(),
                freezer: None,
            });
        }
        let mut cg = SessionCgroup { path: None, owned: true, v2_limits: Vec::new(), v1: Vec::new(), freezer: None };
        match cg.build(id, leader, limits) {
            Ok(()) => Ok(cg),
            Err(e) => {
                // Put the leader back where it was is not needed: it is moved last.
                let _ = cg.remove();
                Err(e)
            }
        }
    }

    fn build(&mut self, id: &str, leader: i32, limits: &Limits) -> io::Result<()> {
        let mut v2_wanted = Vec::new();
        let mut v1_wanted = Vec::new();
        for c in limits.controllers() {
            match home(c) {
                Some(Home::V2(_)) => v2_wanted.push(c),
                Some(Home::V1(m)) => v1_wanted.push((c, m)),
                None => return Err(limit_error(format!("the {} controller is not available (neither cgroup v2 nor v1)", c.name()))),
            }
        }
        if let Some(mount) = v2_mount() {
            let parent = mount.join("session-wrapper");
            let path = parent.join(id);
            std::fs::create_dir_all(&path)?;
            self.path = Some(path.clone());
            if !v2_wanted.is_empty() {
                let enable: String = v2_wanted.iter().map(|c| format!("+{} ", c.name())).collect();
                let enable = enable.trim_end();
                for dir in [&mount, &parent] {
                    write_file(&dir.join("cgroup.subtree_control"), enable)?;
                }
                for c in &v2_wanted {
                    write_limit_v2(&path, *c, limits)?;
                }
                self.v2_limits = v2_wanted;
            }
        } else if limits.any() && v1_wanted.is_empty() {
            return Err(limit_error("cgroup v2 is not mounted".into()));
        }
        for (c, mount) in v1_wanted {
            let base = of_v1(leader, c.name()).unwrap_or_else(|| "/".into());
            let path = mount.join(base.trim_start_matches('/')).join("session-wrapper").join(id);
            std::fs::create_dir_all(&path)?;
            self.v1.push(V1Dir { controller: c, path: path.clone() });
            write_limit_v1(&path, c, limits)?;
        }
        // The leader moves last, once every limit holds.
        for dir in self.v1.iter().map(|d| d.path.clone()).chain(self.path.clone()) {
            write_file(&dir.join("cgroup.procs"), &leader.to_string())?;
        }
        if let Some(p) = &self.path {
            self.freezer = std::fs::OpenOptions::new().write(true).open(p.join("cgroup.freeze")).ok();
        }
        Ok(())
    }

    /// The v2 cgroup directory, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every directory the limits live in, with the cgroup version: for logs and tests.
    pub fn limit_dirs(&self) -> Vec<(Controller, &'static str, &Path)> {
        let mut v: Vec<_> = self.v2_limits.iter().filter_map(|c| Some((*c, "v2", self.path.as_deref()?))).collect();
        v.extend(self.v1.iter().map(|d| (d.controller, "v1", d.path.as_path())));
        v
    }

    /// Whether the supervisor created it.
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// The same cgroups without the open freezer file: what the watchdog keeps to clean up.
    pub fn for_cleanup(&self) -> Self {
        SessionCgroup {
            path: self.path.clone(),
            owned: self.owned,
            v2_limits: self.v2_limits.clone(),
            v1: self.v1.clone(),
            freezer: None,
        }
    }

    /// The processes in it.
    pub fn members(&self) -> Vec<i32> {
        let Some(dir) = self.path.as_ref().or_else(|| self.v1.first().map(|d| &d.path)) else { return Vec::new() };
        read_procs(dir)
    }

    /// Freezes or thaws it (`cgroup.freeze`), so that nothing forks while it is emptied.
    pub fn freeze(&self, frozen: bool) {
        use std::io::Write;
        if let Some(mut f) = self.freezer.as_ref() {
            let _ = f.write_all(if frozen { b"1" } else { b"0" });
        }
    }

    /// Removes them once empty (only those the supervisor created), and the shared parents
    /// when no other session uses them. A removed cgroup goes offline asynchronously, so
    /// the parent is retried for a moment.
    ///
    /// # Errors
    /// The first removal that failed.
    pub fn remove(&self) -> io::Result<()> {
        if !self.owned {
            return Ok(());
        }
        let mut first_err = Ok(());
        for dir in self.v1.iter().map(|d| &d.path).chain(self.path.as_ref()) {
            let r = retry_busy(|| match std::fs::remove_dir(dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            });
            if let Some(parent) = dir.parent() {
                // Another session may be using it: that is fine.
                let _ = retry_busy(|| std::fs::remove_dir(parent));
            }
            if first_err.is_ok() {
                first_err = r;
            }
        }
        first_err
    }

    /// Waits until they are empty, then removes them (see [`SessionCgroup::remove`]). After a
    /// normal end they are empty; after a supervisor's death the session's processes live on,
    /// unable to run anything, and the cgroups go once the last of them is gone.
    ///
    /// # Errors
    /// The first removal that failed.
    pub fn remove_when_empty(&self) -> io::Result<()> {
        if !self.owned {
            return Ok(());
        }
        while self.populated() {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        self.remove()
    }

    /// Whether any process is left in any of them.
    pub fn populated(&self) -> bool {
        let v2 = self.path.as_ref().is_some_and(|p| {
            std::fs::read_to_string(p.join("cgroup.events")).map(|t| t.lines().any(|l| l == "populated 1")).unwrap_or(false)
        });
        v2 || self.v1.iter().any(|d| !read_procs(&d.path).is_empty())
    }

    /// How often the session ran into its limits: `(name, count)` for the log line at the
    /// session's end (`oom_kills`, `pids_max_hits`, `cpu_throttled`).
    pub fn limit_events(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        for (c, version, dir) in self.limit_dirs() {
            let (file, key, name) = match (c, version) {
                (Controller::Memory, "v2") => ("memory.events", "oom_kill", "oom_kills"),
                (Controller::Memory, _) => ("memory.oom_control", "oom_kill", "oom_kills"),
                (Controller::Pids, _) => ("pids.events", "max", "pids_max_hits"),
                (Controller::Cpu, _) => ("cpu.stat", "nr_throttled", "cpu_throttled"),
            };
            if let Some(n) = read_key(&dir.join(file), key) {
                out.push((name, n));
            }
        }
        out
    }
}

fn read_procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The number after `key` in a flat-keyed cgroup file (`key N` lines).
pub fn read_key(file: &Path, key: &str) -> Option<u64> {
    let t = std::fs::read_to_string(file).ok()?;
    t.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn write_limit_v2(dir: &Path, c: Controller, l: &Limits) -> io::Result<()> {
    match c {
        Controller::Memory => {
            let m = l.memory_max.unwrap_or(u64::MAX);
            write_file(&dir.join("memory.max"), &m.to_string())?;
            // Without this the kernel may keep part of the group's memory out of the limit's
            // reach by swapping: the limit is on memory, as operators read it.
            let _ = write_file(&dir.join("memory.swap.max"), "0");
            Ok(())
        }
        Controller::Pids => write_file(&dir.join("pids.max"), &l.pids_max.unwrap_or(u64::MAX).to_string()),
        Controller::Cpu => {
            let c = l.cpu_max.unwrap_or(CpuMax { quota: 0, period: 100_000 });
            write_file(&dir.join("cpu.max"), &format!("{} {}", c.quota, c.period))
        }
    }
}

fn write_limit_v1(dir: &Path, c: Controller, l: &Limits) -> io::Result<()> {
    match c {
        Controller::Memory => {
            let m = l.memory_max.unwrap_or(u64::MAX);
            write_file(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                let _ = write_file(&dir.join("memory.memsw.limit_in_bytes"), &m.to_string());
            }
            Ok(())
        }
        Controller::Pids => write_file(&dir.join("pids.max"), &l.pids_max.unwrap_or(u64::MAX).to_string()),
        Controller::Cpu => {
            let c = l.cpu_max.unwrap_or(CpuMax { quota: 0, period: 100_000 });
            write_file(&dir.join("cpu.cfs_period_us"), &c.period.to_string())?;
            write_file(&dir.join("cpu.cfs_quota_us"), &c.quota.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("/bin/sh")
            .args(["-c", "read x; sleep 30 & echo started; wait"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    }

    fn end(child: &mut std::process::Child, cg: &SessionCgroup) {
        for p in cg.members() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        for _ in 0..50 {
            if !cg.populated() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        cg.remove().expect("removed");
    }

    #[test]
    fn a_process_moved_into_a_session_cgroup_is_listed_and_its_children_follow() {
        if v2_mount().is_none() || !crate::run_as_root() {
            eprintln!("skipped: needs root and a cgroup v2 mount");
            return;
        }
        let mut child = sleeper();
        let leader = child.id() as i32;
        let id = format!("test-{}", std::process::id());
        let cg = SessionCgroup::for_session(&id, leader, &Limits::default()).expect("cgroup");
        assert!(cg.owned());
        use std::io::{BufRead, Write};
        child.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let members = cg.members();
        assert_eq!(members.len(), 2, "the shell and its sleep: {members:?}");
        assert!(members.contains(&leader));
        let path = cg.path().expect("v2 path").to_owned();
        end(&mut child, &cg);
        assert!(!path.exists());
    }

    #[test]
    fn limits_are_written_where_each_controller_lives_and_removed_after() {
        if !crate::run_as_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let limits = Limits {
            memory_max: Some(256 << 20),
            pids_max: Some(64),
            cpu_max: Some(CpuMax { quota: 50_000, period: 100_000 }),
        };
        for c in limits.controllers() {
            if home(c).is_none() {
                eprintln!("skipped: the {} controller is not available here", c.name());
                return;
            }
        }
        let mut child = sleeper();
        let leader = child.id() as i32;
        let id = format!("test-limits-{}", std::process::id());
        let cg = SessionCgroup::for_session(&id, leader, &limits).expect("cgroup with limits");
        let dirs: Vec<(Controller, &str, PathBuf)> = cg.limit_dirs().into_iter().map(|(c, v, p)| (c, v, p.to_owned())).collect();
        assert_eq!(dirs.len(), 3, "{dirs:?}");
        for (c, v, dir) in &dirs {
            assert!(read_procs(dir).contains(&leader), "{} ({v}) holds the leader", c.name());
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read").trim().to_owned();
            match (c, *v) {
                (Controller::Memory, "v2") => assert_eq!(read("memory.max"), (256u64 << 20).to_string()),
                (Controller::Memory, _) => assert_eq!(read("memory.limit_in_bytes"), (256u64 << 20).to_string()),
                (Controller::Pids, _) => assert_eq!(read("pids.max"), "64"),
                (Controller::Cpu, "v2") => assert_eq!(read("cpu.max"), "50000 100000"),
                (Controller::Cpu, _) => assert_eq!(read("cpu.cfs_quota_us"), "50000"),
            }
        }
        assert!(cg.limit_events().iter().any(|(n, _)| *n == "pids_max_hits"), "{:?}", cg.limit_events());
        end(&mut child, &cg);
        for (_, _, dir) in dirs {
            assert!(!dir.exists(), "{} removed", dir.display());
        }
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}
