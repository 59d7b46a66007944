//! A stored line: what the backlog and the spool keep of an event, the RFC 3164 form glibc's
//! `syslog(3)` sends (`<PRI>Mmm dd hh:mm:ss session-wrapper[PID]: TEXT`), and its parts, from
//! which every format renders its datagram ([`super::format`]).

use session_wrapper_config::text::logfmt_pairs;

/// The ident of every line the supervisor logs.
pub const IDENT: &str = "session-wrapper";

/// A stored line, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    /// Facility and severity.
    pub pri: u8,
    /// `Mmm dd hh:mm:ss`, local time.
    pub stamp: &'a str,
    /// The pid of the process that logged it.
    pub pid: &'a str,
    /// The event's logfmt text.
    pub text: &'a str,
}

impl<'a> Stored<'a> {
    /// Takes a stored line apart; `None` for what this project never stores.
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        let line = std::str::from_utf8(line).ok()?;
        let (pri, rest) = line.strip_prefix('<')?.split_once('>')?;
        let (stamp, rest) = (rest.get(..15)?, rest.get(16..)?);
        let (pid, text) = rest.strip_prefix(IDENT)?.strip_prefix('[')?.split_once("]: ")?;
        Some(Stored { pri: pri.parse().ok()?, stamp, pid, text })
    }

    /// Its severity (0 to 7).
    pub fn severity(&self) -> u8 {
        self.pri & 7
    }

    /// Its `(key, value)` fields, values as written (escaped, without quotes).
    pub fn fields(&self) -> Vec<(&'a str, &'a str)> {
        logfmt_pairs(self.text)
    }

    /// What it is about: its `event=` name, or `decision`.
    pub fn kind(&self) -> &'a str {
        self.fields().into_iter().find(|(k, _)| *k == "event").map_or("decision", |(_, v)| v)
    }
}
