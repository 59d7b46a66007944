//! The isolation layers the process that opens a session applies to itself, before it
//! installs the session filter, so that everything it starts inherits them: a private mount
//! namespace with a fresh tmpfs over each private directory, and Landlock layers.
//!
//! The supervisor decides them (it reads the configuration) and sends them as an [`Isolate`]
//! inside [`crate::Message::Supervise`]; the PAM module (or `session-wrapper run`'s child)
//! applies them with [`Isolate::apply`].
//!
//! Order matters: the mounts come first (a Landlock domain may not change mounts), then the
//! Landlock rulesets are built, in the new namespace, then applied (the process is root, so
//! `NO_NEW_PRIVS` is not needed); then the caller installs the seccomp filter (which may
//! refuse `mount` and `landlock_*` from then on). Landlock rules name inodes and ignore mount
//! points that something is mounted over: a rule made for `/tmp` before the private tmpfs
//! was mounted there would not cover the tmpfs (a test below shows it does once made after).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::wire::WireError;

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

/// What the opening process applies to itself.
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

mod tag {
    pub const PRIVATE_DIR: u8 = 1;
    pub const LAYER: u8 = 2;
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const EXECUTE: u8 = 5;
    pub const BIND: u8 = 6;
    pub const CONNECT: u8 = 7;
    pub const SYSTEMD_MEMORY: u8 = 8;
    pub const SYSTEMD_TASKS: u8 = 9;
}

/// Bits of a layer record: which kinds the layer restricts.
mod kinds {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const EXECUTE: u8 = 4;
    pub const BIND: u8 = 8;
    pub const CONNECT: u8 = 16;
}

fn put(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(value);
}

impl Isolate {
    /// Whether there is nothing to apply in the opening process.
    pub fn is_empty(&self) -> bool {
        self.private_dirs.is_empty()
            && self.landlock.is_empty()
            && self.systemd_memory_max.is_none()
            && self.systemd_tasks_max.is_none()
    }

    /// The bytes of this record (a sequence of tag, little-endian `u32` length, value; paths
    /// and ports follow the layer record they belong to).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for d in &self.private_dirs {
            put(&mut out, tag::PRIVATE_DIR, d);
        }
        for l in &self.landlock {
            let mut mask = 0;
            for (present, bit) in [
                (l.read.is_some(), kinds::READ),
                (l.write.is_some(), kinds::WRITE),
                (l.execute.is_some(), kinds::EXECUTE),
                (l.tcp_bind.is_some(), kinds::BIND),
                (l.tcp_connect.is_some(), kinds::CONNECT),
            ] {
                if present {
                    mask |= bit;
                }
            }
            put(&mut out, tag::LAYER, &[mask]);
            for (t, paths) in [(tag::READ, &l.read), (tag::WRITE, &l.write), (tag::EXECUTE, &l.execute)] {
                for p in paths.iter().flatten() {
                    put(&mut out, t, p);
                }
            }
            for (t, ports) in [(tag::BIND, &l.tcp_bind), (tag::CONNECT, &l.tcp_connect)] {
                for p in ports.iter().flatten() {
                    put(&mut out, t, &p.to_le_bytes());
                }
            }
        }
        if let Some(m) = &self.systemd_memory_max {
            put(&mut out, tag::SYSTEMD_MEMORY, m);
        }
        if let Some(t) = &self.systemd_tasks_max {
            put(&mut out, tag::SYSTEMD_TASKS, t);
        }
        out
    }

    /// Reads a record made by [`Isolate::encode`].
    ///
    /// # Errors
    /// [`WireError`] for truncated records, unknown tags, paths before any layer or of a kind
    /// the layer does not restrict, and paths that are empty, relative or contain NUL.
    pub fn decode(mut data: &[u8]) -> Result<Self, WireError> {
        let mut out = Isolate::default();
        while !data.is_empty() {
            if data.len() < 5 {
                return Err(WireError::Malformed("truncated isolation record"));
            }
            let t = data[0];
            let len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
            let body = data.get(5..).unwrap_or(&[]);
            if body.len() < len {
                return Err(WireError::Malformed("isolation record longer than message"));
            }
            let value = &body[..len];
            data = &body[len..];
            let path = || -> Result<Vec<u8>, WireError> {
                if value.first() != Some(&b'/') || value.contains(&0) {
                    return Err(WireError::Malformed("isolation path is not absolute"));
                }
                Ok(value.to_vec())
            };
            let port = || -> Result<u16, WireError> {
                let b: [u8; 2] = value.try_into().map_err(|_| WireError::Malformed("port size"))?;
                Ok(u16::from_le_bytes(b))
            };
            match t {
                tag::PRIVATE_DIR => out.private_dirs.push(path()?),
                tag::LAYER => {
                    let &[mask] = value else { return Err(WireError::Malformed("layer record size")) };
                    let on = |bit: u8| (mask & bit != 0).then(Vec::new);
                    out.landlock.push(LandlockLayer {
                        read: on(kinds::READ),
                        write: on(kinds::WRITE),
                        execute: on(kinds::EXECUTE),
                        tcp_bind: (mask & kinds::BIND != 0).then(Vec::new),
                        tcp_connect: (mask & kinds::CONNECT != 0).then(Vec::new),
                    });
                }
                tag::READ | tag::WRITE | tag::EXECUTE => {
                    let p = path()?;
                    let l = out.landlock.last_mut().ok_or(WireError::Malformed("path outside a layer"))?;
                    let list = match t {
                        tag::READ => &mut l.read,
                        tag::WRITE => &mut l.write,
                        _ => &mut l.execute,
                    };
                    list.as_mut().ok_or(WireError::Malformed("path outside a layer that restricts it"))?.push(p);
                }
                tag::BIND | tag::CONNECT => {
                    let p = port()?;
                    let l = out.landlock.last_mut().ok_or(WireError::Malformed("port outside a layer"))?;
                    let ports = if t == tag::BIND { &mut l.tcp_bind } else { &mut l.tcp_connect };
                    ports.as_mut().ok_or(WireError::Malformed("port outside a layer that restricts it"))?.push(p);
                }
                tag::SYSTEMD_MEMORY => out.systemd_memory_max = Some(value.to_vec()),
                tag::SYSTEMD_TASKS => out.systemd_tasks_max = Some(value.to_vec()),
                other => return Err(WireError::UnknownField(other)),
            }
        }
        Ok(out)
    }
}

/// Landlock's ABI, as the kernel reports it.
pub mod landlock {
    /// `LANDLOCK_CREATE_RULESET_VERSION`.
    pub const CREATE_RULESET_VERSION: u32 = 1;
    /// `LANDLOCK_RULE_PATH_BENEATH`.
    pub const RULE_PATH_BENEATH: u32 = 1;
    /// `LANDLOCK_RULE_NET_PORT`.
    pub const RULE_NET_PORT: u32 = 2;

    /// `LANDLOCK_ACCESS_FS_*`.
    pub mod fs {
        /// Execute a file.
        pub const EXECUTE: u64 = 1 << 0;
        /// Open a file for writing.
        pub const WRITE_FILE: u64 = 1 << 1;
        /// Open a file for reading.
        pub const READ_FILE: u64 = 1 << 2;
        /// List a directory.
        pub const READ_DIR: u64 = 1 << 3;
        /// Remove a directory.
        pub const REMOVE_DIR: u64 = 1 << 4;
        /// Remove a file.
        pub const REMOVE_FILE: u64 = 1 << 5;
        /// Create a character device.
        pub const MAKE_CHAR: u64 = 1 << 6;
        /// Create a directory.
        pub const MAKE_DIR: u64 = 1 << 7;
        /// Create a regular file.
        pub const MAKE_REG: u64 = 1 << 8;
        /// Create a socket.
        pub const MAKE_SOCK: u64 = 1 << 9;
        /// Create a FIFO.
        pub const MAKE_FIFO: u64 = 1 << 10;
        /// Create a block device.
        pub const MAKE_BLOCK: u64 = 1 << 11;
        /// Create a symbolic link.
        pub const MAKE_SYM: u64 = 1 << 12;
        /// Link or rename a file from or to another directory (ABI 2).
        pub const REFER: u64 = 1 << 13;
        /// Truncate a file (ABI 3).
        pub const TRUNCATE: u64 = 1 << 14;

        /// Reading.
        pub const READ: u64 = READ_FILE | READ_DIR;
        /// Writing, in ABI 1.
        pub const WRITE_V1: u64 = WRITE_FILE
            | REMOVE_DIR
            | REMOVE_FILE
            | MAKE_CHAR
            | MAKE_DIR
            | MAKE_REG
            | MAKE_SOCK
            | MAKE_FIFO
            | MAKE_BLOCK
            | MAKE_SYM;
        /// The rights that apply to a file (not a directory).
        pub const ON_FILES: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE;
    }

    /// `LANDLOCK_ACCESS_NET_*` (ABI 4).
    pub mod net {
        /// Bind a TCP port.
        pub const BIND_TCP: u64 = 1 << 0;
        /// Connect to a TCP port.
        pub const CONNECT_TCP: u64 = 1 << 1;
    }

    /// The writing rights of ABI `abi`.
    pub fn write_rights(abi: i64) -> u64 {
        let mut w = fs::WRITE_V1;
        if abi >= 2 {
            w |= fs::REFER;
        }
        if abi >= 3 {
            w |= fs::TRUNCATE;
        }
        w
    }

    /// The Landlock ABI version of the running kernel, or the errno saying why there is none
    /// (`ENOSYS`: not built; `EOPNOTSUPP`: not enabled at boot).
    pub fn abi() -> Result<i64, i32> {
        // SAFETY: the version query takes no attribute pointer.
        let r = unsafe {
            libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, CREATE_RULESET_VERSION)
        };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOSYS))
        } else {
            Ok(r)
        }
    }
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// Why the layers could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The kernel has no (usable) Landlock.
    #[error("Landlock is not available: {0}")]
    NoLandlock(io::Error),
    /// The kernel's Landlock is too old for what is asked.
    #[error("Landlock ABI {have} cannot {what} (needs ABI {need})")]
    LandlockTooOld {
        /// The running kernel's ABI.
        have: i64,
        /// The ABI needed.
        need: i64,
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
    #[error("private directory {path}: {why}")]
    PrivateDir {
        /// The directory.
        path: String,
        /// Why.
        why: String,
    },
}

fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

impl Isolate {
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
        self.mount_private_dirs()?;
        let mut rulesets = Vec::new();
        if !self.landlock.is_empty() {
            let abi = landlock::abi().map_err(|e| IsolateError::NoLandlock(io::Error::from_raw_os_error(e)))?;
            for (n, layer) in self.landlock.iter().enumerate() {
                rulesets.push(build_ruleset(layer, abi, n, &mut notes)?);
            }
        }
        for (n, r) in rulesets.iter().enumerate() {
            // SAFETY: plain syscall on a ruleset descriptor we own.
            if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, r.as_raw_fd(), 0u32) } != 0 {
                return Err(IsolateError::Landlock { what: format!("applying layer {n}"), source: last_error() });
            }
        }
        Ok(notes)
    }

    fn mount_private_dirs(&self) -> Result<(), IsolateError> {
        if self.private_dirs.is_empty() {
            return Ok(());
        }
        let fail = |d: &[u8], why: String| IsolateError::PrivateDir { path: text(d), why };
        let mut dirs = Vec::new();
        for d in &self.private_dirs {
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(d));
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(fail(d, "not a directory (symbolic links are not followed)".into())),
                Err(e) => return Err(fail(d, e.to_string())),
            }
            dirs.push(CString::new(d.clone()).map_err(|_| fail(d, "contains NUL".into()))?);
        }
        let cwd = std::env::current_dir().ok();
        // SAFETY: plain syscall.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(fail(&self.private_dirs[0], format!("unshare(CLONE_NEWNS): {}", last_error())));
        }
        // SAFETY: NUL-terminated strings, NULL where mount(2) allows it.
        if unsafe {
            libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null())
        } != 0
        {
            return Err(fail(&self.private_dirs[0], format!("making mounts private: {}", last_error())));
        }
        for (d, c) in self.private_dirs.iter().zip(&dirs) {
            // SAFETY: as above.
            if unsafe {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    c.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=1777".as_ptr().cast(),
                )
            } != 0
            {
                return Err(fail(d, format!("mounting a tmpfs: {}", last_error())));
            }
        }
        if cwd.and_then(|c| std::env::set_current_dir(c).ok()).is_none() {
            let _ = std::env::set_current_dir("/");
        }
        Ok(())
    }
}

fn build_ruleset(layer: &LandlockLayer, abi: i64, n: usize, notes: &mut Vec<String>) -> Result<OwnedFd, IsolateError> {
    use landlock::{fs, net};
    let write = landlock::write_rights(abi);
    let mut handled_fs = 0;
    if layer.read.is_some() {
        handled_fs |= fs::READ;
    }
    if layer.write.is_some() {
        handled_fs |= write;
    }
    if layer.execute.is_some() {
        handled_fs |= fs::EXECUTE;
    }
    let mut handled_net = 0;
    if layer.tcp_bind.is_some() {
        handled_net |= net::BIND_TCP;
    }
    if layer.tcp_connect.is_some() {
        handled_net |= net::CONNECT_TCP;
    }
    if handled_net != 0 && abi < 4 {
        return Err(IsolateError::LandlockTooOld { have: abi, need: 4, what: "restrict TCP ports" });
    }
    let attr = RulesetAttr { handled_access_fs: handled_fs, handled_access_net: handled_net };
    // ABI 1-3 kernels know only the first field.
    let size = if abi < 4 { 8 } else { std::mem::size_of::<RulesetAttr>() };
    // SAFETY: `attr` is a valid ruleset attribute of at least `size` bytes.
    let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &raw const attr, size, 0u32) };
    if fd < 0 {
        return Err(IsolateError::Landlock { what: format!("layer {n}: creating the ruleset"), source: last_error() });
    }
    // SAFETY: the kernel just returned this new descriptor (close-on-exec).
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let with_read = |rights: u64| if layer.read.is_some() { rights | fs::READ } else { rights };
    let trees = [
        (layer.read.as_ref(), fs::READ),
        (layer.write.as_ref(), with_read(write)),
        (layer.execute.as_ref(), with_read(fs::EXECUTE)),
    ];
    for (paths, rights) in trees {
        for p in paths.into_iter().flatten() {
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(p));
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    notes.push(format!("landlock layer {n}: {} does not exist; nothing under it is allowed", text(p)));
                    continue;
                }
                Err(e) => return Err(IsolateError::Landlock { what: format!("opening {}", text(p)), source: e }),
            };
            let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
            let mut allowed = rights & handled_fs;
            if !is_dir {
                allowed &= fs::ON_FILES;
            }
            if allowed == 0 {
                continue;
            }
            let rule = PathBeneathAttr { allowed_access: allowed, parent_fd: file.as_raw_fd() };
            add_rule(&ruleset, landlock::RULE_PATH_BENEATH, (&raw const rule).cast(), || format!("layer {n}: allowing {}", text(p)))?;
        }
    }
    for (ports, right) in [(layer.tcp_bind.as_ref(), net::BIND_TCP), (layer.tcp_connect.as_ref(), net::CONNECT_TCP)] {
        for &port in ports.into_iter().flatten() {
            let rule = NetPortAttr { allowed_access: right, port: u64::from(port) };
            add_rule(&ruleset, landlock::RULE_NET_PORT, (&raw const rule).cast(), || format!("layer {n}: allowing TCP port {port}"))?;
        }
    }
    Ok(ruleset)
}

fn add_rule(ruleset: &OwnedFd, kind: u32, attr: *const u8, what: impl Fn() -> String) -> Result<(), IsolateError> {
    // SAFETY: `attr` points to the attribute struct of `kind`, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_landlock_add_rule, ruleset.as_raw_fd(), kind, attr, 0u32) };
    if r < 0 {
        return Err(IsolateError::Landlock { what: what(), source: last_error() });
    }
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Isolate {
        Isolate {
            private_dirs: vec![b"/tmp".to_vec(), b"/var/tmp".to_vec()],
            landlock: vec![
                LandlockLayer {
                    read: None,
                    write: Some(vec![b"/home".to_vec(), b"/tmp".to_vec()]),
                    execute: Some(vec![]),
                    tcp_bind: None,
                    tcp_connect: Some(vec![22, 443]),
                },
                LandlockLayer { read: Some(vec![b"/".to_vec()]), ..LandlockLayer::default() },
            ],
            systemd_memory_max: Some(b"1073741824".to_vec()),
            systemd_tasks_max: None,
        }
    }

    #[test]
    fn records_roundtrip_and_keep_empty_lists_distinct_from_absent_ones() {
        let i = sample();
        assert_eq!(Isolate::decode(&i.encode()), Ok(i.clone()));
        assert_eq!(Isolate::decode(&[]), Ok(Isolate::default()));
        assert!(Isolate::default().is_empty());
        let d = Isolate::decode(&i.encode()).expect("decodes");
        assert_eq!(d.landlock[0].execute, Some(vec![]), "execute restricted, nothing allowed");
        assert_eq!(d.landlock[0].read, None, "read unrestricted");
    }

    #[test]
    fn malformed_records_are_refused() {
        // A path before any layer.
        let mut b = Vec::new();
        put(&mut b, tag::WRITE, b"/tmp");
        assert!(Isolate::decode(&b).is_err());
        // A path of a kind the layer does not restrict.
        let mut b = Vec::new();
        put(&mut b, tag::LAYER, &[kinds::READ]);
        put(&mut b, tag::WRITE, b"/tmp");
        assert!(Isolate::decode(&b).is_err());
        // A relative path.
        let mut b = Vec::new();
        put(&mut b, tag::PRIVATE_DIR, b"tmp");
        assert!(Isolate::decode(&b).is_err());
        // Truncation and unknown tags.
        let good = sample().encode();
        for cut in 1..good.len() {
            let _ = Isolate::decode(&good[..cut]);
        }
        assert_eq!(Isolate::decode(&[99, 0, 0, 0, 0]), Err(WireError::UnknownField(99)));
        assert!(Isolate::decode(&[tag::PRIVATE_DIR, 9, 0, 0, 0, b'/']).is_err());
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
        assert!(matches!(i.apply(), Err(IsolateError::PrivateDir { .. })));
    }
}
