#!/usr/bin/env python3
"""Writes one TACACS+ authorization request (RFC 8907 6.1), obfuscated with KEY, to OUT: what
`floor tacacs` sends for every exec, the least a client can send (the same attributes as the
supervisor sends for /bin/true, single-connect asked).

usage: tacacs_packet.py KEY OUT"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tacacs"))
from server import FLAG_SINGLE_CONNECT, MAJOR_VER, TYPE_AUTHOR, Header, obfuscate  # noqa: E402


def main():
    key, out = sys.argv[1].encode(), sys.argv[2]
    user, port, rem_addr = b"root", b"", b""
    args = [b"service=shell", b"cmd=/usr/bin/true"]
    # authen_method TACACSPLUS (6), priv_lvl 1, authen_type NOT_SET (0), service LOGIN (1)
    body = struct.pack("!8B", 6, 1, 0, 1, len(user), len(port), len(rem_addr), len(args))
    body += bytes(len(a) for a in args) + user + port + rem_addr + b"".join(args)
    hdr = Header(MAJOR_VER << 4, TYPE_AUTHOR, 1, FLAG_SINGLE_CONNECT, 0x5EED5EED, len(body))
    with open(out, "wb") as f:
        f.write(hdr.pack() + obfuscate(hdr, body, key))


if __name__ == "__main__":
    main()
