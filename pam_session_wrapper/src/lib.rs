//! `pam_session_wrapper.so`: the PAM session module.
//!
//! One line in a `pam.d` file puts every command of the sessions it opens under per-command
//! authorization: `session required pam_session_wrapper.so`. See pam_session_wrapper(8).
//!
//! The module itself is small: it starts the supervisor (`session-wrapper-supervisor`), which
//! loads the configuration, decides the scope and builds the seccomp filter; the module installs
//! that filter on the process that opens the session and hands the listener over (see
//! [`session`]). libseccomp, the configuration parser and the policy never load into the host.
//!
//! Each exported hook is a thin shim: it checks the handle and the arguments, runs the body
//! under `catch_unwind`, and turns any error or panic into a PAM code and a `pam_syslog` line.
//! Nothing can unwind into sshd, su, sudo or login.

pub mod args;
mod ffi;
pub mod session;
mod spawn;

use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ffi::{Handle, PamHandle, LOG_ERR, PAM_SESSION_ERR, PAM_SUCCESS, PAM_SYSTEM_ERR};

/// Keeps panics out of the host's stderr: a panic is logged through `pam_syslog` instead.
/// The hook belongs to this module's own copy of the Rust runtime, not to the host.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs a hook body safely.
///
/// # Safety
/// The raw arguments must be those PAM passed to the hook.
unsafe fn shim(
    pamh: *mut PamHandle,
    argc: c_int,
    argv: *const *const c_char,
    on_panic: c_int,
    body: impl FnOnce(Handle, &[String]) -> c_int,
) -> c_int {
    quiet_panics();
    // SAFETY: `pamh` is what PAM passed to this hook.
    let Some(h) = (unsafe { Handle::new(pamh) }) else { return PAM_SYSTEM_ERR };
    // SAFETY: `argv` holds `argc` entries, as PAM passed them.
    let args = match unsafe { ffi::args(argc, argv) } {
        Ok(a) => a,
        Err(e) => {
            h.log(LOG_ERR, &format!("refusing: bad module arguments ({e})"));
            return PAM_SESSION_ERR;
        }
    };
    match catch_unwind(AssertUnwindSafe(|| body(h, &args))) {
        Ok(code) => code,
        Err(p) => {
            h.log(LOG_ERR, &format!("internal error: {}", panic_text(p.as_ref())));
            on_panic
        }
    }
}

/// `pam_sm_open_session(3)`.
///
/// # Safety
/// Called by libpam with a valid handle and its module arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe {
        shim(pamh, argc, argv, PAM_SESSION_ERR, |h, args| {
            let (policy, result) = session::open(h, args);
            session::open_result(h, policy, result)
        })
    }
}

/// `pam_sm_close_session(3)`.
///
/// # Safety
/// Called by libpam with a valid handle and its module arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { shim(pamh, argc, argv, PAM_SUCCESS, session::close) }
}

#[cfg(test)]
mod tests {
    /// The module is linked with libgcc's static unwinder (`static-libgcc/libgcc_s.so`), not
    /// libgcc_s.so.1: a panic in a hook must still unwind to the hook's `catch_unwind` (else
    /// it aborts the host), and no libgcc_s.so.1 is loaded for it.
    #[test]
    fn a_panic_unwinds_to_catch_unwind_without_libgcc_s() {
        super::quiet_panics();
        let caught = std::panic::catch_unwind(|| -> i32 { panic!("a test panic") });
        assert_eq!(super::panic_text(caught.expect_err("unwound").as_ref()), "a test panic");
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        assert!(!maps.contains("libgcc_s"), "libgcc_s.so.1 is loaded:\n{maps}");
    }
}
