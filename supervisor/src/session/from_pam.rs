//! The supervisor started by the PAM module (`session-wrapper-supervisor --pam`).
//!
//! The module execs the supervisor binary with its socket on fd 3. The supervisor reads what
//! the module knows of the session, loads the configuration, looks up the user, decides the
//! scope, builds the filter; then it splits in two:
//! - the **supervisor** (child) sends the filter, receives the listener, says ready, drops what
//!   it does not need (capabilities, dumpability) and answers execs until the session's last
//!   process is gone;
//! - the **watchdog** (parent) only waits for it. If the supervisor dies of anything but a
//!   normal end, the watchdog logs it (the session can no longer run programs: every exec now
//!   fails) and removes its session file.
//!
//! Everything that goes wrong before the filter is installed is reported to the module, whose
//! fail policy decides; everything is logged.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use session_wrapper_config::{text::escape, ScopeVerdict};
use session_wrapper_protocol::{
    recv, send, session_id_text, Hello, Message, SUPERVISOR_SOCKET_FD,
};

use crate::configfile::{self, DEFAULT_PATH};
use crate::filter::{self, FilterSpec};
use crate::notify::Listener;
use crate::supervisor::{self, PamSession, Session, Supervisor};
use crate::syslog::{Severity, Syslog};

/// How long the supervisor waits for the module's messages.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reports a failure to the module and the log; returns the process exit code.
fn fail(sock: &OwnedFd, log: &mut Syslog, reason: &str) -> i32 {
    let _ = send(sock.as_fd(), &Message::Failed { reason: reason.into() }, None);
    log.log(Severity::LOG_ERR, &format!("event=session-refused-setup reason=\"{}\"", escape(reason.as_bytes())));
    log.drain(Duration::from_secs(1));
    1
}

/// Runs the PAM-mode supervisor; returns the exit code.
pub fn main() -> i32 {
    // SAFETY: fd 3 was set up by the module for us and nothing else in this process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(SUPERVISOR_SOCKET_FD) };
    if !matches!(
        nix::sys::stat::fstat(&sock).map(|s| s.st_mode & libc::S_IFMT),
        Ok(libc::S_IFSOCK)
    ) {
        eprintln!("session-wrapper-supervisor: fd 3 is not the module's socket; this program is started by pam_session_wrapper.so");
        return 2;
    }
    let mut log = Syslog::new("/dev/log");
    let hello = match recv(sock.as_fd(), EXCHANGE_TIMEOUT) {
        Ok((Message::Hello(h), _)) => h,
        Ok((other, _)) => return fail(&sock, &mut log, &format!("unexpected first message {other:?}")),
        Err(e) => return fail(&sock, &mut log, &format!("no session from the module: {e}")),
    };
    let config_path = hello.config.as_deref().map_or_else(|| PathBuf::from(DEFAULT_PATH), |c| PathBuf::from(text(c)));
    let config = match configfile::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            return fail(&sock, &mut log, &format!("configuration {}: {}", config_path.display(), one_line(&e.to_string())))
        }
    };
    // From here on, log where the configuration says.
    log = Syslog::new(&config.log.socket);
    let user_name = text(&hello.user);
    let service = text(&hello.service);
    let user = match crate::users::lookup(&user_name) {
        Ok(Some(u)) => u,
        Ok(None) => return fail(&sock, &mut log, &format!("unknown user {user_name:?}")),
        Err(e) => return fail(&sock, &mut log, &format!("looking up {user_name:?}: {e}")),
    };
    match config.scope.check(&user.name, &user.groups, &service) {
        ScopeVerdict::Supervised => {}
        other => {
            let reason = match other {
                ScopeVerdict::ExemptUser => "exempt user".to_owned(),
                ScopeVerdict::ExemptGroup(g) => format!("member of exempt group {g}"),
                ScopeVerdict::UserNotInScope => "user not in scope".to_owned(),
                ScopeVerdict::ServiceNotInScope => "service not in scope".to_owned(),
                ScopeVerdict::Supervised => unreachable_scope(),
            };
            let _ = send(sock.as_fd(), &Message::Skip { reason: reason.clone() }, None);
            log.log(
                Severity::LOG_INFO,
                &format!(
                    "event=session-not-supervised user={} service={} reason=\"{reason}\"",
                    escape(user.name.as_bytes()),
                    escape(service.as_bytes())
                ),
            );
            log.drain(Duration::from_secs(1));
            return 0;
        }
    }
    let leader = hello.leader_pid as i32;
    let layers = config.layers_for(&user.name, &user.groups, &service);
    let mut plan = match crate::isolation::plan(layers, leader, true) {
        Ok(p) => p,
        Err(e) => return fail(&sock, &mut log, &e),
    };
    let program = match filter::build(&FilterSpec::new(&config, &plan.layers)) {
        Ok(p) => p,
        Err(e) => return fail(&sock, &mut log, &format!("building the filter: {e}")),
    };
    let id = session_wrapper_protocol::session_id_from(crate::sys::random_u64().unwrap_or_else(|_| u64::from(std::process::id())));
    // The leader waits for our answer, so it has started nothing yet: moving it now puts
    // every process of the session in the cgroups. Made before the fork, so that the watchdog
    // knows what to remove. Only when something uses them: limits, or `kill_on_close` for a
    // session without an audit session of its own (which finds its processes as exactly:
    // pam_loginuid gives sshd and login sessions one; su and sudo inherit their caller's).
    // The first move of a process between cgroups after an idle while waits for an RCU grace
    // period (5 to 20 ms here), which a session open should not pay for nothing
    // (docs/BENCHMARKS.md).
    let audit_session = crate::lingering::owned_audit_session(leader);
    let membership = hello.kill_on_close && audit_session.is_none();
    let cgroup = match plan.cgroup(&session_id_text(id), leader, membership) {
        Ok(cg) => cg,
        Err(e) => return fail(&sock, &mut log, &e),
    };
    for w in &plan.warnings {
        log.log(Severity::LOG_WARNING, &format!("session={} {w}", session_id_text(id)));
    }
    let session = Session {
        id,
        user,
        service,
        rhost: hello.rhost.as_deref().map(text),
        tty: hello.tty.as_deref().map(text),
        leader,
        started: SystemTime::now(),
    };
    // The supervisor reports "bye" on `bye_w` before a normal end; the watchdog keeps the write
    // end of `alive` so that the supervisor sees it die.
    let (bye_r, bye_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return fail(&sock, &mut log, &format!("pipe: {e}")),
    };
    let (alive_r, alive_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return fail(&sock, &mut log, &format!("pipe: {e}")),
    };
    if let Err(e) = supervisor::block_signals(&[]) {
        return fail(&sock, &mut log, &format!("signals: {e}"));
    }
    let runtime_dir = PathBuf::from(crate::runtime::DIR);
    let watchdog_pid = std::process::id() as i32;
    // SAFETY: single-threaded here; both sides continue in this program.
    match unsafe { fork() } {
        Err(e) => fail(&sock, &mut log, &format!("fork: {e}")),
        Ok(ForkResult::Parent { child }) => {
            drop(sock);
            drop(bye_w);
            drop(alive_r);
            let cleanup = cgroup.as_ref().map(crate::cgroup::SessionCgroup::for_cleanup);
            drop(cgroup);
            watchdog(child.as_raw(), bye_r, alive_w, &session_id_text(id), &runtime_dir, cleanup, &mut log)
        }
        Ok(ForkResult::Child) => {
            drop(bye_r);
            drop(alive_w);
            let _ = nix::sys::prctl::set_name(c"sw-supervisor");
            let runtime = crate::runtime::RuntimeDir::open(&runtime_dir);
            if let Err(e) = &runtime {
                log.log(
                    Severity::LOG_WARNING,
                    &format!("session={} event=runtime-dir-error dir=\"{}\" error=\"{e}\"", session_id_text(id), runtime_dir.display()),
                );
            }
            let pam = PamSession {
                runtime_dir: runtime.ok(),
                watchdog: Some(alive_r),
                watchdog_pid: Some(watchdog_pid),
                kill_on_close: hello.kill_on_close,
                audit_session,
                cgroup,
            };
            serve(sock, &hello, config, session, program, plan, pam, bye_w, &mut log)
        }
    }
}

fn unreachable_scope() -> String {
    "supervised".to_owned()
}

fn one_line(s: &str) -> String {
    s.lines().collect::<Vec<_>>().join("; ")
}

#[allow(clippy::too_many_arguments)]
fn serve(
    sock: OwnedFd,
    hello: &Hello,
    config: session_wrapper_config::Config,
    session: Session,
    program: session_wrapper_protocol::FilterProgram,
    plan: crate::isolation::Plan,
    pam: PamSession,
    bye: OwnedFd,
    log: &mut Syslog,
) -> i32 {
    let describe = plan.describe(pam.cgroup.as_ref());
    let msg = Message::Supervise {
        session: session.id,
        pid: std::process::id(),
        filter: program.to_bytes(),
        isolate: plan.isolate,
    };
    if send(sock.as_fd(), &msg, None).is_err() {
        return 1;
    }
    let listener = match recv(sock.as_fd(), EXCHANGE_TIMEOUT) {
        Ok((Message::Listener, Some(fd))) => fd,
        Ok((Message::Failed { reason }, _)) => {
            log.log(
                Severity::LOG_ERR,
                &format!("session={} event=session-refused-setup reason=\"{}\"", session_id_text(session.id), escape(reason.as_bytes())),
            );
            log.drain(Duration::from_secs(1));
            let _ = nix::unistd::write(&bye, b"b");
            return 1;
        }
        Ok(_) | Err(_) => {
            let _ = nix::unistd::write(&bye, b"b");
            return 1;
        }
    };
    // Confine ourselves before any thread exists, so that every thread inherits it: files are
    // written only in the runtime directory and the spool.
    let mut pam = pam;
    let spool = crate::spool::SpoolDir::open(Path::new(&config.log.spool_dir));
    let mut spool = match spool {
        Ok(s) => Some(s),
        Err(e) => {
            log.log(
                Severity::LOG_WARNING,
                &format!("session={} event=spool-error dir=\"{}\" error=\"{}\"", session_id_text(session.id), escape(config.log.spool_dir.as_bytes()), escape(e.to_string().as_bytes())),
            );
            None
        }
    };
    let writable = crate::harden::writable_dirs(pam.runtime_dir.as_mut(), spool.as_mut());
    let hardened = crate::harden::supervisor(&writable);
    let sup = match Supervisor::new(Listener::new(listener), config, session, None, hello.debug) {
        Ok(s) => s.with_spool(spool).with_pam(pam).with_isolation(describe, plan.layers),
        Err(e) => {
            let _ = send(sock.as_fd(), &Message::Failed { reason: format!("supervisor setup: {e}") }, None);
            return 1;
        }
    };
    if send(sock.as_fd(), &Message::Ready, None).is_err() {
        return 1;
    }
    drop(sock);
    let mut sup = sup;
    if let Err(e) = hardened {
        sup.event(Severity::LOG_WARNING, &format!("event=hardening-incomplete error=\"{e}\""));
    }
    let _summary = sup.run();
    let _ = nix::unistd::write(&bye, b"b");
    0
}

/// The watchdog: waits for the supervisor; logs and cleans up if it dies abnormally.
fn watchdog(
    child: i32,
    bye: OwnedFd,
    _alive: OwnedFd,
    id: &str,
    runtime_dir: &Path,
    cgroup: Option<crate::cgroup::SessionCgroup>,
    log: &mut Syslog,
) -> i32 {
    let _ = nix::sys::prctl::set_name(c"sw-watchdog");
    if let Err(e) = crate::harden::watchdog() {
        log.log(Severity::LOG_WARNING, &format!("session={id} event=hardening-incomplete process=watchdog error=\"{e}\""));
    }
    let status = loop {
        match waitpid(nix::unistd::Pid::from_raw(child), None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    };
    let mut b = [0u8; 1];
    let said_bye = matches!(nix::unistd::read(&bye, &mut b), Ok(1));
    if !said_bye {
        let how = match status {
            WaitStatus::Signaled(_, sig, _) => format!("killed by {sig:?}"),
            WaitStatus::Exited(_, code) => format!("exited with status {code}"),
            _ => "ended".into(),
        };
        log.log(
            Severity::LOG_CRIT,
            &format!(
                "session={id} event=supervisor-died pid={child} how=\"{how}\" consequence=\"every exec in the session now fails; nothing runs unsupervised\""
            ),
        );
        crate::runtime::remove(runtime_dir, id);
        log.drain(Duration::from_secs(2));
    }
    if let Some(cg) = cgroup {
        remove_cgroup_when_empty(&cg, id, log);
    }
    log.drain(Duration::from_secs(2));
    0
}

/// Removes the session's cgroups once empty. After a normal end they are; after a
/// supervisor's death the session's processes live on, unable to run anything, and the
/// cgroups go once the last of them is gone.
pub fn remove_cgroup_when_empty(cg: &crate::cgroup::SessionCgroup, id: &str, log: &mut Syslog) {
    if !cg.owned() {
        return;
    }
    while cg.populated() {
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Err(e) = cg.remove() {
        log.log(Severity::LOG_WARNING, &format!("session={id} event=cgroup-remove-failed error=\"{e}\""));
    }
}
