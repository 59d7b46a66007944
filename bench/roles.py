#!/usr/bin/env python3
"""Writes the admin guide's example roles (docs/admin-guide.md, "Example roles": its TOML
blocks, as the files they are shown as) into DIR: DIR/config.toml and DIR/config.d/*.toml, with
the log going to SOCKET. bench/run.sh opens sessions with it: a policy as an operator writes
one, 14 rules naming 35 programs, against the one-rule policy of the other rows.

usage: roles.py DIR SOCKET"""
import os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
guide = open(os.path.join(here, "..", "docs", "admin-guide.md")).read()
start = guide.index("### Example roles")
end = min(i for i in (guide.find("\n## ", start), guide.find("\n### ", start + 1)) if i > 0)
section = guide[start:end]
# Each block follows the line that names its file: `/etc/session-wrapper/config.d/NAME.toml`.
blocks = re.findall(r"`/etc/session-wrapper/config\.d/([\w-]+\.toml)`[^\n]*\n(?:[^\n]*\n)*?\n?```toml\n(.*?)```", section, re.S)
if len(blocks) < 4:
    sys.exit(f"roles.py: found {len(blocks)} example files in docs/admin-guide.md, expected 4")
out, socket = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "config.d"), exist_ok=True)
main = f'[log]\nsocket = "{socket}"\n'
for name, text in blocks:
    path = os.path.join(out, "config.d", name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
with open(os.path.join(out, "config.toml"), "w") as f:
    f.write(main)
os.chmod(os.path.join(out, "config.toml"), 0o644)
print(f"{len(blocks)} files, {sum(t.count('[[rules]]') for _, t in blocks)} rules")
