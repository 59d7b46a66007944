#!/usr/bin/env bash
# Benchmarks (not part of the tests). Builds release binaries, then prints figures.
#   bench/run.sh              everything, then every figure against its target (issue 8)
#   bench/run.sh exec         the exec-heavy loop: bare, our supervisor (enforce, audit, pinned
#                             to one CPU), TACACS+ uncached and cached, snoopy, sudo intercept
#   bench/run.sh real         a real workload: a Debian source package's ./configure
#   bench/run.sh open         the session-open latency, and the CPU time of a whole session
#   bench/run.sh openab DIR   the session open of another build (DIR holds its
#                             libpam_session_wrapper.so and session-wrapper-supervisor) against
#                             this tree's, shuffled rounds (SW_BENCH_AB_ROUNDS, default 100),
#                             then as a host waits for it, 1 s apart (SW_BENCH_AB_SPACED, 40),
#                             then the CPU time of whole sessions (SW_BENCH_AB_CPU, 60)
#   bench/run.sh rss          the supervisor's memory, idle and after 100,000 decisions: of
#                             `session-wrapper run`, and of a PAM session (su through the
#                             module): its supervisor and its watchdog
#   bench/run.sh concurrent   100 concurrent supervised sessions x 1,000 execs
#   bench/run.sh nolog        a whole `session-wrapper run -- /bin/true` with and without a
#                             syslog socket (a host without syslog must not wait at the end)
# Knobs (environment): SW_BENCH_ROUNDS and SW_BENCH_RUNS (exec loop: hyperfine rounds x runs
# per round, default 4 x 5), SW_BENCH_REAL_RUNS (default 5), SW_BENCH_PACKAGE (default gzip),
# SW_BENCH_RSS_EXECS (default 100000), SW_BENCH_SESSIONS and SW_BENCH_SESSION_EXECS
# (default 100 and 1000); SW_BENCH_TACACS=IPV4:PORT puts the TACACS+ rows (ours and the
# floor) on another server than the test server: it must permit root's shell commands with
# the key `benchkey` and agree to single-connect; SW_BENCH_TACACS_PID, its process, for its CPU.
# Changes nothing on the machine but installed packages (hyperfine, snoopy: never into
# /etc/ld.so.preload) and /var/cache/sw-bench (the source package, so reruns are offline);
# sudoers, snoopy.ini and pam.d are replaced only inside private mount namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in
  all | exec | real | open | rss | concurrent | nolog) ;;
  openab)
    other=${2:-}
    [ -f "$other/libpam_session_wrapper.so" ] && [ -x "$other/session-wrapper-supervisor" ] ||
      { echo "usage: bench/run.sh openab DIR (DIR holds libpam_session_wrapper.so and session-wrapper-supervisor)" >&2; exit 2; }
    other=$(cd "$other" && pwd) ;;
  *) echo "usage: bench/run.sh [all|exec|real|open|rss|concurrent|nolog|openab DIR]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root" >&2; exit 1; }
scripts/setup.sh
export DEBIAN_FRONTEND=noninteractive
apt_install() {
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
command -v hyperfine >/dev/null || apt_install hyperfine
cargo build --release --workspace --locked 2>&1 | tail -n 1
rel=$PWD/target/release
work=$(mktemp -d /tmp/sw-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export SW_BENCH_FIGURES=$work/figures
: > "$SW_BENCH_FIGURES"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

echo "== machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)," \
  "kernel $(uname -r), Debian $(cat /etc/debian_version); load average $(loadavg)"

cat > "$work/allow.toml" <<'TOML'
default = "allow"
verify = "bpf"
[[rules]]
name = "no-tmp"
exe = "/tmp/**"
action = "deny"
[log]
socket = "/run/sw-bench-log"
TOML
sed 's/^default = "allow"/mode = "audit"\ndefault = "allow"/' "$work/allow.toml" > "$work/audit.toml"
sed 's/^verify = "bpf"/verify = "ptrace"/' "$work/allow.toml" > "$work/ptrace.toml"
chmod 644 "$work"/*.toml

# A syslog receiver (bench/sink.py: large receive buffer, reads in a thread and discards), so
# that logging is part of what is measured.
python3 bench/sink.py "$work/log" &
pids+=($!)
sed -i "s|/run/sw-bench-log|$work/log|" "$work/allow.toml" "$work/audit.toml" "$work/ptrace.toml"

# snoopy from the Debian package, never in /etc/ld.so.preload: the benchmark preloads it into
# its own row only. The package's question is answered "no" beforehand, and the file is
# compared before and after (and restored, should the package have touched it).
ensure_snoopy() {
  local before after
  before=$(sha256sum /etc/ld.so.preload 2>/dev/null || echo absent)
  if ! dpkg-query -W -f='${Status}' snoopy 2>/dev/null | grep -q "install ok installed"; then
    [ -e /etc/ld.so.preload ] && cp -a /etc/ld.so.preload "$work/ld.so.preload.orig"
    echo 'snoopy snoopy/install-ld-preload boolean false' | debconf-set-selections
    apt_install snoopy
    after=$(sha256sum /etc/ld.so.preload 2>/dev/null || echo absent)
    if [ "$before" != "$after" ]; then
      if [ -e "$work/ld.so.preload.orig" ]; then cp -a "$work/ld.so.preload.orig" /etc/ld.so.preload
      else rm -f /etc/ld.so.preload; fi
      echo "bench: installing snoopy changed /etc/ld.so.preload; restored it" >&2
    fi
  fi
  if grep -qs snoopy /etc/ld.so.preload; then
    echo "bench: /etc/ld.so.preload loads snoopy for every process: the bare rows would not be bare" >&2
    exit 1
  fi
}

if [ "$what" = all ] || [ "$what" = exec ] || [ "$what" = real ]; then
  ensure_snoopy
  snoopy_lib=$(dpkg -L snoopy | grep -m 1 '/libsnoopy\.so$')
  # snoopy logs each exec to the same receiver as the supervisor (it has no /dev/log here).
  printf '[snoopy]\noutput = socket:%s\n' "$work/log" > "$work/snoopy.ini"
  # The floor: the kernel mechanisms alone (seccomp notification answered CONTINUE; and with
  # the ptrace stop at each exec), without any decision, reading or logging; and the least a
  # supervisor that decides on the real file and argv must do (read them; and send one line).
  cc -O2 -o "$work/floor" bench/floor.c
fi

if [ "$what" = all ] || [ "$what" = exec ]; then
  # sudo: a copy of dash that sudoers runs with intercept (sudo's ptrace mode, which also
  # stops each exec to verify it: intercept_verify), and plain `sh` without; sudo logs every
  # command (intercepted ones included) to a file.
  cp /usr/bin/dash "$work/ish"
  cat > "$work/sudoers" <<EOF
Defaults !use_pty, !lecture, !syslog, logfile=$work/sudo.log
Defaults!$work/ish intercept
root ALL=(ALL:ALL) NOPASSWD: ALL
EOF
  chmod 440 "$work/sudoers"
  visudo -cq -f "$work/sudoers"

  # A TACACS+ server on 127.0.0.1 (the test server, unless SW_BENCH_TACACS names another)
  # permitting everything; every exec of the loop is authorized by it, without and with the
  # decision cache.
  if [ -n "${SW_BENCH_TACACS:-}" ]; then
    thost=${SW_BENCH_TACACS%:*} tport=${SW_BENCH_TACACS##*:} tacacs_pid=${SW_BENCH_TACACS_PID:-}
    echo "== the TACACS+ rows ask $SW_BENCH_TACACS (SW_BENCH_TACACS), not the test server"
    echo "exec.tacacs-server.other 1" >> "$SW_BENCH_FIGURES"
  else
    printf 'default = "permit"\n' > "$work/tacacs-rules.toml"
    python3 tests/tacacs/server.py --listen 127.0.0.1:0 --key benchkey --single-connect \
      --rules "$work/tacacs-rules.toml" --events /dev/null > "$work/tacacs.port" &
    tacacs_pid=$!
    pids+=($!)
    while [ ! -s "$work/tacacs.port" ]; do sleep 0.05; done
    thost=127.0.0.1 tport=$(sed 's/.*://' "$work/tacacs.port")
  fi
  printf 'benchkey\n' > "$work/tacacs.key"; chmod 600 "$work/tacacs.key"
  for cache in 0 60; do
    cat > "$work/tacacs-$cache.toml" <<TOML
default = "authorize"
[log]
socket = "$work/log"
[tacacs]
key-file = "$work/tacacs.key"
accounting = false
session-accounting = false
cache-ttl-s = $cache
[[tacacs.servers]]
host = "$thost"
port = $tport
TOML
    chmod 644 "$work/tacacs-$cache.toml"
  done
  # The floor of a TACACS+ exec: the floor that logs, and before each answer one authorization
  # exchange with the same server on one connection (bench/floor.c mode tacacs).
  python3 bench/tacacs_packet.py benchkey "$work/tacacs-request.bin"

  rounds=${SW_BENCH_ROUNDS:-4} runs=${SW_BENCH_RUNS:-5}
  echo "== exec-heavy loop: sh running /bin/true 500 times" \
    "(hyperfine, $rounds rounds x $runs runs per row; load average $(loadavg))"
  printf 'i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done\n' > "$work/loop.sh"
  sw="$rel/session-wrapper run --user root --config"
  # Every row in one hyperfine run, in a private mount namespace where /etc/sudoers and
  # /etc/snoopy.ini are the ones above. Several rounds, so that a change in the machine's load
  # during the run is spread over all rows. The -cpu0 rows run everything (supervisor
  # included) on one CPU: each stop then switches tasks on that CPU instead of waking the
  # other CPU, which separates the cost of the cross-CPU wake-ups from the work done.
  cat > "$work/exec-bench.sh" <<EOF
set -e
mount --bind $work/sudoers /etc/sudoers
mount --bind $work/snoopy.ini /etc/snoopy.ini
for r in \$(seq $rounds); do
  hyperfine -N -w 1 -r $runs --export-json $work/exec-\$r.json \\
    -n bare "sh $work/loop.sh" \\
    -n enforce "$sw $work/allow.toml -- sh $work/loop.sh" \\
    -n enforce-ptrace "$sw $work/ptrace.toml -- sh $work/loop.sh" \\
    -n audit "$sw $work/audit.toml -- sh $work/loop.sh" \\
    -n tacacs-uncached "$sw $work/tacacs-0.toml -- sh $work/loop.sh" \\
    -n tacacs-cached "$sw $work/tacacs-60.toml -- sh $work/loop.sh" \\
    -n snoopy "env LD_PRELOAD=$snoopy_lib sh $work/loop.sh" \\
    -n sudo "sudo sh $work/loop.sh" \\
    -n sudo-intercept "sudo $work/ish $work/loop.sh" \\
    -n floor-notify "$work/floor notify sh $work/loop.sh" \\
    -n floor-ptrace "$work/floor ptrace sh $work/loop.sh" \\
    -n floor-read "$work/floor read sh $work/loop.sh" \\
    -n floor-log "env FLOOR_LOG=$work/log $work/floor log sh $work/loop.sh" \\
    -n floor-env "env FLOOR_LOG=$work/log $work/floor env sh $work/loop.sh" \\
    -n floor-tacacs "env FLOOR_LOG=$work/log FLOOR_TACACS=$thost:$tport FLOOR_TACACS_PACKET=$work/tacacs-request.bin $work/floor tacacs sh $work/loop.sh" \\
    -n bare-cpu0 "taskset -c 0 sh $work/loop.sh" \\
    -n floor-notify-cpu0 "taskset -c 0 $work/floor notify sh $work/loop.sh" \\
    -n floor-ptrace-cpu0 "taskset -c 0 $work/floor ptrace sh $work/loop.sh" \\
    -n floor-log-cpu0 "env FLOOR_LOG=$work/log taskset -c 0 $work/floor log sh $work/loop.sh" \\
    -n floor-env-cpu0 "env FLOOR_LOG=$work/log taskset -c 0 $work/floor env sh $work/loop.sh" \\
    -n enforce-cpu0 "taskset -c 0 $sw $work/allow.toml -- sh $work/loop.sh" \\
    -n enforce-ptrace-cpu0 "taskset -c 0 $sw $work/ptrace.toml -- sh $work/loop.sh" >/dev/null 2>>$work/hyperfine.err
done
EOF
  unshare -m --propagation private bash "$work/exec-bench.sh" || { cat "$work/hyperfine.err" >&2; exit 1; }
  echo "  hyperfine warned of statistical outliers $(grep -c 'outliers' "$work/hyperfine.err" || true) times" \
    "(in $((rounds * $(grep -c '^    -n ' "$work/exec-bench.sh"))) row-rounds; many: the machine was not quiet)"
  grep -q 'COMMAND=/bin/true' "$work/sudo.log" || { echo "bench: sudo intercept logged no subcommand" >&2; exit 1; }
  python3 - "$work"/exec-*.json <<'PY'
import json, os, statistics, sys
times = {}
for path in sys.argv[1:]:
    for x in json.load(open(path))["results"]:
        times.setdefault(x["command"], []).extend(x["times"])
r = {k: statistics.median(v) for k, v in times.items()}
def rec(k, v):
    with open(os.environ["SW_BENCH_FIGURES"], "a") as f: f.write(f"{k} {v}\n")
notes = {"enforce": "verify = bpf", "enforce-ptrace": "verify = ptrace",
         "snoopy": "env + sh, libsnoopy preloaded", "sudo": "sudo sh, no intercept",
         "floor-notify": "seccomp notification, CONTINUE", "floor-ptrace": "+ ptrace stop at exec",
         "floor-read": "notification + path, argv, file, real path", "floor-log": "floor-read + one line",
         "floor-env": "floor-log + each environment entry's name",
         "floor-tacacs": "floor-log + one TACACS+ exchange",
         "sudo-intercept": "sudo, intercept (ptrace)", "tacacs-uncached": "127.0.0.1",
         "tacacs-cached": "cache-ttl-s = 60"}
print(f"  {'row':16s} {'median':>10s} {'ratio':>7s} {'per exec':>10s}   (runs)")
for k in ["bare", "enforce", "enforce-ptrace", "audit", "tacacs-uncached", "tacacs-cached", "snoopy", "sudo",
          "sudo-intercept", "floor-notify", "floor-ptrace", "floor-read", "floor-log", "floor-env", "floor-tacacs", "bare-cpu0", "floor-notify-cpu0",
          "floor-ptrace-cpu0", "floor-log-cpu0", "floor-env-cpu0", "enforce-cpu0", "enforce-ptrace-cpu0"]:
    base = r["bare-cpu0"] if k.endswith("cpu0") else r["bare"]
    ratio, per = r[k] / base, (r[k] - base) / 500 * 1e6
    print(f"  {k:16s} {r[k]*1000:7.1f} ms {ratio:6.3f}x {per:+8.1f} us   ({len(times[k])}) "
          f"{'vs bare-cpu0' if k.endswith('cpu0') and k != 'bare-cpu0' else notes.get(k, '')}")
    rec(f"exec.{k}.median_ms", f"{r[k]*1000:.2f}")
    rec(f"exec.{k}.ratio" + ("_cpu0" if k.endswith("cpu0") else ""), f"{ratio:.4f}")
    rec(f"exec.{k}.per_exec_us", f"{per:.1f}")
print(f"  TACACS+ uncached over the local policy: {(r['tacacs-uncached'] - r['enforce']) / 500 * 1e6:+.0f} us per exec;"
      f" pinned to one CPU, the supervisor adds {(r['enforce-cpu0'] - r['bare-cpu0']) / 500 * 1e6:+.0f} us per exec"
      f" (unpinned: {(r['enforce'] - r['bare']) / 500 * 1e6:+.0f} us);"
      f" sudo intercept over plain sudo: {(r['sudo-intercept'] - r['sudo']) / 500 * 1e6:+.0f} us per exec")
rec("exec.sudo-intercept.over_sudo_us", f"{(r['sudo-intercept'] - r['sudo']) / 500 * 1e6:.1f}")
over = (r['tacacs-uncached'] - r['floor-tacacs']) / 500 * 1e6
print(f"  TACACS+ uncached over its floor (floor-tacacs: the least, one line and one exchange with the same"
      f" server): {over:+.0f} us per exec; over the floor that logs: {(r['tacacs-uncached'] - r['floor-log']) / 500 * 1e6:+.0f} us,"
      f" of which the exchange itself {(r['floor-tacacs'] - r['floor-log']) / 500 * 1e6:+.0f} us")
rec("exec.tacacs-uncached.over_floor_us", f"{over:.1f}")
PY
  echo "  load average after: $(loadavg)"
  echo "== where the supervisor's time per exec goes, against the least a supervisor must do" \
    "(bench/steps.py; load average $(loadavg))"
  command -v perf >/dev/null || apt_install linux-perf
  python3 bench/steps.py "$rel/session-wrapper" "$work/allow.toml" "$work/floor" "$work/log" "$work" 2000
  # What the uncached TACACS+ row pays the server (the test server is Python): its own CPU
  # per request.
  if [ -n "$tacacs_pid" ]; then
    echo "== TACACS+ uncached: the server's own CPU per request (perf stat of its process)"
    printf 'i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done\n' > "$work/loop1000.sh"
    perf stat -x, -e task-clock -p "$tacacs_pid" -o "$work/tacacs-cpu.txt" &
    stat_pid=$!
    sleep 0.2
    $sw "$work/tacacs-0.toml" -- sh "$work/loop1000.sh" >/dev/null
    kill -INT "$stat_pid"; wait "$stat_pid" || true
    server_us=$(awk -F, '/task-clock/ {printf "%.1f", $1 * 1000 / 1000}' "$work/tacacs-cpu.txt")
    echo "  server CPU per request: $server_us us (1,000 execs, each one authorization)"
    echo "exec.tacacs-server.cpu_us $server_us" >> "$SW_BENCH_FIGURES"
  fi
  echo "== the same loop as whole runs in alternating pairs (bench/pairs.py; load average $(loadavg))"
  python3 bench/pairs.py "$rel/session-wrapper" "$work" "$work/loop.sh" "${SW_BENCH_PAIRS:-9}"
fi

if [ "$what" = all ] || [ "$what" = real ]; then
  # The source package is fetched once into /var/cache/sw-bench with a private apt
  # configuration (its own deb-src list and index directory; the machine's apt sources and
  # indexes are not touched), then reused offline.
  pkg=${SW_BENCH_PACKAGE:-gzip}
  cache=/var/cache/sw-bench
  src=$(ls -d "$cache/src/$pkg"-[0-9]*/ 2>/dev/null | head -n 1 || true)
  if [ -z "$src" ]; then
    command -v dpkg-source >/dev/null || apt_install dpkg-dev
    mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/src"
    printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n' \
      > "$cache/apt/sources.list"
    apt_private=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
      -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache" -o APT::Sandbox::User=root)
    apt-get "${apt_private[@]}" update -qq
    (cd "$cache/src" && apt-get "${apt_private[@]}" source -qq "$pkg" >/dev/null)
    src=$(ls -d "$cache/src/$pkg"-[0-9]*/ | head -n 1)
  fi
  command -v perf >/dev/null || apt_install linux-perf
  echo "== real workload: $(basename "$src")'s ./configure, bare, under session-wrapper run," \
    "under the floors (log; log and environment) and with snoopy (load average $(loadavg))"
  # Built outside /tmp: the policy refuses programs from /tmp, and configure runs the ones it
  # compiles. In a private mount namespace whose /etc/snoopy.ini is the one above.
  unshare -m --propagation private sh -c "mount --bind $work/snoopy.ini /etc/snoopy.ini &&
    exec python3 bench/real_workload.py $src $cache/build ${SW_BENCH_REAL_RUNS:-5} \
    $rel/session-wrapper $work/allow.toml $work/real.sock $work/floor $snoopy_lib"
  echo "  load average after: $(loadavg)"
fi

if [ "$what" = all ] || [ "$what" = open ]; then
  echo "== session open latency (load average $(loadavg))"
  mkdir -p "$work/pam.d"
  printf 'auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n' > "$work/pam.d/swbench-plain"
  cp "$work/pam.d/swbench-plain" "$work/pam.d/swbench-wrapped"
  echo "session required $rel/libpam_session_wrapper.so config=$work/allow.toml supervisor=$rel/session-wrapper-supervisor" >> "$work/pam.d/swbench-wrapped"
  # The same open with a policy as an operator writes one: the admin guide's example roles
  # (bench/roles.py: 14 rules in 4 files, naming 35 programs), against the one rule above.
  python3 bench/roles.py "$work/roles" "$work/log" >/dev/null
  cp "$work/pam.d/swbench-plain" "$work/pam.d/swbench-roles"
  echo "session required $rel/libpam_session_wrapper.so config=$work/roles/config.toml supervisor=$rel/session-wrapper-supervisor" >> "$work/pam.d/swbench-roles"
  cp "$work/pam.d/swbench-plain" "$work/pam.d/swbench-cgroup"
  echo "session required $rel/libpam_session_wrapper.so config=$work/allow.toml supervisor=$rel/session-wrapper-supervisor kill_on_close" >> "$work/pam.d/swbench-cgroup"
  # The floor of the open: a module and a supervisor in C that do the least of the same
  # design (bench/floor.c: fork twice, exec, the filter installed, its listener handed over,
  # one line, ready).
  cc -O2 -o "$work/floor" bench/floor.c
  cc -O2 -shared -fPIC -DFLOOR_PAM -o "$work/pam_floor.so" bench/floor.c
  cp "$work/pam.d/swbench-plain" "$work/pam.d/swbench-floor"
  echo "session required $work/pam_floor.so $work/floor $work/log" >> "$work/pam.d/swbench-floor"
  # The same floor with what the supervisor's guarantees add to the open (bench/floor.c guard:
  # the hello and the user's groups, a watchdog, the supervisor's confinement, the session's
  # mount table, a session file).
  cp "$work/pam.d/swbench-plain" "$work/pam.d/swbench-floorg"
  echo "session required $work/pam_floor.so $work/floor $work/log guard" >> "$work/pam.d/swbench-floorg"
  # What a host waits for at the open alone, and at the close apart (pamtester times both).
  cc -O2 -o "$work/pam_open" bench/pam_open.c -lpam
  unshare -m --propagation private sh -c "mount --bind $work/pam.d /etc/pam.d && mount -t tmpfs tmpfs /run && python3 bench/session_open.py 50 10 $work/pam_open"
fi

if [ "$what" = openab ]; then
  echo "== session open, $other (a) against this tree (b) (load average $(loadavg))"
  mkdir -p "$work/pam-ab.d"
  printf 'auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n' > "$work/pam-ab.d/swbench-plain"
  for ab in a b; do
    dir=$rel
    [ "$ab" = a ] && dir=$other
    cp "$work/pam-ab.d/swbench-plain" "$work/pam-ab.d/swbench-$ab"
    echo "session required $dir/libpam_session_wrapper.so config=$work/allow.toml supervisor=$dir/session-wrapper-supervisor" >> "$work/pam-ab.d/swbench-$ab"
  done
  # Both builds' files are read afresh from the disk: a file the linker has just written sits
  # in the page cache differently from one read back (or copied), and its execs were 0.29 ms
  # slower than those of a copy of it (an A/A comparison; none once both were evicted).
  python3 bench/evict.py "$rel/libpam_session_wrapper.so" "$rel/session-wrapper-supervisor" \
    "$other/libpam_session_wrapper.so" "$other/session-wrapper-supervisor"
  # Then the open as a host waits for it, paired 1 s apart (bench/pam_open.c).
  cc -O2 -o "$work/pam_open" bench/pam_open.c -lpam
  unshare -m --propagation private sh -c "mount --bind $work/pam-ab.d /etc/pam.d && mount -t tmpfs tmpfs /run && python3 bench/open_ab.py ${SW_BENCH_AB_ROUNDS:-100} $work/pam_open ${SW_BENCH_AB_SPACED:-40} ${SW_BENCH_AB_CPU:-60}"
fi

if [ "$what" = all ] || [ "$what" = rss ]; then
  echo "== supervisor memory (load average $(loadavg))"
  # The same in a PAM session (su through the module), in a private mount namespace whose
  # /etc/pam.d has only that su stack; its log goes to rss.py's own receiver.
  mkdir -p "$work/pam-rss.d"
  sed "s|^socket = .*|socket = \"$work/rss-pam.sock\"|" "$work/allow.toml" > "$work/rss-pam.toml"
  chmod 644 "$work/rss-pam.toml"
  printf 'auth sufficient pam_rootok.so\naccount required pam_permit.so\nsession required pam_permit.so\nsession required %s config=%s supervisor=%s\n' \
    "$rel/libpam_session_wrapper.so" "$work/rss-pam.toml" "$rel/session-wrapper-supervisor" > "$work/pam-rss.d/su"
  # Read afresh from the disk, as in openab: which pages of a file a process holds depends on
  # how the file sits in the page cache (a file the linker has just written sits differently).
  python3 bench/evict.py "$rel/session-wrapper" "$rel/libpam_session_wrapper.so" "$rel/session-wrapper-supervisor"
  unshare -m --propagation private sh -c "mount --bind $work/pam-rss.d /etc/pam.d && python3 bench/rss.py \
    $rel/session-wrapper $work/allow.toml $work/rss.sock ${SW_BENCH_RSS_EXECS:-100000} \
    $work/rss-pam.toml $work/rss-pam.sock"
fi

if [ "$what" = all ] || [ "$what" = concurrent ]; then
  echo "== concurrent sessions (load average $(loadavg))"
  python3 bench/concurrent.py "$rel/session-wrapper" "$work/allow.toml" "$work/conc.sock" \
    "${SW_BENCH_SESSIONS:-100}" "${SW_BENCH_SESSION_EXECS:-1000}"
  echo "  load average after: $(loadavg)"
fi

if [ "$what" = all ] || [ "$what" = nolog ]; then
  echo "== a session's end without a syslog socket (load average $(loadavg))"
  sed "s|^socket = .*|socket = \"$work/no-such-socket\"|" "$work/allow.toml" > "$work/nolog.toml"
  chmod 644 "$work/nolog.toml"
  (cd / && hyperfine -N -w 3 -r "${SW_BENCH_NOLOG_RUNS:-30}" --export-json "$work/nolog.json" \
    -n with-socket "$rel/session-wrapper --config $work/allow.toml --user nobody -- /bin/true" \
    -n without-socket "$rel/session-wrapper --config $work/nolog.toml --user nobody --spool-dir $work/nolog-spool -- /bin/true" \
    >/dev/null 2>>"$work/hyperfine.err")
  python3 - "$work/nolog.json" <<'PY'
import json, os, statistics, sys
r = {x["command"]: statistics.median(x["times"]) * 1000 for x in json.load(open(sys.argv[1]))["results"]}
d = r["without-socket"] - r["with-socket"]
print(f"  with a syslog socket:    {r['with-socket']:.2f} ms (median, whole run of /bin/true)")
print(f"  without one:             {r['without-socket']:.2f} ms: {d:+.2f} ms (target: at most +50 ms; it was +2000 ms)")
with open(os.environ["SW_BENCH_FIGURES"], "a") as f:
    f.write(f"nolog.added_ms {d:.3f}\n")
PY
fi

python3 bench/summary.py "$SW_BENCH_FIGURES"
echo "load average at the end: $(loadavg)"
