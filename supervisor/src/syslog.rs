//! Decision logging to syslog: facility AUTHPRIV, ident `session-wrapper`, one datagram per
//! line on a Unix socket (`/dev/log` unless configured), in the RFC 3164 form glibc's
//! `syslog(3)` sends: `<PRI>Mmm dd hh:mm:ss session-wrapper[PID]: message`.
//!
//! Neither the format nor the transport come from the `syslog` crate: its formatter parses its
//! time format description on every line (measurable at thousands of execs a second) and its
//! transport blocks. Sends never block the supervisor: a line that cannot go now (the socket is full, or
//! missing while syslogd restarts) waits in a bounded backlog that is flushed when the socket
//! is writable again. What the backlog cannot hold is counted, and the count is logged as soon
//! as lines flow again. Nothing here ever holds up the answer to an exec.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Syslog severities (RFC 5424 numbers).
#[allow(non_camel_case_types, missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Severity {
    LOG_EMERG = 0,
    LOG_ALERT = 1,
    LOG_CRIT = 2,
    LOG_ERR = 3,
    LOG_WARNING = 4,
    LOG_NOTICE = 5,
    LOG_INFO = 6,
    LOG_DEBUG = 7,
}

/// `LOG_AUTHPRIV`: security messages that only root may read.
const FACILITY_AUTHPRIV: u8 = 10 << 3;

/// The RFC 3164 timestamp (`Nov 22 07:54:17`, local time), computed once per second.
#[derive(Debug, Default)]
struct Clock {
    second: i64,
    text: String,
}

impl Clock {
    fn now(&mut self) -> &str {
        // SAFETY: time(NULL) has no preconditions.
        let t = unsafe { libc::time(std::ptr::null_mut()) };
        if t != self.second || self.text.is_empty() {
            self.second = t;
            // SAFETY: localtime_r writes into `tm`, which outlives the call.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            // SAFETY: `t` and `tm` are valid for the call.
            if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
                self.text = "Jan  1 00:00:00".into();
            } else {
                const MONTHS: [&str; 12] =
                    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
                let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
                self.text = format!(
                    "{month} {:>2} {:02}:{:02}:{:02}",
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
                );
            }
        }
        &self.text
    }
}

/// The ident of every line the supervisor logs.
pub const IDENT: &str = "session-wrapper";
/// Bytes of lines kept while the socket cannot take them.
const BACKLOG_BYTES: usize = 256 * 1024;
/// Longest line sent; longer ones are cut (syslog daemons cut at 8 KiB by default anyway).
const MAX_LINE: usize = 16 * 1024;
/// Wait between attempts to reconnect a missing socket.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// A non-blocking syslog sender.
#[derive(Debug)]
pub struct Syslog {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    dropped: u64,
    sent: u64,
    clock: Clock,
    pid: u32,
    last_connect: Option<Instant>,
}

fn connect(path: &PathBuf) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl Syslog {
    /// A sender to the socket at `path`; connects now if it can, later otherwise.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut s = Syslog {
            sock: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            dropped: 0,
            sent: 0,
            clock: Clock::default(),
            pid: std::process::id(),
            last_connect: None,
            path,
        };
        s.reconnect();
        s
    }

    fn reconnect(&mut self) {
        self.last_connect = Some(Instant::now());
        self.sock = connect(&self.path).ok();
    }

    fn format(&mut self, severity: Severity, message: &str) -> Vec<u8> {
        let pri = FACILITY_AUTHPRIV | severity as u8;
        let pid = self.pid;
        let line = format!("<{pri}>{} {IDENT}[{pid}]: {message}", self.clock.now());
        let mut line = line.into_bytes();
        line.truncate(MAX_LINE);
        line
    }

    /// Formats and sends (or queues) one line.
    pub fn log(&mut self, severity: Severity, message: &str) {
        let line = self.format(severity, message);
        if self.backlog.is_empty() && self.try_send(&line) {
            return;
        }
        self.queue(line);
        self.flush();
    }

    fn queue(&mut self, line: Vec<u8>) {
        if self.backlog_bytes + line.len() > BACKLOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.backlog_bytes += line.len();
        self.backlog.push_back(line);
    }

    /// Sends one datagram now. False when it must wait.
    fn try_send(&mut self, line: &[u8]) -> bool {
        if self.sock.is_none() {
            let due = self.last_connect.is_none_or(|t| t.elapsed() >= RECONNECT_EVERY);
            if !due {
                return false;
            }
            self.reconnect();
        }
        let Some(sock) = &self.sock else { return false };
        match sock.send(line) {
            Ok(_) => {
                self.sent += 1;
                true
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR) => false,
                // The daemon went away or the socket was replaced: reconnect later.
                _ => {
                    self.sock = None;
                    false
                }
            },
        }
    }

    /// Sends what waits, as far as the socket takes it. Called when the socket is writable
    /// and on every tick of the supervisor's loop.
    pub fn flush(&mut self) {
        while let Some(line) = self.backlog.pop_front() {
            if self.try_send(&line) {
                self.backlog_bytes -= line.len();
            } else {
                self.backlog.push_front(line);
                return;
            }
        }
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            let msg = format!("event=log-dropped lines={n} reason=\"syslog socket full or missing\"");
            let line = self.format(Severity::LOG_WARNING, &msg);
            if !self.try_send(&line) {
                self.dropped += n;
            }
        }
    }

    /// Before exiting: keeps flushing for at most `limit` while lines wait, so that the last
    /// decisions and the session's end reach syslog if it is merely slow.
    pub fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        self.flush();
        while (!self.backlog.is_empty() || self.dropped > 0) && Instant::now() < deadline {
            if let Some(fd) = self.waiting_fd() {
                let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16));
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.flush();
        }
    }

    /// The socket, when lines are waiting for it to become writable.
    pub fn waiting_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.backlog.is_empty() && self.dropped == 0 {
            None
        } else {
            self.sock.as_ref().map(AsFd::as_fd)
        }
    }

    /// Whether lines wait for a socket that is missing (the loop then retries on a timer).
    pub fn needs_retry(&self) -> bool {
        (!self.backlog.is_empty() || self.dropped > 0) && self.sock.is_none()
    }

    /// Lines sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Lines waiting, and lines dropped since the last report.
    pub fn pending(&self) -> (usize, u64) {
        (self.backlog.len(), self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(tag: &str) -> (PathBuf, UnixDatagram) {
        let p = std::env::temp_dir().join(format!("sw-syslog-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let r = UnixDatagram::bind(&p).expect("bind");
        r.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        (p, r)
    }

    fn recv(r: &UnixDatagram) -> String {
        let mut buf = vec![0u8; 65536];
        let n = r.recv(&mut buf).expect("a line");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn line_has_authpriv_priority_and_ident() {
        let (p, r) = socket("fmt");
        let mut s = Syslog::new(&p);
        s.log(Severity::LOG_INFO, "decision=allow");
        let line = recv(&r);
        // AUTHPRIV (10) * 8 + INFO (6) = 86
        assert!(line.starts_with("<86>"), "{line}");
        // "<86>Nov 22 07:54:17 session-wrapper[...]"
        assert_eq!(line.as_bytes()[4 + 3], b' ', "{line}");
        assert_eq!(&line[4 + 9..4 + 10], ":", "{line}");
        assert!(line.contains(&format!(" session-wrapper[{}]: decision=allow", std::process::id())), "{line}");
        assert_eq!(s.sent(), 1);
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn missing_socket_queues_then_delivers_in_order() {
        let p = std::env::temp_dir().join(format!("sw-syslog-late-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let mut s = Syslog::new(&p);
        s.log(Severity::LOG_INFO, "one");
        s.log(Severity::LOG_INFO, "two");
        assert_eq!(s.pending(), (2, 0));
        assert!(s.needs_retry());
        let r = UnixDatagram::bind(&p).expect("bind");
        r.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        std::thread::sleep(RECONNECT_EVERY);
        s.flush();
        assert!(recv(&r).ends_with("one"));
        assert!(recv(&r).ends_with("two"));
        assert_eq!(s.pending(), (0, 0));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn full_socket_never_blocks_and_counts_what_it_drops() {
        let (p, r) = socket("full");
        let mut s = Syslog::new(&p);
        let big = "x".repeat(4000);
        let start = Instant::now();
        for _ in 0..2000 {
            s.log(Severity::LOG_INFO, &big);
        }
        assert!(start.elapsed() < Duration::from_secs(5), "logging blocked");
        let (waiting, dropped) = s.pending();
        assert!(waiting > 0 && dropped > 0, "{waiting} waiting, {dropped} dropped");
        // Drain the receiver; flushing then reports the drop count.
        r.set_nonblocking(true).expect("nonblocking");
        let mut buf = vec![0u8; 65536];
        let mut got_report = false;
        for _ in 0..10_000 {
            s.flush();
            while let Ok(n) = r.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).contains("event=log-dropped") {
                    got_report = true;
                }
            }
            if got_report {
                break;
            }
        }
        assert!(got_report);
        let _ = std::fs::remove_file(p);
    }
}
