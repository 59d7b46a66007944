//! The kernel's exec check is loaded by `session-wrapper-bpf-loader`, which the first
//! supervisor since boot runs when it finds no pins of its build; supervisors themselves map
//! no libbpf, libelf or zlib. The loader is run only from a place that root alone can change,
//! as root, with nothing of the supervisor's, for at most 5 s; the pins are used only from
//! directories that root alone can change, and a directory a user made first is moved aside.
//!
//! Every session here runs in a private mount namespace with a BPF file system of its own
//! (its programs detach when that namespace goes): the machine's pins, and the sessions that
//! use them, are left alone.

use std::path::Path;
use std::process::{Command, Output};

use session_wrapper_tests::{bin, install, require_btf, require_root, scratch, stderr, stdout, write_executable, ConfigFile};

/// `session-wrapper run` of `program` (a `session-wrapper` binary) as `user`, logging to its
/// standard error, running `argv`, in a mount namespace of its own whose `/sys/fs/bpf` is a
/// new BPF file system of mode `mode`, after `prepare` (shell) ran there. Standard output
/// ends with what `/sys/fs/bpf/session-wrapper` then holds, after a `pins:` line.
fn run(program: &Path, cfg: &ConfigFile, user: &str, mode: &str, prepare: &str, argv: &[&str]) -> Output {
    let script = format!(
        "mount -t bpf -o mode={mode} bpf /sys/fs/bpf && {prepare} \"$@\"; s=$?; echo pins:; \
         ls -R /sys/fs/bpf/session-wrapper 2>/dev/null; exit $s"
    );
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(program)
        .args(["run", "--config"])
        .arg(cfg.path())
        .args(["--user", user, "--log-socket", "/nonexistent/log", "--"])
        .args(argv)
        .env_remove("LD_LIBRARY_PATH")
        .env("SW_LOADER_TEST_SECRET", "leaked")
        .current_dir("/")
        .output()
        .expect("run session-wrapper")
}

fn line<'a>(err: &'a str, event: &str) -> &'a str {
    err.lines().find(|l| l.contains(event)).unwrap_or_default()
}

/// What `/sys/fs/bpf/session-wrapper` held after the session (see [`run`]).
fn pins(out: &Output) -> String {
    stdout(out).rsplit("pins:").next().unwrap_or_default().to_string()
}

/// The tag of this build's programs, as the loader's usage names it.
fn tag(loader: &Path) -> String {
    let out = Command::new(loader).output().expect("run the loader");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let tag = err.rsplit("TAG: ").next().unwrap_or_default().trim_end().trim_end_matches(')');
    assert!(tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()), "no tag in {err:?}");
    tag.to_string()
}

/// A directory only root can change (in /var/lib: /tmp is everyone's), holding a copy of
/// `session-wrapper` and, as its loader, the script `loader`.
fn root_only_dir_with(loader: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new().prefix("sw-loader-").tempdir_in("/var/lib").expect("tempdir in /var/lib");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let wrapper = dir.path().join("session-wrapper");
    install(&bin("session-wrapper"), &wrapper);
    write_executable(&dir.path().join("session-wrapper-bpf-loader"), loader);
    (dir, wrapper)
}

#[test]
fn the_kernel_check_is_loaded_by_the_loader_and_never_from_a_place_others_can_change() {
    require_root!();
    require_btf!();
    let probe = Command::new("unshare").args(["-m", "--propagation", "private", "mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        session_wrapper_tests::skip(module_path!(), "cannot mount a BPF file system in a mount namespace of its own here");
        return;
    }
    let loader = bin("session-wrapper-bpf-loader");
    let tag = tag(&loader);
    let bpf = ConfigFile::new("default = \"allow\"\nverify = \"bpf\"\n");
    let auto = ConfigFile::new("default = \"allow\"\n");
    let ran_true = |err: &str| err.lines().any(|l| l.contains("path=\"/bin/true\"") && l.contains("result=exec"));

    // A loader of another build refuses, and says why.
    let out = Command::new(&loader).arg("0123456789abcdef").output().expect("run the loader");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("this loader's programs are {tag}, not 0123456789abcdef")), "{}", stderr(&out));

    // The real loader beside the program, in a root-only directory: it pins the programs,
    // the session is checked in the kernel, and the supervisor maps none of libbpf's
    // libraries (its maps, read by the session's shell, root's: the supervisor is its
    // parent, and no one else may read them).
    let out = run(&bin("session-wrapper"), &bpf, "root", "0700", "", &["/bin/sh", "-c", "cat /proc/$PPID/maps"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("event=verify-fallback") && line(&err, "event=session-start").contains(" verify=bpf "), "{err}");
    let maps = stdout(&out);
    assert!(maps.contains("libseccomp") && maps.contains("session-wrapper"), "not the supervisor's maps: {maps}");
    assert!(!maps.contains("libelf") && !maps.contains("libz.") && !maps.contains("libbpf"), "{maps}");
    let held = pins(&out);
    for pin in ["expects", "on_exec", "on_exit"] {
        assert!(held.contains(pin), "{pin} not pinned: {held}\n{err}");
    }
    assert!(held.contains(&tag) && !held.contains("-tmp-"), "{held}");
    // Removing the pins under a live session does not detach the programs it uses (it holds
    // their links): an exec after it still gets the kernel's finding, `result=exec`, not the
    // `result=unknown` of an exec whose finding never came.
    let out = run(&bin("session-wrapper"), &bpf, "root", "0700", "", &["/bin/sh", "-c", "rm -r /sys/fs/bpf/session-wrapper && /bin/true"]);
    let err = stderr(&out);
    assert!(out.status.success() && line(&err, "event=session-start").contains(" verify=bpf "), "{err}");
    assert!(err.lines().any(|l| l.contains("argv=\"rm -r") && l.contains("result=exec")), "{err}");
    assert!(pins(&out).trim().is_empty(), "the pins were not removed: {}", pins(&out));
    assert!(ran_true(&err), "{err}");
    // Loaders take their lock on a file that only root can open: no user can hold it.
    let lock = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "exec 9</run/session-wrapper/bpf-loader.lock"])
        .output()
        .expect("setpriv");
    assert!(!lock.status.success() && stderr(&lock).contains("Permission denied"), "{}", stderr(&lock));

    // The attack: a directory anyone may write (as a supervisor's directory might be by
    // mistake) holds our program and a "loader" planted by a user. With no pins, a supervisor
    // that ran it would run the user's code as root. It is refused and named, under the
    // default `verify` too; the session is checked at ptrace stops.
    let open = scratch();
    let planted = open.path().join("ran-as-root");
    let wrapper = open.path().join("session-wrapper");
    install(&bin("session-wrapper"), &wrapper);
    write_executable(&open.path().join("session-wrapper-bpf-loader"), &format!("#!/bin/sh\ntouch {}\n", planted.display()));
    let out = run(&wrapper, &auto, "nobody", "0700", "", &["/bin/true"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let fallback = line(&err, "event=verify-fallback");
    assert!(
        fallback.contains(&format!("{}/session-wrapper-bpf-loader", open.path().display()))
            && fallback.contains("can be changed by others than root"),
        "{err}"
    );
    assert!(line(&err, "event=session-start").contains(" verify=ptrace ") && ran_true(&err), "{err}");
    assert!(!planted.exists(), "the planted loader ran");
    assert!(pins(&out).trim().is_empty(), "something loaded the programs: {}", pins(&out));

    // In a root-only directory, a loader file someone else owns is refused too.
    let (dir, wrapper) = root_only_dir_with("#!/bin/sh\nexit 0\n");
    std::os::unix::fs::chown(dir.path().join("session-wrapper-bpf-loader"), Some(65534), None).expect("chown");
    let out = run(&wrapper, &bpf, "nobody", "0700", "", &["/bin/true"]);
    let err = stderr(&out);
    assert!(line(&err, "event=verify-fallback").contains("not a root-owned executable file"), "{err}");
    assert!(ran_true(&err), "{err}");
    drop(dir);

    // A loader that fails: its last line is the reason logged, the rest is passed on. It ran
    // in /, with an empty environment and none of the supervisor's descriptors.
    let (dir, wrapper) = root_only_dir_with(
        "#!/bin/sh\necho \"cwd=$(pwd) ids=$(id -ru):$(id -u):$(id -rg)\" >&2\nenv >&2\nls -l /proc/$$/fd >&2\n\
         echo \"refused: $1\" >&2\nexit 3\n",
    );
    let out = run(&wrapper, &bpf, "nobody", "0700", "", &["/bin/true"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let fallback = line(&err, "event=verify-fallback");
    assert!(fallback.contains(&format!("refused: {tag} (exit status 3)")) && !fallback.contains("cwd="), "{err}");
    assert!(err.contains("cwd=/ ids=0:0:0"), "the loader's words are not passed on, or it ran elsewhere: {err}");
    assert!(!err.contains("SW_LOADER_TEST_SECRET"), "the loader got the supervisor's environment: {err}");
    assert!(!err.contains("socket:[") && !err.contains("anon_inode:"), "the loader got the supervisor's descriptors: {err}");
    assert!(line(&err, "event=session-start").contains(" verify=ptrace ") && ran_true(&err), "{err}");
    drop(dir);

    // A loader that does not end is killed after 5 s; the session goes on at ptrace stops.
    let (dir, wrapper) = root_only_dir_with("#!/bin/sh\nexec sleep 60\n");
    let started = std::time::Instant::now();
    let out = run(&wrapper, &bpf, "nobody", "0700", "", &["/bin/true"]);
    let err = stderr(&out);
    assert!(line(&err, "event=verify-fallback").contains("no answer within 5 s; killed"), "{err}");
    assert!(ran_true(&err) && started.elapsed() < std::time::Duration::from_secs(30), "{err}");
    drop(dir);

    // A BPF file system mounted by hand is everyone's (mode 1777): there, a directory a user
    // made first is moved aside by the loader (root may rename in a sticky directory), and
    // the programs are pinned in one of root's.
    let prepare = "mkdir /sys/fs/bpf/session-wrapper && chown 65534 /sys/fs/bpf/session-wrapper &&";
    let out = run(&bin("session-wrapper"), &bpf, "nobody", "1777", prepare, &["/bin/true"]);
    let err = stderr(&out);
    assert!(err.contains("/sys/fs/bpf/session-wrapper is not root's (owner uid 65534): moved to /sys/fs/bpf/session-wrapper-untrusted-"), "{err}");
    assert!(line(&err, "event=session-start").contains(" verify=bpf ") && ran_true(&err), "{err}");
    assert!(pins(&out).contains("expects"), "{}", pins(&out));
    // Made by root in it, the directory is root's alone (a sticky parent): used.
    let out = run(&bin("session-wrapper"), &bpf, "nobody", "1777", "", &["/bin/true"]);
    let err = stderr(&out);
    assert!(line(&err, "event=session-start").contains(" verify=bpf ") && ran_true(&err), "{err}");
}

/// The loader dies with the supervisor that ran it (`PR_SET_PDEATHSIG`): a supervisor killed
/// while its loader hangs leaves no loader holding the loaders' lock until its own deadline.
#[test]
fn a_loader_dies_with_the_supervisor_that_ran_it() {
    require_root!();
    let scratch = scratch();
    let pidfile = scratch.path().join("loader.pid");
    let (dir, wrapper) = root_only_dir_with(&format!("#!/bin/sh\necho $$ > {}\nexec sleep 60\n", pidfile.display()));
    let cfg = ConfigFile::new("default = \"allow\"\nverify = \"bpf\"\n");
    let script = "mount -t bpf -o mode=0700 bpf /sys/fs/bpf && exec \"$@\"";
    let mut session = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&wrapper)
        .args(["run", "--config"])
        .arg(cfg.path())
        .args(["--user", "nobody", "--log-socket", "/nonexistent/log", "--", "/bin/true"])
        .env_remove("LD_LIBRARY_PATH")
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the session");
    let status_of = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mut loader = String::new();
    for _ in 0..200 {
        loader = std::fs::read_to_string(&pidfile).unwrap_or_default().trim().to_owned();
        if !loader.is_empty() && status_of(&loader).contains("sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let status = status_of(&loader);
    assert!(status.contains("sleep"), "the loader did not start: pid {loader:?}");
    let parent = status.lines().find_map(|l| l.strip_prefix("PPid:")).map(str::trim).unwrap_or_default().to_owned();
    assert_eq!(parent, session.id().to_string(), "the loader's parent is the supervisor: {status}");
    assert!(Command::new("kill").args(["-KILL", &parent]).status().expect("kill").success());
    let _ = session.wait();
    // Gone, or a zombie waiting for init to reap it: not sleeping out its 60 s.
    let mut gone = false;
    for _ in 0..100 {
        let s = status_of(&loader);
        if s.is_empty() || s.lines().any(|l| l.starts_with("State:") && l.contains('Z')) || !s.contains("sleep") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if !gone {
        let _ = Command::new("kill").args(["-KILL", &loader]).status();
    }
    assert!(gone, "the loader {loader} outlived its supervisor: {}", status_of(&loader));
    drop(dir);
}

/// Loaders take turns under one lock; one that cannot have it within 4 s gives up and says
/// why, before the supervisor's own 5 s for the loader run out: the session goes on, checked
/// at ptrace stops. Here a process holds the lock (in a private `/run`, as another loader
/// that hung would) for longer than the session waits.
#[test]
fn a_loader_gives_up_on_a_lock_held_by_another_after_4_s_and_the_session_goes_on() {
    require_root!();
    require_btf!();
    let bpf = ConfigFile::new("default = \"allow\"\nverify = \"bpf\"\n");
    let lock = "/run/session-wrapper/bpf-loader.lock";
    let prepare = format!(
        "mount -t tmpfs -o mode=755 sw-run /run && mkdir -m 700 /run/session-wrapper && install -m 600 /dev/null {lock} && \
         {{ (exec 9>>{lock}; flock 9; exec sleep 60) >/dev/null 2>&1 & h=$!; trap \"kill $h\" EXIT; }} && \
         i=0; until ! flock -n {lock} true || [ $i -ge 200 ]; do sleep 0.01; i=$((i+1)); done;"
    );
    let started = std::time::Instant::now();
    let out = run(&bin("session-wrapper"), &bpf, "nobody", "0700", &prepare, &["/bin/true"]);
    let took = started.elapsed();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let fallback = line(&err, "event=verify-fallback");
    assert!(fallback.contains("another loader holds it after 4 s"), "{err}");
    assert!(line(&err, "event=session-start").contains(" verify=ptrace "), "{err}");
    assert!(err.lines().any(|l| l.contains("path=\"/bin/true\"") && l.contains("result=exec")), "{err}");
    assert!(took >= std::time::Duration::from_secs(4), "it did not wait for the lock: {took:?}\n{err}");
    assert!(pins(&out).trim().is_empty(), "something loaded the programs: {}", pins(&out));
}
