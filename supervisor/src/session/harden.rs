//! What the supervisor (and its watchdog) give up before serving a session, so that a bug in
//! them cannot be turned into more than they need.
//!
//! The supervisor keeps:
//! - `CAP_SYS_PTRACE` (read the session's memory, attach at execs, dup a refused process's
//!   stderr), `CAP_DAC_READ_SEARCH` (resolve paths and read `#!` lines in directories the
//!   supervisor's uid could not read), `CAP_KILL` (kill an image that was not authorized),
//!   and `CAP_AUDIT_WRITE` only when it sends audit records (`[log] audit`); every other
//!   capability is dropped, the bounding set included;
//! - reads everywhere, but opens no file for writing except under the runtime directory it
//!   holds open, and changes no path (no rename, unlink, chmod, link elsewhere);
//! - no way to write another process's memory or registers, to exec, to fork (threads only),
//!   to mount, load modules, change identity, use BPF, perf or io_uring: the supervisor reads
//!   the session, it never changes it.
//!
//! These come from its own seccomp filter (with `NO_NEW_PRIVS`: it never execs). Landlock would
//! express the file rules more simply, but a Landlock domain may not ptrace or read processes
//! outside it, which is the supervisor's whole job: so Landlock is not used here.
//! - not dumpable: no core, no `/proc` access for others, not attachable by the session's
//!   user even if it shared a uid.
//!
//! All of this applies to the calling thread and to threads started afterwards: apply it before
//! any thread exists. A PAM session's supervisor begins its confinement while the module
//! installs the session's filter (everything but the bounding set and its own filter) and
//! ends it after the module heard "ready", before it starts a thread or reads a notification
//! ([`Confinement`]): the bounding set's one call per capability and the filter's install are
//! the costly part.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use crate::authz::tacacs::journal::AcctDir;
use crate::log::spool::SpoolDir;
use crate::session::runtime::RuntimeDir;
use crate::sys::filter::{DirRange, FilterError, Writes};
use session_wrapper_protocol::FilterProgram;

/// The step of the confinement that failed.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    /// Dropping supplementary groups.
    #[error("setgroups: {0}")]
    Groups(Errno),
    /// Dropping capabilities from one of the sets.
    #[error("{set}: {source}")]
    Capabilities {
        /// Which set (`bounding set`, `inheritable`, ...).
        set: &'static str,
        /// What the kernel said.
        source: caps::errors::CapsError,
    },
    /// Making the process not dumpable.
    #[error("dumpable: {0}")]
    Dumpable(Errno),
    /// Setting `NO_NEW_PRIVS`.
    #[error("no_new_privs: {0}")]
    NoNewPrivs(Errno),
    /// Building the process's own filter.
    #[error("own filter: {0}")]
    BuildFilter(#[from] FilterError),
    /// Installing it.
    #[error("own filter: {0}")]
    InstallFilter(std::io::Error),
}

/// A process's confinement, begun: no supplementary groups (the supervisor), no capability
/// but those it keeps and `CAP_SETPCAP` (to drop the bounding set with), none to pass on,
/// not dumpable, `NO_NEW_PRIVS`; its filter built. [`Confinement::apply`] ends it: the
/// bounding set, `CAP_SETPCAP`, the filter. The filter compares the numbers of the
/// directories it may write under: they stay open where they are for the process's life.
pub struct Confinement {
    keep: caps::CapsHashSet,
    /// The filter, or why it could not be built (reported by [`Confinement::apply`], after
    /// the rest is applied all the same).
    filter: Result<FilterProgram, FilterError>,
}

impl std::fmt::Debug for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confinement").field("keep", &self.keep).field("filter", &self.filter.is_ok()).finish()
    }
}

impl Confinement {
    /// Begins the confinement of the calling thread (see [`Confinement`]); `writes` and
    /// `bpf_maps` are the filter's.
    fn begin(keep: caps::CapsHashSet, writes: Writes<'_>, bpf_maps: bool) -> Result<Self, HardenError> {
        use caps::{CapSet, Capability};
        // Built first: its cache is written with the rights of root.
        let filter = crate::sys::filter::build_self_filter(writes, bpf_maps);
        let mut held = keep.clone();
        held.insert(Capability::CAP_SETPCAP);
        caps::clear(None, CapSet::Inheritable).map_err(failed("inheritable"))?;
        caps::clear(None, CapSet::Ambient).map_err(failed("ambient"))?;
        hold(&held)?;
        nix::sys::prctl::set_dumpable(false).map_err(HardenError::Dumpable)?;
        nix::sys::prctl::set_no_new_privs().map_err(HardenError::NoNewPrivs)?;
        Ok(Confinement { keep, filter })
    }

    /// Ends it: every capability but those kept out of the bounding set (one call each, the
    /// costly part), `CAP_SETPCAP` dropped, the filter installed. To the calling thread and
    /// those started after: call it before any thread exists.
    ///
    /// # Errors
    /// The step that failed, or the filter that could not be built; the caller logs it and
    /// goes on (a supervisor that could not confine itself still serves the session
    /// correctly).
    pub fn apply(self) -> Result<(), HardenError> {
        for cap in caps::all() {
            if !self.keep.contains(&cap) {
                caps::drop(None, caps::CapSet::Bounding, cap).map_err(failed("bounding set"))?;
            }
        }
        hold(&self.keep)?;
        self.filter?.install().map_err(HardenError::InstallFilter)
    }
}

/// The error of a step on the capability set `set`.
fn failed(set: &'static str) -> impl Fn(caps::errors::CapsError) -> HardenError {
    move |source| HardenError::Capabilities { set, source }
}

/// Holds exactly `caps`, effective and permitted (effective first: it may not exceed
/// permitted).
fn hold(caps: &caps::CapsHashSet) -> Result<(), HardenError> {
    caps::set(None, caps::CapSet::Effective, caps).map_err(failed("effective"))?;
    caps::set(None, caps::CapSet::Permitted, caps).map_err(failed("permitted"))
}

/// Begins the supervisor's confinement ([`Confinement`]). `writes`: the directories it may
/// still create and replace files in (the runtime directory, the spool), from
/// [`writable_dirs`]; `audit`: it keeps `CAP_AUDIT_WRITE` to send audit records of its
/// decisions.
///
/// # Errors
/// The step that failed (the filter's build is reported by [`Confinement::apply`]).
pub fn supervisor(writes: Writes<'_>, audit: bool, bpf_maps: bool) -> Result<Confinement, HardenError> {
    use caps::Capability;
    let mut keep: caps::CapsHashSet =
        [Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH, Capability::CAP_KILL].into_iter().collect();
    if audit {
        keep.insert(Capability::CAP_AUDIT_WRITE);
    }
    if bpf_maps {
        // Before Linux 6.5 every bpf() call needs it, map updates included.
        keep.insert(Capability::CAP_BPF);
    }
    nix::unistd::setgroups(&[]).map_err(HardenError::Groups)?;
    Confinement::begin(keep, writes, bpf_maps)
}

/// The watchdog's confinement, whole: it only waits, logs, and removes the session's files
/// and cgroup (which needs `CAP_DAC_OVERRIDE` for the cgroup tree's read-only root).
///
/// # Errors
/// The step that failed.
pub fn watchdog() -> Result<(), HardenError> {
    let keep: caps::CapsHashSet = [caps::Capability::CAP_DAC_OVERRIDE].into_iter().collect();
    Confinement::begin(keep, Writes::Anywhere, false)?.apply()
}

/// Places the runtime directory's, the log spool's and the accounting spool's descriptors next to each other (one range
/// in the filter) and returns them as where the supervisor may write; nowhere if they cannot
/// be placed (which costs the session file and the spool, not the session).
pub fn writable_dirs<'a>(
    runtime: Option<&'a mut RuntimeDir>,
    spool: Option<&'a mut SpoolDir>,
    accounting: Option<&'a mut AcctDir>,
) -> Writes<'a> {
    let mut fds: Vec<&'a mut OwnedFd> = Vec::new();
    fds.extend(runtime.map(RuntimeDir::fd_mut));
    fds.extend(spool.map(SpoolDir::fd_mut));
    fds.extend(accounting.map(AcctDir::fd_mut));
    if crate::sys::place_consecutive(&mut fds).is_err() {
        return Writes::Nowhere;
    }
    let dirs: Vec<_> = fds
        .into_iter()
        .map(|f| {
            let f: &'a OwnedFd = f;
            f.as_fd()
        })
        .collect();
    DirRange::of(&dirs).map_or(Writes::Nowhere, Writes::Within)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child (confinement must never land on the test runner) and
    /// returns its exit code.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f` and exits; the test runner's other threads are not
        // touched (the child only has this thread).
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
                // SAFETY: ends the child without returning into the test harness.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
                other => panic!("child: {other:?}"),
            },
        }
    }

    #[test]
    fn a_hardened_supervisor_cannot_exec_write_elsewhere_or_write_memory() {
        if !crate::run_as_root() {
            eprintln!("skipped: capabilities can only be tested as root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sw-harden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.clone();
        let code = in_child(move || {
            let Ok(mut rt) = crate::session::runtime::RuntimeDir::open(&d) else { return 9 };
            if let Err(e) = supervisor(writable_dirs(Some(&mut rt), None, None), false, false).and_then(Confinement::apply) {
                eprintln!("hardening failed: {e}");
                return 10;
            }
            // Files are written through the runtime directory, nowhere else.
            let info = crate::session::runtime::SessionInfo { id: "000000000001".into(), supervisor: 1, ..Default::default() };
            if rt.write(&info).is_err() {
                return 11;
            }
            if std::fs::write("/tmp/sw-harden-forbidden", b"x").is_ok() || std::fs::write(d.join("x"), b"x").is_ok() {
                return 12;
            }
            if std::fs::rename(d.join("000000000001.session"), d.join("moved")).is_ok() {
                return 17;
            }
            // Reading is fine.
            if std::fs::read("/etc/hostname").is_err() && std::fs::read("/etc/passwd").is_err() {
                return 18;
            }
            // Capabilities: only the three kept.
            let eff = caps::read(None, caps::CapSet::Effective).unwrap_or_default();
            if eff.len() != 3 || !eff.contains(&caps::Capability::CAP_SYS_PTRACE) {
                return 13;
            }
            // No writing another process's memory.
            let local = [std::io::IoSlice::new(b"x")];
            let remote = [nix::sys::uio::RemoteIoVec { base: 0x1000, len: 1 }];
            if nix::sys::uio::process_vm_writev(nix::unistd::Pid::from_raw(1), &local, &remote)
                != Err(nix::errno::Errno::EPERM)
            {
                return 14;
            }
            // No fork.
            // SAFETY: a raw fork syscall; if it succeeded the child exits at once.
            let r = unsafe { libc::syscall(libc::SYS_fork) };
            if r == 0 {
                // SAFETY: ends the unexpected child.
                unsafe { libc::_exit(0) };
            }
            if r >= 0 {
                return 15;
            }
            // Threads still work.
            if std::thread::spawn(|| 1).join().unwrap_or(0) != 1 {
                return 16;
            }
            0
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(code, 0, "see the return codes in the test body");
    }

    /// A filter that could not be built is reported, and leaves the rest applied: the
    /// capabilities kept and no other, the bounding set too, not dumpable, `NO_NEW_PRIVS`.
    #[test]
    fn a_filter_that_could_not_be_built_leaves_the_rest_of_the_confinement_applied() {
        if !crate::run_as_root() {
            eprintln!("skipped: capabilities can only be tested as root");
            return;
        }
        let code = in_child(|| {
            let Ok(mut c) = supervisor(Writes::Nowhere, false, false) else { return 9 };
            c.filter = Err(FilterError::UnknownSyscall("none".into()));
            if !matches!(c.apply(), Err(HardenError::BuildFilter(_))) {
                return 10;
            }
            let kept = |set| caps::read(None, set).unwrap_or_default();
            if kept(caps::CapSet::Effective).len() != 3 || kept(caps::CapSet::Permitted).len() != 3 || kept(caps::CapSet::Bounding).len() != 3 {
                return 11;
            }
            if nix::sys::prctl::get_dumpable() != Ok(false) || nix::sys::prctl::get_no_new_privs() != Ok(true) {
                return 12;
            }
            0
        });
        assert_eq!(code, 0, "see the return codes in the test body");
    }

    #[test]
    fn a_hardened_supervisor_that_tries_to_exec_is_killed() {
        if !crate::run_as_root() {
            eprintln!("skipped: capabilities can only be tested as root");
            return;
        }
        // SAFETY: see in_child above.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let _ = supervisor(Writes::Nowhere, false, false).and_then(Confinement::apply);
                // SAFETY: NULL-terminated argument vector of static strings.
                unsafe { libc::execv(c"/bin/true".as_ptr(), [c"true".as_ptr(), std::ptr::null()].as_ptr()) };
                // SAFETY: reached only if exec did not kill us.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).expect("wait");
                assert!(
                    matches!(st, nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)),
                    "{st:?}"
                );
            }
        }
    }
}
