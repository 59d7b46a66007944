//! The PAM module through real programs and real PAM stacks, as root, each in a private mount
//! namespace whose `/etc/pam.d` is a copy of the machine's with the test's stanza added.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use session_wrapper_tests::lines::{find, supervisor_pid, word_after};
use session_wrapper_tests::{bin, copy_true, require_btf, require_root, stderr, stdout, wait_until, ConfigFile, Sandbox};

const T: Duration = Duration::from_secs(60);

/// Default-allow except `/tmp/**`, logging to `/dev/log` (the sandbox's socket).
const POLICY: &str = "default = \"allow\"\n[[rules]]\nname = \"no-tmp\"\nexe = \"/tmp/**\"\naction = \"deny\"\nmessage = \"not from /tmp\"\n";

/// A PAM service `service` of `pam_permit` for auth and account, and the module with `cfg`
/// as its session.
fn permit_with_module(sb: &Sandbox, service: &str, cfg: &ConfigFile) {
    sb.pam_service(service, "auth required pam_permit.so\naccount required pam_permit.so\n");
    sb.add_session_module(service, &Sandbox::module_args(&cfg.path(), ""));
}

/// A sandbox whose PAM service `service` is [`permit_with_module`] with `cfg`, and a PAM
/// application built there from the C `source` (named `name`): its path.
fn pam_host(service: &str, cfg: &ConfigFile, name: &str, source: &str) -> (Sandbox, String) {
    let sb = Sandbox::new();
    permit_with_module(&sb, service, cfg);
    let src = sb.dir().join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write source");
    let host = sb.dir().join(name);
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&host)
        .arg(&src)
        .arg("-lpam")
        .output()
        .expect("cc (build-essential)");
    assert!(cc.status.success(), "cc: {}", String::from_utf8_lossy(&cc.stderr));
    (sb, host.display().to_string())
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn pamtester_open_and_close_starts_and_stops_a_supervisor() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let sb = Sandbox::new();
    permit_with_module(&sb, "swtest", &cfg);
    let out = sb.run(&["pamtester", "swtest", "root", "open_session", "close_session"], T);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("user=root") && start.contains("service=swtest"), "{start}");
    let close = find(&lines, "event=session-close");
    assert!(close.contains("service=swtest"), "{close}");
    let pid = supervisor_pid(start);
    // The supervisor ends with the last process of the session (pamtester).
    let ended = wait_until(Duration::from_secs(5), Duration::from_millis(50), || !pid_alive(pid));
    assert!(ended, "supervisor {pid} still running");
}

#[test]
fn su_runs_allowed_commands_and_refuses_others_with_message_and_log() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "swalice", 4301, &cfg, "");
    let ev = copy_true(sb.dir(), "evil");
    let cmd = format!("/usr/bin/id -un; {ev}; echo status=$?");
    for dash in [true, false] {
        let mut argv = vec!["su"];
        if dash {
            argv.push("-");
        }
        argv.extend_from_slice(&[&u.name, "-c", &cmd]);
        let out = sb.run(&argv, T);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "swalice\nstatus=126\n", "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("session-wrapper: {ev}: not from /tmp")), "{err}");
    }
    let lines = sb.log.until_sessions_end(2, T);
    let deny = find(&lines, &format!("path=\"{ev}\""));
    for f in ["user=swalice", "decision=deny", "rule=no-tmp", "errno=EACCES", "message=written"] {
        assert!(deny.contains(f), "{f} in {deny}");
    }
    let id = find(&lines, "path=\"/usr/bin/id\"");
    assert!(id.contains("decision=allow") && id.contains("result=exec"), "{id}");
    // The login shell itself was authorized too.
    assert!(lines.iter().any(|l| l.contains("exe=\"/usr/bin/bash\"") && l.contains("decision=allow")));
}

#[test]
fn sudo_inside_a_supervised_su_session_works_and_stays_supervised() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (mut sb, u) = Sandbox::with_user("su", "swbob", 4302, &cfg, "");
    sb.add_sudo(&u.name, &cfg);
    let ev = copy_true(sb.dir(), "evil");
    let cmd = format!(
        "grep NoNewPrivs /proc/self/status; sudo -n /usr/bin/id -u; sudo -n {ev}; echo status=$?"
    );
    let out = sb.run(&["su", "-", &u.name, "-c", &cmd], T);
    assert_eq!(stdout(&out), "NoNewPrivs:\t0\n0\nstatus=1\n", "{}", stderr(&out));
    let lines = sb.log.until_session_end(T);
    // One supervisor: sudo's PAM session joined the one su started.
    assert_eq!(lines.iter().filter(|l| l.contains("event=session-start")).count(), 1);
    let nested = find(&lines, "event=nested");
    assert!(nested.contains("service=sudo") && nested.contains("target=root"), "{nested}");
    // The command sudo ran was authorized for the login user, with the target user beside it.
    let id = find(&lines, "argv=\"/usr/bin/id -u\"");
    assert!(id.contains("user=swbob") && id.contains("target=root") && id.contains("uid=0"), "{id}");
    let deny = find(&lines, &format!("path=\"{ev}\""));
    assert!(deny.contains("user=swbob") && deny.contains("target=root") && deny.contains("decision=deny"), "{deny}");
    let sudo = find(&lines, "exe=\"/usr/bin/sudo\"");
    assert!(sudo.contains("decision=allow") && sudo.contains("result=exec"), "{sudo}");
}

#[test]
fn broken_config_refuses_the_session_when_closed_and_lets_it_through_when_open() {
    require_root!();
    let cfg = ConfigFile::new("mode = \"enforce\"\n[[rules]]\nexe = \"/bin/ls\"\naction = \"permit\"\n");
    let (sb, u) = Sandbox::with_user("su", "swcarol", 4303, &cfg, "fail_policy=closed");
    let out = sb.run(&["su", "-", &u.name, "-c", "echo ran"], T);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    let why = sb.log.wait_for(|l| l.contains("session refused"), T).expect("a refusal line");
    assert!(why.contains("config.toml:4:") && why.contains("action must be one of"), "{why}");
    assert!(why.contains("fail_policy=closed"), "{why}");

    let (sb2, _) = Sandbox::with_user("su", "swcarol", 4303, &cfg, "fail_policy=open");
    let out = sb2.run(&["su", "-", &u.name, "-c", "echo ran"], T);
    assert_eq!(stdout(&out), "ran\n", "{}", stderr(&out));
    let why = sb2.log.wait_for(|l| l.contains("NOT supervised"), T).expect("an unsupervised line");
    assert!(why.contains("config.toml:4:") && why.contains("fail_policy=open"), "{why}");
}

/// `su` of a new user (`name`, `uid`) through a stack whose module starts the supervisor
/// `supervisor(sandbox)` under each fail policy: the command runs under `open` only, and su
/// itself ends normally (no crash: an exit status, not a signal). Returns each policy's
/// sandbox, for its log.
fn su_with_unusable_supervisor(name: &str, uid: u32, supervisor: impl Fn(&Sandbox) -> String) -> Vec<Sandbox> {
    let cfg = ConfigFile::new(POLICY);
    let mut done = Vec::new();
    for (policy, runs) in [("closed", false), ("open", true)] {
        let mut sb = Sandbox::new();
        let u = sb.add_user(name, uid);
        let bad = supervisor(&sb);
        sb.add_session_module("su", &format!("config={} supervisor={bad} fail_policy={policy}", cfg.path().display()));
        let out = sb.run(&["su", "-", &u.name, "-c", "echo ran"], T);
        assert_eq!(stdout(&out) == "ran\n", runs, "{policy}: {}", stderr(&out));
        assert!(out.status.code().is_some(), "{policy}: {:?}", out.status);
        done.push(sb);
    }
    done
}

#[test]
fn missing_supervisor_binary_follows_the_fail_policy_and_su_survives() {
    require_root!();
    for sb in su_with_unusable_supervisor("swdave", 4304, |_| "/nonexistent/session-wrapper-supervisor".into()) {
        let line = sb.log.wait_for(|l| l.contains("pam_session_wrapper"), T).expect("a module line");
        assert!(line.contains("/nonexistent/session-wrapper-supervisor"), "{line}");
    }
}

/// A supervisor binary that passes the module's checks (root's, mode 0755) but that the
/// kernel cannot execute: the module says so, and the fail policy decides.
#[test]
fn a_supervisor_binary_the_kernel_cannot_execute_is_named_and_the_fail_policy_decides() {
    require_root!();
    // In a directory only root can change (the module takes nothing else).
    let dir = tempfile::Builder::new().prefix("sw-supervisor-").tempdir_in("/var/lib").expect("tempdir in /var/lib");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bad = dir.path().join("not-a-program").display().to_string();
    session_wrapper_tests::write_executable(Path::new(&bad), "not a program\n");
    let sandboxes = su_with_unusable_supervisor("swerin", 4312, |_| bad.clone());
    for sb in sandboxes {
        let line = sb.log.wait_for(|l| l.contains("pam_session_wrapper") && l.contains(&bad), T).expect("a module line");
        assert!(line.contains("could not be executed") && line.contains("ENOEXEC"), "{line}");
    }
}

/// The supervisor runs as root in the host's place: the module runs one only from a path that
/// root alone can change. A real supervisor (root's, mode 0755) in a directory anyone may
/// write is refused and the directory named (anyone could have put their own program there,
/// or could swap it in between the check and the exec); the fail policy decides. So is one
/// reached through a symlink in such a directory.
#[test]
fn a_supervisor_in_a_directory_others_can_write_is_refused_and_named() {
    require_root!();
    let dir = tempfile::Builder::new().prefix("sw-supervisor-").tempdir_in("/var/lib").expect("tempdir in /var/lib");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod 777");
    let copy = open.join("session-wrapper-supervisor");
    session_wrapper_tests::install(&bin("session-wrapper-supervisor"), &copy);
    let link = open.join("link");
    std::os::unix::fs::symlink(bin("session-wrapper-supervisor"), &link).expect("symlink");
    for (user, uid, path) in [("swfay", 4314, &copy), ("swgus", 4315, &link)] {
        let path = path.display().to_string();
        for sb in su_with_unusable_supervisor(user, uid, |_| path.clone()) {
            let line = sb.log.wait_for(|l| l.contains("pam_session_wrapper") && l.contains(&path), T).expect("a module line");
            assert!(line.contains(&format!("{} (owner uid 0, mode 777) can be changed by others than root", open.display())), "{line}");
        }
    }
}

/// The module waits `timeout=` seconds for each answer, the second one ("ready") after its
/// filter is on, when a failure refuses the session whatever the fail policy. The kernel
/// check's loader runs before that answer: with `timeout=2` and a loader that waits out
/// another's lock (4 s; held here, in the sandbox's own `/run`, with a BPF file system of its
/// own and so no pins), the supervisor gives the loader half the module's wait and goes on at
/// ptrace stops. It gave it 5 s whatever the module's wait, and the session was refused.
#[test]
fn a_loader_held_up_does_not_outlast_a_short_module_timeout() {
    require_root!();
    require_btf!();
    let cfg = ConfigFile::new(&format!("verify = \"bpf\"\n{POLICY}"));
    let (sb, u) = Sandbox::with_user("su", "swhal", 4316, &cfg, "timeout=2");
    let lock = "/run/session-wrapper/bpf-loader.lock";
    let script = format!(
        "mount -t bpf -o mode=0700 bpf /sys/fs/bpf && mkdir -m 700 /run/session-wrapper && install -m 600 /dev/null {lock} || exit 3; \
         (exec 9>>{lock}; flock 9; exec sleep 60) >/dev/null 2>&1 & h=$!; \
         i=0; until ! flock -n {lock} true || [ $i -ge 200 ]; do sleep 0.01; i=$((i+1)); done; \
         su - {} -c 'echo ran'; s=$?; kill $h; exit $s",
        u.name
    );
    let out = sb.run(&["sh", "-c", &script], T);
    assert_eq!(stdout(&out), "ran\n", "the session was refused: {}", stderr(&out));
    let lines = sb.log.until_session_end(T);
    let fallback = lines.iter().find(|l| l.contains("event=verify-fallback")).unwrap_or_else(|| panic!("{lines:#?}"));
    // Half of 2 s, less the half second a killed loader may take to be reaped.
    assert!(fallback.contains("no answer within 0.5 s; killed"), "{fallback}");
    assert!(lines.iter().any(|l| l.contains("event=session-start") && l.contains(" verify=ptrace ")), "{lines:#?}");
}

/// A user in thousands of groups: the account no longer fits in the module's hello, which
/// then goes without it, and the supervisor looks the user up itself.
#[test]
fn a_user_in_thousands_of_groups_gets_a_supervised_session() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (mut sb, u) = Sandbox::with_user("su", "swmany", 4313, &cfg, "");
    let mut group = String::new();
    let mut gshadow = String::new();
    for i in 0..2500u32 {
        group.push_str(&format!("sw-a-rather-long-group-name-{i:05}:x:{}:{}\n", 60000 + i, u.name));
        gshadow.push_str(&format!("sw-a-rather-long-group-name-{i:05}:!::{}\n", u.name));
    }
    sb.append_etc("group", &group);
    sb.append_etc("gshadow", &gshadow);
    let out = sb.run(&["su", &u.name, "-c", "id -G | wc -w; /bin/true && echo ran"], T);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2501\nran\n", "{}", stderr(&out));
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("user=swmany"), "{start}");
    assert!(lines.iter().any(|l| l.contains("path=\"/bin/true\"") && l.contains("decision=allow")), "{lines:#?}");
}

#[test]
fn supervisor_killed_mid_session_means_no_exec_succeeds_afterwards() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "sweve", 4305, &cfg, "");
    let marker = sb.dir().join("after");
    let cmd = format!(
        "/usr/bin/true; read x; /usr/bin/touch {m}; echo touch=$?; echo builtin-still-works",
        m = marker.display()
    );
    let mut child = sb
        // The timeout is a guard against a hang only: on a loaded machine su's start alone can
        // take many seconds, and a guard that fires closes the pipe this test writes to.
        .command(&["timeout", "300", "su", "-", &u.name, "-c", &cmd])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = sb.log.wait_for(|l| l.contains("event=session-start"), T).expect("session start");
    sb.log.wait_for(|l| l.contains("path=\"/usr/bin/true\"") && l.contains("result="), T).expect("first exec");
    let pid = supervisor_pid(&start);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let died = sb.log.wait_for(|l| l.contains("event=supervisor-died"), T).expect("watchdog line");
    assert!(died.contains("SIGKILL"), "{died}");
    use std::io::Write;
    let wrote = child.stdin.take().expect("stdin").write_all(b"go\n");
    let out = child.wait_with_output().expect("wait");
    assert!(wrote.is_ok(), "the session was gone before it was told to go on ({wrote:?}): {out:?}");
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(so.contains("touch=126") || so.contains("touch=127"), "{so}");
    assert!(so.contains("builtin-still-works"), "{so}");
    assert!(!marker.exists(), "touch ran after the supervisor died");
    // su survived and returned normally.
    assert!(out.status.code().is_some(), "{:?}", out.status);
}

#[test]
fn a_daemonized_descendant_outliving_the_login_stays_supervised() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "swfrank", 4306, &cfg, "");
    let marker = u.home.join("daemon-marker");
    let cmd = format!(
        "setsid sh -c 'sleep 1; /usr/bin/touch {}' </dev/null >/dev/null 2>&1 &",
        marker.display()
    );
    let started = Instant::now();
    let out = sb.run(&["su", "-", &u.name, "-c", &cmd], T);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(1), "su returned before the daemon finished");
    let lines = sb.log.until_session_end(T);
    let close = lines.iter().position(|l| l.contains("event=session-close")).expect("close line");
    let touch = lines.iter().position(|l| l.contains("path=\"/usr/bin/touch\"")).expect("daemon exec line");
    let end = lines.iter().position(|l| l.contains("event=session-end")).expect("end line");
    assert!(close < touch && touch < end, "close, then the daemon's exec, then the end:\n{}", lines.join("\n"));
    assert!(marker.exists());
}

#[test]
fn kill_on_close_ends_lingering_processes() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "swgina", 4307, &cfg, "kill_on_close");
    let marker = u.home.join("should-not-exist");
    let cmd = format!("setsid sh -c 'sleep 3; /usr/bin/touch {}' </dev/null >/dev/null 2>&1 &", marker.display());
    let out = sb.run(&["su", "-", &u.name, "-c", &cmd], T);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = sb.log.until_session_end(T);
    let close = find(&lines, "event=session-close");
    // su gives the session no audit session of its own: its processes are found by cgroup.
    assert!(close.contains("kill_on_close=1") && !close.contains("ended=0") && close.contains("by=cgroup"), "{close}");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!marker.exists(), "the lingering process was not ended");
}

/// Moving the opener into a cgroup costs an RCU grace period after an idle while (5 to 20 ms,
/// docs/BENCHMARKS.md): a session gets a cgroup of its own only when something uses it.
#[test]
fn a_session_gets_a_cgroup_only_when_something_uses_it() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    for (extra, wanted) in [("", false), ("kill_on_close", true)] {
        let (sb, u) = Sandbox::with_user("su", "swjack", 4310, &cfg, extra);
        let out = sb.run(&["su", "-", &u.name, "-c", "cat /proc/self/cgroup"], T);
        assert!(out.status.success(), "{}", stderr(&out));
        let cgroups = String::from_utf8_lossy(&out.stdout);
        assert!(cgroups.contains("/session-wrapper/") == wanted, "module args {extra:?}: {cgroups}");
        sb.log.until_session_end(T);
    }
}

#[test]
fn sessions_lists_the_live_session_from_the_runtime_directory() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "swhank", 4308, &cfg, "");
    let sw = bin("session-wrapper").display().to_string();
    // Inside the same namespace (the runtime directory is its private /run): a session that
    // lists the sessions from outside itself, then a check that none is left afterwards.
    let script = format!(
        "su - {} -c '/usr/bin/true; sleep 2' & sleep 1; {sw} sessions; wait; {sw} sessions",
        u.name
    );
    let out = sb.run(&["sh", "-c", &script], T);
    let text = stdout(&out);
    let first = text.lines().find(|l| l.contains("swhank")).unwrap_or_else(|| panic!("{text}\n{}", stderr(&out)));
    assert!(first.contains(" su-l ") && first.contains(" enforce ") && first.contains("config=/"), "{first}");
    // Exact, not up to a second late: every exec of the session had happened (it sleeps), and
    // the list says as many as the session's end line.
    let end = sb.log.until_session_end(T);
    let end = find(&end, "event=session-end");
    let allowed = word_after(end, " allowed=").expect("allowed");
    assert!(first.contains(&format!(" allowed={allowed} refused=0 ")), "{first}\nvs {end}");
    // Its processes: at least the shell's sleep and su itself.
    let procs: usize = first.split_whitespace().nth(8).and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(procs >= 2, "{first}");
    assert!(text.trim_end().ends_with("no live sessions"), "{text}");
}

fn status_field(pid: i32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

/// A process's scheduling policy (`/proc/PID/stat` field 41): 0 normal, 5 idle.
/// How many `NETLINK_AUDIT` sockets process `pid` holds (`/proc/net/netlink`: protocol 9).
fn audit_sockets(pid: i32) -> usize {
    let table = std::fs::read_to_string("/proc/net/netlink").expect("netlink table");
    let audit: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"9")).then(|| format!("socket:[{}]", f.get(9).unwrap_or(&"")))
        })
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| audit.iter().any(|a| l.as_os_str() == a.as_str()))
        .count()
}

fn sched_policy(pid: i32) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = s.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    fields.get(41 - 3).and_then(|p| p.parse().ok()).expect("policy")
}

#[test]
fn the_supervisor_and_its_watchdog_run_with_least_privilege() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "swivy", 4309, &cfg, "");
    let mut child = sb
        .command(&["timeout", "30", "su", "-", &u.name, "-c", "/usr/bin/true; sleep 2"])
        .spawn()
        .expect("spawn");
    let start = sb.log.wait_for(|l| l.contains("event=session-start"), T).expect("session start");
    sb.log.wait_for(|l| l.contains("path=\"/usr/bin/true\"") && l.contains("result="), T).expect("an exec");
    let sup = supervisor_pid(&start);
    // CAP_DAC_READ_SEARCH (2), CAP_KILL (5), CAP_SYS_PTRACE (19), with the kernel's exec check
    // CAP_BPF (39: before Linux 6.5 a map update needs it), and nothing else.
    let caps = if start.contains(" verify=bpf ") { "0000008000080024" } else { "0000000000080024" };
    assert_eq!(status_field(sup, "CapEff"), caps, "{start}");
    assert_eq!(status_field(sup, "CapPrm"), caps, "{start}");
    assert_eq!(status_field(sup, "CapBnd"), caps, "{start}");
    assert_eq!(status_field(sup, "NoNewPrivs"), "1");
    assert_eq!(status_field(sup, "Seccomp"), "2");
    // Not dumpable: its /proc files belong to root, whoever it runs as.
    let watchdog: i32 = status_field(sup, "PPid").parse().expect("ppid");
    assert_eq!(status_field(watchdog, "Name"), "sw-watchdog");
    // The watchdog keeps only CAP_DAC_OVERRIDE (1), to remove the session's cgroup.
    assert_eq!(status_field(watchdog, "CapEff"), "0000000000000002");
    assert_eq!(status_field(watchdog, "Seccomp"), "2");
    // The watchdog confines itself in the idle class, so that the supervisor runs first when
    // the session opens, then waits in the normal class (its line and clean-up after the
    // supervisor's death must not wait behind the session's work); the supervisor, whom every
    // exec of the session waits for, is never idle.
    assert_eq!(sched_policy(watchdog), 0, "the watchdog's scheduling policy while it waits");
    assert_eq!(sched_policy(sup), 0, "the supervisor's scheduling policy");
    // The module's audit status question came with the hello: the watchdog closed its copy,
    // and the supervisor read and closed its own (it holds one only to write records, when
    // an audit daemon listens: this machine has none).
    assert_eq!(audit_sockets(watchdog), 0, "the watchdog holds an audit socket");
    if !std::path::Path::new("/run/auditd.pid").exists() {
        assert_eq!(audit_sockets(sup), 0, "the supervisor holds an audit socket");
    }
    let _ = child.wait();
    sb.log.until_session_end(T);
}

/// `su` opens the session before it changes identity: the supervisor starts with su's
/// caller's real ids. It makes itself root in all of them, so that caller cannot stop or kill
/// the supervisor, its watchdog, or the loader of the kernel's check (the kernel lets a user
/// signal the processes whose real uid is theirs). The attack: the caller, a user of its own,
/// sends `SIGSTOP` and `SIGKILL` to both; both are refused, and the session goes on.
#[test]
fn a_su_caller_cannot_stop_or_kill_the_supervisor_of_the_session_it_opened() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let mut sb = Sandbox::new();
    let caller = sb.add_user("swcaller", 4315);
    let target = sb.add_user("swtarget", 4314);
    // A stack that lets anyone su without a password: the caller is not root.
    sb.pam_service("su", "auth sufficient pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n");
    sb.add_session_module("su", &Sandbox::module_args(&cfg.path(), ""));
    let ids = format!("--reuid={} --regid={} --clear-groups", caller.uid, caller.uid);
    let session = format!("setpriv {ids} su {} -c '/usr/bin/true; sleep 3; /usr/bin/true'", target.name);
    let child = sb.command(&["timeout", "30", "sh", "-c", &session]).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    let start = sb.log.wait_for(|l| l.contains("event=session-start"), T).expect("session start");
    let sup = supervisor_pid(&start);
    let watchdog: i32 = status_field(sup, "PPid").parse().expect("ppid");
    for pid in [sup, watchdog] {
        assert_eq!(status_field(pid, "Uid"), "0\t0\t0\t0", "pid {pid}");
        assert_eq!(status_field(pid, "Gid"), "0\t0\t0\t0", "pid {pid}");
        for sig in ["STOP", "KILL"] {
            let out = std::process::Command::new("setpriv")
                .args(["--reuid", &caller.uid.to_string(), "--regid", &caller.uid.to_string(), "--clear-groups"])
                .args(["kill", &format!("-{sig}"), &pid.to_string()])
                .output()
                .expect("kill as the caller");
            assert!(!out.status.success(), "the caller could send SIG{sig} to {pid}");
            assert!(stderr(&out).contains("Operation not permitted"), "{}", stderr(&out));
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let lines = sb.log.until_session_end(T);
    let ran = lines.iter().filter(|l| l.contains("path=\"/usr/bin/true\"") && l.contains("result=exec")).count();
    assert_eq!(ran, 2, "{lines:#?}");
}

/// The module starts the supervisor in the host's memory (`CLONE_VM | CLONE_VFORK`), with
/// every signal blocked in the host's thread meanwhile: the supervisor must start with none of
/// the host's ignored or blocked signals, and the host must get its own mask back (the session
/// inherits it).
#[test]
fn the_supervisor_starts_clean_of_the_host_s_signals_and_the_host_gets_its_mask_back() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("su", "swsig", 4311, &cfg, "");
    // su, the host, inherits SIGHUP, SIGINT and the last real-time signal (64) ignored.
    let cmd = "grep -E '^Sig(Blk|Ign):' /proc/self/status; sleep 2";
    let child = sb
        .command(&["timeout", "30", "bash", "-c", "trap '' HUP INT 64; exec \"$0\" \"$@\"", "su", &u.name, "-c", cmd])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = sb.log.wait_for(|l| l.contains("event=session-start"), T).expect("session start");
    let sup = supervisor_pid(&start);
    let watchdog: i32 = status_field(sup, "PPid").parse().expect("ppid");
    for pid in [sup, watchdog] {
        // SIGPIPE (13) ignored, SIGUSR1 (10) and SIGCHLD (17) blocked: their own, nothing more.
        assert_eq!(status_field(pid, "SigIgn"), "0000000000001000", "pid {pid}");
        assert_eq!(status_field(pid, "SigBlk"), "0000000000010200", "pid {pid}");
    }
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    // The session's command, su's child: nothing blocked, as before su opened the session.
    assert!(text.contains("SigBlk:\t0000000000000000\n"), "{text}");
    sb.log.until_session_end(T);
}

/// A PAM application with a SIGCHLD disposition of its own (`handler`: a counting handler;
/// `ignore`: SIG_IGN, under which the kernel reaps children itself), one thread of which
/// reads that disposition in a loop while the main thread opens a session. Prints `open=`,
/// `looks=` (readings during the open), `changed=` (readings that were not the host's own) and `handled=`
/// (SIGCHLDs its handler got), then `close=`.
const SIGCHLD_HOST: &str = r#"#include <security/pam_appl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int stop, handled;
static atomic_long looks, changed;
static void on_chld(int s) { (void)s; handled++; }

static void *watch(void *arg) {
    void (*mine)(int) = (void (*)(int))arg;
    while (!stop) {
        struct sigaction now;
        sigaction(SIGCHLD, 0, &now);
        looks++;
        if (now.sa_handler != mine) changed++;
    }
    return 0;
}

static int conv(int n, const struct pam_message **m, struct pam_response **r, void *d) {
    (void)m; (void)d;
    *r = calloc(n, sizeof **r);
    return PAM_SUCCESS;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = strcmp(argv[2], "ignore") == 0 ? SIG_IGN : on_chld;
    if (sigaction(SIGCHLD, &sa, 0) != 0) return 2;
    pthread_t t;
    pthread_create(&t, 0, watch, (void *)sa.sa_handler);
    while (looks < 1000) sched_yield();
    struct pam_conv c = {conv, 0};
    pam_handle_t *h;
    int r = pam_start(argv[1], "root", &c, &h);
    long before = looks;
    if (r == PAM_SUCCESS) r = pam_open_session(h, 0);
    long during = looks - before;
    stop = 1;
    pthread_join(t, 0);
    printf("open=%d looks=%ld changed=%ld handled=%d\n", r, during, (long)changed, (int)handled);
    r = pam_close_session(h, 0);
    pam_end(h, r);
    printf("close=%d\n", r);
    return 0;
}
"#;

/// The module never touches the host's signal dispositions: a host's SIGCHLD handler stays
/// in place throughout the open (another thread of the host, reading it in a loop, never
/// sees anything else), and gets no signal from the module's own children; a host that
/// ignores SIGCHLD (the kernel then reaps its children unasked) gets its session too. (The
/// module used to set SIGCHLD to its default for the time of the start, process-wide: a
/// child of the host's ending then was never told to its handler.)
#[test]
fn the_host_s_sigchld_disposition_is_never_changed_and_a_host_that_ignores_it_gets_its_session() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, host) = pam_host("swsigchld", &cfg, "sigchld-host", SIGCHLD_HOST);
    for mode in ["handler", "ignore", "handler", "ignore"] {
        let out = sb.run(&[&host, "swsigchld", mode], T);
        let o = stdout(&out);
        assert!(out.status.success(), "{mode}: {o}{}", stderr(&out));
        let f: std::collections::HashMap<&str, i64> = o
            .split_whitespace()
            .filter_map(|w| w.split_once('=').and_then(|(k, v)| Some((k, v.parse().ok()?))))
            .collect();
        assert_eq!((f.get("open"), f.get("close")), (Some(&0), Some(&0)), "{mode}: {o}{}", stderr(&out));
        assert!(f.get("looks").is_some_and(|&n| n > 1000), "{mode}: the watcher hardly ran during the open: {o}");
        assert_eq!(f.get("changed"), Some(&0), "{mode}: the host's SIGCHLD disposition was changed during the open: {o}");
        assert_eq!(f.get("handled"), Some(&0), "{mode}: the host's handler got a SIGCHLD of the module's: {o}");
    }
    let lines = sb.log.until_sessions_end(4, T);
    assert_eq!(lines.iter().filter(|l| l.contains("event=session-start")).count(), 4, "{lines:#?}");
}

/// A PAM application that execs the moment its open returns: each `PATH ARG` pair of its
/// arguments after the service, one after the other (`argv[0]` the path). Prints `open=`, the
/// exit statuses (126 when the exec was refused) after `ran=`, and `close=`.
const FIRST_EXEC_HOST: &str = r#"#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int conv(int n, const struct pam_message **m, struct pam_response **r, void *d) {
    (void)m; (void)d;
    *r = calloc(n, sizeof **r);
    return PAM_SUCCESS;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc % 2) return 2;
    struct pam_conv c = {conv, 0};
    pam_handle_t *h;
    int r = pam_start(argv[1], "root", &c, &h);
    if (r == PAM_SUCCESS) r = pam_open_session(h, 0);
    int status[64], n = 0;
    for (int i = 2; i + 1 < argc && n < 64; i += 2) {
        pid_t pid = fork();
        if (pid == 0) {
            execl(argv[i], argv[i], argv[i + 1], (char *)0);
            _exit(126);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        status[n++] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    printf("open=%d\nran=", r);
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", status[i]);
    r = pam_close_session(h, 0);
    pam_end(h, r);
    printf("\nclose=%d\n", r);
    return 0;
}
"#;

/// The supervisor says "ready" before it has made the rest of its exec view (this system's
/// dynamic loaders, the session's mount table read) and the session file:
/// they are made while the host goes on, and the session's first exec waits in the kernel
/// until the supervisor serves. So the very first exec after the open returns is decided with
/// the whole view, as a later one is: the dynamic loader run as a program (which would load
/// any file as a program) is refused first and again, and `/usr/bin/true` runs between.
#[test]
fn the_first_exec_after_the_open_returns_is_decided_with_the_whole_exec_view() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, host) = pam_host("swfirst", &cfg, "first-exec-host", FIRST_EXEC_HOST);
    let loader = "/lib64/ld-linux-x86-64.so.2";
    for round in 0..3 {
        let out = sb.run(&[&host, "swfirst", loader, "/usr/bin/true", "/usr/bin/true", "x", loader, "/usr/bin/true"], T);
        assert!(out.status.success(), "round {round}: {}{}", stdout(&out), stderr(&out));
        assert_eq!(stdout(&out), "open=0\nran=126 0 126\nclose=0\n", "round {round}: {}", stderr(&out));
    }
    let lines = sb.log.until_sessions_end(3, T);
    let refused = lines.iter().filter(|l| l.contains("decision=deny") && l.contains("ld-linux")).count();
    assert_eq!(refused, 6, "{lines:#?}");
}

/// A PAM application that opens a session while other threads of its own allocate, write and
/// check memory, then execs from a thread that was running before the open. The module starts
/// the supervisor with `clone(CLONE_VM | CLONE_VFORK)`: its children run in this process's
/// memory, while the other threads go on. Prints `open=`, `allowed=` and `refused=` (the exit
/// statuses of `/bin/true` and of the refused program, started by that older thread), `bad=`
/// (bytes the churning threads found changed under them) and `close=`.
const THREADED_HOST: &str = r#"#include <security/pam_appl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;
static atomic_long bad;
static int go[2];
static const char *paths[2];
static int status[2] = {-1, -1};

static int conv(int n, const struct pam_message **m, struct pam_response **r, void *d) {
    (void)m; (void)d;
    *r = calloc(n, sizeof **r);
    return PAM_SUCCESS;
}

static void *churn(void *arg) {
    unsigned seed = (unsigned)(long)arg;
    while (!stop) {
        size_t n = 64 + rand_r(&seed) % 65536;
        unsigned char v = (unsigned char)rand_r(&seed);
        unsigned char *p = malloc(n);
        memset(p, v, n);
        sched_yield();
        for (size_t i = 0; i < n; i += 512)
            if (p[i] != v) bad++;
        if (p[n - 1] != v) bad++;
        free(p);
    }
    return 0;
}

static void *execs(void *arg) {
    (void)arg;
    char c;
    if (read(go[0], &c, 1) != 1) return 0;
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl(paths[i], paths[i], (char *)0);
            _exit(126);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4 || pipe(go) != 0) return 2;
    paths[0] = argv[2];
    paths[1] = argv[3];
    pthread_t t[5];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, churn, (void *)(i + 1));
    pthread_create(&t[4], 0, execs, 0);
    struct pam_conv c = {conv, 0};
    pam_handle_t *h;
    int r = pam_start(argv[1], "root", &c, &h);
    if (r == PAM_SUCCESS) r = pam_open_session(h, 0);
    printf("open=%d\n", r);
    if (write(go[1], "g", 1) != 1) return 2;
    pthread_join(t[4], 0);
    printf("allowed=%d refused=%d\n", status[0], status[1]);
    stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], 0);
    printf("bad=%ld\n", (long)bad);
    r = pam_close_session(h, 0);
    pam_end(h, r);
    printf("close=%d\n", r);
    return 0;
}
"#;

/// The module's `CLONE_VM` start, in a host with other threads running: the host never
/// crashes and none of its memory changes under its threads, and the filter covers the
/// threads that were running before the open (a thread of the host execs a refused program).
#[test]
fn a_multithreaded_host_opens_sessions_unharmed_and_its_older_threads_are_supervised() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, host) = pam_host("swthreads", &cfg, "threaded-host", THREADED_HOST);
    let ev = copy_true(sb.dir(), "evil");
    for round in 0..5 {
        let out = sb.run(&[&host, "swthreads", "/bin/true", &ev], T);
        assert!(out.status.success(), "round {round}: {}{}", stdout(&out), stderr(&out));
        assert_eq!(stdout(&out), "open=0\nallowed=0 refused=126\nbad=0\nclose=0\n", "round {round}: {}", stderr(&out));
    }
    let lines = sb.log.until_sessions_end(5, T);
    let denied = lines.iter().filter(|l| l.contains(&format!("path=\"{ev}\"")) && l.contains("decision=deny")).count();
    let allowed = lines.iter().filter(|l| l.contains("path=\"/bin/true\"") && l.contains("decision=allow")).count();
    assert_eq!((denied, allowed), (5, 5), "{lines:#?}");
}
