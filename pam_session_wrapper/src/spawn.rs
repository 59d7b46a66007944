//! Starting the supervisor from inside the host process (sshd, su, sudo, login).
//!
//! The host forks a child, which starts a new session (`setsid`, so the supervisor has no
//! controlling terminal and gets no terminal signals), forks the supervisor and exits at once;
//! the host reaps that child straight away, so the supervisor is never the host's child and
//! never disturbs the host's own `waitpid` bookkeeping. The supervisor process sets its fds
//! (its socket on fd 3, `/dev/null` on 0-2, nothing else), resets every signal, and execs the
//! supervisor binary with an explicit environment: a clean address space with nothing of the
//! host's heap. Between `fork` and `exec` only async-signal-safe calls are made and nothing is
//! allocated; any way out of the children ends in `_exit`, never in a return into the host.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use session_wrapper_protocol::{Message, SUPERVISOR_SOCKET_FD};

/// Why the supervisor could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The binary is missing or unsafe to run.
    #[error("supervisor binary {path}: {why}")]
    Binary {
        /// Its path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A system call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// Which.
        what: &'static str,
        /// Why.
        errno: nix::errno::Errno,
    },
}

/// Ends a forked child on any path out of it (a panic included).
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // SAFETY: ends the forked child without running any of the host's code.
        unsafe { libc::_exit(127) }
    }
}

/// Checks that the binary is a regular root-owned file nobody else can write.
fn check_binary(path: &str) -> Result<(), SpawnError> {
    let bad = |why: String| SpawnError::Binary { path: path.into(), why };
    let m = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !m.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(bad("not owned by root or writable by others".into()));
    }
    if m.mode() & 0o100 == 0 {
        return Err(bad("not executable".into()));
    }
    Ok(())
}

/// Starts the supervisor and returns the host's end of the socket to it.
///
/// # Errors
/// [`SpawnError`] when the binary is unusable or a system call fails. A failed `execve` is
/// reported by the supervisor side as a `Failed` message on the socket.
pub fn start(path: &str) -> Result<OwnedFd, SpawnError> {
    check_binary(path)?;
    let sys = |what: &'static str| move |errno| SpawnError::Sys { what, errno };
    let cpath = CString::new(path).map_err(|_| SpawnError::Binary {
        path: path.into(),
        why: "contains NUL".into(),
    })?;
    let argv: [&CStr; 2] = [c"session-wrapper-supervisor", c"--pam"];
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let envp: [&CStr; 2] = [c"PATH=/usr/sbin:/usr/bin:/sbin:/bin", c"LANG=C"];
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let exec_failed =
        Message::Failed { reason: format!("the supervisor binary {path} could not be executed") }
            .encode();

    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(sys("socketpair"))?;

    // waitpid needs SIGCHLD not ignored; restore the host's disposition afterwards.
    // SAFETY: sigaction with a zeroed struct reads the current disposition and installs the
    // default; both are restored below before returning.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: valid sigaction structs.
    unsafe { libc::sigaction(libc::SIGCHLD, &dfl, &mut old) };

    // SAFETY: the child only makes async-signal-safe calls and never returns.
    let first = unsafe { libc::fork() };
    if first == 0 {
        let _guard = ExitGuard;
        // SAFETY: async-signal-safe calls only; every path ends in _exit.
        unsafe {
            libc::setsid();
            if libc::fork() == 0 {
                supervisor_child(theirs.as_raw_fd(), &cpath, &argv_p, &envp_p, &exec_failed);
            }
            libc::_exit(0);
        }
    }
    let result = if first < 0 {
        Err(SpawnError::Sys { what: "fork", errno: nix::errno::Errno::last() })
    } else {
        loop {
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            let r = unsafe { libc::waitpid(first, &mut status, 0) };
            if r >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                break;
            }
        }
        Ok(ours)
    };
    // SAFETY: restores the disposition saved above.
    unsafe { libc::sigaction(libc::SIGCHLD, &old, std::ptr::null_mut()) };
    drop(theirs);
    result
}

/// In the supervisor process before exec: fds, signals, working directory, exec.
///
/// # Safety
/// Only to be called in a freshly forked child; it never returns.
unsafe fn supervisor_child(
    sock: libc::c_int,
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    exec_failed: &[u8],
) -> ! {
    // SAFETY: all calls below are async-signal-safe and act on this child only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        // Move the socket out of the way, put /dev/null on 0-2, the socket on 3.
        let high = libc::fcntl(sock, libc::F_DUPFD_CLOEXEC, 10);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if high < 0 || null < 0 {
            libc::_exit(127);
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if libc::dup2(high, SUPERVISOR_SOCKET_FD) < 0 {
            libc::_exit(127);
        }
        libc::close_range(4, libc::c_uint::MAX, 0);
        libc::chdir(c"/".as_ptr());
        libc::umask(0o022);
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        libc::send(SUPERVISOR_SOCKET_FD, exec_failed.as_ptr().cast(), exec_failed.len(), libc::MSG_NOSIGNAL);
        libc::_exit(127)
    }
}
