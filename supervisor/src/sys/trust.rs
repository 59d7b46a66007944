//! Paths that only root can change.
//!
//! A path is *trusted* when every directory on the way to it, and every symlink followed, is
//! owned by root and writable by no one else: then what it names can be changed by root alone.
//! Policy patterns are resolved through trusted paths only (a user's own symlink never widens
//! a rule), the names a program is invoked as are looked up in trusted directories only, and a
//! library search path (`LD_LIBRARY_PATH`, `GCONV_PATH`) may name only trusted directories.
//!
//! The walk ([`resolve`], shared with the module: [`session_wrapper_protocol::trust`]) is done
//! component by component from a root directory (the session's, or the process's own
//! `/proc/PID/root`), with `O_PATH | O_NOFOLLOW` opens, as the kernel would walk it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::stat::{fstat, FileStat, SFlag};
use session_wrapper_protocol::trust::open_at;
pub use session_wrapper_protocol::trust::{resolve, root_only, Found, Lookup, Unseen, Untrusted, Walker};

/// The directories searched for the names programs are invoked as, besides the directory of
/// the path asked for: a login's `PATH`.
pub const STANDARD_DIRS: &[&str] =
    &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// This process's own root directory.
fn own_root() -> Option<OwnedFd> {
    open_at(nix::fcntl::AT_FDCWD, b"/").ok()
}

/// The real path `path` leads to, when it is reached through root-only directories and links:
/// what executable patterns are compiled with ([`session_wrapper_config::Canonicalize`]).
pub fn canonicalize(path: &str) -> Option<String> {
    found_path(resolve(own_root()?.as_fd(), path.as_bytes()))
}

/// The real path a walk found, when it found one through root-only directories and links.
fn found_path(lookup: Lookup) -> Option<String> {
    match lookup {
        Lookup::Found(f) => String::from_utf8(f.path).ok(),
        Lookup::Missing | Lookup::Untrusted(_) => None,
    }
}

/// [`canonicalize`] for the many paths of one configuration, compiled at once: each directory
/// is walked once ([`Walker`]).
pub fn canonicalizer() -> impl Fn(&str) -> Option<String> {
    let walker = own_root().map(Walker::new);
    move |path| found_path(walker.as_ref()?.resolve(path.as_bytes()))
}

/// Why a library search path entry is refused, if it is: it must be an absolute path to a
/// root-only directory (or to nothing, in a root-only directory). An empty entry is the
/// working directory; `$ORIGIN` and the other tokens of the loader depend on the program.
pub fn library_path_problem(root: BorrowedFd<'_>, value: &[u8]) -> Option<String> {
    for entry in value.split(|&b| b == b':' || b == b';') {
        let shown = String::from_utf8_lossy(entry);
        if entry.is_empty() {
            return Some("an empty entry, which is the working directory".into());
        }
        if entry.contains(&b'$') {
            return Some(format!("{shown}: a loader token"));
        }
        if !entry.starts_with(b"/") {
            return Some(format!("{shown}: a relative directory"));
        }
        match resolve(root, entry) {
            Lookup::Missing => {}
            Lookup::Untrusted(u) => return Some(format!("{shown}: {u}")),
            Lookup::Found(f) if !root_only(&f.stat) => {
                let u = Untrusted { path: f.path, uid: f.stat.st_uid, mode: f.stat.st_mode, unseen: None };
                return Some(format!("{shown}: {u}"));
            }
            Lookup::Found(_) => {}
        }
    }
    None
}

/// Finds the links through which a program is invoked under another name than its own: for
/// `systemctl` invoked as `reboot`, `/usr/sbin/reboot`. Searched: the directory of the path
/// asked for, then [`STANDARD_DIRS`], each resolved once, in the session's root, at the first
/// search (most execs need none: a program invoked under its own name, as a session's first,
/// its shell, is), and searched through the handle kept then.
#[derive(Debug)]
pub struct LinkFinder {
    root: Option<OwnedFd>,
    standard: std::cell::OnceCell<Standard>,
}

/// The standard directories a [`LinkFinder`] searches.
#[derive(Debug, Default)]
struct Standard {
    /// Each standard directory's handle and real path, once.
    dirs: Vec<(OwnedFd, Vec<u8>)>,
    /// Each standard spelling (`/bin`) and its entry in `dirs`.
    spelled: Vec<(&'static str, usize)>,
    /// Every directory was looked at: no descriptor was refused on the way (none left to this
    /// process, which a session's running commands can use up). Only a complete resolution
    /// is kept; another is used for its search and made again at the next.
    complete: bool,
}

impl Standard {
    /// The root-only ones of [`STANDARD_DIRS`] in `root` (each directory walked once).
    fn resolve(root: BorrowedFd<'_>) -> Self {
        let mut standard = Standard::default();
        let Ok(walker) = nix::unistd::dup(root).map(Walker::new) else { return standard };
        standard.complete = true;
        for d in STANDARD_DIRS {
            match walker.resolve(d.as_bytes()) {
                Lookup::Found(f) if root_only(&f.stat) => {
                    let dirs = &mut standard.dirs;
                    let i = dirs.iter().position(|(_, p)| *p == f.path).unwrap_or_else(|| {
                        dirs.push((f.fd, f.path));
                        dirs.len() - 1
                    });
                    standard.spelled.push((*d, i));
                }
                Lookup::Untrusted(Untrusted { unseen: Some(Unseen::Refused(_)), .. }) => standard.complete = false,
                _ => {}
            }
        }
        standard
    }
}

impl LinkFinder {
    /// A finder for the session whose root directory is `root` (this process's when `None`).
    pub fn new(root: Option<BorrowedFd<'_>>) -> Self {
        let root = match root {
            Some(r) => nix::unistd::dup(r).ok(),
            None => own_root(),
        };
        LinkFinder { root, standard: std::cell::OnceCell::new() }
    }

    /// The paths, in root-only directories, named `name` that lead to the file `dev:ino`.
    /// `asked` is the path the exec named (its directory is searched first, when its last
    /// component is `name`).
    pub fn links(&self, name: &[u8], dev: u64, ino: u64, asked: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let Some(root) = &self.root else { return out };
        if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
            return out;
        }
        let fresh;
        let Standard { dirs, spelled, .. } = match self.standard.get() {
            Some(kept) => kept,
            None => {
                let made = Standard::resolve(root.as_fd());
                if made.complete {
                    self.standard.get_or_init(|| made)
                } else {
                    fresh = made;
                    &fresh
                }
            }
        };
        let is_file = |st: &FileStat| st.st_dev == dev && st.st_ino == ino;
        // The link `name` in a directory (its handle and real path), while that directory is
        // root-only: the name is opened in the directory itself, and only a symlink there is
        // followed, from the root.
        let in_dir = |dir: &OwnedFd, path: &[u8]| -> Option<Vec<u8>> {
            if !matches!(fstat(dir), Ok(st) if root_only(&st)) {
                return None;
            }
            let fd = open_at(dir.as_fd(), name).ok()?;
            let st = fstat(&fd).ok()?;
            let link = join(path, name);
            let found = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
                matches!(resolve(root.as_fd(), &link), Lookup::Found(f) if is_file(&f.stat))
            } else {
                is_file(&st)
            };
            found.then_some(link)
        };
        // The directory of the path asked for first: a standard one through the handle taken
        // at the first search (only root can replace it), another resolved now.
        let mut searched = None;
        if asked.starts_with(b"/") && split_last(asked).1 == name {
            let dir = split_last(asked).0;
            if let Some(&(_, i)) = spelled.iter().find(|(d, _)| d.as_bytes() == dir) {
                out.extend(in_dir(&dirs[i].0, &dirs[i].1));
                searched = Some(i);
            } else if let Lookup::Found(d) = resolve(root.as_fd(), dir) {
                out.extend(in_dir(&d.fd, &d.path));
                searched = dirs.iter().position(|(_, p)| *p == d.path);
            }
        }
        // Each standard directory once: their real paths differ, so their links do too.
        for (i, (dir, path)) in dirs.iter().enumerate() {
            if searched != Some(i) {
                out.extend(in_dir(dir, path));
            }
        }
        out
    }
}

/// `dir/name` (`/name` in the root).
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Who other than root can change what `path` names: the owners, groups and "everyone" of
/// the directories on the way to it (as written, and as resolved), and of the file itself.
/// Each as a phrase: `user alice`, `group staff`, `everyone`. Empty when only root can.
pub fn writers(path: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut chains = vec![path.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(path) {
        if real != path {
            chains.push(real);
        }
    }
    let mut names = crate::sys::users::UidNames::default();
    let mut out: Vec<String> = Vec::new();
    let mut add = |who: String| {
        if !out.contains(&who) {
            out.push(who);
        }
    };
    for chain in chains {
        for prefix in chain.ancestors().collect::<Vec<_>>().into_iter().rev() {
            let Ok(m) = std::fs::symlink_metadata(prefix) else { break };
            if m.file_type().is_symlink() {
                continue;
            }
            if m.uid() != 0 && m.mode() & 0o200 != 0 {
                add(format!("user {}", names.name(m.uid())));
            }
            if m.gid() != 0 && m.mode() & 0o020 != 0 {
                add(format!("group {}", group_name(m.gid())));
            }
            if m.mode() & 0o002 != 0 {
                add("everyone".into());
            }
        }
    }
    out
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| format!("#{gid}"), |g| g.name)
}

/// A path's directory and last component.
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b".", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn root() -> OwnedFd {
        own_root().expect("root")
    }

    /// A root-owned 0755 directory under /var/tmp's sticky, world-writable parent would be
    /// untrusted by its parent: use a directory under / of our own instead (tests run as root).
    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::path::PathBuf::from(format!("/var/lib/sw-trust-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        d
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A scratch directory of root's (see [`scratch`]); `None`, said, when not root.
    fn root_scratch(tag: &str) -> Option<std::path::PathBuf> {
        if !is_root() {
            eprintln!("skipped: needs root to own the directories");
            return None;
        }
        Some(scratch(tag))
    }

    /// `parent/home`, a directory user 65534 owns.
    fn users_home(parent: &std::path::Path) -> std::path::PathBuf {
        let home = parent.join("home");
        std::fs::create_dir(&home).expect("mkdir");
        nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        home
    }

    #[test]
    fn system_paths_resolve_and_sticky_tmp_does_not() {
        let sh = std::fs::canonicalize("/bin/sh").expect("sh");
        let found = canonicalize("/bin/sh").expect("trusted");
        assert_eq!(found.as_bytes(), sh.as_os_str().as_bytes());
        assert_eq!(canonicalize("/usr/bin/").as_deref(), Some("/usr/bin"));
        assert!(canonicalize("/nonexistent-sw/x").is_none());
        // /tmp is writable by everyone: nothing below it is trusted.
        let f = std::path::PathBuf::from(format!("/tmp/sw-trust-{}", std::process::id()));
        std::fs::write(&f, b"x").expect("write");
        assert!(canonicalize(f.to_str().expect("utf-8")).is_none());
        match resolve(root().as_fd(), f.as_os_str().as_bytes()) {
            Lookup::Untrusted(u) => assert_eq!(u.path, b"/tmp"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_file(f);
    }

    #[test]
    fn a_user_s_symlink_is_never_followed() {
        let Some(d) = root_scratch("user") else { return };
        let home = users_home(&d);
        std::os::unix::fs::symlink("/usr/bin", home.join("bin")).expect("symlink");
        let through = home.join("bin/su");
        assert!(canonicalize(through.to_str().expect("utf-8")).is_none());
        match resolve(root().as_fd(), through.as_os_str().as_bytes()) {
            Lookup::Untrusted(u) => {
                assert_eq!(u.path, home.as_os_str().as_bytes());
                assert_eq!(u.uid, 65534);
            }
            other => panic!("{other:?}"),
        }
        // A root-owned link in a root-owned directory is followed.
        std::os::unix::fs::symlink("/usr/bin", d.join("rootbin")).expect("symlink");
        let su = std::fs::canonicalize("/usr/bin/su").expect("su");
        assert_eq!(canonicalize(d.join("rootbin/su").to_str().expect("utf-8")).as_deref(), su.to_str());
        let _ = std::fs::remove_dir_all(d);
    }

    fn summary(l: Lookup) -> String {
        match l {
            Lookup::Found(f) => format!("found {} ino {}", String::from_utf8_lossy(&f.path), f.stat.st_ino),
            Lookup::Missing => "missing".into(),
            Lookup::Untrusted(u) => format!("untrusted {u}"),
        }
    }

    /// One walker over many paths finds what a walk from the root finds for each: through
    /// links (root's, relative and absolute, and a user's), `..`, a file taken for a
    /// directory, missing names, a user's directory, the root; asked in two orders, so that
    /// each path comes both before and after its directory is kept.
    #[test]
    fn a_walker_finds_what_a_walk_from_the_root_finds() {
        let Some(d) = root_scratch("walker") else { return };
        let home = users_home(&d);
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/file"), b"x").expect("write");
        std::fs::write(home.join("mine"), b"x").expect("write");
        std::os::unix::fs::symlink("/usr/bin", d.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("sub", d.join("rel")).expect("symlink");
        std::os::unix::fs::symlink("file", d.join("sub/link")).expect("symlink");
        std::os::unix::fs::symlink("/usr/bin", home.join("bin")).expect("symlink");
        let base = d.to_str().expect("utf-8");
        let h = home.to_str().expect("utf-8");
        let mut paths: Vec<String> = [
            "/bin/sh", "/usr/bin/env", "/usr/bin/", "/usr/bin/no-such-sw", "/usr/sbin/reboot", "/", "/usr", "/tmp/x",
            "/usr/bin/../bin/id", "/usr/bin/id/x", "/nonexistent-sw/x", "usr/bin/id",
        ]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
        for rest in ["sub/file", "sub/link", "sub/missing", "abs/su", "rel/file", "rel/link", "sub/file/x", "sub/..", "sub/.", "sub"] {
            paths.push(format!("{base}/{rest}"));
        }
        for rest in ["mine", "bin/su", "missing"] {
            paths.push(format!("{h}/{rest}"));
        }
        let expected: Vec<String> = paths.iter().map(|p| summary(resolve(root().as_fd(), p.as_bytes()))).collect();
        assert!(expected.iter().any(|e| e.starts_with("untrusted")) && expected.iter().any(|e| e == "missing"), "{expected:#?}");
        for order in [false, true] {
            let walker = Walker::new(root());
            let mut asked: Vec<usize> = (0..paths.len()).collect();
            if order {
                asked.reverse();
            }
            for i in asked.into_iter().chain(0..paths.len()) {
                assert_eq!(summary(walker.resolve(paths[i].as_bytes())), expected[i], "{}", paths[i]);
            }
        }
        let canon = canonicalizer();
        for p in &paths {
            assert_eq!(canon(p), canonicalize(p), "{p}");
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn library_paths_must_be_root_only_absolute_directories() {
        let r = root();
        assert_eq!(library_path_problem(r.as_fd(), b"/usr/lib/x86_64-linux-gnu:/lib"), None);
        assert_eq!(library_path_problem(r.as_fd(), b"/usr/lib/no-such-dir-sw"), None);
        assert!(library_path_problem(r.as_fd(), b"/usr/lib:").expect("empty").contains("working directory"));
        assert!(library_path_problem(r.as_fd(), b"lib").expect("relative").contains("relative"));
        assert!(library_path_problem(r.as_fd(), b"$ORIGIN/../lib").expect("token").contains("token"));
        assert!(library_path_problem(r.as_fd(), b"/tmp").expect("tmp").contains("/tmp"));
        assert!(library_path_problem(r.as_fd(), b"/usr/lib;/tmp/x").is_some());
    }

    #[test]
    fn a_standard_directory_is_searched_through_its_handle_only_while_only_root_can_change_it() {
        // A session root of its own: /usr/bin holds `prog`, `alias` (a link to it) and `other`
        // (a link that leaves through a directory a user owns); /bin is a link to usr/bin.
        let Some(d) = root_scratch("links") else { return };
        let bin = d.join("usr/bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for p in [d.join("usr"), bin.clone()] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::write(bin.join("prog"), b"").expect("write");
        std::os::unix::fs::symlink("prog", bin.join("alias")).expect("symlink");
        std::os::unix::fs::symlink("usr/bin", d.join("bin")).expect("symlink");
        let home = users_home(&d);
        std::os::unix::fs::symlink("/usr/bin/prog", home.join("prog")).expect("symlink");
        std::os::unix::fs::symlink("/home/prog", bin.join("other")).expect("symlink");
        let session_root: OwnedFd = std::fs::File::open(&d).expect("open").into();
        let finder = LinkFinder::new(Some(session_root.as_fd()));
        let prog = std::fs::metadata(bin.join("prog")).expect("prog");
        let links = |name: &[u8], asked: &[u8]| finder.links(name, prog.dev(), prog.ino(), asked);
        // Found once, by its real directory, whichever spelling was asked for.
        assert_eq!(links(b"alias", b""), vec![b"/usr/bin/alias".to_vec()]);
        assert_eq!(links(b"alias", b"/bin/alias"), vec![b"/usr/bin/alias".to_vec()]);
        // The file under its own name is a link too (no symlink to follow).
        assert_eq!(links(b"prog", b""), vec![b"/usr/bin/prog".to_vec()]);
        // A link whose way leads through a user's directory is not one.
        assert!(links(b"other", b"").is_empty());
        // The directory asked for, when it is not a standard one, is searched too, if only
        // root can change it; a user's is not.
        let opt = d.join("opt");
        std::fs::create_dir(&opt).expect("mkdir");
        std::fs::set_permissions(&opt, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::symlink("/usr/bin/prog", opt.join("tool")).expect("symlink");
        assert_eq!(links(b"tool", b"/opt/tool"), vec![b"/opt/tool".to_vec()]);
        assert!(links(b"tool", b"").is_empty(), "/opt is not a standard directory");
        assert_eq!(links(b"prog", b"/home/prog"), vec![b"/usr/bin/prog".to_vec()]);
        // Once others than root can change the directory, its handle gives nothing.
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(links(b"prog", b"").is_empty());
        assert!(links(b"alias", b"").is_empty());
        assert!(links(b"alias", b"/usr/bin/alias").is_empty());
        let _ = std::fs::remove_dir_all(d);
    }

    /// A resolution of the standard directories cut short by a refused descriptor (none left to
    /// the supervisor: a session's running commands can hold many) is not kept for the
    /// session: the next search resolves them again, and finds the links.
    #[test]
    fn a_resolution_that_ran_out_of_descriptors_is_made_again_at_the_next_search() {
        let sh = std::fs::metadata("/bin/sh").expect("sh");
        // SAFETY: the child only searches and exits; glibc's fork leaves its allocator usable.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let finder = LinkFinder::new(None);
                let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                // One descriptor more than this process has open: the walker's own copy of the
                // root, and none for the walk.
                let lowest_free = std::fs::File::open("/dev/null").map(|f| f.as_raw_fd()).unwrap_or(-1);
                // SAFETY: getrlimit and setrlimit on this process, with a valid struct.
                let set = unsafe {
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
                        let tight = libc::rlimit { rlim_cur: lowest_free as libc::rlim_t + 1, rlim_max: limit.rlim_max };
                        libc::setrlimit(libc::RLIMIT_NOFILE, &tight) == 0
                    }
                };
                // Searched in the standard directories only (no directory asked for).
                let starved = finder.links(b"sh", sh.dev(), sh.ino(), b"");
                // SAFETY: as above.
                let restored = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 };
                let again = finder.links(b"sh", sh.dev(), sh.ino(), b"");
                let ok = lowest_free > 0 && set && restored && starved.is_empty() && !again.is_empty();
                // SAFETY: ends the forked child without running the test harness's exit.
                unsafe { libc::_exit(i32::from(!ok)) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("wait");
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "starved: no links; then: found again");
            }
        }
    }

    #[test]
    fn links_are_found_by_name_in_standard_directories() {
        let finder = LinkFinder::new(None);
        let sh = std::fs::metadata("/bin/sh").expect("sh");
        let links = finder.links(b"sh", sh.dev(), sh.ino(), b"/bin/sh");
        assert!(!links.is_empty(), "sh is a link to the shell");
        assert!(links.iter().all(|l| l.ends_with(b"/sh")));
        let ls = std::fs::metadata("/usr/bin/ls").expect("ls");
        assert!(finder.links(b"sh", ls.dev(), ls.ino(), b"/bin/sh").is_empty(), "sh does not lead to ls");
        assert!(finder.links(b"no-such-name-sw", sh.dev(), sh.ino(), b"").is_empty());
        assert!(finder.links(b"../bin/sh", sh.dev(), sh.ino(), b"").is_empty());
    }
}
