//! `session-wrapper run` end to end, as root: the four smoke tests of the seed document
//! (`000_9a8270eb506f196c.txt`), allowed and refused commands with their errno, message and
//! syslog line, audit mode, and the ways an exec can be made.

use std::time::{Duration, Instant};

use session_wrapper_tests::lines::{decisions, find};
use session_wrapper_tests::{
    bin_arg, copy_true, require_root, scratch, shipped_config, stderr, stdout, write_executable, ConfigFile, Syslog,
    Wrapped,
};

const ALLOW_ALL: &str = "default = \"allow\"\n";

fn probe() -> &'static str {
    bin_arg("sw-probe")
}

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn smoke_child_starts_exits_and_writes_its_marker() {
    require_root!();
    let cfg = ConfigFile::new(ALLOW_ALL);
    let dir = scratch();
    let s = write_executable(&dir.path().join("exit-zero"), "#!/bin/sh\nprintf 'ok\\n' > \"$SESSION_WRAPPER_SMOKE_MARKER\"\n");
    let marker = dir.path().join("marker");
    let log = Syslog::new();
    let out = Wrapped::new(&log)
        .config(cfg.path())
        .as_nobody()
        .arg("--fail-policy")
        .arg("open")
        .env("SESSION_WRAPPER_SMOKE_MARKER", &marker.display().to_string())
        .timeout(Duration::from_secs(10))
        .run(&[&s]);
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "ok\n");
    let lines = log.until_session_end(WAIT);
    // The script ran through its interpreter, both checked.
    let l = find(&lines, "exit-zero\" exe=");
    assert!(l.contains("interpreter=\"/usr/bin/dash\"") && l.contains("result=exec"), "{l}");
}

#[test]
fn smoke_missing_command_is_reported_quickly() {
    require_root!();
    let cfg = ConfigFile::new(ALLOW_ALL);
    let dir = scratch();
    let missing = dir.path().join("does-not-exist").display().to_string();
    let log = Syslog::new();
    let start = Instant::now();
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().timeout(Duration::from_secs(10)).run(&[&missing]);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert_eq!(out.status.code(), Some(127));
    let err = stderr(&out);
    assert!(err.contains("child setup failed") && err.contains("execve"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn smoke_descendant_outliving_the_child_stays_supervised() {
    require_root!();
    let cfg = ConfigFile::new(ALLOW_ALL);
    let dir = scratch();
    let s = write_executable(
        &dir.path().join("descendant"),
        "#!/bin/sh\n(\nsleep 0.2\n/bin/sh -c 'printf \"descendant-ok\\n\" > \"$SESSION_WRAPPER_DESCENDANT_MARKER\"'\n) &\nexit 0\n",
    );
    let marker = dir.path().join("descendant-marker");
    let log = Syslog::new();
    let out = Wrapped::new(&log)
        .config(cfg.path())
        .as_nobody()
        .env("SESSION_WRAPPER_DESCENDANT_MARKER", &marker.display().to_string())
        .timeout(Duration::from_secs(10))
        .run(&[&s]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The wrapper waited for the descendant: the marker is there when it returns.
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "descendant-ok\n");
    let lines = log.until_session_end(WAIT);
    let l = find(&lines, "descendant-ok");
    assert!(l.contains("decision=allow") && l.contains("result=exec"), "{l}");
    let sleep = find(&lines, "argv=\"sleep 0.2\"");
    assert!(sleep.contains("result=exec"), "{sleep}");
}

#[test]
fn smoke_identity_drop_writes_the_users_uid_gid_and_groups() {
    require_root!();
    let cfg = ConfigFile::new(ALLOW_ALL);
    let dir = scratch();
    let s = write_executable(
        &dir.path().join("identity"),
        "#!/bin/sh\nprintf '%s:%s %s\\n' \"$(id -u)\" \"$(id -g)\" \"$(id -G)\" > \"$SESSION_WRAPPER_IDENTITY_MARKER\"\n",
    );
    let marker = dir.path().join("identity-marker");
    let log = Syslog::new();
    let out = Wrapped::new(&log)
        .config(cfg.path())
        .as_nobody()
        .env("SESSION_WRAPPER_IDENTITY_MARKER", &marker.display().to_string())
        .run(&[&s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "65534:65534 65534\n");
}

#[test]
fn refused_command_gets_eacces_a_message_and_a_deny_line() {
    require_root!();
    let dir = scratch();
    let evil = copy_true(dir.path(), "evil");
    let log = Syslog::new();
    let cmd = format!("/usr/bin/id -u; {evil}; echo status=$?");
    let cfg = shipped_config("enforce");
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&["/bin/sh", "-c", &cmd]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "65534\nstatus=126\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("session-wrapper: {evil}: running programs from a temporary directory is not allowed")),
        "{err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    let lines = log.until_session_end(WAIT);
    let deny = find(&lines, &format!("path=\"{evil}\""));
    for f in ["decision=deny", "rule=no-exec-from-temp", "errno=EACCES", "message=written", "user=nobody", "mode=enforce", "latency_us="] {
        assert!(deny.contains(f), "{f} missing in {deny}");
    }
    assert!(deny.starts_with("<85>"), "deny lines are AUTHPRIV.NOTICE: {deny}");
    let allow = find(&lines, "path=\"/usr/bin/id\"");
    assert!(allow.contains("decision=allow") && allow.contains("rule=default") && allow.contains("result=exec"), "{allow}");
    assert!(allow.starts_with("<86>"), "allow lines are AUTHPRIV.INFO: {allow}");
    let end = find(&lines, "event=session-end");
    assert!(end.contains("refused=1"), "{end}");
}

/// A path that names nothing is answered as the kernel would (`ENOENT`, `ENOTDIR`), before
/// the caller's ids are read, and logs nothing; with `--debug` each is one `exec-unresolved`
/// debug line with the caller's ids (the ids are then read after all).
#[test]
fn a_path_that_names_nothing_is_answered_as_the_kernel_would_and_logged_only_with_debug() {
    require_root!();
    let cmd = "/nonexistent-sw/prog; echo a=$?; /usr/bin/true/x; echo b=$?";
    let cfg = ConfigFile::new(ALLOW_ALL);
    for debug in [false, true] {
        let log = Syslog::new();
        let mut wrapped = Wrapped::new(&log).config(cfg.path()).as_nobody();
        if debug {
            wrapped = wrapped.arg("--debug");
        }
        let out = wrapped.run(&["/bin/sh", "-c", cmd]);
        assert_eq!(stdout(&out), "a=127\nb=127\n", "debug {debug}: {}", stderr(&out));
        let lines = log.until_session_end(WAIT);
        let unresolved: Vec<&String> = lines.iter().filter(|l| l.contains("event=exec-unresolved")).collect();
        if !debug {
            assert!(unresolved.is_empty(), "{unresolved:?}");
            continue;
        }
        assert_eq!(unresolved.len(), 2, "{lines:#?}");
        for (line, (path, errno)) in unresolved.iter().zip([("/nonexistent-sw/prog", "ENOENT"), ("/usr/bin/true/x", "ENOTDIR")]) {
            for f in [format!("path=\"{path}\""), format!("errno={errno}"), "uid=65534".into(), "pid=".into()] {
                assert!(line.contains(&f), "{f} missing in {line}");
            }
            assert!(line.starts_with("<87>"), "a debug line (AUTHPRIV.DEBUG): {line}");
        }
    }
}

/// Lines come in the order of their execs: the line of an allowed exec, which waits for the
/// kernel's finding (read after the next exec is answered), is written before the refusal of
/// the exec that follows it, and before that one's own.
#[test]
fn lines_keep_the_order_of_their_execs_around_a_refusal() {
    require_root!();
    let dir = scratch();
    let evil = copy_true(dir.path(), "evil");
    let log = Syslog::new();
    let cmd = format!("/usr/bin/id -u >/dev/null; {evil}; /usr/bin/true");
    let cfg = shipped_config("enforce");
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&["/bin/sh", "-c", &cmd]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle}: {lines:#?}"));
    let (id, refused, after) = (at("path=\"/usr/bin/id\""), at(&format!("path=\"{evil}\"")), at("path=\"/usr/bin/true\""));
    assert!(id < refused && refused < after, "out of order: id {id}, refused {refused}, true {after}: {lines:#?}");
    assert!(lines[id].contains("result=exec") && lines[refused].contains("decision=deny"), "{lines:#?}");
}

/// A thread's next exec arrives before its last one's finding was read (`sh -c 'exec X'`: the
/// shell execs X in its own process at once): the first is still reported as run, with its
/// finding read before the second's expectation takes its place in the kernel (found by the
/// review of the eighth pass: nothing else failed without that read).
#[test]
fn a_thread_s_second_exec_keeps_the_first_s_result() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n");
    let log = Syslog::new();
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&["/bin/sh", "-c", "exec /usr/bin/true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let sh = find(&lines, "path=\"/bin/sh\"");
    assert!(sh.contains("result=exec"), "{sh}");
    assert!(find(&lines, "path=\"/usr/bin/true\"").contains("result=exec"), "{lines:#?}");
}

#[test]
fn audit_mode_logs_the_same_decision_and_runs_the_command() {
    require_root!();
    let cfg = ConfigFile::new(&format!("mode = \"audit\"\n{}", session_wrapper_config_builtin_rules()));
    let dir = scratch();
    let marker = dir.path().join("ran");
    let evil = write_executable(&dir.path().join("evil.sh"), &format!("#!/bin/sh\ntouch {}\n", marker.display()));
    let log = Syslog::new();
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&[&evil]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(marker.exists(), "audit mode must not refuse");
    assert!(!stderr(&out).contains("not allowed"), "audit mode tells the user nothing");
    let lines = log.until_session_end(WAIT);
    let l = find(&lines, &format!("path=\"{evil}\""));
    assert!(l.contains("decision=deny") && l.contains("mode=audit") && l.contains("result=exec"), "{l}");
}

/// The built-in rules without its settings, to combine with other settings.
fn session_wrapper_config_builtin_rules() -> String {
    "default = \"allow\"\n[[rules]]\nname = \"no-exec-from-temp\"\nexe = [\"/tmp/**\"]\naction = \"deny\"\n".into()
}

#[test]
fn deny_errno_is_configurable() {
    require_root!();
    let cfg = ConfigFile::new(&format!("deny-errno = \"EPERM\"\n{}", session_wrapper_config_builtin_rules()));
    let dir = scratch();
    let evil = copy_true(dir.path(), "evil");
    let log = Syslog::new();
    let out = Wrapped::new(&log).config(cfg.path()).run(&["/bin/sh", "-c", &format!("{evil}; echo $?")]);
    assert!(stderr(&out).contains("Operation not permitted"), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    assert!(find(&lines, "decision=deny").contains("errno=EPERM"));
}

#[test]
fn relative_paths_and_symlinks_are_decided_on_the_real_file() {
    require_root!();
    let dir = scratch();
    let d = dir.path().display().to_string();
    std::os::unix::fs::symlink("/usr/bin/echo", dir.path().join("echo-link")).expect("symlink");
    let evil = copy_true(dir.path(), "evil");
    std::os::unix::fs::symlink(&evil, dir.path().join("innocent")).expect("symlink");
    let log = Syslog::new();
    let cmd = format!("cd /usr/bin && ./true && {d}/echo-link via-link; {d}/innocent; echo $?");
    let cfg = shipped_config("enforce");
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&["/bin/sh", "-c", &cmd]);
    assert_eq!(stdout(&out), "via-link\n126\n", "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let rel = find(&lines, "path=\"./true\"");
    assert!(rel.contains("cwd=\"/usr/bin\"") && rel.contains("exe=\"/usr/bin/true\"") && rel.contains("decision=allow"), "{rel}");
    let link = find(&lines, "echo-link\"");
    assert!(link.contains("exe=\"/usr/bin/echo\"") && link.contains("decision=allow"), "{link}");
    let inn = find(&lines, "innocent\"");
    assert!(inn.contains(&format!("exe=\"{evil}\"")) && inn.contains("decision=deny"), "{inn}");
}

#[test]
fn execveat_with_an_empty_path_is_decided_on_the_fd() {
    require_root!();
    let dir = scratch();
    let evil = copy_true(dir.path(), "evil");
    let log = Syslog::new();
    let out = Wrapped::new(&log).as_nobody().run(&[probe(), "fexec", "/usr/bin/echo", "by-fd"]);
    assert_eq!(stdout(&out), "by-fd\n", "{}", stderr(&out));
    let cfg = shipped_config("enforce");
    let refused = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&[probe(), "fexec", &evil]);
    assert_eq!(refused.status.code(), Some(111));
    assert!(stderr(&refused).contains("execveat: Permission denied"), "{}", stderr(&refused));
    let lines = log.until_sessions_end(2, WAIT);
    let ok = find(&lines, "argv=\"/usr/bin/echo by-fd\"");
    assert!(ok.contains("path=\"\"") && ok.contains("exe=\"/usr/bin/echo\"") && ok.contains("result=exec"), "{ok}");
    let deny = find(&lines, &format!("exe=\"{evil}\""));
    assert!(deny.contains("path=\"\"") && deny.contains("decision=deny"), "{deny}");
}

#[test]
fn exec_from_a_thread_that_is_not_the_main_thread() {
    require_root!();
    let log = Syslog::new();
    let out = Wrapped::new(&log).as_nobody().run(&[probe(), "exec-from-thread", "/usr/bin/echo", "from-thread"]);
    assert_eq!(stdout(&out), "from-thread\n", "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let l = find(&lines, "argv=\"/usr/bin/echo from-thread\"");
    assert!(l.contains(" tid=") && l.contains("result=exec"), "{l}");
}

#[test]
fn a_multithreaded_program_spawning_concurrently_has_every_exec_decided() {
    require_root!();
    let log = Syslog::new();
    let out = Wrapped::new(&log).as_nobody().run(&[probe(), "spawn-threads", "4", "25", "/bin/true"]);
    assert_eq!(stdout(&out), "spawned-ok=100\n", "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let trues: Vec<_> = decisions(&lines).into_iter().filter(|l| l.contains("path=\"/bin/true\"")).collect();
    assert_eq!(trues.len(), 100);
    assert!(trues.iter().all(|l| l.contains("result=exec")));
}

#[test]
fn non_utf8_arguments_are_decided_and_logged_escaped() {
    require_root!();
    let log = Syslog::new();
    let out = Wrapped::new(&log).as_nobody().run(&[probe(), "exec-bytes", "/usr/bin/true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let l = find(&lines, "argv=\"/usr/bin/true a%FFb\"");
    assert!(l.contains("decision=allow") && l.contains("result=exec"), "{l}");
}

#[test]
fn a_thousand_execs_from_four_processes_make_exactly_a_thousand_lines() {
    require_root!();
    let log = Syslog::new();
    let cmd = "for p in 1 2 3 4; do (i=0; while [ $i -lt 250 ]; do /bin/true; i=$((i+1)); done) & done; wait";
    let out = Wrapped::new(&log).as_nobody().run(&["/bin/sh", "-c", cmd]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(Duration::from_secs(120));
    let all = decisions(&lines);
    let trues: Vec<_> = all.iter().filter(|l| l.contains("path=\"/bin/true\"")).collect();
    assert_eq!(trues.len(), 1000, "one line per exec");
    assert!(trues.iter().all(|l| l.contains("result=exec")), "every exec checked after loading");
    // The shell itself and the thousand: nothing else, nothing twice.
    assert_eq!(all.len(), 1001);
    let end = find(&lines, "event=session-end");
    assert!(end.contains("allowed=1001") && end.contains("refused=0"), "{end}");
}

/// A supervisor outside the initial PID namespace (a container's, with its own /proc) cannot
/// use the kernel's exec check, whose program sees the kernel's task ids: with `verify = "bpf"`
/// it says so (`event=verify-fallback`) and checks at ptrace stops, and the command runs.
#[test]
fn a_supervisor_in_a_pid_namespace_of_its_own_falls_back_to_the_ptrace_check() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\nverify = \"bpf\"\n");
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--mount-proc", "--"])
        .arg(session_wrapper_tests::bin("session-wrapper"))
        .args(["run", "--config"])
        .arg(cfg.path())
        .args(["--user", "nobody", "--log-socket", "/nonexistent/log", "--", "/bin/true"])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("unshare");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("event=verify-fallback") && err.contains("not in the initial PID namespace"), "{err}");
    let start = err.lines().find(|l| l.contains("event=session-start")).unwrap_or_default();
    assert!(start.contains(" verify=ptrace "), "{err}");
    assert!(err.lines().any(|l| l.contains("path=\"/bin/true\"") && l.contains("result=exec")), "{err}");
}
