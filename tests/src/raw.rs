//! What the attack programs (`sw-attack-*`) and `sw-probe` share: raw system calls that bypass
//! the C library (so that a test controls every argument and register), exec attempts in forked
//! children with a bound on how long they may take, and small helpers.

use std::ffi::{CString, OsString};
use std::ops::RangeBounds;
use std::time::{Duration, Instant};

extern "C" {
    #[link_name = "environ"]
    static ENVIRON: *const *const libc::c_char;
}

/// The C library's environment pointer (`environ`).
pub fn environ() -> *const *const libc::c_char {
    // SAFETY: reading the C library's environment pointer, set before main.
    unsafe { ENVIRON }
}

/// A raw x86_64 system call returning the kernel's result (negative errno on failure).
///
/// # Safety
/// The caller passes arguments valid for system call `n`.
pub unsafe fn sys(n: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the system call instruction; rcx and r11 are clobbered by it.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

/// An i386 system call through `int 0x80` from this 64-bit process: arguments are 32-bit.
///
/// # Safety
/// The caller passes arguments valid for i386 system call `nr`.
pub unsafe fn int80(nr: u32, b: u32, c: u32, d: u32, s: u32, di: u32) -> i32 {
    let ret: i32;
    // SAFETY: rbx is reserved by the compiler, so it is swapped in and out around the trap;
    // int 0x80 from 64-bit code may clobber r8-r11.
    unsafe {
        core::arch::asm!(
            "xchg rbx, {b}",
            "int 0x80",
            "xchg rbx, {b}",
            b = inout(reg) u64::from(b) => _,
            inlateout("eax") nr => ret,
            in("ecx") c, in("edx") d, in("esi") s, in("edi") di,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    ret
}

/// `exit_group` without running any exit handler (safe in a forked or vforked child).
pub fn raw_exit(code: i32) -> ! {
    exit_call(libc::SYS_exit_group, code)
}

/// `exit` of the calling thread only, not of its thread group: for `CLONE_VM` children started
/// with `clone`, which share their parent's memory.
pub fn raw_thread_exit(code: i32) -> ! {
    exit_call(libc::SYS_exit, code)
}

fn exit_call(nr: i64, code: i32) -> ! {
    // SAFETY: exit and exit_group never return.
    unsafe {
        sys(nr, [code as u64, 0, 0, 0, 0, 0]);
    }
    loop {
        std::hint::spin_loop();
    }
}

/// Ends a child whose exec failed with `r` (a negative errno, as [`sys`] returns it): exit
/// code 100 + errno (at most 199), which [`outcome`] and [`short_status`] read back.
pub fn exit_errno(r: i64) -> ! {
    raw_exit(100 + (-r).clamp(0, 99) as i32)
}

/// A raw x86_64 `execve`; returns only when it failed (a negative errno). The kernel validates
/// every pointer: the attacks pass bad ones on purpose.
pub fn execve(path: *const libc::c_char, argv: *const *const libc::c_char, envp: *const *const libc::c_char) -> i64 {
    // SAFETY: execve reads through the pointers in the kernel, which checks them (EFAULT).
    unsafe { sys(libc::SYS_execve, [path as u64, argv as u64, envp as u64, 0, 0, 0]) }
}

/// Reports a set-up failure of the program (as `NAME: WHAT` on stderr) and exits 111 (the
/// tests treat it as an error of the harness, never as a win or a loss).
pub fn fail(what: &str) -> ! {
    let me = std::env::args().next().unwrap_or_default();
    let me = me.rsplit('/').next().unwrap_or("sw-attack");
    eprintln!("{me}: {what}");
    std::process::exit(111)
}

/// A C string, or [`fail`].
pub fn cstr(b: &[u8]) -> CString {
    CString::new(b).unwrap_or_else(|_| fail("NUL in argument"))
}

/// The program's arguments after its name, or [`fail`] with `usage` when their number is not
/// in `count`.
pub fn args(count: impl RangeBounds<usize>, usage: &str) -> Vec<OsString> {
    let a: Vec<OsString> = std::env::args_os().skip(1).collect();
    if !count.contains(&a.len()) {
        fail(usage);
    }
    a
}

/// The pointers of `strs` followed by a NULL: an argv or envp for as long as `strs` lives.
pub fn null_terminated(strs: &[CString]) -> Vec<*const libc::c_char> {
    strs.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// This process's environment as `KEY=VALUE` byte strings.
pub fn env_entries() -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            kv
        })
        .collect()
}

/// The errno of the last failed C library call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The name of the errno `e` (`EACCES`), or `errnoN` for one the tests never expect.
pub fn errno_name(e: i32) -> String {
    match e {
        libc::EACCES => "EACCES".into(),
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::E2BIG => "E2BIG".into(),
        libc::ENAMETOOLONG => "ENAMETOOLONG".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EBADF => "EBADF".into(),
        libc::ENOEXEC => "ENOEXEC".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::ELOOP => "ELOOP".into(),
        libc::ENOTDIR => "ENOTDIR".into(),
        libc::EBUSY => "EBUSY".into(),
        libc::EUSERS => "EUSERS".into(),
        other => format!("errno{other}"),
    }
}

/// The name of the signal `s` (`SIGKILL`), or `signalN` for one the tests never expect.
pub fn signal_name(s: i32) -> String {
    match s {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSYS => "SIGSYS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGABRT => "SIGABRT".into(),
        other => format!("signal{other}"),
    }
}

/// Forks; the child runs `child`, which must end in exec or exit (it is ended with exit code
/// 112 if it returns). Returns the child's pid; a failed fork is a set-up failure ([`fail`]).
pub fn fork_child(child: impl FnOnce()) -> i32 {
    // SAFETY: the child runs only `child`, which ends in exec or exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid == 0 {
        child();
        raw_exit(112);
    }
    pid
}

/// Waits for our child `pid` to end (retrying when a signal interrupts the wait) and returns
/// its wait status.
pub fn reap(pid: i32) -> i32 {
    let mut st = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return st;
        }
        if r < 0 && errno() != libc::EINTR {
            fail("waitpid");
        }
    }
}

/// Kills our child `pid` with SIGKILL and reaps it; returns its wait status.
pub fn kill_and_reap(pid: i32) -> i32 {
    // SAFETY: ending our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    reap(pid)
}

/// Waits up to `timeout` for our child `pid` to end, looking every `every`: its wait status,
/// or `None` when it did not end in time (it is then killed and reaped: it hung).
pub fn wait_child(pid: i32, timeout: Duration, every: Duration) -> Option<i32> {
    let st = crate::poll(timeout, every, || {
        let mut st = 0;
        // SAFETY: polling our own child.
        (unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid).then_some(st)
    });
    if st.is_none() {
        kill_and_reap(pid);
    }
    st
}

/// The outcome of an exec attempt from the wait status of its child: `ran:CODE` (the program
/// ran and exited with CODE), `errno:NAME` (the exec failed: [`exit_errno`]), `signal:NAME` (the
/// child died of a signal) or `status:N`.
pub fn outcome(st: i32) -> String {
    if libc::WIFEXITED(st) {
        let c = libc::WEXITSTATUS(st);
        if c >= 100 {
            format!("errno:{}", errno_name(c - 100))
        } else {
            format!("ran:{c}")
        }
    } else if libc::WIFSIGNALED(st) {
        format!("signal:{}", signal_name(libc::WTERMSIG(st)))
    } else {
        format!("status:{st}")
    }
}

/// A wait status in one short word: `x0` (exit 0), `e13` (the exec failed with errno 13:
/// [`exit_errno`]), `s9` (killed by signal 9), `?N` (anything else).
pub fn short_status(st: i32) -> String {
    if libc::WIFEXITED(st) {
        let c = libc::WEXITSTATUS(st);
        if c >= 100 {
            format!("e{}", c - 100)
        } else {
            format!("x{c}")
        }
    } else if libc::WIFSIGNALED(st) {
        format!("s{}", libc::WTERMSIG(st))
    } else {
        format!("?{st}")
    }
}

/// Runs the exec attempt `exec` in a forked child (it returns the failed exec's negative errno,
/// which the child exits with: [`exit_errno`]) and waits for the child, looking every `every`,
/// for 10 s at the most. Returns its [`outcome`], or `hang` when it did not end in time (it is
/// then killed).
pub fn attempt(exec: impl FnOnce() -> i64, every: Duration) -> String {
    let pid = fork_child(|| exit_errno(exec()));
    wait_child(pid, Duration::from_secs(10), every).map_or_else(|| "hang".to_string(), outcome)
}

/// Starts the latency prober that [`end_prober`] ends: a child process that, every 20 ms,
/// runs `exec` (an exec of an allowed program; it returns the failed exec's negative errno) in
/// a child of its own, times it to its end, and writes the slowest time so far (milliseconds,
/// one number a line) to a pipe; for `run_for`, or until it is ended. Returns the prober's pid
/// and the pipe's read end. The caller must be single-threaded.
pub fn start_prober(exec: impl Fn() -> i64, run_for: Option<Duration>) -> (i32, i32) {
    let mut pipe = [0i32; 2];
    // SAFETY: a pipe for the prober's report.
    unsafe { libc::pipe(pipe.as_mut_ptr()) };
    let prober = fork_child(|| {
        let end = run_for.map(|d| Instant::now() + d);
        let mut worst = 0u128;
        while end.is_none_or(|end| Instant::now() < end) {
            let t0 = Instant::now();
            let pid = fork_child(|| exit_errno(exec()));
            reap(pid);
            worst = worst.max(t0.elapsed().as_millis());
            let line = format!("{worst}\n");
            // SAFETY: reporting through the pipe (small, atomic writes).
            unsafe { libc::write(pipe[1], line.as_ptr().cast(), line.len()) };
            std::thread::sleep(Duration::from_millis(20));
        }
        raw_exit(0)
    });
    // SAFETY: closing the write end in the parent.
    unsafe { libc::close(pipe[1]) };
    (prober, pipe[0])
}

/// Ends the latency prober ([`start_prober`]) and prints the worst delay it
/// reported on `pipe` (one number of milliseconds per line, the last the worst so far) as
/// `probe worst_ms=N`.
pub fn end_prober(prober: i32, pipe: i32) {
    kill_and_reap(prober);
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading the pipe into a local buffer.
        let n = unsafe { libc::read(pipe, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        text.extend_from_slice(&buf[..n as usize]);
    }
    let worst = String::from_utf8_lossy(&text).lines().last().unwrap_or("0").to_string();
    println!("probe worst_ms={worst}");
}
