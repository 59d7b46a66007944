//! TACACS+ accounting of the session and of every command it runs: which records to send, and
//! when.
//!
//! A command's START goes out when its exec has been checked and let run; its STOP when the
//! process ends, with its exit status, read from a pidfd (`PIDFD_INFO_EXIT`, Linux 6.15): the
//! pidfds of running commands sit in an epoll set the loop polls, so nothing is polled per
//! process. A process that execs another program ends the first command (a STOP without a
//! status) and starts the next. The session itself has a START when it begins and a STOP when
//! its last process is gone. The records go to [`super::Client::account`].

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::attrs::Record;
use crate::authz::Started;

/// How long to wait for a process's parent to reap it (which makes its status readable).
const REAP_WAIT: Duration = Duration::from_secs(2);

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
struct Task {
    id: String,
    pidfd: OwnedFd,
    start: u64,
    cmd: Vec<u8>,
    args: Vec<Vec<u8>>,
    port: String,
}

/// A record and the terminal it is about.
pub type Outgoing = (String, Record);

/// The commands being accounted, and the session's own START and STOP.
#[derive(Debug)]
pub struct Tracker {
    epoll: Option<Epoll>,
    running: HashMap<i32, Task>,
    exited: Vec<(Task, Instant)>,
    counter: u64,
    session: String,
    tty: String,
    session_start: u64,
}

impl Tracker {
    /// A tracker for the session whose id (as text) prefixes every task id, on terminal `tty`.
    pub fn new(session: String, tty: String) -> Self {
        Tracker {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok(),
            running: HashMap::new(),
            exited: Vec::new(),
            counter: 0,
            session,
            tty,
            session_start: now_secs(),
        }
    }

    /// The fd the loop polls (readable when an accounted process ended).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.watched().map(|e| e.0.as_fd())
    }

    /// The epoll set, while it watches a command.
    fn watched(&self) -> Option<&Epoll> {
        self.epoll.as_ref().filter(|_| !self.running.is_empty())
    }

    /// Whether ended processes wait for their status (the loop then polls on a timer).
    pub fn waiting(&self) -> bool {
        !self.exited.is_empty()
    }

    /// The session's START.
    pub fn session_start(&self) -> Outgoing {
        (self.tty.clone(), Record::SessionStart { task: format!("{}-0", self.session), start: self.session_start })
    }

    /// A checked exec is running: its START (after a STOP for the command the process ran
    /// before). `false` in the second place when its end cannot be watched.
    pub fn started(&mut self, s: Started) -> (Vec<Outgoing>, bool) {
        let mut out = Vec::new();
        if let Some(prev) = self.running.remove(&s.pid) {
            if let Some(ep) = &self.epoll {
                let _ = ep.delete(&prev.pidfd);
            }
            out.push(stop(prev, None));
        }
        self.counter += 1;
        let task = Task {
            id: format!("{}-{}", self.session, self.counter),
            pidfd: s.pidfd,
            start: now_secs(),
            cmd: s.cmd,
            args: s.args,
            port: s.tty.unwrap_or_default(),
        };
        let watched = self
            .epoll
            .as_ref()
            .is_some_and(|ep| ep.add(&task.pidfd, EpollEvent::new(EpollFlags::EPOLLIN, s.pid as u64)).is_ok());
        let record =
            Record::CommandStart { task: task.id.clone(), start: task.start, cmd: task.cmd.clone(), args: task.args.clone() };
        out.push((task.port.clone(), record));
        self.running.insert(s.pid, task);
        (out, watched)
    }

    /// STOPs of accounted processes that ended and whose status is known, or that waited
    /// long enough.
    pub fn ended(&mut self) -> Vec<Outgoing> {
        let mut events = [EpollEvent::empty(); 64];
        if let Some(ep) = self.epoll.as_ref().filter(|_| !self.running.is_empty()) {
            let n = ep.wait(&mut events, EpollTimeout::ZERO).unwrap_or(0);
            for e in &events[..n] {
                if let Some(t) = self.running.remove(&(e.data() as i32)) {
                    let _ = ep.delete(&t.pidfd);
                    self.exited.push((t, Instant::now() + REAP_WAIT));
                }
            }
        }
        let now = Instant::now();
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for (t, until) in std::mem::take(&mut self.exited) {
            match crate::sys::pidfd_exit_status(t.pidfd.as_fd()) {
                Some(status) => out.push(stop(t, Some(status))),
                None if now >= until => out.push(stop(t, None)),
                None => keep.push((t, until)),
            }
        }
        self.exited = keep;
        out
    }

    /// The session ended: a STOP for every command still accounted, then the session's
    /// (`None` in place of the session's STOP when session accounting is off).
    pub fn session_ended(&mut self, session_stop: bool) -> Vec<Outgoing> {
        let mut out: Vec<Outgoing> = Vec::new();
        let tasks = self.running.drain().map(|(_, t)| t).chain(self.exited.drain(..).map(|(t, _)| t)).collect::<Vec<_>>();
        for t in tasks {
            let status = crate::sys::pidfd_exit_status(t.pidfd.as_fd());
            out.push(stop(t, status));
        }
        if session_stop {
            let record = Record::SessionStop { task: format!("{}-0", self.session), start: self.session_start, stop: now_secs() };
            out.push((self.tty.clone(), record));
        }
        out
    }
}

fn stop(t: Task, status: Option<i32>) -> Outgoing {
    (t.port, Record::CommandStop { task: t.id, start: t.start, stop: now_secs(), cmd: t.cmd, args: t.args, status })
}
