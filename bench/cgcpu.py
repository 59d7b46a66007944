"""The CPU time of whole PAM sessions: a transaction of bench/pam_open.c run in a cgroup of its
own (cgroup v2), so that what the session ran is counted: the host, the supervisor and its
watchdog (which outlive the host) and the first program, with the shell that execs the driver;
not the log receiver's work nor the kernel threads'. It holds for stacks that leave the
session's leader where it is (`kill_on_close` and limits move it into a cgroup of the session's
own, out of the bench's). On the two-CPU test host the session open's latency was seen to move
with this CPU time, which varies far less from one session to the next: it pairs two builds,
or a build and a floor, in a few dozen sessions."""
import os
import subprocess
import sys
import time


def mount():
    """The cgroup2 mount (where the module makes a session's cgroup) and its options."""
    for line in open("/proc/self/mounts"):
        f = line.split()
        if f[2] == "cgroup2":
            return f[1], f[3]
    return None, None


def emptied(group, timeout):
    """Waits until no process is left in `group` (its `cgroup.events` says `populated 0`);
    whether it came to that within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with open(os.path.join(group, "cgroup.events")) as f:
            if "populated 0" in f.read().splitlines():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


class Groups:
    """One cgroup per service, made once and removed at the end (removing a cgroup leaves the
    kernel work that slowed the next open of a round)."""

    def __init__(self, services, tag):
        root = mount()[0]
        if root is None:
            raise OSError("no cgroup2 mount")
        self.dirs = {s: os.path.join(root, f"session-wrapper-bench-{tag}-{os.getpid()}-{i}") for i, s in enumerate(services)}
        self.made = []

    def __enter__(self):
        try:
            for d in self.dirs.values():
                os.mkdir(d)
                self.made.append(d)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        """Removes the groups made, each once its processes are gone; what cannot be removed is
        said, and an exception on the way out goes on."""
        for d in self.made:
            try:
                emptied(d, 5)
                os.rmdir(d)
            except OSError as e:
                print(f"cgcpu: {d} left behind: {e}", file=sys.stderr)
        self.made = []
        return False

    def session(self, driver, service):
        """One transaction of `driver` on `service` inside its cgroup: the CPU time of all it
        ran, in ms, read once the session's last process is gone."""
        d = self.dirs[service]
        before = usage_ms(d)
        subprocess.run(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$1" "$2" root', d, driver, service],
                       check=True, capture_output=True)
        if not emptied(d, 5):
            raise RuntimeError(f"{service}: processes of the session still in {d} after 5 s")
        return usage_ms(d) - before


def usage_ms(group):
    with open(os.path.join(group, "cpu.stat")) as f:
        return int(dict(line.split() for line in f)["usage_usec"]) / 1000
