//! One command under a supervisor, without PAM: `session-wrapper run`.
//!
//! The process forks. The child applies the session's isolation to itself (private
//! directories, Landlock), installs the session filter (as root, without
//! `NO_NEW_PRIVS`; as another user, with it, since the kernel requires one or the other),
//! passes the listener to the parent over a socketpair, waits for the parent to be ready,
//! drops to the target user (supplementary groups, gid, uid) and execs the command. That exec
//! is the first one the parent answers. Any failure on the way (filter refused, bad uid,
//! missing command) is written to a close-on-exec pipe as a stage and an errno, so the parent
//! reports it at once; a successful exec closes the pipe.
//!
//! The parent is the supervisor and a child subreaper: descendants that outlive the command
//! are reparented to it, stay supervised, and are reaped; it exits with the command's status
//! once the last of them is gone. It moves the child into the session's cgroups (resource
//! limits) before letting it go on; a small cleanup process removes them after the
//! supervisor has exited, since the confined supervisor may not.

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;
use session_wrapper_config::{Config, FailPolicy, LogSettings};
use session_wrapper_protocol::{self as protocol, Message};

use super::isolation::PlanError;
use super::{PamSession, Prepared, PrepareError, Session, SetupError, Start};
use crate::log::syslog::Syslog;
use crate::log::{Event, Kind, LogSink, Severity};
use crate::sys::users::LoginUser;

/// What to run and as whom.
#[derive(Debug)]
pub struct CommandOptions {
    /// The policy.
    pub config: Config,
    /// The user the command runs as, and the authorization identity.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// The service name rules see.
    pub service: String,
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// What happens when the supervisor cannot start (the filter is refused): `open` runs the
    /// command unsupervised with a warning, `closed` does not run it.
    pub fail_policy: FailPolicy,
    /// Log debug lines.
    pub debug: bool,
}

/// Why the command did not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Nothing to run.
    #[error("no command given")]
    NoCommand,
    /// An argument or environment entry cannot be passed to `execve`.
    #[error("argument contains a NUL byte")]
    Nul,
    /// Another identity was asked for without root.
    #[error("running as uid {uid} gid {gid} needs root (this process is uid {current})")]
    NeedsRoot {
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
        /// This process's uid.
        current: u32,
    },
    /// The user database could not be read.
    #[error("looking up the user: {0}")]
    Lookup(std::io::Error),
    /// The session cannot be prepared.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The session's cgroups cannot be made.
    #[error(transparent)]
    Cgroup(#[from] PlanError),
    /// The supervisor cannot start.
    #[error("starting the supervisor: {0}")]
    Supervisor(#[from] SetupError),
    /// A system call of the set-up failed.
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    /// The child said something unexpected.
    #[error("unexpected message from the child: {0:?}")]
    Unexpected(Box<Message>),
    /// The child ended before passing the listener, without saying why.
    #[error("the child exited during set-up")]
    ChildExited,
    /// The child failed before its command started.
    #[error("child setup failed: {stage}: {}", detail.as_deref().map_or_else(|| errno.to_string(), str::to_owned))]
    Child {
        /// What the child was doing.
        stage: String,
        /// Why it failed.
        errno: Errno,
        /// A fuller reason, when the child could say more than an errno.
        detail: Option<String>,
        /// Exit code to report (126 or 127, as shells do).
        code: i32,
    },
}

impl CommandError {
    /// The exit code `session-wrapper run` ends with.
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Child { code, .. } => *code,
            _ => 1,
        }
    }
}

/// Stages of the child's set-up, as reported through the error pipe.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Stage {
    NoNewPrivs = 1,
    Isolate = 9,
    Filter = 2,
    SendListener = 3,
    WaitReady = 4,
    Groups = 5,
    Gid = 6,
    Uid = 7,
    Exec = 8,
}

impl Stage {
    const ALL: [Stage; 9] = [
        Stage::NoNewPrivs,
        Stage::Isolate,
        Stage::Filter,
        Stage::SendListener,
        Stage::WaitReady,
        Stage::Groups,
        Stage::Gid,
        Stage::Uid,
        Stage::Exec,
    ];

    fn from_u8(b: u8) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u8 == b)
    }

    fn describe(self, command: &str, uid: u32, gid: u32) -> String {
        match self {
            Stage::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)".into(),
            Stage::Isolate => "applying the isolation layers".into(),
            Stage::Filter => "installing the seccomp filter".into(),
            Stage::SendListener => "passing the listener".into(),
            Stage::WaitReady => "waiting for the supervisor".into(),
            Stage::Groups => "setgroups".into(),
            Stage::Gid => format!("setgid({gid})"),
            Stage::Uid => format!("setuid({uid})"),
            Stage::Exec => format!("execve {command}"),
        }
    }

    /// The exit code of a child that failed here (as shells do: 127 for a missing command).
    fn code(self, errno: Errno) -> i32 {
        if matches!(self, Stage::Exec) && errno == Errno::ENOENT {
            127
        } else {
            126
        }
    }
}

/// Reports a failed stage with a message (at most 1 KiB of it), and ends the child.
/// Async-signal-safe.
fn report(pipe: &OwnedFd, stage: Stage, errno: Errno, detail: &str) -> ! {
    let mut buf = [0u8; 5 + 1024];
    buf[0] = stage as u8;
    buf[1..5].copy_from_slice(&(errno as i32).to_le_bytes());
    let n = detail.len().min(1024);
    buf[5..5 + n].copy_from_slice(&detail.as_bytes()[..n]);
    // SAFETY: write and _exit are async-signal-safe; `buf` is valid for 5 + n bytes.
    unsafe {
        libc::write(pipe.as_raw_fd(), buf.as_ptr().cast(), 5 + n);
        libc::_exit(stage.code(errno))
    }
}

fn cstring(s: &[u8]) -> Result<CString, CommandError> {
    CString::new(s).map_err(|_| CommandError::Nul)
}

/// Finds `name` on `PATH` the way a shell would, if it has no slash.
fn find_program(name: &OsString) -> OsString {
    if name.as_bytes().contains(&b'/') {
        return name.clone();
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if let Ok(m) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return candidate.into_os_string();
            }
        }
    }
    name.clone()
}

/// The user the command runs as: the looked-up user with the gid asked for, or one made of
/// the ids alone.
fn identity(opts: &CommandOptions) -> Result<LoginUser, CommandError> {
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if (opts.uid != uid || opts.gid != gid) && !crate::run_as_root() {
        return Err(CommandError::NeedsRoot { uid: opts.uid, gid: opts.gid, current: uid });
    }
    match crate::sys::users::lookup(&opts.user) {
        Ok(Some(u)) if u.uid == opts.uid => Ok(LoginUser { gid: opts.gid, ..u }),
        Ok(_) => Ok(LoginUser {
            name: opts.user.clone(),
            uid: opts.uid,
            gid: opts.gid,
            gids: vec![opts.gid],
            groups: vec![format!("#{}", opts.gid)],
            uid_name: None,
        }),
        Err(e) => Err(CommandError::Lookup(e)),
    }
}

/// Everything the child needs, made before the fork: it allocates nothing after.
struct ChildPlan {
    program: OsString,
    path: CString,
    /// Kept alive for the pointer arrays.
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Change identity to (uid, gid, gids) before the exec.
    identity: Option<(u32, u32, Vec<libc::gid_t>)>,
    fail_open: bool,
    listener_msg: Vec<u8>,
    failed_msg: Vec<u8>,
}

impl ChildPlan {
    fn new(opts: &CommandOptions, login: &LoginUser) -> Result<Self, CommandError> {
        let first = opts.command.first().ok_or(CommandError::NoCommand)?;
        let program = find_program(first);
        let path = cstring(program.as_bytes())?;
        let argv: Vec<CString> = opts.command.iter().map(|a| cstring(a.as_bytes())).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .collect::<Result<_, _>>()?;
        let pointers = |v: &[CString]| v.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let change = opts.uid != uid || opts.gid != gid;
        Ok(ChildPlan {
            path,
            argv: pointers(&argv),
            envp: pointers(&envp),
            _strings: argv.into_iter().chain(envp).collect(),
            program,
            identity: change.then(|| (opts.uid, opts.gid, login.gids.clone())),
            fail_open: opts.fail_policy == FailPolicy::Open,
            listener_msg: Message::Listener.encode(),
            failed_msg: Message::Failed { reason: "the seccomp filter could not be installed".into() }.encode(),
        })
    }
}

/// The child's side, after the fork: confine itself, hand over the listener, wait, become the
/// user, exec. Never returns.
fn child_main(c: &ChildPlan, isolate: &protocol::Isolate, filter: &protocol::FilterProgram, sock: &OwnedFd, errors: &OwnedFd) -> ! {
    super::reset_signals();
    // Descriptors inherited from whoever started us do not reach the command.
    // SAFETY: marks fds close-on-exec; ours already are.
    unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if !crate::run_as_root() {
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            report(errors, Stage::NoNewPrivs, e, "");
        }
    }
    if let Err(e) = isolate.apply() {
        report(errors, Stage::Isolate, Errno::EPERM, &e.to_string());
    }
    let send = |msg: &[u8], fds: &[std::os::fd::RawFd]| {
        let iov = [std::io::IoSlice::new(msg)];
        let cmsgs = [nix::sys::socket::ControlMessage::ScmRights(fds)];
        let cmsgs = if fds.is_empty() { &cmsgs[..0] } else { &cmsgs[..] };
        nix::sys::socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, nix::sys::socket::MsgFlags::empty(), None)
    };
    match filter.install_with_listener() {
        Ok(listener) => {
            if let Err(e) = send(&c.listener_msg, &[listener.as_raw_fd()]) {
                report(errors, Stage::SendListener, e, "");
            }
        }
        Err(e) => {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
            if !c.fail_open || send(&c.failed_msg, &[]).is_err() {
                report(errors, Stage::Filter, errno, "");
            }
        }
    }
    let mut b = [0u8; 1];
    // SAFETY: read into a 1-byte buffer.
    if unsafe { libc::read(sock.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
        report(errors, Stage::WaitReady, Errno::last(), "");
    }
    if let Some((uid, gid, gids)) = &c.identity {
        // SAFETY: `gids` holds gids.len() valid entries.
        if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
            report(errors, Stage::Groups, Errno::last(), "");
        }
        // SAFETY: plain syscalls with integer arguments.
        if unsafe { libc::setgid(*gid) } != 0 {
            report(errors, Stage::Gid, Errno::last(), "");
        }
        // SAFETY: as above.
        if unsafe { libc::setuid(*uid) } != 0 {
            report(errors, Stage::Uid, Errno::last(), "");
        }
    }
    // SAFETY: the pointer arrays are NULL-terminated and point into live CStrings.
    unsafe { libc::execve(c.path.as_ptr(), c.argv.as_ptr(), c.envp.as_ptr()) };
    report(errors, Stage::Exec, Errno::last(), "")
}

/// The child and the parent's ends of its channels.
struct Child {
    pid: Pid,
    /// The socket the listener comes over, and "go" goes back.
    sock: OwnedFd,
    /// The error pipe (see [`report`]).
    errors: OwnedFd,
}

impl Child {
    fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

/// Forks the child (see [`child_main`]).
fn spawn(c: &ChildPlan, prepared: &Prepared) -> Result<Child, CommandError> {
    let sys = |what| move |e| CommandError::Sys(what, e);
    let (parent_sock, child_sock) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(sys("socketpair"))?;
    let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    super::block_signals().map_err(sys("blocking signals"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("PR_SET_CHILD_SUBREAPER"))?;
    let (isolate, filter) = (&prepared.plan.isolate, &prepared.program);
    // The parent's ends: closed in the child, so that it sees the parent go.
    let mut parent_ends = Some((parent_sock, err_read));
    let run_child = || {
        drop(parent_ends.take());
        child_main(c, isolate, filter, &child_sock, &err_write)
    };
    // SAFETY: this process is single-threaded here; the child makes only async-signal-safe
    // calls (no allocation) except while applying the isolation layers, which is safe because
    // no other thread existed to hold a lock at the fork; it always ends in execve or _exit.
    let pid = unsafe { super::fork_child(run_child) }.map_err(sys("fork"))?;
    let (sock, errors) = parent_ends.ok_or(CommandError::ChildExited)?;
    Ok(Child { pid, sock, errors })
}

/// Runs the command under a supervisor and returns its exit code.
///
/// # Errors
/// [`CommandError`] when the command could not be started.
pub fn supervise_command(opts: CommandOptions) -> Result<i32, CommandError> {
    let login = identity(&opts)?;
    let plan = ChildPlan::new(&opts, &login)?;
    // The child will start in this process's cgroups, so this process tells where limits go.
    let mut prepared = super::prepare(&opts.config, &login, &opts.service, std::process::id() as i32, false)?;
    let child = spawn(&plan, &prepared)?;
    let describe_failure = |errors| child_failure(errors, &plan.program, opts.uid, opts.gid);
    let listener = match protocol::recv(child.sock.as_fd(), Duration::from_secs(10)) {
        Ok((Message::Listener, Some(fd))) => fd,
        Ok((Message::Failed { reason }, _)) if plan.fail_open => {
            unsupervised(&opts, &reason);
            let _ = nix::unistd::write(&child.sock, &[1u8]);
            let code = wait_unsupervised(child.pid)?;
            return describe_failure(child.errors).map_or(Ok(code), Err);
        }
        Ok((other, _)) => {
            child.kill();
            return Err(CommandError::Unexpected(Box::new(other)));
        }
        Err(_) => {
            // The child failed before passing the listener: the pipe says why.
            let _ = nix::sys::wait::waitpid(child.pid, None);
            return Err(describe_failure(child.errors).unwrap_or(CommandError::ChildExited));
        }
    };
    let id = prepared.id;
    let cgroup = prepared.plan.cgroup(&protocol::session_id_text(id), child.pid.as_raw(), false).inspect_err(|_| child.kill())?;
    let cleanup = match &cgroup {
        Some(cg) if cg.owned() => Some(start_cleanup(cg, id, &opts.config.log).map_err(|e| CommandError::Sys("starting the cgroup cleanup", e))?),
        _ => None,
    };
    let session = Session {
        id,
        user: login,
        service: opts.service.clone(),
        rhost: None,
        tty: None,
        leader: child.pid.as_raw(),
        started: SystemTime::now(),
    };
    // As root, keep what a slow syslog cannot take yet in the spool, and confine the
    // supervisor as in a PAM session. Without a syslog socket at all, the lines are written to
    // standard error when the command has ended.
    let start = Start {
        config: opts.config,
        session,
        plan: prepared.plan,
        pam: PamSession { cgroup, ..PamSession::default() },
        child: Some(child.pid.as_raw()),
        debug: opts.debug,
        confined: crate::run_as_root(),
        stderr_fallback: true,
        asked: None,
    };
    let starting = super::confine(start).start(listener)?;
    if nix::unistd::write(&child.sock, &[1u8]).is_err() {
        let _ = nix::sys::signal::kill(child.pid, nix::sys::signal::Signal::SIGKILL);
    }
    drop(child.sock);
    let summary = starting.supervise()?.serve();
    // The cleanup process removes the cgroups once this process has exited.
    drop(cleanup);
    match child_failure(child.errors, &plan.program, opts.uid, opts.gid) {
        Some(err) => Err(err),
        None => Ok(summary.child_code.unwrap_or(1)),
    }
}

/// The filter was refused and the fail policy is open: the command runs unsupervised, loudly.
fn unsupervised(opts: &CommandOptions, reason: &str) {
    eprintln!("session-wrapper: warning: {reason}; fail-policy open: running unsupervised");
    let mut log = Syslog::for_config(&opts.config.log);
    let line = Event::new(Severity::Warning, Kind::Unsupervised)
        .text("reason", reason)
        .bare("fail_policy", "open")
        .escaped("user", opts.user.as_bytes());
    log.emit(&line);
    log.drain(Duration::from_secs(1));
}

/// Forks the process that removes the session's cgroups: it waits until the returned pipe's
/// write end is closed everywhere (the supervisor has exited), then until the cgroups are
/// empty, and removes them.
fn start_cleanup(cg: &super::cgroup::SessionCgroup, id: u64, log_settings: &LogSettings) -> Result<OwnedFd, Errno> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let cleanup = cg.for_cleanup();
    let mut write_end = Some(w);
    let wait_and_remove = || {
        drop(write_end.take());
        // Nothing else of the supervisor's (the listener above all) may stay open here: if
        // the supervisor dies, the session must see its listener gone.
        let keep = r.as_raw_fd() as libc::c_uint;
        // SAFETY: closes descriptors this process does not use; `r` is kept.
        unsafe {
            libc::close_range(3, keep - 1, 0);
            libc::close_range(keep + 1, libc::c_uint::MAX, 0);
        }
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                // SAFETY: replaces stdin, stdout, stderr with /dev/null: whoever reads the
                // command's output must not wait for this helper.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        let _ = nix::sys::prctl::set_name(c"sw-cleanup");
        let _ = super::harden::watchdog();
        let mut b = [0u8; 1];
        while matches!(nix::unistd::read(&r, &mut b), Ok(n) if n > 0) {}
        if let Err(e) = cleanup.remove_when_empty() {
            let mut log = Syslog::for_config(log_settings);
            log.emit(&Event::new(Severity::Warning, Kind::CgroupRemoveFailed).in_session(id).text("error", e));
            log.drain(Duration::from_secs(1));
        }
        0
    };
    // SAFETY: single-threaded here; the child only waits, removes directories and exits.
    unsafe { super::fork_child(wait_and_remove) }?;
    write_end.ok_or(Errno::EBADF)
}

/// Waits for a child that runs without a supervisor (fail-policy open).
fn wait_unsupervised(child: Pid) -> Result<i32, CommandError> {
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(status) => {
                if let Some(code) = super::supervisor::exit_code(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(CommandError::Sys("waitpid", e)),
        }
    }
}

/// Reads the child's error pipe once the child has exec'd or died.
fn child_failure(pipe: OwnedFd, program: &OsString, uid: u32, gid: u32) -> Option<CommandError> {
    let mut f = std::fs::File::from(pipe);
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() || buf.len() < 5 {
        return None;
    }
    let errno = Errno::from_raw(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]));
    let stage = Stage::from_u8(buf[0])?;
    let detail = (buf.len() > 5).then(|| String::from_utf8_lossy(&buf[5..]).into_owned());
    let code = stage.code(errno);
    Some(CommandError::Child { stage: stage.describe(&program.to_string_lossy(), uid, gid), errno, code, detail })
}
