#!/usr/bin/env bash
# Runs every test: lints, unit tests, the seed's smoke tests as the seed writes them, the
# end-to-end tests that drive real programs (session-wrapper, pamtester, su, sudo, sshd on
# 127.0.0.1, login, a TACACS+ server) as root in private mount namespaces, and the TACACS+
# test server's own interop suite. Sets the machine up first. Tests that cannot run here say
# why and are counted. Works from any checkout: a home directory of mode 0700, /tmp, /srv.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets are run by hand (nightly flags), but compile against today's code here.
cargo check --manifest-path fuzz/Cargo.toml --bins --locked

# What the sessions' users (nobody, test users) execute is staged in a root-owned,
# world-readable directory of this run's own, outside /tmp (a private /tmp would hide it) and
# outside the checkout (which may be a home directory no one else can enter).
stage=$(mktemp -d /var/lib/session-wrapper-tests.XXXXXX)
SW_SKIP_LOG=$(mktemp)
export SW_SKIP_LOG
trap 'rm -rf "$stage"; rm -f "$SW_SKIP_LOG"' EXIT
chmod 755 "$stage"
for f in target/debug/session-wrapper target/debug/session-wrapper-supervisor target/debug/session-wrapper-bpf-loader \
         target/debug/libpam_session_wrapper.so target/debug/sw-attack-* target/debug/sw-probe; do
  case "$f" in *.d) continue ;; esac
  install -m 755 "$f" "$stage/"
done
export SW_BIN_DIR="$stage"

# The seed's four smoke tests, verbatim, with their scripts under /tmp.
tests/smoke/seed-smoke.sh
cargo test --workspace --locked
# The attacks on the check after the decision (classes 1, 2 and 7: races on the path, the
# arguments, symlinks and the loader's environment) again with the ptrace exec stop; the run
# above checked with the kernel's (verify = "bpf"), and each session's start line must say so.
SW_VERIFY=ptrace cargo test --locked -p session-wrapper-tests --test attacks -- c1a_ c1b_ c1c_ c1d_ c1e_ c1f_ c1g_ c2_ c7_
# The TACACS+ test server, proven against an independent client (tacacs_plus from PyPI).
tests/tacacs/run_tests.sh
skipped=$(grep -c . "$SW_SKIP_LOG" || true)
echo "tests: all passed; skipped: $skipped"
if [ "$skipped" -gt 0 ]; then
  sed 's/^/  skipped: /' "$SW_SKIP_LOG"
fi
