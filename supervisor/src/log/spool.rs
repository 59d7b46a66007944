//! A root-only directory on disk where what could not be delivered waits until it can be:
//! syslog lines that a missing or stalled syslog daemon did not take.
//!
//! Each supervisor appends to a file of its own (`log.SESSION.PID`, one line per record, after
//! a `#socket PATH` line naming the syslog socket the lines are for), which it holds locked
//! (`flock`) for as long as it runs. A later supervisor, once its own syslog
//! socket works, *claims* a file for that same socket that nobody holds (the lock fails while
//! its writer lives), delivers
//! its lines, and removes it only when every line is sent; if that supervisor ends first, it
//! writes back what is left. A crash anywhere leaves the file in place (a line may then be
//! delivered twice, never lost).
//!
//! Bounds: [`FILE_MAX`] bytes per file and [`DIR_MAX`] bytes in the directory; what does not
//! fit is counted by the caller and reported as dropped.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

/// The default spool directory.
pub const DEFAULT_DIR: &str = "/var/spool/session-wrapper";
/// Most bytes in one supervisor's file.
pub const FILE_MAX: u64 = 4 << 20;
/// Most bytes in the whole directory.
pub const DIR_MAX: u64 = 64 << 20;
/// Prefix of the files of syslog lines.
const LOG_PREFIX: &str = "log.";
/// The first line of a file: which socket its lines are for.
const HEADER: &str = "#socket ";

/// The spool directory, held open.
#[derive(Debug)]
pub struct SpoolDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl SpoolDir {
    /// Opens `path`, creating it (mode 0700) if needed. It must be a directory owned by root
    /// and writable by no one else.
    ///
    /// # Errors
    /// When it cannot be made or opened, or belongs to someone else.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = crate::sys::open_own_dir(path, 0o022)?;
        Ok(SpoolDir { fd, path: path.to_owned() })
    }

    /// The directory's descriptor, to be moved (see [`crate::sys::place_consecutive`]).
    pub fn fd_mut(&mut self) -> &mut OwnedFd {
        &mut self.fd
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_file(&self, name: &str, create: bool) -> io::Result<File> {
        let mut flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        if create {
            flags |= OFlag::O_CREAT;
        }
        Ok(File::from(openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))?))
    }

    fn names(&self) -> Vec<String> {
        let dir = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut names: Vec<String> =
            entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect();
        names.sort();
        names
    }

    fn total_bytes(&self) -> u64 {
        self.names()
            .iter()
            .filter_map(|n| nix::sys::stat::fstatat(&self.fd, n.as_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok())
            .map(|st| st.st_size as u64)
            .sum()
    }

    /// Creates this supervisor's own file of lines for the syslog socket `socket`, locked.
    ///
    /// # Errors
    /// When it cannot be created or the directory is full.
    pub fn create_own(&self, session: &str, socket: &str) -> io::Result<SpoolFile> {
        if self.total_bytes() >= DIR_MAX {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "the spool directory is full"));
        }
        let name = format!("{LOG_PREFIX}{session}.{}", std::process::id());
        let file = self.open_file(&name, true)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| io::Error::from(e))?;
        let len = lock.metadata()?.len();
        let mut own = SpoolFile { lock, name, read_at: 0, len };
        if len == 0 {
            own.append(format!("{HEADER}{socket}").as_bytes())?;
            own.read_at = own.len;
        }
        Ok(own)
    }

    /// Claims a file of lines that no live supervisor holds (not `except`), to be delivered
    /// to the syslog socket `socket`: one written for `socket`, or one for a socket that is
    /// no longer there (nothing, or no socket, at its path; or no header naming one). The
    /// lines of a socket the configuration stopped naming would otherwise wait for ever, and
    /// fill the directory; [`SpoolFile::socket`] says which socket they were for.
    pub fn claim(&self, except: Option<&str>, socket: &str) -> Option<SpoolFile> {
        for name in self.names() {
            if !name.starts_with(LOG_PREFIX) || Some(name.as_str()) == except {
                continue;
            }
            let Ok(file) = self.open_file(&name, false) else { continue };
            let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { continue };
            let Ok(meta) = lock.metadata() else { continue };
            let file = SpoolFile { len: meta.len(), lock, name, read_at: 0 };
            // Another socket's lines, while that socket is there, wait for it.
            if file.socket().is_some_and(|s| s != socket.as_bytes() && is_socket(&s)) {
                continue;
            }
            if file.count() == 0 {
                self.remove(file);
                continue;
            }
            return Some(file);
        }
        None
    }

    /// Removes a file whose every line was delivered.
    pub fn remove(&self, file: SpoolFile) {
        let _ = nix::unistd::unlinkat(&self.fd, file.name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

/// Whether a socket is at `path` (its target, if a symlink).
fn is_socket(path: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(std::ffi::OsStr::from_bytes(path)).is_ok_and(|m| m.file_type().is_socket())
}

/// One file of lines, locked by this process.
#[derive(Debug)]
pub struct SpoolFile {
    lock: Flock<File>,
    name: String,
    /// Lines before this offset have been delivered.
    read_at: u64,
    len: u64,
}

impl SpoolFile {
    /// The file's name in the spool directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether every line has been delivered.
    pub fn is_empty(&self) -> bool {
        self.read_at >= self.len
    }

    /// Whether a line of `len` bytes still fits.
    pub fn has_room(&self, len: usize) -> bool {
        self.len + (len as u64) < FILE_MAX
    }

    /// Lines not yet delivered.
    pub fn count(&self) -> usize {
        let mut buf = Vec::new();
        let _ = self.pending(&mut buf);
        buf.split(|&b| b == b'\n').filter(|l| !l.is_empty() && !l.starts_with(b"#")).count()
    }

    /// The socket its header names.
    pub fn socket(&self) -> Option<Vec<u8>> {
        let mut head = [0u8; 4096];
        let n = self.lock.read_at(&mut head, 0).ok()?;
        let line = head[..n].split(|&b| b == b'\n').next()?;
        line.strip_prefix(HEADER.as_bytes()).map(<[u8]>::to_vec)
    }

    fn pending(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        let n = (self.len - self.read_at).min(FILE_MAX) as usize;
        buf.resize(n, 0);
        self.lock.read_exact_at(buf, self.read_at)
    }

    /// Appends one line (a newline inside it is written as a space).
    ///
    /// # Errors
    /// When the file is full or the write fails.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.len + line.len() as u64 + 1 > FILE_MAX {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "the spool file is full"));
        }
        let mut rec: Vec<u8> = line.iter().map(|&b| if b == b'\n' { b' ' } else { b }).collect();
        rec.push(b'\n');
        self.lock.write_all_at(&rec, self.len)?;
        self.len += rec.len() as u64;
        Ok(())
    }

    /// Makes what was appended last survive a crash of the host.
    pub fn sync(&self) {
        let _ = self.lock.sync_data();
    }

    /// The next line not yet delivered (the header skipped).
    pub fn peek(&mut self) -> Option<Vec<u8>> {
        loop {
            let line = self.peek_raw()?;
            if !line.starts_with(b"#") {
                return Some(line);
            }
            self.read_at = (self.read_at + line.len() as u64 + 1).min(self.len);
        }
    }

    fn peek_raw(&self) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let mut head = vec![0u8; 0];
        let mut chunk = [0u8; 4096];
        let mut at = self.read_at;
        loop {
            let n = self.lock.read_at(&mut chunk, at).ok()?;
            if n == 0 {
                return (!head.is_empty()).then_some(head);
            }
            if let Some(nl) = chunk[..n].iter().position(|&b| b == b'\n') {
                head.extend_from_slice(&chunk[..nl]);
                return Some(head);
            }
            head.extend_from_slice(&chunk[..n]);
            at += n as u64;
            if head.len() > 64 * 1024 {
                return Some(head);
            }
        }
    }

    /// Marks the line [`SpoolFile::peek`] gave as delivered. When nothing is left, the file is
    /// emptied so that it can take new lines.
    pub fn consumed(&mut self, line: &[u8]) {
        self.read_at = (self.read_at + line.len() as u64 + 1).min(self.len);
        if self.is_empty() {
            let header = self.header();
            let _ = self.lock.set_len(0);
            self.read_at = 0;
            self.len = 0;
            if let Some(h) = header {
                let _ = self.append(&h);
                self.read_at = self.len;
            }
        }
    }

    fn header(&self) -> Option<Vec<u8>> {
        self.socket().map(|s| [HEADER.as_bytes(), &s].concat())
    }

    /// Keeps only the lines not yet delivered (before letting the file go to another
    /// supervisor), so that nothing delivered is delivered again.
    pub fn keep_pending(&mut self) {
        if self.read_at == 0 {
            return;
        }
        let mut rest = Vec::new();
        let header = self.header();
        if self.pending(&mut rest).is_ok() && self.lock.set_len(0).is_ok() {
            let mut body = header.map(|mut h| {
                h.push(b'\n');
                h
            }).unwrap_or_default();
            body.extend_from_slice(&rest);
            let _ = self.lock.write_all_at(&body, 0);
            self.len = body.len() as u64;
            self.read_at = 0;
            self.sync();
        }
    }

    /// Every pending line, for a reader that is not a syslog socket (tests, stderr).
    pub fn drain_lines(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(l) = self.peek() {
            self.consumed(&l);
            out.push(l);
        }
        out
    }
}

/// Reads every line of a spool file at `path` (for `session-wrapper` and tests).
///
/// # Errors
/// When it cannot be read.
pub fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    let mut text = String::new();
    File::open(path)?.read_to_string(&mut text)?;
    Ok(text.lines().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sw-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn lines_survive_their_writer_and_are_claimed_once() {
        let d = dir("claim");
        let spool = SpoolDir::open(&d).expect("open");
        let mut own = spool.create_own("000000000001", "/dev/log").expect("create");
        own.append(b"<86>one").expect("append");
        own.append(b"<86>two\nstill two").expect("append");
        assert_eq!(own.count(), 2);
        // While its writer holds it, nobody claims it.
        assert!(spool.claim(None, "/dev/log").is_none());
        drop(own);
        // Another socket that is there takes only its own lines.
        let other = d.join("other.sock");
        let _listening = std::os::unix::net::UnixDatagram::bind(&other).expect("bind");
        let mut other_own = spool.create_own("000000000003", other.to_str().expect("utf-8")).expect("create");
        other_own.append(b"<86>for the other socket").expect("append");
        drop(other_own);
        let mut claimed = spool.claim(None, "/dev/log").expect("claimable once the writer is gone");
        assert_eq!(claimed.socket().as_deref(), Some(&b"/dev/log"[..]));
        assert!(spool.claim(None, "/dev/log").is_none(), "a claimed file is held; the other socket's is not taken");
        let first = claimed.peek().expect("a line");
        assert_eq!(first, b"<86>one");
        claimed.consumed(&first);
        claimed.keep_pending();
        drop(claimed);
        let mut again = spool.claim(None, "/dev/log").expect("what was left");
        assert_eq!(again.drain_lines(), vec![b"<86>two still two".to_vec()]);
        spool.remove(again);
        assert!(spool.claim(None, "/dev/log").is_none());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn lines_for_a_socket_that_is_no_longer_there_go_to_the_socket_that_works() {
        let d = dir("orphan");
        let spool = SpoolDir::open(&d).expect("open");
        let gone = d.join("gone.sock");
        let listening = std::os::unix::net::UnixDatagram::bind(&gone).expect("bind");
        let mut own = spool.create_own("000000000004", gone.to_str().expect("utf-8")).expect("create");
        own.append(b"<86>meant for gone.sock").expect("append");
        drop(own);
        assert!(spool.claim(None, "/run/now.sock").is_none(), "its socket is there: its lines wait for it");
        drop(listening);
        std::fs::remove_file(&gone).expect("remove the socket");
        std::fs::write(&gone, b"").expect("a plain file where the socket was");
        let mut claimed = spool.claim(None, "/run/now.sock").expect("no socket at its path any more");
        assert_eq!(claimed.socket(), Some(gone.to_str().expect("utf-8").as_bytes().to_vec()));
        assert_eq!(claimed.drain_lines(), vec![b"<86>meant for gone.sock".to_vec()]);
        spool.remove(claimed);
        assert!(spool.claim(None, "/run/now.sock").is_none());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_file_is_bounded() {
        let d = dir("bound");
        let spool = SpoolDir::open(&d).expect("open");
        let mut own = spool.create_own("000000000002", "/dev/log").expect("create");
        let line = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while own.append(&line).is_ok() {
            written += 1;
        }
        assert!(written * (line.len() as u64 + 1) <= FILE_MAX);
        assert!(written > 0);
        let _ = std::fs::remove_dir_all(d);
    }
}
