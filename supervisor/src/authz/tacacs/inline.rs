//! The authorization the supervisor's loop exchanges itself, without a worker.
//!
//! Through a worker, an exec's authorization waits for two thread hand-offs besides the
//! server: the job to the worker, the answer back through the eventfd, each the wake-up of a
//! sleeping thread (docs/BENCHMARKS.md measures them). So a worker that holds a connection on
//! which the server agreed to single-connect leaves it for the loop (`Shared::park`), and the
//! loop sends the next request on it itself, without blocking, and reads the reply when `poll`
//! says it has come.
//!
//! One request at a time, to the server the workers would ask first. Everything that would
//! make the loop wait stays with the workers: a connection to make, a TLS handshake, an exec
//! that comes while a request is in flight, the next server. When the loop's exchange fails,
//! its job goes to the workers: a connection that broke or answered garbage (a server closes
//! idle connections) is replaced there once, within what is left of the server's time, as a
//! worker's reused one is; a server that gave no answer in its time, or answered `ERROR`, is
//! passed over with that reason, as a worker would, and the workers ask the next.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use super::client::{ClientError, Connection};
use super::{Authorize, Done, Shared, Tried};

/// The loop's connection and its request in flight.
#[derive(Debug, Default)]
pub(super) struct Inline {
    /// Server index and connection (non-blocking).
    conn: Option<(usize, Connection)>,
    pending: Option<Pending>,
}

/// What became of the loop's request.
#[derive(Debug)]
pub(super) enum Ended {
    /// Its answer.
    Answered(Done),
    /// Its job, for the workers.
    ToWorkers(Authorize),
}

#[derive(Debug)]
struct Pending {
    job: Authorize,
    /// When its server's time is up.
    until: Instant,
    /// The request's session id.
    session: u32,
    /// The reply so far.
    got: Vec<u8>,
}

impl Inline {
    /// Sends `job`'s request on the loop's connection; gives the job back, for the workers,
    /// when it cannot.
    pub(super) fn start(&mut self, shared: &Shared, job: Authorize) -> Option<Authorize> {
        let now = Instant::now();
        if self.pending.is_some() {
            return Some(job);
        }
        let Some(first) = shared.first_live(now) else { return Some(job) };
        if self.conn.as_ref().is_some_and(|(i, _)| *i != first) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = shared.unpark(first).and_then(|c| c.into_nonblocking().ok()).map(|c| (first, c));
        }
        let Some((i, conn)) = self.conn.as_mut() else { return Some(job) };
        // What cannot be encoded is the workers' to report.
        let Ok(attrs) = &job.attrs else { return Some(job) };
        let (ep, timeout) = &shared.endpoints[*i];
        match conn.send_authorization(ep, shared.single_connect, &shared.who_at(&job.port), attrs) {
            Ok(session) => {
                let until = (now + *timeout).min(job.deadline);
                self.pending = Some(Pending { job, until, session, got: Vec::new() });
                None
            }
            Err(e) => {
                if !matches!(e, ClientError::Encode(_)) {
                    self.conn = None;
                }
                Some(job)
            }
        }
    }

    /// The socket, while a request is in flight.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.pending.as_ref().and(self.conn.as_ref()).map(|(_, c)| c.fd())
    }

    /// When the request in flight runs out of time.
    pub(super) fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.until)
    }

    /// What became of the request in flight: its answer, or its job for the workers (see the
    /// module's comment); `None` while it waits, or when there is none.
    pub(super) fn poll(&mut self, shared: &Shared, now: Instant) -> Option<Ended> {
        let p = self.pending.as_mut()?;
        let Some((i, conn)) = self.conn.as_mut() else {
            return self.pending.take().map(|p| Ended::ToWorkers(p.job));
        };
        let i = *i;
        let r = match conn.read_authorization(&shared.endpoints[i].0, p.session, &mut p.got) {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) if now < p.until => return None,
            Ok(None) => Err(ClientError::Timeout),
            Err(e) => Err(e),
        };
        let Pending { mut job, until, .. } = self.pending.take()?;
        if r.is_err() || !conn.single {
            self.conn = None;
        }
        if let Some(e) = r.as_ref().err().filter(|e| e.broke()) {
            // A reused connection that failed: the workers try the server again on a new one,
            // in what is left of its time.
            job.already = Some(Tried::Retry { server: i, until, error: e.to_string() });
            return Some(Ended::ToWorkers(job));
        }
        let mut tried = Vec::new();
        match shared.answered(i, r, &mut tried) {
            Some(outcome) => Some(Ended::Answered(job.done(outcome))),
            None => {
                job.already = tried.pop().map(|why| Tried::PassedOver(i, why));
                Some(Ended::ToWorkers(job))
            }
        }
    }
}
