#!/usr/bin/env python3
"""The closing table of bench/run.sh: every figure measured in this run against its target
(issue 17, which tightened issue 8's). Reads the `name value` lines the benchmarks appended to FIGURES.

usage: summary.py FIGURES"""
import sys

f = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(" ")
    f[k] = v


def num(k):
    return float(f[k])


rows = []  # (figure, value, target, verdict)


def check(label, key, fmt, target_text, ok):
    if key in f:
        rows.append((label, fmt(num(key)), target_text, "PASS" if ok(num(key)) else "MISS"))


def info(label, key, fmt):
    if key in f:
        rows.append((label, fmt(num(key)), "-", "info"))


x = lambda v: f"{v:.3f}x"
us = lambda v: f"+{v:.0f} us"
ms = lambda v: f"+{v:.2f} ms"
within_3ms = lambda v: v <= 3
check("exec loop, local policy, enforce (verify = bpf)", "exec.enforce.ratio", x, "<= 1.15x", lambda v: v <= 1.15)
check("exec loop pinned (taskset -c 0), enforce", "exec.enforce-cpu0.ratio_cpu0", x, "<= 1.10x", lambda v: v <= 1.10)
info("exec loop, enforce, per exec", "exec.enforce.per_exec_us", us)
info("exec loop, enforce, verify = ptrace", "exec.enforce-ptrace.ratio", x)
info("exec loop pinned, enforce, verify = ptrace", "exec.enforce-ptrace-cpu0.ratio_cpu0", x)
info("exec loop, local policy, audit", "exec.audit.ratio", x)
for user in ["root", "nobody"]:
    for recv in ["sink", "minimal"]:
        for verify in ["bpf", "ptrace"]:
            info(f"exec loop as pairs ({user}, {recv} receiver, {verify})", f"pairs.{user}.{recv}.{verify}.ratio", x)
check("exec loop, TACACS+ uncached, per exec", "exec.tacacs-uncached.per_exec_us", us,
      "<= +300 us", lambda v: v <= 300)
info("exec loop, floor: the least + one TACACS+ exchange with the same server, per exec", "exec.floor-tacacs.per_exec_us", us)
info("TACACS+ uncached over that floor, per exec (what ours adds to a TACACS+ exec)", "exec.tacacs-uncached.over_floor_us", us)
server = "SW_BENCH_TACACS" if "exec.tacacs-server.other" in f else "the test server, Python"
info(f"TACACS+ server's own CPU per request ({server})", "exec.tacacs-server.cpu_us", lambda v: f"{v:.0f} us")
info("exec loop, TACACS+ cached", "exec.tacacs-cached.ratio", x)
info("exec loop, TACACS+ uncached", "exec.tacacs-uncached.ratio", x)
info("exec loop, snoopy (LD_PRELOAD)", "exec.snoopy.ratio", x)
info("exec loop, sudo (no intercept)", "exec.sudo.ratio", x)
info("exec loop, sudo intercept", "exec.sudo-intercept.ratio", x)
info("exec loop, sudo intercept over sudo, per exec", "exec.sudo-intercept.over_sudo_us", us)
info("exec loop, floor: seccomp notification only", "exec.floor-notify.ratio", x)
info("exec loop, floor: notification + ptrace exec stop", "exec.floor-ptrace.ratio", x)
info("exec loop, floor: notification + the least reading (path, argv, file, real path)", "exec.floor-read.ratio", x)
info("exec loop, floor: that + one log line per exec", "exec.floor-log.ratio", x)
info("exec loop, floor: that + each environment entry's name (what a loader-variable guard reads)", "exec.floor-env.ratio", x)
info("supervisor CPU per exec, ours (bench/steps.py)", "steps.ours.cpu_us", lambda v: f"{v:.0f} us")
info("supervisor CPU per exec, the least (floor log)", "steps.floor.cpu_us", lambda v: f"{v:.0f} us")
info("supervisor CPU per exec, the least that also reads the environment's names (floor env)", "steps.floor_env.cpu_us",
     lambda v: f"{v:.0f} us")
info("system calls per exec, ours", "steps.ours.calls", lambda v: f"{v:.0f}")
info("system calls per exec, the least (floor log)", "steps.floor.calls", lambda v: f"{v:.0f}")
info("exec loop pinned, floor: notification only", "exec.floor-notify-cpu0.ratio_cpu0", x)
info("exec loop pinned, floor: notification + ptrace", "exec.floor-ptrace-cpu0.ratio_cpu0", x)
info("exec loop pinned, floor: the least reading + one line", "exec.floor-log-cpu0.ratio_cpu0", x)
info("exec loop pinned, floor: that + each environment entry's name", "exec.floor-env-cpu0.ratio_cpu0", x)
if "real.ratio" in f:
    check(f"real workload ({f.get('real.package', '?')} ./configure, {f.get('real.execs', '?')} execs)",
          "real.ratio", x, "<= 1.03x", lambda v: v <= 1.03)
    info("real workload, floor: the least reading + one line", "real.floor_log_ratio", x)
    info("real workload, floor: that + each environment entry's name", "real.floor_env_ratio", x)
    info("real workload, snoopy (logs, refuses nothing)", "real.snoopy_ratio", x)
    for row, what in [("supervised", "ours"), ("floor-log", "the least reading + one line"),
                      ("floor-env", "that + the environment's names")]:
        info(f"real workload, supervisor CPU per exec, {what}", f"real.{row}.cpu_us", lambda v: f"{v:.0f} us")
check("PAM session open, added (back to back)", "open.added_ms", ms,
      "<= 3 ms", within_3ms)
info("PAM session open, floor: the least of the same design (back to back)", "open.floor_added_ms",
     ms)
check("PAM session open, added (1 s apart)", "open.spaced_added_ms", ms,
      "<= 3 ms", within_3ms)
info("PAM session open, added, paired by round (1 s apart)", "open.spaced_added_paired_ms", ms)
info("PAM session open, floor (1 s apart)", "open.spaced_floor_added_ms", ms)
info("PAM session open, floor with the supervisor's guarantees (1 s apart)", "open.spaced_guard_added_ms",
     ms)
info("PAM session open alone, added (1 s apart; bench/pam_open.c)", "open.alone_added_ms", ms)
check("PAM session open until its first program has run, added (1 s apart; bench/pam_open.c)", "open.first_added_ms",
      ms, "<= 3 ms", within_3ms)
info("PAM session open until the first program, floor (1 s apart)", "open.first_floor_added_ms",
     ms)
info("PAM session open until the first program, floor with the supervisor's guarantees", "open.first_guard_added_ms",
     ms)
info("PAM session, CPU time of the whole session added, paired (the host, supervisor, watchdog, first program)",
     "open.cpu_added_ms", ms)
info("PAM session, CPU time added by the floor", "open.cpu_floor_added_ms", ms)
info("PAM session, CPU time added by the floor with the supervisor's guarantees", "open.cpu_guard_added_ms",
     ms)
info("PAM session close alone, with the module (1 s apart)", "open.alone_close_ms", lambda v: f"{v:.2f} ms")
check("PAM session open, added, admin guide's example roles (1 s apart)", "open.spaced_roles_added_ms",
      ms, "<= 3 ms", within_3ms)
check("PAM session open, added, kill_on_close (1 s apart)", "open.spaced_cgroup_added_ms",
      ms, "<= 3 ms", within_3ms)
info("PAM session open, kill_on_close, floor: one cgroup move (1 s apart)", "open.cgroup_move_floor_ms",
     ms)
check("session end without a syslog socket, added", "nolog.added_ms", lambda v: f"{v:+.2f} ms",
      "<= 50 ms", lambda v: v <= 50)
mib = lambda v: f"{v / 1024:.2f} MiB"
if "rss.pam_supervisor_after_kib" in f:
    n = f.get("rss.pam_decisions", "?")
    check("PAM supervisor VmRSS, idle", "rss.pam_supervisor_idle_kib", mib, "<= 4 MiB",
          lambda v: v <= 4096)
    check(f"PAM supervisor VmRSS, after {n} decisions", "rss.pam_supervisor_after_kib", mib,
          "<= 4 MiB", lambda v: v <= 4096)
    info(f"PAM watchdog VmRSS, after {n}", "rss.pam_watchdog_after_kib", mib)
    info(f"PAM session Pss (supervisor + watchdog), after {n}", "rss.pam_session_pss_kib", mib)
check("`run` supervisor VmRSS, idle", "rss.idle_kib", mib, "<= 4 MiB", lambda v: v <= 4096)
n = f.get("rss.decisions", "?")
check(f"`run` supervisor VmRSS, after {n} decisions", "rss.after_kib", mib, "<= 4 MiB",
      lambda v: v <= 4096)
info(f"`run` supervisor VmHWM, after {n} decisions", "rss.after_hwm_kib", mib)
info(f"`run` supervisor RssAnon, idle", "rss.idle_anon_kib", mib)
info(f"`run` supervisor RssAnon, after {n} decisions", "rss.after_anon_kib", mib)
info(f"`run` supervisor RssFile, after {n}", "rss.after_file_kib", mib)
ns = f"{f.get('conc.sessions', '?')} sessions x {f.get('conc.execs_per_session', '?')}"
info(f"{ns}: decisions/s", "conc.rate", lambda v: f"{v:.0f}/s")
info(f"{ns}: p50 decision latency", "conc.p50_us", lambda v: f"{v:.0f} us")
info(f"{ns}: p99 decision latency", "conc.p99_us", lambda v: f"{v:.0f} us")
if "conc.lines" in f:
    lines, exp = int(num("conc.lines")), int(num("conc.expected"))
    lost = exp - lines
    rows.append((f"{ns}: decision lines / execs", f"{lines} / {exp}", "equal, 0 dropped",
                 "PASS" if lost == 0 and num("conc.dropped") == 0 and num("conc.failed") == 0
                 else "MISS"))

if rows:
    w = max(len(r[0]) for r in rows)
    print("== summary (targets from issue 17)")
    print(f"  {'figure':{w}s}  {'measured':>16s}  {'target':>16s}  verdict")
    for label, value, target, verdict in rows:
        print(f"  {label:{w}s}  {value:>16s}  {target:>16s}  {verdict}")
