#!/usr/bin/env python3
"""A real exec-heavy workload nobody here wrote: the `configure` script of a Debian source
package, run RUNS times in each row, the rows interleaved (their order turned by one each
round) so that a change in the machine's load hits all alike. Each run starts from a fresh
copy of the unpacked source. Rows:

  bare         no supervision
  supervised   under `session-wrapper run`, logging to a counting receiver: the decision
               lines of one run are its number of execs
  floor-log    under bench/floor.c's `log` mode: every exec stopped at a seccomp
               notification, its path and argv read, its file opened and named, one line
               sent, and answered CONTINUE; the least a supervisor that decides on the real
               file and argv and logs it must do (given FLOOR)
  floor-env    floor-log, and the name of every environment entry read too (mode `env`): the
               least more that a guard on loader variables (LD_PRELOAD...) must read
  snoopy       snoopy preloaded: logs every exec, can refuse none (given SNOOPY_LIB; its
               /etc/snoopy.ini is the caller's to set)

usage: real_workload.py SRC_DIR BUILD_DIR RUNS SESSION_WRAPPER CONFIG LOG_SOCKET [FLOOR [SNOOPY_LIB]]"""
import os, shutil, statistics, subprocess, sys, time

import sink

src, build, runs, sw, config, sock = sys.argv[1:7]
floor = sys.argv[7] if len(sys.argv) > 7 else None
snoopy = sys.argv[8] if len(sys.argv) > 8 else None
runs = int(runs)
name = os.path.basename(src.rstrip("/"))
receiver = sink.Sink(sock)

rows = {"bare": ([], {}), "supervised": ([sw, "run", "--config", config, "--log-socket", sock, "--user", "root", "--"], {})}
if floor:
    rows["floor-log"] = ([floor, "log"], {"FLOOR_LOG": sock})
    rows["floor-env"] = ([floor, "env"], {"FLOOR_LOG": sock})
if snoopy:
    rows["snoopy"] = ([], {"LD_PRELOAD": snoopy})


# The CPU time of a supervisor row's supervisor, its main thread alone (perf stat without
# inheritance: not the commands it runs), in ms per run. Every row runs under the same perf
# stat, so that its start-up weighs on each alike; on the others it counts the configure
# shell, which is not recorded.
cpu = {r: [] for r in rows if r not in ("bare", "snoopy")}
counted = os.path.join(os.path.dirname(build.rstrip("/")), "real-cpu.txt")


def once(row):
    prefix, env = rows[row]
    prefix = ["perf", "stat", "--no-inherit", "-x,", "-e", "task-clock", "-o", counted, "--"] + prefix
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(src, build, symlinks=True)
    t0 = time.perf_counter()
    subprocess.run(prefix + ["./configure"], cwd=build, check=True, env={**os.environ, **env},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.perf_counter() - t0
    if row in cpu:
        with open(counted) as f:
            counts = [float(l.split(",")[0]) for l in f if "task-clock" in l]
        if not counts:
            sys.exit(f"real_workload: perf stat counted nothing for {row} (see {counted})")
        cpu[row].append(counts[0])
    return t


once("bare")  # warm the page cache (compiler, headers, the tree)
names = list(rows)
times = {r: [] for r in names}
execs, floor_lines, dropped = [], [], 0
for i in range(runs):
    for row in names[i % len(names):] + names[:i % len(names)]:
        t = once(row)
        times[row].append(t)
        receiver.settle(quiet=0.3)
        lines = receiver.take()
        if row == "supervised":
            execs.append(len(sink.decisions(lines)))
            dropped += sink.dropped(lines)
        elif row.startswith("floor"):
            floor_lines.append(len(lines))
        print(f"  run {i + 1}/{runs} {row:<10} {t:6.2f} s", flush=True)
shutil.rmtree(build, ignore_errors=True)
receiver.close()

med = {r: statistics.median(times[r]) for r in names}
mb = med["bare"]
n = statistics.median(execs)
# Each row against the bare run of the same round: the machine's speed drifts over a run of
# this length (by 15% in some), and a round's runs are minutes apart at most.
paired = {r: statistics.median(t / b for t, b in zip(times[r], times["bare"])) for r in names}
print(f"{name} ./configure, {runs} runs per row; the ratio is the median of each round's run over that round's bare run:")
for r in names:
    ratio = "" if r == "bare" else f"  {paired[r]:6.3f}x  +{(paired[r] - 1) * mb / n * 1e6:4.0f} us per exec"
    target = "  (target: at most 1.03x)" if r == "supervised" else ""
    print(f"  {r:<10} {med[r]:7.2f} s{ratio}{target}   (runs: {', '.join(f'{t:.2f}' for t in times[r])})")
print(f"  execs per run (decision lines): {n:.0f} (runs: {', '.join(map(str, execs))}); lines dropped: {dropped}")
if floor_lines:
    print(f"  floor lines per run: {', '.join(map(str, floor_lines))}")
per_exec = {r: statistics.median(v) * 1000 / n for r, v in cpu.items()}
print("  supervisor CPU per exec (its main thread, perf stat task-clock; median of the runs): "
      + ", ".join(f"{r} {v:.0f} us" for r, v in per_exec.items()))
for r, v in per_exec.items():
    sink.record(f"real.{r}.cpu_us", f"{v:.1f}")
sink.record("real.bare_s", f"{mb:.3f}")
sink.record("real.supervised_s", f"{med['supervised']:.3f}")
sink.record("real.ratio", f"{paired['supervised']:.4f}")
if floor:
    sink.record("real.floor_log_ratio", f"{paired['floor-log']:.4f}")
    sink.record("real.floor_env_ratio", f"{paired['floor-env']:.4f}")
if snoopy:
    sink.record("real.snoopy_ratio", f"{paired['snoopy']:.4f}")
sink.record("real.execs", f"{n:.0f}")
sink.record("real.package", name)
