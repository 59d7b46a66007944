//! The session filter: the seccomp program installed on the process that opens a session
//! (and inherited by everything it starts), built with libseccomp.
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

use std::io::{Read, Seek};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use session_wrapper_protocol::kernel::{PROBE_FD, PROBE_REQUEST};
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
}

/// What the filter is built from: the parts of the policy that live in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Allow io_uring in the session.
    pub allow_io_uring: bool,
}

impl FilterSpec {
    /// The filter settings of a configuration.
    pub fn from_config(config: &session_wrapper_config::Config) -> Self {
        FilterSpec {
            allow_io_uring: config.policy.guards.io_uring
                == session_wrapper_config::GuardAction::Allow,
        }
    }
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
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow)?;
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
            ScmpArgCompare::new(1, ScmpCompareOp::Equal, PROBE_REQUEST),
        ],
    )?;
    ctx.add_rule_conditional(
        ScmpAction::Errno(EBUSY),
        ScmpSyscall::from_name("seccomp")?,
        &[
            ScmpArgCompare::new(0, ScmpCompareOp::Equal, u64::from(libc::SECCOMP_SET_MODE_FILTER)),
            ScmpArgCompare::new(
                1,
                ScmpCompareOp::MaskedEqual(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER),
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            ),
        ],
    )?;
    if !spec.allow_io_uring {
        for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            ctx.add_rule(ScmpAction::Errno(ENOSYS), ScmpSyscall::from_name(name)?)?;
        }
    }
    export(&ctx)
}

/// The supervisor's (and watchdog's) own filter: what they must never do, whatever happens
/// to them. Exec kills; writing another process's memory or registers, forking (other than
/// threads), mounting, modules, BPF, perf, io_uring, keys, identity changes, namespace changes
/// and clock changes fail with `EPERM`.
///
/// With `files: Some(dirfd)`, files may be opened for writing (created, truncated) only
/// relative to `dirfd`, and renamed or unlinked only within it; every other path change
/// (`chmod`, `chown`, `link`, `mkdir`, `truncate`, ...) fails. `Some(-1)` allows no file
/// writes at all. Writing to descriptors already open (sockets, a refused process's stderr)
/// is unaffected.
///
/// # Errors
/// [`FilterError`] when libseccomp fails.
pub fn build_self_filter(files: Option<i32>) -> Result<FilterProgram, FilterError> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow)?;
    ctx.set_act_badarch(ScmpAction::KillProcess)?;
    for name in ["execve", "execveat"] {
        ctx.add_rule(ScmpAction::KillProcess, ScmpSyscall::from_name(name)?)?;
    }
    let eperm = ScmpAction::Errno(libc::EPERM);
    for name in [
        "process_vm_writev", "fork", "vfork", "mount", "umount2", "pivot_root", "chroot", "unshare",
        "setns", "bpf", "perf_event_open", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl",
        "ioperm", "keyctl", "add_key", "request_key", "userfaultfd", "open_by_handle_at",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "setuid", "setgid", "setreuid",
        "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "personality",
        "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr", "quotactl",
    ] {
        ctx.add_rule(eperm, ScmpSyscall::from_name(name)?)?;
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
    if let Some(dirfd) = files {
        restrict_file_writes(&mut ctx, dirfd)?;
    }
    export(&ctx)
}

/// See [`build_self_filter`]: write-opens only relative to `dirfd`.
fn restrict_file_writes(ctx: &mut ScmpFilterContext, dirfd: i32) -> Result<(), FilterError> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let write_bits = [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC];
    let not_dir = |arg: u32| ScmpArgCompare::new(arg, ScmpCompareOp::NotEqual, dirfd as u32 as u64);
    for bit in write_bits {
        let flag = |arg: u32| ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(bit as u64), bit as u64);
        ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("open")?, &[flag(1)])?;
        ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("openat")?, &[not_dir(0), flag(2)])?;
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
    // Renames and unlinks only inside the runtime directory.
    for name in ["renameat", "renameat2"] {
        let sc = ScmpSyscall::from_name(name)?;
        ctx.add_rule_conditional(eperm, sc, &[not_dir(0)])?;
        ctx.add_rule_conditional(eperm, sc, &[not_dir(2)])?;
    }
    ctx.add_rule_conditional(eperm, ScmpSyscall::from_name("unlinkat")?, &[not_dir(0)])?;
    Ok(())
}

/// Exports a libseccomp context as a program, through a memfd.
pub(crate) fn export(ctx: &ScmpFilterContext) -> Result<FilterProgram, FilterError> {
    let fd = nix::sys::memfd::memfd_create(c"seccomp-export", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)?;
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(FilterProgram::from_bytes(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_builds_and_stays_small() {
        let p = build(&FilterSpec::default()).expect("builds");
        assert!(p.len() > 10 && p.len() < 200, "{} instructions", p.len());
        let with_uring = build(&FilterSpec { allow_io_uring: true }).expect("builds");
        assert!(with_uring.len() < p.len());
    }

    #[test]
    fn own_filter_builds() {
        let p = build_self_filter(Some(3)).expect("builds");
        assert!(p.len() > 20, "{} instructions", p.len());
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
