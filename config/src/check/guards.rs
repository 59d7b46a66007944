//! `[guards]`: the exec-level checks that come before the rules ([`crate::Guards`]).

use crate::raw::RawGuards;
use crate::{GuardAction, Guards};

use super::Checker;

fn guard_action(s: &str) -> Option<GuardAction> {
    match s {
        "allow" => Some(GuardAction::Allow),
        "deny" => Some(GuardAction::Deny),
        _ => None,
    }
}

/// `[guards]`: each guard is `allow` or `deny`; `loader-env` lists variable names.
pub(crate) fn apply_guards(guards: &mut Guards, raw: RawGuards, ck: &mut Checker<'_>) {
    let entries = [
        (raw.memfd, &mut guards.memfd, "guards.memfd"),
        (raw.deleted, &mut guards.deleted, "guards.deleted"),
        (raw.dynamic_loader, &mut guards.dynamic_loader, "guards.dynamic-loader"),
        (raw.traced, &mut guards.traced, "guards.traced"),
        (raw.io_uring, &mut guards.io_uring, "guards.io-uring"),
        (raw.foreign_mount, &mut guards.foreign_mount, "guards.foreign-mount"),
        (raw.user_namespaces, &mut guards.user_namespaces, "guards.user-namespaces"),
        (raw.library_path, &mut guards.library_path, "guards.library-path"),
    ];
    for (value, slot, key) in entries {
        if let Some(v) = value {
            if let Some(a) = ck.choice(&v, key, guard_action, "\"allow\", \"deny\"") {
                *slot = a;
            }
        }
    }
    if let Some(list) = raw.loader_env {
        guards.loader_env = list
            .into_inner()
            .into_iter()
            .map(|n| {
                let valid = !n.get_ref().is_empty()
                    && n.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid {
                    ck.problem(n.span().start, format!("invalid environment variable name {:?}", n.get_ref()));
                }
                n.into_inner()
            })
            .collect();
    }
}
