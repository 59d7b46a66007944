//! The supervisor: one per session, answering every exec of every process in it.
//!
//! A single thread runs a `poll(2)` loop over the seccomp listener, a signalfd for `SIGCHLD`
//! (ptrace stops and exits arrive that way), the authorization backend's descriptors, the
//! watchdog's pipe and, when lines wait, the log sink's. It never blocks on one process:
//! execs go to the exec pipeline ([`crate::exec`]), probes to [`super::nested`]. The loop ends
//! when the listener reports `POLLHUP`: the last task under the filter is gone, daemonized
//! descendants included.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use session_wrapper_config::text::escape_argv;
use session_wrapper_config::{Config, Layers};
use session_wrapper_protocol::session_id_text;

use super::nested::{self, Probe};
use super::harden::Confinement;
use super::{PamSession, Session};
use crate::authz::{self, Backend, Report};
use crate::exec::{Counts, Ctx, Pipeline};
use crate::sys::bpf::ExecCheck;
use crate::log::syslog::Syslog;
use crate::log::{Event, Field, Kind, LogSink, Severity, Value};
use crate::sys::filter::{Notified, SyscallTable};
use crate::sys::notify::{Listener, Notification};
use crate::sys::resolve::Reference;
use crate::sys::tracer::{self, Stop};

/// How the session ended.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Decisions made.
    pub counts: Counts,
    /// Exit code of the child started by `session-wrapper run`, if any.
    pub child_code: Option<i32>,
}

/// Why a supervisor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// libseccomp could not describe the syscalls.
    #[error(transparent)]
    Filter(#[from] crate::sys::filter::FilterError),
    /// A signalfd could not be made.
    #[error("signalfd: {0}")]
    Signal(#[from] Errno),
    /// The authorization backend could not start (a key or TLS file).
    #[error(transparent)]
    Authz(#[from] authz::SetupError),
}

/// What a supervisor is made of (see [`super::start`]).
#[derive(Debug)]
pub(super) struct Parts {
    pub listener: Listener,
    pub config: Config,
    pub session: Session,
    pub log: Syslog,
    /// Decisions are also audit records (a thread sends them, started after the confinement).
    pub audit: bool,
    /// The supervisor's own confinement, begun (none for a supervisor that is not root).
    pub confinement: Option<Confinement>,
    pub child: Option<i32>,
    pub debug: bool,
    /// The accounting spool, opened before the supervisor confined itself.
    pub acct_dir: Option<crate::authz::tacacs::journal::AcctDir>,
    /// The kernel's exec check, connected before the supervisor confined itself.
    pub check: Option<ExecCheck>,
}

/// One session's supervisor.
#[derive(Debug)]
pub struct Supervisor {
    listener: Listener,
    config: Config,
    session: Session,
    table: SyscallTable,
    log: Box<dyn LogSink>,
    backend: Option<Box<dyn Backend>>,
    execs: Pipeline,
    /// The kernel's exec check; without it, execs are checked at ptrace stops.
    check: Option<ExecCheck>,
    /// `SIGCHLD` (ptrace stops and exits) and `SIGUSR1` (`session-wrapper sessions` asks for
    /// the session file now).
    signals: SignalFd,
    child: Option<i32>,
    child_code: Option<i32>,
    debug: bool,
    pam: PamSession,
    /// The session file is out of date since this moment.
    dirty_since: Option<Instant>,
    /// What isolation the session has, for the session-start line.
    isolation: Vec<Field>,
    /// The isolation layers the session has (a nested session adds only what they lack).
    layers: Layers,
    /// The limits handed to pam_systemd, checked at the session's first exec and then cleared.
    limits_handed: Vec<&'static str>,
}

/// A supervisor whose every part that can refuse the session is made
/// ([`Supervisor::prepare`]). The rest is made after a PAM session's module heard "ready",
/// while the host goes on ([`Starting::supervise`]): the end of the supervisor's own
/// confinement, then the session's mount table read, its threads (the audit records', the
/// backend's), the exec view's loaders, the session file. No notification is read before: the
/// session's first exec waits in the kernel until the supervisor serves.
#[derive(Debug)]
#[must_use = "a supervisor that is not made answers no exec"]
pub struct Starting {
    listener: Listener,
    config: Config,
    session: Session,
    table: SyscallTable,
    log: Syslog,
    audit: bool,
    confinement: Option<Confinement>,
    backend: Option<authz::Pending>,
    acct_dir: Option<crate::authz::tacacs::journal::AcctDir>,
    check: Option<ExecCheck>,
    signals: SignalFd,
    child: Option<i32>,
    debug: bool,
    /// The session's root, mount table and user namespace, taken while its leader waited
    /// (the mount table held open, read in [`Starting::supervise`]).
    reference: Reference,
    pam: PamSession,
    isolation: Vec<Field>,
    layers: Layers,
    limits_handed: Vec<&'static str>,
}

impl Starting {
    /// Makes this the supervisor of a PAM session: it keeps a session file, watches its
    /// watchdog and handles the close.
    pub(super) fn with_pam(mut self, pam: PamSession) -> Self {
        self.pam = pam;
        self
    }

    /// Records what isolation the session has (see [`super::isolation::Plan::describe`]).
    pub(super) fn with_isolation(mut self, describe: Vec<Field>, layers: Layers) -> Self {
        self.isolation = describe;
        self.layers = layers;
        self
    }

    /// Checks at the first exec that pam_systemd took the limits `handed` to it.
    pub(super) fn with_limits_check(mut self, handed: Vec<&'static str>) -> Self {
        self.limits_handed = handed;
        self
    }

    /// The supervisor: its own confinement ended before anything else (a failure is logged,
    /// and it goes on: it still serves the session correctly), then the session's mount
    /// table read, its threads, the exec
    /// pipeline (with the loaders of this system; the session's standard directories of the
    /// invocation links are opened at its first search) and, in a PAM session, the session
    /// file.
    ///
    /// # Errors
    /// [`SetupError`] when the backend's threads cannot start: nothing can refuse the session
    /// any more; the caller ends (every exec of the session then fails).
    pub fn supervise(self) -> Result<Supervisor, SetupError> {
        let Starting {
            listener,
            config,
            session,
            table,
            mut log,
            audit,
            confinement,
            backend,
            acct_dir,
            check,
            signals,
            child,
            debug,
            mut reference,
            pam,
            isolation,
            layers,
            limits_handed,
        } = self;
        if let Some(Err(e)) = confinement.map(Confinement::apply) {
            log.emit(&Event::new(Severity::Warning, Kind::HardeningIncomplete).text("error", e).in_session(session.id));
        }
        reference.read_mounts();
        let log = super::session_sink(log, audit, session.id);
        let backend = match backend {
            Some(b) => Some(b.start(&config, acct_dir)?),
            None => None,
        };
        let mut supervisor = Supervisor {
            table,
            backend,
            execs: Pipeline::new(&config, reference, &session.user, check.is_some()),
            check,
            listener,
            log,
            signals,
            child,
            child_code: None,
            debug,
            config,
            session,
            pam,
            dirty_since: None,
            isolation,
            layers,
            limits_handed,
        };
        supervisor.write_session_file();
        Ok(supervisor)
    }
}

/// How often, in milliseconds, the kernel's findings are looked at while execs wait for them
/// and no notification comes.
const KERNEL_POLL_MS: u16 = 100;

/// What the loop found ready.
#[derive(Debug, Default)]
struct Ready {
    listener: bool,
    hangup: bool,
    signal: bool,
    log: bool,
    watchdog_gone: bool,
    backend: bool,
}

impl Supervisor {
    /// Makes what a supervisor of `parts` needs that can fail: its signalfd, the system
    /// call table, the authorization backend; and takes what must be taken while the session's
    /// leader still waits (its root and mount table, held open, and its user namespace: a host
    /// goes on, and may chroot or unshare, once its PAM module hears "ready"; the mount table
    /// is read after, in [`Starting::supervise`]). What is left can no longer
    /// refuse the session: [`Starting::supervise`], after "ready". `SIGCHLD` must already be
    /// blocked in the calling thread (see [`super::block_signals`]).
    pub(super) fn prepare(parts: Parts) -> Result<Starting, SetupError> {
        let Parts { listener, config, session, log, audit, confinement, child, debug, acct_dir, check } = parts;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGUSR1);
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        // Faster round trips on 6.6+; older kernels just do without.
        let _ = crate::sys::set_sync_wakeup(listener.as_fd());
        Ok(Starting {
            table: SyscallTable::new()?,
            backend: authz::prepare(&config, &session)?,
            reference: Reference::of(session.leader),
            acct_dir,
            check,
            listener,
            log,
            audit,
            confinement,
            signals,
            child,
            debug,
            config,
            session,
            pam: PamSession::default(),
            isolation: vec![Field::new("isolation", crate::log::Value::Bare("-".into()))],
            layers: Layers::default(),
            limits_handed: Vec::new(),
        })
    }

    /// The session this supervisor serves.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Logs an event of the session.
    pub fn event(&mut self, event: Event) {
        self.log.emit(&event.in_session(self.session.id));
    }

    /// The exec pipeline and what it works with, borrowed apart.
    fn split(&mut self) -> (&mut Pipeline, Ctx<'_>) {
        let backend: Option<&mut dyn Backend> = match &mut self.backend {
            Some(b) => Some(b.as_mut()),
            None => None,
        };
        let ctx = Ctx {
            listener: &self.listener,
            config: &self.config,
            session: &self.session,
            log: self.log.as_mut(),
            backend,
            debug: self.debug,
            check: self.check.as_mut(),
        };
        (&mut self.execs, ctx)
    }

    /// Answers notifications until the last task under the filter is gone.
    pub fn serve(mut self) -> Summary {
        // The lines earlier supervisors left in the spool go now, before the session's start
        // line (a directory read, and a file for each supervisor that left some): not while a
        // PAM module waits for "ready".
        self.log.flush();
        let start = self.start_line();
        self.event(start);
        if let Some(b) = self.backend.as_mut() {
            b.session_started();
        }
        while let Some(ready) = self.wait() {
            if !self.handle(&ready) {
                break;
            }
        }
        self.finish()
    }

    fn start_line(&self) -> Event {
        let s = &self.session;
        Event::new(Severity::Info, Kind::SessionStart)
            .escaped("user", s.user.name.as_bytes())
            .bare("uid", s.user.uid)
            .escaped("service", s.service.as_bytes())
            .field("groups", Value::Quoted(escape_argv(&s.user.groups, usize::MAX).0))
            .escaped("rhost", s.rhost.as_deref().unwrap_or("-").as_bytes())
            .escaped("tty", s.tty.as_deref().unwrap_or("-").as_bytes())
            .bare("leader", s.leader)
            .bare("mode", self.config.mode.as_str())
            .quoted("config", self.config.sources.join(",").as_bytes())
            .bare("verify", if self.check.is_some() { "bpf" } else { "ptrace" })
            .extend(self.isolation.iter().cloned())
            .extend(self.mounts_unknown())
    }

    /// `mounts=unreadable` when the session's mount table could not be read: every exec is
    /// then refused by the foreign-mount guard, and this says why.
    fn mounts_unknown(&self) -> Option<Field> {
        (!self.execs.mounts_known()).then(|| Field::new("mounts", Value::Bare("unreadable".into())))
    }

    /// Waits for something to do. `None` when polling itself fails.
    fn wait(&self) -> Option<Ready> {
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
        ];
        let watchdog_at = self.pam.watchdog.as_ref().map(|w| add(&mut fds, w.as_fd(), PollFlags::POLLIN));
        let log_at = self.log.waiting_fd().map(|fd| add(&mut fds, fd, PollFlags::POLLOUT));
        let backend_fds = self.backend.as_ref().map(|b| b.fds()).unwrap_or_default();
        let backend_at: Vec<usize> = backend_fds.into_iter().map(|fd| add(&mut fds, fd, PollFlags::POLLIN)).collect();
        let backend_timeout = self.backend.as_ref().and_then(|b| b.timeout());
        let timeout = match backend_timeout {
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
            None if self.log.needs_retry() || self.dirty_since.is_some() => PollTimeout::from(500u16),
            None => PollTimeout::NONE,
        };
        // Execs the kernel checks are looked at after each notification, and at this pace
        // while some wait (their lines, a kill, accounting); sooner when their findings were
        // left unread while a server worked.
        let timeout = if self.execs.waiting_in_kernel().next().is_some() {
            let ms = match self.execs.deferred_for() {
                // A turn that asks no server reads them.
                Some(left) => PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO),
                None => PollTimeout::from(KERNEL_POLL_MS),
            };
            if timeout == PollTimeout::NONE || timeout > ms { ms } else { timeout }
        } else {
            timeout
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
        let ev = |i: Option<usize>| i.and_then(|i| fds.get(i)).and_then(PollFd::revents).unwrap_or(PollFlags::empty());
        let listener = ev(Some(0));
        Some(Ready {
            listener: listener.contains(PollFlags::POLLIN),
            hangup: listener.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL),
            signal: ev(Some(1)).contains(PollFlags::POLLIN),
            log: ev(log_at).contains(PollFlags::POLLOUT),
            watchdog_gone: !ev(watchdog_at).is_empty(),
            // Ended processes waiting for their status are looked at on the backend's timer.
            backend: backend_timeout.is_some() || backend_at.iter().any(|i| ev(Some(*i)).contains(PollFlags::POLLIN)),
        })
    }

    /// Handles what is ready. `false` when the session is over.
    fn handle(&mut self, r: &Ready) -> bool {
        if r.backend {
            self.poll_backend();
        }
        if r.watchdog_gone {
            self.pam.watchdog = None;
            self.event(Event::new(Severity::Warning, Kind::WatchdogDied).text(
                "reason",
                "the watchdog process is gone; the supervisor goes on, but its own death would no longer be logged",
            ));
        }
        if self.dirty_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
            self.write_session_file();
        }
        if r.signal {
            // Standard signals do not queue: one read of each clears it; reap() takes every
            // stop.
            while let Ok(Some(info)) = self.signals.read_signal() {
                if info.ssi_signo == Signal::SIGUSR1 as u32 {
                    self.write_session_file();
                } else {
                    self.reap();
                }
            }
        }
        if r.listener {
            match self.listener.recv() {
                Ok(Some(n)) => self.on_notification(&n),
                Ok(None) => {}
                Err(e) => {
                    self.kernel_reports();
                    self.event(Event::new(Severity::Error, Kind::ListenerError).text("error", e));
                    return false;
                }
            }
        }
        // What the kernel found for the execs let run, once the notification that woke us is
        // answered: its caller waits for nothing of this. A line of that notification's own
        // is logged after these (Pipeline::collect); the kernel writes a finding before the
        // next notification of its thread can be sent, and that one reads it first. Left for
        // at most DEFER_MAX when that notification went to the server (defer_findings).
        if !self.execs.defer_findings() {
            self.kernel_reports();
        }
        if r.log || self.log.needs_retry() {
            self.log.flush();
        }
        // Hung up with nothing left to read: the last task is gone.
        !r.hangup || r.listener
    }

    fn kernel_reports(&mut self) {
        let (execs, mut ctx) = self.split();
        execs.collect(&mut ctx);
    }

    fn poll_backend(&mut self) {
        let reports = self.backend.as_mut().map(|b| b.poll()).unwrap_or_default();
        for report in reports {
            match report {
                Report::Answer(a) => {
                    let (execs, mut ctx) = self.split();
                    execs.on_answer(&mut ctx, a);
                }
                Report::Log(e) => self.event(e),
            }
        }
    }

    /// The end of the session: the last stops, the child's status, the backend's last
    /// records, the session-end line, the session file, the log drained.
    fn finish(mut self) -> Summary {
        // Tasks may still be reported after the hangup (our child, in run mode).
        self.reap();
        self.kernel_reports();
        {
            let (execs, mut ctx) = self.split();
            execs.finish(&mut ctx);
        }
        if let (Some(child), None) = (self.child, self.child_code) {
            if let Ok(status) = nix::sys::wait::waitpid(Pid::from_raw(child), None) {
                self.child_code = exit_code(status).or(self.child_code);
            }
        }
        if let Some(b) = self.backend.take() {
            // Accounting records get a bounded time to reach a server.
            let limit = (self.config.tacacs.timeout * 2).min(Duration::from_secs(10));
            for e in b.finish(limit) {
                self.event(e);
            }
        }
        let c = self.execs.counts();
        let mut end = Event::new(Severity::Info, Kind::SessionEnd)
            .bare("allowed", c.allowed)
            .bare("refused", c.refused)
            .bare("killed", c.killed)
            .bare("failed", c.failed);
        if let Some(cg) = &self.pam.cgroup {
            for (name, n) in cg.limit_events() {
                end.push_bare(name, n);
            }
        }
        self.event(end);
        if let Some(dir) = &self.pam.runtime_dir {
            dir.remove(&session_id_text(self.session.id));
        }
        // The cgroup is removed by the watchdog (or the cleanup process of `run`), which keeps
        // the privilege to remove the shared parent directory.
        self.log.drain(Duration::from_secs(2));
        Summary { counts: c, child_code: self.child_code }
    }

    fn on_notification(&mut self, n: &Notification) {
        if self.pam.runtime_dir.is_some() && self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
        match self.table.classify(n.arch, n.nr) {
            Some(kind @ (Notified::Execve | Notified::Execveat)) => {
                if !self.limits_handed.is_empty() {
                    let handed = std::mem::take(&mut self.limits_handed);
                    if let Some(e) = super::isolation::limits_check(&handed, n.tid) {
                        self.kernel_reports();
                        self.event(e);
                    }
                }
                let (execs, mut ctx) = self.split();
                execs.on_exec(&mut ctx, n, kind);
            }
            Some(Notified::Probe) => {
                // Its lines come after those of the execs before it.
                self.kernel_reports();
                self.on_probe(n);
            }
            None => {
                self.kernel_reports();
                // The filter notifies nothing else; refuse rather than guess.
                let _ = self.listener.refuse(n.id, Errno::ENOSYS);
                let e = Event::new(Severity::Error, Kind::UnexpectedNotification)
                    .bare("arch", format!("{:#x}", n.arch))
                    .bare("nr", n.nr)
                    .bare("pid", n.tid);
                self.event(e);
            }
        }
    }

    /// A nested PAM session (su, sudo), the close of the session, or `session-wrapper` asking
    /// which session it is in.
    fn on_probe(&mut self, n: &Notification) {
        match nested::read(&self.listener, n) {
            Probe::Bare => {}
            Probe::Ignored { tgid, uid } => self.event(nested::ignored(tgid, uid)),
            Probe::Closing { service, tgid } => self.on_close(&service, tgid),
            Probe::Nested { nested, tgid } => {
                let reply = nested::reply(&self.config, &self.session, &self.layers, &nested, tgid);
                for note in reply.notes {
                    self.event(note);
                }
                self.event(reply.line);
                match nested::send(&self.listener, n.id, &reply.message) {
                    Ok(()) => return,
                    Err(e) => self.event(e),
                }
                // Without its reply the nested session cannot know what to add: refuse it
                // rather than let it run with less than its own layers.
                let _ = self.listener.refuse(n.id, Errno::EPERM);
                return;
            }
        }
        let _ = self.listener.reply(n.id, self.session.id as i64);
    }

    /// The process that opened the session closes it.
    fn on_close(&mut self, service: &[u8], pid: i32) {
        let c = self.execs.counts();
        let mut line = Event::new(Severity::Info, Kind::SessionClose)
            .escaped("service", service)
            .bare("pid", pid)
            .bare("allowed", c.allowed)
            .bare("refused", c.refused)
            .bare("killed", c.killed);
        if let Some((ended, by)) = nested::end_processes(&self.pam, self.session.leader) {
            line = line.bare("kill_on_close", 1).bare("ended", ended).bare("by", by);
        }
        self.event(line);
    }

    /// Handles every pending ptrace stop and exit.
    fn reap(&mut self) {
        while let Some(stop) = tracer::next_stop() {
            if let Stop::Gone { tid, code } = stop {
                if Some(tid) == self.child {
                    self.child_code = Some(code);
                }
            }
            let (execs, mut ctx) = self.split();
            execs.on_stop(&mut ctx, stop);
        }
    }

    fn session_info(&self) -> super::runtime::SessionInfo {
        let (s, c) = (&self.session, self.execs.counts());
        super::runtime::SessionInfo {
            id: session_id_text(s.id),
            user: s.user.name.clone(),
            service: s.service.clone(),
            tty: s.tty.clone().unwrap_or_else(|| "-".into()),
            rhost: s.rhost.clone().unwrap_or_else(|| "-".into()),
            leader: s.leader,
            supervisor: std::process::id() as i32,
            started: s.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            allowed: c.allowed,
            refused: c.refused,
            killed: c.killed,
            mode: self.config.mode.as_str().into(),
            config: self.config.sources.join(","),
            refreshes: true,
        }
    }

    fn write_session_file(&mut self) {
        self.dirty_since = None;
        let Some(dir) = &self.pam.runtime_dir else { return };
        if let Err(e) = dir.write(&self.session_info()) {
            let line = Event::new(Severity::Warning, Kind::RuntimeDirError)
                .quoted("dir", dir.path().as_os_str().as_encoded_bytes())
                .text("error", e);
            self.event(line);
            // Keep the error from repeating on every decision.
            self.pam.runtime_dir = None;
        }
    }
}

/// Adds `fd` to the poll set; returns its index.
fn add<'a>(fds: &mut Vec<PollFd<'a>>, fd: BorrowedFd<'a>, flags: PollFlags) -> usize {
    fds.push(PollFd::new(fd, flags));
    fds.len() - 1
}

/// The exit code a shell would report for `status`.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}
