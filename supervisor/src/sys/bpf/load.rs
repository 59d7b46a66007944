//! Loading the kernel check: what `session-wrapper-bpf-loader` does, once per boot, when a
//! supervisor finds no pins of its build ([`super::run_loader`]). The only code that reads
//! the BPF object (libbpf, with libelf and zlib); no supervisor maps it.

use std::path::Path;

use libbpf_rs::ObjectBuilder;

use super::{io, pin_path, BpfError};

/// The compiled program (built by `build.rs` with clang).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/exec_check.bpf.o"));

fn kernel(step: &'static str) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    move |e| BpfError::Kernel { step, source: std::io::Error::other(e.to_string()) }
}

/// Loads the programs of this build, attaches them and pins the map and the links in
/// `/sys/fs/bpf/session-wrapper/<tag>`, under a lock on that directory so that two
/// loaders at once load them once. The links are pinned last: their pins say it is done.
///
/// # Errors
/// When `/sys/fs/bpf` is not a BPF file system, or a step is refused.
pub fn load_and_pin() -> Result<(), BpfError> {
    let st = nix::sys::statfs::statfs("/sys/fs/bpf").map_err(|e| io("statfs /sys/fs/bpf")(e.into()))?;
    if st.filesystem_type() != nix::sys::statfs::BPF_FS_MAGIC {
        return Err(BpfError::NoBpfFs);
    }
    let dir = pin_path();
    std::fs::create_dir_all(&dir).map_err(io("make the pin directory"))?;
    let lock = std::fs::File::open(&dir).map_err(io("open the pin directory"))?;
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io("lock the pin directory")(e.into()))?;
    if super::open_pinned(&dir).is_ok() {
        return Ok(());
    }
    pin(&dir)
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
/// process's exit status, having said on standard error why when not 0.
pub fn main(args: &[String]) -> i32 {
    let own = env!("SW_EXEC_CHECK_TAG");
    match args {
        [tag] if tag == own => {}
        [tag] => {
            eprintln!("this loader's programs are {own}, not {tag}: the supervisor and the loader are of different builds");
            return 1;
        }
        _ => {
            eprintln!("usage: {} TAG (run by the supervisor; TAG: {own})", super::LOADER);
            return 2;
        }
    }
    match load_and_pin() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
