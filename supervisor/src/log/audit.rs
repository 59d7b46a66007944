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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use session_wrapper_config::text::{unescape, unescape_argv};
use session_wrapper_config::AuditRecords;
use session_wrapper_protocol::audit::{self, Question};

use std::os::fd::BorrowedFd;

use super::event::{Event, Kind, Severity, Value};
use super::{Kept, LogSink};

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

/// How long to wait for the kernel's answer to `AUDIT_GET`.
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a session sends audit records: known from the setting, or asked of the kernel
/// (`auto`) and answered later, so that the kernel's reply thread runs while the supervisor
/// does other work (see [`AuditLog::ask`]).
#[derive(Debug)]
pub enum Wanted {
    /// The answer.
    Known(bool),
    /// The question, asked here.
    Asked(Question),
    /// The question the PAM module asked, with the host's rights.
    Passed(Question),
}

impl Wanted {
    /// The answer, waiting (a bounded time) for the kernel's if it was asked. A question of
    /// the module's that the kernel refused (a host without `CAP_AUDIT_CONTROL` in effect) is
    /// asked again, with the supervisor's own rights.
    pub fn answer(self) -> bool {
        match self {
            Wanted::Known(w) => w,
            Wanted::Asked(q) => q.answer(REPLY_WAIT).unwrap_or(false),
            Wanted::Passed(q) => answer_passed(q).unwrap_or(false),
        }
    }
}

/// The answer to the module's question, or to the supervisor's own when the kernel refused
/// the module's; `None` when neither is answered.
fn answer_passed(q: Question) -> Option<bool> {
    q.answer(REPLY_WAIT).or_else(|| Question::ask()?.answer(REPLY_WAIT))
}

impl AuditLog {
    /// Whether `setting` asks for audit records here: `auto` when the kernel's audit is
    /// enabled and a daemon receives its records, which `asked` (the PAM module's question,
    /// if it passed one) or a question asked now will say. Ask (and answer) before the
    /// supervisor gives up its capabilities (the question needs `CAP_AUDIT_CONTROL`; sending
    /// needs `CAP_AUDIT_WRITE`).
    pub fn ask(setting: AuditRecords, asked: Option<Question>) -> Wanted {
        match setting {
            AuditRecords::Off => Wanted::Known(false),
            AuditRecords::On => Wanted::Known(true),
            AuditRecords::Auto => match asked {
                Some(q) => Wanted::Passed(q),
                None => Question::ask().map_or(Wanted::Known(false), Wanted::Asked),
            },
        }
    }

    /// Opens the audit socket and starts the sending thread (after the supervisor's own
    /// confinement, so that the thread inherits it).
    ///
    /// # Errors
    /// When the audit socket or the thread cannot be made.
    pub fn start() -> io::Result<Self> {
        let fd = audit::socket()?;
        let (queue, records) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new().name("sw-audit".into()).spawn(move || {
            for r in records {
                let _ = audit::send(&fd, &r);
            }
        })?;
        Ok(AuditLog { queue, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Records a decision line (other events are not audit records).
    pub fn record(&self, event: &Event) {
        let Some(text) = user_cmd(event) else { return };
        match self.queue.try_send(audit::message(AUDIT_USER_CMD, text.as_bytes())) {
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

    /// The kernel's answer to this process's question; `None` (and why, on standard error)
    /// where it cannot be had, and the test is skipped.
    fn kernel_answer() -> Option<bool> {
        if !crate::run_as_root() {
            eprintln!("skipped: only root may ask the kernel's audit status");
            return None;
        }
        let kernel = Question::ask().and_then(|q| q.answer(REPLY_WAIT));
        if kernel.is_none() {
            eprintln!("skipped: the kernel refuses this root its audit status (no CAP_AUDIT_CONTROL)");
        }
        kernel
    }

    #[test]
    fn the_setting_decides_and_auto_reads_the_module_s_question_or_asks() {
        use std::os::fd::AsRawFd;
        assert!(AuditLog::ask(AuditRecords::On, None).answer());
        assert!(!AuditLog::ask(AuditRecords::Off, Question::ask()).answer());
        // `auto` with the module's question keeps that question (its socket), and asks only
        // without one.
        if let Some(asked) = Question::ask() {
            let fd = asked.as_fd().as_raw_fd();
            assert!(matches!(AuditLog::ask(AuditRecords::Auto, Some(asked)), Wanted::Passed(q) if q.as_fd().as_raw_fd() == fd));
        }
        let Some(kernel) = kernel_answer() else { return };
        assert_eq!(AuditLog::ask(AuditRecords::Auto, Question::ask()).answer(), kernel);
        assert_eq!(AuditLog::ask(AuditRecords::Auto, None).answer(), kernel);
    }

    /// A host that may not ask (`CAP_AUDIT_CONTROL` dropped from its effective set, as some
    /// daemons do) passes a question the kernel refuses: the supervisor asks again.
    #[test]
    fn a_question_the_kernel_refused_to_the_host_is_asked_again() {
        let Some(kernel) = kernel_answer() else { return };
        // Asked from a thread without the capability in effect (capabilities are per thread).
        let refused = || {
            std::thread::spawn(|| {
                caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_AUDIT_CONTROL).expect("drop");
                Question::ask()
            })
            .join()
            .expect("thread")
            .expect("asked")
        };
        assert_eq!(refused().answer(REPLY_WAIT), None, "the kernel refused the host's question");
        assert_eq!(answer_passed(refused()), Some(kernel), "asked again with the supervisor's rights");
    }

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
