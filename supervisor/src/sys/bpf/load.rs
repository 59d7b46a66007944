//! Loading the kernel check: what `session-wrapper-bpf-loader` does when a supervisor finds no
//! pins of its build ([`super::run_loader`]): once per boot and build, where the load works.
//! The only code that reads the BPF object (libbpf, with libelf and zlib); no supervisor maps
//! it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libbpf_rs::ObjectBuilder;

use super::{io, pin_path, BpfError, LOADER, PIN_ROOT};

/// The compiled program (built by `build.rs` with clang).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/exec_check.bpf.o"));

/// How long a loader waits for another one's lock: less than the supervisor waits for it.
const LOCK_DEADLINE: Duration = Duration::from_secs(4);

/// What the loader's standard error starts its verdict with.
const PREFIX: &str = "session-wrapper-bpf-loader: ";

fn kernel(step: &'static str) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    move |e| BpfError::Kernel { step, source: std::io::Error::other(e.to_string()) }
}

/// Loads the programs of this build, attaches them and pins the map and the links in
/// `/sys/fs/bpf/session-wrapper/<tag>`. Everything happens under the loaders' lock ([`LOCK`]),
/// so that two loaders at once load once; `/sys/fs/bpf/session-wrapper` is made root's, mode
/// 0700 ([`claim_pin_root`]). The three pins are made in a directory of this process's own
/// and renamed into place: `<tag>` is whole or absent, whenever the loader is stopped. What a
/// loader killed half way left is removed first.
///
/// # Errors
/// When there is no BPF file system or no kernel BTF, the directory is not root-only, the
/// lock is not had in time, or a step is refused.
pub fn load_and_pin() -> Result<(), BpfError> {
    super::can_load()?;
    let _held = lock()?;
    claim_pin_root()?;
    // The supervisors open the pins only through directories that root alone can change
    // (`super::open_pinned`): loading anywhere else would be for nothing.
    super::root_only_dir(Path::new(PIN_ROOT))?;
    let dir = pin_path();
    if super::open_pinned().is_ok() {
        return Ok(());
    }
    remove_leftovers(&dir);
    // No dot in it: bpffs refuses names with one.
    let own = PathBuf::from(format!("{}-tmp-{}", dir.display(), std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&own).map_err(io("make the loader's directory"))?;
    let pinned = pin(&own).and_then(|()| std::fs::rename(&own, &dir).map_err(io("rename the pins into place")));
    if pinned.is_err() {
        remove_pins(&own);
        // Another loader, under another lock (a private /run), may have been first.
        if super::open_pinned().is_ok() {
            return Ok(());
        }
    }
    pinned
}

/// Where loaders take their lock: a file only root can open (a lock on a directory anyone
/// may open could be held by anyone).
const LOCK: &str = "/run/session-wrapper/bpf-loader.lock";

/// The exclusive lock of [`LOCK`], waited for at most [`LOCK_DEADLINE`].
fn lock() -> Result<nix::fcntl::Flock<std::fs::File>, BpfError> {
    use std::os::unix::fs::OpenOptionsExt;
    let end = Instant::now() + LOCK_DEADLINE;
    crate::session::runtime::ensure_private(Path::new(crate::session::runtime::DIR)).map_err(io("make /run/session-wrapper"))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(LOCK)
        .map_err(io("open the loaders' lock"))?;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(held) => return Ok(held),
            Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) if Instant::now() < end => {
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => {
                let why = if e == nix::errno::Errno::EWOULDBLOCK {
                    std::io::Error::other(format!("another loader holds it after {} s", LOCK_DEADLINE.as_secs()))
                } else {
                    e.into()
                };
                return Err(io("lock the loaders' lock")(why));
            }
        }
    }
}

/// Makes `/sys/fs/bpf/session-wrapper` root's, mode 0700. One that someone else made first
/// (a BPF file system mounted by hand is 1777, and sticky: root may rename in it) is moved
/// aside, to `session-wrapper-untrusted-PID`, and made again.
fn claim_pin_root() -> Result<(), BpfError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for _ in 0..3 {
        match std::fs::DirBuilder::new().mode(0o700).create(PIN_ROOT) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io("make the pin directory")(e)),
            _ => {}
        }
        let m = std::fs::symlink_metadata(PIN_ROOT).map_err(io("stat the pin directory"))?;
        if m.is_dir() && m.uid() == 0 {
            if m.mode() & 0o077 != 0 {
                std::fs::set_permissions(PIN_ROOT, std::fs::Permissions::from_mode(0o700)).map_err(io("chmod the pin directory"))?;
            }
            return Ok(());
        }
        let aside = format!("{PIN_ROOT}-untrusted-{}", std::process::id());
        eprintln!("{PREFIX}{PIN_ROOT} is not root's (owner uid {}): moved to {aside}", m.uid());
        std::fs::rename(PIN_ROOT, &aside).map_err(io("move the pin directory aside"))?;
    }
    Err(BpfError::Untrusted { path: PIN_ROOT.into(), why: "made again by someone else, three times".into() })
}

/// Removes what loaders of this build killed half way left: their own directories, and a
/// `<tag>` without all three pins (pinned by an older loader in place).
fn remove_leftovers(dir: &Path) {
    let Some(name) = dir.file_name().map(|n| n.as_bytes().to_vec()) else { return };
    let Ok(entries) = std::fs::read_dir(PIN_ROOT) else { return };
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.as_bytes();
        let own_tmp = n.len() > name.len() && n[name.len()..].starts_with(b"-tmp-");
        // A loader still running (under another lock: a private /run) keeps its own.
        let running = own_tmp
            && std::str::from_utf8(&n[name.len() + 5..]).ok().is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if n.starts_with(&name) && (n.len() == name.len() || own_tmp) && !running {
            remove_pins(&e.path());
        }
    }
}

/// Unpins everything in `dir` (its links detach with their last reference) and removes it.
fn remove_pins(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn pin(dir: &Path) -> Result<(), BpfError> {
    let mut open = ObjectBuilder::default().open_memory(OBJECT).map_err(kernel("open the program"))?;
    for mut m in open.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if name == "expects" {
            m.set_pin_path(dir.join(&name)).map_err(kernel("set a pin path"))?;
        }
    }
    let obj = open.load().map_err(kernel("load the program"))?;
    for prog in obj.progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        let mut link = prog.attach().map_err(kernel("attach the program"))?;
        link.pin(dir.join(&name)).map_err(kernel("pin the program's link"))?;
    }
    Ok(())
}

/// The loader's whole work: `args` is the tag its caller's build expects. Returns the
/// process's exit status, having said why on standard error, as its last line, when not 0.
pub fn main(args: &[OsString]) -> i32 {
    std::panic::set_hook(Box::new(|info| eprintln!("{PREFIX}{}", info.to_string().replace('\n', " "))));
    // SAFETY: plain system call. Nothing it makes is for anyone else.
    unsafe { libc::umask(0o077) };
    let own = env!("SW_EXEC_CHECK_TAG");
    match args {
        [tag] if tag.as_bytes() == own.as_bytes() => {}
        [tag] => {
            eprintln!(
                "{PREFIX}this loader's programs are {own}, not {}: the supervisor and the loader are of different builds",
                tag.to_string_lossy()
            );
            return 1;
        }
        _ => {
            eprintln!("usage: {LOADER} TAG (run by the supervisor; TAG: {own})");
            return 2;
        }
    }
    match load_and_pin() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{PREFIX}{e}");
            1
        }
    }
}
