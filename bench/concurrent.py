#!/usr/bin/env python3
"""SESSIONS concurrent supervised sessions (one `session-wrapper run` each, so one supervisor
each), each a shell running /bin/true EXECS times, all logging to one receiver. The sessions
are all started first and wait on stdin; once every shell is up (its own exec decided and
logged) all are released at once, and the wall time runs from there to the last exit.

Expected decision lines: SESSIONS * (EXECS + 1), the +1 being each session's own `sh`.

usage: concurrent.py SESSION_WRAPPER CONFIG LOG_SOCKET [SESSIONS [EXECS]]"""
import re, subprocess, sys, time

import sink

sw, config, sock = sys.argv[1:4]
sessions = int(sys.argv[4]) if len(sys.argv) > 4 else 100
execs = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
expected = sessions * (execs + 1)

receiver = sink.Sink(sock)
script = 'read go; i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done' % execs
procs = [subprocess.Popen([sw, "run", "--config", config, "--log-socket", sock, "--user", "root",
                           "--", "sh", "-c", script], stdin=subprocess.PIPE)
         for _ in range(sessions)]
deadline = time.monotonic() + 120
while len(sink.decisions(receiver.lines)) < sessions and time.monotonic() < deadline:
    time.sleep(0.05)
ready = len(sink.decisions(receiver.lines))

t0 = time.perf_counter()
for p in procs:
    p.stdin.write(b"go\n")
    p.stdin.flush()
for p in procs:
    p.stdin.close()
failed = sum(p.wait() != 0 for p in procs)
wall = time.perf_counter() - t0
receiver.settle(quiet=1.0)
lines = receiver.take()
receiver.close()

dec = sink.decisions(lines)
lat = sink.latencies(dec)
allowed = sum(int(m.group(1)) for l in lines if b"event=session-end" in l
              for m in [re.search(rb" allowed=(\d+)", l)] if m)
ends = sum(b"event=session-end" in l for l in lines)
drops = sink.dropped(lines)
rate = (len(dec) - ready) / wall

print(f"{sessions} concurrent supervised sessions x {execs} execs of /bin/true:")
print(f"  receiver: one socket, queue limit {receiver.qlen} datagrams "
      f"(machine's net.unix.max_dgram_qlen: {sink.machine_qlen()})")
print(f"  sessions up before the start: {ready}/{sessions}; failed sessions: {failed}")
print(f"  wall time {wall:.2f} s; {rate:.0f} decisions/s")
print(f"  decision latency (latency_us): p50 {sink.percentile(lat, 50)} us, "
      f"p99 {sink.percentile(lat, 99)} us, max {max(lat)} us")
print(f"  decision lines received {len(dec)}, execs expected {expected} "
      f"({sessions} x ({execs} + 1 for the sh)); supervisors' own count (session-end allowed=) "
      f"{allowed} over {ends} session-end lines; log-dropped: {drops}")
sink.record("conc.sessions", sessions)
sink.record("conc.execs_per_session", execs)
sink.record("conc.qlen", receiver.qlen)
sink.record("conc.wall_s", f"{wall:.2f}")
sink.record("conc.rate", f"{rate:.0f}")
sink.record("conc.p50_us", sink.percentile(lat, 50))
sink.record("conc.p99_us", sink.percentile(lat, 99))
sink.record("conc.lines", len(dec))
sink.record("conc.expected", expected)
sink.record("conc.dropped", drops)
sink.record("conc.failed", failed)
