//! Decision logging to syslog: facility AUTHPRIV, ident `session-wrapper`, one datagram per
//! line on a Unix socket (`/dev/log` unless configured).
//!
//! The `syslog` crate formats each line (RFC 3164); the transport is ours, because the crate's
//! blocks. Sends never block the supervisor: a line that cannot go now (the socket is full, or
//! missing while syslogd restarts) waits in a bounded backlog that is flushed when the socket
//! is writable again. What the backlog cannot hold is counted, and the count is logged as soon
//! as lines flow again. Nothing here ever holds up the answer to an exec.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use syslog::Severity;
use syslog::{Facility, Formatter3164, LogFormat};

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
    formatter: Formatter3164,
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
            formatter: Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: IDENT.into(),
                pid: std::process::id(),
            },
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

    /// Formats and sends (or queues) one line.
    pub fn log(&mut self, severity: Severity, message: &str) {
        let mut line = Vec::with_capacity(message.len() + 48);
        if self.formatter.format(&mut line, severity, message).is_err() {
            return;
        }
        line.truncate(MAX_LINE);
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
            let mut line = Vec::new();
            if self.formatter.format(&mut line, Severity::LOG_WARNING, msg).is_ok()
                && !self.try_send(&line)
            {
                self.dropped += n;
            }
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
