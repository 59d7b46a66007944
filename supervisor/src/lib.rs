//! The supervisor of `pam_session_wrapper` and the `session-wrapper` command.
//!
//! One supervisor serves one session. It holds the listener of the seccomp filter installed on
//! the process that opened the session and answers every `execve`/`execveat` of every process
//! in it. The folders are the architecture (`docs/ARCHITECTURE.md` draws the path of one exec):
//! - [`session`]: bringing a session up (through PAM, [`session::from_pam`], or for one
//!   command, [`session::command`]), its isolation, and the [`session::Supervisor`] loop;
//! - [`exec`]: the exec pipeline, from a notification to the outcome of the exec: gather,
//!   decide, authorize, settle, refuse or let run, verify;
//! - [`authz`]: authorization backends behind one trait (TACACS+ today);
//! - [`log`]: structured events and the sinks that deliver them (syslog today);
//! - [`sys`]: the kernel as the supervisor sees it: the session filter and its listener,
//!   other processes' memory and `/proc`, path resolution, ptrace, users;
//! - [`selftest`] and [`configfile`]: the checks and the configuration loading of the
//!   `session-wrapper` command; [`policytest`]: a policy's test cases (`session-wrapper
//!   test`); [`replay`]: recorded decisions decided again under a
//!   candidate policy (`session-wrapper replay`).

pub mod authz;
pub mod configfile;
pub mod exec;
pub mod log;
pub mod login;
pub mod policytest;
pub mod replay;
pub mod selftest;
pub mod session;
pub mod sys;

/// Whether this process runs as root (effective uid 0).
pub fn run_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
