//! Landlock's kernel interface: the ABI versions, the access rights, the attribute structs
//! and the three syscalls (corresponds to landlock(7), landlock_create_ruleset(2),
//! landlock_add_rule(2) and landlock_restrict_self(2)).
//!
//! This is the only place of the crate that speaks to Landlock directly. Everything above it
//! ([`crate::isolate`]) holds a [`Ruleset`] (an owned descriptor) and names rights with the
//! constants below; which rights a layer asks for is decided there, not here.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `LANDLOCK_CREATE_RULESET_VERSION`.
pub const CREATE_RULESET_VERSION: u32 = 1;
/// `LANDLOCK_RULE_PATH_BENEATH`.
pub const RULE_PATH_BENEATH: u32 = 1;
/// `LANDLOCK_RULE_NET_PORT`.
pub const RULE_NET_PORT: u32 = 2;

/// `LANDLOCK_ACCESS_FS_*`.
pub mod fs {
    /// Execute a file.
    pub const EXECUTE: u64 = 1 << 0;
    /// Open a file for writing.
    pub const WRITE_FILE: u64 = 1 << 1;
    /// Open a file for reading.
    pub const READ_FILE: u64 = 1 << 2;
    /// List a directory.
    pub const READ_DIR: u64 = 1 << 3;
    /// Remove a directory.
    pub const REMOVE_DIR: u64 = 1 << 4;
    /// Remove a file.
    pub const REMOVE_FILE: u64 = 1 << 5;
    /// Create a character device.
    pub const MAKE_CHAR: u64 = 1 << 6;
    /// Create a directory.
    pub const MAKE_DIR: u64 = 1 << 7;
    /// Create a regular file.
    pub const MAKE_REG: u64 = 1 << 8;
    /// Create a socket.
    pub const MAKE_SOCK: u64 = 1 << 9;
    /// Create a FIFO.
    pub const MAKE_FIFO: u64 = 1 << 10;
    /// Create a block device.
    pub const MAKE_BLOCK: u64 = 1 << 11;
    /// Create a symbolic link.
    pub const MAKE_SYM: u64 = 1 << 12;
    /// Link or rename a file from or to another directory (ABI 2).
    pub const REFER: u64 = 1 << 13;
    /// Truncate a file (ABI 3).
    pub const TRUNCATE: u64 = 1 << 14;

    /// Reading.
    pub const READ: u64 = READ_FILE | READ_DIR;
    /// Writing, in ABI 1.
    pub const WRITE_V1: u64 = WRITE_FILE
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    /// The rights that apply to a file (not a directory).
    pub const ON_FILES: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE;
}

/// `LANDLOCK_ACCESS_NET_*` (ABI 4).
pub mod net {
    /// Bind a TCP port.
    pub const BIND_TCP: u64 = 1 << 0;
    /// Connect to a TCP port.
    pub const CONNECT_TCP: u64 = 1 << 1;
}

/// A Landlock ABI version, as the kernel reports it. Each version can do all that the ones
/// before it can; versions compare (and compare with plain numbers) by their number, and
/// print as it.
#[derive(Debug, Clone, Copy)]
pub enum LandlockAbi {
    /// Linux 5.13: the filesystem rights.
    V1,
    /// Linux 5.19: [`fs::REFER`].
    V2,
    /// Linux 6.2: [`fs::TRUNCATE`].
    V3,
    /// Linux 6.7: TCP ports ([`net`]).
    V4,
    /// Linux 6.10: `ioctl` on devices.
    V5,
    /// Linux 6.12: scoping of abstract UNIX sockets and signals.
    V6,
    /// Linux 6.15: audit logging flags.
    V7,
    /// A version newer than this code knows (its number, above 7).
    Newer(u32),
}

impl LandlockAbi {
    /// The newest version this code knows by name.
    pub const LATEST_KNOWN: LandlockAbi = LandlockAbi::V7;

    /// The version numbered `n`, or `None` when `n` is not a version (below 1).
    pub fn from_number(n: i64) -> Option<Self> {
        Some(match n {
            1 => Self::V1,
            2 => Self::V2,
            3 => Self::V3,
            4 => Self::V4,
            5 => Self::V5,
            6 => Self::V6,
            7 => Self::V7,
            n if n > 7 => Self::Newer(u32::try_from(n).unwrap_or(u32::MAX)),
            _ => return None,
        })
    }

    /// The version's number.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
            Self::V4 => 4,
            Self::V5 => 5,
            Self::V6 => 6,
            Self::V7 => 7,
            Self::Newer(n) => n,
        }
    }

    /// Whether this version restricts TCP ports ([`net`]).
    pub fn has_net(self) -> bool {
        self >= Self::V4
    }

    /// The size of `struct landlock_ruleset_attr` this version reads: kernels before ABI 4
    /// know only its first field.
    fn ruleset_attr_size(self) -> usize {
        if self.has_net() {
            std::mem::size_of::<RulesetAttr>()
        } else {
            std::mem::size_of::<u64>()
        }
    }
}

impl fmt::Display for LandlockAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl PartialEq for LandlockAbi {
    fn eq(&self, other: &Self) -> bool {
        self.number() == other.number()
    }
}

impl Eq for LandlockAbi {}

impl std::hash::Hash for LandlockAbi {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.number().hash(state);
    }
}

impl PartialOrd for LandlockAbi {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LandlockAbi {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.number().cmp(&other.number())
    }
}

/// So that a version still reads as the number it is (`abi < 4`).
impl PartialEq<i64> for LandlockAbi {
    fn eq(&self, other: &i64) -> bool {
        i64::from(self.number()) == *other
    }
}

/// So that a version still reads as the number it is (`abi < 4`).
impl PartialOrd<i64> for LandlockAbi {
    fn partial_cmp(&self, other: &i64) -> Option<std::cmp::Ordering> {
        i64::from(self.number()).partial_cmp(other)
    }
}

/// The writing rights of ABI `abi`.
pub fn write_rights(abi: LandlockAbi) -> u64 {
    let mut w = fs::WRITE_V1;
    if abi >= LandlockAbi::V2 {
        w |= fs::REFER;
    }
    if abi >= LandlockAbi::V3 {
        w |= fs::TRUNCATE;
    }
    w
}

/// The Landlock ABI version of the running kernel.
///
/// # Errors
/// The errno saying why there is none: `ENOSYS`, not built; `EOPNOTSUPP`, not enabled at boot.
pub fn abi() -> Result<LandlockAbi, i32> {
    // SAFETY: the version query takes no attribute pointer.
    let r = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, CREATE_RULESET_VERSION)
    };
    if r < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOSYS));
    }
    // The kernel's versions start at 1.
    LandlockAbi::from_number(r).ok_or(libc::EOPNOTSUPP)
}

/// `struct landlock_ruleset_attr`.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

/// `struct landlock_path_beneath_attr`.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// An attribute struct of `landlock_add_rule(2)`, and the rule type the kernel reads it as.
trait RuleAttr {
    /// `LANDLOCK_RULE_*`.
    const KIND: u32;
}

impl RuleAttr for PathBeneathAttr {
    const KIND: u32 = RULE_PATH_BENEATH;
}

impl RuleAttr for NetPortAttr {
    const KIND: u32 = RULE_NET_PORT;
}

/// A Landlock ruleset being built: its descriptor, owned (and close-on-exec).
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
}

impl Ruleset {
    /// A new ruleset that handles (restricts) the filesystem rights `handled_fs` and the
    /// network rights `handled_net`; `handled_net` must be 0 before ABI 4.
    ///
    /// # Errors
    /// The errno of `landlock_create_ruleset(2)`.
    pub fn new(abi: LandlockAbi, handled_fs: u64, handled_net: u64) -> io::Result<Self> {
        let attr = RulesetAttr { handled_access_fs: handled_fs, handled_access_net: handled_net };
        let size = abi.ruleset_attr_size();
        // SAFETY: `attr` is a valid ruleset attribute of at least `size` bytes, alive for the call.
        let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &raw const attr, size, 0u32) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this new descriptor (close-on-exec); nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Ruleset { fd })
    }

    /// Allows `allowed` beneath the file or directory `parent` (an `O_PATH` descriptor will do).
    ///
    /// # Errors
    /// The errno of `landlock_add_rule(2)`.
    pub fn allow_beneath(&self, parent: BorrowedFd<'_>, allowed: u64) -> io::Result<()> {
        self.add_rule(&PathBeneathAttr { allowed_access: allowed, parent_fd: parent.as_raw_fd() })
    }

    /// Allows `allowed` (of [`net`]) on TCP port `port`.
    ///
    /// # Errors
    /// The errno of `landlock_add_rule(2)`.
    pub fn allow_port(&self, port: u16, allowed: u64) -> io::Result<()> {
        self.add_rule(&NetPortAttr { allowed_access: allowed, port: u64::from(port) })
    }

    fn add_rule<A: RuleAttr>(&self, attr: &A) -> io::Result<()> {
        let attr: *const A = attr;
        // SAFETY: `attr` points to a live attribute struct of rule type `A::KIND` (the
        // `RuleAttr` impls pair each struct with its type); the kernel only reads it.
        let r = unsafe { libc::syscall(libc::SYS_landlock_add_rule, self.fd.as_raw_fd(), A::KIND, attr, 0u32) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Applies the ruleset to the calling thread (and what it starts from then on). Without
    /// `NO_NEW_PRIVS` this needs `CAP_SYS_ADMIN`.
    ///
    /// # Errors
    /// The errno of `landlock_restrict_self(2)`.
    pub fn restrict_self(&self) -> io::Result<()> {
        // SAFETY: plain syscall on a ruleset descriptor we own.
        if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_versions_keep_their_numbers_and_order() {
        for n in 1..=9 {
            let abi = LandlockAbi::from_number(n).expect("a version");
            assert_eq!(i64::from(abi.number()), n);
            assert_eq!(abi.to_string(), n.to_string());
            assert!(abi == n);
        }
        assert_eq!(LandlockAbi::from_number(0), None);
        assert_eq!(LandlockAbi::from_number(-1), None);
        assert_eq!(LandlockAbi::from_number(8), Some(LandlockAbi::Newer(8)));
        assert!(LandlockAbi::V3 < LandlockAbi::V4 && LandlockAbi::V7 < LandlockAbi::Newer(8));
        assert!(LandlockAbi::V3 < 4 && LandlockAbi::V4 >= 4);
        assert!(!LandlockAbi::V3.has_net() && LandlockAbi::V4.has_net() && LandlockAbi::Newer(9).has_net());
        assert_eq!(LandlockAbi::LATEST_KNOWN.number(), 7);
    }

    #[test]
    fn ruleset_attr_size_is_one_field_before_abi_4() {
        assert_eq!(LandlockAbi::V3.ruleset_attr_size(), 8);
        assert_eq!(LandlockAbi::V4.ruleset_attr_size(), 16);
    }

    #[test]
    fn write_rights_grow_with_the_abi() {
        assert_eq!(write_rights(LandlockAbi::V1), fs::WRITE_V1);
        assert_eq!(write_rights(LandlockAbi::V2), fs::WRITE_V1 | fs::REFER);
        assert_eq!(write_rights(LandlockAbi::V3), fs::WRITE_V1 | fs::REFER | fs::TRUNCATE);
        assert_eq!(write_rights(LandlockAbi::Newer(12)), write_rights(LandlockAbi::V3));
    }

    #[test]
    fn the_kernel_reports_a_version_or_why_not() {
        match abi() {
            Ok(v) => assert!(v >= LandlockAbi::V1),
            Err(e) => assert!(e == libc::ENOSYS || e == libc::EOPNOTSUPP, "unexpected errno {e}"),
        }
    }

    #[test]
    fn a_ruleset_takes_rules_without_being_applied() {
        let Ok(v) = abi() else {
            eprintln!("skipped: needs Landlock");
            return;
        };
        let ruleset = Ruleset::new(v, fs::READ, 0).expect("ruleset");
        let root = std::fs::File::open("/").expect("open /");
        use std::os::fd::AsFd;
        ruleset.allow_beneath(root.as_fd(), fs::READ).expect("rule");
        // A right the ruleset does not handle is refused.
        assert!(ruleset.allow_beneath(root.as_fd(), fs::EXECUTE).is_err());
    }
}
