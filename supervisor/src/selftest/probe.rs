//! The self-test's probe (`session-wrapper __probe TASK...`): runs inside the supervised
//! session the self-test made and tries what each task names, printing one line per task:
//! `PROBE <tab> task <tab> pass|fail|skip <tab> what happened`.
//!
//! Every attempt that could change something runs in a forked child that exits at once, so
//! the probe's own process stays as it started.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::session::cgroup::{self, Controller};

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {e}"),
    };
    name.to_owned()
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// How a forked attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Reported this errno before exiting.
    Errno(i32),
}

/// Runs `f` in a forked child (its own session, a 5 s alarm), which reports an errno through
/// a pipe when `f` returns `Err`, or exits with `Ok`'s code.
fn forked(f: impl FnOnce() -> Result<i32, i32>) -> Ended {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Ended::Errno(last_errno());
    }
    // SAFETY: the kernel gave us these descriptors.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the probe is single-threaded; the child ends in _exit.
    match unsafe { libc::fork() } {
        -1 => Ended::Errno(last_errno()),
        0 => {
            drop(r);
            // SAFETY: plain syscalls.
            unsafe {
                libc::setsid();
                libc::alarm(5);
            }
            let code = match f() {
                Ok(c) => c,
                Err(e) => {
                    let b = e.to_le_bytes();
                    // SAFETY: writes 4 bytes from a live buffer.
                    unsafe { libc::write(w.as_raw_fd(), b.as_ptr().cast(), 4) };
                    0
                }
            };
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) }
        }
        pid => {
            drop(w);
            let mut b = [0u8; 4];
            let got = std::fs::File::from(r);
            let n = std::io::Read::read(&mut &got, &mut b).unwrap_or(0);
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if n == 4 {
                Ended::Errno(i32::from_le_bytes(b))
            } else if libc::WIFSIGNALED(status) {
                Ended::Signal(libc::WTERMSIG(status))
            } else {
                Ended::Code(libc::WEXITSTATUS(status))
            }
        }
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// execv in the calling (forked) process; returns the errno when it fails.
fn exec(path: &str, args: &[&str]) -> i32 {
    let p = cstr(path);
    let argv: Vec<CString> = args.iter().map(|a| cstr(a)).collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated path and argv array.
    unsafe { libc::execv(p.as_ptr(), ptrs.as_ptr()) };
    last_errno()
}

/// The outcome line of a task that expects an exec to be refused with `want`.
fn expect_refused(ended: Ended, want: i32) -> (&'static str, String) {
    match ended {
        Ended::Errno(e) if e == want => ("pass", format!("refused with {}", errno_name(e))),
        Ended::Errno(e) => ("fail", format!("failed with {} instead of {}", errno_name(e), errno_name(want))),
        Ended::Code(c) => ("fail", format!("it ran (exit {c})")),
        Ended::Signal(s) => ("fail", format!("killed by signal {s} instead of refused")),
    }
}

/// A call that stands for a blocked set: harmless when allowed (bad arguments, or a change
/// confined to a throwaway child), and allowed for root without the filter.
fn representative(name: &str) -> (&str, [u64; 6]) {
    let bad = u64::MAX;
    match name {
        "ptrace" => ("ptrace", [libc::PTRACE_PEEKDATA as u64, 1, 0, 0, 0, 0]),
        "mount" => ("mount", [bad; 6]),
        "raw-sockets" => ("socket", [libc::AF_INET as u64, libc::SOCK_RAW as u64, libc::IPPROTO_ICMP as u64, 0, 0, 0]),
        "packet-sockets" => ("socket", [libc::AF_PACKET as u64, libc::SOCK_RAW as u64, 0, 0, 0, 0]),
        "kexec" => ("reboot", [bad; 6]),
        "modules" => ("delete_module", [bad, 0, 0, 0, 0, 0]),
        "bpf" => ("bpf", [bad, 0, 0, 0, 0, 0]),
        "perf" => ("perf_event_open", [bad; 6]),
        "keyctl" => ("keyctl", [bad; 6]),
        "namespaces" => ("unshare", [libc::CLONE_NEWUTS as u64, 0, 0, 0, 0, 0]),
        "user-namespaces" => ("unshare", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
        "chroot" => ("chroot", [bad; 6]),
        "admin" => ("acct", [bad; 6]),
        "clock" => ("clock_settime", [bad; 6]),
        other => (other, [bad; 6]),
    }
}

fn syscall_task(entry: &str) -> (&'static str, String) {
    let (name, args) = representative(entry);
    let Ok(nr) = libseccomp::ScmpSyscall::from_name(name) else {
        return ("fail", format!("unknown system call {name}"));
    };
    let nr = i64::from(i32::from(nr));
    let pid = std::process::id();
    let ended = forked(|| {
        // SAFETY: the arguments are invalid pointers and values or harmless flags; the call
        // runs in a throwaway child.
        let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
        if std::process::id() != pid && r == 0 {
            // fork-like calls: the new process leaves at once (through the child's _exit).
            return Ok(0);
        }
        if r < 0 {
            Err(last_errno())
        } else {
            Ok(0)
        }
    });
    match ended {
        Ended::Errno(libc::EPERM) => ("pass", "EPERM".into()),
        Ended::Errno(e) => ("fail", errno_name(e)),
        Ended::Code(_) => ("fail", "succeeded".into()),
        Ended::Signal(s) => ("fail", format!("killed by signal {s}")),
    }
}

fn limit_task(kind: &str, values: &[&str]) -> (&'static str, String) {
    let c = match kind {
        "memory" => Controller::Memory,
        "pids" => Controller::Pids,
        _ => Controller::Cpu,
    };
    let Some((value, version)) = cgroup::limit_of(std::process::id() as i32, c) else {
        return ("fail", format!("this process is in no cgroup with the {} controller", c.name()));
    };
    let ok = match c {
        Controller::Memory => {
            let want: u64 = values.first().and_then(|v| v.parse().ok()).unwrap_or(0);
            // The kernel rounds down to whole pages.
            value.parse::<u64>().is_ok_and(|v| v <= want && v + 65_536 > want)
        }
        Controller::Pids => values.first() == Some(&value.as_str()),
        Controller::Cpu => value == values.join(" "),
    };
    (if ok { "pass" } else { "fail" }, format!("{value} (cgroup {version})"))
}

fn pids_hold(max: u64) -> (&'static str, String) {
    let mut kids = Vec::new();
    let mut err = 0;
    while (kids.len() as u64) < max + 16 {
        // SAFETY: the child only waits to be killed.
        match unsafe { libc::fork() } {
            -1 => {
                err = last_errno();
                break;
            }
            0 => loop {
                // SAFETY: waits for a signal; SIGKILL ends it.
                unsafe { libc::pause() };
            },
            pid => kids.push(pid),
        }
    }
    for &k in &kids {
        // SAFETY: our own children.
        unsafe {
            libc::kill(k, libc::SIGKILL);
            libc::waitpid(k, std::ptr::null_mut(), 0);
        }
    }
    let n = kids.len();
    if err == libc::EAGAIN && (n as u64) < max {
        ("pass", format!("fork refused (EAGAIN) after {n} processes"))
    } else {
        ("fail", format!("{n} processes forked (limit {max}), last error {}", errno_name(err)))
    }
}

fn memory_hold(max: u64) -> (&'static str, String) {
    let ended = forked(|| {
        let mut held: Vec<Vec<u8>> = Vec::new();
        let mut total = 0u64;
        while total < max.saturating_mul(2) {
            held.push(vec![1u8; 1 << 20]);
            total += 1 << 20;
        }
        Ok(i32::from(held.len() > 1))
    });
    match ended {
        Ended::Signal(libc::SIGKILL) => ("pass", "the allocating process was killed (SIGKILL) inside the session".into()),
        other => ("fail", format!("allocating twice the limit ended with {other:?}")),
    }
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn cpu_hold(quota: u64, period: u64) -> (&'static str, String) {
    let share = quota as f64 / period as f64;
    if share >= 0.9 {
        return ("skip", format!("the limit is {:.0}% of a CPU: a spinning thread cannot show it", share * 100.0));
    }
    let wall = Duration::from_millis(1500);
    let start_cpu = cpu_time();
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < wall {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let used = (cpu_time() - start_cpu).as_secs_f64();
    let allowed = wall.as_secs_f64() * (share + 0.25);
    let detail = format!("{used:.2} s of CPU in {:.1} s at {:.0}%", wall.as_secs_f64(), share * 100.0);
    (if used <= allowed { "pass" } else { "fail" }, detail)
}

fn private_task(dir: &str, marker: &str) -> (&'static str, String) {
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d.count(),
        Err(e) => return ("fail", format!("cannot list {dir}: {e}")),
    };
    let c = cstr(dir);
    // SAFETY: a zeroed statfs is a valid out-buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path, valid buffer.
    let is_tmpfs = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 && st.f_type == libc::TMPFS_MAGIC;
    // Another layer of the same block (Landlock) may forbid writing here: then nothing can
    // leak through it either.
    let wrote = std::fs::write(std::path::Path::new(dir).join(marker), "self-test\n").is_ok();
    match (entries, is_tmpfs) {
        (0, true) if wrote => ("pass", "a fresh, empty tmpfs".into()),
        (0, true) => ("pass", "a fresh, empty tmpfs (not writable under this block's Landlock layer)".into()),
        (n, true) => ("fail", format!("a tmpfs holding {n} entries: not fresh")),
        (_, false) => ("fail", "not a tmpfs: the host's directory".into()),
    }
}

fn expect_eacces(r: Result<(), i32>, what: &str) -> (&'static str, String) {
    match r {
        Err(libc::EACCES) => ("pass", format!("{what} refused (EACCES)")),
        Err(e) => ("fail", format!("{what} failed with {} instead of EACCES", errno_name(e))),
        Ok(()) => ("fail", format!("{what} succeeded")),
    }
}

fn open_errno(path: &str, flags: i32) -> Result<(), i32> {
    let c = cstr(path);
    // SAFETY: NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    if flags & libc::O_CREAT != 0 {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn tcp(port: u16, bind: bool) -> Result<(), i32> {
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: the kernel gave us this descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let p = (&raw const addr).cast::<libc::sockaddr>();
    // SAFETY: a valid sockaddr_in of `len` bytes.
    let r = unsafe { if bind { libc::bind(sock.as_raw_fd(), p, len) } else { libc::connect(sock.as_raw_fd(), p, len) } };
    if r != 0 {
        return Err(last_errno());
    }
    Ok(())
}

fn own_listener() -> (&'static str, String) {
    let ended = forked(|| {
        let allow = [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW }];
        let prog = libc::sock_fprog { len: 1, filter: allow.as_ptr().cast_mut() };
        // SAFETY: a valid one-instruction program.
        let r = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER, &raw const prog)
        };
        if r < 0 {
            Err(last_errno())
        } else {
            Ok(0)
        }
    });
    match ended {
        Ended::Errno(libc::EBUSY) => ("pass", "a second listener is refused (EBUSY)".into()),
        other => ("fail", format!("installing a listener of one's own ended with {other:?}")),
    }
}

fn x32() -> (&'static str, String) {
    let ended = forked(|| {
        // SAFETY: getpid through the x32 ABI: no arguments.
        unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        Ok(0)
    });
    match ended {
        Ended::Signal(libc::SIGSYS) => ("pass", "killed (SIGSYS)".into()),
        other => ("fail", format!("an x32 system call ended with {other:?}")),
    }
}

fn io_uring() -> (&'static str, String) {
    let mut params = [0u8; 120];
    // SAFETY: a zeroed io_uring_params buffer.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if r >= 0 {
        // SAFETY: our own new descriptor.
        unsafe { libc::close(r as i32) };
        return ("fail", "io_uring_setup succeeded".into());
    }
    match last_errno() {
        libc::ENOSYS => ("pass", "refused (ENOSYS)".into()),
        e => ("fail", format!("failed with {} instead of ENOSYS", errno_name(e))),
    }
}

fn memfd_exec(src: &str) -> (&'static str, String) {
    let Ok(bytes) = std::fs::read(src) else { return ("skip", format!("cannot read {src}")) };
    let ended = forked(|| {
        // SAFETY: a NUL-terminated name.
        let fd = unsafe { libc::memfd_create(c"probe".as_ptr(), 0) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: writes from a live buffer.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        let argv = [c"probe".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: valid argv/envp arrays; AT_EMPTY_PATH runs the fd itself.
        unsafe { libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH) };
        Err(last_errno())
    });
    expect_refused(ended, libc::EACCES)
}

fn loader(file: &str) -> (&'static str, String) {
    let ld = "/lib64/ld-linux-x86-64.so.2";
    if !std::path::Path::new(ld).exists() {
        return ("skip", format!("no {ld}"));
    }
    expect_refused(forked(|| Err(exec(ld, &[ld, file]))), libc::EACCES)
}

/// Swaps a same-length path between an allowed and a refused program while the main thread
/// execs it; the refused one creates `marker` if it ever runs.
fn race(ok: &str, denied: &str, marker: &str) -> (&'static str, String) {
    if ok.len() != denied.len() {
        return ("skip", "programs of different name lengths".into());
    }
    let (mut ran, mut refused, mut killed) = (0, 0, 0);
    for _ in 0..150 {
        let (a, b) = (cstr(ok), cstr(denied));
        match forked(|| {
            let mut buf = a.as_bytes_with_nul().to_vec();
            let p = buf.as_mut_ptr() as usize;
            let (a2, b2) = (a.as_bytes().to_vec(), b.as_bytes().to_vec());
            // The flipping thread writes the buffer the kernel reads; nothing in Rust reads it.
            std::thread::spawn(move || loop {
                for src in [&a2, &b2] {
                    for (i, &c) in src.iter().enumerate() {
                        // SAFETY: within the buffer, which outlives the exec attempt.
                        unsafe { std::ptr::write_volatile((p as *mut u8).add(i), c) };
                    }
                }
            });
            let m = cstr(marker);
            let argv = [buf.as_ptr().cast::<libc::c_char>(), m.as_ptr(), std::ptr::null()];
            // SAFETY: NUL-terminated buffer and argv.
            unsafe { libc::execv(buf.as_ptr().cast(), argv.as_ptr()) };
            Err(last_errno())
        }) {
            Ended::Code(_) => ran += 1,
            Ended::Errno(_) => refused += 1,
            Ended::Signal(_) => killed += 1,
        }
    }
    let detail = format!("150 attempts: {ran} ran the allowed program, {refused} refused, {killed} killed at the exec check");
    if std::path::Path::new(marker).exists() {
        ("fail", format!("the refused program ran; {detail}"))
    } else {
        ("pass", detail)
    }
}

/// Makes a user namespace with a mount namespace of its own: where a user could bind-mount a
/// file over the loader or a library of an allowed program.
fn user_namespace() -> (&'static str, String) {
    let ended = forked(|| {
        // SAFETY: unshare takes flags only.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
            return Err(last_errno());
        }
        Ok(0)
    });
    match ended {
        Ended::Errno(libc::EPERM) => ("pass", "refused (EPERM): no mount of one's own can lay a file over the loader or a library".into()),
        Ended::Code(0) => ("fail", "a user and mount namespace of one's own was created: files can be mounted over the loader and the libraries of allowed programs".into()),
        other => ("fail", format!("unshare(CLONE_NEWUSER|CLONE_NEWNS) ended with {other:?}")),
    }
}

/// Runs an allowed program with `LD_LIBRARY_PATH` naming a directory everyone can write.
fn library_path(file: &str) -> (&'static str, String) {
    let ended = forked(|| {
        let p = cstr(file);
        let argv = [p.as_ptr(), std::ptr::null()];
        let envp = [c"LD_LIBRARY_PATH=/tmp".as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated path, argv and envp.
        unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Err(last_errno())
    });
    expect_refused(ended, libc::EACCES)
}

fn one(task: &str) -> (&'static str, String) {
    let parts: Vec<&str> = task.split(':').collect();
    match parts.as_slice() {
        ["exec-ok", p] => match forked(|| Err(exec(p, &[p]))) {
            Ended::Code(0) => ("pass", format!("{p} ran")),
            other => ("fail", format!("{p}: {other:?}")),
        },
        ["exec-refused", p, marker] => {
            let r = expect_refused(forked(|| Err(exec(p, &[p, marker]))), libc::EACCES);
            if std::path::Path::new(marker).exists() {
                ("fail", "the refused program ran".into())
            } else {
                r
            }
        }
        ["syscall", name] => syscall_task(name),
        ["limit", kind, rest @ ..] => limit_task(kind, rest),
        ["pids-hold", n] => pids_hold(n.parse().unwrap_or(0)),
        ["memory-hold", n] => memory_hold(n.parse().unwrap_or(0)),
        ["cpu-hold", q, p] => cpu_hold(q.parse().unwrap_or(0), p.parse().unwrap_or(1)),
        ["private", dir, marker] => private_task(dir, marker),
        ["ll-write", dir] => expect_eacces(open_errno(&format!("{dir}/probe-write"), libc::O_WRONLY | libc::O_CREAT), "creating a file"),
        ["ll-read", file] => expect_eacces(open_errno(file, libc::O_RDONLY), "reading a file"),
        ["ll-exec", file] => expect_refused(forked(|| Err(exec(file, &[file]))), libc::EACCES),
        ["ll-connect", port] => expect_eacces(tcp(port.parse().unwrap_or(0), false), "connecting"),
        ["ll-bind", port] => expect_eacces(tcp(port.parse().unwrap_or(0), true), "binding"),
        ["listener"] => own_listener(),
        ["x32"] => x32(),
        ["io-uring"] => io_uring(),
        ["memfd", src] => memfd_exec(src),
        ["ldso", file] => loader(file),
        ["script", p] => expect_refused(forked(|| Err(exec(p, &[p]))), libc::EACCES),
        ["race", ok, denied, marker] => race(ok, denied, marker),
        ["userns"] => user_namespace(),
        ["ldpath", file] => library_path(file),
        _ => ("fail", "unknown task".into()),
    }
}

/// Runs every task and prints its line; the exit code is 0.
pub fn main(tasks: &[std::ffi::OsString]) -> i32 {
    for t in tasks {
        let task = String::from_utf8_lossy(t.as_bytes()).into_owned();
        let (status, detail) = one(&task);
        println!("PROBE\t{task}\t{status}\t{detail}");
    }
    0
}
