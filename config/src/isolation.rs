//! `[[isolation]]` blocks: what a session may do once something runs. Off unless configured;
//! each block applies to the users, groups and services it names (all supervised sessions when
//! it names none), and every block that applies adds its restrictions: a session gets the
//! union of blocked syscalls and private directories, the smallest of each limit, and one
//! Landlock layer per block (Landlock layers intersect).
//!
//! ```toml
//! [[isolation]]
//! name = "contractors"
//! groups = ["contractors"]
//! block-syscalls = ["ptrace", "mount", "raw-sockets", "namespaces", "keyctl", "bpf"]
//! memory-max = "2G"
//! pids-max = 512
//! cpu-max = "50%"                        # of one CPU
//! private-dirs = ["/tmp", "/var/tmp"]    # a fresh tmpfs each, gone with the session
//! landlock = { read = ["/"], write = ["/home", "/tmp", "/dev"], execute = ["/usr", "/bin", "/lib", "/lib64"], tcp-connect = [22, 443] }
//! ```

use crate::Location;

/// Named sets of system calls that `block-syscalls` refuses (with `EPERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyscallSet {
    /// `ptrace`, `process_vm_readv`, `process_vm_writev`, `pidfd_getfd`, `kcmp`.
    Ptrace,
    /// The mount family: `mount`, `umount2`, `pivot_root`, `fsopen`, `fsmount`, `move_mount`,
    /// `open_tree`, `mount_setattr`, `fsconfig`, `fspick`.
    Mount,
    /// `socket(AF_INET/AF_INET6, SOCK_RAW)`.
    RawSockets,
    /// `socket(AF_PACKET)`.
    PacketSockets,
    /// `kexec_load`, `kexec_file_load`, `reboot`.
    Kexec,
    /// `init_module`, `finit_module`, `delete_module`.
    Modules,
    /// `bpf`.
    Bpf,
    /// `perf_event_open`.
    Perf,
    /// `keyctl`, `add_key`, `request_key`.
    Keyctl,
    /// `unshare` and `setns` of every namespace, and `clone` that makes one.
    Namespaces,
    /// The same, for user namespaces only.
    UserNamespaces,
    /// `chroot`.
    Chroot,
    /// `swapon`, `swapoff`, `acct`, `quotactl`.
    Admin,
    /// Setting the clocks: `settimeofday`, `clock_settime`, `adjtimex`, `clock_adjtime`.
    Clock,
}

impl SyscallSet {
    const ALL: [(&'static str, SyscallSet); 14] = [
        ("ptrace", SyscallSet::Ptrace),
        ("mount", SyscallSet::Mount),
        ("raw-sockets", SyscallSet::RawSockets),
        ("packet-sockets", SyscallSet::PacketSockets),
        ("kexec", SyscallSet::Kexec),
        ("modules", SyscallSet::Modules),
        ("bpf", SyscallSet::Bpf),
        ("perf", SyscallSet::Perf),
        ("keyctl", SyscallSet::Keyctl),
        ("namespaces", SyscallSet::Namespaces),
        ("user-namespaces", SyscallSet::UserNamespaces),
        ("chroot", SyscallSet::Chroot),
        ("admin", SyscallSet::Admin),
        ("clock", SyscallSet::Clock),
    ];

    /// The set's name in the configuration.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, s)| *s == self).map_or("?", |(n, _)| n)
    }

    /// The set called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// Every set name, for messages.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|(n, _)| *n).collect()
    }
}

/// System calls `block-syscalls` may not name: the session filter handles them itself
/// (execs go to the supervisor, the probe is an `ioctl`, `seccomp` is guarded), and refusing
/// them outright would leave no working session.
pub const NOT_BLOCKABLE: [&str; 10] =
    ["execve", "execveat", "ioctl", "seccomp", "exit", "exit_group", "read", "write", "rt_sigreturn", "wait4"];

/// One entry of `block-syscalls`: a named set or a single system call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Blocked {
    /// A named set.
    Set(SyscallSet),
    /// One system call by its name (checked against the kernel's table when the filter is
    /// built).
    Syscall(String),
}

impl Blocked {
    /// How it is written in the configuration.
    pub fn name(&self) -> &str {
        match self {
            Blocked::Set(s) => s.name(),
            Blocked::Syscall(n) => n,
        }
    }
}

/// Landlock rules of one block: absent lists leave that kind of access unrestricted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landlock {
    /// Trees that may be read (files and directories).
    pub read: Option<Vec<String>>,
    /// Trees that may be written to, created in and removed from (and read).
    pub write: Option<Vec<String>>,
    /// Trees whose files may be executed (and read).
    pub execute: Option<Vec<String>>,
    /// TCP ports that may be bound.
    pub tcp_bind: Option<Vec<u16>>,
    /// TCP ports that may be connected to.
    pub tcp_connect: Option<Vec<u16>>,
}

/// A CPU limit: `quota` microseconds of CPU per `period` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// Microseconds per period.
    pub quota: u64,
    /// The period in microseconds.
    pub period: u64,
}

/// One `[[isolation]]` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// Its name, as logged.
    pub name: String,
    /// Where it is written.
    pub origin: Location,
    /// Login users it applies to.
    pub users: Option<Vec<String>>,
    /// Groups of the login user it applies to.
    pub groups: Option<Vec<String>>,
    /// PAM services it applies to.
    pub services: Option<Vec<String>>,
    /// Refused system calls.
    pub block: Vec<Blocked>,
    /// `memory.max` in bytes.
    pub memory_max: Option<u64>,
    /// `pids.max`.
    pub pids_max: Option<u64>,
    /// `cpu.max`.
    pub cpu_max: Option<CpuMax>,
    /// Directories replaced by a private tmpfs.
    pub private_dirs: Vec<String>,
    /// Landlock rules.
    pub landlock: Option<Landlock>,
}

impl Isolation {
    /// Whether this block applies to a session. Users and groups: either matches (as in
    /// `[scope]`); services: must match when given.
    pub fn applies(&self, user: &str, groups: &[String], service: &str) -> bool {
        let who = match (&self.users, &self.groups) {
            (None, None) => true,
            (u, g) => {
                u.as_ref().is_some_and(|u| u.iter().any(|x| x == user))
                    || g.as_ref().is_some_and(|g| g.iter().any(|x| groups.contains(x)))
            }
        };
        who && self.services.as_ref().is_none_or(|s| s.iter().any(|x| x == service))
    }
}

/// Everything that applies to one session, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layers {
    /// The blocks that apply, by name.
    pub names: Vec<String>,
    /// Refused system calls (no duplicates).
    pub block: Vec<Blocked>,
    /// The smallest `memory.max`.
    pub memory_max: Option<u64>,
    /// The smallest `pids.max`.
    pub pids_max: Option<u64>,
    /// The smallest `cpu.max` (as a share of a CPU).
    pub cpu_max: Option<CpuMax>,
    /// Every private directory.
    pub private_dirs: Vec<String>,
    /// One Landlock layer per block that has one.
    pub landlock: Vec<Landlock>,
}

impl Layers {
    /// Whether nothing applies.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether any resource limit applies.
    pub fn has_limits(&self) -> bool {
        self.memory_max.is_some() || self.pids_max.is_some() || self.cpu_max.is_some()
    }
}

fn min_opt<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Merges the blocks that apply to a session.
pub fn layers_for(blocks: &[Isolation], user: &str, groups: &[String], service: &str) -> Layers {
    let mut l = Layers::default();
    for b in blocks.iter().filter(|b| b.applies(user, groups, service)) {
        l.names.push(b.name.clone());
        for x in &b.block {
            if !l.block.contains(x) {
                l.block.push(x.clone());
            }
        }
        l.memory_max = min_opt(l.memory_max, b.memory_max);
        l.pids_max = min_opt(l.pids_max, b.pids_max);
        l.cpu_max = match (l.cpu_max, b.cpu_max) {
            (Some(x), Some(y)) => {
                // Compare shares: quota/period, without floating point.
                Some(if u128::from(x.quota) * u128::from(y.period) <= u128::from(y.quota) * u128::from(x.period) { x } else { y })
            }
            (x, None) => x,
            (None, y) => y,
        };
        for d in &b.private_dirs {
            if !l.private_dirs.contains(d) {
                l.private_dirs.push(d.clone());
            }
        }
        if let Some(ll) = &b.landlock {
            l.landlock.push(ll.clone());
        }
    }
    l
}

/// Parses a size: bytes, or a number with a `K`, `M`, `G` or `T` suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult).filter(|&v| v > 0)
}

/// Parses a CPU limit: `"50%"` (of one CPU, period 100 ms) or `"QUOTA PERIOD"` in microseconds.
pub fn parse_cpu(s: &str) -> Option<CpuMax> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let pct: u64 = p.trim().parse().ok()?;
        return (pct > 0).then(|| CpuMax { quota: pct * 1000, period: 100_000 });
    }
    let mut it = s.split_whitespace();
    let quota: u64 = it.next()?.parse().ok()?;
    let period: u64 = it.next()?.parse().ok()?;
    (it.next().is_none() && quota >= 1000 && (1000..=1_000_000).contains(&period)).then_some(CpuMax { quota, period })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_cpu_limits_parse() {
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_cpu("50%"), Some(CpuMax { quota: 50_000, period: 100_000 }));
        assert_eq!(parse_cpu("150%"), Some(CpuMax { quota: 150_000, period: 100_000 }));
        assert_eq!(parse_cpu("20000 100000"), Some(CpuMax { quota: 20_000, period: 100_000 }));
        assert_eq!(parse_cpu("0%"), None);
        assert_eq!(parse_cpu("1 2 3"), None);
    }

    fn block(name: &str, users: Option<&[&str]>, pids: Option<u64>) -> Isolation {
        Isolation {
            name: name.into(),
            origin: Location { file: "t".into(), line: 1, column: 1 },
            users: users.map(|u| u.iter().map(|s| s.to_string()).collect()),
            groups: None,
            services: None,
            block: vec![Blocked::Set(SyscallSet::Mount)],
            memory_max: None,
            pids_max: pids,
            cpu_max: Some(CpuMax { quota: 50_000, period: 100_000 }),
            private_dirs: vec!["/tmp".into()],
            landlock: None,
        }
    }

    #[test]
    fn matching_blocks_only_add_restrictions() {
        let blocks = vec![block("all", None, Some(100)), block("alice", Some(&["alice"]), Some(50))];
        let a = layers_for(&blocks, "alice", &[], "sshd");
        assert_eq!(a.names, ["all", "alice"]);
        assert_eq!(a.pids_max, Some(50), "the smallest limit");
        assert_eq!(a.block.len(), 1, "no duplicates");
        let b = layers_for(&blocks, "bob", &[], "sshd");
        assert_eq!(b.names, ["all"]);
        assert_eq!(b.pids_max, Some(100));
        assert!(layers_for(&[], "x", &[], "y").is_empty());
    }
}
