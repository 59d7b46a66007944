//! `[tacacs]` and its `[[tacacs.servers]]` ([`crate::tacacs`]). A key set in a source replaces
//! the value of the sources before it; a `servers` list replaces the whole list.

use std::time::Duration;

use toml::Spanned;

use crate::raw::{RawServer, RawTacacs, RawTls};
use crate::{Location, Server, Tacacs, Tls};

use super::Checker;

/// `[tacacs]`.
pub(crate) fn apply_tacacs(t: &mut Tacacs, raw: RawTacacs, ck: &mut Checker<'_>) {
    apply_request(t, &raw, ck);
    apply_timing(t, &raw, ck);
    apply_accounting(t, &raw, ck);
    if let Some(servers) = raw.servers {
        t.servers = servers.into_iter().map(|s| check_server(s, ck)).collect();
    }
}

/// What is sent: the shared secret, `service=`, `protocol=`, the privilege level.
fn apply_request(t: &mut Tacacs, raw: &RawTacacs, ck: &mut Checker<'_>) {
    if let Some(k) = &raw.key_file {
        t.key_file = ck.absolute(k, "tacacs.key-file");
    }
    if let Some(v) = &raw.service {
        if v.get_ref().is_empty() || !v.get_ref().bytes().all(|b| b.is_ascii_graphic()) {
            ck.problem(v.span().start, "tacacs.service must be printable ASCII without spaces");
        }
        t.service = v.get_ref().clone();
    }
    if let Some(v) = &raw.protocol {
        t.protocol = Some(v.get_ref().clone()).filter(|p| !p.is_empty());
    }
    if let Some(v) = &raw.priv_lvl {
        if let Some(n) = ck.ranged(v, "tacacs.priv-lvl", 0, 15) {
            t.priv_lvl = n as u8;
        }
    }
}

/// How long an exec waits, how servers are retried and reused, the decision cache.
fn apply_timing(t: &mut Tacacs, raw: &RawTacacs, ck: &mut Checker<'_>) {
    if let Some(v) = &raw.timeout_ms {
        if let Some(n) = ck.ranged(v, "tacacs.timeout-ms", 100, 60_000) {
            t.timeout = Duration::from_millis(n as u64);
        }
    }
    if let Some(v) = &raw.dead_server_retry_s {
        if let Some(n) = ck.ranged(v, "tacacs.dead-server-retry-s", 1, 3600) {
            t.dead_retry = Duration::from_secs(n as u64);
        }
    }
    if let Some(b) = raw.single_connect {
        t.single_connect = b;
    }
    if let Some(v) = &raw.cache_ttl_s {
        if let Some(n) = ck.ranged(v, "tacacs.cache-ttl-s", 0, 86_400) {
            t.cache_ttl = (n > 0).then(|| Duration::from_secs(n as u64));
        }
    }
}

/// Command and session accounting.
fn apply_accounting(t: &mut Tacacs, raw: &RawTacacs, ck: &mut Checker<'_>) {
    if let Some(b) = raw.accounting {
        t.accounting = b;
    }
    if let Some(b) = raw.session_accounting {
        t.session_accounting = b;
    }
    if let Some(v) = &raw.accounting_queue {
        if let Some(n) = ck.ranged(v, "tacacs.accounting-queue", 1, 100_000) {
            t.accounting_queue = n as usize;
        }
    }
}

/// One `[[tacacs.servers]]` entry. The port defaults to 49, or 300 with TLS.
fn check_server(s: Spanned<RawServer>, ck: &mut Checker<'_>) -> Server {
    let origin = ck.at(s.span().start);
    let s = s.into_inner();
    let host = s.host.get_ref().trim().to_owned();
    if host.is_empty() || host.contains(char::is_whitespace) {
        ck.problem(s.host.span().start, "tacacs server host must be a name or an address");
    }
    let tls = s.tls.map(|tl| check_tls(tl.into_inner(), &origin, ck));
    let port = match &s.port {
        Some(p) => ck.ranged(p, "tacacs server port", 1, 65_535).unwrap_or(49) as u16,
        None if tls.is_some() => 300,
        None => 49,
    };
    let timeout = s
        .timeout_ms
        .as_ref()
        .and_then(|v| ck.ranged(v, "tacacs server timeout-ms", 50, 60_000))
        .map_or(Duration::from_secs(2), |n| Duration::from_millis(n as u64));
    let key_file = s.key_file.and_then(|k| ck.absolute(&k, "tacacs server key-file"));
    Server { host, port, timeout, key_file, tls, origin }
}

/// The `tls` table of the server configured at `origin`.
fn check_tls(tl: RawTls, origin: &Location, ck: &mut Checker<'_>) -> Tls {
    let tls = Tls {
        ca_file: ck.absolute(&tl.ca_file, "tls.ca-file").unwrap_or_default(),
        client_cert: tl.client_cert.and_then(|c| ck.absolute(&c, "tls.client-cert")),
        client_key: tl.client_key.and_then(|c| ck.absolute(&c, "tls.client-key")),
        server_name: tl.server_name.map(Spanned::into_inner),
    };
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        // Reported at the start of the line the server's table starts on.
        ck.problem(ck.line_start(origin.line), "tls.client-cert and tls.client-key go together");
    }
    tls
}
