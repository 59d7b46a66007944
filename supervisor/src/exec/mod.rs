//! The exec pipeline: every `execve`/`execveat` of the session, from its notification to its
//! outcome.
//!
//! 1. **gather** ([`gather`]): the caller's ids, path, `argv` and what its environment says to
//!    the loader, from its memory; the real file, its `#!` chain and the links its name comes
//!    through; working directory, terminal, user namespace;
//! 2. **decide** ([`decide`]): the policy's decision on what will run;
//! 3. **authorize**, when the policy says so: the answer cache ([`cache`]), else the
//!    authorization backend ([`crate::authz`]; the exec waits in its notification while the
//!    others go on);
//! 4. **settle** ([`settle`], pure): the decision with the backend's answer, the fallback
//!    rules or the fail policy, the mode, and `log-failure`;
//! 5. **refuse** (errno, the user's message ([`message`]), a decision line), or **attach and
//!    let it run**;
//! 6. **verify** ([`verify`]) at the exec stop what really loaded, and log the outcome.
//!
//! Each exec in flight has one entry in one table, with its stage: waiting for the backend,
//! waiting for another exec of its process, or running until its exec stop.

pub mod cache;
pub mod decide;
pub mod gather;
pub mod message;
pub mod repeat;
pub mod settle;
pub mod verify;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use session_wrapper_config::{Action, Config, DecidedBy, Decision, Guard, GuardAction, LogFailure, Mode};

use crate::authz::{Answer, Backend, Request, Started};
use crate::sys::filter::Notified;
use crate::log::{Event, Field, Kind, LogSink, Severity, Value};
use crate::sys::notify::{Listener, Notification};
use crate::sys::resolve::Reference;
use crate::sys::users::LoginUser;
use crate::login::Session;
use crate::sys::bpf::{ExecCheck, Outcome, Report};
use crate::sys::tracer::{self, Stop};
use decide::Subject;
use gather::{ExecFacts, Gathered, Sight};
use settle::{Authz, Fallback, Settled, Verdict};
use verify::Verified;

/// The longest the kernel's findings are left unread because the server is at work
/// ([`Pipeline::defer_findings`]).
const DEFER_MAX: Duration = Duration::from_millis(10);

/// What the pipeline works with, lent by the supervisor for one call.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The seccomp listener.
    pub listener: &'a Listener,
    /// The session's policy.
    pub config: &'a Config,
    /// The session.
    pub session: &'a Session,
    /// Where lines go.
    pub log: &'a mut dyn LogSink,
    /// The authorization backend, when there is one.
    pub backend: Option<&'a mut dyn Backend>,
    /// Log unresolvable execs too.
    pub debug: bool,
    /// The kernel's exec check, when the session has it.
    pub check: Option<&'a mut ExecCheck>,
}

impl Ctx<'_> {
    fn emit(&mut self, event: Event) {
        self.log.emit(&event.in_session(self.session.id));
    }
}

/// Decision counts, for the session list and the final log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Execs allowed (including audit-mode execs the policy denies).
    pub allowed: u64,
    /// Execs refused.
    pub refused: u64,
    /// Tasks killed at the exec stop because the loaded image was not authorized.
    pub killed: u64,
    /// Execs refused before a decision (unreadable arguments, unresolvable path).
    pub failed: u64,
}

/// Where an exec in flight stands.
#[derive(Debug)]
enum Stage {
    /// Waiting for the backend's answer.
    Authorizing { decision: Decision },
    /// Decided, waiting for another exec of its process to finish (see [`Pipeline::complete`]).
    Deferred { decision: Decision, authz: Authz },
    /// Let run and attached, waiting for its exec stop. `line`: its decision line, without
    /// the outcome; `traced`: whether another process traced the caller (the guard allowed it).
    Running { line: Event, traced: bool },
    /// Let run under the kernel's check, waiting for its finding (or for the next exec of its
    /// thread, which says this one failed). `pidfd`: the process's, taken before it went on,
    /// for its accounting (it may be gone, and its pid reused, when the report is read).
    Loading { line: Event, pidfd: Option<OwnedFd> },
}

/// How an exec that runs is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// By the kernel, which has its expectation.
    Kernel,
    /// At a ptrace stop: attached.
    Ptrace,
    /// Not at all (traced by another process, which the policy allows).
    Unverified,
}

#[derive(Debug)]
struct InFlight {
    facts: Box<ExecFacts>,
    stage: Stage,
}

/// The execs of one session.
#[derive(Debug)]
pub struct Pipeline {
    /// Every exec in flight, by notification id.
    table: HashMap<u64, InFlight>,
    sight: Sight,
    cache: cache::Cache,
    messenger: message::Messenger,
    repeats: repeat::Repeats,
    counts: Counts,
    /// The exec last let run under the kernel's check, until the next [`Pipeline::collect`]:
    /// answered a moment ago, its finding cannot be there yet, and is not looked for then.
    fresh: Option<u64>,
    /// An exec was sent to the backend by the last notification (see
    /// [`Pipeline::defer_findings`]).
    asked: bool,
    /// Since when the kernel's findings are left unread ([`Pipeline::defer_findings`]).
    deferred_since: Option<Instant>,
}

impl Pipeline {
    /// The pipeline of a session of `user` seen from `reference` ([`Sight::new`]), under
    /// `config`; `kernel`: the kernel's exec check is there.
    pub fn new(config: &Config, reference: Reference, user: &LoginUser, kernel: bool) -> Self {
        let mut sight = Sight::new(config, reference, user);
        if kernel {
            sight.check_in_kernel(config);
        }
        Pipeline {
            table: HashMap::new(),
            sight,
            cache: cache::Cache::default(),
            messenger: message::Messenger::default(),
            repeats: repeat::Repeats::default(),
            counts: Counts::default(),
            fresh: None,
            asked: false,
            deferred_since: None,
        }
    }

    /// Decision counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Reads what the kernel found for the execs that wait for it, and logs them.
    ///
    /// The supervisor calls it once a notification is answered, and the pipeline before it
    /// logs a line of its own (lines keep the order of their execs) and before an exec of a
    /// thread that has one waiting (its entry in the kernel is under the thread's id, and
    /// the new exec's expectation takes its place).
    pub fn collect(&mut self, ctx: &mut Ctx<'_>) {
        let Some(check) = ctx.check.as_deref_mut() else { return };
        self.deferred_since = None;
        let fresh = self.fresh.take();
        if self.waiting_in_kernel().all(|(_, id)| Some(id) == fresh) {
            return;
        }
        let reports = check.collect(self.waiting_in_kernel().filter(|(_, id)| Some(*id) != fresh));
        if !reports.is_empty() {
            self.on_reports(ctx, reports);
        }
    }

    /// Logs a line of the exec pipeline, after those of the execs the kernel has found for.
    fn emit(&mut self, ctx: &mut Ctx<'_>, event: Event) {
        self.collect(ctx);
        ctx.emit(event);
    }

    /// An exec's notification.
    pub fn on_exec(&mut self, ctx: &mut Ctx<'_>, n: &Notification, kind: Notified) {
        if self.waiting_in_kernel().any(|(tid, _)| tid == n.tid) {
            self.fresh = None;
            self.collect(ctx);
            self.failed_loading(ctx, n.tid);
        }
        let mut f = match gather::gather(ctx.listener, n, kind, &mut self.sight, ctx.config, ctx.debug) {
            Gathered::Gone => return,
            Gathered::Refused { errno, event, failed } => {
                let _ = ctx.listener.refuse(n.id, errno);
                self.counts.failed += u64::from(failed);
                if let Some(e) = event {
                    self.emit(ctx, e);
                }
                return;
            }
            Gathered::Facts(f) => f,
        };
        let decision = decide::decide_plan(ctx.config, &self.sight.loaders, &subject(ctx.session, &f, false), &f.plan, &f.argv).0;
        if decision.action != Action::Authorize {
            return self.complete(ctx, f, decision, Authz::Local);
        }
        let Some(backend) = ctx.backend.as_deref_mut() else {
            return self.complete(ctx, f, decision, Authz::NoBackend);
        };
        let (name, label) = (backend.name(), backend.label());
        if let Some(outcome) = self.cache.get(&cache::key(&f)) {
            let authz = Authz::Asked { backend: name, label, outcome, elapsed: Duration::ZERO, cached: true };
            return self.complete(ctx, f, decision, authz);
        }
        let Some(cmd) = f.invoked_path() else {
            let argv0 = f.argv.first().map_or(&[][..], Vec::as_slice);
            let name = session_wrapper_config::text::escape(session_wrapper_config::invoked_name(argv0));
            return self.complete(ctx, f, decision, Authz::Unnamed { name });
        };
        f.tty();
        let request = Request { tty: f.known_tty().unwrap_or(""), cmd: &cmd, args: f.argv.get(1..).unwrap_or(&[]) };
        backend.authorize(f.id, request);
        self.asked = true;
        self.table.insert(f.id, InFlight { facts: f, stage: Stage::Authorizing { decision } });
    }

    /// Whether to leave the kernel's findings for later: the notification just handled was
    /// sent to the backend. They are then read once it is answered, not while the server
    /// works: their lines wake the log's receiver, which would take a CPU from the server (on
    /// a small host, often the server's). They are left at most [`DEFER_MAX`]: the loop's wait
    /// ends by then ([`Pipeline::deferred_for`]), and a turn after it reads them.
    pub fn defer_findings(&mut self) -> bool {
        if !std::mem::take(&mut self.asked) {
            return false;
        }
        let since = *self.deferred_since.get_or_insert_with(Instant::now);
        since.elapsed() < DEFER_MAX
    }

    /// How much longer findings left unread for the server may stay so, if some are.
    pub fn deferred_for(&self) -> Option<Duration> {
        self.deferred_since.map(|t| DEFER_MAX.saturating_sub(t.elapsed()))
    }

    /// The backend's answer to an exec that waits for it.
    pub fn on_answer(&mut self, ctx: &mut Ctx<'_>, answer: Answer) {
        let Some(InFlight { facts, stage: Stage::Authorizing { decision } }) = self.table.remove(&answer.id) else {
            return;
        };
        if !ctx.listener.id_valid(facts.id) {
            // The process died while it waited.
            return;
        }
        if let Some(ttl) = ctx.config.tacacs.cache_ttl {
            self.cache.remember(cache::key(&facts), &answer.outcome, ttl);
        }
        let (backend, label) = ctx.backend.as_deref().map_or(("-", "-"), |b| (b.name(), b.label()));
        let authz = Authz::Asked { backend, label, outcome: answer.outcome, elapsed: answer.elapsed, cached: false };
        self.complete(ctx, facts, decision, authz);
    }

    /// A stop or an exit of a traced task (one of the execs let run, or not: then it is only
    /// let go).
    pub fn on_stop(&mut self, ctx: &mut Ctx<'_>, stop: Stop) {
        match stop {
            Stop::Exec { pid, former } => match self.take_running(&[former, pid]) {
                Some((facts, line, traced)) => self.verify(ctx, pid, &facts, line, traced),
                None => tracer::detach(pid, None),
            },
            Stop::Returned { tid, errno, signal, group_stop } => {
                if let Some((_, mut line, _)) = self.take_running(&[tid]) {
                    if tracer::is_restart(errno) {
                        // The kernel restarts the exec and notifies again: no line yet.
                        self.counts.allowed = self.counts.allowed.saturating_sub(1);
                    } else {
                        let result = if group_stop { "stopped".to_owned() } else { format!("failed errno={}", Errno::from_raw(errno)) };
                        line.push_bare("result", result);
                        ctx.emit(line);
                    }
                }
                tracer::detach(tid, signal);
            }
            Stop::Gone { tid, code } => {
                if let Some((_, mut line, _)) = self.take_running(&[tid]) {
                    line.push_bare("result", format!("died code={code}"));
                    ctx.emit(line);
                }
            }
        }
        self.retry_deferred(ctx);
    }

    /// Removes the running exec of the first of `tids` that has one.
    fn take_running(&mut self, tids: &[i32]) -> Option<(Box<ExecFacts>, Event, bool)> {
        let id = tids.iter().find_map(|tid| {
            self.table.iter().find(|(_, e)| e.facts.tid == *tid && matches!(e.stage, Stage::Running { .. })).map(|(id, _)| *id)
        })?;
        match self.table.remove(&id)? {
            InFlight { facts, stage: Stage::Running { line, traced } } => Some((facts, line, traced)),
            _ => None,
        }
    }

    /// Whether an exec of process `tgid` is running (allowed, attached, not yet loaded).
    fn running(&self, tgid: i32) -> bool {
        self.table.values().any(|e| e.facts.status.tgid == tgid && matches!(e.stage, Stage::Running { .. }))
    }

    /// Completes the execs that waited for another exec of their process: once it has loaded
    /// (the others are gone with the old image) or failed.
    fn retry_deferred(&mut self, ctx: &mut Ctx<'_>) {
        let waiting: Vec<u64> =
            self.table.iter().filter(|(_, e)| matches!(e.stage, Stage::Deferred { .. })).map(|(id, _)| *id).collect();
        for id in waiting {
            let Some(InFlight { facts, stage: Stage::Deferred { decision, authz } }) = self.table.remove(&id) else { continue };
            if !ctx.listener.id_valid(facts.id) {
                // Killed by the other exec, as every other thread of an exec'ing process is.
                continue;
            }
            self.complete(ctx, facts, decision, authz);
        }
    }

    /// Refuses the exec, or attaches to it and lets it run.
    ///
    /// An exec of a process that already has one running waits for it (stage `Deferred`):
    /// attaching (`PTRACE_SEIZE`) to a thread of that process would block on the exec's lock
    /// (`cred_guard_mutex`), while that exec waits for its other threads to be gone, one of
    /// which may be traced by us and need reaping: the supervisor would hang, and every exec
    /// of the session with it.
    fn complete(&mut self, ctx: &mut Ctx<'_>, mut f: Box<ExecFacts>, decision: Decision, authz: Authz) {
        if self.running(f.status.tgid) {
            self.table.insert(f.id, InFlight { facts: f, stage: Stage::Deferred { decision, authz } });
            return;
        }
        let (mut s, enforce) = self.settled(ctx, &f, decision, authz);
        let mut traced = f.status.tracer != 0;
        let mut check = Check::Unverified;
        if s.verdict == Verdict::Allow || !enforce {
            // An exec that runs does so only under a check: the kernel's when it takes this
            // exec, else a ptrace stop. A task traced by someone else cannot be attached,
            // which is how a tracer is noticed.
            let untraced = ctx.config.policy.guards.traced == GuardAction::Deny;
            let userns = self.sight.kernel_user_namespace;
            if verify::expect_in_kernel(ctx.check.as_deref_mut(), &f, enforce, untraced, userns) {
                check = Check::Kernel;
            } else {
                if f.user_namespace_unchecked && self.sight.reference.foreign_user_namespace(f.tid) {
                    // Not for the kernel after all, and from another user namespace: the guard
                    // refuses it here, as it would have before the decision.
                    guard_overrides(&mut s, Guard::UserNamespaces);
                }
                if !traced && (s.verdict == Verdict::Allow || !enforce) {
                    match tracer::seize(f.tid) {
                        Ok(()) => check = Check::Ptrace,
                        Err(Errno::ESRCH) => return,
                        Err(_) => {
                            traced = true;
                            traced_guard(ctx.config, &mut s);
                        }
                    }
                }
            }
        }
        f.give_back_env();
        if check != Check::Kernel {
            // The kernel's finding gives the terminal of an exec it checks; any other is read
            // now, while the caller waits.
            f.tty();
        }
        let facts = decide::request(&self.sight.loaders, &subject(ctx.session, &f, traced), (&f.plan.named).into(), &f.argv).facts();
        if s.verdict == Verdict::Deny && enforce {
            let line = decision_line(ctx, &f, &s, &facts);
            return self.refuse(ctx, &f, &s.decision, line);
        }
        self.counts.allowed += 1;
        self.repeats.ran(f.status.tgid);
        let latency = f.t0.elapsed().as_micros();
        let pidfd = match check {
            Check::Kernel => ctx.backend.as_deref().filter(|b| b.accounts()).and_then(|_| crate::sys::pidfd_open(f.status.tgid, 0).ok()),
            _ => None,
        };
        let answered = ctx.listener.allow(f.id).is_ok();
        if check == Check::Ptrace {
            tracer::interrupt(f.tid);
        }
        // The line is written once the caller goes on: it waits for nothing of it.
        let mut line = decision_line(ctx, &f, &s, &facts);
        line.push_bare("latency_us", latency);
        // An audit-mode "would deny" stays a notice when its outcome is logged.
        line.severity = if s.verdict == Verdict::Deny { Severity::Notice } else { Severity::Info };
        match check {
            Check::Kernel if !answered => {
                // Gone before it could go on: its expectation must not outlive it.
                if let Some(c) = ctx.check.as_deref_mut() {
                    c.forget(f.tid);
                }
                fill_tty(&mut line, &mut f, None);
                line.push_bare("result", "died");
                self.emit(ctx, line);
            }
            Check::Kernel => {
                self.fresh = Some(f.id);
                self.table.insert(f.id, InFlight { facts: f, stage: Stage::Loading { line, pidfd } });
            }
            Check::Ptrace => {
                self.table.insert(f.id, InFlight { facts: f, stage: Stage::Running { line, traced } });
            }
            Check::Unverified => {
                // Traced by another process and the policy allows that: nothing can check this
                // exec after the fact, which the log says.
                line.severity = Severity::Warning;
                line.push_bare("result", if traced { "unverified-traced" } else { "unverified" });
                self.emit(ctx, line);
            }
        }
    }

    /// What the kernel found for execs it checked.
    pub fn on_reports(&mut self, ctx: &mut Ctx<'_>, mut reports: Vec<Report>) {
        // Read together, they come in the table's order: their lines go in their execs'
        // (the kernel numbers a listener's notifications in the order it sends them).
        reports.sort_by_key(|r| r.notif);
        for r in reports {
            let Some((mut facts, mut line, pidfd)) = self.take_loading(r.notif) else { continue };
            fill_tty(&mut line, &mut facts, r.tty);
            match r.outcome {
                Outcome::Same => self.ran(ctx, r.pid, &facts, line, pidfd),
                Outcome::Gone => {
                    line.push_bare("result", "died");
                    ctx.emit(line);
                }
                other => {
                    line.severity = Severity::Warning;
                    line.fields.extend(verify::kernel_mismatch(&r, other));
                    if ctx.config.mode == Mode::Enforce {
                        self.counts.allowed = self.counts.allowed.saturating_sub(1);
                        self.counts.killed += 1;
                        line.push_bare("result", "killed");
                        ctx.emit(line);
                    } else {
                        self.ran(ctx, r.pid, &facts, line, pidfd);
                    }
                }
            }
        }
    }

    /// Another exec of thread `tid` arrives while its last one waits for the kernel's finding:
    /// that one failed (the finding is written before the new image runs, and was read just
    /// before: [`Pipeline::on_exec`]).
    fn failed_loading(&mut self, ctx: &mut Ctx<'_>, tid: i32) {
        let ids: Vec<u64> = self.waiting_in_kernel().filter(|(t, _)| *t == tid).map(|(_, id)| id).collect();
        self.abandon_loading(ctx, ids, "failed");
    }

    /// Whether the session's mount table could be read at the start (see
    /// [`crate::sys::resolve::Reference::mounts_known`]).
    pub fn mounts_known(&self) -> bool {
        self.sight.reference.mounts_known()
    }

    /// The execs the kernel checks that wait for its finding: (thread, notification id).
    pub fn waiting_in_kernel(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.table.iter().filter(|(_, e)| matches!(e.stage, Stage::Loading { .. })).map(|(id, e)| (e.facts.tid, *id))
    }

    /// The end of the session: execs still waiting for the kernel's finding are logged as
    /// such, and their entries removed.
    pub fn finish(&mut self, ctx: &mut Ctx<'_>) {
        self.fresh = None;
        self.collect(ctx);
        let mut ids: Vec<u64> = self.waiting_in_kernel().map(|(_, id)| id).collect();
        // In their execs' order, as the findings are.
        ids.sort_unstable();
        self.abandon_loading(ctx, ids, "unknown");
    }

    /// Removes exec `id` if it waits for the kernel's finding.
    fn take_loading(&mut self, id: u64) -> Option<(Box<ExecFacts>, Event, Option<OwnedFd>)> {
        if !matches!(self.table.get(&id), Some(InFlight { stage: Stage::Loading { .. }, .. })) {
            return None;
        }
        match self.table.remove(&id)? {
            InFlight { facts, stage: Stage::Loading { line, pidfd } } => Some((facts, line, pidfd)),
            _ => None,
        }
    }

    /// Ends the execs `ids` that wait for the kernel without its finding: their entries in
    /// the kernel go, their lines say `result`.
    fn abandon_loading(&mut self, ctx: &mut Ctx<'_>, ids: Vec<u64>, result: &str) {
        for id in ids {
            let Some((mut facts, mut line, _)) = self.take_loading(id) else { continue };
            if let Some(c) = ctx.check.as_deref() {
                c.forget(facts.tid);
            }
            fill_tty(&mut line, &mut facts, None);
            line.push_bare("result", result);
            ctx.emit(line);
        }
    }

    /// The decision settled, `log-failure` applied; and whether it is enforced.
    fn settled(&self, ctx: &mut Ctx<'_>, f: &ExecFacts, decision: Decision, authz: Authz) -> (Settled, bool) {
        let (config, loaders) = (ctx.config, &self.sight.loaders);
        let fallback = || {
            let req = decide::request(loaders, &subject(ctx.session, f, false), (&f.plan.named).into(), &f.argv);
            config.policy.decide_fallback(&req).map(|(i, decision)| Fallback {
                rule: config.policy.fallback.get(i).map_or("?", |r| r.name.as_str()).to_owned(),
                decision,
            })
        };
        let mut s = settle::settle(decision, authz, fallback, config.fail_policy);
        // "No audit, no exec": while a line can be neither delivered nor kept on disk, execs
        // are refused, in audit mode too.
        let unlogged = config.log_failure == LogFailure::Refuse && !ctx.log.can_keep();
        if unlogged {
            s.verdict = Verdict::Deny;
            s.decision = Decision {
                action: Action::Deny,
                by: s.decision.by,
                message: Some("the audit log cannot be written; commands are refused until it can".into()),
            };
            s.reason = Some("log-failure=refuse: syslog takes no lines and the spool cannot keep them".into());
        }
        (s, config.mode == Mode::Enforce || unlogged)
    }

    /// Refuses the exec: errno, the user's message, the line.
    fn refuse(&mut self, ctx: &mut Ctx<'_>, f: &ExecFacts, decision: &Decision, mut line: Event) {
        let named = &f.plan.named;
        let repeat = self.repeats.refused(f.status.tgid, (named.dev, named.ino), &f.argv);
        let delivery = if repeat {
            "repeat"
        } else {
            let text = message::text(ctx.config, &f.path, decision);
            let d = match &f.pidfd {
                Some(p) => self.messenger.deliver_via(p.as_fd(), text.as_bytes()),
                None => self.messenger.deliver(f.status.tgid, text.as_bytes()),
            };
            d.as_str()
        };
        let _ = ctx.listener.refuse(f.id, Errno::from_raw(ctx.config.deny_errno.value));
        if repeat {
            line.push_bare("repeat", 1);
        } else {
            self.counts.refused += 1;
        }
        line.push_bare("errno", ctx.config.deny_errno.name);
        line.push_bare("message", delivery);
        line.push_bare("latency_us", f.t0.elapsed().as_micros());
        line.severity = Severity::Notice;
        self.emit(ctx, line);
    }

    /// The exec of `facts` loaded, as `pid`: check what loaded before it runs.
    fn verify(&mut self, ctx: &mut Ctx<'_>, pid: i32, facts: &ExecFacts, mut line: Event, traced: bool) {
        let verified = verify::at_exec_stop(pid, facts, traced, &mut self.sight, ctx.config, ctx.session);
        let runs = verified.runs() || ctx.config.mode != Mode::Enforce;
        if let Verified::Mismatch { decision, fields } = verified {
            line.severity = Severity::Warning;
            line.fields.extend(fields);
            if !runs {
                let text = message::text(ctx.config, &facts.path, &decision);
                let _ = self.messenger.deliver(pid, text.as_bytes());
                tracer::kill(pid);
                self.counts.allowed = self.counts.allowed.saturating_sub(1);
                self.counts.killed += 1;
                line.push_bare("result", "killed");
                return ctx.emit(line);
            }
        }
        // The pidfd is taken while the process is stopped: a short command could be gone (and
        // its pid reused) by the time the loop looks again.
        let pidfd = ctx.backend.as_deref().filter(|b| b.accounts()).and_then(|_| crate::sys::pidfd_open(pid, 0).ok());
        tracer::detach(pid, None);
        self.ran(ctx, pid, facts, line, pidfd);
    }

    /// The exec of `facts` runs, as `pid`: its line, and its accounting (`pidfd`: the
    /// process's, taken while it could not go away).
    fn ran(&mut self, ctx: &mut Ctx<'_>, pid: i32, facts: &ExecFacts, mut line: Event, pidfd: Option<OwnedFd>) {
        line.push_bare("result", "exec");
        ctx.emit(line);
        let (Some(backend), Some(pidfd)) = (ctx.backend.as_deref_mut().filter(|b| b.accounts()), pidfd) else { return };
        let cmd = facts.invoked_path().unwrap_or_else(|| facts.plan.named.real_path.clone());
        let started = Started { pid, pidfd, cmd, args: facts.argv.get(1..).unwrap_or(&[]).to_vec(), tty: facts.known_tty().map(str::to_owned) };
        for e in backend.command_started(started) {
            ctx.emit(e);
        }
    }
}

/// The terminal of a line built before it was known (an exec the kernel checks): the one its
/// finding names (`found`), else read from `/proc` now.
fn fill_tty(line: &mut Event, f: &mut ExecFacts, found: Option<u64>) {
    line.set_escaped("tty", f.found_tty(found).unwrap_or("-").as_bytes());
}

/// Who runs an exec, and under which circumstances.
fn subject<'a>(session: &'a Session, f: &'a ExecFacts, traced: bool) -> Subject<'a> {
    Subject {
        user: &session.user,
        service: &session.service,
        target_user: &f.target_user,
        loader_env: f.loader_env.as_deref(),
        untrusted_library_path: f.library_path.as_deref(),
        traced: traced || f.status.tracer != 0,
        foreign_user_namespace: f.foreign_user_namespace,
    }
}

/// The exec turned out to be traced (it could not be attached): the `traced` guard applies, as
/// it would have had the tracer been known (it comes after the other guards, before the rules).
fn traced_guard(config: &Config, s: &mut Settled) {
    if config.policy.guards.traced == GuardAction::Deny {
        guard_overrides(s, Guard::Traced);
    }
}

/// A guard found to deny after the decision refuses the exec, unless another guard already
/// did.
fn guard_overrides(s: &mut Settled, guard: Guard) {
    if !matches!(s.decision.by, DecidedBy::Guard(_)) {
        s.verdict = Verdict::Deny;
        s.decision = Decision { action: Action::Deny, by: DecidedBy::Guard(guard), message: None };
        s.authz.clear();
        s.reason = None;
    }
}

/// The decision line of an exec, up to its outcome (`errno=`/`latency_us=`/`result=` follow).
/// The decision comes first (what, by which rule, how it was authorized, why), then who ran
/// what: a line cut to fit loses the end of its longest values, never the decision. `links=`
/// (the links the program is invoked through) and `facts=` (the guards whose facts hold) are
/// there when not empty: with the session-start line's groups and service, they are what
/// `session-wrapper replay` needs to decide the exec again.
fn decision_line(ctx: &Ctx<'_>, f: &ExecFacts, s: &Settled, facts: &[Guard]) -> Event {
    let config = ctx.config;
    let mut e = Event::new(Severity::Info, Kind::Decision)
        .in_session(ctx.session.id)
        .bare("decision", if s.verdict == Verdict::Allow { "allow" } else { "deny" })
        .bare("rule", config.policy.decider_name(s.decision.by))
        .bare("mode", config.mode.as_str())
        .extend(s.authz.iter().cloned());
    if let Some(r) = &s.reason {
        e.fields.push(settle::reason_field(r));
    }
    e = e
        .escaped("user", ctx.session.user.name.as_bytes())
        .bare("uid", f.status.euid)
        .escaped("target", f.target_user.as_bytes())
        .bare("pid", f.status.tgid);
    if f.tid != f.status.tgid {
        e.push_bare("tid", f.tid);
    }
    e = e
        .bare("ppid", f.status.ppid)
        .escaped("tty", f.known_tty().unwrap_or("-").as_bytes())
        .quoted("cwd", &f.cwd)
        .quoted("path", &f.path)
        .quoted("exe", &f.plan.named.real_path);
    if !f.plan.named.links.is_empty() {
        let (links, _) = session_wrapper_config::text::escape_argv(&f.plan.named.links, usize::MAX);
        e.fields.push(Field::new("links", Value::Quoted(links)));
    }
    if !f.plan.interpreters.is_empty() {
        e.push_quoted("interpreter", &f.plan.image().real_path);
    }
    if !facts.is_empty() {
        e.push_bare("facts", facts.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(","));
    }
    let (argv_text, cut) = session_wrapper_config::text::escape_argv(&f.argv, config.log.argv_max);
    e = e.bare("argc", f.argv.len());
    e.fields.push(Field { key: "argv", value: Value::Quoted(argv_text), truncated: cut });
    e
}
