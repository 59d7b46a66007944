//! Linux audit records of decisions (`[log] audit`), as sudo writes them: one `USER_CMD`
//! record per exec decided, `res=success` for a command that ran and `res=failed` for one
//! refused or killed, so that `ausearch -m USER_CMD` (with `--success no` for refusals) finds
//! them beside sudo's.
//!
//! The kernel stamps each record with the sender's identity (`pid`, `uid`, `auid`, `ses`): the
//! supervisor's, whose login uid and audit session are the session's when `pam_loginuid` runs
//! before this module (Debian's stacks do). The message names what the session ran:
//! `cwd=... cmd=... exe=... terminal=... res=...`, values in the audit encoding (quoted, or hex
//! when they hold a space, a quote or a byte outside printable ASCII), then the decision
//! (`sw_decision`, `sw_rule`, `sw_session`, `sw_user`, `sw_target`, `sw_pid`).
//!
//! Sending a record can block in the kernel while the audit backlog is full, so records go
//! through a bounded queue to a thread of their own: the supervisor never waits for auditd.
//! What the queue cannot take is counted and reported (`event=audit-dropped`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use session_wrapper_config::text::{unescape, unescape_argv};
use session_wrapper_config::AuditRecords;

use std::os::fd::BorrowedFd;

use super::event::{Event, Kind, Severity, Value};
use super::{Kept, LogSink};

/// `NETLINK_AUDIT`.
const NETLINK_AUDIT: i32 = 9;
/// `AUDIT_GET`: the audit status.
const AUDIT_GET: u16 = 1000;
/// `AUDIT_USER_CMD`: a command run on a user's behalf.
const AUDIT_USER_CMD: u16 = 1123;
/// Records waiting for the sending thread at most.
const QUEUE: usize = 1024;

/// The sender of audit records.
#[derive(Debug)]
pub struct AuditLog {
    queue: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// Opens the kernel's audit socket.
fn audit_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_AUDIT) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A netlink message of `kind` with `payload`.
fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
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

fn send(fd: &OwnedFd, m: &[u8]) -> io::Result<()> {
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

/// `NLMSG_ERROR`: the kernel refused the request.
const NLMSG_ERROR: u16 = 2;
/// How long to wait for the kernel's answer to `AUDIT_GET`.
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the kernel's audit is enabled and a daemon receives its records (needs
/// `CAP_AUDIT_CONTROL`: asked before the supervisor gives it up).
///
/// Asks the kernel for its audit status: the socket the reply comes to, `None` when the
/// question cannot be asked.
fn ask_status() -> Option<OwnedFd> {
    let fd = audit_socket().ok()?;
    send(&fd, &message(AUDIT_GET, &[])).ok()?;
    Some(fd)
}

/// Whether the reply on `fd` (see [`ask_status`]) says that audit is enabled and a daemon
/// receives the records.
///
/// The kernel sends the `AUDIT_GET` reply from a thread of its own (`audit_send_reply`), a
/// moment after the request: on a slow machine (Debian 12 under qemu) it was not there yet
/// when read at once, and `auto` wrote no record. So wait for it, a bounded time.
fn daemon_listening(fd: &OwnedFd) -> bool {
    let deadline = std::time::Instant::now() + REPLY_WAIT;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: one pollfd, valid for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if r <= 0 {
            return false;
        }
        // SAFETY: reads at most buf.len() bytes into `buf`.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            continue;
        }
        let word = |i: usize| buf.get(i..i + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        // A reply: nlmsghdr (16 bytes), then audit_status { mask, enabled, failure, pid, ... }.
        match buf.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]])) {
            Some(AUDIT_GET) => return n >= 32 && word(20) == Some(1) && word(28).is_some_and(|pid| pid != 0),
            Some(NLMSG_ERROR) => return false,
            _ => {}
        }
    }
}

/// Whether a session sends audit records: known from the setting, or asked of the kernel
/// (`auto`) and answered later, so that the kernel's reply thread runs while the supervisor
/// does other work (see [`AuditLog::ask`]).
#[derive(Debug)]
pub enum Wanted {
    /// The answer.
    Known(bool),
    /// The question, asked on this socket.
    Asked(OwnedFd),
}

impl Wanted {
    /// The answer, waiting (a bounded time) for the kernel's if it was asked.
    pub fn answer(self) -> bool {
        match self {
            Wanted::Known(w) => w,
            Wanted::Asked(fd) => daemon_listening(&fd),
        }
    }
}

impl AuditLog {
    /// Whether `setting` asks for audit records here: `auto` when the kernel's audit is
    /// enabled and a daemon receives its records. Ask (and answer) before the supervisor gives
    /// up its capabilities (the question needs `CAP_AUDIT_CONTROL`; sending needs
    /// `CAP_AUDIT_WRITE`).
    pub fn ask(setting: AuditRecords) -> Wanted {
        match setting {
            AuditRecords::Off => Wanted::Known(false),
            AuditRecords::On => Wanted::Known(true),
            AuditRecords::Auto => ask_status().map_or(Wanted::Known(false), Wanted::Asked),
        }
    }

    /// Opens the audit socket and starts the sending thread (after the supervisor's own
    /// confinement, so that the thread inherits it).
    ///
    /// # Errors
    /// When the audit socket or the thread cannot be made.
    pub fn start() -> io::Result<Self> {
        let fd = audit_socket()?;
        let (queue, records) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new().name("sw-audit".into()).spawn(move || {
            for r in records {
                let _ = send(&fd, &r);
            }
        })?;
        Ok(AuditLog { queue, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Records a decision line (other events are not audit records).
    pub fn record(&self, event: &Event) {
        let Some(text) = user_cmd(event) else { return };
        match self.queue.try_send(message(AUDIT_USER_CMD, text.as_bytes())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// A sink whose decisions are also audit records.
#[derive(Debug)]
pub struct Audited {
    sink: Box<dyn LogSink>,
    audit: AuditLog,
    session: u64,
}

impl Audited {
    /// `sink`, with the decisions of session `session` also sent to `audit`.
    pub fn new(sink: Box<dyn LogSink>, audit: AuditLog, session: u64) -> Self {
        Audited { sink, audit, session }
    }
}

impl LogSink for Audited {
    fn emit(&mut self, event: &Event) -> Kept {
        self.audit.record(event);
        self.sink.emit(event)
    }

    fn flush(&mut self) {
        let dropped = self.audit.take_dropped();
        if dropped > 0 {
            let e = Event::new(Severity::Warning, Kind::AuditDropped)
                .in_session(self.session)
                .bare("records", dropped)
                .text("reason", "the audit queue was full");
            self.sink.emit(&e);
        }
        self.sink.flush();
    }

    fn waiting_fd(&self) -> Option<BorrowedFd<'_>> {
        self.sink.waiting_fd()
    }

    fn needs_retry(&self) -> bool {
        self.sink.needs_retry()
    }

    fn can_keep(&mut self) -> bool {
        self.sink.can_keep()
    }

    fn drain(&mut self, limit: std::time::Duration) {
        self.flush();
        self.sink.drain(limit);
    }
}

/// A value in the audit encoding: `"text"` when it is printable ASCII without a space or a
/// quote, else hex (as `auditd` and `ausearch -i` expect).
pub fn encode(value: &[u8]) -> String {
    let plain = !value.is_empty() && value.iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'"');
    if plain {
        format!("\"{}\"", String::from_utf8_lossy(value))
    } else {
        value.iter().map(|b| format!("{b:02X}")).collect()
    }
}

/// The `USER_CMD` message of a decision line, `None` for other events.
pub fn user_cmd(event: &Event) -> Option<String> {
    if event.kind != Kind::Decision {
        return None;
    }
    let raw = |key: &str| match event.get(key) {
        Some(Value::Bare(v) | Value::Quoted(v)) => Some(v.as_str()),
        None => None,
    };
    let bytes = |key: &str| raw(key).map(unescape).unwrap_or_default();
    let argv = raw("argv").map(unescape_argv).unwrap_or_default().join(&b' ');
    let ran = raw("decision") == Some("allow") && matches!(raw("result"), Some("exec" | "unverified" | "unverified-traced"));
    Some(format!(
        "cwd={} cmd={} exe={} terminal={} res={} sw_decision={} sw_rule={} sw_session={} sw_user={} sw_target={} sw_pid={}",
        encode(&bytes("cwd")),
        encode(&argv),
        encode(&bytes("exe")),
        raw("tty").filter(|t| *t != "-").unwrap_or("?"),
        if ran { "success" } else { "failed" },
        raw("decision").unwrap_or("?"),
        encode(&bytes("rule")),
        event.session.map_or_else(|| "?".into(), session_wrapper_protocol::session_id_text),
        encode(&bytes("user")),
        encode(&bytes("target")),
        raw("pid").unwrap_or("?"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_or_hex_as_auditd_expects() {
        assert_eq!(encode(b"/usr/bin/id"), "\"/usr/bin/id\"");
        assert_eq!(encode(b"id -u"), "6964202D75");
        assert_eq!(encode(b"a\"b"), "612262");
        assert_eq!(encode(b""), "");
    }

    #[test]
    fn a_refusal_and_a_command_that_ran_are_user_cmd_records() {
        let refused = Event::new(Severity::Notice, Kind::Decision)
            .in_session(0xab)
            .bare("decision", "deny")
            .bare("rule", "no-net")
            .escaped("user", b"alice")
            .escaped("target", b"root")
            .bare("pid", 42)
            .escaped("tty", b"pts/1")
            .quoted("cwd", b"/home/alice")
            .quoted("exe", b"/usr/bin/wget")
            .quoted("argv", b"wget x")
            .bare("errno", "EACCES");
        assert_eq!(
            user_cmd(&refused).as_deref(),
            Some("cwd=\"/home/alice\" cmd=776765742078 exe=\"/usr/bin/wget\" terminal=pts/1 res=failed sw_decision=deny sw_rule=\"no-net\" sw_session=0000000000ab sw_user=\"alice\" sw_target=\"root\" sw_pid=42")
        );
        let ran = Event::new(Severity::Info, Kind::Decision).bare("decision", "allow").quoted("argv", b"id").bare("result", "exec");
        assert!(user_cmd(&ran).is_some_and(|m| m.contains(" res=success ")));
        assert!(user_cmd(&Event::new(Severity::Info, Kind::SessionStart)).is_none());
    }
}
