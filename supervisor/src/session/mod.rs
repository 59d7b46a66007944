//! One session under a supervisor, from its set-up to its end.
//!
//! Two entry points start one: [`from_pam`] (the PAM module execs
//! `session-wrapper-supervisor`, which forks a supervisor and a watchdog) and [`command`]
//! (`session-wrapper run`: one command under a supervisor, without PAM). Both bring the session
//! up the same way, with the functions of this module:
//! 1. [`prepare`]: the isolation plan ([`isolation`]) and the session filter for the user and
//!    service, and a session id;
//! 2. the entry point installs the filter on the session's first process and receives its
//!    listener (through the module, or from its own child);
//! 3. [`confine`] (which needs no listener, and so runs while the filter is installed): the
//!    log sink with its spool, the supervisor's own confinement begun ([`harden`]); then
//!    [`Confined::start`] with the listener: the authorization backend and whatever else can
//!    fail, and what must be taken while the session's leader waits (its root and mount
//!    table, held open); the entry point tells the session to go on, then
//!    [`Starting::supervise`] ends the confinement and makes the rest (the mount table read,
//!    threads, the exec view's loaders, the session file), and the [`Supervisor`], whose loop
//!    ([`Supervisor::serve`]) answers
//!    every exec until the session's last process is gone.

pub mod cgroup;
pub mod command;
pub mod from_pam;
pub mod harden;
pub mod isolation;
pub mod lingering;
mod nested;
pub mod runtime;
mod supervisor;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{fork, ForkResult, Pid};
use session_wrapper_config::{Config, LogFailure, Verify};
use session_wrapper_protocol::audit::Question;
use session_wrapper_protocol::{session_id_from, session_id_text, FilterProgram};

use crate::log::audit::{AuditLog, Audited, Wanted};
use crate::authz::tacacs::journal::{self, AcctDir};
use crate::log::spool::SpoolDir;
use crate::log::syslog::Syslog;
use crate::log::{Event, Kind, LogSink, Severity};
use crate::sys::filter::{self, FilterError, FilterSpec};
use crate::sys::bpf::{BpfError, ExecCheck, LOADER_DEADLINE};
use crate::sys::notify::Listener;
use crate::sys::users::LoginUser;
use isolation::{Plan, PlanError};
pub use crate::login::Session;
pub use supervisor::{SetupError, Starting, Summary, Supervisor};

/// What a PAM session adds to a supervisor: its session file, its watchdog, its close. A
/// command run without PAM may have a cgroup and nothing else.
#[derive(Debug, Default)]
pub struct PamSession {
    /// The runtime directory to keep the session file in.
    pub runtime_dir: Option<runtime::RuntimeDir>,
    /// The read end of a pipe whose writer is the watchdog: `POLLHUP` means it died.
    pub watchdog: Option<OwnedFd>,
    /// The watchdog's pid (never ended with the session).
    pub watchdog_pid: Option<i32>,
    /// End the session's processes when it closes.
    pub kill_on_close: bool,
    /// The session's own audit session id, if it has one.
    pub audit_session: Option<u32>,
    /// The session's cgroup, if there is one.
    pub cgroup: Option<cgroup::SessionCgroup>,
    /// How long the module waits for each answer (its `timeout=`): the kernel check's loader,
    /// run before the second, gets half of it at most.
    pub module_waits: Option<std::time::Duration>,
}

/// A new session id: 48 random bits. Without `getrandom(2)` (it does not fail on Linux 3.17+
/// once the pool is ready), the time and the pid stand in: unique on the host, not secret.
pub fn new_id() -> u64 {
    let fallback = || {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32)
    };
    session_id_from(crate::sys::random_u64().unwrap_or_else(|_| fallback()))
}

/// What a session needs before its first process is confined.
#[derive(Debug)]
pub struct Prepared {
    /// Its id.
    pub id: u64,
    /// Its isolation.
    pub plan: Plan,
    /// The session filter.
    pub program: FilterProgram,
}

/// Why a session cannot be prepared: the caller's fail policy decides.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A configured isolation layer cannot be enforced.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The session filter cannot be built.
    #[error("building the filter: {0}")]
    Filter(#[from] FilterError),
}

/// Plans the isolation of `user`'s session of `service` led by `leader` (see
/// [`isolation::plan`] for `pam`) and builds its filter.
///
/// # Errors
/// [`PrepareError`] when a layer cannot be enforced or the filter cannot be built.
pub fn prepare(config: &Config, user: &LoginUser, service: &str, leader: i32, pam: bool) -> Result<Prepared, PrepareError> {
    let layers = config.layers_for(&user.name, &user.groups, service);
    let plan = isolation::plan(layers, leader, pam)?;
    let program = filter::build(&FilterSpec::new(config, &plan.layers))?;
    Ok(Prepared { id: new_id(), plan, program })
}

/// What a supervisor starts from, before the session's listener is in hand.
#[derive(Debug)]
pub struct Start {
    /// The policy.
    pub config: Config,
    /// The session.
    pub session: Session,
    /// Its isolation (for the session-start line and nested sessions).
    pub plan: Plan,
    /// What a PAM session adds.
    pub pam: PamSession,
    /// The process started by `session-wrapper run`, whose exit code the summary reports.
    pub child: Option<i32>,
    /// Log debug lines.
    pub debug: bool,
    /// Keep undelivered lines in the spool and confine the supervisor (as root).
    pub confined: bool,
    /// Write the lines nobody can take to standard error at the end (`session-wrapper run`).
    pub stderr_fallback: bool,
    /// The kernel's audit status question, asked by the PAM module while the supervisor was
    /// loading (its socket came with the hello); without it the supervisor asks.
    pub asked: Option<Question>,
}

/// A supervisor with its log, its spool and its own confinement, waiting for the session's
/// listener (see [`confine`]).
#[derive(Debug)]
pub struct Confined {
    config: Config,
    session: Session,
    plan: Plan,
    pam: PamSession,
    child: Option<i32>,
    debug: bool,
    log: Syslog,
    audit: bool,
    check: Option<ExecCheck>,
    acct_dir: Option<AcctDir>,
    confinement: Option<harden::Confinement>,
}

/// The first half of a supervisor's start, which needs no listener: the log sink with its
/// spool, the kernel's exec check, the supervisor's own confinement begun (all but the
/// bounding set and its filter's install, which [`Starting::supervise`] does before any
/// thread exists, so that every thread inherits it all). A PAM session's supervisor does this
/// while the module installs the filter, off the open's critical path (docs/BENCHMARKS.md,
/// sixth and fourteenth passes). The plan's warnings, and whatever did not go as it should,
/// are logged.
pub fn confine(s: Start) -> Confined {
    let Start { config, session, plan, mut pam, child, debug, confined, stderr_fallback, asked } = s;
    // Asked first (by the module, or here), answered before the supervisor gives up the
    // rights to ask (see `AuditLog::ask`); only root can send. The kernel answers from a
    // thread it starts for the purpose, meanwhile.
    let audit = if crate::run_as_root() { AuditLog::ask(config.log.audit, asked) } else { Wanted::Known(false) };
    let mut log = Syslog::for_config(&config.log);
    let in_session = |e: Event| e.in_session(session.id);
    let mut spool = None;
    if confined {
        match SpoolDir::open(Path::new(&config.log.spool_dir)) {
            Ok(dir) => spool = Some(dir),
            Err(e) => {
                let event = Event::new(Severity::Warning, Kind::SpoolError)
                    .quoted("dir", config.log.spool_dir.as_bytes())
                    .quoted("error", e.to_string().as_bytes());
                log.emit(&in_session(event));
            }
        }
    }
    // Accounting records that no server has taken yet outlive the supervisor here.
    let mut acct_dir = None;
    let accounts = config.tacacs.accounting || config.tacacs.session_accounting;
    if confined && !config.tacacs.servers.is_empty() && accounts {
        let path = Path::new(&config.log.spool_dir).join(journal::SUBDIR);
        match AcctDir::open(&path) {
            Ok(dir) => acct_dir = Some(dir),
            Err(e) => {
                let event = Event::new(Severity::Warning, Kind::SpoolError)
                    .quoted("dir", path.as_os_str().as_encoded_bytes())
                    .quoted("error", e.to_string().as_bytes());
                log.emit(&in_session(event));
            }
        }
    }
    let check = connect_check(&config, &mut log, session.id, pam.module_waits);
    let audit = audit.answer();
    let writes = harden::writable_dirs(pam.runtime_dir.as_mut(), spool.as_mut(), acct_dir.as_mut());
    let confinement = confined.then(|| harden::supervisor(writes, audit, check.is_some()));
    let strict = config.log_failure == LogFailure::Refuse;
    log.set_spool(spool, &session_id_text(session.id), strict);
    if stderr_fallback {
        log.set_stderr_fallback();
    }
    for w in &plan.warnings {
        log.emit(&in_session(w.clone()));
    }
    let confinement = match confinement {
        Some(Err(e)) => {
            log.emit(&in_session(Event::new(Severity::Warning, Kind::HardeningIncomplete).text("error", e)));
            None
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    Confined { config, session, plan, pam, child, debug, log, audit, check, acct_dir, confinement }
}

impl Confined {
    /// The second half: the supervisor of the session whose filter's listener is `listener`,
    /// all that can refuse the session (the authorization backend's keys), and what must be
    /// taken while its leader waits; the rest ([`Starting::supervise`]: the end of the
    /// confinement, the mount table read, the threads, the exec view's loaders, in a PAM
    /// session its session file) the caller makes once it has told the session to go on.
    ///
    /// # Errors
    /// [`SetupError`] when the supervisor cannot serve the session.
    pub fn start(self, listener: OwnedFd) -> Result<Starting, SetupError> {
        let Confined { config, session, plan, pam, child, debug, log, audit, check, acct_dir, confinement } = self;
        let isolation = plan.describe(pam.cgroup.as_ref());
        let handed = plan.handed_to_pam_systemd(pam.cgroup.as_ref());
        let parts =
            supervisor::Parts { listener: Listener::new(listener), config, session, log, audit, confinement, child, debug, acct_dir, check };
        Ok(Supervisor::prepare(parts)?.with_pam(pam).with_isolation(isolation, plan.layers).with_limits_check(handed))
    }

    /// The session ends before it started (the module refused it, or went away): what
    /// [`confine`] logged and syslog has not taken yet is sent, or counted as dropped.
    pub fn abandon(mut self) {
        self.log.drain(std::time::Duration::from_secs(1));
    }
}

/// The kernel's exec check, when the configuration wants it and the kernel gives it (done
/// before the supervisor drops the rights to load it). `verify = "bpf"` without it is logged,
/// and so is a loader or pin directory refused as untrusted, in any mode.
fn connect_check(config: &Config, log: &mut Syslog, session: u64, module_waits: Option<std::time::Duration>) -> Option<ExecCheck> {
    if config.verify == Verify::Ptrace {
        return None;
    }
    // Within the module's wait for "ready", which a hung loader would outlast (the module
    // then refuses the session whatever its fail policy: its filter is on): half of it, less
    // the half second a killed loader may take to be reaped, at least 0.2 s.
    let loader_deadline = module_waits.map_or(LOADER_DEADLINE, |w| {
        (w / 2).saturating_sub(std::time::Duration::from_millis(500)).max(std::time::Duration::from_millis(200)).min(LOADER_DEADLINE)
    });
    match ExecCheck::connect(loader_deadline) {
        Ok(c) => Some(c),
        Err(e) => {
            // A loader or pins that someone else could change are named whatever `verify`
            // says; that the kernel has no check for us (or the loader failed), only when it
            // was asked for.
            if config.verify == Verify::Bpf || matches!(e, BpfError::Untrusted { .. }) {
                let event = Event::new(Severity::Warning, Kind::VerifyFallback)
                    .text("error", e)
                    .bare("verify", "ptrace");
                log.emit(&event.in_session(session));
            }
            None
        }
    }
}

/// The session's sink: `log`, with an audit record of every decision when `audit`.
fn session_sink(mut log: Syslog, audit: bool, session: u64) -> Box<dyn LogSink> {
    if !audit {
        return Box::new(log);
    }
    match AuditLog::start() {
        Ok(a) => Box::new(Audited::new(Box::new(log), a, session)),
        Err(e) => {
            log.emit(&Event::new(Severity::Warning, Kind::AuditUnavailable).in_session(session).text("error", e));
            Box::new(log)
        }
    }
}

/// Blocks `SIGCHLD` and `SIGUSR1` in the calling thread (the supervisor reads them from a
/// signalfd) and ignores `SIGPIPE` (a closed pipe must not kill the supervisor). Call before
/// forking any child that should not inherit these: children reset them with
/// [`reset_signals`].
///
/// # Errors
/// The errno of `sigprocmask`.
pub fn block_signals() -> Result<(), Errno> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGUSR1);
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

/// Ends a forked child if it ever leaves its code other than by `_exit` (a panic unwinding):
/// it must never return into the parent's code.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // SAFETY: _exit ends the forked child immediately, running nothing of the parent's.
        unsafe { libc::_exit(127) }
    }
}

/// Forks. The child runs `child` and ends with the code it returns (or 127 if it panics); it
/// never returns into the caller's code. The parent gets the child's pid.
///
/// # Safety
/// The calling process must be single-threaded (no other thread can hold a lock the child
/// would need), and `child` must not rely on anything a fork does not copy.
///
/// # Errors
/// The errno of `fork(2)`.
pub unsafe fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    // SAFETY: the caller guarantees a single-threaded process; the child ends below.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let _guard = ExitGuard;
            let code = child();
            // SAFETY: ends the child without running the parent's code (or its destructors).
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}
