//! Support for the end-to-end tests: where the built binaries are, a real syslog socket that
//! collects what the supervisor logs, and running commands under `session-wrapper run`.
//!
//! The binaries must be built first (`cargo build --workspace`, which `tests/run.sh` does).
//! Tests that need root say so and are skipped, counted and explained, when not root.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// The directory of the built binaries (`target/debug` or `target/release`).
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

/// Whether this process is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips the calling test (with a reason on stderr, counted by `tests/run.sh`) unless root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("SKIPPED: {}: needs root (run the tests as root)", module_path!());
            return;
        }
    };
}

/// A datagram socket bound where the supervisor is told to log. A thread reads it all the
/// time, as a syslog daemon does, and keeps every line.
#[derive(Debug)]
pub struct Syslog {
    _dir: TempDir,
    path: PathBuf,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Syslog {
    /// A fresh socket in a private temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("sw-log-").tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let sock = UnixDatagram::bind(&path).expect("bind syslog socket");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = Arc::clone(&lines);
        std::thread::spawn(move || {
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
        Syslog { _dir: dir, path, lines }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
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

/// The decision lines (those with `decision=`) among `lines`.
pub fn decisions(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains(" decision=")).collect()
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

/// A world-writable scratch directory (commands run as `nobody` write markers there).
pub fn scratch() -> TempDir {
    let d = tempfile::Builder::new().prefix("sw-test-").tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    d
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
        }
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

    /// The command line, for when a test needs to spawn it itself.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("-k").arg("5").arg(format!("{}", self.timeout.as_secs()));
        c.arg(bin("session-wrapper")).arg("run");
        if let Some(p) = &self.config {
            c.arg("--config").arg(p);
        }
        c.arg("--user").arg(&self.user.0);
        c.arg("--user-uid").arg(self.user.1.to_string());
        c.arg("--user-gid").arg(self.user.2.to_string());
        c.arg("--log-socket").arg(self.log.path());
        c.args(&self.extra);
        c.arg("--").args(argv);
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
