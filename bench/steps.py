#!/usr/bin/env python3
"""Where the supervisor's time per exec goes (issue 17's budget per step), against the least a
supervisor must do (bench/floor.c `log`: read the path and argv, the file and its real path,
answer, send one line; and `env`, which also reads each environment entry's name, for its CPU
time alone).

For each of the two, an exec loop of N `/bin/true` runs under it; `perf stat` counts the
supervisor's CPU time (task-clock, its main thread only) and `perf record` takes the raw
system-call tracepoints of its main thread. Every exec's system calls, from one
`SECCOMP_IOCTL_NOTIF_RECV` to the next, are named by call and rank (`readlink#2`: the exec's
second readlink), and the median time of each over the execs whose sequence is the most common
one is printed, with the median time in user space between calls. The tracepoints add about a
microsecond to each call: the sums are above the CPU time per exec that `perf stat` gives
without them, and the table is for where the time goes, the CPU line for how much.

usage: steps.py SESSION_WRAPPER CONFIG FLOOR LOG_SOCKET WORKDIR [N]"""
import collections
import os
import re
import statistics
import subprocess
import sys
import time

# x86_64 numbers of the calls the two make per exec.
NAMES = {0: "read", 1: "write", 3: "close", 7: "poll", 16: "ioctl", 44: "sendto", 46: "sendmsg",
         89: "readlink", 257: "openat", 262: "newfstatat", 5: "fstat", 310: "process_vm_readv",
         321: "bpf", 332: "statx", 434: "pidfd_open", 39: "getpid", 61: "wait4", 267: "readlinkat"}
IOCTLS = {"c0502100": "NOTIF_RECV", "c0182101": "NOTIF_SEND", "40082102": "NOTIF_ID_VALID",
          "c040ff0b": "PIDFD_GET_INFO"}
# What each call of this version's sequence is for (supervisor/src/exec/gather.rs and
# exec/mod.rs); a call not named here is printed bare.
MEANING = {
    "pidfd_open#1": "gather: pidfd of the caller",
    "ioctl(PIDFD_GET_INFO)#1": "gather: its ids (pidfd info)",
    "process_vm_readv#1": "gather: path and argv (memory)",
    "process_vm_readv#2": "gather: environment (memory)",
    "openat#1": "resolve: open the path from the task's root",
    "statx#1": "resolve: mount id and inode",
    "readlink#1": "resolve: real path",
    "readlink#2": "gather: working directory",
    "ioctl(NOTIF_ID_VALID)#1": "gather: the notification still valid",
    # The terminal of an exec the kernel checks comes with its finding (no /proc/PID/stat).
    # The foreign-mount check: the path in the session's namespace ends on the file's mount
    # and inode (sys/resolve.rs Reference::foreign).
    "statx#2": "foreign-mount check: the path in the session",
    "bpf#1": "kernel check: write the expectation",
    "ioctl(NOTIF_SEND)#1": "answer CONTINUE",
    # After the answer (exec/mod.rs Pipeline::collect): the last exec's finding and line.
    "bpf#2": "kernel check: read the last finding",
    "bpf#3": "kernel check: remove its entry",
    "write#1": "log: its decision line",
    "close#1": "close its pidfd",
    "close#2": "close its file",
}


def loop(work, n):
    path = os.path.join(work, f"steps-loop-{n}.sh")
    with open(path, "w") as f:
        # The pause lets perf attach before the first exec.
        f.write(f"sleep 1; i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done\n")
    os.chmod(path, 0o644)
    return path


def run_attached(cmd, env, tool):
    """Runs `cmd` with `tool` (a perf command line, to which `-t PID` is added) attached to its
    first process once it has started; the tool's standard error."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    t = subprocess.Popen(tool + ["-t", str(p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    p.wait()
    t.send_signal(2)
    return t.communicate()[1]


def cpu_per_exec(cmd, env, n):
    """The supervisor's own CPU time per exec, in us (a run without tracepoints)."""
    err = run_attached(cmd, env, ["perf", "stat", "--no-inherit", "-x,", "-e", "task-clock"])
    ms = next((float(l.split(",")[0]) for l in err.splitlines() if "task-clock" in l), float("nan"))
    return ms * 1000 / n


def traced_execs(cmd, env, data):
    """Each exec's system calls [(name, enter, exit)], from a run with the raw tracepoints."""
    run_attached(cmd, env, ["perf", "record", "-q", "-e", "raw_syscalls:sys_enter,raw_syscalls:sys_exit", "-o", data])
    script = subprocess.run(["perf", "script", "-i", data, "-F", "time,event,trace"], capture_output=True, text=True).stdout
    os.unlink(data)
    execs, cur, enter, name = [], None, None, None
    for line in script.splitlines():
        m = re.match(r"\s*([\d.]+):\s+raw_syscalls:sys_(enter|exit): NR (\d+)(.*)", line)
        if not m:
            continue
        t, kind, nr, rest = float(m.group(1)) * 1e6, m.group(2), int(m.group(3)), m.group(4)
        if kind == "enter":
            name = NAMES.get(nr, f"nr{nr}")
            if nr == 16:
                arg = rest.split(",")[1].strip() if "," in rest else ""
                name = f"ioctl({IOCTLS.get(arg, arg)})"
            if name == "ioctl(NOTIF_RECV)":
                if cur is not None:
                    execs.append(cur)
                cur = []
            enter = t
        elif cur is not None and enter is not None:
            cur.append((name, enter, t))
    return execs


def measure(cmd, env, work, tag, n):
    """(CPU us per exec, [(step, median us)], execs kept, calls per exec). A step is a call
    (`name#rank`) or the time in user space before it (`user before name#rank`); the time
    after the answer is left out, since the task the answer wakes takes the CPU there."""
    cpu = cpu_per_exec(cmd, env, n)
    execs = traced_execs(cmd, env, os.path.join(work, f"steps-{tag}.data"))
    shapes = collections.Counter(tuple(c[0] for c in e) for e in execs)
    if not shapes:
        return cpu, [], 0, 0
    shape = shapes.most_common(1)[0][0]
    kept = [e for e in execs if tuple(c[0] for c in e) == shape]
    steps = collections.OrderedDict()
    for e in kept:
        rank = collections.Counter()
        for i, (name, t0, t1) in enumerate(e):
            rank[name] += 1
            key = f"{name}#{rank[name]}"
            if i > 0 and not e[i - 1][0].startswith("ioctl(NOTIF_SEND)"):
                steps.setdefault(f"user before {key}", []).append(t0 - e[i - 1][2])
            steps.setdefault(key, []).append(t1 - t0)
    return cpu, [(k, statistics.median(v)) for k, v in steps.items()], len(kept), len(shape)


def main():
    sw, config, floor, sock, work = sys.argv[1:6]
    n = int(sys.argv[6]) if len(sys.argv) > 6 else 2000
    script = loop(work, n)
    env = dict(os.environ)
    ours = measure([sw, "run", "--user", "root", "--config", config, "--", "sh", script], env, work, "ours", n)
    floor_env = dict(env, FLOOR_LOG=sock)
    least = measure([floor, "log", "sh", script], floor_env, work, "floor", n)
    # The least that also reads each environment entry's name, as a loader-variable guard must
    # (CPU only).
    names = cpu_per_exec([floor, "env", "sh", script], floor_env, n)
    print(f"  supervisor CPU per exec ({n} execs of /bin/true, perf stat task-clock, a run without tracepoints):")
    print(f"    ours (verify = bpf): {ours[0]:6.1f} us;  the least (floor log): {least[0]:6.1f} us;"
          f"  ours above it: {ours[0] - least[0]:+.1f} us")
    print(f"    the least that also reads the environment's names (floor env): {names:6.1f} us;"
          f"  ours above it: {ours[0] - names:+.1f} us")
    with open(os.environ.get("SW_BENCH_FIGURES", os.devnull), "a") as f:
        f.write(f"steps.floor_env.cpu_us {names:.1f}\n")
    for tag, (cpu, steps, kept, calls) in [("ours", ours), ("floor log", least)]:
        print(f"  {tag}: {calls} calls per exec; median of each step over the {kept} execs of the common"
              f" sequence (us, with the tracepoints' own cost in each call):")
        total = user = 0.0
        # The last poll of an exec's calls is the wait for the next notification.
        polls = [k for k, _ in steps if k.startswith("poll#")]
        wait = polls[-1] if polls and steps[-1][0] == polls[-1] else None
        for k, v in steps:
            if wait and k in (wait, f"user before {wait}"):
                continue
            total += v
            if k.startswith("user before"):
                user += v
                if v >= 4:
                    print(f"    {v:7.1f}  {k:28s} user space")
                continue
            print(f"    {v:7.1f}  {k:28s} {MEANING.get(k, '') if tag == 'ours' else ''}")
        print(f"    {user:7.1f}  user space, between the calls (not after the answer)")
        print(f"    {total:7.1f}  in all")
        with open(os.environ.get("SW_BENCH_FIGURES", os.devnull), "a") as f:
            key = "ours" if tag == "ours" else "floor"
            f.write(f"steps.{key}.cpu_us {cpu:.1f}\nsteps.{key}.calls {calls}\nsteps.{key}.traced_us {total:.1f}\n")

if __name__ == "__main__":
    main()
