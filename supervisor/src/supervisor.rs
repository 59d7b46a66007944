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
use session_wrapper_config::text::{escape, escape_argv};
use session_wrapper_config::{
    Action, Config, DecidedBy, Decision, ExeKind, FailPolicy, Guard, Mode, Request,
};
use session_wrapper_protocol::{session_id_text, Message};

use crate::decide::{self, Subject};
use crate::exefile::Loaders;
use crate::filter::{Notified, SyscallTable, AUDIT_ARCH_I386};
use crate::memory::{self, Limits, PtrWidth, Remote};
use crate::message;
use crate::notify::{Listener, Notification};
use crate::procfs;
use crate::resolve::{self, Asker, ExecPlan};
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
    pub runtime_dir: Option<std::path::PathBuf>,
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

/// An allowed exec waiting for its outcome.
#[derive(Debug)]
struct Pending {
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
    /// The session file is out of date since this moment.
    dirty_since: Option<Instant>,
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
            messenger: message::Messenger::default(),
            dirty_since: None,
        })
    }

    /// Makes this the supervisor of a PAM session: it keeps a session file, watches its
    /// watchdog and handles the close.
    pub fn with_pam(mut self, pam: PamSession) -> Self {
        self.pam = pam;
        self.write_session_file();
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
        let Some(dir) = self.pam.runtime_dir.clone() else { return };
        if let Err(e) = crate::runtime::write(&dir, &self.session_info()) {
            let line = format!("event=runtime-dir-error dir=\"{}\" error=\"{e}\"", dir.display());
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
            "event=session-start user={} uid={} service={} rhost={} tty={} leader={} mode={} config=\"{}\"",
            escape(s.user.name.as_bytes()),
            s.user.uid,
            escape(s.service.as_bytes()),
            escape(s.rhost.as_deref().unwrap_or("-").as_bytes()),
            escape(s.tty.as_deref().unwrap_or("-").as_bytes()),
            s.leader,
            self.config.mode.as_str(),
            escape(self.config.sources.join(",").as_bytes()),
        );
        self.event(Severity::LOG_INFO, &start);
        loop {
            let (listener_ready, hangup, sig_ready, log_ready, watchdog_gone) = {
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
                let timeout = if self.log.needs_retry() || self.dirty_since.is_some() {
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
                )
            };
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
        let c = self.counts;
        self.event(
            Severity::LOG_INFO,
            &format!(
                "event=session-end allowed={} refused={} killed={} failed={}",
                c.allowed, c.refused, c.killed, c.failed
            ),
        );
        if let Some(dir) = &self.pam.runtime_dir {
            crate::runtime::remove(dir, &session_id_text(self.session.id));
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
                            let line = format!(
                                "event=nested service={} target={} ruser={} tty={} pid={}",
                                escape(&nested.service),
                                escape(&nested.user),
                                escape(nested.ruser.as_deref().unwrap_or(b"-")),
                                escape(nested.tty.as_deref().unwrap_or(b"-")),
                                st.tgid
                            );
                            self.event(Severity::LOG_INFO, &line);
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

    fn on_exec(&mut self, n: &Notification, kind: Notified) {
        let t0 = Instant::now();
        let tid = n.tid;
        let is32 = n.arch == AUDIT_ARCH_I386;
        let a = |i: usize| if is32 { n.args[i] & 0xffff_ffff } else { n.args[i] };
        let width = if is32 { PtrWidth::Bits32 } else { PtrWidth::Bits64 };
        let (dirfd, path_ptr, argv_ptr, envp_ptr, flags) = match kind {
            Notified::Execveat => (Some(a(0) as i32), a(1), a(2), a(3), a(4)),
            _ => (None, a(0), a(1), a(2), 0),
        };
        let Ok((status, pidfd)) = procfs::task(tid) else {
            let _ = self.listener.refuse(n.id, Errno::ESRCH);
            return;
        };
        let mut mem = Remote::new(Pid::from_raw(tid));
        let limits = self.limits;
        let loader_names = &self.config.policy.guards.loader_env;
        let read = memory::read_path(&mut mem, path_ptr, &limits).and_then(|path| {
            let argv = memory::read_argv(&mut mem, argv_ptr, width, &limits)?;
            let env = memory::find_env(&mut mem, envp_ptr, width, loader_names, &limits)?;
            Ok((path, argv, env.map(str::to_owned)))
        });
        drop(mem);
        let (path, mut argv, loader_env) = match read {
            Ok(r) => r,
            Err(e) => {
                if !self.listener.id_valid(n.id) {
                    return;
                }
                self.counts.failed += 1;
                let _ = self.listener.refuse(n.id, e.errno());
                let line = format!(
                    "event=exec-refused pid={} uid={} reason=\"arguments unreadable: {e}\" errno={}",
                    status.tgid,
                    status.euid,
                    e.errno()
                );
                self.event(Severity::LOG_NOTICE, &line);
                return;
            }
        };
        // Since Linux 5.18 an empty argv runs with argv[0] = "".
        if argv.is_empty() {
            argv.push(Vec::new());
        }
        let asker = Asker { tid };
        let cache = &mut self.heads;
        let plan = resolve::resolve(asker, status.tgid, dirfd, &path, flags).and_then(|named| {
            let filename = resolve::kernel_filename(dirfd, &path);
            resolve::plan(asker, status.tgid, named, filename, &argv, cache)
        });
        let cwd = procfs::cwd(tid).unwrap_or_default();
        let tty = procfs::tty(status.tgid).ok().flatten();
        // Everything read so far was read from the right task only if it still waits.
        if !self.listener.id_valid(n.id) {
            return;
        }
        let plan = match plan {
            Ok(p) => p,
            Err(errno) => {
                // The kernel would fail this exec the same way; nothing runs.
                let _ = self.listener.refuse(n.id, errno);
                if self.debug {
                    let line = format!(
                        "event=exec-unresolved pid={} path=\"{}\" errno={errno}",
                        status.tgid,
                        escape(&path)
                    );
                    self.event(Severity::LOG_DEBUG, &line);
                }
                return;
            }
        };
        let target_user = self.names.name(status.euid).to_owned();
        let mut traced = status.tracer != 0;
        let mut decision = self.decide_plan(&plan, &argv, &target_user, loader_env.as_deref(), traced);
        let (mut verdict, mut reason) = self.apply_policy_settings(&decision);
        let enforce = self.config.mode == Mode::Enforce;
        // An allowed exec runs only under our check: attach now. A task traced by someone
        // else cannot be attached, which is how a tracer is noticed.
        let mut attached = false;
        let runs = |v: Verdict| v == Verdict::Allow || !enforce;
        if runs(verdict) && !traced {
            match tracer::seize(tid) {
                Ok(()) => attached = true,
                Err(Errno::ESRCH) => return,
                Err(_) => {
                    traced = true;
                    decision = self.decide_plan(&plan, &argv, &target_user, loader_env.as_deref(), true);
                    (verdict, reason) = self.apply_policy_settings(&decision);
                }
            }
        }
        let facts = DecisionFacts {
            tgid: status.tgid,
            tid,
            ppid: status.ppid,
            euid: status.euid,
            target_user: &target_user,
            cwd: &cwd,
            tty: tty.as_deref(),
            asked: &path,
            plan: &plan,
            argv: &argv,
            decision: &decision,
            reason: reason.as_deref(),
        };
        let mut line = self.decision_line(&facts);
        if verdict == Verdict::Deny && enforce {
            let text = self.user_message(&path, &decision);
            let delivery = match &pidfd {
                Some(p) => self.messenger.deliver_via(p.as_fd(), text.as_bytes()),
                None => self.messenger.deliver(status.tgid, text.as_bytes()),
            };
            let errno = Errno::from_raw(self.config.deny_errno.value);
            let latency = t0.elapsed().as_micros();
            let _ = self.listener.refuse(n.id, errno);
            self.counts.refused += 1;
            let _ = write!(
                line,
                " errno={} message={} latency_us={latency}",
                self.config.deny_errno.name,
                delivery.as_str(),
            );
            self.log.log(Severity::LOG_NOTICE, &line);
            return;
        }
        self.counts.allowed += 1;
        let _ = write!(line, " latency_us={}", t0.elapsed().as_micros());
        // An audit-mode "would deny" stays a notice when its outcome is logged.
        let severity = if verdict == Verdict::Deny { Severity::LOG_NOTICE } else { Severity::LOG_INFO };
        if !attached {
            // Traced by another process and the policy allows that (or audit mode): nothing
            // can check this exec after the fact, which the log says.
            let _ = self.listener.allow(n.id);
            let result = if traced { "unverified-traced" } else { "unverified" };
            self.log.log(Severity::LOG_WARNING, &format!("{line} result={result}"));
            return;
        }
        let _ = self.listener.allow(n.id);
        tracer::interrupt(tid);
        let image = plan.image();
        self.pending.insert(
            tid,
            Pending {
                line,
                severity,
                image: (image.dev, image.ino),
                argv: plan.final_argv,
                target_user,
                traced,
                asked: path,
            },
        );
    }

    fn decide_plan(
        &self,
        plan: &ExecPlan,
        argv: &[Vec<u8>],
        target_user: &str,
        loader_env: Option<&str>,
        traced: bool,
    ) -> Decision {
        let who = Subject {
            user: &self.session.user,
            service: &self.session.service,
            target_user,
            loader_env,
            traced,
        };
        decide::decide_plan(&self.config, &self.loaders, &who, plan, argv).0
    }

    /// Applies `authorize` (no backend yet: the fail policy) and returns the verdict with the
    /// reason when the fail policy decided.
    fn apply_policy_settings(&self, d: &Decision) -> (Verdict, Option<String>) {
        match d.action {
            Action::Allow => (Verdict::Allow, None),
            Action::Deny => (Verdict::Deny, None),
            Action::Authorize => {
                let why = format!(
                    "no authorization backend answered; fail-policy {}",
                    self.config.fail_policy.as_str()
                );
                match self.config.fail_policy {
                    FailPolicy::Open => (Verdict::Allow, Some(why)),
                    FailPolicy::Closed => (Verdict::Deny, Some(why)),
                }
            }
        }
    }

    fn user_message(&self, asked: &[u8], d: &Decision) -> String {
        let what = escape(asked);
        let why = match (&d.message, d.by) {
            (Some(m), _) => escape(m.as_bytes()).replace("\\x20", " "),
            (None, DecidedBy::Guard(g)) => guard_text(g).to_owned(),
            (None, by) => format!(
                "not allowed by policy (rule {})",
                self.config.policy.decider_name(by)
            ),
        };
        format!("session-wrapper: {what}: {why}\n")
    }

    fn decision_line(&self, f: &DecisionFacts<'_>) -> String {
        let (argv_text, cut) = escape_argv(f.argv, self.config.log.argv_max);
        let mut line = format!(
            "session={} user={} uid={} target={} pid={}",
            session_id_text(self.session.id),
            escape(self.session.user.name.as_bytes()),
            f.euid,
            escape(f.target_user.as_bytes()),
            f.tgid,
        );
        if f.tid != f.tgid {
            let _ = write!(line, " tid={}", f.tid);
        }
        let _ = write!(
            line,
            " ppid={} tty={} cwd=\"{}\" path=\"{}\" exe=\"{}\"",
            f.ppid,
            f.tty.unwrap_or("-"),
            escape(f.cwd),
            escape(f.asked),
            escape(&f.plan.named.real_path)
        );
        if !f.plan.interpreters.is_empty() {
            let _ = write!(line, " interpreter=\"{}\"", escape(&f.plan.image().real_path));
        }
        let verdict = match f.decision.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Authorize => match self.config.fail_policy {
                FailPolicy::Open => "allow",
                FailPolicy::Closed => "deny",
            },
        };
        let _ = write!(
            line,
            " argc={} argv=\"{}\"{} decision={} rule={} mode={}",
            f.argv.len(),
            argv_text,
            if cut { " argv_truncated=1" } else { "" },
            verdict,
            self.config.policy.decider_name(f.decision.by),
            self.config.mode.as_str()
        );
        if let Some(r) = f.reason {
            let _ = write!(line, " reason=\"{}\"", escape(r.as_bytes()).replace("\\x20", " "));
        }
        line
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

    /// The exec succeeded: check what really loaded before it runs.
    fn on_exec_stop(&mut self, pid: i32, former: i32) {
        let Some(p) = self.pending.remove(&former).or_else(|| self.pending.remove(&pid)) else {
            tracer::detach(pid, None);
            return;
        };
        let image = procfs::exe_identity(pid);
        let loaded = tracer::loaded_args(pid, &self.config.policy.guards.loader_env, &self.limits);
        let (argv, loader_env) = match loaded {
            Ok((argv, env)) => (Ok(argv), env),
            Err(e) => (Err(e), None),
        };
        let matches = image.as_ref().ok() == Some(&p.image)
            && argv.as_ref().ok() == Some(&p.argv)
            && loader_env.is_none();
        if matches {
            tracer::detach(pid, None);
            self.log.log(p.severity, &format!("{} result=exec", p.line));
            return;
        }
        // What loaded is not what was authorized: decide again on what loaded.
        let exe = procfs::exe_path(pid).unwrap_or_default();
        let argv = argv.unwrap_or_default();
        let kind = if exe.starts_with(b"/memfd:") {
            ExeKind::Memfd
        } else if exe.ends_with(b" (deleted)") {
            ExeKind::Deleted
        } else {
            ExeKind::File
        };
        let (dev, ino) = image.unwrap_or((0, 0));
        let d = self.config.policy.decide(&Request {
            user: &self.session.user.name,
            groups: &self.session.user.groups,
            target_user: &p.target_user,
            service: &self.session.service,
            exe: &exe,
            kind,
            dynamic_loader: self.loaders.contains(dev, ino),
            loader_env: loader_env.as_deref(),
            traced: p.traced,
            argv: &argv,
        });
        let (verdict, reason) = self.apply_policy_settings(&d);
        let (argv_text, _) = escape_argv(&argv, self.config.log.argv_max);
        let detail = format!(
            "verify=mismatch loaded_exe=\"{}\" loaded_argv=\"{argv_text}\" redecision={} redecision_rule={}{}",
            escape(&exe),
            if verdict == Verdict::Allow { "allow" } else { "deny" },
            self.config.policy.decider_name(d.by),
            reason.map(|r| format!(" reason=\"{}\"", escape(r.as_bytes()))).unwrap_or_default()
        );
        if verdict == Verdict::Deny && self.config.mode == Mode::Enforce {
            let text = self.user_message(&p.asked, &d);
            let _ = self.messenger.deliver(pid, text.as_bytes());
            tracer::kill(pid);
            self.counts.allowed = self.counts.allowed.saturating_sub(1);
            self.counts.killed += 1;
            self.log.log(Severity::LOG_WARNING, &format!("{} {detail} result=killed", p.line));
        } else {
            tracer::detach(pid, None);
            self.log.log(Severity::LOG_WARNING, &format!("{} {detail} result=exec", p.line));
        }
    }
}

/// The facts of one exec that go into its log line.
struct DecisionFacts<'a> {
    tgid: i32,
    tid: i32,
    ppid: i32,
    euid: u32,
    target_user: &'a str,
    cwd: &'a [u8],
    tty: Option<&'a str>,
    asked: &'a [u8],
    plan: &'a ExecPlan,
    argv: &'a [Vec<u8>],
    decision: &'a Decision,
    reason: Option<&'a str>,
}

fn guard_text(g: Guard) -> &'static str {
    match g {
        Guard::Memfd => "running an anonymous memory file is not allowed",
        Guard::Deleted => "running a deleted file is not allowed",
        Guard::DynamicLoader => "running the dynamic loader directly is not allowed",
        Guard::LoaderEnv => "LD_PRELOAD/LD_AUDIT-style loader variables are not allowed",
        Guard::Traced => "running programs under a debugger or tracer is not allowed",
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
