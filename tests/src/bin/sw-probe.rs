//! Test helper: exec in the ways a shell cannot, so the tests can check the supervisor sees
//! them. Every subcommand execs (or spawns) and reports failures on stderr with exit 111.
//!
//! - `fexec PATH ARGS...`: `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` on an opened file;
//! - `exec-from-thread PATH ARGS...`: exec from a thread that is not the main thread;
//! - `spawn-threads N COUNT PATH`: N threads each spawn PATH COUNT times and wait;
//! - `exec-bytes PATH`: exec PATH with argv[1] = "a\xffb" (not UTF-8);
//! - `exec PATH ARGS...`: plain execve, reporting the errno on failure.

use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use session_wrapper_tests::raw::{cstr, env_entries, fail, null_terminated};

fn execve(path: &[u8], args: &[Vec<u8>]) -> ! {
    let p = cstr(path);
    let a: Vec<CString> = args.iter().map(|x| cstr(x)).collect();
    let ap = null_terminated(&a);
    let env: Vec<CString> = env_entries().iter().map(|kv| cstr(kv)).collect();
    let ep = null_terminated(&env);
    // SAFETY: NULL-terminated arrays of pointers into live CStrings.
    unsafe { libc::execve(p.as_ptr(), ap.as_ptr(), ep.as_ptr()) };
    fail(&format!("execve: {}", std::io::Error::last_os_error()))
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let bytes: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let Some(cmd) = bytes.first() else { fail("no subcommand") };
    match cmd.as_slice() {
        b"exec" => execve(&bytes[1], &bytes[1..]),
        b"exec-bytes" => execve(&bytes[1], &[bytes[1].clone(), b"a\xffb".to_vec()]),
        b"fexec" => {
            let f = std::fs::File::open(std::ffi::OsStr::from_bytes(&bytes[1]))
                .unwrap_or_else(|e| fail(&format!("open: {e}")));
            let a: Vec<CString> = bytes[1..].iter().map(|x| cstr(x)).collect();
            let ap = null_terminated(&a);
            let ep: [*const libc::c_char; 1] = [std::ptr::null()];
            // SAFETY: valid fd, empty C string, NULL-terminated pointer arrays.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    f.as_raw_fd(),
                    c"".as_ptr(),
                    ap.as_ptr(),
                    ep.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            };
            fail(&format!("execveat: {}", std::io::Error::last_os_error()))
        }
        b"exec-from-thread" => {
            let rest = bytes[1..].to_vec();
            let t = std::thread::spawn(move || execve(&rest[0], &rest));
            let _ = t.join();
            fail("thread returned")
        }
        b"spawn-threads" => {
            let n: usize = String::from_utf8_lossy(&bytes[1]).parse().unwrap_or(1);
            let count: usize = String::from_utf8_lossy(&bytes[2]).parse().unwrap_or(1);
            let path = std::ffi::OsString::from_vec(bytes[3].clone());
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let p = path.clone();
                    std::thread::spawn(move || {
                        let mut ok = 0;
                        for _ in 0..count {
                            if std::process::Command::new(&p).status().is_ok_and(|s| s.success()) {
                                ok += 1;
                            }
                        }
                        ok
                    })
                })
                .collect();
            let ok: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
            println!("spawned-ok={ok}");
            std::process::exit(if ok == n * count { 0 } else { 1 })
        }
        other => fail(&format!("unknown subcommand {}", String::from_utf8_lossy(other))),
    }
}
