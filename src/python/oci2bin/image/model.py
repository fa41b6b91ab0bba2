"""The Image abstraction every source produces and every sink consumes.

An Image is a config (small, held as bytes), an ordered list of layer blobs (opened lazily, streamed, verified
against their digest while read) and, when the source had one, the source's manifest bytes (kept verbatim so
the image digest survives a round-trip). Transforms build new Images; nothing here mutates in place.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat

from oci2bin import hashing
from oci2bin.errors import UserError
from oci2bin.record import Record

TYPE_CHECKING = False  # typing costs import time on every CLI start; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import BinaryIO

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

CHUNK = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashing.sha256_hex(data)


def split_digest(digest: str) -> tuple[str, str]:
    """`sha256:<hex>` -> ("sha256", hex); rejects anything that could escape a blobs/ path."""
    algo, sep, hexpart = digest.partition(":")
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    if (
        not sep
        or algo not in sizes
        or len(hexpart) != sizes[algo]
        or any(c not in "0123456789abcdef" for c in hexpart)
    ):
        raise UserError(f"invalid digest {digest!r}", "the image metadata is corrupt")
    return algo, hexpart


def canonical_json(obj: object) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------------- platform

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "arm": "arm",
    "i386": "386",
    "i686": "386",
    "386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# OCI architecture -> `uname -m` / loader name
UNAME_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


class Platform(Record):
    __slots__ = ("os", "architecture", "variant")
    _fields = __slots__
    _defaults = {"os": "linux", "architecture": "amd64", "variant": None}
    os: str
    architecture: str
    variant: str | None

    @staticmethod
    def parse(text: str) -> Platform:
        """`linux/arm64/v8`, `arm64`, `aarch64`, `x86_64`."""
        parts = [p for p in text.strip().split("/") if p]
        if not parts or len(parts) > 3:
            raise UserError(f"invalid platform {text!r}", "use OS/ARCH[/VARIANT], e.g. linux/arm64")
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        arch = _ARCH_ALIASES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else None
        return Platform(parts[0], arch, variant)

    @staticmethod
    def host() -> Platform:
        return Platform.parse(os.uname().machine)

    @staticmethod
    def from_json(obj: dict | None) -> Platform | None:
        if not obj:
            return None
        return Platform(
            obj.get("os", ""),
            _ARCH_ALIASES.get(obj.get("architecture", ""), obj.get("architecture", "")),
            obj.get("variant") or None,
        )

    def matches(self, other: Platform) -> bool:
        """Does `other` (a candidate) satisfy this request? A request without variant accepts any variant."""
        if self.os != other.os or self.architecture != other.architecture:
            return False
        return not (self.variant and other.variant and self.variant != other.variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


# ---------------------------------------------------------------------------------------------------- blobs


class VerifyingReader(io.RawIOBase):
    """Reads a blob stream and fails at EOF if its size or digest differ from what the manifest says."""

    def __init__(self, raw: BinaryIO, digest: str | None, size: int | None, what: str) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._size = size
        self._what = what
        self._count = 0
        self._hash = hashing.new(split_digest(digest)[0], size) if digest else None
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        want = len(buf)
        if self._size is not None:
            want = min(want, self._size - self._count)
        if want <= 0:
            self._check()
            return 0
        view = memoryview(buf).cast("B")[:want]
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            n = readinto(view) or 0  # straight into the caller's buffer: no intermediate bytes object
        else:
            data = self._raw.read(want)
            n = len(data)
            view[:n] = data
        if n == 0:
            self._check()
            return 0
        self._count += n
        if self._hash is not None:
            self._hash.update(view[:n])
        if self._size is not None and self._count == self._size:
            self._check()
        return n

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._size is not None and self._count != self._size:
            raise UserError(
                f"{self._what}: blob is {self._count} bytes, manifest says {self._size}",
                "the image is truncated or corrupt; fetch it again",
            )
        if self._hash is not None and self._digest is not None:
            got = f"{self._hash.name}:{self._hash.hexdigest()}"
            if got != self._digest:
                raise UserError(
                    f"{self._what}: digest mismatch (expected {self._digest}, got {got})",
                    "the image is corrupt; fetch it again",
                )

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class FileSlice(io.RawIOBase):
    """A read-only window [offset, offset+size) of a file (a tar member, a polyglot entry)."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:  # type: ignore[override]
        want = min(len(buf), self._size - self._pos)
        if want <= 0:
            return 0
        n = os.preadv(self._fd, [memoryview(buf).cast("B")[:want]], self._offset + self._pos)
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class Blob(Record):
    """A content-addressed blob: digest, size, media type and a way to open its bytes. Equal blobs have the
    same digest, size and media type (however they are opened)."""

    __slots__ = ("digest", "size", "media_type", "opener", "annotations")
    _fields = __slots__
    _defaults = {"annotations": None}
    _compare = ("digest", "size", "media_type")
    _shown = ("digest", "size", "media_type", "annotations")
    digest: str
    size: int
    media_type: str
    opener: Callable[[], BinaryIO]
    annotations: dict | None

    def open(self) -> BinaryIO:
        """A stream of the blob's bytes that raises UserError at EOF if they do not match digest and size."""
        return io.BufferedReader(
            VerifyingReader(self.opener(), self.digest, self.size, f"blob {self.digest[:19]}"),
            CHUNK,
        )

    def read_bytes(self) -> bytes:
        with self.open() as f:
            return f.read()

    def chunks(self) -> Iterator[bytes]:
        with self.open() as f:
            while True:
                data = f.read(CHUNK)
                if not data:
                    return
                yield data

    def copy_into(self, out_fd: int, advanced: Callable[[int], None] | None = None) -> None:
        """Append the blob's bytes at out_fd's file position, failing (UserError) unless they match digest and
        size. A blob that is a window of a regular file is copied by the kernel; the digest is computed from
        the bytes as written to out_fd, in a second thread, while the copy proceeds. On failure the bytes
        already written are the caller's to discard."""
        what = f"blob {self.digest[:19]}"
        with self.opener() as src:
            loc = _file_window(src)
            if loc is not None:
                copy_verified(loc[0], loc[1], out_fd, self.size, self.digest, what, advanced)
                return
        with self.open() as f:  # a stream: verified while read
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := f.readinto(buf):
                write_all(out_fd, view[:n])
                if advanced:
                    advanced(n)

    def compression(self) -> str:
        """Sniffed compression of the blob: 'gzip', 'zstd' or 'none' (media types lie; magic bytes do not)."""
        with self.opener() as f:
            head = f.read(4)
        return sniff_compression(head)

    def descriptor(self) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = self.annotations
        return d


def _file_window(f: object) -> tuple[int, int] | None:
    """(fd, offset) when f reads a regular file from its current offset on (a plain file, a FileSlice)."""
    if isinstance(f, FileSlice):
        fd, off = f._fd, f._offset + f._pos
    elif isinstance(f, (io.BufferedReader, io.FileIO)):
        try:
            fd, off = f.fileno(), f.tell()
        except (OSError, ValueError):
            return None
    else:
        return None
    try:
        return (fd, off) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None


def write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_kernel_copy = True  # cleared after copy_file_range and sendfile both failed with "not supported"


def copy_range(src_fd: int, src_off: int, out_fd: int, count: int) -> int:
    """Copy up to count bytes from src_fd at src_off to out_fd at its file position (advanced); 0 at EOF."""
    global _kernel_copy
    if _kernel_copy:
        try:
            return os.copy_file_range(src_fd, out_fd, count, src_off)
        except OSError as e:
            if e.errno not in _NO_KERNEL_COPY:
                raise
        try:
            return os.sendfile(out_fd, src_fd, src_off, count)
        except OSError as e:
            if e.errno not in _NO_KERNEL_COPY:
                raise
        _kernel_copy = False
    data = os.pread(src_fd, min(count, CHUNK), src_off)
    write_all(out_fd, data)
    return len(data)


_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ETXTBSY, errno.EPERM}
COPY_CHUNK = 8 << 20
HASH_CHUNK = 4 << 20
PIPE_SIZE = 1 << 20
_splice = hasattr(os, "splice")  # cleared after splice failed with "not supported"


class WindowCopier:
    """Copies windows of regular files to a file descriptor's position, in the kernel.

    splice(2) through a pipe enlarged to 1 MiB, then copy_range's fallbacks. On ext4 (no reflink)
    copy_file_range is a splice through a small internal pipe: each write then covers a few pages and, when
    the destination offset differs from the source's modulo the page-cache folio size (every blob inside a
    polyglot file), fills only small folios; 1 MiB writes ramp up to large ones. 139 MB: 42 ms of system time
    instead of 59 (docs/benchmarks.md section 3), the same as cp's copy of a whole file."""

    def __init__(self) -> None:
        self._pipe: tuple[int, int] | None = None
        if _splice:
            import fcntl

            r, w = os.pipe()
            try:
                fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # over the user's pipe quota: the default size still works
            self._pipe = (r, w)

    def __enter__(self) -> WindowCopier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe[0])
            os.close(self._pipe[1])
            self._pipe = None

    def copy(self, src_fd: int, src_off: int, out_fd: int, count: int) -> int:
        """Copy count bytes of src_fd from src_off to out_fd's position; fewer only at the source's EOF."""
        done = 0
        while done < count:
            n = self._step(src_fd, src_off + done, out_fd, count - done)
            if n <= 0:
                break
            done += n
        return done

    def _step(self, src_fd: int, src_off: int, out_fd: int, count: int) -> int:
        global _splice
        if self._pipe is not None:
            r, w = self._pipe
            try:
                n = os.splice(src_fd, w, min(count, PIPE_SIZE), offset_src=src_off)
            except OSError as e:
                if e.errno not in _NO_KERNEL_COPY:
                    raise
                _splice = False
                self.close()
            else:
                left = n
                while left:
                    try:
                        left -= os.splice(r, out_fd, left)
                    except OSError as e:
                        if e.errno not in _NO_KERNEL_COPY:
                            raise
                        while left:  # out_fd takes no splice: move what the pipe holds by read/write
                            data = os.read(r, left)
                            write_all(out_fd, data)
                            left -= len(data)
                        _splice = False
                        self.close()
                return n
        return copy_range(src_fd, src_off, out_fd, count)


def _hash_range(fd: int, start: int, end: int, h) -> None:
    """Hash bytes [start, end) of fd (the output, in the page cache): mapped HASH_CHUNK at a time, so the
    hash reads the cached pages themselves (a preadv copy into a buffer costs ~25 ms more system time per
    139 MB); preadv into one buffer where fd cannot be mapped."""
    import mmap

    pos = start
    while pos < end:
        base = pos - pos % mmap.ALLOCATIONGRANULARITY
        length = min(end, pos + HASH_CHUNK) - base
        try:
            m = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=base)
        except (OSError, ValueError):
            break
        with m, memoryview(m) as view:
            h.update(view[pos - base :])
        pos = base + length
    buf = None
    while pos < end:
        buf = buf or memoryview(bytearray(HASH_CHUNK))
        n = os.preadv(fd, [buf[: min(len(buf), end - pos)]], pos)
        if n <= 0:
            raise OSError(f"short read of the output at {pos}")
        h.update(buf[:n])
        pos += n


def copy_verified(
    src_fd: int,
    src_off: int,
    out_fd: int,
    size: int,
    digest: str,
    what: str,
    advanced: Callable[[int], None] | None = None,
) -> None:
    """Copy size bytes of src_fd from src_off to out_fd's file position and check their digest.

    The digest is computed from out_fd (what was written, not a second read of the source: no window for the
    source to change between check and use), by a thread that follows the copy chunk by chunk; hashlib and
    reading the output's pages release the GIL, so hashing overlaps the kernel copy. Memory: one HASH_CHUNK
    mapping.
    A window that the verified-blob memo (oci2bin.state.cache) knows, and that did not change during the
    copy, is not hashed again."""
    import time

    from oci2bin.state import cache

    algo = split_digest(digest)[0]
    with WindowCopier() as copier:
        start = os.lseek(out_fd, 0, os.SEEK_CUR)
        started_ns = time.time_ns()  # before st: the memo's racy-window rule is judged at the copy's start
        st = os.fstat(src_fd)
        copied = 0
        if cache.is_verified(st, src_off, size, digest):
            while copied < size:
                n = copier.copy(src_fd, src_off + copied, out_fd, min(COPY_CHUNK, size - copied))
                if n <= 0:
                    break
                copied += n
                if advanced:
                    advanced(n)
            if copied == size and cache.file_identity(os.fstat(src_fd)) == cache.file_identity(st):
                return  # no hash object either: hashlib (OpenSSL) is not even imported
            h = hashing.new(algo, size)
            _hash_range(out_fd, start, start + copied, h)
        else:
            import queue
            import threading

            h = hashing.new(algo, size)

            todo: queue.SimpleQueue = queue.SimpleQueue()
            failed: list[BaseException] = []

            def hasher() -> None:
                try:
                    pos = start
                    while (end := todo.get()) is not None:
                        _hash_range(out_fd, pos, end, h)
                        pos = end
                except BaseException as e:  # reported by the copying thread
                    failed.append(e)

            t = threading.Thread(target=hasher, name="oci2bin-hash", daemon=True)
            t.start()
            try:
                while copied < size:
                    n = copier.copy(src_fd, src_off + copied, out_fd, min(COPY_CHUNK, size - copied))
                    if n <= 0:
                        break
                    copied += n
                    todo.put(start + copied)
                    if advanced:
                        advanced(n)
            finally:
                todo.put(None)
                t.join()
            if failed:
                raise failed[0]
        if copied != size:
            raise UserError(
                f"{what}: blob is {copied} bytes, manifest says {size}",
                "the image is truncated or corrupt; fetch it again",
            )
        got = f"{h.name}:{h.hexdigest()}"
        if got != digest:
            raise UserError(
                f"{what}: digest mismatch (expected {digest}, got {got})",
                "the image is corrupt; fetch it again",
            )
        after = os.fstat(src_fd)
        if cache.file_identity(after) == cache.file_identity(st):
            cache.remember_verified(st, src_off, size, digest, started_ns, src_fd)


def sniff_compression(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def open_uncompressed(blob: Blob) -> BinaryIO:
    """The layer's tar stream, whatever its compression (sniffed). Digest is verified as the blob is read."""
    kind = blob.compression()
    raw = blob.open()
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return io.BufferedReader(
            zstandard.ZstdDecompressor().stream_reader(raw, closefd=True, read_across_frames=True),
            CHUNK,
        )  # type: ignore[arg-type]
    return raw


def layer_media_type(compression: str, docker: bool = False) -> str:
    if docker:
        return {"gzip": MT_DOCKER_LAYER_GZIP, "zstd": MT_DOCKER_LAYER_ZSTD}.get(compression, MT_DOCKER_LAYER)
    return {"gzip": MT_OCI_LAYER_GZIP, "zstd": MT_OCI_LAYER_ZSTD}.get(compression, MT_OCI_LAYER)


def bytes_blob(data: bytes, media_type: str) -> Blob:
    return Blob(sha256_digest(data), len(data), media_type, lambda: io.BytesIO(data))


def file_blob(path: str, digest: str, size: int, media_type: str) -> Blob:
    return Blob(digest, size, media_type, lambda: open(path, "rb"))


# ---------------------------------------------------------------------------------------------------- image


class Image(Record):
    """An image: config bytes, ordered layers, optionally the source manifest (kept verbatim)."""

    __slots__ = (
        "config_bytes",
        "layers",
        "manifest_bytes",
        "manifest_media_type",
        "config_media_type",
        "manifest_annotations",
        "source_name",  # a name the source gave it (RepoTags etc.); not part of equality
        "_config",
    )
    _fields = __slots__[:-1]
    _defaults = {
        "manifest_bytes": None,
        "manifest_media_type": MT_OCI_MANIFEST,
        "config_media_type": MT_OCI_CONFIG,
        "manifest_annotations": None,
        "source_name": None,
    }
    _compare = _fields[:-1]
    config_bytes: bytes
    layers: tuple[Blob, ...]
    manifest_bytes: bytes | None
    manifest_media_type: str
    config_media_type: str
    manifest_annotations: dict | None
    source_name: str | None

    def _post_init(self) -> None:
        try:
            cfg = json.loads(self.config_bytes)
        except ValueError as e:
            raise UserError(f"image config is not valid JSON: {e}", "the image is corrupt") from None
        if not isinstance(cfg, dict):
            raise UserError("image config is not a JSON object", "the image is corrupt")
        object.__setattr__(self, "_config", cfg)

    # -- derived properties
    @property
    def config(self) -> dict:
        return json.loads(self.config_bytes)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config_bytes)

    @property
    def config_blob(self) -> Blob:
        return bytes_blob(self.config_bytes, self.config_media_type)

    @property
    def platform(self) -> Platform:
        cfg = self._config  # type: ignore[attr-defined]
        return Platform(
            cfg.get("os") or "linux",
            _ARCH_ALIASES.get(cfg.get("architecture", ""), cfg.get("architecture") or "amd64"),
            cfg.get("variant") or None,
        )

    @property
    def created(self) -> str | None:
        return self._config.get("created")  # type: ignore[attr-defined]

    @property
    def run_config(self) -> dict:
        return self._config.get("config") or {}  # type: ignore[attr-defined]

    def manifest(self) -> bytes:
        """The manifest bytes: the source's, verbatim, or a freshly generated OCI manifest."""
        if self.manifest_bytes is not None:
            return self.manifest_bytes
        m: dict = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": self.config_blob.descriptor(),
            "layers": [layer.descriptor() for layer in self.layers],
        }
        if self.manifest_annotations:
            m["annotations"] = self.manifest_annotations
        return json.dumps(m, sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest())

    @property
    def media_type(self) -> str:
        return self.manifest_media_type if self.manifest_bytes is not None else MT_OCI_MANIFEST

    def replace(self, **changes) -> Image:
        """A new Image; any change to config or layers drops the source manifest (it no longer describes it)."""
        if "manifest_bytes" not in changes and ("config_bytes" in changes or "layers" in changes):
            changes["manifest_bytes"] = None
            changes.setdefault("manifest_media_type", MT_OCI_MANIFEST)
            changes.setdefault("config_media_type", MT_OCI_CONFIG)
            changes["layers"] = tuple(changes.get("layers", self.layers))
            changes["layers"] = tuple(_oci_layer(b) for b in changes["layers"])
        return super().replace(**changes)  # type: ignore[return-value]

    def with_config(self, cfg: dict) -> Image:
        return self.replace(config_bytes=canonical_json(cfg))


def _oci_layer(blob: Blob) -> Blob:
    """Docker media types -> OCI ones, so a regenerated OCI manifest is consistent."""
    mapping = {
        MT_DOCKER_LAYER_GZIP: MT_OCI_LAYER_GZIP,
        MT_DOCKER_LAYER_ZSTD: MT_OCI_LAYER_ZSTD,
        MT_DOCKER_LAYER: MT_OCI_LAYER,
    }
    if blob.media_type in mapping:
        return blob.replace(media_type=mapping[blob.media_type])
    return blob


def image_from_manifest(
    manifest_bytes: bytes,
    read_blob: Callable[[str, int, str], Blob],
    manifest_media_type: str | None = None,
) -> Image:
    """Build an Image from manifest bytes and a function resolving a (digest, size, media type) to a Blob."""
    try:
        m = json.loads(manifest_bytes)
    except ValueError as e:
        raise UserError(f"image manifest is not valid JSON: {e}", "the image is corrupt") from None
    mt = m.get("mediaType") or manifest_media_type or MT_OCI_MANIFEST
    if m.get("schemaVersion") != 2 or mt not in MANIFEST_TYPES or "config" not in m:
        raise UserError(
            f"unsupported manifest (schemaVersion {m.get('schemaVersion')}, mediaType {mt})",
            "convert the image to OCI or Docker schema 2, e.g. with skopeo copy",
        )
    cdesc = m["config"]
    config = read_blob(
        cdesc["digest"], int(cdesc["size"]), cdesc.get("mediaType", MT_OCI_CONFIG)
    ).read_bytes()
    layers = []
    for d in m.get("layers") or []:
        blob = read_blob(d["digest"], int(d["size"]), d.get("mediaType", MT_OCI_LAYER_GZIP))
        if d.get("annotations"):
            blob = blob.replace(annotations=d["annotations"])
        layers.append(blob)
    return Image(
        config_bytes=config,
        layers=tuple(layers),
        manifest_bytes=manifest_bytes,
        manifest_media_type=mt,
        config_media_type=cdesc.get("mediaType", MT_OCI_CONFIG),
    )
