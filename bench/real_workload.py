#!/usr/bin/env python3
"""A real exec-heavy workload nobody here wrote: the `configure` script of a Debian source
package, run RUNS times without supervision and RUNS times under `session-wrapper run`,
interleaved (bare, supervised, supervised, bare, ...) so that a change in the machine's load
hits both alike. Each run starts from a fresh copy of the unpacked source. The supervised
runs log to a counting receiver: the decision lines of one run are its number of execs.

usage: real_workload.py SRC_DIR BUILD_DIR RUNS SESSION_WRAPPER CONFIG LOG_SOCKET"""
import os, shutil, statistics, subprocess, sys, time

import sink

src, build, runs, sw, config, sock = sys.argv[1:7]
runs = int(runs)
name = os.path.basename(src.rstrip("/"))
receiver = sink.Sink(sock)


def once(supervised):
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(src, build, symlinks=True)
    cmd = ["./configure"]
    if supervised:
        cmd = [sw, "run", "--config", config, "--log-socket", sock, "--user", "root", "--"] + cmd
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=build, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


once(False)  # warm the page cache (compiler, headers, the tree)
bare, sup, execs, dropped = [], [], [], 0
for i in range(runs):
    for supervised in ((False, True) if i % 2 == 0 else (True, False)):
        t = once(supervised)
        if supervised:
            receiver.settle(quiet=0.3)
            lines = receiver.take()
            execs.append(len(sink.decisions(lines)))
            dropped += sink.dropped(lines)
            sup.append(t)
        else:
            bare.append(t)
        print(f"  run {i + 1}/{runs} {'supervised' if supervised else 'bare      '} {t:6.2f} s", flush=True)
shutil.rmtree(build, ignore_errors=True)
receiver.close()

mb, ms = statistics.median(bare), statistics.median(sup)
n = statistics.median(execs)
print(f"{name} ./configure, {runs} runs each (median):")
print(f"  bare        {mb:7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in bare)})")
print(f"  supervised  {ms:7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in sup)})")
print(f"  ratio       {ms / mb:7.3f}x  (target: at most 1.03x)")
print(f"  execs per run (decision lines): {n:.0f} (runs: {', '.join(map(str, execs))}); "
      f"added per exec {(ms - mb) / n * 1e6:.0f} us; lines dropped: {dropped}")
sink.record("real.bare_s", f"{mb:.3f}")
sink.record("real.supervised_s", f"{ms:.3f}")
sink.record("real.ratio", f"{ms / mb:.4f}")
sink.record("real.execs", f"{n:.0f}")
sink.record("real.package", name)
