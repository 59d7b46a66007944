//! TACACS+ attribute-value pairs for the requests the supervisor sends (RFC 8907 sections 6
//! and 7, 8.2): pure code.
//!
//! Values must be printable ASCII; a byte outside `0x20..=0x7e`, and the backslash, is written
//! as `\xNN`, so a non-UTF-8 argument is still sent, unambiguously. An attribute is at most 255
//! bytes and a request at most 255 attributes. A command whose arguments do not fit is not
//! authorized (it cannot be described faithfully to the server); accounting records are cut
//! with a marker instead.

use std::fmt::Write;

/// Longest `name=value`.
pub const MAX_ATTR: usize = 255;
/// Most attributes in one request.
pub const MAX_ATTRS: usize = 255;

/// One attribute: name, value, mandatory (`=`) or optional (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Name (no `=` or `*`).
    pub name: String,
    /// Printable-ASCII value.
    pub value: String,
    /// Mandatory (`=`) rather than optional (`*`).
    pub mandatory: bool,
}

impl Attr {
    /// A mandatory attribute.
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Attr { name: name.into(), value: value.into(), mandatory: true }
    }

    /// Its wire length.
    pub fn len(&self) -> usize {
        self.name.len() + 1 + self.value.len()
    }

    /// Whether it is empty (never: a name is required).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// `bytes` as printable ASCII: `\xNN` for anything else and for `\`.
pub fn ascii(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// Why a command cannot be sent for authorization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TooLong {
    /// An argument does not fit one attribute.
    #[error("argument {0} is longer than a TACACS+ attribute can carry")]
    Argument(usize),
    /// Too many arguments.
    #[error("{0} arguments are more than a TACACS+ request can carry")]
    Count(usize),
}

/// The settings that go into every request.
#[derive(Debug, Clone)]
pub struct Common {
    /// `service=`.
    pub service: String,
    /// `protocol=`, if any.
    pub protocol: Option<String>,
}

impl Common {
    fn head(&self) -> Vec<Attr> {
        let mut v = vec![Attr::new("service", ascii(self.service.as_bytes()))];
        if let Some(p) = &self.protocol {
            v.push(Attr::new("protocol", ascii(p.as_bytes())));
        }
        v
    }
}

/// The attributes of a per-command authorization: `service`, `protocol`, `cmd=` the program,
/// one `cmd-arg=` per argument.
///
/// # Errors
/// [`TooLong`] when the command cannot be described within the RFC's bounds.
pub fn authorization(common: &Common, cmd: &[u8], args: &[Vec<u8>]) -> Result<Vec<Attr>, TooLong> {
    let mut v = common.head();
    v.push(Attr::new("cmd", ascii(cmd)));
    if v[v.len() - 1].len() > MAX_ATTR {
        return Err(TooLong::Argument(0));
    }
    if v.len() + args.len() > MAX_ATTRS {
        return Err(TooLong::Count(args.len()));
    }
    for (i, a) in args.iter().enumerate() {
        let attr = Attr::new("cmd-arg", ascii(a));
        if attr.len() > MAX_ATTR {
            return Err(TooLong::Argument(i + 1));
        }
        v.push(attr);
    }
    Ok(v)
}

/// What an accounting record is about.
#[derive(Debug, Clone)]
pub enum Record {
    /// A command started.
    CommandStart {
        /// Task id.
        task: String,
        /// Seconds since the epoch.
        start: u64,
        /// The program.
        cmd: Vec<u8>,
        /// Its arguments.
        args: Vec<Vec<u8>>,
    },
    /// A command ended.
    CommandStop {
        /// Task id.
        task: String,
        /// When it started.
        start: u64,
        /// When it ended.
        stop: u64,
        /// The program.
        cmd: Vec<u8>,
        /// Its arguments.
        args: Vec<Vec<u8>>,
        /// Its exit status, when known.
        status: Option<i32>,
    },
    /// The login session started.
    SessionStart {
        /// Task id.
        task: String,
        /// When.
        start: u64,
    },
    /// The login session ended.
    SessionStop {
        /// Task id.
        task: String,
        /// When it started.
        start: u64,
        /// When it ended.
        stop: u64,
    },
}

impl Record {
    /// Whether this is a START record (else STOP).
    pub fn is_start(&self) -> bool {
        matches!(self, Record::CommandStart { .. } | Record::SessionStart { .. })
    }

    /// Its task id.
    pub fn task(&self) -> &str {
        match self {
            Record::CommandStart { task, .. }
            | Record::CommandStop { task, .. }
            | Record::SessionStart { task, .. }
            | Record::SessionStop { task, .. } => task,
        }
    }

    /// A short name for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::CommandStart { .. } => "command-start",
            Record::CommandStop { .. } => "command-stop",
            Record::SessionStart { .. } => "session-start",
            Record::SessionStop { .. } => "session-stop",
        }
    }
}

/// The attributes of an accounting record. Arguments that do not fit are cut and the record
/// says so (`cmd-arg=...truncated`).
pub fn accounting(common: &Common, r: &Record) -> Vec<Attr> {
    let mut v = vec![];
    let (task, start) = match r {
        Record::CommandStart { task, start, .. }
        | Record::CommandStop { task, start, .. }
        | Record::SessionStart { task, start }
        | Record::SessionStop { task, start, .. } => (task.clone(), *start),
    };
    v.push(Attr::new("task_id", ascii(task.as_bytes())));
    v.push(Attr::new("start_time", start.to_string()));
    if let Record::CommandStop { stop, .. } | Record::SessionStop { stop, .. } = r {
        v.push(Attr::new("stop_time", stop.to_string()));
        v.push(Attr::new("elapsed_time", stop.saturating_sub(start).to_string()));
    }
    v.push(Attr::new("timezone", "UTC"));
    v.extend(common.head());
    if let Record::CommandStart { cmd, args, .. } | Record::CommandStop { cmd, args, .. } = r {
        let mut c = Attr::new("cmd", ascii(cmd));
        c.value.truncate(MAX_ATTR - 4);
        v.push(c);
        let room = MAX_ATTRS - v.len() - 2;
        for a in args.iter().take(room) {
            let mut attr = Attr::new("cmd-arg", ascii(a));
            attr.value.truncate(MAX_ATTR - 8);
            v.push(attr);
        }
        if args.len() > room {
            v.push(Attr::new("cmd-arg", "...truncated"));
        }
    }
    if let Record::CommandStop { status: Some(s), .. } = r {
        v.push(Attr::new("status", s.to_string()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> Common {
        Common { service: "shell".into(), protocol: None }
    }

    #[test]
    fn arguments_become_printable_ascii() {
        assert_eq!(ascii(b"ls -l"), "ls -l");
        assert_eq!(ascii(b"a\\b\xff\n"), "a\\x5cb\\xff\\x0a");
        assert_eq!(ascii("é".as_bytes()), "\\xc3\\xa9");
    }

    #[test]
    fn authorization_carries_cmd_and_one_cmd_arg_per_argument() {
        let v = authorization(&common(), b"/usr/bin/ls", &[b"-l".to_vec(), b"/tmp".to_vec()]).expect("fits");
        let text: Vec<String> = v.iter().map(|a| format!("{}={}", a.name, a.value)).collect();
        assert_eq!(text, ["service=shell", "cmd=/usr/bin/ls", "cmd-arg=-l", "cmd-arg=/tmp"]);
    }

    #[test]
    fn commands_beyond_the_rfc_bounds_are_not_authorized() {
        let long = vec![b'a'; 300];
        assert_eq!(authorization(&common(), b"/x", &[long]), Err(TooLong::Argument(1)));
        let many = vec![b"a".to_vec(); 300];
        assert_eq!(authorization(&common(), b"/x", &many), Err(TooLong::Count(300)));
    }

    #[test]
    fn accounting_records_have_times_and_status_and_are_cut_to_fit() {
        let r = Record::CommandStop {
            task: "7".into(),
            start: 100,
            stop: 130,
            cmd: b"/usr/bin/sleep".to_vec(),
            args: vec![b"30".to_vec()],
            status: Some(0),
        };
        let v = accounting(&common(), &r);
        let get = |n: &str| v.iter().find(|a| a.name == n).map(|a| a.value.clone());
        assert_eq!(get("task_id").as_deref(), Some("7"));
        assert_eq!(get("elapsed_time").as_deref(), Some("30"));
        assert_eq!(get("status").as_deref(), Some("0"));
        let huge = Record::CommandStart { task: "1".into(), start: 1, cmd: b"/x".to_vec(), args: vec![vec![b'z'; 400]; 400] };
        let v = accounting(&common(), &huge);
        assert!(v.len() <= MAX_ATTRS && v.iter().all(|a| a.len() <= MAX_ATTR));
        assert_eq!(v.last().map(|a| a.value.as_str()), Some("...truncated"));
    }
}
