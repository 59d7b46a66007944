#!/usr/bin/env python3
"""The session open of two builds of the module and supervisor, side by side: pamtester
open_session+close_session on `swbench-plain` (no module), `swbench-a` (the other build) and
`swbench-b` (this tree's), run inside a private mount namespace whose /etc/pam.d holds the
stanzas (see bench/run.sh openab).

Each round runs the three services once, in an order shuffled for that round, 20 ms apart: a
fixed order would always put one build right after the other's close (its supervisor's exit,
its log lines), which biased an earlier version of this comparison by more than the change
measured. Prints the medians, and the median of the per-round differences b - a, with how
many rounds b was the faster.

With DRIVER (bench/pam_open.c built) and SPACED, then SPACED rounds of the two builds 1 s
apart, in a shuffled order, each a transaction of DRIVER: the open alone, and the open until
the session's first program has run, as a host waits for them (paired per round, b - a).
With CPU too, CPU rounds of the CPU time of whole sessions of the two builds (bench/cgcpu.py),
0.3 s apart, paired per round: the figure that tells a cut of a tenth of a millisecond, which
the latencies on this host do not.

usage: open_ab.py [ROUNDS [DRIVER SPACED [CPU]]]"""
import random, statistics, subprocess, sys, time

import cgcpu

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
SERVICES = ("swbench-plain", "swbench-a", "swbench-b")


def once(service):
    t0 = time.perf_counter()
    subprocess.run(["pamtester", service, "root", "open_session", "close_session"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


for s in SERVICES * 3:  # warm caches, and the kept seccomp programs of both builds
    once(s)
times = {s: [] for s in SERVICES}
for _ in range(rounds):
    order = list(SERVICES)
    random.shuffle(order)
    for s in order:
        time.sleep(0.02)
        times[s].append(once(s))
med = {s: statistics.median(t) for s, t in times.items()}
diff = [b - a for a, b in zip(times["swbench-a"], times["swbench-b"])]
faster = sum(d < 0 for d in diff)
print(f"session open+close, {rounds} rounds, order shuffled per round (pamtester, median):")
print(f"  without the module: {med['swbench-plain']:.2f} ms")
print(f"  a (the other build): {med['swbench-a']:.2f} ms   added {med['swbench-a'] - med['swbench-plain']:+.2f} ms")
print(f"  b (this tree):       {med['swbench-b']:.2f} ms   added {med['swbench-b'] - med['swbench-plain']:+.2f} ms")
print(f"  b - a, per round: median {statistics.median(diff):+.3f} ms; b faster in {faster} of {rounds} rounds")

def ab_rounds(n, gap, run):
    """n rounds of `run(service)` for both builds, in an order shuffled per round, `gap` s
    apart: {service: [what run returned, ...]}."""
    got = {s: [] for s in ("swbench-a", "swbench-b")}
    for _ in range(n):
        order = list(got)
        random.shuffle(order)
        for s in order:
            time.sleep(gap)
            got[s].append(run(s))
    return got


def compare(label, a, b, n):
    """One line: both medians, and b - a per round."""
    d = [y - x for x, y in zip(a, b)]
    print(f"  {label}a {statistics.median(a):.2f} ms, b {statistics.median(b):.2f} ms; "
          f"b - a per round: median {statistics.median(d):+.3f} ms, b faster in {sum(x < 0 for x in d)} of {n}")


if len(sys.argv) > 3:
    driver, spaced = sys.argv[2], int(sys.argv[3])

    def transaction(service):
        out = subprocess.run([driver, service, "root"], check=True, capture_output=True, text=True).stdout
        return [float(x) / 1000 for x in out.split()]

    pair = ab_rounds(spaced, 1.0, transaction)
    print(f"the open as a host waits for it (bench/pam_open.c), {spaced} rounds 1 s apart, order shuffled per round (median):")
    for i, what in ((0, "open alone"), (1, "open until the first program's end")):
        compare(f"{what}: ", [r[i] for r in pair["swbench-a"]], [r[i] for r in pair["swbench-b"]], spaced)

if len(sys.argv) > 4 and cgcpu.mount()[0]:
    cpu_rounds = int(sys.argv[4])
    with cgcpu.Groups(("swbench-a", "swbench-b"), "ab") as groups:
        cpu = ab_rounds(cpu_rounds, 0.3, lambda s: groups.session(driver, s))
    print(f"CPU time of a whole session (bench/cgcpu.py), {cpu_rounds} rounds 0.3 s apart, order shuffled per round (median):")
    compare("", cpu["swbench-a"], cpu["swbench-b"], cpu_rounds)
