"""Write an oci2bin polyglot file (docs/format.md): loader ELF + image as one ELF/tar file.

Streaming (a layer is never held in memory), atomic (a temp file in the output directory renamed when complete,
removed on any error), reproducible (fixed owners, the image's creation time or SOURCE_DATE_EPOCH, sorted JSON).

Durability: like cp, cc or ld, the writer does not fsync a plain output. Atomicity against an interrupted or
concurrent build comes from the rename; after a power loss the file may be missing or short (the rename can
reach the disk before the data), which the footer check of every reader and the loader's digest check of each
layer at first start detect, and a rebuild fixes. fsync would cost more than the whole copy (writeback of every
byte, ~80 ms for 139 MB here: docs/benchmarks.md section 3). `durable=True` (output cache entries, which are
reused many times after only a footer check) fsyncs before the rename.
"""

from __future__ import annotations

import json
import os
import re

from oci2bin import __version__
from oci2bin.errors import UserError
from oci2bin.image.layout import OCI_LAYOUT_BYTES, blob_path, index_json
from oci2bin.image.model import Blob, Image, canonical_json, write_all
from oci2bin.naming import repo_tag, split_ref
from oci2bin.polyglot.format import (
    BLOCK,
    ENTRY_MODE,
    FLAG_VM,
    FORMAT_VERSION,
    LOADER_MODE,
    OCI_ARCH,
    TAR_EOF,
    Footer,
    head_elf_header,
    head_program_headers,
    pad_len,
    parse_elf,
    relocate_loader,
    source_date_epoch,
    ustar_header,
)
from oci2bin.record import Record
from oci2bin.tempname import create_temp, discard

TYPE_CHECKING = False  # typing costs import time on every CLI start; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable

    Progress = Callable[[int, int], None]  # (bytes written, total expected)


class WriteResult(Record):
    __slots__ = ("path", "size", "digest", "config_digest", "metadata")
    _fields = __slots__
    path: str
    size: int
    digest: str
    config_digest: str
    metadata: dict


def parse_created(created: str | None) -> int | None:
    """RFC 3339 `created` -> Unix seconds (fraction and zone handled), None when absent or unparsable."""
    if not created:
        return None
    text = created.strip()
    try:
        date, _, clock = text.replace("t", "T").partition("T")
        offset = 0
        if clock.endswith(("Z", "z")):
            clock = clock[:-1]
        else:
            for sign in ("+", "-"):
                if sign in clock:
                    clock, _, zone = clock.partition(sign)
                    hh, _, mm = zone.partition(":")
                    offset = (int(hh) * 60 + int(mm or 0)) * 60 * (1 if sign == "+" else -1)
        clock = clock.split(".", 1)[0]
        return _timegm(f"{date}T{clock}") - offset
    except (ValueError, IndexError):
        return None


# what time.strptime(text, "%Y-%m-%dT%H:%M:%S") accepts, without importing _strptime (locale, calendar,
# datetime and a dozen regular expressions: import time on every build)
_DATETIME = re.compile(
    r"(\d\d\d\d)-(1[0-2]|0[1-9]|[1-9])-(3[01]|[12]\d|0[1-9]|[1-9]| [1-9])"
    r"T(2[0-3]|[0-1]\d|\d):([0-5]\d|\d):(6[0-1]|[0-5]\d|\d)",
    re.IGNORECASE,
)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _timegm(text: str) -> int:
    """calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")); ValueError when strptime would raise."""
    m = _DATETIME.fullmatch(text)
    if not m:
        raise ValueError(text)
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups())
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if y < 1 or d > _MONTH_DAYS[mo - 1] + (mo == 2 and leap):
        raise ValueError(text)
    # days from 1970-01-01 to y-mo-d (proleptic Gregorian; H. Hinnant's days_from_civil)
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 24 + hh) * 60 + mi) * 60 + ss


def entry_mtime(image: Image) -> int:
    """SOURCE_DATE_EPOCH when set, else the image's creation time, else 0."""
    sde = source_date_epoch()
    if sde is not None:
        return sde
    return max(0, parse_created(image.created) or 0)


class _Out:
    """Counts bytes and reports progress while writing the temp file (unbuffered: blobs are copied to the
    file descriptor by the kernel between the small writes)."""

    def __init__(self, fd: int, total: int, progress: Progress | None) -> None:
        self.fd = fd
        self.pos = 0
        self.total = total
        self.progress = progress
        self._last = 0

    def write(self, data: bytes) -> None:
        write_all(self.fd, data)
        self._advanced(len(data))

    def blob(self, blob: Blob) -> None:
        """The blob's bytes, verified against its digest and size (UserError otherwise)."""
        blob.copy_into(self.fd, self._advanced)

    def _advanced(self, n: int) -> None:
        self.pos += n
        if self.progress and self.pos - self._last >= (8 << 20):
            self._last = self.pos
            self.progress(self.pos, self.total)

    def pad(self) -> None:
        self.write(b"\0" * pad_len(self.pos))


def docker_manifest_json(image: Image, ref: str | None) -> bytes:
    tag = repo_tag(ref)
    entry = {
        "Config": blob_path(image.config_digest),
        "RepoTags": [tag] if tag else [],
        "Layers": [blob_path(b.digest) for b in image.layers],
    }
    return json.dumps([entry], separators=(",", ":")).encode()


def _ref_annotations(ref: str | None) -> tuple[str | None, str | None]:
    """(org.opencontainers.image.ref.name, io.containerd.image.name) as `docker save` writes them."""
    tag = repo_tag(ref)
    if not tag:
        return None, None
    parts = split_ref(tag)
    return (parts[1] if parts else None), tag


def check_vm_kernel(data: bytes, arch: str) -> None:
    """A kernel image qemu can boot with -kernel: x86 bzImage ("HdrS" at 0x202), arm64 Image ("ARMd" at 0x38)."""
    if arch == "x86_64":
        ok, what = data[0x202:0x206] == b"HdrS", "an x86 bzImage (vmlinuz)"
    else:
        ok, what = data[0x38:0x3C] == b"ARM\x64", "an arm64 Image"
    if not ok:
        raise UserError(
            f"--kernel is not {what}",
            "give a distribution kernel such as /boot/vmlinuz-* (an uncompressed ELF vmlinux does not boot with qemu)",
        )


def write_polyglot(
    output: str,
    loader: bytes,
    image: Image,
    *,
    ref: str | None = None,
    vm: bool = False,
    progress: Progress | None = None,
    check_arch: bool = True,
    durable: bool = False,
    vm_kernel: bytes | None = None,
    vm_cpus: int | None = None,
    vm_mem_mb: int | None = None,
) -> WriteResult:
    """Write `image` with `loader` as a polyglot file at `output` (atomically; fsync'd first when durable).

    vm_kernel: a guest kernel for `--vm`, stored between the tar's end and the metadata (docs/format.md,
    "VM kernel"); vm_cpus / vm_mem_mb: the VM's defaults when `--cpus` / `--memory` are not given at run time."""
    elf = parse_elf(loader)
    if vm_kernel is not None:
        check_vm_kernel(vm_kernel, elf.arch)
    image_arch = image.platform.architecture
    if check_arch and OCI_ARCH.get(elf.arch) != image_arch:
        raise UserError(
            f"loader is for {elf.arch} but the image is linux/{image_arch}",
            "pick the matching --arch or --loader",
        )
    l_off = elf.loader_offset
    mtime = entry_mtime(image)
    config = image.config_bytes
    manifest = image.manifest()
    digest = image.digest
    layers: list = []
    seen = {image.config_digest}
    for b in image.layers:
        if b.digest not in seen:
            seen.add(b.digest)
            layers.append(b)
    name_tag, full_name = _ref_annotations(ref)
    small = [
        ("index.json", index_json(image, name_tag, full_name)),
        ("oci-layout", OCI_LAYOUT_BYTES),
        ("manifest.json", docker_manifest_json(image, ref)),
    ]
    total = (
        l_off
        + len(loader)
        + len(vm_kernel or b"")
        + len(config)
        + sum(b.size for b in layers)
        + len(manifest)
        + 8 * BLOCK
    )

    out_dir = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise UserError(f"{output} is a directory", "pass a file name as the output")
    if not os.path.isdir(out_dir):
        raise UserError(f"output directory {out_dir} does not exist", "create it first")
    fd, tmp = create_temp(out_dir)
    try:
        with os.fdopen(fd, "wb", buffering=0):  # closes fd
            out = _Out(fd, total, progress)
            # entry #1: ELF header in the name field, loader at L_OFF
            out.write(
                ustar_header(
                    head_elf_header(loader, l_off),
                    l_off - BLOCK + len(loader),
                    LOADER_MODE,
                    mtime,
                )
            )
            table = head_program_headers(loader, elf, l_off)
            out.write(table + b"\0" * (l_off - BLOCK - len(table)))
            out.write(relocate_loader(loader, elf, l_off))
            out.pad()
            entries: list[list] = []

            def add(name: str, size: int, data: bytes | Blob) -> None:
                out.write(ustar_header(name.encode(), size, ENTRY_MODE, mtime))
                start = out.pos
                if isinstance(data, Blob):
                    out.blob(data)
                else:
                    out.write(data)
                if out.pos - start != size:
                    raise UserError(
                        f"{name}: wrote {out.pos - start} bytes, expected {size}",
                        "the image is corrupt",
                    )
                out.pad()
                entries.append([name, start, size])

            add(blob_path(image.config_digest), len(config), config)
            for b in layers:
                add(blob_path(b.digest), b.size, b)
            add(blob_path(digest), len(manifest), manifest)
            for name, data in small:
                add(name, len(data), data)
            out.write(TAR_EOF)
            vm_meta: dict = {}
            if vm_kernel is not None:
                from oci2bin import hashing  # not on the plain build path

                vm_meta["vm_kernel"] = {
                    "offset": out.pos,
                    "sha256": hashing.sha256_hex(vm_kernel),
                    "size": len(vm_kernel),
                }
                out.write(vm_kernel)
                out.pad()
            if vm_cpus:
                vm_meta["vm_cpus"] = int(vm_cpus)
            if vm_mem_mb:
                vm_meta["vm_mem_mb"] = int(vm_mem_mb)
            tar_end = out.pos  # the metadata's offset (the footer's TAR_END field)
            metadata = {
                "format": FORMAT_VERSION,
                "tool": "oci2bin",
                "tool_version": __version__,
                "image": ref or "",
                "digest": digest,
                "config_digest": image.config_digest,
                "created": image.created or "",
                "arch": image_arch,
                "loader_arch": elf.arch,
                "loader_offset": l_off,
                "loader_size": len(loader),
                "vm": bool(vm),
                "entries": entries,
                **vm_meta,
            }
            meta = canonical_json(metadata)
            out.write(meta)
            footer = Footer(FLAG_VM if vm else 0, tar_end, len(meta), 0, 0, l_off)
            out.write(footer.pack())
            if durable:
                os.fsync(fd)
            size = out.pos
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    except BaseException:
        discard(tmp)
        raise
    if progress:
        progress(size, size)
    return WriteResult(output, size, digest, image.config_digest, metadata)
