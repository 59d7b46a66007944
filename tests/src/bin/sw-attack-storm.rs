//! Attack program: an exec storm with signals (attack class 10).
//!
//! `sw-attack-storm PROCS THREADS SECS GOOD EVIL [MULTI_EVERY]`
//!
//! Forks PROCS worker processes with THREADS spawner threads each. Every spawner forks
//! children in a loop for SECS seconds; each child execs GOOD or EVIL (alternately), after
//! installing no-op handlers (without `SA_RESTART`) for SIGCHLD, SIGWINCH, SIGURG and SIGUSR1
//! so that those signals interrupt it on its way into the exec (an exec interrupted before the
//! supervisor received it fails with EINTR and is retried). After the exec, SIGUSR1 is fatal
//! again: a child killed by it (`s10`) may or may not have exec'd. A signaller thread per worker
//! keeps sending those signals, and SIGSTOP followed by SIGCONT, to the live children (through
//! pidfds, so never to a recycled pid). Every MULTI_EVERY-th child of spawner 0 (default 16;
//! 0: never) is a *multi-exec*: 32 threads of one process call execve at the same instant
//! (half GOOD, half EVIL); exactly one GOOD may win. With PROCS = 0 the program only runs
//! multi-exec children, one after the other, for SECS seconds (or
//! THREADS of them), each given 5 s, while a prober process of the same session execs GOOD
//! every 20 ms; it prints `probe worst_ms=N`, the slowest answer the prober got.
//! With PROCS = 0 and MULTI_EVERY = 1, the multi-exec children are *ordered* instead: thread
//! Z execs GOOD with a 2 MB argv (the supervisor attaches to it, and it takes long to reach the
//! kernel's exec lock), then thread W execs GOOD with a tiny argv (it wins the lock and kills
//! the other threads, Z becoming a traced zombie only the supervisor can reap), then threads
//! C1..C8 exec GOOD (the supervisor attaches to them while W holds the lock).
//!
//! Prints one line per child: `R PID KIND OUTCOME` (KIND `g`, `e` or `m`; OUTCOME `x0` for
//! exit 0, `x66` EVIL ran, `eN` exec failed with errno N, `sN` killed by signal N, `hang`),
//! then `done`. Exit 0.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use session_wrapper_tests::raw::{
    args, cstr, end_prober, environ, exit_errno, fork_child, kill_and_reap, raw_exit, reap, short_status, start_prober, sys,
    wait_child,
};

extern "C" fn noop(_: libc::c_int) {}

/// In a forked child: no-op handlers without SA_RESTART (async-signal-safe calls only).
fn install_handlers() {
    for sig in [libc::SIGCHLD, libc::SIGWINCH, libc::SIGURG, libc::SIGUSR1] {
        // SAFETY: a zeroed sigaction with a plain handler; sigaction is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

struct Exec {
    path: CString,
    argv: [*const libc::c_char; 2],
}
// SAFETY: the pointers in `argv` point to static C strings; nothing is mutated after creation.
unsafe impl Send for Exec {}
// SAFETY: as above.
unsafe impl Sync for Exec {}

/// execve, retried when a signal interrupted it before the supervisor received it (the
/// kernel then fails it with EINTR, which a robust program retries).
fn exec_raw(e: &Exec) -> i64 {
    for _ in 0..10_000 {
        // SAFETY: a valid path, a NULL-terminated argv and the process environment.
        let r = unsafe { sys(libc::SYS_execve, [e.path.as_ptr() as u64, e.argv.as_ptr() as u64, environ() as u64, 0, 0, 0]) };
        if r != -i64::from(libc::EINTR) {
            return r;
        }
    }
    -i64::from(libc::EINTR)
}

const MULTI_THREADS: usize = 32;

/// Shared by the threads of a multi-exec child (in the child's memory after fork).
struct Multi {
    ready: AtomicU32,
    good: *const Exec,
    evil: *const Exec,
}

extern "C" fn multi_thread(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to (Multi, index) prepared by the child before cloning.
    let (m, i): &(*const Multi, usize) = unsafe { &*(arg as *const (*const Multi, usize)) };
    // SAFETY: the Multi lives in the child's memory for as long as the child.
    let m: &Multi = unsafe { &**m };
    m.ready.fetch_add(1, Ordering::SeqCst);
    while m.ready.load(Ordering::SeqCst) < MULTI_THREADS as u32 {
        std::hint::spin_loop();
    }
    // SAFETY: the Exec structures outlive the child.
    let e = unsafe { &*(if i & 1 == 0 { m.good } else { m.evil }) };
    exec_raw(e);
    // Refused (EVIL) or lost: wait to be ended by the winner's exec.
    loop {
        // SAFETY: pause until killed.
        unsafe { sys(libc::SYS_pause, [0; 6]) };
    }
}

/// The body of a multi-exec child: 31 clone threads plus this one exec at once.
fn multi_child(good: &Exec, evil: &Exec, stacks: &[usize]) -> ! {
    let m = Multi { ready: AtomicU32::new(0), good, evil };
    // No allocation here: this is a forked child of a multithreaded process.
    let mut args: [(*const Multi, usize); MULTI_THREADS] = [(std::ptr::null(), 0); MULTI_THREADS];
    for (i, a) in args.iter_mut().enumerate() {
        *a = (&m as *const Multi, i);
    }
    for i in 1..MULTI_THREADS {
        // SAFETY: a thread on its own preallocated stack; it uses raw system calls only.
        let r = unsafe {
            libc::clone(
                multi_thread,
                stacks[i] as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SYSVSEM,
                &args[i] as *const (*const Multi, usize) as *mut libc::c_void,
            )
        };
        if r < 0 {
            raw_exit(112);
        }
    }
    multi_thread(&args[0] as *const (*const Multi, usize) as *mut libc::c_void);
    raw_exit(113)
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open of our own (unreaped) child.
    let r = unsafe { sys(libc::SYS_pidfd_open, [pid as u64, 0, 0, 0, 0, 0]) };
    // SAFETY: a new descriptor we own.
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r as i32) })
}

fn send(fd: &OwnedFd, sig: i32) {
    // SAFETY: pidfd_send_signal with no siginfo.
    unsafe { sys(libc::SYS_pidfd_send_signal, [fd.as_raw_fd() as u64, sig as u64, 0, 0, 0, 0]) };
}

type Slot = Arc<Mutex<Option<OwnedFd>>>;

fn worker(threads: usize, secs: u64, multi_every: u64, good: Arc<Exec>, evil: Arc<Exec>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let slots: Vec<Slot> = (0..threads).map(|_| Arc::new(Mutex::new(None))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let signaller = {
        let slots = slots.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut x: u32 = 0x2545_f491 ^ std::process::id();
            while !stop.load(Ordering::Relaxed) {
                for s in &slots {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if x & 3 != 0 {
                        continue;
                    }
                    let g = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let Some(fd) = g.as_ref() else { continue };
                    match x % 6 {
                        0 => send(fd, libc::SIGCHLD),
                        1 => send(fd, libc::SIGWINCH),
                        2 => send(fd, libc::SIGURG),
                        3 => send(fd, libc::SIGUSR1),
                        _ => {
                            send(fd, libc::SIGSTOP);
                            for _ in 0..(x >> 20) {
                                std::hint::spin_loop();
                            }
                            send(fd, libc::SIGCONT);
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    // Stacks for multi-exec threads, allocated before any fork.
    let stacks: Arc<Vec<usize>> = Arc::new(
        (0..MULTI_THREADS)
            .map(|_| {
                let v: &'static mut Vec<u8> = Box::leak(Box::new(vec![0u8; 64 * 1024]));
                (v.as_mut_ptr() as usize + v.len()) & !15
            })
            .collect(),
    );
    let out = Arc::new(Mutex::new(Vec::<String>::new()));
    let spawners: Vec<_> = (0..threads)
        .map(|t| {
            let (good, evil, slot, out, stacks) =
                (Arc::clone(&good), Arc::clone(&evil), Arc::clone(&slots[t]), Arc::clone(&out), Arc::clone(&stacks));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let kind = if t == 0 && n.checked_rem(multi_every) == Some(0) {
                        'm'
                    } else if n & 1 == 0 {
                        'g'
                    } else {
                        'e'
                    };
                    // SAFETY: the child only makes async-signal-safe calls and raw system
                    // calls, then execs or exits.
                    let pid = unsafe { libc::fork() };
                    if pid < 0 {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    if pid == 0 {
                        install_handlers();
                        match kind {
                            'm' => multi_child(&good, &evil, &stacks),
                            'g' => exit_errno(exec_raw(&good)),
                            _ => exit_errno(exec_raw(&evil)),
                        }
                    }
                    *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = pidfd_open(pid);
                    let t0 = Instant::now();
                    let mut last_cont = Instant::now();
                    let res = loop {
                        let mut info: libc::siginfo_t = {
                            // SAFETY: siginfo_t is plain data.
                            unsafe { std::mem::zeroed() }
                        };
                        // Wait without reaping, so the pid stays ours while the slot holds it.
                        // SAFETY: waitid on our own child.
                        let r = unsafe {
                            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
                        };
                        // SAFETY: reading the pid field of a filled siginfo.
                        if r == 0 && unsafe { info.si_pid() } == pid {
                            *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                            break short_status(reap(pid));
                        }
                        if last_cont.elapsed() > Duration::from_millis(200) {
                            // Never leave a child stopped by our own SIGSTOP.
                            if let Some(fd) = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
                                send(fd, libc::SIGCONT);
                            }
                            last_cont = Instant::now();
                        }
                        if t0.elapsed() > Duration::from_secs(15) {
                            *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                            kill_and_reap(pid);
                            break "hang".to_string();
                        }
                        std::thread::sleep(Duration::from_micros(300));
                    };
                    out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(format!("R {pid} {kind} {res}"));
                }
            })
        })
        .collect();
    for s in spawners {
        let _ = s.join();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = signaller.join();
    // One write per line: lines of different workers never interleave.
    let lines = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut so = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(so, "{l}");
        let _ = so.flush();
    }
}

fn main() {
    let a = args(5..=6, "usage: sw-attack-storm PROCS THREADS SECS GOOD EVIL [MULTI_EVERY]");
    let multi_every: u64 = a.get(5).map_or(16, |m| m.to_string_lossy().parse().unwrap_or(16));
    let procs: usize = a[0].to_string_lossy().parse().unwrap_or(8);
    let threads: usize = a[1].to_string_lossy().parse().unwrap_or(4);
    let secs: u64 = a[2].to_string_lossy().parse().unwrap_or(5);
    let mk = |p: &std::ffi::OsString, a0: &'static std::ffi::CStr| {
        Arc::new(Exec { path: cstr(p.as_bytes()), argv: [a0.as_ptr(), std::ptr::null()] })
    };
    let good = mk(&a[3], c"good");
    let evil = mk(&a[4], c"evil");
    if procs == 0 && multi_every == 1 {
        deadlock_only(threads, secs, &good);
        println!("done");
        return;
    }
    if procs == 0 {
        // Multi-exec children only, one at a time, no signals: spawner 0 with every child a
        // multi-exec, THREADS of them at most.
        multi_only(threads, secs, &good, &evil);
        println!("done");
        return;
    }
    // This process is single-threaded while it forks: each worker runs and exits.
    let workers: Vec<i32> = (0..procs)
        .map(|_| {
            fork_child(|| {
                worker(threads, secs, multi_every, Arc::clone(&good), Arc::clone(&evil));
                raw_exit(0)
            })
        })
        .collect();
    for w in workers {
        reap(w);
    }
    println!("done");
}

fn multi_only(max: usize, secs: u64, good: &Exec, evil: &Exec) {
    let stacks: Vec<usize> = (0..MULTI_THREADS)
        .map(|_| {
            let v: &'static mut Vec<u8> = Box::leak(Box::new(vec![0u8; 64 * 1024]));
            (v.as_mut_ptr() as usize + v.len()) & !15
        })
        .collect();
    // A prober process: execs GOOD every 20 ms and reports the slowest answer, to show whether
    // the whole session (not only the multi-exec child) waits.
    let (prober, pipe) = start_prober(|| exec_raw(good), Some(Duration::from_secs(secs + 30)));
    one_at_a_time(max, secs, 'm', || multi_child(good, evil, &stacks));
    end_prober(prober, pipe);
}

/// Forks children that run `child` (which never returns) one after the other (single-threaded
/// here), `max` at most and for at most `secs` seconds; each is given 5 s, then killed. Prints
/// `R PID KIND OUTCOME ms=N` for each, or `R PID KIND hang`.
fn one_at_a_time(max: usize, secs: u64, kind: char, child: impl Fn()) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    while n < max && Instant::now() < deadline {
        n += 1;
        let pid = fork_child(&child);
        let t0 = Instant::now();
        let res = match wait_child(pid, Duration::from_secs(5), Duration::from_millis(1)) {
            Some(st) => format!("{} ms={}", short_status(st), t0.elapsed().as_millis()),
            None => "hang".to_string(),
        };
        println!("R {pid} {kind} {res}");
    }
}

/// One ordered multi-exec child (see the module documentation), in a process that was
/// single-threaded when it forked (so std threads are fine).
fn ordered_child(good: &Exec) -> ! {
    static PHASE: AtomicU32 = AtomicU32::new(0);
    let big: Vec<CString> = (0..20).map(|_| cstr(&vec![b'z'; 100_000])).collect();
    let mut big_argv: Vec<*const libc::c_char> = std::iter::once(c"z".as_ptr()).chain(big.iter().map(|c| c.as_ptr())).collect();
    big_argv.push(std::ptr::null());
    let big_argv_addr = big_argv.as_ptr() as usize;
    let path = good.path.as_ptr() as usize;
    let small = good.argv.as_ptr() as usize;
    let exec = move |argv: usize| {
        // SAFETY: a valid path, argv and the process environment.
        unsafe { sys(libc::SYS_execve, [path as u64, argv as u64, environ() as u64, 0, 0, 0]) };
        loop {
            // SAFETY: pause until the winner's exec ends this thread.
            unsafe { sys(libc::SYS_pause, [0; 6]) };
        }
    };
    let spin_until = |p: u32| {
        while PHASE.load(Ordering::SeqCst) < p {
            std::hint::spin_loop();
        }
    };
    std::thread::spawn(move || exec(big_argv_addr));
    for _ in 0..8 {
        std::thread::spawn(move || {
            spin_until(2);
            exec(small)
        });
    }
    std::thread::spawn(move || {
        spin_until(1);
        exec(small)
    });
    // Z first, then (after its notification is queued) W, then the Cs.
    std::thread::sleep(Duration::from_micros(300));
    PHASE.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_micros(50));
    PHASE.store(2, Ordering::SeqCst);
    loop {
        // SAFETY: the main thread waits to be ended.
        unsafe { sys(libc::SYS_pause, [0; 6]) };
    }
}

fn deadlock_only(max: usize, secs: u64, good: &Exec) {
    one_at_a_time(max, secs, 'o', || ordered_child(good));
}
