//! How a line is written on the wire.
//!
//! Every event is first a *stored line*, the RFC 3164 form glibc's `syslog(3)` sends:
//! `<PRI>Mmm dd hh:mm:ss session-wrapper[PID]: TEXT`, where TEXT is the event's logfmt text
//! ([`super::Event::render`]). That is what waits in the backlog and in the spool, whatever the
//! format, so that a line kept by one supervisor can be delivered by another. A [`Writer`]
//! turns a stored line into the datagram of its format:
//! - RFC 3164: the stored line itself;
//! - RFC 5424 (`[log] format = "rfc5424"`): `<PRI>1 TIMESTAMP HOST session-wrapper PID KIND
//!   [session-wrapper@32473 key="value" ...] SUMMARY`, every field as a structured-data
//!   parameter (32473 is the private enterprise number RFC 5612 reserves for documentation:
//!   this project has none of its own);
//! - journald's native protocol ([`super::journal`]).

use std::borrow::Cow;
use std::fmt::Write as _;

pub use super::stored::{Stored, IDENT};
use super::Event;

/// `LOG_AUTHPRIV`: security messages that only root may read.
pub const FACILITY_AUTHPRIV: u8 = 10;
/// The structured-data id of RFC 5424 lines.
/// The SD-ID of an RFC 5424 line's structured data.
pub const SD_ID: &str = "session-wrapper@32473";

/// The wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 3164, as `syslog(3)` writes it.
    Rfc3164,
    /// RFC 5424 with structured data.
    Rfc5424,
    /// journald's native protocol.
    Journal,
}

/// The RFC 3164 timestamp (`Nov 22 07:54:17`, local time), computed once per second.
#[derive(Debug, Default)]
struct Clock {
    second: i64,
    text: String,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Local time of `t` (seconds since the epoch).
fn local(t: libc::time_t) -> Option<libc::tm> {
    // SAFETY: localtime_r writes into `tm`, which outlives the call; `t` is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (!unsafe { libc::localtime_r(&t, &mut tm) }.is_null()).then_some(tm)
}

fn now() -> libc::time_t {
    // SAFETY: time(NULL) has no preconditions.
    unsafe { libc::time(std::ptr::null_mut()) }
}

impl Clock {
    fn now(&mut self) -> &str {
        let t = now();
        if t != self.second || self.text.is_empty() {
            self.second = t;
            self.text = match local(t) {
                Some(tm) => {
                    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
                    format!("{month} {:>2} {:02}:{:02}:{:02}", tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
                }
                None => "Jan  1 00:00:00".into(),
            };
        }
        &self.text
    }
}

/// Writes events in one format.
#[derive(Debug)]
pub struct Writer {
    format: Format,
    clock: Clock,
    pid: u32,
    host: String,
}

/// The host name, asked once per process (a PAM session's supervisor makes three writers
/// while the session opens): `uname`'s node name, what `/proc/sys/kernel/hostname` shows,
/// without a path walk through `/proc` on the open's path.
fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let name = nix::sys::utsname::uname().map(|u| u.nodename().to_string_lossy().trim().to_owned()).unwrap_or_default();
        if name.is_empty() { "-".into() } else { name }
    })
}

impl Writer {
    /// A writer of `format` for this process.
    pub fn new(format: Format) -> Self {
        Writer { format, clock: Clock::default(), pid: std::process::id(), host: host().to_owned() }
    }

    /// Its format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The stored line of `event` (see the module documentation).
    pub fn line(&mut self, event: &Event) -> Vec<u8> {
        let pri = (FACILITY_AUTHPRIV << 3) | event.severity as u8;
        let pid = self.pid;
        format!("<{pri}>{} {IDENT}[{pid}]: {}", self.clock.now(), event.render()).into_bytes()
    }

    /// The datagram of a stored line. A line this project did not store goes as it is.
    pub fn datagram<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if self.format == Format::Rfc3164 {
            return Cow::Borrowed(line);
        }
        let Some(stored) = Stored::parse(line) else { return Cow::Borrowed(line) };
        Cow::Owned(match self.format {
            Format::Rfc3164 => line.to_vec(),
            Format::Rfc5424 => self.rfc5424(&stored),
            Format::Journal => super::journal::datagram(&stored),
        })
    }

    fn rfc5424(&self, s: &Stored<'_>) -> Vec<u8> {
        let fields = s.fields();
        let mut out = format!("<{}>1 {} {} {IDENT} {} {} [{SD_ID}", s.pri, rfc3339(s.stamp), self.host, s.pid, s.kind());
        for (k, v) in &fields {
            if *k != "event" {
                // PARAM-VALUE escapes `"`, `\` and `]`; escaped values hold only the last.
                let _ = write!(out, " {k}=\"{}\"", v.replace(']', "\\]"));
            }
        }
        out.push(']');
        let summary: Vec<String> =
            fields.iter().filter(|(k, _)| matches!(*k, "event" | "decision" | "rule")).map(|(k, v)| format!("{k}={v}")).collect();
        if !summary.is_empty() {
            let _ = write!(out, " {}", summary.join(" "));
        }
        out.into_bytes()
    }
}

/// `Mmm dd hh:mm:ss` (local time, this year or the last) as RFC 3339 with the local offset.
fn rfc3339(stamp: &str) -> String {
    let t = now();
    let Some(tm) = local(t) else { return "-".into() };
    let mut parts = stamp.split_whitespace();
    let month = parts.next().and_then(|m| MONTHS.iter().position(|x| *x == m)).unwrap_or(0) as i32;
    let day: u32 = parts.next().and_then(|d| d.parse().ok()).unwrap_or(1);
    let time = parts.next().unwrap_or("00:00:00");
    // A line stamped in a later month than now was stamped last year.
    let year = tm.tm_year + 1900 - i32::from(month > tm.tm_mon);
    let off = tm.tm_gmtoff / 60;
    let sign = if off < 0 { '-' } else { '+' };
    format!("{year:04}-{:02}-{day:02}T{time}{sign}{:02}:{:02}", month + 1, off.abs() / 60, off.abs() % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Kind, Severity};

    fn event() -> Event {
        Event::new(Severity::Notice, Kind::Decision)
            .in_session(0x5e2a)
            .bare("decision", "deny")
            .bare("rule", "no]net")
            .quoted("cwd", b"/home/a b")
            .quoted("argv", b"wget x")
    }

    #[test]
    fn a_stored_line_is_rfc_3164_and_parses_back() {
        let mut w = Writer::new(Format::Rfc3164);
        let line = w.line(&event());
        let s = Stored::parse(&line).expect("parses");
        assert_eq!(s.pri, (10 << 3) | 5);
        assert_eq!(s.pid, std::process::id().to_string());
        assert_eq!(s.text, "session=000000005e2a decision=deny rule=no]net cwd=\"/home/a b\" argv=\"wget x\"");
        assert_eq!(s.kind(), "decision");
        assert_eq!(&*w.datagram(&line), &line[..]);
        assert!(Stored::parse(b"not ours").is_none());
    }

    #[test]
    fn rfc_5424_carries_every_field_as_structured_data() {
        let mut w = Writer::new(Format::Rfc5424);
        let line = w.line(&event());
        let d = String::from_utf8(w.datagram(&line).into_owned()).expect("utf-8");
        assert!(d.starts_with("<85>1 "), "{d}");
        let pid = std::process::id();
        assert!(d.contains(&format!(" session-wrapper {pid} decision [session-wrapper@32473 session=\"000000005e2a\" decision=\"deny\" rule=\"no\\]net\" cwd=\"/home/a b\" argv=\"wget x\"] decision=deny rule=no]net")), "{d}");
        let stamp = d.split(' ').nth(1).expect("stamp");
        assert_eq!(stamp.len(), 25, "{stamp}");
    }
}
