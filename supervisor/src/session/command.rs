//! `session-wrapper run`: one command under a supervisor, without PAM.
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
use nix::unistd::{fork, ForkResult, Pid};
use session_wrapper_config::{Config, FailPolicy};
use session_wrapper_protocol::{self as protocol, FilterProgram, Message};

use crate::filter::{self, FilterSpec};
use crate::notify::Listener;
use crate::supervisor::{self, Session, Supervisor};
use crate::users::LoginUser;

/// What to run and as whom.
#[derive(Debug)]
pub struct RunOptions {
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
pub enum RunError {
    /// Set-up of the supervisor or of the child failed.
    #[error("{0}")]
    Setup(String),
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
}

/// Makes sure a forked child never returns into the parent's code: dropped on any path out
/// of the child (a panic included), it ends the process.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // SAFETY: _exit ends the forked child immediately, running nothing of the parent's.
        unsafe { libc::_exit(127) }
    }
}

fn report(pipe: &OwnedFd, stage: Stage, errno: Errno) -> ! {
    report_detail(pipe, stage, errno, "")
}

/// Reports a failed stage with a message (at most 1 KiB of it), and ends the child.
fn report_detail(pipe: &OwnedFd, stage: Stage, errno: Errno, detail: &str) -> ! {
    let mut buf = [0u8; 5 + 1024];
    buf[0] = stage as u8;
    buf[1..5].copy_from_slice(&(errno as i32).to_le_bytes());
    let n = detail.len().min(1024);
    buf[5..5 + n].copy_from_slice(&detail.as_bytes()[..n]);
    // SAFETY: write and _exit are async-signal-safe; `buf` is valid for 5 + n bytes.
    unsafe {
        libc::write(pipe.as_raw_fd(), buf.as_ptr().cast(), 5 + n);
        libc::_exit(if matches!(stage, Stage::Exec) && errno == Errno::ENOENT { 127 } else { 126 })
    }
}

fn cstring(s: &[u8]) -> Result<CString, RunError> {
    CString::new(s).map_err(|_| RunError::Setup("argument contains a NUL byte".into()))
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

/// Runs the command under a supervisor and returns its exit code.
///
/// # Errors
/// [`RunError`] when the command could not be started.
pub fn run(opts: RunOptions) -> Result<i32, RunError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| RunError::Setup(format!("{what}: {e}"));
    let Some(program_name) = opts.command.first() else {
        return Err(RunError::Setup("no command given".into()));
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // SAFETY: as above.
    let (cur_uid, cur_gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let change_identity = opts.uid != cur_uid || opts.gid != cur_gid;
    if change_identity && !root {
        return Err(RunError::Setup(format!(
            "running as uid {} gid {} needs root (this process is uid {cur_uid})",
            opts.uid, opts.gid
        )));
    }
    let login = match crate::users::lookup(&opts.user) {
        Ok(Some(u)) if u.uid == opts.uid => LoginUser { gid: opts.gid, ..u },
        Ok(_) => LoginUser {
            name: opts.user.clone(),
            uid: opts.uid,
            gid: opts.gid,
            gids: vec![opts.gid],
            groups: vec![format!("#{}", opts.gid)],
        },
        Err(e) => return Err(setup("looking up the user", &e)),
    };
    let gids: Vec<libc::gid_t> = login.gids.clone();
    let program = find_program(program_name);
    let path = cstring(program.as_bytes())?;
    let argv: Vec<CString> =
        opts.command.iter().map(|a| cstring(a.as_bytes())).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let layers = opts.config.layers_for(&login.name, &login.groups, &opts.service);
    // The child will start in this process's cgroups, so this process tells where limits go.
    let mut plan = crate::isolation::plan(layers, std::process::id() as i32, false).map_err(RunError::Setup)?;
    let program_filter: FilterProgram =
        filter::build(&FilterSpec::new(&opts.config, &plan.layers)).map_err(|e| setup("building the filter", &e))?;
    let isolate = plan.isolate.clone();

    let fail_open = opts.fail_policy == FailPolicy::Open;
    let listener_msg = Message::Listener.encode();
    let failed_msg = Message::Failed { reason: "the seccomp filter could not be installed".into() }.encode();
    let (parent_sock, child_sock) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| setup("socketpair", &e))?;
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| setup("pipe", &e))?;
    supervisor::block_signals(&[]).map_err(|e| setup("blocking signals", &e))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| setup("PR_SET_CHILD_SUBREAPER", &e))?;

    // SAFETY: this process is single-threaded here; the child below makes only
    // async-signal-safe calls (no allocation) except while applying the isolation layers,
    // which is safe because no other thread existed to hold a lock at the fork; it always
    // ends in execve or _exit.
    let child = match unsafe { fork() }.map_err(|e| setup("fork", &e))? {
        ForkResult::Child => {
            let _guard = ExitGuard;
            drop(parent_sock);
            drop(err_read);
            supervisor::reset_signals();
            // Descriptors inherited from whoever started us do not reach the command.
            // SAFETY: marks fds close-on-exec; ours already are.
            unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
            if !root {
                if let Err(e) = nix::sys::prctl::set_no_new_privs() {
                    report(&err_write, Stage::NoNewPrivs, e);
                }
            }
            if let Err(e) = isolate.apply() {
                report_detail(&err_write, Stage::Isolate, Errno::EPERM, &e.to_string());
            }
            let send = |msg: &[u8], fds: &[std::os::fd::RawFd]| {
                let iov = [std::io::IoSlice::new(msg)];
                let cmsgs = [nix::sys::socket::ControlMessage::ScmRights(fds)];
                let cmsgs = if fds.is_empty() { &cmsgs[..0] } else { &cmsgs[..] };
                nix::sys::socket::sendmsg::<()>(
                    child_sock.as_raw_fd(),
                    &iov,
                    cmsgs,
                    nix::sys::socket::MsgFlags::empty(),
                    None,
                )
            };
            match program_filter.install_with_listener() {
                Ok(listener) => {
                    if let Err(e) = send(&listener_msg, &[listener.as_raw_fd()]) {
                        report(&err_write, Stage::SendListener, e);
                    }
                }
                Err(e) => {
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                    if !fail_open || send(&failed_msg, &[]).is_err() {
                        report(&err_write, Stage::Filter, errno);
                    }
                }
            }
            let mut b = [0u8; 1];
            // SAFETY: read into a 1-byte buffer.
            if unsafe { libc::read(child_sock.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
                report(&err_write, Stage::WaitReady, Errno::last());
            }
            drop(child_sock);
            if change_identity {
                // SAFETY: `gids` holds gids.len() valid entries.
                if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
                    report(&err_write, Stage::Groups, Errno::last());
                }
                // SAFETY: plain syscalls with integer arguments.
                if unsafe { libc::setgid(opts.gid) } != 0 {
                    report(&err_write, Stage::Gid, Errno::last());
                }
                // SAFETY: as above.
                if unsafe { libc::setuid(opts.uid) } != 0 {
                    report(&err_write, Stage::Uid, Errno::last());
                }
            }
            // SAFETY: the pointer arrays are NULL-terminated and point into live CStrings.
            unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
            report(&err_write, Stage::Exec, Errno::last());
        }
        ForkResult::Parent { child } => child,
    };
    drop(child_sock);
    drop(err_write);

    let listener = match protocol::recv(parent_sock.as_fd(), Duration::from_secs(10)) {
        Ok((Message::Listener, Some(fd))) => fd,
        Ok((Message::Failed { reason }, _)) if fail_open => {
            eprintln!("session-wrapper: warning: {reason}; fail-policy open: running unsupervised");
            crate::syslog::Syslog::new(&opts.config.log.socket).log(
                crate::syslog::Severity::LOG_WARNING,
                &format!("event=unsupervised reason=\"{reason}\" fail_policy=open user={}", opts.user),
            );
            let _ = nix::unistd::write(&parent_sock, &[1u8]);
            drop(parent_sock);
            return wait_unsupervised(child, err_read, &program, opts.uid, opts.gid);
        }
        Ok((other, _)) => {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(RunError::Setup(format!("unexpected message from the child: {other:?}")));
        }
        Err(_) => {
            // The child failed before passing the listener: the pipe says why.
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(child_failure(err_read, &program, opts.uid, opts.gid)
                .unwrap_or_else(|| RunError::Setup("the child exited during set-up".into())));
        }
    };
    let id = protocol::session_id_from(crate::sys::random_u64().unwrap_or_default());
    let cgroup = match plan.cgroup(&protocol::session_id_text(id), child.as_raw(), false) {
        Ok(cg) => cg,
        Err(e) => {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(RunError::Setup(e));
        }
    };
    let cleanup_pipe = match &cgroup {
        Some(cg) if cg.owned() => Some(start_cleanup(cg, id, &opts.config.log.socket).map_err(|e| setup("starting the cgroup cleanup", &e))?),
        _ => None,
    };
    let describe = plan.describe(cgroup.as_ref());
    let session = Session {
        id,
        user: login,
        service: opts.service.clone(),
        rhost: None,
        tty: None,
        leader: child.as_raw(),
        started: SystemTime::now(),
    };
    // As root, keep what a slow syslog cannot take yet in the spool, and confine the supervisor
    // as in a PAM session (before any thread starts). Without a syslog socket at all, the
    // lines are written to standard error when the command has ended.
    let mut spool = if root { crate::spool::SpoolDir::open(std::path::Path::new(&opts.config.log.spool_dir)).ok() } else { None };
    let hardened = root.then(|| crate::harden::supervisor(&crate::harden::writable_dirs(None, spool.as_mut())));
    let mut sup = Supervisor::new(Listener::new(listener), opts.config, session, Some(child.as_raw()), opts.debug)
        .map_err(|e| setup("starting the supervisor", &e))?
        .with_spool(spool)
        .with_stderr_fallback()
        .with_isolation(describe, plan.layers.clone());
    for w in &plan.warnings {
        sup.event(crate::syslog::Severity::LOG_WARNING, w);
    }
    if cgroup.is_some() {
        sup = sup.with_pam(supervisor::PamSession { cgroup, ..supervisor::PamSession::default() });
    }
    if let Some(Err(e)) = hardened {
        sup.event(crate::syslog::Severity::LOG_WARNING, &format!("event=hardening-incomplete error=\"{e}\""));
    }
    if nix::unistd::write(&parent_sock, &[1u8]).is_err() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    drop(parent_sock);
    let summary = sup.run();
    // The cleanup process removes the cgroups once this process has exited.
    drop(cleanup_pipe);
    if let Some(err) = child_failure(err_read, &program, opts.uid, opts.gid) {
        return Err(err);
    }
    Ok(summary.child_code.unwrap_or(1))
}

/// Forks the process that removes the session's cgroups: it waits until the returned pipe's
/// write end is closed everywhere (the supervisor has exited), then until the cgroups are
/// empty, and removes them.
fn start_cleanup(cg: &crate::cgroup::SessionCgroup, id: u64, log_socket: &str) -> Result<OwnedFd, Errno> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let cleanup = cg.for_cleanup();
    // SAFETY: single-threaded here; the child only waits, removes directories and exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let _guard = ExitGuard;
            drop(w);
            // Nothing else of the supervisor's (the listener above all) may stay open here:
            // if the supervisor dies, the session must see its listener gone.
            let keep = r.as_raw_fd() as libc::c_uint;
            // SAFETY: closes descriptors this process does not use; `r` is kept.
            unsafe {
                libc::close_range(3, keep - 1, 0);
                libc::close_range(keep + 1, libc::c_uint::MAX, 0);
            }
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    // SAFETY: replaces stdin, stdout, stderr with /dev/null: whoever reads
                    // the command's output must not wait for this helper.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            let _ = nix::sys::prctl::set_name(c"sw-cleanup");
            let _ = crate::harden::watchdog();
            let mut b = [0u8; 1];
            while matches!(nix::unistd::read(&r, &mut b), Ok(n) if n > 0) {}
            let mut log = crate::syslog::Syslog::new(log_socket);
            crate::pam::remove_cgroup_when_empty(&cleanup, &protocol::session_id_text(id), &mut log);
            log.drain(Duration::from_secs(1));
            // SAFETY: ends this helper without running the parent's code.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { .. } => Ok(w),
    }
}

/// Waits for a child that runs without a supervisor (fail-policy open).
fn wait_unsupervised(
    child: Pid,
    err_read: OwnedFd,
    program: &OsString,
    uid: u32,
    gid: u32,
) -> Result<i32, RunError> {
    use nix::sys::wait::WaitStatus;
    let code = loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(RunError::Setup(format!("waitpid: {e}"))),
        }
    };
    match child_failure(err_read, program, uid, gid) {
        Some(e) => Err(e),
        None => Ok(code),
    }
}

/// Reads the child's error pipe once the child has exec'd or died.
fn child_failure(pipe: OwnedFd, program: &OsString, uid: u32, gid: u32) -> Option<RunError> {
    let mut f = std::fs::File::from(pipe);
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() || buf.len() < 5 {
        return None;
    }
    let errno = Errno::from_raw(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]));
    let stage = Stage::from_u8(buf[0])?;
    let code = if matches!(stage, Stage::Exec) && errno == Errno::ENOENT { 127 } else { 126 };
    let detail = (buf.len() > 5).then(|| String::from_utf8_lossy(&buf[5..]).into_owned());
    Some(RunError::Child { stage: stage.describe(&program.to_string_lossy(), uid, gid), errno, code, detail })
}

impl RunError {
    /// The exit code `session-wrapper run` ends with.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Setup(_) => 1,
            RunError::Child { code, .. } => *code,
        }
    }
}
