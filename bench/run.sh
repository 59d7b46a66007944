#!/usr/bin/env bash
# Benchmarks (not part of the tests). Builds release binaries, then prints figures.
#   bench/run.sh            everything
#   bench/run.sh exec       the exec-heavy loop only
#   bench/run.sh open       the session-open latency only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v hyperfine >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --workspace --locked 2>&1 | tail -n 1
rel=$PWD/target/release
what=${1:-all}
work=$(mktemp -d /tmp/sw-bench.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

cat > "$work/allow.toml" <<'TOML'
default = "allow"
[[rules]]
name = "no-tmp"
exe = "/tmp/**"
action = "deny"
[log]
socket = "/run/sw-bench-log"
TOML
sed 's/^default = "allow"/mode = "audit"\ndefault = "allow"/' "$work/allow.toml" > "$work/audit.toml"
chmod 644 "$work"/*.toml

# A syslog receiver that counts lines, so that logging is part of what is measured.
python3 - "$work/log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
while True: s.recv(65536)
PY
receiver=$!
trap 'kill $receiver 2>/dev/null; rm -rf "$work"' EXIT
sed -i "s|/run/sw-bench-log|$work/log|" "$work/allow.toml" "$work/audit.toml"

if [ "$what" = all ] || [ "$what" = exec ]; then
  echo "== exec-heavy loop: sh running /bin/true 500 times (hyperfine, 20 runs)"
  printf 'i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done\n' > "$work/loop.sh"
  hyperfine -N -w 3 -r 20 --export-json "$work/exec.json" \
    -n bare "sh $work/loop.sh" \
    -n enforce "$rel/session-wrapper run --config $work/allow.toml --user root -- sh $work/loop.sh" \
    -n audit "$rel/session-wrapper run --config $work/audit.toml --user root -- sh $work/loop.sh" >/dev/null
  python3 - "$work/exec.json" <<'PY'
import json, statistics, sys
r = {x["command"]: statistics.median(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
base = r["bare"]
for k in ["bare", "enforce", "audit"]:
    print(f"  {k:8s} median {r[k]*1000:7.1f} ms  ratio {r[k]/base:.2f}x  per exec +{(r[k]-base)/500*1e6:6.1f} us")
PY
fi

if [ "$what" = all ] || [ "$what" = open ]; then
  echo "== session open latency"
  mkdir -p "$work/pam.d"
  printf 'auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n' > "$work/pam.d/swbench-plain"
  cp "$work/pam.d/swbench-plain" "$work/pam.d/swbench-wrapped"
  echo "session required $rel/libpam_session_wrapper.so config=$work/allow.toml supervisor=$rel/session-wrapper-supervisor" >> "$work/pam.d/swbench-wrapped"
  unshare -m --propagation private sh -c "mount --bind $work/pam.d /etc/pam.d && mount -t tmpfs tmpfs /run && python3 bench/session_open.py 50"
fi
