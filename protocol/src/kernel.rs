//! The three kernel operations both the PAM module and the supervisor perform: installing the
//! session filter, probing whether the calling process is already supervised, and passing
//! messages (and the listener fd) over the socket between them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::wire::{Message, WireError, MAX_MESSAGE};

/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux 5.19): once the supervisor has received a
/// notification, only a fatal signal interrupts the waiting task, so a signal can no longer
/// make the kernel restart the syscall and the supervisor see it twice.
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;

/// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH` (Linux 5.7).
pub const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: libc::c_ulong = 1 << 4;

/// The fd argument of the probe ioctl: -1, which no real ioctl accepts (`EBADF`).
pub const PROBE_FD: u64 = 0xffff_ffff;
/// The request argument of the probe ioctl ("SWPR").
pub const PROBE_REQUEST: u64 = 0x5357_5052;

/// A classic BPF program, ready to install without allocating (so that a forked child can).
#[derive(Clone)]
pub struct FilterProgram {
    insns: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for FilterProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FilterProgram({} instructions)", self.insns.len())
    }
}

/// The most instructions a classic BPF program may have (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

impl FilterProgram {
    /// Reads a program exported by libseccomp (an array of `struct sock_filter`, native endian).
    ///
    /// # Errors
    /// `InvalidData` when the bytes are not a whole number of instructions, or too many.
    pub fn from_bytes(bytes: &[u8]) -> io::Result<Self> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > BPF_MAXINSNS {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a BPF program"));
        }
        let insns = bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(FilterProgram { insns })
    }

    /// The program as bytes, the inverse of [`FilterProgram::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.insns.len() * 8);
        for i in &self.insns {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program is empty (never true for a program from `from_bytes`).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Installs the program on the calling thread with a new listener and returns the
    /// listener. Never sets `NO_NEW_PRIVS`: the caller must have `CAP_SYS_ADMIN` (the PAM
    /// process is root) or have set it itself. Async-signal-safe: it allocates nothing.
    ///
    /// # Errors
    /// The errno of `seccomp(2)`: `EBUSY` when the thread is already under a filter with a
    /// listener, `EACCES` without `CAP_SYS_ADMIN` or `NO_NEW_PRIVS`.
    pub fn install_with_listener(&self) -> io::Result<OwnedFd> {
        self.install_listener(false)
    }

    /// Installs the program on every thread of the calling process, without a listener.
    /// The caller must have set `NO_NEW_PRIVS` (or hold `CAP_SYS_ADMIN`).
    ///
    /// # Errors
    /// The errno of `seccomp(2)`.
    pub fn install(&self) -> io::Result<()> {
        let prog = libc::sock_fprog {
            len: u16::try_from(self.insns.len()).unwrap_or(u16::MAX),
            filter: self.insns.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `len` valid instructions that outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Like [`FilterProgram::install_with_listener`], on every thread of the process at once
    /// (`SECCOMP_FILTER_FLAG_TSYNC`), for a host process that has more than one thread.
    ///
    /// # Errors
    /// As [`FilterProgram::install_with_listener`]; `ESRCH` if a thread cannot be synced.
    pub fn install_with_listener_all_threads(&self) -> io::Result<OwnedFd> {
        self.install_listener(true)
    }

    fn install_listener(&self, all_threads: bool) -> io::Result<OwnedFd> {
        let prog = libc::sock_fprog {
            // from_bytes bounds the length to BPF_MAXINSNS, which fits u16.
            len: u16::try_from(self.insns.len()).unwrap_or(u16::MAX),
            filter: self.insns.as_ptr().cast_mut(),
        };
        // TSYNC with a listener needs TSYNC_ESRCH (Linux 5.7) so that a failure is an errno.
        let sync = if all_threads {
            libc::SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        } else {
            0
        };
        let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | sync;
        for flags in [base | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, base] {
            // SAFETY: `prog` points to `len` valid instructions that outlive the call; the
            // kernel copies the program and returns a new fd or -1.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &prog as *const libc::sock_fprog,
                )
            };
            if fd >= 0 {
                // SAFETY: the kernel just returned this fd to us; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
            }
            let err = io::Error::last_os_error();
            // Kernels before 5.19 refuse the WAIT_KILLABLE_RECV flag with EINVAL.
            if err.raw_os_error() != Some(libc::EINVAL) || flags == base {
                return Err(err);
            }
        }
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// What the probe learned about the calling process.
#[derive(Debug)]
pub enum Probe {
    /// No supervisor answers for this process: a session may start one.
    NotSupervised,
    /// A supervisor answered with its session id.
    Supervised(u64),
    /// A supervisor answered a nested session's record with a descriptor (now the caller's)
    /// holding its reply: a [`Message::Supervise`] with the layers the nested session adds,
    /// or a [`Message::Failed`].
    Reply(OwnedFd),
    /// The process is under a session filter whose supervisor is gone: nothing may run.
    SupervisorGone,
    /// Anything else (the errno), which callers treat as a failure.
    Unexpected(i32),
}

/// Asks whether the calling process is supervised. The session filter sends this particular
/// ioctl to its supervisor, which answers with the session id (and, when `record` is given
/// and the caller is root, logs it; a [`Message::Nested`] record is answered with a
/// descriptor instead, see [`Probe::Reply`]). Outside a session the kernel answers
/// `EBADF`; under a filter whose listener is gone, `ENOSYS`.
pub fn probe(record: Option<&[u8]>) -> Probe {
    let (ptr, len) = record.map_or((0, 0), |r| (r.as_ptr() as u64, r.len() as u64));
    // SAFETY: ioctl on fd -1 touches no memory of ours unless a supervisor reads `record`,
    // which is valid for `len` bytes for the duration of the call.
    let r = unsafe {
        libc::syscall(libc::SYS_ioctl, PROBE_FD as libc::c_long, PROBE_REQUEST, ptr, len)
    };
    if r >= 0 {
        let r = r as u64;
        if r < crate::wire::SESSION_ID_FLOOR {
            if let Ok(fd) = libc::c_int::try_from(r) {
                // SAFETY: the supervisor installed this descriptor in this process for us.
                return Probe::Reply(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            return Probe::Unexpected(libc::EINVAL);
        }
        return Probe::Supervised(r);
    }
    match io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EBADF => Probe::NotSupervised,
        libc::ENOSYS => Probe::SupervisorGone,
        e => Probe::Unexpected(e),
    }
}

/// Why a message could not be exchanged.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// Nothing arrived in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer closed the socket.
    #[error("the other side closed the connection")]
    Closed,
    /// The datagram was not a valid message.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Sends one message, with an fd when given.
///
/// # Errors
/// The errno of `sendmsg(2)`.
pub fn send(sock: BorrowedFd<'_>, msg: &Message, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let bytes = msg.encode();
    let iov = [io::IoSlice::new(&bytes)];
    let fds = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> =
        fds.as_ref().map(|f| vec![ControlMessage::ScmRights(f)]).unwrap_or_default();
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// Receives one message (and the fd it carries, if any) within `timeout`.
/// Received fds are close-on-exec.
///
/// # Errors
/// [`ExchangeError`] on timeout, a closed peer, a socket error or a malformed message.
pub fn recv(
    sock: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<(Message, Option<OwnedFd>), ExchangeError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Err(ExchangeError::Timeout(timeout)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ExchangeError::Io(e.into())),
        }
        // The message's length first: a buffer of MAX_MESSAGE zeroed for each message
        // touched 16 pages, each a fault (copy on write in a forked supervisor) on the
        // session open's path (docs/BENCHMARKS.md, twelfth pass). A longer one is read (cut)
        // and refused: its first MAX_MESSAGE bytes may decode as a shorter message.
        let whole = match nix::sys::socket::recv(sock.as_raw_fd(), &mut [], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return Err(ExchangeError::Io(e.into())),
        };
        let mut buf = vec![0u8; whole.clamp(1, MAX_MESSAGE)];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let (n, fd) = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(r) => {
                let mut got: Option<OwnedFd> = None;
                for c in r.cmsgs().map_err(|e| ExchangeError::Io(e.into()))? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            // SAFETY: SCM_RIGHTS just installed this fd in our table.
                            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                            // Keep the first, close any extra.
                            if got.is_none() {
                                got = Some(owned);
                            }
                        }
                    }
                }
                (r.bytes, got)
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return Err(ExchangeError::Io(e.into())),
        };
        if n == 0 {
            return Err(ExchangeError::Closed);
        }
        if whole > MAX_MESSAGE {
            return Err(WireError::Malformed("message longer than the limit").into());
        }
        return Ok((Message::decode(&buf[..n])?, fd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .expect("socketpair")
    }

    #[test]
    fn message_and_fd_cross_a_socketpair() {
        let (a, b) = pair();
        let file = std::fs::File::open("/proc/self/status").expect("open");
        send(a.as_fd(), &Message::Listener, Some(file.as_fd())).expect("send");
        let (m, fd) = recv(b.as_fd(), Duration::from_secs(1)).expect("recv");
        assert_eq!(m, Message::Listener);
        let fd = fd.expect("an fd arrived");
        // It is close-on-exec.
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
        assert!(flags & libc::FD_CLOEXEC != 0);
    }

    #[test]
    fn recv_times_out_and_sees_a_closed_peer() {
        let (a, b) = pair();
        let e = recv(b.as_fd(), Duration::from_millis(20)).expect_err("nothing sent");
        assert!(matches!(e, ExchangeError::Timeout(_)));
        drop(a);
        let e = recv(b.as_fd(), Duration::from_millis(200)).expect_err("closed");
        assert!(matches!(e, ExchangeError::Closed));
    }

    #[test]
    fn messages_are_read_whole_at_their_own_length_and_an_overlong_one_is_refused() {
        let (a, b) = pair();
        // A filter of 4,000 instructions (32,000 bytes): larger than a page, below the limit.
        let insns: Vec<u8> = (0..4000u32).flat_map(|i| [0x06, 0, 0, 0, i as u8, 0, 0, 0]).collect();
        let filter = FilterProgram::from_bytes(&insns).expect("program");
        let m = Message::Supervise { session: 7, pid: 42, filter: filter.to_bytes(), isolate: Default::default() };
        send(a.as_fd(), &m, None).expect("send");
        send(a.as_fd(), &Message::Ready, None).expect("send");
        assert_eq!(recv(b.as_fd(), Duration::from_secs(1)).expect("recv").0, m);
        assert_eq!(recv(b.as_fd(), Duration::from_secs(1)).expect("recv").0, Message::Ready);
        // A datagram above the limit (by another writer than `send`) is an error, and the
        // next message still arrives: even one whose first MAX_MESSAGE bytes are a whole
        // message (a hello filling them exactly, then more).
        let fill = |n: usize| Message::Hello(crate::wire::Hello { user: vec![b'u'; n], service: b"s".to_vec(), ..crate::wire::Hello::default() }).encode();
        let base = fill(0).len();
        let mut overlong = fill(MAX_MESSAGE - base);
        assert_eq!(overlong.len(), MAX_MESSAGE, "the hello fills the limit");
        assert!(Message::decode(&overlong).is_ok());
        overlong.extend_from_slice(&[0u8; 100]);
        nix::sys::socket::send(a.as_raw_fd(), &overlong, MsgFlags::empty()).expect("raw send");
        send(a.as_fd(), &Message::Ready, None).expect("send");
        assert!(matches!(recv(b.as_fd(), Duration::from_secs(1)), Err(ExchangeError::Wire(WireError::Malformed(_)))));
        assert_eq!(recv(b.as_fd(), Duration::from_secs(1)).expect("recv").0, Message::Ready);
    }

    #[test]
    fn probe_outside_a_session_says_not_supervised() {
        assert!(matches!(probe(None), Probe::NotSupervised));
    }

    #[test]
    fn filter_program_bytes_roundtrip_and_bad_sizes_are_refused() {
        let bytes: Vec<u8> = (0u8..16).collect();
        let p = FilterProgram::from_bytes(&bytes).expect("two instructions");
        assert_eq!(p.len(), 2);
        assert_eq!(p.to_bytes(), bytes);
        assert!(FilterProgram::from_bytes(&bytes[..7]).is_err());
        assert!(FilterProgram::from_bytes(&[]).is_err());
        assert!(FilterProgram::from_bytes(&vec![0; 8 * (BPF_MAXINSNS + 1)]).is_err());
    }
}
