//! journald's native protocol (`[log] format = "journal"`): one datagram of `FIELD=value`
//! lines per entry to `/run/systemd/journal/socket`. `MESSAGE` is the event's logfmt text, as
//! a syslog line would carry it, and every field of the event is also a journal field of its
//! own, `SESSION_WRAPPER_` and the key in capitals (`SESSION_WRAPPER_DECISION=deny`,
//! `SESSION_WRAPPER_EVENT=session-start`; decisions have `SESSION_WRAPPER_EVENT=decision`),
//! with the same escaped value: `journalctl SESSION_WRAPPER_DECISION=deny` finds refusals.
//! Values are escaped text, never a newline, so the simple `FIELD=value` form always serves.

use std::fmt::Write as _;

use super::stored::{Stored, IDENT};

/// The datagram of a stored line.
pub fn datagram(s: &Stored<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(2 * s.text.len() + 256);
    let _ = write!(
        out,
        "MESSAGE={}\nPRIORITY={}\nSYSLOG_FACILITY={}\nSYSLOG_IDENTIFIER={IDENT}\nSYSLOG_PID={}\nSYSLOG_TIMESTAMP={}\n",
        s.text,
        s.severity(),
        s.pri >> 3,
        s.pid,
        s.stamp
    );
    let fields = s.fields();
    if !fields.iter().any(|(k, _)| *k == "event") {
        out.push_str("SESSION_WRAPPER_EVENT=decision\n");
    }
    for (k, v) in fields {
        let _ = writeln!(out, "SESSION_WRAPPER_{}={v}", field_name(k));
    }
    out.into_bytes()
}

/// A key as a journal field name: capitals, digits and `_` only.
fn field_name(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use crate::log::format::{Format, Writer};
    use crate::log::{Event, Kind, Severity};

    #[test]
    fn every_field_is_a_journal_field() {
        let mut w = Writer::new(Format::Journal);
        let e = Event::new(Severity::Notice, Kind::Decision).in_session(9).bare("decision", "deny").quoted("cwd", b"/a b");
        let line = w.line(&e);
        let d = String::from_utf8(w.datagram(&line).into_owned()).expect("utf-8");
        let pid = std::process::id();
        let expected = [
            "MESSAGE=session=000000000009 decision=deny cwd=\"/a b\"",
            "PRIORITY=5",
            "SYSLOG_FACILITY=10",
            "SYSLOG_IDENTIFIER=session-wrapper",
            &format!("SYSLOG_PID={pid}"),
            "SESSION_WRAPPER_EVENT=decision",
            "SESSION_WRAPPER_SESSION=000000000009",
            "SESSION_WRAPPER_DECISION=deny",
            "SESSION_WRAPPER_CWD=/a b",
        ];
        for x in expected {
            assert!(d.lines().any(|l| l == x), "{x} missing from:\n{d}");
        }
        let start = Event::new(Severity::Info, Kind::SessionStart).bare("uid", 0);
        let line = w.line(&start);
        let d = String::from_utf8(w.datagram(&line).into_owned()).expect("utf-8");
        assert!(d.lines().any(|l| l == "SESSION_WRAPPER_EVENT=session-start") && !d.contains("=decision"), "{d}");
    }
}
