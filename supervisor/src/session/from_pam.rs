//! A session opened through PAM: the entry point of `session-wrapper-supervisor`, which the
//! module execs with its socket on fd 3.
//!
//! The supervisor reads what the module knows of the session (with the user's account, which
//! the module looks up in the host), loads the configuration, decides the scope, prepares
//! the session ([`super::prepare`]); then it splits in two:
//! - the **supervisor** (child) begins its confinement ([`super::confine`]) while the
//!   module installs the filter (which the watchdog sends as soon as the fork returns),
//!   receives the listener, makes what can refuse the session ([`super::Confined::start`]),
//!   says ready, ends its confinement and makes the rest while the host goes on (the mount
//!   table read, threads, the exec view's loaders, the session file:
//!   [`super::Starting::supervise`]) and
//!   answers execs until the session's last process is gone;
//! - the **watchdog** (parent) only waits for it. If the supervisor dies of anything but a
//!   normal end, the watchdog logs it (the session can no longer run programs: every exec now
//!   fails) and removes its session file.
//!
//! Everything that goes wrong before the filter is installed is reported to the module, whose
//! fail policy decides; everything is logged.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use session_wrapper_config::{Config, ScopeVerdict};
use session_wrapper_protocol::audit::Question;
use session_wrapper_protocol::{recv, send, session_id_text, ExchangeError, Hello, Message, SUPERVISOR_SOCKET_FD};

use super::{PamSession, Prepared, PrepareError, Session, Start};
use crate::configfile::{self, LoadError, DEFAULT_PATH};
use crate::log::syslog::Syslog;
use crate::log::{Event, Kind, LogSink, Severity};
use crate::session::cgroup::SessionCgroup;
use crate::session::isolation::PlanError;
use crate::sys::users::LoginUser;

/// How long the supervisor waits for the module's messages.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long it waits for the hello: the module looks the user up (NSS, perhaps a directory
/// service) after it started the supervisor, and before it says hello. As long as the longest
/// `timeout=` of the module; a host that goes away closes the socket at once.
const HELLO_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a session is refused before its filter is installed: told to the module, whose fail
/// policy decides, and logged.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("unexpected first message {0:?}")]
    Unexpected(Box<Message>),
    #[error("no session from the module: {0}")]
    NoHello(ExchangeError),
    #[error("configuration {}: {}", .0.display(), one_line(&.1.to_string()))]
    Config(PathBuf, LoadError),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("looking up {0:?}: {1}")]
    Lookup(String, std::io::Error),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Cgroup(#[from] PlanError),
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn one_line(s: &str) -> String {
    s.lines().collect::<Vec<_>>().join("; ")
}

/// Reports a refusal to the module and the log; returns the process exit code.
fn refuse(sock: &OwnedFd, log: &mut Syslog, reason: &Refusal) -> i32 {
    let reason = reason.to_string();
    let _ = send(sock.as_fd(), &Message::Failed { reason: reason.clone() }, None);
    log.emit(&Event::new(Severity::Error, Kind::SessionRefusedSetup).quoted("reason", reason.as_bytes()));
    log.drain(Duration::from_secs(1));
    1
}

/// What the module asked for, once it is known to be supervised.
struct Asked {
    hello: Hello,
    /// The module's audit status question.
    question: Option<Question>,
    config: Config,
    user: LoginUser,
    service: String,
}

/// Serves the session the PAM module opens; returns the exit code of
/// `session-wrapper-supervisor`.
pub fn serve_pam_session() -> i32 {
    // SAFETY: fd 3 was set up by the module for us and nothing else in this process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(SUPERVISOR_SOCKET_FD) };
    if !matches!(nix::sys::stat::fstat(&sock).map(|s| s.st_mode & libc::S_IFMT), Ok(libc::S_IFSOCK)) {
        eprintln!("session-wrapper-supervisor: fd 3 is not the module's socket; this program is started by pam_session_wrapper.so");
        return 2;
    }
    // A host that opens the session before it changes identity (`su`) runs us with its
    // caller's real ids: that user could signal the supervisor, the watchdog and the loader
    // (the kernel lets a process signal those whose real uid is its own). Root in all of them.
    if nix::unistd::geteuid().is_root() {
        let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
        if let Err(e) = nix::unistd::setresgid(root.0, root.0, root.0).and_then(|()| nix::unistd::setresuid(root.1, root.1, root.1)) {
            eprintln!("session-wrapper-supervisor: setresuid(0): {e}");
            return 2;
        }
    }
    let mut log = Syslog::unconnected("/dev/log");
    let asked = match ask(&sock, &mut log) {
        Ok(Some(a)) => a,
        Ok(None) => return 0,
        Err(e) => return refuse(&sock, &mut log, &e),
    };
    match split(sock, asked, &mut log) {
        Ok(code) => code,
        Err((sock, e)) => refuse(&sock, &mut log, &e),
    }
}

/// Reads the module's hello, the configuration and the user; `None` when the session is not
/// supervised (the module is told to skip it). From the configuration on, `log` goes where it
/// says.
fn ask(sock: &OwnedFd, log: &mut Syslog) -> Result<Option<Asked>, Refusal> {
    let (mut hello, question) = match recv(sock.as_fd(), HELLO_TIMEOUT) {
        // The module's audit status question comes with it, when it could ask.
        Ok((Message::Hello(h), fd)) => (h, fd.and_then(Question::from_fd)),
        Ok((other, _)) => return Err(Refusal::Unexpected(Box::new(other))),
        Err(e) => return Err(Refusal::NoHello(e)),
    };
    let path = hello.config.as_deref().map_or_else(|| PathBuf::from(DEFAULT_PATH), |c| PathBuf::from(text(c)));
    let config = configfile::load(&path).map_err(|e| Refusal::Config(path, e))?;
    *log = Syslog::for_config(&config.log);
    let name = text(&hello.user);
    let service = text(&hello.service);
    // The module's lookup in the host, when it made one (session_wrapper_protocol::account).
    let looked_up = match hello.account.take() {
        Some(account) => Ok(Some(account)),
        None => crate::sys::users::lookup(&name),
    };
    let user = match looked_up {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Refusal::UnknownUser(name)),
        Err(e) => return Err(Refusal::Lookup(name, e)),
    };
    let reason = match config.scope.check(&user.name, &user.groups, &service) {
        ScopeVerdict::Supervised => return Ok(Some(Asked { hello, question, config, user, service })),
        ScopeVerdict::ExemptUser => "exempt user".to_owned(),
        ScopeVerdict::ExemptGroup(g) => format!("member of exempt group {g}"),
        ScopeVerdict::UserNotInScope => "user not in scope".to_owned(),
        ScopeVerdict::ServiceNotInScope => "service not in scope".to_owned(),
    };
    let _ = send(sock.as_fd(), &Message::Skip { reason: reason.clone() }, None);
    let line = Event::new(Severity::Info, Kind::SessionNotSupervised)
        .escaped("user", user.name.as_bytes())
        .escaped("service", service.as_bytes())
        .text("reason", reason);
    log.emit(&line);
    log.drain(Duration::from_secs(1));
    Ok(None)
}

/// Prepares the session and splits into the supervisor (child) and the watchdog (this
/// process). Returns the watchdog's exit code, or the socket back with why the session is
/// refused.
fn split(sock: OwnedFd, asked: Asked, log: &mut Syslog) -> Result<i32, (OwnedFd, Refusal)> {
    let Asked { hello, mut question, config, user, service } = asked;
    let leader = hello.leader_pid as i32;
    let mut prepared = match super::prepare(&config, &user, &service, leader, true) {
        Ok(p) => p,
        Err(e) => return Err((sock, e.into())),
    };
    // The leader waits for our answer, so it has started nothing yet: moving it now puts
    // every process of the session in the cgroups. Made before the fork, so that the watchdog
    // knows what to remove. Only when something uses them: limits, or `kill_on_close` for a
    // session without an audit session of its own (which finds its processes as exactly:
    // pam_loginuid gives sshd and login sessions one; su and sudo inherit their caller's).
    // The first move of a process between cgroups after an idle while waits for an RCU grace
    // period (5 to 20 ms here), which a session open should not pay for nothing
    // (docs/BENCHMARKS.md).
    let audit_session = super::lingering::owned_audit_session(leader);
    let membership = hello.kill_on_close && audit_session.is_none();
    let cgroup = match prepared.plan.cgroup(&session_id_text(prepared.id), leader, membership) {
        Ok(cg) => cg,
        Err(e) => return Err((sock, e.into())),
    };
    let session = Session {
        id: prepared.id,
        user,
        service,
        rhost: hello.rhost.as_deref().map(text),
        tty: hello.tty.as_deref().map(text),
        leader,
        started: SystemTime::now(),
    };
    // The supervisor says "bye" on `bye` before a normal end; the watchdog keeps the write
    // end of `alive` so that the supervisor sees it die.
    let pipes = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).and_then(|bye| Ok((bye, nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)));
    let ((bye_r, bye_w), (alive_r, alive_w)) = match pipes {
        Ok(p) => p,
        Err(e) => return Err((sock, Refusal::Sys("pipe", e))),
    };
    if let Err(e) = super::block_signals() {
        return Err((sock, Refusal::Sys("signals", e)));
    }
    let cleanup = cgroup.as_ref().map(SessionCgroup::for_cleanup);
    let watchdog_pid = std::process::id() as i32;
    let pam = PamSession {
        runtime_dir: None,
        watchdog: Some(alive_r),
        watchdog_pid: Some(watchdog_pid),
        kill_on_close: hello.kill_on_close,
        audit_session,
        cgroup,
        module_waits: hello.waits_ms.map(|ms| Duration::from_millis(u64::from(ms))),
    };
    // What only one side keeps: the module's socket and audit question (the supervisor's),
    // the watchdog's ends of the pipes. Each side takes its own; the other's copies close
    // with the closure.
    let mut module = Some(sock);
    let mut watchdog_ends = Some((bye_r, alive_w));
    let id = prepared.id;
    // The module's next step (isolation, the filter) needs only the supervisor's pid: the
    // watchdog sends it the filter as soon as the fork returns, and the supervisor goes on
    // with its own start meanwhile.
    let (filter, isolate) = (prepared.program.to_bytes(), prepared.plan.isolate.clone());
    // SAFETY: single-threaded here; the child serves the session and exits.
    let forked = unsafe {
        super::fork_child(|| {
            drop(watchdog_ends.take());
            let Some(sock) = module.take() else { return 1 };
            let _ = nix::sys::prctl::set_name(c"sw-supervisor");
            serve(sock, hello.debug, question.take(), config, session, prepared, pam, bye_w, log)
        })
    };
    // The watchdog keeps neither the module's audit question nor its socket.
    drop(question);
    let (Some(sock), Some((bye_r, alive_w))) = (module, watchdog_ends) else { return Ok(1) };
    match forked {
        Ok(child) => {
            // A module that is gone is the supervisor's to find (it waits for the listener).
            let _ = send(sock.as_fd(), &Message::Supervise { session: id, pid: child.as_raw() as u32, filter, isolate }, None);
            drop(sock);
            Ok(watchdog(child.as_raw(), &bye_r, alive_w, id, cleanup, log))
        }
        Err(e) => Err((sock, Refusal::Sys("fork", e))),
    }
}

/// The supervisor's side: the exchange with the module, then the session.
#[allow(clippy::too_many_arguments)]
fn serve(
    sock: OwnedFd,
    debug: bool,
    question: Option<Question>,
    config: Config,
    session: Session,
    prepared: Prepared,
    mut pam: PamSession,
    bye: OwnedFd,
    log: &mut Syslog,
) -> i32 {
    let runtime_dir = Path::new(super::runtime::DIR);
    match super::runtime::RuntimeDir::open(runtime_dir) {
        Ok(dir) => pam.runtime_dir = Some(dir),
        Err(e) => {
            let line = Event::new(Severity::Warning, Kind::RuntimeDirError)
                .quoted("dir", runtime_dir.as_os_str().as_encoded_bytes())
                .text("error", e);
            log.emit(&line.in_session(session.id));
        }
    }
    let Prepared { plan, .. } = prepared;
    let id = session.id;
    let said_bye = || {
        let _ = nix::unistd::write(&bye, b"b");
        1
    };
    // While the module installs the filter: everything that needs no listener.
    let start = Start { config, session, plan, pam, child: None, debug, confined: true, stderr_fallback: false, asked: question };
    let confined = super::confine(start);
    let listener = match recv(sock.as_fd(), EXCHANGE_TIMEOUT) {
        Ok((Message::Listener, Some(fd))) => fd,
        Ok((Message::Failed { reason }, _)) => {
            confined.abandon();
            let line = Event::new(Severity::Error, Kind::SessionRefusedSetup).quoted("reason", reason.as_bytes());
            log.emit(&line.in_session(id));
            log.drain(Duration::from_secs(1));
            return said_bye();
        }
        Ok(_) | Err(_) => {
            confined.abandon();
            return said_bye();
        }
    };
    let starting = match confined.start(listener) {
        Ok(s) => s,
        Err(e) => {
            let _ = send(sock.as_fd(), &Message::Failed { reason: format!("supervisor setup: {e}") }, None);
            return 1;
        }
    };
    // Nothing can refuse the session from here: the module goes on while the rest is made
    // (the session's first exec waits in the kernel until the supervisor serves).
    if send(sock.as_fd(), &Message::Ready, None).is_err() {
        return 1;
    }
    drop(sock);
    // The module was woken as if this process were about to sleep (a socket's wake-up is
    // synchronous), so the scheduler may have queued it on this CPU, behind work that is no
    // longer on the open's path: it goes first.
    let _ = nix::sched::sched_yield();
    let supervisor = match starting.supervise() {
        Ok(s) => s,
        Err(e) => {
            // No "bye": the watchdog says that the session can run no program.
            let line = Event::new(Severity::Error, Kind::SessionRefusedSetup).text("reason", format!("supervisor setup after ready: {e}"));
            log.emit(&line.in_session(id));
            log.drain(Duration::from_secs(1));
            return 1;
        }
    };
    // What the start-up allocated and freed (the configuration's text, the filters' programs,
    // the hello) goes back to the kernel, not kept for the session's life: glibc keeps up to
    // 128 KiB free at the heap's top otherwise. After "ready": not on the open's path.
    // SAFETY: plain call into the allocator, no pointer of ours involved.
    unsafe { libc::malloc_trim(0) };
    let _summary = supervisor.serve();
    let _ = said_bye();
    0
}

/// This process's scheduling policy (static priority 0); a failure leaves it as it was.
fn set_scheduler(policy: libc::c_int) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a system call on this process; `param` lives through it.
    let _ = unsafe { libc::sched_setscheduler(0, policy, &param) };
}

/// The watchdog: waits for the supervisor; logs and cleans up if it dies abnormally.
fn watchdog(child: i32, bye: &OwnedFd, _alive: OwnedFd, id: u64, cgroup: Option<SessionCgroup>, log: &mut Syslog) -> i32 {
    let _ = nix::sys::prctl::set_name(c"sw-watchdog");
    // The supervisor, which the module is waiting for, runs first: the kernel put the new
    // child behind this process on its CPU, and the watchdog's confinement below made it wait
    // 0.2 ms there (docs/BENCHMARKS.md, eleventh pass). In the idle class, the watchdog gets a
    // CPU back only when one has nothing else to do; then it returns to the normal class
    // (before its confinement drops CAP_SYS_NICE, which leaving the idle class takes), so that
    // its lines and clean-up after the supervisor's death never wait behind the session.
    set_scheduler(libc::SCHED_IDLE);
    // SAFETY: no arguments, no effect but on scheduling.
    unsafe { libc::sched_yield() };
    set_scheduler(libc::SCHED_OTHER);
    let mut event = |e: Event| log.emit(&e.in_session(id));
    if let Err(e) = super::harden::watchdog() {
        event(Event::new(Severity::Warning, Kind::HardeningIncomplete).bare("process", "watchdog").text("error", e));
    }
    let status = loop {
        match waitpid(nix::unistd::Pid::from_raw(child), None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    };
    let mut b = [0u8; 1];
    if !matches!(nix::unistd::read(bye, &mut b), Ok(1)) {
        let how = match status {
            WaitStatus::Signaled(_, sig, _) => format!("killed by {sig:?}"),
            WaitStatus::Exited(_, code) => format!("exited with status {code}"),
            _ => "ended".into(),
        };
        event(
            Event::new(Severity::Critical, Kind::SupervisorDied)
                .bare("pid", child)
                .text("how", how)
                .text("consequence", "every exec in the session now fails; nothing runs unsupervised"),
        );
        super::runtime::remove(Path::new(super::runtime::DIR), &session_id_text(id));
        log.drain(Duration::from_secs(2));
    }
    if let Some(cg) = cgroup {
        if let Err(e) = cg.remove_when_empty() {
            log.emit(&Event::new(Severity::Warning, Kind::CgroupRemoveFailed).in_session(id).text("error", e));
        }
    }
    log.drain(Duration::from_secs(2));
    0
}
