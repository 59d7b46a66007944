//! What the supervisor reads from `/proc` about a process: ids and tracer from `status`, the
//! working directory, and, after an exec, the image and arguments the kernel really loaded.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;

/// The fields of `/proc/PID/status` the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Thread-group id (the process id).
    pub tgid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// Pid of the tracer, 0 when not traced.
    pub tracer: i32,
    /// Real uid.
    pub ruid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
}

/// Parses the text of `/proc/PID/status`.
pub fn parse_status(text: &[u8]) -> Option<Status> {
    let mut s = Status { tgid: -1, ppid: -1, tracer: -1, ruid: u32::MAX, euid: u32::MAX, egid: u32::MAX };
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (key, rest) = (&line[..colon], &line[colon + 1..]);
        let mut nums = rest
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| std::str::from_utf8(w).ok().and_then(|w| w.parse::<i64>().ok()));
        let mut next = || nums.next().flatten();
        match key {
            b"Tgid" => s.tgid = i32::try_from(next()?).ok()?,
            b"PPid" => s.ppid = i32::try_from(next()?).ok()?,
            b"TracerPid" => s.tracer = i32::try_from(next()?).ok()?,
            b"Uid" => {
                s.ruid = u32::try_from(next()?).ok()?;
                s.euid = u32::try_from(next()?).ok()?;
            }
            b"Gid" => {
                next()?;
                s.egid = u32::try_from(next()?).ok()?;
            }
            _ => {}
        }
    }
    (s.tgid >= 0 && s.ppid >= 0 && s.tracer >= 0 && s.euid != u32::MAX && s.egid != u32::MAX)
        .then_some(s)
}

/// Reads `/proc/TID/status` (a thread id works as well as a process id).
///
/// # Errors
/// `ENOENT`/`ESRCH` when the task is gone, `InvalidData` when unparsable.
pub fn status(tid: i32) -> io::Result<Status> {
    // One read: procfs returns the whole file when the buffer holds it.
    let mut buf = [0u8; 8192];
    let n = File::open(format!("/proc/{tid}/status"))?.read(&mut buf)?;
    parse_status(&buf[..n]).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "status"))
}

/// Ids and credentials of a task, from a pidfd when the kernel offers `PIDFD_GET_INFO`
/// (cheaper than formatting `/proc/TID/status`), else from `/proc`. Also returns the pidfd,
/// which pins the task for later calls. `tracer` is not known this way and reads as 0:
/// ptrace attach fails for a traced task, which is how the supervisor finds out.
///
/// # Errors
/// When the task is gone.
pub fn task(tid: i32) -> io::Result<(Status, Option<std::os::fd::OwnedFd>)> {
    use std::os::fd::AsFd;
    let pidfd = crate::sys::pidfd_open(tid, crate::sys::PIDFD_THREAD)
        .or_else(|_| crate::sys::pidfd_open(tid, 0));
    if let Ok(fd) = &pidfd {
        if let Ok(i) = crate::sys::pidfd_info(fd.as_fd()) {
            let s = Status {
                tgid: i.tgid as i32,
                ppid: i.ppid as i32,
                tracer: 0,
                ruid: i.ruid,
                euid: i.euid,
                egid: i.egid,
            };
            return Ok((s, pidfd.ok()));
        }
    }
    Ok((status(tid)?, pidfd.ok()))
}

/// The working directory of a task, as bytes.
///
/// # Errors
/// When the task is gone or its cwd unreachable.
pub fn cwd(tid: i32) -> io::Result<Vec<u8>> {
    Ok(std::fs::read_link(format!("/proc/{tid}/cwd"))?.into_os_string().into_vec())
}

/// The controlling terminal of a process (`/proc/PID/stat` field 7), as a device path:
/// `/dev/pts/N`, `/dev/ttyN`, `/dev/ttySN`, `/dev/console`; `None` when it has none.
///
/// # Errors
/// When the process is gone.
pub fn tty(pid: i32) -> io::Result<Option<String>> {
    // One read: the kernel renders the whole line into a buffer this size in one go.
    let mut stat = [0u8; 2048];
    let n = File::open(format!("/proc/{pid}/stat"))?.read(&mut stat)?;
    let stat = &stat[..n];
    let text = String::from_utf8_lossy(stat);
    // The command name may hold anything: fields resume after the last ')'.
    let rest = text.rfind(')').map_or("", |i| &text[i + 1..]);
    let nr: u64 = rest.split_whitespace().nth(4).and_then(|f| f.parse().ok()).unwrap_or(0);
    Ok(tty_name(nr))
}

/// The device path of terminal number `nr` (the kernel's `new_encode_dev` form).
pub fn tty_name(nr: u64) -> Option<String> {
    if nr == 0 {
        return None;
    }
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    Some(match (major, minor) {
        (136..=143, m) => format!("/dev/pts/{}", (major - 136) * 256 + m),
        (4, m) if m < 64 => format!("/dev/tty{m}"),
        (4, m) => format!("/dev/ttyS{}", m - 64),
        (5, 1) => "/dev/console".into(),
        (5, 0) => "/dev/tty".into(),
        (ma, mi) => format!("#{ma}:{mi}"),
    })
}

/// Device, inode and link count of the executable a process runs.
///
/// # Errors
/// When the process is gone.
pub fn exe_identity(pid: i32) -> io::Result<(u64, u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok((m.dev(), m.ino(), m.nlink()))
}

/// The user namespace a task is in (device and inode of `/proc/TID/ns/user`).
///
/// # Errors
/// When the task is gone.
pub fn user_namespace(tid: i32) -> io::Result<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{tid}/ns/user"))?;
    Ok((m.dev(), m.ino()))
}

/// The path of the executable a process runs, as bytes.
///
/// # Errors
/// When the process is gone.
pub fn exe_path(pid: i32) -> io::Result<Vec<u8>> {
    Ok(std::fs::read_link(format!("/proc/{pid}/exe"))?.into_os_string().into_vec())
}

/// Reads a whole `/proc` file of at most `max` bytes.
///
/// # Errors
/// When the process is gone; `InvalidData` past `max`.
pub fn read_bounded(path: &str, max: usize) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut out = Vec::with_capacity(4096);
    f.take(max as u64 + 1).read_to_end(&mut out)?;
    if out.len() > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "too long"));
    }
    Ok(out)
}

/// Splits the NUL-separated `cmdline`/`environ` text into its entries.
pub fn split_nul(buf: &[u8]) -> Vec<Vec<u8>> {
    let body = buf.strip_suffix(&[0]).unwrap_or(buf);
    if buf.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_this_process_parses() {
        let s = status(std::process::id() as i32).expect("status");
        assert_eq!(s.tgid, std::process::id() as i32);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(s.euid, unsafe { libc::geteuid() });
        assert!(s.ppid > 0);
    }

    #[test]
    fn task_ids_agree_with_proc_status() {
        let me = std::process::id() as i32;
        let (t, pidfd) = task(me).expect("task");
        let s = status(me).expect("status");
        assert_eq!((t.tgid, t.ppid, t.euid, t.egid), (s.tgid, s.ppid, s.euid, s.egid));
        assert!(pidfd.is_some());
    }

    #[test]
    fn status_text_parses_ids_and_tracer() {
        let t = b"Name:\tsh\nTgid:\t42\nPid:\t43\nPPid:\t7\nTracerPid:\t9\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t101\t101\n";
        let s = parse_status(t).expect("parses");
        assert_eq!((s.tgid, s.ppid, s.tracer, s.ruid, s.euid, s.egid), (42, 7, 9, 1000, 0, 101));
        assert_eq!(parse_status(b"Name:\tx\n"), None);
        assert_eq!(parse_status(b"Tgid: x\n"), None);
    }

    #[test]
    fn terminal_numbers_map_to_device_paths() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name((136 << 8) | 3).as_deref(), Some("/dev/pts/3"));
        assert_eq!(tty_name((137 << 8) | 1).as_deref(), Some("/dev/pts/257"));
        assert_eq!(tty_name((4 << 8) | 1).as_deref(), Some("/dev/tty1"));
        assert_eq!(tty_name((4 << 8) | 64).as_deref(), Some("/dev/ttyS0"));
        assert_eq!(tty_name((5 << 8) | 1).as_deref(), Some("/dev/console"));
        // Minor numbers above 255 use the high bits.
        assert_eq!(tty_name((136 << 8) | (0x100 << 12) | 4).as_deref(), Some("/dev/pts/260"));
    }

    #[test]
    fn a_process_on_a_pty_has_that_tty() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let name = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        let slave = std::process::Stdio::from(pty.slave);
        let mut child = std::process::Command::new("/usr/bin/setsid")
            .args(["-c", "sleep", "2"])
            .stdin(slave)
            .spawn()
            .expect("spawn");
        let mut got = None;
        for _ in 0..100 {
            // setsid -c makes the terminal the child's controlling terminal, then execs sleep.
            if let Ok(Some(t)) = tty(child.id() as i32) {
                got = Some(t);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got.as_deref(), name.to_str());
    }

    #[test]
    fn nul_separated_text_splits_into_entries() {
        assert_eq!(split_nul(b"ls\0-l\0"), vec![b"ls".to_vec(), b"-l".to_vec()]);
        assert_eq!(split_nul(b"\0"), vec![Vec::<u8>::new()]);
        assert_eq!(split_nul(b""), Vec::<Vec<u8>>::new());
        assert_eq!(split_nul(b"a\0\0b\0"), vec![b"a".to_vec(), vec![], b"b".to_vec()]);
    }
}
