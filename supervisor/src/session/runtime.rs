//! The runtime directory (`/run/session-wrapper`, root only): one file per live session, which
//! `session-wrapper sessions` reads.
//!
//! The supervisor writes its file when the session starts and rewrites it (atomically, at
//! most once a second) as its counts change, and at once when asked (`SIGUSR1`, which
//! [`refresh`] sends before the list is read, so that it is exact); it removes it when the
//! session ends, and its watchdog removes it if the supervisor dies. A file whose supervisor
//! is not running (both killed at once) is recognised as stale by the reader, which removes it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The runtime directory.
pub const DIR: &str = "/run/session-wrapper";

/// What a session file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id (12 hex digits).
    pub id: String,
    /// Login user.
    pub user: String,
    /// PAM service.
    pub service: String,
    /// Terminal at session start, or `-`.
    pub tty: String,
    /// Client address, or `-`.
    pub rhost: String,
    /// The process that opened the session.
    pub leader: i32,
    /// The supervisor's pid.
    pub supervisor: i32,
    /// Start time, seconds since the epoch.
    pub started: u64,
    /// Execs allowed.
    pub allowed: u64,
    /// Execs refused.
    pub refused: u64,
    /// Tasks killed at the exec check.
    pub killed: u64,
    /// `enforce` or `audit`.
    pub mode: String,
    /// The configuration files, comma-separated (escaped as a word).
    pub config: String,
    /// The supervisor rewrites the file when sent `SIGUSR1`.
    pub refreshes: bool,
}

impl SessionInfo {
    /// The file text: `key=value` lines, values escaped (no spaces, no newlines).
    pub fn to_text(&self) -> String {
        use session_wrapper_config::text::escape_word;
        format!(
            "id={}\nuser={}\nservice={}\ntty={}\nrhost={}\nleader={}\nsupervisor={}\nstarted={}\nallowed={}\nrefused={}\nkilled={}\nmode={}\nconfig={}\nrefresh=usr1\n",
            self.id,
            escape_word(self.user.as_bytes()),
            escape_word(self.service.as_bytes()),
            escape_word(self.tty.as_bytes()),
            escape_word(self.rhost.as_bytes()),
            self.leader,
            self.supervisor,
            self.started,
            self.allowed,
            self.refused,
            self.killed,
            self.mode,
            escape_word(self.config.as_bytes()),
        )
    }

    /// Parses a file written by [`SessionInfo::to_text`].
    pub fn parse(file: &str) -> Option<Self> {
        let text = |v: &str| String::from_utf8_lossy(&session_wrapper_config::text::unescape(v)).into_owned();
        let mut s = SessionInfo::default();
        for line in file.lines() {
            let (k, v) = line.split_once('=')?;
            let int = || v.parse::<i32>().ok();
            let count = || v.parse::<u64>().ok();
            match k {
                "id" => s.id = v.into(),
                "user" => s.user = text(v),
                "service" => s.service = text(v),
                "tty" => s.tty = text(v),
                "rhost" => s.rhost = text(v),
                "leader" => s.leader = int()?,
                "supervisor" => s.supervisor = int()?,
                "started" => s.started = count()?,
                "allowed" => s.allowed = count()?,
                "refused" => s.refused = count()?,
                "killed" => s.killed = count()?,
                "mode" => s.mode = v.into(),
                "config" => s.config = text(v),
                "refresh" => s.refreshes = v == "usr1",
                _ => {}
            }
        }
        (!s.id.is_empty() && s.supervisor > 0).then_some(s)
    }
}

/// The runtime directory, held open: a supervisor writes its session file through this
/// handle only (its own seccomp filter refuses every other way to write a file).
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    fd: std::os::fd::OwnedFd,
}

impl RuntimeDir {
    /// Opens (creating it root-only if needed) the directory at `path`.
    ///
    /// # Errors
    /// When it cannot be created or opened.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        ensure_private(path)?;
        let fd = nix::fcntl::open(path, nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(std::io::Error::from)?;
        Ok(RuntimeDir { path: path.to_owned(), fd })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's descriptor, to be moved (see [`crate::sys::place_consecutive`]).
    pub fn fd_mut(&mut self) -> &mut std::os::fd::OwnedFd {
        &mut self.fd
    }

    /// Writes (replaces, atomically) the file of a session.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, info: &SessionInfo) -> std::io::Result<()> {
        use nix::fcntl::{openat, renameat, OFlag};
        let tmp = format!(".{}.tmp", info.id);
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .map_err(std::io::Error::from)?;
        std::fs::File::from(fd).write_all(info.to_text().as_bytes())?;
        renameat(&self.fd, tmp.as_str(), &self.fd, format!("{}.session", info.id).as_str())
            .map_err(std::io::Error::from)
    }

    /// Removes the file of a session.
    pub fn remove(&self, id: &str) {
        let _ = nix::unistd::unlinkat(&self.fd, format!("{id}.session").as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

/// Where the file of session `id` lives in `dir`.
pub fn path_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.session"))
}

/// Removes the file of a session.
pub fn remove(dir: &Path, id: &str) {
    let _ = std::fs::remove_file(path_of(dir, id));
}

/// Whether `pid` runs the session-wrapper supervisor binary.
fn is_supervisor(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("session-wrapper")))
        .unwrap_or(false)
}

/// The live sessions in `dir`; stale files (supervisor not running) are removed.
pub fn list(dir: &Path) -> Vec<SessionInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "session") {
            continue;
        }
        match std::fs::read_to_string(&p).ok().as_deref().and_then(SessionInfo::parse) {
            Some(info) if is_supervisor(info.supervisor) => out.push(info),
            _ => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    out.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    out
}

/// Asks every live supervisor in `dir` that can (`refresh=usr1`) to rewrite its file now, and
/// waits until they have, for at most `limit`: the counts read next are exact.
pub fn refresh(dir: &Path, limit: std::time::Duration) {
    use std::os::unix::fs::MetadataExt;
    /// A file's version: inode (it is replaced by a rename) and modification time.
    type Version = Option<(u64, i64, i64)>;
    let stamp = |p: &Path| -> Version { std::fs::metadata(p).ok().map(|m| (m.ino(), m.mtime(), m.mtime_nsec())) };
    let mut waiting: Vec<(PathBuf, Version)> = Vec::new();
    for s in list(dir).into_iter().filter(|s| s.refreshes) {
        let p = path_of(dir, &s.id);
        let before = stamp(&p);
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.supervisor), nix::sys::signal::Signal::SIGUSR1).is_ok() {
            waiting.push((p, before));
        }
    }
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        waiting.retain(|(p, before)| stamp(p).is_some() && stamp(p) == *before);
        if waiting.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The processes of a session now, its supervisor and watchdog left out, and the first
/// terminal one of them has (an `ssh -tt` session's pts, where PAM only said `ssh`).
pub fn processes(info: &SessionInfo) -> (usize, Option<String>) {
    let watchdog = crate::sys::procfs::status(info.supervisor).map(|s| s.ppid).unwrap_or(0);
    let mut pids = super::lingering::members(info.leader, None, &[info.supervisor, watchdog]);
    pids.push(info.leader);
    let tty = pids.iter().find_map(|p| crate::sys::procfs::tty(*p).ok().flatten());
    (pids.len(), tty)
}

/// Makes sure `dir` is a root-owned directory only root can enter.
///
/// # Errors
/// When it cannot be created or fixed.
pub fn ensure_private(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_roundtrip_and_stale_ones_are_dropped() {
        let d = std::env::temp_dir().join(format!("sw-runtime-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let live = SessionInfo {
            id: "00000000abcd".into(),
            user: "alice smith".into(),
            service: "sshd".into(),
            tty: "-".into(),
            rhost: "192.0.2.1".into(),
            leader: 1,
            supervisor: std::process::id() as i32,
            started: 1,
            allowed: 3,
            refused: 1,
            killed: 0,
            mode: "enforce".into(),
            config: "/etc/session-wrapper/config.toml".into(),
            refreshes: true,
        };
        let dir = RuntimeDir::open(&d).expect("open");
        dir.write(&live).expect("write");
        let text = std::fs::read_to_string(path_of(&d, &live.id)).expect("read");
        let parsed = SessionInfo::parse(&text).expect("parse");
        assert!(text.contains("user=alice%20smith\n"), "{text}");
        assert_eq!(parsed, live, "every field comes back");
        // A file whose supervisor is not running (pid 999999) is stale.
        let stale = SessionInfo { id: "000000000001".into(), supervisor: 999_999, ..live.clone() };
        dir.write(&stale).expect("write");
        let listed = list(&d);
        // This test process is not a session-wrapper binary either: both are stale here.
        assert!(listed.is_empty());
        assert!(!path_of(&d, &stale.id).exists());
        let _ = std::fs::remove_dir_all(d);
    }
}
