//! The TACACS+ backend of a supervisor: per-command authorization and accounting (RFC 8907,
//! RFC 9887 for TLS).
//!
//! The supervisor's loop never waits on the network. An `authorize` decision becomes a job for
//! a small pool of worker threads; the exec waits in its seccomp notification while other execs
//! are answered; the outcome comes back through a channel and an eventfd the loop polls. Once a
//! worker holds a connection on which the server agreed to single-connect, it leaves it to the
//! loop, which then sends the next request itself without blocking ([`inline`]): no thread
//! hand-off on the way there or back.
//!
//! Each worker keeps one connection per server and reuses it where the server agreed to
//! single-connect. Servers are tried in order. A server that fails (no connection, no answer in
//! its timeout, an undecodable reply) is marked dead and skipped for `dead-server-retry-s`, so
//! later execs do not wait for it; the total time one exec waits, all servers together, is
//! bounded by `[tacacs] timeout-ms`. An `ERROR` reply tries the next server.
//!
//! Accounting never slows an exec: [`tracker`] follows which commands run and when they end;
//! each record is appended to the session's [`journal`] on disk (the accounting spool) and
//! sent, in order, by the thread of [`accounting`], which also delivers the journals of
//! sessions whose supervisor is gone. Only the `accounting-queue` bound drops a record.
//! [`TacacsBackend`] puts the client and the tracker behind [`crate::authz::Backend`].

pub mod accounting;
pub mod attrs;
mod backend;
pub mod client;
mod inline;
pub mod journal;
pub mod tracker;

pub use backend::{Pending, TacacsBackend};

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use session_wrapper_config::Tacacs;
use tacacs_plus_protocol::authorization;

use crate::log::{Event as LogEvent, Kind, Severity};
use crate::sys::EventFd;
use accounting::{AcctQueue, Backlog};
use attrs::{Attr, Common, Record};
use journal::{AcctDir, Entry, Header};
use client::{ClientError, Connection, Endpoint, Who};

/// Worker threads for authorizations (and so connections per server).
const WORKERS: usize = 4;

/// What became of an authorization.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// PASS_ADD or PASS_REPL.
    Permit {
        /// The server that answered.
        server: String,
        /// PASS_REPL rather than PASS_ADD.
        replace: bool,
        /// Reply attributes.
        args: Vec<Attr>,
    },
    /// FAIL, with the server's message for the user.
    Deny {
        /// The server that answered.
        server: String,
        /// Its message.
        message: String,
    },
    /// FOLLOW (deprecated by RFC 8907): refused.
    Follow {
        /// The server that answered.
        server: String,
    },
    /// No server gave a decision: unreachable, timed out, bad replies, or ERROR.
    NoAnswer {
        /// What happened with each server.
        tried: Vec<String>,
    },
    /// The command cannot be described to a server (too long for the protocol).
    Unencodable(String),
}

/// A finished authorization.
#[derive(Debug, Clone)]
pub struct Done {
    /// The id given with the job.
    pub id: u64,
    /// The outcome.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
    /// The attributes the request carried (a permit's mandatory ones must be among them).
    pub sent: Vec<Attr>,
}

/// What the client reports to the supervisor's loop.
#[derive(Debug, Clone)]
pub enum Event {
    /// An authorization finished.
    Done(Done),
    /// A line to log.
    Log(LogEvent),
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A key file is missing, unreadable or not root-only.
    #[error("{0}")]
    Key(String),
    /// A TLS file cannot be used.
    #[error("{0}")]
    Tls(String),
    /// The eventfd or a thread.
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
}

/// Reads a secret file, which must be root-only when the reader is root.
///
/// # Errors
/// [`SetupError::Key`] naming the file and the problem.
pub fn read_key(path: &str) -> Result<Vec<u8>, SetupError> {
    let meta = std::fs::metadata(path).map_err(|e| SetupError::Key(format!("key file {path}: {e}")))?;
    if crate::run_as_root() && (meta.uid() != 0 || meta.mode() & 0o077 != 0) {
        return Err(SetupError::Key(format!(
            "key file {path} must be owned by root and readable by no one else (mode 0600 or 0400), not {:o} owned by uid {}",
            meta.mode() & 0o777,
            meta.uid()
        )));
    }
    let mut key = std::fs::read(path).map_err(|e| SetupError::Key(format!("key file {path}: {e}")))?;
    while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
        key.pop();
    }
    if key.is_empty() {
        return Err(SetupError::Key(format!("key file {path} is empty")));
    }
    Ok(key)
}

/// The endpoints of a `[tacacs]` table, with their keys and TLS configurations, in order.
///
/// # Errors
/// [`SetupError`] when a key or TLS file cannot be used.
pub fn endpoints(t: &Tacacs) -> Result<Vec<(Endpoint, Duration)>, SetupError> {
    let shared = t.key_file.as_deref().map(read_key).transpose();
    let mut out = Vec::with_capacity(t.servers.len());
    for s in &t.servers {
        let (key, tls) = match &s.tls {
            Some(tl) => {
                let client = tl.client_cert.as_deref().zip(tl.client_key.as_deref());
                if let Some((_, key)) = client {
                    read_key(key)?;
                }
                let cfg = client::tls_config(&tl.ca_file, client).map_err(SetupError::Tls)?;
                let name = tl.server_name.clone().unwrap_or_else(|| s.host.clone());
                let name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|_| SetupError::Tls(format!("{name:?} is not a valid TLS server name")))?;
                (None, Some((cfg, name)))
            }
            None => {
                let key = match &s.key_file {
                    Some(k) => read_key(k)?,
                    None => match &shared {
                        Ok(Some(k)) => k.clone(),
                        Ok(None) => return Err(SetupError::Key(format!("no key for {}", s.name()))),
                        Err(e) => return Err(SetupError::Key(e.to_string())),
                    },
                };
                (Some(key), None)
            }
        };
        out.push((Endpoint { name: s.name(), host: s.host.clone(), port: s.port, key, tls }, s.timeout));
    }
    Ok(out)
}

/// One authorization to make.
#[derive(Debug)]
struct Authorize {
    id: u64,
    port: String,
    /// The request's attributes, or why the command cannot be described to a server.
    attrs: Result<Vec<Attr>, attrs::TooLong>,
    /// When it was asked for.
    t0: Instant,
    /// By when every server together must have answered.
    deadline: Instant,
    /// A server the loop already tried ([`inline`]), and what became of it.
    already: Option<Tried>,
}

impl Authorize {
    /// Its answer, with `outcome`.
    fn done(self, outcome: Outcome) -> Done {
        Done { id: self.id, outcome, elapsed: self.t0.elapsed(), sent: self.attrs.unwrap_or_default() }
    }
}

/// What the loop's own exchange ([`inline`]) leaves the workers to know about its server.
#[derive(Debug)]
enum Tried {
    /// It was asked and passed over (`ERROR`, silence); the line for the outcome's `tried`.
    PassedOver(usize, String),
    /// Its reused connection failed with `error`: it gets one new connection, within what
    /// is left of its time, as a worker's own reused connection does.
    Retry { server: usize, until: Instant, error: String },
}

enum Job {
    Authorize(Authorize),
    Stop,
}

struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    ready: Condvar,
}

impl<T> Queue<T> {
    fn new() -> Self {
        Queue { items: Mutex::new(VecDeque::new()), ready: Condvar::new() }
    }
    fn push(&self, t: T) {
        self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_back(t);
        self.ready.notify_one();
    }
    fn pop(&self) -> T {
        let mut g = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(t) = g.pop_front() {
                return t;
            }
            g = self.ready.wait(g).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// State shared by the workers.
struct Shared {
    endpoints: Vec<(Endpoint, Duration)>,
    common: Common,
    who: Who,
    single_connect: bool,
    dead_retry: Duration,
    dead_until: Mutex<Vec<Option<Instant>>>,
    /// When each server marked down was first found down.
    down_since: Mutex<Vec<Option<SystemTime>>>,
    events: mpsc::Sender<Event>,
    wake: EventFd,
    /// A worker's single-connect connection, left for the loop ([`inline`]).
    parked: Mutex<Option<(usize, Connection)>>,
}

impl Shared {
    fn notify(&self, e: Event) {
        if self.events.send(e).is_ok() {
            self.wake.raise();
        }
    }

    /// The state shared by the workers of a client for `t`, authorizing as `user` from
    /// `rem_addr`, and the receiving end of what they report.
    fn new(t: &Tacacs, user: &str, rem_addr: &str) -> Result<(Self, mpsc::Receiver<Event>), SetupError> {
        let endpoints = endpoints(t)?;
        let wake = EventFd::new().map_err(|e| SetupError::Sys("eventfd", e))?;
        let (tx, rx) = mpsc::channel();
        let n = endpoints.len();
        let shared = Shared {
            endpoints,
            common: Common { service: t.service.clone(), protocol: t.protocol.clone() },
            who: Who {
                user: attrs::ascii(user.as_bytes()),
                port: String::new(),
                rem_addr: attrs::ascii(rem_addr.as_bytes()),
                priv_lvl: t.priv_lvl,
            },
            single_connect: t.single_connect,
            dead_retry: t.dead_retry,
            dead_until: Mutex::new(vec![None; n]),
            down_since: Mutex::new(vec![None; n]),
            events: tx,
            wake,
            parked: Mutex::new(None),
        };
        Ok((shared, rx))
    }

    fn is_dead(&self, i: usize, now: Instant) -> bool {
        self.down_since(i, now).is_some()
    }

    /// The server a request goes to first: the first one not marked down.
    fn first_live(&self, now: Instant) -> Option<usize> {
        (0..self.endpoints.len()).find(|&i| !self.is_dead(i, now))
    }

    /// The request fields for a command from terminal `port`.
    fn who_at(&self, port: &str) -> Who {
        Who { port: attrs::ascii(port.as_bytes()), ..self.who.clone() }
    }

    /// Leaves server `i`'s connection in `conns` for the loop, if it is single-connect and the
    /// loop has none waiting.
    fn park(&self, conns: &mut [Option<Connection>], i: usize) {
        let mut slot = self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            if let Some(c) = conns[i].take() {
                *slot = Some((i, c));
            }
        }
    }

    /// The connection a worker left, if it is to server `i`. One to another server is
    /// dropped, so that the slot is free for the next worker's connection to `i`.
    fn unpark(&self, i: usize) -> Option<Connection> {
        let mut slot = self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.take().filter(|(k, _)| *k == i).map(|(_, c)| c)
    }

    /// Since when server `i` is down, if it is marked down (and not yet due for a retry).
    fn down_since(&self, i: usize, now: Instant) -> Option<SystemTime> {
        let g = self.dead_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.get(i).copied().flatten().is_none_or(|t| t <= now) {
            return None;
        }
        drop(g);
        let since = self.down_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(since.get(i).copied().flatten().unwrap_or_else(SystemTime::now))
    }

    fn mark(&self, i: usize, dead: bool, why: &str) {
        let mut g = self.dead_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_dead = g[i].is_some();
        g[i] = dead.then(|| Instant::now() + self.dead_retry);
        drop(g);
        {
            let mut since = self.down_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !dead {
                since[i] = None;
            } else if since[i].is_none() {
                since[i] = Some(SystemTime::now());
            }
        }
        let name = &self.endpoints[i].0.name;
        if dead && !was_dead {
            self.notify(Event::Log(
                LogEvent::new(Severity::Warning, Kind::TacacsServerDown)
                    .escaped("server", name.as_bytes())
                    .text("error", why.replace('"', "'"))
                    .bare("retry_in_s", self.dead_retry.as_secs()),
            ));
        } else if !dead && was_dead {
            self.notify(Event::Log(LogEvent::new(Severity::Notice, Kind::TacacsServerUp).escaped("server", name.as_bytes())));
        }
    }

    /// Runs `f` on server `i`'s connection (reused, or new), within `deadline`. A reused
    /// connection that fails is replaced once: the server may have closed it while idle.
    fn with_connection<T>(
        &self,
        conns: &mut [Option<Connection>],
        i: usize,
        deadline: Instant,
        f: &dyn Fn(&mut Connection, &Endpoint, bool) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let ep = &self.endpoints[i].0;
        let reused = conns[i].is_some();
        let mut conn = match conns[i].take() {
            Some(c) => c,
            None => client::connect(ep, deadline)?,
        };
        let r = match f(&mut conn, ep, self.single_connect) {
            // A TLS server's close of an idle connection is a TLS error (no close_notify).
            Err(e) if e.broke() && reused && Instant::now() < deadline => {
                conn = client::connect(ep, deadline)?;
                f(&mut conn, ep, self.single_connect)
            }
            other => other,
        };
        if r.is_ok() && conn.single {
            conns[i] = Some(conn);
        }
        r
    }

    fn authorize(&self, conns: &mut [Option<Connection>], job: &Authorize) -> Outcome {
        let attrs = match &job.attrs {
            Ok(a) => a,
            Err(e) => return Outcome::Unencodable(e.to_string()),
        };
        let who = self.who_at(&job.port);
        let deadline = job.deadline;
        let mut tried = Vec::new();
        for (i, (ep, timeout)) in self.endpoints.iter().enumerate() {
            let mut left = None;
            match &job.already {
                Some(Tried::PassedOver(k, why)) if *k == i => {
                    tried.push(why.clone());
                    continue;
                }
                Some(Tried::Retry { server, until, error }) if *server == i => {
                    if *until <= Instant::now() {
                        // No time left for a new connection: the failure stands.
                        self.mark(i, true, error);
                        tried.push(format!("{}: {error}", ep.name));
                        continue;
                    }
                    left = Some(*until);
                }
                _ => {}
            }
            let now = Instant::now();
            if self.is_dead(i, now) {
                let since = self.down_since(i, now).map_or_else(String::new, |t| format!(" since {}", accounting::utc(t)));
                tried.push(format!("{}: skipped: server down{since}", ep.name));
                continue;
            }
            let until = left.unwrap_or_else(|| (now + *timeout).min(deadline));
            if until <= now {
                tried.push(format!("{}: no time left", ep.name));
                break;
            }
            let r = self.with_connection(conns, i, until, &|c, ep, single| c.authorize(ep, single, &who, attrs, until));
            if r.is_ok() {
                self.park(conns, i);
            } else {
                conns[i] = None;
            }
            if let Some(outcome) = self.answered(i, r, &mut tried) {
                return outcome;
            }
        }
        Outcome::NoAnswer { tried }
    }

    /// What server `i`'s reply (or failure) decides: the outcome, or `None` with a line in
    /// `tried` when the next server is to be asked (an `ERROR` reply; a failure, for which
    /// the server is marked down).
    fn answered(&self, i: usize, r: Result<client::AuthzReply, ClientError>, tried: &mut Vec<String>) -> Option<Outcome> {
        let server = &self.endpoints[i].0.name;
        let reply = match r {
            Ok(reply) => reply,
            Err(e) => {
                self.mark(i, true, &e.to_string());
                tried.push(format!("{server}: {e}"));
                return None;
            }
        };
        self.mark(i, false, "");
        let server = server.clone();
        match reply.status {
            authorization::Status::PassAdd | authorization::Status::PassReplace => Some(Outcome::Permit {
                server,
                replace: reply.status == authorization::Status::PassReplace,
                args: reply.args,
            }),
            authorization::Status::Fail => Some(Outcome::Deny { server, message: reply.server_msg }),
            #[allow(deprecated)]
            authorization::Status::Follow => Some(Outcome::Follow { server }),
            authorization::Status::Error => {
                tried.push(format!("{server}: ERROR {}", reply.data.replace('"', "'")));
                None
            }
        }
    }
}

/// The TACACS+ client of one session: its worker threads and its accounting.
pub struct Client {
    jobs: Arc<Queue<Job>>,
    /// The exchange the loop makes itself.
    inline: inline::Inline,
    events: mpsc::Receiver<Event>,
    shared: Arc<Shared>,
    acct: Arc<AcctQueue>,
    dir: Option<Arc<AcctDir>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    acct_worker: Option<std::thread::JoinHandle<()>>,
    total_timeout: Duration,
    capacity: usize,
    /// When the last line about dropped records was logged.
    dropped_at: std::cell::Cell<Option<Instant>>,
}

/// Records the bound dropped are reported together, at most one line this often (and at the
/// end of the session).
pub const DROPPED_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("servers", &self.shared.endpoints.len()).finish()
    }
}

/// Where a session keeps its accounting records until a server takes them.
#[derive(Debug)]
pub struct Spool {
    /// The accounting spool directory (`None`: records are kept in memory only).
    pub dir: Option<AcctDir>,
    /// The session id, as text (names the journal).
    pub session: String,
}

/// A client whose servers, keys and TLS files are read, its threads not started yet
/// ([`Prepared::start`]): a supervisor refuses the session when this fails, and starts the
/// threads once it has confined itself.
pub struct Prepared {
    shared: Shared,
    rx: mpsc::Receiver<Event>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("servers", &self.shared.endpoints.len()).finish_non_exhaustive()
    }
}

impl Client {
    /// Reads what the client for `t` needs, authorizing as `user` from `rem_addr`.
    ///
    /// # Errors
    /// [`SetupError`] when keys or TLS files cannot be used.
    pub fn prepare(t: &Tacacs, user: &str, rem_addr: &str) -> Result<Prepared, SetupError> {
        let (shared, rx) = Shared::new(t, user, rem_addr)?;
        Ok(Prepared { shared, rx })
    }
}

impl Prepared {
    /// Starts the workers for `t` (as prepared), and the delivery of accounting records
    /// through a journal in `spool`. Returns the client and lines to log (a journal that
    /// could not be made).
    ///
    /// # Errors
    /// [`SetupError`] when threads cannot start.
    pub fn start(self, t: &Tacacs, spool: Spool) -> Result<(Client, Vec<LogEvent>), SetupError> {
        let Prepared { shared, rx } = self;
        let shared = Arc::new(shared);
        let jobs = Arc::new(Queue::new());
        let mut workers = Vec::new();
        for k in 0..WORKERS {
            let (jobs, shared) = (Arc::clone(&jobs), Arc::clone(&shared));
            let h = std::thread::Builder::new()
                .name(format!("sw-tacacs-{k}"))
                .spawn(move || {
                    let mut conns: Vec<Option<Connection>> = (0..shared.endpoints.len()).map(|_| None).collect();
                    loop {
                        match jobs.pop() {
                            Job::Stop => break,
                            Job::Authorize(job) => {
                                let outcome = shared.authorize(&mut conns, &job);
                                shared.notify(Event::Done(job.done(outcome)));
                            }
                        }
                    }
                })
                .map_err(|e| SetupError::Sys("thread", e))?;
            workers.push(h);
        }
        let mut lines = Vec::new();
        let dir = spool.dir.map(Arc::new);
        let journal = dir.as_deref().and_then(|d| {
            if d.bytes() >= journal::DIR_MAX {
                lines.push(spool_error(d, "the accounting spool is full: records are kept in memory only"));
                return None;
            }
            let header =
                Header { session: spool.session.clone(), user: shared.who.user.clone(), rem_addr: shared.who.rem_addr.clone(), priv_lvl: t.priv_lvl };
            d.create(header).map_err(|e| lines.push(spool_error(d, &e.to_string()))).ok()
        });
        let own = journal.as_ref().map(|j| j.name().to_owned());
        let sync = journal.as_ref().and_then(|j| j.sync_handle().ok());
        let acct = Arc::new(AcctQueue { backlog: Mutex::new(Backlog::new(journal, t.accounting_queue)), ready: Condvar::new() });
        let acct_worker = if t.accounting || t.session_accounting {
            let (acct, shared, dir) = (Arc::clone(&acct), Arc::clone(&shared), dir.clone());
            Some(
                std::thread::Builder::new()
                    .name("sw-tacacs-acct".into())
                    .spawn(move || accounting::account_loop(&acct, &shared, dir.as_deref(), own.as_deref(), sync))
                    .map_err(|e| SetupError::Sys("thread", e))?,
            )
        } else {
            None
        };
        let client = Client {
            jobs,
            inline: inline::Inline::default(),
            events: rx,
            shared,
            acct,
            dir,
            workers,
            acct_worker,
            total_timeout: t.timeout,
            capacity: t.accounting_queue,
            dropped_at: std::cell::Cell::new(None),
        };
        if !lines.is_empty() {
            client.shared.wake.raise();
        }
        Ok((client, lines))
    }
}

impl Client {
    /// Asks for a decision on the command `attrs` describe ([`attrs::authorization`]) from
    /// terminal `port`; the answer comes as [`Event::Done`] with `id`.
    pub fn authorize(&mut self, id: u64, port: &str, attrs: Result<Vec<Attr>, attrs::TooLong>) {
        let t0 = Instant::now();
        let job = Authorize {
            id,
            port: port.to_owned(),
            attrs,
            t0,
            deadline: t0 + self.total_timeout,
            already: None,
        };
        if let Some(job) = self.inline.start(&self.shared, job) {
            self.jobs.push(Job::Authorize(job));
        }
    }

    /// The socket of the loop's own exchange, while one is in flight: the loop polls it.
    pub fn inline_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inline.fd()
    }

    /// How soon the loop must look at its own exchange even when nothing arrives (its
    /// server's time runs out), rounded up to a millisecond.
    pub fn inline_due(&self) -> Option<Duration> {
        self.inline.due().map(|t| {
            let left = t.saturating_duration_since(Instant::now());
            Duration::from_millis(u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX))
        })
    }

    /// Keeps an accounting record (in the journal: the kernel has it when this returns) for
    /// the delivery thread; drops it, and remembers its task, when `accounting-queue` records
    /// are already pending.
    pub fn account(&self, port: &str, record: &Record) {
        let attrs = attrs::accounting(&self.shared.common, record);
        let entry = Entry {
            seq: 0,
            start: record.is_start(),
            port: port.to_owned(),
            kind: record.kind().to_owned(),
            task: record.task().to_owned(),
            attrs,
        };
        let mut g = self.acct.lock();
        g.push(entry);
        let dropped = !g.dropped.is_empty();
        drop(g);
        self.acct.ready.notify_one();
        if dropped {
            // Reported on the loop's next look.
            self.shared.wake.raise();
        }
    }

    /// The fd the loop polls: readable when events wait.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.shared.wake.as_fd()
    }

    /// The events that have arrived (and a line for records the bound dropped, at most one
    /// every [`DROPPED_EVERY`]: a long outage does not flood the log).
    pub fn events(&mut self) -> Vec<Event> {
        let own = match self.inline.poll(&self.shared, Instant::now()) {
            Some(inline::Ended::Answered(done)) => Some(Event::Done(done)),
            Some(inline::Ended::ToWorkers(job)) => {
                self.jobs.push(Job::Authorize(job));
                None
            }
            None => None,
        };
        self.shared.wake.clear();
        // Lines the exchange caused (a server marked down or up) come before its answer.
        let mut out: Vec<Event> = self.events.try_iter().collect();
        out.extend(own);
        if self.dropped_at.get().is_none_or(|t| t.elapsed() >= DROPPED_EVERY) {
            if let Some(line) = self.dropped_line() {
                self.dropped_at.set(Some(Instant::now()));
                out.push(Event::Log(line));
            }
        }
        out
    }

    fn dropped_line(&self) -> Option<LogEvent> {
        let tasks = std::mem::take(&mut self.acct.lock().dropped);
        (!tasks.is_empty()).then(|| {
            LogEvent::new(Severity::Warning, Kind::TacacsAccountingDropped)
                .bare("records", tasks.len())
                .text("tasks", accounting::task_list(&tasks))
                .text("reason", format!("accounting-queue: {} records already wait for a server", self.capacity))
        })
    }

    /// Ends the backend: authorizations in flight are abandoned; accounting records still
    /// pending get until `limit` to go out (in order, without backoff, until one is not
    /// taken); what is left stays in the journal for a later supervisor or
    /// `session-wrapper deliver-accounting`. Returns the lines to log.
    pub fn finish(mut self, limit: Duration) -> Vec<Event> {
        for _ in &self.workers {
            self.jobs.push(Job::Stop);
        }
        self.acct.lock().stopping = true;
        self.acct.ready.notify_all();
        let deadline = Instant::now() + limit;
        if let Some(h) = self.acct_worker.take() {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut out: Vec<Event> = self.events.try_iter().collect();
        out.extend(self.dropped_line().map(Event::Log));
        let mut g = self.acct.lock();
        let tasks = g.tasks();
        let on_disk = g.on_disk();
        let journal = g.take_journal();
        drop(g);
        if tasks.is_empty() {
            if let (Some(dir), Some(j)) = (&self.dir, journal) {
                dir.remove(j);
            }
            return out;
        }
        // Why the first record left did not go.
        let now = Instant::now();
        let why: Vec<String> = self
            .shared
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, (ep, _))| match self.shared.down_since(i, now) {
                Some(t) => format!("{}: skipped: server down since {}", ep.name, accounting::utc(t)),
                None => format!("{}: did not take it in time", ep.name),
            })
            .collect();
        let line = if on_disk {
            let name = journal.as_ref().map(|j| j.name().to_owned()).unwrap_or_default();
            let dir = self.dir.as_ref().map(|d| d.path().join(&name).display().to_string()).unwrap_or_default();
            LogEvent::new(Severity::Warning, Kind::TacacsAccountingSpooled)
                .bare("records", tasks.len())
                .text("tasks", accounting::task_list(&tasks))
                .quoted("journal", dir.as_bytes())
                .text("error", why.join("; "))
        } else {
            LogEvent::new(Severity::Error, Kind::TacacsAccountingDropped)
                .bare("records", tasks.len())
                .text("tasks", accounting::task_list(&tasks))
                .text("reason", format!("no accounting spool to keep them in; {}", why.join("; ")))
        };
        out.push(Event::Log(line));
        // The journal stays, unlocked when this process ends.
        drop(journal);
        out
    }
}

fn spool_error(d: &AcctDir, why: &str) -> LogEvent {
    LogEvent::new(Severity::Warning, Kind::SpoolError).quoted("dir", d.path().as_os_str().as_encoded_bytes()).text("error", why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_must_be_root_only() {
        if !crate::run_as_root() {
            eprintln!("skipped: the ownership check applies to root");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("sw-key-{}", std::process::id()));
        std::fs::write(&p, "secret\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = read_key(p.to_str().expect("utf8")).expect_err("world-readable");
        assert!(e.to_string().contains("readable by no one else"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_key(p.to_str().expect("utf8")).expect("ok"), b"secret");
        let _ = std::fs::remove_file(p);
    }
}
