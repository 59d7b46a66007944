//! The kernel's audit interface (`NETLINK_AUDIT`): its socket, its messages, and the one
//! question both sides ask: whether audit is enabled and a daemon receives its records. The
//! PAM module asks it while the supervisor it started is still loading, and passes the socket
//! the reply comes to with its hello; a supervisor without one asks itself.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `NETLINK_AUDIT`.
const NETLINK_AUDIT: i32 = 9;
/// `AUDIT_GET`: the audit status.
pub const AUDIT_GET: u16 = 1000;
/// `NLMSG_ERROR`: the kernel refused the request.
const NLMSG_ERROR: u16 = 2;

/// Opens the kernel's audit socket.
///
/// # Errors
/// The errno of `socket(2)`.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_AUDIT) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A netlink message of `kind` with `payload`.
pub fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

/// Sends `m` to the kernel on `fd`.
///
/// # Errors
/// The errno of `sendto(2)`.
pub fn send(fd: &OwnedFd, m: &[u8]) -> io::Result<()> {
    // SAFETY: `m` is valid for its length; the kernel is the destination (a zeroed address).
    let r = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            fd.as_raw_fd(),
            m.as_ptr().cast(),
            m.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The audit status question, asked: the socket its reply comes to.
#[derive(Debug)]
pub struct Question(OwnedFd);

impl Question {
    /// Asks the kernel for its audit status; `None` when the socket cannot be made or the
    /// question not sent. Without `CAP_AUDIT_CONTROL` the question is sent all the same, and
    /// refused in the reply ([`Question::answer`] says `None`).
    pub fn ask() -> Option<Self> {
        let fd = socket().ok()?;
        send(&fd, &message(AUDIT_GET, &[])).ok()?;
        Some(Question(fd))
    }

    /// The question another process asked (the PAM module), on the socket it passed: `None`
    /// unless `fd` is a netlink socket of the audit protocol.
    pub fn from_fd(fd: OwnedFd) -> Option<Self> {
        let int = |opt| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `v` and `len` are valid for the call and sized as the option is.
            let r = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) };
            (r == 0).then_some(v)
        };
        (int(libc::SO_DOMAIN) == Some(libc::AF_NETLINK) && int(libc::SO_PROTOCOL) == Some(NETLINK_AUDIT)).then_some(Question(fd))
    }

    /// The socket the reply comes to, to pass on.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Whether audit is enabled and a daemon receives its records; `None` when the kernel
    /// refused the question (no `CAP_AUDIT_CONTROL`) or did not answer within `wait`.
    ///
    /// The kernel sends the reply from a thread of its own (`audit_send_reply`), a moment
    /// after the request: on a slow machine (Debian 12 under qemu) it was not there yet when
    /// read at once. So it is waited for, a bounded time.
    pub fn answer(self, wait: Duration) -> Option<bool> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: one pollfd, valid for the call.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if r <= 0 {
                return None;
            }
            // SAFETY: reads at most buf.len() bytes into `buf`, the sender's address into `from`.
            let (n, from) = unsafe {
                let mut from: libc::sockaddr_nl = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
                let n = libc::recvfrom(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut len,
                );
                (n, from)
            };
            // Only the kernel's (port 0) counts.
            if n < 0 || from.nl_pid != 0 {
                continue;
            }
            if let Some(said) = status(&buf[..n as usize]) {
                return said;
            }
        }
    }
}

/// What a message from the kernel says to the audit status question: `Some(answer)` for the
/// reply (`None` in it: the question was refused), `None` for another message.
fn status(m: &[u8]) -> Option<Option<bool>> {
    let word = |i: usize| m.get(i..i + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    // nlmsghdr (16 bytes), then audit_status { mask, enabled, failure, pid, ... }; enabled is
    // 1, or 2 when locked on (`auditctl -e 2`).
    match m.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]])) {
        Some(AUDIT_GET) => Some(Some(matches!(word(20), Some(1 | 2)) && word(28).is_some_and(|pid| pid != 0))),
        Some(NLMSG_ERROR) => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: u16, enabled: u32, pid: u32) -> Vec<u8> {
        let mut m = message(kind, &[0u8; 16]);
        m[20..24].copy_from_slice(&enabled.to_ne_bytes());
        m[28..32].copy_from_slice(&pid.to_ne_bytes());
        m
    }

    #[test]
    fn only_an_audit_netlink_socket_is_taken_for_a_question() {
        assert!(Question::from_fd(socket().expect("audit socket")).is_some());
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        assert!(Question::from_fd(a.into()).is_none());
        // SAFETY: socket() takes integers and returns a new descriptor or -1.
        let route = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        assert!(route >= 0);
        // SAFETY: the kernel just returned this descriptor.
        assert!(Question::from_fd(unsafe { OwnedFd::from_raw_fd(route) }).is_none(), "netlink, another protocol");
    }

    /// Only the kernel answers: a reply another socket sends to the question's (which root
    /// may do) is not read.
    #[test]
    fn a_reply_from_another_socket_than_the_kernel_is_not_read() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: only root may send to another netlink socket");
            return;
        }
        // A question's socket that asked nothing: the kernel sends it nothing.
        let fd = socket().expect("audit socket");
        // SAFETY: `me` and `len` are valid for the call.
        let me = unsafe {
            let mut me: libc::sockaddr_nl = std::mem::zeroed();
            me.nl_family = libc::AF_NETLINK as u16;
            assert_eq!(libc::bind(fd.as_raw_fd(), (&raw const me).cast(), std::mem::size_of::<libc::sockaddr_nl>() as u32), 0);
            let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            assert_eq!(libc::getsockname(fd.as_raw_fd(), (&raw mut me).cast(), &mut len), 0);
            me
        };
        let forger = socket().expect("audit socket");
        let forged = reply(AUDIT_GET, 1, 812);
        // SAFETY: `forged` is valid for its length, `me` is the destination.
        let sent = unsafe {
            libc::sendto(forger.as_raw_fd(), forged.as_ptr().cast(), forged.len(), 0, (&raw const me).cast(), std::mem::size_of::<libc::sockaddr_nl>() as u32)
        };
        assert_eq!(sent, forged.len() as isize, "the forged reply was sent: {}", io::Error::last_os_error());
        let question = Question::from_fd(fd).expect("an audit socket");
        assert_eq!(question.answer(Duration::from_millis(200)), None, "the forged reply was read");
    }

    #[test]
    fn the_status_reply_says_enabled_with_a_daemon_locked_or_not() {
        assert_eq!(status(&reply(AUDIT_GET, 1, 812)), Some(Some(true)));
        assert_eq!(status(&reply(AUDIT_GET, 2, 812)), Some(Some(true)), "locked on (auditctl -e 2)");
        assert_eq!(status(&reply(AUDIT_GET, 1, 0)), Some(Some(false)), "no daemon");
        assert_eq!(status(&reply(AUDIT_GET, 0, 812)), Some(Some(false)), "disabled");
        assert_eq!(status(&reply(AUDIT_GET, 1, 812)[..24]), Some(Some(false)), "too short to say");
        assert_eq!(status(&reply(NLMSG_ERROR, 0, 0)), Some(None), "refused");
        assert_eq!(status(&reply(1123, 1, 812)), None, "another message");
    }
}
