//! Finding and ending the processes of a session that outlive its close (`kill_on_close`).
//!
//! A session's processes are, in order of preference: the members of its cgroup (exact:
//! [`crate::session::cgroup`]); the processes with its audit session id when the session has one of its
//! own (`pam_loginuid` earlier in the stack gives every sshd and login session a fresh one,
//! inherited by every descendant, daemons included, and not changeable by the user); the
//! descendants of the process that opened the session (which misses daemons).
//!
//! They get `SIGTERM`, then `SIGKILL` after a grace period, through pidfds so that a pid reused
//! in between is never hit.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `/proc/PID/sessionid`, `None` when unset.
pub fn audit_session(pid: i32) -> Option<u32> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/sessionid")).ok()?;
    let v: u32 = t.trim().parse().ok()?;
    (v != u32::MAX).then_some(v)
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain anything; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// The audit session id of `leader` if this session owns it (it differs from its parent's).
pub fn owned_audit_session(leader: i32) -> Option<u32> {
    let s = audit_session(leader)?;
    let parent = ppid(leader)?;
    (audit_session(parent) != Some(s)).then_some(s)
}

/// The processes of the session opened by `leader`, `exclude` and `leader` left out.
pub fn members(leader: i32, audit: Option<u32>, exclude: &[i32]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let pids: Vec<i32> =
        dir.filter_map(Result::ok).filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut out = Vec::new();
    for &p in &pids {
        if let Some(pp) = ppid(p) {
            children.entry(pp).or_default().push(p);
        }
        if audit.is_some() && audit_session(p) == audit {
            out.push(p);
        }
    }
    let mut stack = vec![leader];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            stack.push(c);
        }
    }
    out.sort_unstable();
    out.dedup();
    out.retain(|p| *p != leader && !exclude.contains(p));
    out
}

/// Ends `pids`: `SIGTERM`, then `SIGKILL` to those still there after `grace`. Returns how
/// many were signalled.
pub fn end(pids: &[i32], grace: Duration) -> usize {
    let fds: Vec<OwnedFd> = pids.iter().filter_map(|&p| crate::sys::pidfd_open(p, 0).ok()).collect();
    let signal = |fd: &OwnedFd, sig: i32| {
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, 0usize, 0) };
    };
    for fd in &fds {
        signal(fd, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut alive: Vec<&OwnedFd> = fds.iter().collect();
    while !alive.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        alive.retain(|fd| {
            let mut p = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
            // A pidfd is readable once its process has exited.
            !matches!(nix::poll::poll(&mut p, nix::poll::PollTimeout::ZERO), Ok(1))
        });
    }
    for fd in alive {
        signal(fd, libc::SIGKILL);
    }
    fds.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_found_and_ended() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .expect("spawn");
        let leader = child.id() as i32;
        let mut found = Vec::new();
        for _ in 0..50 {
            found = members(leader, None, &[]);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(end(&found, Duration::from_secs(2)), 2);
        // The shell's wait returns once both are gone.
        let status = child.wait().expect("wait");
        assert!(status.success() || status.code().is_some());
    }

    #[test]
    fn ppid_parses_a_command_with_spaces_and_parens() {
        assert_eq!(ppid(std::process::id() as i32), Some(nix::unistd::getppid().as_raw()));
    }
}
