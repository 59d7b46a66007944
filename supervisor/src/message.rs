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
//! - a socket with `MSG_DONTWAIT`;
//! - a terminal through a fresh non-blocking description of the same terminal, opened from our
//!   duplicate (legitimate: the process already holds write access to it through that very
//!   descriptor), so a stopped terminal returns `EAGAIN`;
//! - a regular file on a local filesystem with a plain write at the descriptor's own offset;
//! - anything else (another device, a network or FUSE filesystem) gets nothing.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, openat, FcntlArg, OFlag};
use nix::sys::socket::{send, MsgFlags};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::sys;

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
    /// A kind of file we do not write to.
    Skipped,
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
            Delivery::Skipped => "skipped",
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

/// Writes `text` to fd 2 of process `tgid` without blocking.
pub fn deliver(tgid: i32, text: &[u8]) -> Delivery {
    match sys::pidfd_open(tgid, 0) {
        Ok(p) => deliver_via(p.as_fd(), text),
        Err(e) => Delivery::Failed(errno_of(e)),
    }
}

/// Writes `text` to fd 2 of the task behind `pidfd` without blocking.
pub fn deliver_via(pidfd: std::os::fd::BorrowedFd<'_>, text: &[u8]) -> Delivery {
    let fd = match sys::pidfd_getfd(pidfd, 2) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Delivery::NoStderr,
        Err(e) => return Delivery::Failed(errno_of(e)),
    };
    write_without_blocking(&fd, text)
}

/// Writes `text` to `fd` (a duplicate of someone's descriptor) without blocking, if that
/// descriptor is open for writing.
pub fn write_without_blocking(fd: &OwnedFd, text: &[u8]) -> Delivery {
    let Ok(fl) = fcntl(fd, FcntlArg::F_GETFL) else { return Delivery::Failed(Errno::EBADF) };
    let fl = OFlag::from_bits_truncate(fl);
    if fl.contains(OFlag::O_PATH) || (fl & OFlag::O_ACCMODE) == OFlag::O_RDONLY {
        return Delivery::NotWritable;
    }
    let Ok(st) = fstat(fd) else { return Delivery::Failed(Errno::EBADF) };
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFIFO => outcome(sys::write_nowait(fd.as_fd(), text).map_err(errno_of), text.len()),
        SFlag::S_IFSOCK => outcome(
            send(fd.as_raw_fd(), text, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL),
            text.len(),
        ),
        SFlag::S_IFCHR if is_tty(fd) => {
            let Ok(path) = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
                return Delivery::Failed(Errno::EINVAL);
            };
            let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
            match openat(nix::fcntl::AT_FDCWD, path.as_c_str(), flags, Mode::empty()) {
                Ok(tty) => outcome(nix::unistd::write(&tty, text), text.len()),
                Err(e) => Delivery::Failed(e),
            }
        }
        SFlag::S_IFREG => {
            let local = nix::sys::statfs::fstatfs(fd)
                .map(|s| LOCAL_FILESYSTEMS.contains(&(s.filesystem_type().0 as i64)))
                .unwrap_or(false);
            if local {
                outcome(nix::unistd::write(fd, text), text.len())
            } else {
                Delivery::Skipped
            }
        }
        _ => Delivery::Skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn dup(f: &impl AsFd) -> OwnedFd {
        f.as_fd().try_clone_to_owned().expect("dup")
    }

    #[test]
    fn read_only_descriptor_is_left_untouched() {
        let p = std::env::temp_dir().join(format!("sw-msg-ro-{}", std::process::id()));
        std::fs::write(&p, b"original").expect("write");
        let ro = std::fs::File::open(&p).expect("open ro");
        assert_eq!(write_without_blocking(&dup(&ro), b"x\n"), Delivery::NotWritable);
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
    fn pipe_and_tty_receive_the_line() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        assert_eq!(write_without_blocking(&w, b"denied\n"), Delivery::Written);
        let mut f = std::fs::File::from(r);
        let mut buf = [0u8; 7];
        f.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"denied\n");

        let pty = nix::pty::openpty(None, None).expect("openpty");
        assert_eq!(write_without_blocking(&pty.slave, b"denied\n"), Delivery::Written);
        // A stopped terminal answers EAGAIN instead of blocking.
        nix::sys::termios::tcflow(&pty.slave, nix::sys::termios::FlowArg::TCOOFF).expect("stop");
        let start = std::time::Instant::now();
        let mut last = Delivery::Written;
        for _ in 0..10_000 {
            last = write_without_blocking(&pty.slave, &[b'x'; 512]);
            if last != Delivery::Written {
                break;
            }
        }
        assert_eq!(last, Delivery::WouldBlock);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
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
        assert_eq!(deliver(child.as_raw(), b"x\n"), Delivery::NoStderr);
        drop(w);
        nix::sys::wait::waitpid(child, None).expect("wait");
    }
}
