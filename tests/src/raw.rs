//! What the attack programs (`sw-attack-*`) share: raw system calls that bypass the C library
//! (so that a test controls every argument and register), and small helpers.

use std::ffi::CString;

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
    // SAFETY: exit_group never returns.
    unsafe {
        sys(libc::SYS_exit_group, [code as u64, 0, 0, 0, 0, 0]);
    }
    loop {
        std::hint::spin_loop();
    }
}

/// Reports a set-up failure of the attack program and exits 111 (the tests treat it as an
/// error of the harness, never as a win or a loss).
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

/// The errno of the last failed C library call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Ends the latency prober (`prober`, a child of this process) and prints the worst delay it
/// reported on `pipe` (one number of milliseconds per line, the last the worst so far) as
/// `probe worst_ms=N`.
pub fn end_prober(prober: i32, pipe: i32) {
    // SAFETY: ending our own child, then reading its reports.
    unsafe {
        libc::kill(prober, libc::SIGKILL);
        let mut st = 0;
        libc::waitpid(prober, &mut st, 0);
    }
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
