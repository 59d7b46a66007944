#!/usr/bin/env bash
# Builds everything and runs a supervised session on the built-in default policy: commands
# allowed and refused, and the syslog lines they produced. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cargo build --release --workspace --locked 2>&1 | tail -n 1

work=$(mktemp -d /tmp/session-wrapper-demo.XXXXXX)
chmod 1777 "$work"
trap 'kill "${receiver:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

# A syslog socket of our own, so the demo reads exactly its lines (the supervisor logs to
# /dev/log unless told otherwise).
python3 - "$work/log.sock" "$work/syslog.txt" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(65536).decode(errors="replace") + "\n")
PY
receiver=$!
while [ ! -S "$work/log.sock" ]; do sleep 0.05; done

cp /bin/true "$work/downloaded-tool"
chmod 755 "$work/downloaded-tool"
user=nobody
echo "== session-wrapper run --user $user, built-in default policy (session-wrapper default-config):"
echo
set +e
target/release/session-wrapper run --user "$user" --log-socket "$work/log.sock" -- \
  /bin/sh -c "set -x; id -un; ls -d /usr /etc; $work/downloaded-tool; echo exit status \$?" 2>&1
status=$?
set -e
sleep 0.5
echo
echo "== the session's syslog lines (AUTHPRIV, ident session-wrapper):"
sed 's/^/  /' "$work/syslog.txt"
echo
echo "== exit status of the session: $status"
