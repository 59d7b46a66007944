//! Starting the supervisor from inside the host process (sshd, su, sudo, login).
//!
//! The host starts a child, which starts a new session (`setsid`, so the supervisor has no
//! controlling terminal and gets no terminal signals), starts the supervisor and exits at
//! once; the host reaps that child straight away, so the supervisor is never the host's child
//! and never disturbs the host's own `waitpid` bookkeeping. The supervisor process sets its
//! fds (its socket on fd 3, `/dev/null` on 0-2, nothing else), resets every signal, and execs
//! the supervisor binary with an explicit environment: a clean address space with nothing of
//! the host's heap.
//!
//! Both children are started as `posix_spawn` starts one (`clone` with `CLONE_VM |
//! CLONE_VFORK`, on stacks of their own): they run in the host's memory, without a copy of
//! its page tables, while the host's calling thread waits, with every signal blocked. Until
//! the exec only system calls are made and nothing is allocated or written but their own
//! stacks; any way out of the children ends in `_exit`, never in a return into the host.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI64, Ordering};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use session_wrapper_protocol::SUPERVISOR_SOCKET_FD;

/// Why the supervisor could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The binary is missing or unsafe to run.
    #[error("supervisor binary {path}: {why}")]
    Binary {
        /// Its path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A system call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// Which.
        what: &'static str,
        /// Why.
        errno: nix::errno::Errno,
    },
}

/// The binary to run, as an `O_PATH` handle that the exec goes through: a regular,
/// executable file owned by root and written by nobody else, reached from `/` through
/// directories and links that only root can change (the loader's rule, and the supervisor's
/// for its loader). A directory on the way that someone else may write would let them put
/// another program there, between this check and the exec or for the next session, run as
/// root in the host's place; the handle makes the check and the exec one file.
fn check_binary(path: &str) -> Result<OwnedFd, SpawnError> {
    use session_wrapper_protocol::trust::{resolve, Lookup};
    let bad = |why: String| SpawnError::Binary { path: path.into(), why };
    let root = std::fs::File::open("/").map_err(|e| bad(format!("open /: {e}")))?;
    match resolve(root.as_fd(), path.as_bytes()) {
        Lookup::Missing => Err(bad(std::io::Error::from_raw_os_error(libc::ENOENT).to_string())),
        Lookup::Untrusted(u) => Err(bad(u.to_string())),
        Lookup::Found(f) => {
            let mode = f.stat.st_mode;
            if mode & libc::S_IFMT != libc::S_IFREG {
                return Err(bad("not a regular file".into()));
            }
            if f.stat.st_uid != 0 || mode & 0o022 != 0 {
                return Err(bad("not owned by root or writable by others".into()));
            }
            if mode & 0o100 == 0 {
                return Err(bad("not executable".into()));
            }
            Ok(f.fd)
        }
    }
}

/// Starts the supervisor and returns the host's end of the socket to it.
///
/// # Errors
/// [`SpawnError`] when the binary is unusable, cannot be executed, or a system call fails.
/// The children share this process's memory until the exec: the first failure of either is
/// written into [`Children::failed`], and read here once both are done.
pub fn start(path: &str) -> Result<OwnedFd, SpawnError> {
    let exe = check_binary(path)?;
    let sys = |what: &'static str| move |errno| SpawnError::Sys { what, errno };
    let argv: [&CStr; 2] = [c"session-wrapper-supervisor", c"--pam"];
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let envp: [&CStr; 2] = [c"PATH=/usr/sbin:/usr/bin:/sbin:/bin", c"LANG=C"];
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(sys("socketpair"))?;

    let result = match Stacks::map() {
        Err(errno) => Err(SpawnError::Sys { what: "mmap", errno }),
        Ok(stacks) => {
            let plan = Children {
                sock: theirs.as_raw_fd(),
                exe: exe.as_raw_fd(),
                argv: &argv_p,
                envp: &envp_p,
                stack: stacks.top(1),
                failed: AtomicI64::new(0),
            };
            // SAFETY: see `spawn_children`; the stacks outlive both children (the host
            // thread is suspended until the first has exited).
            let first = unsafe { spawn_children(&plan, stacks.top(0)) };
            drop(stacks);
            if first < 0 {
                Err(SpawnError::Sys { what: "clone", errno: nix::errno::Errno::last() })
            } else {
                loop {
                    let mut status = 0;
                    // SAFETY: waits for the child just started. It signals no one when it
                    // ends (`__WALL` waits for such a child): neither a handler of the host's
                    // for SIGCHLD runs, nor does the host's SIG_IGN reap it first.
                    let r = unsafe { libc::waitpid(first, &mut status, libc::__WALL) };
                    if r >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                        break;
                    }
                }
                match Failure::read(&plan.failed) {
                    None => Ok(ours),
                    Some(Failure { step: Step::Exec, errno }) => Err(SpawnError::Binary {
                        path: path.into(),
                        why: format!("could not be executed: {errno}"),
                    }),
                    Some(Failure { step, errno }) => Err(SpawnError::Sys { what: step.name(), errno }),
                }
            }
        }
    };
    drop(theirs);
    result
}

/// What the two children need, made before they exist: they share the host's memory until
/// the supervisor execs, and may neither allocate nor change anything of the host's.
struct Children<'a> {
    sock: libc::c_int,
    /// The binary (see [`check_binary`]).
    exe: libc::c_int,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// The top of the supervisor's stack until its exec.
    stack: *mut libc::c_void,
    /// The first failure in a child (see [`Failure`]); 0 when none.
    failed: AtomicI64,
}

/// Where a child failed, and why: written by the child into the memory it shares with the
/// host (as `posix_spawn` reports its child's errors), read by the host after both are done.
struct Failure {
    step: Step,
    errno: nix::errno::Errno,
}

#[derive(Clone, Copy)]
enum Step {
    Clone = 1,
    Fds = 2,
    Exec = 3,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Clone => "clone (the supervisor's process)",
            Step::Fds => "the supervisor's descriptors",
            Step::Exec => "execve",
        }
    }
}

impl Failure {
    /// Records `step` with the calling thread's errno, unless a failure is recorded already.
    /// A system call and an atomic store only: safe in the children.
    fn record(cell: &AtomicI64, step: Step) {
        let errno = i64::from(nix::errno::Errno::last_raw());
        let _ = cell.compare_exchange(0, (step as i64) << 32 | errno, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn read(cell: &AtomicI64) -> Option<Failure> {
        let v = cell.load(Ordering::SeqCst);
        let step = match v >> 32 {
            1 => Step::Clone,
            2 => Step::Fds,
            3 => Step::Exec,
            _ => return None,
        };
        Some(Failure { step, errno: nix::errno::Errno::from_raw((v & 0xffff_ffff) as i32) })
    }
}

/// The children's stacks: two of [`stack_size`] bytes in one private mapping, each with a
/// guard page below it.
struct Stacks(*mut libc::c_void);

/// Bytes of each child's stack: a guard page and 60 KiB, whole pages (64 KiB with 4 KiB
/// pages).
fn stack_size() -> usize {
    let page = page_size();
    page + (60 * 1024usize).div_ceil(page) * page
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

impl Stacks {
    fn map() -> Result<Stacks, nix::errno::Errno> {
        // SAFETY: a new private anonymous mapping, unmapped on drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * stack_size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(nix::errno::Errno::last());
        }
        let stacks = Stacks(p);
        for i in 0..2 {
            // SAFETY: the lowest page of each stack, inside the mapping made above.
            if unsafe { libc::mprotect(stacks.0.cast::<u8>().add(i * stack_size()).cast(), page_size(), libc::PROT_NONE) } != 0 {
                return Err(nix::errno::Errno::last());
            }
        }
        Ok(stacks)
    }

    /// The top of stack `i` (stacks grow down).
    fn top(&self, i: usize) -> *mut libc::c_void {
        // SAFETY: the end of stack `i`, inside (or one past) the mapping.
        unsafe { self.0.cast::<u8>().add((i + 1) * stack_size()).cast() }
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, used by no one any more.
        unsafe { libc::munmap(self.0, 2 * stack_size()) };
    }
}

/// Starts the children as `posix_spawn` does, without copying the host's memory (a `fork`
/// of sshd copies its page tables, twice): each is a `clone` with `CLONE_VM | CLONE_VFORK`,
/// so the calling thread is suspended until the first child has exited, and the first until
/// the supervisor has exec'd. Every signal is blocked in this thread meanwhile, so that no
/// handler of the host's runs in a child; the supervisor resets them all before it unblocks
/// them. The first child's exit signal is none: the host's own SIGCHLD disposition (a
/// handler, or SIG_IGN, which would reap it before the host's wait) is never involved, and
/// never changed. Returns the first child's pid, or -1.
///
/// # Safety
/// `first_stack` and `plan.stack` are the tops of two distinct stacks that outlive the call.
unsafe fn spawn_children(plan: &Children<'_>, first_stack: *mut libc::c_void) -> libc::c_int {
    // SAFETY: the kernel's own mask call on local sets (the C library's leaves its reserved
    // 32 and 33 out); the mask and the cancel state are restored below.
    unsafe {
        let all: u64 = !0;
        let mut saved: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all, &mut saved, 8usize);
        // The children share this thread's control block: a cancel pending on this thread
        // would be acted on in them, at a cancellation point, on their small stacks.
        let mut cancel = 0;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut cancel);
        let arg = std::ptr::from_ref(plan).cast_mut().cast::<libc::c_void>();
        let pid = libc::clone(first_child, first_stack, libc::CLONE_VM | libc::CLONE_VFORK, arg);
        pthread_setcancelstate(cancel, std::ptr::null_mut());
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &saved, std::ptr::null_mut::<u64>(), 8usize);
        pid
    }
}

/// Where the binary's handle is in the supervisor's process until the exec goes through it.
const EXE_FD: libc::c_int = SUPERVISOR_SOCKET_FD + 1;

/// glibc's value (not in the libc crate).
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;

extern "C" {
    fn pthread_setcancelstate(state: libc::c_int, old: *mut libc::c_int) -> libc::c_int;
}

/// The first child: a new session (`setsid`, so the supervisor has no controlling terminal
/// and gets no terminal signals), the supervisor started, exit.
extern "C" fn first_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the host's `Children`, alive while the host thread is suspended;
    // only system calls follow, and every path ends in `_exit`.
    unsafe {
        let plan = &*arg.cast::<Children<'_>>();
        libc::setsid();
        if libc::clone(supervisor, plan.stack, libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD, arg) < 0 {
            Failure::record(&plan.failed, Step::Clone);
        }
        libc::_exit(0)
    }
}

/// The supervisor's process until its exec.
extern "C" fn supervisor(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: as in `first_child`; `supervisor_child` never returns.
    unsafe {
        let plan = &*arg.cast::<Children<'_>>();
        supervisor_child(plan.sock, plan.exe, plan.argv, plan.envp, &plan.failed)
    }
}

/// In the supervisor process before exec: fds, signals, working directory, exec.
///
/// # Safety
/// Only to be called in the supervisor's process before its exec (see [`spawn_children`]);
/// it never returns.
unsafe fn supervisor_child(
    sock: libc::c_int,
    exe: libc::c_int,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    failed: &AtomicI64,
) -> ! {
    // SAFETY: all calls below are async-signal-safe and act on this child only.
    unsafe {
        // Every handler back to the default before any signal is unblocked: a handler of the
        // host's must never run here. The kernel's own call, for all 64: the C library's
        // refuses its reserved 32 and 33, which a host may still have ignored (an exec keeps
        // that).
        let dfl = [0u64; 4];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<u64>(), 8usize);
            }
        }
        let none: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &none, std::ptr::null_mut::<u64>(), 8usize);
        // Move the socket and the binary out of the way, put /dev/null on 0-2, the socket on
        // 3, the binary on 4 (closed by the exec that goes through it).
        let high = libc::fcntl(sock, libc::F_DUPFD_CLOEXEC, 10);
        let exe_high = libc::fcntl(exe, libc::F_DUPFD_CLOEXEC, 10);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if high < 0 || exe_high < 0 || null < 0 {
            Failure::record(failed, Step::Fds);
            libc::_exit(127);
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if libc::dup2(high, SUPERVISOR_SOCKET_FD) < 0 || libc::dup3(exe_high, EXE_FD, libc::O_CLOEXEC) < 0 {
            Failure::record(failed, Step::Fds);
            libc::_exit(127);
        }
        libc::close_range(EXE_FD as libc::c_uint + 1, libc::c_uint::MAX, 0);
        libc::chdir(c"/".as_ptr());
        libc::umask(0o022);
        libc::syscall(libc::SYS_execveat, EXE_FD, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
        Failure::record(failed, Step::Exec);
        libc::_exit(127)
    }
}
