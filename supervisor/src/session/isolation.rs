//! Turning the `[[isolation]]` blocks that apply to a session into what enforces them:
//! - the blocklist goes into the session filter ([`crate::sys::filter`]);
//! - private directories and Landlock layers go to the process that opens the session, which
//!   applies them to itself ([`session_wrapper_protocol::isolate`]);
//! - resource limits go into the session's cgroups ([`crate::session::cgroup`]), or, under
//!   systemd-logind, to `pam_systemd` through the module.
//!
//! Used by the PAM supervisor and by `session-wrapper run`, so both enforce the same way.

use session_wrapper_config::{Blocked, Layers};
use session_wrapper_protocol::{Isolate, LandlockLayer};

use crate::log::{Event, Field, Kind, Severity, Value};
use crate::session::cgroup::{self, Limits, SessionCgroup};
use crate::sys::filter::FilterError;

/// Why a configured layer cannot be enforced: the caller's fail policy decides.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A blocked system call is unknown.
    #[error(transparent)]
    Blocked(#[from] FilterError),
    /// Resource limits are configured and their cgroups cannot be made.
    #[error("resource limits: {0}")]
    Limits(std::io::Error),
}

/// Where the session's limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsGo {
    /// Into cgroups the supervisor makes and removes.
    OwnCgroups,
    /// To pam_systemd (logind is running and the leader is not in a session scope yet).
    PamSystemd,
    /// Nowhere: logind is running and the session is already in its scope, so pam_systemd
    /// ran before this module.
    TooLate,
}

/// What a session's isolation needs, worked out before anything is applied.
#[derive(Debug, Default)]
pub struct Plan {
    /// The merged layers.
    pub layers: Layers,
    /// What the opening process applies to itself.
    pub isolate: Isolate,
    /// Resource limits.
    pub limits: Limits,
    /// Warnings for the log.
    pub warnings: Vec<Event>,
}

/// The opening process's part of the layers.
pub fn isolate_of(layers: &Layers) -> Isolate {
    let bytes = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.iter().map(|p| p.as_bytes().to_vec()).collect());
    Isolate {
        private_dirs: layers.private_dirs.iter().map(|d| d.as_bytes().to_vec()).collect(),
        landlock: layers
            .landlock
            .iter()
            .map(|l| LandlockLayer {
                read: bytes(&l.read),
                write: bytes(&l.write),
                execute: bytes(&l.execute),
                tcp_bind: l.tcp_bind.clone(),
                tcp_connect: l.tcp_connect.clone(),
            })
            .collect(),
        systemd_memory_max: None,
        systemd_tasks_max: None,
    }
}

/// What a nested session's own layers (`own`) add to the session's (`session`): blocked calls,
/// private directories and Landlock layers of blocks the session does not have. Limits are
/// the login session's: a nested session's smaller ones are reported, not applied.
pub fn extra_for_nested(session: &Layers, own: &Layers) -> Layers {
    let mut extra = Layers {
        names: own.names.iter().filter(|n| !session.names.contains(n)).cloned().collect(),
        block: own.block.iter().filter(|b| !session.block.contains(b)).cloned().collect(),
        private_dirs: own.private_dirs.iter().filter(|d| !session.private_dirs.contains(d)).cloned().collect(),
        landlock: own.landlock.iter().filter(|l| !session.landlock.contains(l)).cloned().collect(),
        ..Layers::default()
    };
    let smaller = |o: Option<u64>, s: Option<u64>| match (o, s) {
        (Some(o), Some(s)) if o < s => Some(o),
        (Some(o), None) => Some(o),
        _ => None,
    };
    extra.memory_max = smaller(own.memory_max, session.memory_max);
    extra.pids_max = smaller(own.pids_max, session.pids_max);
    extra.cpu_max = match (own.cpu_max, session.cpu_max) {
        (Some(o), None) => Some(o),
        (Some(o), Some(s)) if u128::from(o.quota) * u128::from(s.period) < u128::from(s.quota) * u128::from(o.period) => Some(o),
        _ => None,
    };
    if extra.block.is_empty() && extra.private_dirs.is_empty() && extra.landlock.is_empty() && !extra.has_limits() {
        extra.names.clear();
    }
    extra
}

/// A sealed memory file holding `reply`, to hand to a nested session.
///
/// # Errors
/// When the memory file cannot be made or written.
pub fn reply_fd(reply: &session_wrapper_protocol::Message) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    let fd = nix::sys::memfd::memfd_create(
        c"session-wrapper-nested",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC | nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(std::io::Error::from)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&reply.encode())?;
    let fd = std::os::fd::OwnedFd::from(f);
    // Nothing may change it once handed over.
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Where limits go for a session led by `leader`.
pub fn limits_go(leader: i32) -> LimitsGo {
    if !cgroup::logind_running() {
        LimitsGo::OwnCgroups
    } else if cgroup::in_logind_scope(leader) {
        LimitsGo::TooLate
    } else {
        LimitsGo::PamSystemd
    }
}

/// Plans the isolation of a session led by `leader`. `pam`: the module can hand limits to
/// pam_systemd (`session-wrapper run` cannot). Limits that cannot be applied under logind are
/// a warning, not a failure.
///
/// # Errors
/// [`PlanError`] when a configured layer cannot be enforced.
pub fn plan(layers: Layers, leader: i32, pam: bool) -> Result<Plan, PlanError> {
    crate::sys::filter::check_blocked(&layers.block)?;
    let mut isolate = isolate_of(&layers);
    let limits = Limits::of(&layers);
    let mut warnings = Vec::new();
    let not_applied = |limit: &str, reason: &str| {
        Event::new(Severity::Warning, Kind::LimitNotApplied).bare("limit", limit).text("reason", reason)
    };
    if limits.any() {
        match limits_go(leader) {
            LimitsGo::OwnCgroups => {}
            LimitsGo::PamSystemd if pam => {
                isolate.systemd_memory_max = limits.memory_max.map(|m| m.to_string().into_bytes());
                isolate.systemd_tasks_max = limits.pids_max.map(|m| m.to_string().into_bytes());
                if limits.cpu_max.is_some() {
                    warnings.push(not_applied(
                        "cpu-max",
                        "systemd-logind manages the session's cgroup and pam_systemd takes no CPU quota",
                    ));
                }
            }
            // Limits are resource hygiene, not a way around the supervisor: where they cannot
            // be applied the session goes on, supervised, and the log says so loudly.
            LimitsGo::PamSystemd => warnings.push(not_applied(
                "all",
                "systemd-logind manages cgroups here and only a PAM session can hand limits to pam_systemd (use systemd-run -p MemoryMax=... for one command)",
            )),
            LimitsGo::TooLate => warnings.push(not_applied(
                "all",
                "systemd-logind manages this session's cgroup and pam_systemd has already run: list pam_session_wrapper before pam_systemd in the session stack so that it can hand the limits over",
            )),
        }
    }
    Ok(Plan { layers, isolate, limits, warnings })
}

/// Whether pam_systemd took the limits `handed` to it, looked at when task `tid` of the
/// session makes its first exec (the session's PAM stack has run by then): a warning when the
/// task is in no logind session scope, as in a stack without pam_systemd after this module
/// (cron's and atd's `common-session-noninteractive`).
pub fn limits_check(handed: &[&str], tid: i32) -> Option<Event> {
    if handed.is_empty() {
        return None;
    }
    // A task gone (or a cgroup unreadable) proves nothing either way.
    let cgroup = cgroup::of(tid)?;
    if cgroup::is_session_scope(&cgroup) {
        return None;
    }
    Some(Event::new(Severity::Warning, Kind::LimitNotApplied).bare("limit", handed.join(",")).quoted("cgroup", cgroup.as_bytes()).text(
        "reason",
        "the limits were handed to pam_systemd, but the session is in no logind session scope: no pam_systemd runs after this module in its stack (as in cron's and atd's common-session-noninteractive)",
    ))
}

impl Plan {
    /// Makes the session's cgroups (when the supervisor owns them) and moves `leader` in.
    /// Without limits, a failure only costs exact membership (`Ok(None)` and a warning).
    ///
    /// # Errors
    /// [`PlanError::Limits`] when limits are configured and cannot be applied.
    pub fn cgroup(&mut self, id: &str, leader: i32, membership: bool) -> Result<Option<SessionCgroup>, PlanError> {
        let own_limits = match limits_go(leader) {
            LimitsGo::OwnCgroups => self.limits,
            // The scope is logind's: read it for membership, write nothing.
            LimitsGo::TooLate => Limits::default(),
            // Not in a scope yet: pam_systemd will make one; making ours would be undone.
            LimitsGo::PamSystemd => return Ok(None),
        };
        if !membership && !own_limits.any() {
            return Ok(None);
        }
        match SessionCgroup::for_session(id, leader, &own_limits) {
            Ok(cg) => Ok(Some(cg)),
            Err(e) if own_limits.any() => Err(PlanError::Limits(e)),
            Err(e) => {
                self.warnings.push(Event::new(Severity::Warning, Kind::NoCgroup).text("error", e));
                Ok(None)
            }
        }
    }

    /// What the session-start line says of the isolation: the blocks that apply and what they
    /// enforce, or `isolation=-`.
    pub fn describe(&self, cgroup: Option<&SessionCgroup>) -> Vec<Field> {
        let l = &self.layers;
        let field = |key, value: String| Field::new(key, Value::Bare(value));
        if l.is_empty() {
            return vec![field("isolation", "-".into())];
        }
        let mut fields = vec![field("isolation", l.names.join(","))];
        if !l.block.is_empty() {
            fields.push(field("blocked", l.block.iter().map(Blocked::name).collect::<Vec<_>>().join(",")));
        }
        let mut limits = Vec::new();
        if let Some(m) = l.memory_max {
            limits.push(format!("memory-max:{m}"));
        }
        if let Some(p) = l.pids_max {
            limits.push(format!("pids-max:{p}"));
        }
        if let Some(c) = l.cpu_max {
            limits.push(format!("cpu-max:{}/{}", c.quota, c.period));
        }
        if !limits.is_empty() {
            fields.push(field("limits", limits.join(",")));
            fields.push(field("cgroups", self.limits_by(cgroup)));
        }
        if !l.private_dirs.is_empty() {
            fields.push(field("private", l.private_dirs.join(",")));
        }
        if !l.landlock.is_empty() {
            fields.push(field("landlock_layers", l.landlock.len().to_string()));
        }
        fields
    }

    /// The limits handed to pam_systemd (`memory-max`, `pids-max`), when they were: whether
    /// pam_systemd really took them is known only once the session's stack has run (see
    /// [`limits_check`]).
    pub fn handed_to_pam_systemd(&self, cgroup: Option<&SessionCgroup>) -> Vec<&'static str> {
        if cgroup.is_some_and(|cg| !cg.limit_dirs().is_empty()) {
            return Vec::new();
        }
        let mut handed = Vec::new();
        if self.isolate.systemd_memory_max.is_some() {
            handed.push("memory-max");
        }
        if self.isolate.systemd_tasks_max.is_some() {
            handed.push("pids-max");
        }
        handed
    }

    /// What applies the limits: the cgroup controllers, pam_systemd, or none.
    fn limits_by(&self, cgroup: Option<&SessionCgroup>) -> String {
        match cgroup {
            Some(cg) if !cg.limit_dirs().is_empty() => {
                cg.limit_dirs().iter().map(|(c, v, _)| format!("{}:{v}", c.name())).collect::<Vec<_>>().join(",")
            }
            _ if self.isolate.systemd_memory_max.is_some() || self.isolate.systemd_tasks_max.is_some() => {
                "pam_systemd".into()
            }
            _ => "none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_wrapper_config::isolation::Landlock;

    #[test]
    fn the_opening_process_gets_dirs_and_landlock_with_absent_lists_kept_absent() {
        let layers = Layers {
            names: vec!["a".into()],
            private_dirs: vec!["/tmp".into()],
            landlock: vec![Landlock { write: Some(vec!["/home".into()]), tcp_connect: Some(vec![22]), ..Landlock::default() }],
            ..Layers::default()
        };
        let i = isolate_of(&layers);
        assert_eq!(i.private_dirs, vec![b"/tmp".to_vec()]);
        assert_eq!(i.landlock[0].write, Some(vec![b"/home".to_vec()]));
        assert_eq!(i.landlock[0].read, None);
        assert_eq!(i.landlock[0].tcp_connect, Some(vec![22]));
    }

    #[test]
    fn a_nested_session_adds_only_what_the_session_lacks() {
        let session = Layers {
            names: vec!["base".into()],
            block: vec![Blocked::Syscall("mount".into())],
            pids_max: Some(100),
            ..Layers::default()
        };
        let own = Layers {
            names: vec!["base".into(), "sudo".into()],
            block: vec![Blocked::Syscall("mount".into()), Blocked::Syscall("ptrace".into())],
            pids_max: Some(200),
            private_dirs: vec!["/tmp".into()],
            ..Layers::default()
        };
        let extra = extra_for_nested(&session, &own);
        assert_eq!(extra.names, ["sudo"]);
        assert_eq!(extra.block, [Blocked::Syscall("ptrace".into())]);
        assert_eq!(extra.private_dirs, ["/tmp"]);
        assert_eq!(extra.pids_max, None, "a larger nested limit adds nothing");
        assert!(extra_for_nested(&own, &session).names.is_empty(), "a nested session with less adds nothing");
    }

    #[test]
    fn unknown_syscalls_make_the_plan_fail() {
        let layers = Layers { names: vec!["a".into()], block: vec![Blocked::Syscall("nope_nope".into())], ..Layers::default() };
        assert!(plan(layers, 1, true).expect_err("unknown").to_string().contains("nope_nope"));
    }
}
