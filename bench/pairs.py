#!/usr/bin/env python3
"""The exec loop a second way: whole runs of `sh loop.sh`, bare (setpriv to the user) and
under `session-wrapper run --user USER`, in alternating pairs, timed from fork to exit here;
the figure is the median of the pairs' ratios. Beside hyperfine's rows (bench/run.sh exec,
medians of separate rows, as root, with bench/sink.py as the receiver) it shows what the
figure owes to the harness: each variant names its user and its syslog receiver
(`sink`: bench/sink.py, a Python thread keeping every line, its queue raised to 65536
datagrams; `minimal`: a process doing nothing but recv() into one buffer, with the machine's
net.unix.max_dgram_qlen, 10 without systemd, 512 with it).

usage: pairs.py SESSION_WRAPPER WORKDIR LOOP_SH PAIRS
Writes `pairs.<variant>.ratio` figures to $SW_BENCH_FIGURES."""
import os, socket, statistics, subprocess, sys, time

sw, work, loop, pairs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sink  # noqa: E402


def minimal_receiver(path):
    """A receiver doing as little as a receiver can: a forked process reading datagrams into
    one buffer until killed."""
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, sink.SO_RCVBUFFORCE, sink.RCVBUF)
    s.bind(path)
    os.chmod(path, 0o666)
    pid = os.fork()
    if pid == 0:
        buf = bytearray(65536)
        while True:
            s.recv_into(buf)
    s.close()
    return pid


def config(name, socket_path, verify):
    p = os.path.join(work, f"pairs-{name}.toml")
    with open(p, "w") as f:
        f.write(f'default = "allow"\nverify = "{verify}"\n[log]\nsocket = "{socket_path}"\n')
    os.chmod(p, 0o644)
    return p


def timed(argv):
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    return time.perf_counter() - t


sink_path = os.path.join(work, "pairs-sink.sock")
minimal_path = os.path.join(work, "pairs-minimal.sock")
receiver = sink.Sink(sink_path)
minimal = minimal_receiver(minimal_path)
ids = {"root": ("0", "0"), "nobody": ("65534", "65534")}
variants = []
for user in ["root", "nobody"]:
    for recv, path in [("sink", sink_path), ("minimal", minimal_path)]:
        for verify in ["bpf", "ptrace"]:
            variants.append((user, recv, verify, config(f"{recv}-{verify}", path, verify)))
try:
    print(f"  minimal receiver's queue: {sink.machine_qlen()} datagrams (net.unix.max_dgram_qlen)")
    print(f"  {'user':7s} {'receiver':9s} {'verify':7s} {'bare':>9s} {'supervised':>11s} {'ratio':>7s}"
          f" {'per exec':>9s}   ({pairs} alternating pairs, median of the pairs' ratios)")
    figures = open(os.environ["SW_BENCH_FIGURES"], "a")
    for user, recv, verify, cfg in variants:
        uid, gid = ids[user]
        bare = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sh", loop]
        wrapped = [sw, "run", "--config", cfg, "--user", user, "--user-uid", uid, "--user-gid", gid,
                   "--", "sh", loop]
        timed(bare), timed(wrapped)  # warm-up
        b, w = [], []
        for _ in range(pairs):
            b.append(timed(bare))
            w.append(timed(wrapped))
        ratio = statistics.median(x / y for x, y in zip(w, b))
        per = (statistics.median(w) - statistics.median(b)) / 500 * 1e6
        print(f"  {user:7s} {recv:9s} {verify:7s} {statistics.median(b)*1000:7.1f}ms"
              f" {statistics.median(w)*1000:9.1f}ms {ratio:6.3f}x {per:+7.1f}us")
        figures.write(f"pairs.{user}.{recv}.{verify}.ratio {ratio:.4f}\n")
        figures.write(f"pairs.{user}.{recv}.{verify}.per_exec_us {per:.1f}\n")
finally:
    os.kill(minimal, 9)
    os.waitpid(minimal, 0)
    receiver.close()
