//! The messages between the PAM module and the supervisor it starts, and the nesting record a
//! nested PAM session hands to the running supervisor. Pure code: encoding and decoding only.
//!
//! A message is one `SOCK_SEQPACKET` datagram: a kind byte, then fields, each a tag byte, a
//! little-endian `u32` length and that many bytes. Decoding checks every length against the
//! datagram and refuses unknown kinds, unknown tags and duplicate fields.

use std::fmt;

use crate::isolate::Isolate;

/// The largest datagram either side sends or accepts.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty, truncated or oversized datagram.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A kind byte this version does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A field this message kind does not have.
    #[error("unexpected field {0} in message")]
    UnknownField(u8),
    /// A required field is absent.
    #[error("message lacks field {0}")]
    Missing(&'static str),
}

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
    /// Module to supervisor: the session to supervise.
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
}

struct Writer(Vec<u8>);

impl Writer {
    fn field(&mut self, tag: u8, value: &[u8]) {
        self.0.push(tag);
        // Lengths are bounded by MAX_MESSAGE long before u32 overflows.
        self.0.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(value);
    }
    fn opt(&mut self, tag: u8, value: &Option<Vec<u8>>) {
        if let Some(v) = value {
            self.field(tag, v);
        }
    }
}

impl Message {
    /// The datagram for this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        match self {
            Message::Hello(h) => {
                w.0.push(kind::HELLO);
                w.field(tag::USER, &h.user);
                w.field(tag::SERVICE, &h.service);
                w.opt(tag::RHOST, &h.rhost);
                w.opt(tag::TTY, &h.tty);
                w.opt(tag::RUSER, &h.ruser);
                w.opt(tag::CONFIG, &h.config);
                w.field(tag::LEADER, &h.leader_pid.to_le_bytes());
                w.field(tag::DEBUG, &[u8::from(h.debug)]);
                w.field(tag::KILL_ON_CLOSE, &[u8::from(h.kill_on_close)]);
            }
            Message::Supervise { session, pid, filter, isolate } => {
                w.0.push(kind::SUPERVISE);
                w.field(tag::SESSION, &session.to_le_bytes());
                w.field(tag::PID, &pid.to_le_bytes());
                w.field(tag::FILTER, filter);
                if !isolate.is_empty() {
                    w.field(tag::ISOLATE, &isolate.encode());
                }
            }
            Message::Skip { reason } => {
                w.0.push(kind::SKIP);
                w.field(tag::REASON, reason.as_bytes());
            }
            Message::Failed { reason } => {
                w.0.push(kind::FAILED);
                w.field(tag::REASON, reason.as_bytes());
            }
            Message::Listener => w.0.push(kind::LISTENER),
            Message::Ready => w.0.push(kind::READY),
            Message::Nested(n) => {
                w.0.push(kind::NESTED);
                w.field(tag::SERVICE, &n.service);
                w.field(tag::USER, &n.user);
                w.opt(tag::RUSER, &n.ruser);
                w.opt(tag::TTY, &n.tty);
            }
            Message::Closing(c) => {
                w.0.push(kind::CLOSING);
                w.field(tag::SERVICE, &c.service);
            }
        }
        w.0
    }

    /// Decodes one datagram.
    ///
    /// # Errors
    /// [`WireError`] for anything but a well-formed message of a known kind.
    pub fn decode(data: &[u8]) -> Result<Self, WireError> {
        if data.len() > MAX_MESSAGE {
            return Err(WireError::Malformed("message too long"));
        }
        let (&k, mut rest) = data.split_first().ok_or(WireError::Malformed("empty message"))?;
        let mut fields: Vec<(u8, &[u8])> = Vec::new();
        while !rest.is_empty() {
            if rest.len() < 5 {
                return Err(WireError::Malformed("truncated field header"));
            }
            let tag = rest[0];
            let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let body = rest.get(5..).unwrap_or(&[]);
            if body.len() < len {
                return Err(WireError::Malformed("field longer than message"));
            }
            if fields.iter().any(|(t, _)| *t == tag) {
                return Err(WireError::Malformed("duplicate field"));
            }
            fields.push((tag, &body[..len]));
            rest = &body[len..];
        }
        let allowed: &[u8] = match k {
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
            ],
            kind::SUPERVISE => &[tag::SESSION, tag::PID, tag::FILTER, tag::ISOLATE],
            kind::SKIP | kind::FAILED => &[tag::REASON],
            kind::LISTENER | kind::READY => &[],
            kind::NESTED => &[tag::SERVICE, tag::USER, tag::RUSER, tag::TTY],
            kind::CLOSING => &[tag::SERVICE],
            other => return Err(WireError::UnknownKind(other)),
        };
        if let Some((t, _)) = fields.iter().find(|(t, _)| !allowed.contains(t)) {
            return Err(WireError::UnknownField(*t));
        }
        let get = |t: u8| fields.iter().find(|(ft, _)| *ft == t).map(|(_, v)| v.to_vec());
        let need = |t: u8, name: &'static str| get(t).ok_or(WireError::Missing(name));
        let flag = |t: u8, name: &'static str| -> Result<bool, WireError> {
            Ok(need(t, name)?.first().copied().unwrap_or(0) != 0)
        };
        let u32_of = |t: u8, name: &'static str| -> Result<u32, WireError> {
            let b: [u8; 4] = need(t, name)?.try_into().map_err(|_| WireError::Malformed("u32 size"))?;
            Ok(u32::from_le_bytes(b))
        };
        let text = |t: u8, name: &'static str| -> Result<String, WireError> {
            Ok(String::from_utf8_lossy(&need(t, name)?).into_owned())
        };
        Ok(match k {
            kind::HELLO => Message::Hello(Hello {
                user: need(tag::USER, "user")?,
                service: need(tag::SERVICE, "service")?,
                rhost: get(tag::RHOST),
                tty: get(tag::TTY),
                ruser: get(tag::RUSER),
                config: get(tag::CONFIG),
                leader_pid: u32_of(tag::LEADER, "leader")?,
                debug: flag(tag::DEBUG, "debug")?,
                kill_on_close: flag(tag::KILL_ON_CLOSE, "kill_on_close")?,
            }),
            kind::SUPERVISE => {
                let s = need(tag::SESSION, "session")?;
                let s: [u8; 8] = s.try_into().map_err(|_| WireError::Malformed("session size"))?;
                Message::Supervise {
                    session: u64::from_le_bytes(s),
                    pid: u32_of(tag::PID, "pid")?,
                    filter: need(tag::FILTER, "filter")?,
                    isolate: match get(tag::ISOLATE) {
                        Some(b) => Isolate::decode(&b)?,
                        None => Isolate::default(),
                    },
                }
            }
            kind::SKIP => Message::Skip { reason: text(tag::REASON, "reason")? },
            kind::FAILED => Message::Failed { reason: text(tag::REASON, "reason")? },
            kind::LISTENER => Message::Listener,
            kind::READY => Message::Ready,
            kind::CLOSING => Message::Closing(Closing { service: need(tag::SERVICE, "service")? }),
            _ => Message::Nested(Nested {
                service: need(tag::SERVICE, "service")?,
                user: need(tag::USER, "user")?,
                ruser: get(tag::RUSER),
                tty: get(tag::TTY),
            }),
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
    fn session_ids_are_twelve_hex_digits() {
        assert_eq!(session_id_text(0x1a2b), "000000001a2b");
        assert!(session_id_from(0) >= 1 << 32 && session_id_from(u64::MAX) <= SESSION_ID_MASK);
        assert_eq!(session_id_text(u64::MAX).len(), 12);
    }
}
