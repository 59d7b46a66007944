#!/usr/bin/env bash
# The four smoke tests of the seed (shared/seeds/000_9a8270eb506f196c.txt, "Smoke test: ..."),
# as the seed writes them: no subcommand, no configuration file (the built-in default
# decides, logs and allows everything), the wrapped scripts made with `mktemp -d` under /tmp.
# Each runs in a bash of its own from the checkout's root (they call target/debug/...), with
# `set -e` so that a failing `test` fails it. Only the build line may differ from the seed's;
# here it is the seed's own. Run by tests/run.sh, as root (the fourth uses sudo).
set -uo pipefail
cd "$(dirname "$0")/../.."
failed=0

smoke() {
  local name=$1 body=$2
  if bash -e -c "$body"; then
    echo "seed smoke test passed: $name"
  else
    echo "seed smoke test FAILED: $name" >&2
    failed=1
  fi
}

smoke "child starts and exits" '
cargo build -p session-wrapper
tmp=$(mktemp -d)
trap '"'"'rm -rf "$tmp"'"'"' EXIT
cat >"$tmp/exit-zero" <<'"'"'EOF'"'"'
#!/bin/sh
printf '"'"'ok\n'"'"' > "$SESSION_WRAPPER_SMOKE_MARKER"
EOF
chmod +x "$tmp/exit-zero"
SESSION_WRAPPER_SMOKE_MARKER="$tmp/marker" \
timeout 10s target/debug/session-wrapper \
--user "$(id -un)" \
--user-uid "$(id -u)" \
--user-gid "$(id -g)" \
--fail-policy open \
-- "$tmp/exit-zero"
test "$(cat "$tmp/marker")" = "ok"
'

smoke "child setup failures are reported" '
cargo build -p session-wrapper
tmp=$(mktemp -d)
trap '"'"'rm -rf "$tmp"'"'"' EXIT
if timeout 10s target/debug/session-wrapper \
--user "$(id -un)" \
--user-uid "$(id -u)" \
--user-gid "$(id -g)" \
--fail-policy open \
-- "$tmp/does-not-exist" 2>"$tmp/error"; then
echo "expected session-wrapper to fail for a missing command" >&2
exit 1
fi
grep -E '"'"'child setup failed|execv'"'"' "$tmp/error"
'

smoke "descendant execution remains supervised" '
cargo build -p session-wrapper
tmp=$(mktemp -d)
trap '"'"'rm -rf "$tmp"'"'"' EXIT
cat >"$tmp/descendant" <<'"'"'EOF'"'"'
#!/bin/sh
(
sleep 0.2
/bin/sh -c '"'"'printf "descendant-ok\n" > "$SESSION_WRAPPER_DESCENDANT_MARKER"'"'"'
) &
exit 0
EOF
chmod +x "$tmp/descendant"
SESSION_WRAPPER_DESCENDANT_MARKER="$tmp/descendant-marker" \
timeout 10s target/debug/session-wrapper \
--user "$(id -un)" \
--user-uid "$(id -u)" \
--user-gid "$(id -g)" \
--fail-policy open \
-- "$tmp/descendant"
test "$(cat "$tmp/descendant-marker")" = "descendant-ok"
'

smoke "privileged identity drop" '
cargo build -p session-wrapper
tmp=$(mktemp -d)
trap '"'"'rm -rf "$tmp"'"'"' EXIT
cat >"$tmp/identity" <<'"'"'EOF'"'"'
#!/bin/sh
printf '"'"'%s:%s\n'"'"' "$(id -u)" "$(id -g)" > "$SESSION_WRAPPER_IDENTITY_MARKER"
EOF
chmod +x "$tmp/identity"
target_user=$(id -un)
target_uid=$(id -u)
target_gid=$(id -g)
sudo env SESSION_WRAPPER_IDENTITY_MARKER="$tmp/identity-marker" \
target/debug/session-wrapper \
--user "$target_user" \
--user-uid "$target_uid" \
--user-gid "$target_gid" \
--fail-policy open \
-- "$tmp/identity"
test "$(cat "$tmp/identity-marker")" = "$target_uid:$target_gid"
'

exit "$failed"
