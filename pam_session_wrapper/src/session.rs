//! Opening and closing a supervised session.
//!
//! `open`: a process already under a session filter joins that session (it reports itself as
//! nested and starts nothing; a nested su or sudo can only be as supervised as the session it
//! is in). Otherwise the module starts the supervisor, which loads the configuration and says
//! whether this user and service are supervised; if so it sends the filter and the session's
//! isolation layers. The module applies the layers to itself (private directories in a new
//! mount namespace, Landlock), then installs the filter on the calling thread (as root,
//! without `NO_NEW_PRIVS`) and hands its listener over; the session goes on once the
//! supervisor says it holds the listener. Everything the host starts inherits all of it, and
//! a nested session cannot shed any of it: namespaces, Landlock domains, seccomp filters and
//! cgroups are the kernel's to keep.
//!
//! The fail policy (`fail_policy=`) decides every failure before the filter is installed.
//! After that, the host itself is under the filter, so a failure refuses the session whatever
//! the policy: an open policy cannot give a session whose execs have nobody to answer them.

use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use pam_sys::PamItemType;
use session_wrapper_protocol::{
    probe, recv, send, session_id_text, Account, Closing, ExchangeError, FilterProgram, Hello,
    Isolate, Message, Nested, Probe,
};

use crate::args::{self, Args, FailPolicy};
use crate::ffi::{Handle, PamHandle, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING, PAM_SESSION_ERR, PAM_SUCCESS};
use crate::spawn::{self, SpawnError};

/// The name the module's data is stored under.
const DATA_NAME: &std::ffi::CStr = c"pam_session_wrapper";

/// What the module keeps between open and close.
#[derive(Debug)]
struct SessionData {
    session: u64,
    supervisor: u32,
    /// The process that opened the session: only it closes it.
    owner: u32,
}

/// Why a session could not be supervised.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// A security-relevant module argument is wrong.
    #[error("{0}")]
    Args(String),
    /// `PAM_USER` is not set.
    #[error("no PAM_USER")]
    NoUser,
    /// The process is under a session filter whose supervisor is gone.
    #[error("this process is in a supervised session whose supervisor is gone; nothing can run")]
    SupervisorGone,
    /// The probe failed in an unexpected way.
    #[error("probing for a supervisor failed: {0}")]
    Probe(nix::errno::Errno),
    /// The supervisor could not be started.
    #[error("starting the supervisor: {0}")]
    Spawn(#[from] SpawnError),
    /// The supervisor reported a failure (configuration missing or invalid, ...).
    #[error("{0}")]
    Supervisor(String),
    /// Talking to the supervisor failed.
    #[error("supervisor: {0}")]
    Exchange(#[from] ExchangeError),
    /// An isolation layer could not be applied.
    #[error("{0}")]
    Isolation(String),
    /// The filter could not be installed (another listener in the chain, no privilege).
    #[error("installing the seccomp filter: {0}")]
    Filter(std::io::Error),
    /// The filter is installed but the supervisor did not confirm: the session cannot run.
    #[error("the supervisor did not take the listener: {0}")]
    AfterInstall(String),
}

impl ModuleError {
    /// Whether the fail policy may let the session go on unsupervised.
    fn policy_applies(&self) -> bool {
        !matches!(self, ModuleError::Args(_) | ModuleError::SupervisorGone | ModuleError::AfterInstall(_))
    }
}

/// Turns the outcome of `open` into a PAM code, logging why: the one place that maps errors.
pub fn open_result(h: Handle, fail_policy: FailPolicy, r: Result<(), ModuleError>) -> c_int {
    match r {
        Ok(()) => PAM_SUCCESS,
        Err(e) if e.policy_applies() && fail_policy == FailPolicy::Open => {
            h.log(LOG_WARNING, &format!("session NOT supervised: {e} (fail_policy=open)"));
            PAM_SUCCESS
        }
        Err(e) => {
            let why = if e.policy_applies() { " (fail_policy=closed)" } else { "" };
            h.log(LOG_ERR, &format!("session refused: {e}{why}"));
            PAM_SESSION_ERR
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Opens the session. Returns the fail policy in force for [`open_result`].
pub fn open(h: Handle, argv: &[String]) -> (FailPolicy, Result<(), ModuleError>) {
    let a = match args::parse(argv) {
        Ok(a) => a,
        Err(e) => return (FailPolicy::Closed, Err(ModuleError::Args(e))),
    };
    for u in &a.unknown {
        h.log(LOG_WARNING, &format!("ignoring unknown argument {u:?}"));
    }
    (a.fail_policy, open_with(h, &a))
}

fn open_with(h: Handle, a: &Args) -> Result<(), ModuleError> {
    let user = h.item(PamItemType::USER).ok_or(ModuleError::NoUser)?;
    let service = h.item(PamItemType::SERVICE).unwrap_or_else(|| b"unknown".to_vec());
    let rhost = h.item(PamItemType::RHOST);
    let tty = h.item(PamItemType::TTY);
    let ruser = h.item(PamItemType::RUSER);
    let nested = Message::Nested(Nested {
        service: service.clone(),
        user: user.clone(),
        ruser: ruser.clone(),
        tty: tty.clone(),
    })
    .encode();
    match probe(Some(&nested)) {
        Probe::Supervised(id) => {
            h.log(
                LOG_INFO,
                &format!(
                    "already supervised: {} for {} joins session {}",
                    text(&service),
                    text(&user),
                    session_id_text(id)
                ),
            );
            return Ok(());
        }
        Probe::Reply(fd) => return join_nested(h, &service, &user, &fd),
        Probe::SupervisorGone => return Err(ModuleError::SupervisorGone),
        Probe::Unexpected(e) => return Err(ModuleError::Probe(nix::errno::Errno::from_raw(e))),
        Probe::NotSupervised => {}
    }
    let sock = spawn::start(&a.supervisor)?;
    // The kernel's audit status, asked here while the supervisor is still being loaded; the
    // socket its reply comes to goes with the hello (and is closed here), and the supervisor
    // reads the reply when its configuration wants it (`audit = "auto"`). Asked by the
    // supervisor, it was on the open's path (docs/BENCHMARKS.md, twelfth pass).
    // Only root may ask (a user's host would only be refused; its supervisor cannot ask).
    let audit = nix::unistd::geteuid().is_root().then(session_wrapper_protocol::audit::Question::ask).flatten();
    // Looked up here while the supervisor is still being loaded, where the host's NSS modules
    // are loaded already (session_wrapper_protocol::account). Without it (a name that is not
    // UTF-8, an NSS failure), the supervisor looks the user up itself and says what failed.
    let account = std::str::from_utf8(&user).ok().and_then(|name| Account::lookup(name).ok().flatten());
    let mut hello = Message::Hello(Hello {
        user: user.clone(),
        service: service.clone(),
        rhost,
        tty,
        ruser,
        config: a.config.as_ref().map(|c| c.as_bytes().to_vec()),
        leader_pid: std::process::id(),
        debug: a.debug,
        kill_on_close: a.kill_on_close,
        account,
        waits_ms: u32::try_from(a.timeout.as_millis()).ok(),
    });
    // An account of thousands of groups may not fit in one message: the supervisor then
    // looks the user up itself, as without one.
    if hello.encode().len() > session_wrapper_protocol::wire::MAX_MESSAGE {
        if let Message::Hello(h) = &mut hello {
            h.account = None;
        }
    }
    send(sock.as_fd(), &hello, audit.as_ref().map(|q| q.as_fd())).map_err(ExchangeError::Io)?;
    drop(audit);
    match recv(sock.as_fd(), a.timeout)?.0 {
        Message::Skip { reason } => {
            if a.debug {
                h.log(LOG_INFO, &format!("{} for {} not supervised: {reason}", text(&service), text(&user)));
            }
            Ok(())
        }
        Message::Failed { reason } => Err(ModuleError::Supervisor(reason)),
        Message::Supervise { session, pid, filter, isolate } => {
            if let Err(why) = apply_isolation(h, &isolate) {
                let _ = send(sock.as_fd(), &Message::Failed { reason: why.clone() }, None);
                return Err(ModuleError::Isolation(why));
            }
            install(h, a, &sock, session, pid, &filter)?;
            if a.debug {
                h.log(LOG_INFO, &format!("session {} supervised by pid {pid}", session_id_text(session)));
            }
            Ok(())
        }
        other => Err(ModuleError::Supervisor(format!("unexpected message {other:?}"))),
    }
}

/// A nested session (su or sudo inside a supervised one) joins the session it is in, and adds
/// the restrictions of its own isolation blocks that the session lacks: the supervisor's
/// reply (a sealed memory file it installed in this process) holds them. It can add, never
/// remove: everything the session has is the kernel's to keep.
fn join_nested(h: Handle, service: &[u8], user: &[u8], fd: &OwnedFd) -> Result<(), ModuleError> {
    // As long as the reply (a file), one byte over the limit at most (which decoding
    // refuses): not 64 KiB zeroed in the host for every nested open.
    let limit = session_wrapper_protocol::wire::MAX_MESSAGE + 1;
    let size = nix::sys::stat::fstat(fd).ok().and_then(|st| usize::try_from(st.st_size).ok()).unwrap_or(limit);
    let mut buf = vec![0u8; size.clamp(1, limit)];
    // SAFETY: pread into a buffer of its length, at offset 0.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let n = usize::try_from(n).map_err(|_| ModuleError::Supervisor(format!("reading the nested reply: {}", std::io::Error::last_os_error())))?;
    let (session, filter, isolate) = match Message::decode(&buf[..n]) {
        Ok(Message::Supervise { session, filter, isolate, .. }) => (session, filter, isolate),
        Ok(Message::Failed { reason }) => return Err(ModuleError::Supervisor(reason)),
        Ok(other) => return Err(ModuleError::Supervisor(format!("unexpected nested reply {other:?}"))),
        Err(e) => return Err(ModuleError::Supervisor(format!("nested reply: {e}"))),
    };
    apply_isolation(h, &isolate).map_err(ModuleError::Isolation)?;
    if !filter.is_empty() {
        let program = FilterProgram::from_bytes(&filter).map_err(|e| ModuleError::Supervisor(format!("bad filter program: {e}")))?;
        program.install().map_err(ModuleError::Filter)?;
    }
    let added = if filter.is_empty() && isolate.is_empty() { "" } else { " and adds its own isolation" };
    h.log(
        LOG_INFO,
        &format!("already supervised: {} for {} joins session {}{added}", text(service), text(user), session_id_text(session)),
    );
    Ok(())
}

/// Applies the session's isolation layers to this process before the filter goes on: limits
/// for pam_systemd (which must come after this module in the stack), then the private
/// directories and Landlock layers, which every process of the session inherits.
fn apply_isolation(h: Handle, isolate: &Isolate) -> Result<(), String> {
    for (name, value) in [
        (c"systemd.memory_max", &isolate.systemd_memory_max),
        (c"systemd.tasks_max", &isolate.systemd_tasks_max),
    ] {
        if let Some(v) = value {
            if h.set_string_data(name, v) != PAM_SUCCESS {
                return Err(format!("pam_set_data({}) failed", name.to_string_lossy()));
            }
        }
    }
    match isolate.apply() {
        Ok(notes) => {
            for n in notes {
                h.log(LOG_NOTICE, &n);
            }
            Ok(())
        }
        Err(e) => Err(format!("isolation: {e}")),
    }
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1)
}

fn install(h: Handle, a: &Args, sock: &OwnedFd, session: u64, pid: u32, filter: &[u8]) -> Result<(), ModuleError> {
    let refuse = |why: String| {
        let _ = send(sock.as_fd(), &Message::Failed { reason: why.clone() }, None);
        why
    };
    let program = FilterProgram::from_bytes(filter)
        .map_err(|e| ModuleError::Supervisor(refuse(format!("bad filter program: {e}"))))?;
    let listener = if thread_count() > 1 {
        program.install_with_listener_all_threads()
    } else {
        program.install_with_listener()
    };
    let listener = listener.map_err(|e| {
        refuse(format!("the seccomp filter could not be installed: {e}"));
        ModuleError::Filter(e)
    })?;
    // From here the host runs under the filter: failures refuse the session.
    let after = |e: String| ModuleError::AfterInstall(e);
    send(sock.as_fd(), &Message::Listener, Some(listener.as_fd())).map_err(|e| after(e.to_string()))?;
    drop(listener);
    match recv(sock.as_fd(), a.timeout).map_err(|e| after(e.to_string()))?.0 {
        Message::Ready => {}
        Message::Failed { reason } => return Err(after(reason)),
        other => return Err(after(format!("unexpected message {other:?}"))),
    }
    let data = Box::into_raw(Box::new(SessionData { session, supervisor: pid, owner: std::process::id() }));
    // SAFETY: `cleanup` frees exactly this Box.
    let r = unsafe { h.set_data(DATA_NAME, data.cast::<c_void>(), cleanup) };
    if r != PAM_SUCCESS {
        // SAFETY: PAM did not take ownership; free it here.
        drop(unsafe { Box::from_raw(data) });
        h.log(LOG_WARNING, "pam_set_data failed: the close of this session will not be recorded");
    }
    Ok(())
}

/// Frees the module data. PAM calls it in every process that ends the handle, forked children
/// included (then with `PAM_DATA_SILENT`); it never does anything but free memory.
extern "C" fn cleanup(_pamh: *mut PamHandle, data: *mut c_void, _status: c_int) {
    if !data.is_null() {
        // SAFETY: `data` is the Box set in `install`, freed only here, once per process.
        drop(unsafe { Box::from_raw(data.cast::<SessionData>()) });
    }
}

/// Closes the session: only the process that opened it reports the close to the supervisor;
/// the supervisor goes on until the session's last process is gone (or ends them, with
/// `kill_on_close`).
pub fn close(h: Handle, argv: &[String]) -> c_int {
    let debug = argv.iter().any(|a| a == "debug");
    let Some(p) = h.get_data(DATA_NAME) else { return PAM_SUCCESS };
    // SAFETY: the data under DATA_NAME is always a SessionData set by `install`.
    let data = unsafe { &*p.cast::<SessionData>() };
    if data.owner != std::process::id() {
        // A forked child of the host (sshd's session child): not ours to close.
        return PAM_SUCCESS;
    }
    let service = h.item(PamItemType::SERVICE).unwrap_or_default();
    let closing = Message::Closing(Closing { service }).encode();
    match probe(Some(&closing)) {
        Probe::Supervised(id) if id == data.session => {
            if debug {
                h.log(LOG_INFO, &format!("session {} closing", session_id_text(id)));
            }
        }
        Probe::SupervisorGone => h.log(
            LOG_ERR,
            &format!(
                "session {}: the supervisor (pid {}) is gone; the session could not run programs",
                session_id_text(data.session),
                data.supervisor
            ),
        ),
        other => h.log(LOG_NOTICE, &format!("closing session {}: unexpected probe answer {other:?}", session_id_text(data.session))),
    }
    PAM_SUCCESS
}
