"""Hash objects for digests, without importing hashlib for small inputs.

`import hashlib` loads OpenSSL's libcrypto: ~3.5 ms of CPU on every CLI start here (docs/benchmarks.md
section 3). OpenSSL's SHA-256 (SHA-NI) is what blobs need, but a build whose blobs are known to the
verified-blob memo hashes only kilobytes (manifest, config, cache keys), for which CPython's built-in SHA-256
module (`_sha256` in 3.11, `_sha2` from 3.12; same digests, ~300 MB/s) is as good and costs nothing to load.
"""

from __future__ import annotations

import sys

# Bytes the built-in module may hash in one process before hashlib is worth its import (the built-in code is
# ~5x slower: ~2.7 ms more per MiB). Blobs on the memo's fast path are not hashed at all.
_builtin_budget = 1 << 20


def _builtin_sha256():
    try:  # (a failed import searches every sys.path entry: ask for the one this version has)
        if sys.version_info >= (3, 12):
            from _sha2 import sha256
        else:
            from _sha256 import sha256
    except ImportError:  # another Python implementation
        return None
    return sha256


def new(algo: str, size: int | None = None):
    """A hash object for `algo` ("sha256", "sha384", "sha512"); `size`: how much will be hashed, if known
    (at most: the built-in object is only chosen for a known, small total)."""
    global _builtin_budget
    if algo == "sha256" and size is not None and size <= _builtin_budget and "hashlib" not in sys.modules:
        builtin = _builtin_sha256()
        if builtin is not None:
            _builtin_budget -= size
            return builtin()
    import hashlib

    return hashlib.new(algo)


def sha256_hex(data: bytes) -> str:
    h = new("sha256", len(data))
    h.update(data)
    return h.hexdigest()
