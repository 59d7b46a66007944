//! The messages between the PAM module and the supervisor it starts, and the nesting record a
//! nested PAM session hands to the running supervisor. Pure code: encoding and decoding only.
//!
//! A message is one `SOCK_SEQPACKET` datagram: a kind byte, then fields (`frame`: each a
//! tag byte, a little-endian `u32` length and that many bytes). Decoding checks every length
//! against the datagram and refuses unknown kinds, unknown tags and duplicate fields. The
//! isolation layers of a [`Message::Supervise`] travel in one field as a record of their own,
//! framed the same way (`isolation`: [`Isolate::encode`], [`Isolate::decode`]).

mod account;
mod frame;
mod isolation;

use std::fmt;

use crate::account::Account;
use crate::isolate::Isolate;

use self::frame::{Fields, Framing, Writer};
pub use self::frame::WireError;

/// The largest datagram either side accepts ([`crate::kernel::recv`] refuses a longer one).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What the module tells the supervisor about the session it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// `PAM_USER`.
    pub user: Vec<u8>,
    /// `PAM_SERVICE`.
    pub service: Vec<u8>,
    /// `PAM_RHOST`, the client address, if any.
    pub rhost: Option<Vec<u8>>,
    /// `PAM_TTY`, if any.
    pub tty: Option<Vec<u8>>,
    /// `PAM_RUSER`, the requesting user (su, sudo), if any.
    pub ruser: Option<Vec<u8>>,
    /// The `config=` module argument, if any.
    pub config: Option<Vec<u8>>,
    /// The pid of the process that opens the session (sshd's monitor, su, sudo, login).
    pub leader_pid: u32,
    /// The `debug` module argument.
    pub debug: bool,
    /// The `kill_on_close` module argument: end the session's processes when it closes.
    pub kill_on_close: bool,
    /// The user as the module looked it up in the host (see [`crate::account`]); `None` makes
    /// the supervisor look it up itself.
    pub account: Option<Account>,
    /// How long the module waits for the supervisor's answer (its `timeout=`), in
    /// milliseconds: what the supervisor may spend before it answers, on the kernel check's
    /// loader above all.
    pub waits_ms: Option<u32>,
}

/// A nested PAM session (su or sudo inside a supervised session) reporting itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nested {
    /// `PAM_SERVICE` of the nested session.
    pub service: Vec<u8>,
    /// `PAM_USER` of the nested session: the target user.
    pub user: Vec<u8>,
    /// `PAM_RUSER`, if any.
    pub ruser: Option<Vec<u8>>,
    /// `PAM_TTY`, if any.
    pub tty: Option<Vec<u8>>,
}

/// The process that opened the session is closing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closing {
    /// `PAM_SERVICE` of the closing session.
    pub service: Vec<u8>,
}

/// One datagram.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// Module to supervisor: the session to supervise; with it, when the module could ask,
    /// the socket of the kernel's answer to its audit status question
    /// ([`crate::audit::Question`]).
    Hello(Hello),
    /// Supervisor to module: install this filter (classic BPF, `struct sock_filter` array)
    /// and send its listener.
    Supervise {
        /// The session id.
        session: u64,
        /// The supervisor's pid.
        pid: u32,
        /// The filter program.
        filter: Vec<u8>,
        /// The isolation layers to apply before installing it.
        isolate: Isolate,
    },
    /// Supervisor to module: this session is not supervised (out of scope, exempt).
    Skip {
        /// Why, for the log.
        reason: String,
    },
    /// Supervisor to module: the supervisor cannot work; the fail policy decides.
    Failed {
        /// Why, for the log.
        reason: String,
    },
    /// Module to supervisor: the listener fd rides along (`SCM_RIGHTS`).
    Listener,
    /// Supervisor to module: the listener is held and answered; the session may go on.
    Ready,
    /// A nested session's record, read by the supervisor from the probing process.
    Nested(Nested),
    /// The session's opener closing it, read by the supervisor from the probing process.
    Closing(Closing),
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Hello(h) => f.debug_tuple("Hello").field(h).finish(),
            Message::Supervise { session, pid, filter, isolate } => f
                .debug_struct("Supervise")
                .field("session", session)
                .field("pid", pid)
                .field("filter_len", &filter.len())
                .field("isolate", isolate)
                .finish(),
            Message::Skip { reason } => f.debug_struct("Skip").field("reason", reason).finish(),
            Message::Failed { reason } => f.debug_struct("Failed").field("reason", reason).finish(),
            Message::Listener => f.write_str("Listener"),
            Message::Ready => f.write_str("Ready"),
            Message::Nested(n) => f.debug_tuple("Nested").field(n).finish(),
            Message::Closing(c) => f.debug_tuple("Closing").field(c).finish(),
        }
    }
}

mod kind {
    pub const HELLO: u8 = 1;
    pub const SUPERVISE: u8 = 2;
    pub const SKIP: u8 = 3;
    pub const FAILED: u8 = 4;
    pub const LISTENER: u8 = 5;
    pub const READY: u8 = 6;
    pub const NESTED: u8 = 7;
    pub const CLOSING: u8 = 8;
}

mod tag {
    pub const USER: u8 = 1;
    pub const SERVICE: u8 = 2;
    pub const RHOST: u8 = 3;
    pub const TTY: u8 = 4;
    pub const RUSER: u8 = 5;
    pub const CONFIG: u8 = 6;
    pub const LEADER: u8 = 7;
    pub const DEBUG: u8 = 8;
    pub const SESSION: u8 = 9;
    pub const FILTER: u8 = 10;
    pub const REASON: u8 = 11;
    pub const KILL_ON_CLOSE: u8 = 12;
    pub const PID: u8 = 13;
    pub const ISOLATE: u8 = 14;
    pub const ACCOUNT: u8 = 15;
    pub const WAITS: u8 = 16;
}

/// How a message's fields are framed, and what a bad frame is called.
const FRAMING: Framing = Framing { truncated: "truncated field header", overlong: "field longer than message" };

impl Message {
    /// The datagram for this message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Hello(h) => {
                let mut w = Writer::with_kind(kind::HELLO);
                w.field(tag::USER, &h.user);
                w.field(tag::SERVICE, &h.service);
                w.opt(tag::RHOST, &h.rhost);
                w.opt(tag::TTY, &h.tty);
                w.opt(tag::RUSER, &h.ruser);
                w.opt(tag::CONFIG, &h.config);
                w.field(tag::LEADER, &h.leader_pid.to_le_bytes());
                w.field(tag::DEBUG, &[u8::from(h.debug)]);
                w.field(tag::KILL_ON_CLOSE, &[u8::from(h.kill_on_close)]);
                if let Some(a) = &h.account {
                    w.field(tag::ACCOUNT, &account::encode(a));
                }
                if let Some(ms) = h.waits_ms {
                    w.field(tag::WAITS, &ms.to_le_bytes());
                }
                w.into_bytes()
            }
            Message::Supervise { session, pid, filter, isolate } => {
                let mut w = Writer::with_kind(kind::SUPERVISE);
                w.field(tag::SESSION, &session.to_le_bytes());
                w.field(tag::PID, &pid.to_le_bytes());
                w.field(tag::FILTER, filter);
                if !isolate.is_empty() {
                    w.field(tag::ISOLATE, &isolate.encode());
                }
                w.into_bytes()
            }
            Message::Skip { reason } => reason_message(kind::SKIP, reason),
            Message::Failed { reason } => reason_message(kind::FAILED, reason),
            Message::Listener => Writer::with_kind(kind::LISTENER).into_bytes(),
            Message::Ready => Writer::with_kind(kind::READY).into_bytes(),
            Message::Nested(n) => {
                let mut w = Writer::with_kind(kind::NESTED);
                w.field(tag::SERVICE, &n.service);
                w.field(tag::USER, &n.user);
                w.opt(tag::RUSER, &n.ruser);
                w.opt(tag::TTY, &n.tty);
                w.into_bytes()
            }
            Message::Closing(c) => {
                let mut w = Writer::with_kind(kind::CLOSING);
                w.field(tag::SERVICE, &c.service);
                w.into_bytes()
            }
        }
    }

    /// Decodes one datagram.
    ///
    /// # Errors
    /// [`WireError`] for anything but a well-formed message of a known kind.
    pub fn decode(data: &[u8]) -> Result<Self, WireError> {
        if data.len() > MAX_MESSAGE {
            return Err(WireError::Malformed("message too long"));
        }
        let (&k, rest) = data.split_first().ok_or(WireError::Malformed("empty message"))?;
        let fields = Received::read(rest)?;
        fields.only(allowed_tags(k)?)?;
        Ok(match k {
            kind::HELLO => Message::Hello(fields.hello()?),
            kind::SUPERVISE => fields.supervise()?,
            kind::SKIP => Message::Skip { reason: fields.text(tag::REASON, "reason")? },
            kind::FAILED => Message::Failed { reason: fields.text(tag::REASON, "reason")? },
            kind::LISTENER => Message::Listener,
            kind::READY => Message::Ready,
            kind::NESTED => Message::Nested(fields.nested()?),
            kind::CLOSING => Message::Closing(Closing { service: fields.need(tag::SERVICE, "service")? }),
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

fn reason_message(kind: u8, reason: &str) -> Vec<u8> {
    let mut w = Writer::with_kind(kind);
    w.field(tag::REASON, reason.as_bytes());
    w.into_bytes()
}

/// The fields message kind `k` may have.
fn allowed_tags(k: u8) -> Result<&'static [u8], WireError> {
    Ok(match k {
        kind::HELLO => &[
            tag::USER,
            tag::SERVICE,
            tag::RHOST,
            tag::TTY,
            tag::RUSER,
            tag::CONFIG,
            tag::LEADER,
            tag::DEBUG,
            tag::KILL_ON_CLOSE,
            tag::ACCOUNT,
            tag::WAITS,
        ],
        kind::SUPERVISE => &[tag::SESSION, tag::PID, tag::FILTER, tag::ISOLATE],
        kind::SKIP | kind::FAILED => &[tag::REASON],
        kind::LISTENER | kind::READY => &[],
        kind::NESTED => &[tag::SERVICE, tag::USER, tag::RUSER, tag::TTY],
        kind::CLOSING => &[tag::SERVICE],
        other => return Err(WireError::UnknownKind(other)),
    })
}

/// The fields of one received datagram, each tag at most once, in the order they came.
struct Received<'a>(Vec<(u8, &'a [u8])>);

impl<'a> Received<'a> {
    /// Splits `data` (a datagram after its kind byte) into fields.
    fn read(data: &'a [u8]) -> Result<Self, WireError> {
        let mut fields: Vec<(u8, &[u8])> = Vec::new();
        for field in Fields::new(data, FRAMING) {
            let (tag, value) = field?;
            if fields.iter().any(|(t, _)| *t == tag) {
                return Err(WireError::Malformed("duplicate field"));
            }
            fields.push((tag, value));
        }
        Ok(Received(fields))
    }

    /// Refuses the first field not in `allowed`.
    fn only(&self, allowed: &[u8]) -> Result<(), WireError> {
        match self.0.iter().find(|(t, _)| !allowed.contains(t)) {
            Some((t, _)) => Err(WireError::UnknownField(*t)),
            None => Ok(()),
        }
    }

    fn get(&self, t: u8) -> Option<Vec<u8>> {
        self.0.iter().find(|(ft, _)| *ft == t).map(|(_, v)| v.to_vec())
    }

    fn need(&self, t: u8, name: &'static str) -> Result<Vec<u8>, WireError> {
        self.get(t).ok_or(WireError::Missing(name))
    }

    /// A one-byte flag; an empty value is false.
    fn flag(&self, t: u8, name: &'static str) -> Result<bool, WireError> {
        Ok(self.need(t, name)?.first().copied().unwrap_or(0) != 0)
    }

    /// A value of exactly `N` bytes; `size` names the error when it is not.
    fn array<const N: usize>(&self, t: u8, name: &'static str, size: &'static str) -> Result<[u8; N], WireError> {
        self.need(t, name)?.try_into().map_err(|_| WireError::Malformed(size))
    }

    fn u32_of(&self, t: u8, name: &'static str) -> Result<u32, WireError> {
        self.array(t, name, "u32 size").map(u32::from_le_bytes)
    }

    /// Text for the log; bytes that are not UTF-8 are replaced.
    fn text(&self, t: u8, name: &'static str) -> Result<String, WireError> {
        Ok(String::from_utf8_lossy(&self.need(t, name)?).into_owned())
    }

    fn hello(&self) -> Result<Hello, WireError> {
        Ok(Hello {
            user: self.need(tag::USER, "user")?,
            service: self.need(tag::SERVICE, "service")?,
            rhost: self.get(tag::RHOST),
            tty: self.get(tag::TTY),
            ruser: self.get(tag::RUSER),
            config: self.get(tag::CONFIG),
            leader_pid: self.u32_of(tag::LEADER, "leader")?,
            debug: self.flag(tag::DEBUG, "debug")?,
            kill_on_close: self.flag(tag::KILL_ON_CLOSE, "kill_on_close")?,
            account: self.get(tag::ACCOUNT).map(|b| account::decode(&b)).transpose()?,
            waits_ms: match self.get(tag::WAITS) {
                Some(_) => Some(self.u32_of(tag::WAITS, "waits")?),
                None => None,
            },
        })
    }

    fn supervise(&self) -> Result<Message, WireError> {
        Ok(Message::Supervise {
            session: self.array(tag::SESSION, "session", "session size").map(u64::from_le_bytes)?,
            pid: self.u32_of(tag::PID, "pid")?,
            filter: self.need(tag::FILTER, "filter")?,
            isolate: match self.get(tag::ISOLATE) {
                Some(b) => Isolate::decode(&b)?,
                None => Isolate::default(),
            },
        })
    }

    fn nested(&self) -> Result<Nested, WireError> {
        Ok(Nested {
            service: self.need(tag::SERVICE, "service")?,
            user: self.need(tag::USER, "user")?,
            ruser: self.get(tag::RUSER),
            tty: self.get(tag::TTY),
        })
    }
}

/// The text form of a session id: 12 lowercase hex digits.
pub fn session_id_text(id: u64) -> String {
    format!("{:012x}", id & SESSION_ID_MASK)
}

/// Session ids are 48 bits, so that they fit a syscall return value with room to spare.
pub const SESSION_ID_MASK: u64 = (1 << 48) - 1;

/// Every session id has its top bit (47) set, so that a probe's answer is never mistaken for
/// a file descriptor (which a supervisor answers a nested session's probe with).
pub const SESSION_ID_FLOOR: u64 = 1 << 47;

/// A session id from random bits.
pub fn session_id_from(random: u64) -> u64 {
    (random & SESSION_ID_MASK) | SESSION_ID_FLOOR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: Message) {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes), Ok(m));
    }

    #[test]
    fn every_message_kind_roundtrips() {
        roundtrip(Message::Hello(Hello {
            user: b"alice".to_vec(),
            service: b"sshd".to_vec(),
            rhost: Some(b"192.0.2.7".to_vec()),
            tty: None,
            ruser: None,
            config: Some(b"/etc/x.toml".to_vec()),
            leader_pid: 4242,
            debug: true,
            kill_on_close: false,
            account: None,
            waits_ms: Some(10_000),
        }));
        roundtrip(Message::Hello(Hello {
            user: b"alice".to_vec(),
            service: b"su".to_vec(),
            leader_pid: 1,
            account: Some(Account {
                name: "alice".into(),
                uid: 1000,
                gid: 100,
                gids: vec![100, 27],
                groups: vec!["users".into(), "sudo".into()],
                uid_name: Some("alice".into()),
            }),
            ..Hello::default()
        }));
        roundtrip(Message::Supervise { session: 0xabc, pid: 77, filter: vec![1, 2, 3, 4, 5, 6, 7, 8], isolate: Isolate::default() });
        roundtrip(Message::Supervise {
            session: 1,
            pid: 2,
            filter: vec![0; 8],
            isolate: Isolate { private_dirs: vec![b"/tmp".to_vec()], ..Isolate::default() },
        });
        roundtrip(Message::Closing(Closing { service: b"sshd".to_vec() }));
        roundtrip(Message::Skip { reason: "exempt user".into() });
        roundtrip(Message::Failed { reason: "bad config".into() });
        roundtrip(Message::Listener);
        roundtrip(Message::Ready);
        roundtrip(Message::Nested(Nested {
            service: b"sudo".to_vec(),
            user: b"root".to_vec(),
            ruser: Some(b"alice".to_vec()),
            tty: Some(b"/dev/pts/1".to_vec()),
        }));
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        assert!(matches!(Message::decode(&[]), Err(WireError::Malformed(_))));
        assert_eq!(Message::decode(&[99]), Err(WireError::UnknownKind(99)));
        assert!(Message::decode(&[kind::READY, 1, 9, 0, 0, 0]).is_err());
        assert_eq!(Message::decode(&[kind::READY, 1, 0, 0, 0, 0]), Err(WireError::UnknownField(1)));
        assert_eq!(Message::decode(&[kind::SKIP]), Err(WireError::Missing("reason")));
        let mut dup = Message::Skip { reason: "a".into() }.encode();
        dup.extend_from_slice(&[tag::REASON, 1, 0, 0, 0, b'b']);
        assert_eq!(Message::decode(&dup), Err(WireError::Malformed("duplicate field")));
        let huge = vec![kind::READY; MAX_MESSAGE + 1];
        assert!(Message::decode(&huge).is_err());
        // A length that claims more than the datagram holds.
        assert!(Message::decode(&[kind::SKIP, tag::REASON, 255, 255, 255, 255, b'x']).is_err());
    }

    #[test]
    fn the_datagram_bytes_stay_as_they_were() {
        let m = Message::Supervise {
            session: 1,
            pid: 2,
            filter: vec![9],
            isolate: Isolate { private_dirs: vec![b"/t".to_vec()], ..Isolate::default() },
        };
        #[rustfmt::skip]
        let expected = [
            kind::SUPERVISE,
            tag::SESSION, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            tag::PID, 4, 0, 0, 0, 2, 0, 0, 0,
            tag::FILTER, 1, 0, 0, 0, 9,
            tag::ISOLATE, 7, 0, 0, 0, 1, 2, 0, 0, 0, b'/', b't',
        ];
        assert_eq!(m.encode(), expected);
        assert_eq!(Message::Ready.encode(), [kind::READY]);
        assert_eq!(Message::Skip { reason: "x".into() }.encode(), [kind::SKIP, tag::REASON, 1, 0, 0, 0, b'x']);
    }

    #[test]
    fn framing_is_checked_before_the_kind_and_the_kind_before_the_fields() {
        assert_eq!(Message::decode(&[99, 1]), Err(WireError::Malformed("truncated field header")));
        assert_eq!(Message::decode(&[99, 1, 0, 0, 0, 0]), Err(WireError::UnknownKind(99)));
        assert_eq!(Message::decode(&[kind::HELLO, tag::LEADER, 1, 0, 0, 0, 7]), Err(WireError::Missing("user")));
        let mut hello = Message::Hello(Hello::default()).encode();
        let leader = hello.iter().position(|&b| b == tag::LEADER).expect("leader field");
        hello[leader + 1] = 3;
        hello.remove(leader + 5);
        assert_eq!(Message::decode(&hello), Err(WireError::Malformed("u32 size")));
    }

    #[test]
    fn session_ids_are_twelve_hex_digits() {
        assert_eq!(session_id_text(0x1a2b), "000000001a2b");
        assert!(session_id_from(0) >= 1 << 32 && session_id_from(u64::MAX) <= SESSION_ID_MASK);
        assert_eq!(session_id_text(u64::MAX).len(), 12);
    }
}
