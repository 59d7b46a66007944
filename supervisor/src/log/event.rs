//! What the supervisor says: an [`Event`] is a severity, the session it belongs to, a [`Kind`]
//! and typed fields in order. A sink renders it: syslog as one `key=value` line
//! (`session=ID event=KIND key=value ...`, a decision without `event=`), a journald sink would
//! send the same fields natively.

use std::fmt::Display;

use session_wrapper_config::text::escape;
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
    TacacsAccountingUntracked,
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
            Kind::TacacsAccountingUntracked => "tacacs-accounting-untracked",
        })
    }
}

/// A field's value, as it is written after `key=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Written as is: a number, a word the supervisor chose, or bytes already escaped.
    Bare(String),
    /// Written in double quotes; already escaped.
    Quoted(String),
}

/// One `key=value` of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its key.
    pub key: &'static str,
    /// Its value.
    pub value: Value,
}

/// Text for a quoted field: escaped, but with spaces kept (a reason, a message).
pub fn text(s: &str) -> String {
    escape(s.as_bytes()).replace("\\x20", " ")
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
        self.fields.push(Field { key, value });
        self
    }

    /// See [`Event::bare`].
    pub fn push_bare(&mut self, key: &'static str, value: impl Display) {
        self.fields.push(Field { key, value: Value::Bare(value.to_string()) });
    }

    /// See [`Event::escaped`].
    pub fn push_escaped(&mut self, key: &'static str, value: &[u8]) {
        self.fields.push(Field { key, value: Value::Bare(escape(value)) });
    }

    /// See [`Event::quoted`].
    pub fn push_quoted(&mut self, key: &'static str, value: &[u8]) {
        self.fields.push(Field { key, value: Value::Quoted(escape(value)) });
    }

    /// See [`Event::text`].
    pub fn push_text(&mut self, key: &'static str, value: impl Display) {
        self.fields.push(Field { key, value: Value::Quoted(text(&value.to_string())) });
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

    /// The line's text: `session=ID event=KIND key=value ...`.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(64 + self.fields.len() * 24);
        let mut sep = "";
        if let Some(id) = self.session {
            let _ = write!(out, "session={}", session_id_text(id));
            sep = " ";
        }
        if let Some(name) = self.kind.name() {
            let _ = write!(out, "{sep}event={name}");
            sep = " ";
        }
        for f in &self.fields {
            match &f.value {
                Value::Bare(v) => {
                    let _ = write!(out, "{sep}{}={v}", f.key);
                }
                Value::Quoted(v) => {
                    let _ = write!(out, "{sep}{}=\"{v}\"", f.key);
                }
            }
            sep = " ";
        }
        out
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
        assert_eq!(d.render(), "session=000000000001 user=al\\x20ice argv=\"id\\x20-u\\\"\" latency_us=41");
        let free = Event::new(Severity::Info, Kind::LogDropped).bare("lines", 3);
        assert_eq!(free.render(), "event=log-dropped lines=3");
    }

    #[test]
    fn text_keeps_spaces_and_escapes_the_rest() {
        assert_eq!(text("a \"b\"\n"), "a \\\"b\\\"\\x0a");
    }
}
