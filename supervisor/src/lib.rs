//! The supervisor of `pam_session_wrapper` and the `session-wrapper` command.
//!
//! One supervisor serves one session. It holds the listener of the seccomp filter installed on
//! the process that opened the session and answers every `execve`/`execveat` of every process
//! in it: read the request from the caller's memory ([`memory`]), find the real file and its
//! `#!` chain ([`resolve`], [`exefile`]), decide with the policy ([`decide`], from the pure
//! `session-wrapper-config` crate), then refuse it with an errno and a message ([`message`]) or
//! let it run and check the image the kernel really loaded before it runs one instruction
//! ([`tracer`]). Every decision is one syslog line ([`syslog`]). The loop is [`supervisor`].
//!
//! Kernel interfaces that no crate wraps live in [`sys`]; the seccomp program is built with
//! libseccomp in [`filter`]. `session-wrapper run` ([`run`]) puts one command under a
//! supervisor without PAM; the PAM module starts the `session-wrapper-supervisor` binary.

pub mod cgroup;
pub mod configfile;
pub mod decide;
pub mod exefile;
pub mod filter;
pub mod harden;
pub mod isolation;
pub mod lingering;
pub mod memory;
pub mod message;
pub mod notify;
pub mod pam;
pub mod procfs;
pub mod resolve;
pub mod run;
pub mod runtime;
pub mod selftest;
pub mod spool;
pub mod supervisor;
pub mod sys;
pub mod syslog;
pub mod tacacs;
pub mod tracer;
pub mod trust;
pub mod users;

/// Whether this process runs as root (effective uid 0).
pub fn run_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
