//! The session filter: the seccomp program installed on the process that opens a session
//! (and inherited by everything it starts), built with libseccomp (once: see [`super::recipe`]).
//!
//! - `execve` and `execveat` go to the supervisor (`SECCOMP_RET_USER_NOTIF`);
//! - the probe ioctl ([`session_wrapper_protocol::kernel::PROBE_REQUEST`] on fd -1) too, so a
//!   nested PAM session can find the supervisor it is under;
//! - `seccomp(SECCOMP_SET_MODE_FILTER)` with `SECCOMP_FILTER_FLAG_NEW_LISTENER` fails with
//!   `EBUSY`, whoever is alive: an ERRNO action outranks USER_NOTIF, so a session process can
//!   never install a listener of its own and approve its own execs, even after the supervisor
//!   has died;
//! - `io_uring_setup`, `io_uring_enter` and `io_uring_register` fail with `ENOSYS` unless the
//!   policy allows io_uring, because io_uring work does not pass through seccomp;
//! - both x86_64 and i386 (`int 0x80`) are filtered, with the same rules translated by
//!   libseccomp; x32 system call numbers and any other architecture kill the process.
//!
//! libseccomp turns `NO_NEW_PRIVS` on by default; it is turned off here, and the program is
//! exported and installed by [`FilterProgram::install_with_listener`], which never sets it, so
//! setuid programs (sudo, su) keep working inside the session. The export also lets us pass
//! `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`, which Debian 12's libseccomp 2.5 does not know.

use std::os::fd::{AsRawFd, BorrowedFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpSyscall,
};
use session_wrapper_config::{Blocked, Layers, SyscallSet};
use session_wrapper_protocol::kernel::{PROBE_FD, PROBE_REQUEST};
use session_wrapper_protocol::FilterProgram;

pub use super::recipe::FilterError;
use super::recipe::Recipe;

/// What the filter is built from: the parts of the policy that live in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Allow io_uring in the session.
    pub allow_io_uring: bool,
    /// System calls the session's isolation refuses with `EPERM`.
    pub block: Vec<Blocked>,
}

impl FilterSpec {
    /// The filter settings of a configuration, for a session with isolation `layers`. Unless
    /// `[guards] user-namespaces` allows them, creating or joining a user namespace is refused
    /// (`EPERM`) in every session: a namespace of one's own is where a user can mount files of
    /// their own over the loader and the libraries of the programs the policy allows.
    pub fn new(config: &session_wrapper_config::Config, layers: &Layers) -> Self {
        use session_wrapper_config::GuardAction;
        let guards = &config.policy.guards;
        let mut block = layers.block.clone();
        let has = |set| block.contains(&Blocked::Set(set));
        if guards.user_namespaces == GuardAction::Deny
            && !has(SyscallSet::Namespaces)
            && !has(SyscallSet::UserNamespaces)
        {
            block.push(Blocked::Set(SyscallSet::UserNamespaces));
        }
        FilterSpec { allow_io_uring: guards.io_uring == GuardAction::Allow, block }
    }
}

const CLONE_NEW_ALL: [i32; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The unconditional part of each named set: these fail with `EPERM`. Names this system's
/// libseccomp does not know (newer calls) are skipped.
fn set_syscalls(set: SyscallSet) -> &'static [&'static str] {
    match set {
        SyscallSet::Ptrace => &["ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp"],
        SyscallSet::Mount => &[
            "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
            "move_mount", "open_tree", "open_tree_attr", "mount_setattr",
        ],
        SyscallSet::Kexec => &["kexec_load", "kexec_file_load", "reboot"],
        SyscallSet::Modules => &["init_module", "finit_module", "delete_module"],
        SyscallSet::Bpf => &["bpf"],
        SyscallSet::Perf => &["perf_event_open"],
        SyscallSet::Keyctl => &["keyctl", "add_key", "request_key"],
        SyscallSet::Namespaces => &["unshare", "setns"],
        SyscallSet::Chroot => &["chroot"],
        SyscallSet::Admin => &["swapon", "swapoff", "acct", "quotactl", "quotactl_fd"],
        SyscallSet::Clock => &["settimeofday", "stime", "clock_settime", "adjtimex", "clock_adjtime"],
        SyscallSet::RawSockets | SyscallSet::PacketSockets | SyscallSet::UserNamespaces => &[],
    }
}

/// Checks that every single system call named in `block` is known here.
///
/// # Errors
/// [`FilterError::UnknownSyscall`] for the first unknown name.
pub fn check_blocked(block: &[Blocked]) -> Result<(), FilterError> {
    for b in block {
        if let Blocked::Syscall(name) = b {
            ScmpSyscall::from_name(name).map_err(|_| FilterError::UnknownSyscall(name.clone()))?;
        }
    }
    Ok(())
}

/// Adds the isolation blocklist: `EPERM` for each blocked call; sockets and namespace flags by
/// argument. `clone3` passes its flags in memory, which a filter cannot read: when namespace
/// creation is refused it fails with `ENOSYS`, and the C library falls back to `clone`.
fn add_blocklist(ctx: &mut Recipe, block: &[Blocked], taken: &[&str]) -> Result<(), FilterError> {
    let has = |set| block.contains(&Blocked::Set(set));
    let namespaces = has(SyscallSet::Namespaces);
    let user_ns = has(SyscallSet::UserNamespaces) && !namespaces;
    add_blocked_calls(ctx, block, taken, namespaces || user_ns)?;
    let (raw, packet) = (has(SyscallSet::RawSockets), has(SyscallSet::PacketSockets));
    if raw || packet {
        add_blocked_sockets(ctx, raw, packet)?;
    }
    if namespaces || user_ns {
        add_blocked_namespaces(ctx, namespaces, taken)?;
    }
    Ok(())
}

/// Compares only the low 32 bits of argument `n` with `v`: for `int` arguments the kernel
/// reads only those (an Equal over 64 bits would let garbage in the high bits slip past).
fn int_is(n: u32, v: u64) -> ScmpArgCompare {
    ScmpArgCompare::new(n, ScmpCompareOp::MaskedEqual(0xffff_ffff), v)
}

/// `EPERM` for every call `block` names, alone or in the unconditional part of a set, but
/// for those in `taken` (the filter decides them otherwise) and for `clone3` when
/// `clone3_enosys`. A call of a set this system's libseccomp does not know is skipped; one
/// named alone is an error.
fn add_blocked_calls(ctx: &mut Recipe, block: &[Blocked], taken: &[&str], clone3_enosys: bool) -> Result<(), FilterError> {
    let mut plain: Vec<&str> = Vec::new();
    for b in block {
        match b {
            Blocked::Set(s) => plain.extend_from_slice(set_syscalls(*s)),
            Blocked::Syscall(n) => plain.push(n),
        }
    }
    plain.sort_unstable();
    plain.dedup();
    for name in plain {
        if taken.contains(&name) || (clone3_enosys && name == "clone3") {
            continue;
        }
        match ScmpSyscall::from_name(name) {
            Ok(sc) => {
                ctx.add_rule(ScmpAction::Errno(libc::EPERM), sc)?;
            }
            Err(_) if !block.contains(&Blocked::Syscall(name.to_owned())) => {}
            Err(_) => return Err(FilterError::UnknownSyscall(name.to_owned())),
        }
    }
    Ok(())
}

/// `EPERM` for `socket()` of raw IP sockets (`raw`) and of packet sockets (`packet`), by its
/// arguments.
fn add_blocked_sockets(ctx: &mut Recipe, raw: bool, packet: bool) -> Result<(), FilterError> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let sock = ScmpSyscall::from_name("socket")?;
    for family in [libc::AF_INET, libc::AF_INET6] {
        let mut types = Vec::new();
        if raw {
            types.push(libc::SOCK_RAW);
        }
        if packet {
            // SOCK_PACKET: the obsolete form of packet sockets, still accepted with AF_INET.
            types.push(10);
        }
        for ty in types {
            ctx.add_rule_conditional(
                eperm,
                sock,
                &[int_is(0, family as u64), ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(0xf), ty as u64)],
            )?;
        }
    }
    if packet {
        ctx.add_rule_conditional(eperm, sock, &[int_is(0, libc::AF_PACKET as u64)])?;
    }
    // i386 programs may create sockets through socketcall(SYS_SOCKET, args), whose
    // arguments are in memory: refuse that form altogether.
    if let Ok(sc) = ScmpSyscall::from_name("socketcall") {
        ctx.add_rule_conditional(eperm, sc, &[int_is(0, 1)])?;
    }
    Ok(())
}

/// `EPERM` for `clone` that makes a namespace of any kind (`every_kind`: the `namespaces` set,
/// whose `unshare` and `setns` already fail whole), or else a user namespace, then also through
/// `unshare` and `setns`. `clone3` fails with `ENOSYS` unless it is in `taken`.
fn add_blocked_namespaces(ctx: &mut Recipe, every_kind: bool, taken: &[&str]) -> Result<(), FilterError> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let flags: &[i32] = if every_kind { &CLONE_NEW_ALL } else { &[libc::CLONE_NEWUSER] };
    let clone = ScmpSyscall::from_name("clone")?;
    for &f in flags {
        let has = |n: u32| ScmpArgCompare::new(n, ScmpCompareOp::MaskedEqual(f as u64), f as u64);
        ctx.add_rule_conditional(eperm, clone, &[has(0)])?;
        if !every_kind {
            ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("unshare")?, &[has(0)])?;
            // setns(fd, 0) joins whatever namespace fd is, a user namespace included.
            let setns = ScmpSyscall::from_name("setns")?;
            ctx.add_rule_conditional(eperm, setns, &[has(1)])?;
            ctx.add_rule_conditional(eperm, setns, &[int_is(1, 0)])?;
        }
    }
    if !taken.contains(&"clone3") {
        ctx.add_rule(ScmpAction::Errno(ENOSYS), ScmpSyscall::from_name("clone3")?)?;
    }
    Ok(())
}

/// The syscalls the supervisor is notified of, per architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// `execve(path, argv, envp)`.
    Execve,
    /// `execveat(dirfd, path, argv, envp, flags)`.
    Execveat,
    /// The session probe.
    Probe,
}

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// Maps (audit architecture, syscall number) of a notification to what it is.
#[derive(Debug, Clone)]
pub struct SyscallTable {
    entries: Vec<(u32, i32, Notified)>,
}

impl SyscallTable {
    /// Resolves the numbers of the notified syscalls on the filtered architectures.
    ///
    /// # Errors
    /// When libseccomp does not know a syscall (never on x86_64).
    pub fn new() -> Result<Self, FilterError> {
        let mut entries = Vec::new();
        for (arch, audit) in [(ScmpArch::X8664, AUDIT_ARCH_X86_64), (ScmpArch::X86, AUDIT_ARCH_I386)] {
            for (name, what) in [
                ("execve", Notified::Execve),
                ("execveat", Notified::Execveat),
                ("ioctl", Notified::Probe),
            ] {
                let nr = ScmpSyscall::from_name_by_arch(name, arch)?;
                entries.push((audit, i32::from(nr), what));
            }
        }
        Ok(SyscallTable { entries })
    }

    /// What a notification for syscall `nr` on audit architecture `arch` is, if it is ours.
    pub fn classify(&self, arch: u32, nr: i32) -> Option<Notified> {
        self.entries.iter().find(|(a, n, _)| *a == arch && *n == nr).map(|(_, _, w)| *w)
    }
}

const EBUSY: i32 = libc::EBUSY;
const ENOSYS: i32 = libc::ENOSYS;

/// Builds the session filter.
///
/// # Errors
/// [`FilterError`] when libseccomp fails.
pub fn build(spec: &FilterSpec) -> Result<FilterProgram, FilterError> {
    Recipe::memoized("build", &format!("{spec:?}"), || session_recipe(spec))
}

fn session_recipe(spec: &FilterSpec) -> Result<Recipe, FilterError> {
    let mut ctx = Recipe::new(ScmpAction::Allow);
    ctx.set_ctl_nnp(false)?;
    ctx.set_act_badarch(ScmpAction::KillProcess)?;
    ctx.add_arch(ScmpArch::X86)?;
    for name in ["execve", "execveat"] {
        ctx.add_rule(ScmpAction::Notify, ScmpSyscall::from_name(name)?)?;
    }
    ctx.add_rule_conditional(
        ScmpAction::Notify,
        ScmpSyscall::from_name("ioctl")?,
        &[
            ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xffff_ffff), PROBE_FD),
            ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(0xffff_ffff), PROBE_REQUEST),
        ],
    )?;
    ctx.add_rule_conditional(
        ScmpAction::Errno(EBUSY),
        ScmpSyscall::from_name("seccomp")?,
        &[
            // `unsigned int op`: the kernel ignores the high 32 bits, so must we not.
            ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xffff_ffff), u64::from(libc::SECCOMP_SET_MODE_FILTER)),
            ScmpArgCompare::new(
                1,
                ScmpCompareOp::MaskedEqual(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER),
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            ),
        ],
    )?;
    let io_uring = ["io_uring_setup", "io_uring_enter", "io_uring_register"];
    if !spec.allow_io_uring {
        for name in io_uring {
            ctx.add_rule(ScmpAction::Errno(ENOSYS), ScmpSyscall::from_name(name)?)?;
        }
    }
    let taken: &[&str] = if spec.allow_io_uring { &[] } else { &io_uring };
    add_blocklist(&mut ctx, &spec.block, taken)?;
    Ok(ctx)
}

/// The filter a nested session (su, sudo) adds on top of the session filter for the system
/// calls its own isolation blocks and the session's do not: refusals only, no listener.
///
/// # Errors
/// [`FilterError`] when libseccomp fails or a name is unknown.
pub fn build_blocklist(block: &[Blocked]) -> Result<FilterProgram, FilterError> {
    Recipe::memoized("build_blocklist", &format!("{block:?}"), || {
        let mut ctx = Recipe::new(ScmpAction::Allow);
        ctx.set_ctl_nnp(false)?;
        ctx.set_act_badarch(ScmpAction::KillProcess)?;
        ctx.add_arch(ScmpArch::X86)?;
        add_blocklist(&mut ctx, block, &[])?;
        Ok(ctx)
    })
}

/// The supervisor's (and watchdog's) own filter: what they must never do, whatever happens
/// to them. Exec kills; writing another process's memory or registers, forking (other than
/// threads), mounting, modules, BPF, perf, io_uring, keys, identity changes, namespace changes
/// and clock changes fail with `EPERM`.
///
/// `bpf_maps`: `bpf()` may look up, update and delete map elements (the kernel's exec check),
/// and nothing else.
///
/// `writes` says where files may still be opened for writing (created, truncated), renamed and
/// unlinked; every other path change (`chmod`, `chown`, `link`, `mkdir`, `truncate`, ...)
/// fails unless it is [`Writes::Anywhere`]. Writing to descriptors already open (sockets, a
/// refused process's stderr) is unaffected.
///
/// # Errors
/// [`FilterError`] when libseccomp fails.
pub fn build_self_filter(writes: Writes<'_>, bpf_maps: bool) -> Result<FilterProgram, FilterError> {
    let range = match writes {
        Writes::Anywhere => None,
        Writes::Nowhere => Some(None),
        Writes::Within(dirs) => Some(Some(dirs.bounds())),
    };
    Recipe::memoized("build_self_filter", &format!("writes {range:?} bpf_maps {bpf_maps}"), || self_recipe(range, bpf_maps))
}

/// [`build_self_filter`]'s recipe; `range`: `None` writes anywhere, else only within the
/// descriptors of the range, if any.
fn self_recipe(range: Option<Option<(u64, u64)>>, bpf_maps: bool) -> Result<Recipe, FilterError> {
    let mut ctx = Recipe::new(ScmpAction::Allow);
    ctx.set_act_badarch(ScmpAction::KillProcess)?;
    for name in ["execve", "execveat"] {
        ctx.add_rule(ScmpAction::KillProcess, ScmpSyscall::from_name(name)?)?;
    }
    let eperm = ScmpAction::Errno(libc::EPERM);
    for name in [
        "process_vm_writev", "fork", "vfork", "mount", "umount2", "pivot_root", "chroot", "unshare",
        "setns", "perf_event_open", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl",
        "ioperm", "keyctl", "add_key", "request_key", "userfaultfd", "open_by_handle_at",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "setuid", "setgid", "setreuid",
        "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "personality",
        "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr", "quotactl",
    ] {
        ctx.add_rule(eperm, ScmpSyscall::from_name(name)?)?;
    }
    let bpf = ScmpSyscall::from_name("bpf")?;
    if bpf_maps {
        // BPF_MAP_LOOKUP_ELEM (1), BPF_MAP_UPDATE_ELEM (2), BPF_MAP_DELETE_ELEM (3) only.
        ctx.add_rule_conditional(eperm, bpf, &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, 0)])?;
        ctx.add_rule_conditional(eperm, bpf, &[ScmpArgCompare::new(0, ScmpCompareOp::Greater, 3)])?;
    } else {
        ctx.add_rule(eperm, bpf)?;
    }
    // Only threads: glibc falls back from clone3 (whose flags a filter cannot see) to clone.
    ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), ScmpSyscall::from_name("clone3")?)?;
    ctx.add_rule_conditional(
        eperm,
        ScmpSyscall::from_name("clone")?,
        &[ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(libc::CLONE_THREAD as u64), 0)],
    )?;
    // The supervisor reads tracees; it never writes them.
    for request in [
        libc::PTRACE_POKETEXT,
        libc::PTRACE_POKEDATA,
        libc::PTRACE_POKEUSER,
        libc::PTRACE_SETREGS,
        libc::PTRACE_SETFPREGS,
        libc::PTRACE_SETREGSET,
        libc::PTRACE_SETSIGINFO,
        libc::PTRACE_ATTACH,
        libc::PTRACE_TRACEME,
    ] {
        ctx.add_rule_conditional(
            eperm,
            ScmpSyscall::from_name("ptrace")?,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, request as u64)],
        )?;
    }
    if let Some(range) = range {
        restrict_file_writes(&mut ctx, range)?;
    }
    Ok(ctx)
}

/// Where a confined process may create, replace and remove files.
#[derive(Debug, Clone, Copy)]
pub enum Writes<'a> {
    /// Wherever its capabilities allow (the watchdog removes cgroups and session files).
    Anywhere,
    /// Nowhere: no file is opened for writing, nothing is renamed or removed.
    Nowhere,
    /// Only relative to these directories.
    Within(DirRange<'a>),
}

/// Open directories whose descriptor numbers follow one another, so that one comparison in a
/// filter covers them all (see [`crate::sys::place_consecutive`]).
#[derive(Debug, Clone, Copy)]
pub struct DirRange<'a> {
    first: BorrowedFd<'a>,
    last: BorrowedFd<'a>,
}

impl<'a> DirRange<'a> {
    /// `dirs` as a range: `None` when there are none or their numbers do not follow one another.
    pub fn of(dirs: &[BorrowedFd<'a>]) -> Option<Self> {
        let (first, last) = (*dirs.first()?, *dirs.last()?);
        let base = first.as_raw_fd();
        let consecutive = dirs.iter().zip(base..).all(|(fd, n)| fd.as_raw_fd() == n);
        consecutive.then_some(DirRange { first, last })
    }

    /// The lowest and highest descriptor numbers, for the filter's comparisons.
    fn bounds(self) -> (u64, u64) {
        (self.first.as_raw_fd() as u64, self.last.as_raw_fd() as u64)
    }
}

/// See [`build_self_filter`]: write-opens only relative to a descriptor in `range`
/// (inclusive); none at all without one.
fn restrict_file_writes(ctx: &mut Recipe, range: Option<(u64, u64)>) -> Result<(), FilterError> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let write_bits = [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC];
    // One comparison per rule on an argument: below the range, or above it (AT_FDCWD, -100,
    // is above it as an unsigned number).
    let outside = |arg: u32| -> Vec<ScmpArgCompare> {
        match range {
            Some((lo, hi)) => vec![
                ScmpArgCompare::new(arg, ScmpCompareOp::Less, lo),
                ScmpArgCompare::new(arg, ScmpCompareOp::Greater, hi),
            ],
            None => vec![ScmpArgCompare::new(arg, ScmpCompareOp::GreaterEqual, 0)],
        }
    };
    for bit in write_bits {
        let flag = |arg: u32| ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(bit as u64), bit as u64);
        ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("open")?, &[flag(1)])?;
        for side in outside(0) {
            ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("openat")?, &[side, flag(2)])?;
        }
    }
    // openat2's flags live in a struct the filter cannot read.
    ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), ScmpSyscall::from_name("openat2")?)?;
    for name in [
        "creat", "truncate", "rename", "link", "linkat", "symlink", "symlinkat", "unlink", "mkdir",
        "mkdirat", "rmdir", "mknod", "mknodat", "chmod", "fchmodat", "fchmodat2", "chown", "lchown",
        "fchownat", "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr",
        "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "name_to_handle_at",
    ] {
        if let Ok(sc) = ScmpSyscall::from_name(name) {
            ctx.add_rule(eperm, sc)?;
        }
    }
    // Renames and unlinks only inside the writable directories.
    for name in ["renameat", "renameat2"] {
        let sc = ScmpSyscall::from_name(name)?;
        for side in outside(0).into_iter().chain(outside(2)) {
            ctx.add_rule_conditional(eperm, sc, &[side])?;
        }
    }
    for side in outside(0) {
        ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("unlinkat")?, &[side])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn filter_builds_and_stays_small() {
        let p = build(&FilterSpec::default()).expect("builds");
        assert!(p.len() > 10 && p.len() < 200, "{} instructions", p.len());
        let with_uring = build(&FilterSpec { allow_io_uring: true, block: vec![] }).expect("builds");
        assert!(with_uring.len() < p.len());
    }

    #[test]
    fn every_set_builds_and_unknown_names_are_refused() {
        let all: Vec<Blocked> = SyscallSet::names()
            .into_iter()
            .filter_map(SyscallSet::parse)
            .map(Blocked::Set)
            .chain([Blocked::Syscall("personality".into()), Blocked::Syscall("io_uring_setup".into())])
            .collect();
        let p = build(&FilterSpec { allow_io_uring: false, block: all.clone() }).expect("builds");
        assert!(p.len() > 60 && p.len() < 1000, "{} instructions", p.len());
        let e = build(&FilterSpec { allow_io_uring: false, block: vec![Blocked::Syscall("no_such_call".into())] });
        assert!(matches!(e, Err(FilterError::UnknownSyscall(n)) if n == "no_such_call"));
        assert!(check_blocked(&all).is_ok());
        assert!(check_blocked(&[Blocked::Syscall("frobnicate".into())]).is_err());
    }

    #[test]
    fn own_filter_builds() {
        let memfd = || nix::sys::memfd::memfd_create(c"t", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).expect("memfd");
        let (mut a, mut b, c) = (memfd(), memfd(), memfd());
        crate::sys::place_consecutive(&mut [&mut a, &mut b]).expect("placed");
        let range = DirRange::of(&[a.as_fd(), b.as_fd()]).expect("consecutive");
        assert_eq!(range.bounds().1, range.bounds().0 + 1);
        assert!(DirRange::of(&[a.as_fd(), c.as_fd()]).is_none(), "not consecutive");
        assert!(DirRange::of(&[]).is_none());
        let within = build_self_filter(Writes::Within(range), false).expect("builds");
        let nowhere = build_self_filter(Writes::Nowhere, true).expect("builds");
        let anywhere = build_self_filter(Writes::Anywhere, false).expect("builds");
        assert!(anywhere.len() > 20, "{} instructions", anywhere.len());
        assert!(nowhere.len() > anywhere.len() && within.len() > nowhere.len());
    }

    #[test]
    fn syscall_table_knows_both_architectures() {
        let t = SyscallTable::new().expect("table");
        assert_eq!(t.classify(AUDIT_ARCH_X86_64, 59), Some(Notified::Execve));
        assert_eq!(t.classify(AUDIT_ARCH_X86_64, 322), Some(Notified::Execveat));
        assert_eq!(t.classify(AUDIT_ARCH_I386, 11), Some(Notified::Execve));
        assert_eq!(t.classify(AUDIT_ARCH_I386, 358), Some(Notified::Execveat));
        assert_eq!(t.classify(AUDIT_ARCH_X86_64, 16), Some(Notified::Probe));
        assert_eq!(t.classify(AUDIT_ARCH_I386, 54), Some(Notified::Probe));
        assert_eq!(t.classify(AUDIT_ARCH_X86_64, 0), None);
        assert_eq!(t.classify(AUDIT_ARCH_I386, 59), None);
    }
}
