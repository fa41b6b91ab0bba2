"""The output cache (`--cache`, `list`, `prune`): built binaries under $XDG_CACHE_HOME/oci2bin/output.

An entry is just a polyglot file named `<output name>-<digest[:12]>-<options hash>`; its own metadata says
which image it holds, so no index file can go stale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from oci2bin.errors import UserError
from oci2bin.polyglot.reader import Polyglot


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "oci2bin", "output")


def cache_key(name: str, digest: str, *parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return f"{name}-{digest.partition(':')[2][:12]}-{h.hexdigest()[:8]}"


@dataclass(frozen=True)
class Entry:
    path: str
    image: str
    digest: str
    arch: str
    size: int
    built: float  # mtime

    def as_json(self) -> dict:
        return {
            "image": self.image,
            "digest": self.digest,
            "arch": self.arch,
            "size": self.size,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.built)),
            "path": self.path,
        }


def entries(directory: str | None = None) -> list[Entry]:
    directory = directory or cache_dir()
    out = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            p = Polyglot(path)
        except UserError:
            continue
        st = os.stat(path)
        md = p.metadata
        out.append(
            Entry(
                path,
                md.get("image") or name,
                md.get("digest", ""),
                md.get("arch", ""),
                st.st_size,
                st.st_mtime,
            )
        )
    out.sort(key=lambda e: (-e.built, e.path))
    return out


def prune_plan(all_entries: list[Entry]) -> list[Entry]:
    """Everything but the most recently built entry of each (image, arch)."""
    keep: set[tuple[str, str]] = set()
    remove = []
    for e in sorted(all_entries, key=lambda e: (-e.built, e.path)):
        key = (e.image, e.arch)
        if key in keep:
            remove.append(e)
        else:
            keep.add(key)
    return remove


def copy_atomic(src: str, dest: str) -> None:
    """Copy src to dest via a temp file in dest's directory; mode 0755."""
    d = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix=".oci2bin-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
