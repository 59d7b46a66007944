//! Attack program: make a forbidden file look like an allowed one to the policy, through a
//! mount namespace of the user's own (unprivileged user namespaces).
//!
//! `sw-attack-ns MODE EVIL TARGET`
//!
//! The policy matches the *real path* of the executable, which the supervisor reads back
//! (`/proc/self/fd/N`) from a file it opened through `/proc/TID/root`, i.e. in the caller's
//! mount namespace. In a namespace of its own the user can bind-mount any file it can read
//! over any path, so the real path printed for EVIL becomes TARGET (e.g. `/usr/bin/true`).
//!
//! Modes (each runs its exec in a forked child and prints `case=NAME outcome=OUTCOME`, as
//! `sw-attack-exec` does; EVIL is `sw-attack-mark`, which exits 66 when it runs):
//! - `bind`: `unshare(CLONE_NEWUSER | CLONE_NEWNS)`, bind-mount EVIL over TARGET, exec
//!   TARGET from inside;
//! - `procroot`: a helper process does the same and waits; this process, still in the
//!   original namespaces, execs `/proc/HELPER/root/TARGET`;
//! - `fexec`: from inside the namespace, open TARGET and `execveat(fd, "", AT_EMPTY_PATH)`;
//! - `symlink`: TARGET is a directory of the user's own. A helper enters its namespace, lays a
//!   tmpfs over TARGET and bind-mounts EVIL at `TARGET/ok/prog` there; this process, in the
//!   original namespaces, makes `TARGET/ok` a symlink to `/proc/HELPER/root/TARGET/ok` and
//!   execs `TARGET/ok/prog`. The file's real path (read back in the helper's namespace) is
//!   then `TARGET/ok/prog`, and that path leads to the same mount and inode in the session
//!   too, through the symlink (review of the eighth pass).
//!
//! When unprivileged user namespaces are refused, prints `case=NAME outcome=unavailable:ERRNO`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;
use session_wrapper_tests::raw::{args, attempt, cstr, environ, errno, fail, kill_and_reap};

/// How often an attempt's child is looked at ([`attempt`]).
const POLL: Duration = Duration::from_millis(1);

/// Enters a new user and mount namespace (uid 0 inside = our uid outside) and bind-mounts
/// `evil` over `target`. Err(errno) when the kernel refuses.
fn enter_and_bind(evil: &CString, target: &CString) -> Result<(), String> {
    enter()?;
    bind(evil, target)
}

/// Enters a new user and mount namespace (uid 0 inside = our uid outside), mounts private.
fn enter() -> Result<(), String> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare of namespaces; single-threaded caller.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        return Err(format!("unshare:{}", errno()));
    }
    let _ = std::fs::write("/proc/self/setgroups", "deny");
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(|e| format!("uid_map:{e}"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(|e| format!("gid_map:{e}"))?;
    // SAFETY: mount(2) with C strings and no data.
    unsafe {
        if libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return Err(format!("make-private:{}", errno()));
        }
    }
    Ok(())
}

/// Bind-mounts `evil` over `target`.
fn bind(evil: &CString, target: &CString) -> Result<(), String> {
    // SAFETY: mount(2) with C strings and no data.
    unsafe {
        if libc::mount(evil.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0 {
            return Err(format!("bind:{}", errno()));
        }
    }
    Ok(())
}

fn report(name: &str, outcome: &str) {
    println!("case={name} outcome={outcome}");
}

/// Execs `path`; returns the failure as a negative errno.
fn exec(path: &CString) -> i64 {
    let argv: [*const libc::c_char; 2] = [c"prog".as_ptr(), std::ptr::null()];
    // SAFETY: a valid path, a NULL-terminated argv and the process environment.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), environ()) };
    -i64::from(errno())
}

fn main() {
    let a = args(3..=3, "usage: sw-attack-ns MODE EVIL TARGET");
    let mode = a[0].to_string_lossy().into_owned();
    let evil = cstr(a[1].as_bytes());
    let target = cstr(a[2].as_bytes());
    match mode.as_str() {
        "bind" => match enter_and_bind(&evil, &target) {
            Err(e) => report("bind", &format!("unavailable:{e}")),
            Ok(()) => report("bind", &attempt(|| exec(&target), POLL)),
        },
        "fexec" => match enter_and_bind(&evil, &target) {
            Err(e) => report("fexec", &format!("unavailable:{e}")),
            Ok(()) => report(
                "fexec",
                &attempt(|| {
                    // SAFETY: open and execveat with C strings.
                    unsafe {
                        let fd = libc::open(target.as_ptr(), libc::O_RDONLY);
                        let argv: [*const libc::c_char; 2] = [c"prog".as_ptr(), std::ptr::null()];
                        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
                        libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
                    }
                    -i64::from(errno())
                }, POLL),
            ),
        },
        "procroot" => {
            with_helper(|| enter_and_bind(&evil, &target), |helper| {
                let path = cstr(&[format!("/proc/{helper}/root").as_bytes(), a[2].as_bytes()].concat());
                report("procroot", &attempt(|| exec(&path), POLL));
            })
            .unwrap_or_else(|e| report("procroot", &format!("unavailable:{e}")));
        }
        "symlink" => {
            let dir = a[2].as_bytes();
            let under = |tail: &str| cstr(&[dir, tail.as_bytes()].concat());
            let cover = || -> Result<(), String> {
                enter()?;
                // SAFETY: mount(2) of a tmpfs with C strings.
                if unsafe { libc::mount(c"sw-cover".as_ptr(), under("").as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) } != 0 {
                    return Err(format!("tmpfs:{}", errno()));
                }
                std::fs::create_dir(std::ffi::OsStr::from_bytes(&[dir, b"/ok"].concat())).map_err(|e| format!("mkdir:{e}"))?;
                std::fs::write(std::ffi::OsStr::from_bytes(&[dir, b"/ok/prog"].concat()), b"").map_err(|e| format!("touch:{e}"))?;
                bind(&evil, &under("/ok/prog"))
            };
            with_helper(cover, |helper| {
                let link = [format!("/proc/{helper}/root").as_bytes(), dir, b"/ok"].concat();
                match std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), std::ffi::OsStr::from_bytes(&[dir, b"/ok"].concat())) {
                    Ok(()) => report("symlink", &attempt(|| exec(&under("/ok/prog")), POLL)),
                    Err(e) => report("symlink", &format!("unavailable:symlink:{e}")),
                }
            })
            .unwrap_or_else(|e| report("symlink", &format!("unavailable:{e}")));
        }
        other => fail(&format!("unknown mode {other}")),
    }
}

/// Runs `setup` in a forked helper that then waits; once it succeeded, `then(helper's pid)`
/// here (in the original namespaces). The helper is killed and reaped afterwards.
fn with_helper(setup: impl FnOnce() -> Result<(), String>, then: impl FnOnce(i32)) -> Result<(), String> {
    let mut p = [0i32; 2];
    // SAFETY: a pipe to hear from the helper.
    unsafe { libc::pipe(p.as_mut_ptr()) };
    // SAFETY: the helper sets up its namespace, reports, and sleeps until killed.
    let helper = unsafe { libc::fork() };
    if helper == 0 {
        let msg = match setup() {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        };
        // SAFETY: reporting through the pipe, then waiting to be killed.
        unsafe {
            libc::write(p[1], msg.as_ptr().cast(), msg.len());
            libc::close(p[1]);
            loop {
                libc::pause();
            }
        }
    }
    let mut buf = [0u8; 128];
    // SAFETY: closing our write end, reading the helper's answer.
    let n = unsafe {
        libc::close(p[1]);
        libc::read(p[0], buf.as_mut_ptr().cast(), buf.len())
    };
    let msg = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    let result = if msg == "ok" {
        then(helper);
        Ok(())
    } else {
        Err(msg)
    };
    kill_and_reap(helper);
    result
}
