#!/usr/bin/env bash
# The main job, shown as it is used. Builds everything, then, on the shipped example policy
# (packaging/config.toml, switched to enforce):
#   1. `session-wrapper run`: one command under a supervisor;
#   2. the PAM module itself: a real `su` session through pam_session_wrapper.so, in a private
#      mount namespace (the machine's /etc/pam.d is never touched);
# each showing commands allowed and refused, what the user sees, and the syslog lines.
# Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cargo build --release --workspace --locked 2>&1 | tail -n 1
root=$(pwd)
rel="$root/target/release"

work=$(mktemp -d /var/tmp/session-wrapper-demo.XXXXXX)
chmod 755 "$work"
# The programs, where only root can change them (the module runs its supervisor, as root,
# from nowhere else; the checkout may be anyone's).
bin=$(mktemp -d /var/lib/session-wrapper-demo.XXXXXX)
chmod 755 "$bin"
trap 'kill "${receiver:-0}" 2>/dev/null || true; rm -rf "$work" "$bin"' EXIT
for f in session-wrapper session-wrapper-supervisor session-wrapper-bpf-loader libpam_session_wrapper.so; do
  install -m 755 "$rel/$f" "$bin/"
done

# A syslog socket of our own, so the demo reads exactly its lines.
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

# The demo configuration: the package's example policy in enforce mode, logging to our socket.
mkdir -m 755 "$work/etc"
sed 's/^mode = "audit"$/mode = "enforce"/' packaging/config.toml > "$work/etc/config.toml"
printf '\n[log]\nsocket = "%s"\nspool-dir = "%s/spool"\n' "$work/log.sock" "$work" >> "$work/etc/config.toml"
chmod 644 "$work/etc/config.toml"

# A program someone downloaded into /tmp, and a library directory of their own.
tool=$(mktemp /tmp/downloaded-tool.XXXXXX)
cp /bin/true "$tool"
chmod 755 "$tool"
mkdir -p "$work/mylibs"
trap 'kill "${receiver:-0}" 2>/dev/null || true; rm -rf "$work" "$bin" "$tool"' EXIT

show_log() {
  sleep 0.5
  echo
  echo "   syslog (AUTHPRIV, ident session-wrapper):"
  sed -e 's/^<[0-9]*>[A-Z][a-z][a-z] [ 0-9][0-9] [0-9:]* //' -e 's/^/     /' "$work/syslog.txt"
  : > "$work/syslog.txt"
  echo
}

# The sessions start in /, which every user may enter (the checkout may be a private home).
cd /
commands="id -un; ls -d /usr /etc; $tool; echo \"exit status \$?\"; LD_LIBRARY_PATH=$work/mylibs /usr/bin/id -u; echo \"exit status \$?\""

echo "== 1. session-wrapper run --user nobody --config <the example policy, enforce> -- /bin/sh -c '...'"
echo
set +e
"$bin/session-wrapper" run --config "$work/etc/config.toml" --user nobody -- /bin/sh -c "set -x; $commands" 2>&1 | sed 's/^/   /'
set -e
show_log

echo "== 2. the PAM module: su -s /bin/sh nobody, with 'session required pam_session_wrapper.so' added to su's stack"
echo
cp -a /etc/pam.d "$work/pam.d"
printf 'session required %s config=%s supervisor=%s\n' \
  "$bin/libpam_session_wrapper.so" "$work/etc/config.toml" "$bin/session-wrapper-supervisor" >> "$work/pam.d/su"
echo "   /etc/pam.d/su, last line (inside a private mount namespace only):"
tail -n 1 "$work/pam.d/su" | sed 's/^/     /'
echo
set +e
unshare -m --propagation private sh -c '
  mount --bind "$1/pam.d" /etc/pam.d
  exec su -s /bin/sh nobody -c "set -x; $2"
' demo "$work" "$commands" 2>&1 | sed 's/^/   /'
set -e
show_log
echo "== the machine's /etc/pam.d/su is unchanged: $(grep -c pam_session_wrapper /etc/pam.d/su || true) mention(s) of the module"
