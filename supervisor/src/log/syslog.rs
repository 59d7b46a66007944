//! Decision logging to syslog: facility AUTHPRIV, ident `session-wrapper`, one datagram per
//! line on a Unix socket (`/dev/log` unless configured), in the RFC 3164 form glibc's
//! `syslog(3)` sends: `<PRI>Mmm dd hh:mm:ss session-wrapper[PID]: message`.
//!
//! Neither the format nor the transport come from the `syslog` crate: its formatter parses its
//! time format description on every line (measurable at thousands of execs a second) and its
//! transport blocks. Sends never block the supervisor. A line that cannot go now (the socket is
//! full, or missing while syslogd restarts) waits, in order:
//! 1. in a bounded backlog in memory, flushed when the socket is writable again;
//! 2. beyond that, and for whatever is still waiting when the session ends, in the supervisor's
//!    file in the spool directory ([`crate::log::spool`]), which this supervisor sends once the
//!    socket takes lines again, or a later supervisor sends (preceded by an
//!    `event=log-recovered` line) if this one ends first;
//! 3. only what neither can hold is dropped, and counted in an `event=log-dropped` line.
//!
//! With `log-failure = "refuse"` a line the socket does not take at once goes to the spool file
//! (synced) before the supervisor goes on; without a spool it waits in memory, and
//! [`Syslog::can_keep`] tells the supervisor to refuse execs while any line waits there or the
//! socket is full: no exec runs while its line could be lost.
//!
//! A socket that does not exist (no syslog daemon on the host) is not waited for: the session's
//! end costs nothing. A PAM session's lines are then kept in the spool for a later supervisor;
//! `session-wrapper run` writes them to its standard error when the command has ended.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use session_wrapper_config::{LogFormat, LogSettings};

use super::format::{Format, Writer};
use super::{Event, Kept, Kind, LogSink, Severity};

/// journald's socket for its native protocol.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The format and socket `[log]` asks for: `auto` is journald's native protocol when journald
/// runs and the socket is the default `/dev/log` (journald's own syslog socket then), RFC 3164
/// to the socket otherwise; `journal` goes to journald's socket unless another is set.
pub fn destination(log: &LogSettings) -> (Format, PathBuf) {
    let socket = PathBuf::from(&log.socket);
    let default_socket = log.socket == LogSettings::DEFAULT_SOCKET;
    match log.format {
        LogFormat::Rfc3164 => (Format::Rfc3164, socket),
        LogFormat::Rfc5424 => (Format::Rfc5424, socket),
        LogFormat::Journal if default_socket => (Format::Journal, JOURNAL_SOCKET.into()),
        LogFormat::Journal => (Format::Journal, socket),
        LogFormat::Auto if default_socket && std::path::Path::new(JOURNAL_SOCKET).exists() => {
            (Format::Journal, JOURNAL_SOCKET.into())
        }
        LogFormat::Auto => (Format::Rfc3164, socket),
    }
}

/// The longest stored line: its header and the longest text.
const MAX_LINE: usize = super::event::LINE_MAX + 64;
/// Bytes of lines kept while the socket cannot take them.
const BACKLOG_BYTES: usize = 256 * 1024;
/// Wait between attempts to reconnect a missing socket.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// The spool of a supervisor: its own file (made on first need) and a file of another
/// supervisor's being delivered.
#[derive(Debug)]
struct Spooler {
    dir: super::spool::SpoolDir,
    session: String,
    /// The syslog socket the lines are for (only files for it are delivered here).
    socket: String,
    own: Option<super::spool::SpoolFile>,
    /// The own file could not be made (full, failing): do not try again.
    failed: bool,
    recovered: Option<super::spool::SpoolFile>,
}

impl Spooler {
    fn own(&mut self) -> Option<&mut super::spool::SpoolFile> {
        if self.own.is_none() && !self.failed {
            match self.dir.create_own(&self.session, &self.socket) {
                Ok(f) => self.own = Some(f),
                Err(_) => self.failed = true,
            }
        }
        self.own.as_mut()
    }

    fn own_waiting(&self) -> bool {
        self.own.as_ref().is_some_and(|f| !f.is_empty())
    }
}

/// A non-blocking syslog sender.
#[derive(Debug)]
pub struct Syslog {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    dropped: u64,
    sent: u64,
    writer: Writer,
    last_connect: Option<Instant>,
    /// The last connect found no socket at all (no syslog daemon).
    missing: bool,
    /// The last send would have blocked.
    congested: bool,
    spool: Option<Spooler>,
    /// `log-failure = "refuse"`: nothing waits in memory.
    strict: bool,
    /// Write what nobody can take to standard error at the end (`session-wrapper run`).
    stderr_fallback: bool,
}

fn connect(path: &PathBuf) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Whether a connect error means there is no syslog daemon at all (nothing to wait for).
fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED | libc::ENOTDIR | libc::ENOTSOCK))
}

impl Syslog {
    /// A sender of RFC 3164 lines to the socket at `path`; connects now if it can, later
    /// otherwise.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_format(path, Format::Rfc3164)
    }

    /// Like [`Syslog::new`], but connects only when it first sends: for a log that is
    /// seldom used (a PAM session's supervisor before its configuration is read).
    pub fn unconnected(path: impl Into<PathBuf>) -> Self {
        Self::new_unconnected(path.into(), Format::Rfc3164)
    }

    /// The sender `[log]` asks for (see [`destination`]).
    pub fn for_config(log: &LogSettings) -> Self {
        let (format, path) = destination(log);
        Self::with_format(path, format)
    }

    /// A sender of `format` to the socket at `path`.
    pub fn with_format(path: impl Into<PathBuf>, format: Format) -> Self {
        let mut s = Self::new_unconnected(path.into(), format);
        s.reconnect();
        s
    }

    fn new_unconnected(path: PathBuf, format: Format) -> Self {
        Syslog {
            sock: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            dropped: 0,
            sent: 0,
            writer: Writer::new(format),
            last_connect: None,
            missing: false,
            congested: false,
            spool: None,
            strict: false,
            stderr_fallback: false,
            path,
        }
    }

    /// Keeps what cannot be delivered in `dir` (this supervisor's file is named after
    /// `session`), and delivers what earlier supervisors left there from the next
    /// [`LogSink::flush`] on (a supervisor's first, when it starts serving) while the socket
    /// works.
    /// `strict`: `log-failure = "refuse"` (see the module documentation).
    pub fn set_spool(&mut self, dir: Option<super::spool::SpoolDir>, session: &str, strict: bool) {
        let socket = self.path.display().to_string();
        self.spool = dir.map(|dir| Spooler { dir, session: session.to_owned(), socket, own: None, failed: false, recovered: None });
        self.strict = strict;
    }

    /// Writes what nobody can take to standard error when the session ends.
    pub fn set_stderr_fallback(&mut self) {
        self.stderr_fallback = true;
    }

    fn reconnect(&mut self) {
        self.last_connect = Some(Instant::now());
        match connect(&self.path) {
            Ok(s) => {
                self.sock = Some(s);
                self.missing = false;
            }
            Err(e) => {
                self.sock = None;
                self.missing = is_missing(&e);
            }
        }
    }

    /// Whether lines of this session wait (in memory or in its spool file).
    fn waiting(&self) -> bool {
        !self.backlog.is_empty() || self.spool.as_ref().is_some_and(Spooler::own_waiting)
    }

    /// The stored line of an event (see [`super::format`]).
    fn format(&mut self, event: &Event) -> Vec<u8> {
        self.writer.line(event)
    }

    /// Keeps a line that cannot be sent now, behind those that wait: in memory, then in the
    /// spool file. With `log-failure = "refuse"` the spool comes first (synced), memory only
    /// when there is no spool (and then [`Syslog::can_keep`] holds execs back until it drains).
    fn keep(&mut self, line: Vec<u8>) -> Kept {
        let spooling = self.spool.as_ref().is_some_and(Spooler::own_waiting);
        let fits = self.backlog_bytes + line.len() <= BACKLOG_BYTES;
        if !self.strict && !spooling && fits {
            return self.queue(line);
        }
        let strict = self.strict;
        if let Some(own) = self.spool.as_mut().and_then(Spooler::own) {
            if own.append(&line).is_ok() {
                if strict {
                    own.sync();
                }
                return Kept::Spooled;
            }
        }
        if strict && !spooling && fits {
            return self.queue(line);
        }
        self.dropped += 1;
        Kept::Dropped
    }

    fn queue(&mut self, line: Vec<u8>) -> Kept {
        self.backlog_bytes += line.len();
        self.backlog.push_back(line);
        Kept::Queued
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
        match sock.send(&self.writer.datagram(line)) {
            Ok(_) => {
                self.sent += 1;
                self.congested = false;
                true
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR) => {
                    self.congested = true;
                    false
                }
                // The daemon went away or the socket was replaced: reconnect later.
                _ => {
                    self.sock = None;
                    false
                }
            },
        }
    }

    /// Sends what waits in this supervisor's spool file, in order.
    fn flush_own_spool(&mut self) -> bool {
        loop {
            let Some(line) = self.spool.as_mut().and_then(|s| s.own.as_mut()).and_then(|f| f.peek()) else {
                return true;
            };
            if !self.try_send(&line) {
                return false;
            }
            if let Some(f) = self.spool.as_mut().and_then(|s| s.own.as_mut()) {
                f.consumed(&line);
            }
        }
    }

    /// Delivers what earlier supervisors left in the spool, once the socket takes lines.
    fn flush_recovered(&mut self) {
        loop {
            if self.spool.as_ref().is_none_or(|s| s.recovered.is_none()) {
                let Some(sp) = self.spool.as_mut() else { return };
                let own = sp.own.as_ref().map(|f| f.name().to_owned());
                let Some(file) = sp.dir.claim(own.as_deref(), &sp.socket) else { return };
                let mut event = Event::new(Severity::Notice, Kind::LogRecovered)
                    .quoted("file", sp.dir.path().join(file.name()).as_os_str().as_encoded_bytes())
                    .bare("lines", file.count());
                event = match file.socket() {
                    Some(s) if s == sp.socket.as_bytes() => event.text("reason", "lines an earlier supervisor could not deliver"),
                    other => event
                        .quoted("socket", &other.unwrap_or_default())
                        .text("reason", "lines an earlier supervisor kept for a socket that is no longer there"),
                };
                sp.recovered = Some(file);
                let line = self.format(&event);
                if !self.try_send(&line) {
                    return;
                }
            }
            while let Some(line) = self.spool.as_mut().and_then(|s| s.recovered.as_mut()).and_then(|f| f.peek()) {
                if !self.try_send(&line) {
                    return;
                }
                if let Some(f) = self.spool.as_mut().and_then(|s| s.recovered.as_mut()) {
                    f.consumed(&line);
                }
            }
            if let Some(sp) = self.spool.as_mut() {
                if let Some(done) = sp.recovered.take() {
                    sp.dir.remove(done);
                }
            }
        }
    }

    fn spool_line(&mut self, line: &[u8]) -> bool {
        self.spool.as_mut().and_then(Spooler::own).is_some_and(|own| own.append(line).is_ok())
    }

    /// What is still waiting when the session ends: with [`Syslog::set_stderr_fallback`] and
    /// no syslog socket at all, written to standard error (the command's own, after it ended;
    /// nothing is left behind); otherwise moved to the spool for a later supervisor. Either
    /// way with the count of what was lost.
    fn keep_the_rest(&mut self) {
        let mut lines: Vec<Vec<u8>> = self.backlog.drain(..).collect();
        self.backlog_bytes = 0;
        let to_stderr = self.stderr_fallback && self.sock.is_none() && self.missing;
        if to_stderr {
            if let Some(own) = self.spool.as_mut().and_then(|s| s.own.as_mut()) {
                let mut spooled = own.drain_lines();
                spooled.append(&mut lines);
                lines = spooled;
            }
        }
        let mut unkept = Vec::new();
        for line in lines {
            if to_stderr || !self.spool_line(&line) {
                unkept.push(line);
            }
        }
        let lost = self.dropped + if self.stderr_fallback { 0 } else { unkept.len() as u64 };
        if lost > 0 {
            let event = dropped(lost, "syslog socket full or missing, spool full or unavailable");
            let line = self.format(&event);
            if to_stderr || !self.spool_line(&line) {
                unkept.push(line);
            }
            self.dropped = 0;
        }
        if self.stderr_fallback && !unkept.is_empty() {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            for line in &unkept {
                // Without the syslog header (`<PRI>Mmm dd hh:mm:ss ident[pid]: `).
                let text = line.splitn(2, |&b| b == b']').nth(1).map_or(&line[..], |t| t.strip_prefix(b": ").unwrap_or(t));
                let _ = err.write_all(b"session-wrapper: ");
                let _ = err.write_all(text);
                let _ = err.write_all(b"\n");
            }
        }
        if let Some(sp) = self.spool.as_mut() {
            if let Some(own) = &sp.own {
                own.sync();
            }
            if let Some(mut r) = sp.recovered.take() {
                r.keep_pending();
            }
        }
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

impl LogSink for Syslog {
    fn emit(&mut self, event: &Event) -> Kept {
        let line = self.format(event);
        if !self.waiting() && self.try_send(&line) {
            return Kept::Sent;
        }
        let kept = self.keep(line);
        self.flush();
        kept
    }

    /// Sends what waits, as far as the socket takes it. Called when the socket is writable
    /// and on every tick of the supervisor's loop.
    fn flush(&mut self) {
        while let Some(line) = self.backlog.pop_front() {
            if self.try_send(&line) {
                self.backlog_bytes -= line.len();
            } else {
                self.backlog.push_front(line);
                return;
            }
        }
        if !self.flush_own_spool() {
            return;
        }
        if self.sock.is_some() {
            self.flush_recovered();
        }
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            let event = dropped(n, "syslog socket full or missing");
            let line = self.format(&event);
            if !self.try_send(&line) {
                self.dropped += n;
            }
        }
    }

    /// The socket, when lines are waiting for it to become writable.
    fn waiting_fd(&self) -> Option<BorrowedFd<'_>> {
        let recovering = self.spool.as_ref().is_some_and(|s| s.recovered.is_some());
        if !self.waiting() && self.dropped == 0 && !recovering {
            None
        } else {
            self.sock.as_ref().map(AsFd::as_fd)
        }
    }

    /// Whether lines wait for a socket that is missing (the loop then retries on a timer).
    fn needs_retry(&self) -> bool {
        (self.waiting() || self.dropped > 0) && self.sock.is_none()
    }

    /// Whether a line logged now would be delivered or kept on disk: with
    /// `log-failure = "refuse"`, execs are refused while it would not.
    fn can_keep(&mut self) -> bool {
        let direct = self.sock.is_some() && !self.congested && !self.waiting();
        direct || self.spool.as_mut().and_then(Spooler::own).is_some_and(|f| f.has_room(MAX_LINE))
    }

    /// Before exiting: keeps flushing for at most `limit` while lines wait, so that the last
    /// decisions and the session's end reach syslog if it is merely slow (a socket that does
    /// not exist is not waited for). What is still waiting then is kept in the spool file for
    /// a later supervisor, or written to standard error when there is no spool and
    /// [`Syslog::set_stderr_fallback`] asked for it.
    fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        self.flush();
        loop {
            let recovering = self.spool.as_ref().is_some_and(|s| s.recovered.is_some());
            let waiting = self.waiting() || self.dropped > 0 || recovering;
            if !waiting || Instant::now() >= deadline {
                break;
            }
            if self.sock.is_none() {
                self.reconnect();
                if self.missing {
                    break;
                }
            }
            if let Some(fd) = self.waiting_fd() {
                let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16));
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.flush();
        }
        self.keep_the_rest();
    }
}

/// The line that counts what could be neither delivered nor kept.
fn dropped(lines: u64, reason: &str) -> Event {
    Event::new(Severity::Warning, Kind::LogDropped).bare("lines", lines).text("reason", reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogSink;

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
        s.emit(&Event::new(Severity::Info, Kind::Decision).bare("decision", "allow"));
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
        s.emit(&Event::new(Severity::Info, Kind::Decision).bare("n", "one"));
        s.emit(&Event::new(Severity::Info, Kind::Decision).bare("n", "two"));
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
            s.emit(&Event::new(Severity::Info, Kind::Decision).bare("x", &big));
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
