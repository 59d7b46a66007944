//! The check at the exec stop: what really loaded, before it runs one instruction.
//!
//! The task is stopped at `PTRACE_EVENT_EXEC` ([`crate::sys::tracer`]): its new image is mapped, its
//! new stack holds the argument vector and the environment it will run with. When the image
//! (device, inode), the arguments and what the environment says to the loader are what was
//! authorized, it runs. Otherwise (another thread rewrote the path or the arguments between the
//! check and the kernel's own read, a symlink was swapped) what loaded is decided again, on the
//! same terms as any exec, and killed if that refuses it.

use session_wrapper_config::{Action, Config, Decision, ExeKind};

use super::decide::{self, File, Subject};
use super::gather::{library_path_problem, ExecFacts, Sight};
use crate::log::Field;
use crate::sys::procfs;
use crate::login::Session;
use crate::sys::bpf::{ExecCheck, Expect, Outcome, Report};
use crate::sys::tracer;

/// What the check found.
#[derive(Debug)]
pub enum Verified {
    /// What loaded is what was authorized.
    Same,
    /// It is not: `decision` is what the policy says of what loaded; `fields` say what loaded
    /// for the log line.
    Mismatch {
        /// The decision on what loaded (only a local `allow` lets it run).
        decision: Decision,
        /// `verify=mismatch loaded_exe=... loaded_argv=... redecision=... redecision_rule=...`.
        fields: Vec<Field>,
    },
}

impl Verified {
    /// Whether what loaded may run.
    pub fn runs(&self) -> bool {
        match self {
            Verified::Same => true,
            Verified::Mismatch { decision, .. } => decision.action == Action::Allow,
        }
    }
}

/// Checks task `pid`, stopped at its exec event, against the exec it was let run as (`traced`:
/// whether another process traced the caller).
pub fn at_exec_stop(pid: i32, facts: &ExecFacts, traced: bool, sight: &mut Sight, config: &Config, session: &Session) -> Verified {
    let expected = facts.plan.image();
    let image = procfs::exe_identity(pid);
    let loaded = tracer::loaded_args(pid, &config.policy.guards.loader_env, &sight.library_vars, &sight.limits);
    let library_path = loaded.as_ref().ok().and_then(|l| library_path_problem(pid, &l.library_paths));
    let refused_env = loaded.as_ref().ok().and_then(|l| l.refused_env.clone());
    let same_image = image.as_ref().is_ok_and(|(dev, ino, _)| (*dev, *ino) == (expected.dev, expected.ino));
    let same_argv = loaded.as_ref().is_ok_and(|l| l.argv == facts.plan.final_argv);
    if same_image && same_argv && refused_env.is_none() && library_path.is_none() {
        return Verified::Same;
    }
    // What loaded is not what was authorized: decide again on what loaded.
    let exe = procfs::exe_path(pid).unwrap_or_default();
    let argv = loaded.map(|l| l.argv).unwrap_or_default();
    let (dev, ino, nlink) = image.unwrap_or((0, 0, 0));
    let mut kind = crate::sys::resolve::classify(&exe, nlink);
    if kind == ExeKind::File && sight.reference.foreign(&exe, dev, ino, None) {
        kind = ExeKind::Foreign;
    }
    let name = session_wrapper_config::invoked_name(argv.first().map_or(&[][..], Vec::as_slice));
    let own = exe.rsplit(|&b| b == b'/').next() == Some(name);
    let links = if own { Vec::new() } else { sight.links.links(name, dev, ino, &exe) };
    let who = Subject {
        user: &session.user,
        service: &session.service,
        target_user: &facts.target_user,
        loader_env: refused_env.as_deref(),
        untrusted_library_path: library_path.as_deref(),
        traced,
        foreign_user_namespace: sight.reference.foreign_user_namespace(pid),
    };
    let file = File { path: &exe, id: (dev, ino), kind, links: &links };
    let decision = decide::decide_file(config, &sight.loaders, &who, file, &argv);
    let (argv_text, cut) = session_wrapper_config::text::escape_argv(&argv, config.log.argv_max);
    let allowed = decision.action == Action::Allow;
    let mut fields = crate::log::Event::new(crate::log::Severity::Warning, crate::log::Kind::Decision)
        .bare("verify", "mismatch")
        .quoted("loaded_exe", &exe)
        .fields;
    fields.push(Field { key: "loaded_argv", value: crate::log::Value::Quoted(argv_text), truncated: cut });
    fields.push(Field::new("redecision", crate::log::Value::Bare(if allowed { "allow" } else { "deny" }.into())));
    fields.push(Field::new("redecision_rule", crate::log::Value::Bare(config.policy.decider_name(decision.by).into_owned())));
    Verified::Mismatch { decision, fields }
}

/// Hands the exec of `f` to the kernel's check, if the session has it and the exec fits it
/// (its argument and environment strings take at most [`crate::sys::bpf::BLOCK_MAX`] bytes,
/// and its image is named by its mount and inode alone: not on btrfs or overlayfs):
/// writes what it may load, before its notification is answered. `kill`: a difference kills it
/// (enforce mode); `untraced`: being traced at the exec is a difference (the `traced` guard
/// denies); `user_namespace`: being in another user namespace is (the `user-namespaces` guard
/// denies). `false`: check it at a ptrace stop instead.
pub fn expect_in_kernel(check: Option<&mut ExecCheck>, f: &ExecFacts, kill: bool, untraced: bool, user_namespace: Option<u32>) -> bool {
    let (Some(check), Some(env)) = (check, f.env_strings.as_ref()) else { return false };
    let argv = &f.plan.final_argv;
    let image = f.plan.image();
    if !image.mount_and_inode_name_it {
        // The kernel would take another file with its mount and inode for it (btrfs, overlayfs).
        return false;
    }
    let user_namespace = user_namespace.unwrap_or(0);
    let expect = Expect { notif: f.id, image: (image.mnt_id, image.ino), argv, env, kill, untraced, user_namespace };
    check.expect(f.tid, &expect).is_ok()
}

/// The fields of a decision line when the kernel found that what loaded is not what was
/// authorized: `verify=mismatch check=bpf differs=image|strings|traced|userns|unreadable` and the
/// loaded image's mount id and inode.
pub fn kernel_mismatch(r: &Report, outcome: Outcome) -> Vec<Field> {
    let differs = match outcome {
        Outcome::OtherImage => "image",
        Outcome::OtherStrings => "strings",
        Outcome::Traced => "traced",
        Outcome::OtherUserNamespace => "userns",
        _ => "unreadable",
    };
    crate::log::Event::new(crate::log::Severity::Warning, crate::log::Kind::Decision)
        .bare("verify", "mismatch")
        .bare("check", "bpf")
        .bare("differs", differs)
        .bare("loaded_mnt_id", r.loaded.0)
        .bare("loaded_ino", r.loaded.1)
        .fields
}
