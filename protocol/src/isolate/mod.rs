//! The isolation layers the process that opens a session applies to itself, before it
//! installs the session filter, so that everything it starts inherits them: a private mount
//! namespace with a fresh tmpfs over each private directory, and Landlock layers.
//!
//! The supervisor decides them (it reads the configuration) and sends them as an [`Isolate`]
//! inside [`crate::Message::Supervise`] (the record's bytes are [`crate::wire`]'s business);
//! the PAM module (or `session-wrapper run`'s child) applies them with [`Isolate::apply`].
//! This module decides what each layer asks of the kernel; [`landlock`] speaks Landlock's
//! syscalls and `mounts` mounts the private directories.
//!
//! Order matters: the mounts come first (a Landlock domain may not change mounts), then the
//! Landlock rulesets are built, in the new namespace, then applied (the process is root, so
//! `NO_NEW_PRIVS` is not needed); then the caller installs the seccomp filter (which may
//! refuse `mount` and `landlock_*` from then on). Landlock rules name inodes and ignore mount
//! points that something is mounted over: a rule made for `/tmp` before the private tmpfs
//! was mounted there would not cover the tmpfs (a test below shows it does once made after).

pub mod landlock;
mod mounts;

use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

pub use self::landlock::LandlockAbi;
use self::landlock::{fs, net, Ruleset};
pub use self::mounts::{PrivateDirError, PrivateDirProblem};

/// One Landlock layer: each restricted kind of access lists where it stays allowed; `None`
/// leaves that kind unrestricted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockLayer {
    /// Trees that may be read.
    pub read: Option<Vec<Vec<u8>>>,
    /// Trees that may be written (created in, removed from, truncated); readable too when
    /// reading is restricted.
    pub write: Option<Vec<Vec<u8>>>,
    /// Trees whose files may be executed; readable too when reading is restricted.
    pub execute: Option<Vec<Vec<u8>>>,
    /// TCP ports that may be bound.
    pub tcp_bind: Option<Vec<u16>>,
    /// TCP ports that may be connected to.
    pub tcp_connect: Option<Vec<u16>>,
}

/// What the opening process applies to itself. It travels as a record of its own inside
/// [`crate::Message::Supervise`] ([`Isolate::encode`], [`Isolate::decode`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolate {
    /// Directories that get a fresh tmpfs in a private mount namespace.
    pub private_dirs: Vec<Vec<u8>>,
    /// Landlock layers, each applied on top of the previous ones.
    pub landlock: Vec<LandlockLayer>,
    /// `systemd.memory_max` for pam_systemd (`pam_set_data`), when logind manages cgroups.
    pub systemd_memory_max: Option<Vec<u8>>,
    /// `systemd.tasks_max` for pam_systemd.
    pub systemd_tasks_max: Option<Vec<u8>>,
}

/// Why the layers could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The kernel has no (usable) Landlock.
    #[error("Landlock is not available: {0}")]
    NoLandlock(#[source] io::Error),
    /// The kernel's Landlock is too old for what is asked.
    #[error("Landlock ABI {have} cannot {what} (needs ABI {need})")]
    LandlockTooOld {
        /// The running kernel's ABI.
        have: LandlockAbi,
        /// The ABI needed.
        need: LandlockAbi,
        /// What cannot be done.
        what: &'static str,
    },
    /// A Landlock call failed.
    #[error("Landlock: {what}: {source}")]
    Landlock {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A private directory cannot be used.
    #[error(transparent)]
    PrivateDir(#[from] PrivateDirError),
}

fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

impl Isolate {
    /// Whether there is nothing to apply in the opening process.
    pub fn is_empty(&self) -> bool {
        self.private_dirs.is_empty()
            && self.landlock.is_empty()
            && self.systemd_memory_max.is_none()
            && self.systemd_tasks_max.is_none()
    }

    /// Applies the layers to the calling thread: the private directories, then every Landlock
    /// layer. Returns notes worth logging (an allowed path that does not exist).
    ///
    /// The private directories: a new mount namespace whose mounts receive the host's later
    /// mounts but send none back, a tmpfs (`nosuid,nodev`, mode 1777) over each, and the
    /// working directory resolved again (so that a process started in `/tmp` does not keep
    /// the host's `/tmp` as its working directory).
    ///
    /// # Errors
    /// [`IsolateError`] when a private directory is not a directory, a mount fails, Landlock
    /// is missing or too old for what the layers ask, or the kernel refuses a rule. Nothing is
    /// half-applied on the Landlock side: every ruleset is built before the first is applied.
    pub fn apply(&self) -> Result<Vec<String>, IsolateError> {
        let mut notes = Vec::new();
        mounts::mount_private_dirs(&self.private_dirs)?;
        let mut rulesets = Vec::new();
        if !self.landlock.is_empty() {
            let abi = landlock::abi().map_err(|e| IsolateError::NoLandlock(io::Error::from_raw_os_error(e)))?;
            for (n, layer) in self.landlock.iter().enumerate() {
                rulesets.push(build_ruleset(layer, abi, n, &mut notes)?);
            }
        }
        for (n, r) in rulesets.iter().enumerate() {
            r.restrict_self()
                .map_err(|source| IsolateError::Landlock { what: format!("applying layer {n}"), source })?;
        }
        Ok(notes)
    }
}

impl LandlockLayer {
    /// The filesystem rights the layer restricts, under ABI `abi`.
    fn handled_fs(&self, abi: LandlockAbi) -> u64 {
        let mut handled = 0;
        if self.read.is_some() {
            handled |= fs::READ;
        }
        if self.write.is_some() {
            handled |= landlock::write_rights(abi);
        }
        if self.execute.is_some() {
            handled |= fs::EXECUTE;
        }
        handled
    }

    /// The network rights the layer restricts.
    fn handled_net(&self) -> u64 {
        let mut handled = 0;
        if self.tcp_bind.is_some() {
            handled |= net::BIND_TCP;
        }
        if self.tcp_connect.is_some() {
            handled |= net::CONNECT_TCP;
        }
        handled
    }

    /// Each list of trees with the rights it grants: writing and executing imply reading
    /// when reading is restricted.
    fn trees(&self, abi: LandlockAbi) -> [(Option<&Vec<Vec<u8>>>, u64); 3] {
        let with_read = |rights: u64| if self.read.is_some() { rights | fs::READ } else { rights };
        [
            (self.read.as_ref(), fs::READ),
            (self.write.as_ref(), with_read(landlock::write_rights(abi))),
            (self.execute.as_ref(), with_read(fs::EXECUTE)),
        ]
    }

    /// Each list of ports with the right it grants.
    fn ports(&self) -> [(Option<&Vec<u16>>, u64); 2] {
        [(self.tcp_bind.as_ref(), net::BIND_TCP), (self.tcp_connect.as_ref(), net::CONNECT_TCP)]
    }
}

/// The ruleset of layer number `n`, built but not applied.
fn build_ruleset(
    layer: &LandlockLayer,
    abi: LandlockAbi,
    n: usize,
    notes: &mut Vec<String>,
) -> Result<Ruleset, IsolateError> {
    let handled_fs = layer.handled_fs(abi);
    let handled_net = layer.handled_net();
    if handled_net != 0 && !abi.has_net() {
        return Err(IsolateError::LandlockTooOld { have: abi, need: LandlockAbi::V4, what: "restrict TCP ports" });
    }
    let ruleset = Ruleset::new(abi, handled_fs, handled_net)
        .map_err(|source| IsolateError::Landlock { what: format!("layer {n}: creating the ruleset"), source })?;
    for (paths, rights) in layer.trees(abi) {
        for p in paths.into_iter().flatten() {
            allow_tree(&ruleset, p, rights & handled_fs, n, notes)?;
        }
    }
    for (ports, right) in layer.ports() {
        for &port in ports.into_iter().flatten() {
            ruleset.allow_port(port, right).map_err(|source| IsolateError::Landlock {
                what: format!("layer {n}: allowing TCP port {port}"),
                source,
            })?;
        }
    }
    Ok(ruleset)
}

/// Allows `rights` beneath `path` in `ruleset` (only the rights that apply to a file, when it
/// is not a directory). A path that does not exist is a note, not an error: nothing under it
/// is allowed.
fn allow_tree(
    ruleset: &Ruleset,
    path: &[u8],
    rights: u64,
    n: usize,
    notes: &mut Vec<String>,
) -> Result<(), IsolateError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(std::path::Path::new(std::ffi::OsStr::from_bytes(path)))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            notes.push(format!("landlock layer {n}: {} does not exist; nothing under it is allowed", text(path)));
            return Ok(());
        }
        Err(e) => return Err(IsolateError::Landlock { what: format!("opening {}", text(path)), source: e }),
    };
    let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
    let allowed = if is_dir { rights } else { rights & fs::ON_FILES };
    if allowed == 0 {
        return Ok(());
    }
    ruleset
        .allow_beneath(file.as_fd(), allowed)
        .map_err(|source| IsolateError::Landlock { what: format!("layer {n}: allowing {}", text(path)), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn a_layer_handles_only_the_kinds_it_restricts() {
        let l = LandlockLayer { write: Some(vec![]), tcp_connect: Some(vec![22]), ..LandlockLayer::default() };
        assert_eq!(l.handled_fs(LandlockAbi::V1), fs::WRITE_V1);
        assert_eq!(l.handled_fs(LandlockAbi::V3), landlock::write_rights(LandlockAbi::V3));
        assert_eq!(l.handled_net(), net::CONNECT_TCP);
        assert_eq!(LandlockLayer::default().handled_fs(LandlockAbi::V4), 0);
        assert_eq!(LandlockLayer::default().handled_net(), 0);
    }

    #[test]
    fn writing_and_executing_imply_reading_only_when_reading_is_restricted() {
        let w = landlock::write_rights(LandlockAbi::V3);
        let open = LandlockLayer { write: Some(vec![]), execute: Some(vec![]), ..LandlockLayer::default() };
        let [_, (_, write), (_, exec)] = open.trees(LandlockAbi::V3);
        assert_eq!((write, exec), (w, fs::EXECUTE));
        let closed = LandlockLayer { read: Some(vec![]), ..open };
        let [(_, read), (_, write), (_, exec)] = closed.trees(LandlockAbi::V3);
        assert_eq!((read, write, exec), (fs::READ, w | fs::READ, fs::EXECUTE | fs::READ));
    }

    #[test]
    fn tcp_ports_need_abi_4_and_nothing_is_created_before_that_is_known() {
        let l = LandlockLayer { tcp_bind: Some(vec![8080]), ..LandlockLayer::default() };
        let e = build_ruleset(&l, LandlockAbi::V3, 0, &mut Vec::new()).expect_err("too old");
        assert!(matches!(e, IsolateError::LandlockTooOld { have: LandlockAbi::V3, need: LandlockAbi::V4, .. }));
        assert_eq!(e.to_string(), "Landlock ABI 3 cannot restrict TCP ports (needs ABI 4)");
    }

    #[test]
    fn nothing_to_apply_is_empty() {
        assert!(Isolate::default().is_empty());
        assert!(!Isolate { systemd_tasks_max: Some(b"10".to_vec()), ..Isolate::default() }.is_empty());
        assert_eq!(Isolate::default().apply().expect("nothing to do"), Vec::<String>::new());
    }

    /// Runs `check` in a forked child after applying `iso`; the child's exit code.
    fn in_child(iso: &Isolate, check: impl Fn() -> i32) -> i32 {
        // SAFETY: the child ends in _exit. (It allocates: the test harness's other threads
        // hold no allocator lock across fork in practice, and a hang would fail the test.)
        match unsafe { libc::fork() } {
            0 => {
                let code = match iso.apply() {
                    Ok(_) => check(),
                    Err(_) => 99,
                };
                // SAFETY: ends the child.
                unsafe { libc::_exit(code) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                libc::WEXITSTATUS(status)
            }
        }
    }

    fn create(path: &std::ffi::CStr) -> i32 {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600) };
        if fd < 0 {
            io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            // SAFETY: our own descriptor.
            unsafe { libc::close(fd) };
            0
        }
    }

    #[test]
    fn landlock_allows_writes_only_under_the_listed_tree_and_private_dirs_stay_private() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || landlock::abi().is_err() {
            eprintln!("skipped: needs root and Landlock");
            return;
        }
        let base = std::env::temp_dir().join(format!("sw-isolate-{}", std::process::id()));
        let (yes, no, private) = (base.join("yes"), base.join("no"), base.join("private"));
        for d in [&yes, &no, &private] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let b = |p: &std::path::Path| p.as_os_str().as_bytes().to_vec();
        let c = |p: std::path::PathBuf| CString::new(p.into_os_string().into_vec()).expect("cstring");
        use std::os::unix::ffi::OsStringExt;
        let iso = Isolate {
            private_dirs: vec![b(&private)],
            landlock: vec![LandlockLayer { write: Some(vec![b(&yes), b(&private)]), ..LandlockLayer::default() }],
            ..Isolate::default()
        };
        let (in_yes, in_no, in_private) = (c(yes.join("f")), c(no.join("f")), c(private.join("f")));
        let code = in_child(&iso, || {
            if create(&in_yes) != 0 {
                return 1;
            }
            if create(&in_no) != libc::EACCES {
                return 2;
            }
            // The private tmpfs is covered by the rule on its mount point.
            if create(&in_private) != 0 {
                return 3;
            }
            0
        });
        assert_eq!(code, 0, "1: allowed write refused; 2: write outside allowed; 3: private dir not writable");
        assert!(yes.join("f").exists());
        assert!(!no.join("f").exists());
        assert!(!private.join("f").exists(), "the private tmpfs's file is not on the host");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_missing_private_directory_is_refused_before_anything_is_applied() {
        let i = Isolate { private_dirs: vec![b"/nonexistent-sw-test".to_vec()], ..Isolate::default() };
        let e = i.apply().expect_err("refused");
        assert!(matches!(e, IsolateError::PrivateDir(_)));
        assert!(e.to_string().starts_with("private directory /nonexistent-sw-test: "), "{e}");
    }

    #[test]
    fn a_missing_allowed_path_is_a_note_not_an_error() {
        if landlock::abi().is_err() {
            eprintln!("skipped: needs Landlock");
            return;
        }
        let l = LandlockLayer { read: Some(vec![b"/nonexistent-sw-test".to_vec()]), ..LandlockLayer::default() };
        let mut notes = Vec::new();
        let abi = landlock::abi().expect("checked above");
        build_ruleset(&l, abi, 2, &mut notes).expect("built, not applied");
        assert_eq!(notes, ["landlock layer 2: /nonexistent-sw-test does not exist; nothing under it is allowed"]);
    }
}
