//! The module arguments of a `pam.d` stanza:
//! `session required pam_session_wrapper.so [config=PATH] [fail_policy=open|closed]
//! [supervisor=PATH] [timeout=SECONDS] [kill_on_close] [debug]`.
//!
//! Unknown arguments are reported (and logged by the caller) and ignored. A bad value of a
//! security-relevant argument (`fail_policy`, `supervisor`, `config`) is an error: the module
//! then refuses the session, whatever the fail policy would have said.

use std::time::Duration;

/// The default path of the supervisor binary.
pub const DEFAULT_SUPERVISOR: &str = "/usr/libexec/session-wrapper/session-wrapper-supervisor";

/// What happens when the supervisor cannot be started or the configuration cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPolicy {
    /// The session goes on unsupervised (with a syslog line saying why).
    Open,
    /// The session is refused (`PAM_SESSION_ERR`).
    Closed,
}

/// Parsed module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `config=`: the configuration file (the supervisor's default when absent).
    pub config: Option<String>,
    /// `fail_policy=`.
    pub fail_policy: FailPolicy,
    /// `supervisor=`: the supervisor binary.
    pub supervisor: String,
    /// `timeout=`: how long to wait for the supervisor at session open.
    pub timeout: Duration,
    /// `kill_on_close`: end the session's remaining processes when it closes.
    pub kill_on_close: bool,
    /// `debug`.
    pub debug: bool,
    /// Arguments not understood, to be logged.
    pub unknown: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            config: None,
            fail_policy: FailPolicy::Closed,
            supervisor: DEFAULT_SUPERVISOR.into(),
            timeout: Duration::from_secs(10),
            kill_on_close: false,
            debug: false,
            unknown: Vec::new(),
        }
    }
}

/// Parses the arguments.
///
/// # Errors
/// A message naming the bad security-relevant argument.
pub fn parse<S: AsRef<str>>(argv: &[S]) -> Result<Args, String> {
    let mut a = Args::default();
    for raw in argv {
        let raw = raw.as_ref();
        let (key, value) = match raw.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (raw, None),
        };
        match (key, value) {
            ("config", Some(v)) if v.starts_with('/') => a.config = Some(v.into()),
            ("config", _) => return Err(format!("bad argument {raw:?}: config= needs an absolute path")),
            ("supervisor", Some(v)) if v.starts_with('/') => a.supervisor = v.into(),
            ("supervisor", _) => {
                return Err(format!("bad argument {raw:?}: supervisor= needs an absolute path"))
            }
            ("fail_policy", Some("open")) => a.fail_policy = FailPolicy::Open,
            ("fail_policy", Some("closed")) => a.fail_policy = FailPolicy::Closed,
            ("fail_policy", _) => {
                return Err(format!("bad argument {raw:?}: fail_policy must be open or closed"))
            }
            ("timeout", Some(v)) => match v.parse::<u64>() {
                Ok(s) if (1..=120).contains(&s) => a.timeout = Duration::from_secs(s),
                _ => a.unknown.push(format!("{raw} (timeout must be 1-120 seconds; kept 10)")),
            },
            ("kill_on_close", None) => a.kill_on_close = true,
            ("debug", None) => a.debug = true,
            _ => a.unknown.push(raw.into()),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_closed_with_the_packaged_supervisor() {
        let a = parse::<&str>(&[]).expect("valid");
        assert_eq!(a.fail_policy, FailPolicy::Closed);
        assert_eq!(a.supervisor, DEFAULT_SUPERVISOR);
        assert_eq!(a.config, None);
    }

    #[test]
    fn every_argument_parses() {
        let a = parse(&["config=/etc/x.toml", "fail_policy=open", "supervisor=/opt/sup", "timeout=3", "kill_on_close", "debug"])
            .expect("valid");
        assert_eq!(a.config.as_deref(), Some("/etc/x.toml"));
        assert_eq!(a.fail_policy, FailPolicy::Open);
        assert_eq!(a.supervisor, "/opt/sup");
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert!(a.kill_on_close && a.debug && a.unknown.is_empty());
    }

    #[test]
    fn unknown_arguments_are_kept_for_the_log() {
        let a = parse(&["nosuch", "timeout=0"]).expect("valid");
        assert_eq!(a.unknown.len(), 2);
    }

    #[test]
    fn bad_security_relevant_arguments_fail() {
        for bad in ["fail_policy=maybe", "fail_policy", "config=relative.toml", "supervisor=x"] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }
}
