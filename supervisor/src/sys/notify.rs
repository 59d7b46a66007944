//! The seccomp listener: receiving notifications and answering them, through the
//! `SECCOMP_IOCTL_NOTIF_*` ioctls (corresponds to seccomp_unotify(2)).
//!
//! These ioctls are used directly rather than through libseccomp's notify API: libseccomp 2.5
//! reports every kernel error as `ECANCELED`, which hides the one that matters here (`ENOENT`:
//! the task died while it waited), and allocates on every call.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

/// One pending system call of a task under the session filter.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    /// The notification id; every answer names it.
    pub id: u64,
    /// The thread id of the caller (in the supervisor's pid namespace).
    pub tid: i32,
    /// `AUDIT_ARCH_*` of the call.
    pub arch: u32,
    /// System call number on that architecture.
    pub nr: i32,
    /// Raw arguments.
    pub args: [u64; 6],
}

/// The answer was not delivered because the task is gone (killed while it waited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The listener fd of a session filter.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Listener {
    /// Takes ownership of a listener fd.
    pub fn new(fd: OwnedFd) -> Self {
        Listener { fd }
    }

    /// Receives the next notification. `Ok(None)` when the task died between the wake-up
    /// and the receive, or a signal interrupted the call: just poll again.
    ///
    /// # Errors
    /// Any other errno of the ioctl.
    pub fn recv(&self) -> io::Result<Option<Notification>> {
        // SAFETY: seccomp_notif is plain data; all-zero is a valid value and the kernel
        // requires the buffer to be zeroed.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: `n` is a seccomp_notif of the size encoded in the ioctl number.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT | libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Notification {
            id: n.id,
            tid: n.pid as i32,
            arch: n.data.arch,
            nr: n.data.nr,
            args: n.data.args,
        }))
    }

    /// Whether the notification is still pending (its task alive and waiting). Call it after
    /// reading anything about the task, so that a pid reused by another process is not
    /// mistaken for the caller.
    pub fn id_valid(&self, id: u64) -> bool {
        // SAFETY: the ioctl reads a u64 from the pointer, valid for the call.
        unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
    }

    fn send(&self, id: u64, val: i64, error: i32, flags: u32) -> Result<(), Gone> {
        let mut resp = libc::seccomp_notif_resp { id, val, error, flags };
        loop {
            // SAFETY: `resp` is a seccomp_notif_resp of the size encoded in the ioctl number.
            let r = unsafe {
                libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp)
            };
            if r == 0 {
                return Ok(());
            }
            match Errno::last() {
                Errno::EINTR => continue,
                // ENOENT: the task is gone; anything else means the id is no longer ours.
                _ => return Err(Gone),
            }
        }
    }

    /// Lets the system call run (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    ///
    /// # Errors
    /// [`Gone`] when the task no longer waits.
    pub fn allow(&self, id: u64) -> Result<(), Gone> {
        self.send(id, 0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
    }

    /// Fails the system call with `errno`.
    ///
    /// # Errors
    /// [`Gone`] when the task no longer waits.
    pub fn refuse(&self, id: u64, errno: Errno) -> Result<(), Gone> {
        self.send(id, 0, -(errno as i32), 0)
    }

    /// Completes the system call by installing `fd` in the caller (close-on-exec) and
    /// returning its number there (`SECCOMP_ADDFD_FLAG_SEND`, Linux 5.14).
    ///
    /// # Errors
    /// The ioctl's errno (`ENOENT`: the task no longer waits).
    pub fn reply_with_fd(&self, id: u64, fd: std::os::fd::BorrowedFd<'_>) -> Result<i32, Errno> {
        let addfd = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: libc::O_CLOEXEC as u32,
        };
        // SAFETY: `addfd` is a seccomp_notif_addfd of the size encoded in the ioctl number.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r)
        }
    }

    /// Completes the system call with return value `val`, without running it.
    ///
    /// # Errors
    /// [`Gone`] when the task no longer waits.
    pub fn reply(&self, id: u64, val: i64) -> Result<(), Gone> {
        self.send(id, val, 0, 0)
    }
}
