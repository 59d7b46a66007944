#!/usr/bin/env python3
"""The supervisor's resident memory: `session-wrapper run` is the supervisor of the session
it starts. Its /proc/PID/status is read once the session is up and idle (its shell waits on
stdin, one decision made), then after the shell has run /bin/true EXECS times (the shell is
still there, so the supervisor is still serving the session).

With PAM_CONFIG and PAM_SOCKET, the same is measured in a session opened by `su` through
pam_session_wrapper.so (bench/run.sh bind-mounts a /etc/pam.d whose `su` stack has the module,
in a private mount namespace): that session has two processes of ours, the supervisor, which
answers the execs, and its watchdog, which only waits for it (session/from_pam.rs). This is
what a login costs in production; `session-wrapper run` is one process doing both.

usage: rss.py SESSION_WRAPPER CONFIG LOG_SOCKET [EXECS [PAM_CONFIG PAM_SOCKET]]"""
import re, selectors, subprocess, sys, time

import sink

sw, config, sock = sys.argv[1:4]
execs = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
pam = sys.argv[5:7] if len(sys.argv) > 6 else None
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
    out["mappings"] = by_mapping(pid)
    return out


def by_mapping(pid):
    """Resident KiB of each file (or [heap], [stack], anonymous) the process maps."""
    out, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts[0].endswith(":"):
                name = parts[5].rsplit("/", 1)[-1] if len(parts) > 5 else "anonymous"
            elif parts[0] == "Rss:":
                out[name] = out.get(name, 0) + int(parts[1])
    return out


def show(label, s):
    print(f"  {label:34s} VmRSS {s['VmRSS']:6d} KiB ({s['VmRSS'] / 1024:.2f} MiB)  "
          f"VmHWM {s['VmHWM']:6d} KiB ({s['VmHWM'] / 1024:.2f} MiB)  "
          f"anon {s['RssAnon']} KiB, file {s['RssFile']} KiB, Pss {s['Pss']} KiB, "
          f"threads {s['Threads']}")


def loop_script(n):
    return 'read go; i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; echo done; read end' % n


def measure(argv, sock, find):
    """Starts `argv` (a shell running loop_script), finds the processes to measure with
    `find` once it is idle, and reads their status idle and after the loop. Returns
    ({name: (idle, after)}, decisions, dropped lines, loop seconds)."""
    receiver = sink.Sink(sock)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    procs = find(p.pid, receiver.lines)
    idle = {name: status(pid) for name, pid in procs.items()}
    t0 = time.perf_counter()
    p.stdin.write("go\n")
    p.stdin.flush()
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    while not sel.select(timeout=1.0):
        pass
    assert p.stdout.readline().strip() == "done"
    elapsed = time.perf_counter() - t0
    time.sleep(0.5)
    after = {name: status(pid) for name, pid in procs.items()}
    p.stdin.write("\n")
    p.stdin.close()
    p.wait()
    receiver.settle()
    lines = receiver.take()
    receiver.close()
    return {n: (idle[n], after[n]) for n in procs}, len(sink.decisions(lines)), sink.dropped(lines), elapsed


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def pam_processes(_su_pid, lines):
    """The supervisor (`sw-supervisor`) of this session and its watchdog (its parent; not a
    child of su: it detaches). Other sessions may be open on the machine: this one's
    supervisor is the process whose pid its lines carry (`session-wrapper[PID]:`), on this
    session's own log socket."""
    pids = set()
    for line in list(lines):
        m = re.search(rb"session-wrapper\[(\d+)\]:", line)
        if m:
            pids.add(int(m.group(1)))
    found = [p for p in pids if comm(p) == "sw-supervisor" and comm(ppid(p)) == "sw-watchdog"]
    if len(found) != 1:
        sys.exit(f"rss.py: expected one supervisor among the pids of this session's lines {sorted(pids)}")
    return {"supervisor": found[0], "watchdog": ppid(found[0])}


script = loop_script(execs)
procs, n, dropped, elapsed = measure(
    [sw, "run", "--config", config, "--log-socket", sock, "--user", "root", "--", "sh", "-c", script],
    sock, lambda pid, _lines: {"run": pid})
idle, after = procs["run"]
print(f"supervisor memory (/proc/PID/status of `session-wrapper run`):")
show("idle (1 decision)", idle)
show(f"after {n} decisions", after)
print(f"  loop took {elapsed:.1f} s ({execs / elapsed:.0f} execs/s); lines dropped: {dropped}")
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

if pam:
    pam_config, pam_sock = pam
    procs, n, dropped, elapsed = measure(["su", "root", "-c", script], pam_sock, pam_processes)
    print("a PAM session's processes (`su` through pam_session_wrapper.so, /proc/PID/status):")
    for name in ("supervisor", "watchdog"):
        idle, after = procs[name]
        show(f"{name}, idle (1 decision)", idle)
        show(f"{name}, after {n} decisions", after)
    (s_idle, s_after), (w_idle, w_after) = procs["supervisor"], procs["watchdog"]
    held = sorted(s_after["mappings"].items(), key=lambda kv: -kv[1])
    print("  the supervisor's resident KiB by mapping, after: " + ", ".join(f"{n} {k}" for n, k in held if k))
    print(f"  loop took {elapsed:.1f} s ({execs / elapsed:.0f} execs/s); lines dropped: {dropped}")
    print(f"  target: the supervisor at most 4 MiB (4096 KiB) VmRSS: {s_after['VmRSS']} KiB; "
          f"the session's two processes together, Pss (each shared page counted once): "
          f"{s_after['Pss'] + w_after['Pss']} KiB, anonymous {s_after['RssAnon'] + w_after['RssAnon']} KiB")
    for name, (idle, after) in procs.items():
        sink.record(f"rss.pam_{name}_idle_kib", idle["VmRSS"])
        sink.record(f"rss.pam_{name}_after_kib", after["VmRSS"])
        sink.record(f"rss.pam_{name}_after_anon_kib", after["RssAnon"])
        sink.record(f"rss.pam_{name}_after_pss_kib", after["Pss"])
    sink.record("rss.pam_session_pss_kib", s_after["Pss"] + w_after["Pss"])
    sink.record("rss.pam_decisions", n)
