"""The CPU time of whole PAM sessions: a transaction of bench/pam_open.c run in a cgroup of its
own (cgroup v2), so that everything the session ran is counted, the host, the supervisor and
its watchdog (which outlive the host) and the first program. On the two-CPU test host the
session open's latency follows this CPU time, and it varies far less from one session to the
next, so that it pairs two builds, or a build and a floor, in a few dozen sessions."""
import os
import subprocess
import time


def mount():
    """The cgroup2 mount (where the module makes a session's cgroup) and its options."""
    for line in open("/proc/self/mounts"):
        f = line.split()
        if f[2] == "cgroup2":
            return f[1], f[3]
    return None, None


class Groups:
    """One cgroup per service, made once and removed at the end (removing a cgroup leaves the
    kernel work that slowed the next open of a round)."""

    def __init__(self, services, tag):
        root = mount()[0]
        if root is None:
            raise OSError("no cgroup2 mount")
        self.dirs = {s: os.path.join(root, f"session-wrapper-bench-{tag}-{os.getpid()}-{i}") for i, s in enumerate(services)}

    def __enter__(self):
        for d in self.dirs.values():
            os.mkdir(d)
        return self

    def __exit__(self, *exc):
        for d in self.dirs.values():
            os.rmdir(d)

    def session(self, driver, service):
        """One transaction of `driver` on `service` inside its cgroup: the CPU time of all it
        ran, in ms, read once the session's last process is gone."""
        d = self.dirs[service]
        before = usage_ms(d)
        subprocess.run(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$1" "$2" root', d, driver, service],
                       check=True, capture_output=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(os.path.join(d, "cgroup.procs")) as f:
                if not f.read().strip():
                    break
            time.sleep(0.005)
        return usage_ms(d) - before


def usage_ms(group):
    with open(os.path.join(group, "cpu.stat")) as f:
        return int(dict(line.split() for line in f)["usage_usec"]) / 1000
