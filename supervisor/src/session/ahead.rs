//! What a supervisor's start does on a second thread while its first thread confines itself
//! ([`super::confine`]): the kernel's audit status (for `audit = "auto"`: the kernel answers
//! from a thread it starts for the purpose, 0.1 ms here) and the session's [`Sight`] (the
//! loaders, the session's root and mount table, the links its programs are invoked through:
//! 0.2 ms). A PAM module waits for the supervisor through all of it; on two CPUs the two
//! halves overlap (docs/BENCHMARKS.md, twelfth pass).
//!
//! The helper is joined before the supervisor takes its listener's first notification, so the
//! supervisor serves the session with one thread, as before. Capabilities are per thread: the
//! first thread's confinement does not lower the helper's, so the helper lowers its own to
//! what the confined supervisor keeps as soon as it has asked the audit question (which needs
//! `CAP_AUDIT_CONTROL`). The supervisor's own filter reaches it (installed with
//! `SECCOMP_FILTER_FLAG_TSYNC`). Where no thread can be started, both are done in line.

use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use session_wrapper_config::{AuditRecords, Config, GuardAction};

use crate::exec::gather::Sight;
use crate::log::audit::{AuditLog, Wanted};
#[cfg(test)]
use session_wrapper_protocol::audit::Question;

/// The second thread's work, under way or still to do.
#[derive(Debug)]
pub struct Ahead {
    audit: Audit,
    sight: Work,
}

#[derive(Debug)]
enum Audit {
    /// The helper sends the answer.
    Coming(Receiver<bool>),
    /// Asked in line (no helper), answered when needed.
    Asked(Wanted),
    /// Taken.
    Known(bool),
}

#[derive(Debug)]
struct Work {
    helper: Option<JoinHandle<Sight>>,
    library_path: GuardAction,
    leader: i32,
}

impl Ahead {
    /// Starts the helper for a supervisor under `config` of the session led by `leader`:
    /// the audit question if it is still open (as root, `[log] audit = "auto"`, and `found`,
    /// what the PAM module found out, is `None`), then the session's sight. Call it while the
    /// process has one thread.
    pub fn start(config: &Config, leader: i32, found: Option<bool>) -> Self {
        let library_path = config.policy.guards.library_path;
        let root = crate::run_as_root();
        let known = match config.log.audit {
            _ if !root => Some(false),
            AuditRecords::Auto => found,
            AuditRecords::On => Some(true),
            AuditRecords::Off => Some(false),
        };
        // The descriptors the start places at 64 and above (`writable_dirs`) would otherwise
        // grow the table while two threads share it.
        crate::sys::grow_descriptor_table(256);
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("sw-start".into()).spawn(move || {
            if known.is_none() {
                let _ = tx.send(AuditLog::ask(AuditRecords::Auto).answer());
            }
            if root {
                // No more than the confined supervisor keeps (a failure leaves the helper's
                // capabilities as they were until it ends, before the first exec is read).
                let _ = super::harden::helper_thread();
            }
            Sight::new(library_path, leader)
        });
        if let Ok(h) = &spawned {
            elsewhere(h);
        }
        let audit = match (known, spawned.is_ok()) {
            (Some(k), _) => Audit::Known(k),
            (None, true) => Audit::Coming(rx),
            (None, false) => Audit::Asked(AuditLog::ask(AuditRecords::Auto)),
        };
        Ahead { audit, sight: Work { helper: spawned.ok(), library_path, leader } }
    }

    /// Whether the session writes audit records: waits for the helper's answer (`false` if
    /// it ended without one).
    pub fn audit(&mut self) -> bool {
        let answer = match std::mem::replace(&mut self.audit, Audit::Known(false)) {
            Audit::Coming(rx) => rx.recv().unwrap_or(false),
            Audit::Asked(w) => w.answer(),
            Audit::Known(k) => k,
        };
        self.audit = Audit::Known(answer);
        answer
    }

    /// The session's sight: joins the helper (built here if there is none, or it panicked).
    pub fn sight(self) -> Sight {
        let Work { helper, library_path, leader } = self.sight;
        helper.and_then(|h| h.join().ok()).unwrap_or_else(|| Sight::new(library_path, leader))
    }
}

/// Keeps the helper off the CPU this thread runs on, when there is another: the kernel puts a
/// new thread beside its creator and, with the other CPU briefly busy (the module installing
/// the filter), left it queued there until this thread blocked, 0.4 ms later, in half the
/// opens traced (docs/BENCHMARKS.md, twelfth pass). Best effort; the helper ends soon.
fn elsewhere(helper: &JoinHandle<Sight>) {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: plain calls on this thread and on the helper's handle, which is alive (joined
    // later); `set` is a valid cpu_set_t for each.
    unsafe {
        let cpu = libc::sched_getcpu();
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if cpu < 0 || libc::sched_getaffinity(0, size, &mut set) != 0 || !libc::CPU_ISSET(cpu as usize, &set) {
            return;
        }
        libc::CPU_CLR(cpu as usize, &mut set);
        if libc::CPU_COUNT(&set) > 0 {
            let _ = libc::pthread_setaffinity_np(helper.as_pthread_t(), size, &set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_wrapper_config::Source;

    fn config(audit: &str, library_path: &str) -> Config {
        let text = format!("default = \"allow\"\n[guards]\nlibrary-path = \"{library_path}\"\n[log]\naudit = \"{audit}\"\n");
        Config::parse(&[Source::new("t.toml", &text)], &crate::configfile::canonicalize).expect("config")
    }

    #[test]
    fn the_module_s_answer_is_taken_and_the_setting_decides_the_rest() {
        let me = std::process::id() as i32;
        let root = crate::run_as_root();
        // What the module found, for `auto`; `on` and `off` whatever it found; nothing as a
        // user who cannot send audit records.
        for (setting, found, want) in [
            ("auto", Some(true), true),
            ("auto", Some(false), false),
            ("on", Some(false), true),
            ("off", Some(true), false),
        ] {
            let mut ahead = Ahead::start(&config(setting, "deny"), me, found);
            assert_eq!(ahead.audit(), want && root, "{setting} {found:?}");
            // Asked again, the same answer.
            assert_eq!(ahead.audit(), want && root, "{setting} {found:?}");
            let _ = ahead.sight();
        }
        // Without the module's answer, the kernel is asked: the same answer as asking it here.
        let kernel = root && Question::ask().and_then(|q| q.answer(std::time::Duration::from_secs(1))).unwrap_or(false);
        assert_eq!(Ahead::start(&config("auto", "deny"), me, None).audit(), kernel);
    }

    #[test]
    fn the_sight_built_on_the_helper_is_the_session_s() {
        let me = std::process::id() as i32;
        for (guard, vars) in [("deny", crate::exec::gather::LIBRARY_PATH_VARS.len()), ("allow", 0)] {
            let sight = Ahead::start(&config("off", guard), me, None).sight();
            assert_eq!(sight.library_vars.len(), vars, "{guard}");
            assert!(sight.reference.root().is_some(), "the session's root was opened");
            assert!(sight.reference.mounts_known(), "its mount table was read");
        }
    }
}
