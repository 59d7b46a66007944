//! One exec, from its notification to its outcome:
//! 1. **gather**: the caller's ids, path, argv and loader variables from its memory, the real
//!    file and its `#!` chain, working directory and terminal;
//! 2. **decide** with the local policy;
//! 3. **authorize**, when the policy says so: the cache, else the TACACS+ backend (the exec
//!    waits in its notification; other execs go on), else the fallback rules, else the fail
//!    policy;
//! 4. **complete**: refuse (errno, message, log line) or attach and let it run;
//! 5. **verify** at the exec stop what really loaded, and log the outcome.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;
use session_wrapper_config::text::{escape, escape_argv};
use session_wrapper_config::{Action, DecidedBy, Decision, ExeKind, FailPolicy, Guard, LogFailure, Mode};
use session_wrapper_protocol::session_id_text;

use super::{Pending, Supervisor, Verdict};
use crate::decide::{self, Subject};
use crate::filter::{Notified, AUDIT_ARCH_I386};
use crate::memory::{self, PtrWidth, Remote};
use crate::notify::Notification;
use crate::procfs;
use crate::resolve::{self, Asker, ExecPlan};
use crate::syslog::Severity;
use crate::tacacs::{self, Outcome};
use crate::tracer;

/// Everything gathered about one exec before it is decided.
#[derive(Debug)]
pub(super) struct ExecFacts {
    id: u64,
    tid: i32,
    status: procfs::Status,
    pidfd: Option<OwnedFd>,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    loader_env: Option<String>,
    /// Why a library search path of its environment is refused, if it is.
    library_path: Option<String>,
    /// Whether the caller is in a user namespace other than the session's.
    foreign_user_namespace: bool,
    plan: ExecPlan,
    cwd: Vec<u8>,
    tty: Option<String>,
    target_user: String,
    t0: Instant,
}

/// How an `authorize` decision was settled.
#[derive(Debug)]
pub(super) enum Authz {
    /// No `authorize`: the policy decided alone.
    Local,
    /// The TACACS+ backend (or the decision cache) answered.
    Tacacs {
        /// What it said.
        outcome: Outcome,
        /// How long it took.
        elapsed: Duration,
        /// From the cache.
        cached: bool,
    },
    /// No backend is configured.
    NoBackend,
    /// The program is invoked under a name no link gives it: the backend cannot be told
    /// which program it is (it is sent by the path it is invoked through).
    Unnamed,
}

/// A settled decision.
struct Settled {
    verdict: Verdict,
    /// The decision the log names (the fallback rule's, when one decided).
    decision: Decision,
    /// Fields added to the log line (`authz=...`).
    authz: String,
    /// Why, when it was not simply the rule.
    reason: Option<String>,
}

/// A cached TACACS+ answer.
#[derive(Debug, Clone)]
pub(super) enum Cached {
    Permit { server: String },
    Deny { server: String, message: String },
}

fn quote(s: &str) -> String {
    escape(s.as_bytes()).replace("\\x20", " ")
}

impl Supervisor {
    pub(super) fn on_exec(&mut self, n: &Notification, kind: Notified) {
        let Some(f) = self.gather(n, kind) else { return };
        let decision = self.decide_facts(&f, false);
        if decision.action != Action::Authorize {
            return self.complete(f, decision, Authz::Local);
        }
        let key = self.cache_key(&f);
        if let Some(c) = self.cached(&key) {
            let outcome = match c {
                Cached::Permit { server } => Outcome::Permit { server, replace: false, args: Vec::new() },
                Cached::Deny { server, message } => Outcome::Deny { server, message },
            };
            return self.complete(f, decision, Authz::Tacacs { outcome, elapsed: Duration::ZERO, cached: true });
        }
        let Some(backend) = &self.tacacs else { return self.complete(f, decision, Authz::NoBackend) };
        let Some(cmd) = invoked_path(&f) else { return self.complete(f, decision, Authz::Unnamed) };
        let job = self.next_job;
        self.next_job += 1;
        backend.authorize(job, f.tty.as_deref().unwrap_or(""), &cmd, f.argv.get(1..).unwrap_or(&[]));
        self.authorizing.insert(job, (f, decision));
    }

    /// An answer from the TACACS+ backend.
    pub(super) fn on_authorized(&mut self, done: tacacs::Done) {
        let Some((f, decision)) = self.authorizing.remove(&done.id) else { return };
        if !self.listener.id_valid(f.id) {
            // The process died while it waited.
            return;
        }
        if let (Some(ttl), Some(c)) = (self.config.tacacs.cache_ttl, cacheable(&done.outcome)) {
            let key = self.cache_key(&f);
            self.remember(key, c, ttl);
        }
        self.complete(f, decision, Authz::Tacacs { outcome: done.outcome, elapsed: done.elapsed, cached: false });
    }

    /// Reads and resolves everything about the exec. `None` when it was already answered
    /// (arguments unreadable, path unresolvable) or its task is gone.
    fn gather(&mut self, n: &Notification, kind: Notified) -> Option<ExecFacts> {
        let t0 = Instant::now();
        let tid = n.tid;
        let is32 = n.arch == AUDIT_ARCH_I386;
        let a = |i: usize| if is32 { n.args[i] & 0xffff_ffff } else { n.args[i] };
        let width = if is32 { PtrWidth::Bits32 } else { PtrWidth::Bits64 };
        let (dirfd, path_ptr, argv_ptr, envp_ptr, flags) = match kind {
            Notified::Execveat => (Some(a(0) as i32), a(1), a(2), a(3), a(4)),
            _ => (None, a(0), a(1), a(2), 0),
        };
        let Ok((status, pidfd)) = procfs::task(tid) else {
            let _ = self.listener.refuse(n.id, Errno::ESRCH);
            return None;
        };
        let mut mem = Remote::new(Pid::from_raw(tid));
        let limits = self.limits;
        let refuse = &self.config.policy.guards.loader_env;
        let paths = &self.library_vars;
        let read = memory::read_path(&mut mem, path_ptr, &limits).and_then(|path| {
            let argv = memory::read_argv(&mut mem, argv_ptr, width, &limits)?;
            let env = memory::scan_env(&mut mem, envp_ptr, width, refuse, paths, &limits)?;
            Ok((path, argv, env.refused.map(str::to_owned), owned_paths(env.paths)))
        });
        drop(mem);
        let (path, mut argv, loader_env, library_vars) = match read {
            Ok(r) => r,
            Err(e) => {
                if self.listener.id_valid(n.id) {
                    self.counts.failed += 1;
                    let _ = self.listener.refuse(n.id, e.errno());
                    let line = format!(
                        "event=exec-refused pid={} uid={} reason=\"arguments unreadable: {e}\" errno={}",
                        status.tgid,
                        status.euid,
                        e.errno()
                    );
                    self.event(Severity::LOG_NOTICE, &line);
                }
                return None;
            }
        };
        // Since Linux 5.18 an empty argv runs with argv[0] = "".
        if argv.is_empty() {
            argv.push(Vec::new());
        }
        let asker = Asker { tid };
        let cache = &mut self.heads;
        let plan = resolve::resolve(asker, status.tgid, dirfd, &path, flags).and_then(|named| {
            let filename = resolve::kernel_filename(dirfd, &path);
            resolve::plan(asker, status.tgid, named, filename, &argv, cache)
        });
        let cwd = procfs::cwd(tid).unwrap_or_default();
        let tty = procfs::tty(status.tgid).ok().flatten();
        // Everything read so far was read from the right task only if it still waits.
        if !self.listener.id_valid(n.id) {
            return None;
        }
        let mut plan = match plan {
            Ok(p) => p,
            Err(errno) => {
                // Nothing runs. A missing file is what the kernel would say too (and `execvp`
                // tries every PATH entry): debug only. Any other refusal is logged.
                let _ = self.listener.refuse(n.id, errno);
                let missing = matches!(errno, Errno::ENOENT | Errno::ENOTDIR);
                if self.debug || !missing {
                    self.counts.failed += u64::from(!missing);
                    let line = format!(
                        "event=exec-unresolved pid={} uid={} path=\"{}\" errno={errno}",
                        status.tgid,
                        status.euid,
                        escape(&path)
                    );
                    self.event(if missing { Severity::LOG_DEBUG } else { Severity::LOG_NOTICE }, &line);
                }
                return None;
            }
        };
        self.mark_foreign(&mut plan);
        plan.find_links(&self.links, &path, &argv);
        let library_path = library_path_problem(tid, &library_vars);
        let foreign_user_namespace = self.reference.foreign_user_namespace(tid);
        let target_user = self.names.name(status.euid).to_owned();
        Some(ExecFacts {
            id: n.id,
            tid,
            status,
            pidfd,
            path,
            argv,
            loader_env,
            library_path,
            foreign_user_namespace,
            plan,
            cwd,
            tty,
            target_user,
            t0,
        })
    }

    fn subject<'a>(&'a self, f: &'a ExecFacts, traced: bool) -> Subject<'a> {
        Subject {
            user: &self.session.user,
            service: &self.session.service,
            target_user: &f.target_user,
            loader_env: f.loader_env.as_deref(),
            untrusted_library_path: f.library_path.as_deref(),
            traced: traced || f.status.tracer != 0,
            foreign_user_namespace: f.foreign_user_namespace,
        }
    }

    fn decide_facts(&self, f: &ExecFacts, traced: bool) -> Decision {
        decide::decide_plan(&self.config, &self.loaders, &self.subject(f, traced), &f.plan, &f.argv).0
    }

    /// The fallback rules, then the fail policy, for an `authorize` nobody answered.
    fn no_answer(&self, f: &ExecFacts, decision: &Decision, why: String) -> (Verdict, Decision, String, Option<String>) {
        let req = decide::request(&self.loaders, &self.subject(f, false), (&f.plan.named).into(), &f.argv);
        if let Some((i, d)) = self.config.policy.decide_fallback(&req) {
            let verdict = if d.action == Action::Allow { Verdict::Allow } else { Verdict::Deny };
            let name = self.config.policy.fallback.get(i).map_or("?", |r| r.name.as_str());
            // The line names the rule that asked (`rule=`) and the fallback rule that decided.
            let d = Decision { action: d.action, by: decision.by, message: d.message.or_else(|| decision.message.clone()) };
            return (verdict, d, format!(" authz=fallback fallback_rule={name}"), Some(why));
        }
        let verdict = match self.config.fail_policy {
            FailPolicy::Open => Verdict::Allow,
            FailPolicy::Closed => Verdict::Deny,
        };
        let why = format!("{why}; fail-policy {}", self.config.fail_policy.as_str());
        (verdict, decision.clone(), " authz=fail-policy".into(), Some(why))
    }

    fn settle(&self, f: &ExecFacts, decision: Decision, authz: Authz) -> Settled {
        let plain = |verdict, decision| Settled { verdict, decision, authz: String::new(), reason: None };
        match (decision.action, authz) {
            (Action::Allow, _) => plain(Verdict::Allow, decision),
            (Action::Deny, _) => plain(Verdict::Deny, decision),
            (Action::Authorize, Authz::Unnamed) => {
                let name = escape(session_wrapper_config::invoked_name(f.argv.first().map_or(&[][..], Vec::as_slice)));
                Settled {
                    verdict: Verdict::Deny,
                    decision,
                    authz: " authz=unnamed".into(),
                    reason: Some(format!("invoked as {name}, a name no link in a root-only directory gives this program: the server cannot be told what runs")),
                }
            }
            (Action::Authorize, Authz::Local | Authz::NoBackend) => {
                let (verdict, decision, authz, reason) =
                    self.no_answer(f, &decision, "no TACACS+ server is configured".into());
                Settled { verdict, decision, authz, reason }
            }
            (Action::Authorize, Authz::Tacacs { outcome, elapsed, cached }) => {
                let src = if cached { "cache" } else { "tacacs" };
                let ms = elapsed.as_millis();
                match outcome {
                    Outcome::Permit { server, replace, args } => {
                        let status = if replace { "PASS_REPL" } else { "PASS_ADD" };
                        let authz = format!(" authz={src} server={server} status={status} authz_ms={ms}");
                        let sent = self.sent_attributes(f);
                        match tacacs::unapplicable(&sent, &args) {
                            None => Settled { verdict: Verdict::Allow, decision, authz, reason: None },
                            Some(attr) => Settled {
                                verdict: Verdict::Deny,
                                decision,
                                authz,
                                reason: Some(format!("the server returned mandatory attribute {attr}, which cannot be applied to a command")),
                            },
                        }
                    }
                    Outcome::Deny { server, message } => {
                        let authz = format!(" authz={src} server={server} status=FAIL authz_ms={ms}");
                        let mut decision = decision;
                        if !message.is_empty() {
                            decision.message = Some(message);
                        }
                        Settled { verdict: Verdict::Deny, decision, authz, reason: None }
                    }
                    Outcome::Follow { server } => Settled {
                        verdict: Verdict::Deny,
                        decision,
                        authz: format!(" authz={src} server={server} status=FOLLOW authz_ms={ms}"),
                        reason: Some("the server answered FOLLOW, which RFC 8907 deprecates and this client refuses".into()),
                    },
                    Outcome::NoAnswer { tried } => {
                        let (verdict, decision, mut authz, reason) =
                            self.no_answer(f, &decision, format!("no TACACS+ decision: {}", tried.join("; ")));
                        let _ = write!(authz, " authz_ms={ms}");
                        Settled { verdict, decision, authz, reason }
                    }
                    Outcome::Unencodable(why) => {
                        let (verdict, decision, authz, reason) = self.no_answer(f, &decision, why);
                        Settled { verdict, decision, authz, reason }
                    }
                }
            }
        }
    }

    fn sent_attributes(&self, f: &ExecFacts) -> Vec<tacacs::attrs::Attr> {
        let common = tacacs::attrs::Common {
            service: self.config.tacacs.service.clone(),
            protocol: self.config.tacacs.protocol.clone(),
        };
        let cmd = invoked_path(f).unwrap_or_else(|| f.plan.named.real_path.clone());
        tacacs::attrs::authorization(&common, &cmd, f.argv.get(1..).unwrap_or(&[])).unwrap_or_default()
    }

    /// Marks the files of an exec whose paths name other files (or none) in the session's
    /// mount namespace: reached through a namespace of their own, their names cannot be
    /// trusted (`guards.foreign-mount`).
    fn mark_foreign(&self, plan: &mut resolve::ExecPlan) {
        let files = std::iter::once(&mut plan.named).chain(plan.interpreters.iter_mut().map(|i| &mut i.file));
        for file in files {
            if file.kind == ExeKind::File && self.reference.foreign(&file.real_path, file.dev, file.ino) {
                file.kind = ExeKind::Foreign;
            }
        }
    }

    /// Whether an exec of process `tgid` is in flight (allowed, attached, not yet loaded).
    fn in_flight(&self, tgid: i32) -> bool {
        self.pending.values().any(|p| p.tgid == tgid)
    }

    /// Completes the execs that waited for another exec of their process: once it has loaded
    /// (the others are gone with the old image) or failed.
    pub(super) fn retry_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.deferred);
        for (f, decision, authz) in waiting {
            if !self.listener.id_valid(f.id) {
                // Killed by the other exec, as every other thread of an exec'ing process is.
                continue;
            }
            self.complete(f, decision, authz);
        }
    }

    /// Refuses the exec, or attaches to it and lets it run.
    ///
    /// An exec of a process that already has one in flight waits for it (`deferred`):
    /// attaching (`PTRACE_SEIZE`) to a thread of that process would block on the exec's lock
    /// (`cred_guard_mutex`), while that exec waits for its other threads to be gone, one of
    /// which may be traced by us and need reaping: the supervisor would hang, and every exec
    /// of the session with it.
    fn complete(&mut self, f: ExecFacts, decision: Decision, authz: Authz) {
        if self.in_flight(f.status.tgid) {
            self.deferred.push((f, decision, authz));
            return;
        }
        let mut s = self.settle(&f, decision, authz);
        // "No audit, no exec": while a line can be neither delivered nor kept on disk, execs
        // are refused, in audit mode too.
        let unlogged = self.config.log_failure == LogFailure::Refuse && !self.log.can_keep();
        if unlogged {
            let decision = Decision {
                action: Action::Deny,
                by: s.decision.by,
                message: Some("the audit log cannot be written; commands are refused until it can".into()),
            };
            let reason = Some("log-failure=refuse: syslog takes no lines and the spool cannot keep them".into());
            s = Settled { verdict: Verdict::Deny, decision, authz: s.authz, reason };
        }
        let enforce = self.config.mode == Mode::Enforce || unlogged;
        let runs = |v: Verdict| v == Verdict::Allow || !enforce;
        // An exec that runs does so only under our check: attach now. A task traced by
        // someone else cannot be attached, which is how a tracer is noticed.
        let mut traced = f.status.tracer != 0;
        let mut attached = false;
        if runs(s.verdict) && !traced {
            match tracer::seize(f.tid) {
                Ok(()) => attached = true,
                Err(Errno::ESRCH) => return,
                Err(_) => {
                    traced = true;
                    let d = self.decide_facts(&f, true);
                    if d.action == Action::Deny {
                        s = Settled { verdict: Verdict::Deny, decision: d, authz: String::new(), reason: None };
                    }
                }
            }
        }
        let mut line = self.decision_line(&f, &s);
        if s.verdict == Verdict::Deny && enforce {
            let text = self.user_message(&f.path, &s.decision);
            let delivery = match &f.pidfd {
                Some(p) => self.messenger.deliver_via(p.as_fd(), text.as_bytes()),
                None => self.messenger.deliver(f.status.tgid, text.as_bytes()),
            };
            let errno = Errno::from_raw(self.config.deny_errno.value);
            let latency = f.t0.elapsed().as_micros();
            let _ = self.listener.refuse(f.id, errno);
            self.counts.refused += 1;
            let _ = write!(line, " errno={} message={} latency_us={latency}", self.config.deny_errno.name, delivery.as_str());
            self.log.log(Severity::LOG_NOTICE, &line);
            return;
        }
        self.counts.allowed += 1;
        let _ = write!(line, " latency_us={}", f.t0.elapsed().as_micros());
        // An audit-mode "would deny" stays a notice when its outcome is logged.
        let severity = if s.verdict == Verdict::Deny { Severity::LOG_NOTICE } else { Severity::LOG_INFO };
        if !attached {
            // Traced by another process and the policy allows that: nothing can check this
            // exec after the fact, which the log says.
            let _ = self.listener.allow(f.id);
            let result = if traced { "unverified-traced" } else { "unverified" };
            self.log.log(Severity::LOG_WARNING, &format!("{line} result={result}"));
            return;
        }
        let _ = self.listener.allow(f.id);
        tracer::interrupt(f.tid);
        let image = f.plan.image();
        let image = (image.dev, image.ino);
        let cmd = invoked_path(&f).unwrap_or_else(|| f.plan.named.real_path.clone());
        self.pending.insert(
            f.tid,
            Pending {
                tgid: f.status.tgid,
                line,
                severity,
                image,
                argv: f.plan.final_argv,
                target_user: f.target_user,
                traced,
                asked: f.path,
                cmd,
                args: f.argv.get(1..).unwrap_or(&[]).to_vec(),
                tty: f.tty,
            },
        );
    }

    pub(super) fn user_message(&self, asked: &[u8], d: &Decision) -> String {
        let what = escape(asked);
        let why = match (&d.message, d.by) {
            (Some(m), _) => quote(m),
            (None, DecidedBy::Guard(g)) => guard_text(g).to_owned(),
            (None, by) => format!("not allowed by policy (rule {})", self.config.policy.decider_name(by)),
        };
        format!("session-wrapper: {what}: {why}\n")
    }

    fn decision_line(&self, f: &ExecFacts, s: &Settled) -> String {
        let (argv_text, cut) = escape_argv(&f.argv, self.config.log.argv_max);
        let mut line = format!(
            "session={} user={} uid={} target={} pid={}",
            session_id_text(self.session.id),
            escape(self.session.user.name.as_bytes()),
            f.status.euid,
            escape(f.target_user.as_bytes()),
            f.status.tgid,
        );
        if f.tid != f.status.tgid {
            let _ = write!(line, " tid={}", f.tid);
        }
        let _ = write!(
            line,
            " ppid={} tty={} cwd=\"{}\" path=\"{}\" exe=\"{}\"",
            f.status.ppid,
            f.tty.as_deref().unwrap_or("-"),
            escape(&f.cwd),
            escape(&f.path),
            escape(&f.plan.named.real_path)
        );
        if !f.plan.interpreters.is_empty() {
            let _ = write!(line, " interpreter=\"{}\"", escape(&f.plan.image().real_path));
        }
        let rule = self.config.policy.decider_name(s.decision.by).into_owned();
        let _ = write!(
            line,
            " argc={} argv=\"{}\"{} decision={} rule={} mode={}{}",
            f.argv.len(),
            argv_text,
            if cut { " argv_truncated=1" } else { "" },
            if s.verdict == Verdict::Allow { "allow" } else { "deny" },
            rule,
            self.config.mode.as_str(),
            s.authz,
        );
        if let Some(r) = &s.reason {
            let _ = write!(line, " reason=\"{}\"", quote(r));
        }
        line
    }

    /// The exec succeeded: check what really loaded before it runs.
    pub(super) fn on_exec_stop(&mut self, pid: i32, former: i32) {
        let Some(p) = self.pending.remove(&former).or_else(|| self.pending.remove(&pid)) else {
            tracer::detach(pid, None);
            return;
        };
        let image = procfs::exe_identity(pid);
        let loaded = tracer::loaded_args(pid, &self.config.policy.guards.loader_env, &self.library_vars, &self.limits);
        let library_path = loaded.as_ref().ok().and_then(|l| library_path_problem(pid, &l.library_paths));
        let refused_env = loaded.as_ref().ok().and_then(|l| l.refused_env.clone());
        let matches = image.as_ref().ok() == Some(&p.image)
            && loaded.as_ref().is_ok_and(|l| l.argv == p.argv)
            && refused_env.is_none()
            && library_path.is_none();
        if matches {
            // The pidfd is taken while the process is stopped: a short command could be gone
            // (and its pid reused) by the time the loop looks again.
            let pidfd = self.accounting_pidfd(pid);
            tracer::detach(pid, None);
            self.log.log(p.severity, &format!("{} result=exec", p.line));
            self.command_started(pid, pidfd, &p);
            return;
        }
        // What loaded is not what was authorized: decide again on what loaded.
        let exe = procfs::exe_path(pid).unwrap_or_default();
        let argv = loaded.map(|l| l.argv).unwrap_or_default();
        let kind = if exe.starts_with(b"/memfd:") {
            ExeKind::Memfd
        } else if exe.ends_with(b" (deleted)") {
            ExeKind::Deleted
        } else {
            ExeKind::File
        };
        let (dev, ino) = image.unwrap_or((0, 0));
        let kind = if kind == ExeKind::File && self.reference.foreign(&exe, dev, ino) { ExeKind::Foreign } else { kind };
        let name = session_wrapper_config::invoked_name(argv.first().map_or(&[][..], Vec::as_slice));
        let own = exe.rsplit(|&b| b == b'/').next() == Some(name);
        let links = if own { Vec::new() } else { self.links.links(name, dev, ino, &exe) };
        let who = Subject {
            user: &self.session.user,
            service: &self.session.service,
            target_user: &p.target_user,
            loader_env: refused_env.as_deref(),
            untrusted_library_path: library_path.as_deref(),
            traced: p.traced,
            foreign_user_namespace: self.reference.foreign_user_namespace(pid),
        };
        let file = decide::File { path: &exe, id: (dev, ino), kind, links: &links };
        let d = decide::decide_file(&self.config, &self.loaders, &who, file, &argv);
        // Only a local allow lets a mismatch through: there is no time to ask a server now.
        let allowed = d.action == Action::Allow;
        let (argv_text, _) = escape_argv(&argv, self.config.log.argv_max);
        let detail = format!(
            "verify=mismatch loaded_exe=\"{}\" loaded_argv=\"{argv_text}\" redecision={} redecision_rule={}",
            escape(&exe),
            if allowed { "allow" } else { "deny" },
            self.config.policy.decider_name(d.by),
        );
        if !allowed && self.config.mode == Mode::Enforce {
            let text = self.user_message(&p.asked, &d);
            let _ = self.messenger.deliver(pid, text.as_bytes());
            tracer::kill(pid);
            self.counts.allowed = self.counts.allowed.saturating_sub(1);
            self.counts.killed += 1;
            self.log.log(Severity::LOG_WARNING, &format!("{} {detail} result=killed", p.line));
        } else {
            let pidfd = self.accounting_pidfd(pid);
            tracer::detach(pid, None);
            self.log.log(Severity::LOG_WARNING, &format!("{} {detail} result=exec", p.line));
            self.command_started(pid, pidfd, &p);
        }
    }

    fn cache_key(&self, f: &ExecFacts) -> Vec<u8> {
        let mut k = invoked_path(f).unwrap_or_else(|| f.plan.named.real_path.clone());
        for a in &f.argv[1..] {
            k.push(0);
            k.extend_from_slice(a);
        }
        k
    }

    fn cached(&mut self, key: &[u8]) -> Option<Cached> {
        let (c, until) = self.cache.get(key)?;
        if *until > Instant::now() {
            Some(c.clone())
        } else {
            self.cache.remove(key);
            None
        }
    }

    fn remember(&mut self, key: Vec<u8>, c: Cached, ttl: Duration) {
        if self.cache.len() >= 10_000 {
            let now = Instant::now();
            self.cache.retain(|_, (_, until)| *until > now);
            if self.cache.len() >= 10_000 {
                self.cache.clear();
            }
        }
        self.cache.insert(key, (c, Instant::now() + ttl));
    }
}

/// The path a program is invoked through, as the authorization backend and accounting name it:
/// its real path under its own name (`/usr/bin/systemctl`), the link its name comes from
/// otherwise (`/usr/sbin/reboot` for `systemctl` invoked as `reboot`); `None` for a name no
/// link gives it (`exec -a xreboot /usr/bin/systemctl`).
fn invoked_path(f: &ExecFacts) -> Option<Vec<u8>> {
    let named = &f.plan.named;
    let name = session_wrapper_config::invoked_name(f.argv.first().map_or(&[][..], Vec::as_slice));
    if named.real_path.rsplit(|&b| b == b'/').next() == Some(name) {
        Some(named.real_path.clone())
    } else {
        named.links.first().cloned()
    }
}

/// What of an outcome may be cached: clear permits (no attributes to apply) and denials.
fn cacheable(o: &Outcome) -> Option<Cached> {
    match o {
        Outcome::Permit { server, args, .. } if !args.iter().any(|a| a.mandatory) => {
            Some(Cached::Permit { server: server.clone() })
        }
        Outcome::Deny { server, message } => Some(Cached::Deny { server: server.clone(), message: message.clone() }),
        _ => None,
    }
}

fn guard_text(g: Guard) -> &'static str {
    match g {
        Guard::Memfd => "running an anonymous memory file is not allowed",
        Guard::Deleted => "running a deleted file is not allowed",
        Guard::DynamicLoader => "running the dynamic loader directly is not allowed",
        Guard::LoaderEnv => "LD_PRELOAD/LD_AUDIT-style loader variables are not allowed",
        Guard::Traced => "running programs under a debugger or tracer is not allowed",
        Guard::ForeignMount => "this path names another program in the session; running programs from a private mount namespace is not allowed",
        Guard::UserNamespaces => "running programs in a user namespace of one's own is not allowed",
        Guard::LibraryPath => "a library search path (LD_LIBRARY_PATH, GCONV_PATH) may name only directories that only root can change",
    }
}

/// The library search path variables the `library-path` guard checks.
pub(super) const LIBRARY_PATH_VARS: [&str; 2] = ["LD_LIBRARY_PATH", "GCONV_PATH"];

fn owned_paths(paths: Vec<(&str, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    paths.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

/// Why the library search path variables of task `tid`'s exec are refused, if they are:
/// each directory is looked up from the task's own root, as its loader will.
fn library_path_problem(tid: i32, vars: &[(String, Vec<u8>)]) -> Option<String> {
    if vars.is_empty() {
        return None;
    }
    let root = CString::new(format!("/proc/{tid}/root")).ok().and_then(|c| {
        nix::fcntl::openat(nix::fcntl::AT_FDCWD, c.as_c_str(), OFlag::O_PATH | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()
    });
    let Some(root) = root else { return Some("the process's root directory cannot be read".into()) };
    vars.iter().find_map(|(name, value)| {
        crate::trust::library_path_problem(root.as_fd(), value).map(|p| format!("{name}={}: {p}", String::from_utf8_lossy(value)))
    })
}
