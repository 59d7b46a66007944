//! What the supervisor says: an [`Event`] is a severity, the session it belongs to, a [`Kind`]
//! and typed fields in order. A sink renders it: syslog as one `key=value` line
//! (`session=ID event=KIND key=value ...`, a decision without `event=`), a journald sink would
//! send the same fields natively.

use std::fmt::Display;

use session_wrapper_config::text::{bound, escape, escape_word};
use session_wrapper_protocol::session_id_text;

/// Severities (RFC 5424 numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Severity {
    /// The system is unusable.
    Emergency = 0,
    /// Act now.
    Alert = 1,
    /// Critical.
    Critical = 2,
    /// An error: something failed.
    Error = 3,
    /// A warning: something is lost or degraded.
    Warning = 4,
    /// Normal but significant: refusals.
    Notice = 5,
    /// Informational: sessions, allowed commands.
    Info = 6,
    /// Debugging.
    Debug = 7,
}

/// What an event is about. A decision is the line of one exec; every other kind is logged as
/// `event=NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    Decision,
    SessionStart,
    SessionEnd,
    SessionClose,
    SessionNotSupervised,
    SessionRefusedSetup,
    Unsupervised,
    Nested,
    NestedReplyFailed,
    NestedLimitsNotApplied,
    ProbeIgnored,
    UnexpectedNotification,
    ListenerError,
    WatchdogDied,
    SupervisorDied,
    RuntimeDirError,
    SpoolError,
    HardeningIncomplete,
    /// The kernel's exec check was asked for and cannot be had: execs are checked at ptrace stops.
    VerifyFallback,
    LimitNotApplied,
    NoCgroup,
    CgroupRemoveFailed,
    ExecRefused,
    ExecUnresolved,
    LogRecovered,
    LogDropped,
    TacacsServerDown,
    TacacsServerUp,
    TacacsAccountingDropped,
    TacacsAccountingSpooled,
    TacacsAccountingRecovered,
    TacacsAccountingUntracked,
    AuditDropped,
    AuditUnavailable,
}

impl Kind {
    /// The `event=` name; `None` for a decision.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::Decision => return None,
            Kind::SessionStart => "session-start",
            Kind::SessionEnd => "session-end",
            Kind::SessionClose => "session-close",
            Kind::SessionNotSupervised => "session-not-supervised",
            Kind::SessionRefusedSetup => "session-refused-setup",
            Kind::Unsupervised => "unsupervised",
            Kind::Nested => "nested",
            Kind::NestedReplyFailed => "nested-reply-failed",
            Kind::NestedLimitsNotApplied => "nested-limits-not-applied",
            Kind::ProbeIgnored => "probe-ignored",
            Kind::UnexpectedNotification => "unexpected-notification",
            Kind::ListenerError => "listener-error",
            Kind::WatchdogDied => "watchdog-died",
            Kind::SupervisorDied => "supervisor-died",
            Kind::RuntimeDirError => "runtime-dir-error",
            Kind::SpoolError => "spool-error",
            Kind::HardeningIncomplete => "hardening-incomplete",
            Kind::VerifyFallback => "verify-fallback",
            Kind::LimitNotApplied => "limit-not-applied",
            Kind::NoCgroup => "no-cgroup",
            Kind::CgroupRemoveFailed => "cgroup-remove-failed",
            Kind::ExecRefused => "exec-refused",
            Kind::ExecUnresolved => "exec-unresolved",
            Kind::LogRecovered => "log-recovered",
            Kind::LogDropped => "log-dropped",
            Kind::TacacsServerDown => "tacacs-server-down",
            Kind::TacacsServerUp => "tacacs-server-up",
            Kind::TacacsAccountingDropped => "tacacs-accounting-dropped",
            Kind::TacacsAccountingSpooled => "tacacs-accounting-spooled",
            Kind::TacacsAccountingRecovered => "tacacs-accounting-recovered",
            Kind::TacacsAccountingUntracked => "tacacs-accounting-untracked",
            Kind::AuditDropped => "audit-dropped",
            Kind::AuditUnavailable => "audit-unavailable",
        })
    }
}

/// The longest text of one line, its syslog header excluded: rsyslog takes 8 KiB by default,
/// header and all, and a line must reach it whole. A line that would be longer has its longest
/// values cut (each `KEY_truncated=1`) until it fits.
pub const LINE_MAX: usize = 7936;

/// The shortest a value is cut to, to make a line fit.
const CUT_FLOOR: usize = 64;

/// A field's value, as it is written after `key=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Written as is: a number, a word the supervisor chose, or bytes escaped as one word
    /// ([`session_wrapper_config::text::escape_word`]).
    Bare(String),
    /// Written in double quotes; already escaped ([`session_wrapper_config::text::escape`]).
    Quoted(String),
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Value::Bare(v) | Value::Quoted(v) => v,
        }
    }

    /// Its length as written, quotes included.
    fn written_len(&self) -> usize {
        match self {
            Value::Bare(v) => v.len(),
            Value::Quoted(v) => v.len() + 2,
        }
    }

    fn cut(&mut self, max: usize) -> bool {
        let (Value::Bare(v) | Value::Quoted(v)) = self;
        let (cut, was_cut) = bound(std::mem::take(v), max);
        *v = cut;
        was_cut
    }
}

/// One `key=value` of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its key.
    pub key: &'static str,
    /// Its value.
    pub value: Value,
    /// The value was cut: `KEY_truncated=1` follows it.
    pub truncated: bool,
}

impl Field {
    /// `key=value`, whole.
    pub fn new(key: &'static str, value: Value) -> Self {
        Field { key, value, truncated: false }
    }

    /// Its length as written, with the space before it and the truncation mark after it.
    fn written_len(&self) -> usize {
        1 + self.key.len() + 1 + self.value.written_len() + if self.truncated { self.key.len() + 13 } else { 0 }
    }
}

/// Text for a quoted field: a reason, a message, an error.
pub fn text(s: &str) -> String {
    escape(s.as_bytes())
}

/// One thing the supervisor logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// How grave.
    pub severity: Severity,
    /// The session it is about, when there is one (written first).
    pub session: Option<u64>,
    /// What it is.
    pub kind: Kind,
    /// Its fields, in order.
    pub fields: Vec<Field>,
}

impl Event {
    /// An event of `kind`, without fields.
    pub fn new(severity: Severity, kind: Kind) -> Self {
        Event { severity, session: None, kind, fields: Vec::new() }
    }

    /// The same, about session `id`.
    pub fn in_session(mut self, id: u64) -> Self {
        self.session = Some(id);
        self
    }

    /// Adds `key=value`, written as is (numbers, words of our own).
    pub fn bare(mut self, key: &'static str, value: impl Display) -> Self {
        self.push_bare(key, value);
        self
    }

    /// Adds `key=VALUE` with `value` escaped (bytes from the session: names, paths).
    pub fn escaped(mut self, key: &'static str, value: &[u8]) -> Self {
        self.push_escaped(key, value);
        self
    }

    /// Adds `key="VALUE"` with `value` escaped.
    pub fn quoted(mut self, key: &'static str, value: &[u8]) -> Self {
        self.push_quoted(key, value);
        self
    }

    /// Adds `key="text"`: escaped, spaces kept (reasons, errors, messages).
    pub fn text(mut self, key: &'static str, value: impl Display) -> Self {
        self.push_text(key, value);
        self
    }

    /// Adds `key=value` as given.
    pub fn field(mut self, key: &'static str, value: Value) -> Self {
        self.fields.push(Field::new(key, value));
        self
    }

    /// See [`Event::bare`].
    pub fn push_bare(&mut self, key: &'static str, value: impl Display) {
        self.fields.push(Field::new(key, Value::Bare(value.to_string())));
    }

    /// See [`Event::escaped`].
    pub fn push_escaped(&mut self, key: &'static str, value: &[u8]) {
        self.fields.push(Field::new(key, Value::Bare(escape_word(value))));
    }

    /// Sets the value of field `key` as [`Event::escaped`] would have (a value known only
    /// after the line was built); nothing when the line has no such field.
    pub fn set_escaped(&mut self, key: &'static str, value: &[u8]) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.key == key) {
            f.value = Value::Bare(escape_word(value));
        }
    }

    /// See [`Event::quoted`].
    pub fn push_quoted(&mut self, key: &'static str, value: &[u8]) {
        self.fields.push(Field::new(key, Value::Quoted(escape(value))));
    }

    /// See [`Event::text`].
    pub fn push_text(&mut self, key: &'static str, value: impl Display) {
        self.fields.push(Field::new(key, Value::Quoted(text(&value.to_string()))));
    }

    /// Adds every field of `more`.
    pub fn extend(mut self, more: impl IntoIterator<Item = Field>) -> Self {
        self.fields.extend(more);
        self
    }

    /// The value of field `key`, if the event has one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|f| f.key == key).map(|f| &f.value)
    }

    /// The line's text: `session=ID event=KIND key=value ...`, at most [`LINE_MAX`] bytes.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let fields = self.fitted();
        let mut out = String::with_capacity(64 + fields.iter().map(Field::written_len).sum::<usize>());
        if let Some(id) = self.session {
            let _ = write!(out, " session={}", session_id_text(id));
        }
        if let Some(name) = self.kind.name() {
            let _ = write!(out, " event={name}");
        }
        for f in fields.iter() {
            match &f.value {
                Value::Bare(v) => {
                    let _ = write!(out, " {}={v}", f.key);
                }
                Value::Quoted(v) => {
                    let _ = write!(out, " {}=\"{v}\"", f.key);
                }
            }
            if f.truncated {
                let _ = write!(out, " {}_truncated=1", f.key);
            }
        }
        if out.starts_with(' ') {
            out.remove(0);
        }
        out
    }

    /// The fields, with the longest values cut until the line fits in [`LINE_MAX`].
    fn fitted(&self) -> std::borrow::Cow<'_, [Field]> {
        // `session=` (20) and `event=` with the longest kind name (34) at most.
        let fixed = 54;
        let total = |fields: &[Field]| fixed + fields.iter().map(Field::written_len).sum::<usize>();
        if total(&self.fields) <= LINE_MAX {
            return std::borrow::Cow::Borrowed(&self.fields);
        }
        let mut fields = self.fields.clone();
        while total(&fields) > LINE_MAX {
            let excess = total(&fields) - LINE_MAX;
            let Some(longest) = fields.iter_mut().filter(|f| f.value.text().len() > CUT_FLOOR).max_by_key(|f| f.value.text().len())
            else {
                break;
            };
            // Room for the truncation mark, when it is new.
            let mark = if longest.truncated { 0 } else { longest.key.len() + 13 };
            let max = longest.value.text().len().saturating_sub(excess + mark).max(CUT_FLOOR);
            longest.truncated |= longest.value.cut(max);
        }
        std::borrow::Cow::Owned(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_renders_as_one_key_value_line_in_order() {
        let e = Event::new(Severity::Warning, Kind::RuntimeDirError)
            .in_session(0x5e2a_9b0c_71d4)
            .quoted("dir", b"/run/session-wrapper")
            .text("error", "Permission denied (os error 13)");
        assert_eq!(
            e.render(),
            "session=5e2a9b0c71d4 event=runtime-dir-error dir=\"/run/session-wrapper\" error=\"Permission denied (os error 13)\""
        );
        let d = Event::new(Severity::Info, Kind::Decision)
            .in_session(1)
            .escaped("user", b"al ice")
            .quoted("argv", b"id -u\"")
            .bare("latency_us", 41);
        assert_eq!(d.render(), "session=000000000001 user=al%20ice argv=\"id -u%22\" latency_us=41");
        let free = Event::new(Severity::Info, Kind::LogDropped).bare("lines", 3);
        assert_eq!(free.render(), "event=log-dropped lines=3");
    }

    #[test]
    fn text_keeps_spaces_and_escapes_the_rest() {
        assert_eq!(text("a \"b\"\n"), "a %22b%22%0A");
    }

    #[test]
    fn a_line_never_exceeds_its_maximum_and_says_what_was_cut() {
        let cwd = "/d".repeat(1500);
        let argv = "x ".repeat(3000);
        let e = Event::new(Severity::Notice, Kind::Decision)
            .in_session(7)
            .bare("decision", "deny")
            .bare("rule", "r")
            .quoted("cwd", cwd.as_bytes())
            .quoted("path", b"/usr/bin/x")
            .quoted("argv", argv.as_bytes())
            .bare("errno", "EACCES");
        let line = e.render();
        assert!(line.len() <= LINE_MAX, "{}", line.len());
        assert!(line.starts_with("session=000000000007 decision=deny rule=r cwd="), "{line}");
        assert!(line.contains(" argv_truncated=1"), "{line}");
        assert!(line.contains(" path=\"/usr/bin/x\" ") && line.ends_with(" errno=EACCES"), "{line}");
        assert!(line.contains(&format!(" cwd=\"{cwd}\" ")), "the shorter value is kept whole");
        let short = Event::new(Severity::Info, Kind::Decision).quoted("cwd", b"/tmp");
        assert_eq!(short.render(), "cwd=\"/tmp\"");
    }
}
