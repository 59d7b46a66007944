//! Deciding one exec plan: the file named and every interpreter of its `#!` chain. Shared by
//! the supervisor and by `session-wrapper explain`, so that both always agree.
//!
//! [`request`] is the one place where the facts of an exec become a policy
//! [`Request`]: a new rule condition needs a field there and nowhere else.

use session_wrapper_config::{Action, Config, Decision, ExeKind, Request};

use crate::sys::exefile::Loaders;
use crate::sys::resolve::{ExecPlan, Resolved};
use crate::sys::users::LoginUser;

/// Who runs the exec and under which circumstances.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The login user.
    pub user: &'a LoginUser,
    /// The session's PAM service.
    pub service: &'a str,
    /// The effective user at the exec, by name or `#uid`.
    pub target_user: &'a str,
    /// A loader variable found in the environment.
    pub loader_env: Option<&'a str>,
    /// A library search path entry that others than root can change.
    pub untrusted_library_path: Option<&'a str>,
    /// Whether another process traces the caller.
    pub traced: bool,
    /// Whether the caller is in a user namespace other than the session's.
    pub foreign_user_namespace: bool,
}

/// One file as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct File<'a> {
    /// Real path.
    pub path: &'a [u8],
    /// Device and inode.
    pub id: (u64, u64),
    /// File, memfd, deleted, foreign.
    pub kind: ExeKind,
    /// Links in root-only directories through which it is invoked under `argv[0]`'s name.
    pub links: &'a [Vec<u8>],
}

impl<'a> From<&'a Resolved> for File<'a> {
    fn from(r: &'a Resolved) -> Self {
        File { path: &r.real_path, id: (r.dev, r.ino), kind: r.kind, links: &r.links }
    }
}

/// The policy request for running `file` with `argv` as `who`.
pub fn request<'a>(
    loaders: &Loaders,
    who: &Subject<'a>,
    file: File<'a>,
    argv: &'a [Vec<u8>],
) -> Request<'a> {
    Request {
        user: &who.user.name,
        groups: &who.user.groups,
        target_user: who.target_user,
        service: who.service,
        exe: file.path,
        links: file.links,
        kind: file.kind,
        dynamic_loader: loaders.contains(file.id.0, file.id.1),
        loader_env: who.loader_env,
        traced: who.traced,
        foreign_user_namespace: who.foreign_user_namespace,
        untrusted_library_path: who.untrusted_library_path,
        argv,
    }
}

/// Which file of the plan the decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedOn {
    /// The file the exec names.
    Named,
    /// The interpreter at this depth of the `#!` chain.
    Interpreter(usize),
}

/// Decides one file with one argument vector.
pub fn decide_file(
    config: &Config,
    loaders: &Loaders,
    who: &Subject<'_>,
    file: File<'_>,
    argv: &[Vec<u8>],
) -> Decision {
    config.policy.decide(&request(loaders, who, file, argv))
}

/// Decides a plan: the script (or program) named is what is authorized; an interpreter that
/// the policy denies refuses the exec too, so a `#!` line cannot reach a forbidden program.
pub fn decide_plan(
    config: &Config,
    loaders: &Loaders,
    who: &Subject<'_>,
    plan: &ExecPlan,
    argv: &[Vec<u8>],
) -> (Decision, DecidedOn) {
    let named = decide_file(config, loaders, who, (&plan.named).into(), argv);
    if named.action == Action::Deny {
        return (named, DecidedOn::Named);
    }
    for (i, interp) in plan.interpreters.iter().enumerate() {
        let d = decide_file(config, loaders, who, (&interp.file).into(), &interp.argv);
        if d.action == Action::Deny {
            return (d, DecidedOn::Interpreter(i));
        }
    }
    (named, DecidedOn::Named)
}
