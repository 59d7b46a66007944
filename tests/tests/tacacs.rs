//! TACACS+ authorization and accounting end to end: the supervisor against the test server in
//! `tests/tacacs/server.py` (proven against an independent client there), through
//! `session-wrapper run` and through a real su session.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use session_wrapper_tests::lines::{find, supervisor_pid};
use session_wrapper_tests::tacacs::{certificates, key_file, read_events, server_command, Server, KEY};
use session_wrapper_tests::{
    free_port, require_root, stderr, stdout, ConfigFile, KillOnDrop, Sandbox, Syslog, TempDir, Wrapped,
};

const T: Duration = Duration::from_secs(60);
/// Policy: echo goes to TACACS+, everything else is allowed locally.
fn config(servers: &str, extra: &str) -> (ConfigFile, TempDir) {
    let (keys, key) = key_file(KEY, 0o600);
    let text = format!(
        "default = \"allow\"\nfail-policy = \"closed\"\n{extra}\n[[rules]]\nname = \"echo-via-tacacs\"\nexe = \"/usr/bin/echo\"\naction = \"authorize\"\n\n[tacacs]\nkey-file = \"{}\"\ntimeout-ms = 1500\n{servers}\n",
        key.display()
    );
    (ConfigFile::new(&text), keys)
}

fn server_entry(port: u16, timeout_ms: u64) -> String {
    format!("[[tacacs.servers]]\nhost = \"127.0.0.1\"\nport = {port}\ntimeout-ms = {timeout_ms}\n")
}

const RULES: &str = r#"
default = "deny"
[[rule]]
name = "echo-ok"
cmd = "^/usr/bin/echo$"
args = "^ok"
action = "permit"
[[rule]]
name = "echo-forbidden"
cmd = "^/usr/bin/echo$"
args = "^forbidden"
action = "deny"
message = "echo forbidden is refused by the TACACS+ server"
"#;

fn run(log: &Syslog, cfg: &ConfigFile, argv: &[&str]) -> std::process::Output {
    Wrapped::new(log).config(cfg.path()).as_nobody().run(argv)
}

#[test]
fn su_session_commands_are_permitted_and_denied_by_argument_pattern() {
    require_root!();
    let srv = Server::start(RULES, &["--single-connect"]);
    let (cfg, _k) = config(&server_entry(srv.port, 1000), "");
    let (sb, u) = Sandbox::with_user("su", "swtac", 4501, &cfg, "");
    let out = sb.run(&["su", "-", &u.name, "-c", "/usr/bin/echo ok; /usr/bin/echo forbidden; echo status=$?"], T);
    assert_eq!(stdout(&out), "ok\nstatus=126\n", "{}", stderr(&out));
    // The server's message is what the user sees.
    assert!(
        stderr(&out).contains("session-wrapper: /usr/bin/echo: echo forbidden is refused by the TACACS+ server"),
        "{}",
        stderr(&out)
    );
    let lines = sb.log.until_session_end(T);
    let ok = find(&lines, "argv=\"/usr/bin/echo ok\"");
    assert!(ok.contains("decision=allow") && ok.contains("authz=tacacs") && ok.contains("status=PASS_ADD"), "{ok}");
    assert!(ok.contains(&format!("server=127.0.0.1:{}", srv.port)), "{ok}");
    let no = find(&lines, "argv=\"/usr/bin/echo forbidden\"");
    assert!(no.contains("decision=deny") && no.contains("status=FAIL") && no.contains("rule=echo-via-tacacs"), "{no}");
    // What the server saw: the login user, one cmd-arg per argument.
    let auth = srv.events("authorization");
    let first = auth.iter().find(|e| e["args"].to_string().contains("cmd-arg=ok")).expect("ok request");
    assert_eq!(first["user"], "swtac");
    assert_eq!(first["args"], serde_json::json!(["service=shell", "cmd=/usr/bin/echo", "cmd-arg=ok"]));
}

/// The supervisor confines itself before it starts a thread (after the PAM module heard
/// "ready", before it reads a notification): its TACACS+ workers and accounting thread have
/// its capabilities and bounding set, `NO_NEW_PRIVS` and its filter. Capabilities are per
/// thread: one started before the confinement would keep them all.
#[test]
fn the_supervisor_s_threads_start_under_its_confinement() {
    require_root!();
    let srv = Server::start(RULES, &[]);
    let (cfg, _k) = config(&server_entry(srv.port, 1000), "");
    let (sb, u) = Sandbox::with_user("su", "swtacthr", 4502, &cfg, "");
    let mut child = sb
        .command(&["timeout", "30", "su", "-", &u.name, "-c", "/usr/bin/echo ok; sleep 2"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = sb.log.wait_for(|l| l.contains("event=session-start"), T).expect("session start");
    sb.log.wait_for(|l| l.contains("argv=\"/usr/bin/echo ok\"") && l.contains("status=PASS_ADD"), T).expect("echo ok, permitted");
    let sup = supervisor_pid(&start);
    let field = |tid: &str, key: &str| -> String {
        let s = std::fs::read_to_string(format!("/proc/{sup}/task/{tid}/status")).unwrap_or_default();
        s.lines().find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_owned())).unwrap_or_default()
    };
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{sup}/task"))
        .expect("the supervisor's tasks")
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(tasks.len() > 1, "the supervisor has no thread: {tasks:?}");
    let main = sup.to_string();
    // What the supervisor keeps (pam::the_supervisor_and_its_watchdog_run_with_least_privilege):
    // CAP_DAC_READ_SEARCH, CAP_KILL, CAP_SYS_PTRACE, and CAP_BPF with the kernel's check.
    let caps = if start.contains(" verify=bpf ") { "0000008000080024" } else { "0000000000080024" };
    assert_eq!((field(&main, "CapEff"), field(&main, "CapBnd")), (caps.to_owned(), caps.to_owned()), "{start}");
    assert_eq!((field(&main, "NoNewPrivs"), field(&main, "Seccomp")), ("1".to_owned(), "2".to_owned()));
    for key in ["CapEff", "CapPrm", "CapBnd", "CapInh", "NoNewPrivs", "Seccomp", "Seccomp_filters"] {
        for t in &tasks {
            assert_eq!(field(t, key), field(&main, key), "{key} of thread {t} ({}) differs from the supervisor's", field(t, "Name"));
        }
    }
    let _ = child.wait();
}

#[test]
fn the_second_server_answers_when_the_first_is_dead_or_silent() {
    require_root!();
    // Dead: nothing listens. Silent: accepts and never answers.
    let dead_port = free_port();
    let silent = Server::start("default = \"deny\"\n[[rule]]\naction = \"no-answer\"\n", &[]);
    let good = Server::start(RULES, &[]);
    for (first, label) in [(dead_port, "dead"), (silent.port, "silent")] {
        let servers = format!("{}{}", server_entry(first, 400), server_entry(good.port, 1000));
        let (cfg, _k) = config(&servers, "");
        let log = Syslog::new();
        let start = Instant::now();
        let out = run(&log, &cfg, &["/bin/sh", "-c", "/usr/bin/echo ok; /usr/bin/echo ok2"]);
        let took = start.elapsed();
        assert_eq!(stdout(&out), "ok\nok2\n", "{label}: {}", stderr(&out));
        // One timeout for the first server, then it is skipped as down.
        assert!(took < Duration::from_millis(2500), "{label}: took {took:?}");
        let lines = log.until_session_end(T);
        let l = find(&lines, "argv=\"/usr/bin/echo ok\"");
        assert!(l.contains(&format!("server=127.0.0.1:{}", good.port)), "{label}: {l}");
        assert!(find(&lines, "event=tacacs-server-down").contains(&format!("127.0.0.1:{first}")));
        let l2 = find(&lines, "argv=\"/usr/bin/echo ok2\"");
        let ms: u64 = l2.split("authz_ms=").nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(9999);
        assert!(ms < 300, "{label}: the dead server must be skipped the second time: {l2}");
    }
}

#[test]
fn wrong_key_garbage_and_slow_servers_leave_it_to_the_fail_policy_within_the_bound() {
    require_root!();
    let good = Server::start(RULES, &[]);
    let garbage = Server::start("default = \"deny\"\n[[rule]]\naction = \"garbage\"\ngarbage = \"random\"\n", &[]);
    let slow = Server::start("default = \"permit\"\n[[rule]]\naction = \"permit\"\ndelay_ms = 5000\n", &[]);
    for (port, label, wrong_key) in [(good.port, "wrong-key", true), (garbage.port, "garbage", false), (slow.port, "slow", false)] {
        for policy in ["closed", "open"] {
            let (_keys, key) = key_file(if wrong_key { "not-the-key" } else { KEY }, 0o600);
            let cfg = ConfigFile::new(&format!(
                "default = \"allow\"\nfail-policy = \"{policy}\"\n[[rules]]\nexe = \"/usr/bin/echo\"\naction = \"authorize\"\n[tacacs]\nkey-file = \"{}\"\ntimeout-ms = 1000\n{}",
                key.display(),
                server_entry(port, 800)
            ));
            let log = Syslog::new();
            let start = Instant::now();
            let out = run(&log, &cfg, &["/usr/bin/echo", "ok"]);
            let took = start.elapsed();
            assert!(took < Duration::from_secs(3), "{label}/{policy}: {took:?}");
            let lines = log.until_session_end(T);
            let l = find(&lines, "argv=\"/usr/bin/echo ok\"");
            assert!(l.contains("authz=fail-policy") && l.contains(&format!("fail-policy {policy}")), "{label}/{policy}: {l}");
            if policy == "open" {
                assert_eq!(stdout(&out), "ok\n", "{label}: {}", stderr(&out));
            } else {
                assert_eq!(out.status.code(), Some(126), "{label}: {}", stderr(&out));
            }
        }
    }
    assert!(!good.events("bad-packet").is_empty(), "the server saw the wrong key");
}

#[test]
fn commands_reuse_one_connection_with_single_connect() {
    require_root!();
    let srv = Server::start(RULES, &["--single-connect"]);
    let (cfg, _k) = config(&server_entry(srv.port, 1000), "");
    let log = Syslog::new();
    let cmd = "i=0; while [ $i -lt 30 ]; do /usr/bin/echo ok >/dev/null; i=$((i+1)); done";
    let out = run(&log, &cfg, &["/bin/sh", "-c", cmd]);
    assert!(out.status.success(), "{}", stderr(&out));
    log.until_session_end(T);
    let auth = srv.events("authorization");
    assert_eq!(auth.len(), 30);
    // One after the other, they all go on one connection: the first worker's, which the
    // supervisor's loop then uses itself (four workers would each make their own).
    let mut conns: Vec<i64> = auth.iter().filter_map(|e| e["conn"].as_i64()).collect();
    conns.sort_unstable();
    conns.dedup();
    assert_eq!(conns.len(), 1, "30 authorizations one after the other used {} connections", conns.len());
    let connects = srv.events("connect").len();
    assert!(connects <= 2, "30 commands used {connects} connections in all (with accounting's own)");
    assert!(srv.events("authorization").iter().all(|e| e["single_connect"] == true));
}

/// The loop's own exchange (on the connection a worker left it) fails as a worker's would:
/// a connection the server closed while idle is replaced and the server stays up; a server
/// that answers ERROR, or nothing in its time, is passed over for the next, with the reason.
#[test]
fn the_loop_s_own_exchange_recovers_from_a_closed_connection_an_error_and_a_silent_server() {
    require_root!();
    let rules = format!(
        "{RULES}\n[[rule]]\nname = \"err\"\ncmd = \"^/usr/bin/echo$\"\nargs = \"^err\"\naction = \"error\"\ndata = \"backend busy\"\n\
         [[rule]]\nname = \"silent\"\ncmd = \"^/usr/bin/echo$\"\nargs = \"^silent\"\naction = \"no-answer\"\n"
    );
    // The first closes connections idle for 0.6 s, and has 0.4 s to answer (its silence
    // must not end in that close).
    let first = Server::start(&rules, &["--single-connect", "--idle-timeout", "0.6"]);
    let second = Server::start("default = \"permit\"\n", &["--single-connect"]);
    let servers = format!("{}{}", server_entry(first.port, 400), server_entry(second.port, 1000));
    let (cfg, _k) = config(&servers, "");
    let log = Syslog::new();
    let script = "/usr/bin/echo ok1; sleep 1; /usr/bin/echo ok2; /usr/bin/echo err; /usr/bin/echo silent; /usr/bin/echo ok3";
    let out = run(&log, &cfg, &["/bin/sh", "-c", script]);
    assert_eq!(stdout(&out), "ok1\nok2\nerr\nsilent\nok3\n", "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let at = |port: u16| format!("server=127.0.0.1:{port}");
    let (a, b) = (at(first.port), at(second.port));
    // ok2 came after the server closed the idle connection: answered by it all the same.
    let ok2 = find(&lines, "argv=\"/usr/bin/echo ok2\"");
    assert!(ok2.contains(&a) && ok2.contains("status=PASS_ADD"), "{ok2}");
    let closed: Vec<_> = first.events("close").into_iter().filter(|e| e["reason"] == "idle timeout").collect();
    assert!(!closed.is_empty(), "the first server closed an idle connection");
    // ERROR: the next server decides, and the first is not down for it.
    let err = find(&lines, "argv=\"/usr/bin/echo err\"");
    assert!(err.contains(&b) && err.contains("status=PASS_ADD"), "{err}");
    let down: Vec<&String> = lines.iter().filter(|l| l.contains("event=tacacs-server-down")).collect();
    assert_eq!(down.len(), 1, "only the silence marks the first server down: {down:?}");
    assert!(down[0].contains(&format!("127.0.0.1:{}", first.port)) && down[0].contains("no answer in time"), "{}", down[0]);
    // Silence: the first server's 400 ms, then the second.
    let silent = find(&lines, "argv=\"/usr/bin/echo silent\"");
    assert!(silent.contains(&b) && silent.contains("status=PASS_ADD"), "{silent}");
    let ms = |l: &str| -> u64 { l.split("authz_ms=").nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0) };
    assert!((380..1400).contains(&ms(silent)), "waited for the silent server's time, then no longer: {silent}");
    // Then the first is skipped as down.
    let ok3 = find(&lines, "argv=\"/usr/bin/echo ok3\"");
    assert!(ok3.contains(&b), "{ok3}");
    assert_eq!(first.events("authorization").len(), 4, "ok1, ok2, err and silent went to the first server");
    // The lines keep the order of their execs, the local ones between those asked.
    let order: Vec<usize> = ["echo ok1", "sleep 1", "echo ok2", "echo err", "echo silent", "echo ok3"]
        .iter()
        .map(|a| lines.iter().position(|l| l.contains(&format!("argv=\"{}", a.replace("echo", "/usr/bin/echo")))).expect(a))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "lines out of order: {order:?}");
}

/// Several loops in one session, each running its commands one after the other, every one
/// asked of the server: the lines of each loop keep its order, however the findings of the
/// kernel check come to be read together.
#[test]
fn lines_of_loops_running_side_by_side_keep_each_loop_s_order() {
    require_root!();
    let srv = Server::start("default = \"permit\"\n", &["--single-connect"]);
    let (cfg, _k) = config(&server_entry(srv.port, 1000), "");
    let log = Syslog::new();
    let script = "for k in 1 2 3 4 5 6; do ( i=0; while [ $i -lt 40 ]; do /usr/bin/echo $k-$i >/dev/null; i=$((i+1)); done ) & done; wait";
    let out = run(&log, &cfg, &["/bin/sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let mut last: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let (mut seen, mut inversions) = (0, Vec::new());
    for l in &lines {
        let Some(rest) = l.split("argv=\"/usr/bin/echo ").nth(1) else { continue };
        let tag = rest.split('"').next().unwrap_or_default();
        let Some((k, i)) = tag.split_once('-').and_then(|(k, i)| Some((k.parse::<u32>().ok()?, i.parse::<u32>().ok()?))) else { continue };
        assert!(l.contains("status=PASS_ADD") && l.contains("result=exec"), "{l}");
        seen += 1;
        if last.get(&k).is_some_and(|&p| i < p) {
            inversions.push(tag.to_owned());
        }
        last.insert(k, i);
    }
    assert_eq!(seen, 240, "every command has its line");
    assert!(inversions.is_empty(), "{} lines before those of earlier commands of their loop: {inversions:?}", inversions.len());
}

/// A reused connection that fails late in its server's time gets a new connection only in
/// what is left of that time, as before the loop made its own exchanges: the next server is
/// still asked within the total.
#[test]
fn a_reused_connection_that_fails_late_leaves_time_for_the_next_server() {
    require_root!();
    // The first answers `junk` with garbage after 0.9 s of its 1 s.
    let rules = "default = \"permit\"\n[[rule]]\nname = \"junk\"\nargs = \"^junk\"\naction = \"garbage\"\ngarbage = \"bad-version\"\ndelay_ms = 900\n";
    let first = Server::start(rules, &["--single-connect"]);
    let second = Server::start("default = \"permit\"\n", &["--single-connect"]);
    let servers = format!("{}{}", server_entry(first.port, 1000), server_entry(second.port, 1000));
    let (cfg, _k) = config(&servers, "");
    let log = Syslog::new();
    let out = run(&log, &cfg, &["/bin/sh", "-c", "/usr/bin/echo ok; /usr/bin/echo junk"]);
    assert_eq!(stdout(&out), "ok\njunk\n", "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let junk = find(&lines, "argv=\"/usr/bin/echo junk\"");
    assert!(junk.contains(&format!("server=127.0.0.1:{}", second.port)) && junk.contains("status=PASS_ADD"), "{junk}");
    let down = find(&lines, "event=tacacs-server-down");
    assert!(down.contains(&format!("127.0.0.1:{}", first.port)), "{down}");
}

#[test]
fn every_command_gets_a_start_and_a_stop_with_its_exit_status() {
    require_root!();
    let srv = Server::start(RULES, &[]);
    let (cfg, _k) = config(&server_entry(srv.port, 1000), "");
    let log = Syslog::new();
    let out = run(&log, &cfg, &["/bin/sh", "-c", "/usr/bin/true; /usr/bin/false; /bin/sh -c 'exit 3'; echo done"]);
    assert_eq!(stdout(&out), "done\n", "{}", stderr(&out));
    log.until_session_end(T);
    let acct = srv.events("accounting");
    let arg = |e: &Value, name: &str| -> Option<String> {
        e["args"].as_array()?.iter().filter_map(Value::as_str).find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_owned))
    };
    let has = |e: &Value, attr: &str| e["args"].as_array().is_some_and(|a| a.iter().any(|x| x == attr));
    let stop_of = |cmd: &str, cmd_arg: Option<&str>| -> Value {
        let start = acct
            .iter()
            .find(|e| {
                e["flags"] == serde_json::json!(["start"])
                    && arg(e, "cmd").as_deref() == Some(cmd)
                    && cmd_arg.map_or(arg(e, "cmd-arg").is_none(), |a| has(e, &format!("cmd-arg={a}")))
            })
            .unwrap_or_else(|| panic!("no START for {cmd}: {acct:?}"))
            .clone();
        let task = arg(&start, "task_id").expect("task_id");
        acct.iter()
            .find(|e| e["flags"] == serde_json::json!(["stop"]) && arg(e, "task_id").as_deref() == Some(task.as_str()))
            .unwrap_or_else(|| panic!("no STOP for {cmd} task {task}"))
            .clone()
    };
    assert_eq!(arg(&stop_of("/usr/bin/true", None), "status").as_deref(), Some("0"));
    assert_eq!(arg(&stop_of("/usr/bin/false", None), "status").as_deref(), Some("1"));
    // The program as it was invoked: dash under the name sh.
    let inner = stop_of("/usr/bin/sh", Some("exit 3"));
    assert_eq!(arg(&inner, "status").as_deref(), Some("3"), "{inner}");
    assert!(arg(&inner, "elapsed_time").is_some() && arg(&inner, "stop_time").is_some());
    // The session itself: START and STOP, task "<session>-0".
    let session: Vec<&Value> = acct.iter().filter(|e| arg(e, "task_id").is_some_and(|t| t.ends_with("-0"))).collect();
    assert_eq!(session.len(), 2, "{session:?}");
    // Every START has its STOP.
    let starts = acct.iter().filter(|e| e["flags"] == serde_json::json!(["start"])).count();
    let stops = acct.iter().filter(|e| e["flags"] == serde_json::json!(["stop"])).count();
    assert_eq!(starts, stops, "{acct:?}");
}

#[test]
fn answers_are_cached_when_configured() {
    require_root!();
    let srv = Server::start(RULES, &[]);
    let (cfg, _k) = config(&format!("cache-ttl-s = 60\n{}", server_entry(srv.port, 1000)), "");
    // cache-ttl-s belongs to [tacacs]: put it right after the table header.
    let text = std::fs::read_to_string(cfg.path()).expect("read");
    let text = text.replace("cache-ttl-s = 60\n", "").replace("timeout-ms = 1500\n", "timeout-ms = 1500\ncache-ttl-s = 60\n");
    std::fs::write(cfg.path(), text).expect("write");
    let log = Syslog::new();
    let out = run(&log, &cfg, &["/bin/sh", "-c", "for i in 1 2 3 4 5; do /usr/bin/echo ok; done; /usr/bin/echo forbidden; /usr/bin/echo forbidden"]);
    assert_eq!(stdout(&out), "ok\nok\nok\nok\nok\n", "{}", stderr(&out));
    let lines = log.until_session_end(T);
    assert_eq!(srv.events("authorization").len(), 2, "one question per distinct command line");
    assert_eq!(lines.iter().filter(|l| l.contains("authz=cache")).count(), 5);
}

#[test]
fn fallback_rules_decide_when_no_server_answers() {
    require_root!();
    let dead = free_port();
    let (cfg, _k) = config(
        &server_entry(dead, 300),
        "[[fallback]]\nname = \"echo-when-offline\"\nexe = \"/usr/bin/echo\"\nargs = [\"ok\"]\naction = \"allow\"\n",
    );
    let log = Syslog::new();
    let out = run(&log, &cfg, &["/bin/sh", "-c", "/usr/bin/echo ok; /usr/bin/echo other; echo $?"]);
    assert_eq!(stdout(&out), "ok\n126\n", "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let l = find(&lines, "argv=\"/usr/bin/echo ok\"");
    assert!(l.contains("authz=fallback fallback_rule=echo-when-offline") && l.contains("decision=allow"), "{l}");
    assert!(l.contains(" rule=echo-via-tacacs "), "the line names the authorize rule that asked: {l}");
    let o = find(&lines, "argv=\"/usr/bin/echo other\"");
    assert!(o.contains("authz=fail-policy") && o.contains("decision=deny"), "{o}");
}

#[test]
fn follow_and_unappliable_mandatory_attributes_are_refused_and_logged() {
    require_root!();
    let srv = Server::start(
        "default = \"deny\"\n[[rule]]\nargs = \"^follow\"\naction = \"follow\"\ndata = \"192.0.2.99\"\n[[rule]]\nargs = \"^attr\"\naction = \"permit\"\nreply_args = [\"priv-lvl=15\"]\n[[rule]]\nargs = \"^optional\"\naction = \"permit\"\nreply_args = [\"idletime*5\"]\n",
        &[],
    );
    let (cfg, _k) = config(&server_entry(srv.port, 1000), "");
    let log = Syslog::new();
    let out = run(&log, &cfg, &["/bin/sh", "-c", "/usr/bin/echo follow; /usr/bin/echo attr; /usr/bin/echo optional"]);
    assert_eq!(stdout(&out), "optional\n", "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let f = find(&lines, "argv=\"/usr/bin/echo follow\"");
    assert!(f.contains("status=FOLLOW") && f.contains("decision=deny") && f.contains("FOLLOW"), "{f}");
    let a = find(&lines, "argv=\"/usr/bin/echo attr\"");
    assert!(a.contains("decision=deny") && a.contains("mandatory attribute priv-lvl=15"), "{a}");
    let o = find(&lines, "argv=\"/usr/bin/echo optional\"");
    assert!(o.contains("decision=allow"), "{o}");
}

#[test]
fn a_key_file_others_can_read_is_refused_with_a_clear_error() {
    require_root!();
    let (_keys, key) = key_file(KEY, 0o644);
    let cfg = ConfigFile::new(&format!(
        "default = \"allow\"\n[tacacs]\nkey-file = \"{}\"\n{}",
        key.display(),
        server_entry(49, 500)
    ));
    let log = Syslog::new();
    let out = run(&log, &cfg, &["/usr/bin/true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("readable by no one else"), "{}", stderr(&out));
}

#[test]
fn authorization_over_tls_works_and_a_bad_certificate_is_refused() {
    require_root!();
    let pki = tempfile::Builder::new().prefix("sw-pki-").tempdir().expect("tempdir");
    certificates(pki.path());
    let p = |f: &str| pki.path().join(f).display().to_string();
    // It closes connections idle for 0.6 s (with no close_notify).
    let srv = Server::start(
        RULES,
        &["--tls-cert", &p("server.pem"), "--tls-key", &p("server.key"), "--single-connect", "--idle-timeout", "0.6"],
    );
    for (ca, works) in [("ca.pem", true), ("other.pem", false)] {
        let cfg = ConfigFile::new(&format!(
            "default = \"allow\"\n[[rules]]\nexe = \"/usr/bin/echo\"\naction = \"authorize\"\n[tacacs]\ntimeout-ms = 1500\n[[tacacs.servers]]\nhost = \"127.0.0.1\"\nport = {}\ntls = {{ ca-file = \"{}\", server-name = \"localhost\" }}\n",
            srv.port,
            p(ca)
        ));
        let log = Syslog::new();
        // The second on the first's connection, the third after the server closed it. (The
        // refused handshake's command comes first, before accounting's own refusal marks
        // the server down.)
        let script: &[&str] = if works {
            &["/bin/sh", "-c", "/usr/bin/echo ok; /usr/bin/echo ok2; sleep 1; /usr/bin/echo ok3"]
        } else {
            &["/usr/bin/echo", "ok"]
        };
        let out = run(&log, &cfg, script);
        let lines = log.until_session_end(T);
        let l = find(&lines, "argv=\"/usr/bin/echo ok\"");
        if works {
            assert_eq!(stdout(&out), "ok\nok2\nok3\n", "{}", stderr(&out));
            for arg in ["ok", "ok2", "ok3"] {
                let l = find(&lines, &format!("argv=\"/usr/bin/echo {arg}\""));
                assert!(l.contains("status=PASS_ADD"), "{l}");
            }
            assert!(!lines.iter().any(|l| l.contains("event=tacacs-server-down")), "an idle close is not a server down: {lines:?}");
        } else {
            assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
            assert!(l.contains("authz=fail-policy") && l.to_lowercase().contains("certificate"), "{l}");
        }
    }
    let auth = srv.events("authorization");
    assert_eq!(auth.len(), 3, "only the trusted connection got through, ok3 once");
    assert!(auth.iter().all(|a| a["tls"] == true));
    assert_eq!(auth[0]["conn"], auth[1]["conn"], "ok2 went on ok's connection");
    assert!(!srv.events("tls-error").is_empty(), "the server saw the refused handshake");
}

#[test]
fn accounting_records_survive_a_server_that_is_briefly_down() {
    require_root!();
    // Pick a port, start the session with nothing listening there, bring the server up later.
    let port = free_port();
    let (_keys, key) = key_file(KEY, 0o600);
    let cfg = ConfigFile::new(&format!(
        "default = \"allow\"\n[tacacs]\nkey-file = \"{}\"\ntimeout-ms = 500\ndead-server-retry-s = 1\n{}",
        key.display(),
        server_entry(port, 300)
    ));
    let log = Syslog::new();
    let session = Wrapped::new(&log).config(cfg.path()).as_nobody().command(&["/bin/sh", "-c", "/usr/bin/true; sleep 4"]).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(800));
    let dir = tempfile::Builder::new().prefix("sw-tacacs-").tempdir().expect("tempdir");
    let late = server_command(dir.path(), &format!("127.0.0.1:{port}"), "default = \"permit\"\n")
        .stdout(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("server");
    let out = session.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(T);
    drop(late);
    let acct = read_events(&dir.path().join("events.jsonl"), "accounting");
    let text = serde_json::to_string(&acct).expect("json");
    assert!(text.contains("cmd=/usr/bin/true"), "the START queued while the server was down arrived: {text}");
    // In the order they happened, under backoff: the session's START first, then every
    // task's START before its STOP.
    let order: Vec<(String, bool)> = acct
        .iter()
        .filter_map(|e| {
            let task = e["args"].as_array()?.iter().filter_map(Value::as_str).find_map(|a| a.strip_prefix("task_id="))?;
            Some((task.to_owned(), e["flags"] == serde_json::json!(["start"])))
        })
        .collect();
    assert!(order.first().is_some_and(|(t, start)| t.ends_with("-0") && *start), "{order:?}");
    for (i, (task, start)) in order.iter().enumerate() {
        if !start {
            assert!(order[..i].iter().any(|(t, s)| t == task && *s), "STOP of {task} before its START: {order:?}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("event=tacacs-server-down")));
    assert!(!lines.iter().any(|l| l.contains("tacacs-accounting-dropped")), "{}", lines.join("\n"));
}

/// The server is told which program runs under which name: the path the program is invoked
/// through (`/usr/sbin/reboot` for systemctl invoked as reboot), never a real path that hides
/// the mode; a name no link gives the program (`exec -a xreboot`) cannot be named to the
/// server and is refused.
#[test]
fn the_server_is_sent_the_program_under_the_name_it_runs_as() {
    require_root!();
    let rules = r#"
default = "deny"
[[rule]]
name = "systemctl-ok"
cmd = "^/usr/bin/systemctl$"
action = "permit"
"#;
    let srv = Server::start(rules, &[]);
    let (_keys, key) = key_file(KEY, 0o600);
    let cfg = ConfigFile::new(&format!(
        "default = \"allow\"\nfail-policy = \"open\"\n[[rules]]\nname = \"systemctl-via-tacacs\"\nexe = [\"/usr/bin/systemctl\", \"/usr/sbin/reboot\"]\naction = \"authorize\"\n\n[tacacs]\nkey-file = \"{}\"\ntimeout-ms = 1500\n{}\n",
        key.display(),
        server_entry(srv.port, 1000)
    ));
    let log = Syslog::new();
    let script = "exec_a() { bash -c \"exec -a $1 $2 $3 >/dev/null 2>&1\"; }\n\
                  exec_a reboot /usr/bin/systemctl --help; echo reboot=$?\n\
                  exec_a xreboot /usr/bin/systemctl --help; echo xreboot=$?\n\
                  /usr/bin/systemctl --version >/dev/null; echo systemctl=$?\n";
    let out = run(&log, &cfg, &["/bin/sh", "-c", script]);
    let text = stdout(&out);
    let lines = log.until_session_end(T);
    assert!(text.contains("reboot=126") && text.contains("xreboot=126") && text.contains("systemctl=0"), "{text}\n{}", lines.join("\n"));
    let cmds: Vec<String> = srv
        .events("authorization")
        .iter()
        .filter_map(|e| e["args"].as_array()?.iter().find_map(|a| a.as_str()?.strip_prefix("cmd=").map(str::to_owned)))
        .collect();
    assert!(cmds.contains(&"/usr/sbin/reboot".to_owned()), "the server was asked about reboot under its name: {cmds:?}");
    assert!(cmds.contains(&"/usr/bin/systemctl".to_owned()), "{cmds:?}");
    assert_eq!(cmds.len(), 2, "xreboot never reached the server (and fail-policy open did not let it through): {cmds:?}");
    assert!(find(&lines, "authz=unnamed").contains("decision=deny"), "{}", lines.join("\n"));
}
