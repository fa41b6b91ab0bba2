"""Read an oci2bin polyglot file through its footer and metadata (never by walking tar headers)."""

from __future__ import annotations

import json
import os

from oci2bin.errors import UserError
from oci2bin.image.layout import blob_path
from oci2bin.image.model import (
    MT_OCI_MANIFEST,
    Blob,
    FileSlice,
    Image,
    image_from_manifest,
    split_digest,
)
from oci2bin.polyglot.format import (
    FLAG_VM,
    FOOTER_SIZE,
    FORMAT_VERSION,
    TAR_EOF,
    Footer,
    unrelocate_loader,
)

TYPE_CHECKING = False  # typing costs import time on every CLI start; annotations are strings here
if TYPE_CHECKING:
    from typing import BinaryIO


class NotPolyglot(UserError):
    pass


class Polyglot:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                self.file_size = f.tell()
                if self.file_size < FOOTER_SIZE + len(TAR_EOF):
                    raise NotPolyglot(
                        f"{path} is not an oci2bin binary (too small)",
                        "pass a file built by oci2bin",
                    )
                f.seek(self.file_size - FOOTER_SIZE)
                footer = Footer.unpack(f.read(FOOTER_SIZE))
                if footer is None:
                    raise NotPolyglot(
                        f"{path} is not an oci2bin binary (no oci2bin footer)",
                        "pass a file built by oci2bin",
                    )
                self.footer = footer
                limit = self.file_size - FOOTER_SIZE
                if footer.version != FORMAT_VERSION:
                    raise UserError(
                        f"{path} uses polyglot format version {footer.version}",
                        "use a newer oci2bin to read it",
                    )
                if not (
                    footer.loader_offset < footer.tar_end
                    and footer.tar_end + footer.meta_size <= limit
                    and (footer.sig_offset == 0 or footer.sig_offset + footer.sig_size <= limit)
                    and footer.meta_size <= 64 << 20
                ):
                    raise NotPolyglot(
                        f"{path} has an inconsistent oci2bin footer",
                        "the file is truncated or corrupt",
                    )
                f.seek(footer.tar_end)
                raw = f.read(footer.meta_size)
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}", "check the path") from None
        try:
            meta = json.loads(raw)
            assert isinstance(meta, dict)
        except (ValueError, AssertionError):
            raise NotPolyglot(
                f"{path} has corrupt oci2bin metadata",
                "the file is truncated or corrupt",
            ) from None
        self.metadata: dict = meta
        self.entries: dict[str, tuple[int, int]] = {}
        for ent in meta.get("entries") or []:
            name, off, size = ent
            if not (0 <= off and off + size <= footer.tar_end):
                raise NotPolyglot(
                    f"{path}: entry {name} lies outside the archive",
                    "the file is corrupt",
                )
            self.entries[name] = (off, size)

    # -- raw access
    @property
    def vm(self) -> bool:
        return bool(self.footer.flags & FLAG_VM)

    def open_entry(self, name: str) -> BinaryIO:
        if name not in self.entries:
            raise UserError(f"{self.path}: no entry {name}", "the file is corrupt")
        off, size = self.entries[name]
        return FileSlice(self.path, off, size)  # type: ignore[return-value]

    def read_entry(self, name: str) -> bytes:
        with self.open_entry(name) as f:
            return f.read()

    def docker_manifest(self) -> list:
        return json.loads(self.read_entry("manifest.json"))

    def loader(self) -> bytes:
        """The original loader file (p_offset relocation undone)."""
        off = int(self.metadata.get("loader_offset", self.footer.loader_offset))
        size = int(self.metadata["loader_size"])
        with FileSlice(self.path, off, size) as f:
            data = f.read()
        return unrelocate_loader(data, off)

    def _blob(self, digest: str, size: int, media_type: str) -> Blob:
        split_digest(digest)
        name = blob_path(digest)
        if name not in self.entries:
            raise UserError(f"{self.path}: blob {digest} missing", "the file is corrupt")
        off, actual = self.entries[name]
        if actual != size:
            raise UserError(
                f"{self.path}: blob {digest} is {actual} bytes, expected {size}",
                "the file is corrupt",
            )
        return Blob(digest, size, media_type, lambda: FileSlice(self.path, off, size))

    def image(self) -> Image:
        digest = self.metadata.get("digest", "")
        name = blob_path(digest)
        if name not in self.entries:
            raise UserError(f"{self.path}: manifest {digest} missing", "the file is corrupt")
        _off, size = self.entries[name]
        manifest = self._blob(digest, size, MT_OCI_MANIFEST).read_bytes()
        image = image_from_manifest(manifest, self._blob)
        return image.replace(source_name=self.metadata.get("image") or None)


def is_polyglot(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            n = f.tell()
            if n < FOOTER_SIZE:
                return False
            f.seek(n - FOOTER_SIZE)
            return Footer.unpack(f.read(FOOTER_SIZE)) is not None
    except OSError:
        return False
