//! Support for the end-to-end tests: where the built binaries are, a real syslog socket that
//! collects what the supervisor logs, and running commands under `session-wrapper run`.
//!
//! The binaries must be built first (`cargo build --workspace`, which `tests/run.sh` does).
//! Tests that need root say so and are skipped, counted and explained, when not root.


pub mod lines;
pub mod raw;
pub mod tacacs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// The directory of the built binaries: `$SW_BIN_DIR` when set (tests/run.sh stages them in a
/// root-owned, world-readable directory of its own, so that the session's users can execute
/// them wherever the checkout is: a home directory of mode 0700, or /tmp behind a private
/// /tmp), else `target/debug` or `target/release`.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SW_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    dir
}

/// A built binary of the workspace, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` (tests/run.sh does) before the tests",
        p.display()
    );
    p
}

/// A command running the `session-wrapper` binary, without cargo's `LD_LIBRARY_PATH` (in a
/// checkout under /tmp its directories are below one everyone may write, and the sessions it
/// starts would rightly refuse every exec: the library-path guard).
pub fn session_wrapper() -> Command {
    let mut c = Command::new(bin("session-wrapper"));
    c.env_remove("LD_LIBRARY_PATH");
    c
}

/// [`bin`] as a string that lives as long as the test (it is leaked), for argv arrays.
pub fn bin_arg(name: &str) -> &'static str {
    Box::leak(bin(name).display().to_string().into_boxed_str())
}

/// The workspace's root directory (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Whether this process is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Records that a test was skipped and why: on stderr, and in the file `$SW_SKIP_LOG` that
/// `tests/run.sh` counts and prints.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
    if let Some(p) = std::env::var_os("SW_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(p) {
            let _ = writeln!(f, "{test}: {why}");
        }
    }
}

/// Skips the calling test (recorded with [`skip`]) unless root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::skip(module_path!(), "needs root (run the tests as root)");
            return;
        }
    };
}

/// Skips the calling test (recorded with [`skip`]) where the kernel has no BTF: its exec
/// check cannot be loaded there, so no loader runs.
#[macro_export]
macro_rules! require_btf {
    () => {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            $crate::skip(module_path!(), "no kernel BTF: the kernel's exec check cannot load here");
            return;
        }
    };
}

/// A datagram socket bound where the supervisor is told to log. A thread reads it all the
/// time, as a syslog daemon does, and keeps every line (or, [`Syslog::stalled`], only once
/// [`Syslog::resume`] is called: a daemon that hangs).
#[derive(Debug)]
pub struct Syslog {
    _dir: TempDir,
    path: PathBuf,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Syslog {
    /// A fresh socket in a private temporary directory.
    pub fn new() -> Self {
        let s = Self::stalled();
        s.resume();
        s
    }

    /// A socket nobody reads until [`Syslog::resume`].
    pub fn stalled() -> Self {
        let dir = tempfile::Builder::new().prefix("sw-log-").tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let sock = UnixDatagram::bind(&path).expect("bind syslog socket");
        // Everyone may log, as through the real /dev/log (the sandbox binds it there).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod syslog socket");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = Arc::clone(&lines);
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let open = Arc::clone(&gate);
        std::thread::spawn(move || {
            {
                let (m, cv) = &*open;
                let mut g = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                while !*g {
                    g = cv.wait(g).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            let mut buf = vec![0u8; 70_000];
            // Ends when the socket is removed with its directory and recv fails... or never:
            // the thread is a daemon of the test process.
            while let Ok(n) = sock.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (m, cv) = &*shared;
                m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
                cv.notify_all();
            }
        });
        Syslog { _dir: dir, path, lines, gate }
    }

    /// Starts reading.
    pub fn resume(&self) {
        let (m, cv) = &*self.gate;
        *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cv.notify_all();
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A spool directory that goes with this log (made by the supervisor when it needs it), so
    /// that what one test leaves undelivered never reaches another's log.
    pub fn spool_dir(&self) -> PathBuf {
        self._dir.path().join("spool")
    }

    /// Waits until `count` lines satisfy `pred` or `timeout` passes; returns those lines.
    pub fn wait_count(&self, pred: impl Fn(&str) -> bool, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.lines;
        let mut g = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let hits: Vec<String> = g.iter().filter(|l| pred(l)).cloned().collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if hits.len() >= count || left.is_zero() {
                return hits;
            }
            g = cv.wait_timeout(g, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// Waits for a line satisfying `pred`.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        self.wait_count(pred, 1, timeout).into_iter().next()
    }

    /// Waits for `n` session ends (`event=session-end` lines) and returns every line.
    pub fn until_sessions_end(&self, n: usize, timeout: Duration) -> Vec<String> {
        let ends = self.wait_count(|l| l.contains("event=session-end"), n, timeout);
        let all = self.lines();
        assert!(ends.len() >= n, "{} of {n} session-end lines within {timeout:?}; got:\n{}", ends.len(), all.join("\n"));
        all
    }

    /// Waits for the end of the session and returns every line.
    pub fn until_session_end(&self, timeout: Duration) -> Vec<String> {
        self.until_sessions_end(1, timeout)
    }

    /// Every line received so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Default for Syslog {
    fn default() -> Self {
        Self::new()
    }
}

/// A configuration file in a temporary directory, with the permissions the loader requires.
#[derive(Debug)]
pub struct ConfigFile {
    dir: TempDir,
}

impl ConfigFile {
    /// Writes `text` as `config.toml`.
    pub fn new(text: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("sw-cfg-").tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.toml"), text).expect("write config");
        ConfigFile { dir }
    }

    /// The main file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Adds a drop-in.
    pub fn drop_in(&self, name: &str, text: &str) {
        let d = self.dir.path().join("config.d");
        std::fs::create_dir_all(&d).expect("mkdir config.d");
        std::fs::write(d.join(name), text).expect("write drop-in");
    }
}

/// The package's example configuration (`packaging/config.toml`), in `mode`.
pub fn shipped_config(mode: &str) -> ConfigFile {
    let text = include_str!("../../packaging/config.toml").replace("mode = \"audit\"", &format!("mode = \"{mode}\""));
    ConfigFile::new(&text)
}

/// A world-writable scratch directory (commands run as `nobody` write markers there).
pub fn scratch() -> TempDir {
    let d = tempfile::Builder::new().prefix("sw-test-").tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    d
}

/// Copies the program `src` to `dst`, executable by everyone (mode 0755).
pub fn install(src: &Path, dst: &Path) {
    std::fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A copy of `/bin/true` named `name` in `dir` (a program that a policy can refuse by its
/// place: `evil` in a temporary directory); returns its path.
pub fn copy_true(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    install(Path::new("/bin/true"), &p);
    p.display().to_string()
}

/// Writes the script `body` to `path`, executable by everyone (mode 0755); returns the path.
pub fn write_executable(path: &Path, body: &str) -> String {
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

/// A TCP port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Calls `f` every `every` until it gives a value, for at most `timeout` (it is called at
/// least once, and once more after the time is up); `None` when it never gave one.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t0.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Waits until `cond` holds, looking every `every`, for at most `timeout`; whether it held.
pub fn wait_until(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll(timeout, every, || cond().then_some(())).is_some()
}

/// A process the test started (a server, a helper) that is killed and reaped when this is
/// dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `session-wrapper run` with a log socket and optional config, as `user`.
#[derive(Debug)]
pub struct Wrapped<'a> {
    log: &'a Syslog,
    config: Option<PathBuf>,
    user: (String, u32, u32),
    extra: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    spool: Option<PathBuf>,
}

impl<'a> Wrapped<'a> {
    /// Runs as root with the built-in configuration.
    pub fn new(log: &'a Syslog) -> Self {
        Wrapped {
            log,
            config: None,
            user: ("root".into(), 0, 0),
            extra: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
            spool: None,
        }
    }

    /// Keeps undelivered log lines here instead of the log's own spool directory.
    pub fn spool(mut self, dir: PathBuf) -> Self {
        self.spool = Some(dir);
        self
    }

    /// Uses this configuration file.
    pub fn config(mut self, p: PathBuf) -> Self {
        self.config = Some(p);
        self
    }

    /// Runs as `nobody` (65534:65534).
    pub fn as_nobody(mut self) -> Self {
        self.user = ("nobody".into(), 65534, 65534);
        self
    }

    /// Runs as this user.
    pub fn as_user(mut self, name: &str, uid: u32, gid: u32) -> Self {
        self.user = (name.into(), uid, gid);
        self
    }

    /// Adds arguments before `--`.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Kills the run after this long.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The command line, for when a test needs to spawn it itself. It runs in `/`, a
    /// directory every user may enter.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.current_dir("/");
        c.arg("-k").arg("5").arg(format!("{}", self.timeout.as_secs()));
        c.arg(bin("session-wrapper")).arg("run");
        if let Some(p) = &self.config {
            c.arg("--config").arg(p);
        }
        c.arg("--user").arg(&self.user.0);
        c.arg("--user-uid").arg(self.user.1.to_string());
        c.arg("--user-gid").arg(self.user.2.to_string());
        c.arg("--log-socket").arg(self.log.path());
        c.arg("--spool-dir").arg(self.spool.clone().unwrap_or_else(|| self.log.spool_dir()));
        c.args(&self.extra);
        c.arg("--").args(argv);
        // cargo puts its target directories on LD_LIBRARY_PATH; in a checkout under /tmp they
        // are below a directory everyone may write, and the session would rightly refuse
        // every exec (the library-path guard). Sessions start without it, as logins do.
        c.env_remove("LD_LIBRARY_PATH");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Runs `argv` to completion.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.command(argv).output().expect("spawn session-wrapper")
    }
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard output and standard error, each under its name, for a failure message.
pub fn output_text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o))
}

/// A test user that exists only inside a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Name.
    pub name: String,
    /// Uid (= gid).
    pub uid: u32,
    /// Home directory (inside the sandbox's directory).
    pub home: PathBuf,
}

/// A private mount namespace to run real PAM programs in: a copy of `/etc/pam.d` with the
/// test's stanzas bind-mounted over the machine's, copies of `passwd`, `shadow`, `group` (and
/// `sudoers`) with test users, a private `/run`, and `/dev/log` bound to a socket the test
/// reads. The machine's own files are never written.
#[derive(Debug)]
pub struct Sandbox {
    dir: TempDir,
    /// The syslog socket that is `/dev/log` inside.
    pub log: Syslog,
    binds: Vec<(PathBuf, PathBuf)>,
    users: Vec<TestUser>,
}

impl Sandbox {
    /// A sandbox with an unmodified copy of `/etc/pam.d`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("sw-sandbox-").tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let status = Command::new("cp")
            .arg("-a")
            .arg("/etc/pam.d")
            .arg(dir.path().join("pam.d"))
            .status()
            .expect("cp pam.d");
        assert!(status.success(), "copying /etc/pam.d");
        for f in ["passwd", "shadow", "group", "gshadow"] {
            let _ = std::fs::copy(Path::new("/etc").join(f), dir.path().join(f));
        }
        std::fs::create_dir_all(dir.path().join("run")).expect("mkdir run");
        let mut sb = Sandbox { log: Syslog::new(), binds: Vec::new(), users: Vec::new(), dir };
        for f in ["passwd", "shadow", "group", "gshadow"] {
            let p = sb.dir.path().join(f);
            if p.exists() {
                sb.binds.push((p, Path::new("/etc").join(f)));
            }
        }
        sb
    }

    /// A sandbox with the test user `name` (uid and gid `uid`), whose `service` stack ends with
    /// the module, given `config` and the extra module arguments `extra`.
    pub fn with_user(service: &str, name: &str, uid: u32, config: &ConfigFile, extra: &str) -> (Self, TestUser) {
        let mut sb = Sandbox::new();
        let u = sb.add_user(name, uid);
        sb.add_session_module(service, &Sandbox::module_args(&config.path(), extra));
        (sb, u)
    }

    /// Lets `user` run anything as anyone with `sudo -n` (an `/etc/sudoers` of the sandbox's
    /// own: no lecture, no password), and ends sudo's stack with the module, given `config`.
    pub fn add_sudo(&mut self, user: &str, config: &ConfigFile) {
        self.etc_file("/etc/sudoers", &format!("Defaults !lecture\nroot ALL=(ALL) ALL\n{user} ALL=(ALL) NOPASSWD: ALL\n"), 0o440);
        self.add_session_module("sudo", &Sandbox::module_args(&config.path(), ""));
    }

    /// The sandbox's directory (world-traversable).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `/etc/pam.d/<service>` inside the sandbox.
    pub fn pam_service(&self, service: &str, text: &str) {
        std::fs::write(self.dir.path().join("pam.d").join(service), text).expect("write pam service");
    }

    /// Appends `session required <module> <args>` to `/etc/pam.d/<service>` inside.
    pub fn add_session_module(&self, service: &str, args: &str) {
        let p = self.dir.path().join("pam.d").join(service);
        let mut text = std::fs::read_to_string(&p).unwrap_or_default();
        text.push_str(&format!("session required {} {args}\n", bin("libpam_session_wrapper.so").display()));
        std::fs::write(p, text).expect("write pam service");
    }

    /// The standard module arguments for tests: this config, the built supervisor.
    pub fn module_args(config: &Path, extra: &str) -> String {
        format!(
            "config={} supervisor={} {extra}",
            config.display(),
            bin("session-wrapper-supervisor").display()
        )
    }

    /// Adds a user (and its group) with a home directory and no password.
    pub fn add_user(&mut self, name: &str, uid: u32) -> TestUser {
        let home = self.dir.path().join("home").join(name);
        std::fs::create_dir_all(&home).expect("mkdir home");
        nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(uid)))
            .expect("chown home");
        self.append("passwd", &format!("{name}:x:{uid}:{uid}:test user:{}:/bin/bash\n", home.display()));
        self.append("shadow", &format!("{name}:*:19000:0:99999:7:::\n"));
        self.append("group", &format!("{name}:x:{uid}:\n"));
        self.append("gshadow", &format!("{name}:!::\n"));
        let u = TestUser { name: name.into(), uid, home };
        self.users.push(u.clone());
        u
    }

    /// Adds a group with these members.
    pub fn add_group(&mut self, name: &str, gid: u32, members: &[&str]) {
        self.append("group", &format!("{name}:x:{gid}:{}\n", members.join(",")));
        self.append("gshadow", &format!("{name}:!::{}\n", members.join(",")));
    }

    /// Appends `text` (whole lines) to the sandbox's copy of `/etc/<file>`.
    pub fn append_etc(&mut self, file: &str, text: &str) {
        self.append(file, text);
    }

    /// Appends `line` to the sandbox's copy of `/etc/<file>`.
    fn append(&self, file: &str, line: &str) {
        let p = self.dir.path().join(file);
        let mut t = std::fs::read_to_string(&p).unwrap_or_default();
        t.push_str(line);
        std::fs::write(p, t).expect("append");
    }

    /// Replaces a file inside the sandbox (e.g. `/etc/sudoers`) with `text` and `mode`.
    pub fn etc_file(&mut self, target: &str, text: &str, mode: u32) {
        let name = target.trim_start_matches('/').replace('/', "_");
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        self.binds.push((p, PathBuf::from(target)));
    }

    /// The shell that sets the namespace up, then execs its arguments.
    fn setup_script(&self) -> String {
        let w = self.dir.path().display().to_string();
        let mut s = String::from("set -e\nmount --make-rprivate /\n");
        s.push_str(&format!("mount --bind {w}/pam.d /etc/pam.d\n"));
        for (src, dst) in &self.binds {
            s.push_str(&format!("mount --bind {} {}\n", src.display(), dst.display()));
        }
        s.push_str("mount -t tmpfs -o mode=755 tmpfs /run\nmkdir -p /run/sshd\n");
        // The spool of undelivered log lines: the sandbox's own.
        s.push_str("mount -t tmpfs -o mode=755 tmpfs /var/spool\n");
        // /dev: an overlay, so that /dev/log can exist; submounts are moved back on top.
        s.push_str(&format!(
            "mkdir -p {w}/dev/upper {w}/dev/work {w}/dev/keep\n\
             for m in $(findmnt -rn -o TARGET | grep '^/dev/' | sort -u); do n=$(echo $m | tr / _); mkdir -p {w}/dev/keep/$n; mount --rbind $m {w}/dev/keep/$n; done\n\
             mount -t overlay overlay -o lowerdir=/dev,upperdir={w}/dev/upper,workdir={w}/dev/work /dev\n\
             for k in {w}/dev/keep/*; do [ -e \"$k\" ] || continue; m=$(basename $k | tr _ /); mount --move $k $m; done\n\
             touch /dev/log\nmount --bind {} /dev/log\n",
            self.log.path().display()
        ));
        s.push_str("exec \"$@\"\n");
        s
    }

    /// A command that runs `argv` inside the sandbox.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"]).arg(self.setup_script()).arg("sw-sandbox");
        c.args(argv);
        c.env_remove("LD_PRELOAD");
        c.env_remove("LD_LIBRARY_PATH");
        c.stdin(Stdio::null());
        c.current_dir("/");
        c
    }

    /// Runs `argv` inside the sandbox to completion, with a timeout.
    pub fn run(&self, argv: &[&str], timeout: Duration) -> Output {
        let mut full = vec!["timeout", "-k", "5"];
        let t = timeout.as_secs().to_string();
        full.push(&t);
        full.extend_from_slice(argv);
        self.command(&full).output().expect("run in sandbox")
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The Debian package: `SW_DEB` (a path, relative to the workspace or absolute), or what
/// `packaging/build-deb.sh` builds.
pub fn build_deb() -> PathBuf {
    if let Some(p) = std::env::var_os("SW_DEB") {
        // Relative to the workspace, not to tests/ where cargo runs the test.
        let p = workspace_root().join(p);
        assert!(p.is_file(), "SW_DEB={} is not a file", p.display());
        return p;
    }
    let script = workspace_root().join("packaging/build-deb.sh");
    let out = Command::new(&script)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .expect("run packaging/build-deb.sh");
    assert!(
        out.status.success(),
        "packaging/build-deb.sh failed ({}):\n{}",
        out.status,
        tail(&output_text(&out), 40)
    );
    let deb = PathBuf::from(stdout(&out).lines().last().unwrap_or_default().trim());
    assert!(deb.is_file(), "build-deb.sh did not name a .deb:\n{}", output_text(&out));
    deb
}
