//! The checked values of the top-level keys, of `[scope]` and of `[log]`: what a session's
//! supervisor does when it refuses, when it cannot decide and when it cannot log, and which
//! sessions it supervises at all. The guards, rules and default are in [`crate::Policy`];
//! `[tacacs]` and `[[isolation]]` have modules of their own.
//!
//! These are plain data. Turning the written values into them, with a located problem for each
//! bad one, is the job of the (private) `check::settings` module.

/// `enforce` refuses what the policy denies; `audit` decides and logs the same, refuses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse denied commands.
    Enforce,
    /// Log what would be refused, refuse nothing.
    Audit,
}

impl Mode {
    /// The name used in the configuration and in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }

    /// Parses `enforce` or `audit`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "audit" => Some(Mode::Audit),
            _ => None,
        }
    }
}

/// What happens when a decision cannot be made (no backend answers, an internal error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPolicy {
    /// Let the command run (and log why).
    Open,
    /// Refuse the command (and log why).
    Closed,
}

impl FailPolicy {
    /// The name used in the configuration and in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            FailPolicy::Open => "open",
            FailPolicy::Closed => "closed",
        }
    }

    /// Parses `open` or `closed`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(FailPolicy::Open),
            "closed" => Some(FailPolicy::Closed),
            _ => None,
        }
    }
}

/// What happens while decision lines cannot reach syslog (the socket is missing, or its reader
/// stalls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFailure {
    /// Keep the lines (in memory, then on disk in the runtime directory's spool) and deliver
    /// them later; execs go on.
    Keep,
    /// "No audit, no exec": an exec whose line can be neither delivered nor kept on disk is
    /// refused, with a message saying why.
    Refuse,
}

impl LogFailure {
    /// The name used in the configuration and in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFailure::Keep => "keep",
            LogFailure::Refuse => "refuse",
        }
    }

    /// Parses `keep` or `refuse`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(LogFailure::Keep),
            "refuse" => Some(LogFailure::Refuse),
            _ => None,
        }
    }
}

/// How the supervisor checks that what an allowed exec really loaded is what it authorized
/// (another thread can rewrite the path or the arguments after the check, a symlink can be
/// swapped): both check the image, the arguments and the environment before the new program
/// runs one instruction, and kill it if they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The kernel's check where it can be had (BPF, BTF, a BPF filesystem, the supervisor in
    /// the initial PID namespace), the ptrace stop otherwise.
    Auto,
    /// The kernel's check; where it cannot be had the ptrace stop, with a warning line.
    Bpf,
    /// The ptrace exec stop.
    Ptrace,
}

impl Verify {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Auto => "auto",
            Verify::Bpf => "bpf",
            Verify::Ptrace => "ptrace",
        }
    }

    /// Parses `auto`, `bpf` or `ptrace`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Verify::Auto),
            "bpf" => Some(Verify::Bpf),
            "ptrace" => Some(Verify::Ptrace),
            _ => None,
        }
    }
}

/// Which sessions are supervised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Supervised users; empty with empty `groups` means every user.
    pub users: Vec<String>,
    /// Members of these groups are supervised.
    pub groups: Vec<String>,
    /// PAM services that are supervised; empty means every service.
    pub services: Vec<String>,
    /// Never supervised (break-glass accounts).
    pub exempt_users: Vec<String>,
    /// Members are never supervised.
    pub exempt_groups: Vec<String>,
}

/// Why a session is or is not supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeVerdict {
    /// The session is supervised.
    Supervised,
    /// The user is exempt (named in `exempt-users`).
    ExemptUser,
    /// The user is in an exempt group (named here).
    ExemptGroup(String),
    /// The user is neither in `users` nor in `groups`.
    UserNotInScope,
    /// The service is not in `services`.
    ServiceNotInScope,
}

impl Scope {
    /// Whether a session of `user` (member of `groups`) through `service` is supervised.
    pub fn check(&self, user: &str, groups: &[String], service: &str) -> ScopeVerdict {
        if self.exempt_users.iter().any(|u| u == user) {
            return ScopeVerdict::ExemptUser;
        }
        if let Some(g) = self.exempt_groups.iter().find(|g| groups.contains(g)) {
            return ScopeVerdict::ExemptGroup(g.clone());
        }
        let everyone = self.users.is_empty() && self.groups.is_empty();
        if !everyone
            && !self.users.iter().any(|u| u == user)
            && !self.groups.iter().any(|g| groups.contains(g))
        {
            return ScopeVerdict::UserNotInScope;
        }
        if !self.services.is_empty() && !self.services.iter().any(|s| s == service) {
            return ScopeVerdict::ServiceNotInScope;
        }
        ScopeVerdict::Supervised
    }
}

/// An errno the supervisor answers a refused exec with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyErrno {
    /// Its symbolic name.
    pub name: &'static str,
    /// Its Linux number.
    pub value: i32,
}

impl DenyErrno {
    /// The errnos `deny-errno` may name; the first is the default.
    const ALL: &'static [DenyErrno] = &[
        DenyErrno { name: "EACCES", value: 13 },
        DenyErrno { name: "EPERM", value: 1 },
        DenyErrno { name: "ENOENT", value: 2 },
        DenyErrno { name: "ENOEXEC", value: 8 },
    ];

    /// `EACCES`, what a refused exec fails with unless `deny-errno` says otherwise.
    pub(crate) const DEFAULT: DenyErrno = Self::ALL[0];

    /// The errno called `name`, if `deny-errno` may name it.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.name == name)
    }
}

/// How lines are written and where they go (`[log] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald's native protocol when journald runs and `socket` is `/dev/log` (its own
    /// syslog socket then); RFC 3164 syslog to `socket` otherwise.
    Auto,
    /// RFC 3164 syslog lines to `socket`, as glibc's `syslog(3)` writes them.
    Rfc3164,
    /// RFC 5424 syslog lines to `socket`, every field also as structured data.
    Rfc5424,
    /// journald's native protocol: every field also a journal field (`SESSION_WRAPPER_*`), to
    /// `socket` when it is set to something other than `/dev/log`, else journald's socket.
    Journal,
}

impl LogFormat {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Rfc3164 => "rfc3164",
            LogFormat::Rfc5424 => "rfc5424",
            LogFormat::Journal => "journal",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [LogFormat::Auto, LogFormat::Rfc3164, LogFormat::Rfc5424, LogFormat::Journal].into_iter().find(|f| f.as_str() == s)
    }
}

/// Whether every decision is also a Linux audit record (`[log] audit`), as sudo writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRecords {
    /// When the kernel's audit is enabled and an audit daemon receives its records.
    Auto,
    /// Always (the kernel logs them itself when no daemon runs).
    On,
    /// Never.
    Off,
}

impl AuditRecords {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditRecords::Auto => "auto",
            AuditRecords::On => "on",
            AuditRecords::Off => "off",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [AuditRecords::Auto, AuditRecords::On, AuditRecords::Off].into_iter().find(|f| f.as_str() == s)
    }
}

/// The `[log]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The syslog socket.
    pub socket: String,
    /// The line format and destination.
    pub format: LogFormat,
    /// Linux audit records of decisions.
    pub audit: AuditRecords,
    /// At most this many bytes of the escaped argv in one line.
    pub argv_max: usize,
    /// Where lines that syslog cannot take yet are kept (root only).
    pub spool_dir: String,
}

impl LogSettings {
    /// The syslog socket when nothing else is configured: journald's, on a systemd host.
    pub const DEFAULT_SOCKET: &'static str = "/dev/log";
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            socket: Self::DEFAULT_SOCKET.into(),
            format: LogFormat::Auto,
            audit: AuditRecords::Auto,
            argv_max: 1024,
            spool_dir: "/var/spool/session-wrapper".into(),
        }
    }
}
