//! Telling the user why a command was refused: one line on the refused process's standard
//! error.
//!
//! The line goes through the process's own fd 2, duplicated with `pidfd_getfd(2)`, so it
//! shares that descriptor's open file description and access mode. Reopening
//! `/proc/PID/fd/2` as root instead could write to a file the user had opened read-only; here a
//! descriptor that is not open for writing gets nothing.
//!
//! The supervisor never blocks on it:
//! - a pipe or FIFO is written with `RWF_NOWAIT` (a full pipe nobody reads: the line is lost);
//!   on kernels whose pipes do not take `RWF_NOWAIT` (Debian 12's 6.1), by the helper below,
//!   and only when the pipe has room for the whole line;
//! - a socket gets nothing: whatever the supervisor sends on it carries the supervisor's
//!   credentials (`SCM_CREDENTIALS` of uid 0 to a reader that asks for them, as journald and
//!   rsyslog do), so a user whose stderr is a socket to a log daemon would get a root-attributed
//!   line with text they partly choose;
//! - a terminal, or a regular file on a local filesystem, is written through the duplicate by
//!   a helper thread, [`Messenger`], which the supervisor waits on for at most 50 ms: long
//!   enough for the line to come before the shell's own error, short enough that a stopped
//!   terminal (`^S`) holds up only the helper. No reopen, so no permission check against the
//!   supervisor's credentials: a terminal of mode 0600 gets its line too;
//! - anything else (another device, a network or FUSE filesystem) gets nothing.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::{fstat, SFlag};

use session_wrapper_config::{Config, DecidedBy, Decision, Guard};
use session_wrapper_config::text::escape;

use crate::sys;

/// The line a refused exec's user sees: `session-wrapper: PATH: WHY`, where WHY is the rule's
/// message, what a guard refuses, or the rule's name.
pub fn text(config: &Config, asked: &[u8], d: &Decision) -> String {
    let what = escape(asked);
    let why = match (&d.message, d.by) {
        (Some(m), _) => crate::log::event::text(m),
        (None, DecidedBy::Guard(g)) => guard_text(g).to_owned(),
        (None, by) => format!("not allowed by policy (rule {})", config.policy.decider_name(by)),
    };
    format!("session-wrapper: {what}: {why}\n")
}

fn guard_text(g: Guard) -> &'static str {
    match g {
        Guard::Memfd => "running an anonymous memory file is not allowed",
        Guard::Deleted => "running a deleted file is not allowed",
        Guard::DynamicLoader => "running the dynamic loader directly is not allowed",
        Guard::LoaderEnv => "LD_PRELOAD/LD_AUDIT-style loader variables are not allowed",
        Guard::Traced => "running programs under a debugger or tracer is not allowed",
        Guard::ForeignMount => "this path names another program in the session, or a file of another mount namespace; it was not run",
        Guard::UserNamespaces => "running programs in a user namespace of one's own is not allowed",
        Guard::LibraryPath => "a library search path (LD_LIBRARY_PATH, GCONV_PATH) may name only directories that only root can change",
    }
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written whole.
    Written,
    /// The process has no fd 2.
    NoStderr,
    /// Its fd 2 is not open for writing: left untouched.
    NotWritable,
    /// Writing would have blocked: dropped.
    WouldBlock,
    /// Handed to the helper thread, still being written (a stopped terminal, say).
    Queued,
    /// A kind of file we do not write to.
    Skipped,
    /// A socket: what we send there would carry root's credentials.
    Socket,
    /// The write failed.
    Failed(Errno),
}

impl Delivery {
    /// A short word for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Written => "written",
            Delivery::NoStderr => "no-stderr",
            Delivery::NotWritable => "stderr-not-writable",
            Delivery::WouldBlock => "would-block",
            Delivery::Queued => "queued",
            Delivery::Skipped => "skipped",
            Delivery::Socket => "not-written-socket",
            Delivery::Failed(_) => "failed",
        }
    }
}

const LOCAL_FILESYSTEMS: &[i64] = &[
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x794C_7630, // overlayfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
];

fn errno_of(e: io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn outcome(r: Result<usize, Errno>, len: usize) -> Delivery {
    match r {
        Ok(n) if n == len => Delivery::Written,
        Ok(_) => Delivery::Failed(Errno::EIO),
        Err(Errno::EAGAIN) => Delivery::WouldBlock,
        Err(e) => Delivery::Failed(e),
    }
}

fn is_tty(fd: &OwnedFd) -> bool {
    nix::sys::termios::tcgetattr(fd.as_fd()).is_ok()
}

/// How long the supervisor waits for the helper to write a line.
const HELPER_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Lines the helper may have waiting; more are dropped.
const HELPER_QUEUE: usize = 16;

struct Job {
    fd: OwnedFd,
    text: Vec<u8>,
    done: std::sync::Arc<(std::sync::Mutex<Option<Delivery>>, std::sync::Condvar)>,
}

/// Writes deny messages without ever blocking the supervisor. Its helper thread starts on
/// first use.
#[derive(Default)]
pub struct Messenger {
    helper: Option<std::sync::mpsc::SyncSender<Job>>,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Messenger")
    }
}

impl Messenger {
    /// Writes `text` to fd 2 of process `tgid`.
    pub fn deliver(&mut self, tgid: i32, text: &[u8]) -> Delivery {
        match sys::pidfd_open(tgid, 0) {
            Ok(p) => self.deliver_via(p.as_fd(), text),
            Err(e) => Delivery::Failed(errno_of(e)),
        }
    }

    /// Writes `text` to fd 2 of the task behind `pidfd`.
    pub fn deliver_via(&mut self, pidfd: std::os::fd::BorrowedFd<'_>, text: &[u8]) -> Delivery {
        let fd = match sys::pidfd_getfd(pidfd, 2) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Delivery::NoStderr,
            Err(e) => return Delivery::Failed(errno_of(e)),
        };
        self.write(fd, text)
    }

    /// Writes `text` to `fd` (a duplicate of someone's descriptor) if it is open for writing.
    pub fn write(&mut self, fd: OwnedFd, text: &[u8]) -> Delivery {
        let Ok(fl) = fcntl(&fd, FcntlArg::F_GETFL) else { return Delivery::Failed(Errno::EBADF) };
        let fl = OFlag::from_bits_truncate(fl);
        if fl.contains(OFlag::O_PATH) || (fl & OFlag::O_ACCMODE) == OFlag::O_RDONLY {
            return Delivery::NotWritable;
        }
        let Ok(st) = fstat(&fd) else { return Delivery::Failed(Errno::EBADF) };
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFIFO => match sys::write_nowait(fd.as_fd(), text) {
                // A kernel whose pipes do not take RWF_NOWAIT (Debian 12's 6.1): write through
                // the helper when the pipe has room for the whole line (so the write does not
                // wait), else drop it as a full pipe's.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => match sys::pipe_room(fd.as_fd()) {
                    Ok(room) if room >= text.len() => self.through_helper(fd, text),
                    Ok(_) => Delivery::WouldBlock,
                    Err(e) => Delivery::Failed(errno_of(e)),
                },
                r => outcome(r.map_err(errno_of), text.len()),
            },
            SFlag::S_IFSOCK => Delivery::Socket,
            SFlag::S_IFCHR if is_tty(&fd) => self.through_helper(fd, text),
            SFlag::S_IFREG => {
                let local = nix::sys::statfs::fstatfs(&fd)
                    .map(|s| LOCAL_FILESYSTEMS.contains(&s.filesystem_type().0))
                    .unwrap_or(false);
                if local {
                    self.through_helper(fd, text)
                } else {
                    Delivery::Skipped
                }
            }
            _ => Delivery::Skipped,
        }
    }

    fn through_helper(&mut self, fd: OwnedFd, text: &[u8]) -> Delivery {
        let tx = match &self.helper {
            Some(tx) => tx.clone(),
            None => {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(HELPER_QUEUE);
                let spawned = std::thread::Builder::new().name("sw-messenger".into()).spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let r = outcome(nix::unistd::write(&job.fd, &job.text), job.text.len());
                        let (m, cv) = &*job.done;
                        *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
                        cv.notify_all();
                    }
                });
                if spawned.is_err() {
                    return Delivery::Skipped;
                }
                self.helper = Some(tx.clone());
                tx
            }
        };
        let done = std::sync::Arc::new((std::sync::Mutex::new(None), std::sync::Condvar::new()));
        let job = Job { fd, text: text.to_vec(), done: std::sync::Arc::clone(&done) };
        if tx.try_send(job).is_err() {
            return Delivery::WouldBlock;
        }
        let (m, cv) = &*done;
        let guard = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, _) = cv
            .wait_timeout_while(guard, HELPER_WAIT, |r| r.is_none())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.unwrap_or(Delivery::Queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn dup(f: &impl AsFd) -> OwnedFd {
        f.as_fd().try_clone_to_owned().expect("dup")
    }

    fn write_without_blocking(fd: &OwnedFd, text: &[u8]) -> Delivery {
        Messenger::default().write(dup(fd), text)
    }

    #[test]
    fn read_only_descriptor_is_left_untouched() {
        let p = std::env::temp_dir().join(format!("sw-msg-ro-{}", std::process::id()));
        std::fs::write(&p, b"original").expect("write");
        let ro = OwnedFd::from(std::fs::File::open(&p).expect("open ro"));
        assert_eq!(write_without_blocking(&ro, b"x\n"), Delivery::NotWritable);
        assert_eq!(std::fs::read(&p).expect("read"), b"original");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn full_pipe_does_not_block() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        nix::fcntl::fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("nonblock");
        let chunk = [0u8; 4096];
        while nix::unistd::write(&w, &chunk).is_ok() {}
        nix::fcntl::fcntl(&w, FcntlArg::F_SETFL(OFlag::empty())).expect("blocking again");
        let start = std::time::Instant::now();
        assert_eq!(write_without_blocking(&w, b"denied\n"), Delivery::WouldBlock);
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        drop(r);
    }

    #[test]
    fn pipe_room_is_the_capacity_less_what_waits_in_the_pipe() {
        let (_r, w) = nix::unistd::pipe().expect("pipe");
        let empty = sys::pipe_room(w.as_fd()).expect("room of an empty pipe");
        assert!(empty >= 4096, "{empty}");
        nix::unistd::write(&w, b"0123456789").expect("write");
        assert_eq!(sys::pipe_room(w.as_fd()).expect("room"), empty - 10);
    }

    #[test]
    fn pipe_and_tty_receive_the_line() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        assert_eq!(write_without_blocking(&w, b"denied\n"), Delivery::Written);
        let mut f = std::fs::File::from(r);
        let mut buf = [0u8; 7];
        f.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"denied\n");

        let pty = nix::pty::openpty(None, None).expect("openpty");
        // A terminal only its owner may write (mode 0600, as login leaves it) gets the line.
        nix::sys::stat::fchmod(&pty.slave, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("chmod");
        let mut m = Messenger::default();
        assert_eq!(m.write(dup(&pty.slave), b"denied\n"), Delivery::Written);
        // A stopped terminal holds up only the helper: the supervisor gets Queued in ~50 ms.
        nix::sys::termios::tcflow(&pty.slave, nix::sys::termios::FlowArg::TCOOFF).expect("stop");
        let start = std::time::Instant::now();
        assert_eq!(m.write(dup(&pty.slave), b"while stopped\n"), Delivery::Queued);
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // More lines than the helper queue holds are dropped, never waited for.
        let mut outcomes = Vec::new();
        for _ in 0..(HELPER_QUEUE + 4) {
            outcomes.push(m.write(dup(&pty.slave), b"x\n"));
        }
        assert!(outcomes.contains(&Delivery::WouldBlock), "{outcomes:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(3));
        // Restarting the terminal lets the queued line through.
        nix::sys::termios::tcflow(&pty.slave, nix::sys::termios::FlowArg::TCOON).expect("start");
        let mut master = std::fs::File::from(pty.master);
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&got).contains("while stopped") {
            let n = master.read(&mut buf).expect("read master");
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_socket_never_gets_a_line_with_the_supervisor_s_credentials() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        for ty in [SockType::Datagram, SockType::Stream] {
            let (a, b) = socketpair(AddressFamily::Unix, ty, None, SockFlag::empty()).expect("socketpair");
            nix::sys::socket::setsockopt(&b, nix::sys::socket::sockopt::PassCred, &true).expect("passcred");
            assert_eq!(write_without_blocking(&a, b"denied\n"), Delivery::Socket);
            let mut buf = [0u8; 16];
            let got = nix::sys::socket::recv(b.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT);
            assert_eq!(got, Err(Errno::EAGAIN), "{ty:?}: nothing was sent");
        }
    }

    #[test]
    fn missing_stderr_is_reported() {
        // A child with fd 2 closed, waiting on a pipe.
        let (r, w) = nix::unistd::pipe().expect("pipe");
        // SAFETY: the child only calls async-signal-safe functions before _exit.
        let child = match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                // SAFETY: closing our own fds in the child; read and _exit are signal safe.
                unsafe {
                    libc::close(w.as_raw_fd());
                    libc::close(2);
                    let mut b = [0u8; 1];
                    libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                    libc::_exit(0);
                }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        // Give the child a moment to close its fd 2.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(Messenger::default().deliver(child.as_raw(), b"x\n"), Delivery::NoStderr);
        drop(w);
        nix::sys::wait::waitpid(child, None).expect("wait");
    }
}
