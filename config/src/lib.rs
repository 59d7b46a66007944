//! Configuration and policy of `pam_session_wrapper`.
//!
//! This crate is pure code: it reads no file and makes no syscall, so it can be unit-tested and
//! fuzzed on its own. The supervisor reads the files (`/etc/session-wrapper/config.toml`, then
//! `/etc/session-wrapper/config.d/*.toml` in lexical order) and hands their text to
//! [`Config::parse`] as [`Source`]s; it then asks [`Policy::decide`] about every exec.
//!
//! # Merge order
//! Later sources override earlier ones: a key set in a later file replaces the value of an
//! earlier one (lists are replaced whole, not appended). Rules are the exception: every
//! source's rules are kept, and **the rules of later files are checked first**, so a drop-in
//! can carve an exception out of the main policy. Within one file, rules are checked in the
//! order they are written. The first rule that matches decides; if none does, `default` does.
//!
//! # Examples
//! ```
//! use session_wrapper_config::{Config, Source, Request, ExeKind, Action};
//! let text = r#"
//!     default = "deny"
//!     [[rules]]
//!     exe = "/usr/bin/"
//!     action = "allow"
//! "#;
//! let config = Config::parse(&[Source::new("example.toml", text)], &|_| None).unwrap();
//! let argv = vec![b"ls".to_vec()];
//! let req = Request {
//!     user: "alice", groups: &[], target_user: "alice", service: "sshd",
//!     exe: b"/usr/bin/ls", links: &[], kind: ExeKind::File, dynamic_loader: false,
//!     loader_env: None, traced: false, foreign_user_namespace: false,
//!     untrusted_library_path: None, argv: &argv,
//! };
//! assert_eq!(config.policy.decide(&req).action, Action::Allow);
//! ```

mod error;
pub mod isolation;
mod pattern;
mod policy;
mod raw;
pub mod tacacs;
pub mod text;

use std::collections::HashSet;

use toml::Spanned;

pub use error::{ConfigError, Location, Problem};
pub use pattern::{
    invoked_name, AnyArg, ArgsPattern, Breadth, Canonicalize, ExePattern, NamePattern, Program,
};
pub use policy::{
    Action, DecidedBy, Decision, ExeKind, Guard, GuardAction, Guards, Policy, Request, Rule,
};
use raw::{RawFile, RawIsolation, RawRule, RawTacacs};
pub use isolation::{Blocked, Isolation, Layers, SyscallSet};
pub use tacacs::{Server, Tacacs, Tls};

/// The built-in default configuration: enforce mode, everything allowed except programs run
/// from the world-writable temporary directories. It lets every login shell start, so a first
/// install cannot lock anyone out.
pub const BUILTIN: &str = include_str!("builtin.toml");

/// The name [`BUILTIN`] is reported under.
pub const BUILTIN_NAME: &str = "<built-in default>";

/// One configuration text and the name it is reported under.
#[derive(Debug, Clone)]
pub struct Source {
    /// Usually the file's path.
    pub name: String,
    /// The TOML text.
    pub text: String,
}

impl Source {
    /// A source named `name` with the given text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source { name: name.into(), text: text.into() }
    }
}

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

const ERRNOS: &[DenyErrno] = &[
    DenyErrno { name: "EACCES", value: 13 },
    DenyErrno { name: "EPERM", value: 1 },
    DenyErrno { name: "ENOENT", value: 2 },
    DenyErrno { name: "ENOEXEC", value: 8 },
];

/// The `[log]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The syslog socket.
    pub socket: String,
    /// At most this many bytes of the escaped argv in one line.
    pub argv_max: usize,
    /// Where lines that syslog cannot take yet are kept (root only).
    pub spool_dir: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { socket: "/dev/log".into(), argv_max: 1024, spool_dir: "/var/spool/session-wrapper".into() }
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// enforce or audit.
    pub mode: Mode,
    /// What happens when a decision cannot be made.
    pub fail_policy: FailPolicy,
    /// What happens while decision lines cannot be delivered to syslog.
    pub log_failure: LogFailure,
    /// The errno of a refused exec.
    pub deny_errno: DenyErrno,
    /// Which sessions are supervised.
    pub scope: Scope,
    /// Guards, rules and default.
    pub policy: Policy,
    /// Logging.
    pub log: LogSettings,
    /// TACACS+ servers for `authorize` rules.
    pub tacacs: Tacacs,
    /// Isolation blocks.
    pub isolation: Vec<Isolation>,
    /// The names of the sources, in the order they were read.
    pub sources: Vec<String>,
}

/// Collects problems with their locations.
struct Checker<'a> {
    source: &'a Source,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn at(&self, offset: usize) -> Location {
        Location::at(&self.source.name, &self.source.text, offset)
    }

    fn problem(&mut self, offset: usize, message: impl Into<String>) {
        let location = self.at(offset);
        self.problems.push(Problem { location, message: message.into() });
    }

    fn choice<T>(
        &mut self,
        value: &Spanned<String>,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Option<T> {
        let parsed = parse(value.get_ref());
        if parsed.is_none() {
            self.problem(
                value.span().start,
                format!("{what} must be one of {allowed}, not {:?}", value.get_ref()),
            );
        }
        parsed
    }

    fn names(
        &mut self,
        list: Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Option<Vec<String>> {
        let list = list?;
        if list.get_ref().is_empty() {
            self.problem(
                list.span().start,
                format!("`{key}` is an empty list, which matches nothing; remove the key to match any"),
            );
            return None;
        }
        let list = list.into_inner();
        let mut out = Vec::with_capacity(list.len());
        for n in list {
            let valid = !n.get_ref().is_empty()
                && !n.get_ref().chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                self.problem(n.span().start, format!("invalid name {:?} in `{key}`", n.get_ref()));
            }
            out.push(n.into_inner());
        }
        Some(out)
    }
}

fn guard_action(s: &str) -> Option<GuardAction> {
    match s {
        "allow" => Some(GuardAction::Allow),
        "deny" => Some(GuardAction::Deny),
        _ => None,
    }
}

fn valid_rule_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

impl Config {
    /// Parses, merges and checks `sources` (main file first, then drop-ins in order).
    /// `canonicalize` resolves symlinked directories in executable patterns; pass
    /// `&|_| None` to match patterns only as written.
    ///
    /// # Errors
    /// Every problem found, each with its file, line and column.
    pub fn parse(sources: &[Source], canonicalize: Canonicalize<'_>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut config = Config {
            mode: Mode::Enforce,
            fail_policy: FailPolicy::Closed,
            log_failure: LogFailure::Keep,
            deny_errno: ERRNOS[0],
            scope: Scope::default(),
            policy: Policy {
                guards: Guards::default(),
                rules: Vec::new(),
                default_action: Action::Deny,
                default_message: None,
                fallback: Vec::new(),
            },
            log: LogSettings::default(),
            tacacs: Tacacs::default(),
            isolation: Vec::new(),
            sources: sources.iter().map(|s| s.name.clone()).collect(),
        };
        let mut rules_by_source = Vec::with_capacity(sources.len());
        let mut fallback_by_source = Vec::with_capacity(sources.len());
        for source in sources {
            let raw: RawFile = match toml::from_str(&source.text) {
                Ok(raw) => raw,
                Err(e) => {
                    let offset = e.span().map_or(0, |s| s.start);
                    let message = e.message().trim().to_owned();
                    problems.push(Problem {
                        location: Location::at(&source.name, &source.text, offset),
                        message,
                    });
                    continue;
                }
            };
            let mut ck = Checker { source, problems: &mut problems };
            let (rules, fallback) = config.apply(raw, &mut ck, canonicalize);
            rules_by_source.push(rules);
            fallback_by_source.push(fallback);
        }
        // Later sources' rules are checked first.
        for rules in rules_by_source.into_iter().rev() {
            config.policy.rules.extend(rules);
        }
        for rules in fallback_by_source.into_iter().rev() {
            config.policy.fallback.extend(rules);
        }
        config.check_tacacs(&mut problems);
        let mut seen = HashSet::new();
        for iso in &config.isolation {
            if !seen.insert(iso.name.as_str()) {
                problems.push(Problem {
                    location: iso.origin.clone(),
                    message: format!("isolation name {:?} is used more than once", iso.name),
                });
            }
        }
        for rule in config.policy.rules.iter().chain(&config.policy.fallback) {
            if !seen.insert(rule.name.as_str()) {
                problems.push(Problem {
                    location: rule.origin.clone(),
                    message: format!("rule name {:?} is used more than once", rule.name),
                });
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Parses [`BUILTIN`].
    ///
    /// # Errors
    /// Never, unless the built-in text is broken (a test proves it is not).
    pub fn builtin(canonicalize: Canonicalize<'_>) -> Result<Self, ConfigError> {
        Config::parse(&[Source::new(BUILTIN_NAME, BUILTIN)], canonicalize)
    }

    /// Checks what needs every source merged: each plain-TCP server has a secret.
    fn check_tacacs(&self, problems: &mut Vec<Problem>) {
        for s in &self.tacacs.servers {
            if s.tls.is_none() && s.key_file.is_none() && self.tacacs.key_file.is_none() {
                problems.push(Problem {
                    location: s.origin.clone(),
                    message: format!(
                        "TACACS+ server {} has no key-file and [tacacs] has none to share: without TLS a shared secret is required",
                        s.name()
                    ),
                });
            }
        }
    }

    /// Applies one source's settings over `self` and returns its rules and fallback rules,
    /// checked.
    fn apply(
        &mut self,
        raw: RawFile,
        ck: &mut Checker<'_>,
        canon: Canonicalize<'_>,
    ) -> (Vec<Rule>, Vec<Rule>) {
        if let Some(v) = raw.mode {
            let parse = |s: &str| match s {
                "enforce" => Some(Mode::Enforce),
                "audit" => Some(Mode::Audit),
                _ => None,
            };
            if let Some(m) = ck.choice(&v, "mode", parse, "\"enforce\", \"audit\"") {
                self.mode = m;
            }
        }
        if let Some(v) = raw.fail_policy {
            if let Some(f) = ck.choice(&v, "fail-policy", FailPolicy::parse, "\"open\", \"closed\"")
            {
                self.fail_policy = f;
            }
        }
        if let Some(v) = raw.log_failure {
            let parse = |s: &str| match s {
                "keep" => Some(LogFailure::Keep),
                "refuse" => Some(LogFailure::Refuse),
                _ => None,
            };
            if let Some(f) = ck.choice(&v, "log-failure", parse, "\"keep\", \"refuse\"") {
                self.log_failure = f;
            }
        }
        if let Some(v) = raw.deny_errno {
            let parse = |s: &str| ERRNOS.iter().copied().find(|e| e.name == s);
            let allowed = "\"EACCES\", \"EPERM\", \"ENOENT\", \"ENOEXEC\"";
            if let Some(e) = ck.choice(&v, "deny-errno", parse, allowed) {
                self.deny_errno = e;
            }
        }
        if let Some(v) = raw.default {
            let allowed = "\"allow\", \"deny\", \"authorize\"";
            if let Some(a) = ck.choice(&v, "default", Action::parse, allowed) {
                self.policy.default_action = a;
            }
        }
        if let Some(m) = raw.default_message {
            self.policy.default_message = Some(m);
        }
        if let Some(s) = raw.scope {
            let sc = &mut self.scope;
            let lists = [
                (s.users, &mut sc.users, "users"),
                (s.groups, &mut sc.groups, "groups"),
                (s.services, &mut sc.services, "services"),
                (s.exempt_users, &mut sc.exempt_users, "exempt-users"),
                (s.exempt_groups, &mut sc.exempt_groups, "exempt-groups"),
            ];
            for (value, slot, key) in lists {
                // An empty list is meaningful in scope (it resets an earlier file's list).
                if let Some(v) = value {
                    if v.get_ref().is_empty() {
                        slot.clear();
                    } else if let Some(names) = ck.names(Some(v), key) {
                        *slot = names;
                    }
                }
            }
        }
        if let Some(g) = raw.guards {
            let gs = &mut self.policy.guards;
            let allowed = "\"allow\", \"deny\"";
            let entries = [
                (g.memfd, &mut gs.memfd, "guards.memfd"),
                (g.deleted, &mut gs.deleted, "guards.deleted"),
                (g.dynamic_loader, &mut gs.dynamic_loader, "guards.dynamic-loader"),
                (g.traced, &mut gs.traced, "guards.traced"),
                (g.io_uring, &mut gs.io_uring, "guards.io-uring"),
                (g.foreign_mount, &mut gs.foreign_mount, "guards.foreign-mount"),
                (g.user_namespaces, &mut gs.user_namespaces, "guards.user-namespaces"),
                (g.library_path, &mut gs.library_path, "guards.library-path"),
            ];
            for (value, slot, key) in entries {
                if let Some(v) = value {
                    if let Some(a) = ck.choice(&v, key, guard_action, allowed) {
                        *slot = a;
                    }
                }
            }
            if let Some(list) = g.loader_env {
                let list = list.into_inner();
                let mut names = Vec::with_capacity(list.len());
                for n in list {
                    let ok = !n.get_ref().is_empty()
                        && n.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok {
                        ck.problem(
                            n.span().start,
                            format!("invalid environment variable name {:?}", n.get_ref()),
                        );
                    }
                    names.push(n.into_inner());
                }
                gs.loader_env = names;
            }
        }
        if let Some(l) = raw.log {
            if let Some(s) = l.socket {
                if !s.starts_with('/') {
                    ck.problem(0, format!("log.socket must be an absolute path, not {s:?}"));
                }
                self.log.socket = s;
            }
            if let Some(d) = l.spool_dir {
                if !d.starts_with('/') {
                    ck.problem(0, format!("log.spool-dir must be an absolute path, not {d:?}"));
                }
                self.log.spool_dir = d;
            }
            if let Some(n) = l.argv_max {
                match usize::try_from(*n.get_ref()) {
                    Ok(v) if (64..=65536).contains(&v) => self.log.argv_max = v,
                    _ => ck.problem(n.span().start, "log.argv-max must be between 64 and 65536"),
                }
            }
        }
        if let Some(t) = raw.tacacs {
            apply_tacacs(&mut self.tacacs, t, ck);
        }
        for iso in raw.isolation {
            if let Some(i) = check_isolation(iso, ck) {
                self.isolation.push(i);
            }
        }
        let rules = raw.rules.into_iter().filter_map(|r| check_rule(r, ck, canon)).collect();
        let mut fallback = Vec::new();
        for r in raw.fallback {
            let start = r.span().start;
            if let Some(rule) = check_rule(r, ck, canon) {
                if rule.action == Action::Authorize {
                    ck.problem(start, format!("fallback rule {:?} cannot authorize: it decides when no server answers", rule.name));
                } else {
                    fallback.push(rule);
                }
            }
        }
        (rules, fallback)
    }
}

fn ranged(ck: &mut Checker<'_>, v: &Spanned<i64>, what: &str, lo: i64, hi: i64) -> Option<i64> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        Some(n)
    } else {
        ck.problem(v.span().start, format!("{what} must be between {lo} and {hi}, not {n}"));
        None
    }
}

fn absolute(ck: &mut Checker<'_>, v: Spanned<String>, what: &str) -> Option<String> {
    if v.get_ref().starts_with('/') {
        Some(v.into_inner())
    } else {
        ck.problem(v.span().start, format!("{what} must be an absolute path, not {:?}", v.get_ref()));
        None
    }
}

fn apply_tacacs(t: &mut Tacacs, raw: RawTacacs, ck: &mut Checker<'_>) {
    if let Some(k) = raw.key_file {
        t.key_file = absolute(ck, k, "tacacs.key-file");
    }
    if let Some(v) = raw.service {
        if v.get_ref().is_empty() || !v.get_ref().bytes().all(|b| b.is_ascii_graphic()) {
            ck.problem(v.span().start, "tacacs.service must be printable ASCII without spaces");
        }
        t.service = v.into_inner();
    }
    if let Some(v) = raw.protocol {
        t.protocol = Some(v.into_inner()).filter(|p| !p.is_empty());
    }
    if let Some(v) = raw.priv_lvl {
        if let Some(n) = ranged(ck, &v, "tacacs.priv-lvl", 0, 15) {
            t.priv_lvl = n as u8;
        }
    }
    if let Some(v) = raw.timeout_ms {
        if let Some(n) = ranged(ck, &v, "tacacs.timeout-ms", 100, 60_000) {
            t.timeout = std::time::Duration::from_millis(n as u64);
        }
    }
    if let Some(v) = raw.dead_server_retry_s {
        if let Some(n) = ranged(ck, &v, "tacacs.dead-server-retry-s", 1, 3600) {
            t.dead_retry = std::time::Duration::from_secs(n as u64);
        }
    }
    if let Some(b) = raw.single_connect {
        t.single_connect = b;
    }
    if let Some(v) = raw.cache_ttl_s {
        if let Some(n) = ranged(ck, &v, "tacacs.cache-ttl-s", 0, 86_400) {
            t.cache_ttl = (n > 0).then(|| std::time::Duration::from_secs(n as u64));
        }
    }
    if let Some(b) = raw.accounting {
        t.accounting = b;
    }
    if let Some(b) = raw.session_accounting {
        t.session_accounting = b;
    }
    if let Some(v) = raw.accounting_queue {
        if let Some(n) = ranged(ck, &v, "tacacs.accounting-queue", 1, 100_000) {
            t.accounting_queue = n as usize;
        }
    }
    if let Some(servers) = raw.servers {
        t.servers.clear();
        for s in servers {
            let origin = ck.at(s.span().start);
            let s = s.into_inner();
            let host = s.host.get_ref().trim().to_owned();
            if host.is_empty() || host.contains(char::is_whitespace) {
                ck.problem(s.host.span().start, "tacacs server host must be a name or an address");
            }
            let tls = s.tls.map(|tl| {
                let tl = tl.into_inner();
                Tls {
                    ca_file: absolute(ck, tl.ca_file, "tls.ca-file").unwrap_or_default(),
                    client_cert: tl.client_cert.and_then(|c| absolute(ck, c, "tls.client-cert")),
                    client_key: tl.client_key.and_then(|c| absolute(ck, c, "tls.client-key")),
                    server_name: tl.server_name.map(Spanned::into_inner),
                }
            });
            if let Some(tl) = &tls {
                if tl.client_cert.is_some() != tl.client_key.is_some() {
                    ck.problem(origin_offset(&origin, ck), "tls.client-cert and tls.client-key go together");
                }
            }
            let port = match &s.port {
                Some(p) => ranged(ck, p, "tacacs server port", 1, 65_535).unwrap_or(49) as u16,
                None if tls.is_some() => 300,
                None => 49,
            };
            let timeout = s
                .timeout_ms
                .as_ref()
                .and_then(|v| ranged(ck, v, "tacacs server timeout-ms", 50, 60_000))
                .map_or(std::time::Duration::from_secs(2), |n| std::time::Duration::from_millis(n as u64));
            let key_file = s.key_file.and_then(|k| absolute(ck, k, "tacacs server key-file"));
            t.servers.push(Server { host, port, timeout, key_file, tls, origin });
        }
    }
}

/// The byte offset of an already computed location is not kept; problems found after the
/// fact are reported at the start of the server's table.
fn origin_offset(origin: &Location, ck: &Checker<'_>) -> usize {
    let mut offset = 0;
    for (i, line) in ck.source.text.split_inclusive('\n').enumerate() {
        if i + 1 == origin.line {
            break;
        }
        offset += line.len();
    }
    offset
}

/// Directories that must never be replaced by an empty tmpfs.
const UNPRIVATIZABLE: &[&str] =
    &["/", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/run"];

fn check_isolation(raw: Spanned<RawIsolation>, ck: &mut Checker<'_>) -> Option<isolation::Isolation> {
    use isolation::{parse_cpu, parse_size, Blocked, Landlock, SyscallSet};
    let start = raw.span().start;
    let origin = ck.at(start);
    let r = raw.into_inner();
    let before = ck.problems.len();
    let file_base = ck.source.name.rsplit('/').next().unwrap_or(&ck.source.name).to_owned();
    let name = match r.name {
        Some(n) => {
            if !valid_rule_name(n.get_ref()) {
                ck.problem(n.span().start, format!("isolation name {:?} must be 1-64 letters, digits, `.`, `_`, `:`, `-`", n.get_ref()));
            }
            n.into_inner()
        }
        None => format!("isolation-{file_base}:{}", origin.line),
    };
    let mut block = Vec::new();
    if let Some(list) = r.block_syscalls {
        for item in list.into_inner() {
            let v = item.get_ref();
            if let Some(set) = SyscallSet::parse(v) {
                block.push(Blocked::Set(set));
            } else if isolation::NOT_BLOCKABLE.contains(&v.as_str()) {
                ck.problem(
                    item.span().start,
                    format!("{v:?} cannot be blocked: the session filter itself handles it (use the policy's rules for execs)"),
                );
            } else if !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                block.push(Blocked::Syscall(v.clone()));
            } else {
                ck.problem(
                    item.span().start,
                    format!("{v:?} is neither a system call name nor one of the sets {}", SyscallSet::names().join(", ")),
                );
            }
        }
    }
    let memory_max = r.memory_max.and_then(|v| {
        let parsed = match v.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).ok().filter(|&n| n > 0),
            toml::Value::String(s) => parse_size(s),
            _ => None,
        };
        match parsed {
            Some(n) if n >= 1 << 20 => Some(n),
            _ => {
                ck.problem(v.span().start, "memory-max must be a size of at least 1M (bytes, or with K, M, G, T)");
                None
            }
        }
    });
    let pids_max = r.pids_max.and_then(|v| ranged(ck, &v, "pids-max", 1, 4_194_304)).map(|n| n as u64);
    let cpu_max = r.cpu_max.and_then(|v| {
        let p = parse_cpu(v.get_ref());
        if p.is_none() {
            ck.problem(v.span().start, "cpu-max must be a percentage of one CPU (\"50%\") or \"QUOTA PERIOD\" in microseconds");
        }
        p
    });
    let mut private_dirs = Vec::new();
    if let Some(list) = r.private_dirs {
        for d in list.into_inner() {
            let v = d.get_ref().trim_end_matches('/').to_owned();
            let canonical = v.starts_with('/') && !v.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..");
            if !canonical || UNPRIVATIZABLE.contains(&v.as_str()) || v.is_empty() {
                ck.problem(d.span().start, format!("private-dirs cannot hold {:?}: an absolute, canonical directory other than {}", d.get_ref(), UNPRIVATIZABLE.join(" ")));
            } else {
                private_dirs.push(v);
            }
        }
    }
    let landlock = r.landlock.map(|l| {
        let l = l.into_inner();
        let paths = |list: Option<Vec<Spanned<String>>>, ck: &mut Checker<'_>, what: &str| {
            list.map(|v| v.into_iter().filter_map(|p| absolute(ck, p, what)).collect::<Vec<_>>())
        };
        let ports = |list: Option<Vec<Spanned<i64>>>, ck: &mut Checker<'_>, what: &str| {
            list.map(|v| v.iter().filter_map(|p| ranged(ck, p, what, 1, 65_535)).map(|p| p as u16).collect::<Vec<_>>())
        };
        Landlock {
            read: paths(l.read, ck, "landlock.read"),
            write: paths(l.write, ck, "landlock.write"),
            execute: paths(l.execute, ck, "landlock.execute"),
            tcp_bind: ports(l.tcp_bind, ck, "landlock.tcp-bind"),
            tcp_connect: ports(l.tcp_connect, ck, "landlock.tcp-connect"),
        }
    });
    let users = ck.names(r.users, "users");
    let groups = ck.names(r.groups, "groups");
    let services = ck.names(r.services, "services");
    if ck.problems.len() != before {
        return None;
    }
    Some(isolation::Isolation {
        name,
        origin,
        users,
        groups,
        services,
        block,
        memory_max,
        pids_max,
        cpu_max,
        private_dirs,
        landlock,
    })
}

impl Config {
    /// The isolation that applies to a session of `user` (member of `groups`) via `service`.
    pub fn layers_for(&self, user: &str, groups: &[String], service: &str) -> Layers {
        isolation::layers_for(&self.isolation, user, groups, service)
    }
}

fn check_rule(raw: Spanned<RawRule>, ck: &mut Checker<'_>, canon: Canonicalize<'_>) -> Option<Rule> {
    let start = raw.span().start;
    let origin = ck.at(start);
    let r = raw.into_inner();
    let before = ck.problems.len();
    let file_base = ck.source.name.rsplit('/').next().unwrap_or(&ck.source.name).to_owned();
    let name = match r.name {
        Some(n) => {
            if !valid_rule_name(n.get_ref()) {
                ck.problem(
                    n.span().start,
                    format!(
                        "rule name {:?} must be 1-64 characters of letters, digits, `.`, `_`, `:`, `-`",
                        n.get_ref()
                    ),
                );
            }
            n.into_inner()
        }
        None => format!("{file_base}:{}", origin.line),
    };
    let action = match &r.action {
        Some(a) => ck.choice(a, "action", Action::parse, "\"allow\", \"deny\", \"authorize\""),
        None => {
            ck.problem(start, format!("rule {name:?} has no action (allow, deny or authorize)"));
            None
        }
    };
    if let (Some(Action::Allow), Some(m)) = (action, &r.message) {
        ck.problem(m.span().start, "a message is only shown when a rule denies; remove it");
    }
    let exe = r.exe.map(|e| {
        let (offset, list) = raw::exe_patterns(e);
        if list.is_empty() {
            ck.problem(offset, "`exe` is an empty list, which matches nothing; remove the key to match any");
        }
        list.into_iter()
            .filter_map(|p| match ExePattern::new(p.get_ref(), canon) {
                Ok(pat) => Some(pat),
                Err(msg) => {
                    ck.problem(p.span().start, msg);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let args = r.args.and_then(|a| {
        let offset = a.span().start;
        let written: Vec<String> = a.into_inner().into_iter().map(Spanned::into_inner).collect();
        ArgsPattern::new(&written).map_err(|m| ck.problem(offset, m)).ok()
    });
    let names = r.names.and_then(|a| {
        let offset = a.span().start;
        let written: Vec<String> = a.into_inner().into_iter().map(Spanned::into_inner).collect();
        if written.is_empty() {
            ck.problem(offset, "`names` is an empty list, which matches nothing; remove the key to match any");
            return None;
        }
        NamePattern::new(&written).map_err(|m| ck.problem(offset, m)).ok()
    });
    let any_arg = r.any_arg.and_then(|a| {
        let offset = a.span().start;
        let written: Vec<String> = a.into_inner().into_iter().map(Spanned::into_inner).collect();
        if written.is_empty() {
            ck.problem(offset, "`any-arg` is an empty list, which matches nothing; remove the key to match any");
            return None;
        }
        AnyArg::new(&written).map_err(|m| ck.problem(offset, m)).ok()
    });
    if let (Some(Action::Deny), Some(c)) = (action, &r.cmdline) {
        ck.problem(
            c.span().start,
            "`cmdline` cannot refuse: a regular expression over a command line is walked around by option order, quoting and aliases; refuse with `exe` (a link such as /usr/sbin/reboot names a mode of its target) and `any-arg`, or allow only what is needed",
        );
    }
    let cmdline = r.cmdline.and_then(|c| {
        regex::bytes::RegexBuilder::new(c.get_ref())
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                ck.problem(c.span().start, format!("invalid cmdline regex: {first}"));
            })
            .ok()
    });
    let users = ck.names(r.users, "users");
    let groups = ck.names(r.groups, "groups");
    let target_users = ck.names(r.target_users, "target-users");
    let services = ck.names(r.services, "services");
    if ck.problems.len() != before {
        return None;
    }
    Some(Rule {
        name,
        origin,
        users,
        groups,
        target_users,
        services,
        exe,
        names,
        args,
        any_arg,
        cmdline,
        action: action?,
        message: r.message.map(Spanned::into_inner),
    })
}

#[cfg(test)]
mod tests;
