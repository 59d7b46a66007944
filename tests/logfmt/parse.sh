#!/usr/bin/env bash
# Parses logfmt lines from standard input with the `logfmt` package from PyPI (an independent,
# standard parser), one JSON object per line on standard output. Creates the git-ignored
# virtualenv tests/logfmt/.venv with it on first use.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
version="0.4"   # the version the tests were written and checked against
if [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" || { echo "parse.sh: python3 -m venv failed (scripts/setup.sh installs python3-venv)" >&2; exit 1; }
fi
# -I: the current directory (tests/, which holds this logfmt/ folder) is not on the path.
if ! "$venv/bin/python" -I -c 'import logfmt.parser' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "logfmt==$version"
fi
exec "$venv/bin/python" -I -c '
import json, sys
from logfmt.parser import parse_line
for line in sys.stdin:
    print(json.dumps(parse_line(line.rstrip("\n"))))
'
