//! Faults around a supervised session, through real su sessions: each has a defined outcome,
//! never a hang. (The TACACS+ backend's faults are in `tacacs.rs`; a missing supervisor binary
//! and a broken configuration in `pam.rs`.)

use std::io::Write;
use std::time::{Duration, Instant};

use session_wrapper_tests::{require_root, stderr, stdout, ConfigFile, Sandbox};

const T: Duration = Duration::from_secs(60);

const POLICY: &str = "default = \"allow\"\n[[rules]]\nname = \"no-id\"\nexe = \"/usr/bin/id\"\naction = \"deny\"\n";

#[test]
fn an_unwritable_runtime_directory_costs_the_session_list_only() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, _) = Sandbox::with_user("su", "swfault1", 4601, &cfg, "");
    // /run/session-wrapper is a file: the session file cannot be written.
    let out = sb.run(
        &["sh", "-c", "touch /run/session-wrapper && exec su swfault1 -c '/usr/bin/true; echo ok=$?; /usr/bin/id; echo id=$?'"],
        T,
    );
    assert_eq!(stdout(&out), "ok=0\nid=126\n", "{}", stderr(&out));
    let lines = sb.log.until_session_end(T);
    assert!(lines.iter().any(|l| l.contains("event=runtime-dir-error")), "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("path=\"/usr/bin/id\"") && l.contains("decision=deny")));
}

#[test]
fn a_session_keeps_the_policy_it_started_with_when_the_file_changes() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n");
    let (sb, _) = Sandbox::with_user("su", "swfault2", 4602, &cfg, "");
    let fifo = sb.dir().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).expect("mkfifo");
    let cmd = format!("/usr/bin/true; read x < {}; /usr/bin/id -un; echo id=$?", fifo.display());
    let child = sb
        .command(&["timeout", "30", "su", "swfault2", "-c", &cmd])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    sb.log.wait_for(|l| l.contains("path=\"/usr/bin/true\"") && l.contains("result="), T).expect("first exec");
    // Mid-session, the policy file becomes garbage.
    std::fs::write(cfg.path(), "default = [[[").expect("rewrite");
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).expect("open fifo");
        writeln!(f, "go").expect("go");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out), "swfault2\nid=0\n", "the running session keeps its policy: {}", stderr(&out));
    sb.log.until_session_end(T);
    // A new session reads the file again: broken, so the fail policy (closed) refuses it...
    let out = sb.run(&["su", "swfault2", "-c", "echo ran"], T);
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    sb.log.wait_for(|l| l.contains("session refused") && l.contains("config.toml:1:"), T).expect("a located refusal");
    // ...and once it refuses id, new sessions refuse id.
    std::fs::write(cfg.path(), POLICY).expect("rewrite");
    let out = sb.run(&["su", "swfault2", "-c", "/usr/bin/id -un; echo id=$?"], T);
    assert_eq!(stdout(&out), "id=126\n", "{}", stderr(&out));
}

#[test]
fn a_missing_syslog_socket_changes_nothing_but_the_log() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, _) = Sandbox::with_user("su", "swfault3", 4603, &cfg, "");
    let started = Instant::now();
    let out = sb.run(
        &[
            "sh",
            "-c",
            "umount /dev/log && rm -f /dev/log && exec su swfault3 -c 'for i in 1 2 3 4 5; do /usr/bin/true; done; echo ok=$?; /usr/bin/id; echo id=$?'",
        ],
        T,
    );
    assert_eq!(stdout(&out), "ok=0\nid=126\n", "decisions are enforced without a log: {}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "no waiting on a missing socket: {:?}", started.elapsed());
}

/// Whoever reads /dev/log stops reading for a while: the session is not slowed, and every
/// line is delivered, or kept in the spool for the next supervisor; none is dropped.
#[test]
fn a_syslog_reader_that_stalls_never_slows_the_session_and_every_line_is_accounted_for() {
    require_root!();
    let spool_holder = session_wrapper_tests::TempDir::new().expect("tempdir");
    let spool = spool_holder.path().join("spool");
    let cfg = ConfigFile::new(&format!("default = \"allow\"\n[log]\nspool-dir = \"{}\"\n", spool.display()));
    let (sb, _) = Sandbox::with_user("su", "swfault4", 4604, &cfg, "");
    let shared = sb.dir().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).expect("chmod");
    let flag = shared.join("execs-done");
    let collected = sb.dir().join("collected");
    // A reader on /dev/log that starts reading only once the session's execs are done.
    let reader = format!(
        "import socket, time, os\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.bind('/dev/log')\n\
         while not os.path.exists('{flag}'):\n    time.sleep(0.05)\n\
         s.settimeout(4)\n\
         out = open('{collected}', 'w')\n\
         try:\n    while True:\n        out.write(s.recv(65536).decode(errors='replace').replace('\\n', ' ') + '\\n')\n\
         except socket.timeout:\n    pass\n\
         out.close()\n",
        flag = flag.display(),
        collected = collected.display()
    );
    let py = sb.dir().join("reader.py");
    std::fs::write(&py, reader).expect("reader");
    let n = 1500;
    let script = format!(
        "umount /dev/log && rm -f /dev/log && (python3 {py} &) && sleep 0.5 && \
         su swfault4 -c 'i=0; while [ $i -lt {n} ]; do /usr/bin/true; i=$((i+1)); done; /usr/bin/touch {flag}'; \
         sleep 6",
        py = py.display(),
        flag = flag.display()
    );
    let started = Instant::now();
    let out = sb.run(&["sh", "-c", &script], T);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < Duration::from_secs(45), "the session was not held up by the stalled reader: {took:?}");
    let text = std::fs::read_to_string(&collected).expect("collected lines");
    let delivered = text.lines().filter(|l| l.contains("path=\"/usr/bin/true\"")).count();
    let dropped = text.lines().filter(|l| l.contains("event=log-dropped")).count();
    assert_eq!(dropped, 0, "nothing is dropped while the spool has room");
    // What the reader did not take before the session ended waits in the spool.
    let mut kept = 0;
    for e in std::fs::read_dir(&spool).into_iter().flatten().flatten() {
        let body = std::fs::read_to_string(e.path()).unwrap_or_default();
        kept += body.lines().filter(|l| l.contains("path=\"/usr/bin/true\"")).count();
    }
    assert!(
        delivered + kept >= n && delivered + kept <= n + 10,
        "{delivered} delivered + {kept} kept in the spool vs {n} execs of /usr/bin/true"
    );
}

/// Without any syslog socket (minimal images, containers), `session-wrapper run` waits for
/// nothing at the end (it waited 2 s) and writes the session's lines to its standard error
/// once the command has ended; nothing is left in the spool.
#[test]
fn without_a_syslog_socket_run_waits_for_nothing_and_writes_its_lines_to_stderr() {
    require_root!();
    let dir = session_wrapper_tests::TempDir::new().expect("tempdir");
    let spool = dir.path().join("spool");
    let run = || {
        let t0 = Instant::now();
        let out = session_wrapper_tests::session_wrapper()
            .args(["--user", "nobody", "--log-socket"])
            .arg(dir.path().join("no-such-socket"))
            .arg("--spool-dir")
            .arg(&spool)
            .args(["--", "/bin/true"])
            .current_dir("/")
            .output()
            .expect("session-wrapper");
        (out, t0.elapsed())
    };
    let (out, took) = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("event=session-start") && err.contains("path=\"/bin/true\"") && err.contains("event=session-end"), "{err}");
    // The figure is in docs/BENCHMARKS.md; this only proves there is no wait of seconds.
    assert!(took < Duration::from_millis(1500), "a session without a syslog socket took {took:?}");
    let left = std::fs::read_dir(&spool).map(|d| d.flatten().filter(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false)).count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing is left behind in the spool");
}
