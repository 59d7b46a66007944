#!/usr/bin/env python3
"""Evicts files from the page cache (written back first), so that the next reads come from
the disk, as they do for a program installed by a package and not run since.

usage: evict.py FILE..."""
import os, sys

for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
