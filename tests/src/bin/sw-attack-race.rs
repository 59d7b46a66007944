//! Attack program: races between the supervisor's check of an exec and the kernel's own read of
//! the path, argv or envp (attack classes 1, 2 and the envp part of 7).
//!
//! `sw-attack-race MODE SECS MAX GOOD EVIL WORKDIR`
//!
//! Runs up to MAX attempts for at most SECS seconds. Each attempt is one forked child that
//! execs while something else rewrites what it execs. GOOD is an allowed program that exits 0,
//! EVIL a forbidden one (`sw-attack-mark`, exit 66); they must be paths of the same length.
//! WORKDIR is a directory the user may write (links, output files). Children's standard output
//! goes to `WORKDIR/out.MODE`, their standard error (deny messages) to `WORKDIR/err.MODE`.
//!
//! Modes (what is rewritten, by whom):
//! - `thread-path`: the path buffer, by a sibling thread, in a tight loop;
//! - `thread-argv`: argv[1] (pointer flipped between "allowed" and "FORBIDDEN"; GOOD is the
//!   program, e.g. /usr/bin/echo), by a sibling thread;
//! - `thread-argv-bytes`: the bytes of argv[1], by a sibling thread;
//! - `clonevm-path`: the path buffer, by a `CLONE_VM` (not `CLONE_THREAD`) sibling process;
//! - `vfork-path`: a vfork child execs while a thread of its parent flips the path;
//! - `memfd-path`, `devshm-path`: the path lives in a `MAP_SHARED` mapping (memfd, /dev/shm
//!   file) that a separate process flips;
//! - `pvw-path`, `procmem-path`: the parent rewrites the child's path with
//!   `process_vm_writev` / `/proc/PID/mem`; odd attempts wait for the supervisor to attach
//!   (`TracerPid` set: the check is done) and then write EVIL once, even attempts flip;
//! - `symlink`: `WORKDIR/l1` is a symlink exchanged (`RENAME_EXCHANGE`) with one to EVIL;
//! - `rename-dir`: `WORKDIR/d1` and `WORKDIR/d2` (holding `prog` symlinks to GOOD and EVIL)
//!   are exchanged; the child execs `WORKDIR/d1/prog`;
//! - `cwd`: as `rename-dir`, the child execs the relative path `d1/prog` from WORKDIR;
//! - `envp-flip`: GOOD is `sw-attack-envcheck`; an envp entry flips between
//!   `LD_PRELOAD=...` and `XD_PRELOAD=...`, by a sibling thread;
//! - `tamper-argv`: no race with the check: once the child's new image (GOOD, /usr/bin/echo)
//!   exists and the supervisor has let it go (`TracerPid` back to 0), the parent rewrites its
//!   argv[1] ("allowedXY" -> "FORBIDDEN") on the new stack with `process_vm_writev`.
//!
//! Prints one summary line: `mode=.. attempts=N ok=N denied=N killed=N evil=N
//! forbidden_printed=N other=N detail=...`. Child exit codes: 0 GOOD ran, 66 EVIL ran,
//! 100+errno the exec failed, 200+signal (vfork mode) the exec'ing child died of a signal.

use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use session_wrapper_tests::raw::{
    args, cstr, environ, execve, exit_errno, fail, fork_child, kill_and_reap, raw_exit, raw_thread_exit, reap, sys,
};

/// A page-aligned, shared-by-address buffer (the same address in a forked child).
#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; 4096]>);
// SAFETY: accessed with volatile writes from racing threads on purpose; the bytes are plain
// data and every reader tolerates any state.
unsafe impl Sync for Page {}

static PATHBUF: Page = Page(UnsafeCell::new([0; 4096]));
static ARGBUF: Page = Page(UnsafeCell::new([0; 4096]));
static ENVBUF: Page = Page(UnsafeCell::new([0; 4096]));
static STARTED: AtomicBool = AtomicBool::new(false);
static CUR_PID: AtomicI32 = AtomicI32::new(0);
static ARMED: AtomicU64 = AtomicU64::new(0);
static ATTEMPT: AtomicU64 = AtomicU64::new(0);

fn page_ptr(p: &'static Page) -> *mut u8 {
    p.0.get().cast()
}

/// execve of the attack's inputs; the kernel validates the pointers.
fn execve_raw(path: *const u8, argv: *const u64, envp: *const *const libc::c_char) -> i64 {
    execve(path.cast(), argv.cast(), envp)
}

/// In a forked child: exec, or exit with the errno ([`exit_errno`]).
fn exec_or_exit(path: *const u8, argv: *const u64, envp: *const *const libc::c_char) -> ! {
    exit_errno(execve_raw(path, argv, envp))
}

/// One 8-byte word to flip between two values.
#[derive(Debug, Clone, Copy)]
struct Word {
    at: *mut u64,
    a: u64,
    b: u64,
}
// SAFETY: the pointer targets a static page that lives for the whole program.
unsafe impl Send for Word {}

/// Writes `good` into `buf` and returns the aligned words that differ between `good` and
/// `evil` (both NUL-padded), so that a flip writes whole words.
fn words(buf: *mut u8, good: &[u8], evil: &[u8]) -> Vec<Word> {
    assert_eq!(good.len(), evil.len(), "GOOD and EVIL must have the same length");
    assert!(good.len() + 16 < 4096);
    let mut g = good.to_vec();
    let mut e = evil.to_vec();
    while g.len() & 7 != 0 || g.len() == good.len() {
        g.push(0);
        e.push(0);
    }
    // SAFETY: `buf` is a 4096-byte page and g fits in it.
    unsafe { std::ptr::copy_nonoverlapping(g.as_ptr(), buf, g.len()) };
    let mut out = Vec::new();
    for i in (0..g.len()).step_by(8) {
        let ga = u64::from_ne_bytes(g[i..i + 8].try_into().unwrap_or_default());
        let ea = u64::from_ne_bytes(e[i..i + 8].try_into().unwrap_or_default());
        if ga != ea {
            // SAFETY: i + 8 <= g.len() <= 4096, and the page is 8-aligned.
            out.push(Word { at: unsafe { buf.add(i) }.cast(), a: ga, b: ea });
        }
    }
    out
}

fn set_words(ws: &[Word], evil: bool) {
    for w in ws {
        // SAFETY: each word lies inside a static page; racing writes are the point.
        unsafe { std::ptr::write_volatile(w.at, if evil { w.b } else { w.a }) };
    }
}

fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Flips forever between the two states with a varying dwell time.
fn flip_forever(ws: &[Word]) -> ! {
    let mut x: u32 = 0x9e37_79b9 ^ std::process::id();
    loop {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        set_words(ws, false);
        spin(x & 0x3ff);
        set_words(ws, true);
        spin((x >> 10) & 0x3ff);
    }
}

/// The constant argv used by path attacks: ["prog", NULL], leaked for the program's life.
fn const_argv() -> *const u64 {
    let s: &'static [u8] = b"prog\0";
    let v: &'static mut [u64; 2] = Box::leak(Box::new([s.as_ptr() as u64, 0]));
    v.as_ptr()
}

#[derive(Debug, Default)]
struct Tally {
    attempts: u64,
    ok: u64,
    denied: u64,
    killed: u64,
    evil: u64,
    other: u64,
    detail: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, status: i32) {
        self.attempts += 1;
        let key = if libc::WIFEXITED(status) {
            match libc::WEXITSTATUS(status) {
                0 => {
                    self.ok += 1;
                    return;
                }
                66 => {
                    self.evil += 1;
                    "evil-ran".to_string()
                }
                c if (100..200).contains(&c) => {
                    let e = c - 100;
                    if e == libc::EACCES {
                        self.denied += 1;
                        return;
                    }
                    self.other += 1;
                    format!("errno{e}")
                }
                c if c > 200 => {
                    if c - 200 == libc::SIGKILL {
                        self.killed += 1;
                        return;
                    }
                    self.other += 1;
                    format!("signal{}", c - 200)
                }
                c => {
                    self.other += 1;
                    format!("exit{c}")
                }
            }
        } else if libc::WIFSIGNALED(status) {
            if libc::WTERMSIG(status) == libc::SIGKILL {
                self.killed += 1;
                return;
            }
            self.other += 1;
            format!("signal{}", libc::WTERMSIG(status))
        } else {
            self.other += 1;
            format!("status{status}")
        };
        *self.detail.entry(key).or_default() += 1;
    }
}

/// Redirects standard output or error (`fd`) to `path` (append); children inherit it.
fn redirect(fd: i32, path: &std::path::Path) {
    let c = cstr(path.as_os_str().as_bytes());
    let target = fd;
    // SAFETY: opening a file and duplicating it onto `target`.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND, 0o644);
        if fd < 0 {
            fail("open output file");
        }
        libc::dup2(fd, target);
        libc::close(fd);
    }
}

struct Args {
    mode: String,
    secs: u64,
    max: u64,
    good: Vec<u8>,
    evil: Vec<u8>,
    work: std::path::PathBuf,
}

fn main() {
    let a = args(6..=6, "usage: sw-attack-race MODE SECS MAX GOOD EVIL WORKDIR");
    let args = Args {
        mode: a[0].to_string_lossy().into_owned(),
        secs: a[1].to_string_lossy().parse().unwrap_or(5),
        max: a[2].to_string_lossy().parse().unwrap_or(1000),
        good: a[3].as_bytes().to_vec(),
        evil: a[4].as_bytes().to_vec(),
        work: std::path::PathBuf::from(&a[5]),
    };
    let out = args.work.join(format!("out.{}", args.mode));
    // Our own summary goes to the real stdout; children write to the file.
    // SAFETY: duplicating fd 1 to keep it.
    let real_stdout = unsafe { libc::dup(1) };
    redirect(1, &out);
    redirect(2, &args.work.join(format!("err.{}", args.mode)));
    let tally = match args.mode.as_str() {
        "thread-path" => thread_mode(&args, Target::Path),
        "thread-argv" => thread_mode(&args, Target::ArgvPointer),
        "thread-argv-bytes" => thread_mode(&args, Target::ArgvBytes),
        "envp-flip" => thread_mode(&args, Target::Envp),
        "clonevm-path" => clonevm_mode(&args),
        "vfork-path" => vfork_mode(&args),
        "memfd-path" => shared_mode(&args, false),
        "devshm-path" => shared_mode(&args, true),
        "pvw-path" => remote_mode(&args, Remote::ProcessVm),
        "procmem-path" => remote_mode(&args, Remote::ProcMem),
        "symlink" => swap_mode(&args, Swap::Symlink),
        "rename-dir" => swap_mode(&args, Swap::Dir),
        "cwd" => swap_mode(&args, Swap::Cwd),
        "tamper-argv" => tamper_mode(&args),
        other => fail(&format!("unknown mode {other}")),
    };
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    let forbidden_printed = printed.lines().filter(|l| l.contains("FORBIDDEN")).count();
    let line = format!(
        "mode={} attempts={} ok={} denied={} killed={} evil={} forbidden_printed={} other={} detail={:?}\n",
        args.mode, tally.attempts, tally.ok, tally.denied, tally.killed, tally.evil, forbidden_printed, tally.other, tally.detail
    );
    // SAFETY: writing to the saved stdout.
    unsafe { libc::write(real_stdout, line.as_ptr().cast(), line.len()) };
}

fn run_loop(args: &Args, mut attempt: impl FnMut(u64) -> i32) -> Tally {
    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let mut t = Tally::default();
    let mut i = 0;
    while i < args.max && Instant::now() < deadline {
        let st = attempt(i);
        t.add(st);
        i += 1;
    }
    t
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Path,
    ArgvPointer,
    ArgvBytes,
    Envp,
}

/// The path, argv and envp of an attempt, and the words a flipper flips.
struct Prepared {
    path: *const u8,
    argv: *const u64,
    envp: *const *const libc::c_char,
    flip: Vec<Word>,
}

fn prepare(args: &Args, target: Target) -> Prepared {
    match target {
        Target::Path => {
            let flip = words(page_ptr(&PATHBUF), &args.good, &args.evil);
            Prepared { path: page_ptr(&PATHBUF), argv: const_argv(), envp: environ(), flip }
        }
        Target::ArgvPointer | Target::ArgvBytes => {
            let path: &'static CString = Box::leak(Box::new(cstr(&args.good)));
            let argv0: &'static [u8] = b"echo\0";
            let allowed: &'static [u8] = b"allowed\0";
            let forbidden: &'static [u8] = b"FORBIDDEN\0";
            let base = page_ptr(&ARGBUF);
            if target == Target::ArgvPointer {
                let v: &'static mut [u64; 3] =
                    Box::leak(Box::new([argv0.as_ptr() as u64, allowed.as_ptr() as u64, 0]));
                let at: *mut u64 = &mut v[1];
                let flip = vec![Word { at, a: allowed.as_ptr() as u64, b: forbidden.as_ptr() as u64 }];
                Prepared { path: path.as_ptr().cast(), argv: v.as_ptr(), envp: environ(), flip }
            } else {
                let flip = words(base, b"allowed\0\0", b"FORBIDDEN");
                let v: &'static mut [u64; 3] = Box::leak(Box::new([argv0.as_ptr() as u64, base as u64, 0]));
                Prepared { path: path.as_ptr().cast(), argv: v.as_ptr(), envp: environ(), flip }
            }
        }
        Target::Envp => {
            let path: &'static CString = Box::leak(Box::new(cstr(&args.good)));
            let base = page_ptr(&ENVBUF);
            let flip = words(base, b"XD_PRELOAD=/nonexistent/sw-attack.so", b"LD_PRELOAD=/nonexistent/sw-attack.so");
            // The process environment, with the flipping entry in the middle.
            let mut env: Vec<u64> = Vec::new();
            let mut p = environ();
            // SAFETY: environ is a NULL-terminated array of C strings.
            unsafe {
                while !(*p).is_null() {
                    env.push(*p as u64);
                    p = p.add(1);
                }
            }
            let mid = env.len() / 2;
            env.insert(mid, base as u64);
            env.push(0);
            let env: &'static mut Vec<u64> = Box::leak(Box::new(env));
            Prepared { path: path.as_ptr().cast(), argv: const_argv(), envp: env.as_ptr().cast(), flip }
        }
    }
}

/// In a forked child: a sibling thread that flips `ws` forever; returns once it runs.
fn flip_in_a_thread(ws: &[Word]) {
    let flip = ws.to_vec();
    std::thread::spawn(move || {
        STARTED.store(true, Ordering::SeqCst);
        flip_forever(&flip)
    });
    wait_started();
}

/// Spins until the flipper has started.
fn wait_started() {
    while !STARTED.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
}

fn thread_mode(args: &Args, target: Target) -> Tally {
    let p = prepare(args, target);
    run_loop(args, |_| {
        let pid = fork_child(|| {
            flip_in_a_thread(&p.flip);
            exec_or_exit(p.path, p.argv, p.envp)
        });
        reap(pid)
    })
}

extern "C" fn clonevm_flipper(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the leaked Vec<Word> of the parent, whose memory we share.
    let flip: &Vec<Word> = unsafe { &*(arg as *const Vec<Word>) };
    // Die with the exec'ing process (our parent): PR_SET_PDEATHSIG, then check it is alive.
    // SAFETY: raw prctl and getppid.
    unsafe {
        sys(libc::SYS_prctl, [libc::PR_SET_PDEATHSIG as u64, libc::SIGKILL as u64, 0, 0, 0, 0]);
        if sys(libc::SYS_getppid, [0; 6]) == 1 {
            raw_thread_exit(0);
        }
    }
    STARTED.store(true, Ordering::SeqCst);
    flip_forever(flip)
}

fn new_stack() -> *mut libc::c_void {
    let stack: &'static mut Vec<u8> = Box::leak(Box::new(vec![0u8; 256 * 1024]));
    let top = stack.as_mut_ptr() as usize + stack.len();
    (top & !15) as *mut libc::c_void
}

fn clonevm_mode(args: &Args) -> Tally {
    let p = prepare(args, Target::Path);
    let flip: &'static Vec<Word> = Box::leak(Box::new(p.flip.clone()));
    let stack = new_stack();
    run_loop(args, |_| {
        let pid = fork_child(|| {
            // SAFETY: a CLONE_VM sibling process on its own stack; it only flips and uses raw
            // system calls.
            let r = unsafe {
                libc::clone(
                    clonevm_flipper,
                    stack,
                    libc::CLONE_VM | libc::SIGCHLD,
                    flip as *const Vec<Word> as *mut libc::c_void,
                )
            };
            if r < 0 {
                raw_exit(111);
            }
            wait_started();
            exec_or_exit(p.path, p.argv, p.envp)
        });
        reap(pid)
    })
}

struct VforkExec {
    path: *const u8,
    argv: *const u64,
    envp: *const *const libc::c_char,
}

extern "C" fn vfork_execer(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to a VforkExec on the (suspended) parent's stack.
    let e: &VforkExec = unsafe { &*(arg as *const VforkExec) };
    let r = execve_raw(e.path, e.argv, e.envp);
    // exit, not exit_group: this is a separate process sharing the parent's memory.
    raw_thread_exit(100 + (-r) as i32)
}

fn vfork_mode(args: &Args) -> Tally {
    let p = prepare(args, Target::Path);
    let stack = new_stack();
    run_loop(args, |_| {
        let pid = fork_child(|| {
            flip_in_a_thread(&p.flip);
            let e = VforkExec { path: p.path, argv: p.argv, envp: p.envp };
            // SAFETY: vfork semantics: the child runs vfork_execer on its own stack and ends
            // in exec or exit while this thread is suspended.
            let child = unsafe {
                libc::clone(
                    vfork_execer,
                    stack,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    &e as *const VforkExec as *mut libc::c_void,
                )
            };
            if child < 0 {
                raw_exit(111);
            }
            let st = reap(child);
            if libc::WIFEXITED(st) {
                raw_exit(libc::WEXITSTATUS(st))
            }
            raw_exit(200 + libc::WTERMSIG(st))
        });
        reap(pid)
    })
}

fn shared_mode(args: &Args, devshm: bool) -> Tally {
    let fd = if devshm {
        let name = format!("/dev/shm/sw-attack-race-{}", std::process::id());
        let c = cstr(name.as_bytes());
        // SAFETY: creating and unlinking a file of our own.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600) };
        if fd < 0 {
            fail(&format!("open {name}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: as above.
        unsafe { libc::unlink(c.as_ptr()) };
        fd
    } else {
        // SAFETY: creating an anonymous memory file.
        unsafe { libc::memfd_create(c"sw-attack-race".as_ptr(), 0) }
    };
    if fd < 0 {
        fail("memfd_create");
    }
    // SAFETY: sizing and mapping our own file.
    let base = unsafe {
        libc::ftruncate(fd, 4096);
        libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
    };
    if base == libc::MAP_FAILED {
        fail("mmap shared");
    }
    let base = base.cast::<u8>();
    let flip = words(base, &args.good, &args.evil);
    // The flipper: a separate process writing the shared page.
    let flipper = fork_child(|| {
        // SAFETY: raw prctl.
        unsafe { sys(libc::SYS_prctl, [libc::PR_SET_PDEATHSIG as u64, libc::SIGKILL as u64, 0, 0, 0, 0]) };
        flip_forever(&flip)
    });
    let argv = const_argv();
    let envp = environ();
    let t = run_loop(args, |_| {
        let pid = fork_child(|| exec_or_exit(base, argv, envp));
        reap(pid)
    });
    kill_and_reap(flipper);
    t
}

/// For a thread of the parent: spins until an attempt's child is running; its pid.
fn next_child() -> i32 {
    loop {
        let pid = CUR_PID.load(Ordering::SeqCst);
        if pid != 0 {
            return pid;
        }
        std::hint::spin_loop();
    }
}

/// Spins until the attempt whose child is `pid` is over.
fn until_gone(pid: i32) {
    while CUR_PID.load(Ordering::SeqCst) == pid {
        std::hint::spin_loop();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Remote {
    ProcessVm,
    ProcMem,
}

fn tracer_pid(fd: i32) -> Option<i32> {
    let mut buf = [0u8; 2048];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return None;
    }
    let text = &buf[..n as usize];
    let at = text.windows(10).position(|w| w == b"TracerPid:")?;
    let rest = &text[at + 10..];
    let digits: String = rest
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

/// Writes `bytes` at `addr` in process `pid`; false when it failed.
fn remote_write(how: Remote, pid: i32, memfd: i32, addr: u64, bytes: &[u8]) -> bool {
    match how {
        Remote::ProcessVm => {
            let local = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
            let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: bytes.len() };
            // SAFETY: one local and one remote iovec, valid for the call.
            let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
            n == bytes.len() as isize
        }
        Remote::ProcMem => {
            // SAFETY: writing a local buffer to an open /proc/PID/mem.
            let n = unsafe { libc::pwrite(memfd, bytes.as_ptr().cast(), bytes.len(), addr as libc::off_t) };
            n == bytes.len() as isize
        }
    }
}

fn remote_mode(args: &Args, how: Remote) -> Tally {
    let p = prepare(args, Target::Path);
    let flip = p.flip.clone();
    // The flipper thread, in this (the parent) process.
    std::thread::spawn(move || loop {
        let pid = next_child();
        let n = ATTEMPT.load(Ordering::SeqCst);
        let status = cstr(format!("/proc/{pid}/status").as_bytes());
        // SAFETY: opening procfs files of our own child.
        let sfd = unsafe { libc::open(status.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let memfd = if how == Remote::ProcMem {
            let mem = cstr(format!("/proc/{pid}/mem").as_bytes());
            // SAFETY: as above.
            unsafe { libc::open(mem.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }
        } else {
            -1
        };
        ARMED.store(n + 1, Ordering::SeqCst);
        let bytes = |evil: bool| -> Vec<(u64, [u8; 8])> {
            flip.iter().map(|w| (w.at as u64, if evil { w.b } else { w.a }.to_ne_bytes())).collect()
        };
        let (good_b, evil_b) = (bytes(false), bytes(true));
        if n % 2 == 1 {
            // Wait for the supervisor's attach (its check is done), then write EVIL once.
            while CUR_PID.load(Ordering::SeqCst) == pid {
                if tracer_pid(sfd).is_some_and(|t| t != 0) {
                    for (addr, b) in &evil_b {
                        remote_write(how, pid, memfd, *addr, b);
                    }
                    break;
                }
            }
        } else {
            let mut evil = false;
            while CUR_PID.load(Ordering::SeqCst) == pid {
                evil = !evil;
                let ws = if evil { &evil_b } else { &good_b };
                let mut ok = true;
                for (addr, b) in ws {
                    ok &= remote_write(how, pid, memfd, *addr, b);
                }
                if !ok {
                    break;
                }
            }
        }
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(sfd);
            if memfd >= 0 {
                libc::close(memfd);
            }
        }
        until_gone(pid);
    });
    run_loop(args, |i| {
        let mut go = [0i32; 2];
        // SAFETY: a pipe to release the child once the flipper is armed.
        unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) };
        set_words(&p.flip, false);
        let (path, argv, envp) = (p.path, p.argv, p.envp);
        let pid = fork_child(move || {
            let mut b = [0u8; 1];
            // SAFETY: raw read and close on the inherited pipe.
            unsafe {
                sys(libc::SYS_close, [go[1] as u64, 0, 0, 0, 0, 0]);
                sys(libc::SYS_read, [go[0] as u64, b.as_mut_ptr() as u64, 1, 0, 0, 0]);
            }
            exec_or_exit(path, argv, envp)
        });
        ATTEMPT.store(i, Ordering::SeqCst);
        CUR_PID.store(pid, Ordering::SeqCst);
        while ARMED.load(Ordering::SeqCst) != i + 1 {
            std::hint::spin_loop();
        }
        // SAFETY: releasing the child and closing our pipe ends.
        unsafe {
            libc::close(go[0]);
            libc::write(go[1], b"g".as_ptr().cast(), 1);
            libc::close(go[1]);
        }
        let st = reap(pid);
        CUR_PID.store(0, Ordering::SeqCst);
        st
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Swap {
    Symlink,
    Dir,
    Cwd,
}

fn exchange(a: &CString, b: &CString) -> bool {
    // SAFETY: renameat2 with two C strings.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

fn swap_mode(args: &Args, how: Swap) -> Tally {
    let w = &args.work;
    let good = std::ffi::OsStr::from_bytes(&args.good);
    let evil = std::ffi::OsStr::from_bytes(&args.evil);
    let (a, b, target) = match how {
        Swap::Symlink => {
            std::os::unix::fs::symlink(good, w.join("l1")).unwrap_or_else(|e| fail(&format!("symlink: {e}")));
            std::os::unix::fs::symlink(evil, w.join("l2")).unwrap_or_else(|e| fail(&format!("symlink: {e}")));
            (w.join("l1"), w.join("l2"), w.join("l1").into_os_string())
        }
        Swap::Dir | Swap::Cwd => {
            for (d, t) in [("d1", good), ("d2", evil)] {
                std::fs::create_dir(w.join(d)).unwrap_or_else(|e| fail(&format!("mkdir: {e}")));
                std::os::unix::fs::symlink(t, w.join(d).join("prog")).unwrap_or_else(|e| fail(&format!("symlink: {e}")));
            }
            let target = if how == Swap::Cwd {
                std::env::set_current_dir(w).unwrap_or_else(|e| fail(&format!("chdir: {e}")));
                std::ffi::OsString::from("d1/prog")
            } else {
                w.join("d1").join("prog").into_os_string()
            };
            (w.join("d1"), w.join("d2"), target)
        }
    };
    let ca = cstr(a.as_os_str().as_bytes());
    let cb = cstr(b.as_os_str().as_bytes());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stop2 = std::sync::Arc::clone(&stop);
    let flipper = std::thread::spawn(move || {
        let mut x: u32 = 0x1234_5678;
        while !stop2.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if !exchange(&ca, &cb) {
                fail(&format!("renameat2: {}", std::io::Error::last_os_error()));
            }
            spin(x & 0xfff);
        }
    });
    let path: &'static CString = Box::leak(Box::new(cstr(target.as_bytes())));
    let argv = const_argv();
    let envp = environ();
    let t = run_loop(args, |_| {
        let pid = fork_child(|| exec_or_exit(path.as_ptr().cast(), argv, envp));
        reap(pid)
    });
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    t
}

/// The start of the argument strings of process `pid` (`/proc/PID/stat` field 48).
fn arg_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after ')'; arg_start is field 48.
    rest.split_whitespace().nth(45)?.parse().ok()
}

fn tamper_mode(args: &Args) -> Tally {
    let good = args.good.clone();
    std::thread::spawn(move || loop {
        let pid = next_child();
        let exe = format!("/proc/{pid}/exe");
        let status = cstr(format!("/proc/{pid}/status").as_bytes());
        while CUR_PID.load(Ordering::SeqCst) == pid {
            if std::fs::read_link(&exe).is_ok_and(|p| p.as_os_str().as_bytes() == good.as_slice()) {
                // The new image exists; wait until the supervisor has checked it and let it
                // go (no tracer any more), then rewrite argv[1] on its stack.
                // SAFETY: opening a procfs file of our own child.
                let sfd = unsafe { libc::open(status.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                while CUR_PID.load(Ordering::SeqCst) == pid {
                    match tracer_pid(sfd) {
                        Some(0) => break,
                        Some(_) => continue,
                        None => break,
                    }
                }
                // SAFETY: closing it.
                unsafe { libc::close(sfd) };
                if let Some(start) = arg_start(pid) {
                    // argv[0] is "echo": argv[1] starts 5 bytes later. process_vm_writev,
                    // else /proc/PID/mem.
                    if !remote_write(Remote::ProcessVm, pid, -1, start + 5, b"FORBIDDEN\0") {
                        let mem = cstr(format!("/proc/{pid}/mem").as_bytes());
                        // SAFETY: opening a procfs file of our own child.
                        let mfd = unsafe { libc::open(mem.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
                        if mfd >= 0 {
                            remote_write(Remote::ProcMem, pid, mfd, start + 5, b"FORBIDDEN\0");
                            // SAFETY: closing it.
                            unsafe { libc::close(mfd) };
                        }
                    }
                }
                break;
            }
        }
        until_gone(pid);
    });
    let path: &'static CString = Box::leak(Box::new(cstr(&args.good)));
    let a0: &'static [u8] = b"echo\0";
    let a1: &'static [u8] = b"allowedXY\0";
    let argv: &'static [u64; 3] = Box::leak(Box::new([a0.as_ptr() as u64, a1.as_ptr() as u64, 0]));
    let envp = environ();
    run_loop(args, |_| {
        let pid = fork_child(|| exec_or_exit(path.as_ptr().cast(), argv.as_ptr(), envp));
        CUR_PID.store(pid, Ordering::SeqCst);
        let st = reap(pid);
        CUR_PID.store(0, Ordering::SeqCst);
        st
    })
}
