//! Seccomp programs built once, then taken from a cache: a filter is written as a [`Recipe`]
//! (the libseccomp calls that make it, recorded), and the program libseccomp generates for a
//! recipe is kept in a root-only directory, under two keys: the recipe's full text, and the
//! function of this program that writes the recipe with the text of its inputs.
//!
//! libseccomp takes 0.2 to 0.5 ms to generate each of the three programs a PAM session needs
//! (the session filter, the supervisor's own, the watchdog's), all on the session open's
//! critical path (docs/BENCHMARKS.md, sixth pass). The same calls always make the same program,
//! so a program is looked up by everything that decides it: libseccomp's version and file,
//! this program's file and the kernel ([`makers`]), then either the recipe's calls in order,
//! or the function that writes them and what that function reads (the same file given the
//! same inputs writes the same calls; looking up by them spares making the recipe and its
//! text, most of a cached build's time). A change to any misses and builds afresh: there is
//! no cache to invalidate. A file's identity is its device, inode, size, modification and
//! change times: a file replaced or rewritten has another change time, which no one can set.
//! When either file's identity cannot be read, only the recipe's own key is used. A file is
//! used only when it is a regular file of root's that nobody else may write, and when the key
//! stored in it is exactly the one asked for; anything else (no cache, a damaged file, not
//! root) builds the program as before.

use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpFilterContext, ScmpSyscall};
use session_wrapper_protocol::FilterProgram;

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// libseccomp refused something.
    #[error("libseccomp: {0}")]
    Seccomp(#[from] libseccomp::error::SeccompError),
    /// Exporting the program failed.
    #[error("exporting the filter: {0}")]
    Export(#[from] std::io::Error),
    /// `block-syscalls` names a system call this system's libseccomp does not know.
    #[error("block-syscalls: unknown system call {0:?}")]
    UnknownSyscall(String),
}

/// Where built programs are kept: under the runtime directory, which only root may enter
/// (see [`crate::session::runtime`]); a tmpfs, emptied at boot.
pub const CACHE_DIR: &str = "/run/session-wrapper/filters";

/// libseccomp's optimization level: 2 sorts the system calls into a binary tree, which the
/// kernel walks in fewer steps than the default list. The kernel walks each program once per
/// system call number when it installs it (to cache the calls that are always allowed): a
/// supervisor's own filter installed in 78 us instead of 146 us, the session's in 61 instead
/// of 70 (docs/BENCHMARKS.md, eleventh pass). Same decisions, another layout (the whole test
/// suite runs with it).
const OPTIMIZE: u32 = 2;

/// The largest cache file read: a recipe and its program are a few KiB.
const MAX_FILE: u64 = 256 * 1024;

/// One libseccomp call.
#[derive(Debug, Clone)]
enum Call {
    Nnp(bool),
    BadArch(ScmpAction),
    Arch(ScmpArch),
    Rule(ScmpAction, ScmpSyscall),
    Conditional(ScmpAction, ScmpSyscall, Vec<ScmpArgCompare>),
}

/// A filter as the libseccomp calls that build it, in order (the subset of
/// [`ScmpFilterContext`] the filters here use). Nothing is built until [`Recipe::memoized`].
#[derive(Debug, Clone)]
pub struct Recipe {
    default: ScmpAction,
    calls: Vec<Call>,
}

impl Recipe {
    /// A filter whose action for everything no rule matches is `default`.
    pub fn new(default: ScmpAction) -> Self {
        Recipe { default, calls: Vec::new() }
    }

    /// Whether loading the filter sets `NO_NEW_PRIVS` (see [`ScmpFilterContext::set_ctl_nnp`]).
    pub fn set_ctl_nnp(&mut self, on: bool) -> Result<(), FilterError> {
        self.calls.push(Call::Nnp(on));
        Ok(())
    }

    /// The action for a system call of an architecture the filter does not cover.
    pub fn set_act_badarch(&mut self, action: ScmpAction) -> Result<(), FilterError> {
        self.calls.push(Call::BadArch(action));
        Ok(())
    }

    /// Adds an architecture (the native one is always there).
    pub fn add_arch(&mut self, arch: ScmpArch) -> Result<(), FilterError> {
        self.calls.push(Call::Arch(arch));
        Ok(())
    }

    /// `action` for every call of `syscall`.
    pub fn add_rule(&mut self, action: ScmpAction, syscall: ScmpSyscall) -> Result<(), FilterError> {
        self.calls.push(Call::Rule(action, syscall));
        Ok(())
    }

    /// `action` for the calls of `syscall` whose arguments match every one of `compare`.
    pub fn add_rule_conditional(&mut self, action: ScmpAction, syscall: ScmpSyscall, compare: &[ScmpArgCompare]) -> Result<(), FilterError> {
        self.calls.push(Call::Conditional(action, syscall, compare.to_vec()));
        Ok(())
    }

    /// The text that decides the program: what made it ([`makers`]) and every call, in order.
    fn key(&self) -> String {
        format!("{}default {:?} optimize {OPTIMIZE}\n{:?}\n", makers(), self.default, self.calls)
    }

    /// The program `recipe` makes, found in the cache by what decides the recipe rather than
    /// by the recipe itself: `maker` (the function of this program that writes it) and
    /// `inputs` (the text of everything that function reads). This program's own file is in
    /// every key ([`makers`]), and the same file given the same inputs writes the same recipe:
    /// on a hit neither the recipe nor its text is made, which took most of a cached build's
    /// time (70 us for the supervisor's own filter). On a miss, the recipe's program: from the
    /// cache in [`CACHE_DIR`] when it has this recipe's, else built by libseccomp; kept under
    /// both keys when this process may write there.
    ///
    /// # Errors
    /// [`FilterError`] when `recipe` fails, libseccomp refuses a call or the export fails.
    pub fn memoized(maker: &str, inputs: &str, recipe: impl FnOnce() -> Result<Recipe, FilterError>) -> Result<FilterProgram, FilterError> {
        // Unit tests build every program (and never write the machine's cache); the tests of
        // the cache below use a directory of their own.
        if cfg!(test) {
            return recipe()?.build();
        }
        memoized_in(Path::new(CACHE_DIR), maker, inputs, recipe)
    }

    fn program_in(&self, dir: &Path) -> Result<FilterProgram, FilterError> {
        cached(dir, &self.key(), || self.build())
    }

    /// Replays the calls into libseccomp and exports the program.
    fn build(&self) -> Result<FilterProgram, FilterError> {
        let mut ctx = ScmpFilterContext::new(self.default)?;
        // libseccomp 2.5.4 and later: 2.5.0 to 2.5.3 built a tree that ignored the default
        // action for an architecture without rules (libseccomp issue #370). An earlier one
        // builds its default list (its version is in the key), with the same decisions.
        if libseccomp::ScmpVersion::current().is_ok_and(|v| (v.major, v.minor, v.micro) >= (2, 5, 4)) {
            ctx.set_ctl_optimize(OPTIMIZE)?;
        }
        for call in &self.calls {
            match call {
                Call::Nnp(on) => drop(ctx.set_ctl_nnp(*on)?),
                Call::BadArch(a) => drop(ctx.set_act_badarch(*a)?),
                Call::Arch(arch) => drop(ctx.add_arch(*arch)?),
                Call::Rule(a, sc) => drop(ctx.add_rule(*a, *sc)?),
                Call::Conditional(a, sc, cmp) => drop(ctx.add_rule_conditional(*a, *sc, cmp)?),
            }
        }
        export(&ctx)
    }
}

fn memoized_in(dir: &Path, maker: &str, inputs: &str, recipe: impl FnOnce() -> Result<Recipe, FilterError>) -> Result<FilterProgram, FilterError> {
    match memo_key(identities(), maker, inputs) {
        Some(key) => cached(dir, &key, || recipe()?.program_in(dir)),
        None => recipe()?.program_in(dir),
    }
}

/// The key of `maker`'s program for `inputs`, given what made it ([`identities`]); `None`
/// when either file's identity could not be read: without this program's, its inputs do not
/// say which recipe it writes.
fn memo_key((makers, known): &(String, bool), maker: &str, inputs: &str) -> Option<String> {
    known.then(|| format!("{makers}recipe of {maker}\n{inputs}\n"))
}

/// The program kept in `dir` under `key`; else made by `make` and kept there.
fn cached(dir: &Path, key: &str, make: impl FnOnce() -> Result<FilterProgram, FilterError>) -> Result<FilterProgram, FilterError> {
    let path = dir.join(format!("{:016x}.bpf", digest(key)));
    if let Some(p) = read_cached(&path, key) {
        return Ok(p);
    }
    let program = make()?;
    store(dir, &path, key, &program.to_bytes());
    Ok(program)
}

/// What else decides a program besides its calls, read once per process: libseccomp's version
/// and the very file loaded (a distribution's update keeps the version and replaces the file),
/// this program's file (which turns the calls into libseccomp's arguments), and the running
/// kernel (whose features libseccomp checks). Any of them replaced, the key differs and the
/// program is built afresh.
fn makers() -> &'static str {
    &identities().0
}

/// [`makers`], and whether it holds the identity of both files.
fn identities() -> &'static (String, bool) {
    static MAKERS: std::sync::OnceLock<(String, bool)> = std::sync::OnceLock::new();
    MAKERS.get_or_init(|| {
        let v = libseccomp::ScmpVersion::current().map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro)).unwrap_or_default();
        let uts = nix::sys::utsname::uname().map(|u| format!("{} {}", u.release().to_string_lossy(), u.version().to_string_lossy())).unwrap_or_default();
        let (lib, me) = (file_identity(&libseccomp_file()), file_identity(Path::new("/proc/self/exe")));
        let known = !lib.is_empty() && !me.is_empty();
        (format!("libseccomp {v} {lib}\nprogram {me}\nkernel {uts}\n"), known)
    })
}

extern "C" {
    // libseccomp's, linked already through the libseccomp crate.
    fn seccomp_version() -> *const libc::c_void;
}

/// The file libseccomp was loaded from (`dladdr` of one of its functions).
fn libseccomp_file() -> PathBuf {
    // SAFETY: dladdr only reads the loader's tables; `info` is written by it before use.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(seccomp_version as *const libc::c_void, &mut info) != 0 && !info.dli_fname.is_null() {
            return PathBuf::from(std::ffi::OsStr::from_bytes(std::ffi::CStr::from_ptr(info.dli_fname).to_bytes()));
        }
    }
    PathBuf::new()
}

/// A file's device, inode, size, modification and change times (followed through symlinks): a
/// file replaced by a package update, or written over, differs in them (its change time is
/// the kernel's clock when that happened; no one can set it). Empty when it cannot be read:
/// then only recipes' own keys are used ([`memo_key`]).
fn file_identity(path: &Path) -> String {
    std::fs::metadata(path)
        .map(|m| format!("{} {} {} {}.{} {}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
        .unwrap_or_default()
}

/// Exports a libseccomp context as a program, through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<FilterProgram, FilterError> {
    let fd = nix::sys::memfd::memfd_create(c"seccomp-export", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(file.as_fd())?;
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(FilterProgram::from_bytes(&bytes)?)
}

/// A file name for `key` (SipHash with fixed keys: the same on every run). Two recipes with
/// the same digest only share a file name: the file holds its recipe, which must match.
fn digest(key: &str) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// The program cached at `path` for `key`: `None` unless the file is root's, writable by
/// nobody else, and holds exactly `key`, a NUL, the program's checksum and the program.
fn read_cached(path: &Path, key: &str) -> Option<FilterProgram> {
    // Not followed through a symlink; no wait on a FIFO.
    let mut file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 || meta.len() > MAX_FILE {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    let rest = bytes.strip_prefix(key.as_bytes())?.strip_prefix(b"\0")?;
    let (sum, program) = rest.split_first_chunk::<8>()?;
    if u64::from_le_bytes(*sum) != checksum(program) {
        return None;
    }
    FilterProgram::from_bytes(program).ok()
}

/// The check a stored program carries: a file cut short or altered is never loaded.
fn checksum(program: &[u8]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    program.hash(&mut h);
    h.finish()
}

/// Keeps `program` for `key` at `path` (in `dir`, made root-only if missing): written aside,
/// then renamed, so a reader sees a whole file or none. Only root keeps programs; a failure
/// costs the next session a build, nothing else.
fn store(dir: &Path, path: &Path, key: &str, program: &[u8]) {
    if !crate::run_as_root() {
        return;
    }
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    // SAFETY: gettid has no preconditions. Unique among the writers running at once.
    let tid = unsafe { libc::gettid() };
    let tmp: PathBuf = dir.join(format!(".{}.{tid}.{}", std::process::id(), path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(key.as_bytes())?;
            f.write_all(b"\0")?;
            f.write_all(&checksum(program).to_le_bytes())?;
            f.write_all(program)
        });
    if written.and_then(|()| std::fs::rename(&tmp, path)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(errno: i32) -> Recipe {
        let mut r = Recipe::new(ScmpAction::Allow);
        r.set_act_badarch(ScmpAction::KillProcess).expect("call");
        r.add_rule(ScmpAction::Errno(errno), ScmpSyscall::from_name("acct").expect("known")).expect("call");
        r
    }

    /// The key names the libseccomp file really loaded and this program's file, so that a
    /// package update of either, which may keep libseccomp's version, builds afresh.
    #[test]
    fn the_key_names_the_files_that_make_the_program_and_the_kernel() {
        let lib = libseccomp_file();
        let name = lib.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(name.starts_with("libseccomp.so"), "{}", lib.display());
        let key = recipe(libc::EPERM).key();
        let first = key.lines().next().unwrap_or_default();
        assert!(first.ends_with(&file_identity(&lib)) && !file_identity(&lib).is_empty(), "{key}");
        assert!(key.contains(&format!("program {}\n", file_identity(Path::new("/proc/self/exe")))), "{key}");
        // The change time, which no one can set, is in each identity; both were read.
        let m = std::fs::metadata(&lib).expect("stat");
        assert!(file_identity(&lib).ends_with(&format!(" {}.{}", m.ctime(), m.ctime_nsec())), "{key}");
        assert!(identities().1);
        let release = nix::sys::utsname::uname().expect("uname").release().to_string_lossy().into_owned();
        assert!(key.contains(&format!("kernel {release} ")), "{key}");
    }

    /// Without both files' identities, a program is never looked up by what writes it.
    #[test]
    fn without_the_files_identities_there_is_no_key_by_maker() {
        let makers = identities().0.clone();
        assert_eq!(memo_key(&(makers.clone(), false), "build", "x"), None);
        assert_eq!(memo_key(&(makers.clone(), true), "build", "x"), Some(format!("{makers}recipe of build\nx\n")));
    }

    /// A cache directory of the test's own, none left from an earlier run; `None` (the test
    /// skipped, and says so) unless root.
    fn cache_dir(tag: &str) -> Option<PathBuf> {
        if !crate::run_as_root() {
            eprintln!("skipped: only root keeps programs (the cache directory is root's)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("sw-recipe-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Some(dir)
    }

    /// Found by its maker and inputs, a program is built once; other inputs are another
    /// program, a damaged entry is built again.
    #[test]
    fn a_program_is_found_by_what_writes_its_recipe_without_the_recipe() {
        let Some(dir) = cache_dir("memo") else { return };
        let written = std::cell::Cell::new(0);
        let make = |errno| {
            written.set(written.get() + 1);
            Ok(recipe(errno))
        };
        let first = memoized_in(&dir, "test", "EPERM", || make(libc::EPERM)).expect("builds");
        assert_eq!(first.to_bytes(), recipe(libc::EPERM).build().expect("builds").to_bytes());
        let again = memoized_in(&dir, "test", "EPERM", || make(libc::EPERM)).expect("cached");
        assert_eq!((again.to_bytes(), written.get()), (first.to_bytes(), 1), "the second time, no recipe is written");
        let other = memoized_in(&dir, "test", "EACCES", || make(libc::EACCES)).expect("builds");
        assert_eq!(written.get(), 2);
        assert_ne!(other.to_bytes(), first.to_bytes());
        // Every entry is checked as any other: a damaged one is written again.
        let key = memo_key(identities(), "test", "EPERM").expect("both identities read");
        let path = dir.join(format!("{:016x}.bpf", digest(&key)));
        std::fs::write(&path, b"garbage").expect("write");
        let rebuilt = memoized_in(&dir, "test", "EPERM", || make(libc::EPERM)).expect("rebuilt");
        assert_eq!((rebuilt.to_bytes(), written.get()), (first.to_bytes(), 3));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_program_is_built_once_then_read_back_only_for_its_own_recipe() {
        let Some(dir) = cache_dir("recipe") else { return };
        let r = recipe(libc::EPERM);
        let built = r.program_in(&dir).expect("builds");
        assert_eq!(built.to_bytes(), r.build().expect("builds").to_bytes());
        let files: Vec<_> = std::fs::read_dir(&dir).expect("cache dir").filter_map(Result::ok).collect();
        assert_eq!(files.len(), 1, "one file, no leftovers");
        let path = files[0].path();
        assert_eq!(std::fs::metadata(&path).expect("stat").mode() & 0o777, 0o600);
        // Read back: the same program.
        assert_eq!(read_cached(&path, &r.key()).expect("cached").to_bytes(), built.to_bytes());
        // Another recipe never takes this file, even under its name.
        let other = recipe(libc::EACCES);
        assert_ne!(other.key(), r.key());
        assert!(read_cached(&path, &other.key()).is_none());
        // A file others may write is not trusted; nor is a damaged one (the program is rebuilt
        // and the file replaced).
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622)).expect("chmod");
        assert!(read_cached(&path, &r.key()).is_none());
        std::fs::write(&path, b"garbage").expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        assert!(read_cached(&path, &r.key()).is_none());
        assert_eq!(r.program_in(&dir).expect("rebuilt").to_bytes(), built.to_bytes());
        assert_eq!(read_cached(&path, &r.key()).expect("replaced").to_bytes(), built.to_bytes());
        let mut truncated = std::fs::read(&path).expect("read");
        truncated.truncate(truncated.len() - 8);
        std::fs::write(&path, &truncated).expect("write");
        assert!(read_cached(&path, &r.key()).is_none(), "a program cut short by an instruction is refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
