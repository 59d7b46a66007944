//! Finding the file an exec names, as the process that asked would see it.
//!
//! An absolute path is looked up from the process's root (`/proc/TID/root`), a relative one
//! from its working directory or from the directory fd given to `execveat`, and an empty path
//! with `AT_EMPTY_PATH` is the fd itself (`fexecve`). `/proc/self`, `/proc/thread-self` and
//! `/dev/fd` at the start of a path mean the asking process, not the supervisor. Symlinks are
//! followed to the real file, which is what the policy matches; `AT_SYMLINK_NOFOLLOW` refuses a
//! final symlink as the kernel does.
//!
//! The result is a claim, made before the kernel's own lookup. Symlinks can be swapped in
//! between; the image the kernel really loaded is checked after the exec ([`crate::sys::tracer`]).
//! Anything this lookup cannot see the way the process does (an absolute symlink inside a
//! private mount namespace, say) is caught there too.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{Mode, SFlag};
use session_wrapper_config::ExeKind;
// FUSE: reading a file there could block on a daemon the user runs.
use session_wrapper_protocol::trust::FUSE_SUPER_MAGIC;

use crate::sys::exefile::{parse_script_head, script_argv, ScriptHead, Shebang, BINPRM_BUF_SIZE};

/// `AT_EMPTY_PATH`.
pub const AT_EMPTY_PATH: u64 = 0x1000;
/// `AT_SYMLINK_NOFOLLOW`.
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_FDCWD` as the kernel sees the 32-bit int.
const AT_FDCWD: i32 = -100;
/// The kernel's `BINPRM_MAX_RECURSION`: interpreters of interpreters, at most this deep.
const MAX_INTERPRETER_DEPTH: usize = 4;
/// File systems where a mount id and an inode number need not name one file: btrfs and
/// bcachefs (`*_SUPER_MAGIC`), whose subvolumes share a mount, each with inode numbers of its
/// own; overlayfs, whose files keep their layer's inode numbers when the layers are on
/// different file systems (without `xino`; only the device tells them apart).
const SUBVOLUME_FILESYSTEMS: [i64; 3] = [0x9123_683E, 0xCA45_1A4E, 0x794C_7630];

/// A file found for an exec.
#[derive(Debug)]
pub struct Resolved {
    /// An `O_PATH` handle on it.
    pub file: OwnedFd,
    /// Its real path, as bytes (for a memfd, `/memfd:NAME (deleted)`).
    pub real_path: Vec<u8>,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// The id of the mount it was found through (what the kernel exec check compares).
    pub mnt_id: u64,
    /// Whether its mount id and inode number name it alone, as the kernel exec check needs:
    /// not on btrfs or bcachefs, whose subvolumes share one mount and each number their
    /// inodes from the same start, nor on overlayfs, whose layers can repeat each other's
    /// numbers (only the device tells them apart).
    pub mount_and_inode_name_it: bool,
    /// File, memfd or deleted file.
    pub kind: ExeKind,
    /// Size and modification and change times: a file whose stamp is unchanged has the head
    /// it had.
    pub stamp: [i64; 5],
    /// Links in root-only directories through which it is invoked under the name its
    /// `argv[0]` gives (see [`crate::sys::trust::LinkFinder`]); filled in by [`ExecPlan::find_links`].
    pub links: Vec<Vec<u8>>,
}

/// Who is asking: the thread that made the exec call.
#[derive(Debug, Clone, Copy)]
pub struct Asker {
    /// Thread id.
    pub tid: i32,
}

fn errno(e: io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn open_path(dir: Option<&OwnedFd>, path: &[u8], nofollow: bool) -> Result<OwnedFd, Errno> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    loop {
        let r = match dir {
            Some(d) => openat(d.as_fd(), c.as_c_str(), flags, Mode::empty()),
            None => openat(nix::fcntl::AT_FDCWD, c.as_c_str(), flags, Mode::empty()),
        };
        match r {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

fn proc_dir(tid: i32, what: &str) -> Result<OwnedFd, Errno> {
    open_path(None, format!("/proc/{tid}/{what}").as_bytes(), false)
        .map_err(|e| if e == Errno::ENOENT { Errno::ESRCH } else { e })
}

/// `//` means `/` to the kernel: `/dev//fd/3` is `/dev/fd/3`.
fn collapse_slashes(path: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !path.windows(2).any(|w| w == b"//") {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The path prefixes that name the asker's own process.
const OWN_PROCESS: [&[u8]; 4] = [b"/proc/self/", b"/proc/thread-self/", b"/dev/fd/", b"/dev/std"];

/// A path through the asker's own process: which of [`OWN_PROCESS`] it starts with, and what
/// follows; `None` for any other path.
fn own_process(path: &[u8]) -> Option<(usize, &[u8])> {
    let (i, rest) = OWN_PROCESS.iter().enumerate().find_map(|(i, p)| path.strip_prefix(*p).map(|rest| (i, rest)))?;
    (i < 3 || matches!(rest, b"in" | b"out" | b"err")).then_some((i, rest))
}

/// Rewrites a leading `/proc/self`, `/proc/thread-self` or `/dev/fd` (found by [`own_process`])
/// to name the asker.
fn rewrite_self((i, rest): (usize, &[u8]), asker: Asker, tgid: i32) -> Vec<u8> {
    let mut out = match i {
        0 => format!("/proc/{tgid}/"),
        1 => format!("/proc/{tgid}/task/{}/", asker.tid),
        2 => format!("/proc/{tgid}/fd/"),
        _ => {
            // /dev/stdin, /dev/stdout, /dev/stderr -> /proc/TGID/fd/0..2
            let n = match rest {
                b"out" => 1,
                b"err" => 2,
                _ => 0,
            };
            return format!("/proc/{tgid}/fd/{n}").into_bytes();
        }
    }
    .into_bytes();
    out.extend_from_slice(rest);
    out
}

/// A descriptor number in another process's table: the directory of an `execveat`. It is only
/// ever looked up through `/proc/TGID/task/TID/fd/N` of the process that holds it, never used
/// as one of the supervisor's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFd(i32);

impl RemoteFd {
    /// The directory argument of an `execveat` as the kernel sees the 32-bit int: `None` for
    /// `AT_FDCWD`.
    pub fn of_dirfd(raw: i32) -> Option<Self> {
        (raw != AT_FDCWD).then_some(RemoteFd(raw))
    }

    /// Where it is reached from the supervisor: the calling thread's descriptor table (a
    /// thread may have its own).
    fn proc_path(self, tgid: i32, asker: Asker) -> Vec<u8> {
        format!("/proc/{tgid}/task/{}/fd/{}", asker.tid, self.0).into_bytes()
    }
}

impl std::fmt::Display for RemoteFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Finds the file `path` names for the asker, as `execveat(dirfd, path, .., flags)` would.
/// `dirfd` is `None` for `execve`.
///
/// # Errors
/// The errno the exec would fail with: `ENOENT`, `ENOTDIR`, `ELOOP`, `EACCES` (not a regular
/// file), `ESRCH` when the asker is gone (or `ENOENT`: its `/proc` entry is gone with it).
pub fn resolve(
    asker: Asker,
    tgid: i32,
    dirfd: Option<RemoteFd>,
    path: &[u8],
    flags: u64,
) -> Result<Resolved, Errno> {
    // With the process id, `find` always finds: the `ESRCH` is never given.
    find(asker, Some(tgid), dirfd, path, flags).unwrap_or(Err(Errno::ESRCH))
}

/// [`resolve`] for an `execve` (no directory descriptor) when its path can be followed without
/// the caller's process id: any path that does not start with one of the caller's own process
/// (`/proc/self/`, `/dev/fd/`...), for which it is `None`. A path that names nothing is then
/// answered before the caller's ids are read. Both follow the path the same way (only the
/// rewriting of those prefixes takes the process id); a path that reaches `/proc/self`
/// otherwise (`/proc/./self`, a symlink) is followed in the supervisor's own there, by both,
/// as before: a miss is refused, and what really loads is checked at the exec.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_by_thread(asker: Asker, path: &[u8], flags: u64) -> Option<Result<Resolved, Errno>> {
    find(asker, None, None, path, flags)
}

/// [`resolve`], with the process id `tgid` when it is known; `None` when it is needed and not.
fn find(asker: Asker, tgid: Option<i32>, dirfd: Option<RemoteFd>, path: &[u8], flags: u64) -> Option<Result<Resolved, Errno>> {
    let nofollow = flags & AT_SYMLINK_NOFOLLOW != 0;
    let collapsed = collapse_slashes(path);
    let opened = if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Some(Err(Errno::ENOENT));
        }
        match dirfd {
            Some(fd) => open_dirfd(&fd.proc_path(tgid?, asker)),
            // execveat(AT_FDCWD, "", AT_EMPTY_PATH) names the working directory.
            None => return Some(Err(Errno::EACCES)),
        }
    } else if let Some(own) = own_process(&collapsed) {
        open_path(None, &rewrite_self(own, asker, tgid?), nofollow)
    } else {
        // Through the caller's root or working directory, or the directory descriptor.
        let base = match (path.starts_with(b"/"), dirfd) {
            (true, _) | (false, None) => None,
            (false, Some(fd)) => Some(fd.proc_path(tgid?, asker)),
        };
        open_plain(asker, base, path, nofollow)
    };
    Some(opened.and_then(describe))
}

/// Opens the directory descriptor of an `execveat` through its `/proc` path: one that is not
/// open is `EBADF`, as the kernel says.
fn open_dirfd(proc_path: &[u8]) -> Result<OwnedFd, Errno> {
    open_path(None, proc_path, false).map_err(|e| if e == Errno::ENOENT { Errno::EBADF } else { e })
}

/// Opens `path` as the asker sees it: an absolute one from its root, a relative one from its
/// working directory or from `dirfd` (the `/proc` path of its directory descriptor).
fn open_plain(asker: Asker, dirfd: Option<Vec<u8>>, path: &[u8], nofollow: bool) -> Result<OwnedFd, Errno> {
    if path.starts_with(b"/") {
        // One walk through the magic link /proc/TID/root; two steps when that would exceed
        // PATH_MAX.
        let mut through_root = format!("/proc/{}/root", asker.tid).into_bytes();
        if through_root.len() + path.len() < 4096 {
            through_root.extend_from_slice(path);
            open_path(None, &through_root, nofollow)
        } else {
            let root = proc_dir(asker.tid, "root")?;
            open_path(Some(&root), &path[1..], nofollow)
        }
    } else {
        let base = match dirfd {
            Some(fd) => open_dirfd(&fd)?,
            None => proc_dir(asker.tid, "cwd")?,
        };
        open_path(Some(&base), path, nofollow)
    }
}

/// What kind of file an executable is, from its real path (as `/proc` names it) and its link
/// count: a file with a name; a memfd (`/memfd:NAME (deleted)`, no links); a deleted file.
/// Whether its path can be trusted in the session (`Foreign`) is decided apart, by
/// [`Reference::foreign`]. The one classification of the exec check and of the check after.
pub fn classify(real_path: &[u8], nlink: u64) -> ExeKind {
    if nlink > 0 {
        ExeKind::File
    } else if real_path.starts_with(b"/memfd:") {
        ExeKind::Memfd
    } else {
        ExeKind::Deleted
    }
}

/// Identifies an open file: type check, identity, real path and kind.
fn describe(file: OwnedFd) -> Result<Resolved, Errno> {
    let st = statx(&file)?;
    let ftype = SFlag::from_bits_truncate(u32::from(st.stx_mode)) & SFlag::S_IFMT;
    if ftype == SFlag::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    if ftype != SFlag::S_IFREG {
        return Err(Errno::EACCES);
    }
    let real_path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(errno)?
        .into_os_string()
        .into_vec();
    let kind = classify(&real_path, u64::from(st.stx_nlink));
    let stamp = [
        st.stx_size as i64,
        st.stx_mtime.tv_sec,
        i64::from(st.stx_mtime.tv_nsec),
        st.stx_ctime.tv_sec,
        i64::from(st.stx_ctime.tv_nsec),
    ];
    let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
    let (ino, mnt_id) = (st.stx_ino, st.stx_mnt_id);
    // Those file systems give their files anonymous devices: only then is it asked.
    let mount_and_inode_name_it = st.stx_dev_major != 0
        || nix::sys::statfs::fstatfs(&file).is_ok_and(|fs| !SUBVOLUME_FILESYSTEMS.contains(&fs.filesystem_type().0));
    Ok(Resolved { file, real_path, dev, ino, mnt_id, mount_and_inode_name_it, kind, stamp, links: Vec::new() })
}

/// `statx` of an open file: the stat fields and its mount id, in one call.
fn statx(file: &OwnedFd) -> Result<libc::statx, Errno> {
    statx_at(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

/// `statx` of a path, not following a last symlink.
fn statx_path(path: &[u8]) -> Result<libc::statx, Errno> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    statx_at(libc::AT_FDCWD, &c, libc::AT_SYMLINK_NOFOLLOW)
}

/// `statx(dirfd, path, flags)` asking for the stat fields and the mount id.
fn statx_at(dirfd: i32, path: &std::ffi::CStr, flags: i32) -> Result<libc::statx, Errno> {
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_BASIC_STATS | libc::STATX_MNT_ID;
    // SAFETY: the path is NUL-terminated, `st` is valid for writes.
    if unsafe { libc::statx(dirfd, path.as_ptr(), flags | libc::AT_STATX_SYNC_AS_STAT, mask, &mut st) } != 0 {
        return Err(Errno::last());
    }
    Ok(st)
}

/// The session's mount namespace, against which the paths of execs are checked: the one the
/// process that opened the session was in once its isolation was applied.
#[derive(Debug)]
pub struct Reference {
    /// Its root directory (held open, so the namespace's mounts stay reachable).
    root: Option<OwnedFd>,
    /// Its user namespace (device, inode).
    user_namespace: Option<(u64, u64)>,
    /// Its mounts.
    mounts: Option<Mounts>,
}

/// The ids of a mount namespace's mounts, read from a `mountinfo` file held open (which keeps
/// naming that namespace): first when asked ([`Reference::read_mounts`], once the session's
/// open is answered), again when the kernel reports a change on it (`POLLPRI`).
///
/// Only membership is asked of it, never where a mount is: a rename of a directory moves the
/// mounts under it with no report, and no user can move a mount into another namespace. Ids
/// are handed out lowest-free-first from one pool for every namespace, so a user's new mount
/// takes the id of one that just left the session's namespace (review of the ninth pass: it
/// did, every time): a stale id is dangerous. It is never believed, because the kernel
/// reports the leaving before the id is free, and the report is looked for at every question;
/// and the id asked about cannot be freed and given to another mount meanwhile, since the
/// caller holds a descriptor of a file on its mount (until the kernel's check at the exec has
/// compared it). A reading that fails leaves no list: the next question reads again.
///
/// `mountinfo` lists only the mounts whose mount point the reader's root reaches: where the
/// session's root is a directory inside a mount (a `chroot`, sshd's `ChrootDirectory`), the
/// mount that holds the root itself is not listed, and it is added (held by the root's
/// handle, its id is not reused).
#[derive(Debug)]
struct Mounts {
    file: File,
    /// Sorted.
    ids: Vec<u64>,
    /// The mount of the session's root directory.
    root: Option<u64>,
    /// Not read yet, or the last reading failed: read at the next question, whatever the
    /// kernel says.
    unread: bool,
}

impl Mounts {
    /// The mounts listed in `file`, unread: [`Mounts::read`] or the first question reads them.
    fn open(file: File, root: Option<&OwnedFd>) -> Self {
        let root = root.and_then(|r| statx(r).ok()).filter(|st| st.stx_mask & libc::STATX_MNT_ID != 0).map(|st| st.stx_mnt_id);
        Mounts { file, ids: Vec::new(), root, unread: true }
    }

    /// Reads the ids (each line's first field) through a buffer of fixed size: a table of
    /// thousands of mounts is parsed as it comes, never held.
    fn read(&mut self) -> io::Result<()> {
        use std::io::{Read, Seek};
        self.ids.clear();
        self.unread = true;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        let mut buf = [0u8; 16 * 1024];
        // The id being read (`Some` while at the start of a line), None for the rest of one.
        let mut id: Option<u64> = Some(0);
        let mut digits = 0;
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for &b in &buf[..n] {
                match (b, id) {
                    (b'\n', _) => (id, digits) = (Some(0), 0),
                    (b'0'..=b'9', Some(v)) => {
                        id = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0')));
                        digits += 1;
                    }
                    (b' ', Some(v)) if digits > 0 => {
                        self.ids.push(v);
                        id = None;
                    }
                    _ => id = None,
                }
            }
        }
        self.ids.sort_unstable();
        self.unread = false;
        Ok(())
    }

    /// Whether the kernel reported a change of the namespace's mounts since it was last asked
    /// (or since the file was opened); `None` when it cannot be asked. Asking takes the report.
    fn changed(&self) -> Option<bool> {
        let mut p = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
        // SAFETY: one pollfd, no wait.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        (n >= 0).then_some(n > 0 && p.revents & (libc::POLLPRI | libc::POLLERR) != 0)
    }

    /// Whether mount `id` is one of the namespace's now. Not knowing counts as no.
    fn has(&mut self, id: u64) -> bool {
        let Some(changed) = self.changed() else { return false };
        if (changed || self.unread) && self.read().is_err() {
            return false;
        }
        self.root == Some(id) || self.ids.binary_search(&id).is_ok()
    }
}

impl Reference {
    /// The root of `leader`; this process's own when that cannot be opened.
    pub fn of(leader: i32) -> Self {
        // Its root and its mount table through one handle of its /proc directory (this
        // process's own when the leader is gone): both of one process.
        let dir = proc_dir(leader, "").or_else(|_| open_path(None, b"/proc/self", false)).ok();
        let root = dir.as_ref().and_then(|d| open_path(Some(d), b"root", false).ok());
        let table = dir.as_ref().and_then(|d| {
            let fd = openat(d.as_fd(), c"mountinfo", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
            Some(File::from(fd))
        });
        Reference {
            mounts: table.map(|t| Mounts::open(t, root.as_ref())),
            root,
            user_namespace: crate::sys::procfs::user_namespace(leader)
                .or_else(|_| crate::sys::procfs::user_namespace(std::process::id() as i32))
                .ok(),
        }
    }

    /// The session's root directory.
    pub fn root(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.root.as_ref().map(AsFd::as_fd)
    }

    /// Reads the session's mount table, if not read since it was opened or since a reading
    /// failed. Opened with the rest while the leader waited, it names the namespace the
    /// leader was in then, whatever the host does after; read later (after "ready", off the
    /// session open's path), it lists that namespace's mounts as they are then, as a change
    /// reported after a reading would have them read again.
    pub fn read_mounts(&mut self) {
        if let Some(m) = self.mounts.as_mut().filter(|m| m.unread) {
            // The changes since the file was opened are in this reading: their report is
            // taken first, so that the first question does not read the table again for them
            // (a change after this is reported as ever).
            let _ = m.changed();
            let _ = m.read();
        }
    }

    /// Whether the session's mount table could be read ([`Reference::read_mounts`]): without
    /// it every path counts as foreign (a file's mount cannot be told to be the session's).
    pub fn mounts_known(&self) -> bool {
        self.mounts.as_ref().is_some_and(|m| !m.unread)
    }

    /// The inode number of the session's user namespace, if it could be read.
    pub fn user_namespace_inode(&self) -> Option<u64> {
        self.user_namespace.map(|(_, ino)| ino)
    }

    /// Whether task `tid` is in a user namespace other than the session's (or cannot be
    /// told): such a namespace is where a user owns mounts and can lay files of their own over
    /// the loader and libraries of the programs they run there.
    pub fn foreign_user_namespace(&self, tid: i32) -> bool {
        match (self.user_namespace, crate::sys::procfs::user_namespace(tid)) {
            (Some(session), Ok(task)) => session != task,
            _ => true,
        }
    }

    /// Whether the file `dev:ino`, found at `real_path` through `tid`'s view, is not what
    /// `real_path` names in the session's mount namespace (another file, or none): it was
    /// reached through a mount namespace of its own (the process's, or another process's via
    /// `/proc/PID/root`), where something is mounted over the path. Checked for every exec:
    /// the caller's namespace alone says nothing, since a path can lead through another's.
    /// The file's mount must also be one of the session's namespace's: a user's symlink into
    /// `/proc/PID/root` of a namespace of their own (made in a session that allows it, or
    /// outside any) makes the path lead, in the session too, to a mount of that namespace.
    ///
    /// `mnt_id`: the mount the file was found on, when known (its path, mount and inode from
    /// one descriptor). Then one `statx` of the path in the session's namespace that ends on
    /// that very mount and inode settles it: that is what the kernel check will compare at
    /// the exec. Otherwise, or without it, the path is opened there and must lead to
    /// `dev:ino` under the same name. (Where mounts are cannot be remembered instead: a
    /// rename of a directory above a mount point moves the mount without a word from the
    /// kernel.)
    pub fn foreign(&mut self, real_path: &[u8], dev: u64, ino: u64, mnt_id: Option<u64>) -> bool {
        let (Some(root), Some(mounts)) = (&self.root, &mut self.mounts) else { return true };
        // Through the magic link of our own descriptor of the session's root: one walk, in
        // the session's namespace (openat2 is not available: the supervisor's own filter
        // refuses it, since its flags cannot be inspected).
        let mut through = format!("/proc/self/fd/{}", root.as_raw_fd()).into_bytes();
        through.extend_from_slice(real_path);
        if through.len() >= 4096 {
            return true;
        }
        // A regular file is never named "/" (the kernel's name for a file whose directory
        // left its bind mount), and a deleted one has no name there.
        let nameable = real_path.len() > 1 && real_path.first() == Some(&b'/') && !real_path.ends_with(b" (deleted)");
        if let (Some(m), true) = (mnt_id, nameable) {
            if matches!(statx_path(&through), Ok(st) if st.stx_mask & libc::STATX_MNT_ID != 0
                && (st.stx_mnt_id, libc::makedev(st.stx_dev_major, st.stx_dev_minor), st.stx_ino) == (m, dev, ino))
            {
                return !mounts.has(m);
            }
        }
        let Ok(fd) = open_path(None, &through, false) else { return true };
        if !matches!(statx(&fd), Ok(st) if st.stx_mask & libc::STATX_MNT_ID != 0
            && (libc::makedev(st.stx_dev_major, st.stx_dev_minor), st.stx_ino) == (dev, ino)
            && mounts.has(st.stx_mnt_id))
        {
            return true;
        }
        // Reached through a symlink, the file's name there is another: the path is not its.
        let named = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        !matches!(named, Ok(n) if n.as_os_str().as_bytes() == real_path)
    }
}

/// Reads the head of the file, as the kernel does to find `#!`. `None` when the file is on a
/// filesystem whose reads may block on the user (FUSE) or cannot be opened for reading.
fn read_head(r: &Resolved) -> Option<Vec<u8>> {
    let fs = nix::sys::statfs::fstatfs(&r.file).ok()?;
    if fs.filesystem_type().0 == FUSE_SUPER_MAGIC {
        return None;
    }
    let c = CString::new(format!("/proc/self/fd/{}", r.file.as_raw_fd())).ok()?;
    let fd = openat(
        nix::fcntl::AT_FDCWD,
        c.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let f = File::from(fd);
    let mut buf = vec![0u8; BINPRM_BUF_SIZE];
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    buf.truncate(n);
    Some(buf)
}

/// How the heads of recently seen executables read, by identity and stamp, so that the 500th
/// exec of `/bin/true` does not read it again. A stale entry can only mislead the first look:
/// the check after the exec sees the image that really loaded.
#[derive(Debug, Default)]
pub struct HeadCache {
    entries: std::collections::HashMap<(u64, u64), ([i64; 5], ScriptHead)>,
}

const HEAD_CACHE_ENTRIES: usize = 512;

impl HeadCache {
    fn head(&mut self, r: &Resolved) -> Option<ScriptHead> {
        if let Some((stamp, head)) = self.entries.get(&(r.dev, r.ino)) {
            if *stamp == r.stamp {
                return Some(head.clone());
            }
        }
        let head = parse_script_head(&read_head(r)?);
        if self.entries.len() >= HEAD_CACHE_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert((r.dev, r.ino), (r.stamp, head.clone()));
        Some(head)
    }
}

/// One interpreter the kernel will start for a `#!` script.
#[derive(Debug)]
pub struct Interpreter {
    /// The `#!` line that names it.
    pub shebang: Shebang,
    /// The interpreter file.
    pub file: Resolved,
    /// The argument vector it starts with (`argv[0]` is the path of the `#!` line).
    pub argv: Vec<Vec<u8>>,
}

/// What an exec will run: the file named, the interpreters its `#!` line leads to, and the
/// image and argument vector that will really start.
#[derive(Debug)]
pub struct ExecPlan {
    /// The file the exec names.
    pub named: Resolved,
    /// Interpreters, outermost first; the last one is the image that runs.
    pub interpreters: Vec<Interpreter>,
    /// The argument vector the final image will see.
    pub final_argv: Vec<Vec<u8>>,
    /// Whether the `#!` chain could be read; when not, the check after the exec decides.
    pub complete: bool,
}

impl ExecPlan {
    /// The image that will run: the last interpreter, or the named file.
    pub fn image(&self) -> &Resolved {
        self.interpreters.last().map_or(&self.named, |i| &i.file)
    }

    /// Finds, for the named file and each interpreter, the links through which it is invoked
    /// under the name its `argv[0]` gives, when that is not the file's own name. `asked` is
    /// the path the exec named.
    pub fn find_links(&mut self, finder: &crate::sys::trust::LinkFinder, asked: &[u8], argv: &[Vec<u8>]) {
        fill_links(&mut self.named, finder, asked, argv);
        for i in &mut self.interpreters {
            fill_links(&mut i.file, finder, &i.shebang.interpreter, &i.argv);
        }
    }
}

fn fill_links(file: &mut Resolved, finder: &crate::sys::trust::LinkFinder, asked: &[u8], argv: &[Vec<u8>]) {
    let name = session_wrapper_config::invoked_name(argv.first().map_or(&[][..], Vec::as_slice));
    let own = file.real_path.rsplit(|&b| b == b'/').next() == Some(name);
    file.links = if own { Vec::new() } else { finder.links(name, file.dev, file.ino, asked) };
}

/// The `filename` the kernel passes to an interpreter: the path as given, or `/dev/fd/N[/path]`
/// for `execveat` with a directory fd.
pub fn kernel_filename(dirfd: Option<RemoteFd>, path: &[u8]) -> Vec<u8> {
    match dirfd {
        Some(fd) if path.is_empty() => format!("/dev/fd/{fd}").into_bytes(),
        Some(fd) if !path.starts_with(b"/") => {
            let mut v = format!("/dev/fd/{fd}/").into_bytes();
            v.extend_from_slice(path);
            v
        }
        _ => path.to_vec(),
    }
}

/// Follows the `#!` chain of `named` the way the kernel will.
///
/// # Errors
/// `ENOEXEC` for a `#!` line the kernel refuses, `ELOOP` past the kernel's depth, or the
/// lookup errno of an interpreter.
pub fn plan(
    asker: Asker,
    tgid: i32,
    named: Resolved,
    filename: Vec<u8>,
    argv: &[Vec<u8>],
    cache: &mut HeadCache,
) -> Result<ExecPlan, Errno> {
    let mut interpreters: Vec<Interpreter> = Vec::new();
    let mut final_argv = argv.to_vec();
    let mut current_name = filename;
    let mut complete = true;
    loop {
        let current = interpreters.last().map_or(&named, |i| &i.file);
        let Some(head) = cache.head(current) else {
            complete = false;
            break;
        };
        let shebang = match head {
            ScriptHead::NotScript => break,
            ScriptHead::Invalid => return Err(Errno::ENOEXEC),
            ScriptHead::Script(s) => s,
        };
        if interpreters.len() >= MAX_INTERPRETER_DEPTH {
            return Err(Errno::ELOOP);
        }
        let file = resolve(asker, tgid, None, &shebang.interpreter, 0)?;
        final_argv = script_argv(&shebang, &current_name, &final_argv);
        current_name = shebang.interpreter.clone();
        interpreters.push(Interpreter { shebang, file, argv: final_argv.clone() });
    }
    Ok(ExecPlan { named, interpreters, final_argv, complete })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> (Asker, i32) {
        let tid = nix::unistd::gettid().as_raw();
        (Asker { tid }, std::process::id() as i32)
    }

    fn rewritten(path: &[u8], a: Asker, tgid: i32) -> Option<Vec<u8>> {
        own_process(path).map(|own| rewrite_self(own, a, tgid))
    }

    /// Without the process id: a path found as with it, a missing one missing, and none of
    /// those through the caller's own process (they need the id).
    #[test]
    fn a_path_is_found_by_the_thread_alone_unless_it_goes_through_the_callers_process() {
        let (a, tgid) = me();
        let d = tempdir("thread");
        std::fs::write(d.join("real"), b"x").expect("write");
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).expect("symlink");
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).expect("symlink");
        std::os::unix::fs::symlink(d.join("loop"), d.join("loop")).expect("symlink");
        let dir = d.to_string_lossy().into_owned();
        // Files, links, misses and errors of every kind, spelt in every way: found alone, each
        // is found as with the process id (the same file, or the same errno).
        let spellings = [
            format!("{dir}/real"),
            format!("{dir}//real"),
            format!("{dir}/./real"),
            format!("{dir}/sub/../real"),
            format!("{dir}/link"),
            format!("{dir}/missing"),
            format!("{dir}/real/x"),
            format!("{dir}/dangling"),
            format!("{dir}/loop"),
            format!("{dir}/sub"),
            "/usr/bin/../bin/true".into(),
            "/dev/fd".into(),
            "/dev/stdfoo".into(),
            String::new(),
        ];
        for path in &spellings {
            for flags in [0, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH] {
                let alone = resolve_by_thread(a, path.as_bytes(), flags).unwrap_or_else(|| panic!("{path:?} is found alone"));
                let with_id = resolve(a, tgid, None, path.as_bytes(), flags);
                let seen = |r: &Result<Resolved, Errno>| r.as_ref().map(|r| (r.real_path.clone(), r.ino)).map_err(|e| *e);
                assert_eq!(seen(&alone), seen(&with_id), "{path:?} flags {flags:#x}");
            }
        }
        assert_eq!(resolve_by_thread(a, format!("{dir}/missing").as_bytes(), 0).map(|r| r.err()), Some(Some(Errno::ENOENT)));
        // Those through the caller's own process take its id.
        for own in [&b"/proc/self/exe"[..], b"/proc//self/exe", b"/dev/fd/3", b"/proc/thread-self/exe", b"/dev/stdin"] {
            assert!(resolve_by_thread(a, own, 0).is_none(), "{}", String::from_utf8_lossy(own));
        }
        assert!(resolve(a, tgid, None, b"/proc/self/exe", 0).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sw-resolve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn absolute_path_through_symlinks_resolves_to_the_real_file() {
        let (a, tgid) = me();
        let d = tempdir("abs");
        std::fs::write(d.join("real"), b"x").expect("write");
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).expect("symlink");
        let r = resolve(a, tgid, None, d.join("link").as_os_str().as_encoded_bytes(), 0)
            .expect("resolves");
        assert_eq!(r.real_path, d.join("real").as_os_str().as_encoded_bytes());
        assert_eq!(r.kind, ExeKind::File);
        let e = resolve(a, tgid, None, d.join("link").as_os_str().as_encoded_bytes(), AT_SYMLINK_NOFOLLOW)
            .expect_err("nofollow");
        assert_eq!(e, Errno::ELOOP);
        assert_eq!(resolve(a, tgid, None, d.as_os_str().as_encoded_bytes(), 0).expect_err("dir"), Errno::EACCES);
        assert_eq!(resolve(a, tgid, None, b"/nonexistent/x", 0).expect_err("missing"), Errno::ENOENT);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn doubled_slashes_do_not_hide_the_asker_s_own_descriptors() {
        assert_eq!(&*collapse_slashes(b"/dev//fd/3"), b"/dev/fd/3");
        assert_eq!(&*collapse_slashes(b"//proc///self/fd/3"), b"/proc/self/fd/3");
        assert_eq!(&*collapse_slashes(b"/usr/bin/true"), b"/usr/bin/true");
        let (a, tgid) = me();
        assert_eq!(rewritten(&collapse_slashes(b"/dev//fd/7"), a, tgid), Some(format!("/proc/{tgid}/fd/7").into_bytes()));
    }

    #[test]
    fn a_path_names_its_file_in_the_reference_namespace_only_when_it_leads_there_directly() {
        let mut reference = Reference::of(std::process::id() as i32);
        let d = tempdir("ref");
        std::fs::write(d.join("real"), b"x").expect("write");
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).expect("symlink");
        let st = std::fs::metadata(d.join("real")).expect("stat");
        use std::os::unix::fs::MetadataExt;
        let real = d.join("real").into_os_string().into_vec();
        // Walked (no mount id given).
        assert!(!reference.foreign(&real, st.dev(), st.ino(), None));
        assert!(reference.foreign(&real, st.dev(), st.ino() + 1, None), "another file at that path");
        let link = d.join("link").into_os_string().into_vec();
        assert!(reference.foreign(&link, st.dev(), st.ino(), None), "reached through a symlink: not its name");
        assert!(reference.foreign(b"/nonexistent/sw", st.dev(), st.ino(), None), "no file at that path");
        // With the mount it was found on: one statx. A path that does not end on that mount
        // and inode is walked, with the same answers.
        let file = open_path(None, &real, true).expect("open");
        let mnt_id = statx(&file).expect("statx").stx_mnt_id;
        assert!(!reference.foreign(&real, st.dev(), st.ino(), Some(mnt_id)));
        assert!(!reference.foreign(&real, st.dev(), st.ino(), Some(mnt_id + 100_000)), "walked: same file, same name");
        assert!(reference.foreign(&real, st.dev(), st.ino() + 1, Some(mnt_id)), "another file at that path");
        assert!(reference.foreign(&link, st.dev(), st.ino(), Some(mnt_id)), "a symlink at the end is not the file");
        assert!(reference.foreign(b"/", st.dev(), st.ino(), Some(mnt_id)), "\"/\" names no regular file");
        // Through a directory symlink the path leads to the same file, but its name there is
        // another: the mount given is not the one the path ends on, so it is walked, and the
        // walk's name check refuses it (the mount id is what keeps the fast path from it).
        std::os::unix::fs::symlink(&d, d.join("alias")).expect("symlink");
        let aliased = d.join("alias").join("real").into_os_string().into_vec();
        assert!(reference.foreign(&aliased, st.dev(), st.ino(), Some(mnt_id + 100_000)), "another name, through a symlink");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn mount_ids_are_parsed_as_they_come_across_the_buffer_and_bad_lines_are_skipped() {
        let d = tempdir("mountinfo");
        let mut text = Vec::new();
        text.extend_from_slice(b"27 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
        // A line longer than the read buffer, then one whose id straddles the next buffer's end.
        text.extend_from_slice(b"31 27 0:5 / /long ");
        text.extend(std::iter::repeat_n(b'x', 2 * 16 * 1024 - text.len() - 2));
        text.extend_from_slice(b"\n4099 27 0:6 / /next rw - tmpfs t rw\n");
        text.extend_from_slice(b"x12 27 bad\n\n 13 leading space\n77\n8 27 0:7 / /last rw - proc p rw\n");
        std::fs::write(d.join("mountinfo"), &text).expect("write");
        let mut mounts = Mounts::open(File::open(d.join("mountinfo")).expect("open"), None);
        mounts.read().expect("read");
        assert_eq!(mounts.ids, vec![8, 27, 31, 4099]);
        assert!(mounts.has(4099) && !mounts.has(12) && !mounts.has(13) && !mounts.has(77));
        let _ = std::fs::remove_dir_all(d);
    }

    /// A leader whose mount table cannot be read (here a zombie: no namespaces left) leaves
    /// the session blind to mounts: known as such (the session-start line says
    /// `mounts=unreadable`), and every path counts as foreign.
    #[test]
    fn without_the_session_s_mount_table_every_path_is_foreign_and_it_is_known() {
        let mut own = Reference::of(std::process::id() as i32);
        assert!(!own.mounts_known(), "read only when asked");
        own.read_mounts();
        assert!(own.mounts_known());
        // SAFETY: the child exits at once; it is reaped below.
        let child = match unsafe { nix::unistd::fork() }.expect("fork") {
            // SAFETY: _exit in the child.
            nix::unistd::ForkResult::Child => unsafe { libc::_exit(0) },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        let zombie = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| s.contains(") Z "))
        });
        let mut reference = Reference::of(child.as_raw());
        reference.read_mounts();
        let known = reference.mounts_known();
        let foreign = reference.foreign(b"/usr/bin/true", 0, 0, None);
        let _ = nix::sys::wait::waitpid(child, None);
        assert!(zombie, "the child never became a zombie");
        assert!(!known && foreign, "known {known}, foreign {foreign}");
    }

    #[test]
    fn the_namespace_s_mounts_are_known_by_id() {
        let mut mounts = Mounts::open(File::open("/proc/self/mountinfo").expect("mountinfo"), None);
        let root = statx_path(b"/").expect("statx /").stx_mnt_id;
        assert!(mounts.has(root), "the root's mount {root} among {:?}", mounts.ids);
        assert!(!mounts.has(u64::MAX), "no such mount");
        assert!(mounts.ids.windows(2).all(|w| w[0] < w[1]), "sorted, once each: {:?}", mounts.ids);
    }

    /// A session whose root is a directory inside a mount (a `chroot`, sshd's
    /// `ChrootDirectory`): its `mountinfo` does not list the mount that holds its root, and
    /// the files there are its own all the same (the package test's chrooted Debian failed
    /// on it: every exec was foreign).
    #[test]
    fn a_session_rooted_in_a_directory_inside_a_mount_knows_that_mount() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: chroot needs root");
            return;
        }
        let d = tempdir("chroot");
        std::fs::create_dir_all(d.join("bin")).expect("mkdir");
        std::fs::write(d.join("bin/prog"), b"").expect("write");
        let file = open_path(None, d.join("bin/prog").as_os_str().as_bytes(), false).expect("open");
        let st = statx(&file).expect("statx");
        let root = std::ffi::CString::new(d.as_os_str().as_bytes()).expect("path");
        // SAFETY: chroot and chdir with valid arguments, in the child.
        let chrooted = || unsafe { libc::chroot(root.as_ptr()) == 0 && libc::chdir(c"/".as_ptr()) == 0 };
        let (ok, foreign) = with_child(chrooted, |child| {
            let mut reference = Reference::of(child);
            // One statx of the path in the session: on the very mount the file is on. (The
            // walk's name check reads names from this process's root, which in a chrooted
            // session is the session's too: the module's supervisor inherits the chroot; not
            // so for this test's process.)
            let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
            reference.foreign(b"/bin/prog", dev, st.stx_ino, Some(st.stx_mnt_id))
        });
        let _ = std::fs::remove_dir_all(&d);
        assert!(ok, "chroot failed");
        assert!(!foreign, "a file of the session's root counted as foreign");
    }

    /// Runs `setup` (system calls only) in a forked child that then waits, and `then` with the
    /// child's pid; the child is killed and reaped afterwards. Whether `setup` succeeded, and
    /// what `then` returned.
    fn with_child<T>(setup: impl Fn() -> bool, then: impl FnOnce(i32) -> T) -> (bool, T) {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        // SAFETY: the child only makes system calls and is killed by the parent.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let ok = setup();
                // SAFETY: write and pause in the child.
                unsafe {
                    libc::write(w.as_raw_fd(), [u8::from(ok)].as_ptr().cast(), 1);
                    loop {
                        libc::pause();
                    }
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&r, &mut b);
                let out = then(child.as_raw());
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                (b[0] == 1, out)
            }
        }
    }

    #[test]
    fn a_task_in_a_user_namespace_of_its_own_is_foreign() {
        let me = std::process::id() as i32;
        let reference = Reference::of(me);
        assert!(!reference.foreign_user_namespace(me));
        // SAFETY: unshare in the child.
        let (ok, foreign) = with_child(|| unsafe { libc::unshare(libc::CLONE_NEWUSER) == 0 }, |child| reference.foreign_user_namespace(child));
        if ok {
            assert!(foreign);
        } else {
            eprintln!("skipped: user namespaces are not available to this test process");
        }
        assert!(reference.foreign_user_namespace(i32::MAX), "a task that cannot be seen counts as foreign");
    }

    #[test]
    fn relative_path_is_resolved_against_the_directory_fd() {
        let (a, tgid) = me();
        let d = tempdir("rel");
        std::fs::write(d.join("prog"), b"x").expect("write");
        let dir = File::open(&d).expect("open dir");
        let r = resolve(a, tgid, RemoteFd::of_dirfd(dir.as_raw_fd()), b"prog", 0).expect("resolves");
        assert!(r.real_path.ends_with(b"/prog"));
        assert_eq!(kernel_filename(RemoteFd::of_dirfd(dir.as_raw_fd()), b"prog"), format!("/dev/fd/{}/prog", dir.as_raw_fd()).into_bytes());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn empty_path_with_at_empty_path_is_the_fd_and_deleted_files_are_seen() {
        let (a, tgid) = me();
        let d = tempdir("fd");
        let p = d.join("gone");
        std::fs::write(&p, b"x").expect("write");
        let f = File::open(&p).expect("open");
        std::fs::remove_file(&p).expect("unlink");
        let r = resolve(a, tgid, RemoteFd::of_dirfd(f.as_raw_fd()), b"", AT_EMPTY_PATH).expect("resolves");
        assert_eq!(r.kind, ExeKind::Deleted);
        assert_eq!(resolve(a, tgid, RemoteFd::of_dirfd(f.as_raw_fd()), b"", 0).expect_err("no flag"), Errno::ENOENT);
        let via_proc = format!("/proc/self/fd/{}", f.as_raw_fd());
        let r = resolve(a, tgid, None, via_proc.as_bytes(), 0).expect("resolves");
        assert_eq!(r.kind, ExeKind::Deleted);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn memfd_is_recognised() {
        let (a, tgid) = me();
        let fd = nix::sys::memfd::memfd_create(c"payload", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd");
        let r = resolve(a, tgid, RemoteFd::of_dirfd(fd.as_raw_fd()), b"", AT_EMPTY_PATH).expect("resolves");
        assert_eq!(r.kind, ExeKind::Memfd);
        assert!(r.real_path.starts_with(b"/memfd:payload"));
    }

    #[test]
    fn script_chain_and_argv_follow_the_kernel() {
        let (a, tgid) = me();
        let d = tempdir("script");
        let inner = d.join("inner");
        std::fs::write(&inner, b"#!/bin/sh -e\n").expect("write");
        let outer = d.join("outer");
        std::fs::write(&outer, format!("#!{}\n", inner.display())).expect("write");
        for p in [&inner, &outer] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let ob = outer.as_os_str().as_encoded_bytes().to_vec();
        let named = resolve(a, tgid, None, &ob, 0).expect("resolves");
        let argv = vec![b"outer".to_vec(), b"arg1".to_vec()];
        let p = plan(a, tgid, named, ob.clone(), &argv, &mut HeadCache::default()).expect("plan");
        assert!(p.complete);
        assert_eq!(p.interpreters.len(), 2);
        let sh = std::fs::canonicalize("/bin/sh").expect("sh");
        assert_eq!(p.image().real_path, sh.as_os_str().as_encoded_bytes());
        let ib = inner.as_os_str().as_encoded_bytes().to_vec();
        assert_eq!(p.final_argv, vec![b"/bin/sh".to_vec(), b"-e".to_vec(), ib, ob, b"arg1".to_vec()]);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn bad_shebang_is_enoexec_and_self_paths_are_rewritten() {
        let (a, tgid) = me();
        let d = tempdir("bad");
        let s = d.join("s");
        std::fs::write(&s, b"#!\n").expect("write");
        let sb = s.as_os_str().as_encoded_bytes().to_vec();
        let named = resolve(a, tgid, None, &sb, 0).expect("resolves");
        assert_eq!(plan(a, tgid, named, sb, &[], &mut HeadCache::default()).expect_err("enoexec"), Errno::ENOEXEC);
        assert_eq!(rewritten(b"/dev/fd/3", a, 77), Some(b"/proc/77/fd/3".to_vec()));
        assert_eq!(rewritten(b"/proc/self/exe", a, 77), Some(b"/proc/77/exe".to_vec()));
        assert_eq!(rewritten(b"/dev/stderr", a, 77), Some(b"/proc/77/fd/2".to_vec()));
        assert_eq!(rewritten(b"/usr/bin/ls", a, 77), None);
        let _ = std::fs::remove_dir_all(d);
    }
}
