//! Attack program: single exec attempts the supervisor must refuse, decide correctly, or
//! survive (attack classes 3, 4, 7 (envp), 8 and 9).
//!
//! `sw-attack-exec SUITE GOOD EVIL WORKDIR [EXTRA...]`
//!
//! Every case runs in a forked child and prints one line
//! `case=NAME outcome=OUTCOME ms=MILLISECONDS`, where OUTCOME is `ran:CODE` (the program
//! exec'd and exited with CODE: 0 for GOOD, 66 for EVIL, i.e. `sw-attack-mark`),
//! `errno:NAME` (the exec failed), `signal:NAME` (the child died of a signal) or `hang`
//! (no end within 10 s; the child is killed). GOOD is an allowed program exiting 0, EVIL a
//! forbidden one; WORKDIR a directory the user may write.
//!
//! Suites:
//! - `fd [GOOD_DIR EVIL_DIR]`: exec by descriptor: `execveat(fd, "", AT_EMPTY_PATH)`
//!   (O_RDONLY and O_PATH), `/proc/self/fd/N`, `/dev/fd/N`, a directory fd, memfds (with and
//!   without `MFD_CLOEXEC`, by fd and by `/proc/self/fd`), a deleted file, and a thread whose
//!   own (unshared) descriptor table holds EVIL where the process's holds GOOD (by fd, and by
//!   a directory fd: GOOD_DIR/prog allowed, EVIL_DIR/prog forbidden);
//! - `abi`: i386 `int 0x80` execve (11) and execveat (358) with 32-bit pointers below 4 GiB,
//!   of EVIL and GOOD; x32 system calls (execve as 59|0x40000000 and 520|0x40000000, getpid);
//! - `hostile GOOD_NONUTF8 EVIL_NONUTF8`: argc 0, NULL and unmapped pointers (also with a
//!   missing file, which the kernel answers first), an
//!   unterminated path running into an unmapped page, paths and arguments over the kernel's
//!   limits, an argv near ARG_MAX, non-UTF-8 paths and arguments; after every case an
//!   `after-CASE` exec of GOOD must still run;
//! - `denymsg RO_FILE`: deny messages with fd 2 read-only on RO_FILE, closed, a full pipe, a
//!   full socket and a stopped terminal, with timings, then 20 execs of GOOD;
//! - `loaderenv`: GOOD (`sw-attack-envcheck`) exec'd with `LD_PRELOAD`/`LD_AUDIT` only in
//!   the envp passed to execve (not in this process's environment).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};
use session_wrapper_tests::raw::{args, cstr, env_entries, environ, execve, fail, int80, null_terminated, sys};

/// Runs `f` in a forked child ([`session_wrapper_tests::raw::attempt`]); `f` returns the
/// (negative) result of a failed exec. Prints and returns the outcome.
fn attempt(name: &str, f: impl FnOnce() -> i64) -> String {
    let t0 = Instant::now();
    let outcome = session_wrapper_tests::raw::attempt(f, Duration::from_micros(200));
    println!("case={name} outcome={outcome} ms={}", t0.elapsed().as_millis());
    outcome
}

/// A NULL-terminated array of `strs`' pointers, leaked with them (it must outlive the exec
/// attempt).
fn leaked(strs: Vec<CString>) -> *const *const libc::c_char {
    let ptrs = null_terminated(&strs);
    std::mem::forget(strs);
    let p = ptrs.as_ptr();
    std::mem::forget(ptrs);
    p
}

/// A NULL-terminated argv of C strings, leaked (it must outlive the exec attempt).
fn argv_of(args: &[&[u8]]) -> *const *const libc::c_char {
    leaked(args.iter().map(|a| cstr(a)).collect())
}

fn execveat(dirfd: i32, path: *const libc::c_char, argv: *const *const libc::c_char, flags: i32) -> i64 {
    // SAFETY: as above.
    unsafe {
        sys(
            libc::SYS_execveat,
            [dirfd as i64 as u64, path as u64, argv as u64, environ() as u64, flags as u64, 0],
        )
    }
}

fn open(path: &[u8], flags: i32) -> i32 {
    let c = cstr(path);
    // SAFETY: opening a path given as a C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o700) };
    if fd < 0 {
        fail(&format!("open {}: {}", String::from_utf8_lossy(path), std::io::Error::last_os_error()));
    }
    fd
}

fn main() {
    let a = args(4.., "usage: sw-attack-exec SUITE GOOD EVIL WORKDIR [EXTRA...]");
    let suite = a[0].to_string_lossy().into_owned();
    let good = a[1].as_bytes().to_vec();
    let evil = a[2].as_bytes().to_vec();
    let work = std::path::PathBuf::from(&a[3]);
    let extra: Vec<Vec<u8>> = a[4..].iter().map(|x| x.as_bytes().to_vec()).collect();
    match suite.as_str() {
        "fd" => suite_fd(&good, &evil, &work, &extra),
        "abi" => suite_abi(&good, &evil),
        "hostile" => suite_hostile(&good, &evil, &extra),
        "denymsg" => suite_denymsg(&good, &evil, &extra),
        "loaderenv" => suite_loaderenv(&good),
        other => fail(&format!("unknown suite {other}")),
    }
}

fn suite_fd(good: &[u8], evil: &[u8], work: &std::path::Path, extra: &[Vec<u8>]) {
    let argv = argv_of(&[b"prog"]);
    let empty = c"".as_ptr();
    attempt("execveat-empty-evil", || execveat(open(evil, libc::O_RDONLY), empty, argv, libc::AT_EMPTY_PATH));
    attempt("execveat-empty-good", || execveat(open(good, libc::O_RDONLY), empty, argv, libc::AT_EMPTY_PATH));
    attempt("execveat-opath-evil", || execveat(open(evil, libc::O_PATH), empty, argv, libc::AT_EMPTY_PATH));
    attempt("execveat-opath-good", || execveat(open(good, libc::O_PATH), empty, argv, libc::AT_EMPTY_PATH));
    for (prefix, name) in [("/proc/self/fd", "proc-self-fd"), ("/dev/fd", "dev-fd"), ("/proc/thread-self/fd", "proc-thread-self-fd")] {
        attempt(&format!("{name}-evil"), || {
            let fd = open(evil, libc::O_RDONLY);
            let p = cstr(format!("{prefix}/{fd}").as_bytes());
            execve(p.as_ptr(), argv, environ())
        });
        attempt(&format!("{name}-opath-evil"), || {
            let fd = open(evil, libc::O_PATH);
            let p = cstr(format!("{prefix}/{fd}").as_bytes());
            execve(p.as_ptr(), argv, environ())
        });
    }
    let (dir, base) = split(evil);
    attempt("execveat-dirfd-evil", || {
        let d = open(dir, libc::O_RDONLY | libc::O_DIRECTORY);
        let b = cstr(base);
        execveat(d, b.as_ptr(), argv, 0)
    });
    attempt("execveat-opath-dirfd-evil", || {
        let d = open(dir, libc::O_PATH | libc::O_DIRECTORY);
        let b = cstr(base);
        execveat(d, b.as_ptr(), argv, 0)
    });
    let good_bytes = std::fs::read(std::ffi::OsStr::from_bytes(good)).unwrap_or_else(|e| fail(&format!("read GOOD: {e}")));
    let memfd = |flags: u32, name: &std::ffi::CStr| -> i32 {
        // SAFETY: creating and filling an anonymous memory file.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd < 0 {
            fail("memfd_create");
        }
        // SAFETY: writing our buffer to it.
        unsafe { libc::write(fd, good_bytes.as_ptr().cast(), good_bytes.len()) };
        fd
    };
    attempt("memfd-good", || execveat(memfd(0, c"sw-good"), empty, argv, libc::AT_EMPTY_PATH));
    attempt("memfd-cloexec-good", || execveat(memfd(libc::MFD_CLOEXEC, c"sw-good"), empty, argv, libc::AT_EMPTY_PATH));
    attempt("memfd-proc-self-fd-good", || {
        let fd = memfd(0, c"sw-good");
        let p = cstr(format!("/proc/self/fd/{fd}").as_bytes());
        execve(p.as_ptr(), argv, environ())
    });
    attempt("memfd-named-like-a-path-good", || {
        execveat(memfd(0, c"/../../usr/bin/true"), empty, argv, libc::AT_EMPTY_PATH)
    });
    let mut n = 0;
    let mut deleted_copy = || -> (i32, std::path::PathBuf) {
        n += 1;
        let p = work.join(format!("deleted-{n}"));
        std::fs::write(&p, &good_bytes).unwrap_or_else(|e| fail(&format!("write copy: {e}")));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| fail(&format!("chmod: {e}")));
        let fd = open(p.as_os_str().as_bytes(), libc::O_RDONLY);
        std::fs::remove_file(&p).unwrap_or_else(|e| fail(&format!("unlink: {e}")));
        (fd, p)
    };
    let (fd, _) = deleted_copy();
    attempt("deleted-good", || execveat(fd, empty, argv, libc::AT_EMPTY_PATH));
    let (fd, _) = deleted_copy();
    attempt("deleted-proc-self-fd-good", || {
        let p = cstr(format!("/proc/self/fd/{fd}").as_bytes());
        execve(p.as_ptr(), argv, environ())
    });
    // A thread with its own descriptor table: at fd N the process (and /proc/PID/fd) has
    // GOOD, the thread has EVIL; execveat(N, "") runs the thread's.
    attempt("unshared-files-thread-evil", || {
        let g = open(good, libc::O_RDONLY);
        let evil = evil.to_vec();
        let t = std::thread::spawn(move || {
            // SAFETY: unsharing this thread's descriptor table, then replacing fd g in it.
            unsafe {
                if libc::unshare(libc::CLONE_FILES) != 0 {
                    return -i64::from(libc::EINVAL);
                }
                let e = open(&evil, libc::O_RDONLY);
                libc::dup2(e, g);
            }
            execveat(g, c"".as_ptr(), argv_of(&[b"prog"]), libc::AT_EMPTY_PATH)
        });
        t.join().unwrap_or(-i64::from(libc::EINVAL))
    });
    // The same with a relative name from a directory fd: GOOD_DIR and EVIL_DIR (extra
    // arguments) both hold a file `prog`, allowed in the first, forbidden in the second.
    if let [gdir, edir, ..] = extra {
        let (gdir, edir) = (gdir.clone(), edir.clone());
        attempt("unshared-files-thread-dirfd-evil", || {
            let d = open(&gdir, libc::O_RDONLY | libc::O_DIRECTORY);
            let t = std::thread::spawn(move || {
                // SAFETY: as above.
                unsafe {
                    if libc::unshare(libc::CLONE_FILES) != 0 {
                        return -i64::from(libc::EINVAL);
                    }
                    let e = open(&edir, libc::O_RDONLY | libc::O_DIRECTORY);
                    libc::dup2(e, d);
                }
                execveat(d, c"prog".as_ptr(), argv_of(&[b"prog"]), 0)
            });
            t.join().unwrap_or(-i64::from(libc::EINVAL))
        });
    }
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    let i = path.iter().rposition(|&b| b == b'/').unwrap_or_else(|| fail("GOOD/EVIL must be absolute"));
    (&path[..i.max(1)], &path[i + 1..])
}

/// A 1 MiB private mapping below 4 GiB for 32-bit pointers.
fn low_memory() -> *mut u8 {
    let want = 0x2000_0000usize;
    // SAFETY: MAP_FIXED_NOREPLACE fails instead of replacing anything.
    let p = unsafe {
        libc::mmap(
            want as *mut libc::c_void,
            1 << 20,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as usize != want {
        fail("low mapping");
    }
    p.cast()
}

/// Lays out a path, an argv and the environment in low memory with 32-bit pointers.
/// Returns (path, argv, envp) as 32-bit addresses.
fn layout32(mem: *mut u8, path: &[u8], args: &[&[u8]]) -> (u32, u32, u32) {
    let mut off = 0usize;
    let mut put = |bytes: &[u8]| -> u32 {
        // SAFETY: every write stays inside the 1 MiB mapping (checked below).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.add(off), bytes.len());
            *mem.add(off + bytes.len()) = 0;
        }
        let at = mem as usize + off;
        off += bytes.len() + 1;
        off = (off + 7) & !7;
        assert!(off < (1 << 20) - 4096);
        at as u32
    };
    let p = put(path);
    let arg_ptrs: Vec<u32> = args.iter().map(|a| put(a)).collect();
    let env = env_entries();
    let env_ptrs: Vec<u32> = env.iter().map(|e| put(e)).collect();
    let mut array = |ptrs: &[u32]| -> u32 {
        let mut bytes: Vec<u8> = ptrs.iter().flat_map(|p| p.to_le_bytes()).collect();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        put(&bytes)
    };
    let argv = array(&arg_ptrs);
    let envp = array(&env_ptrs);
    (p, argv, envp)
}

fn suite_abi(good: &[u8], evil: &[u8]) {
    const I386_EXECVE: u32 = 11;
    const I386_EXECVEAT: u32 = 358;
    const AT_FDCWD32: u32 = -100i32 as u32;
    for (name, path) in [("evil", evil), ("good", good)] {
        attempt(&format!("int80-execve-{name}"), || {
            let (p, argv, envp) = layout32(low_memory(), path, &[b"prog32"]);
            // SAFETY: i386 execve with 32-bit pointers into the low mapping.
            i64::from(unsafe { int80(I386_EXECVE, p, argv, envp, 0, 0) })
        });
        attempt(&format!("int80-execveat-{name}"), || {
            let (p, argv, envp) = layout32(low_memory(), path, &[b"prog32"]);
            // SAFETY: i386 execveat(AT_FDCWD, path, argv, envp, 0).
            i64::from(unsafe { int80(I386_EXECVEAT, AT_FDCWD32, p, argv, envp, 0) })
        });
        attempt(&format!("int80-execveat-fd-{name}"), || {
            let fd = open(path, libc::O_RDONLY);
            let (p, argv, envp) = layout32(low_memory(), b"", &[b"prog32"]);
            // SAFETY: i386 execveat(fd, "", argv, envp, AT_EMPTY_PATH).
            i64::from(unsafe { int80(I386_EXECVEAT, fd as u32, p, argv, envp, libc::AT_EMPTY_PATH as u32) })
        });
    }
    const X32: i64 = 0x4000_0000;
    for (name, path) in [("evil", evil), ("good", good)] {
        for (nr, label) in [(59, "59"), (520, "520")] {
            attempt(&format!("x32-execve{label}-{name}"), || {
                let p = cstr(path);
                let argv = argv_of(&[b"prog"]);
                // SAFETY: an x32 system call number; the filter is expected to kill us.
                unsafe { sys(X32 | nr, [p.as_ptr() as u64, argv as u64, environ() as u64, 0, 0, 0]) }
            });
        }
    }
    attempt("x32-getpid", || {
        // SAFETY: x32 getpid.
        let r = unsafe { sys(X32 | 39, [0; 6]) };
        if r > 0 {
            // Not killed: report it as an impossible errno so the test sees it.
            -99
        } else {
            r
        }
    });
}

fn map(len: usize, prot: i32) -> *mut u8 {
    // SAFETY: a fresh anonymous private mapping.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        fail("mmap");
    }
    p.cast()
}

/// Two pages, the second unmapped; returns the first.
fn page_then_hole() -> *mut u8 {
    let p = map(8192, libc::PROT_READ | libc::PROT_WRITE);
    // SAFETY: unmapping the second page of our own mapping.
    unsafe { libc::munmap(p.add(4096).cast(), 4096) };
    p
}

fn suite_hostile(good: &[u8], evil: &[u8], extra: &[Vec<u8>]) {
    let good_nonutf8 = extra.first().cloned().unwrap_or_else(|| fail("hostile needs GOOD_NONUTF8 EVIL_NONUTF8"));
    let evil_nonutf8 = extra.get(1).cloned().unwrap_or_else(|| fail("hostile needs GOOD_NONUTF8 EVIL_NONUTF8"));
    let cg = cstr(good);
    let ce = cstr(evil);
    let after = |case: &str| {
        attempt(&format!("after-{case}"), || execve(cg.as_ptr(), argv_of(&[b"after"]), environ()));
    };
    let case = |name: &str, f: &dyn Fn() -> i64| {
        attempt(name, f);
        after(name);
    };
    let empty_argv: [*const libc::c_char; 1] = [std::ptr::null()];
    case("argv-null-good", &|| execve(cg.as_ptr(), std::ptr::null(), environ()));
    case("argv-null-evil", &|| execve(ce.as_ptr(), std::ptr::null(), environ()));
    case("argv-empty-good", &|| execve(cg.as_ptr(), empty_argv.as_ptr(), environ()));
    case("argv-empty-evil", &|| execve(ce.as_ptr(), empty_argv.as_ptr(), environ()));
    case("envp-null-good", &|| execve(cg.as_ptr(), argv_of(&[b"prog"]), std::ptr::null()));
    case("path-null", &|| execve(std::ptr::null(), argv_of(&[b"prog"]), environ()));
    case("path-unmapped", &|| execve(0x1000 as *const libc::c_char, argv_of(&[b"prog"]), environ()));
    case("path-kernel-address", &|| execve(0xffff_ffff_8100_0000u64 as *const libc::c_char, argv_of(&[b"prog"]), environ()));
    case("path-unterminated-at-page-end", &|| {
        let p = page_then_hole();
        // SAFETY: filling the mapped first page.
        unsafe { std::ptr::write_bytes(p, b'a', 4096) };
        // SAFETY: a pointer 16 bytes before the hole.
        execve(unsafe { p.add(4096 - 16) }.cast(), argv_of(&[b"prog"]), environ())
    });
    for (name, path) in [("good", good), ("evil", evil)] {
        case(&format!("path-ending-exactly-at-page-end-{name}"), &|| {
            let p = page_then_hole();
            // SAFETY: the path and its NUL end at the last byte of the mapped page.
            unsafe {
                let at = p.add(4096 - path.len() - 1);
                std::ptr::copy_nonoverlapping(path.as_ptr(), at, path.len());
                *p.add(4095) = 0;
                execve(at.cast(), argv_of(&[b"prog"]), environ())
            }
        });
    }
    case("argv-array-unmapped", &|| execve(cg.as_ptr(), 0x1000 as *const *const libc::c_char, environ()));
    // The kernel opens the file before it reads argv and the environment: nothing there is
    // ENOENT, whatever the vectors hold.
    case("missing-file-vectors-unmapped", &|| {
        let bad = 0x1000 as *const *const libc::c_char;
        execve(c"/nonexistent/sw-missing".as_ptr(), bad, bad)
    });
    case("argv-element-unmapped", &|| {
        let v: [*const libc::c_char; 3] = [c"prog".as_ptr(), 0x1000 as *const libc::c_char, std::ptr::null()];
        execve(cg.as_ptr(), v.as_ptr(), environ())
    });
    case("argv-array-running-into-a-hole", &|| {
        let p = page_then_hole();
        let slots = 4096 / 8;
        let v = p.cast::<*const libc::c_char>();
        for i in 0..slots {
            // SAFETY: writing pointer slots inside the mapped page; no NULL terminator.
            unsafe { *v.add(i) = c"x".as_ptr() };
        }
        execve(cg.as_ptr(), v, environ())
    });
    case("envp-unmapped", &|| execve(cg.as_ptr(), argv_of(&[b"prog"]), 0x1000 as *const *const libc::c_char));
    case("envp-element-unmapped", &|| {
        let v: [*const libc::c_char; 3] = [c"A=1".as_ptr(), 0x1000 as *const libc::c_char, std::ptr::null()];
        execve(cg.as_ptr(), argv_of(&[b"prog"]), v.as_ptr())
    });
    case("path-too-long", &|| {
        let mut p = b"/".to_vec();
        p.extend(std::iter::repeat_n(b'a', 5000));
        let c = cstr(&p);
        execve(c.as_ptr(), argv_of(&[b"prog"]), environ())
    });
    for (name, path) in [("good", good), ("evil", evil)] {
        // 4095 bytes: the longest path the kernel takes, made of extra slashes.
        case(&format!("path-4095-bytes-{name}"), &|| {
            let mut p = vec![b'/'; 4095 - path.len()];
            p.extend_from_slice(path);
            let c = cstr(&p);
            execve(c.as_ptr(), argv_of(&[b"prog"]), environ())
        });
    }
    case("arg-over-128k", &|| {
        let big = vec![b'x'; 128 * 1024];
        execve(cg.as_ptr(), argv_of(&[b"prog", &big]), environ())
    });
    case("arg-just-under-128k-good", &|| {
        let big = vec![b'x'; 128 * 1024 - 1];
        execve(cg.as_ptr(), argv_of(&[b"prog", &big]), environ())
    });
    // Near ARG_MAX (a quarter of the stack limit, minus the environment and pointers).
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: reading a resource limit.
    unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) };
    let arg_max = (rl.rlim_cur as usize / 4).min(6 << 20);
    let env_size: usize = std::env::vars_os().map(|(k, v)| k.len() + v.len() + 2 + 8).sum();
    let budget = arg_max - env_size - 64 * 1024;
    let chunk = 100_000usize;
    let count = budget / (chunk + 1 + 8);
    let big = vec![b'y'; chunk];
    let many: Vec<&[u8]> = std::iter::once(b"prog".as_slice()).chain(std::iter::repeat_n(big.as_slice(), count)).collect();
    println!("info arg_max={arg_max} args={count} bytes={}", count * (chunk + 1));
    case("argv-near-arg-max-good", &|| execve(cg.as_ptr(), argv_of(&many), environ()));
    case("argv-near-arg-max-evil", &|| execve(ce.as_ptr(), argv_of(&many), environ()));
    let over: Vec<&[u8]> = std::iter::once(b"prog".as_slice()).chain(std::iter::repeat_n(big.as_slice(), count + 8)).collect();
    case("argv-over-arg-max-good", &|| execve(cg.as_ptr(), argv_of(&over), environ()));
    let cgn = cstr(&good_nonutf8);
    let cen = cstr(&evil_nonutf8);
    case("nonutf8-path-good", &|| execve(cgn.as_ptr(), argv_of(&[b"\xff\xfe"]), environ()));
    case("nonutf8-path-evil", &|| execve(cen.as_ptr(), argv_of(&[b"\xff\xfe"]), environ()));
    case("nonutf8-args-good", &|| execve(cg.as_ptr(), argv_of(&[b"\xc3\x28", b"\xff", b"a\x80b"]), environ()));
    case("nonutf8-args-evil", &|| execve(ce.as_ptr(), argv_of(&[b"\xc3\x28", b"\xff", b"a\x80b"]), environ()));
}

fn elapsed_ms(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

fn suite_denymsg(good: &[u8], evil: &[u8], extra: &[Vec<u8>]) {
    let ro = extra.first().cloned().unwrap_or_else(|| fail("denymsg needs RO_FILE"));
    let cg = cstr(good);
    let ce = cstr(evil);
    let deny_with_fd2 = |name: &str, setup: &dyn Fn() -> i32| {
        attempt(name, || {
            let fd = setup();
            // SAFETY: replacing (or closing) our fd 2.
            unsafe {
                if fd >= 0 {
                    libc::dup2(fd, 2);
                } else {
                    libc::close(2);
                }
            }
            execve(ce.as_ptr(), argv_of(&[b"evil"]), environ())
        });
    };
    deny_with_fd2("fd2-readonly-file", &|| open(&ro, libc::O_RDONLY));
    deny_with_fd2("fd2-closed", &|| -1);
    let full_pipe = || -> i32 {
        let mut p = [0i32; 2];
        // SAFETY: a pipe whose read end stays open, unread.
        unsafe { libc::pipe(p.as_mut_ptr()) };
        fill(p[1], 4096);
        p[1]
    };
    deny_with_fd2("fd2-full-pipe", &full_pipe);
    deny_with_fd2("fd2-full-socket", &|| {
        let mut s = [0i32; 2];
        // SAFETY: a socket pair whose peer never reads.
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, s.as_mut_ptr()) };
        fill(s[0], 4096);
        s[0]
    });
    // A terminal whose output is stopped (^S): the helper thread may block, never the
    // supervisor. Many denials in a row overflow the helper's queue.
    let stopped_tty = || -> i32 {
        // SAFETY: opening a new pseudo-terminal pair and stopping its output.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            if m < 0 || libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
                return -1;
            }
            let name = libc::ptsname(m);
            if name.is_null() {
                return -1;
            }
            let s = libc::open(name, libc::O_RDWR | libc::O_NOCTTY);
            libc::tcflow(s, libc::TCOOFF);
            // Fill what the terminal buffers.
            fill(s, 1024);
            // The master `m` stays open (never closed) so the terminal lives on.
            s
        }
    };
    let tty = stopped_tty();
    if tty < 0 {
        println!("info no-pty");
    } else {
        for i in 0..24 {
            deny_with_fd2(&format!("fd2-stopped-tty-{i}"), &|| tty);
        }
    }
    // Later execs in the session are answered promptly.
    let t0 = Instant::now();
    for i in 0..20 {
        attempt(&format!("good-after-{i}"), || execve(cg.as_ptr(), argv_of(&[b"good"]), environ()));
    }
    println!("info twenty-good-execs-ms={}", elapsed_ms(t0));
}

/// Writes `chunk`-byte blocks to `fd` until it would block, then makes it blocking again.
fn fill(fd: i32, chunk: usize) {
    let chunk = vec![b'z'; chunk];
    // SAFETY: flags of, and writes of a local buffer to, a descriptor of ours.
    unsafe {
        libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
        while libc::write(fd, chunk.as_ptr().cast(), chunk.len()) > 0 {}
        libc::fcntl(fd, libc::F_SETFL, 0);
    }
}

fn suite_loaderenv(good: &[u8]) {
    let cg = cstr(good);
    let base: Vec<CString> = env_entries()
        .iter()
        .filter(|kv| !kv.starts_with(b"LD_PRELOAD=") && !kv.starts_with(b"LD_AUDIT="))
        .map(|kv| cstr(kv))
        .collect();
    let with = |entries: &[&[u8]], at_end: bool| -> *const *const libc::c_char {
        let mut all: Vec<CString> = Vec::new();
        if !at_end {
            all.extend(entries.iter().map(|e| cstr(e)));
        }
        all.extend(base.iter().cloned());
        if at_end {
            for i in 0..500 {
                all.push(cstr(format!("FILLER{i}=x").as_bytes()));
            }
            all.extend(entries.iter().map(|e| cstr(e)));
        }
        leaked(all)
    };
    let argv = argv_of(&[b"envcheck"]);
    attempt("envp-clean-good", || execve(cg.as_ptr(), argv, with(&[], false)));
    attempt("envp-only-ld-preload", || execve(cg.as_ptr(), argv, with(&[b"LD_PRELOAD=/nonexistent/sw.so"], false)));
    attempt("envp-only-ld-audit", || execve(cg.as_ptr(), argv, with(&[b"LD_AUDIT=/nonexistent/sw.so"], false)));
    attempt("envp-ld-preload-after-500-entries", || execve(cg.as_ptr(), argv, with(&[b"LD_PRELOAD=/nonexistent/sw.so"], true)));
    attempt("envp-ld-preload-empty-value", || execve(cg.as_ptr(), argv, with(&[b"LD_PRELOAD="], false)));
    attempt("envp-ld-preload-twice", || {
        execve(cg.as_ptr(), argv, with(&[b"LD_PRELOAD=/nonexistent/a.so", b"LD_PRELOAD=/nonexistent/b.so"], false))
    });
}
