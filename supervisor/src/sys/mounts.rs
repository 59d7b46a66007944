//! The session's mount table, to tell without a walk that a path names, in the session's mount
//! namespace, the file an exec found: the common case of the foreign-mount check
//! ([`crate::sys::resolve::Reference::foreign`]), which otherwise opens the path there.
//!
//! A file found on mount `M` whose real path is `P` is named by `P` in the session when a
//! lookup of `P` from the session's root ends in `M`: `P`'s components inside `M` are the
//! names of the file's own directories (the kernel wrote `P` from them), so only the mounts
//! crossed on the way can lead elsewhere, and the table says which those are. The table is
//! read again whenever the kernel says it changed (`poll` on the `mountinfo` file, asked at
//! every use); what it cannot tell (a path the table does not reach, a root other than the
//! session's) goes to the walk.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// One mount: its id, its parent's, and where it is mounted (from the table's root).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    id: u64,
    parent: u64,
    point: Vec<u8>,
}

/// The mount table of one mount namespace, as `/proc/PID/mountinfo` shows it from the root of
/// the process it was opened for.
#[derive(Debug)]
pub struct Mounts {
    file: File,
    table: Vec<Mount>,
    /// Read since the last change the kernel reported.
    current: bool,
}

impl Mounts {
    /// The table of process `pid`'s mount namespace, from its root. The file holds the
    /// namespace and the root it was opened with, whatever the process does later.
    pub fn of(pid: i32) -> Option<Self> {
        let file = File::open(format!("/proc/{pid}/mountinfo")).ok()?;
        Some(Mounts { file, table: Vec::new(), current: false })
    }

    /// The mount a lookup of the absolute path `path` ends in, from the table's root, with
    /// the table as it is now; `None` when the table cannot be read or cannot tell.
    pub fn lands_on(&mut self, path: &[u8]) -> Option<u64> {
        if !self.refresh() {
            return None;
        }
        lands_on(&self.table, path)
    }

    /// Reads the table again if the kernel says it changed since it was last read (or it never
    /// was). `false` when it cannot be read.
    fn refresh(&mut self) -> bool {
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLPRI)];
        // Every change of the namespace's mounts is reported once, to the next poll after it.
        let changed = match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().is_none_or(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)),
            Err(_) => true,
        };
        if changed || !self.current {
            self.current = false;
            let mut text = Vec::with_capacity(8192);
            // A read from the start renders the table anew (seq_file); a change while it is
            // read is reported to the next poll, which reads it again.
            let mut f = &self.file;
            if std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).is_err() || f.read_to_end(&mut text).is_err() {
                return false;
            }
            match parse(&text) {
                Some(table) => {
                    self.table = table;
                    self.current = true;
                }
                None => return false,
            }
        }
        true
    }
}

/// The table of a `mountinfo` text: `None` if a line is not one.
fn parse(text: &[u8]) -> Option<Vec<Mount>> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut fields = line.split(|&b| b == b' ');
        let id = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
        let parent = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
        let _devices = fields.next()?;
        let _root = fields.next()?;
        let point = unescape(fields.next()?)?;
        out.push(Mount { id, parent, point });
    }
    Some(out)
}

/// A `mountinfo` path: space, tab, newline and backslash are written `\ooo` (octal).
fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            let digits = field.get(i + 1..i + 4)?;
            let mut v: u32 = 0;
            for &d in digits {
                if !(b'0'..=b'7').contains(&d) {
                    return None;
                }
                v = v * 8 + u32::from(d - b'0');
            }
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether mount point `point` lies on the way to `path` (both absolute, without `//`).
fn on_the_way(point: &[u8], path: &[u8]) -> bool {
    point == b"/" || (path.starts_with(point) && matches!(path.get(point.len()), None | Some(b'/')))
}

/// The mount a lookup of `path` ends in, as the kernel walks it: from the root mount (at
/// `/`, its parent not a mount at `/`), down the mount points on the way in the order of their
/// depth, entering at each one the mounts on top of the one the walk is in (a stack there is
/// climbed whole). A mount whose parent the walk is not in is covered: not entered. `None`
/// when the root is not one mount.
fn lands_on(table: &[Mount], path: &[u8]) -> Option<u64> {
    let at_root: Vec<&Mount> = table.iter().filter(|m| m.point == b"/").collect();
    let mut roots = at_root.iter().filter(|m| !at_root.iter().any(|p| p.id == m.parent && p.id != m.id));
    let root = roots.next()?;
    if roots.next().is_some() {
        return None;
    }
    let mut way: Vec<&Mount> = table.iter().filter(|m| on_the_way(&m.point, path)).collect();
    way.sort_by_key(|m| m.point.len());
    let mut cur = root.id;
    let mut i = 0;
    while i < way.len() {
        // The mounts at one point (same length on the way: the same point).
        let len = way[i].point.len();
        let end = way[i..].iter().position(|m| m.point.len() != len).map_or(way.len(), |n| i + n);
        // Climb the stack: a mount on top of the one the walk is in, until there is none.
        while let Some(m) = way[i..end].iter().find(|m| m.parent == cur && m.id != cur) {
            cur = m.id;
        }
        i = end;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, parent: u64, point: &str) -> Mount {
        Mount { id, parent, point: point.as_bytes().to_vec() }
    }

    #[test]
    fn a_path_ends_in_the_deepest_mount_on_its_way() {
        let t = vec![m(1, 0, "/"), m(5, 1, "/usr"), m(6, 1, "/home"), m(7, 6, "/home/u")];
        assert_eq!(lands_on(&t, b"/usr/bin/true"), Some(5));
        assert_eq!(lands_on(&t, b"/usrx/bin/true"), Some(1), "a name that only starts like a mount point");
        assert_eq!(lands_on(&t, b"/home/u/bin/x"), Some(7));
        assert_eq!(lands_on(&t, b"/home/v/x"), Some(6));
        assert_eq!(lands_on(&t, b"/etc/passwd"), Some(1));
        assert_eq!(lands_on(&t, b"/usr"), Some(5));
    }

    #[test]
    fn a_stack_is_climbed_whole_in_any_order_of_the_table() {
        // 9 was mounted on top of 5 at /usr; a move can list it first.
        for t in [vec![m(1, 0, "/"), m(5, 1, "/usr"), m(9, 5, "/usr")], vec![m(1, 0, "/"), m(9, 5, "/usr"), m(5, 1, "/usr")]] {
            assert_eq!(lands_on(&t, b"/usr/bin/true"), Some(9), "{t:?}");
        }
        // And over the root itself.
        let t = vec![m(3, 1, "/"), m(1, 0, "/"), m(4, 3, "/tmp")];
        assert_eq!(lands_on(&t, b"/tmp/x"), Some(4));
        assert_eq!(lands_on(&t, b"/bin/x"), Some(3));
    }

    #[test]
    fn a_covered_mount_is_not_entered() {
        // 7 at /x/y inside 5 (at /x); 8 later mounted over /x hides both.
        let t = vec![m(1, 0, "/"), m(5, 1, "/x"), m(7, 5, "/x/y"), m(8, 5, "/x")];
        assert_eq!(lands_on(&t, b"/x/y/prog"), Some(8));
        // 9 at /a/b in the root mount; 10 over /a hides it.
        let t = vec![m(1, 0, "/"), m(9, 1, "/a/b"), m(10, 1, "/a")];
        assert_eq!(lands_on(&t, b"/a/b/prog"), Some(10));
    }

    #[test]
    fn a_table_without_one_root_cannot_tell() {
        assert_eq!(lands_on(&[m(5, 1, "/usr")], b"/usr/x"), None);
        assert_eq!(lands_on(&[m(1, 0, "/"), m(2, 0, "/")], b"/x"), None);
    }

    #[test]
    fn mount_points_are_unescaped() {
        let t = parse(b"36 35 98:0 / /mnt/a\\040b rw - ext4 /dev/x rw\n35 1 98:0 / / rw - ext4 /dev/x rw\n").expect("parse");
        assert_eq!(t[0], m(36, 35, "/mnt/a b"));
        assert!(parse(b"36 35 98:0 / /mnt/a\\04 rw\n").is_none(), "a cut escape");
        assert!(parse(b"x 35 98:0 / / rw\n").is_none());
    }

    #[test]
    fn this_process_s_table_says_where_its_own_files_are() {
        let mnt_id = |p: &str| {
            // SAFETY: all-zero is a valid statx; the path is NUL-terminated.
            let mut st: libc::statx = unsafe { std::mem::zeroed() };
            let c = std::ffi::CString::new(p).expect("path");
            // SAFETY: valid pointers for the call's duration.
            let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut st) };
            assert_eq!(r, 0, "statx {p}");
            st.stx_mnt_id
        };
        let mut mounts = Mounts::of(std::process::id() as i32).expect("mountinfo");
        for p in ["/proc/1/status", "/etc/passwd", "/", "/sys/fs"] {
            assert_eq!(mounts.lands_on(p.as_bytes()), Some(mnt_id(p)), "{p}");
        }
    }
}
