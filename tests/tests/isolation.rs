//! The isolation layers through real PAM sessions (su and sudo in a private mount namespace
//! with the test's PAM stack), as root: syscall blocklist, cgroup limits, private `/tmp`,
//! Landlock. Each test attacks the layer it checks and asserts on the kernel's answer.

use std::path::Path;
use std::time::Duration;

use session_wrapper_tests::lines::{find, word_after};
use session_wrapper_tests::{require_root, stderr, stdout, ConfigFile, Sandbox};

const T: Duration = Duration::from_secs(90);

/// The number after `key=` in a log line.
fn field(line: &str, key: &str) -> u64 {
    let v = word_after(line, &format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line}"));
    v.parse().unwrap_or_else(|_| panic!("{key} in {line}"))
}

/// A sandbox with the user, su supervised with `config`, and with `sudo`, sudo too.
fn sandbox_with(user: &str, uid: u32, config: &ConfigFile, sudo: bool) -> Sandbox {
    let (mut sb, _) = Sandbox::with_user("su", user, uid, config, "");
    if sudo {
        sb.add_sudo(user, config);
    }
    sb
}

/// `python3 -c` as one shell word.
fn py(code: &str) -> String {
    format!("/usr/bin/python3 -c '{}'", code.replace('\'', "'\\''"))
}

const PTRACE_ME: &str = "import ctypes\nl = ctypes.CDLL(None, use_errno=True)\nr = l.ptrace(0, 0, 0, 0)\nprint(\"ptrace\", r, ctypes.get_errno())";
/// A raw socket with garbage in the high bits of `int domain`, which the kernel ignores.
const RAW_SOCKET_HIGH_BITS: &str = "import ctypes\nl = ctypes.CDLL(None, use_errno=True)\nr = l.syscall(41, ctypes.c_long(0x100000002), ctypes.c_long(3), ctypes.c_long(1))\nprint(\"rawsock\", r, ctypes.get_errno())";
const MOUNT: &str = "import ctypes, os\nl = ctypes.CDLL(None, use_errno=True)\nr = l.mount(b\"none\", b\"/mnt\", b\"tmpfs\", 0, None)\nprint(\"mount\", r, ctypes.get_errno(), os.geteuid())";

#[test]
fn blocked_ptrace_and_mount_fail_with_eperm_and_sudo_still_works() {
    require_root!();
    let cfg = ConfigFile::new(
        "default = \"allow\"\n[[isolation]]\nname = \"no-debug\"\nusers = [\"swiso1\"]\nblock-syscalls = [\"ptrace\", \"mount\", \"namespaces\", \"raw-sockets\"]\n",
    );
    let sb = sandbox_with("swiso1", 4501, &cfg, true);
    let cmd = format!(
        "{}; sudo -n {}; sudo -n /usr/bin/id -u; /usr/bin/unshare -U true; echo unshare=$?; sudo -n {}",
        py(PTRACE_ME),
        py(MOUNT),
        py(RAW_SOCKET_HIGH_BITS)
    );
    let out = sb.run(&["su", "swiso1", "-c", &cmd], T);
    let o = stdout(&out);
    // Unconfined, PTRACE_TRACEME succeeds for anyone and a root mount of a tmpfs succeeds.
    assert!(o.contains("ptrace -1 1\n"), "ptrace refused with EPERM: {o}{}", stderr(&out));
    assert!(o.contains("mount -1 1 0\n"), "root's mount refused with EPERM under sudo: {o}{}", stderr(&out));
    assert!(o.contains("\n0\n"), "sudo still runs commands as root: {o}");
    assert!(o.contains("unshare=1"), "namespaces refused: {o}");
    assert!(o.contains("rawsock -1 1\n"), "a raw socket is refused with garbage in the high bits too: {o}");
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("isolation=no-debug") && start.contains("blocked=ptrace,mount,namespaces,raw-sockets"), "{start}");
    assert!(find(&lines, "event=nested").contains("service=sudo"));

    // A user the block does not name is not restricted.
    let sb = sandbox_with("swiso1b", 4511, &cfg, false);
    let out = sb.run(&["su", "swiso1b", "-c", &py(PTRACE_ME)], T);
    assert_eq!(stdout(&out), "ptrace 0 0\n", "{}", stderr(&out));
}

const FORK_BOMB: &str = "import os, time\npids = []\nerr = 0\ntry:\n    while len(pids) < 400:\n        p = os.fork()\n        if p == 0:\n            time.sleep(20)\n            os._exit(0)\n        pids.append(p)\nexcept OSError as e:\n    err = e.errno\nfor p in pids:\n    os.kill(p, 9)\nfor p in pids:\n    os.waitpid(p, 0)\nprint(\"forked\", len(pids), \"errno\", err)";

#[test]
fn a_fork_bomb_stops_at_pids_max_and_the_host_does_not() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"small\"\npids-max = 40\n");
    let sb = sandbox_with("swiso2", 4502, &cfg, false);
    let out = sb.run(&["su", "swiso2", "-c", &format!("{}; echo after=$?", py(FORK_BOMB))], T);
    let o = stdout(&out);
    let n: usize = o
        .split_whitespace()
        .skip_while(|w| *w != "forked")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {o}{}", stderr(&out)));
    assert!(n < 40 && n > 5, "stopped below pids.max (40 tasks, su and the shell included): {o}");
    assert!(o.contains("errno 11"), "EAGAIN: {o}");
    assert!(o.contains("after=0"), "the session goes on: {o}");
    // Outside the session, the same number of processes is nothing special.
    let mut kids: Vec<_> = (0..60)
        .map(|_| std::process::Command::new("/bin/sleep").arg("5").spawn().expect("the host still forks"))
        .collect();
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("limits=pids-max:40"), "{start}");
    assert!(field(find(&lines, "event=session-end"), "pids_max_hits") >= 1);
}

const MEMORY_HOG: &str = "a = []\nwhile True:\n    a.append(bytearray(1 << 20))";

#[test]
fn a_memory_hog_is_oom_killed_inside_its_session_only() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"mem\"\nmemory-max = \"96M\"\n");
    let sb = sandbox_with("swiso3", 4503, &cfg, false);
    let out = sb.run(&["su", "swiso3", "-c", &format!("{}; echo hog=$?; echo shell-alive", py(MEMORY_HOG))], T);
    let o = stdout(&out);
    assert!(o.contains("hog=137\n"), "killed by SIGKILL (the OOM killer): {o}{}", stderr(&out));
    assert!(o.contains("shell-alive"), "the rest of the session lives on: {o}");
    let lines = sb.log.until_session_end(T);
    assert!(field(find(&lines, "event=session-end"), "oom_kills") >= 1, "the kill was in the session's cgroup");
    // The test process, outside, can still take far more than the session's limit.
    let big = vec![1u8; 256 << 20];
    assert_eq!(big.iter().map(|&b| u64::from(b)).sum::<u64>(), 256 << 20);
}

const CPU_HOG: &str = "import time\nend = time.time() + 2\nwhile time.time() < end:\n    pass\nprint(\"cpu\", round(time.process_time(), 2))";

#[test]
fn a_cpu_hog_is_throttled() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"cpu\"\ncpu-max = \"20%\"\n");
    let sb = sandbox_with("swiso4", 4504, &cfg, false);
    let out = sb.run(&["su", "swiso4", "-c", &py(CPU_HOG)], T);
    let o = stdout(&out);
    let used: f64 = o
        .strip_prefix("cpu ")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure: {o}{}", stderr(&out)));
    // Two seconds of spinning get about 0.4 s of CPU at 20%; unthrottled they get about 2 s.
    assert!(used < 1.0, "throttled to about 20% of a CPU: {used} s in 2 s");
    let lines = sb.log.until_session_end(T);
    assert!(field(find(&lines, "event=session-end"), "cpu_throttled") >= 1, "cpu.stat counted throttled periods");
}

#[test]
fn private_tmp_is_invisible_to_the_host_shared_with_nested_sudo_and_gone_after_logout() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"tmp\"\nprivate-dirs = [\"/tmp\"]\n");
    let sb = sandbox_with("swiso5", 4505, &cfg, true);
    let marker = format!("sw-private-{}", std::process::id());
    let cmd = format!(
        "cd /; echo secret > /tmp/{marker}; ls -A /tmp | wc -l; sudo -n cat /tmp/{marker}; readlink /proc/self/ns/mnt; \
         cp /usr/bin/true /tmp/prog && /tmp/prog; echo prog=$?"
    );
    let out = sb.run(&["su", "swiso5", "-c", &cmd], T);
    let o = stdout(&out);
    let mut lines_out = o.lines();
    assert_eq!(lines_out.next(), Some("1"), "a fresh /tmp holds only the marker: {o}{}", stderr(&out));
    assert_eq!(lines_out.next(), Some("secret"), "sudo inside the session sees the same /tmp: {o}");
    let ns = lines_out.next().unwrap_or_else(|| panic!("namespace: {o}")).to_owned();
    assert_eq!(lines_out.next(), Some("prog=0"), "a program in the private /tmp is the session's own, not foreign: {o}");
    assert!(!Path::new("/tmp").join(&marker).exists(), "the host does not see the session's file");
    sb.log.until_session_end(T);
    // After logout nothing holds the session's mount namespace, so its tmpfs is gone.
    let holders: Vec<String> = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| {
            let e = e.ok()?;
            let l = std::fs::read_link(e.path().join("ns/mnt")).ok()?;
            (l.to_string_lossy() == ns).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    assert!(holders.is_empty(), "processes still in {ns}: {holders:?}");
    // Another session gets its own, empty /tmp.
    let out = sb.run(&["su", "swiso5", "-c", &format!("cd /; ls -A /tmp | wc -l; test -e /tmp/{marker}; echo seen=$?")], T);
    assert_eq!(stdout(&out), "0\nseen=1\n", "{}", stderr(&out));
}

#[test]
fn landlock_refuses_writes_outside_the_allowed_tree_even_for_root_under_sudo() {
    require_root!();
    let sb0 = Sandbox::new();
    let base = sb0.dir().to_owned();
    let allowed = base.join("allowed");
    let other = base.join("other");
    use std::os::unix::fs::PermissionsExt;
    for d in [&allowed, &other] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    }
    let cfg = ConfigFile::new(&format!(
        "default = \"allow\"\n[[isolation]]\nname = \"fs\"\nlandlock = {{ write = [\"/dev\", \"/run\", \"{}\"] }}\n",
        allowed.display()
    ));
    let sb = sandbox_with("swiso6", 4506, &cfg, true);
    let cmd = format!(
        "cd /; echo a > {a}/f; echo allowed=$?; echo b > {o}/f; echo other=$?; sudo -n /usr/bin/touch {o}/g; echo root=$?",
        a = allowed.display(),
        o = other.display()
    );
    let out = sb.run(&["su", "swiso6", "-c", &cmd], T);
    let o = stdout(&out);
    assert!(o.contains("allowed=0"), "{o}{}", stderr(&out));
    assert!(o.contains("other=1"), "a write outside the tree is refused: {o}");
    assert!(o.contains("root=1"), "root under sudo is confined too: {o}{}", stderr(&out));
    assert!(allowed.join("f").exists());
    assert!(!other.join("f").exists() && !other.join("g").exists());
    let lines = sb.log.until_session_end(T);
    assert!(find(&lines, "event=session-start").contains("landlock_layers=1"));
}

#[test]
fn a_layer_that_cannot_be_applied_follows_the_fail_policy() {
    require_root!();
    // A private directory that does not exist cannot be made private.
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nprivate-dirs = [\"/nonexistent-sw\"]\n");
    let sb = sandbox_with("swiso7", 4507, &cfg, false);
    let out = sb.run(&["su", "swiso7", "-c", "echo ran"], T);
    assert!(!out.status.success(), "fail_policy=closed refuses the session");
    assert_eq!(stdout(&out), "");
    let why = sb.log.wait_for(|l| l.contains("session refused"), T).expect("a refusal line");
    assert!(why.contains("private directory /nonexistent-sw"), "{why}");
}

#[test]
fn a_nested_sudo_adds_its_own_isolation_and_the_login_shell_keeps_its_own() {
    require_root!();
    let cfg = ConfigFile::new(
        "default = \"allow\"\n[[isolation]]\nname = \"sudo-extra\"\nservices = [\"sudo\"]\nblock-syscalls = [\"ptrace\"]\n\
         landlock = { write = [\"/dev\", \"/run\", \"/tmp\", \"/var\"] }\n",
    );
    let sb = sandbox_with("swiso8", 4508, &cfg, true);
    let cmd = format!(
        "{p}; sudo -n {p}; sudo -n /usr/bin/touch /etc/sw-nested-probe; echo etc=$?; {p}",
        p = py(PTRACE_ME)
    );
    let out = sb.run(&["su", "swiso8", "-c", &cmd], T);
    assert_eq!(
        stdout(&out),
        "ptrace 0 0\nptrace -1 1\netc=1\nptrace 0 0\n",
        "the login shell is unrestricted, sudo's commands get sudo's block: {}",
        stderr(&out)
    );
    assert!(!Path::new("/etc/sw-nested-probe").exists());
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("isolation=-"), "the su session itself has none: {start}");
    let nested: Vec<&String> = lines.iter().filter(|l| l.contains("event=nested")).collect();
    assert_eq!(nested.len(), 2, "{nested:?}");
    assert!(nested.iter().all(|l| l.contains("service=sudo") && l.contains("adds=sudo-extra")), "{nested:?}");
}

/// With systemd-logind, limits go to pam_systemd (which would make the session's scope after
/// this module): the supervisor makes no cgroup of its own, and says that `cpu-max` cannot be
/// handed over. (logind is simulated by its state directories; nothing here runs pam_systemd.)
#[test]
fn under_logind_limits_are_handed_to_pam_systemd_and_no_cgroup_is_made() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"lim\"\npids-max = 64\ncpu-max = \"50%\"\n");
    let sb = sandbox_with("swiso9", 4509, &cfg, false);
    let out = sb.run(
        &["sh", "-c", "mkdir -p /run/systemd/system /run/systemd/seats && exec su swiso9 -c 'cat /proc/self/cgroup; echo ran'"],
        T,
    );
    let o = stdout(&out);
    assert!(o.ends_with("ran\n"), "the session runs: {o}{}", stderr(&out));
    assert!(!o.contains("session-wrapper"), "no cgroup of the supervisor's under logind: {o}");
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("cgroups=pam_systemd"), "{start}");
    assert!(find(&lines, "event=limit-not-applied").contains("limit=cpu-max"));
}

/// A FUSE file system root mounted (a view of the system's library directory here, as
/// CernVM-FS or lxcfs on a host) is root's choice, and a library search path into it is
/// fine, also in a session with private directories: its mount namespace holds copies of the
/// host's mounts, with other ids, and the file system is found by its device (review of the
/// ninth pass: looked up by mount id, it was taken for a user's there and refused).
#[test]
fn a_library_path_into_a_fuse_file_system_root_mounted_is_fine_in_a_session_with_private_directories() {
    require_root!();
    if std::process::Command::new("bindfs").arg("--version").output().is_err() || !Path::new("/dev/fuse").exists() {
        session_wrapper_tests::skip(module_path!(), "bindfs or /dev/fuse missing on this machine");
        return;
    }
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"tmp\"\nprivate-dirs = [\"/var/tmp\"]\n");
    let sb = sandbox_with("swiso6", 4506, &cfg, false);
    let view = tempfile::Builder::new().prefix("sw-fuse-").tempdir_in("/var/lib").expect("tempdir in /var/lib");
    std::fs::set_permissions(view.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let v = view.path().display();
    let script = format!(
        "bindfs /usr/lib/x86_64-linux-gnu {v} || exit 3; echo outer=$(readlink /proc/self/ns/mnt); \
         su swiso6 -c 'echo inner=$(readlink /proc/self/ns/mnt); LD_LIBRARY_PATH={v} /usr/bin/id -u; echo rc=$?'; s=$?; umount {v}; exit $s"
    );
    let out = sb.run(&["sh", "-c", &script], T);
    let o = stdout(&out);
    let lines = sb.log.until_session_end(T);
    assert!(o.contains("rc=0"), "a library path into root's FUSE mount was refused: {o}{}\n{lines:#?}", stderr(&out));
    assert!(!lines.iter().any(|l| l.contains("rule=guard:library-path")), "{lines:#?}");
    let ns = |k: &str| o.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
    assert!(ns("inner=").is_some() && ns("inner=") != ns("outer="), "the session has a mount namespace of its own: {o}");
}
