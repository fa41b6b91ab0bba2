"""Content-addressed blob cache shared by every build and pull.

Layout: ``<root>/sha256/<hex>`` with ``<root>`` = ``$OCI2BIN_BLOB_CACHE`` or
``$XDG_CACHE_HOME/oci2bin/blobs`` or ``~/.cache/oci2bin/blobs``.

A blob is only ever visible under its final name once complete and verified: writers stream into a private
temporary file in the same directory and ``os.replace`` it into place, so concurrent writers of the same blob
(threads or processes) are harmless - the content is identical whoever wins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from typing import BinaryIO, Self

TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 24 * 3600
_CHUNK = 1 << 20


class BlobVerificationError(Exception):
    """A blob's content does not match its descriptor (digest or size)."""

    def __init__(self, message: str, *, digest: str = "", expected=None, actual=None):
        super().__init__(message)
        self.digest = digest
        self.expected = expected
        self.actual = actual


def default_root() -> str:
    env = os.environ.get("OCI2BIN_BLOB_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "oci2bin", "blobs")


def split_digest(digest: str) -> tuple[str, str]:
    algo, sep, hexpart = digest.partition(":")
    if not sep or algo not in ("sha256", "sha384", "sha512") or not hexpart:
        raise ValueError(f"unsupported digest {digest!r}")
    want = hashlib.new(algo).digest_size * 2
    if len(hexpart) != want or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"malformed digest {digest!r}")
    return algo, hexpart


class BlobWriter:
    """Streams one blob into the cache; ``commit()`` verifies digest + size and publishes it atomically."""

    def __init__(self, cache: BlobCache, digest: str, size: int | None):
        self.cache = cache
        self.digest = digest
        self.size = size
        self.algo, self.hex = split_digest(digest)
        d = cache._dir(self.algo)
        fd, self.tmp_path = tempfile.mkstemp(prefix=TMP_PREFIX + self.hex[:16] + "-", dir=d)
        self._f: BinaryIO | None = os.fdopen(fd, "wb")
        self._h = hashlib.new(self.algo)
        self.written = 0

    def write(self, data: bytes) -> None:
        if self.size is not None and self.written + len(data) > self.size:
            raise BlobVerificationError(
                f"blob {self.digest}: more data than the expected {self.size} bytes",
                digest=self.digest,
                expected=self.size,
                actual=self.written + len(data),
            )
        self._f.write(data)
        self._h.update(data)
        self.written += len(data)

    def reset(self) -> None:
        """Start over (the server did not honour a range request on resume)."""
        self._f.seek(0)
        self._f.truncate()
        self._h = hashlib.new(self.algo)
        self.written = 0

    def commit(self) -> str:
        if self.size is not None and self.written != self.size:
            self.abort()
            raise BlobVerificationError(
                f"blob {self.digest}: size mismatch: expected {self.size} bytes, got {self.written}",
                digest=self.digest,
                expected=self.size,
                actual=self.written,
            )
        actual = f"{self.algo}:{self._h.hexdigest()}"
        if actual != self.digest:
            self.abort()
            raise BlobVerificationError(
                f"blob digest mismatch: expected {self.digest}, got {actual}",
                digest=self.digest,
                expected=self.digest,
                actual=actual,
            )
        f, self._f = self._f, None
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.chmod(self.tmp_path, 0o644)
        final = self.cache.path(self.digest)
        os.replace(self.tmp_path, final)
        return final

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._f is not None:
            self.abort()


class BlobCache:
    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root or default_root())
        self._pruned: set[str] = set()
        self._lock = threading.Lock()
        self._digest_locks: dict[str, threading.Lock] = {}

    def _dir(self, algo: str) -> str:
        d = os.path.join(self.root, algo)
        os.makedirs(d, exist_ok=True)
        with self._lock:
            first = algo not in self._pruned
            self._pruned.add(algo)
        if first:
            self._prune_stale_tmp(d)
        return d

    @staticmethod
    def _prune_stale_tmp(d: str) -> None:
        now = time.time()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith(TMP_PREFIX):
                        try:
                            if now - e.stat().st_mtime > _STALE_TMP_SECONDS:
                                os.unlink(e.path)
                        except OSError:
                            pass
        except OSError:
            pass

    def path(self, digest: str) -> str:
        algo, hexpart = split_digest(digest)
        return os.path.join(self.root, algo, hexpart)

    def lock_for(self, digest: str) -> threading.Lock:
        """In-process lock so two threads of one pull do not download the same blob twice."""
        with self._lock:
            return self._digest_locks.setdefault(digest, threading.Lock())

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = os.stat(self.path(digest))
        except (FileNotFoundError, ValueError):
            return False
        return size is None or st.st_size == size

    def writer(self, digest: str, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, digest, size)

    def put_bytes(self, digest: str, data: bytes) -> str:
        if self.has(digest, len(data)):
            return self.path(digest)
        with self.writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def put_file(self, digest: str, src: str, size: int | None = None) -> str:
        if self.has(digest, size):
            return self.path(digest)
        with self.writer(digest, size) as w, open(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                w.write(chunk)
            return w.commit()

    def read_bytes(self, digest: str) -> bytes:
        with open(self.path(digest), "rb") as f:
            return f.read()

    def verify(self, digest: str, size: int | None = None) -> bool:
        """Re-hash a cached blob; a corrupt entry is removed and False returned."""
        algo, hexpart = split_digest(digest)
        p = self.path(digest)
        h = hashlib.new(algo)
        n = 0
        try:
            with open(p, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    n += len(chunk)
        except FileNotFoundError:
            return False
        if h.hexdigest() == hexpart and (size is None or n == size):
            return True
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        return False

    def link_into(self, digest: str, dest: str) -> None:
        """Hard-link the cached blob to ``dest`` (copy if linking is impossible); atomic either way."""
        src = self.path(digest)
        d = os.path.dirname(dest) or "."
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=d)
        os.close(fd)
        try:
            os.unlink(tmp)
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
                os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
