//! The top-level keys, `[scope]` and `[log]`: each key set in a source replaces the value of
//! the sources before it.

use crate::raw::{RawFile, RawLog, RawScope};
use crate::{Action, AuditRecords, Config, DenyErrno, FailPolicy, LogFailure, LogFormat, LogSettings, Mode, Scope, Verify};

use super::Checker;

/// `mode`, `fail-policy`, `log-failure`, `deny-errno`, `default` and `default-message`.
pub(crate) fn apply_top_level(config: &mut Config, raw: &RawFile, ck: &mut Checker<'_>) {
    if let Some(v) = &raw.mode {
        if let Some(m) = ck.choice(v, "mode", Mode::parse, "\"enforce\", \"audit\"") {
            config.mode = m;
        }
    }
    if let Some(v) = &raw.fail_policy {
        if let Some(f) = ck.choice(v, "fail-policy", FailPolicy::parse, "\"open\", \"closed\"") {
            config.fail_policy = f;
        }
    }
    if let Some(v) = &raw.log_failure {
        if let Some(f) = ck.choice(v, "log-failure", LogFailure::parse, "\"keep\", \"refuse\"") {
            config.log_failure = f;
        }
    }
    if let Some(v) = &raw.verify {
        if let Some(f) = ck.choice(v, "verify", Verify::parse, "\"auto\", \"bpf\", \"ptrace\"") {
            config.verify = f;
        }
    }
    if let Some(v) = &raw.deny_errno {
        let allowed = "\"EACCES\", \"EPERM\", \"ENOENT\", \"ENOEXEC\"";
        if let Some(e) = ck.choice(v, "deny-errno", DenyErrno::parse, allowed) {
            config.deny_errno = e;
        }
    }
    if let Some(v) = &raw.default {
        let allowed = "\"allow\", \"deny\", \"authorize\"";
        if let Some(a) = ck.choice(v, "default", Action::parse, allowed) {
            config.policy.default_action = a;
        }
    }
    if let Some(m) = &raw.default_message {
        config.policy.default_message = Some(m.clone());
    }
}

/// `[scope]`. Unlike elsewhere, an empty list is meaningful here: it resets the list of an
/// earlier source.
pub(crate) fn apply_scope(scope: &mut Scope, raw: RawScope, ck: &mut Checker<'_>) {
    let lists = [
        (raw.users, &mut scope.users, "users"),
        (raw.groups, &mut scope.groups, "groups"),
        (raw.services, &mut scope.services, "services"),
        (raw.exempt_users, &mut scope.exempt_users, "exempt-users"),
        (raw.exempt_groups, &mut scope.exempt_groups, "exempt-groups"),
    ];
    for (value, slot, key) in lists {
        if let Some(v) = value {
            if v.get_ref().is_empty() {
                slot.clear();
            } else if let Some(names) = ck.names(Some(v), key) {
                *slot = names;
            }
        }
    }
}

/// `[log]`.
pub(crate) fn apply_log(log: &mut LogSettings, raw: RawLog, ck: &mut Checker<'_>) {
    // The socket and the spool directory are plain strings without a span: their problems are
    // reported at the start of the file.
    if let Some(s) = raw.socket {
        if !s.starts_with('/') {
            ck.problem(0, format!("log.socket must be an absolute path, not {s:?}"));
        }
        log.socket = s;
    }
    if let Some(d) = raw.spool_dir {
        if !d.starts_with('/') {
            ck.problem(0, format!("log.spool-dir must be an absolute path, not {d:?}"));
        }
        log.spool_dir = d;
    }
    if let Some(v) = &raw.format {
        let allowed = "\"auto\", \"rfc3164\", \"rfc5424\", \"journal\"";
        if let Some(f) = ck.choice(v, "log.format", LogFormat::parse, allowed) {
            log.format = f;
        }
    }
    if let Some(v) = &raw.audit {
        if let Some(a) = ck.choice(v, "log.audit", AuditRecords::parse, "\"auto\", \"on\", \"off\"") {
            log.audit = a;
        }
    }
    if let Some(n) = raw.argv_max {
        match usize::try_from(*n.get_ref()) {
            Ok(v) if (64..=65536).contains(&v) => log.argv_max = v,
            _ => ck.problem(n.span().start, "log.argv-max must be between 64 and 65536"),
        }
    }
}
