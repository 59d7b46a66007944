#!/usr/bin/env bash
# Proves tests/tacacs/server.py against independent TACACS+ and TLS peers.
# Creates the git-ignored virtualenv tests/tacacs/.venv with the tacacs_plus
# client from PyPI on first use, then runs the unittest suite.
# Usage: tests/tacacs/run_tests.sh [unittest arguments, e.g. test_interop.TLSTest]
# Exits non-zero if anything fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-/usr/bin/python3}"
tacacs_plus_version="2.6"   # the version the suite was written and checked against

if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/pip" ]; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    echo "run_tests.sh: '$python -m venv' failed; on Debian install python3-venv" \
         "(scripts/setup.sh does)" >&2
    exit 1
  fi
fi
if ! "$venv/bin/python" -c 'import tacacs_plus' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "tacacs_plus==$tacacs_plus_version"
fi
command -v openssl >/dev/null || { echo "run_tests.sh: the TLS tests need the openssl command" >&2; exit 1; }

cd "$here"
if [ "$#" -eq 0 ]; then
  set -- test_interop
fi
exec "$venv/bin/python" -m unittest -v "$@"
