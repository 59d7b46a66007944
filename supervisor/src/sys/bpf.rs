//! The in-kernel exec check: a BPF program at `sched_process_exec` that compares what really
//! loaded with what the supervisor authorized, and kills the task before it runs one
//! instruction when they differ (`supervisor/bpf/exec_check.bpf.c`).
//!
//! It does what the ptrace exec stop does ([`crate::sys::tracer`]) without stopping the task:
//! the supervisor writes its expectation (the image's mount id and inode, the exact bytes of
//! the new argument and environment strings) under the task's id before it answers the
//! notification; the program writes what it found into the same entry; the supervisor reads
//! it back ([`ExecCheck::collect`]) before its next notification, or on a timer while some
//! wait, and removes it.
//!
//! The programs are loaded once per boot and stay attached through links pinned in
//! `/sys/fs/bpf/session-wrapper/<tag>` (`<tag>`: a hash of the object, so that an upgraded
//! package loads its own); every supervisor opens the pinned map. Loading is done by another
//! program, `session-wrapper-bpf-loader` ([`load`]), which the first supervisor since boot
//! runs: a supervisor makes only map lookups, updates and deletes, four raw `bpf(2)` calls,
//! and maps neither libbpf nor the libraries it needs to read an object (libelf, zlib).
//! Loading needs `CAP_BPF`, `CAP_PERFMON` and `CAP_SYS_ADMIN`-level rights once.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

pub mod load;

/// Where the pinned maps and links live.
pub(crate) const PIN_ROOT: &str = "/sys/fs/bpf/session-wrapper";

/// Most bytes of argument and environment strings the kernel can compare (the program's
/// `BLOCK_MAX`); an exec with more is checked at a ptrace stop instead.
pub const BLOCK_MAX: usize = 8192;

/// Bytes of the program's `struct expect` before its block.
const HEADER: usize = 72;

/// The program's entry states.
const PENDING: u32 = 0;
const GONE: u32 = 2;

/// Why the kernel check is not available.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// `/sys/fs/bpf` is not a BPF filesystem.
    #[error("no BPF filesystem at /sys/fs/bpf")]
    NoBpfFs,
    /// The kernel has no BTF (`/sys/kernel/btf/vmlinux`), which the program is relocated by.
    #[error("no kernel BTF at /sys/kernel/btf/vmlinux")]
    NoBtf,
    /// The pins' directory can be changed by someone other than root.
    #[error("{path}: not used: {why}")]
    Untrusted {
        /// The directory.
        path: String,
        /// Who else can change it.
        why: String,
    },
    /// The supervisor is not in the initial PID namespace, where the program's task ids are.
    #[error("not in the initial PID namespace")]
    PidNamespace,
    /// The kernel refused a step.
    #[error("{step}: {source}")]
    Kernel {
        /// What was being done.
        step: &'static str,
        /// What was said.
        source: std::io::Error,
    },
    /// The loader could not be run, or did not load the programs.
    #[error("{path}: {why}")]
    Loader {
        /// The loader's path.
        path: String,
        /// What went wrong, in its own words when it said any.
        why: String,
    },
    /// A file operation on the pin directory.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// What was said.
        source: std::io::Error,
    },
}


fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> BpfError {
    move |source| BpfError::Io { step, source }
}

/// What the supervisor authorized for one exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The notification id.
    pub notif: u64,
    /// Mount id and inode of the image that must load.
    pub image: (u64, u64),
    /// The argument strings, without their NULs.
    pub argv: &'a [Vec<u8>],
    /// The environment strings, each with its NUL. With the arguments' (NULs counted), at
    /// most [`BLOCK_MAX`] bytes.
    pub env: &'a [u8],
    /// Kill the task when what loaded differs (enforce mode); otherwise only report it.
    pub kill: bool,
    /// A task traced at its exec differs too (the `traced` guard denies: a tracer could change
    /// the new image once it runs).
    pub untraced: bool,
    /// The inode number of the user namespace the task must be in (0: any).
    pub user_namespace: u32,
}

/// What the kernel found when an exec loaded, or that its task left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded as authorized; it runs.
    Same,
    /// Another image loaded; the task was killed (if the expectation said so).
    OtherImage,
    /// Other argument or environment strings; the task was killed (likewise).
    OtherStrings,
    /// The new image's strings could not be read; the task was killed (likewise).
    Unreadable,
    /// The task exited before its exec loaded (the exec failed, or another thread's exec
    /// ended it).
    Gone,
    /// The task was traced at its exec, and the expectation refused that; it was killed.
    Traced,
    /// The task was in another user namespace than the expected one; it was killed
    /// (likewise).
    OtherUserNamespace,
}

/// One report from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The notification id of the exec.
    pub notif: u64,
    /// The thread that called exec.
    pub former: i32,
    /// The process id after it.
    pub pid: i32,
    /// What was found.
    pub outcome: Outcome,
    /// Mount id and inode of what loaded.
    pub loaded: (u64, u64),
    /// The task's controlling terminal when the kernel found the exec loaded or the task gone
    /// (`/proc/PID/stat`'s `tty_nr`, 0 for none); `None` when the entry was not there.
    pub tty: Option<u64>,
}

impl Report {
    /// Decodes a finished entry of thread `former`; `None` while it is pending.
    fn parse(former: i32, b: &[u8]) -> Option<Report> {
        let u64_at = |i: usize| b.get(i..i + 8).map(|s| u64::from_ne_bytes(s.try_into().unwrap_or_default()));
        let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_ne_bytes(s.try_into().unwrap_or_default()));
        let outcome = match (u32_at(36)?, u32_at(40)?) {
            (PENDING, _) => return None,
            (GONE, _) => Outcome::Gone,
            (_, 0) => Outcome::Same,
            (_, 1) => Outcome::OtherImage,
            (_, 2) => Outcome::OtherStrings,
            (_, 5) => Outcome::Traced,
            (_, 6) => Outcome::OtherUserNamespace,
            _ => Outcome::Unreadable,
        };
        Some(Report {
            notif: u64_at(0)?,
            former,
            pid: u32_at(44)? as i32,
            outcome,
            loaded: (u64_at(56)?, u64_at(64)?),
            tty: Some(u64::from(u32_at(52)?)),
        })
    }
}

/// The map of expectations, by its descriptor, checked to be the program's (a hash map of
/// 4-byte keys and [`VALUE_SIZE`]-byte values): the calls a supervisor makes on it, as raw
/// `bpf(2)`.
struct Map {
    fd: OwnedFd,
}

/// Bytes of the map's value: the program's `struct expect`.
const VALUE_SIZE: usize = HEADER + BLOCK_MAX;

// `bpf(2)` commands and the parts of `union bpf_attr` they read (linux/bpf.h).
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_OBJ_GET: libc::c_int = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_MAP_TYPE_HASH: u32 = 1;

/// `BPF_OBJ_GET`'s attributes (without `path_fd`, which 6.1 does not know).
#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// The element commands' attributes.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `BPF_OBJ_GET_INFO_BY_FD`'s attributes.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_map_info`.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// `bpf(cmd, attr)`: its result, or the error.
///
/// # Safety
/// `attr` must be the attributes `cmd` reads, and every address in it valid for what the
/// kernel does there for `cmd` (a value of the map's size to read or write, a NUL-terminated
/// path, an info buffer of `info_len` bytes).
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: the caller's promise; the kernel reads `size_of::<T>()` bytes of `attr`, and may
    // write into them (BPF_OBJ_GET_INFO_BY_FD writes `info_len` back).
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The object pinned at `path` (a map or a link), by a new descriptor (the kernel makes it
/// close-on-exec).
fn obj_get(path: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut attr = ObjAttr { pathname: c.as_ptr() as u64, bpf_fd: 0, file_flags: 0 };
    // SAFETY: `attr` is BPF_OBJ_GET's, its path NUL-terminated and alive for the call.
    let fd = unsafe { bpf(BPF_OBJ_GET, &mut attr)? };
    // SAFETY: a new descriptor of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Map {
    /// The map pinned at `path`, refused unless it is a hash map of the program's key and
    /// value sizes: the supervisor reads and writes whole values of that size.
    fn pinned(path: &Path) -> std::io::Result<Map> {
        let fd = obj_get(path)?;
        let mut info = MapInfo::default();
        let mut attr = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<MapInfo>() as u32,
            info: std::ptr::from_mut(&mut info) as u64,
        };
        // SAFETY: `info` is valid for `info_len` bytes; the kernel writes at most that many.
        unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)? };
        if (info.map_type, info.key_size, info.value_size as usize) != (BPF_MAP_TYPE_HASH, 4, VALUE_SIZE) {
            return Err(std::io::Error::other(format!(
                "not the program's map (type {}, key {} bytes, value {} bytes)",
                info.map_type, info.key_size, info.value_size
            )));
        }
        Ok(Map { fd })
    }

    fn elem(&self, key: &[u8; 4], value: u64) -> ElemAttr {
        ElemAttr { map_fd: self.fd.as_raw_fd() as u32, _pad: 0, key: key.as_ptr() as u64, value, flags: 0 }
    }

    /// Writes `value` under `key`, made or replaced.
    fn update(&self, key: &[u8; 4], value: &[u8; VALUE_SIZE]) -> std::io::Result<()> {
        // SAFETY: the map's values are VALUE_SIZE bytes (checked when it was opened).
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut self.elem(key, value.as_ptr() as u64)).map(drop) }
    }

    /// Reads the value under `key` into `value`; `false` when there is none.
    fn lookup(&self, key: &[u8; 4], value: &mut [u8; VALUE_SIZE]) -> std::io::Result<bool> {
        // SAFETY: the map's values are VALUE_SIZE bytes (checked when it was opened).
        match unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut self.elem(key, value.as_mut_ptr() as u64)) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &[u8; 4]) {
        // SAFETY: the delete reads only the key.
        let _ = unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut self.elem(key, 0)) };
    }
}

/// One session's connection to the kernel check.
pub struct ExecCheck {
    expects: Map,
    /// One value of the map, written and read in place.
    value: Box<[u8; VALUE_SIZE]>,
    /// The programs' links: held, the programs stay attached while this session lives, even
    /// if someone removes the pins.
    _links: [OwnedFd; 2],
}

impl std::fmt::Debug for ExecCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCheck").finish_non_exhaustive()
    }
}

impl ExecCheck {
    /// Connects to the loaded programs, having them loaded and pinned first (by the loader,
    /// [`run_loader`], given at most `loader_deadline`) if no supervisor has since boot.
    ///
    /// # Errors
    /// When the kernel check cannot be used: the caller checks at ptrace stops instead.
    pub fn connect(loader_deadline: std::time::Duration) -> Result<ExecCheck, BpfError> {
        if !in_initial_pid_namespace() {
            return Err(BpfError::PidNamespace);
        }
        let (expects, links) = match open_pinned() {
            Ok(pinned) => pinned,
            // Only root can load; anyone else is told why the pins could not be opened.
            Err(e) if !nix::unistd::geteuid().is_root() => return Err(e),
            Err(_) => {
                can_load()?;
                run_loader(loader_deadline)?;
                open_pinned()?
            }
        };
        Ok(ExecCheck { expects, value: Box::new([0u8; VALUE_SIZE]), _links: links })
    }

    /// Writes what thread `tid` may load; done before its notification is answered.
    ///
    /// # Errors
    /// When the arguments and the environment together take more than [`BLOCK_MAX`] bytes, or
    /// the map refuses it (full): check this exec otherwise.
    pub fn expect(&mut self, tid: i32, e: &Expect<'_>) -> Result<(), BpfError> {
        let len = strings_len(e.argv, e.env);
        if len > BLOCK_MAX {
            return Err(BpfError::Kernel { step: "expect", source: std::io::Error::from_raw_os_error(libc::E2BIG) });
        }
        let v = &mut *self.value;
        v[..HEADER].fill(0);
        v[0..8].copy_from_slice(&e.notif.to_ne_bytes());
        v[8..16].copy_from_slice(&e.image.0.to_ne_bytes());
        v[16..24].copy_from_slice(&e.image.1.to_ne_bytes());
        v[24..28].copy_from_slice(&(len as u32).to_ne_bytes());
        v[28..32].copy_from_slice(&u32::from(e.kill).to_ne_bytes());
        v[32..36].copy_from_slice(&u32::from(e.untraced).to_ne_bytes());
        v[48..52].copy_from_slice(&e.user_namespace.to_ne_bytes());
        // Laid out as the kernel copies them to the new image: each argument and its NUL,
        // then the environment's strings.
        let mut at = HEADER;
        for a in e.argv {
            v[at..at + a.len()].copy_from_slice(a);
            v[at + a.len()] = 0;
            at += a.len() + 1;
        }
        v[at..at + e.env.len()].copy_from_slice(e.env);
        v[at + e.env.len()..].fill(0);
        self.expects.update(&(tid as u32).to_ne_bytes(), &self.value).map_err(|source| BpfError::Kernel { step: "expect", source })
    }

    /// Removes what thread `tid` may load (its notification could not be answered, or the
    /// session ends).
    pub fn forget(&self, tid: i32) {
        self.expects.delete(&(tid as u32).to_ne_bytes());
    }

    /// What the kernel found for the execs of `waiting` (thread, notification id) that have
    /// loaded or whose task has gone; their entries are removed. An entry that is not there
    /// any more, or is another exec's, reads as gone.
    pub fn collect(&mut self, waiting: impl Iterator<Item = (i32, u64)>) -> Vec<Report> {
        let mut out = Vec::new();
        for (tid, notif) in waiting {
            let key = (tid as u32).to_ne_bytes();
            match self.expects.lookup(&key, &mut self.value) {
                Ok(true) if self.value[0..8] == notif.to_ne_bytes() => {
                    if let Some(r) = Report::parse(tid, &self.value[..]) {
                        self.expects.delete(&key);
                        out.push(r);
                    }
                }
                Ok(_) => out.push(Report { notif, former: tid, pid: tid, outcome: Outcome::Gone, loaded: (0, 0), tty: None }),
                Err(_) => {}
            }
        }
        out
    }
}

/// Bytes the kernel copies to a new image for arguments `argv` (each with its NUL) and the
/// environment's strings `env` (NULs included): what the kernel check compares.
fn strings_len(argv: &[Vec<u8>], env: &[u8]) -> usize {
    argv.iter().map(|a| a.len() + 1).sum::<usize>() + env.len()
}

/// Whether this process is in the initial PID namespace, where the ids the notifications give
/// are the ones the program sees. Its namespace's inode is the kernel's constant for the
/// initial one (`PROC_PID_INIT_INO`), whatever `/proc` is mounted: a container's own `/proc`
/// shows one `NSpid` entry, so that line cannot tell.
fn in_initial_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == PROC_PID_INIT_INO)
}

/// `/sys/fs/bpf/session-wrapper/<tag>`: the programs of this build, by the hash of their
/// object (`build.rs` computes it).
fn pin_path() -> PathBuf {
    Path::new(PIN_ROOT).join(env!("SW_EXEC_CHECK_TAG"))
}

/// The pinned map and the two links beside it (a loader pins the three in a directory of its
/// own and renames it into place: [`load::load_and_pin`]). The directory must be one that root
/// alone can change ([`root_only_dir`]): the pins are opened through the handle checked.
fn open_pinned() -> Result<(Map, [OwnedFd; 2]), BpfError> {
    let dir = root_only_dir(&pin_path())?;
    let inside = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let kernel = |step| move |source| BpfError::Kernel { step, source };
    let on_exec = obj_get(&inside.join("on_exec")).map_err(kernel("open the pinned link on_exec"))?;
    let on_exit = obj_get(&inside.join("on_exit")).map_err(kernel("open the pinned link on_exit"))?;
    let map = Map::pinned(&inside.join("expects")).map_err(kernel("open the pinned expectations"))?;
    Ok((map, [on_exec, on_exit]))
}

/// An `O_PATH` handle on the directory `path` (absolute), walked from `/` without following
/// symlinks, refused unless only root can change what it holds: every directory on the way
/// is root's, and not writable by others, or sticky (`/sys/fs/bpf` is 1777 where systemd does
/// not mount it: in a sticky directory only root can rename or remove root's entries); the
/// last one is root's and writable by no one else, sticky or not.
///
/// # Errors
/// [`BpfError::Untrusted`] naming the first that fails, or [`BpfError::Io`] (missing).
pub(crate) fn root_only_dir(path: &Path) -> Result<OwnedFd, BpfError> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{fstat, Mode};
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let missing = |e: nix::errno::Errno| BpfError::Io { step: "open the pins", source: e.into() };
    let mut fd = open("/", flags, Mode::empty()).map_err(missing)?;
    let names: Vec<&std::ffi::OsStr> = path.iter().filter(|c| *c != "/").collect();
    let mut walked = PathBuf::from("/");
    for (i, name) in names.iter().enumerate() {
        fd = openat(&fd, *name, flags, Mode::empty()).map_err(missing)?;
        walked.push(name);
        let st = fstat(&fd).map_err(missing)?;
        let last = i + 1 == names.len();
        let shared = st.st_mode & 0o022 != 0 && (last || st.st_mode & libc::S_ISVTX == 0);
        if st.st_uid != 0 || shared {
            let (uid, mode) = (st.st_uid, st.st_mode & 0o7777);
            let why = format!("{} (owner uid {uid}, mode {mode:o}) can be changed by others than root", walked.display());
            return Err(BpfError::Untrusted { path: path.display().to_string(), why });
        }
    }
    Ok(fd)
}

/// Whether a load can work here at all (a BPF file system, the kernel's BTF), told without
/// running the loader.
fn can_load() -> Result<(), BpfError> {
    let st = nix::sys::statfs::statfs("/sys/fs/bpf").map_err(|e| io("statfs /sys/fs/bpf")(e.into()))?;
    if st.filesystem_type() != nix::sys::statfs::BPF_FS_MAGIC {
        return Err(BpfError::NoBpfFs);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(BpfError::NoBtf);
    }
    Ok(())
}

/// The loader's file name.
pub const LOADER: &str = "session-wrapper-bpf-loader";

/// Where the package installs the loader.
pub const INSTALLED_LOADER: &str = "/usr/libexec/session-wrapper/session-wrapper-bpf-loader";

/// The loader to run: the one beside this program (a build's directory, or the package's
/// `/usr/libexec/session-wrapper/` for the supervisor), else the package's. Only a path that
/// root alone can change is taken: a regular file, owned by root and written by nobody else,
/// reached through root-only directories and links ([`crate::sys::trust`]); a loader beside
/// this program that fails that is refused, not passed over.
///
/// # Errors
/// [`BpfError::Untrusted`] naming what someone else could change, [`BpfError::Loader`] when
/// there is none.
pub fn find_loader() -> Result<PathBuf, BpfError> {
    use crate::sys::trust::{self, Lookup};
    let beside = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join(LOADER)));
    let root = std::fs::File::open("/").map_err(io("open /"))?;
    let untrusted = |path: &Path, why: String| BpfError::Untrusted { path: path.display().to_string(), why };
    for candidate in beside.iter().map(PathBuf::as_path).chain([Path::new(INSTALLED_LOADER)]) {
        match trust::resolve(std::os::fd::AsFd::as_fd(&root), candidate.as_os_str().as_bytes()) {
            Lookup::Missing => continue,
            Lookup::Untrusted(u) => return Err(untrusted(candidate, u.to_string())),
            Lookup::Found(f) => {
                let mode = f.stat.st_mode;
                if mode & libc::S_IFMT != libc::S_IFREG || f.stat.st_uid != 0 || mode & 0o022 != 0 || mode & 0o100 == 0 {
                    let (uid, mode) = (f.stat.st_uid, mode & 0o7777);
                    let why = format!("not a root-owned executable file that only root can write (owner uid {uid}, mode {mode:o})");
                    return Err(untrusted(candidate, why));
                }
                return Ok(PathBuf::from(std::ffi::OsString::from_vec(f.path)));
            }
        }
    }
    Err(BpfError::Loader { path: INSTALLED_LOADER.into(), why: format!("missing (and no {LOADER} beside this program)") })
}

/// How long the loader may take at most: half the module's default wait for the supervisor
/// (its `timeout=`, 10 s); a PAM session's supervisor gives it half of the module's own
/// `timeout=` when that is shorter. Loading takes 20 to 200 ms on the machines measured.
pub const LOADER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// At most this much of what the loader says is kept (its end: the verdict is the last line).
const LOADER_SAID_MAX: u64 = 64 * 1024;

/// The reason logged: at most this many bytes of the loader's last line.
const REASON_MAX: usize = 300;

/// Runs the loader ([`find_loader`]) and waits for it, at most `deadline` (then it is killed): it loads, attaches and pins the programs of this build (their tag is its
/// argument), or says why not in the last line of its standard error, which this error
/// carries; the rest of what it said is passed on to this process's standard error. It runs
/// as root in all its user and group ids (a `su` caller's real uid could signal it
/// otherwise), in `/`, with an empty environment, `/dev/null` for input and output, and none
/// of this process's other descriptors.
///
/// # Errors
/// [`BpfError::Loader`] when it cannot be found, started, or did not succeed in time.
pub fn run_loader(deadline: std::time::Duration) -> Result<(), BpfError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::process::CommandExt;
    let path = find_loader()?;
    let failed = |why: String| BpfError::Loader { path: path.display().to_string(), why };
    // What it says goes to a file in memory, not a pipe: it cannot block on us, and we read
    // it once it has ended.
    // SAFETY: a NUL-terminated name; a new descriptor of ours on success.
    let said_fd = unsafe { libc::memfd_create(c"session-wrapper-bpf-loader".as_ptr(), libc::MFD_CLOEXEC) };
    if said_fd < 0 {
        return Err(failed(format!("memfd_create: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: just made, ours.
    let mut said = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(said_fd) });
    let stderr = said.try_clone().map_err(|e| failed(format!("dup: {e}")))?;
    let mut cmd = std::process::Command::new(&path);
    // The tag it must load: a loader of another build (a package upgraded meanwhile) refuses.
    cmd.arg(env!("SW_EXEC_CHECK_TAG"))
        .env_clear()
        .current_dir("/")
        .uid(0)
        .gid(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    // SAFETY: two system calls between fork and exec. The first marks every descriptor above
    // the three standard ones close-on-exec (the standard library's own error pipe already
    // is); the second makes the loader die with this process (kept across its exec: its ids
    // do not change then), so that one outliving a killed supervisor holds no lock. The exec
    // does not happen if either fails.
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) < 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| failed(format!("cannot run it: {e}")))?;
    drop(cmd);
    // Killed, it is reaped if it ends within half a second (a task stuck in the kernel may
    // not): the supervisor does not wait for it longer.
    let give_up = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = wait_until(child, std::time::Duration::from_millis(500));
    };
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            give_up(&mut child);
            return Err(failed(format!("no answer within {} s; killed", deadline.as_secs_f64())));
        }
        Err(e) => {
            give_up(&mut child);
            return Err(failed(format!("waiting for it: {e}")));
        }
    };
    // Its last LOADER_SAID_MAX bytes, passed on as they are (a verifier's log, when the
    // kernel refused the programs: `/dev/null` for the PAM supervisor).
    let len = said.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let mut text = Vec::new();
    if said.seek(std::io::SeekFrom::Start(len.saturating_sub(LOADER_SAID_MAX))).is_ok() {
        let _ = said.take(LOADER_SAID_MAX).read_to_end(&mut text);
    }
    let _ = std::io::stderr().write_all(&text);
    if status.success() {
        return Ok(());
    }
    let last = text.split(|&b| b == b'\n').rev().find(|l| !l.trim_ascii().is_empty()).unwrap_or_default().trim_ascii();
    let last = String::from_utf8_lossy(&last[..last.len().min(REASON_MAX)]);
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "failed".into(),
    };
    Err(failed(if last.is_empty() { status } else { format!("{last} ({status})") }))
}

/// Waits for `child` to end, at most `deadline`; `None` when it has not.
fn wait_until(child: &mut std::process::Child, deadline: std::time::Duration) -> std::io::Result<Option<std::process::ExitStatus>> {
    // SAFETY: plain system call; a new descriptor of ours on success.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just made, ours.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let end = std::time::Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut p = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
    }
}

/// Proves the check on this kernel: a child exec'ing `/bin/true` (argv `["true"]`, no
/// environment, in this process's user namespace) runs when the expectation names it, and is
/// killed before it runs when the expectation names another inode, other arguments or another
/// user namespace, or is only reported (no kill).
///
/// # Errors
/// What went otherwise.
pub fn probe(check: &mut ExecCheck) -> Result<(), String> {
    let (argv, other) = ([b"true".to_vec()], [b"trux".to_vec()]);
    let ok = true_expect(1, &argv)?;
    let (image, userns) = (ok.image, ok.user_namespace);
    let cases = [
        (ok, true, Some(0), None, Outcome::Same),
        (Expect { notif: 2, image: (image.0, image.1 + 1), ..ok }, true, None, Some(9), Outcome::OtherImage),
        (Expect { notif: 3, argv: &other, ..ok }, true, None, Some(9), Outcome::OtherStrings),
        (Expect { notif: 4, argv: &other, kill: false, ..ok }, true, Some(0), None, Outcome::OtherStrings),
        (Expect { notif: 5, ..ok }, false, Some(3), None, Outcome::Gone),
        (Expect { notif: 6, user_namespace: userns.wrapping_add(1), ..ok }, true, None, Some(9), Outcome::OtherUserNamespace),
    ];
    for (e, exec, code, signal, outcome) in cases {
        let (status, r) = probe_one(check, exec, &e, None)?;
        let got = (status.code(), status.signal(), r.outcome, r.notif);
        if got != (code, signal, outcome, e.notif) {
            return Err(format!("expected exit {code:?}, signal {signal:?}, {outcome:?}; got {got:?} ({r:?})"));
        }
    }
    Ok(())
}

/// Exec `notif` of `/bin/true` with `argv` (`["true"]`: what [`probe_one`]'s child runs), no
/// environment, in this process's user namespace, expected whole (killed on a difference).
fn true_expect(notif: u64, argv: &[Vec<u8>]) -> Result<Expect<'_>, String> {
    let image = true_image().map_err(|e| format!("/bin/true: {e}"))?;
    let userns = crate::sys::procfs::user_namespace(std::process::id() as i32).map_err(|e| format!("own user namespace: {e}"))?.1 as u32;
    Ok(Expect { notif, image, argv, env: b"", kill: true, untraced: true, user_namespace: userns })
}

fn true_image() -> std::io::Result<(u64, u64)> {
    let f = std::fs::File::open("/bin/true")?;
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: empty NUL-terminated path, `st` valid for writes.
    let r = unsafe { libc::statx(f.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_MNT_ID | libc::STATX_INO, &mut st) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.stx_mnt_id, st.stx_ino))
}

/// Runs one case of [`probe`]: a child told to go once its expectation is written; `ctty`:
/// a terminal it makes its controlling one first, in a session of its own.
fn probe_one(
    check: &mut ExecCheck,
    exec: bool,
    e: &Expect<'_>,
    ctty: Option<&std::ffi::CStr>,
) -> Result<(std::process::ExitStatus, Report), String> {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    let (r, w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let path = c"/bin/true";
    let argv = [c"true"];
    let envp: [&std::ffi::CStr; 0] = [];
    // SAFETY: the child only reads a pipe, then execs or exits.
    let pid = match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = std::fs::File::from(r).read(&mut b);
            if let Some(t) = ctty {
                // A session leader without a terminal that opens one gets it as its own.
                // SAFETY: plain system calls; the descriptor stays open until the exec.
                if unsafe { libc::setsid() } < 0 || unsafe { libc::open(t.as_ptr(), libc::O_RDWR) } < 0 {
                    // SAFETY: ends the child without returning into the caller.
                    unsafe { libc::_exit(4) }
                }
            }
            if exec {
                let _ = nix::unistd::execve(path, &argv, &envp);
            }
            // SAFETY: ends the child without returning into the caller.
            unsafe { libc::_exit(3) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(r);
    let expected = check.expect(pid.as_raw(), e).map_err(|e| e.to_string());
    let _ = std::fs::File::from(w).write_all(b"x");
    let status = nix::sys::wait::waitpid(pid, None).map_err(|e| e.to_string())?;
    expected?;
    let raw = match status {
        nix::sys::wait::WaitStatus::Exited(_, c) => c << 8,
        nix::sys::wait::WaitStatus::Signaled(_, s, _) => s as i32,
        other => return Err(format!("{other:?}")),
    };
    if let Some(r) = check.collect(std::iter::once((pid.as_raw(), e.notif))).into_iter().next() {
        return Ok((std::process::ExitStatus::from_raw(raw), r));
    }
    Err(format!("no report from the kernel for {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel check, as root; `None` (the test skipped, and says so) otherwise.
    fn connect_as_root() -> Option<ExecCheck> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: loading BPF programs needs root");
            return None;
        }
        // No loader beside the test binary: the test loads in process what the loader would.
        if ExecCheck::connect(LOADER_DEADLINE).is_err() {
            load::load_and_pin().expect("load");
        }
        Some(ExecCheck::connect(LOADER_DEADLINE).expect("connect"))
    }

    #[test]
    fn the_kernel_lets_run_what_was_expected_and_kills_anything_else_before_it_runs() {
        let Some(mut check) = connect_as_root() else { return };
        probe(&mut check).expect("probe");
    }

    /// The finding carries the task's controlling terminal, in `/proc/PID/stat`'s encoding,
    /// both when its exec loads and when it exits without one.
    #[test]
    fn the_finding_names_the_terminal_of_the_task() {
        let Some(mut check) = connect_as_root() else { return };
        let argv = [b"true".to_vec()];
        let e = true_expect(11, &argv).expect("expectation");
        // SAFETY: plain calls on a new pseudo-terminal's master.
        let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
        assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        // SAFETY: as above; ptsname's buffer is copied at once.
        let slave = unsafe {
            assert_eq!((libc::grantpt(master), libc::unlockpt(master)), (0, 0));
            std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned()
        };
        for (exec, notif, code) in [(true, 11, 0), (false, 12, 3)] {
            let (status, r) = probe_one(&mut check, exec, &Expect { notif, ..e }, Some(&slave)).expect("probe");
            assert_eq!(status.code(), Some(code), "{r:?}");
            assert_eq!(r.outcome, if exec { Outcome::Same } else { Outcome::Gone });
            let named = r.tty.and_then(crate::sys::procfs::tty_name);
            assert_eq!(named.as_deref(), slave.to_str().ok(), "{r:?}");
        }
        // Without a terminal of its own: the one it inherits from us (none under CI).
        let (_, r) = probe_one(&mut check, true, &Expect { notif: 13, ..e }, None).expect("probe");
        let own = crate::sys::procfs::tty(std::process::id() as i32).expect("own tty");
        assert_eq!(r.tty.and_then(crate::sys::procfs::tty_name), own, "{r:?}");
        // SAFETY: our own descriptor.
        unsafe { libc::close(master) };
    }
}
