//! TACACS+ accounting that loses nothing: records outlive an outage that outlasts the session,
//! a supervisor killed with records queued, and a restart (a new supervisor over the same
//! spool); they arrive in the order they happened, START before STOP for every task; only the
//! configured bound drops any, and says which. And TLS failures named: a server that demands a
//! client certificate when none is configured. Real su sessions and `session-wrapper run`
//! against the repository's TACACS+ test server.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use session_wrapper_tests::lines::find;
use session_wrapper_tests::tacacs::{certificates, key_file, read_events, Server};
use session_wrapper_tests::{
    free_port, output_text, require_root, session_wrapper, stderr, wait_until, ConfigFile, Sandbox,
    Syslog, TempDir, Wrapped,
};

const T: Duration = Duration::from_secs(60);

/// A spool directory of the test's own (root-only, as the supervisor requires) and the
/// configuration that uses it, with one server at `port` and accounting bounded by `queue`.
struct Setup {
    cfg: ConfigFile,
    spool: TempDir,
    _keys: TempDir,
}

impl Setup {
    fn new(port: u16, queue: usize) -> Setup {
        let spool = tempfile::Builder::new()
            .prefix("sw-acct-spool-")
            .tempdir()
            .expect("tempdir");
        let (keys, key) = key_file(session_wrapper_tests::tacacs::KEY, 0o600);
        let cfg = ConfigFile::new(&format!(
            "default = \"allow\"\n[log]\nspool-dir = \"{}\"\n[tacacs]\nkey-file = \"{}\"\ntimeout-ms = 500\ndead-server-retry-s = 1\naccounting-queue = {queue}\n[[tacacs.servers]]\nhost = \"127.0.0.1\"\nport = {port}\ntimeout-ms = 300\n",
            spool.path().display(),
            key.display()
        ));
        Setup {
            cfg,
            spool,
            _keys: keys,
        }
    }

    fn journals(&self) -> Vec<PathBuf> {
        let dir = self.spool.path().join("accounting");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn journal_text(&self) -> String {
        self.journals()
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    fn deliver(&self) -> std::process::Output {
        session_wrapper()
            .args(["deliver-accounting", "--config"])
            .arg(self.cfg.path())
            .output()
            .expect("session-wrapper deliver-accounting")
    }
}

fn arg(e: &Value, name: &str) -> Option<String> {
    e["args"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn flag(e: &Value) -> &'static str {
    if e["flags"] == serde_json::json!(["start"]) {
        "start"
    } else {
        "stop"
    }
}

/// The records of `session` (task ids `<session>-N`) among `events`, as (task, start|stop),
/// in the order they arrived.
fn records_of(events: &[Value], session: &str) -> Vec<(String, &'static str)> {
    events
        .iter()
        .filter_map(|e| {
            let task = arg(e, "task_id")?;
            task.starts_with(&format!("{session}-"))
                .then(|| (task, flag(e)))
        })
        .collect()
}

/// Every task has its START before its STOP, none twice, and task numbers start in order
/// (a session's records arrive in the order they happened).
fn assert_in_order(records: &[(String, &'static str)]) {
    let mut started: Vec<&str> = Vec::new();
    let mut stopped: Vec<&str> = Vec::new();
    let mut last_start = -1i64;
    for (task, f) in records {
        let n: i64 = task
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("task number");
        if *f == "start" {
            assert!(
                !started.contains(&task.as_str()),
                "START of {task} twice: {records:?}"
            );
            assert!(
                n > last_start,
                "START of {task} after a later task's: {records:?}"
            );
            last_start = n;
            started.push(task);
        } else {
            assert!(
                started.contains(&task.as_str()),
                "STOP of {task} before its START: {records:?}"
            );
            assert!(
                !stopped.contains(&task.as_str()),
                "STOP of {task} twice: {records:?}"
            );
            stopped.push(task);
        }
    }
}

/// The session id of the first decision line for `cmd`, and the pid that logged it (the
/// supervisor's).
fn session_of(lines: &[String], needle: &str) -> (String, i32) {
    let l = find(lines, needle);
    let session = l
        .split("session=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("session=")
        .to_owned();
    let pid = l
        .split("session-wrapper[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|p| p.parse().ok())
        .expect("pid");
    (session, pid)
}

/// A su session whose server goes away in the middle, and comes back only after the session
/// ended: every record arrives, in order, START before STOP for every task (records queued
/// under backoff included), delivered by `session-wrapper deliver-accounting`; the line at the
/// end of the session says where they wait and why (`skipped: server down since ...`).
#[test]
fn records_of_a_session_that_outlived_its_server_arrive_in_order_when_it_is_back() {
    require_root!();
    let port = free_port();
    let setup = Setup::new(port, 1000);
    let first = Server::start_at(&format!("127.0.0.1:{port}"), "default = \"permit\"\n", &[]);
    let (sb, u) = Sandbox::with_user("su", "swacct1", 4611, &setup.cfg, "");
    let script = "/usr/bin/true; /usr/bin/sleep 2; /usr/bin/echo a; /usr/bin/false; /usr/bin/id -u; /usr/bin/sleep 2; /usr/bin/echo end";
    let session = sb
        .command(&["su", "-", &u.name, "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("su");
    // The first records arrived; then the server goes away.
    assert!(
        wait_until(T, Duration::from_millis(50), || read_events(
            &first.events,
            "accounting"
        )
        .iter()
        .any(|e| arg(e, "cmd").as_deref() == Some("/usr/bin/sleep"))),
        "the server never saw the first sleep start"
    );
    let before = read_events(&first.events, "accounting");
    drop(first);
    // The session's own journal is held by its live supervisor: deliver-accounting leaves it.
    let live = setup.deliver();
    assert!(
        String::from_utf8_lossy(&live.stdout).contains(
            "0 journals, 0 records delivered, 0 left; 1 journals held by live supervisors"
        ),
        "{}",
        output_text(&live)
    );
    let out = session.wait_with_output().expect("wait");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("end\n"),
        "{}",
        output_text(&out)
    );
    let lines = sb.log.until_session_end(T);
    let (id, _) = session_of(&lines, "argv=\"/usr/bin/echo a\"");
    let spooled = find(&lines, "event=tacacs-accounting-spooled");
    assert!(
        spooled.contains("skipped: server down since") || spooled.contains("did not take it"),
        "{spooled}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("tacacs-accounting-dropped")),
        "{}",
        lines.join("\n")
    );
    assert!(
        !setup.journals().is_empty(),
        "the records wait in the spool"
    );
    // A server that is still down: nothing is lost, the exit status says some wait.
    let down = setup.deliver();
    assert_eq!(down.status.code(), Some(1), "{}", output_text(&down));
    // Back: deliver-accounting sends them all, in order, and the spool is empty.
    let second = Server::start_at(&format!("127.0.0.1:{port}"), "default = \"permit\"\n", &[]);
    let up = setup.deliver();
    assert_eq!(up.status.code(), Some(0), "{}", output_text(&up));
    assert!(
        String::from_utf8_lossy(&up.stdout).contains(&format!("session {id}: ")),
        "{}",
        output_text(&up)
    );
    assert!(setup.journals().is_empty(), "{:?}", setup.journals());
    let mut all = records_of(&before, &id);
    all.extend(records_of(&second.events("accounting"), &id));
    assert_in_order(&all);
    // Everything: the session's START and STOP, and START and STOP of each of the 9 commands
    // (the login shell, then the script's 8).
    let starts = all.iter().filter(|(_, f)| *f == "start").count();
    let stops = all.iter().filter(|(_, f)| *f == "stop").count();
    assert_eq!((starts, stops), (10, 10), "{all:?}");
    assert_eq!(
        all.first().map(|(t, f)| (t.as_str(), *f)),
        Some((format!("{id}-0").as_str(), "start"))
    );
    assert_eq!(
        all.last().map(|(t, f)| (t.as_str(), *f)),
        Some((format!("{id}-0").as_str(), "stop"))
    );
}

/// Waits until the journal holds a record of `cmd`, then kills the supervisor that logged
/// `needle` (SIGKILL, as a crash would).
fn kill_supervisor_once_journaled(setup: &Setup, log: &Syslog, needle: &str, cmd: &str) -> String {
    assert!(
        wait_until(T, Duration::from_millis(50), || setup
            .journal_text()
            .contains(&format!("cmd={cmd}"))),
        "{cmd} never reached the journal: {}",
        setup.journal_text()
    );
    let line = log
        .wait_for(|l| l.contains(needle), T)
        .expect("decision line");
    let (id, pid) = session_of(&[line], needle);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "sw-supervisor", "pid {pid} is the supervisor");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    id
}

/// A supervisor killed with records queued (the server down): its journal stays; a new
/// supervisor over the same spool (a later session, as after a reboot) delivers them in order
/// and says so; another killed session's records are delivered by `deliver-accounting`.
#[test]
fn records_of_a_killed_supervisor_are_delivered_by_a_later_session_and_by_deliver_accounting() {
    require_root!();
    let port = free_port();
    let setup = Setup::new(port, 1000);
    let script = "/usr/bin/true; /usr/bin/id -u; /usr/bin/sleep 3";
    let run_killed = |name: &str, uid: u32| -> String {
        let (sb, u) = Sandbox::with_user("su", name, uid, &setup.cfg, "");
        let session = sb
            .command(&["su", "-", &u.name, "-c", script])
            .stdout(Stdio::null())
            .spawn()
            .expect("su");
        let id = kill_supervisor_once_journaled(
            &setup,
            &sb.log,
            "argv=\"/usr/bin/sleep 3\"",
            "/usr/bin/sleep",
        );
        let _ = session.wait_with_output();
        assert!(
            sb.log
                .wait_for(|l| l.contains("event=supervisor-died"), T)
                .is_some(),
            "{}",
            sb.log.lines().join("\n")
        );
        id
    };
    // Nothing listens: the records wait in the journal of a supervisor that is killed.
    let a = run_killed("swacct2", 4612);
    assert_eq!(setup.journals().len(), 1, "{:?}", setup.journals());
    let records = |text: &str| text.lines().filter(|l| l.starts_with("R ")).count();
    let journaled = records(&setup.journal_text());
    // The server is back; a new supervisor over the same spool (a later session) claims it.
    let srv = Server::start_at(&format!("127.0.0.1:{port}"), "default = \"permit\"\n", &[]);
    let log = Syslog::new();
    let out = Wrapped::new(&log)
        .config(setup.cfg.path())
        .spool(setup.spool.path().to_path_buf())
        .as_nobody()
        .run(&["/bin/sh", "-c", "/usr/bin/sleep 2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let recovered = find(&lines, "event=tacacs-accounting-recovered");
    assert!(
        recovered.contains(&format!("from_session={a}")) && recovered.contains("left=0"),
        "{recovered}"
    );
    let got = records_of(&srv.events("accounting"), &a);
    assert_in_order(&got);
    // Every record the killed supervisor journaled (among them the session's START, START and
    // STOP of true and id, the START of sleep, during which it was killed), once each.
    assert_eq!(got.len(), journaled, "{got:?}");
    assert!(
        got.len() >= 6 && got.last().is_some_and(|(_, f)| *f == "start"),
        "{got:?}"
    );
    drop(srv);
    // Again with the server down; this time deliver-accounting delivers once it is back.
    let b = run_killed("swacct3", 4613);
    let journaled = records(&setup.journal_text());
    let srv = Server::start_at(&format!("127.0.0.1:{port}"), "default = \"permit\"\n", &[]);
    let out = setup.deliver();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let got = records_of(&srv.events("accounting"), &b);
    assert_in_order(&got);
    assert_eq!(got.len(), journaled, "{got:?}");
    assert!(setup.journals().is_empty(), "{:?}", setup.journals());
}

/// With the server down and `accounting-queue = 3`, a session of 6 commands keeps 3 records
/// and drops the rest: a line names how many and which, and nothing else is lost.
#[test]
fn only_the_bound_drops_records_and_a_line_names_them() {
    require_root!();
    let port = free_port();
    let setup = Setup::new(port, 3);
    let log = Syslog::new();
    let out = Wrapped::new(&log)
        .config(setup.cfg.path())
        .spool(setup.spool.path().to_path_buf())
        .as_nobody()
        .run(&[
            "/bin/sh",
            "-c",
            "/usr/bin/true; /usr/bin/true; /usr/bin/true; /usr/bin/true; /usr/bin/true",
        ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(T);
    let count = |l: &String| -> usize {
        l.split("records=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let dropped: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("event=tacacs-accounting-dropped"))
        .collect();
    assert!(!dropped.is_empty(), "{}", lines.join("\n"));
    assert!(
        dropped
            .iter()
            .all(|l| l.contains("tasks=") && l.contains("accounting-queue")),
        "{dropped:?}"
    );
    let spooled = find(&lines, "event=tacacs-accounting-spooled");
    // 14 records: the session's START and STOP, START and STOP of 6 commands (sh, 5 true).
    assert_eq!(
        dropped.iter().map(|l| count(l)).sum::<usize>(),
        11,
        "{dropped:?}"
    );
    assert_eq!(count(&spooled.to_owned()), 3, "{spooled}");
    let (id, _) = session_of(&lines, "event=session-start");
    assert!(
        dropped.iter().any(|l| l.contains(&format!("{id}-"))),
        "the line names the tasks: {dropped:?}"
    );
}

/// A TLS server that demands a client certificate when none is configured: the decision line
/// and `check-config --connect` name it, instead of "failed to fill whole buffer".
#[test]
fn a_server_demanding_a_client_certificate_is_named_in_the_log_and_by_check_config() {
    require_root!();
    let pki = tempfile::Builder::new()
        .prefix("sw-pki-")
        .tempdir()
        .expect("tempdir");
    certificates(pki.path());
    let p = |f: &str| pki.path().join(f).display().to_string();
    let srv = Server::start(
        "default = \"permit\"\n",
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
    );
    let cfg = ConfigFile::new(&format!(
        "default = \"allow\"\n[[rules]]\nname = \"echo-via-tacacs\"\nexe = \"/usr/bin/echo\"\naction = \"authorize\"\n[tacacs]\ntimeout-ms = 1500\naccounting = false\nsession-accounting = false\n[[tacacs.servers]]\nhost = \"127.0.0.1\"\nport = {}\ntls = {{ ca-file = \"{}\", server-name = \"localhost\" }}\n",
        srv.port,
        p("ca.pem")
    ));
    let named = "requires a client certificate and none is configured";
    let log = Syslog::new();
    let out = Wrapped::new(&log)
        .config(cfg.path())
        .as_nobody()
        .run(&["/usr/bin/echo", "ok"]);
    assert_eq!(out.status.code(), Some(126), "{}", output_text(&out));
    // The user is told it is an outage of central authorization.
    assert!(
        stderr(&out).contains("central authorization (TACACS+) is unavailable"),
        "{}",
        stderr(&out)
    );
    let lines = log.until_session_end(T);
    let l = find(&lines, "argv=\"/usr/bin/echo ok\"");
    assert!(l.contains(named), "{l}");
    assert!(!l.contains("failed to fill whole buffer"), "{l}");
    let check = session_wrapper()
        .args(["check-config", "--connect", "--config"])
        .arg(cfg.path())
        .output()
        .expect("check-config");
    let text = output_text(&check);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", srv.port)) && text.contains(named),
        "{text}"
    );
    // With a CA the server's certificate does not chain to: verification named.
    let other = cfg.path().with_file_name("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(cfg.path())
            .expect("read")
            .replace(&p("ca.pem"), &p("other.pem")),
    )
    .expect("write");
    let check = session_wrapper()
        .args(["check-config", "--connect", "--config"])
        .arg(&other)
        .output()
        .expect("check-config");
    assert!(
        output_text(&check).contains(
            "the server's certificate failed verification: it is not issued by a CA in tls.ca-file"
        ),
        "{}",
        output_text(&check)
    );
}
