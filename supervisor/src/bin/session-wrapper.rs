//! `session-wrapper`: run one command under a supervisor, check the configuration, explain a
//! decision. See session-wrapper(8).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use session_wrapper::configfile::{self, LoadError, DEFAULT_PATH};
use session_wrapper::exec::decide::{self, DecidedOn, Subject};
use session_wrapper::sys::exefile::Loaders;
use session_wrapper::sys::resolve::ExecPlan;
use session_wrapper::session::command::{supervise_command, CommandOptions};
use session_wrapper::{policytest, selftest};
use session_wrapper::sys::users;
use session_wrapper_config::text::{escape, escape_argv};
use session_wrapper_config::{Action, Config, DecidedBy, Decision, FailPolicy, Policy, Rule, ScopeVerdict};

#[derive(Parser, Debug)]
#[command(
    name = "session-wrapper",
    version,
    about = "Per-command authorization for login sessions",
    long_about = "Per-command authorization for login sessions.\n\nWithout a subcommand, runs COMMAND under a supervisor, as `run` does: \
                  session-wrapper --user USER [--user-uid UID --user-gid GID] [--fail-policy open|closed] -- COMMAND [ARGS]...",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FailPolicyArg {
    Open,
    Closed,
}

/// `session-wrapper run` (and `session-wrapper` without a subcommand).
#[derive(Args, Debug)]
struct RunArgs {
    /// Configuration file (default: /etc/session-wrapper/config.toml, or the built-in
    /// default, which allows and logs everything, when that does not exist).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The user to run as; also the identity commands are authorized for.
    #[arg(long, required = true)]
    user: Option<String>,
    /// Its uid (default: looked up).
    #[arg(long)]
    user_uid: Option<u32>,
    /// Its primary gid (default: looked up).
    #[arg(long)]
    user_gid: Option<u32>,
    /// Overrides the configuration's fail-policy; also decides what happens when the
    /// supervisor cannot start (open: run unsupervised; closed: do not run).
    #[arg(long, value_enum)]
    fail_policy: Option<FailPolicyArg>,
    /// The service name rules see.
    #[arg(long, default_value = "session-wrapper")]
    service: String,
    /// Syslog socket (overrides the configuration's log.socket).
    #[arg(long)]
    log_socket: Option<String>,
    /// Where lines syslog cannot take yet are kept (overrides the configuration's
    /// log.spool-dir; root only).
    #[arg(long)]
    spool_dir: Option<String>,
    /// Log debug lines (unresolvable execs).
    #[arg(long)]
    debug: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run COMMAND under a supervisor: every exec it and its descendants make is decided
    /// (the same as `session-wrapper` without a subcommand).
    Run(RunArgs),
    /// Check the configuration and whether this system can enforce it: exit 0 when valid
    /// and supported, 1 with located errors or with what a session would lose.
    CheckConfig {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON object, for monitoring.
        #[arg(long)]
        json: bool,
        /// Also connect to each TACACS+ server (and complete the TLS handshake) and say
        /// what was found.
        #[arg(long)]
        connect: bool,
    },
    /// Prove, as root, in supervised child sessions, that every layer the configuration uses
    /// works here: exit 0 when all do, 1 naming the layer that does not.
    SelfTest {
        /// Configuration file (default: /etc/session-wrapper/config.toml, or the built-in
        /// default when that does not exist).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also run the quick attacks of the threat model, hold each limit (OOM kill, CPU
        /// throttling) and race the exec check.
        #[arg(long)]
        comprehensive: bool,
        /// One JSON object, for monitoring.
        #[arg(long)]
        json: bool,
    },
    /// The self-test's probe (internal).
    #[command(name = "__probe", hide = true)]
    Probe {
        /// Tasks.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        tasks: Vec<OsString>,
    },
    /// Show how the policy decides COMMAND for a user, and which rule decides.
    Explain {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The login user.
        #[arg(long)]
        user: String,
        /// The PAM service of the session.
        #[arg(long, default_value = "sshd")]
        service: String,
        /// The effective user at the exec (default: the login user), e.g. root under sudo.
        #[arg(long)]
        target_user: Option<String>,
        /// One JSON object, for tooling.
        #[arg(long)]
        json: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
    /// Decide recorded execs again under a candidate configuration and print what changes:
    /// exit 0 when nothing that ran would be refused, 1 otherwise, 2 on a usage or
    /// configuration error.
    Replay {
        /// The candidate configuration (its config.d/ is read too).
        #[arg(long, required = true)]
        config: PathBuf,
        /// Decide on the login users' groups as they are now, not as recorded.
        #[arg(long)]
        groups_now: bool,
        /// One JSON object, for tooling.
        #[arg(long)]
        json: bool,
        /// Files of log lines (syslog files such as /var/log/auth.log, `journalctl -o cat`
        /// output); standard input when none.
        files: Vec<PathBuf>,
    },
    /// Run a policy's test cases (FILE.toml: user, groups, service, target user, command ->
    /// expected decision and rule): exit 0 when every case holds, 1 naming each that does
    /// not and the rule that decided, 2 when a file or the configuration cannot be read.
    Test {
        /// Configuration file (default: the case file's `config`, else
        /// /etc/session-wrapper/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Case files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the live supervised sessions (root only).
    Sessions {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the built-in default configuration.
    DefaultConfig,
    /// Deliver the TACACS+ accounting records that sessions whose supervisor is gone left in
    /// the accounting spool (as root; a shipped systemd timer runs it): exit 0 when none is
    /// left, 1 when some still wait for a server.
    DeliverAccounting {
        /// Configuration file (its [tacacs] servers and [log] spool-dir).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Loads `--config`, else the default file, else (when `builtin_ok`) the built-in default.
fn load_config(path: Option<&Path>, builtin_ok: bool) -> Result<Config, LoadError> {
    match path {
        Some(p) => configfile::load(p),
        None => match configfile::load(Path::new(DEFAULT_PATH)) {
            Err(LoadError::NotFound(_)) if builtin_ok => {
                eprintln!("session-wrapper: no {DEFAULT_PATH}; using the built-in default policy");
                configfile::builtin()
            }
            other => other,
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        None => cmd_run(cli.run),
        Some(Command::Run(args)) => cmd_run(args),
        Some(Command::CheckConfig { config, json, connect }) => cmd_check_config(config.as_deref(), json, connect),
        Some(Command::DeliverAccounting { config }) => cmd_deliver_accounting(config.as_deref()),
        Some(Command::SelfTest { config, comprehensive, json }) => cmd_self_test(config.as_deref(), comprehensive, json),
        Some(Command::Probe { tasks }) => session_wrapper::selftest::probe::main(&tasks),
        Some(Command::Explain { config, user, service, target_user, json, command }) => {
            cmd_explain(config.as_deref(), &user, &service, target_user.as_deref(), &command, json)
        }
        Some(Command::Replay { config, groups_now, json, files }) => cmd_replay(&config, groups_now, json, &files),
        Some(Command::Test { config, files }) => cmd_test(config.as_deref(), &files),
        Some(Command::Sessions { json }) => cmd_sessions(json),
        Some(Command::DefaultConfig) => {
            print!("{}", session_wrapper_config::BUILTIN);
            0
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn cmd_run(a: RunArgs) -> i32 {
    let mut config = match load_config(a.config.as_deref(), true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session-wrapper: {e}");
            return 1;
        }
    };
    if let Some(p) = a.fail_policy {
        config.fail_policy = match p {
            FailPolicyArg::Open => FailPolicy::Open,
            FailPolicyArg::Closed => FailPolicy::Closed,
        };
    }
    if let Some(s) = a.log_socket {
        config.log.socket = s;
    }
    if let Some(d) = a.spool_dir {
        config.log.spool_dir = d;
    }
    let Some(user) = a.user else {
        eprintln!("session-wrapper: --user is required");
        return 2;
    };
    let looked_up = users::lookup(&user).ok().flatten();
    let (uid, gid) = match (a.user_uid, a.user_gid, &looked_up) {
        (Some(u), Some(g), _) => (u, g),
        (u, g, Some(l)) => (u.unwrap_or(l.uid), g.unwrap_or(l.gid)),
        _ => {
            eprintln!("session-wrapper: unknown user {user:?}: give --user-uid and --user-gid");
            return 1;
        }
    };
    let fail_policy = config.fail_policy;
    match supervise_command(CommandOptions {
        config,
        user,
        uid,
        gid,
        service: a.service,
        command: a.command,
        fail_policy,
        debug: a.debug,
    }) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("session-wrapper: {e}");
            e.exit_code()
        }
    }
}

fn cmd_replay(path: &Path, groups_now: bool, json: bool, files: &[PathBuf]) -> i32 {
    use std::io::BufRead;
    use session_wrapper::replay::{self, Replay};
    let config = match configfile::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session-wrapper: {e}");
            return 2;
        }
    };
    let lookup = |user: &str| users::lookup(user).ok().flatten().map(|u| u.groups);
    let mut replay = Replay::new(&config, groups_now.then_some(&lookup as replay::GroupsNow<'_>));
    let mut read = |name: &str, input: &mut dyn BufRead| -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            n += 1;
            // The supervisor writes only ASCII and UTF-8 (every other byte is %XX).
            let text = String::from_utf8_lossy(&buf);
            replay.line(name, n, text.trim_end_matches(['\n', '\r']));
        }
    };
    let result = if files.is_empty() {
        read("-", &mut std::io::stdin().lock())
    } else {
        files.iter().try_for_each(|f| {
            let file = std::fs::File::open(f).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", f.display())))?;
            read(&f.display().to_string(), &mut std::io::BufReader::new(file))
        })
    };
    if let Err(e) = result {
        eprintln!("session-wrapper: reading the log lines: {e}");
        return 2;
    }
    let report = replay.finish();
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["candidate"] = serde_json::json!(config.sources);
        v["ok"] = serde_json::json!(report.ok());
        println!("{v}");
    } else {
        print!("{}", replay::render(&report, &config.sources.join(", ")));
    }
    i32::from(!report.ok())
}

fn cmd_test(config: Option<&Path>, files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        let cases = match policytest::CaseFile::read(f) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("session-wrapper: {e}");
                return 2;
            }
        };
        let path = config.map(Path::to_path_buf).or_else(|| {
            cases.config.as_ref().map(|c| f.parent().unwrap_or(Path::new(".")).join(c))
        });
        let config = match load_config(path.as_deref(), false) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("session-wrapper: {e}");
                return 2;
            }
        };
        println!("{} ({})", f.display(), config.sources.join(", "));
        let outcomes = policytest::run(&config, &cases);
        print!("{}", policytest::render(&outcomes));
        failed |= outcomes.iter().any(|o| !o.ok);
    }
    i32::from(failed)
}

fn cmd_deliver_accounting(path: Option<&Path>) -> i32 {
    use session_wrapper::authz::tacacs::{accounting, journal};
    use session_wrapper::log::LogSink;
    let config = match load_config(path, false) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session-wrapper: {e}");
            return 1;
        }
    };
    let path = Path::new(&config.log.spool_dir).join(journal::SUBDIR);
    if !path.exists() {
        println!("no accounting spool at {}: nothing to deliver", path.display());
        return 0;
    }
    if config.tacacs.servers.is_empty() {
        eprintln!("session-wrapper: no [[tacacs.servers]] configured: nothing to deliver to");
        return 1;
    }
    let dir = match journal::AcctDir::open(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("session-wrapper: {}: {e}", path.display());
            return 1;
        }
    };
    let done = match accounting::deliver_orphans(&config.tacacs, &dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("session-wrapper: TACACS+: {e}");
            return 1;
        }
    };
    let mut log = session_wrapper::log::syslog::Syslog::for_config(&config.log);
    for l in &done.lines {
        log.emit(l);
    }
    log.drain(std::time::Duration::from_secs(2));
    let (mut sent, mut left) = (0, 0);
    for c in &done.journals {
        sent += c.delivered;
        left += c.left;
        let err = c.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        println!("session {}: {} delivered, {} left{err}", c.session, c.delivered, c.left);
    }
    println!(
        "{} journals, {sent} records delivered, {left} left; {} journals held by live supervisors (they deliver their own)",
        done.journals.len(),
        done.held
    );
    i32::from(left > 0)
}

fn cmd_sessions(json: bool) -> i32 {
    use session_wrapper::session::runtime;
    let dir = Path::new(runtime::DIR);
    if dir.exists() && std::fs::read_dir(dir).is_err() {
        eprintln!("session-wrapper: cannot read {}: the session list is root's", dir.display());
        return 1;
    }
    runtime::refresh(dir, std::time::Duration::from_millis(500));
    let sessions = runtime::list(dir);
    if json {
        for s in &sessions {
            let (processes, tty) = runtime::processes(s);
            let line = serde_json::json!({
                "id": s.id, "user": s.user, "service": s.service, "tty": tty.as_deref().unwrap_or(&s.tty),
                "pam_tty": s.tty, "rhost": s.rhost, "started": s.started, "mode": s.mode, "config": s.config,
                "processes": processes, "allowed": s.allowed, "refused": s.refused, "killed": s.killed,
                "leader": s.leader, "supervisor": s.supervisor,
            });
            println!("{line}");
        }
        return 0;
    }
    if sessions.is_empty() {
        println!("no live sessions");
        return 0;
    }
    println!("{:<12} {:<12} {:<8} {:<12} {:<16} {:<20} {:<7} {:>5} COUNTS", "SESSION", "USER", "SERVICE", "TTY", "FROM", "STARTED", "MODE", "PROCS");
    for s in &sessions {
        let (processes, tty) = runtime::processes(s);
        let tty = tty.as_deref().map_or(s.tty.as_str(), |t| t.trim_start_matches("/dev/"));
        let word = |v: &str| session_wrapper_config::text::escape_word(v.as_bytes());
        println!(
            "{:<12} {:<12} {:<8} {:<12} {:<16} {:<20} {:<7} {:>5} allowed={} refused={} killed={} supervisor={} config={}",
            s.id,
            word(&s.user),
            word(&s.service),
            word(tty),
            word(&s.rhost),
            session_wrapper::sys::calendar_time(s.started, false),
            s.mode,
            processes,
            s.allowed,
            s.refused,
            s.killed,
            s.supervisor,
            word(&s.config)
        );
    }
    0
}


fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn cmd_self_test(path: Option<&Path>, comprehensive: bool, json: bool) -> i32 {
    let config = match load_config(path, true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("session-wrapper: {e}");
            return 1;
        }
    };
    let checks = selftest::run(&config, comprehensive);
    if json {
        println!("{}", selftest::render_json(&checks));
    } else {
        println!("session-wrapper self-test ({})", config.sources.join(", "));
        print!("{}", selftest::render(&checks));
    }
    i32::from(!selftest::all_ok(&checks))
}

fn cmd_check_config(path: Option<&Path>, json: bool, connect: bool) -> i32 {
    let config = match load_config(path, false) {
        Ok(c) => c,
        Err(e) => return report_invalid(&invalid_reason(path, e), json),
    };
    let mut system = selftest::system_checks(&config);
    system.extend(selftest::policy_lints(&config));
    if connect {
        system.extend(selftest::tacacs_connect(&config));
    }
    if json {
        print_check_json(&config, &system);
        return i32::from(!selftest::all_ok(&system));
    }
    println!("configuration: {}", config.sources.join(", "));
    print_settings(&config);
    print_rules(&config.policy);
    println!("isolation ({} blocks):", config.isolation.len());
    for i in &config.isolation {
        println!("  {:<24} {}  ({})", i.name, describe_isolation(i), i.origin);
    }
    print!("{}", selftest::render(&system));
    if selftest::all_ok(&system) {
        println!("OK");
        0
    } else {
        println!("the configuration is valid, but this system cannot enforce all of it (see FAIL above)");
        1
    }
}

/// Why check-config found no valid configuration at `path` (the default file when `None`).
fn invalid_reason(path: Option<&Path>, e: LoadError) -> String {
    match e {
        LoadError::NotFound(p) => format!(
            "session-wrapper: no configuration at {}: the PAM module applies its fail_policy; \
             `session-wrapper run` uses the built-in default (see `session-wrapper default-config`)",
            p.display()
        ),
        e => {
            let shown = path.map_or_else(|| DEFAULT_PATH.to_owned(), |p| p.display().to_string());
            format!("{e}\nsession-wrapper: {shown}: configuration is NOT valid")
        }
    }
}

/// Says that the configuration is not valid, and why: a JSON object on stdout with `json`,
/// else a message on stderr. Returns check-config's exit code, 1.
fn report_invalid(why: &str, json: bool) -> i32 {
    if json {
        println!("{}", serde_json::json!({ "valid": false, "error": why, "ok": false }));
    } else {
        eprintln!("{why}");
    }
    1
}

/// check-config's answer for monitoring: one JSON object with the configuration's outline and
/// the system checks.
fn print_check_json(config: &Config, system: &[selftest::Check]) {
    println!(
        "{}",
        serde_json::json!({
            "valid": true,
            "ok": selftest::all_ok(system),
            "sources": config.sources,
            "mode": config.mode.as_str(),
            "rules": config.policy.rules.len(),
            "isolation": config.isolation.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
            "system": system,
        })
    );
}

/// The settings lines of check-config: mode and defaults, scope, guards.
fn print_settings(config: &Config) {
    let p = &config.policy;
    println!(
        "mode: {}  fail-policy: {}  deny-errno: {}  verify: {}  default: {}",
        config.mode.as_str(),
        config.fail_policy.as_str(),
        config.deny_errno.name,
        config.verify.as_str(),
        p.default_action.as_str()
    );
    let s = &config.scope;
    println!(
        "scope: users={} groups={} services={} exempt-users={} exempt-groups={}",
        if s.users.is_empty() && s.groups.is_empty() { "all".into() } else { list(&s.users) },
        list(&s.groups),
        if s.services.is_empty() { "all".into() } else { list(&s.services) },
        list(&s.exempt_users),
        list(&s.exempt_groups)
    );
    let g = &p.guards;
    let ga = |a| if a == session_wrapper_config::GuardAction::Deny { "deny" } else { "allow" };
    println!(
        "guards: memfd={} deleted={} foreign-mount={} user-namespaces={} dynamic-loader={} loader-env={} library-path={} traced={} io-uring={}",
        ga(g.memfd),
        ga(g.deleted),
        ga(g.foreign_mount),
        ga(g.user_namespaces),
        ga(g.dynamic_loader),
        list(&g.loader_env),
        ga(g.library_path),
        ga(g.traced),
        ga(g.io_uring)
    );
}

/// The rules in the order they are tried, then a note for each pattern that matches another
/// path on this system, or is matched only as written.
fn print_rules(p: &Policy) {
    println!("rules ({}, first match wins, then default {}):", p.rules.len(), p.default_action.as_str());
    let mut notes = Vec::new();
    for (i, r) in p.rules.iter().enumerate() {
        let exes: Vec<&str> = r.exe_patterns().map(|e| e.written()).collect();
        println!(
            "  {:>3}. {:<24} {:<9} exe={}  ({})",
            i + 1,
            r.name,
            r.action.as_str(),
            if exes.is_empty() { "any".into() } else { exes.join(",") },
            r.origin
        );
        notes.extend(rule_notes(r));
    }
    for n in &notes {
        println!("note: {n}");
    }
}

/// What check-config notes about the exe patterns of rule `r`.
fn rule_notes(r: &Rule) -> Vec<String> {
    let mut notes = Vec::new();
    for e in r.exe_patterns() {
        if let Some(c) = e.canonical_form() {
            notes.push(format!("rule {}: {} matches {} on this system", r.name, e.written(), c));
        } else if e.written().len() > 1 && leads_through_untrusted(e.written()) {
            notes.push(format!(
                "rule {}: {} leads through a directory or link someone other than root can change: it is matched only as written",
                r.name,
                e.written()
            ));
        }
    }
    notes
}

/// Whether a pattern's literal directory leads through something others than root can change.
fn leads_through_untrusted(written: &str) -> bool {
    let literal = written.split(['*', '?', '[', '{']).next().unwrap_or(written);
    let dir = literal.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    let Ok(root) = nix::fcntl::open("/", nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()) else {
        return false;
    };
    use std::os::fd::AsFd;
    matches!(session_wrapper::sys::trust::resolve(root.as_fd(), dir.as_bytes()), session_wrapper::sys::trust::Lookup::Untrusted(_))
}

fn describe_isolation(i: &session_wrapper_config::Isolation) -> String {
    let mut parts = Vec::new();
    let who = [("users", &i.users), ("groups", &i.groups), ("services", &i.services)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", v.join(","))))
        .collect::<Vec<_>>();
    parts.push(if who.is_empty() { "applies to every session".to_owned() } else { who.join(" ") });
    if !i.block.is_empty() {
        parts.push(format!("block={}", i.block.iter().map(|b| b.name()).collect::<Vec<_>>().join(",")));
    }
    if let Some(m) = i.memory_max {
        parts.push(format!("memory-max={m}"));
    }
    if let Some(p) = i.pids_max {
        parts.push(format!("pids-max={p}"));
    }
    if let Some(c) = i.cpu_max {
        parts.push(format!("cpu-max={} {}", c.quota, c.period));
    }
    if !i.private_dirs.is_empty() {
        parts.push(format!("private-dirs={}", i.private_dirs.join(",")));
    }
    if i.landlock.is_some() {
        parts.push("landlock".into());
    }
    parts.join(" ")
}

fn cmd_explain(
    path: Option<&Path>,
    user: &str,
    service: &str,
    target: Option<&str>,
    command: &[OsString],
    json: bool,
) -> i32 {
    let fail = |why: String| {
        if json {
            println!("{}", serde_json::json!({ "error": why }));
        } else {
            eprintln!("session-wrapper: {why}");
        }
        1
    };
    let config = match load_config(path, true) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let login = match users::lookup(user) {
        Ok(Some(u)) => u,
        Ok(None) => return fail(format!("no such user {user:?}")),
        Err(e) => return fail(format!("looking up {user:?}: {e}")),
    };
    let scope = config.scope.check(&login.name, &login.groups, service);
    let argv: Vec<Vec<u8>> = command.iter().map(|a| a.as_bytes().to_vec()).collect();
    let program = policytest::find_program(&command[0]);
    let plan = policytest::plan_command(&program, &argv);
    let target_user = target.unwrap_or(&login.name).to_owned();
    let who = Subject {
        user: &login,
        service,
        target_user: &target_user,
        loader_env: None,
        untrusted_library_path: None,
        traced: false,
        foreign_user_namespace: false,
    };
    let decided = plan.as_ref().ok().map(|plan| decide::decide_plan(&config, &Loaders::discover(), &who, plan, &argv));
    if json {
        let words = |v: &[Vec<u8>]| v.iter().map(|b| escape(b)).collect::<Vec<_>>();
        let mut out = serde_json::json!({
            "user": login.name,
            "groups": login.groups,
            "service": service,
            "target_user": target_user,
            "supervised": scope == ScopeVerdict::Supervised,
            "scope": format!("{scope:?}"),
            "mode": config.mode.as_str(),
            "sources": config.sources,
            "command": escape(program.as_bytes()),
            "argv": words(&argv),
            "invoked_as": escape(session_wrapper_config::invoked_name(&argv[0])),
        });
        match (&plan, &decided) {
            (Ok(plan), Some((d, on))) => {
                out["real_file"] = escape(&plan.named.real_path).into();
                out["links"] = words(&plan.named.links).into();
                out["interpreters"] = plan.interpreters.iter().map(|i| escape(&i.file.real_path)).collect::<Vec<_>>().into();
                out["decision"] = d.action.as_str().into();
                out["rule"] = config.policy.decider_name(d.by).into();
                out["decided_by"] = match d.by {
                    DecidedBy::Rule(_) => "rule",
                    DecidedBy::Default => "default",
                    DecidedBy::Guard(_) => "guard",
                }
                .into();
                if let DecidedBy::Rule(i) = d.by {
                    out["rule_origin"] = config.policy.rules[i].origin.to_string().into();
                }
                if let DecidedOn::Interpreter(i) = on {
                    out["about_interpreter"] = escape(&plan.interpreters[*i].file.real_path).into();
                }
                out["message"] = d.message.clone().into();
            }
            (Err(e), _) => out["error"] = format!("cannot be run: {e}").into(),
            _ => {}
        }
        println!("{out}");
        return i32::from(plan.is_err());
    }
    println!("user: {} (groups: {})  service: {service}", login.name, login.groups.join(","));
    match scope {
        ScopeVerdict::Supervised => println!("scope: supervised"),
        other => println!("scope: NOT supervised ({other:?}): every command runs unchecked"),
    }
    let (plan, (d, on)) = match (plan, decided) {
        (Ok(plan), Some(decided)) => (plan, decided),
        (Err(e), _) => {
            println!("command: {} cannot be run: {e}", escape(program.as_bytes()));
            return 1;
        }
        (Ok(_), None) => return 1,
    };
    print_command(&program, &plan, &argv);
    let (argv_text, _) = escape_argv(&argv, 512);
    println!("argv: {argv_text}  target user: {target_user}");
    println!("decision: {}", describe_decision(&config, &d, on, &plan));
    if let Some(m) = &d.message {
        println!("message: {m}");
    }
    if config.mode == session_wrapper_config::Mode::Audit {
        println!("mode: audit (the decision is logged, nothing is refused)");
    }
    0
}

/// The command lines of explain: the file that runs, the name it is invoked as when that
/// differs, and its `#!` interpreters.
fn print_command(program: &OsString, plan: &ExecPlan, argv: &[Vec<u8>]) {
    println!("command: {} (real file {})", escape(program.as_bytes()), escape(&plan.named.real_path));
    let invoked = session_wrapper_config::invoked_name(&argv[0]);
    if !plan.named.real_path.ends_with(&[b"/", invoked].concat()) {
        let through: Vec<String> = plan.named.links.iter().map(|l| escape(l)).collect();
        let through = if through.is_empty() { "no link of that name in a root-only directory".into() } else { through.join(", ") };
        println!("  invoked as: {} ({through})", escape(invoked));
    }
    for i in &plan.interpreters {
        println!("  #! interpreter: {}", escape(&i.file.real_path));
    }
}

/// A decision as explain shows it: the action, what decided it, and whether it is about an
/// interpreter of the command rather than the command.
fn describe_decision(config: &Config, d: &Decision, on: DecidedOn, plan: &ExecPlan) -> String {
    let verdict = match d.action {
        Action::Allow => "ALLOW".to_owned(),
        Action::Deny => "DENY".to_owned(),
        Action::Authorize => format!(
            "AUTHORIZE (ask the authorization backend; without an answer, fail-policy {} {})",
            config.fail_policy.as_str(),
            if config.fail_policy == FailPolicy::Open { "allows" } else { "denies" }
        ),
    };
    let by = match d.by {
        DecidedBy::Rule(i) => format!(
            "rule {:?} at {}",
            config.policy.rules[i].name, config.policy.rules[i].origin
        ),
        DecidedBy::Default => "the default action (no rule matched)".to_owned(),
        DecidedBy::Guard(g) => format!("the {} guard", g.as_str()),
    };
    let about = match on {
        DecidedOn::Named => String::new(),
        DecidedOn::Interpreter(i) => format!(
            " (about its #! interpreter {})",
            escape(&plan.interpreters[i].file.real_path)
        ),
    };
    format!("{verdict} by {by}{about}")
}
