//! The session's cgroup (v2): exact membership of the session's processes, daemons included.
//!
//! With systemd-logind, `pam_systemd` puts each session in its own scope and the supervisor
//! only reads it (it never writes into systemd's tree). Without logind, the supervisor
//! creates `<cgroup2 mount>/session-wrapper/<session id>`, moves the process that opens the
//! session into it before that process starts anything, and removes it when the session is
//! over. Membership needs no controller; the limits of the isolation layer use this same
//! cgroup.

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted, if it is.
pub fn v2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if !post.starts_with("cgroup2 ") {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

/// The v2 cgroup of `pid`, relative to the v2 mount.
pub fn of(pid: i32) -> Option<String> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    t.lines().find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

/// Whether the session is in a systemd-logind scope (`.../session-N.scope`).
pub fn in_logind_scope(pid: i32) -> bool {
    of(pid).is_some_and(|c| c.contains("/session-") && c.ends_with(".scope"))
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

/// The cgroup holding a session's processes.
#[derive(Debug)]
pub struct SessionCgroup {
    path: PathBuf,
    /// Created (and to be removed) by the supervisor, rather than logind's scope.
    owned: bool,
    /// `cgroup.freeze`, opened while the supervisor may still open files for writing.
    freezer: Option<std::fs::File>,
}

impl SessionCgroup {
    /// logind's scope when the leader is in one; otherwise a new cgroup for session `id` with
    /// `leader` moved into it.
    ///
    /// # Errors
    /// When cgroup v2 is not mounted or the cgroup cannot be made.
    pub fn for_session(id: &str, leader: i32) -> io::Result<Self> {
        let mount = v2_mount().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "cgroup v2 is not mounted"))?;
        if in_logind_scope(leader) {
            let rel = of(leader).unwrap_or_default();
            return Ok(SessionCgroup { path: mount.join(rel.trim_start_matches('/')), owned: false, freezer: None });
        }
        let path = mount.join("session-wrapper").join(id);
        std::fs::create_dir_all(&path)?;
        std::fs::write(path.join("cgroup.procs"), leader.to_string())?;
        let freezer = std::fs::OpenOptions::new().write(true).open(path.join("cgroup.freeze")).ok();
        Ok(SessionCgroup { path, owned: true, freezer })
    }

    /// The cgroup directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the supervisor created it.
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// The processes in it.
    pub fn members(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Freezes or thaws it (`cgroup.freeze`), so that nothing forks while it is emptied.
    pub fn freeze(&self, frozen: bool) {
        use std::io::Write;
        if let Some(mut f) = self.freezer.as_ref() {
            let _ = f.write_all(if frozen { b"1" } else { b"0" });
        }
    }

    /// Removes it once empty (only if the supervisor created it), and the shared parent when
    /// no other session uses it. A removed cgroup goes offline asynchronously, so the parent
    /// is retried for a moment.
    pub fn remove(&self) -> io::Result<()> {
        if !self.owned {
            return Ok(());
        }
        retry_busy(|| std::fs::remove_dir(&self.path))?;
        if let Some(parent) = self.path.parent() {
            // Another session may be using it: that is fine.
            let _ = retry_busy(|| std::fs::remove_dir(parent));
        }
        Ok(())
    }

    /// The cgroup the supervisor would own for session `id`, if it exists.
    pub fn owned_by(id: &str) -> Option<Self> {
        let path = v2_mount()?.join("session-wrapper").join(id);
        path.exists().then_some(SessionCgroup { path, owned: true, freezer: None })
    }

    /// Whether any process is left in it (`cgroup.events`).
    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.events"))
            .map(|t| t.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_moved_into_a_session_cgroup_is_listed_and_its_children_follow() {
        if v2_mount().is_none() || !crate::run_as_root() {
            eprintln!("skipped: needs root and a cgroup v2 mount");
            return;
        }
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read x; sleep 30 & echo started; wait"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let leader = child.id() as i32;
        let id = format!("test-{}", std::process::id());
        let cg = SessionCgroup::for_session(&id, leader).expect("cgroup");
        assert!(cg.owned());
        use std::io::{BufRead, Write};
        child.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let members = cg.members();
        assert_eq!(members.len(), 2, "the shell and its sleep: {members:?}");
        assert!(members.contains(&leader));
        for p in members {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.wait();
        std::thread::sleep(std::time::Duration::from_millis(100));
        cg.remove().expect("removed");
        assert!(!cg.path().exists());
    }
}
