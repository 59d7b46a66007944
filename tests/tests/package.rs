//! The Debian package end to end, on a fresh Debian 12 system.
//!
//! `packaging/build-deb.sh` builds the `.deb` (or `SW_DEB` names one already built).
//! `debootstrap --variant=minbase bookworm` makes a minimal system in a temporary directory
//! under `/var/tmp`; its result is cached in `/var/cache/sw-test-bookworm.tar`, so only the
//! first run on a machine downloads it. Every command then runs in that system with `chroot`,
//! inside a private mount namespace (`unshare -m`) that mounts `/proc`, `/sys`, `/dev/pts`,
//! binds the few device nodes needed and binds this test's own syslog socket at `/dev/log`.
//! The machine's own system is never written: the mounts die with their namespace and the
//! temporary directory is removed at the end.
//!
//! The package is installed with apt, registered but not enabled in the PAM stacks, enabled
//! with `pam-auth-update`, exercised with `su` (the decisions arrive on the syslog socket, in
//! audit mode), removed (the PAM stacks still work) and purged; then nothing of it may be
//! left, and the PAM configuration must be as it was before the installation.
//!
//! The mirror is the machine's own (from `/etc/apt/sources.list*`), or `SW_DEBIAN_MIRROR`.
//! Without one that answers the test fails, saying so: it is not skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use session_wrapper_tests::{build_deb, output_text, require_root, stdout, tail, Syslog, TempDir};

/// Where the debootstrap result is kept between runs.
const CACHE: &str = "/var/cache/sw-test-bookworm.tar";
const SUITE: &str = "bookworm";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// The user whose `su` session is supervised.
const USER: &str = "swpkg";
const PACKAGE: &str = "pam-session-wrapper";

/// The Debian mirror for `SUITE`: `SW_DEBIAN_MIRROR`, else the first one this machine's apt
/// sources use for it (deb822 `.sources` files or one-line `sources.list`), else deb.debian.org.
fn mirror() -> String {
    if let Ok(m) = std::env::var("SW_DEBIAN_MIRROR") {
        return m;
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = d.filter_map(Result::ok).map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let name = f.to_string_lossy();
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let field =
                    |key: &str| stanza.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or("");
                let enabled = !field("Enabled:").eq_ignore_ascii_case("no");
                if enabled
                    && field("Types:").split_whitespace().any(|t| t == "deb")
                    && field("Suites:").split_whitespace().any(|s| s == SUITE)
                {
                    if let Some(uri) = field("URIs:").split_whitespace().next() {
                        return uri.to_owned();
                    }
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines() {
                let Some(rest) = line.trim().strip_prefix("deb ") else { continue };
                let rest = rest.trim_start();
                // Options in brackets may contain spaces.
                let rest =
                    if rest.starts_with('[') { rest.split_once(']').map_or("", |(_, r)| r) } else { rest };
                let words: Vec<&str> = rest.split_whitespace().collect();
                if words.len() >= 2 && words[1] == SUITE {
                    return words[0].to_owned();
                }
            }
        }
    }
    DEFAULT_MIRROR.to_owned()
}

/// Fills `root` with a minimal Debian 12: from the cache, or with debootstrap (then cached).
fn bootstrap(root: &Path) {
    if Path::new(CACHE).is_file() {
        let out = Command::new("tar")
            .args(["--numeric-owner", "-xpf", CACHE, "-C"])
            .arg(root)
            .output()
            .expect("run tar");
        if out.status.success() && root.join("usr/bin/apt-get").exists() {
            eprintln!("package test: Debian 12 from the cache {CACHE}");
            return;
        }
        eprintln!("package test: the cache {CACHE} is unusable, making a new one:\n{}", output_text(&out));
        let _ = std::fs::remove_file(CACHE);
        let _ = Command::new("rm").arg("-rf").arg(root).status();
        std::fs::create_dir(root).expect("mkdir root");
    }
    let m = mirror();
    let have = Command::new("debootstrap").arg("--version").output();
    assert!(
        have.is_ok_and(|o| o.status.success()),
        "debootstrap is not installed: `apt-get install debootstrap` (scripts/setup.sh should install it)"
    );
    eprintln!("package test: debootstrap --variant=minbase {SUITE} from {m} (cached afterwards in {CACHE})");
    let out = Command::new("timeout")
        .args(["600", "debootstrap", "--variant=minbase", SUITE])
        .arg(root)
        .arg(&m)
        .stdin(Stdio::null())
        .output()
        .expect("run debootstrap");
    if !out.status.success() {
        let log = std::fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        panic!(
            "debootstrap could not build a Debian 12 system from the mirror {m} ({}). This test \
             needs a Debian mirror (set SW_DEBIAN_MIRROR to use another one).\n{}\n\
             debootstrap.log:\n{}",
            out.status,
            tail(&output_text(&out), 20),
            tail(&log, 20)
        );
    }
    // Written beside the cache and renamed, so that a run that stops halfway leaves no cache.
    let partial = format!("{CACHE}.{}.partial", std::process::id());
    let out = Command::new("tar")
        .args(["--numeric-owner", "-cpf", &partial, "-C"])
        .arg(root)
        .arg(".")
        .output()
        .expect("run tar");
    if out.status.success() {
        std::fs::rename(&partial, CACHE).expect("rename the cache into place");
    } else {
        let _ = std::fs::remove_file(&partial);
        eprintln!("package test: could not cache the system in {CACHE}:\n{}", output_text(&out));
    }
}

/// Sets the namespace up, then runs `$3` with `sh -e` in the chroot `$1`, whose `/dev/log` is
/// the socket `$2`.
const ENTER: &str = r#"set -e
R=$1 LOG=$2 SCRIPT=$3
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
for d in null zero full random urandom tty; do mount --bind "/dev/$d" "$R/dev/$d"; done
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
mount --bind "$R/dev/pts/ptmx" "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
mount --bind "$LOG" "$R/dev/log"
exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive /bin/sh -ec "$SCRIPT"
"#;

/// A Debian 12 system in a temporary directory, and the syslog socket at its `/dev/log`.
struct Debian {
    _dir: TempDir,
    root: PathBuf,
    log: Syslog,
}

impl Debian {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("sw-pkg-").tempdir_in("/var/tmp").expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        bootstrap(&root);
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod root");
        std::fs::write(root.join("dev/log"), "").expect("create the /dev/log mount point");
        // No service is started by a package script in here.
        let rc = root.join("usr/sbin/policy-rc.d");
        std::fs::write(&rc, "#!/bin/sh\nexit 101\n").expect("policy-rc.d");
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Debian { _dir: dir, root, log: Syslog::new() }
    }

    /// Runs `script` in the system; returns its output, whatever its status.
    fn run(&self, script: &str, timeout: Duration) -> Output {
        Command::new("timeout")
            .args(["-k", "5", &timeout.as_secs().to_string()])
            .args(["unshare", "-m", "--propagation", "private", "sh", "-c", ENTER, "sw-debian"])
            .arg(&self.root)
            .arg(self.log.path())
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("run unshare")
    }

    /// Runs `script` in the system, which must succeed; returns its standard output.
    fn ok(&self, what: &str, script: &str) -> String {
        let start = Instant::now();
        let out = self.run(script, Duration::from_secs(300));
        assert!(out.status.success(), "{what}: `{script}` failed ({}):\n{}", out.status, output_text(&out));
        eprintln!("package test: {what}: {:.1}s", start.elapsed().as_secs_f64());
        stdout(&out)
    }

    /// A file of the system, read from outside.
    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    /// The path outside of a path inside.
    fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Every path of the system (without the mount points' contents), as seen inside.
    fn paths(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, inside: &str, out: &mut BTreeSet<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = if inside == "/" { format!("/{name}") } else { format!("{inside}/{name}") };
                if matches!(p.as_str(), "/proc" | "/sys" | "/dev") {
                    out.insert(p);
                    continue;
                }
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                out.insert(p.clone());
                if is_dir {
                    walk(&e.path(), &p, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root, "/", &mut out);
        out
    }

    /// The contents of every file in the given directories (the PAM configuration).
    fn contents(&self, dirs: &[&str]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for d in dirs {
            let Ok(entries) = std::fs::read_dir(self.path(d)) else { continue };
            for e in entries.filter_map(Result::ok) {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    out.insert(format!("{d}/{}", e.file_name().to_string_lossy()), text);
                }
            }
        }
        out
    }

    /// Active lines of the PAM configuration that name the module.
    fn pam_lines(&self) -> Vec<String> {
        self.contents(&["/etc/pam.d"])
            .into_iter()
            .flat_map(|(f, text)| {
                text.lines()
                    .filter(|l| l.contains("pam_session_wrapper") && !l.trim_start().starts_with('#'))
                    .map(|l| format!("{f}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Where the package may leave traces of its passage that are not its files: logs, apt's and
/// dpkg's databases and caches (debconf's included), the temporary directories.
fn expected_change(path: &str) -> bool {
    ["/var/log/", "/var/cache/", "/var/lib/apt/", "/var/lib/dpkg/", "/tmp/", "/var/tmp/"]
        .iter()
        .any(|p| path.starts_with(p))
}

#[test]
fn deb_installs_disabled_audits_su_once_enabled_and_purges_without_a_trace() {
    require_root!();
    let total = Instant::now();
    let start = Instant::now();
    let deb = build_deb();
    eprintln!("package test: {} built: {:.1}s", deb.display(), start.elapsed().as_secs_f64());
    let start = Instant::now();
    let sys = Debian::new();
    eprintln!("package test: Debian 12 ready: {:.1}s", start.elapsed().as_secs_f64());

    let deb_name = deb.file_name().expect("deb name").to_string_lossy().into_owned();
    let deb_inside = format!("/tmp/{deb_name}");
    std::fs::copy(&deb, sys.path(&deb_inside)).expect("copy the .deb in");
    std::fs::set_permissions(sys.path(&deb_inside), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    sys.ok("add a user", &format!("useradd --create-home --shell /bin/bash {USER}"));
    let paths_before = sys.paths();
    let pam_before = sys.contents(&["/etc/pam.d", "/var/lib/pam"]);

    // Installed with its dependencies; registered with pam-auth-update, but in no stack.
    sys.ok("apt-get install", &format!("apt-get install -y --no-install-recommends {deb_inside}"));
    let seen = sys.read("/var/lib/pam/seen");
    assert!(
        seen.lines().any(|l| l == "session-wrapper"),
        "pam-auth-update has not seen the profile:\n{seen}"
    );
    let profiles = sys.ok("debconf-show", "debconf-show libpam-runtime");
    let enabled = profiles.lines().find(|l| l.contains("libpam-runtime/profiles:")).unwrap_or_default();
    assert!(
        !enabled.is_empty() && !enabled.contains("session-wrapper"),
        "the profile must not be enabled on installation:\n{profiles}"
    );
    assert!(sys.pam_lines().is_empty(), "installed but not enabled, yet: {:?}", sys.pam_lines());
    let conffiles = sys.ok("conffiles", &format!("dpkg-query -W -f='${{Conffiles}}' {PACKAGE}"));
    assert!(conffiles.contains("/etc/session-wrapper/config.toml"), "not a conffile: {conffiles:?}");
    // The accounting delivery timer is enabled, as dh_installsystemd would.
    let wants = sys.path("/etc/systemd/system/timers.target.wants/session-wrapper-deliver-accounting.timer");
    assert!(wants.symlink_metadata().is_ok(), "the accounting delivery timer is not enabled");
    let check = sys.ok("check-config", "session-wrapper check-config");
    assert!(check.contains("mode: audit") && check.trim_end().ends_with("OK"), "{check}");
    let files: Vec<String> = sys
        .ok("dpkg -L", &format!("dpkg -L {PACKAGE}"))
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(str::to_owned)
        .collect();
    for f in [
        "/lib/x86_64-linux-gnu/security/pam_session_wrapper.so",
        "/usr/libexec/session-wrapper/session-wrapper-supervisor",
        "/usr/libexec/session-wrapper/session-wrapper-bpf-loader",
        "/usr/bin/session-wrapper",
        "/etc/session-wrapper/config.toml",
        "/etc/session-wrapper/config.d",
        "/usr/share/pam-configs/session-wrapper",
        "/lib/systemd/system/session-wrapper-deliver-accounting.service",
        "/lib/systemd/system/session-wrapper-deliver-accounting.timer",
        "/usr/share/man/man8/pam_session_wrapper.8.gz",
        "/usr/share/man/man8/session-wrapper.8.gz",
        "/usr/share/man/man5/session-wrapper.toml.5.gz",
        "/usr/share/doc/pam-session-wrapper/copyright",
        "/usr/share/doc/pam-session-wrapper/changelog.Debian.gz",
        "/usr/share/doc/pam-session-wrapper/examples/config.test.toml",
    ] {
        assert!(files.iter().any(|l| l == f), "{f} is not in the package:\n{}", files.join("\n"));
    }
    // The installed policy passes the test cases the package ships for it.
    let cases = sys.ok(
        "the package's test cases",
        "session-wrapper test /usr/share/doc/pam-session-wrapper/examples/config.test.toml",
    );
    assert!(cases.contains("(/etc/session-wrapper/config.toml)") && cases.contains(", 0 failed"), "{cases}");

    // Enabled: in the interactive session stack, which su includes.
    sys.ok("pam-auth-update --enable", "pam-auth-update --enable session-wrapper");
    let session = sys.read("/etc/pam.d/common-session");
    assert!(
        session
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["session", "required", "pam_session_wrapper.so"]),
        "not enabled in common-session:\n{session}"
    );
    // The non-interactive stack too (cron, plain sudo, systemd-user): otherwise a user's
    // `systemd --user` manager would start units unsupervised.
    let noninteractive = sys.read("/etc/pam.d/common-session-noninteractive");
    assert!(noninteractive.contains("pam_session_wrapper"), "not enabled in common-session-noninteractive:\n{noninteractive}");

    // An administrator's drop-in, which only a purge removes.
    sys.ok(
        "a drop-in",
        "printf '# local additions\\n' > /etc/session-wrapper/config.d/50-local.toml && session-wrapper check-config",
    );

    // A supervised su session: its commands are decided and logged, in audit mode.
    let out = sys.ok("su - swpkg -c id", &format!("su - {USER} -c id"));
    assert!(out.contains(&format!("({USER})")), "{out}");
    let line = sys.log.wait_for(
        |l| {
            l.contains("session-wrapper[")
                && l.contains(" exe=\"/usr/bin/id\" ")
                && l.contains(" argv=\"id\" ")
                && l.contains(" decision=")
        },
        Duration::from_secs(30),
    );
    let all = || sys.log.lines().join("\n");
    let line =
        line.unwrap_or_else(|| panic!("no decision line for /usr/bin/id on /dev/log; got:\n{}", all()));
    for f in [format!("user={USER}"), "decision=allow".into(), "mode=audit".into()] {
        assert!(line.contains(&f), "{f} in {line}");
    }
    // Facility authpriv (10): priorities <80> to <87>.
    assert!(line.starts_with("<8"), "not authpriv: {line}");
    eprintln!("package test: on /dev/log: {line}");
    let start =
        sys.log.wait_for(|l| l.contains("event=session-start"), Duration::from_secs(5)).unwrap_or_default();
    // `su -` is the PAM service su-l, which includes su.
    assert!(
        start.contains("service=su-l") && start.contains("config=\"/etc/session-wrapper/config.toml,"),
        "{start}"
    );
    // Audit mode refuses nothing: a program from /tmp runs, and its refusal is only logged.
    sys.ok("a program in /tmp", "cp /usr/bin/true /tmp/sw-audit-probe && chmod 755 /tmp/sw-audit-probe");
    let out = sys.ok("su runs it", &format!("su - {USER} -c '/tmp/sw-audit-probe && echo ran'"));
    assert_eq!(out, "ran\n");
    let deny = sys.log.wait_for(|l| l.contains("path=\"/tmp/sw-audit-probe\""), Duration::from_secs(30));
    let deny = deny.unwrap_or_else(|| panic!("no decision line for the /tmp program; got:\n{}", all()));
    for f in ["decision=deny", "rule=no-exec-from-temp", "mode=audit"] {
        assert!(deny.contains(f), "{f} in {deny}");
    }
    sys.log.until_sessions_end(2, Duration::from_secs(30));

    // A stanza written by hand stops the removal, which changes nothing: with the module gone,
    // that service would refuse every session.
    let login = sys.read("/etc/pam.d/login");
    std::fs::write(sys.path("/etc/pam.d/login"), format!("{login}session required pam_session_wrapper.so\n"))
        .expect("add a stanza by hand");
    let out = sys.run(&format!("apt-get remove -y {PACKAGE}"), Duration::from_secs(300));
    assert!(!out.status.success(), "removed with a hand-written stanza left:\n{}", output_text(&out));
    assert!(
        output_text(&out).contains("/etc/pam.d/login:"),
        "the refusal names the file:\n{}",
        output_text(&out)
    );
    let status = sys.ok("dpkg-query", &format!("dpkg-query -W -f='${{db:Status-Abbrev}}' {PACKAGE}"));
    assert_eq!(status.trim(), "ii", "still installed and configured after the aborted removal");
    assert!(sys.read("/etc/pam.d/common-session").contains("pam_session_wrapper.so"), "still enabled");
    std::fs::write(sys.path("/etc/pam.d/login"), login).expect("remove the stanza");

    // Removed: out of every stack before its files go, so su still works; the conffile stays.
    sys.ok("apt-get remove", &format!("apt-get remove -y {PACKAGE}"));
    assert!(sys.pam_lines().is_empty(), "still in the PAM stacks after removal: {:?}", sys.pam_lines());
    assert!(sys.path("/etc/session-wrapper/config.toml").exists(), "a removal keeps the conffile");
    assert!(sys.path("/etc/session-wrapper/config.d/50-local.toml").exists(), "a removal keeps the drop-ins");
    let out = sys.ok("su after removal", &format!("su - {USER} -c id"));
    assert!(out.contains(&format!("({USER})")), "{out}");

    // Purged: nothing left.
    sys.ok("apt-get purge", &format!("apt-get purge -y {PACKAGE}"));
    // What apt installed for it (libelf1, on a system without iproute2) goes as apt removes
    // any unneeded dependency.
    sys.ok("apt-get autoremove", "apt-get autoremove --purge -y");
    let status =
        sys.run(&format!("dpkg-query -W -f='${{db:Status-Abbrev}}' {PACKAGE}"), Duration::from_secs(60));
    let status = stdout(&status);
    assert!(
        status.is_empty() || status.starts_with("un") || status.starts_with("pn"),
        "dpkg still knows it: {status:?}"
    );
    for gone in ["/etc/session-wrapper", "/run/session-wrapper", "/usr/share/pam-configs/session-wrapper"] {
        assert!(!sys.path(gone).exists(), "{gone} is left after purge");
    }
    assert!(sys.pam_lines().is_empty(), "grep -r pam_session_wrapper /etc/pam.d: {:?}", sys.pam_lines());
    let paths_after = sys.paths();
    let left: Vec<&String> =
        files.iter().filter(|f| !paths_before.contains(*f) && paths_after.contains(*f)).collect();
    assert!(left.is_empty(), "package files left after purge: {left:?}");
    let new: Vec<&String> = paths_after.difference(&paths_before).filter(|p| !expected_change(p)).collect();
    assert!(new.is_empty(), "new paths after install and purge: {new:?}");
    let named: Vec<&String> = paths_after
        .iter()
        .filter(|p| (p.contains("session-wrapper") || p.contains("session_wrapper")) && **p != deb_inside)
        .collect();
    assert!(named.is_empty(), "paths named after the package after purge: {named:?}");
    let pam_after = sys.contents(&["/etc/pam.d", "/var/lib/pam"]);
    for (f, text) in &pam_before {
        assert_eq!(pam_after.get(f), Some(text), "{f} differs from before the installation");
    }
    assert_eq!(
        pam_after.keys().collect::<Vec<_>>(),
        pam_before.keys().collect::<Vec<_>>(),
        "the PAM configuration's files differ from before the installation"
    );
    eprintln!("package test: total {:.1}s", total.elapsed().as_secs_f64());
}
