//! sshd on 127.0.0.1 and login under a pty, through the sandbox's PAM stacks, as root: an exec
//! channel, an interactive pty session, sftp, and a console-style login.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use session_wrapper_tests::lines::{find, lines_with};
use session_wrapper_tests::{
    bin, copy_true, free_port, require_root, stderr, stdout, wait_until, ConfigFile, KillOnDrop, Sandbox, TestUser,
};

const T: Duration = Duration::from_secs(60);

/// sshd running in a sandbox; killed on drop.
struct Sshd {
    _child: KillOnDrop,
    port: u16,
    key: PathBuf,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

fn start_sshd(sb: &Sandbox, user: &TestUser) -> Sshd {
    start_sshd_with(sb, user, "/usr/lib/openssh/sftp-server")
}

/// [`start_sshd`] with `sftp` as its sftp subsystem.
fn start_sshd_with(sb: &Sandbox, user: &TestUser, sftp: &str) -> Sshd {
    let dir = sb.dir();
    keygen(&dir.join("hostkey"));
    keygen(&dir.join("userkey"));
    let ssh_dir = user.home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).expect("mkdir .ssh");
    std::fs::copy(dir.join("userkey.pub"), ssh_dir.join("authorized_keys")).expect("authorized_keys");
    for p in [&ssh_dir, &ssh_dir.join("authorized_keys")] {
        nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(user.uid)), Some(nix::unistd::Gid::from_raw(user.uid)))
            .expect("chown");
    }
    std::fs::set_permissions(ssh_dir.join("authorized_keys"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let port = free_port();
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nUsePAM yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin no\nPidFile none\nLogLevel VERBOSE\n\
             Subsystem sftp {sftp}\nPrintMotd no\nAcceptEnv none\n",
            dir.join("hostkey").display()
        ),
    )
    .expect("sshd_config");
    let child = sb
        .command(&["/usr/sbin/sshd", "-D", "-e", "-f", &conf.display().to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).expect("log file"))
        .spawn()
        .expect("sshd");
    let child = KillOnDrop(child);
    let listening = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(listening, "sshd did not listen: {}", std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default());
    Sshd { _child: child, port, key: dir.join("userkey") }
}

fn ssh_opts(s: &Sshd) -> Vec<String> {
    vec![
        "-i".into(),
        s.key.display().to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
}

fn ssh(s: &Sshd, user: &str, extra: &[&str], remote: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["30", "ssh"]).args(ssh_opts(s)).arg("-p").arg(s.port.to_string());
    c.args(extra).arg(format!("{user}@127.0.0.1")).arg(remote);
    c.stdin(Stdio::null());
    c
}

const POLICY: &str = "default = \"allow\"\n[[rules]]\nname = \"no-tmp\"\nexe = \"/tmp/**\"\naction = \"deny\"\nmessage = \"not from /tmp\"\n";

fn sandbox_with_sshd(policy: &str, name: &str, uid: u32) -> (Sandbox, TestUser, ConfigFile) {
    let cfg = ConfigFile::new(policy);
    let (sb, u) = Sandbox::with_user("sshd", name, uid, &cfg, "");
    (sb, u, cfg)
}

#[test]
fn ssh_exec_channel_runs_allowed_commands_and_refuses_others() {
    require_root!();
    let (sb, u, _cfg) = sandbox_with_sshd(POLICY, "swssh1", 4401);
    let sshd = start_sshd(&sb, &u);
    let ev = copy_true(sb.dir(), "evil");
    let out = ssh(&sshd, &u.name, &[], &format!("/usr/bin/id -un; {ev}; echo status=$?")).output().expect("ssh");
    assert_eq!(stdout(&out), "swssh1\nstatus=126\n", "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("session-wrapper: {ev}: not from /tmp")), "{}", stderr(&out));
    drop(sshd);
    let lines = sb.log.until_session_end(T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("service=sshd") && start.contains("rhost=127.0.0.1") && start.contains("user=swssh1"), "{start}");
    let deny = find(&lines, &format!("path=\"{ev}\""));
    assert!(deny.contains("decision=deny") && deny.contains("user=swssh1"), "{deny}");
    assert!(find(&lines, "path=\"/usr/bin/id\"").contains("result=exec"));
}

#[test]
fn ssh_interactive_pty_session_is_supervised() {
    require_root!();
    let (sb, u, _cfg) = sandbox_with_sshd(POLICY, "swssh2", 4402);
    let sshd = start_sshd(&sb, &u);
    let ev = copy_true(sb.dir(), "evil");
    let mut c = ssh(&sshd, &u.name, &["-tt"], "");
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ssh -tt");
    {
        let stdin = child.stdin.as_mut().expect("stdin");
        // The second `tty` runs in a session of its own, without a controlling terminal.
        writeln!(stdin, "tty; /usr/bin/id -un; setsid -w /usr/bin/tty; {ev}; echo status=$?; exit").expect("type");
    }
    let out = child.wait_with_output().expect("wait");
    let so = stdout(&out);
    assert!(so.contains("/dev/pts/"), "a pty was allocated: {so}");
    assert!(so.contains("swssh2") && so.contains("status=126"), "{so}");
    assert!(so.contains("not from /tmp"), "{so}");
    drop(sshd);
    let lines = sb.log.until_session_end(T);
    // Each line names the controlling terminal of its exec: the session's pty, as `tty`
    // printed it, for the refused program (read while it waits) and the allowed one (found by
    // the kernel check at its exec, or read at the ptrace stop's), none after `setsid`.
    let pts = so.lines().map(|l| l.trim_end_matches('\r')).find(|l| l.starts_with("/dev/pts/")).expect("pts");
    let deny = find(&lines, &format!("path=\"{ev}\""));
    assert!(deny.contains("decision=deny") && deny.contains(&format!(" tty={pts} ")), "{deny}");
    let ttys: Vec<&str> = lines_with(&lines, "path=\"/usr/bin/tty\"")
        .iter()
        .filter(|l| l.contains("result=exec"))
        .filter_map(|l| l.split(' ').find_map(|w| w.strip_prefix("tty=")))
        .collect();
    assert_eq!(ttys, [pts, "-"], "{}", lines.join("\n"));
}

/// Runs `commands` as an sftp batch against `sshd` as `user`.
fn sftp_batch(sb: &Sandbox, sshd: &Sshd, user: &str, commands: &str) -> std::process::Output {
    let batch = sb.dir().join("batch");
    std::fs::write(&batch, commands).expect("batch");
    Command::new("timeout")
        .args(["30", "sftp"])
        .args(ssh_opts(sshd))
        .arg("-P")
        .arg(sshd.port.to_string())
        .arg("-b")
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::null())
        .output()
        .expect("sftp")
}

#[test]
fn sftp_server_exec_is_authorized_like_any_other() {
    require_root!();
    let (sb, u, _cfg) = sandbox_with_sshd(POLICY, "swssh3", 4403);
    let sshd = start_sshd(&sb, &u);
    let out = sftp_batch(&sb, &sshd, &u.name, "pwd\nls\n");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&u.home.display().to_string()), "{}", stdout(&out));
    drop(sshd);
    let lines = sb.log.until_session_end(T);
    let l = find(&lines, "exe=\"/usr/lib/openssh/sftp-server\"");
    assert!(l.contains("decision=allow") && l.contains("result=exec"), "{l}");
}

#[test]
fn sftp_is_refused_when_the_policy_denies_sftp_server() {
    require_root!();
    let policy = format!("{POLICY}[[rules]]\nname = \"no-sftp\"\nexe = \"/usr/lib/openssh/sftp-server\"\naction = \"deny\"\n");
    let (sb, u, _cfg) = sandbox_with_sshd(&policy, "swssh4", 4404);
    let sshd = start_sshd(&sb, &u);
    let out = sftp_batch(&sb, &sshd, &u.name, "ls\n");
    assert!(!out.status.success(), "sftp must fail: {}", stdout(&out));
    drop(sshd);
    let lines = sb.log.until_session_end(T);
    let l = find(&lines, "exe=\"/usr/lib/openssh/sftp-server\"");
    assert!(l.contains("decision=deny") && l.contains("rule=no-sftp"), "{l}");
}

#[test]
fn internal_sftp_runs_no_program_and_sshd_logs_the_transfer_itself() {
    require_root!();
    let (sb, u, _cfg) = sandbox_with_sshd(POLICY, "swssh7", 4407);
    let sshd = start_sshd_with(&sb, &u, "internal-sftp -f AUTHPRIV -l INFO");
    let local = sb.dir().join("payload");
    std::fs::write(&local, b"twelve bytes").expect("payload");
    let out = sftp_batch(&sb, &sshd, &u.name, &format!("put {} sent\n", local.display()));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(std::fs::read(u.home.join("sent")).expect("transferred"), b"twelve bytes");
    drop(sshd);
    // The session was supervised, and no program ran in it: nothing to decide.
    let lines = sb.log.until_session_end(T);
    assert!(session_wrapper_tests::lines::decisions(&lines).is_empty(), "{}", lines.join("\n"));
    // sshd's own record of the transfer, through syslog (AUTHPRIV).
    let sent = u.home.join("sent").display().to_string();
    let close = format!("close \"{sent}\" bytes read 0 written 12");
    sb.log.wait_for(|l| l.contains(&close), T).unwrap_or_else(|| panic!("no {close:?} in:\n{}", sb.log.lines().join("\n")));
    let open = find(&sb.log.lines(), &format!("open \"{sent}\" flags WRITE,CREATE,TRUNCATE")).clone();
    assert!(open.starts_with("<86>") && open.contains("internal-sftp["), "{open}");
}

#[test]
fn ssh_works_under_every_isolation_layer() {
    require_root!();
    let policy = format!(
        "{POLICY}[[isolation]]\nname = \"locked\"\n\
         block-syscalls = [\"ptrace\", \"mount\", \"raw-sockets\", \"packet-sockets\", \"namespaces\", \"keyctl\", \"bpf\", \"perf\", \"kexec\", \"modules\"]\n\
         pids-max = 200\nmemory-max = \"512M\"\ncpu-max = \"80%\"\nprivate-dirs = [\"/var/tmp\"]\n\
         landlock = {{ write = [\"/dev\", \"/tmp\", \"/run\"] }}\n"
    );
    let (sb, u, _cfg) = sandbox_with_sshd(&policy, "swssh6", 4406);
    let sshd = start_sshd(&sb, &u);
    let remote = "/usr/bin/id -un; ls -A /var/tmp | wc -l; /usr/bin/unshare -U true; echo unshare=$?; \
                  echo x > /etc/sw-landlock-probe; echo etc=$?";
    let out = ssh(&sshd, &u.name, &[], remote).output().expect("ssh");
    assert_eq!(stdout(&out), "swssh6\n0\nunshare=1\netc=1\n", "{}", stderr(&out));
    assert!(!Path::new("/etc/sw-landlock-probe").exists());
    let mut c = ssh(&sshd, &u.name, &["-tt"], "");
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ssh -tt");
    writeln!(child.stdin.as_mut().expect("stdin"), "tty; echo pty-ok; exit").expect("type");
    let out = child.wait_with_output().expect("wait");
    assert!(stdout(&out).contains("/dev/pts/") && stdout(&out).contains("pty-ok"), "{}{}", stdout(&out), stderr(&out));
    drop(sshd);
    let lines = sb.log.until_sessions_end(2, T);
    let start = find(&lines, "event=session-start");
    assert!(start.contains("isolation=locked") && start.contains("private=/var/tmp"), "{start}");
}

#[test]
fn login_under_a_pty_is_supervised() {
    require_root!();
    let cfg = ConfigFile::new(POLICY);
    let (sb, u) = Sandbox::with_user("login", "swlogin", 4405, &cfg, "");
    let ev = copy_true(sb.dir(), "evil");
    let mut child = sb
        .command(&["timeout", "30", "script", "-qec", &format!("login -f {}", u.name), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    // Keep the terminal's input open until the shell has exited: script ends on its EOF.
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::sleep(Duration::from_millis(500));
    writeln!(stdin, "/usr/bin/id -un; {ev}; echo status=$?; exit").expect("type");
    let mut so = String::new();
    use std::io::Read;
    child.stdout.take().expect("stdout").read_to_string(&mut so).expect("read");
    let _ = child.wait();
    drop(stdin);
    let lines = sb.log.until_session_end(T);
    let deny = find(&lines, &format!("path=\"{ev}\""));
    assert!(so.contains("swlogin") && so.contains("status=126") && so.contains("not from /tmp"), "{so}\n{deny}");
    let start = find(&lines, "event=session-start");
    assert!(start.contains("service=login") && start.contains("tty=/dev/pts/"), "{start}");
    assert!(find(&lines, &format!("path=\"{ev}\"")).contains("decision=deny"));
}

#[test]
fn the_module_loads_with_rtld_now_and_exports_only_its_hooks() {
    let so = bin("libpam_session_wrapper.so");
    let c = std::ffi::CString::new(so.display().to_string()).expect("path");
    // SAFETY: dlopen of our own module; it has no constructors that act.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen failed");
    for sym in [c"pam_sm_open_session", c"pam_sm_close_session"] {
        // SAFETY: valid handle and symbol name.
        assert!(!unsafe { libc::dlsym(h, sym.as_ptr()) }.is_null(), "{sym:?} missing");
    }
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().expect("nm");
    let exported: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.contains(" T ") || l.contains(" D ") || l.contains(" B "))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(exported, ["pam_sm_close_session", "pam_sm_open_session"], "exports: {}", stdout(&out));
    // SAFETY: the handle from dlopen above.
    unsafe { libc::dlclose(h) };
}

#[test]
fn an_ssh_session_recorded_in_audit_mode_replays_with_its_service() {
    require_root!();
    let (sb, u, _cfg) = sandbox_with_sshd("mode = \"audit\"\ndefault = \"allow\"\n", "swssh5", 4405);
    let sshd = start_sshd(&sb, &u);
    let out = ssh(&sshd, &u.name, &[], "/usr/bin/uname >/dev/null; /usr/bin/id -u >/dev/null; echo done").output().expect("ssh");
    assert_eq!(stdout(&out), "done\n", "{}", stderr(&out));
    drop(sshd);
    let lines = sb.log.until_session_end(T);
    // The candidate refuses uname over ssh, and id only to su sessions.
    let candidate = ConfigFile::new(
        "default = \"allow\"\n\
         [[rules]]\nname = \"no-uname-over-ssh\"\nservices = [\"sshd\"]\nexe = \"/usr/bin/uname\"\naction = \"deny\"\n\
         [[rules]]\nname = \"no-id-in-su\"\nservices = [\"su\"]\nexe = \"/usr/bin/id\"\naction = \"deny\"\n",
    );
    let mut child = session_wrapper_tests::session_wrapper()
        .args(["replay", "--json", "--config"])
        .arg(candidate.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("replay");
    child.stdin.take().expect("stdin").write_all(lines.join("\n").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("replay");
    let text = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let changes: Vec<(String, String, String, u64)> = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["from"].as_str().unwrap_or("?").to_owned() + "->" + c["to"].as_str().unwrap_or("?"), c["rule"].as_str().unwrap_or("?").to_owned(), c["program"].as_str().unwrap_or("?").to_owned(), c["count"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(changes, vec![("allow->deny".to_owned(), "no-uname-over-ssh".to_owned(), "/usr/bin/uname".to_owned(), 1)], "{text}\n{}", lines.join("\n"));
    assert_eq!((v["sessions"].as_u64(), v["undecidable"].as_object().map(|o| o.len())), (Some(1), Some(0)), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}
