//! Authorization backends: who decides the execs an `authorize` rule sends away, and who is
//! told about the commands that run (accounting).
//!
//! The exec pipeline ([`crate::exec`]) sees only the [`Backend`] trait: it submits an exec
//! with an id, polls the backend's descriptors from the supervisor's loop, and receives
//! [`Answer`]s; it reports each command it lets run. TACACS+ ([`tacacs`]) is the one
//! implementation today; another backend is one more module implementing [`Backend`], chosen
//! in [`prepare`].

pub mod tacacs;

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use session_wrapper_config::Config;

use crate::log::Event;
use crate::login::Session;

/// What a backend said about one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It may run.
    Permit {
        /// The server that answered.
        server: String,
        /// The backend's word for the answer, for the log (`PASS_ADD`).
        status: &'static str,
    },
    /// It may not run; `message` (may be empty) is for the user.
    Deny {
        /// The server that answered.
        server: String,
        /// The backend's word for the answer (`FAIL`).
        status: &'static str,
        /// The server's message.
        message: String,
    },
    /// The answer cannot be followed (a deprecated reply, a mandatory attribute that cannot be
    /// applied to a command): refused, for `reason`.
    Refused {
        /// The server that answered.
        server: String,
        /// The backend's word for the answer.
        status: &'static str,
        /// Why it cannot be followed.
        reason: String,
    },
    /// No server gave a decision.
    NoAnswer {
        /// What happened with each server.
        tried: Vec<String>,
    },
    /// The exec cannot be described to the backend (too long for the protocol).
    Unencodable(String),
}

/// The answer to a submitted exec.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The id it was submitted with.
    pub id: u64,
    /// What the backend said.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// One exec, as a backend is asked about it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The terminal of the process, or empty.
    pub tty: &'a str,
    /// The program, by the path it is invoked through.
    pub cmd: &'a [u8],
    /// Its arguments (`argv[1..]`).
    pub args: &'a [Vec<u8>],
}

/// A command that started (its image checked and let run), for accounting.
#[derive(Debug)]
pub struct Started {
    /// Its process.
    pub pid: i32,
    /// A pidfd taken while it was stopped at its exec (so that its end and status can be read).
    pub pidfd: OwnedFd,
    /// The program, by the path it is invoked through.
    pub cmd: Vec<u8>,
    /// Its arguments.
    pub args: Vec<Vec<u8>>,
    /// Its terminal.
    pub tty: Option<String>,
}

/// What a backend reports when polled.
#[derive(Debug)]
pub enum Report {
    /// An answer to a submitted exec.
    Answer(Answer),
    /// Something to log.
    Log(Event),
}

/// A backend: asynchronous, polled from the supervisor's loop, never blocking it.
pub trait Backend: std::fmt::Debug {
    /// Its name in decision lines (`authz=NAME`).
    fn name(&self) -> &'static str;
    /// Its name for people, in reasons (`no TACACS+ decision: ...`).
    fn label(&self) -> &'static str;
    /// Asks about one exec; the answer comes back from [`Backend::poll`] with `id`.
    fn authorize(&mut self, id: u64, request: Request<'_>);
    /// Whether it wants a pidfd for every command that starts (accounting is on).
    fn accounts(&self) -> bool;
    /// The session started.
    fn session_started(&mut self);
    /// A command started. Returns lines to log.
    fn command_started(&mut self, started: Started) -> Vec<Event>;
    /// The descriptors the loop polls; when one is readable, the loop calls [`Backend::poll`].
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// How soon the loop should poll even when nothing is readable.
    fn timeout(&self) -> Option<Duration>;
    /// Answers that arrived, and lines to log.
    fn poll(&mut self) -> Vec<Report>;
    /// The session ended: its last records get at most `limit` to go out. Returns the lines
    /// to log.
    fn finish(self: Box<Self>, limit: Duration) -> Vec<Event>;
}

/// Why a backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// TACACS+.
    #[error("TACACS+: {0}")]
    Tacacs(#[from] tacacs::SetupError),
}

/// The backend a configuration asks for, if any, made ready without a thread: what can be
/// wrong with it (a key or TLS file) is found here, before the session goes on; its threads
/// start with [`Pending::start`], once the supervisor has confined itself.
///
/// # Errors
/// [`SetupError`] when it cannot be used (a key or TLS file).
pub fn prepare(config: &Config, session: &Session) -> Result<Option<Pending>, SetupError> {
    if config.tacacs.servers.is_empty() {
        return Ok(None);
    }
    Ok(Some(Pending(tacacs::TacacsBackend::prepare(&config.tacacs, session)?)))
}

/// A backend made ready by [`prepare`].
#[derive(Debug)]
pub struct Pending(tacacs::Pending);

impl Pending {
    /// Starts it for `config` (the one it was prepared for); `spool` is where it may keep what
    /// must outlive the supervisor (accounting records), opened before the supervisor confined
    /// itself.
    ///
    /// # Errors
    /// [`SetupError`] when its threads cannot start.
    pub fn start(self, config: &Config, spool: Option<tacacs::journal::AcctDir>) -> Result<Box<dyn Backend>, SetupError> {
        Ok(Box::new(self.0.start(&config.tacacs, spool)?))
    }
}
