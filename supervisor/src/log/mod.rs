//! Logging: what the supervisor says and where it goes.
//!
//! Every line starts as an [`Event`] (a kind and typed fields, see [`event`]), rendered as
//! one logfmt line of at most 8 KiB; a [`LogSink`] delivers it. The session's sink is
//! [`syslog::Syslog`]: datagrams to a Unix socket, facility AUTHPRIV, with a bounded backlog
//! and an on-disk [`spool`] for what it cannot send yet, in the [`format`] `[log] format` asks
//! for (RFC 3164, RFC 5424 with structured data, or journald's native protocol with every
//! field a journal field: [`journal`]). [`audit::Audited`] adds a Linux audit record of every
//! decision. Another sink is one more file implementing [`LogSink`].

pub mod audit;
pub mod event;
pub mod format;
pub mod journal;
pub mod spool;
pub mod stored;
pub mod syslog;

use std::os::fd::BorrowedFd;
use std::time::Duration;

pub use event::{Event, Field, Kind, Severity, Value};

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Delivered.
    Sent,
    /// Waiting in memory.
    Queued,
    /// Written to the spool on disk.
    Spooled,
    /// Lost (counted, and reported in a later `event=log-dropped`).
    Dropped,
}

/// Where events go. Never blocks the supervisor.
pub trait LogSink: std::fmt::Debug {
    /// Delivers `event`, or keeps it to deliver later.
    fn emit(&mut self, event: &Event) -> Kept;
    /// Delivers what waits, as far as the destination takes it now.
    fn flush(&mut self);
    /// The descriptor to poll for writability while events wait.
    fn waiting_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Whether events wait for a destination that is missing (the loop retries on a timer).
    fn needs_retry(&self) -> bool;
    /// Whether an event emitted now would be delivered or kept on disk
    /// (`log-failure = "refuse"` refuses execs while it would not).
    fn can_keep(&mut self) -> bool;
    /// Before the supervisor exits: delivers for at most `limit`, then keeps the rest.
    fn drain(&mut self, limit: Duration);
}
