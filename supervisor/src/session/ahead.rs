//! What a supervisor's start does on a second thread while its first thread confines itself
//! ([`super::confine`]): the answer to the kernel's audit status question (for
//! `audit = "auto"`; the PAM module asks it and passes its socket, otherwise the helper asks:
//! the kernel answers from a thread it starts for the purpose, 0.1 ms here) and the session's
//! [`Sight`] (the loaders, the session's root and mount table, the links its programs are
//! invoked through: 0.2 to 0.3 ms). A PAM module waits for the supervisor through all of it;
//! on two CPUs the two halves overlap (docs/BENCHMARKS.md, twelfth pass).
//!
//! Capabilities are per thread: the first thread's confinement does not lower the helper's.
//! The helper lowers its own to what the confined supervisor keeps once it has its answer
//! (the question needs `CAP_AUDIT_CONTROL`), and says so before the first thread confines
//! itself ([`Ahead::audit`] waits for it). The supervisor's own filter reaches it (installed
//! with `SECCOMP_FILTER_FLAG_TSYNC`). It is joined before the listener is used: the
//! supervisor serves the session with one thread, as before. Where no thread can be started,
//! both are done in line.

use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use session_wrapper_config::{AuditRecords, Config, GuardAction};
use session_wrapper_protocol::audit::Question;

use crate::exec::gather::Sight;
use crate::log::audit::{AuditLog, Wanted};

/// The second thread's work, under way or still to do.
#[derive(Debug)]
pub struct Ahead {
    helper: Option<Helper>,
    /// The answer, once known.
    audit: Option<bool>,
    setting: AuditRecords,
    root: bool,
    library_path: GuardAction,
    leader: i32,
}

#[derive(Debug)]
struct Helper {
    /// Builds the sight when the session's namespace is final already.
    thread: JoinHandle<Option<Sight>>,
    said: Receiver<Said>,
}

/// What the helper says before the first thread confines itself.
#[derive(Debug)]
struct Said {
    audit: bool,
    /// Why its capabilities could not be lowered, if they could not.
    unlowered: Option<String>,
}

impl Ahead {
    /// Starts the helper for a supervisor under `config` of the session led by `leader`:
    /// the audit answer (to `asked`, the PAM module's question, if it passed one), then the
    /// session's sight if `settled`: the leader is in the mount namespace the session will
    /// have (a session with private directories gets a new one from the module later, and its
    /// sight is read at [`Ahead::sight`]). Call it while the process has one thread.
    pub fn start(config: &Config, leader: i32, asked: Option<Question>, settled: bool) -> Self {
        let setting = config.log.audit;
        let root = crate::run_as_root();
        let mut ahead = Ahead { helper: None, audit: None, setting, root, library_path: config.policy.guards.library_path, leader };
        // Nothing for a helper to do: the sight is read later, the setting says the answer.
        let asks = root && setting == AuditRecords::Auto;
        if !(settled || asks) {
            return ahead;
        }
        // The descriptors the start places at 64 and above (`writable_dirs`) would otherwise
        // grow the table while two threads share it.
        crate::sys::grow_descriptor_table(256);
        let (go_tx, go) = mpsc::channel::<()>();
        let (said_tx, said) = mpsc::sync_channel(1);
        let (library_path, wanted) = (ahead.library_path, move || ahead_wanted(setting, root, asked));
        let spawned = std::thread::Builder::new().name("sw-start".into()).spawn(move || {
            // Not before it is kept off the first thread's CPU (see `elsewhere`).
            let _ = go.recv();
            let audit = wanted().answer();
            let unlowered = if root { super::harden::helper_thread().err().map(|e| e.to_string()) } else { None };
            let _ = said_tx.send(Said { audit, unlowered });
            settled.then(|| Sight::new(library_path, leader))
        });
        if let Ok(thread) = spawned {
            elsewhere(&thread);
            let _ = go_tx.send(());
            ahead.helper = Some(Helper { thread, said });
        }
        ahead
    }

    /// Whether the session writes audit records, and why the helper kept more capabilities
    /// than the supervisor's, if it did: waits for the helper to say both (`false` if it
    /// ended without a word). Call it before the supervisor confines itself.
    pub fn audit(&mut self) -> (bool, Option<String>) {
        if let Some(a) = self.audit {
            return (a, None);
        }
        let (audit, unlowered) = match &self.helper {
            Some(h) => h.said.recv().map_or((false, None), |s| (s.audit, s.unlowered)),
            None => (ahead_wanted(self.setting, self.root, None).answer(), None),
        };
        self.audit = Some(audit);
        (audit, unlowered)
    }

    /// The session's sight: the helper's (joined), or read here (none was started, it was
    /// not to read it, or it panicked).
    pub fn sight(self) -> Sight {
        let Ahead { helper, library_path, leader, .. } = self;
        helper.and_then(|h| h.thread.join().ok().flatten()).unwrap_or_else(|| Sight::new(library_path, leader))
    }
}

/// What `setting` says, asked of the kernel for `auto` (as root only: a user's supervisor can
/// neither ask nor send).
fn ahead_wanted(setting: AuditRecords, root: bool, asked: Option<Question>) -> Wanted {
    if root {
        AuditLog::ask(setting, asked)
    } else {
        Wanted::Known(false)
    }
}

/// Keeps the helper off the CPU this thread runs on, when there is another: the kernel puts a
/// new thread beside its creator and, with the other CPU briefly busy (the module installing
/// the filter), left it queued there until this thread blocked, 0.4 ms later, in half the
/// opens traced (docs/BENCHMARKS.md, twelfth pass). The helper waits until this is done: a
/// thread that has ended has no id, and the call would then set this thread's affinity.
fn elsewhere(helper: &JoinHandle<Option<Sight>>) {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: plain calls on this thread and on the helper, which is alive (it waits for
    // `go`); `set` is a valid cpu_set_t for each.
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
    use std::time::Duration;

    fn config(audit: &str, library_path: &str) -> Config {
        let text = format!("default = \"allow\"\n[guards]\nlibrary-path = \"{library_path}\"\n[log]\naudit = \"{audit}\"\n");
        Config::parse(&[Source::new("t.toml", &text)], &crate::configfile::canonicalize).expect("config")
    }

    fn kernel_says() -> bool {
        Question::ask().and_then(|q| q.answer(Duration::from_secs(1))).unwrap_or(false)
    }

    #[test]
    fn the_setting_decides_and_auto_asks_the_kernel_or_reads_the_module_s_question() {
        if !crate::run_as_root() {
            eprintln!("skipped: only root asks the kernel's audit status");
            return;
        }
        let me = std::process::id() as i32;
        let kernel = kernel_says();
        for (setting, settled, want) in
            [("on", true, true), ("on", false, true), ("off", true, false), ("auto", true, kernel), ("auto", false, kernel)]
        {
            let mut ahead = Ahead::start(&config(setting, "deny"), me, None, settled);
            assert_eq!(ahead.audit(), (want, None), "{setting} {settled}");
            assert_eq!(ahead.audit().0, want, "asked again: {setting} {settled}");
        }
        // The module's question, asked by another thread here: its answer is read, not a
        // question of the supervisor's. A socket of another kind is not taken for one.
        let asked = Question::ask();
        assert!(asked.is_some(), "root can ask");
        let mut ahead = Ahead::start(&config("auto", "deny"), me, asked, true);
        assert_eq!(ahead.audit(), (kernel, None));
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        assert!(Question::from_fd(a.into()).is_none());
    }

    #[test]
    fn the_sight_built_on_the_helper_is_the_session_s() {
        let me = std::process::id() as i32;
        for (guard, vars, settled) in
            [("deny", crate::exec::gather::LIBRARY_PATH_VARS.len(), true), ("allow", 0, true), ("deny", 2, false)]
        {
            let sight = Ahead::start(&config("off", guard), me, None, settled).sight();
            assert_eq!(sight.library_vars.len(), vars, "{guard}");
            assert!(sight.reference.root().is_some(), "the session's root was opened");
            assert!(sight.reference.mounts_known(), "its mount table was read");
        }
    }
}
