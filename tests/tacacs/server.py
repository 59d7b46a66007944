#!/usr/bin/env python3
"""A small TACACS+ test server (RFC 8907, and RFC 9887 for TLS 1.3).

Written from the RFC text for the pam_session_wrapper test suite; standard
library only.  It answers AUTHORIZATION and ACCOUNTING requests according to a
TOML rules file and writes one JSON event per line for everything it sees.
Authentication is not implemented: every authentication packet is answered
with an authentication REPLY of status ERROR.

    python3 server.py --listen 127.0.0.1:0 --key SECRET --rules RULES.toml \
        --events EVENTS.jsonl [--tls-cert CERT --tls-key KEY [--tls-client-ca CA]] \
        [--single-connect] [--idle-timeout SECONDS] [--max-length BYTES]

On start it prints exactly one line "listening HOST:PORT" to stdout.  SIGTERM
and SIGINT stop it cleanly (exit status 0).  See README.md for the rules and
event formats.

This is a TEST server: it is deliberately permissive about what it lets a
rules file do (garbage replies, silence, ...) and makes no attempt at being a
production AAA server.
"""

import argparse
import hashlib
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import tomllib

# ---------------------------------------------------------------------------
# Protocol constants (RFC 8907 section 4.1 and the per-type sections)
# ---------------------------------------------------------------------------

HEADER_LEN = 12

MAJOR_VER = 0xC                # TAC_PLUS_MAJOR_VER, the high nibble of byte 0
MINOR_VER_DEFAULT = 0x0        # TAC_PLUS_MINOR_VER_DEFAULT
MINOR_VER_ONE = 0x1            # TAC_PLUS_MINOR_VER_ONE (PAP/CHAP/MS-CHAP authentication only)

TYPE_AUTHEN = 0x01
TYPE_AUTHOR = 0x02
TYPE_ACCT = 0x03
TYPE_NAMES = {TYPE_AUTHEN: "authentication", TYPE_AUTHOR: "authorization", TYPE_ACCT: "accounting"}

# Header flags.  Only these two bits are defined; RFC 8907 4.1: "All other bits
# MUST be ignored when reading, and SHOULD be set to zero when writing."
FLAG_UNENCRYPTED = 0x01        # TAC_PLUS_UNENCRYPTED_FLAG: body is NOT obfuscated
FLAG_SINGLE_CONNECT = 0x04     # TAC_PLUS_SINGLE_CONNECT_FLAG

# Authorization REPLY status (RFC 8907 6.2)
AUTHOR_PASS_ADD = 0x01
AUTHOR_PASS_REPL = 0x02
AUTHOR_FAIL = 0x10
AUTHOR_ERROR = 0x11
AUTHOR_FOLLOW = 0x21
AUTHOR_STATUS_NAMES = {AUTHOR_PASS_ADD: "PASS_ADD", AUTHOR_PASS_REPL: "PASS_REPL",
                       AUTHOR_FAIL: "FAIL", AUTHOR_ERROR: "ERROR", AUTHOR_FOLLOW: "FOLLOW"}

# Accounting REQUEST flags and REPLY status (RFC 8907 7.1, 7.2, 7.3)
ACCT_FLAG_MORE = 0x01          # deprecated; not a valid value in RFC 8907
ACCT_FLAG_START = 0x02
ACCT_FLAG_STOP = 0x04
ACCT_FLAG_WATCHDOG = 0x08
ACCT_SUCCESS = 0x01
ACCT_ERROR = 0x02
ACCT_STATUS_NAMES = {ACCT_SUCCESS: "SUCCESS", ACCT_ERROR: "ERROR"}
# RFC 8907 7.2: the only valid combinations of START/STOP/WATCHDOG.  Anything
# else is INVALID and the server MUST answer ERROR.
ACCT_VALID_FLAGS = {ACCT_FLAG_START, ACCT_FLAG_STOP, ACCT_FLAG_WATCHDOG,
                    ACCT_FLAG_WATCHDOG | ACCT_FLAG_START}

# Authentication REPLY status (RFC 8907 5.2); we only ever send ERROR.
AUTHEN_STATUS_ERROR = 0x07

# Enumerations that appear in authorization/accounting request bodies.
# RFC 8907 3.6: an option not listed in the document -> ERROR.
AUTHEN_METHODS = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x10, 0x11, 0x20}
AUTHEN_TYPES = {0x00, 0x01, 0x02, 0x03, 0x05, 0x06}
AUTHEN_SERVICES = {0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x08, 0x09}
PRIV_LVL_MAX = 15

# Variable-length fields carried with a one-byte length (user, port, rem_addr,
# every argument, the argument count) are limited to 255 by construction; the
# two-byte server_msg/data lengths of replies to 65535.
MAX_U8 = 255
MAX_U16 = 65535


class BadPacket(Exception):
    """A packet we refuse to process.

    reply: what to send back before closing:
      "none"   - nothing (just close),
      "header" - RFC 8907 3.6: the identical cleartext header with seq_no+1 and
                 length 0 (used when the packet type cannot be trusted),
      "error"  - a REPLY of the packet's own type with status ERROR.
    """

    def __init__(self, reason, reply="none"):
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class PeerClosed(Exception):
    """The peer closed the connection cleanly between packets."""


# ---------------------------------------------------------------------------
# Header and obfuscation
# ---------------------------------------------------------------------------

class Header:
    """The 12-byte cleartext header (RFC 8907 4.1).

    byte 0: major version (high nibble) | minor version (low nibble)
    byte 1: type, byte 2: seq_no, byte 3: flags,
    bytes 4-7: session_id, bytes 8-11: body length (both network order).
    """

    __slots__ = ("version", "type", "seq_no", "flags", "session_id", "length")
    FMT = "!BBBBII"

    def __init__(self, version, type_, seq_no, flags, session_id, length):
        self.version = version
        self.type = type_
        self.seq_no = seq_no
        self.flags = flags
        self.session_id = session_id
        self.length = length

    @property
    def major(self):
        return self.version >> 4

    @property
    def minor(self):
        return self.version & 0x0F

    @classmethod
    def unpack(cls, raw):
        return cls(*struct.unpack(cls.FMT, raw))

    def pack(self):
        return struct.pack(self.FMT, self.version, self.type, self.seq_no, self.flags,
                           self.session_id, self.length)


def pseudo_pad(session_id, key, version, seq_no, length):
    """RFC 8907 4.5 pseudo pad, `length` bytes long.

        MD5_1 = MD5{session_id, key, version, seq_no}
        MD5_n = MD5{session_id, key, version, seq_no, MD5_n-1}
        pseudo_pad = MD5_1 || MD5_2 || ... truncated to len(data)

    session_id is the 4-byte network-order value from the header, `version` is
    the whole version byte (major and minor nibbles) and seq_no the one-byte
    sequence number of THIS packet.  So every packet of a session (request
    with seq 1, reply with seq 2, ...) uses a different pad.
    """
    prefix = struct.pack("!I", session_id) + key + bytes([version, seq_no])
    pad = bytearray()
    prev = b""
    while len(pad) < length:
        prev = hashlib.md5(prefix + prev).digest()
        pad += prev
    return bytes(pad[:length])


def obfuscate(header, body, key):
    """XOR the body with the pseudo pad.  The same operation de-obfuscates."""
    if not body:
        return body
    pad = pseudo_pad(header.session_id, key, header.version, header.seq_no, len(body))
    return (int.from_bytes(body, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(body), "big")


# ---------------------------------------------------------------------------
# Body parsing.  Every length is checked against the body before it is used.
# ---------------------------------------------------------------------------

def _split_fields(body, fixed, counts_at, arg_cnt_at):
    """Common layout of authorization and accounting REQUEST bodies.

    `fixed` one-byte fields, of which the three at `counts_at` are the
    user_len, port_len, rem_addr_len and the one at `arg_cnt_at` is arg_cnt;
    then arg_cnt one-byte argument lengths; then user, port, rem_addr and
    the arguments back to back.

    RFC 8907 4.5: after de-obfuscation "the lengths of the component values in
    the packet are summed.  If the sum is not identical to the cleartext
    datalength value from the header, the packet MUST be discarded and an
    ERROR signaled."  With a wrong key this is what usually fails.
    """
    if len(body) < fixed:
        raise BadPacket("body shorter than its fixed part (%d < %d bytes)" % (len(body), fixed), "error")
    head = body[:fixed]
    arg_cnt = head[arg_cnt_at]
    if len(body) < fixed + arg_cnt:
        raise BadPacket("body too short for %d argument lengths" % arg_cnt, "error")
    arg_lens = list(body[fixed:fixed + arg_cnt])
    user_len, port_len, rem_len = (head[i] for i in counts_at)
    expected = fixed + arg_cnt + user_len + port_len + rem_len + sum(arg_lens)
    if expected != len(body):
        raise BadPacket("field lengths sum to %d but the header length is %d "
                        "(wrong key or malformed body)" % (expected, len(body)), "error")
    pos = fixed + arg_cnt
    fields = []
    for n in (user_len, port_len, rem_len):
        fields.append(body[pos:pos + n])
        pos += n
    args = []
    for n in arg_lens:
        args.append(body[pos:pos + n])
        pos += n
    return head, fields, args


def _check_authen_fields(method, priv_lvl, authen_type, service):
    if method not in AUTHEN_METHODS:
        raise BadPacket("unknown authen_method 0x%02x" % method, "error")
    if priv_lvl > PRIV_LVL_MAX:
        raise BadPacket("priv_lvl %d out of range 0..15" % priv_lvl, "error")
    if authen_type not in AUTHEN_TYPES:
        raise BadPacket("unknown authen_type 0x%02x" % authen_type, "error")
    if service not in AUTHEN_SERVICES:
        raise BadPacket("unknown authen_service 0x%02x" % service, "error")


def parse_author_request(body):
    """RFC 8907 6.1 authorization REQUEST:

        authen_method | priv_lvl | authen_type | authen_service
        user_len | port_len | rem_addr_len | arg_cnt
        arg_1_len ... arg_N_len
        user, port, rem_addr, arg_1 ... arg_N
    """
    head, (user, port, rem), args = _split_fields(body, 8, (4, 5, 6), 7)
    method, priv_lvl, authen_type, service = head[0], head[1], head[2], head[3]
    _check_authen_fields(method, priv_lvl, authen_type, service)
    return {"authen_method": method, "priv_lvl": priv_lvl, "authen_type": authen_type,
            "authen_service": service, "user": user, "port": port, "rem_addr": rem, "args": args}


def parse_acct_request(body):
    """RFC 8907 7.1 accounting REQUEST:

        flags | authen_method | priv_lvl | authen_type
        authen_service | user_len | port_len | rem_addr_len
        arg_cnt | arg_1_len ... arg_N_len
        user, port, rem_addr, arg_1 ... arg_N
    """
    head, (user, port, rem), args = _split_fields(body, 9, (5, 6, 7), 8)
    flags, method, priv_lvl, authen_type, service = head[0], head[1], head[2], head[3], head[4]
    _check_authen_fields(method, priv_lvl, authen_type, service)
    return {"flags": flags, "authen_method": method, "priv_lvl": priv_lvl,
            "authen_type": authen_type, "authen_service": service,
            "user": user, "port": port, "rem_addr": rem, "args": args}


def check_authen_start(body):
    """RFC 8907 5.1 authentication START, only checked for consistency:

        action | priv_lvl | authen_type | authen_service
        user_len | port_len | rem_addr_len | data_len
        user, port, rem_addr, data
    """
    if len(body) < 8:
        raise BadPacket("authentication START shorter than 8 bytes", "error")
    expected = 8 + body[4] + body[5] + body[6] + body[7]
    if expected != len(body):
        raise BadPacket("authentication START field lengths sum to %d but the header "
                        "length is %d (wrong key or malformed body)" % (expected, len(body)), "error")


# ---------------------------------------------------------------------------
# Reply bodies
# ---------------------------------------------------------------------------

def build_author_reply(status, server_msg=b"", data=b"", args=()):
    """RFC 8907 6.2 authorization REPLY:

        status | arg_cnt | server_msg_len (2) | data_len (2)
        arg_1_len ... arg_N_len
        server_msg, data, arg_1 ... arg_N
    """
    args = list(args)
    if len(args) > MAX_U8 or any(len(a) > MAX_U8 for a in args):
        raise ValueError("at most 255 reply args of at most 255 bytes each")
    if len(server_msg) > MAX_U16 or len(data) > MAX_U16:
        raise ValueError("server_msg and data are at most 65535 bytes")
    return (struct.pack("!BBHH", status, len(args), len(server_msg), len(data))
            + bytes(len(a) for a in args) + server_msg + data + b"".join(args))


def build_acct_reply(status, server_msg=b"", data=b""):
    """RFC 8907 7.3 accounting REPLY (note: the status comes AFTER the lengths):

        server_msg_len (2) | data_len (2) | status
        server_msg, data
    """
    return struct.pack("!HHB", len(server_msg), len(data), status) + server_msg + data


def build_authen_reply(status, server_msg=b"", data=b""):
    """RFC 8907 5.2 authentication REPLY:

        status | flags | server_msg_len (2) | data_len (2)
        server_msg, data
    """
    return struct.pack("!BBHH", status, 0, len(server_msg), len(data)) + server_msg + data


def error_reply_body(ptype, msg):
    if ptype == TYPE_AUTHOR:
        return build_author_reply(AUTHOR_ERROR, msg)
    if ptype == TYPE_ACCT:
        return build_acct_reply(ACCT_ERROR, msg)
    return build_authen_reply(AUTHEN_STATUS_ERROR, msg)


# ---------------------------------------------------------------------------
# Event log
# ---------------------------------------------------------------------------

def text_field(raw):
    """Bytes -> str for the event log: UTF-8, invalid sequences replaced by U+FFFD."""
    return raw.decode("utf-8", "replace")


def is_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def describe_fields(req):
    """user/port/rem_addr/args for an event.  When any of them is not valid
    UTF-8, the exact bytes are also given in hex: "user_hex", "port_hex",
    "rem_addr_hex" (strings) and "args_hex" (a list parallel to "args")."""
    out = {}
    for name in ("user", "port", "rem_addr"):
        out[name] = text_field(req[name])
        if not is_utf8(req[name]):
            out[name + "_hex"] = req[name].hex()
    out["args"] = [text_field(a) for a in req["args"]]
    if not all(is_utf8(a) for a in req["args"]):
        out["args_hex"] = [a.hex() for a in req["args"]]
    return out


class EventLog:
    """One JSON object per line, appended and flushed immediately.  The lock is
    the only state shared between connection threads."""

    def __init__(self, path):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")

    def emit(self, event, **fields):
        record = {"event": event, "time": round(time.time(), 6)}
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, sort_keys=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def final(self, event, **fields):
        """Write a last record and keep the lock, so that no other thread can
        write a partial line while the process exits."""
        record = {"event": event, "time": round(time.time(), 6)}
        record.update(fields)
        self._lock.acquire()
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

AUTHOR_ACTIONS = {"permit", "permit-repl", "deny", "error", "follow", "no-answer", "close", "garbage"}
ACCT_ACTIONS = {"success", "error", "no-answer", "close"}
GARBAGE_KINDS = {"bad-version", "random", "truncated"}
RULE_KEYS = {"name", "user", "cmd", "args", "service", "action", "message", "delay_ms",
             "reply_args", "data", "garbage"}
ACCT_KEYS = {"action", "message", "delay_ms"}


class ConfigError(Exception):
    """Bad command line or configuration: reported on stderr, exit status 2."""


class RulesError(ConfigError):
    def __str__(self):
        return "rules: %s" % super().__str__()


class Rule:
    def __init__(self, index, table):
        unknown = set(table) - RULE_KEYS
        if unknown:
            raise RulesError("rule %d: unknown keys %s" % (index, sorted(unknown)))
        self.name = table.get("name", "rule-%d" % index)
        self.action = table.get("action")
        if self.action not in AUTHOR_ACTIONS:
            raise RulesError("rule %r: action must be one of %s" % (self.name, sorted(AUTHOR_ACTIONS)))
        self.patterns = {}
        for key in ("user", "cmd", "args"):
            if key in table:
                try:
                    self.patterns[key] = re.compile(table[key])
                except (re.error, TypeError) as e:
                    raise RulesError("rule %r: bad %s regex: %s" % (self.name, key, e))
        self.service = table.get("service")
        self.message = _encode(table.get("message", ""), "message", self.name, MAX_U16)
        self.data = _encode(table.get("data", ""), "data", self.name, MAX_U16)
        self.delay = _delay(table.get("delay_ms", 0), self.name)
        reply_args = table.get("reply_args", [])
        if not isinstance(reply_args, list) or len(reply_args) > MAX_U8:
            raise RulesError("rule %r: reply_args must be a list of at most 255 strings" % self.name)
        self.reply_args = [_encode(a, "reply_args", self.name, MAX_U8) for a in reply_args]
        self.garbage = table.get("garbage", "bad-version")
        if self.garbage not in GARBAGE_KINDS:
            raise RulesError("rule %r: garbage must be one of %s" % (self.name, sorted(GARBAGE_KINDS)))

    def matches(self, user, cmd, cmd_args, service):
        """All present conditions must hold.  Regexes use re.search (anchor
        them yourself).  A rule with `cmd` (or `service`) never matches a
        request that has no cmd= (service=) argument; `args` is matched
        against the cmd-arg values joined by single spaces ("" if none)."""
        if "user" in self.patterns and not self.patterns["user"].search(user):
            return False
        if "cmd" in self.patterns and (cmd is None or not self.patterns["cmd"].search(cmd)):
            return False
        if "args" in self.patterns and not self.patterns["args"].search(" ".join(cmd_args)):
            return False
        if self.service is not None and service != self.service:
            return False
        return True


def _encode(value, what, name, limit):
    if not isinstance(value, str):
        raise RulesError("rule %r: %s must be a string" % (name, what))
    raw = value.encode("utf-8")
    if len(raw) > limit:
        raise RulesError("rule %r: %s longer than %d bytes" % (name, what, limit))
    return raw


def _delay(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RulesError("%s: delay_ms must be a non-negative integer" % name)
    return value / 1000.0


class Rules:
    def __init__(self, path):
        with open(path, "rb") as f:
            try:
                doc = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise RulesError("%s: %s" % (path, e))
        unknown = set(doc) - {"default", "rule", "accounting"}
        if unknown:
            raise RulesError("unknown top-level keys %s" % sorted(unknown))
        self.default = doc.get("default", "deny")
        if self.default not in ("permit", "deny"):
            raise RulesError("default must be 'permit' or 'deny'")
        rules = doc.get("rule", [])
        if not isinstance(rules, list):
            raise RulesError("use [[rule]] tables")
        self.rules = [Rule(i, t) for i, t in enumerate(rules)]
        acct = doc.get("accounting", {})
        unknown = set(acct) - ACCT_KEYS
        if unknown:
            raise RulesError("accounting: unknown keys %s" % sorted(unknown))
        self.acct_action = acct.get("action", "success")
        if self.acct_action not in ACCT_ACTIONS:
            raise RulesError("accounting: action must be one of %s" % sorted(ACCT_ACTIONS))
        self.acct_message = _encode(acct.get("message", ""), "message", "accounting", MAX_U16)
        self.acct_delay = _delay(acct.get("delay_ms", 0), "accounting")

    def match(self, req):
        """First matching rule, or None."""
        user = text_field(req["user"])
        cmd, cmd_args, service = None, [], None
        for raw in req["args"]:
            attr, value = split_av(text_field(raw))
            if attr == "cmd" and cmd is None:
                cmd = value
            elif attr == "cmd-arg":
                cmd_args.append(value)
            elif attr == "service" and service is None:
                service = value
        for rule in self.rules:
            if rule.matches(user, cmd, cmd_args, service):
                return rule
        return None


def split_av(av):
    """Split an attribute-value pair at the first '=' (mandatory) or '*'
    (optional) separator, RFC 8907 6.1.  Returns (attribute, value); an
    argument without a separator is (whole, None)."""
    for i, ch in enumerate(av):
        if ch in "=*":
            return av[:i], av[i + 1:]
    return av, None


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

def fmt_peer(addr):
    host, port = addr[0], addr[1]
    return ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))


class Connection(threading.Thread):
    """One client connection, in its own daemon thread.  Sessions on one
    connection are handled one after the other."""

    def __init__(self, server, sock, peer, conn_id):
        super().__init__(name="conn-%d" % conn_id, daemon=True)
        self.server = server
        self.sock = sock
        self.peer = peer
        self.conn_id = conn_id
        self.tls = server.tls_ctx is not None
        self.single = False        # single-connect mode negotiated?
        self.packets = 0           # client packets seen on this connection

    # -- helpers ------------------------------------------------------------

    def emit(self, event, **fields):
        base = {"conn": self.conn_id, "peer": self.peer}
        base.update(fields)
        self.server.events.emit(event, **base)

    def recv_exact(self, n, at_boundary):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                if at_boundary and not buf:
                    raise PeerClosed()
                raise BadPacket("connection closed inside a packet (%d of %d bytes)" % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def reply_flags(self):
        flags = 0
        if self.single:
            flags |= FLAG_SINGLE_CONNECT
        if self.tls or not self.server.key:
            # Inside TLS the body is never obfuscated (RFC 9887 section 4), and
            # with an empty key we have nothing to obfuscate with.
            flags |= FLAG_UNENCRYPTED
        return flags

    def send_reply(self, req_hdr, body):
        """Reply of the same type/version/session, seq_no + 1 (servers only
        send even sequence numbers)."""
        hdr = Header(req_hdr.version, req_hdr.type, req_hdr.seq_no + 1, self.reply_flags(),
                     req_hdr.session_id, len(body))
        if not hdr.flags & FLAG_UNENCRYPTED:
            body = obfuscate(hdr, body, self.server.key)
        self.sock.sendall(hdr.pack() + body)

    def close(self, reason, drain=False):
        if isinstance(self.sock, ssl.SSLSocket) and self.sock._sslobj is not None:
            # Send a TLS close_notify without waiting for the peer's: in
            # non-blocking mode unwrap() sends ours, then gives up at once
            # with SSLWantReadError.
            try:
                self.sock.setblocking(False)
                self.sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
        try:
            if drain:
                # Unread input makes close() send a RST, which can destroy a
                # reply the peer has not read yet.  Half-close, then swallow
                # input for a moment.
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.settimeout(0.5)
                deadline = time.monotonic() + 0.5
                while time.monotonic() < deadline and self.sock.recv(4096):
                    pass
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.emit("close", reason=reason)

    # -- main loop ------------------------------------------------------------

    def run(self):
        reason = "internal error"
        try:
            reason = self._run()
        except Exception as e:      # never let a thread die silently
            self.emit("internal-error", reason="%s: %s" % (type(e).__name__, e))
            reason = "internal error"
        finally:
            if reason is not None:
                self.close(reason)

    def _run(self):
        self.sock.settimeout(self.server.idle_timeout)
        if self.tls:
            if not self._handshake():
                return "tls handshake failed"
        while True:
            try:
                outcome = self._one_packet()
            except PeerClosed:
                return "peer closed"
            except socket.timeout:
                return "idle timeout"
            except BadPacket as e:
                self.emit("bad-packet", reason=e.reason)
                return "bad packet"
            except (OSError, ssl.SSLError) as e:
                return "socket error: %s" % e
            if outcome == "continue":
                continue
            if outcome == "closed":     # already closed (drain)
                return None
            return outcome

    def _handshake(self):
        try:
            self.sock = self.server.tls_ctx.wrap_socket(self.sock, server_side=True,
                                                        do_handshake_on_connect=False)
            self.sock.do_handshake()
        except (ssl.SSLError, OSError, ValueError) as e:
            self.emit("tls-error", reason=str(e) or type(e).__name__)
            return False
        cert = self.sock.getpeercert()
        subject = None
        if cert:
            subject = ",".join("%s=%s" % kv for rdn in cert.get("subject", ()) for kv in rdn)
        self.emit("tls", version=self.sock.version(), cipher=self.sock.cipher()[0],
                  client_cert=subject)
        return True

    def _one_packet(self):
        """Read, check and answer one packet.  Returns "continue" to read the
        next packet on this connection, or a close reason."""
        raw_hdr = self.recv_exact(HEADER_LEN, at_boundary=True)
        hdr = Header.unpack(raw_hdr)
        self.packets += 1
        try:
            body = self._check_header(hdr)
            return self._dispatch(hdr, body)
        except BadPacket as e:
            self.emit("bad-packet", reason=e.reason, session_id=hdr.session_id, type=hdr.type,
                      seq_no=hdr.seq_no, flags=hdr.flags, version=hdr.version)
            try:
                if e.reply == "header" and hdr.seq_no < 255:
                    # RFC 8907 3.6: "a packet with the identical cleartext
                    # header but with a sequence number incremented by one and
                    # the length set to zero MUST be returned".
                    flags = hdr.flags | (FLAG_UNENCRYPTED if self.tls else 0)
                    self.sock.sendall(Header(hdr.version, hdr.type, hdr.seq_no + 1, flags,
                                             hdr.session_id, 0).pack())
                elif e.reply == "error" and hdr.seq_no < 255:
                    self.send_reply(hdr, error_reply_body(hdr.type, b"request could not be decoded"))
            except OSError:
                pass
            # RFC 8907 4.4: after an ERROR caused by a connection problem (such
            # as a wrong secret) no further sessions on this connection.
            self.close("bad packet", drain=True)
            return "closed"

    def _check_header(self, hdr):
        """Validate the header, read the body and undo the obfuscation."""
        if hdr.major != MAJOR_VER:
            raise BadPacket("bad major version 0x%x (version byte 0x%02x)" % (hdr.major, hdr.version),
                            "header")
        if hdr.minor not in (MINOR_VER_DEFAULT, MINOR_VER_ONE):
            raise BadPacket("bad minor version %d" % hdr.minor, "header")
        if hdr.type not in TYPE_NAMES:
            raise BadPacket("unknown packet type 0x%02x" % hdr.type, "header")
        if hdr.length > self.server.max_length:
            raise BadPacket("body length %d exceeds the maximum %d" % (hdr.length, self.server.max_length),
                            "header")
        # Clients only send odd sequence numbers; authorization and accounting
        # sessions are one request (seq 1) and one reply (seq 2), and we end
        # every authentication session at its first reply, so any request we
        # can receive starts a session and must carry seq_no 1.
        if hdr.seq_no % 2 == 0:
            raise BadPacket("even seq_no %d from a client" % hdr.seq_no, "header")
        body = self.recv_exact(hdr.length, at_boundary=False)
        if hdr.seq_no != 1:
            raise BadPacket("seq_no %d does not start a session" % hdr.seq_no, "error")

        # Single-connect negotiation happens on the first two packets of the
        # connection only (RFC 8907 4.3); the flag is ignored afterwards.
        if self.packets == 1:
            self.single = bool(self.server.single_connect and hdr.flags & FLAG_SINGLE_CONNECT)

        unencrypted = bool(hdr.flags & FLAG_UNENCRYPTED)
        if self.tls:
            if not unencrypted:
                # RFC 9887 section 4: MUST return <type>_STATUS_ERROR with the
                # UNENCRYPTED flag set, and terminate the session.
                raise BadPacket("packet inside TLS without TAC_PLUS_UNENCRYPTED_FLAG", "error")
        elif self.server.key:
            if unencrypted:
                # RFC 8907 4.5: "A request MUST be dropped if
                # TAC_PLUS_UNENCRYPTED_FLAG is set" -- we drop the connection.
                raise BadPacket("TAC_PLUS_UNENCRYPTED_FLAG set but a key is configured", "none")
            body = obfuscate(hdr, body, self.server.key)
        else:
            if not unencrypted:
                raise BadPacket("obfuscated packet but the server has an empty key", "none")

        if hdr.type in (TYPE_AUTHOR, TYPE_ACCT) and hdr.minor != MINOR_VER_DEFAULT:
            # RFC 8907 5.4.1: "All authorization and accounting ... use minor_version 0."
            raise BadPacket("minor version %d is not valid for %s" % (hdr.minor, TYPE_NAMES[hdr.type]),
                            "error")
        return body

    def _dispatch(self, hdr, body):
        if hdr.type == TYPE_AUTHOR:
            return self._authorization(hdr, parse_author_request(body))
        if hdr.type == TYPE_ACCT:
            return self._accounting(hdr, parse_acct_request(body))
        check_authen_start(body)
        self.emit("authentication", session_id=hdr.session_id, status="ERROR",
                  single_connect=self.single)
        self.send_reply(hdr, build_authen_reply(AUTHEN_STATUS_ERROR, b"authentication is not supported"))
        return self._session_done()

    def _session_done(self):
        # RFC 8907 4.4 / RFC 9887 3.2: without single-connect the connection is
        # closed at the end of the session.
        return "continue" if self.single else "session complete"

    def _authorization(self, hdr, req):
        rules = self.server.rules
        rule = rules.match(req)
        if rule is None:
            action = rules.default
            message, data, reply_args, delay = b"", b"", [], 0
        else:
            action = rule.action
            message, data, reply_args, delay = rule.message, rule.data, rule.reply_args, rule.delay
        status = {"permit": AUTHOR_PASS_ADD, "permit-repl": AUTHOR_PASS_REPL, "deny": AUTHOR_FAIL,
                  "error": AUTHOR_ERROR, "follow": AUTHOR_FOLLOW}.get(action)
        if status not in (AUTHOR_PASS_ADD, AUTHOR_PASS_REPL):
            reply_args = []
        event = {"session_id": hdr.session_id}
        event.update(describe_fields(req))
        event.update({"priv_lvl": req["priv_lvl"], "authen_method": req["authen_method"],
                      "authen_type": req["authen_type"], "authen_service": req["authen_service"],
                      "single_connect": self.single, "tls": self.tls,
                      "status": AUTHOR_STATUS_NAMES.get(status), "action": action,
                      "rule": rule.name if rule else None,
                      "server_msg": text_field(message), "reply_args": [text_field(a) for a in reply_args]})
        self.emit("authorization", **event)
        if delay:
            time.sleep(delay)
        if action == "no-answer":
            return self._no_answer()
        if action == "close":
            return "rule action close"
        if action == "garbage":
            self._garbage(hdr, rule.garbage)
            return "rule action garbage"
        self.send_reply(hdr, build_author_reply(status, message, data, reply_args))
        return self._session_done()

    def _accounting(self, hdr, req):
        rules = self.server.rules
        flags = req["flags"]
        names = [n for bit, n in ((ACCT_FLAG_MORE, "more"), (ACCT_FLAG_START, "start"),
                                  (ACCT_FLAG_STOP, "stop"), (ACCT_FLAG_WATCHDOG, "watchdog"))
                 if flags & bit]
        event = {"session_id": hdr.session_id, "flags": names, "flags_raw": flags}
        event.update(describe_fields(req))
        event.update({"priv_lvl": req["priv_lvl"], "authen_method": req["authen_method"],
                      "authen_type": req["authen_type"], "authen_service": req["authen_service"],
                      "single_connect": self.single, "tls": self.tls})
        if flags not in ACCT_VALID_FLAGS:
            # RFC 8907 7.2: INVALID flag combinations are answered with ERROR.
            event.update(status="ERROR", action="invalid-flags",
                         reason="invalid accounting flags 0x%02x" % flags)
            self.emit("accounting", **event)
            self.send_reply(hdr, build_acct_reply(ACCT_ERROR, b"invalid accounting flags"))
            return self._session_done()
        action = rules.acct_action
        status = {"success": ACCT_SUCCESS, "error": ACCT_ERROR}.get(action)
        event.update(status=ACCT_STATUS_NAMES.get(status), action=action)
        self.emit("accounting", **event)
        if rules.acct_delay:
            time.sleep(rules.acct_delay)
        if action == "no-answer":
            return self._no_answer()
        if action == "close":
            return "rule action close"
        self.send_reply(hdr, build_acct_reply(status, rules.acct_message))
        return self._session_done()

    def _no_answer(self):
        """Never answer: wait (discarding input) until the peer gives up and
        closes, or the idle timeout expires."""
        try:
            while self.sock.recv(4096):
                pass
        except socket.timeout:
            return "idle timeout (no-answer)"
        except OSError:
            pass
        return "peer closed (no-answer)"

    def _garbage(self, hdr, kind):
        if kind == "bad-version":
            # A well-formed reply except for the version byte (0x00).
            body = build_author_reply(AUTHOR_PASS_ADD)
            bad = Header(0x00, hdr.type, hdr.seq_no + 1, self.reply_flags(), hdr.session_id, len(body))
            data = bad.pack() + body
        elif kind == "truncated":
            # A correct header announcing 100 body bytes, followed by only 10.
            good = Header(hdr.version, hdr.type, hdr.seq_no + 1, self.reply_flags(), hdr.session_id, 100)
            data = good.pack() + os.urandom(10)
        else:
            data = os.urandom(64)
        try:
            self.sock.sendall(data)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------

class Server:
    def __init__(self, args):
        self.key = args.key.encode("utf-8")
        self.rules = Rules(args.rules)
        self.single_connect = args.single_connect
        self.idle_timeout = args.idle_timeout
        self.max_length = args.max_length
        self.tls_ctx = None
        if args.tls_cert or args.tls_key:
            if not (args.tls_cert and args.tls_key):
                raise ConfigError("--tls-cert and --tls-key go together")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # RFC 9887 3.2: TLS 1.3 minimum; "Earlier versions of TLS MUST NOT be used".
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.maximum_version = ssl.TLSVersion.TLSv1_3
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cafile=args.tls_client_ca)
            self.tls_ctx = ctx
        elif args.tls_client_ca:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        host, port = parse_listen(args.listen)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(addr)
        self.listener.listen(128)
        self.stop = threading.Event()
        self.next_id = 0
        self.events = EventLog(args.events)    # last, so a bad configuration leaves no file behind

    def address(self):
        host, port = self.listener.getsockname()[:2]
        return fmt_peer((host, port))

    def serve(self):
        # Poll with a short timeout so that a signal only has to set a flag.
        while not self.stop.is_set():
            try:
                ready, _, _ = select.select([self.listener], [], [], 0.2)
            except InterruptedError:
                continue
            if not ready:
                continue
            try:
                sock, addr = self.listener.accept()
            except OSError:
                continue
            self.next_id += 1
            peer = fmt_peer(addr)
            self.events.emit("connect", conn=self.next_id, peer=peer, tls=self.tls_ctx is not None)
            try:
                Connection(self, sock, peer, self.next_id).start()
            except RuntimeError as e:       # cannot start a thread: refuse this one client
                sock.close()
                self.events.emit("close", conn=self.next_id, peer=peer, reason="no thread: %s" % e)


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError("--listen wants HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, help="HOST:PORT; port 0 picks a free port")
    p.add_argument("--key", default="", help="shared secret for body obfuscation ('' = none)")
    p.add_argument("--rules", required=True, help="TOML rules file")
    p.add_argument("--events", required=True, help="JSON-lines event log (appended)")
    p.add_argument("--tls-cert", help="server certificate (PEM, chain allowed): listen with TLS 1.3 only")
    p.add_argument("--tls-key", help="private key of --tls-cert")
    p.add_argument("--tls-client-ca", help="require a client certificate issued by this CA")
    p.add_argument("--single-connect", action="store_true",
                   help="accept single-connect mode when the client asks for it")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="seconds of silence after which a connection is closed (default 30)")
    p.add_argument("--max-length", type=int, default=65536,
                   help="largest accepted body length in bytes (default 65536)")
    args = p.parse_args(argv)
    try:
        server = Server(args)
    except (ConfigError, OSError, ssl.SSLError) as e:
        # bad rules, unreadable files, bad certificates, address in use, ...
        print("server.py: %s" % e, file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        server.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.events.emit("start", listen=server.address(), tls=server.tls_ctx is not None,
                       single_connect=server.single_connect, pid=os.getpid())
    print("listening %s" % server.address(), flush=True)
    server.serve()
    server.listener.close()
    server.events.final("shutdown")
    sys.stdout.flush()
    # Connection threads are daemons; leave without waiting for them (the
    # event-log lock is held, so none of them can leave half a line behind).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
