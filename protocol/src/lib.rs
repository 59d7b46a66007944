//! What the PAM module (`pam_session_wrapper.so`) and the supervisor share.
//!
//! The module runs inside someone else's process (sshd, su, sudo, login). It starts the
//! supervisor, receives from it the seccomp filter to install, installs it on itself, and
//! passes the listener back. This crate holds the messages of that exchange ([`wire`]), the
//! few kernel operations both sides perform ([`kernel`]), and the isolation layers the
//! supervisor decides and the module applies to itself ([`isolate`]), and the login user's
//! account, which the module looks up in the host ([`account`]), the kernel's audit status
//! question, which the module asks while the supervisor loads ([`audit`]), and the walk that tells
//! whether a path can be changed by root alone ([`trust`]: the module's `supervisor=`, the
//! supervisor's loader, policy patterns): so that the module stays small and never links
//! libseccomp into the host process.
//!
//! [`wire`] is pure code (bytes in, values out; fuzzed); [`isolate`] and [`kernel`] touch the
//! kernel, [`account`] NSS. Nothing in [`isolate`] or [`account`] knows the bytes on the wire:
//! [`wire`] encodes and decodes them as it does every message.

pub mod account;
pub mod audit;
pub mod isolate;
pub mod kernel;
pub mod trust;
pub mod wire;

pub use account::Account;
pub use isolate::{Isolate, LandlockLayer};
pub use kernel::{probe, recv, send, ExchangeError, FilterProgram, Probe};
pub use wire::{
    session_id_from, session_id_text, Closing, Hello, Message, Nested, WireError, SESSION_ID_FLOOR, SESSION_ID_MASK,
};

/// The fd number the supervisor finds its socket at when the module execs it.
pub const SUPERVISOR_SOCKET_FD: i32 = 3;
