//! `session-wrapper-supervisor`: the per-session supervisor started by `pam_session_wrapper.so`.
//! Not meant to be run by hand; see session-wrapper(8).
//!
//! Its `main` is the C entry point, without the Rust runtime's start-up: that reads
//! `/proc/self/maps` to place a guard page below the main thread's stack and installs a handler
//! on an alternate stack to report an overflow (0.16 ms of a traced open, 0.05 ms in an A/B of
//! whole opens; docs/BENCHMARKS.md, sixth pass). An overflow here ends the supervisor with
//! `SIGSEGV`, which the watchdog reports. What else the start-up does is done below: `SIGPIPE`
//! ignored (a closed socket must not kill the supervisor). Its standard descriptors are the
//! module's `/dev/null`.

// The test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// The process's entry point (see the module documentation).
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // SAFETY: SIG_IGN installs no handler code.
    let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) };
    let pam = std::env::args().nth(1).as_deref() == Some("--pam");
    if !pam {
        eprintln!("session-wrapper-supervisor: started by pam_session_wrapper.so (with --pam), not by hand; see `session-wrapper run`");
        return 2;
    }
    // A panic must not unwind into C (an abort, and a core dump of a root process holding the
    // configuration, before it made itself undumpable): it ends the process with 101, as the
    // Rust start-up did, after its message on stderr (the module's /dev/null).
    std::panic::catch_unwind(session_wrapper::session::from_pam::serve_pam_session).unwrap_or(101)
}
