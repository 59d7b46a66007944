//! Checking the image the kernel really loaded, before it runs one instruction.
//!
//! Answering a notification with CONTINUE lets the kernel read the path and arguments again
//! from the task's memory, and another thread, a `CLONE_VM` sibling or a process writing
//! `/proc/PID/mem` can change them in between; a symlink can be swapped. So, for every exec it
//! allows, the supervisor:
//! 1. attaches to the waiting task with `PTRACE_SEIZE` (options `TRACEEXEC`, `EXITKILL`),
//!    which does not stop it;
//! 2. answers CONTINUE, then `PTRACE_INTERRUPT`, so that the task stops either at
//!    `PTRACE_EVENT_EXEC` (the exec succeeded: the new image is mapped and has not run) or on
//!    its way back to user space (the exec failed);
//! 3. at the exec stop compares `/proc/PID/exe` (device, inode) and `/proc/PID/cmdline` with
//!    what it authorized, decides again on what really loaded if they differ, and detaches,
//!    or kills the task before it runs.
//!
//! `PTRACE_O_EXITKILL` kills a task still attached if the supervisor dies, so a crash in the
//! middle cannot let an unchecked image through. The stops are handled from the supervisor's
//! loop, never waited for: a slow exec holds up only itself.
//!
//! This module only drives ptrace and reports what happened; the supervisor decides.

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys::memory::{self, Limits, MemError, PtrWidth, Remote};

/// Something that happened to a task the supervisor traces (or to its own child).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The exec succeeded; `pid` is now the process id (a non-leader thread that execs
    /// takes the leader's id), `former` the thread id that made the call.
    Exec {
        /// Current id, to detach or kill.
        pid: i32,
        /// The thread id the notification came from.
        former: i32,
    },
    /// The task stopped on its way back to user space: the exec failed with `errno` (or was
    /// interrupted and will be restarted, `errno` then being an `ERESTART*` code).
    Returned {
        /// Thread id.
        tid: i32,
        /// The system call's result.
        errno: i32,
        /// A signal to deliver on detach (signal-delivery stop), or none.
        signal: Option<Signal>,
        /// Whether this is a group stop (`SIGSTOP` and friends): detach leaves it stopped.
        group_stop: bool,
    },
    /// The task exited or was killed.
    Gone {
        /// Thread id.
        tid: i32,
        /// Raw wait status turned into a shell-style code (exit code, or 128 + signal).
        code: i32,
    },
}

/// Attaches to a task waiting in its notification, without stopping it.
///
/// # Errors
/// `EPERM` when another process traces it, `ESRCH` when it is gone.
pub fn seize(tid: i32) -> Result<(), Errno> {
    ptrace::seize(Pid::from_raw(tid), Options::PTRACE_O_TRACEEXEC | Options::PTRACE_O_EXITKILL)
}

/// Asks a seized task to stop at its next return to user space.
pub fn interrupt(tid: i32) {
    // ESRCH: it died or already stopped at the exec event; both are handled by `next_stop`.
    let _ = ptrace::interrupt(Pid::from_raw(tid));
}

/// Lets a stopped task go, delivering `signal` if given.
pub fn detach(tid: i32, signal: Option<Signal>) {
    let _ = ptrace::detach(Pid::from_raw(tid), signal);
}

/// Kills a stopped task before it runs.
pub fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// The system call result in a stopped task's registers.
fn syscall_result(tid: i32) -> i32 {
    match ptrace::getregs(Pid::from_raw(tid)) {
        // A 32-bit task's result sits sign-extended in the low half.
        Ok(regs) => -(regs.rax as i32),
        Err(_) => 0,
    }
}

/// The next stop or exit among traced tasks and children, without blocking.
/// `None` when nothing is pending.
pub fn next_stop() -> Option<Stop> {
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return None,
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(s) => s,
        };
        return Some(match status {
            WaitStatus::PtraceEvent(pid, _, ev) if ev == Event::PTRACE_EVENT_EXEC as i32 => {
                let former = ptrace::getevent(pid).map_or(pid.as_raw(), |f| f as i32);
                Stop::Exec { pid: pid.as_raw(), former }
            }
            WaitStatus::PtraceEvent(pid, sig, ev) if ev == Event::PTRACE_EVENT_STOP as i32 => {
                let group_stop = matches!(
                    sig,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                );
                Stop::Returned {
                    tid: pid.as_raw(),
                    errno: syscall_result(pid.as_raw()),
                    signal: None,
                    group_stop,
                }
            }
            WaitStatus::PtraceEvent(pid, _, _) | WaitStatus::PtraceSyscall(pid) => {
                // Not an event we asked for; report it as a return so it gets detached.
                Stop::Returned { tid: pid.as_raw(), errno: 0, signal: None, group_stop: false }
            }
            WaitStatus::Stopped(pid, sig) => Stop::Returned {
                tid: pid.as_raw(),
                errno: syscall_result(pid.as_raw()),
                signal: Some(sig),
                group_stop: false,
            },
            WaitStatus::Exited(pid, code) => Stop::Gone { tid: pid.as_raw(), code },
            WaitStatus::Signaled(pid, sig, _) => Stop::Gone { tid: pid.as_raw(), code: 128 + sig as i32 },
            WaitStatus::Continued(_) | WaitStatus::StillAlive => continue,
        });
    }
}

/// What a task stopped at its exec event will run with: its argument vector and what its
/// environment says to the loader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The argument vector.
    pub argv: Vec<Vec<u8>>,
    /// The first refused loader variable set.
    pub refused_env: Option<String>,
    /// Every library search path variable set, with its value.
    pub library_paths: Vec<(String, Vec<u8>)>,
}

/// Reads what a task stopped at its exec event will run with, from the new image's stack
/// (argc, argv[], NULL, envp[], NULL): the argument vector, the first loader variable of
/// `refuse` and the values of the `paths` variables in its environment. The stopped image is
/// private to the task: this is what it will run with.
///
/// # Errors
/// When the registers or the stack cannot be read.
pub fn loaded_args(pid: i32, refuse: &[String], paths: &[String], limits: &Limits) -> Result<Loaded, MemError> {
    let regs = ptrace::getregs(Pid::from_raw(pid)).map_err(|_| MemError::Gone)?;
    // A 32-bit image runs with the compat code segment.
    let (width, sp) = if regs.cs == 0x23 {
        (PtrWidth::Bits32, regs.rsp & 0xffff_ffff)
    } else {
        (PtrWidth::Bits64, regs.rsp)
    };
    let step = if width == PtrWidth::Bits32 { 4 } else { 8 };
    let mut mem = Remote::new(Pid::from_raw(pid));
    let argc = mem.read_ptr(sp, width)?;
    let argv = memory::read_argv(&mut mem, sp + step, width, limits)?;
    if argv.len() as u64 != argc {
        return Err(MemError::Fault);
    }
    let envp = sp + step * (argc + 2);
    let env = memory::scan_env(&mut mem, envp, width, refuse, paths, limits, 0)?;
    Ok(Loaded {
        argv,
        refused_env: env.refused.map(str::to_owned),
        library_paths: env.paths.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
    })
}

/// Whether `errno` means the kernel will restart the call (and notify again).
pub fn is_restart(errno: i32) -> bool {
    // ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK
    matches!(errno, 512 | 513 | 514 | 516)
}
