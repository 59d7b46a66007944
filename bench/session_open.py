#!/usr/bin/env python3
"""Added latency of a PAM session open: pamtester open_session+close_session with and without
pam_session_wrapper.so, run inside a private mount namespace whose /etc/pam.d holds the
stanzas (see bench/run.sh). Prints medians in milliseconds.

Two series: RUNS opens back to back, and SPACED opens one second apart, as logins come on a
real host (caches are cold after an idle second). A third service, `swbench-cgroup`, has
`kill_on_close`, whose session (without an audit session of its own, as under pamtester) gets
a cgroup and its opener is moved into it: the first move of a process between cgroups after
an idle while waits for an RCU grace period (the kernel's cgroup_threadgroup_rwsem), which
opens in quick succession find warm.

usage: session_open.py [RUNS [SPACED]]"""
import statistics, subprocess, sys, time

import sink

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
spaced = int(sys.argv[2]) if len(sys.argv) > 2 else 10
GAP = 1.0


def measure(service, n, gap=0.0):
    times = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        subprocess.run(["pamtester", service, "root", "open_session", "close_session"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return times


measure("swbench-plain", 5)  # warm caches
measure("swbench-wrapped", 5)
plain = measure("swbench-plain", runs)
sw = measure("swbench-wrapped", runs)
p50p, p50s = statistics.median(plain), statistics.median(sw)
print(f"session open+close back to back, {runs} runs each (pamtester, median):")
print(f"  without the module: {p50p:.2f} ms")
print(f"  with the module:    {p50s:.2f} ms")
print(f"  added latency:      {p50s - p50p:.2f} ms (target: at most 3 ms)")
sink.record("open.plain_ms", f"{p50p:.3f}")
sink.record("open.wrapped_ms", f"{p50s:.3f}")
sink.record("open.added_ms", f"{p50s - p50p:.3f}")

if spaced:
    plain = measure("swbench-plain", spaced, GAP)
    sw = measure("swbench-wrapped", spaced, GAP)
    # With `kill_on_close` the session gets a cgroup of its own (membership), and the opener
    # is moved into it: the cost of that first move after an idle while, shown apart.
    cg = measure("swbench-cgroup", spaced, GAP)
    q50p, q50s = statistics.median(plain), statistics.median(sw)
    print(f"session open+close {GAP:.0f} s apart, {spaced} runs each (median):")
    print(f"  without the module: {q50p:.2f} ms")
    print(f"  with the module:    {q50s:.2f} ms   (runs: {', '.join(f'{t:.1f}' for t in sw)})")
    print(f"  added latency:      {q50s - q50p:.2f} ms (target: at most 3 ms)")
    sink.record("open.spaced_plain_ms", f"{q50p:.3f}")
    sink.record("open.spaced_wrapped_ms", f"{q50s:.3f}")
    sink.record("open.spaced_added_ms", f"{q50s - q50p:.3f}")
    q50c = statistics.median(cg)
    print(f"  with kill_on_close: {q50c:.2f} ms   (runs: {', '.join(f'{t:.1f}' for t in cg)}): "
          f"added {q50c - q50p:.2f} ms (a cgroup of its own, the opener moved into it)")
    sink.record("open.spaced_cgroup_added_ms", f"{q50c - q50p:.3f}")
