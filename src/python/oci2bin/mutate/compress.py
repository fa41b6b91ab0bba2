"""Re-encode layers as gzip or zstd (`--compress`). The uncompressed tar bytes, hence diff_ids and the
config, stay identical; only layer digests change."""

from __future__ import annotations

import gzip
import os
import tempfile

from oci2bin.image.model import (
    CHUNK,
    Blob,
    Image,
    file_blob,
    layer_media_type,
    open_uncompressed,
)
from oci2bin.mutate.layertar import _HashingWriter


def recompress_blob(blob: Blob, fmt: str, workdir: str, level: int | None = None) -> Blob:
    if blob.compression() == fmt:
        return blob.replace(media_type=layer_media_type(fmt))
    fd, tmp = tempfile.mkstemp(prefix="layer-", suffix=".tmp", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as f:
            outer = _HashingWriter(f)
            if fmt == "gzip":
                comp = gzip.GzipFile(
                    filename="",
                    mode="wb",
                    fileobj=outer,
                    mtime=0,
                    compresslevel=level or 6,
                )
            elif fmt == "zstd":
                import zstandard

                comp = zstandard.ZstdCompressor(level=level or 3).stream_writer(outer, closefd=False)
            else:
                comp = outer
            with open_uncompressed(blob) as src:
                while data := src.read(CHUNK):
                    comp.write(data)
            if comp is not outer:
                comp.close()
        digest = outer.digest()
        final = os.path.join(workdir, digest.replace(":", "-"))
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return file_blob(final, digest, outer.size, layer_media_type(fmt))


def recompress(image: Image, fmt: str, workdir: str) -> Image:
    layers = tuple(recompress_blob(b, fmt, workdir) for b in image.layers)
    if layers == image.layers and all(a.media_type == b.media_type for a, b in zip(layers, image.layers)):
        return image
    return image.replace(layers=layers)
