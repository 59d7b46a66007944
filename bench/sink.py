#!/usr/bin/env python3
"""A syslog receiver for the benchmarks: a Unix datagram socket read by a thread that keeps
every line, with a receive buffer large enough (SO_RCVBUFFORCE, root) that the receiver is
never what limits the senders.

A Unix datagram socket also holds at most net.unix.max_dgram_qlen datagrams, whatever its
buffer (10 by default; systemd raises it to 512 at boot, this machine may not run systemd).
With `qlen`, the socket is made in a private network namespace (that sysctl is per namespace;
senders reach the socket by its path from any namespace) whose limit is `qlen`, so that the
machine's setting is left alone.

As a module: Sink(path) starts receiving; .settle() waits until no line has arrived for a
while; .lines is the list of lines (bytes). As a script: `sink.py SOCKET [OUT]` receives until
SIGTERM and then writes the lines to OUT (or only counts them when OUT is not given)."""
import ctypes, math, os, re, signal, socket, sys, threading, time

RCVBUF = 64 * 1024 * 1024
QLEN = 65536
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
CLONE_NEWNET = 0x40000000
LATENCY = re.compile(rb" latency_us=(\d+)")


def machine_qlen():
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        return int(f.read())


def _socket_in_netns(qlen):
    """A datagram socket made by a thread that moved to a new network namespace (namespaces
    are per thread) whose max_dgram_qlen is `qlen`; None if that cannot be done."""
    out = {}

    def make():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            return
        with open("/proc/sys/net/unix/max_dgram_qlen", "w") as f:
            f.write(str(qlen))
        out["sock"] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    return out.get("sock")


class Sink:
    def __init__(self, path, qlen=None):
        """qlen: the receive queue's limit in datagrams (default: SW_BENCH_QLEN, else QLEN);
        0 keeps the machine's."""
        if qlen is None:
            qlen = int(os.environ.get("SW_BENCH_QLEN", QLEN))
        self.path = path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = _socket_in_netns(qlen) if qlen else None
        self.qlen = qlen if self.sock else machine_qlen()
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.lines = []
        self.last = time.monotonic()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        recv, append = self.sock.recv, self.lines.append
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                append(recv(65536))
            except socket.timeout:
                continue
            except OSError:
                break
            self.last = time.monotonic()

    def settle(self, quiet=0.5, limit=30.0):
        """Waits until no line has come for `quiet` seconds (at most `limit`)."""
        end = time.monotonic() + limit
        while time.monotonic() < end and time.monotonic() - self.last < quiet:
            time.sleep(0.05)

    def take(self):
        """The lines received so far, removed from the sink."""
        got, self.lines[:] = list(self.lines), []
        return got

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def decisions(lines):
    return [l for l in lines if b" decision=" in l]


def dropped(lines):
    """Lines the supervisors reported as dropped (event=log-dropped lines=N)."""
    n = 0
    for l in lines:
        if b"event=log-dropped" in l:
            m = re.search(rb" lines=(\d+)", l)
            n += int(m.group(1)) if m else 1
    return n


def latencies(lines):
    out = []
    for l in lines:
        m = LATENCY.search(l)
        if m:
            out.append(int(m.group(1)))
    return out


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s), math.ceil(p / 100 * len(s))) - 1)]


def record(name, value):
    """Appends one figure to the file the summary of bench/run.sh reads."""
    path = os.environ.get("SW_BENCH_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(f"{name} {value}\n")


if __name__ == "__main__":
    sink = Sink(sys.argv[1])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        # Discard as we go when nobody wants the lines (the exec loop makes many).
        if len(sys.argv) < 3:
            sink.lines.clear()
    sink.close()
    if len(sys.argv) > 2:
        with open(sys.argv[2], "wb") as f:
            f.writelines(l + b"\n" for l in sink.lines)
