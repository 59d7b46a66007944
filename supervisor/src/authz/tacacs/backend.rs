//! TACACS+ behind [`crate::authz::Backend`]: the [`Client`] (authorization and the accounting
//! queue, in worker threads) and the [`Tracker`] of commands that run.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use session_wrapper_config::Tacacs;
use session_wrapper_protocol::session_id_text;

use super::tracker::{Outgoing, Tracker};
use super::attrs::{self, Attr, Common};
use super::journal::AcctDir;
use super::{Client, Done, Event, Outcome as Reply, SetupError, Spool};
use crate::authz::{Answer, Backend, Outcome, Report, Request, Started};
use crate::log::{Event as LogEvent, Kind, Severity};
use crate::login::Session;

/// The TACACS+ backend of one session.
#[derive(Debug)]
pub struct TacacsBackend {
    client: Client,
    tracker: Tracker,
    common: Common,
    accounting: bool,
    session_accounting: bool,
    /// Lines from the start, logged on the first poll.
    early: Vec<LogEvent>,
}

/// The client of a session, its keys and TLS files read, its threads not started yet
/// ([`Pending::start`]).
#[derive(Debug)]
pub struct Pending {
    client: super::Prepared,
    session: String,
    tty: String,
}

impl TacacsBackend {
    /// Reads what the client for `t` needs, authorizing as the session's user from its
    /// client address.
    ///
    /// # Errors
    /// [`SetupError`] when keys or TLS files cannot be used.
    pub fn prepare(t: &Tacacs, session: &Session) -> Result<Pending, SetupError> {
        let rhost = session.rhost.as_deref().unwrap_or("");
        Ok(Pending {
            client: Client::prepare(t, &session.user.name, rhost)?,
            session: session_id_text(session.id),
            tty: session.tty.clone().unwrap_or_default(),
        })
    }
}

impl Pending {
    /// Starts the client for `t` (as prepared), keeping accounting records in a journal in
    /// `dir` until a server takes them.
    ///
    /// # Errors
    /// [`SetupError`] when threads cannot start.
    pub fn start(self, t: &Tacacs, dir: Option<AcctDir>) -> Result<TacacsBackend, SetupError> {
        let Pending { client, session, tty } = self;
        let (client, early) = client.start(t, Spool { dir, session: session.clone() })?;
        Ok(TacacsBackend {
            client,
            early,
            tracker: Tracker::new(session, tty),
            common: Common { service: t.service.clone(), protocol: t.protocol.clone() },
            accounting: t.accounting,
            session_accounting: t.session_accounting,
        })
    }
}

impl TacacsBackend {
    fn send(&self, records: Vec<Outgoing>) {
        for (port, record) in records {
            self.client.account(&port, &record);
        }
    }

    /// The backend's outcome for what the server replied.
    fn outcome(done: Done) -> Outcome {
        match done.outcome {
            Reply::Permit { server, replace, args } => {
                let status = if replace { "PASS_REPL" } else { "PASS_ADD" };
                match unapplicable(&done.sent, &args) {
                    None => Outcome::Permit { server, status },
                    Some(attr) => Outcome::Refused {
                        server,
                        status,
                        reason: format!("the server returned mandatory attribute {attr}, which cannot be applied to a command"),
                    },
                }
            }
            Reply::Deny { server, message } => Outcome::Deny { server, status: "FAIL", message },
            Reply::Follow { server } => Outcome::Refused {
                server,
                status: "FOLLOW",
                reason: "the server answered FOLLOW, which RFC 8907 deprecates and this client refuses".into(),
            },
            Reply::NoAnswer { tried } => Outcome::NoAnswer { tried },
            Reply::Unencodable(why) => Outcome::Unencodable(why),
        }
    }
}

impl Backend for TacacsBackend {
    fn name(&self) -> &'static str {
        "tacacs"
    }

    fn label(&self) -> &'static str {
        "TACACS+"
    }

    fn authorize(&mut self, id: u64, r: Request<'_>) {
        self.client.authorize(id, r.tty, attrs::authorization(&self.common, r.cmd, r.args));
    }

    fn accounts(&self) -> bool {
        self.accounting
    }

    fn session_started(&mut self) {
        if self.session_accounting {
            self.send(vec![self.tracker.session_start()]);
        }
    }

    fn command_started(&mut self, started: Started) -> Vec<LogEvent> {
        let (records, watched) = self.tracker.started(started);
        self.send(records);
        if watched {
            Vec::new()
        } else {
            vec![LogEvent::new(Severity::Warning, Kind::TacacsAccountingUntracked).text("reason", "epoll")]
        }
    }

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.client.wake_fd()];
        fds.extend(self.client.inline_fd());
        fds.extend(self.tracker.fd());
        fds
    }

    fn timeout(&self) -> Option<Duration> {
        let tracker = self.tracker.waiting().then_some(Duration::from_millis(100));
        match (tracker, self.client.inline_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll(&mut self) -> Vec<Report> {
        let ended = self.tracker.ended();
        self.send(ended);
        let mut out: Vec<Report> = self.early.drain(..).map(Report::Log).collect();
        for e in self.client.events() {
            match e {
                Event::Done(done) => {
                    let (id, elapsed) = (done.id, done.elapsed);
                    let outcome = Self::outcome(done);
                    out.push(Report::Answer(Answer { id, outcome, elapsed }));
                }
                Event::Log(line) => out.push(Report::Log(line)),
            }
        }
        out
    }

    fn finish(mut self: Box<Self>, limit: Duration) -> Vec<LogEvent> {
        let last = self.tracker.session_ended(self.session_accounting);
        self.send(last);
        self.client
            .finish(limit)
            .into_iter()
            .filter_map(|e| match e {
                Event::Log(line) => Some(line),
                Event::Done(_) => None,
            })
            .collect()
    }
}

/// Which reply attributes of a permit cannot be applied: every mandatory attribute must be
/// one the request carried, unchanged; a command cannot be changed after the fact.
pub fn unapplicable(sent: &[Attr], reply: &[Attr]) -> Option<String> {
    reply
        .iter()
        .find(|r| r.mandatory && !sent.iter().any(|s| s.name == r.name && s.value == r.value))
        .map(|r| format!("{}={}", r.name, r.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mandatory_reply_attributes_must_match_the_request() {
        let sent = vec![Attr::new("service", "shell"), Attr::new("cmd", "/usr/bin/ls")];
        assert_eq!(unapplicable(&sent, &[Attr::new("service", "shell")]), None);
        let opt = Attr { name: "idletime".into(), value: "5".into(), mandatory: false };
        assert_eq!(unapplicable(&sent, &[opt]), None);
        assert_eq!(unapplicable(&sent, &[Attr::new("priv-lvl", "15")]).as_deref(), Some("priv-lvl=15"));
        assert_eq!(unapplicable(&sent, &[Attr::new("cmd", "/usr/bin/rm")]).as_deref(), Some("cmd=/usr/bin/rm"));
    }
}
