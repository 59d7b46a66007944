//! The compiled policy: guards, ordered rules (first match wins) and a default action.
//! Evaluation is pure: the supervisor gathers the facts of an exec into a [`Request`] and
//! acts on the [`Decision`].

use std::borrow::Cow;
use std::cell::OnceCell;

use regex::bytes::Regex;

use crate::pattern::{invoked_name, last_component, AnyArg, ArgsPattern, Breadth, ExePattern, NamePattern, Program};
use crate::Location;

/// What a rule, a guard or the default does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let it run.
    Allow,
    /// Refuse it: `execve` fails and the user is told.
    Deny,
    /// Ask the remote authorization backend (TACACS+).
    Authorize,
}

impl Action {
    /// The name used in the configuration and in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Authorize => "authorize",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            "authorize" => Some(Action::Authorize),
            _ => None,
        }
    }
}

/// What kind of file the executable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExeKind {
    /// A file with a name in the filesystem.
    File,
    /// An anonymous memory file (`memfd_create`).
    Memfd,
    /// A file that has been unlinked (only reachable through a descriptor).
    Deleted,
    /// A file whose path names another file, or none, in the session's mount namespace: the
    /// exec comes from a mount namespace of its own (`unshare -m`, a container) where
    /// something is mounted over the path. Its path cannot be trusted to name it.
    Foreign,
}

/// The exec-level guards, checked before the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    /// Exec of a memfd.
    Memfd,
    /// Exec of a deleted file.
    Deleted,
    /// The dynamic loader run as a program (`ld.so /path/prog`).
    DynamicLoader,
    /// A loader variable such as `LD_PRELOAD` in the environment.
    LoaderEnv,
    /// Exec by a process traced by another one: cannot be verified.
    Traced,
    /// Exec of a file whose path names another file in the session's mount namespace.
    ForeignMount,
    /// Exec by a process in a user namespace other than the session's.
    UserNamespaces,
    /// A library search path (`LD_LIBRARY_PATH`, `GCONV_PATH`) naming a directory that
    /// someone other than root can change.
    LibraryPath,
}

impl Guard {
    /// Every guard that refuses an exec, in the order [`Policy::decide`] checks them.
    pub const ALL: [Guard; 8] = [
        Guard::Memfd,
        Guard::Deleted,
        Guard::ForeignMount,
        Guard::DynamicLoader,
        Guard::LoaderEnv,
        Guard::UserNamespaces,
        Guard::LibraryPath,
        Guard::Traced,
    ];

    /// The guard whose key is `s` ([`Guard::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Guard::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The guard's key in the `[guards]` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Memfd => "memfd",
            Guard::Deleted => "deleted",
            Guard::DynamicLoader => "dynamic-loader",
            Guard::ForeignMount => "foreign-mount",
            Guard::LoaderEnv => "loader-env",
            Guard::Traced => "traced",
            Guard::UserNamespaces => "user-namespaces",
            Guard::LibraryPath => "library-path",
        }
    }
}

/// Allow or deny, for a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardAction {
    /// The guard does not refuse.
    Allow,
    /// The guard refuses.
    Deny,
}

/// The `[guards]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guards {
    /// Exec of a memfd.
    pub memfd: GuardAction,
    /// Exec of a deleted file.
    pub deleted: GuardAction,
    /// The dynamic loader as a program.
    pub dynamic_loader: GuardAction,
    /// Variables whose presence in the environment refuses the exec.
    pub loader_env: Vec<String>,
    /// Exec while traced by another process.
    pub traced: GuardAction,
    /// `io_uring_setup` in the session (its work bypasses seccomp).
    pub io_uring: GuardAction,
    /// Exec of a file whose path names another file in the session's mount namespace.
    pub foreign_mount: GuardAction,
    /// User namespaces in the session: `Deny` refuses creating or joining one (in the
    /// session's seccomp filter) and refuses any exec from a process in a user namespace other
    /// than the session's.
    pub user_namespaces: GuardAction,
    /// `Deny` refuses an exec whose `LD_LIBRARY_PATH` or `GCONV_PATH` names a directory that
    /// someone other than root can change (or the working directory, or a relative path).
    pub library_path: GuardAction,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            memfd: GuardAction::Deny,
            deleted: GuardAction::Deny,
            dynamic_loader: GuardAction::Deny,
            loader_env: vec!["LD_PRELOAD".into(), "LD_AUDIT".into()],
            traced: GuardAction::Deny,
            io_uring: GuardAction::Deny,
            foreign_mount: GuardAction::Deny,
            user_namespaces: GuardAction::Deny,
            library_path: GuardAction::Deny,
        }
    }
}

/// One rule. All the conditions it has must hold; within a list, any element may match.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name, as logged (`rule=`). Defaults to `file:line`.
    pub name: String,
    /// Where the rule is written.
    pub origin: Location,
    // The conditions, `None` when the rule does not have the key: compiled in `check/rule.rs`
    // (see "Adding a rule condition" there), tested in `Rule::matches`.
    pub(crate) users: Option<Vec<String>>,
    pub(crate) groups: Option<Vec<String>>,
    pub(crate) target_users: Option<Vec<String>>,
    pub(crate) services: Option<Vec<String>>,
    pub(crate) exe: Option<Vec<ExePattern>>,
    pub(crate) names: Option<NamePattern>,
    pub(crate) args: Option<ArgsPattern>,
    pub(crate) any_arg: Option<AnyArg>,
    pub(crate) cmdline: Option<Regex>,
    /// What the rule does.
    pub action: Action,
    /// The message shown to the user when this rule denies.
    pub message: Option<String>,
}

impl Rule {
    /// How broadly this rule's executable patterns match: a rule that allows takes a program
    /// only under the names it gives; one that denies, or asks the authorization backend,
    /// takes it under any name (see [`crate::pattern`]). A made-up name can only lose a
    /// program its allowance, never escape a restriction.
    pub fn breadth(&self) -> Breadth {
        if self.action == Action::Allow {
            Breadth::Narrow
        } else {
            Breadth::Broad
        }
    }

    fn matches(&self, req: &Request<'_>, cmdlines: &OnceCell<CommandLines>) -> bool {
        fn named(list: &Option<Vec<String>>, name: &str) -> bool {
            list.as_ref().is_none_or(|l| l.iter().any(|n| n == name))
        }
        let args = req.argv.get(1..).unwrap_or(&[]);
        let program = req.program();
        named(&self.users, req.user)
            && self.groups.as_ref().is_none_or(|l| l.iter().any(|g| req.groups.contains(g)))
            && named(&self.target_users, req.target_user)
            && named(&self.services, req.service)
            && self.exe.as_ref().is_none_or(|l| l.iter().any(|p| p.matches(&program, self.breadth())))
            && self.names.as_ref().is_none_or(|n| n.matches(program.name))
            && self.args.as_ref().is_none_or(|a| a.matches(args))
            && self.any_arg.as_ref().is_none_or(|a| a.matches(args))
            && self.cmdline.as_ref().is_none_or(|re| {
                let (invoked, real) = cmdlines.get_or_init(|| command_lines(req));
                invoked.iter().any(|c| re.is_match(c))
                    || (self.breadth() == Breadth::Broad && re.is_match(real))
            })
    }

    /// The executable patterns of this rule, as written (for explanations).
    pub fn exe_patterns(&self) -> impl Iterator<Item = &ExePattern> {
        self.exe.iter().flatten()
    }

    /// Whether every exec this rule matches is matched by `earlier` too: placed after it, this
    /// rule never decides anything (`check-config` warns). Conservative: `false` whenever it
    /// cannot be shown from the conditions as written (a list must be contained in the
    /// earlier rule's; a glob, argument or name condition must be the same; a program must be
    /// named by the same pattern, or be a file the earlier rule's pattern takes).
    pub fn covered_by(&self, earlier: &Rule) -> bool {
        fn list(later: &Option<Vec<String>>, earlier: &Option<Vec<String>>) -> bool {
            match (later, earlier) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(l), Some(e)) => l.iter().all(|x| e.contains(x)),
            }
        }
        fn same<T: std::fmt::Debug>(later: &Option<T>, earlier: &Option<T>) -> bool {
            match (later, earlier) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(l), Some(e)) => format!("{l:?}") == format!("{e:?}"),
            }
        }
        let regex = |r: &Option<Regex>| r.as_ref().map(|r| r.as_str().to_owned());
        list(&self.users, &earlier.users)
            && list(&self.groups, &earlier.groups)
            && list(&self.target_users, &earlier.target_users)
            && list(&self.services, &earlier.services)
            && same(&self.names, &earlier.names)
            && same(&self.args, &earlier.args)
            && same(&self.any_arg, &earlier.any_arg)
            && same(&regex(&self.cmdline), &regex(&earlier.cmdline))
            && self.exe_covered_by(earlier)
    }

    fn exe_covered_by(&self, earlier: &Rule) -> bool {
        let Some(theirs) = &earlier.exe else { return true };
        let Some(ours) = &self.exe else { return false };
        // A rule that takes programs under any name is wider than one that takes them only
        // under their own.
        if earlier.breadth() == Breadth::Narrow && self.breadth() == Breadth::Broad {
            return false;
        }
        ours.iter().all(|p| {
            theirs.iter().any(|t| t.written() == p.written())
                || p.file().is_some_and(|(real, link)| {
                    // A file under its own name (and, for a broad rule, under a made-up one):
                    // exactly the programs such a pattern takes.
                    let names: &[&[u8]] = match self.breadth() {
                        Breadth::Narrow => &[last_component(real)],
                        Breadth::Broad => &[last_component(real), b"\0made-up"],
                    };
                    !link
                        && names.iter().all(|name| {
                            let program = Program { exe: real, name, links: &[] };
                            theirs.iter().any(|t| t.matches(&program, earlier.breadth()))
                        })
                })
        })
    }
}

/// The facts of one exec that the policy decides on.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The login user of the session (the authorization identity).
    pub user: &'a str,
    /// The login user's groups, primary group included.
    pub groups: &'a [String],
    /// The effective user at the exec, by name, or `#uid` when it has none.
    pub target_user: &'a str,
    /// The PAM service of the session (`sshd`, `su`, ...).
    pub service: &'a str,
    /// The resolved real path of the executable, as bytes.
    pub exe: &'a [u8],
    /// Links in directories only root can change, named as `argv[0]`'s last component, that
    /// lead to `exe` (`/usr/sbin/reboot` for `systemctl` invoked as `reboot`). See
    /// [`crate::pattern::Program`].
    pub links: &'a [Vec<u8>],
    /// What kind of file it is.
    pub kind: ExeKind,
    /// Whether the executable is the dynamic loader.
    pub dynamic_loader: bool,
    /// The first variable of `[guards] loader-env` found in the environment, if any.
    pub loader_env: Option<&'a str>,
    /// Whether the process is traced by another process.
    pub traced: bool,
    /// Whether the process is in a user namespace other than the session's.
    pub foreign_user_namespace: bool,
    /// A library search path entry someone other than root can change, as `NAME=entry`.
    pub untrusted_library_path: Option<&'a str>,
    /// The argument vector, `argv[0]` included.
    pub argv: &'a [Vec<u8>],
}

impl Request<'_> {
    /// The name the program is invoked as: `argv[0]`'s last component.
    pub fn name(&self) -> &[u8] {
        invoked_name(self.argv.first().map_or(&[][..], Vec::as_slice))
    }

    /// What patterns match on.
    pub fn program(&self) -> Program<'_> {
        Program { exe: self.exe, name: self.name(), links: self.links }
    }

    /// The guards whose facts hold for this exec, whether or not the policy's guards refuse
    /// them: what a decision line records (`facts=`) so that `session-wrapper replay` can
    /// decide the exec again under another policy.
    pub fn facts(&self) -> Vec<Guard> {
        Guard::ALL
            .into_iter()
            .filter(|g| match g {
                Guard::Memfd => self.kind == ExeKind::Memfd,
                Guard::Deleted => self.kind == ExeKind::Deleted,
                Guard::ForeignMount => self.kind == ExeKind::Foreign,
                Guard::DynamicLoader => self.dynamic_loader,
                Guard::LoaderEnv => self.loader_env.is_some(),
                Guard::UserNamespaces => self.foreign_user_namespace,
                Guard::LibraryPath => self.untrusted_library_path.is_some(),
                Guard::Traced => self.traced,
            })
            .collect()
    }
}

/// The command lines a `cmdline` regex is matched against: those starting with a path the
/// program is invoked through, and the one starting with its real path (which only a rule that
/// denies or authorizes uses: under a made-up name, a program is not what an allowance named).
type CommandLines = (Vec<Vec<u8>>, Vec<u8>);

fn command_lines(req: &Request<'_>) -> CommandLines {
    let program = req.program();
    let invoked = program.invoked_paths().map(|path| command_line(path, req)).collect();
    (invoked, command_line(req.exe, req))
}

/// A command line: `path`, then each argument, separated by one space; an argument that holds
/// a space, a quote, a backslash or a control character is in single quotes (`'` written
/// `'\\''`), so that argument boundaries cannot be faked. Never `argv[0]`, which the caller
/// writes.
fn command_line(path: &[u8], req: &Request<'_>) -> Vec<u8> {
    let mut line = path.to_vec();
    for a in req.argv.get(1..).unwrap_or(&[]) {
        line.push(b' ');
        if a.is_empty() || a.iter().any(|&b| b <= b' ' || b == b'\'' || b == b'"' || b == b'\\' || b == 0x7f) {
            line.push(b'\'');
            for &b in a {
                if b == b'\'' {
                    line.extend_from_slice(b"'\\''");
                } else {
                    line.push(b);
                }
            }
            line.push(b'\'');
        } else {
            line.extend_from_slice(a);
        }
    }
    line
}

/// Which part of the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The rule with this index in [`Policy::rules`].
    Rule(usize),
    /// No rule matched.
    Default,
    /// A guard refused.
    Guard(Guard),
}

/// The outcome of evaluating a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Who decided.
    pub by: DecidedBy,
    /// The message for the user when the action is deny.
    pub message: Option<String>,
}

/// Guards, ordered rules and the default action.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The exec-level guards.
    pub guards: Guards,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
    /// What happens when no rule matches.
    pub default_action: Action,
    /// The message when the default denies.
    pub default_message: Option<String>,
    /// Rules that decide when `authorize` gets no answer (no server reachable, or ERROR).
    pub fallback: Vec<Rule>,
}

impl Policy {
    /// Decides one exec: guards first, then the first matching rule, then the default.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        if let Some(guard) = self.guard_refusal(req) {
            return Decision { action: Action::Deny, by: DecidedBy::Guard(guard), message: None };
        }
        let cmdlines = OnceCell::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(req, &cmdlines) {
                return Decision {
                    action: rule.action,
                    by: DecidedBy::Rule(i),
                    message: rule.message.clone(),
                };
            }
        }
        Decision {
            action: self.default_action,
            by: DecidedBy::Default,
            message: self.default_message.clone(),
        }
    }

    /// The first fallback rule that matches, for an `authorize` nobody answered.
    pub fn decide_fallback(&self, req: &Request<'_>) -> Option<(usize, Decision)> {
        let cmdlines = OnceCell::new();
        self.fallback.iter().enumerate().find(|(_, r)| r.matches(req, &cmdlines)).map(|(i, r)| {
            (i, Decision { action: r.action, by: DecidedBy::Rule(i), message: r.message.clone() })
        })
    }

    fn guard_refusal(&self, req: &Request<'_>) -> Option<Guard> {
        let g = &self.guards;
        let refused = |action: GuardAction, hit: bool| hit && action == GuardAction::Deny;
        if refused(g.memfd, req.kind == ExeKind::Memfd) {
            Some(Guard::Memfd)
        } else if refused(g.deleted, req.kind == ExeKind::Deleted) {
            Some(Guard::Deleted)
        } else if refused(g.foreign_mount, req.kind == ExeKind::Foreign) {
            Some(Guard::ForeignMount)
        } else if refused(g.dynamic_loader, req.dynamic_loader) {
            Some(Guard::DynamicLoader)
        } else if req.loader_env.is_some() {
            Some(Guard::LoaderEnv)
        } else if refused(g.user_namespaces, req.foreign_user_namespace) {
            Some(Guard::UserNamespaces)
        } else if refused(g.library_path, req.untrusted_library_path.is_some()) {
            Some(Guard::LibraryPath)
        } else if refused(g.traced, req.traced) {
            Some(Guard::Traced)
        } else {
            None
        }
    }

    /// The rules that can never match, each with the earlier rule that matches every exec it
    /// does: `(rule, earlier)`, indexes in [`Policy::rules`].
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        (0..self.rules.len())
            .filter_map(|i| (0..i).find(|&j| self.rules[i].covered_by(&self.rules[j])).map(|j| (i, j)))
            .collect()
    }

    /// Whether any rule (or fallback rule) has a `groups` condition: only then does a
    /// decision depend on the login user's groups.
    pub fn uses_groups(&self) -> bool {
        self.rules.iter().chain(&self.fallback).any(|r| r.groups.is_some())
    }

    /// The name of whoever decided, as logged in `rule=`.
    pub fn decider_name(&self, by: DecidedBy) -> Cow<'_, str> {
        match by {
            DecidedBy::Rule(i) => {
                Cow::Borrowed(self.rules.get(i).map_or("?", |r| r.name.as_str()))
            }
            DecidedBy::Default => Cow::Borrowed("default"),
            DecidedBy::Guard(g) => Cow::Owned(format!("guard:{}", g.as_str())),
        }
    }
}
