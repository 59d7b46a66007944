"""Proof that tests/tacacs/server.py speaks TACACS+ (RFC 8907 / RFC 9887).

Two kinds of client are used:

* the independent `tacacs_plus` client from PyPI (someone else's reading of
  the protocol: its packet encoder, obfuscation and reply decoder) for
  everything it can do: obfuscated authorization and accounting, one session
  per connection;
* `Mini`, a minimal client written in this file, for what tacacs_plus cannot
  do: single-connect, the unencrypted flag, TLS, hostile and malformed
  packets.  Its obfuscation is cross-checked against tacacs_plus's.

TLS is also checked with `openssl s_client` as an independent TLS peer.

Every test starts its own server process (`server.py` run with -I -S, i.e.
without the venv's packages, which proves it needs only the standard
library) on port 0 with a temporary rules file.

Run with tests/tacacs/run_tests.sh.
"""

import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import tacacs_plus.client
import tacacs_plus.packet
from tacacs_plus.client import TACACSClient
from tacacs_plus.flags import (TAC_PLUS_ACCT_FLAG_START, TAC_PLUS_ACCT_FLAG_STOP,
                               TAC_PLUS_ACCT_FLAG_WATCHDOG)
from tacacs_plus.packet import TACACSHeader

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
KEY = "s3cret-Key_for-tests"

# Protocol numbers, written out here again on purpose (not imported from server.py).
AUTHEN, AUTHOR, ACCT = 1, 2, 3
UNENCRYPTED, SINGLE = 0x01, 0x04
PASS_ADD, PASS_REPL, FAIL, ERROR, FOLLOW = 0x01, 0x02, 0x10, 0x11, 0x21
ACCT_SUCCESS, ACCT_ERROR = 0x01, 0x02


# ---------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------

class ServerProc:
    """server.py as a subprocess; rules given as TOML text."""

    def __init__(self, rules, key=KEY, extra=()):
        self.dir = tempfile.mkdtemp(prefix="tacacs-test-")
        self.rules_path = os.path.join(self.dir, "rules.toml")
        self.events_path = os.path.join(self.dir, "events.jsonl")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        with open(self.rules_path, "w") as f:
            f.write(rules)
        self.stderr = open(self.stderr_path, "w")
        cmd = [sys.executable, "-I", "-S", SERVER, "--listen", "127.0.0.1:0", "--key", key,
               "--rules", self.rules_path, "--events", self.events_path, *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if ready else ""
        m = re.fullmatch(r"listening 127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.proc.kill()
            raise AssertionError("server did not start: %r; stderr: %s" % (line, self.read_stderr()))
        self.port = int(m.group(1))

    def read_stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def events(self, kind=None):
        """All events; every line must be a complete JSON object."""
        out = []
        with open(self.events_path, encoding="utf-8") as f:
            for line in f:
                assert line.endswith("\n"), "partial event line %r" % line
                ev = json.loads(line)
                if kind is None or ev["event"] == kind:
                    out.append(ev)
        return out

    def wait_events(self, pred, count=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events() if pred(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def stop(self):
        """SIGTERM must end the server cleanly: exit 0, last event 'shutdown'."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("server ignored SIGTERM")
        rest = self.proc.stdout.read()
        self.proc.stdout.close()
        self.stderr.close()
        assert rest == "", "more stdout after the listening line: %r" % rest
        stderr = self.read_stderr()
        events = self.events()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert code == 0, "server exit status %r, stderr: %s" % (code, stderr)
        assert events and events[-1]["event"] == "shutdown", events[-3:]
        assert not [e for e in events if e["event"] == "internal-error"], \
            [e for e in events if e["event"] == "internal-error"]
        assert stderr == "", stderr


# ---------------------------------------------------------------------------
# The hand-built client ("Mini")
# ---------------------------------------------------------------------------

def pad(session_id, key, version, seq_no, length):
    """RFC 8907 4.5 pseudo pad (our own second implementation)."""
    seed = struct.pack("!I", session_id) + key + bytes([version, seq_no])
    out, last = b"", b""
    while len(out) < length:
        last = hashlib.md5(seed + last).digest()
        out += last
    return out[:length]


def xor(data, p):
    return bytes(a ^ b for a, b in zip(data, p))


def _b(x):
    return x.encode("utf-8") if isinstance(x, str) else x


def author_body(user="alice", port="/dev/pts/1", rem="192.0.2.7", args=(), priv=1,
                method=6, atype=1, service=1):
    user, port, rem, args = _b(user), _b(port), _b(rem), [_b(a) for a in args]
    return (bytes([method, priv, atype, service, len(user), len(port), len(rem), len(args)])
            + bytes(len(a) for a in args) + user + port + rem + b"".join(args))


def acct_body(flags, user="alice", port="/dev/pts/1", rem="192.0.2.7", args=(), priv=1,
              method=6, atype=1, service=1):
    user, port, rem, args = _b(user), _b(port), _b(rem), [_b(a) for a in args]
    return (bytes([flags, method, priv, atype, service, len(user), len(port), len(rem), len(args)])
            + bytes(len(a) for a in args) + user + port + rem + b"".join(args))


def parse_author_reply(body):
    status, argc, msg_len, data_len = struct.unpack("!BBHH", body[:6])
    lens = list(body[6:6 + argc])
    pos = 6 + argc
    assert pos + msg_len + data_len + sum(lens) == len(body), "inconsistent reply"
    msg = body[pos:pos + msg_len]
    pos += msg_len
    data = body[pos:pos + data_len]
    pos += data_len
    args = []
    for n in lens:
        args.append(body[pos:pos + n])
        pos += n
    return {"status": status, "server_msg": msg, "data": data, "args": args}


def parse_acct_reply(body):
    msg_len, data_len, status = struct.unpack("!HHB", body[:5])
    assert 5 + msg_len + data_len == len(body), "inconsistent reply"
    return {"status": status, "server_msg": body[5:5 + msg_len],
            "data": body[5 + msg_len:5 + msg_len + data_len]}


class Reply:
    def __init__(self, version, type_, seq_no, flags, session_id, length, body):
        self.version, self.type, self.seq_no, self.flags = version, type_, seq_no, flags
        self.session_id, self.length, self.body = session_id, length, body


class Mini:
    """Minimal TACACS+ client: builds any packet, plain TCP or TLS."""

    def __init__(self, port, key=KEY, tls_ctx=None, timeout=5.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = tls_ctx.wrap_socket(raw, server_hostname="localhost") if tls_ctx else raw
        self.key = _b(key)

    def send(self, ptype, body, session_id=None, flags=0, seq_no=1, version=0xC0, length=None,
             obfuscate=None):
        """Send one packet; the body is obfuscated unless the UNENCRYPTED flag
        is set (override with obfuscate=True/False).  Returns the session_id."""
        session_id = session_id if session_id is not None else random.getrandbits(32)
        if obfuscate is None:
            obfuscate = not flags & UNENCRYPTED
        if obfuscate:
            body = xor(body, pad(session_id, self.key, version, seq_no, len(body)))
        hdr = struct.pack("!BBBBII", version, ptype, seq_no, flags, session_id,
                          len(body) if length is None else length)
        self.sock.sendall(hdr + body)
        return session_id

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf

    def recv(self):
        """Next packet, de-obfuscated; None on a clean EOF."""
        first = self.sock.recv(1)
        if not first:
            return None
        hdr = first + self._exact(11)
        version, ptype, seq_no, flags, session_id, length = struct.unpack("!BBBBII", hdr)
        body = self._exact(length)
        if not flags & UNENCRYPTED:
            body = xor(body, pad(session_id, self.key, version, seq_no, length))
        return Reply(version, ptype, seq_no, flags, session_id, length, body)

    def at_eof(self, timeout=3.0):
        """True if the server closes the connection (without sending more)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def authorize(self, **kw):
        flags = kw.pop("flags", 0)
        sid = self.send(AUTHOR, author_body(**kw), flags=flags)
        r = self.recv()
        assert r is not None, "connection closed without a reply"
        assert (r.type, r.seq_no, r.session_id, r.version) == (AUTHOR, 2, sid, 0xC0)
        return r, parse_author_reply(r.body)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tp_client(port, key=KEY, timeout=5, session_id=None):
    return TACACSClient("127.0.0.1", port, key, timeout=timeout, session_id=session_id)


# ---------------------------------------------------------------------------
# Rules shared by the tests
# ---------------------------------------------------------------------------

RULES = r'''
default = "deny"

[[rule]]
name = "rm-rf-denied"
cmd = "^rm$"
args = "(^| )-rf( |$)"
action = "deny"
message = "rm -rf is not allowed here"

[[rule]]
name = "mallory-denied"
user = "^mallory$"
action = "deny"
message = "mallory may not run anything"

[[rule]]
name = "ls-ok"
user = "^alice$"
cmd = "^ls$"
args = "^-l( |$)"
service = "shell"
action = "permit"

[[rule]]
name = "rm-ok"
cmd = "^rm$"
action = "permit"

[[rule]]
name = "id-repl"
cmd = "^id$"
action = "permit-repl"
reply_args = ["priv-lvl=15", "autocmd=id -u"]

[[rule]]
name = "crash-error"
cmd = "^crash$"
action = "error"
message = "backend exploded"

[[rule]]
name = "follow-me"
cmd = "^elsewhere$"
action = "follow"
data = "192.0.2.99"

[[rule]]
name = "hang"
cmd = "^hang$"
action = "no-answer"

[[rule]]
name = "drop"
cmd = "^drop$"
action = "close"

[[rule]]
name = "slow"
cmd = "^slow$"
action = "permit"
delay_ms = 1000

[[rule]]
name = "bad-version"
cmd = "^garbage-version$"
action = "garbage"
garbage = "bad-version"

[[rule]]
name = "truncated"
cmd = "^garbage-truncated$"
action = "garbage"
garbage = "truncated"

[[rule]]
name = "random"
cmd = "^garbage-random$"
action = "garbage"
garbage = "random"

[[rule]]
name = "anything-else-for-carol"
user = "^carol$"
action = "permit"
reply_args = ["priv-lvl=1"]

[accounting]
action = "success"
'''

SHELL = [b"service=shell"]


def cmd_args(cmd, *args):
    return SHELL + [b"cmd=" + _b(cmd)] + [b"cmd-arg=" + _b(a) for a in args]


# ---------------------------------------------------------------------------
# 1. The independent client (tacacs_plus)
# ---------------------------------------------------------------------------

class IndependentClientTest(unittest.TestCase):
    """Everything here goes through tacacs_plus's encoder, obfuscation and
    decoder; our server is the only code of ours involved."""

    @classmethod
    def setUpClass(cls):
        cls.srv = ServerProc(RULES)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def authorize(self, user, args, **kw):
        return tp_client(self.srv.port).authorize(user, args, **kw)

    def test_permit_by_user_cmd_and_args(self):
        r = self.authorize("alice", cmd_args("ls", "-l", "/tmp"))
        self.assertEqual(r.status, PASS_ADD)
        self.assertTrue(r.valid)
        self.assertEqual(r.server_msg, b"")

    def test_deny_by_argument_pattern_with_message(self):
        r = self.authorize("bob", cmd_args("rm", "-rf", "/"))
        self.assertEqual(r.status, FAIL)
        self.assertTrue(r.invalid)
        self.assertEqual(r.server_msg, b"rm -rf is not allowed here")
        # Same user, same command, other arguments: permitted by "rm-ok".
        r = self.authorize("bob", cmd_args("rm", "notes.txt"))
        self.assertEqual(r.status, PASS_ADD)

    def test_deny_by_user_with_message(self):
        r = self.authorize("mallory", cmd_args("ls", "-l"))
        self.assertEqual(r.status, FAIL)
        self.assertEqual(r.server_msg, b"mallory may not run anything")
        self.assertEqual(self.authorize("alice", cmd_args("ls", "-l")).status, PASS_ADD)

    def test_default_deny_when_no_rule_matches(self):
        r = self.authorize("alice", cmd_args("ls", "-a"))
        self.assertEqual(r.status, FAIL)
        ev = [e for e in self.srv.events("authorization") if e["args"] == ["service=shell", "cmd=ls", "cmd-arg=-a"]]
        self.assertEqual(len(ev), 1)
        self.assertIsNone(ev[0]["rule"])
        self.assertEqual(ev[0]["action"], "deny")

    def test_pass_repl_with_reply_args(self):
        r = self.authorize("alice", cmd_args("id"))
        self.assertEqual(r.status, PASS_REPL)
        self.assertTrue(r.reply)
        self.assertEqual(r.arguments, [b"priv-lvl=15", b"autocmd=id -u"])

    def test_pass_add_with_reply_args(self):
        r = self.authorize("carol", cmd_args("whoami"))
        self.assertEqual(r.status, PASS_ADD)
        self.assertEqual(r.arguments, [b"priv-lvl=1"])

    def test_error_status_with_message(self):
        r = self.authorize("alice", cmd_args("crash"))
        self.assertTrue(r.error)
        self.assertEqual(r.server_msg, b"backend exploded")

    def test_follow_status_with_data(self):
        r = self.authorize("alice", cmd_args("elsewhere"))
        self.assertTrue(r.follow)
        self.assertEqual(r.data, b"192.0.2.99")

    def test_accounting_start_and_stop(self):
        start_args = [b"task_id=4242", b"start_time=1700000000", b"timezone=UTC",
                      b"service=shell", b"cmd=ls", b"cmd-arg=-l"]
        stop_args = [b"task_id=4242", b"stop_time=1700000003", b"elapsed_time=3",
                     b"timezone=UTC", b"service=shell", b"cmd=ls", b"cmd-arg=-l"]
        r = tp_client(self.srv.port).account("alice", TAC_PLUS_ACCT_FLAG_START, start_args,
                                              port="/dev/pts/3", rem_addr="198.51.100.4")
        self.assertTrue(r.valid)
        r = tp_client(self.srv.port).account("alice", TAC_PLUS_ACCT_FLAG_STOP, stop_args,
                                             port="/dev/pts/3", rem_addr="198.51.100.4")
        self.assertTrue(r.valid)
        r = tp_client(self.srv.port).account("alice", TAC_PLUS_ACCT_FLAG_WATCHDOG,
                                             [b"task_id=4242", b"service=shell"],
                                             port="/dev/pts/3", rem_addr="198.51.100.4")
        self.assertTrue(r.valid)
        evs = [e for e in self.srv.events("accounting") if "task_id=4242" in e["args"]]
        self.assertEqual([e["flags"] for e in evs], [["start"], ["stop"], ["watchdog"]])
        self.assertEqual(evs[0]["args"], [a.decode() for a in start_args])
        self.assertEqual(evs[1]["args"], [a.decode() for a in stop_args])
        for e in evs:
            self.assertEqual((e["user"], e["port"], e["rem_addr"], e["status"]),
                             ("alice", "/dev/pts/3", "198.51.100.4", "SUCCESS"))

    def test_event_log_records_fields_exactly(self):
        args = [b"service=shell", b"cmd=ls", b"cmd-arg=-l", b"cmd-arg=caf\xc3\xa9 au lait",
                b"cmd-arg=", b"cmd-arg=a=b*c", b"cmd-arg=\xff\xfebad"]
        r = tp_client(self.srv.port).authorize("alice", args, port="/dev/pts/17",
                                               rem_addr="2001:db8::7", priv_lvl=3)
        self.assertEqual(r.status, PASS_ADD)    # "ls -l ..." for alice
        ev = [e for e in self.srv.events("authorization") if e["port"] == "/dev/pts/17"]
        self.assertEqual(len(ev), 1)
        ev = ev[0]
        self.assertEqual(ev["user"], "alice")
        self.assertEqual(ev["rem_addr"], "2001:db8::7")
        self.assertEqual(ev["priv_lvl"], 3)
        self.assertEqual(ev["args"][:6], ["service=shell", "cmd=ls", "cmd-arg=-l",
                                          "cmd-arg=café au lait", "cmd-arg=", "cmd-arg=a=b*c"])
        # Not UTF-8: replaced in "args", exact bytes in "args_hex".
        self.assertEqual(ev["args"][6], "cmd-arg=\ufffd\ufffdbad")
        self.assertEqual([bytes.fromhex(h) for h in ev["args_hex"]], args)
        self.assertNotIn("user_hex", ev)
        self.assertEqual(ev["session_id"], ev["session_id"] & 0xFFFFFFFF)
        self.assertFalse(ev["single_connect"])
        self.assertEqual(ev["rule"], "ls-ok")

    def test_non_utf8_user_is_logged_with_hex(self):
        # tacacs_plus encodes str as latin-1, so this user is the bytes j\xfcrgen.
        tp_client(self.srv.port).authorize("j\xfcrgen", cmd_args("true"), port="/dev/pts/88")
        ev = [e for e in self.srv.events("authorization") if e["port"] == "/dev/pts/88"][0]
        self.assertEqual(ev["user"], "j\ufffdrgen")
        self.assertEqual(bytes.fromhex(ev["user_hex"]), b"j\xfcrgen")

    def test_wrong_key_detected_and_server_keeps_serving(self):
        before = len(self.srv.events("bad-packet"))
        # Fixed session ids keep this deterministic: the garbage a wrong key
        # produces depends only on the key, the session id and the body.
        for sid in (1111, 2222, 3333, 4444):
            try:
                r = tp_client(self.srv.port, key="not-the-key", session_id=sid).authorize(
                    "alice", cmd_args("ls", "-l"))
            except Exception:
                pass        # the client could not decode the reply at all
            else:
                self.assertFalse(r.valid, "a wrong key must never yield a PASS")
            r = tp_client(self.srv.port).authorize("alice", cmd_args("ls", "-l"))
            self.assertEqual(r.status, PASS_ADD)
        bad = self.srv.wait_events(lambda e: e["event"] == "bad-packet", count=before + 4)
        self.assertEqual(len(bad), before + 4)
        for e in bad[before:]:
            self.assertIn(e["session_id"], (1111, 2222, 3333, 4444))
            self.assertTrue(e["reason"])
        # Nothing was logged as an authorization for those sessions.
        self.assertFalse([e for e in self.srv.events("authorization")
                          if e["session_id"] in (1111, 2222, 3333, 4444)])

    def test_wrong_key_accounting(self):
        try:
            r = tp_client(self.srv.port, key="nope", session_id=777).account(
                "alice", TAC_PLUS_ACCT_FLAG_START, [b"task_id=1"])
        except Exception:
            pass
        else:
            self.assertFalse(r.valid)
        self.assertTrue(self.srv.wait_events(lambda e: e["event"] == "bad-packet" and e["session_id"] == 777))
        self.assertTrue(tp_client(self.srv.port).account("alice", TAC_PLUS_ACCT_FLAG_START,
                                                         [b"task_id=1"]).valid)

    def test_no_answer_makes_client_time_out(self):
        t0 = time.monotonic()
        with self.assertRaises(socket.timeout):
            tp_client(self.srv.port, timeout=1).authorize("alice", cmd_args("hang"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(self.authorize("alice", cmd_args("ls", "-l")).status, PASS_ADD)

    def test_close_without_answer(self):
        with self.assertRaises(ValueError):     # tacacs_plus: "Unable to extract data from header"
            self.authorize("alice", cmd_args("drop"))

    def test_authentication_is_answered_with_error(self):
        r = tp_client(self.srv.port).authenticate("alice", "password")
        self.assertTrue(r.error)
        self.assertTrue(self.srv.events("authentication"))

    def test_slow_rule_does_not_block_other_clients(self):
        with ThreadPoolExecutor(1) as pool:
            t0 = time.monotonic()
            slow = pool.submit(self.authorize, "alice", cmd_args("slow"))
            time.sleep(0.05)
            for _ in range(5):
                self.assertEqual(self.authorize("alice", cmd_args("ls", "-l")).status, PASS_ADD)
            fast_done = time.monotonic() - t0
            self.assertEqual(slow.result(5).status, PASS_ADD)
            self.assertLess(fast_done, 0.8, "fast requests waited for the slow one")
            self.assertGreaterEqual(time.monotonic() - t0, 0.99)

    def test_concurrency_20_clients_x_10_authorizations(self):
        cases = [
            ("alice", cmd_args("ls", "-l"), PASS_ADD, b"", []),
            ("bob", cmd_args("rm", "-rf", "x"), FAIL, b"rm -rf is not allowed here", []),
            ("mallory", cmd_args("ls", "-l"), FAIL, b"mallory may not run anything", []),
            ("dave", cmd_args("id"), PASS_REPL, b"", [b"priv-lvl=15", b"autocmd=id -u"]),
            ("bob", cmd_args("rm", "y"), PASS_ADD, b"", []),
        ]
        barrier = threading.Barrier(20)

        def worker(t):
            barrier.wait()
            results = []
            for i in range(10):
                user, args, status, msg, rargs = cases[(t + i) % len(cases)]
                r = tp_client(self.srv.port, timeout=10).authorize(
                    user, args, port="conc-%d-%d" % (t, i), rem_addr="10.0.0.%d" % t)
                results.append((r.status, r.server_msg, r.arguments) == (status, msg, rargs))
            return results

        with ThreadPoolExecutor(20) as pool:
            results = [ok for res in pool.map(worker, range(20)) for ok in res]
        self.assertEqual(len(results), 200)
        self.assertTrue(all(results), "%d wrong answers" % results.count(False))
        evs = [e for e in self.srv.events("authorization") if e["port"].startswith("conc-")]
        self.assertEqual(len(evs), 200)
        self.assertEqual(len({e["port"] for e in evs}), 200)
        for e in evs:
            t, i = map(int, e["port"].split("-")[1:])
            user, args, status, _, _ = cases[(t + i) % len(cases)]
            self.assertEqual((e["user"], e["rem_addr"], e["args"]),
                             (user, "10.0.0.%d" % t, [a.decode() for a in args]))


class ObfuscationCrossCheck(unittest.TestCase):
    """The hand-built client's pseudo pad must agree with tacacs_plus's crypt()."""

    def test_pad_matches_tacacs_plus(self):
        rnd = random.Random(8907)
        for _ in range(200):
            sid = rnd.getrandbits(32)
            key = "".join(rnd.choice("abcXYZ019-_!") for _ in range(rnd.randrange(0, 40)))
            version = rnd.choice((0xC0, 0xC1))
            seq = rnd.randrange(1, 256)
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 300)))
            hdr = TACACSHeader(version, AUTHOR, sid, len(body), seq_no=seq)
            theirs = tacacs_plus.packet.crypt(hdr, body, key)
            ours = xor(body, pad(sid, key.encode(), version, seq, len(body)))
            self.assertEqual(theirs, ours)


# ---------------------------------------------------------------------------
# 2. The hand-built client: single-connect, flags, malformed packets
# ---------------------------------------------------------------------------

class HandBuiltClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = ServerProc(RULES, extra=["--single-connect", "--idle-timeout", "5"])

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def mini(self, **kw):
        m = Mini(self.srv.port, **kw)
        self.addCleanup(m.close)
        return m

    def bad_packet_event(self, session_id):
        evs = self.srv.wait_events(lambda e: e["event"] == "bad-packet" and e.get("session_id") == session_id)
        self.assertEqual(len(evs), 1, "no bad-packet event for session %d" % session_id)
        return evs[0]

    def test_single_connect_many_sessions_on_one_connection(self):
        m = self.mini()
        seen = set()
        for i in range(6):
            if i % 3 == 2:
                sid = m.send(ACCT, acct_body(0x02, args=["task_id=%d" % i, "service=shell"]),
                             flags=SINGLE if i == 0 else 0)
                r = m.recv()
                self.assertEqual(parse_acct_reply(r.body)["status"], ACCT_SUCCESS)
            else:
                sid = m.send(AUTHOR, author_body(args=cmd_args("ls", "-l")),
                             flags=SINGLE if i == 0 else 0)
                r = m.recv()
                self.assertEqual(parse_author_reply(r.body)["status"], PASS_ADD)
            self.assertEqual((r.session_id, r.seq_no), (sid, 2))
            self.assertTrue(r.flags & SINGLE, "server must confirm single-connect")
            self.assertFalse(r.flags & UNENCRYPTED)
            seen.add(sid)
        self.assertEqual(len(seen), 6)
        m.close()
        evs = [e for e in self.srv.events() if e.get("session_id") in seen]
        self.assertEqual(len(evs), 6)
        self.assertEqual(len({e["conn"] for e in evs}), 1, "all sessions on one connection")
        self.assertTrue(all(e["single_connect"] for e in evs))
        conn = evs[0]["conn"]
        closes = self.srv.wait_events(lambda e: e["event"] == "close" and e["conn"] == conn)
        self.assertEqual(closes[0]["reason"], "peer closed")

    def test_without_flag_connection_closes_after_one_session(self):
        m = self.mini()
        r, rep = m.authorize(args=cmd_args("ls", "-l"))
        self.assertEqual(rep["status"], PASS_ADD)
        self.assertFalse(r.flags & SINGLE)
        self.assertTrue(m.at_eof(), "server must close after the session")

    def test_single_connect_refused_when_server_not_configured(self):
        srv = ServerProc(RULES)       # no --single-connect
        try:
            m = Mini(srv.port)
            r, rep = m.authorize(args=cmd_args("ls", "-l"), flags=SINGLE)
            self.assertEqual(rep["status"], PASS_ADD)
            self.assertFalse(r.flags & SINGLE)
            self.assertTrue(m.at_eof())
            m.close()
        finally:
            srv.stop()

    def test_deny_and_error_keep_single_connect_open(self):
        m = self.mini()
        sid = m.send(AUTHOR, author_body(user="mallory", args=cmd_args("ls")), flags=SINGLE)
        rep = parse_author_reply(m.recv().body)
        self.assertEqual((rep["status"], rep["server_msg"]), (FAIL, b"mallory may not run anything"))
        m.send(AUTHOR, author_body(args=cmd_args("crash")))
        self.assertEqual(parse_author_reply(m.recv().body)["status"], ERROR)
        m.send(AUTHOR, author_body(args=cmd_args("ls", "-l")))
        self.assertEqual(parse_author_reply(m.recv().body)["status"], PASS_ADD)
        self.assertTrue(sid)

    def test_unencrypted_flag_refused_without_tls(self):
        m = self.mini()
        sid = m.send(AUTHOR, author_body(args=cmd_args("ls", "-l")), flags=UNENCRYPTED)
        self.assertIsNone(m.recv(), "the request must be dropped without a reply")
        self.assertIn("UNENCRYPTED", self.bad_packet_event(sid)["reason"])
        self.assertFalse([e for e in self.srv.events("authorization") if e["session_id"] == sid])

    def test_bad_version_gets_zero_length_header_and_close(self):
        m = self.mini()
        sid = m.send(AUTHOR, author_body(args=cmd_args("ls")), version=0xD0)
        r = m.recv()
        # RFC 8907 3.6: identical header, seq_no + 1, length 0.
        self.assertEqual((r.version, r.type, r.seq_no, r.session_id, r.length), (0xD0, AUTHOR, 2, sid, 0))
        self.assertTrue(m.at_eof())
        self.assertIn("version", self.bad_packet_event(sid)["reason"])

    def test_bad_minor_version_and_type_and_seq(self):
        for kw, word in ((dict(version=0xC2), "minor"), (dict(ptype=9), "type"),
                         (dict(seq_no=2), "seq_no"), (dict(seq_no=3), "seq_no"),
                         (dict(version=0xC1), "minor version 1")):
            m = self.mini()
            ptype = kw.pop("ptype", AUTHOR)
            sid = m.send(ptype, author_body(args=cmd_args("ls")), **kw)
            r = m.recv()
            if r is not None and r.length:
                self.assertEqual(parse_author_reply(r.body)["status"], ERROR)
            self.assertTrue(m.at_eof())
            self.assertIn(word, self.bad_packet_event(sid)["reason"])

    def test_oversized_length_refused(self):
        m = self.mini()
        sid = m.send(AUTHOR, b"", length=10_000_000)
        r = m.recv()
        self.assertEqual(r.length, 0)
        self.assertIn("exceeds", self.bad_packet_event(sid)["reason"])

    def test_inconsistent_lengths_with_the_right_key(self):
        body = bytearray(author_body(args=cmd_args("ls", "-l")))
        body[4] += 1          # user_len one too long
        m = self.mini()
        sid = m.send(AUTHOR, bytes(body))
        r = m.recv()
        rep = parse_author_reply(r.body)     # decodable: obfuscated with the right key
        self.assertEqual(rep["status"], ERROR)
        self.assertTrue(m.at_eof())
        self.assertIn("sum", self.bad_packet_event(sid)["reason"])

    def test_argument_lengths_beyond_body(self):
        # arg_cnt = 255 but no room for the length bytes
        m = self.mini()
        sid = m.send(AUTHOR, bytes([6, 1, 1, 1, 0, 0, 0, 255, 1, 2]))
        self.assertEqual(parse_author_reply(m.recv().body)["status"], ERROR)
        self.assertIn("too short", self.bad_packet_event(sid)["reason"])
        m = self.mini()
        sid = m.send(AUTHOR, bytes([6, 1, 1]))
        self.assertEqual(parse_author_reply(m.recv().body)["status"], ERROR)
        self.bad_packet_event(sid)

    def test_out_of_range_enumerations(self):
        for kw in (dict(priv=16), dict(method=0x07), dict(atype=0x04), dict(service=0x04)):
            m = self.mini()
            sid = m.send(AUTHOR, author_body(args=cmd_args("ls"), **kw))
            self.assertEqual(parse_author_reply(m.recv().body)["status"], ERROR)
            self.bad_packet_event(sid)

    def test_truncated_packet(self):
        m = self.mini()
        sid = random.getrandbits(32)
        m.sock.sendall(struct.pack("!BBBBII", 0xC0, AUTHOR, 1, 0, sid, 50) + b"x" * 10)
        m.sock.shutdown(socket.SHUT_WR)
        self.assertIsNone(m.recv())
        self.assertIn("inside a packet", self.bad_packet_event(sid)["reason"])

    def test_invalid_accounting_flags_get_error(self):
        for flags in (0x00, 0x06, 0x0C, 0x0E, 0x01, 0x12):
            m = self.mini()
            m.send(ACCT, acct_body(flags, args=["task_id=9"]))
            rep = parse_acct_reply(m.recv().body)
            self.assertEqual(rep["status"], ACCT_ERROR, "flags 0x%02x" % flags)
        for flags, names in ((0x02, ["start"]), (0x04, ["stop"]), (0x08, ["watchdog"]),
                             (0x0A, ["start", "watchdog"])):
            m = self.mini()
            sid = m.send(ACCT, acct_body(flags, args=["task_id=9"]))
            self.assertEqual(parse_acct_reply(m.recv().body)["status"], ACCT_SUCCESS)
            ev = [e for e in self.srv.events("accounting") if e["session_id"] == sid][0]
            self.assertEqual(ev["flags"], names)

    def test_garbage_replies(self):
        m = self.mini()
        m.send(AUTHOR, author_body(args=cmd_args("garbage-version")))
        r = m.recv()
        self.assertEqual(r.version, 0x00)
        self.assertTrue(m.at_eof())
        m = self.mini()
        m.send(AUTHOR, author_body(args=cmd_args("garbage-truncated")))
        with self.assertRaises(EOFError):
            m.recv()
        m = self.mini()
        m.send(AUTHOR, author_body(args=cmd_args("garbage-random")))
        m.sock.settimeout(3)
        data = b""
        while True:
            chunk = m.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        self.assertEqual(len(data), 64)

    def test_authentication_packet_error_reply(self):
        m = self.mini()
        body = bytes([1, 1, 1, 1, 5, 0, 0, 0]) + b"alice"
        sid = m.send(AUTHEN, body)
        r = m.recv()
        self.assertEqual((r.type, r.seq_no, r.session_id), (AUTHEN, 2, sid))
        self.assertEqual(r.body[0], 0x07)    # TAC_PLUS_AUTHEN_STATUS_ERROR

    def test_silent_clients_do_not_block_others(self):
        # 30 connections that send half a header and then nothing.
        stalls = []
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall(b"\xc0\x02\x01")
            stalls.append(s)
            self.addCleanup(s.close)
        t0 = time.monotonic()
        for _ in range(10):
            self.assertEqual(tp_client(self.srv.port).authorize("alice", cmd_args("ls", "-l")).status,
                             PASS_ADD)
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_idle_timeout_closes_silent_connection(self):
        s = socket.create_connection(("127.0.0.1", self.srv.port))
        self.addCleanup(s.close)
        s.settimeout(10)
        t0 = time.monotonic()
        self.assertEqual(s.recv(1), b"")       # closed by the server (--idle-timeout 5)
        self.assertGreater(time.monotonic() - t0, 3.5)

    def test_fuzz_random_packets(self):
        """Random and half-valid packets never crash the server or wedge a thread."""
        rnd = random.Random(1234)
        first_conn = max(e["conn"] for e in self.srv.events("connect")) + 1 if self.srv.events("connect") else 1
        for i in range(300):
            kind = i % 4
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80)))
            if kind == 0:       # pure noise
                data = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 100)))
            else:               # a valid header, random (obfuscated or clear) body
                flags = rnd.choice((0, 0, UNENCRYPTED, SINGLE, 0xFF))
                length = len(body) if kind != 3 else rnd.randrange(0, 200)
                sid = rnd.getrandbits(32)
                ptype = rnd.choice((AUTHEN, AUTHOR, ACCT))
                if kind == 2:   # properly obfuscated random body: the key is right
                    body = xor(body, pad(sid, KEY.encode(), 0xC0, 1, len(body)))
                data = struct.pack("!BBBBII", 0xC0, ptype, 1, flags, sid, length) + body
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            finally:
                s.close()
        r = tp_client(self.srv.port).authorize("alice", cmd_args("ls", "-l"))
        self.assertEqual(r.status, PASS_ADD)
        # Every fuzz connection was closed by the server (no wedged thread).
        deadline = time.monotonic() + 5
        while True:
            evs = self.srv.events()
            opened = {e["conn"] for e in evs if e["event"] == "connect" and e["conn"] >= first_conn}
            closed = {e["conn"] for e in evs if e["event"] == "close" and e["conn"] >= first_conn}
            if opened <= closed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(opened), 301)
        self.assertEqual(sorted(opened - closed), [])


class ServerOptionsTest(unittest.TestCase):

    def test_empty_key_accepts_unencrypted_flag_only(self):
        srv = ServerProc(RULES, key="")
        try:
            m = Mini(srv.port, key="")
            r, rep = m.authorize(args=cmd_args("ls", "-l"), flags=UNENCRYPTED)
            self.assertEqual(rep["status"], PASS_ADD)
            self.assertTrue(r.flags & UNENCRYPTED)
            m.close()
            m = Mini(srv.port, key="whatever")
            sid = m.send(AUTHOR, author_body(args=cmd_args("ls", "-l")))
            self.assertIsNone(m.recv())
            m.close()
            ev = srv.wait_events(lambda e: e["event"] == "bad-packet" and e["session_id"] == sid)
            self.assertIn("empty key", ev[0]["reason"])
        finally:
            srv.stop()

    def test_default_permit(self):
        srv = ServerProc('default = "permit"\n')
        try:
            self.assertEqual(tp_client(srv.port).authorize("x", cmd_args("anything")).status, PASS_ADD)
        finally:
            srv.stop()

    def test_accounting_error_and_no_answer_and_close(self):
        for action, check in (("error", "error"), ("no-answer", "timeout"), ("close", "closed")):
            srv = ServerProc('[accounting]\naction = "%s"\nmessage = "acct says %s"\n' % (action, action))
            try:
                c = tp_client(srv.port, timeout=1)
                if check == "error":
                    r = c.account("alice", TAC_PLUS_ACCT_FLAG_START, [b"task_id=1"])
                    self.assertTrue(r.error)
                    self.assertEqual(r.server_msg, b"acct says error")
                elif check == "timeout":
                    with self.assertRaises(socket.timeout):
                        c.account("alice", TAC_PLUS_ACCT_FLAG_START, [b"task_id=1"])
                else:
                    with self.assertRaises(ValueError):
                        c.account("alice", TAC_PLUS_ACCT_FLAG_START, [b"task_id=1"])
                ev = srv.events("accounting")
                self.assertEqual(ev[0]["action"], action)
            finally:
                srv.stop()

    def test_bad_rules_file_is_reported(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        for text in ('default = "maybe"\n', '[[rule]]\naction = "permit"\nuser = "("\n',
                     '[[rule]]\naction = "explode"\n', '[[rule]]\naction = "permit"\ncolour = "red"\n',
                     'this is not toml'):
            path = os.path.join(d, "r.toml")
            with open(path, "w") as f:
                f.write(text)
            p = subprocess.run([sys.executable, "-I", "-S", SERVER, "--listen", "127.0.0.1:0",
                                "--key", "k", "--rules", path, "--events", os.path.join(d, "e")],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, text)
            self.assertIn("rules", p.stderr)
            self.assertEqual(p.stdout, "")


# ---------------------------------------------------------------------------
# 3. TLS 1.3 (RFC 9887)
# ---------------------------------------------------------------------------

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(d):
    """Throwaway CA, server and client certificates (EC P-256)."""
    def ca(name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "2",
                "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, issuer, ext):
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{issuer}.pem",
                "-CAkey", f"{d}/{issuer}.key", "-set_serial", str(random.getrandbits(63)),
                "-days", "2", "-out", f"{d}/{name}.pem", "-extfile", f"{d}/{name}.ext")

    common = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    ca("test-ca")
    ca("other-ca")
    leaf("server", "test-ca", common + "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client", "test-ca", common + "subjectAltName=DNS:client.test\nextendedKeyUsage=clientAuth\n")
    leaf("rogue-client", "other-ca", common + "subjectAltName=DNS:rogue.test\nextendedKeyUsage=clientAuth\n")
    leaf("rogue-server", "other-ca", common + "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")


class TLSTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise AssertionError("the TLS tests need the openssl command")
        cls.pki = tempfile.mkdtemp(prefix="tacacs-pki-")
        make_pki(cls.pki)
        p = cls.pki
        cls.srv = ServerProc(RULES, key="", extra=[
            "--tls-cert", f"{p}/server.pem", "--tls-key", f"{p}/server.key",
            "--tls-client-ca", f"{p}/test-ca.pem", "--single-connect"])

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.pki, ignore_errors=True)

    def ctx(self, trust="test-ca", cert="client", version=ssl.TLSVersion.TLSv1_3):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)     # verifies chain and host name
        ctx.load_verify_locations(f"{self.pki}/{trust}.pem")
        if cert:
            ctx.load_cert_chain(f"{self.pki}/{cert}.pem", f"{self.pki}/{cert}.key")
        ctx.minimum_version = version
        ctx.maximum_version = version
        return ctx

    def try_request(self, ctx):
        """Connect with `ctx`, send one authorization, return the reply or
        None if the connection fails or ends without one."""
        m = None
        try:
            m = Mini(self.srv.port, tls_ctx=ctx)
            m.send(AUTHOR, author_body(args=cmd_args("ls", "-l")), flags=UNENCRYPTED)
            return m.recv()
        except (ssl.SSLError, OSError, EOFError):
            return None
        finally:
            if m is not None:
                m.close()

    def tls_errors_after(self, n):
        return self.srv.wait_events(lambda e: e["event"] == "tls-error", count=n + 1)[n:]

    def test_tls13_authorization_with_unencrypted_flag(self):
        m = Mini(self.srv.port, tls_ctx=self.ctx())
        self.addCleanup(m.close)
        self.assertEqual(m.sock.version(), "TLSv1.3")
        r, rep = m.authorize(args=cmd_args("ls", "-l"), flags=UNENCRYPTED)
        self.assertEqual(rep["status"], PASS_ADD)
        self.assertTrue(r.flags & UNENCRYPTED, "replies inside TLS carry the unencrypted flag")
        self.assertTrue(m.at_eof())
        ev = [e for e in self.srv.events("authorization") if e["session_id"] == r.session_id][0]
        self.assertTrue(ev["tls"])
        tls = [e for e in self.srv.events("tls") if e["conn"] == ev["conn"]][0]
        self.assertEqual(tls["version"], "TLSv1.3")
        self.assertEqual(tls["client_cert"], "commonName=client")

    def test_tls_single_connect_and_accounting(self):
        m = Mini(self.srv.port, tls_ctx=self.ctx())
        self.addCleanup(m.close)
        r, rep = m.authorize(user="mallory", args=cmd_args("ls"), flags=UNENCRYPTED | SINGLE)
        self.assertEqual((rep["status"], rep["server_msg"]), (FAIL, b"mallory may not run anything"))
        self.assertEqual(r.flags & (UNENCRYPTED | SINGLE), UNENCRYPTED | SINGLE)
        sid = m.send(ACCT, acct_body(0x02, args=["task_id=77"]), flags=UNENCRYPTED)
        r = m.recv()
        self.assertEqual((r.session_id, parse_acct_reply(r.body)["status"]), (sid, ACCT_SUCCESS))
        r, rep = m.authorize(args=cmd_args("id"), flags=UNENCRYPTED)
        self.assertEqual((rep["status"], rep["args"]), (PASS_REPL, [b"priv-lvl=15", b"autocmd=id -u"]))

    def test_obfuscated_packet_inside_tls_gets_error_and_close(self):
        m = Mini(self.srv.port, tls_ctx=self.ctx(), key=KEY)
        self.addCleanup(m.close)
        sid = m.send(AUTHOR, author_body(args=cmd_args("ls", "-l")), flags=0)
        r = m.recv()
        # RFC 9887 section 4: <type>_STATUS_ERROR, with the UNENCRYPTED flag set.
        self.assertTrue(r.flags & UNENCRYPTED)
        self.assertEqual((r.type, r.seq_no, r.session_id), (AUTHOR, 2, sid))
        self.assertEqual(parse_author_reply(r.body)["status"], ERROR)
        self.assertTrue(m.at_eof())
        ev = self.srv.wait_events(lambda e: e["event"] == "bad-packet" and e["session_id"] == sid)
        self.assertIn("TLS", ev[0]["reason"])
        # Same for accounting.
        m = Mini(self.srv.port, tls_ctx=self.ctx(), key=KEY)
        self.addCleanup(m.close)
        m.send(ACCT, acct_body(0x02), flags=0)
        r = m.recv()
        self.assertTrue(r.flags & UNENCRYPTED)
        self.assertEqual(parse_acct_reply(r.body)["status"], ACCT_ERROR)

    def test_tls12_client_refused(self):
        n = len(self.srv.events("tls-error"))
        with self.assertRaises(ssl.SSLError):
            Mini(self.srv.port, tls_ctx=self.ctx(version=ssl.TLSVersion.TLSv1_2))
        self.assertTrue(self.tls_errors_after(n))

    def test_client_without_certificate_refused(self):
        n = len(self.srv.events("tls-error"))
        # With TLS 1.3 the client may finish its side of the handshake
        # before the server has checked its (missing) certificate; the
        # refusal then arrives on the first read.
        got = self.try_request(self.ctx(cert=None))
        self.assertIsNone(got, "no TACACS+ reply without a client certificate")
        err = self.tls_errors_after(n)
        self.assertTrue(err)
        self.assertIn("CERTIFICATE", err[0]["reason"].upper())

    def test_client_certificate_from_other_ca_refused(self):
        n = len(self.srv.events("tls-error"))
        got = self.try_request(self.ctx(cert="rogue-client"))
        self.assertIsNone(got)
        self.assertIn("CERTIFICATE", self.tls_errors_after(n)[0]["reason"].upper())

    def test_client_that_does_not_trust_server_ca_fails_handshake(self):
        n = len(self.srv.events("tls-error"))
        with self.assertRaises(ssl.SSLCertVerificationError):
            Mini(self.srv.port, tls_ctx=self.ctx(trust="other-ca"))
        self.assertTrue(self.tls_errors_after(n))

    def test_server_without_client_ca_accepts_client_without_certificate(self):
        p = self.pki
        srv = ServerProc(RULES, key="", extra=["--tls-cert", f"{p}/server.pem", "--tls-key", f"{p}/server.key"])
        try:
            m = Mini(srv.port, tls_ctx=self.ctx(cert=None))
            r, rep = m.authorize(args=cmd_args("ls", "-l"), flags=UNENCRYPTED)
            self.assertEqual(rep["status"], PASS_ADD)
            m.close()
            self.assertIsNone(srv.events("tls")[0]["client_cert"])
        finally:
            srv.stop()

    # -- openssl s_client as an independent TLS peer -------------------------

    def s_client(self, version_flag, with_cert=True, port=None):
        packet_body = author_body(user="alice", args=cmd_args("ls", "-l"))
        sid = random.getrandbits(32)
        packet = struct.pack("!BBBBII", 0xC0, AUTHOR, 1, UNENCRYPTED, sid, len(packet_body)) + packet_body
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % (port or self.srv.port),
               "-servername", "localhost", version_flag, "-CAfile", f"{self.pki}/test-ca.pem",
               "-verify_return_error", "-verify_hostname", "localhost", "-quiet"]
        if with_cert:
            cmd += ["-cert", f"{self.pki}/client.pem", "-key", f"{self.pki}/client.key"]
        p = subprocess.run(cmd, input=packet, capture_output=True, timeout=20)
        return sid, p

    def test_openssl_s_client_tls13(self):
        sid, p = self.s_client("-tls1_3")
        out = p.stdout
        self.assertGreaterEqual(len(out), 12, p.stderr.decode(errors="replace"))
        version, ptype, seq, flags, rsid, length = struct.unpack("!BBBBII", out[:12])
        self.assertEqual((version, ptype, seq, rsid), (0xC0, AUTHOR, 2, sid))
        self.assertTrue(flags & UNENCRYPTED)
        self.assertEqual(len(out), 12 + length)
        self.assertEqual(parse_author_reply(out[12:])["status"], PASS_ADD)
        ev = [e for e in self.srv.events("authorization") if e["session_id"] == sid]
        self.assertEqual(ev[-1]["user"], "alice")

    def test_openssl_s_client_tls12_refused(self):
        n = len(self.srv.events("tls-error"))
        sid, p = self.s_client("-tls1_2")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, b"")
        self.assertIn(b"alert", p.stderr.lower())
        self.assertTrue(self.tls_errors_after(n))

    def test_openssl_s_client_without_certificate_refused(self):
        n = len(self.srv.events("tls-error"))
        sid, p = self.s_client("-tls1_3", with_cert=False)
        self.assertEqual(p.stdout, b"")
        self.assertIn("CERTIFICATE", self.tls_errors_after(n)[0]["reason"].upper())
        self.assertFalse([e for e in self.srv.events("authorization") if e["session_id"] == sid])

    # -- tacacs_plus's packet codec over our TLS transport -------------------

    def test_tacacs_plus_codec_over_tls(self):
        """tacacs_plus has no TLS and never sets a header flag.  Here its
        encoder/decoder run unchanged over a TLS socket; two shims are ours:
        the socket, and a header class whose flags default to UNENCRYPTED."""
        ctx = self.ctx()

        class FlaggedHeader(TACACSHeader):
            def __init__(self, version, type, session_id, length, seq_no=1, flags=UNENCRYPTED):
                super().__init__(version, type, session_id, length, seq_no, flags)

        class TLSClient(TACACSClient):
            @property
            def sock(self):
                if not self._sock:
                    raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
                    self._sock = ctx.wrap_socket(raw, server_hostname="localhost")
                return self._sock

        original = tacacs_plus.client.TACACSHeader
        tacacs_plus.client.TACACSHeader = FlaggedHeader
        try:
            c = TLSClient("127.0.0.1", self.srv.port, None, timeout=5)   # secret None: no obfuscation
            r = c.authorize("alice", cmd_args("ls", "-l"), port="/dev/pts/5", rem_addr="192.0.2.8")
            self.assertEqual(r.status, PASS_ADD)
            r = TLSClient("127.0.0.1", self.srv.port, None, timeout=5).authorize("bob", cmd_args("rm", "-rf", "/"))
            self.assertEqual((r.status, r.server_msg), (FAIL, b"rm -rf is not allowed here"))
            r = TLSClient("127.0.0.1", self.srv.port, None, timeout=5).account(
                "alice", TAC_PLUS_ACCT_FLAG_START, [b"task_id=5"])
            self.assertTrue(r.valid)
        finally:
            tacacs_plus.client.TACACSHeader = original
        ev = [e for e in self.srv.events("authorization") if e["port"] == "/dev/pts/5"]
        self.assertEqual((ev[0]["user"], ev[0]["rem_addr"], ev[0]["tls"]), ("alice", "192.0.2.8", True))


if __name__ == "__main__":
    unittest.main(verbosity=2)
