"""Temporary files for atomic writes: created next to the target, renamed over it when complete.

Same contract as tempfile.mkstemp (O_EXCL, no symlink followed, mode 0600, close-on-exec, read-write) without
importing tempfile, which pulls in shutil, random and weakref: milliseconds of every CLI start.
"""

from __future__ import annotations

import os

PREFIX = ".oci2bin-"


def create_temp(directory: str, suffix: str = ".tmp") -> tuple[int, str]:
    """(fd, path) of a new, empty file `.oci2bin-<random>.tmp` in `directory`, opened read-write."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        path = os.path.join(directory, f"{PREFIX}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def discard(path: str) -> None:
    """Remove a temp file that will not be published (already gone is fine)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
