//! Accounting delivery: a session's records go out one at a time, in the order they happened,
//! from its [`Journal`] on disk (see [`super::journal`]), by one thread.
//!
//! Strictly in order: the oldest record not yet delivered goes first, and nothing after it goes
//! until it has (so a STOP never overtakes its START, whatever the backoff). A record that no
//! server takes is retried after 1, 2, 4 ... 60 s (and not before a server marked down may be
//! tried again); a server marked down is not tried at all until then, and what is logged says
//! so (`skipped: server down since TIME`). Nothing is ever dropped for having waited: while
//! the supervisor lives its records wait; when the session ends, what is left stays in the
//! journal for a later supervisor or `session-wrapper deliver-accounting`. The only drop is
//! the bound (`accounting-queue` records pending per session), logged with the task ids.
//!
//! When its own records are all delivered, the thread looks (at start, then every
//! [`CLAIM_EVERY`]) for journals of sessions whose supervisor is gone and delivers them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tacacs_plus_protocol::accounting;

use super::attrs::{self};
use super::client::{Connection, Who};
use super::journal::{AcctDir, Entry, Journal};
use super::{Event, Shared};
use crate::log::{Event as LogEvent, Kind, Severity};

/// How often a supervisor looks for journals of sessions whose supervisor is gone.
pub const CLAIM_EVERY: Duration = Duration::from_secs(30);
/// The longest wait between two tries of a record.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The wait after `attempts` failed tries: 1, 2, 4 ... 60 s.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(6)).min(BACKOFF_MAX)
}

/// A session's records not yet delivered: in its journal, or in memory when there is no
/// spool to keep them in.
#[derive(Debug)]
pub(super) struct Backlog {
    journal: Option<Journal>,
    memory: VecDeque<Entry>,
    seq: u64,
    /// Most records pending.
    capacity: usize,
    /// Task ids of records the bound dropped, not yet reported.
    pub(super) dropped: Vec<String>,
    /// The session ended: deliver what can be within the limit, then stop.
    pub(super) stopping: bool,
    /// Records appended so far (the delivery thread syncs the journal when this moved).
    appended: u64,
}

impl Backlog {
    pub(super) fn new(journal: Option<Journal>, capacity: usize) -> Self {
        Backlog {
            journal,
            memory: VecDeque::new(),
            seq: 0,
            capacity,
            dropped: Vec::new(),
            appended: 0,
            stopping: false,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.journal
            .as_ref()
            .map_or(self.memory.len(), Journal::pending)
    }

    fn front(&self) -> Option<&Entry> {
        match &self.journal {
            Some(j) => j.front(),
            None => self.memory.front(),
        }
    }

    /// Keeps `e`, unless the bound is reached (then it is dropped and remembered).
    pub(super) fn push(&mut self, e: Entry) {
        if self.len() >= self.capacity {
            self.dropped.push(e.task);
            return;
        }
        self.appended += 1;
        if let Some(j) = &mut self.journal {
            match j.append(e.clone()) {
                Ok(_) => return,
                // The disk refuses: keep it in memory (it is lost only if the supervisor is).
                Err(_) => {
                    self.memory.extend(j.entries().cloned());
                    self.journal = None;
                }
            }
        }
        self.seq += 1;
        self.memory.push_back(Entry { seq: self.seq, ..e });
    }

    fn delivered(&mut self) {
        match &mut self.journal {
            Some(j) => j.delivered(),
            None => {
                self.memory.pop_front();
            }
        }
    }

    /// The task ids pending, for the log.
    pub(super) fn tasks(&self) -> Vec<String> {
        match &self.journal {
            Some(j) => j.entries().map(|e| e.task.clone()).collect(),
            None => self.memory.iter().map(|e| e.task.clone()).collect(),
        }
    }

    /// The journal, taken out (at the end of the session).
    pub(super) fn take_journal(&mut self) -> Option<Journal> {
        self.journal.take()
    }

    /// Whether records are kept on disk.
    pub(super) fn on_disk(&self) -> bool {
        self.journal.is_some()
    }
}

/// A backlog shared by the supervisor's loop (which appends) and the delivery thread.
#[derive(Debug)]
pub(super) struct AcctQueue {
    pub(super) backlog: Mutex<Backlog>,
    pub(super) ready: Condvar,
}

impl AcctQueue {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Some task ids, for a log line: all of them up to 20, else the first and last 10.
pub fn task_list(tasks: &[String]) -> String {
    if tasks.len() <= 20 {
        return tasks.join(",");
    }
    format!(
        "{},...,{}",
        tasks[..10].join(","),
        tasks[tasks.len() - 10..].join(",")
    )
}

/// `t` as `YYYY-MM-DDThh:mm:ssZ`.
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{}Z", crate::sys::calendar_time(secs, true).replacen(' ', "T", 1))
}

impl Shared {
    /// Sends one record to the first server that takes it. A server marked down is not
    /// tried. The error says, for each server, what happened.
    pub(super) fn send_record(
        &self,
        conns: &mut [Option<Connection>],
        who: &Who,
        e: &Entry,
    ) -> Result<(), String> {
        let who = Who {
            port: attrs::ascii(e.port.as_bytes()),
            ..who.clone()
        };
        let mut tried = Vec::new();
        for (i, (ep, timeout)) in self.endpoints.iter().enumerate() {
            if let Some(since) = self.down_since(i, Instant::now()) {
                tried.push(format!(
                    "{}: skipped: server down since {}",
                    ep.name,
                    utc(since)
                ));
                continue;
            }
            let until = Instant::now() + *timeout;
            let r = self.with_connection(conns, i, until, &|c, ep, single| {
                c.account(ep, single, &who, e.start, &e.attrs, until)
            });
            match r {
                Ok(accounting::Status::Success) => {
                    self.mark(i, false, "");
                    return Ok(());
                }
                Ok(other) => tried.push(format!("{}: {other:?}", ep.name)),
                Err(err) => {
                    conns[i] = None;
                    self.mark(i, true, &err.to_string());
                    tried.push(format!("{}: {err}", ep.name));
                }
            }
        }
        Err(tried.join("; "))
    }

    /// When the first server marked down may be tried again.
    fn first_retry(&self) -> Option<Instant> {
        let g = self
            .dead_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        g.iter().flatten().min().copied()
    }
}

/// What became of a claimed journal.
#[derive(Debug)]
pub struct Claimed {
    /// The journal's file name.
    pub name: String,
    /// Its session.
    pub session: String,
    /// Records delivered now.
    pub delivered: usize,
    /// Records still pending.
    pub left: usize,
    /// Why the first of those was not delivered.
    pub error: Option<String>,
}

/// Delivers a claimed journal's records in order until one is not taken, or `yield_now` says
/// to stop (the claimer's own records wait). Removes the journal when none is left.
pub(super) fn deliver_journal(
    shared: &Shared,
    conns: &mut [Option<Connection>],
    dir: &AcctDir,
    mut j: Journal,
    yield_now: &dyn Fn() -> bool,
) -> Claimed {
    let h = j.header().clone();
    let who = Who {
        user: h.user.clone(),
        port: String::new(),
        rem_addr: h.rem_addr.clone(),
        priv_lvl: h.priv_lvl,
    };
    let mut out = Claimed {
        name: j.name().to_owned(),
        session: h.session.clone(),
        delivered: 0,
        left: 0,
        error: None,
    };
    while let Some(e) = j.front().cloned() {
        if yield_now() {
            break;
        }
        match shared.send_record(conns, &who, &e) {
            Ok(()) => {
                j.delivered();
                out.delivered += 1;
            }
            Err(why) => {
                out.error = Some(why);
                break;
            }
        }
    }
    j.sync();
    out.left = j.pending();
    if j.is_empty() {
        dir.remove(j);
    }
    out
}

/// The line that says a claimed journal's records were delivered (or some of them).
pub fn claimed_line(c: &Claimed) -> LogEvent {
    let mut e = LogEvent::new(
        if c.left == 0 {
            Severity::Notice
        } else {
            Severity::Warning
        },
        Kind::TacacsAccountingRecovered,
    )
    .bare("from_session", c.session.clone())
    .bare("delivered", c.delivered)
    .bare("left", c.left);
    if let Some(err) = &c.error {
        e = e.text("error", err.replace('"', "'"));
    }
    e
}

/// The delivery thread of a session: its own records first, in order; journals of sessions
/// whose supervisor is gone when its own are all delivered.
///
/// `sync`: another descriptor of the session's journal, `fdatasync`ed before a record is sent
/// when records were appended since the last time (one sync covers every record appended
/// before it), outside the lock the supervisor's loop takes to append. The `D` lines that
/// mark records delivered are not synced on their own: lost in a crash of the host, they
/// make a record go twice, never get lost.
pub(super) fn account_loop(
    q: &AcctQueue,
    shared: &Shared,
    dir: Option<&AcctDir>,
    own: Option<&str>,
    sync: Option<std::fs::File>,
) {
    let mut conns: Vec<Option<Connection>> = (0..shared.endpoints.len()).map(|_| None).collect();
    let mut attempts = 0u32;
    let mut failed_at_end = false;
    let mut synced = 0u64;
    let mut next = Instant::now();
    let mut claim_at = Instant::now();
    // Records delivered so far from journals whose delivery gave way to this session's own.
    let mut recovered: HashMap<String, usize> = HashMap::new();
    loop {
        let Some((entry, appended)) = next_work(q, dir.is_some(), next, claim_at, failed_at_end) else {
            return;
        };
        let Some(e) = entry else {
            claim_at = Instant::now() + CLAIM_EVERY;
            if let Some(dir) = dir {
                if claim_orphans(q, shared, &mut conns, dir, own, &mut recovered) {
                    claim_at = Instant::now();
                }
            }
            continue;
        };
        if let Some(f) = sync.as_ref().filter(|_| appended != synced) {
            let _ = f.sync_data();
            synced = appended;
        }
        match shared.send_record(&mut conns, &shared.who, &e) {
            Ok(()) => {
                attempts = 0;
                next = Instant::now();
                q.lock().delivered();
            }
            Err(_) => {
                failed_at_end = q.lock().stopping;
                attempts += 1;
                let retry = shared.first_retry().unwrap_or_else(Instant::now);
                next = (Instant::now() + backoff(attempts)).max(retry);
            }
        }
    }
}

/// Waits for the next thing to do: `Some((Some(record), appended))` to send the session's
/// oldest record (its retry time `next` come, or the session stopping), `Some((None, _))` to
/// look for orphaned journals (`claim_at` come, with a spool), `None` when the session has
/// stopped and nothing is left (or its last try failed).
fn next_work(q: &AcctQueue, spool: bool, next: Instant, claim_at: Instant, failed_at_end: bool) -> Option<(Option<Entry>, u64)> {
    let mut g = q.lock();
    loop {
        let now = Instant::now();
        if g.stopping && (g.len() == 0 || failed_at_end) {
            return None;
        }
        if let Some(e) = g.front() {
            if now >= next || g.stopping {
                return Some((Some(e.clone()), g.appended));
            }
        } else if spool && now >= claim_at && !g.stopping {
            return Some((None, g.appended));
        }
        let until = if g.len() > 0 {
            next
        } else if spool {
            claim_at
        } else {
            now + Duration::from_secs(3600)
        };
        let wait = until.saturating_duration_since(now).max(Duration::from_millis(1));
        g = q.ready.wait_timeout(g, wait).unwrap_or_else(PoisonError::into_inner).0;
    }
}

/// Delivers the journals of sessions whose supervisor is gone, one after another, until none
/// is left or one cannot be delivered now. Returns true when it gave way to this session's own
/// records (which go first; the claim is then tried again at once).
fn claim_orphans(
    q: &AcctQueue,
    shared: &Shared,
    conns: &mut [Option<Connection>],
    dir: &AcctDir,
    own: Option<&str>,
    recovered: &mut HashMap<String, usize>,
) -> bool {
    let own_waiting = || q.lock().len() > 0;
    let except: Vec<&str> = own.into_iter().collect();
    while let Some(j) = dir.claim(&except) {
        let mut c = deliver_journal(shared, conns, dir, j, &own_waiting);
        *recovered.entry(c.name.clone()).or_insert(0) += c.delivered;
        if c.left > 0 && c.error.is_none() {
            return true;
        }
        c.delivered = recovered.remove(&c.name).unwrap_or(c.delivered);
        if c.delivered > 0 || c.left > 0 {
            shared.notify(Event::Log(claimed_line(&c)));
        }
        if c.left > 0 {
            break;
        }
    }
    false
}

/// What `session-wrapper deliver-accounting` did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Each journal claimed.
    pub journals: Vec<Claimed>,
    /// Journals held by a live supervisor (which delivers them itself).
    pub held: usize,
    /// Lines to log (servers marked down or up).
    pub lines: Vec<LogEvent>,
}

/// Delivers every journal of `dir` that no live supervisor holds (each in order, until a
/// record is not taken), for `session-wrapper deliver-accounting`.
///
/// # Errors
/// [`super::SetupError`] when a key or TLS file cannot be used.
pub fn deliver_orphans(
    t: &session_wrapper_config::Tacacs,
    dir: &AcctDir,
) -> Result<Delivered, super::SetupError> {
    let (shared, events) = Shared::new(t, "", "")?;
    let shared = Arc::new(shared);
    let mut conns: Vec<Option<Connection>> = (0..shared.endpoints.len()).map(|_| None).collect();
    let mut out = Delivered::default();
    let all = dir.journal_names();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let except: Vec<&str> = seen.iter().map(String::as_str).collect();
        let Some(j) = dir.claim(&except) else { break };
        seen.push(j.name().to_owned());
        let c = deliver_journal(&shared, &mut conns, dir, j, &|| false);
        out.lines.push(claimed_line(&c));
        out.journals.push(c);
    }
    out.held = all
        .iter()
        .filter(|n| !seen.contains(n) && dir.is_held(n))
        .count();
    out.lines.extend(events.try_iter().filter_map(|e| match e {
        Event::Log(l) => Some(l),
        Event::Done(_) => None,
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(task: &str, start: bool) -> Entry {
        Entry {
            seq: 0,
            start,
            port: String::new(),
            kind: "command-start".into(),
            task: task.into(),
            attrs: Vec::new(),
        }
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn the_backlog_keeps_order_and_drops_only_beyond_its_bound() {
        let mut b = Backlog::new(None, 3);
        for (t, s) in [
            ("s-1", true),
            ("s-1", false),
            ("s-2", true),
            ("s-2", false),
            ("s-0", false),
        ] {
            b.push(entry(t, s));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped, ["s-2", "s-0"]);
        assert_eq!(
            b.front().map(|e| (e.task.as_str(), e.start)),
            Some(("s-1", true))
        );
        b.delivered();
        assert_eq!(
            b.front().map(|e| (e.task.as_str(), e.start)),
            Some(("s-1", false))
        );
        assert_eq!(b.tasks(), ["s-1", "s-2"]);
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(
            utc(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_748_801)),
            "2025-12-03T08:00:01Z"
        );
        assert_eq!(
            task_list(&(0..25).map(|n| n.to_string()).collect::<Vec<_>>()),
            "0,1,2,3,4,5,6,7,8,9,...,15,16,17,18,19,20,21,22,23,24"
        );
    }
}
