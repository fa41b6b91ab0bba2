"""Deterministic layer tars: written in one streaming pass that computes the diff_id (uncompressed sha256)
and the blob digest (compressed sha256) at once. Used by mkimage, add_files, strip, squash and recompress."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Self

from oci2bin.errors import UserError
from oci2bin.image.model import CHUNK, Blob, file_blob, layer_media_type
from oci2bin.polyglot.format import source_date_epoch

COMPRESSIONS = ("gzip", "zstd", "none")


def default_mtime() -> int:
    sde = source_date_epoch()
    return sde if sde is not None else 0


class _HashingWriter(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        data = bytes(b)
        self.hash.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


@dataclass(frozen=True)
class BuiltLayer:
    blob: Blob
    diff_id: str


class LayerWriter:
    """with LayerWriter(workdir, "gzip") as lw: lw.tar.addfile(...)  -> lw.result (BuiltLayer)."""

    def __init__(self, workdir: str, compression: str = "gzip", level: int | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise UserError(f"unknown compression {compression!r}", "use gzip, zstd or none")
        self.compression = compression
        fd, self.path = tempfile.mkstemp(prefix="layer-", suffix=".tmp", dir=workdir)
        self._file = os.fdopen(fd, "wb")
        self._outer = _HashingWriter(self._file)
        self._compressor: BinaryIO | None = None
        if compression == "gzip":
            self._compressor = gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=self._outer,
                mtime=0,
                compresslevel=level or 6,
            )  # type: ignore[assignment]
            sink = self._compressor
        elif compression == "zstd":
            import zstandard

            self._compressor = zstandard.ZstdCompressor(level=level or 3).stream_writer(
                self._outer, closefd=False
            )  # type: ignore[assignment]
            sink = self._compressor
        else:
            sink = self._outer
        self._inner = _HashingWriter(sink)  # type: ignore[arg-type]
        self.tar = tarfile.open(  # noqa: SIM115 - closed in __exit__
            fileobj=self._inner,  # type: ignore[arg-type]
            mode="w|",
            format=tarfile.PAX_FORMAT,
        )
        self.result: BuiltLayer | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._file.close()
            os.unlink(self.path)
            return
        self.tar.close()
        if self._compressor is not None:
            self._compressor.close()
        self._file.close()
        digest = self._outer.digest()
        final = os.path.join(os.path.dirname(self.path), digest.replace(":", "-"))
        os.replace(self.path, final)
        blob = file_blob(final, digest, self._outer.size, layer_media_type(self.compression))
        self.result = BuiltLayer(blob, self._inner.digest())


# ---------------------------------------------------------------------------------------------------- host files


@dataclass(frozen=True)
class AddSpec:
    host: str
    ctr: str
    mode: int | None = None

    @staticmethod
    def parse(text: str) -> AddSpec:
        """`HOST:CTR[:MODE]` (MODE octal, applies to the added file or directory itself)."""
        parts = text.split(":")
        mode = None
        if len(parts) == 3 and parts[2]:
            try:
                mode = int(parts[2], 8)
            except ValueError:
                raise UserError(f"bad mode in --add {text!r}", "use HOST:CTR[:OCTALMODE]") from None
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise UserError(f"bad --add {text!r}", "use HOST:CONTAINER_PATH[:MODE]")
        return AddSpec(parts[0], parts[1], mode)


def ctr_path(path: str) -> str:
    """Normalise a container path to a relative tar name; refuse `..`."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UserError(
            f"container path {path!r} contains '..'",
            "use an absolute path inside the image",
        )
    return "/".join(parts)


@dataclass
class _Entry:
    name: str
    host: str | None  # None: synthesized parent directory
    mode: int | None


def _sort_key(name: str) -> tuple:
    return tuple(name.split("/"))


def collect(adds: Iterable[AddSpec]) -> list[_Entry]:
    """Expand files and directory trees into a sorted entry list with implied parent directories."""
    entries: dict[str, _Entry] = {}
    for add in adds:
        host = add.host
        if not os.path.lexists(host):
            raise UserError(f"{host}: no such file or directory", "check the --add path")
        dest = ctr_path(add.ctr)
        if not dest and not os.path.isdir(host):
            raise UserError(f"cannot add file {host} as '/'", "give a file path inside the image")
        if dest:
            entries[dest] = _Entry(dest, host, add.mode)
        if os.path.isdir(host) and not os.path.islink(host):
            for root, dirs, files in os.walk(host):
                dirs.sort()
                rel = os.path.relpath(root, host)
                for fn in sorted(dirs + files):
                    sub = fn if rel == "." else f"{rel}/{fn}"
                    name = f"{dest}/{sub}" if dest else sub
                    entries[name] = _Entry(name, os.path.join(root, fn), None)
    for name in list(entries):
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            entries.setdefault(parent, _Entry(parent, None, None))
    return [entries[k] for k in sorted(entries, key=_sort_key)]


def write_host_entries(tar: tarfile.TarFile, entries: list[_Entry], mtime: int) -> None:
    inodes: dict[tuple[int, int], str] = {}
    for e in entries:
        ti = tarfile.TarInfo(e.name)
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = mtime
        if e.host is None:
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tar.addfile(ti)
            continue
        st = os.lstat(e.host)
        ti.mode = stat.S_IMODE(st.st_mode) if e.mode is None else e.mode
        if stat.S_ISLNK(st.st_mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(e.host)
            ti.mode = 0o777
            tar.addfile(ti)
        elif stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            tar.addfile(ti)
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                ti.type = tarfile.LNKTYPE
                ti.linkname = inodes[key]
                tar.addfile(ti)
                continue
            inodes[key] = e.name
            ti.size = st.st_size
            with open(e.host, "rb") as f:
                tar.addfile(ti, f)
        else:
            raise UserError(
                f"{e.host}: unsupported file type",
                "add regular files, directories or symlinks only",
            )


def build_host_layer(adds: Iterable[AddSpec], workdir: str, compression: str = "gzip") -> BuiltLayer:
    entries = collect(adds)
    with LayerWriter(workdir, compression) as lw:
        write_host_entries(lw.tar, entries, default_mtime())
    assert lw.result is not None
    return lw.result


def copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, src: tarfile.TarFile) -> None:
    """Copy one member (with its data, streamed) from a tar read in stream mode to `tar`."""
    if member.isreg():
        f = src.extractfile(member)
        tar.addfile(member, f)
    else:
        tar.addfile(member)


def iter_layer(fileobj: BinaryIO) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tf:
            for m in tf:
                yield m, tf
    except tarfile.TarError as e:
        raise UserError(f"layer is not a valid tar archive: {e}", "the image is corrupt") from None


def stream_copy(src: BinaryIO, dst: BinaryIO) -> None:
    while data := src.read(CHUNK):
        dst.write(data)
