//! The accounting spool: TACACS+ accounting records that no server has taken yet, on disk, so
//! that they outlive an outage, the session, a supervisor crash and a reboot.
//!
//! A root-only directory (`<[log] spool-dir>/accounting`, mode 0700) holds one append-only
//! *journal* per session (`acct.SESSION.PID`). A journal is text, one entry a line:
//!
//! ```text
//! H <session> <user> <rem_addr> <priv-lvl>          who the records are about (first line)
//! R <seq> <S|T> <port> <kind> <task> <attr>...      a record: START (S) or STOP (T), in order
//! D <seq>                                            record <seq> was delivered
//! ```
//!
//! (fields percent-encoded: `%`, space and control bytes as `%XX`). A line without its newline
//! (a crash in the middle of a write) is ignored. The supervisor appends a record before the
//! loop goes on (so a crash of the supervisor loses nothing the kernel has), its delivery
//! thread `fdatasync`s the journal before it sends (so a crash of the host loses nothing it
//! has seen), and marks each record delivered with a `D` line. A journal with nothing
//! pending is emptied; one whose session ended is removed.
//!
//! Why one journal per session rather than one file per record: a record then costs one
//! `write` and one `fdatasync` of one file, where a file per record costs a create, a
//! `fsync` of the file and of the directory, and an unlink (and another directory sync) once
//! delivered; the order of a session's records is the order of its lines, where files would
//! need sequence numbers in their names and a sorted directory scan; and one lock covers a
//! session's whole backlog, so two deliverers never share it.
//!
//! Who delivers: the supervisor holds its journal locked (`flock`) for as long as it lives.
//! A journal nobody holds belongs to a session whose supervisor is gone (ended, crashed, or
//! the host rebooted): a later supervisor, or `session-wrapper deliver-accounting`, *claims*
//! it by taking the lock, delivers its pending records in order, and removes it when none is
//! left. A journal whose supervisor lives cannot be locked, so it is never taken from it.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use super::attrs::Attr;

/// The spool's folder below `[log] spool-dir`.
pub const SUBDIR: &str = "accounting";
/// Most bytes in the whole accounting spool.
pub const DIR_MAX: u64 = 256 << 20;
/// Prefix of the journals.
const PREFIX: &str = "acct.";

/// Who the records of a journal are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The session id, as text.
    pub session: String,
    /// The login user (`user`).
    pub user: String,
    /// The client address (`rem_addr`).
    pub rem_addr: String,
    /// The privilege level.
    pub priv_lvl: u8,
}

/// One accounting record as it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in its journal.
    pub seq: u64,
    /// START (else STOP).
    pub start: bool,
    /// The terminal (`port`).
    pub port: String,
    /// `command-start`, `session-stop`, ...
    pub kind: String,
    /// Its `task_id`.
    pub task: String,
    /// Its attributes.
    pub attrs: Vec<Attr>,
}

fn enc(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    for b in s.bytes() {
        if b <= b' ' || b == b'%' || b == 0x7f || (b == b'-' && s.len() == 1) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

fn dec(s: &str) -> Option<String> {
    if s == "-" {
        return Some(String::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Header {
    fn line(&self) -> String {
        let mut s = String::from("H ");
        enc(&mut s, &self.session);
        s.push(' ');
        enc(&mut s, &self.user);
        s.push(' ');
        enc(&mut s, &self.rem_addr);
        let _ = writeln!(s, " {}", self.priv_lvl);
        s
    }

    fn parse(line: &str) -> Option<Self> {
        let mut w = line.split(' ');
        (w.next()? == "H").then_some(())?;
        Some(Header {
            session: dec(w.next()?)?,
            user: dec(w.next()?)?,
            rem_addr: dec(w.next()?)?,
            priv_lvl: w.next()?.parse().ok()?,
        })
    }
}

impl Entry {
    fn line(&self) -> String {
        let mut s = format!("R {} {} ", self.seq, if self.start { 'S' } else { 'T' });
        for f in [&self.port, &self.kind, &self.task] {
            enc(&mut s, f);
            s.push(' ');
        }
        for a in &self.attrs {
            let mut av = a.name.clone();
            av.push(if a.mandatory { '=' } else { '*' });
            av.push_str(&a.value);
            enc(&mut s, &av);
            s.push(' ');
        }
        s.pop();
        s.push('\n');
        s
    }

    fn parse(line: &str) -> Option<Self> {
        let mut w = line.split(' ');
        (w.next()? == "R").then_some(())?;
        let seq = w.next()?.parse().ok()?;
        let start = match w.next()? {
            "S" => true,
            "T" => false,
            _ => return None,
        };
        let port = dec(w.next()?)?;
        let kind = dec(w.next()?)?;
        let task = dec(w.next()?)?;
        let mut attrs = Vec::new();
        for av in w {
            let av = dec(av)?;
            let at = av.find(['=', '*'])?;
            attrs.push(Attr {
                name: av[..at].to_owned(),
                value: av[at + 1..].to_owned(),
                mandatory: &av[at..=at] == "=",
            });
        }
        Some(Entry {
            seq,
            start,
            port,
            kind,
            task,
            attrs,
        })
    }
}

/// The accounting spool directory, held open.
#[derive(Debug)]
pub struct AcctDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl AcctDir {
    /// Opens `path`, creating it (mode 0700) if needed. It must be a directory owned by this
    /// user (root) and neither readable nor writable by others.
    ///
    /// # Errors
    /// When it cannot be made or opened, or others could read or change it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = crate::sys::open_own_dir(path, 0o077)?;
        Ok(AcctDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The directory's descriptor, to be moved (see [`crate::sys::place_consecutive`]).
    pub fn fd_mut(&mut self) -> &mut OwnedFd {
        &mut self.fd
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<String> {
        let dir = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(PREFIX))
            .collect();
        names.sort();
        names
    }

    /// Bytes in the whole spool.
    pub fn bytes(&self) -> u64 {
        self.names()
            .iter()
            .filter_map(|n| {
                nix::sys::stat::fstatat(
                    &self.fd,
                    n.as_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .ok()
            })
            .map(|st| st.st_size as u64)
            .sum()
    }

    fn open_file(&self, name: &str, create: bool) -> io::Result<File> {
        let mut flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        if create {
            flags |= OFlag::O_CREAT | OFlag::O_EXCL;
        }
        Ok(File::from(openat(
            &self.fd,
            name,
            flags,
            Mode::from_bits_truncate(0o600),
        )?))
    }

    /// Creates this supervisor's journal, locked for as long as it is held.
    ///
    /// # Errors
    /// When it cannot be created or written.
    pub fn create(&self, header: Header) -> io::Result<Journal> {
        let name = format!("{PREFIX}{}.{}", header.session, std::process::id());
        let file = self.open_file(&name, true)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io::Error::from(e))?;
        let mut j = Journal {
            lock,
            name,
            header,
            next_seq: 1,
            len: 0,
            pending: VecDeque::new(),
            unsynced: false,
        };
        j.write_header()?;
        Ok(j)
    }

    /// Claims a journal that no live supervisor holds (none of `except`) and that has records
    /// pending; empty ones found on the way are removed.
    pub fn claim(&self, except: &[&str]) -> Option<Journal> {
        for name in self.names() {
            if except.contains(&name.as_str()) {
                continue;
            }
            let Ok(file) = self.open_file(&name, false) else {
                continue;
            };
            let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            if lock.metadata().is_ok_and(|m| m.len() == 0) {
                // Emptied, and its header not yet written again when its writer died.
                let _ = nix::unistd::unlinkat(
                    &self.fd,
                    name.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                continue;
            }
            let Some(j) = Journal::load(lock, name.clone()) else {
                continue;
            };
            if j.pending.is_empty() {
                self.remove(j);
                continue;
            }
            return Some(j);
        }
        None
    }

    /// Every journal's file name.
    pub fn journal_names(&self) -> Vec<String> {
        self.names()
    }

    /// Whether a live process holds journal `name`.
    pub fn is_held(&self, name: &str) -> bool {
        let Ok(file) = self.open_file(name, false) else {
            return false;
        };
        Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
    }

    /// The journals nobody holds, with their pending records (for `deliver-accounting`
    /// to report; each is claimed and released again).
    pub fn orphans(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for name in self.names() {
            let Ok(file) = self.open_file(&name, false) else {
                continue;
            };
            let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            if let Some(j) = Journal::load(lock, name.clone()) {
                out.push((name, j.pending.len()));
            }
        }
        out
    }

    /// Removes a journal (every record delivered, or its session's supervisor ending with
    /// nothing pending).
    pub fn remove(&self, j: Journal) {
        let _ = nix::unistd::unlinkat(
            &self.fd,
            j.name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// One session's journal, locked by this process.
#[derive(Debug)]
pub struct Journal {
    lock: Flock<File>,
    name: String,
    header: Header,
    next_seq: u64,
    len: u64,
    /// Records not yet delivered, in order.
    pending: VecDeque<Entry>,
    unsynced: bool,
}

impl Journal {
    fn load(lock: Flock<File>, name: String) -> Option<Self> {
        let len = lock.metadata().ok()?.len();
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        lock.read_exact_at(&mut buf, 0).ok()?;
        // Only whole lines: a write cut by a crash is ignored.
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let text = String::from_utf8_lossy(&buf[..whole]);
        let mut lines = text.lines();
        let header = Header::parse(lines.next()?)?;
        let mut pending: VecDeque<Entry> = VecDeque::new();
        let mut next_seq = 1;
        for l in lines {
            if let Some(e) = Entry::parse(l) {
                next_seq = next_seq.max(e.seq + 1);
                pending.push_back(e);
            } else if let Some(seq) = l.strip_prefix("D ").and_then(|s| s.parse::<u64>().ok()) {
                pending.retain(|e| e.seq != seq);
            }
        }
        Some(Journal {
            lock,
            name,
            header,
            next_seq,
            len: whole as u64,
            pending,
            unsynced: false,
        })
    }

    fn write_header(&mut self) -> io::Result<()> {
        let _ = self.lock.set_len(0);
        self.len = 0;
        let h = self.header.line();
        self.write(h.as_bytes())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.lock.write_all_at(bytes, self.len)?;
        self.len += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Its file name in the spool.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who its records are about.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no record (the header aside).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records not yet delivered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The oldest record not yet delivered.
    pub fn front(&self) -> Option<&Entry> {
        self.pending.front()
    }

    /// Every record not yet delivered, in order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.pending.iter()
    }

    /// Appends a record (numbered here); the kernel has it when this returns.
    ///
    /// # Errors
    /// When the write fails (the record is then not kept).
    pub fn append(&mut self, mut e: Entry) -> io::Result<u64> {
        e.seq = self.next_seq;
        self.write(e.line().as_bytes())?;
        self.next_seq += 1;
        let seq = e.seq;
        self.pending.push_back(e);
        Ok(seq)
    }

    /// Marks the oldest pending record delivered. When none is left, the journal is emptied
    /// (its header kept) so that it does not grow for as long as the session lives.
    pub fn delivered(&mut self) {
        let Some(e) = self.pending.pop_front() else {
            return;
        };
        if self.pending.is_empty() {
            let _ = self.write_header();
        } else {
            let _ = self.write(format!("D {}\n", e.seq).as_bytes());
        }
    }

    /// Another descriptor of its file, to `fdatasync` it without holding the journal.
    ///
    /// # Errors
    /// When it cannot be duplicated.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.lock.try_clone()
    }

    /// Makes what was written survive a crash of the host (`fdatasync`).
    pub fn sync(&mut self) {
        if self.unsynced {
            let _ = self.lock.sync_data();
            self.unsynced = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sw-acct-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn header() -> Header {
        Header {
            session: "0123456789ab".into(),
            user: "alice smith".into(),
            rem_addr: String::new(),
            priv_lvl: 1,
        }
    }

    fn entry(task: &str, start: bool) -> Entry {
        Entry {
            seq: 0,
            start,
            port: "pts/0".into(),
            kind: if start {
                "command-start"
            } else {
                "command-stop"
            }
            .into(),
            task: task.into(),
            attrs: vec![
                Attr::new("task_id", task),
                Attr::new("cmd-arg", "a b%c\\x0a"),
                Attr {
                    name: "x".into(),
                    value: String::new(),
                    mandatory: false,
                },
            ],
        }
    }

    #[test]
    fn records_outlive_their_writer_in_order_and_are_claimed_once() {
        let d = dir("claim");
        let spool = AcctDir::open(&d).expect("open");
        let mut own = spool.create(header()).expect("create");
        for (t, s) in [("s-1", true), ("s-1", false), ("s-2", true)] {
            own.append(entry(t, s)).expect("append");
        }
        own.delivered();
        assert_eq!(own.pending(), 2);
        // Its writer holds it: nobody claims it.
        assert!(spool.claim(&[]).is_none());
        let name = own.name().to_owned();
        drop(own);
        // A crash in the middle of a line: the cut line is ignored.
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join(&name))
            .expect("open");
        std::io::Write::write_all(&mut &f, b"R 9 S pts/0 command-start cut").expect("write");
        let mut j = spool.claim(&[]).expect("claimable once the writer is gone");
        assert!(spool.claim(&[]).is_none(), "a claimed journal is held");
        assert_eq!(j.header(), &header());
        let got: Vec<(String, bool)> = j.entries().map(|e| (e.task.clone(), e.start)).collect();
        assert_eq!(got, [("s-1".to_owned(), false), ("s-2".to_owned(), true)]);
        assert_eq!(
            j.front().map(|e| e.attrs.clone()),
            Some(entry("s-1", false).attrs)
        );
        j.delivered();
        drop(j);
        let mut j = spool.claim(&[]).expect("one left");
        assert_eq!(j.pending(), 1);
        j.delivered();
        drop(j);
        assert!(spool.claim(&[]).is_none(), "an empty journal is removed");
        assert!(spool.orphans().is_empty());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_spool_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("mode");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = AcctDir::open(&d).expect_err("0755");
        assert!(e.to_string().contains("mode 0700"), "{e}");
        let _ = std::fs::remove_dir_all(d);
    }
}
