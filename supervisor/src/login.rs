//! What is known of a login session at its start: its id, who, through which service, from
//! where. Every part of the supervisor reads it; it depends on nothing but the user database.

use std::time::SystemTime;

use crate::sys::users::LoginUser;

/// Everything known about a session at its start.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id (48 bits).
    pub id: u64,
    /// The login user: the authorization identity for every command.
    pub user: LoginUser,
    /// The PAM service, or `session-wrapper` for `session-wrapper run`.
    pub service: String,
    /// The client address (`PAM_RHOST`), if any.
    pub rhost: Option<String>,
    /// The terminal at session start (`PAM_TTY`), if any.
    pub tty: Option<String>,
    /// The process that opened the session.
    pub leader: i32,
    /// When the session started.
    pub started: SystemTime,
}
