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
//!
//! # Layout
//! Written, checked, compiled: each table of the file goes through the same three stages.
//! - `raw.rs`: the file as written, as serde reads it (every key optional, so that a drop-in
//!   sets only what it changes; unknown keys refused).
//! - `check/`: the semantic checks, one module per part of the file (the top-level keys,
//!   `[scope]` and `[log]` in `settings`; `guards`; `tacacs`; `isolation`; `rule`), each
//!   problem reported with its file, line and column ([`ConfigError`]).
//! - The checked values: [`Policy`] with its [`Guards`] and [`Rule`]s (`policy.rs`, which also
//!   decides an exec), the patterns rules match with (`pattern.rs`, [`PatternError`]), the
//!   settings ([`Mode`], [`Scope`], [`LogSettings`], ...), [`tacacs`] and [`isolation`].
//!
//! This file holds [`Config`] and the merge of the sources. To add a rule condition, see the
//! paragraph "Adding a rule condition" of `check/rule.rs`: the key in `raw.rs`, its compiling
//! in `check/rule.rs`, its matching in `policy.rs`.

mod check;
mod error;
mod glob;
pub mod isolation;
mod pattern;
mod policy;
mod raw;
mod settings;
pub mod tacacs;
pub mod text;

use std::collections::HashSet;

use check::Checker;
pub use error::{ConfigError, Location, Problem};
pub use isolation::{Blocked, Isolation, Layers, SyscallSet};
pub use pattern::{
    invoked_name, AnyArg, ArgsPattern, Breadth, Canonicalize, ExePattern, NamePattern, PatternError, Program,
};
pub use policy::{
    Action, DecidedBy, Decision, ExeKind, Guard, GuardAction, Guards, Policy, Request, Rule,
};
use raw::RawFile;
pub use settings::{AuditRecords, DenyErrno, FailPolicy, LogFailure, LogFormat, LogSettings, Mode, Scope, ScopeVerdict, Verify};
pub use tacacs::{Server, Tacacs, Tls};

/// The built-in default configuration: enforce mode, no rules, everything allowed by default
/// (the guards stay on; the package's example policy refuses the temporary directories). It
/// lets every login shell start, so a first install cannot lock anyone out.
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

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// enforce or audit.
    pub mode: Mode,
    /// What happens when a decision cannot be made.
    pub fail_policy: FailPolicy,
    /// What happens while decision lines cannot be delivered to syslog.
    pub log_failure: LogFailure,
    /// How what an allowed exec loaded is checked.
    pub verify: Verify,
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

/// The checked rules of one source, kept apart until every source is read: the rules of later
/// sources are checked first.
struct SourceRules {
    rules: Vec<Rule>,
    fallback: Vec<Rule>,
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
        let mut config = Config::defaults(sources);
        let mut rules_by_source = Vec::with_capacity(sources.len());
        for source in sources {
            let mut ck = Checker::new(source, &mut problems);
            if let Some(raw) = ck.read() {
                rules_by_source.push(config.apply(raw, &mut ck, canonicalize));
            }
        }
        config.merge_rules(rules_by_source);
        config.check_tacacs(&mut problems);
        config.check_unique_names(&mut problems);
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

    /// The isolation that applies to a session of `user` (member of `groups`) via `service`.
    pub fn layers_for(&self, user: &str, groups: &[String], service: &str) -> Layers {
        isolation::layers_for(&self.isolation, user, groups, service)
    }

    /// What holds before any source is read: enforce, fail closed, deny by default.
    fn defaults(sources: &[Source]) -> Self {
        Config {
            mode: Mode::Enforce,
            fail_policy: FailPolicy::Closed,
            log_failure: LogFailure::Keep,
            verify: Verify::Auto,
            deny_errno: DenyErrno::DEFAULT,
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
        }
    }

    /// Applies one source over `self`, table by table in the order of this function, and
    /// returns its rules and fallback rules, checked. Settings replace those of earlier
    /// sources; isolation blocks are added.
    fn apply(&mut self, raw: RawFile, ck: &mut Checker<'_>, canon: Canonicalize<'_>) -> SourceRules {
        check::settings::apply_top_level(self, &raw, ck);
        if let Some(s) = raw.scope {
            check::settings::apply_scope(&mut self.scope, s, ck);
        }
        if let Some(g) = raw.guards {
            check::guards::apply_guards(&mut self.policy.guards, g, ck);
        }
        if let Some(l) = raw.log {
            check::settings::apply_log(&mut self.log, l, ck);
        }
        if let Some(t) = raw.tacacs {
            check::tacacs::apply_tacacs(&mut self.tacacs, t, ck);
        }
        for block in raw.isolation {
            self.isolation.extend(check::isolation::check_isolation(block, ck));
        }
        let rules = raw.rules.into_iter().filter_map(|r| check::rule::check_rule(r, ck, canon)).collect();
        let fallback = raw.fallback.into_iter().filter_map(|r| check::rule::check_fallback(r, ck, canon)).collect();
        SourceRules { rules, fallback }
    }

    /// Puts the rules of every source in the policy: later sources' rules are checked first.
    fn merge_rules(&mut self, rules_by_source: Vec<SourceRules>) {
        for source in rules_by_source.into_iter().rev() {
            self.policy.rules.extend(source.rules);
            self.policy.fallback.extend(source.fallback);
        }
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

    /// Checks that no two isolation blocks or rules (of any source) have the same name: a
    /// name is what log lines give.
    fn check_unique_names(&self, problems: &mut Vec<Problem>) {
        let mut seen = HashSet::new();
        for iso in &self.isolation {
            if !seen.insert(iso.name.as_str()) {
                problems.push(Problem {
                    location: iso.origin.clone(),
                    message: format!("isolation name {:?} is used more than once", iso.name),
                });
            }
        }
        for rule in self.policy.rules.iter().chain(&self.policy.fallback) {
            if !seen.insert(rule.name.as_str()) {
                problems.push(Problem {
                    location: rule.origin.clone(),
                    message: format!("rule name {:?} is used more than once", rule.name),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
