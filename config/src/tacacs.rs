//! The `[tacacs]` table: the TACACS+ servers that `authorize` rules ask (RFC 8907, and TLS 1.3
//! per RFC 9887), and what is sent to them.
//!
//! ```toml
//! [tacacs]
//! key-file = "/etc/session-wrapper/tacacs.key"   # shared secret (root-only file)
//! service = "shell"                              # service= attribute
//! priv-lvl = 1
//! timeout-ms = 5000                              # most an exec waits, all servers together
//! dead-server-retry-s = 30                       # a server that failed is skipped this long
//! single-connect = true                          # reuse one connection where the server agrees
//! cache-ttl-s = 0                                # decision cache (user + command line), off
//! accounting = true                              # START/STOP per command
//! session-accounting = true                      # START/STOP per login
//!
//! [[tacacs.servers]]
//! host = "192.0.2.10"
//! timeout-ms = 1500
//!
//! [[tacacs.servers]]
//! host = "tacacs.example.net"
//! port = 300
//! tls = { ca-file = "/etc/session-wrapper/tacacs-ca.pem" }
//! ```

use std::time::Duration;

/// TLS settings of one server (RFC 9887): no obfuscation inside TLS 1.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// CA certificates (PEM) that the server's certificate must chain to.
    pub ca_file: String,
    /// Client certificate (PEM), when the server asks for one.
    pub client_cert: Option<String>,
    /// Its private key (PEM, root-only file).
    pub client_key: Option<String>,
    /// The name the server's certificate must carry (default: `host`).
    pub server_name: Option<String>,
}

/// One TACACS+ server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// TCP port (49, or 300 with TLS).
    pub port: u16,
    /// How long to wait for it (connect and answer).
    pub timeout: Duration,
    /// Its secret file, if not the shared one.
    pub key_file: Option<String>,
    /// TLS, when set.
    pub tls: Option<Tls>,
    /// Where it is configured.
    pub origin: crate::Location,
}

impl Server {
    /// `host:port`, as logged.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The `[tacacs]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tacacs {
    /// Servers, tried in order.
    pub servers: Vec<Server>,
    /// Shared secret file for servers without one of their own.
    pub key_file: Option<String>,
    /// `service=` value.
    pub service: String,
    /// `protocol=` value, if any.
    pub protocol: Option<String>,
    /// Privilege level of the requests.
    pub priv_lvl: u8,
    /// The most one exec waits for an answer, all servers together.
    pub timeout: Duration,
    /// How long a server that failed is skipped.
    pub dead_retry: Duration,
    /// Ask servers for single-connect mode.
    pub single_connect: bool,
    /// Decision cache time-to-live (none: off).
    pub cache_ttl: Option<Duration>,
    /// Command accounting (START when a command starts, STOP when it ends).
    pub accounting: bool,
    /// Session accounting (START/STOP for the login itself).
    pub session_accounting: bool,
    /// Accounting records one session keeps (in the accounting spool) while no server takes
    /// them; beyond this they are dropped, and logged.
    pub accounting_queue: usize,
}

impl Default for Tacacs {
    fn default() -> Self {
        Tacacs {
            servers: Vec::new(),
            key_file: None,
            service: "shell".into(),
            protocol: None,
            priv_lvl: 1,
            timeout: Duration::from_secs(5),
            dead_retry: Duration::from_secs(30),
            single_connect: true,
            cache_ttl: None,
            accounting: true,
            session_accounting: true,
            accounting_queue: 1000,
        }
    }
}
