//! The parts of the Linux-PAM module interface the module uses, over `pam-sys`: items, module
//! data, and `pam_syslog(3)`, which `pam-sys` does not declare.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

pub use pam_sys::PamHandle;

/// `PAM_SUCCESS`.
pub const PAM_SUCCESS: c_int = 0;
/// `PAM_SYSTEM_ERR`.
pub const PAM_SYSTEM_ERR: c_int = 4;
/// `PAM_SESSION_ERR`.
pub const PAM_SESSION_ERR: c_int = 14;

/// syslog priorities used with `pam_syslog`.
pub const LOG_ERR: c_int = 3;
/// Warning.
pub const LOG_WARNING: c_int = 4;
/// Notice.
pub const LOG_NOTICE: c_int = 5;
/// Info.
pub const LOG_INFO: c_int = 6;

extern "C" {
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// A non-null PAM handle.
#[derive(Debug, Clone, Copy)]
pub struct Handle(*mut PamHandle);

impl Handle {
    /// Wraps the handle PAM passed to a hook.
    ///
    /// # Safety
    /// `p` must be null or the handle PAM passed to the current hook, valid for its duration.
    pub unsafe fn new(p: *mut PamHandle) -> Option<Self> {
        (!p.is_null()).then_some(Handle(p))
    }

    /// Logs through `pam_syslog` (ident and facility of the host's PAM service), with a
    /// constant format so that the message is never interpreted.
    pub fn log(self, priority: c_int, message: &str) {
        let msg = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: valid handle; the "%s" format consumes exactly one C string argument.
        unsafe { pam_syslog(self.0, priority, c"%s".as_ptr(), msg.as_ptr()) };
    }

    /// A string item (`PAM_USER`, `PAM_SERVICE`, ...), as bytes. `None` when unset.
    pub fn item(self, item: pam_sys::PamItemType) -> Option<Vec<u8>> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: valid handle; PAM stores a pointer to its own string in `p`.
        let r = unsafe { pam_sys::raw::pam_get_item(self.0, item as c_int, &mut p) };
        if r != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated strings owned by PAM, valid during the hook.
        let s = unsafe { CStr::from_ptr(p.cast::<c_char>()) };
        Some(s.to_bytes().to_vec())
    }

    /// Stores `data` under `name` with a cleanup function.
    ///
    /// # Safety
    /// `cleanup` must free `data` correctly when PAM calls it.
    pub unsafe fn set_data(
        self,
        name: &CStr,
        data: *mut c_void,
        cleanup: extern "C" fn(*mut PamHandle, *mut c_void, c_int),
    ) -> c_int {
        // SAFETY: valid handle; the caller vouches for data and cleanup.
        unsafe { pam_sys::raw::pam_set_data(self.0, name.as_ptr(), data, Some(cleanup)) }
    }

    /// Stores a C string under `name` for another module to read (`pam_systemd` reads
    /// `systemd.memory_max` and `systemd.tasks_max` this way).
    pub fn set_string_data(self, name: &CStr, value: &[u8]) -> c_int {
        let Ok(c) = CString::new(value) else { return PAM_SYSTEM_ERR };
        let p = c.into_raw();
        // SAFETY: `free_cstring` frees exactly this CString.
        let r = unsafe { self.set_data(name, p.cast::<c_void>(), free_cstring) };
        if r != PAM_SUCCESS {
            // SAFETY: PAM did not take it; reclaim it here.
            drop(unsafe { CString::from_raw(p) });
        }
        r
    }

    /// The data stored under `name`, if any.
    pub fn get_data(self, name: &CStr) -> Option<*const c_void> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: valid handle; PAM stores the data pointer in `p`.
        let r = unsafe { pam_sys::raw::pam_get_data(self.0, name.as_ptr(), &mut p) };
        (r == PAM_SUCCESS && !p.is_null()).then_some(p)
    }
}

extern "C" fn free_cstring(_pamh: *mut PamHandle, data: *mut c_void, _status: c_int) {
    if !data.is_null() {
        // SAFETY: set by `set_string_data` from CString::into_raw, freed only here.
        drop(unsafe { CString::from_raw(data.cast::<c_char>()) });
    }
}

/// Reads the `argc`/`argv` PAM passed to a hook, refusing a negative count or null entries.
///
/// # Safety
/// `argv` must point to `argc` pointers, as PAM guarantees.
pub unsafe fn args(argc: c_int, argv: *const *const c_char) -> Result<Vec<String>, &'static str> {
    if argc < 0 {
        return Err("negative argc");
    }
    if argc > 0 && argv.is_null() {
        return Err("null argv");
    }
    let mut out = Vec::with_capacity(argc as usize);
    for i in 0..argc as usize {
        // SAFETY: i < argc, within the array PAM passed.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            return Err("null argument");
        }
        // SAFETY: PAM's arguments are NUL-terminated strings valid during the hook.
        out.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
    }
    Ok(out)
}
