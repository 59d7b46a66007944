//! Deciding one exec plan: the file named and every interpreter of its `#!` chain. Shared by
//! the supervisor and by `session-wrapper explain`, so that both always agree.

use session_wrapper_config::{Action, Config, Decision, Request};

use crate::exefile::Loaders;
use crate::resolve::{ExecPlan, Resolved};
use crate::users::LoginUser;

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
    /// Whether another process traces the caller.
    pub traced: bool,
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
    exe: &Resolved,
    argv: &[Vec<u8>],
) -> Decision {
    config.policy.decide(&Request {
        user: &who.user.name,
        groups: &who.user.groups,
        target_user: who.target_user,
        service: who.service,
        exe: &exe.real_path,
        kind: exe.kind,
        dynamic_loader: loaders.contains(exe.dev, exe.ino),
        loader_env: who.loader_env,
        traced: who.traced,
        argv,
    })
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
    let named = decide_file(config, loaders, who, &plan.named, argv);
    if named.action == Action::Deny {
        return (named, DecidedOn::Named);
    }
    for (i, interp) in plan.interpreters.iter().enumerate() {
        let d = decide_file(config, loaders, who, &interp.file, &plan.final_argv);
        if d.action == Action::Deny {
            return (d, DecidedOn::Interpreter(i));
        }
    }
    (named, DecidedOn::Named)
}
