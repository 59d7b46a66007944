#!/usr/bin/env python3
"""The supervisor's own CPU per exec, two builds side by side: `session-wrapper run` of build A
and of build B, alternately (the order turned each round), each supervising the same workload
under a policy that allows all, logging to a counting receiver; `perf stat --no-inherit` counts
the supervisor's main thread alone (not what it runs). The workload is the exec loop (2,000
`/bin/true` from `sh`) or, with `configure`, gzip's `./configure` from the source that
`bench/run.sh real` fetched (3,384 programs: its CPU is divided by that count, which takes in
the exec calls that find no file, each PATH entry gcc's driver tries).

A paired figure: wall-clock runs on this host move by more than the changes it compares, the
CPU a supervisor spends per exec much less. Prints each round, then the medians and the median
of the per-round differences B - A, with how many rounds B was the lower.

usage: cpu_ab.py SESSION_WRAPPER_A SESSION_WRAPPER_B ROUNDS [configure]"""
import glob, os, shutil, statistics, subprocess, sys, tempfile, time

import sink

a, b, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
configure = len(sys.argv) > 4 and sys.argv[4] == "configure"
work = tempfile.mkdtemp(prefix="sw-cpu-ab-", dir="/var/tmp")  # not /tmp: configure runs what it builds
sock = os.path.join(work, "log")
receiver = sink.Sink(sock)
config = os.path.join(work, "allow.toml")
with open(config, "w") as f:
    f.write(f'default = "allow"\nverify = "bpf"\n[log]\nsocket = "{sock}"\n')
loop = os.path.join(work, "loop.sh")
with open(loop, "w") as f:
    f.write("sleep 0.3; i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done\n")
src = sorted(glob.glob("/var/cache/sw-bench/src/gzip-*/"))
if configure and not src:
    sys.exit("cpu_ab: run `bench/run.sh real` once first (it fetches gzip's source)")
build = os.path.join(work, "build")


def once(sw):
    """The supervisor's CPU per exec, in us."""
    if configure:
        shutil.rmtree(build, ignore_errors=True)
        shutil.copytree(src[0], build, symlinks=True)
        argv, cwd, n = ["sh", "-c", "sleep 0.3; exec ./configure"], build, 3384
    else:
        argv, cwd, n = ["sh", loop], work, 2000
    counted = os.path.join(work, "cpu.txt")
    cmd = ["perf", "stat", "--no-inherit", "-x,", "-e", "task-clock", "-o", counted, "--",
           sw, "run", "--config", config, "--user", "root", "--"] + argv
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    receiver.settle(quiet=0.2)
    receiver.take()
    with open(counted) as f:
        ms = [float(l.split(",")[0]) for l in f if "task-clock" in l]
    if not ms:
        sys.exit(f"cpu_ab: perf stat counted nothing (see {counted})")
    return ms[0] * 1000 / n


per = {a: [], b: []}
for r in range(rounds):
    for sw in ([a, b] if r % 2 == 0 else [b, a]):
        per[sw].append(once(sw))
    print(f"  round {r + 1}: A {per[a][-1]:6.1f}  B {per[b][-1]:6.1f} us per exec", flush=True)
diff = [y - x for x, y in zip(per[a], per[b])]
print(f"supervisor CPU per exec ({'configure' if configure else 'exec loop'}, {rounds} rounds): "
      f"A {statistics.median(per[a]):.1f} us, B {statistics.median(per[b]):.1f} us; "
      f"B - A per round: median {statistics.median(diff):+.1f} us, B lower in {sum(d < 0 for d in diff)} of {rounds}")
receiver.close()
shutil.rmtree(work, ignore_errors=True)
