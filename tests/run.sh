#!/usr/bin/env bash
# Runs every test: lints, unit tests, the end-to-end tests that drive real programs
# (session-wrapper, pamtester, su, sudo, sshd on 127.0.0.1, login, a TACACS+ server) as root in
# private mount namespaces, and the TACACS+ test server's own interop suite. Sets the machine up first. Tests that cannot run here say why and are counted.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
SW_SKIP_LOG=$(mktemp)
export SW_SKIP_LOG
trap 'rm -f "$SW_SKIP_LOG"' EXIT
cargo test --workspace --locked
# The TACACS+ test server, proven against an independent client (tacacs_plus from PyPI).
tests/tacacs/run_tests.sh
skipped=$(grep -c . "$SW_SKIP_LOG" || true)
echo "tests: all passed; skipped: $skipped"
if [ "$skipped" -gt 0 ]; then
  sed 's/^/  skipped: /' "$SW_SKIP_LOG"
fi
