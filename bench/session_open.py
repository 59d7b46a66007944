#!/usr/bin/env python3
"""Added latency of a PAM session open: pamtester open_session+close_session with and without
pam_session_wrapper.so, run inside a private mount namespace whose /etc/pam.d holds the two
stanzas (see bench/run.sh). Prints medians in milliseconds."""
import statistics, subprocess, sys, time

import sink

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50

def measure(service):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["pamtester", service, "root", "open_session", "close_session"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return times

measure("swbench-plain")  # warm caches
plain = measure("swbench-plain")
sw = measure("swbench-wrapped")
p50p, p50s = statistics.median(plain), statistics.median(sw)
print(f"session open+close, {runs} runs each (pamtester, median):")
print(f"  without the module: {p50p:.2f} ms")
print(f"  with the module:    {p50s:.2f} ms")
print(f"  added latency:      {p50s - p50p:.2f} ms (target: at most 5 ms)")
sink.record("open.plain_ms", f"{p50p:.3f}")
sink.record("open.wrapped_ms", f"{p50s:.3f}")
sink.record("open.added_ms", f"{p50s - p50p:.3f}")
