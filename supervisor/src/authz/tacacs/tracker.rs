//! TACACS+ accounting of the session and of every command it runs.
//!
//! A command's START goes out when its exec has been checked and let run; its STOP when the
//! process ends, with its exit status, read from a pidfd (`PIDFD_INFO_EXIT`, Linux 6.15): the
//! pidfds of running commands sit in an epoll set the loop polls, so nothing is polled per
//! process. A process that execs another program ends the first command (a STOP without a
//! status) and starts the next. The session itself has a START when it begins and a STOP when
//! its last process is gone.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use session_wrapper_protocol::session_id_text;

use super::{Pending, Supervisor};
use crate::syslog::Severity;
use crate::tacacs::attrs::Record;

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

/// The commands being accounted.
#[derive(Debug)]
pub(super) struct Tracker {
    epoll: Option<Epoll>,
    running: HashMap<i32, Task>,
    exited: Vec<(Task, Instant)>,
    counter: u64,
    session_start: u64,
}

impl Tracker {
    pub(super) fn new() -> Self {
        Tracker {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok(),
            running: HashMap::new(),
            exited: Vec::new(),
            counter: 0,
            session_start: now_secs(),
        }
    }

    /// The fd the loop polls (readable when an accounted process ended).
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.epoll.as_ref().map(|e| e.0.as_fd())
    }

    /// Whether ended processes wait for their status (the loop then polls on a timer).
    pub(super) fn waiting(&self) -> bool {
        !self.exited.is_empty()
    }
}

impl Supervisor {
    fn accounting_on(&self) -> bool {
        self.tacacs.is_some() && self.config.tacacs.accounting
    }

    fn task_id(&mut self) -> String {
        self.acct.counter += 1;
        format!("{}-{}", session_id_text(self.session.id), self.acct.counter)
    }

    /// Session START.
    pub(super) fn session_started(&mut self) {
        if let (Some(b), true) = (&self.tacacs, self.config.tacacs.session_accounting) {
            let task = format!("{}-0", session_id_text(self.session.id));
            b.account(self.session.tty.as_deref().unwrap_or(""), Record::SessionStart { task, start: self.acct.session_start });
        }
    }

    /// Session STOP, and STOP for every command still accounted.
    pub(super) fn session_ended(&mut self) {
        let running: Vec<i32> = self.acct.running.keys().copied().collect();
        for pid in running {
            if let Some(t) = self.acct.running.remove(&pid) {
                let status = crate::sys::pidfd_exit_status(t.pidfd.as_fd());
                self.send_stop(t, status);
            }
        }
        for (t, _) in std::mem::take(&mut self.acct.exited) {
            let status = crate::sys::pidfd_exit_status(t.pidfd.as_fd());
            self.send_stop(t, status);
        }
        if let (Some(b), true) = (&self.tacacs, self.config.tacacs.session_accounting) {
            let task = format!("{}-0", session_id_text(self.session.id));
            let record = Record::SessionStop { task, start: self.acct.session_start, stop: now_secs() };
            b.account(self.session.tty.as_deref().unwrap_or(""), record);
        }
    }

    fn send_stop(&self, t: Task, status: Option<i32>) {
        if let Some(b) = &self.tacacs {
            let record = Record::CommandStop { task: t.id, start: t.start, stop: now_secs(), cmd: t.cmd, args: t.args, status };
            b.account(&t.port, record);
        }
    }

    /// A pidfd for an exec that is about to be let go, when commands are accounted.
    pub(super) fn accounting_pidfd(&self, pid: i32) -> Option<OwnedFd> {
        if self.accounting_on() {
            crate::sys::pidfd_open(pid, 0).ok()
        } else {
            None
        }
    }

    /// A checked exec is running: START (and STOP for the command the process ran before).
    pub(super) fn command_started(&mut self, pid: i32, pidfd: Option<OwnedFd>, p: &Pending) {
        let Some(pidfd) = pidfd else { return };
        if let Some(prev) = self.acct.running.remove(&pid) {
            if let Some(ep) = &self.acct.epoll {
                let _ = ep.delete(&prev.pidfd);
            }
            self.send_stop(prev, None);
        }
        let id = self.task_id();
        let task = Task {
            id: id.clone(),
            pidfd,
            start: now_secs(),
            cmd: p.cmd.clone(),
            args: p.args.clone(),
            port: p.tty.clone().unwrap_or_default(),
        };
        if let Some(ep) = &self.acct.epoll {
            if ep.add(&task.pidfd, EpollEvent::new(EpollFlags::EPOLLIN, pid as u64)).is_err() {
                self.event(Severity::LOG_WARNING, "event=tacacs-accounting-untracked reason=\"epoll\"");
            }
        }
        if let Some(b) = &self.tacacs {
            let record = Record::CommandStart { task: id, start: task.start, cmd: task.cmd.clone(), args: task.args.clone() };
            b.account(&task.port, record);
        }
        self.acct.running.insert(pid, task);
    }

    /// Accounted processes that ended: wait for their status, then STOP.
    pub(super) fn on_commands_ended(&mut self) {
        let mut events = [EpollEvent::empty(); 64];
        if let Some(ep) = &self.acct.epoll {
            let n = ep.wait(&mut events, EpollTimeout::ZERO).unwrap_or(0);
            for e in &events[..n] {
                let pid = e.data() as i32;
                if let Some(t) = self.acct.running.remove(&pid) {
                    let _ = ep.delete(&t.pidfd);
                    self.acct.exited.push((t, Instant::now() + REAP_WAIT));
                }
            }
        }
        self.check_exited();
    }

    /// STOP for ended processes whose status is known, or that waited long enough.
    pub(super) fn check_exited(&mut self) {
        let now = Instant::now();
        let mut keep = Vec::new();
        for (t, until) in std::mem::take(&mut self.acct.exited) {
            match crate::sys::pidfd_exit_status(t.pidfd.as_fd()) {
                Some(status) => self.send_stop(t, Some(status)),
                None if now >= until => self.send_stop(t, None),
                None => keep.push((t, until)),
            }
        }
        self.acct.exited = keep;
    }
}
