//! Attack program: get a user namespace (and with it mounts of one's own, over the loader and
//! the libraries of allowed programs) from inside a supervised session, every way the kernel
//! offers.
//!
//! `sw-attack-userns MODE [ARG]`, printing `case=MODE outcome=OUTCOME`, where OUTCOME is
//! `ok` when the process got into a new (or another) user namespace (the attack won), or
//! `errno:NAME` when the kernel refused:
//! - `unshare`: `unshare(CLONE_NEWUSER)`;
//! - `unshare-mnt`: `unshare(CLONE_NEWUSER | CLONE_NEWNS)`;
//! - `clone`: raw `clone(CLONE_NEWUSER | SIGCHLD)`; the child reports from inside;
//! - `clone3`: raw `clone3` with `CLONE_NEWUSER` in its in-memory flags;
//! - `int80`: `unshare(CLONE_NEWUSER)` through the i386 `int 0x80` entry;
//! - `setns PATH`: `setns(open(PATH), CLONE_NEWUSER)` into another process's user namespace
//!   (`/proc/PID/ns/user` of a process outside the session that made one);
//! - `setns-any PATH`: the same with `nstype` 0 ("whatever it is");
//! - `setns-pidfd PID`: `setns(pidfd_open(PID), CLONE_NEWUSER | CLONE_NEWNS)`.

use session_wrapper_tests::raw::{cstr, errno_name, fail, int80, raw_exit, reap, sys};

fn outcome(ret: i64) -> String {
    if ret >= 0 {
        "ok".into()
    } else {
        format!("errno:{}", errno_name((-ret) as i32))
    }
}

/// Whether this process is now in a user namespace other than the one it started in.
fn moved(before: &std::path::Path) -> bool {
    std::fs::read_link("/proc/self/ns/user").ok().as_deref() != Some(before)
}

fn open(path: &str) -> i64 {
    let c = cstr(path.as_bytes());
    // SAFETY: a valid C string; the result is checked.
    i64::from(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = a.first() else { fail("usage: sw-attack-userns MODE [ARG]") };
    let arg = a.get(1).cloned().unwrap_or_default();
    let before = std::fs::read_link("/proc/self/ns/user").unwrap_or_default();
    let newuser = libc::CLONE_NEWUSER as u64;
    let ret: i64 = match mode.as_str() {
        // SAFETY: unshare takes flags only.
        "unshare" => unsafe { sys(libc::SYS_unshare, [newuser, 0, 0, 0, 0, 0]) },
        // SAFETY: unshare takes flags only.
        "unshare-mnt" => unsafe { sys(libc::SYS_unshare, [newuser | libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]) },
        // SAFETY: i386 unshare (310) takes flags only.
        "int80" => i64::from(unsafe { int80(310, libc::CLONE_NEWUSER as u32, 0, 0, 0, 0) }),
        "clone" => {
            let flags = newuser | libc::SIGCHLD as u64;
            // SAFETY: a fork-like clone (no new stack: the child runs on a copy of ours).
            let pid = unsafe { sys(libc::SYS_clone, [flags, 0, 0, 0, 0, 0]) };
            if pid == 0 {
                raw_exit(if moved(&before) { 0 } else { 1 });
            }
            if pid > 0 {
                let st = reap(pid as i32);
                if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 { 0 } else { -i64::from(libc::EINVAL) }
            } else {
                pid
            }
        }
        "clone3" => {
            // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
            // stack_size, tls (64-bit each).
            let args: [u64; 8] = [newuser, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0];
            // SAFETY: clone3 with a valid struct of the size passed.
            let pid = unsafe { sys(435, [args.as_ptr() as u64, std::mem::size_of_val(&args) as u64, 0, 0, 0, 0]) };
            if pid == 0 {
                raw_exit(0);
            }
            if pid > 0 {
                reap(pid as i32);
            }
            pid
        }
        "setns" | "setns-any" => {
            let fd = open(&arg);
            if fd < 0 {
                fail(&format!("open {arg}"));
            }
            let nstype = if mode == "setns" { newuser } else { 0 };
            // SAFETY: setns with a descriptor we hold.
            unsafe { sys(libc::SYS_setns, [fd as u64, nstype, 0, 0, 0, 0]) }
        }
        "setns-pidfd" => {
            let pid: i32 = arg.parse().unwrap_or_else(|_| fail("setns-pidfd needs a pid"));
            // SAFETY: pidfd_open of a pid; the result is checked.
            let fd = unsafe { sys(libc::SYS_pidfd_open, [pid as u64, 0, 0, 0, 0, 0]) };
            if fd < 0 {
                fail("pidfd_open");
            }
            // SAFETY: setns with a pidfd we hold.
            unsafe { sys(libc::SYS_setns, [fd as u64, newuser | libc::CLONE_NEWNS as u64, 0, 0, 0, 0]) }
        }
        other => fail(&format!("unknown mode {other}")),
    };
    let mut result = outcome(ret);
    if ret >= 0 && mode != "clone" && mode != "clone3" && !moved(&before) {
        result = "errno:none-but-not-moved".into();
    }
    println!("case={mode} outcome={result}");
}
