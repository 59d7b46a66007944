//! The supervisor: one per session, answering every exec of every process in it.
//!
//! A single thread runs a `poll(2)` loop over the seccomp listener, a signalfd for `SIGCHLD`
//! (ptrace stops and exits arrive that way) and, when lines wait, the syslog socket. It never
//! blocks on one process: reading memory, resolving paths and deciding take microseconds, the
//! check after an exec is a stop handled when it comes, and the deny message is written
//! without blocking. The loop ends when the listener reports `POLLHUP`: the last task under the
//! filter is gone, daemonized descendants included.
//!
//! For each exec: read the path, `argv` and the loader variables of `envp` from the caller's
//! memory; resolve the path to the real file and the `#!` chain behind it; decide with the
//! policy; refuse (errno, message, log line) or let it run under the check of
//! [`crate::tracer`], whose outcome completes the log line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::time::{Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use session_wrapper_config::text::escape;
use session_wrapper_config::{Config, Decision};
use session_wrapper_protocol::{session_id_text, Message};

use crate::exefile::Loaders;
use crate::filter::{Notified, SyscallTable};
use crate::memory::{Limits, Remote};
use crate::message;
use crate::notify::{Listener, Notification};
use crate::procfs;
use crate::resolve;
use crate::syslog::{Severity, Syslog};
use crate::tracer::{self, Stop};
use crate::users::{LoginUser, UidNames};

/// Everything known about a session at its start.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id (48 bits).
    pub id: u64,
    /// The login user: the authorization identity for every command.
    pub user: LoginUser,
    /// The PAM service, or `session-wrapper` for `session-wrapper run`.
    pub service: String,
    /// The client address (`PAM_RHOST`), if any.
    pub rhost: Option<String>,
    /// The terminal at session start (`PAM_TTY`), if any.
    pub tty: Option<String>,
    /// The process that opened the session.
    pub leader: i32,
    /// When the session started.
    pub started: SystemTime,
}

/// What a PAM session adds to a supervisor: its session file, its watchdog, its close.
#[derive(Debug, Default)]
pub struct PamSession {
    /// The runtime directory to keep the session file in.
    pub runtime_dir: Option<crate::runtime::RuntimeDir>,
    /// The read end of a pipe whose writer is the watchdog: `POLLHUP` means it died.
    pub watchdog: Option<std::os::fd::OwnedFd>,
    /// The watchdog's pid (never ended with the session).
    pub watchdog_pid: Option<i32>,
    /// End the session's processes when it closes.
    pub kill_on_close: bool,
    /// The session's own audit session id, if it has one.
    pub audit_session: Option<u32>,
    /// The session's cgroup, if there is one.
    pub cgroup: Option<crate::cgroup::SessionCgroup>,
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

/// How the session ended.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Decisions made.
    pub counts: Counts,
    /// Exit code of the child started by `session-wrapper run`, if any.
    pub child_code: Option<i32>,
}

mod accounting;
mod exec;

/// An allowed exec waiting for its outcome.
#[derive(Debug)]
struct Pending {
    /// Its process (thread group).
    tgid: i32,
    /// The log line without its result.
    line: String,
    /// Its severity.
    severity: Severity,
    /// The image that should load (device, inode).
    image: (u64, u64),
    /// The argument vector it should see.
    argv: Vec<Vec<u8>>,
    /// The exec's own facts, to decide again if what loaded differs.
    target_user: String,
    traced: bool,
    /// The path as asked, for a message if it ends refused.
    asked: Vec<u8>,
    /// The program and its arguments, for accounting.
    cmd: Vec<u8>,
    args: Vec<Vec<u8>>,
    /// The terminal, for accounting.
    tty: Option<String>,
}

/// A verdict after the fail policy and the mode are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
}

/// One session's supervisor.
#[derive(Debug)]
pub struct Supervisor {
    listener: Listener,
    config: Config,
    session: Session,
    table: SyscallTable,
    loaders: Loaders,
    limits: Limits,
    log: Syslog,
    names: UidNames,
    heads: resolve::HeadCache,
    pending: HashMap<i32, Pending>,
    counts: Counts,
    sigchld: SignalFd,
    child: Option<i32>,
    child_code: Option<i32>,
    debug: bool,
    pam: PamSession,
    messenger: message::Messenger,
    /// The TACACS+ backend, when servers are configured.
    tacacs: Option<crate::tacacs::Backend>,
    /// Execs waiting for the backend, by job id.
    authorizing: HashMap<u64, (exec::ExecFacts, Decision)>,
    /// Decided execs waiting for another exec of their process to finish (see
    /// `Supervisor::retry_deferred`).
    deferred: Vec<(exec::ExecFacts, Decision, exec::Authz)>,
    next_job: u64,
    /// TACACS+ answers by command line (`cache-ttl-s`).
    cache: HashMap<Vec<u8>, (exec::Cached, Instant)>,
    /// Commands being accounted.
    acct: accounting::Tracker,
    /// The session file is out of date since this moment.
    dirty_since: Option<Instant>,
    /// What isolation the session has, for the session-start line.
    isolation: String,
    /// The isolation layers the session has (a nested session adds only what they lack).
    layers: session_wrapper_config::Layers,
    /// The session's mount namespace, to check paths seen in others against.
    reference: crate::resolve::Reference,
    /// Finds the links a program is invoked through under another name.
    links: crate::trust::LinkFinder,
    /// The library search path variables checked (none when the guard allows them).
    library_vars: Vec<String>,
}

/// Why a supervisor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// libseccomp could not describe the syscalls.
    #[error(transparent)]
    Filter(#[from] crate::filter::FilterError),
    /// A signalfd could not be made.
    #[error("signalfd: {0}")]
    Signal(#[from] Errno),
    /// The TACACS+ backend could not start (a key or TLS file).
    #[error("TACACS+: {0}")]
    Tacacs(#[from] crate::tacacs::SetupError),
}

impl Supervisor {
    /// A supervisor for `session` answering on `listener`. `SIGCHLD` must already be blocked
    /// in the calling thread (see [`block_signals`]). `child` is the process started by
    /// `session-wrapper run`, whose exit code the summary reports.
    ///
    /// # Errors
    /// [`SetupError`] when the syscall table or the signalfd cannot be made.
    pub fn new(
        listener: Listener,
        config: Config,
        session: Session,
        child: Option<i32>,
        debug: bool,
    ) -> Result<Self, SetupError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        let sigchld = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        // Faster round trips on 6.6+; older kernels just do without.
        let _ = crate::sys::set_sync_wakeup(listener.as_fd());
        let log = Syslog::new(&config.log.socket);
        let reference = crate::resolve::Reference::of(session.leader);
        let links = crate::trust::LinkFinder::new(reference.root());
        let library_vars = if config.policy.guards.library_path == session_wrapper_config::GuardAction::Deny {
            exec::LIBRARY_PATH_VARS.iter().map(|v| (*v).to_owned()).collect()
        } else {
            Vec::new()
        };
        let tacacs = if config.tacacs.servers.is_empty() {
            None
        } else {
            let rhost = session.rhost.as_deref().unwrap_or("");
            Some(crate::tacacs::Backend::start(&config.tacacs, &session.user.name, rhost)?)
        };
        Ok(Supervisor {
            listener,
            table: SyscallTable::new()?,
            loaders: Loaders::discover(),
            limits: Limits::default(),
            log,
            names: UidNames::default(),
            heads: resolve::HeadCache::default(),
            pending: HashMap::new(),
            counts: Counts::default(),
            sigchld,
            child,
            child_code: None,
            debug,
            config,
            session,
            pam: PamSession::default(),
            isolation: "-".into(),
            layers: session_wrapper_config::Layers::default(),
            reference,
            links,
            library_vars,
            messenger: message::Messenger::default(),
            tacacs,
            authorizing: HashMap::new(),
            deferred: Vec::new(),
            next_job: 1,
            cache: HashMap::new(),
            acct: accounting::Tracker::new(),
            dirty_since: None,
        })
    }

    /// Keeps what syslog cannot take in `spool` (see [`crate::syslog`]); without one, lines
    /// nobody can take go to standard error when `stderr_fallback`.
    pub fn with_spool(mut self, spool: Option<crate::spool::SpoolDir>) -> Self {
        let strict = self.config.log_failure == session_wrapper_config::LogFailure::Refuse;
        self.log.set_spool(spool, &session_id_text(self.session.id), strict);
        self
    }

    /// Writes the lines that can be neither delivered nor kept to standard error at the end
    /// (`session-wrapper run` without a spool).
    pub fn with_stderr_fallback(mut self) -> Self {
        self.log.set_stderr_fallback();
        self
    }

    /// Makes this the supervisor of a PAM session: it keeps a session file, watches its
    /// watchdog and handles the close.
    pub fn with_pam(mut self, pam: PamSession) -> Self {
        self.pam = pam;
        self.write_session_file();
        self
    }

    /// Records what isolation the session has (see [`crate::isolation::Plan::describe`]).
    pub fn with_isolation(mut self, describe: String, layers: session_wrapper_config::Layers) -> Self {
        self.isolation = describe;
        self.layers = layers;
        self
    }

    fn session_info(&self) -> crate::runtime::SessionInfo {
        let s = &self.session;
        crate::runtime::SessionInfo {
            id: session_id_text(s.id),
            user: s.user.name.clone(),
            service: s.service.clone(),
            tty: s.tty.clone().unwrap_or_else(|| "-".into()),
            rhost: s.rhost.clone().unwrap_or_else(|| "-".into()),
            leader: s.leader,
            supervisor: std::process::id() as i32,
            started: s.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            allowed: self.counts.allowed,
            refused: self.counts.refused,
            killed: self.counts.killed,
        }
    }

    fn write_session_file(&mut self) {
        self.dirty_since = None;
        let Some(dir) = &self.pam.runtime_dir else { return };
        if let Err(e) = dir.write(&self.session_info()) {
            let line = format!("event=runtime-dir-error dir=\"{}\" error=\"{e}\"", dir.path().display());
            self.event(Severity::LOG_WARNING, &line);
            // Keep the error from repeating on every decision.
            self.pam.runtime_dir = None;
        }
    }

    /// The session this supervisor serves.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Decision counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Logs a line about the session (start, end, nesting, faults) with the session id.
    pub fn event(&mut self, severity: Severity, text: &str) {
        let line = format!("session={} {text}", session_id_text(self.session.id));
        self.log.log(severity, &line);
    }

    /// Answers notifications until the last task under the filter is gone.
    pub fn run(mut self) -> Summary {
        let s = &self.session;
        let start = format!(
            "event=session-start user={} uid={} service={} rhost={} tty={} leader={} mode={} config=\"{}\" {}",
            escape(s.user.name.as_bytes()),
            s.user.uid,
            escape(s.service.as_bytes()),
            escape(s.rhost.as_deref().unwrap_or("-").as_bytes()),
            escape(s.tty.as_deref().unwrap_or("-").as_bytes()),
            s.leader,
            self.config.mode.as_str(),
            escape(self.config.sources.join(",").as_bytes()),
            if self.isolation == "-" { "isolation=-" } else { &self.isolation },
        );
        self.event(Severity::LOG_INFO, &start);
        self.session_started();
        loop {
            let (listener_ready, hangup, sig_ready, log_ready, watchdog_gone, tacacs_ready, acct_ready) = {
                let mut fds = vec![
                    PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.sigchld.as_fd(), PollFlags::POLLIN),
                ];
                let watchdog_at = self.pam.watchdog.as_ref().map(|w| {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                let log_at = self.log.waiting_fd().map(|fd| {
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                    fds.len() - 1
                });
                let tacacs_at = self.tacacs.as_ref().map(|b| {
                    fds.push(PollFd::new(b.wake_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                let acct_at = self.acct.fd().filter(|_| self.tacacs.is_some()).map(|fd| {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    fds.len() - 1
                });
                let timeout = if self.acct.waiting() {
                    PollTimeout::from(100u16)
                } else if self.log.needs_retry() || self.dirty_since.is_some() {
                    PollTimeout::from(500u16)
                } else {
                    PollTimeout::NONE
                };
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => break,
                }
                let ev = |i: Option<usize>| {
                    i.and_then(|i| fds.get(i)).and_then(PollFd::revents).unwrap_or(PollFlags::empty())
                };
                (
                    ev(Some(0)).contains(PollFlags::POLLIN),
                    ev(Some(0)).intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL),
                    ev(Some(1)).contains(PollFlags::POLLIN),
                    ev(log_at).contains(PollFlags::POLLOUT),
                    !ev(watchdog_at).is_empty(),
                    ev(tacacs_at).contains(PollFlags::POLLIN),
                    ev(acct_at).contains(PollFlags::POLLIN),
                )
            };
            if tacacs_ready {
                let events = self.tacacs.as_ref().map(|b| b.events()).unwrap_or_default();
                for e in events {
                    match e {
                        crate::tacacs::Event::Done(d) => self.on_authorized(d),
                        crate::tacacs::Event::Log(sev, text) => self.event(sev, &text),
                    }
                }
            }
            if acct_ready {
                self.on_commands_ended();
            } else if self.acct.waiting() {
                self.check_exited();
            }
            if watchdog_gone {
                self.pam.watchdog = None;
                self.event(
                    Severity::LOG_WARNING,
                    "event=watchdog-died reason=\"the watchdog process is gone; the supervisor goes on, but its own death would no longer be logged\"",
                );
            }
            if self.dirty_since.is_some_and(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                self.write_session_file();
            }
            if sig_ready {
                // Standard signals do not queue: one read clears it; reap() takes every stop.
                let _ = self.sigchld.read_signal();
                self.reap();
                self.retry_deferred();
            }
            if listener_ready {
                match self.listener.recv() {
                    Ok(Some(n)) => self.on_notification(&n),
                    Ok(None) => {}
                    Err(e) => {
                        self.event(Severity::LOG_ERR, &format!("event=listener-error error=\"{e}\""));
                        break;
                    }
                }
            }
            if log_ready || self.log.needs_retry() {
                self.log.flush();
            }
            if hangup && !listener_ready {
                break;
            }
        }
        // Tasks may still be reported after the hangup (our child, in run mode).
        self.reap();
        if self.child.is_some() && self.child_code.is_none() {
            if let Ok(status) = nix::sys::wait::waitpid(self.child.map(Pid::from_raw), None) {
                self.record_child(status);
            }
        }
        self.session_ended();
        if let Some(b) = self.tacacs.take() {
            // Accounting records get a bounded time to reach a server.
            let limit = (self.config.tacacs.timeout * 2).min(std::time::Duration::from_secs(10));
            for e in b.finish(limit) {
                if let crate::tacacs::Event::Log(sev, text) = e {
                    self.event(sev, &text);
                }
            }
        }
        let c = self.counts;
        let mut end = format!(
            "event=session-end allowed={} refused={} killed={} failed={}",
            c.allowed, c.refused, c.killed, c.failed
        );
        if let Some(cg) = &self.pam.cgroup {
            for (name, n) in cg.limit_events() {
                let _ = write!(end, " {name}={n}");
            }
        }
        self.event(Severity::LOG_INFO, &end);
        if let Some(dir) = &self.pam.runtime_dir {
            dir.remove(&session_id_text(self.session.id));
        }
        // The cgroup is removed by the watchdog, which keeps the privilege to remove the
        // shared parent directory.
        self.log.drain(std::time::Duration::from_secs(2));
        Summary { counts: self.counts, child_code: self.child_code }
    }

    fn record_child(&mut self, status: nix::sys::wait::WaitStatus) {
        use nix::sys::wait::WaitStatus;
        self.child_code = match status {
            WaitStatus::Exited(_, c) => Some(c),
            WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
            _ => self.child_code,
        };
    }

    fn on_notification(&mut self, n: &Notification) {
        if self.pam.runtime_dir.is_some() && self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
        match self.table.classify(n.arch, n.nr) {
            Some(kind @ (Notified::Execve | Notified::Execveat)) => self.on_exec(n, kind),
            Some(Notified::Probe) => self.on_probe(n),
            None => {
                // The filter notifies nothing else; refuse rather than guess.
                let _ = self.listener.refuse(n.id, Errno::ENOSYS);
                self.event(
                    Severity::LOG_ERR,
                    &format!("event=unexpected-notification arch={:#x} nr={} pid={}", n.arch, n.nr, n.tid),
                );
            }
        }
    }

    /// A nested PAM session (su, sudo) or `session-wrapper` asking which session it is in.
    fn on_probe(&mut self, n: &Notification) {
        let (ptr, len) = (n.args[2], n.args[3].min(4096) as usize);
        if ptr != 0 && len > 0 {
            let mut buf = vec![0u8; len];
            let read = Remote::new(Pid::from_raw(n.tid)).read(ptr, &mut buf);
            let status = procfs::status(n.tid);
            if self.listener.id_valid(n.id) {
                if let (Ok(()), Ok(st)) = (read, status) {
                    match Message::decode(&buf) {
                        Ok(Message::Nested(nested)) if st.euid == 0 => {
                            let (reply, adds) = self.nested_reply(&nested);
                            let line = format!(
                                "event=nested service={} target={} ruser={} tty={} pid={} adds={adds}",
                                escape(&nested.service),
                                escape(&nested.user),
                                escape(nested.ruser.as_deref().unwrap_or(b"-")),
                                escape(nested.tty.as_deref().unwrap_or(b"-")),
                                st.tgid
                            );
                            self.event(Severity::LOG_INFO, &line);
                            match crate::isolation::reply_fd(&reply) {
                                Ok(fd) => match self.listener.reply_with_fd(n.id, fd.as_fd()) {
                                    Ok(_) => return,
                                    Err(e) => self.event(Severity::LOG_ERR, &format!("event=nested-reply-failed error=\"{e}\"")),
                                },
                                Err(e) => self.event(Severity::LOG_ERR, &format!("event=nested-reply-failed error=\"{e}\"")),
                            }
                            // Without its reply the nested session cannot know what to add:
                            // refuse it rather than let it run with less than its own layers.
                            let _ = self.listener.refuse(n.id, Errno::EPERM);
                            return;
                        }
                        Ok(Message::Closing(c)) if st.euid == 0 => self.on_close(&c.service, st.tgid),
                        Ok(_) | Err(_) => {
                            let line = format!(
                                "event=probe-ignored pid={} uid={} reason=\"record from a non-root process or malformed\"",
                                st.tgid, st.euid
                            );
                            self.event(Severity::LOG_NOTICE, &line);
                        }
                    }
                }
            }
        }
        let _ = self.listener.reply(n.id, self.session.id as i64);
    }

    /// What a nested session must add: its own isolation blocks' restrictions that the
    /// session does not already have. Returns the reply and a word for the log.
    fn nested_reply(&mut self, nested: &session_wrapper_protocol::Nested) -> (Message, String) {
        let service = String::from_utf8_lossy(&nested.service).into_owned();
        let own = self.config.layers_for(&self.session.user.name, &self.session.user.groups, &service);
        let extra = crate::isolation::extra_for_nested(&self.layers, &own);
        let mut adds = extra.names.join(",");
        if extra.has_limits() {
            self.event(
                Severity::LOG_NOTICE,
                &format!(
                    "event=nested-limits-not-applied service={} reason=\"limits are per login session; the session's own hold\"",
                    escape(&nested.service)
                ),
            );
        }
        let filter = if extra.block.is_empty() {
            Ok(Vec::new())
        } else {
            crate::filter::build_blocklist(&extra.block).map(|p| p.to_bytes())
        };
        let reply = match filter {
            Ok(filter) => Message::Supervise {
                session: self.session.id,
                pid: std::process::id(),
                filter,
                isolate: crate::isolation::isolate_of(&extra),
            },
            Err(e) => {
                adds = "failed".into();
                Message::Failed { reason: format!("the nested session's blocklist: {e}") }
            }
        };
        if adds.is_empty() {
            adds = "-".into();
        }
        (reply, adds)
    }

    /// The process that opened the session closes it.
    fn on_close(&mut self, service: &[u8], pid: i32) {
        let c = self.counts;
        let mut line = format!(
            "event=session-close service={} pid={pid} allowed={} refused={} killed={}",
            escape(service),
            c.allowed,
            c.refused,
            c.killed
        );
        if self.pam.kill_on_close {
            let mut exclude = vec![std::process::id() as i32, self.session.leader];
            exclude.extend(self.pam.watchdog_pid);
            let (members, by) = if let Some(cg) = &self.pam.cgroup {
                cg.freeze(true);
                let m: Vec<i32> = cg.members().into_iter().filter(|p| !exclude.contains(p)).collect();
                (m, "cgroup")
            } else if self.pam.audit_session.is_some() {
                (crate::lingering::members(self.session.leader, self.pam.audit_session, &exclude), "audit-session")
            } else {
                (crate::lingering::members(self.session.leader, None, &exclude), "descendants")
            };
            // SIGKILL reaches frozen tasks; SIGTERM waits for the thaw.
            let n = members.len();
            if let Some(cg) = &self.pam.cgroup {
                for p in &members {
                    let _ = nix::sys::signal::kill(Pid::from_raw(*p), nix::sys::signal::Signal::SIGTERM);
                }
                cg.freeze(false);
            }
            crate::lingering::end(&members, std::time::Duration::from_secs(2));
            let _ = write!(line, " kill_on_close=1 ended={n} by={by}");
        }
        self.event(Severity::LOG_INFO, &line);
    }

    /// Handles every pending ptrace stop and exit.
    fn reap(&mut self) {
        while let Some(stop) = tracer::next_stop() {
            match stop {
                Stop::Exec { pid, former } => self.on_exec_stop(pid, former),
                Stop::Returned { tid, errno, signal, group_stop } => {
                    if let Some(p) = self.pending.remove(&tid) {
                        if tracer::is_restart(errno) {
                            // The kernel restarts the exec and notifies again: no line yet.
                            self.counts.allowed = self.counts.allowed.saturating_sub(1);
                        } else {
                            let result = if group_stop {
                                "stopped".to_owned()
                            } else {
                                format!("failed errno={}", Errno::from_raw(errno))
                            };
                            self.log.log(p.severity, &format!("{} result={result}", p.line));
                        }
                    }
                    tracer::detach(tid, signal);
                }
                Stop::Gone { tid, code } => {
                    if let Some(p) = self.pending.remove(&tid) {
                        self.log.log(p.severity, &format!("{} result=died code={code}", p.line));
                    }
                    if Some(tid) == self.child {
                        self.child_code = Some(code);
                    }
                }
            }
        }
    }
}

/// Blocks `SIGCHLD` in the calling thread (the supervisor reads it from a signalfd) and
/// ignores `SIGPIPE` (a closed pipe must not kill the supervisor). Call before forking any
/// child that should not inherit these: children reset them with [`reset_signals`].
///
/// # Errors
/// The errno of `sigprocmask`.
pub fn block_signals(extra: &[Signal]) -> Result<(), Errno> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in extra {
        mask.add(*s);
    }
    mask.thread_block()?;
    // SAFETY: setting SIGPIPE to SIG_IGN installs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }?;
    Ok(())
}

/// In a forked child before exec: every signal back to its default, none blocked, so that
/// nothing of the supervisor's signal set-up reaches the user's command. Async-signal-safe.
pub fn reset_signals() {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler; sigaction is async-signal-safe.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    let _ = SigSet::empty().thread_set_mask();
}
