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
  # A TACACS+ server on 127.0.0.1 (the test server) permitting everything; every exec of the
  # loop is authorized by it, without and with the decision cache.
  printf 'default = "permit"\n' > "$work/tacacs-rules.toml"
  python3 tests/tacacs/server.py --listen 127.0.0.1:0 --key benchkey --single-connect \
    --rules "$work/tacacs-rules.toml" --events /dev/null > "$work/tacacs.port" &
  tacacs_pid=$!
  trap 'kill $receiver $tacacs_pid 2>/dev/null; rm -rf "$work"' EXIT
  while [ ! -s "$work/tacacs.port" ]; do sleep 0.05; done
  tport=$(sed 's/.*://' "$work/tacacs.port")
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
host = "127.0.0.1"
port = $tport
TOML
    chmod 644 "$work/tacacs-$cache.toml"
  done

  echo "== exec-heavy loop: sh running /bin/true 500 times (hyperfine, 20 runs)"
  printf 'i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done\n' > "$work/loop.sh"
  hyperfine -N -w 3 -r 20 --export-json "$work/exec.json" \
    -n bare "sh $work/loop.sh" \
    -n enforce "$rel/session-wrapper run --config $work/allow.toml --user root -- sh $work/loop.sh" \
    -n audit "$rel/session-wrapper run --config $work/audit.toml --user root -- sh $work/loop.sh" \
    -n tacacs-uncached "$rel/session-wrapper run --config $work/tacacs-0.toml --user root -- sh $work/loop.sh" \
    -n tacacs-cached "$rel/session-wrapper run --config $work/tacacs-60.toml --user root -- sh $work/loop.sh" >/dev/null
  python3 - "$work/exec.json" <<'PY'
import json, statistics, sys
r = {x["command"]: statistics.median(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
base = r["bare"]
for k in ["bare", "enforce", "audit", "tacacs-uncached", "tacacs-cached"]:
    print(f"  {k:16s} median {r[k]*1000:7.1f} ms  ratio {r[k]/base:.2f}x  per exec +{(r[k]-base)/500*1e6:6.1f} us")
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
