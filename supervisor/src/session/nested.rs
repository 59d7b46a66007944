//! The probe: a nested PAM session (su, sudo) asking what to add to the session it is in, the
//! process that opened the session closing it, or `session-wrapper` asking which session it
//! is in. Every probe is answered with the session id; a nested session's also with a sealed
//! memory file saying what its own isolation adds.

use nix::errno::Errno;
use nix::unistd::Pid;
use session_wrapper_config::{Config, Layers};
use session_wrapper_protocol::{Message, Nested};

use super::{PamSession, Session};
use crate::log::{Event, Kind, Severity};
use crate::sys::memory::Remote;
use crate::sys::notify::{Listener, Notification};
use crate::sys::procfs;

/// What a probe carries.
#[derive(Debug)]
pub(super) enum Probe {
    /// No record, or one that cannot be read: only the session id is asked for.
    Bare,
    /// A nested session of process `tgid` (a root process).
    Nested { nested: Nested, tgid: i32 },
    /// Process `tgid` (a root process) closes the session of `service`.
    Closing { service: Vec<u8>, tgid: i32 },
    /// A record from a process that is not root, or a malformed one: logged, then ignored.
    Ignored { tgid: i32, uid: u32 },
}

/// Reads the record of probe `n`, if it has one.
pub(super) fn read(listener: &Listener, n: &Notification) -> Probe {
    let (ptr, len) = (n.args[2], n.args[3].min(4096) as usize);
    if ptr == 0 || len == 0 {
        return Probe::Bare;
    }
    let mut buf = vec![0u8; len];
    let read = Remote::new(Pid::from_raw(n.tid)).read(ptr, &mut buf);
    let status = procfs::status(n.tid);
    // What was read came from the right task only if it still waits.
    let (true, Ok(()), Ok(st)) = (listener.id_valid(n.id), read, status) else { return Probe::Bare };
    match Message::decode(&buf) {
        Ok(Message::Nested(nested)) if st.euid == 0 => Probe::Nested { nested, tgid: st.tgid },
        Ok(Message::Closing(c)) if st.euid == 0 => Probe::Closing { service: c.service, tgid: st.tgid },
        Ok(_) | Err(_) => Probe::Ignored { tgid: st.tgid, uid: st.euid },
    }
}

/// The line of an ignored record.
pub(super) fn ignored(tgid: i32, uid: u32) -> Event {
    Event::new(Severity::Notice, Kind::ProbeIgnored)
        .bare("pid", tgid)
        .bare("uid", uid)
        .text("reason", "record from a non-root process or malformed")
}

/// The answer to a nested session, and what the log says of it.
#[derive(Debug)]
pub(super) struct Reply {
    /// The message for the nested session.
    pub message: Message,
    /// The `event=nested` line.
    pub line: Event,
    /// Notes to log before it.
    pub notes: Vec<Event>,
}

/// What a nested session must add: its own isolation blocks' restrictions that the session
/// (`layers`) does not already have.
pub(super) fn reply(config: &Config, session: &Session, layers: &Layers, nested: &Nested, tgid: i32) -> Reply {
    let service = String::from_utf8_lossy(&nested.service).into_owned();
    let own = config.layers_for(&session.user.name, &session.user.groups, &service);
    let extra = super::isolation::extra_for_nested(layers, &own);
    let mut adds = extra.names.join(",");
    let mut notes = Vec::new();
    if extra.has_limits() {
        let note = Event::new(Severity::Notice, Kind::NestedLimitsNotApplied)
            .escaped("service", &nested.service)
            .text("reason", "limits are per login session; the session's own hold");
        notes.push(note);
    }
    let filter = if extra.block.is_empty() {
        Ok(Vec::new())
    } else {
        crate::sys::filter::build_blocklist(&extra.block).map(|p| p.to_bytes())
    };
    let message = match filter {
        Ok(filter) => Message::Supervise {
            session: session.id,
            pid: std::process::id(),
            filter,
            isolate: super::isolation::isolate_of(&extra),
        },
        Err(e) => {
            adds = "failed".into();
            Message::Failed { reason: format!("the nested session's blocklist: {e}") }
        }
    };
    if adds.is_empty() {
        adds = "-".into();
    }
    let line = Event::new(Severity::Info, Kind::Nested)
        .escaped("service", &nested.service)
        .escaped("target", &nested.user)
        .escaped("ruser", nested.ruser.as_deref().unwrap_or(b"-"))
        .escaped("tty", nested.tty.as_deref().unwrap_or(b"-"))
        .bare("pid", tgid)
        .bare("adds", adds);
    Reply { message, line, notes }
}

/// Answers probe `id` with `reply` in a sealed memory file.
///
/// # Errors
/// The line saying why it could not be (the caller then refuses the probe: without its
/// reply the nested session cannot know what to add, and must not run with less than its own
/// layers).
pub(super) fn send(listener: &Listener, id: u64, reply: &Message) -> Result<(), Event> {
    let failed = |e: &dyn std::fmt::Display| Event::new(Severity::Error, Kind::NestedReplyFailed).text("error", e);
    let fd = super::isolation::reply_fd(reply).map_err(|e| failed(&e))?;
    listener.reply_with_fd(id, std::os::fd::AsFd::as_fd(&fd)).map(drop).map_err(|e: Errno| failed(&e))
}

/// The session is closed by process `pid`: with `kill_on_close`, its processes are ended
/// (found by cgroup, audit session or descent). Returns the fields to add to the close line.
pub(super) fn end_processes(pam: &PamSession, leader: i32) -> Option<(usize, &'static str)> {
    if !pam.kill_on_close {
        return None;
    }
    let mut exclude = vec![std::process::id() as i32, leader];
    exclude.extend(pam.watchdog_pid);
    let lingering = &super::lingering::members;
    let (members, by) = if let Some(cg) = &pam.cgroup {
        cg.freeze(true);
        (cg.members().into_iter().filter(|p| !exclude.contains(p)).collect::<Vec<_>>(), "cgroup")
    } else if pam.audit_session.is_some() {
        (lingering(leader, pam.audit_session, &exclude), "audit-session")
    } else {
        (lingering(leader, None, &exclude), "descendants")
    };
    // SIGKILL reaches frozen tasks; SIGTERM waits for the thaw.
    if let Some(cg) = &pam.cgroup {
        for p in &members {
            let _ = nix::sys::signal::kill(Pid::from_raw(*p), nix::sys::signal::Signal::SIGTERM);
        }
        cg.freeze(false);
    }
    super::lingering::end(&members, std::time::Duration::from_secs(2));
    Some((members.len(), by))
}
