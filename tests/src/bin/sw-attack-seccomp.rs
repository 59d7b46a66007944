//! Attack program: a seccomp listener of one's own, and attacks on the supervisor process
//! itself (attack classes 5 and 6). Run as the session user.
//!
//! `sw-attack-seccomp MODE GOOD EVIL READY GO`
//!
//! Phase 1 runs at once; then the program creates the file READY and waits (up to 30 s) for
//! the file GO: meanwhile the test, as root, kills the supervisor. Phase 2 runs after that.
//! Every step prints `step=NAME result=RESULT` (`ok`, `fd=N`, `errno:NAME`, `ran:CODE`,
//! `signal:NAME`).
//!
//! Modes:
//! - `listener`: `prctl(PR_SET_NO_NEW_PRIVS)`, then `seccomp(SECCOMP_SET_MODE_FILTER,
//!   SECCOMP_FILTER_FLAG_NEW_LISTENER)` with a filter that notifies on execve/execveat, in
//!   several encodings: plain; with garbage in the upper 32 bits of `op` or of `flags` (the
//!   kernel takes both as 32-bit `unsigned int`); through the i386 `int 0x80` entry. Before
//!   and after the supervisor's death. If a listener is ever obtained, this program answers
//!   its own execs with CONTINUE and tries to run EVIL (`own-listener-exec-evil`), and GOOD.
//!   Plain execs of GOOD and EVIL in both phases.
//! - `supervisor`: as the session user, against the supervisor (this program's parent in
//!   `session-wrapper run`): kill with SIGKILL/SIGTERM/SIGSTOP/SIGINT/SIGHUP,
//!   `pidfd_send_signal`, `pidfd_getfd`, `PTRACE_ATTACH`, `PTRACE_SEIZE`,
//!   `process_vm_readv`/`writev`, opening `/proc/PID/mem` and `/proc/PID/environ`. Phase 2:
//!   execs of GOOD and EVIL after the supervisor died.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;
use session_wrapper_tests::raw::{args, attempt, cstr, environ, errno_name, execve, fail, int80, sys};

fn step(name: &str, result: &str) {
    println!("step={name} result={result}");
}

fn res(r: i64) -> String {
    if r < 0 {
        format!("errno:{}", errno_name((-r) as i32))
    } else {
        format!("ok:{r}")
    }
}

/// Execs `path` in a forked child; the outcome as `ran:CODE`, `errno:NAME` or `signal:NAME`.
fn run(path: &[u8]) -> String {
    let p = cstr(path);
    let a0 = cstr(b"prog");
    let argv: [*const libc::c_char; 2] = [a0.as_ptr(), std::ptr::null()];
    attempt(|| execve(p.as_ptr(), argv.as_ptr(), environ()), Duration::from_millis(1))
}

fn wait_for_go(ready: &str, go: &str) {
    std::fs::write(ready, b"ready\n").unwrap_or_else(|e| fail(&format!("write {ready}: {e}")));
    let go = std::path::Path::new(go);
    if !session_wrapper_tests::wait_until(Duration::from_secs(30), Duration::from_millis(20), || go.exists()) {
        fail("no GO file within 30 s");
    }
}

fn main() {
    let a = args(5..=5, "usage: sw-attack-seccomp MODE GOOD EVIL READY GO");
    let mode = a[0].to_string_lossy().into_owned();
    let good = a[1].as_bytes().to_vec();
    let evil = a[2].as_bytes().to_vec();
    let ready = a[3].to_string_lossy().into_owned();
    let go = a[4].to_string_lossy().into_owned();
    match mode.as_str() {
        "listener" => listener(&good, &evil, &ready, &go),
        "supervisor" => supervisor(&good, &evil, &ready, &go),
        other => fail(&format!("unknown mode {other}")),
    }
}

const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// A filter that notifies on x86_64 execve (59) and execveat (322) and allows everything else.
fn program() -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    vec![
        stmt(ld, 4),                     // arch
        jeq(AUDIT_ARCH_X86_64, 0, 3),    // not x86_64: allow
        stmt(ld, 0),                     // nr
        jeq(59, 2, 0),                   // execve: notify
        jeq(322, 1, 0),                  // execveat: notify
        stmt(ret, SECCOMP_RET_ALLOW),
        stmt(ret, SECCOMP_RET_USER_NOTIF),
    ]
}

/// Answers every notification on `fd` with CONTINUE, forever (a thread).
fn answer_forever(fd: i32) {
    std::thread::spawn(move || loop {
        let mut req = [0u8; 80];
        // SAFETY: SECCOMP_IOCTL_NOTIF_RECV fills a struct seccomp_notif (80 bytes).
        let r = unsafe { sys(libc::SYS_ioctl, [fd as u64, SECCOMP_IOCTL_NOTIF_RECV, req.as_mut_ptr() as u64, 0, 0, 0]) };
        if r < 0 {
            if -r == i64::from(libc::EINTR) || -r == i64::from(libc::ENOENT) {
                continue;
            }
            return;
        }
        let id = u64::from_ne_bytes(req[0..8].try_into().unwrap_or_default());
        // struct seccomp_notif_resp { u64 id; s64 val; s32 error; u32 flags; }
        let mut resp = [0u8; 24];
        resp[0..8].copy_from_slice(&id.to_ne_bytes());
        resp[20..24].copy_from_slice(&SECCOMP_USER_NOTIF_FLAG_CONTINUE.to_ne_bytes());
        // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads a struct seccomp_notif_resp (24 bytes).
        unsafe { sys(libc::SYS_ioctl, [fd as u64, SECCOMP_IOCTL_NOTIF_SEND, resp.as_mut_ptr() as u64, 0, 0, 0]) };
    });
}

/// Tries every encoding; returns the first listener fd obtained, if any.
fn try_listeners(phase: &str, prog: &[libc::sock_filter]) -> Option<i32> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    let op = u64::from(libc::SECCOMP_SET_MODE_FILTER);
    let flag = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    let mut got = None;
    let variants: [(&str, u64, u64); 4] = [
        ("plain", op, flag),
        ("flags-high-bits", op, flag | 0xdead_0000_0000_0000),
        ("op-high-bits", op | 0x1_0000_0000, flag),
        ("op-and-flags-high-bits", op | 0xffff_ffff_0000_0000, flag | 0x8000_0000_0000_0000),
    ];
    for (name, op, flags) in variants {
        // SAFETY: seccomp(op, flags, &fprog) with a valid program.
        let r = unsafe { sys(libc::SYS_seccomp, [op, flags, &fprog as *const libc::sock_fprog as u64, 0, 0, 0]) };
        step(&format!("{phase}-new-listener-{name}"), &res(r));
        if r >= 0 && got.is_none() {
            got = Some(r as i32);
        }
    }
    // The i386 entry: seccomp is 354 there, and takes a 32-bit struct sock_fprog.
    let low = 0x3000_0000usize;
    // SAFETY: a fixed low mapping (never replacing anything) for 32-bit pointers.
    let p = unsafe {
        libc::mmap(
            low as *mut libc::c_void,
            65536,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p as usize == low {
        // SAFETY: writing the program and a compat sock_fprog { u16 len; u32 filter } into
        // the low mapping.
        let r = unsafe {
            let insns = (low + 64) as *mut libc::sock_filter;
            std::ptr::copy_nonoverlapping(prog.as_ptr(), insns, prog.len());
            let f = low as *mut u8;
            std::ptr::write_unaligned(f.cast::<u16>(), prog.len() as u16);
            std::ptr::write_unaligned(f.add(4).cast::<u32>(), (low + 64) as u32);
            int80(354, libc::SECCOMP_SET_MODE_FILTER, flag as u32, low as u32, 0, 0)
        };
        step(&format!("{phase}-new-listener-int80"), &res(i64::from(r)));
        if r >= 0 && got.is_none() {
            got = Some(r);
        }
        // SAFETY: unmapping it again.
        unsafe { libc::munmap(p, 65536) };
    } else {
        step(&format!("{phase}-new-listener-int80"), "skipped:no-low-mapping");
    }
    got
}

fn listener(good: &[u8], evil: &[u8], ready: &str, go: &str) {
    // SAFETY: setting NO_NEW_PRIVS on ourselves, which an unprivileged filter needs.
    let r = unsafe { sys(libc::SYS_prctl, [libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0, 0]) };
    step("no-new-privs", &res(r));
    let prog = program();
    step("alive-exec-good", &run(good));
    step("alive-exec-evil", &run(evil));
    let mut got = try_listeners("alive", &prog);
    wait_for_go(ready, go);
    step("dead-exec-good", &run(good));
    step("dead-exec-evil", &run(evil));
    if got.is_none() {
        got = try_listeners("dead", &prog);
    }
    if let Some(fd) = got {
        step("own-listener", &format!("fd={fd}"));
        answer_forever(fd);
        step("own-listener-exec-evil", &run(evil));
        step("own-listener-exec-good", &run(good));
    }
}

fn supervisor(good: &[u8], evil: &[u8], ready: &str, go: &str) {
    // SAFETY: getppid has no preconditions.
    let sup = unsafe { libc::getppid() };
    println!("supervisor-pid={sup}");
    for (name, sig) in [
        ("SIGKILL", libc::SIGKILL),
        ("SIGTERM", libc::SIGTERM),
        ("SIGSTOP", libc::SIGSTOP),
        ("SIGINT", libc::SIGINT),
        ("SIGHUP", libc::SIGHUP),
        ("SIGUSR1", libc::SIGUSR1),
    ] {
        // SAFETY: kill with an integer pid and signal.
        let r = unsafe { sys(libc::SYS_kill, [sup as u64, sig as u64, 0, 0, 0, 0]) };
        step(&format!("kill-{name}"), &res(r));
    }
    // SAFETY: pidfd_open of the supervisor.
    let pidfd = unsafe { sys(libc::SYS_pidfd_open, [sup as u64, 0, 0, 0, 0, 0]) };
    step("pidfd-open", &res(pidfd));
    if pidfd >= 0 {
        // SAFETY: pidfd_send_signal(pidfd, SIGKILL, NULL, 0).
        let r = unsafe { sys(libc::SYS_pidfd_send_signal, [pidfd as u64, libc::SIGKILL as u64, 0, 0, 0, 0]) };
        step("pidfd-send-signal-SIGKILL", &res(r));
        for fd in [3u64, 4, 5, 6] {
            // SAFETY: pidfd_getfd(pidfd, fd, 0): steal one of its descriptors.
            let r = unsafe { sys(libc::SYS_pidfd_getfd, [pidfd as u64, fd, 0, 0, 0, 0]) };
            step(&format!("pidfd-getfd-{fd}"), &res(r));
        }
    }
    // SAFETY: ptrace requests against the supervisor.
    let r = unsafe { sys(libc::SYS_ptrace, [libc::PTRACE_ATTACH as u64, sup as u64, 0, 0, 0, 0]) };
    step("ptrace-attach", &res(r));
    // SAFETY: as above.
    let r = unsafe { sys(libc::SYS_ptrace, [libc::PTRACE_SEIZE as u64, sup as u64, 0, 0, 0, 0]) };
    step("ptrace-seize", &res(r));
    let mut buf = [0u8; 64];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Any mapped address of the supervisor would do; its stack is somewhere: the call fails on
    // permission before the address matters.
    let remote = libc::iovec { iov_base: 0x1000 as *mut libc::c_void, iov_len: 64 };
    // SAFETY: one local, one remote iovec.
    let r = unsafe { libc::process_vm_readv(sup, &local, 1, &remote, 1, 0) };
    step("process-vm-readv", &res(if r < 0 { -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) } else { r as i64 }));
    // SAFETY: as above.
    let r = unsafe { libc::process_vm_writev(sup, &local, 1, &remote, 1, 0) };
    step("process-vm-writev", &res(if r < 0 { -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) } else { r as i64 }));
    for what in ["mem", "environ", "fd/3"] {
        let p = cstr(format!("/proc/{sup}/{what}").as_bytes());
        // SAFETY: open of a procfs path.
        let r = unsafe { sys(libc::SYS_open, [p.as_ptr() as u64, libc::O_RDONLY as u64, 0, 0, 0, 0]) };
        step(&format!("open-proc-{}", what.replace('/', "-")), &res(r));
    }
    step("alive-exec-good", &run(good));
    step("alive-exec-evil", &run(evil));
    wait_for_go(ready, go);
    step("dead-exec-good", &run(good));
    step("dead-exec-evil", &run(evil));
}
