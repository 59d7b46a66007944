//! Paths that only root can change: the walk the module (for its `supervisor=`) and the
//! supervisor (for policy patterns, invocation names, library search paths, its loader) share.
//!
//! A path is *trusted* when every directory on the way to it, and every symlink followed, is
//! owned by root and writable by no one else: then what it names can be changed by root alone.
//! The walk is done component by component from a root directory, with `O_PATH | O_NOFOLLOW`
//! opens, as the kernel would walk it; `..` goes up the directories actually walked.
//!
//! What root cannot see is not taken for missing: a FUSE file system mounted by a user
//! without `allow_other` refuses root (`EACCES`) while serving its owner whatever it likes,
//! and on a FUSE file system the owner and mode of a file are what its daemon says. Both
//! are untrusted, never "missing" or "root's", unless root mounted the file system.

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// Symlinks followed at most, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// Whether a directory (or a link's directory) can be changed by root alone.
pub fn root_only(st: &FileStat) -> bool {
    st.st_uid == 0 && st.st_mode & 0o022 == 0
}

/// What a walk found.
#[derive(Debug)]
pub enum Lookup {
    /// The path exists and was reached through root-only directories and links.
    Found(Found),
    /// It does not exist, and the last directory reached is root-only: nobody else can make it.
    Missing,
    /// Something on the way can be changed by someone other than root.
    Untrusted(Untrusted),
}

/// A path reached through root-only directories.
#[derive(Debug)]
pub struct Found {
    /// The real path, every link resolved.
    pub path: Vec<u8>,
    /// An `O_PATH` handle on it.
    pub fd: OwnedFd,
    /// Its status.
    pub stat: FileStat,
}

/// The first thing on the way that someone other than root can change (or that root cannot
/// tell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The directory.
    pub path: Vec<u8>,
    /// Its owner.
    pub uid: u32,
    /// Its permission bits.
    pub mode: u32,
    /// Why, when it is not its owner and mode.
    pub unseen: Option<Unseen>,
}

/// Why a path's owner and mode say nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// It is on a FUSE file system a user mounted: its daemon says who owns what.
    Fuse,
    /// Root could not look at it (the error): a FUSE file system of a user's, without
    /// `allow_other`.
    Refused(Errno),
}

impl Untrusted {
    fn unseen(path: &[u8], why: Unseen) -> Self {
        Untrusted { path: path.to_vec(), uid: u32::MAX, mode: 0, unseen: Some(why) }
    }
}

/// The whole reason: "PATH (owner uid N, mode M) can be changed by others than root", or
/// why root cannot tell.
impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = String::from_utf8_lossy(&self.path);
        match self.unseen {
            None => write!(f, "{path} (owner uid {}, mode {:o}) can be changed by others than root", self.uid, self.mode & 0o7777),
            Some(Unseen::Fuse) => write!(f, "{path} is on a FUSE file system a user mounted, whose daemon says who owns what"),
            Some(Unseen::Refused(e)) => write!(f, "root cannot look at {path} ({e}), so cannot tell who can change it"),
        }
    }
}

/// `FUSE_SUPER_MAGIC`: a FUSE file system, whose daemon (maybe a user's) answers for it.
pub const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Whether the file of `fd` (whose status is `st`) is on a FUSE file system that root did
/// not mount (asked only of the anonymous devices, major 0, that FUSE file systems get). The
/// mounter is the `user_id=` the kernel shows for the file system in `/proc/self/mountinfo`
/// (what `fusermount3` passes is its caller's real uid, which a user cannot choose), found by
/// its device: the same for every mount of it, in every namespace (a session with private
/// directories walks copies of this process's mounts, with other ids). One not mounted in
/// this process's namespace at all (a user's own namespace's) counts as a user's. A file
/// system root mounted (CernVM-FS, lxcfs, an admin's sshfs) is root's choice, and its owners
/// are taken as it says them, as NFS's are.
fn users_fuse(fd: &OwnedFd, st: &FileStat) -> bool {
    if libc::major(st.st_dev) != 0 || !nix::sys::statfs::fstatfs(fd).map_or(true, |s| s.filesystem_type().0 == FUSE_SUPER_MAGIC) {
        return false;
    }
    let Ok(table) = std::fs::read("/proc/self/mountinfo") else { return true };
    let device = format!("{}:{}", libc::major(st.st_dev), libc::minor(st.st_dev));
    // "ID PARENT MAJOR:MINOR ROOT POINT ... - fuse SOURCE rw,user_id=0,group_id=0,...": the
    // super options are the last field.
    let mut lines = table.split(|&b| b == b'\n').filter(|l| l.split(|&b| b == b' ').nth(2) == Some(device.as_bytes()));
    let Some(line) = lines.next() else { return true };
    let options = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    !options.split(|&b| b == b',').any(|o| o == b"user_id=0")
}

/// `openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)`, again on `EINTR`.
///
/// # Errors
/// The `openat` error; `EINVAL` for a name with a NUL.
pub fn open_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    loop {
        match openat(dir, c.as_c_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").map(<[u8]>::to_vec)
}

/// Walks many paths from one root, each directory once: the paths of one configuration,
/// compiled at once (the admin guide's example roles name 35 programs in 6 directories, and a
/// walk from the root is 13 system calls).
///
/// What [`resolve`] finds for `DIR/NAME` is the step from DIR to NAME taken after the walk of
/// DIR, which it takes first and the same way: so a DIR walked before, and found a directory,
/// is kept with its handle, and only the step to NAME is taken, with the same checks (DIR
/// root-only; NAME missing, refused, on a user's FUSE, a directory or a file). A NAME that is
/// a symlink or `..`, or a DIR that was not found as a directory, is walked from the root.
#[derive(Debug)]
pub struct Walker {
    root: OwnedFd,
    dirs: std::cell::RefCell<Vec<WalkedDir>>,
}

/// A directory a [`Walker`] was asked for (as its components) and what its walk found, when a
/// directory.
type WalkedDir = (Vec<Vec<u8>>, Option<Found>);

/// At most this many directories are kept open by a [`Walker`]; paths in others are walked
/// from the root, as [`resolve`] does (a walk that ran out of descriptors would leave a
/// pattern as written, and a rule that denies a link would miss its program).
const KEPT_DIRS: usize = 64;

impl Walker {
    /// A walker from `root`.
    pub fn new(root: OwnedFd) -> Self {
        Walker { root, dirs: std::cell::RefCell::new(Vec::new()) }
    }

    /// What [`resolve`] finds for `path` from this walker's root.
    pub fn resolve(&self, path: &[u8]) -> Lookup {
        let mut dir: Vec<Vec<u8>> = components(path).collect();
        let name = match dir.pop() {
            Some(name) if name != b".." => name,
            _ => return resolve(self.root.as_fd(), path),
        };
        let mut dirs = self.dirs.borrow_mut();
        let at = match dirs.iter().position(|(d, _)| *d == dir) {
            Some(at) => at,
            None if dirs.len() >= KEPT_DIRS => {
                drop(dirs);
                return resolve(self.root.as_fd(), path);
            }
            None => {
                let mut walked = b"/".to_vec();
                walked.extend(dir.join(&b'/'));
                let found = match resolve(self.root.as_fd(), &walked) {
                    Lookup::Found(f) if SFlag::from_bits_truncate(f.stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => Some(f),
                    _ => None,
                };
                dirs.push((dir, found));
                dirs.len() - 1
            }
        };
        match dirs[at].1.as_ref().and_then(|d| step(d, &name)) {
            Some(lookup) => lookup,
            None => {
                drop(dirs);
                resolve(self.root.as_fd(), path)
            }
        }
    }
}

/// The step of [`resolve`] from the directory it reached (`dir`) to its last component
/// `name`; `None` when `name` is a symlink, which the whole walk follows.
fn step(dir: &Found, name: &[u8]) -> Option<Lookup> {
    if !root_only(&dir.stat) {
        return Some(Lookup::Untrusted(Untrusted { path: dir.path.clone(), uid: dir.stat.st_uid, mode: dir.stat.st_mode, unseen: None }));
    }
    let mut here = if dir.path == b"/" { Vec::new() } else { dir.path.clone() };
    here.push(b'/');
    here.extend_from_slice(name);
    let fd = match open_at(dir.fd.as_fd(), name) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG) => return Some(Lookup::Missing),
        Err(e) => return Some(Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Refused(e)))),
    };
    let stat = match fstat(&fd) {
        Ok(stat) => stat,
        Err(e) => return Some(Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Refused(e)))),
    };
    if users_fuse(&fd, &stat) {
        return Some(Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Fuse)));
    }
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        return None;
    }
    Some(Lookup::Found(Found { path: here, fd, stat }))
}

/// Walks `path` from `root` (an absolute path; a relative one is taken from `root` too),
/// following symlinks the way the kernel does, through root-only directories and links only.
pub fn resolve(root: BorrowedFd<'_>, path: &[u8]) -> Lookup {
    // Close-on-exec from the start: the module walks inside a host that may exec meanwhile.
    let refused = |e| Lookup::Untrusted(Untrusted::unseen(b"/", Unseen::Refused(e)));
    let root_fd = match nix::fcntl::fcntl(root, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0)) {
        // SAFETY: a new descriptor, ours alone.
        Ok(fd) => unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) },
        Err(e) => return refused(e),
    };
    let root_stat = match fstat(&root_fd) {
        Ok(st) => st,
        Err(e) => return refused(e),
    };
    if users_fuse(&root_fd, &root_stat) {
        return Lookup::Untrusted(Untrusted::unseen(b"/", Unseen::Fuse));
    }
    // The directories walked so far, from the root: (handle, path, its stat, taken through
    // the handle when it was opened: one `fstat` per component).
    let mut chain: Vec<(OwnedFd, Vec<u8>, FileStat)> = vec![(root_fd, Vec::new(), root_stat)];
    let mut todo: VecDeque<Vec<u8>> = components(path).collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == b".." {
            if chain.len() > 1 {
                chain.pop();
            }
            continue;
        }
        let Some((dir, dir_path, dir_stat)) = chain.last() else { return Lookup::Missing };
        if !root_only(dir_stat) {
            let path = if dir_path.is_empty() { b"/".to_vec() } else { dir_path.clone() };
            return Lookup::Untrusted(Untrusted { path, uid: dir_stat.st_uid, mode: dir_stat.st_mode, unseen: None });
        }
        let mut here = dir_path.clone();
        here.push(b'/');
        here.extend_from_slice(&name);
        // Missing only when the kernel says so: anything else root cannot see.
        let fd = match open_at(dir.as_fd(), &name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG) => return Lookup::Missing,
            Err(e) => return Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Refused(e))),
        };
        let stat = match fstat(&fd) {
            Ok(stat) => stat,
            Err(e) => return Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Refused(e))),
        };
        if users_fuse(&fd, &stat) {
            return Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Fuse));
        }
        match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFLNK => {
                links += 1;
                if links > MAX_LINKS {
                    return Lookup::Missing;
                }
                let target = match readlinkat(&fd, c"") {
                    Ok(target) => target,
                    Err(e) => return Lookup::Untrusted(Untrusted::unseen(&here, Unseen::Refused(e))),
                };
                let target = target.as_bytes();
                if target.starts_with(b"/") {
                    chain.truncate(1);
                }
                for c in components(target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(c);
                }
            }
            SFlag::S_IFDIR => chain.push((fd, here, stat)),
            _ if todo.is_empty() => return Lookup::Found(Found { path: here, fd, stat }),
            _ => return Lookup::Missing,
        }
    }
    let Some((fd, path, stat)) = chain.pop() else { return Lookup::Missing };
    let path = if path.is_empty() { b"/".to_vec() } else { path };
    Lookup::Found(Found { path, fd, stat })
}
