//! `session-wrapper self-test` and the system checks `check-config` adds.
//!
//! The system checks read what the kernel and the system offer (seccomp user notification,
//! the kernel's version, Landlock's ABI, where each cgroup controller lives, logind) against
//! what the configuration asks for, and say what a session would lose.
//!
//! The self-test proves the mechanisms by using them, as root, in supervised child sessions
//! made exactly as `session-wrapper run` makes them (that is, as a PAM session does):
//! - the base session (policy only): an allowed exec runs, a refused one fails with the
//!   configured errno and is logged; with `--comprehensive`, quick attacks of the hardening
//!   work too (a listener of one's own, x32 calls, io_uring, a memfd exec, the loader run as a
//!   program, a script whose interpreter is refused, an argument swap raced against the
//!   supervisor);
//! - each `[[isolation]]` block, applied on its own: each blocked call fails with `EPERM`
//!   (and did not unconfined), each limit is in force and holds, each private directory is
//!   empty and leaves nothing on the host, each Landlock layer refuses what it should.
//!
//! The probes run in [`probe`], inside the supervised session (the `__probe` subcommand of the
//! same binary); this side starts them, reads what they print and what the supervisor logged.

use crate::session::command::{supervise_command, CommandOptions};
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use session_wrapper_config::isolation::{Blocked, Isolation, Landlock};
use session_wrapper_config::{Config, Source, Verify};

use crate::session::cgroup::{self, Controller, Home};

pub mod probe;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Pass,
    /// Works, with a caveat the detail gives.
    Warn,
    /// Does not work: the detail says what is lost.
    Fail,
    /// Could not be checked here.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One checked thing.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it belongs to: `system`, `session`, `isolation <name>`.
    pub layer: String,
    /// What was checked.
    pub check: String,
    /// The outcome.
    pub status: Status,
    /// What was seen, or what is lost.
    pub detail: String,
}

fn check(layer: &str, name: &str, status: Status, detail: impl Into<String>) -> Check {
    Check { layer: layer.into(), check: name.into(), status, detail: detail.into() }
}

/// `check-config --connect`: a connection to each TACACS+ server (and, with TLS, the
/// handshake, then a moment for the server to refuse it), each a check of layer `tacacs`
/// saying what was found or naming why it failed.
pub fn tacacs_connect(config: &Config) -> Vec<Check> {
    use crate::authz::tacacs::{client, endpoints};
    use std::time::{Duration, Instant};
    let servers = match endpoints(&config.tacacs) {
        Ok(s) => s,
        Err(e) => return vec![check("tacacs", "servers", Status::Fail, e.to_string())],
    };
    let mut out = Vec::new();
    for (ep, timeout) in servers {
        let t0 = Instant::now();
        let r = client::connect(&ep, t0 + timeout).and_then(|mut c| {
            let ms = t0.elapsed().as_millis();
            c.settle(&ep, Duration::from_millis(500))?;
            Ok(match c.tls_summary() {
                Some(tls) => format!("TLS handshake in {ms} ms ({tls}), server certificate verified"),
                None => format!("TCP connection in {ms} ms (the shared key is checked by the first request)"),
            })
        });
        out.push(match r {
            Ok(found) => check("tacacs", &ep.name, Status::Pass, found),
            Err(e) => check("tacacs", &ep.name, Status::Fail, e.to_string()),
        });
    }
    out
}

/// What check-config says about the policy itself (warnings, never a failure): every rule
/// that allows (or asks the backend about) programs in a place someone other than root can
/// change, naming who; every rule that can never match, because a rule checked before it
/// matches every exec it would; and every pattern naming a file or directory that does not
/// exist on this system.
pub fn policy_lints(config: &Config) -> Vec<Check> {
    let mut out = writable_lints(config);
    let rules = &config.policy.rules;
    for (i, j) in config.policy.shadowed() {
        out.push(check(
            "policy",
            &format!("rule {}", rules[i].name),
            Status::Warn,
            format!(
                "can never match: rule {} ({}), checked before it, matches every command it does",
                rules[j].name, rules[j].origin
            ),
        ));
    }
    for rule in rules.iter().chain(&config.policy.fallback) {
        for pattern in rule.exe_patterns() {
            let places = match pattern.file() {
                Some(_) => vec![pattern.written().to_owned()],
                None => pattern.directories(),
            };
            for place in places.iter().filter(|p| !std::path::Path::new(p).exists()) {
                out.push(check(
                    "policy",
                    &format!("rule {}", rule.name),
                    Status::Warn,
                    format!("{} names {place}, which does not exist on this system", pattern.written()),
                ));
            }
        }
    }
    out
}

/// Every rule that allows (or asks the backend about) programs in a place someone other than
/// root can change, naming who.
fn writable_lints(config: &Config) -> Vec<Check> {
    use session_wrapper_config::Action;
    let mut out = Vec::new();
    let rules = config.policy.rules.iter().chain(&config.policy.fallback);
    for rule in rules.filter(|r| r.action != Action::Deny) {
        for pattern in rule.exe_patterns() {
            let mut places: Vec<String> = pattern.directories();
            if let Some((file, _)) = pattern.file() {
                places.push(String::from_utf8_lossy(file).into_owned());
            }
            if places.is_empty() {
                places.push(pattern.written().to_owned());
            }
            places.sort();
            places.dedup();
            for place in places {
                let who = crate::sys::trust::writers(std::path::Path::new(&place));
                if !who.is_empty() {
                    out.push(check(
                        "policy",
                        &format!("rule {}", rule.name),
                        Status::Warn,
                        format!(
                            "{} {} {place} ({}), which {} can change: whatever is put there runs",
                            rule.action.as_str(),
                            if pattern.file().is_some() { "the file" } else { "programs in" },
                            pattern.written(),
                            who.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Whether no check failed.
pub fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// The checks as an operator reads them: grouped by layer, then a summary line naming what
/// failed.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    let mut layer = "";
    for c in checks {
        if c.layer != layer {
            layer = &c.layer;
            let _ = writeln!(out, "{layer}");
        }
        let _ = writeln!(out, "  {:<5} {:<40} {}", c.status.label(), c.check, c.detail);
    }
    let failed: Vec<String> =
        checks.iter().filter(|c| c.status == Status::Fail).map(|c| format!("{}: {}", c.layer, c.check)).collect();
    if failed.is_empty() {
        let _ = writeln!(out, "result: ok");
    } else {
        let _ = writeln!(out, "result: FAIL ({})", failed.join("; "));
    }
    out
}

/// The checks as one JSON object: `{"ok": bool, "checks": [...]}`.
pub fn render_json(checks: &[Check]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        ok: bool,
        checks: &'a [Check],
    }
    serde_json::to_string(&Out { ok: all_ok(checks), checks }).unwrap_or_else(|_| "{\"ok\":false}".into())
}

fn kernel_version() -> Option<(u32, u32)> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = r.trim().split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The layer of the system checks.
const SYSTEM: &str = "system";

/// What this system offers against what `config` asks for.
pub fn system_checks(config: &Config) -> Vec<Check> {
    let logind = cgroup::logind_running();
    let mut out = vec![seccomp_check(), kernel_check(), verify_check(config), logind_check(logind), landlock_check(config)];
    out.extend(cgroup_checks(config, logind));
    out.extend(isolation_checks(config));
    out
}

/// The names of `blocks`, for a detail that says whose sessions are refused.
fn block_names(blocks: &[&Isolation]) -> String {
    blocks.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Whether the kernel offers seccomp user notification, without which nothing is supervised.
fn seccomp_check() -> Check {
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    if actions.split_whitespace().any(|a| a == "user_notif") {
        check(SYSTEM, "seccomp user notification", Status::Pass, "available")
    } else {
        check(
            SYSTEM,
            "seccomp user notification",
            Status::Fail,
            "not available: no session can be supervised; every session gets the fail policy",
        )
    }
}

/// Whether the kernel is recent enough for the session filter (5.19), and for its fast path (6.6).
fn kernel_check() -> Check {
    match kernel_version() {
        Some((maj, min)) if (maj, min) >= (6, 6) => check(SYSTEM, "kernel", Status::Pass, format!("Linux {maj}.{min}")),
        Some((maj, min)) if (maj, min) >= (5, 19) => check(
            SYSTEM,
            "kernel",
            Status::Warn,
            format!("Linux {maj}.{min}: no synchronous wake-up (6.6), each decision costs tens of microseconds more"),
        ),
        Some((maj, min)) => check(
            SYSTEM,
            "kernel",
            Status::Fail,
            format!("Linux {maj}.{min}: the session filter needs 5.19 (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)"),
        ),
        None => check(SYSTEM, "kernel", Status::Skip, "version unreadable"),
    }
}

/// How sessions will check what an allowed exec loaded: the kernel's check, proven here by
/// letting an expected exec run and having two others killed before they run; or the ptrace
/// stop.
fn verify_check(config: &Config) -> Check {
    const NAME: &str = "exec verification";
    if config.verify == Verify::Ptrace {
        return check(SYSTEM, NAME, Status::Pass, "ptrace exec stop (verify = \"ptrace\")");
    }
    let probed = crate::sys::bpf::ExecCheck::connect(crate::sys::bpf::LOADER_DEADLINE)
        .map_err(|e| e.to_string())
        .and_then(|mut c| crate::sys::bpf::probe(&mut c));
    match probed {
        Ok(()) => check(SYSTEM, NAME, Status::Pass, "bpf: the kernel let the expected exec run and killed a swapped image, swapped arguments and another user namespace before they ran"),
        Err(e) => check(
            SYSTEM,
            NAME,
            Status::Warn,
            format!("ptrace exec stop: the kernel's check cannot be had ({e}); each exec costs a ptrace stop more"),
        ),
    }
}

/// Who makes session cgroups here: pam_systemd when logind runs, else the supervisor.
fn logind_check(logind: bool) -> Check {
    check(
        SYSTEM,
        "systemd-logind",
        Status::Pass,
        if logind { "running: pam_systemd manages session cgroups" } else { "not running: the supervisor makes session cgroups" },
    )
}

/// Whether Landlock can apply the configuration's layers (TCP ports need ABI 4).
fn landlock_check(config: &Config) -> Check {
    let uses_landlock: Vec<&Isolation> = config.isolation.iter().filter(|i| i.landlock.is_some()).collect();
    let needs_net = uses_landlock
        .iter()
        .any(|i| i.landlock.as_ref().is_some_and(|l| l.tcp_bind.is_some() || l.tcp_connect.is_some()));
    match session_wrapper_protocol::isolate::landlock::abi() {
        Ok(abi) if needs_net && abi < 4 => check(
            SYSTEM,
            "landlock",
            Status::Fail,
            format!("ABI {abi} cannot restrict TCP ports (needs 4): sessions under {} are refused", block_names(&uses_landlock)),
        ),
        Ok(abi) if uses_landlock.is_empty() => check(SYSTEM, "landlock", Status::Pass, format!("ABI {abi} (not used by this configuration)")),
        Ok(abi) => check(SYSTEM, "landlock", Status::Pass, format!("ABI {abi}")),
        Err(e) if uses_landlock.is_empty() => {
            check(SYSTEM, "landlock", Status::Skip, format!("not available ({}); not used", std::io::Error::from_raw_os_error(e)))
        }
        Err(e) => check(
            SYSTEM,
            "landlock",
            Status::Fail,
            format!(
                "not available ({}): sessions under {} are refused",
                std::io::Error::from_raw_os_error(e),
                block_names(&uses_landlock)
            ),
        ),
    }
}

/// For each cgroup controller a limit of the configuration needs: where it lives, or who
/// applies it.
fn cgroup_checks(config: &Config, logind: bool) -> Vec<Check> {
    let mut out = Vec::new();
    for c in [Controller::Memory, Controller::Pids, Controller::Cpu] {
        let users: Vec<&Isolation> = config
            .isolation
            .iter()
            .filter(|i| match c {
                Controller::Memory => i.memory_max.is_some(),
                Controller::Pids => i.pids_max.is_some(),
                Controller::Cpu => i.cpu_max.is_some(),
            })
            .collect();
        if !users.is_empty() {
            out.push(cgroup_check(c, &users, logind));
        }
    }
    out
}

/// Where controller `c`, which the limits of `users` need, lives.
fn cgroup_check(c: Controller, users: &[&Isolation], logind: bool) -> Check {
    let name = format!("cgroup {}", c.name());
    match (logind, c, cgroup::home(c)) {
        (true, Controller::Cpu, _) => check(
            SYSTEM,
            &name,
            Status::Warn,
            format!("cpu-max of {} is not applied: pam_systemd takes no CPU quota", block_names(users)),
        ),
        (true, _, _) => check(
            SYSTEM,
            &name,
            Status::Pass,
            "handed to pam_systemd (list pam_session_wrapper before pam_systemd in the session stack)",
        ),
        (false, _, Some(Home::V2(m))) => check(SYSTEM, &name, Status::Pass, format!("cgroup v2 at {}", m.display())),
        (false, _, Some(Home::V1(m))) => check(SYSTEM, &name, Status::Pass, format!("cgroup v1 at {}", m.display())),
        (false, _, None) => check(
            SYSTEM,
            &name,
            Status::Fail,
            format!("controller not available: sessions under {} are refused", block_names(users)),
        ),
    }
}

/// What each isolation block names that this system does not have: a private directory
/// that is not a directory here, a blocked system call libseccomp does not know.
fn isolation_checks(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for i in &config.isolation {
        for d in &i.private_dirs {
            if !Path::new(d).is_dir() {
                out.push(check(
                    SYSTEM,
                    &format!("private dir {d}"),
                    Status::Fail,
                    format!("not a directory here: sessions under {} are refused", i.name),
                ));
            }
        }
        if let Err(e) = crate::sys::filter::check_blocked(&i.block) {
            out.push(check(SYSTEM, "block-syscalls", Status::Fail, format!("{}: {e}", i.name)));
        }
    }
    out
}

/// A root-only directory for the self-test's files, removed when dropped.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let dir = PathBuf::from(format!("/run/session-wrapper-self-test.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let s = Scratch { dir };
        // Two programs whose names have the same length, so that a race can swap them.
        std::fs::copy("/bin/true", s.allowed())?;
        std::fs::copy("/usr/bin/touch", s.denied())?;
        std::fs::write(s.script(), format!("#!{}\n", s.denied().display()))?;
        for p in [s.allowed(), s.denied(), s.script()] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(s)
    }

    fn allowed(&self) -> PathBuf {
        self.dir.join("allow1")
    }

    fn denied(&self) -> PathBuf {
        self.dir.join("denyme")
    }

    fn script(&self) -> PathBuf {
        self.dir.join("script")
    }

    fn marker(&self, what: &str) -> PathBuf {
        self.dir.join(format!("ran-{what}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why the self-test could not make its policy or run a supervised session: the detail of
/// the check that fails.
#[derive(Debug, thiserror::Error)]
enum SelfTestError {
    /// The self-test's own policy does not parse.
    #[error("the self-test policy: {0}")]
    Policy(#[source] session_wrapper_config::ConfigError),
    /// The socket the supervisor logs to cannot be made.
    #[error("log socket: {0}")]
    LogSocket(#[source] std::io::Error),
    /// This program's own path, which the session runs as the probe, is unknown.
    #[error("own executable: {0}")]
    OwnExecutable(#[source] std::io::Error),
    /// The pipe the probe reports through cannot be made.
    #[error("pipe: {0}")]
    Pipe(#[source] nix::Error),
    /// The pipe's read end went into the child.
    #[error("pipe: gone")]
    PipeGone,
    /// The child that runs the session cannot be forked.
    #[error("fork: {0}")]
    Fork(#[source] nix::Error),
}

/// The self-test's own policy: allow, except the scratch directory's `denyme`, with the
/// guards of the configuration under test.
fn base_config(scratch: &Scratch, config: &Config) -> Result<Config, SelfTestError> {
    let text = format!(
        "mode = \"enforce\"\ndefault = \"allow\"\n[[rules]]\nname = \"self-test-refused\"\nexe = \"{}\"\naction = \"deny\"\nmessage = \"refused by the self-test\"\n",
        scratch.denied().display()
    );
    let mut base = Config::parse(&[Source::new("self-test", text)], &crate::configfile::canonicalize)
        .map_err(SelfTestError::Policy)?;
    base.policy.guards = config.policy.guards.clone();
    Ok(base)
}

/// What a supervised probe run gave.
#[derive(Debug)]
struct Outcome {
    /// `task -> (status, detail)` lines the probe printed.
    results: Vec<(String, String, String)>,
    /// Everything it printed (for failures).
    output: String,
    /// Its exit code.
    code: i32,
    /// The supervisor's log lines.
    log: Vec<String>,
}

impl Outcome {
    fn result(&self, task: &str) -> Option<(&str, &str)> {
        self.results.iter().find(|(t, _, _)| t == task).map(|(_, s, d)| (s.as_str(), d.as_str()))
    }
}

fn parse_results(output: &str) -> Vec<(String, String, String)> {
    output
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(4, '\t');
            (p.next()? == "PROBE").then_some(())?;
            Some((p.next()?.to_owned(), p.next()?.to_owned(), p.next().unwrap_or("").to_owned()))
        })
        .collect()
}

fn read_all_with_timeout(fd: &OwnedFd, limit: Duration) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
        if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) == 0 {
            continue;
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the probe with `tasks` in a supervised session made from `config`, as root.
fn supervised(config: &Config, tasks: &[String], scratch: &Scratch, n: usize) -> Result<Outcome, SelfTestError> {
    let sock_path = scratch.dir.join(format!("log-{n}.sock"));
    let _ = std::fs::remove_file(&sock_path);
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).map_err(SelfTestError::LogSocket)?;
    let _ = sock.set_nonblocking(true);
    let mut config = config.clone();
    config.log.socket = sock_path.display().to_string();
    // Its own spool: the self-test's lines are its own, and others' are not its to deliver.
    config.log.spool_dir = scratch.dir.join(format!("spool-{n}")).display().to_string();
    let exe = std::env::current_exe().map_err(SelfTestError::OwnExecutable)?;
    let mut command = vec![exe.into_os_string(), "__probe".into()];
    command.extend(tasks.iter().map(Into::into));
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SelfTestError::Pipe)?;
    let mut read_end = Some(r);
    let run_session = || {
        drop(read_end.take());
        // SAFETY: plain dup2 onto stdout and stderr.
        unsafe {
            libc::dup2(w.as_raw_fd(), 1);
            libc::dup2(w.as_raw_fd(), 2);
        }
        let options = CommandOptions {
            config,
            user: "root".into(),
            uid: 0,
            gid: 0,
            service: "session-wrapper-self-test".into(),
            command,
            fail_policy: session_wrapper_config::FailPolicy::Closed,
            debug: false,
        };
        match supervise_command(options) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("session start failed: {e}");
                e.exit_code()
            }
        }
    };
    // SAFETY: the self-test is single-threaded; the child runs the supervisor and exits.
    let child = unsafe { crate::session::fork_child(run_session) }.map_err(SelfTestError::Fork)?;
    let Some(r) = read_end else { return Err(SelfTestError::PipeGone) };
    drop(w);
    let output = read_all_with_timeout(&r, Duration::from_secs(180));
    let code = loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => break c,
            Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break -1,
        }
    };
    // The supervisor drains its log before it exits.
    let mut log = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        log.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = std::fs::remove_file(&sock_path);
    Ok(Outcome { results: parse_results(&output), output, code, log })
}

/// Runs the probe unconfined (for the errno a call gives without the filter).
fn unconfined(tasks: &[String]) -> Vec<(String, String, String)> {
    let Ok(exe) = std::env::current_exe() else { return Vec::new() };
    match std::process::Command::new(exe).arg("__probe").args(tasks).stdin(std::process::Stdio::null()).output() {
        Ok(o) => parse_results(&String::from_utf8_lossy(&o.stdout)),
        Err(_) => Vec::new(),
    }
}

/// Turns a probe line into a check: the probe decided pass/fail itself.
fn from_probe(layer: &str, name: &str, task: &str, o: &Outcome) -> Check {
    match o.result(task) {
        Some(("pass", d)) => check(layer, name, Status::Pass, d),
        Some(("skip", d)) => check(layer, name, Status::Skip, d),
        Some((_, d)) => check(layer, name, Status::Fail, d),
        None => check(layer, name, Status::Fail, format!("no answer from the probe (exit {}): {}", o.code, last_line(&o.output))),
    }
}

fn last_line(s: &str) -> String {
    s.lines().rfind(|l| !l.starts_with("PROBE\t")).unwrap_or("").to_owned()
}

/// Runs the self-test for `config`. Needs root.
pub fn run(config: &Config, comprehensive: bool) -> Vec<Check> {
    let mut out = system_checks(config);
    if !crate::run_as_root() {
        out.push(check("self-test", "privileges", Status::Fail, "the self-test applies every layer as a PAM session does: run it as root"));
        return out;
    }
    let scratch = match Scratch::new() {
        Ok(s) => s,
        Err(e) => {
            out.push(check("self-test", "scratch directory", Status::Fail, e.to_string()));
            return out;
        }
    };
    let base = match base_config(&scratch, config) {
        Ok(c) => c,
        Err(e) => {
            out.push(check("self-test", "policy", Status::Fail, e.to_string()));
            return out;
        }
    };
    out.extend(session_checks(&base, &scratch, comprehensive));
    for (n, block) in config.isolation.iter().enumerate() {
        out.extend(block_checks(&base, block, &scratch, comprehensive, n + 1));
    }
    out
}

fn session_checks(base: &Config, scratch: &Scratch, comprehensive: bool) -> Vec<Check> {
    const L: &str = "session";
    let allowed = scratch.allowed().display().to_string();
    let denied = scratch.denied().display().to_string();
    let mut tasks = vec![format!("exec-ok:{allowed}"), format!("exec-refused:{denied}:{}", scratch.marker("refused").display())];
    let attacks = [
        ("own listener", "listener".to_owned()),
        ("x32 system calls", "x32".to_owned()),
        ("io_uring", "io-uring".to_owned()),
        ("memfd exec of a refused program", format!("memfd:{denied}")),
        ("loader run as a program", format!("ldso:{allowed}")),
        ("script with a refused interpreter", format!("script:{}", scratch.script().display())),
        ("argument swap raced against the check", format!("race:{allowed}:{denied}:{}", scratch.marker("race").display())),
        ("user namespace of one's own (mounts over the loader and libraries)", "userns".to_owned()),
        ("library search path in a directory others can write", format!("ldpath:{allowed}")),
    ];
    if comprehensive {
        tasks.extend(attacks.iter().map(|(_, t)| t.clone()));
    }
    let o = match supervised(base, &tasks, scratch, 0) {
        Ok(o) => o,
        Err(e) => return vec![check(L, "supervised session", Status::Fail, e.to_string())],
    };
    let mut out = vec![from_probe(L, "supervised exec", &tasks[0], &o)];
    let mut refused = from_probe(L, "refused exec", &tasks[1], &o);
    if refused.status == Status::Pass {
        match o.log.iter().find(|l| l.contains("decision=deny") && l.contains("rule=self-test-refused")) {
            Some(_) => refused.detail.push_str(", logged (decision=deny rule=self-test-refused)"),
            None => {
                refused.status = Status::Fail;
                refused.detail = format!("refused but not logged; the supervisor logged {} lines", o.log.len());
            }
        }
    }
    out.push(refused);
    if comprehensive {
        use session_wrapper_config::GuardAction;
        let guards = &base.policy.guards;
        for (name, task) in &attacks {
            let mut c = from_probe(L, name, task, &o);
            // A class the configuration opened on purpose is a warning, not a failure.
            let opted_in = match task.as_str() {
                "userns" => guards.user_namespaces == GuardAction::Allow,
                t if t.starts_with("ldpath:") => guards.library_path == GuardAction::Allow,
                _ => false,
            };
            if opted_in && c.status == Status::Fail {
                c.status = Status::Warn;
                c.detail = format!("open by the configuration's [guards]: {}", c.detail);
            }
            out.push(c);
        }
    }
    out
}

/// A representative call for each blocked entry, as a probe task.
fn syscall_task(b: &Blocked) -> String {
    format!("syscall:{}", b.name())
}

fn covered(path: &Path, trees: &[String]) -> bool {
    trees.iter().any(|t| path.starts_with(t))
}

/// A directory outside every tree of `trees` (and of the private dirs), made for the probe.
fn outside_dir(trees: &[&[String]], private: &[String], tag: &str) -> Option<PathBuf> {
    for base in ["/var/tmp", "/tmp", "/root", "/srv", "/opt", "/var/lib", "/run"] {
        let dir = Path::new(base).join(format!("session-wrapper-self-test.{}.{tag}", std::process::id()));
        if covered(&dir, private) || trees.iter().any(|t| covered(&dir, t)) {
            continue;
        }
        if std::fs::create_dir(&dir).is_ok() {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
            return Some(dir);
        }
    }
    None
}

/// The self-test of one isolation block (the `n`th), applied on its own in a supervised
/// session: one check per task of [`BlockTest::prepare`].
fn block_checks(base: &Config, block: &Isolation, scratch: &Scratch, comprehensive: bool, n: usize) -> Vec<Check> {
    let layer = format!("isolation {}", block.name);
    let mut config = base.clone();
    config.isolation = vec![Isolation { users: None, groups: None, services: None, ..block.clone() }];
    let marker = format!("session-wrapper-self-test.{}", std::process::id());
    let test = BlockTest::prepare(block, comprehensive, n, &marker);
    let task_list: Vec<String> = test.tasks.iter().map(|(_, t)| t.clone()).filter(|t| !t.starts_with("skip:")).collect();
    if task_list.is_empty() {
        return test.tasks.iter().map(|(name, t)| check(&layer, name, Status::Skip, t.trim_start_matches("skip:"))).collect();
    }
    let baseline = unconfined(&task_list.iter().filter(|t| t.starts_with("syscall:")).cloned().collect::<Vec<_>>());
    let o = supervised(&config, &task_list, scratch, n);
    let tasks = test.finish();
    let o = match o {
        Ok(o) => o,
        Err(e) => return vec![check(&layer, "session start", Status::Fail, e.to_string())],
    };
    if o.results.is_empty() {
        return vec![check(&layer, "session start", Status::Fail, format!("the session did not start: {}", last_line(&o.output)))];
    }
    tasks.iter().map(|(name, task)| block_check(&layer, name, task, &o, &baseline, &marker)).collect()
}

/// The check of one task of a block's session: what the probe said, compared with the call
/// made unconfined (`baseline`) or with what the host sees.
fn block_check(layer: &str, name: &str, task: &str, o: &Outcome, baseline: &[(String, String, String)], marker: &str) -> Check {
    if let Some(reason) = task.strip_prefix("skip:") {
        return check(layer, name, Status::Skip, reason);
    }
    let mut c = from_probe(layer, name, task, o);
    if task.starts_with("syscall:") && c.status == Status::Pass {
        compare_unconfined(&mut c, task, baseline);
    }
    if task.starts_with("private:") && c.status == Status::Pass {
        check_nothing_left(&mut c, task, marker);
    }
    c
}

/// Adds what a blocked call gives unconfined to a passed check; a call that fails with
/// `EPERM` unconfined too proves nothing, and is skipped.
fn compare_unconfined(c: &mut Check, task: &str, baseline: &[(String, String, String)]) {
    let before = baseline.iter().find(|(t, _, _)| t == task).map(|(_, _, d)| d.clone());
    match before {
        Some(d) if d.starts_with("EPERM") => {
            c.status = Status::Skip;
            c.detail = "cannot tell: the call fails with EPERM unconfined too".into();
        }
        Some(d) => c.detail = format!("{} (unconfined: {d})", c.detail),
        None => {}
    }
}

/// Fails a passed private-directory check when the file the session made there (named
/// `marker`) is visible on the host, and removes it.
fn check_nothing_left(c: &mut Check, task: &str, marker: &str) {
    let dir = task.split(':').nth(1).unwrap_or("");
    if Path::new(dir).join(marker).exists() {
        c.status = Status::Fail;
        c.detail = format!("the session's file is visible on the host in {dir}");
        let _ = std::fs::remove_file(Path::new(dir).join(marker));
    } else {
        c.detail.push_str(", nothing left on the host");
    }
}

/// What one isolation block is tried with: the probe's tasks, each named by its check
/// (`skip:REASON` for one that cannot be tried here), and what they need while the session
/// runs. The directory made for the probe is removed when this is dropped.
#[derive(Debug)]
struct BlockTest {
    /// `(check, task)`, in the order the checks are shown.
    tasks: Vec<(String, String)>,
    /// A directory outside the block's Landlock trees, made for the probe.
    outside: Option<PathBuf>,
    /// Listeners on the ports the probe must fail to connect to.
    listeners: Vec<std::net::TcpListener>,
}

impl BlockTest {
    /// The tasks for `block` (the `n`th): each blocked call, each limit, each private
    /// directory (where the probe leaves a file named `marker`), each Landlock rule.
    fn prepare(block: &Isolation, comprehensive: bool, n: usize, marker: &str) -> Self {
        let mut test = BlockTest { tasks: Vec::new(), outside: None, listeners: Vec::new() };
        for b in &block.block {
            test.tasks.push((format!("blocks {}", b.name()), syscall_task(b)));
        }
        test.tasks.extend(limit_tasks(block, comprehensive));
        for d in &block.private_dirs {
            test.tasks.push((format!("private {d}"), format!("private:{d}:{marker}")));
        }
        if let Some(l) = &block.landlock {
            test.add_landlock_paths(l, &block.private_dirs, n);
            test.add_landlock_ports(l);
        }
        test
    }

    /// Tasks that try, in a directory outside every tree of `l` (and of `private`), each kind
    /// of access `l` restricts.
    fn add_landlock_paths(&mut self, l: &Landlock, private: &[String], n: usize) {
        let none: Vec<String> = Vec::new();
        let write = l.write.as_deref().unwrap_or(&none);
        let read = l.read.as_deref().unwrap_or(&none);
        let exec = l.execute.as_deref().unwrap_or(&none);
        let Some(dir) = outside_dir(&[write, read, exec], private, &n.to_string()) else {
            self.tasks.push(("landlock".into(), "skip:no directory outside the layer's trees to try".into()));
            return;
        };
        if l.write.is_some() {
            self.tasks.push(("landlock refuses a write outside".into(), format!("ll-write:{}", dir.display())));
        }
        if l.read.is_some() {
            let f = dir.join("unreadable");
            let _ = std::fs::write(&f, "self-test\n");
            self.tasks.push(("landlock refuses a read outside".into(), format!("ll-read:{}", f.display())));
        }
        if l.execute.is_some() {
            let f = dir.join("program");
            let _ = std::fs::copy("/bin/true", &f);
            self.tasks.push(("landlock refuses an exec outside".into(), format!("ll-exec:{}", f.display())));
        }
        self.outside = Some(dir);
    }

    /// Tasks that connect to, and bind, a port `l` does not allow. The connect needs a
    /// listener, kept until the session is over; the bind needs a port nothing listens on.
    fn add_landlock_ports(&mut self, l: &Landlock) {
        if let Some(allowed) = &l.tcp_connect {
            if let Some((sock, port)) = free_listener(allowed) {
                self.listeners.push(sock);
                self.tasks.push(("landlock refuses a TCP connect".into(), format!("ll-connect:{port}")));
            }
        }
        if let Some(allowed) = &l.tcp_bind {
            if let Some((sock, port)) = free_listener(allowed) {
                drop(sock);
                self.tasks.push(("landlock refuses a TCP bind".into(), format!("ll-bind:{port}")));
            }
        }
    }

    /// After the session: removes what was made for it and gives back the tasks.
    fn finish(mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.tasks)
    }
}

impl Drop for BlockTest {
    fn drop(&mut self) {
        if let Some(dir) = self.outside.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The resource-limit tasks of `block`: each limit in force, and held (an OOM kill, a fork
/// refused, CPU throttled; the costly ones only when `comprehensive`). Under systemd-logind
/// the limits are pam_systemd's, and the self-test cannot try them.
fn limit_tasks(block: &Isolation, comprehensive: bool) -> Vec<(String, String)> {
    let mut tasks: Vec<(String, String)> = Vec::new();
    let under_logind = cgroup::logind_running();
    if under_logind && (block.memory_max.is_some() || block.pids_max.is_some() || block.cpu_max.is_some()) {
        tasks.push((
            "resource limits".into(),
            "skip:systemd-logind manages cgroups here: limits are handed to pam_systemd in a real login (check `systemctl show` of its session scope)".into(),
        ));
    }
    if let Some(m) = block.memory_max.filter(|_| !under_logind) {
        tasks.push(("memory-max in force".into(), format!("limit:memory:{m}")));
        if comprehensive {
            tasks.push(("memory-max holds (OOM kill)".into(), format!("memory-hold:{m}")));
        }
    }
    if let Some(p) = block.pids_max.filter(|_| !under_logind) {
        tasks.push(("pids-max in force".into(), format!("limit:pids:{p}")));
        tasks.push(("pids-max holds (fork until refused)".into(), format!("pids-hold:{p}")));
    }
    if let Some(c) = block.cpu_max.filter(|_| !under_logind) {
        tasks.push(("cpu-max in force".into(), format!("limit:cpu:{}:{}", c.quota, c.period)));
        if comprehensive {
            tasks.push(("cpu-max holds (spin, measure)".into(), format!("cpu-hold:{}:{}", c.quota, c.period)));
        }
    }
    tasks
}

/// A TCP listener on 127.0.0.1 whose port is not in `allowed`.
fn free_listener(allowed: &[u16]) -> Option<(std::net::TcpListener, u16)> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let port = l.local_addr().ok()?.port();
        if !allowed.contains(&port) {
            return Some((l, port));
        }
    }
    None
}
