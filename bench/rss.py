#!/usr/bin/env python3
"""The supervisor's resident memory: `session-wrapper run` is the supervisor of the session
it starts. Its /proc/PID/status is read once the session is up and idle (its shell waits on
stdin, one decision made), then after the shell has run /bin/true EXECS times (the shell is
still there, so the supervisor is still serving the session).

usage: rss.py SESSION_WRAPPER CONFIG LOG_SOCKET [EXECS]"""
import selectors, subprocess, sys, time

import sink

sw, config, sock = sys.argv[1:4]
execs = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in FIELDS:
                out[k] = int(v.split()[0])
    # The proportional share: file pages (the program's code, libc) shared with other
    # processes count in part.
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Pss", "Private_Dirty"):
                out[k] = int(v.split()[0])
    return out


def show(label, s):
    print(f"  {label:28s} VmRSS {s['VmRSS']:6d} KiB ({s['VmRSS'] / 1024:.2f} MiB)  "
          f"VmHWM {s['VmHWM']:6d} KiB ({s['VmHWM'] / 1024:.2f} MiB)  "
          f"anon {s['RssAnon']} KiB, file {s['RssFile']} KiB, Pss {s['Pss']} KiB, "
          f"threads {s['Threads']}")


receiver = sink.Sink(sock)
script = ('read go; i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; echo done; read end'
          % execs)
p = subprocess.Popen([sw, "run", "--config", config, "--log-socket", sock, "--user", "root", "--",
                      "sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
time.sleep(1.0)
idle = status(p.pid)
t0 = time.perf_counter()
p.stdin.write("go\n")
p.stdin.flush()
peak = idle["VmRSS"]
# Sample while the loop runs (VmHWM has the peak anyway; this shows the trend).
sel = selectors.DefaultSelector()
sel.register(p.stdout, selectors.EVENT_READ)
while not sel.select(timeout=1.0):
    peak = max(peak, status(p.pid)["VmRSS"])
assert p.stdout.readline().strip() == "done"
elapsed = time.perf_counter() - t0
time.sleep(0.5)
after = status(p.pid)
p.stdin.write("\n")
p.stdin.close()
p.wait()
receiver.settle()
lines = receiver.take()
receiver.close()
n = len(sink.decisions(lines))

print(f"supervisor memory (/proc/PID/status of `session-wrapper run`):")
show("idle (1 decision)", idle)
show(f"after {n} decisions", after)
print(f"  sampled peak VmRSS during the loop: {peak} KiB; loop took {elapsed:.1f} s "
      f"({execs / elapsed:.0f} execs/s); lines dropped: {sink.dropped(lines)}")
print(f"  target: at most 4 MiB (4096 KiB) VmRSS; anon is the supervisor's own memory, file the "
      f"pages of its program and libraries (page cache, shared with every other process using them)")
sink.record("rss.idle_kib", idle["VmRSS"])
sink.record("rss.idle_hwm_kib", idle["VmHWM"])
sink.record("rss.after_kib", after["VmRSS"])
sink.record("rss.after_hwm_kib", after["VmHWM"])
sink.record("rss.after_anon_kib", after["RssAnon"])
sink.record("rss.after_file_kib", after["RssFile"])
sink.record("rss.after_pss_kib", after["Pss"])
sink.record("rss.idle_anon_kib", idle["RssAnon"])
sink.record("rss.decisions", n)
