//! The kernel as the supervisor sees it. The submodules: the session filter and its listener
//! ([`filter`], [`notify`]), other processes' memory and `/proc` ([`memory`], [`procfs`]),
//! path resolution and the `#!` chain ([`resolve`], [`exefile`], [`trust`]), ptrace
//! ([`tracer`]), users ([`users`]). This file holds the raw kernel interfaces that neither
//! `nix` nor `libseccomp` wrap; everything above it is safe Rust with owned fds.

pub mod bpf;
pub mod exefile;
pub mod filter;
pub mod memory;
pub mod notify;
pub mod procfs;
pub mod recipe;
pub mod resolve;
pub mod tracer;
pub mod trust;
pub mod users;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
/// `PIDFD_THREAD` (Linux 6.9): a pidfd for a thread rather than a thread-group leader.
pub const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Wraps a new fd the kernel just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: callers pass only a non-negative fd that a syscall just created for us.
    unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }
}

/// Asks the kernel to wake the supervisor on the notifying task's CPU and switch to it
/// directly, which makes a notification round trip several times cheaper (Linux 6.6).
///
/// # Errors
/// `EINVAL` on older kernels; callers carry on without it.
pub fn set_sync_wakeup(listener: BorrowedFd<'_>) -> io::Result<()> {
    let flags: u64 = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    // SAFETY: the ioctl reads a u64 by value from the third argument; no memory is passed.
    let r = unsafe {
        libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags, 0u64)
    };
    cvt(r as libc::c_long).map(drop)
}

/// `pidfd_open(2)`.
///
/// # Errors
/// `ESRCH` when the process is gone.
pub fn pidfd_open(pid: libc::pid_t, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    cvt(r).map(owned)
}

/// `struct pidfd_info`, first published size (Linux 6.13).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PidfdInfo {
    /// Which fields are valid.
    pub mask: u64,
    /// Cgroup id.
    pub cgroupid: u64,
    /// Thread or process id.
    pub pid: u32,
    /// Thread-group id.
    pub tgid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real uid.
    pub ruid: u32,
    /// Real gid.
    pub rgid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// The exit status (`wait(2)` form), with `PIDFD_INFO_EXIT` (Linux 6.15).
    pub exit_code: i32,
}

/// `PIDFD_GET_INFO`: `_IOWR(0xFF, 11, struct pidfd_info)` with the 64-byte first version.
const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B;
/// `PIDFD_INFO_PID | PIDFD_INFO_CREDS`.
const PIDFD_INFO_PID_CREDS: u64 = 0b11;

/// `PIDFD_INFO_EXIT`.
const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// The exit status of the process behind `pidfd` once it has been reaped (Linux 6.15), in
/// shell form: the exit code, or 128 + the signal. `None` while it runs or when the kernel
/// cannot tell.
pub fn pidfd_exit_status(pidfd: BorrowedFd<'_>) -> Option<i32> {
    let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..PidfdInfo::default() };
    // SAFETY: `info` is a 64-byte pidfd_info, the size encoded in the ioctl number.
    let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO, &mut info) };
    if r < 0 || info.mask & PIDFD_INFO_EXIT == 0 {
        return None;
    }
    let w = info.exit_code;
    Some(if libc::WIFSIGNALED(w) { 128 + libc::WTERMSIG(w) } else { libc::WEXITSTATUS(w) })
}

/// Ids and credentials of the task behind a pidfd (Linux 6.13), without parsing `/proc`.
///
/// # Errors
/// `ENOTTY`/`EINVAL` on older kernels, `ESRCH` when the task is gone.
pub fn pidfd_info(pidfd: BorrowedFd<'_>) -> io::Result<PidfdInfo> {
    let mut info = PidfdInfo { mask: PIDFD_INFO_PID_CREDS, ..PidfdInfo::default() };
    // SAFETY: `info` is a 64-byte pidfd_info, the size encoded in the ioctl number.
    let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO, &mut info) };
    cvt(r as libc::c_long)?;
    if info.mask & PIDFD_INFO_PID_CREDS != PIDFD_INFO_PID_CREDS {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(info)
}

/// `pidfd_getfd(2)`: a duplicate of fd `target_fd` of the process behind `pidfd`, sharing its
/// open file description (and so its access mode). Needs ptrace access to the process.
///
/// # Errors
/// `EBADF` when the process has no such fd, `EPERM` without ptrace access.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, target_fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes three integers and returns a new fd (close-on-exec) or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
    cvt(r).map(owned)
}

/// `pwritev2(fd, buf, -1, RWF_NOWAIT)`: a write at the current position that fails with
/// `EAGAIN` instead of blocking (supported by pipes on recent kernels, not by Debian 12's 6.1;
/// ttys and most files answer `EOPNOTSUPP`).
///
/// # Errors
/// The errno of the write.
pub fn write_nowait(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: one iovec describing `buf`, valid for the call.
    let r = unsafe { libc::pwritev2(fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
    cvt(r as libc::c_long).map(|n| n as usize)
}

/// The free space of the pipe `fd` is an end of: its capacity (`F_GETPIPE_SZ`) less what is
/// in it (`FIONREAD`).
///
/// # Errors
/// The errno of `fcntl(2)` or `ioctl(2)` (`fd` is not a pipe).
pub fn pipe_room(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let size = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) } as libc::c_long)?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `queued`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut queued) } as libc::c_long)?;
    Ok((size as usize).saturating_sub(usize::try_from(queued).unwrap_or(0)))
}

/// Closes every fd from `first` up.
///
/// # Errors
/// The errno of `close_range(2)`.
pub fn close_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range only closes fds; callers own every fd at or above `first`.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    cvt(r).map(drop)
}

/// A random 64-bit value from the kernel.
///
/// # Errors
/// The errno of `getrandom(2)`.
pub fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    random_fill(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// Fills `buf` (at most 256 bytes: one call, never short once the kernel's generator is
/// ready) with random bytes from the kernel.
///
/// # Errors
/// The errno of `getrandom(2)`, or `EIO` for a short read.
pub fn random_fill(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: getrandom writes at most buf.len() bytes into `buf`.
    let r = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    match usize::try_from(r) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err(io::Error::from_raw_os_error(libc::EIO)),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

/// An eventfd: a counter other threads raise and the supervisor's loop polls (readable while
/// it is not zero). Non-blocking, close-on-exec.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new one, at zero.
    ///
    /// # Errors
    /// The errno of `eventfd(2)`.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes two integers and returns a new fd or -1.
        let r = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        cvt(libc::c_long::from(r)).map(|fd| EventFd(owned(fd)))
    }

    /// Raises it: the loop wakes up.
    pub fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write from `one` to our eventfd; a full counter only fails.
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Back to zero: the loop sleeps again until the next [`EventFd::raise`].
    pub fn clear(&self) {
        let mut count = 0u64;
        // SAFETY: an 8-byte read from our eventfd into `count`; at zero it fails (EAGAIN).
        unsafe { libc::read(self.0.as_raw_fd(), (&raw mut count).cast(), 8) };
    }
}

impl std::os::fd::AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Opens directory `path`, creating it (mode 0700, parents too) if needed, for files only this
/// user (root) may touch: it must be owned by this user and have none of the mode bits of
/// `forbidden` (`0o022`: no one else writes it; `0o077`: no one else reads it either).
///
/// # Errors
/// When it cannot be made or opened, or has another owner or a forbidden mode bit.
pub fn open_own_dir(path: &std::path::Path, forbidden: u32) -> io::Result<OwnedFd> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !path.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    }
    let flags = nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NOFOLLOW;
    let fd = nix::fcntl::openat(nix::fcntl::AT_FDCWD, path, flags, nix::sys::stat::Mode::empty())?;
    let meta = std::fs::File::from(fd.try_clone()?).metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & forbidden != 0 {
        let want = if forbidden & 0o044 != 0 { "of mode 0700" } else { "writable by no one else" };
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be owned by uid {me} and {want} (it is {:o}, owned by uid {})",
                path.display(),
                meta.mode() & 0o7777,
                meta.uid()
            ),
        ));
    }
    Ok(fd)
}

/// Seconds since the epoch as `YYYY-MM-DD hh:mm:ss`, in UTC or local time.
pub fn calendar_time(secs: u64, utc: bool) -> String {
    let t = secs as libc::time_t;
    // SAFETY: gmtime_r and localtime_r write into `tm`; both are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let filled = unsafe { if utc { libc::gmtime_r(&t, &mut tm) } else { libc::localtime_r(&t, &mut tm) } };
    if filled.is_null() {
        return secs.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Moves descriptors to consecutive numbers, in order (for the supervisor's own filter, which
/// allows file writes relative to one range of directory descriptors). Each is replaced by a
/// close-on-exec duplicate at its new number.
///
/// # Errors
/// The errno of `fcntl(F_DUPFD_CLOEXEC)`.
pub fn place_consecutive(fds: &mut [&mut OwnedFd]) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    let mut base: i32 = 64;
    'retry: loop {
        let mut placed = Vec::with_capacity(fds.len());
        for (i, fd) in fds.iter().enumerate() {
            let want = base + i as i32;
            let raw = fcntl(&**fd, FcntlArg::F_DUPFD_CLOEXEC(want)).map_err(io::Error::from)?;
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) returned a new descriptor that nothing else owns.
            let new = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
            if raw != want {
                base = raw;
                continue 'retry;
            }
            placed.push(new);
        }
        for (slot, new) in fds.iter_mut().zip(placed) {
            **slot = new;
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn exit_status_of_a_process_we_did_not_start_is_read_from_its_pidfd() {
        // A grandchild: its parent (sh) reaps it, we only hold a pidfd.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sh -c 'sleep 0.3; exit 5' & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        reader.read_line(&mut line).expect("pid");
        let pid: i32 = line.trim().parse().expect("pid");
        let fd = pidfd_open(pid, 0).expect("pidfd");
        assert_eq!(pidfd_exit_status(fd.as_fd()), None, "still running");
        let mut status = None;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            status = pidfd_exit_status(fd.as_fd());
            if status.is_some() {
                break;
            }
        }
        assert_eq!(status, Some(5));
        let _ = child.wait();
    }
}
