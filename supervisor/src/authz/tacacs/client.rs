//! One connection to one TACACS+ server, and the exchanges on it: an authorization or an
//! accounting session (a request and its reply). Packets are built, obfuscated and parsed by
//! the `tacacs-plus-protocol` crate; the transport, the deadlines, single-connect and TLS are
//! here.
//!
//! Every read and write runs under a deadline (socket timeouts set to what is left), a reply
//! longer than 64 KiB is refused before it is read, and the reply must carry the request's
//! session id and sequence number 2. With TLS (RFC 9887), TLS 1.3 only, packets carry
//! `TAC_PLUS_UNENCRYPTED_FLAG` and are not obfuscated.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use tacacs_plus_protocol::{
    accounting, authorization, Argument, Arguments, AuthenticationContext, AuthenticationMethod,
    AuthenticationService, AuthenticationType, FieldText, HeaderInfo, MajorVersion, MinorVersion,
    Packet, PacketFlags, PrivilegeLevel, UserInformation, Version,
};

use super::attrs::Attr;

/// Largest reply body accepted.
const MAX_BODY: u32 = 64 * 1024;

/// What went wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect, or the connection broke.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Nothing (or not everything) arrived in time.
    #[error("no answer in time")]
    Timeout,
    /// The reply could not be decoded: wrong key, garbage, wrong session.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The request could not be built (a field the protocol cannot carry).
    #[error("request cannot be encoded: {0}")]
    Encode(String),
    /// TLS failed, for the reason given (see [`tls_error`]).
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// Whether the connection broke or answered garbage (a server may close one while idle):
    /// a reused connection is then replaced once, where a timeout marks the server down.
    pub fn broke(&self) -> bool {
        matches!(self, ClientError::Io(_) | ClientError::BadReply(_) | ClientError::Tls(_))
    }

    fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
            _ => ClientError::Io(e),
        }
    }
}

/// Where and how to reach a server.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port`, for logs.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Shared secret (none with TLS).
    pub key: Option<Vec<u8>>,
    /// TLS client configuration and the name to verify.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Endpoint").field("name", &self.name).field("tls", &self.tls.is_some()).finish()
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    fn set_deadline(&self, deadline: Instant) -> Result<(), ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout);
        }
        self.tcp().set_read_timeout(Some(left))?;
        self.tcp().set_write_timeout(Some(left))?;
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An open connection.
pub struct Connection {
    stream: Stream,
    /// The server asked for a client certificate and none is configured.
    cert_requested: bool,
    /// The server agreed to single-connect: more sessions may follow on it.
    pub single: bool,
    /// Sessions done on it.
    pub sessions: u32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("single", &self.single).field("sessions", &self.sessions).finish()
    }
}

/// Connects within the deadline (TLS handshake included).
///
/// # Errors
/// [`ClientError`] when nothing answers in time or the handshake fails.
pub fn connect(ep: &Endpoint, deadline: Instant) -> Result<Connection, ClientError> {
    let addrs: Vec<_> = (ep.host.as_str(), ep.port).to_socket_addrs()?.collect();
    let mut last = ClientError::Io(io::Error::new(io::ErrorKind::NotFound, "no address"));
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout);
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                let mut cert_requested = false;
                let stream = match &ep.tls {
                    None => Stream::Tcp(tcp),
                    Some((cfg, name)) => {
                        let conn = rustls::ClientConnection::new(Arc::clone(cfg), name.clone())
                            .map_err(|e| ClientError::Tls(e.to_string()))?;
                        let mut s = Box::new(rustls::StreamOwned::new(conn, tcp));
                        let st = Stream::Tcp(s.sock.try_clone()?);
                        st.set_deadline(deadline)?;
                        CERT_REQUESTED.with(|c| c.set(false));
                        while s.conn.is_handshaking() {
                            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                                let requested = CERT_REQUESTED.with(Cell::get);
                                return Err(tls_error(e, requested, name));
                            }
                        }
                        cert_requested = CERT_REQUESTED.with(Cell::get);
                        Stream::Tls(s)
                    }
                };
                return Ok(Connection { stream, cert_requested, single: false, sessions: 0 });
            }
            Err(e) => last = ClientError::from_io(e),
        }
    }
    Err(last)
}

/// Who and where, for the request bodies.
#[derive(Debug, Clone)]
pub struct Who {
    /// The login user.
    pub user: String,
    /// The terminal (`port`).
    pub port: String,
    /// The client address (`rem_addr`).
    pub rem_addr: String,
    /// Privilege level.
    pub priv_lvl: u8,
}

fn field(s: &str) -> Result<FieldText<'_>, ClientError> {
    FieldText::try_from(s).map_err(|_| ClientError::Encode(format!("{s:?} is not printable ASCII")))
}

/// The `user`, `port` and `rem_addr` fields of a request.
fn user_information(who: &Who) -> Result<UserInformation<'_>, ClientError> {
    UserInformation::new(&who.user, field(&who.port)?, field(&who.rem_addr)?)
        .ok_or_else(|| ClientError::Encode("user, port or rem_addr too long".into()))
}

/// The authentication context every request of ours carries.
fn context(who: &Who) -> AuthenticationContext {
    AuthenticationContext {
        privilege_level: PrivilegeLevel::new(who.priv_lvl).unwrap_or_default(),
        authentication_type: AuthenticationType::NotSet,
        service: AuthenticationService::Login,
    }
}

fn arguments(attrs: &[Attr]) -> Result<Vec<Argument<'_>>, ClientError> {
    attrs
        .iter()
        .map(|a| {
            Argument::new(field(&a.name)?, field(&a.value)?, a.mandatory)
                .map_err(|e| ClientError::Encode(format!("{}: {e:?}", a.name)))
        })
        .collect()
}

fn header(ep: &Endpoint, single: bool, session: u32) -> HeaderInfo {
    let mut flags = PacketFlags::empty();
    if ep.key.is_none() {
        flags |= PacketFlags::UNENCRYPTED;
    }
    if single {
        flags |= PacketFlags::SINGLE_CONNECTION;
    }
    HeaderInfo::new(Version::new(MajorVersion::RFC8907, MinorVersion::Default), 1, flags, session)
}

/// A decoded authorization reply.
#[derive(Debug, Clone)]
pub struct AuthzReply {
    /// The status.
    pub status: authorization::Status,
    /// The message for the user.
    pub server_msg: String,
    /// The message for the log.
    pub data: String,
    /// Reply attributes.
    pub args: Vec<Attr>,
}

impl Connection {
    /// What a failed read or write on this connection means.
    fn io_error(&self, e: io::Error, ep: &Endpoint) -> ClientError {
        match &ep.tls {
            Some((_, name)) if !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                tls_error(e, self.cert_requested, name)
            }
            _ => ClientError::from_io(e),
        }
    }

    /// After a handshake, waits up to `wait` for the server to refuse it (a server that
    /// demands a client certificate says so only after the client's last handshake message).
    ///
    /// # Errors
    /// [`ClientError::Tls`] naming why the server refused the connection.
    pub fn settle(&mut self, ep: &Endpoint, wait: std::time::Duration) -> Result<(), ClientError> {
        if ep.tls.is_none() {
            return Ok(());
        }
        self.stream.set_deadline(Instant::now() + wait)?;
        let mut one = [0u8; 1];
        match self.stream.read(&mut one) {
            Ok(0) => Err(self.io_error(io::Error::from(io::ErrorKind::UnexpectedEof), ep)),
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(()),
            Err(e) => Err(self.io_error(e, ep)),
        }
    }

    /// The TLS version and cipher suite, with TLS.
    pub fn tls_summary(&self) -> Option<String> {
        match &self.stream {
            Stream::Tls(s) => Some(format!(
                "{:?}, {:?}",
                s.conn.protocol_version()?,
                s.conn.negotiated_cipher_suite()?.suite()
            )),
            Stream::Tcp(_) => None,
        }
    }

    /// Sends one encoded request and reads the reply to its `session`, within the deadline.
    fn exchange<R>(&mut self, ep: &Endpoint, request: &[u8], session: u32, deadline: Instant) -> Result<(Packet<R>, bool), ClientError>
    where
        R: tacacs_plus_protocol::PacketBody + for<'a> tacacs_plus_protocol::Deserialize<'a>,
    {
        self.stream.set_deadline(deadline)?;
        self.write_packet(ep, request)?;
        let mut reply = vec![0u8; HeaderInfo::HEADER_SIZE_BYTES];
        if let Err(e) = self.stream.read_exact(&mut reply) {
            return Err(self.io_error(e, ep));
        }
        let len = body_length(&reply)?;
        reply.resize(HeaderInfo::HEADER_SIZE_BYTES + len, 0);
        if let Err(e) = self.stream.read_exact(&mut reply[HeaderInfo::HEADER_SIZE_BYTES..]) {
            return Err(self.io_error(e, ep));
        }
        decode(ep, &mut reply, session)
    }

    /// Writes a whole packet (and flushes TLS).
    fn write_packet(&mut self, ep: &Endpoint, buf: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(buf).and_then(|()| self.stream.flush()).map_err(|e| self.io_error(e, ep))
    }

    /// Makes the connection non-blocking, for the supervisor's loop (see `inline`); it never
    /// goes back to blocking use.
    ///
    /// # Errors
    /// The `ioctl`'s.
    pub fn into_nonblocking(self) -> io::Result<Self> {
        self.stream.tcp().set_nonblocking(true)?;
        Ok(self)
    }

    /// The socket, for `poll`.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.stream.tcp().as_fd()
    }

    /// On a non-blocking connection: sends an authorization request without waiting for
    /// its reply, which [`Connection::read_authorization`] reads. Returns its session id.
    ///
    /// # Errors
    /// [`ClientError`] when it cannot be encoded, or is not all written at once (a full
    /// socket buffer included: the connection is then of no further use).
    pub fn send_authorization(&mut self, ep: &Endpoint, ask_single: bool, who: &Who, attrs: &[Attr]) -> Result<u32, ClientError> {
        let (buf, session) = self.authorization_request(ep, ask_single, who, attrs)?;
        self.write_packet(ep, &buf)?;
        Ok(session)
    }

    /// On a non-blocking connection: reads what has arrived of the reply to `session` into
    /// `got`; the reply once it is whole, `None` before.
    ///
    /// # Errors
    /// [`ClientError`] when the connection fails or closes, or the reply is bad (more than
    /// one packet included: one request was sent).
    pub fn read_authorization(&mut self, ep: &Endpoint, session: u32, got: &mut Vec<u8>) -> Result<Option<AuthzReply>, ClientError> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(self.io_error(io::ErrorKind::UnexpectedEof.into(), ep)),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e, ep)),
            }
            if got.len() < HeaderInfo::HEADER_SIZE_BYTES {
                continue;
            }
            let whole = HeaderInfo::HEADER_SIZE_BYTES + body_length(got)?;
            if got.len() > whole {
                return Err(ClientError::BadReply(format!("{} bytes more than the one reply", got.len() - whole)));
            }
            if got.len() == whole {
                let (p, single) = decode(ep, got, session)?;
                self.after_session(single);
                return Ok(Some(authz_reply(&p)));
            }
        }
    }

    fn after_session(&mut self, single_reply: bool) {
        if self.sessions == 0 {
            self.single = single_reply;
        }
        self.sessions += 1;
    }

    /// Authorizes a command.
    ///
    /// # Errors
    /// [`ClientError`] when no valid reply arrives in time.
    pub fn authorize(
        &mut self,
        ep: &Endpoint,
        ask_single: bool,
        who: &Who,
        attrs: &[Attr],
        deadline: Instant,
    ) -> Result<AuthzReply, ClientError> {
        let (buf, session) = self.authorization_request(ep, ask_single, who, attrs)?;
        let (p, single) = self.exchange(ep, &buf, session, deadline)?;
        self.after_session(single);
        Ok(authz_reply(&p))
    }

    /// An authorization request, encoded, and its session id.
    fn authorization_request(&self, ep: &Endpoint, ask_single: bool, who: &Who, attrs: &[Attr]) -> Result<(Vec<u8>, u32), ClientError> {
        let session = random_u32();
        let args = arguments(attrs)?;
        let args = Arguments::new(&args).ok_or_else(|| ClientError::Encode("too many arguments".into()))?;
        let user = user_information(who)?;
        let body = authorization::Request::new(AuthenticationMethod::TacacsPlus, context(who), user, args);
        let packet = Packet::new(header(ep, ask_single && self.sessions == 0, session), body);
        Ok((encode(ep, packet)?, session))
    }

    /// Sends an accounting record.
    ///
    /// # Errors
    /// [`ClientError`] when no valid reply arrives in time.
    pub fn account(
        &mut self,
        ep: &Endpoint,
        ask_single: bool,
        who: &Who,
        start: bool,
        attrs: &[Attr],
        deadline: Instant,
    ) -> Result<accounting::Status, ClientError> {
        let session = random_u32();
        let args = arguments(attrs)?;
        let args = Arguments::new(&args).ok_or_else(|| ClientError::Encode("too many arguments".into()))?;
        let user = user_information(who)?;
        let body = accounting::Request::new(
            if start { accounting::Flags::StartRecord } else { accounting::Flags::StopRecord },
            AuthenticationMethod::TacacsPlus,
            context(who),
            user,
            args,
        );
        let packet = Packet::new(header(ep, ask_single && self.sessions == 0, session), body);
        let (p, single): (Packet<accounting::ReplyOwned>, bool) = self.exchange(ep, &encode(ep, packet)?, session, deadline)?;
        self.after_session(single);
        Ok(p.body().status)
    }
}

/// A packet on the wire: obfuscated with the key, or marked unencrypted (TLS).
fn encode<B>(ep: &Endpoint, packet: Packet<B>) -> Result<Vec<u8>, ClientError>
where
    B: tacacs_plus_protocol::PacketBody + tacacs_plus_protocol::Serialize,
{
    let mut buf = vec![0u8; packet.wire_size()];
    let n = match &ep.key {
        Some(k) => packet.serialize(k, &mut buf),
        None => packet.serialize_unobfuscated(&mut buf),
    }
    .map_err(|e| ClientError::Encode(format!("{e:?}")))?;
    buf.truncate(n);
    Ok(buf)
}

/// The body length a reply's header announces, refused over [`MAX_BODY`].
fn body_length(header: &[u8]) -> Result<usize, ClientError> {
    let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if len > MAX_BODY {
        return Err(ClientError::BadReply(format!("reply body of {len} bytes")));
    }
    Ok(len as usize)
}

/// A whole reply, decoded: it must belong to `session` and carry sequence number 2. Also
/// whether the server agreed to single-connect.
fn decode<R>(ep: &Endpoint, reply: &mut [u8], session: u32) -> Result<(Packet<R>, bool), ClientError>
where
    R: tacacs_plus_protocol::PacketBody + for<'a> tacacs_plus_protocol::Deserialize<'a>,
{
    let got_session = u32::from_be_bytes([reply[4], reply[5], reply[6], reply[7]]);
    if got_session != session {
        return Err(ClientError::BadReply(format!("session id {got_session:#x} instead of {session:#x}")));
    }
    let p: Packet<R> = match &ep.key {
        Some(k) => Packet::deserialize(k, reply),
        None => Packet::deserialize_unobfuscated(reply),
    }
    .map_err(|e| ClientError::BadReply(format!("{e:?} (wrong key?)")))?;
    if p.header().sequence_number() != 2 {
        return Err(ClientError::BadReply(format!("sequence number {}", p.header().sequence_number())));
    }
    let single = p.header().flags().contains(PacketFlags::SINGLE_CONNECTION);
    Ok((p, single))
}

fn authz_reply(p: &Packet<authorization::ReplyOwned>) -> AuthzReply {
    let b = p.body();
    AuthzReply {
        status: b.status,
        server_msg: b.server_message.clone(),
        data: b.data.clone(),
        args: b
            .arguments
            .iter()
            .map(|a| Attr { name: a.name().to_string(), value: a.value().to_string(), mandatory: a.mandatory() })
            .collect(),
    }
}

/// A session id (RFC 8907: cryptographically strong random), from a pool of this thread's
/// that one `getrandom` fills for 64 of them.
fn random_u32() -> u32 {
    thread_local! {
        static POOL: std::cell::RefCell<(usize, [u8; 256])> = const { std::cell::RefCell::new((256, [0; 256])) };
    }
    POOL.with_borrow_mut(|(used, bytes)| {
        if *used + 4 > bytes.len() {
            if crate::sys::random_fill(bytes).is_err() {
                return (crate::sys::random_u64().unwrap_or_else(|_| u64::from(std::process::id())) & 0xffff_ffff) as u32;
            }
            *used = 0;
        }
        let id = u32::from_ne_bytes([bytes[*used], bytes[*used + 1], bytes[*used + 2], bytes[*used + 3]]);
        // Each id used once, and not left in memory.
        bytes[*used..*used + 4].fill(0);
        *used += 4;
        id
    })
}

thread_local! {
    /// Set during a handshake on this thread when the server asked for a client certificate
    /// and the configuration has none (see [`NoClientCert`]).
    static CERT_REQUESTED: Cell<bool> = const { Cell::new(false) };
}

/// The client certificate "resolver" of a configuration without one: it presents none, and
/// notes that the server asked, so that the failure that follows can be named.
#[derive(Debug)]
struct NoClientCert;

impl rustls::client::ResolvesClientCert for NoClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        CERT_REQUESTED.with(|c| c.set(true));
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// Names why a TLS connection failed, for the operator: a client certificate the server
/// requires and the configuration lacks; the server's certificate and why it fails
/// verification; a version or cipher mismatch; a server that does not speak TLS.
pub fn tls_error(e: io::Error, cert_requested: bool, name: &ServerName<'_>) -> ClientError {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let missing_cert = "the server requires a client certificate and none is configured (tls.client-cert, tls.client-key)";
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<E>());
    let why = match inner {
        Some(E::AlertReceived(A::CertificateRequired)) => missing_cert.to_owned(),
        Some(E::AlertReceived(a)) if cert_requested => format!("{missing_cert} (alert {a:?})"),
        Some(E::AlertReceived(a @ (A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied | A::CertificateExpired | A::CertificateRevoked | A::UnsupportedCertificate))) => {
            format!("the server refused the client certificate (alert {a:?})")
        }
        Some(E::AlertReceived(a @ (A::ProtocolVersion | A::HandshakeFailure | A::InsufficientSecurity | A::IllegalParameter))) => {
            format!("version or cipher mismatch: the server refused the handshake (alert {a:?}); this client speaks TLS 1.3 only (RFC 9887)")
        }
        Some(E::AlertReceived(a)) => format!("the server ended the handshake (alert {a:?})"),
        Some(E::InvalidCertificate(c)) => {
            let what = match c {
                C::UnknownIssuer => "it is not issued by a CA in tls.ca-file".to_owned(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    format!("it is not valid for the name {} (tls.server-name)", name.to_str())
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
                C::Revoked => "it is revoked".to_owned(),
                C::BadSignature => "its signature is bad".to_owned(),
                other => format!("{other:?}"),
            };
            format!("the server's certificate failed verification: {what}")
        }
        Some(E::PeerIncompatible(p)) => {
            format!("version or cipher mismatch: {p:?}; this client speaks TLS 1.3 only (RFC 9887)")
        }
        Some(E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. }) => {
            "the server does not speak TLS (a plain TACACS+ port?)".to_owned()
        }
        Some(other) => other.to_string(),
        None if cert_requested && matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
            format!("{missing_cert} (the server closed the connection)")
        }
        None if e.kind() == io::ErrorKind::UnexpectedEof => "the server closed the connection during TLS".to_owned(),
        None if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return ClientError::Timeout,
        None => return ClientError::Io(e),
    };
    ClientError::Tls(why)
}

/// A TLS 1.3 client configuration (RFC 9887): the server must chain to `ca_file`; a client
/// certificate is presented when given.
///
/// # Errors
/// A message when a file cannot be read or parsed.
pub fn tls_config(ca_file: &str, client: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("{ca_file}: {e}"))?;
    for c in certs {
        let c = c.map_err(|e| format!("{ca_file}: {e}"))?;
        roots.add(c).map_err(|e| format!("{ca_file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{ca_file}: no certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let cfg = match client {
        None => builder.with_client_cert_resolver(Arc::new(NoClientCert)),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{cert}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
        }
    };
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(e: rustls::Error, requested: bool) -> String {
        let name = ServerName::try_from("tacacs.example.net").expect("name");
        tls_error(io::Error::new(io::ErrorKind::InvalidData, e), requested, &name).to_string()
    }

    #[test]
    fn tls_failures_name_their_cause() {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        let missing = "TLS: the server requires a client certificate and none is configured (tls.client-cert, tls.client-key)";
        assert_eq!(named(E::AlertReceived(A::CertificateRequired), false), missing);
        assert!(named(E::AlertReceived(A::HandshakeFailure), true).starts_with(missing));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        let name = ServerName::try_from("h").expect("name");
        assert!(tls_error(eof, true, &name).to_string().starts_with(missing), "a server that just closes");
        assert_eq!(
            named(E::InvalidCertificate(C::UnknownIssuer), false),
            "TLS: the server's certificate failed verification: it is not issued by a CA in tls.ca-file"
        );
        assert!(named(E::InvalidCertificate(C::NotValidForName), false).contains("not valid for the name tacacs.example.net"));
        assert!(named(E::InvalidCertificate(C::Expired), false).ends_with("it has expired"));
        assert!(named(E::AlertReceived(A::ProtocolVersion), false).starts_with("TLS: version or cipher mismatch"));
        assert!(named(E::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon), false)
            .starts_with("TLS: version or cipher mismatch"));
        assert!(named(E::AlertReceived(A::BadCertificate), false).contains("refused the client certificate"));
        let plain = E::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(named(plain, false).contains("does not speak TLS"));
        let slow = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(matches!(tls_error(slow, false, &name), ClientError::Timeout));
    }
}
