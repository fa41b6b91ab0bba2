"""Persist the loader inside the image so `oci2bin reconstruct` can rebuild the binary from the image alone.

Two strategies, both recorded in config labels under a prefix (default `oci2bin.loader`):
* layer:  a layer holding `<loader dir>/loader`; labels `.strategy=layer`, `.path`, `.layer` (its diff_id)
* labels: the loader as base64 chunks in labels `.chunk.NNNN`, `.chunks` = count
Both also record `.sha256`, `.arch` and `.size`; extraction verifies the sha256.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile

from oci2bin.errors import UserError
from oci2bin.image.model import Image, canonical_json, open_uncompressed, sha256_digest
from oci2bin.mutate.add_files import append_layer
from oci2bin.mutate.layertar import LayerWriter, ctr_path, default_mtime, iter_layer

DEFAULT_PREFIX = "oci2bin.loader"
DEFAULT_DIR = ".oci2bin"
DEFAULT_CHUNK = 6144
CREATED_BY = "oci2bin embed-loader"


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return os.path.normpath(name.strip("/"))


def _labels(image: Image) -> dict:
    return dict((image.config.get("config") or {}).get("Labels") or {})


def _with_labels(image: Image, labels: dict) -> Image:
    cfg = image.config
    rc = dict(cfg.get("config") or {})
    if labels:
        rc["Labels"] = labels
    else:
        rc.pop("Labels", None)
    cfg["config"] = rc
    return image.replace(config_bytes=canonical_json(cfg))


def _base_labels(loader: bytes, arch: str, prefix: str, strategy: str, original: Image) -> dict:
    """Common labels; `.original.config`/`.original.manifest` let strip() restore the image byte for byte."""
    return {
        f"{prefix}.sha256": hashlib.sha256(loader).hexdigest(),
        f"{prefix}.arch": arch,
        f"{prefix}.size": str(len(loader)),
        f"{prefix}.strategy": strategy,
        f"{prefix}.original.config": base64.b64encode(original.config_bytes).decode(),
        f"{prefix}.original.manifest": base64.b64encode(original.manifest()).decode(),
        f"{prefix}.original.manifest-type": original.media_type,
    }


def embed_layer(
    image: Image,
    loader: bytes,
    arch: str,
    workdir: str,
    loader_dir: str = DEFAULT_DIR,
    prefix: str = DEFAULT_PREFIX,
) -> Image:
    d = ctr_path(loader_dir)
    if not d:
        raise UserError(
            "--loader-dir must name a directory inside the image",
            "e.g. --loader-dir .oci2bin",
        )
    path = f"{d}/loader"
    mtime = default_mtime()
    with LayerWriter(workdir, "gzip") as lw:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            ti = tarfile.TarInfo("/".join(parts[:i]))
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
            lw.tar.addfile(ti)
        ti = tarfile.TarInfo(path)
        ti.size, ti.mode, ti.mtime = len(loader), 0o555, mtime
        import io

        lw.tar.addfile(ti, io.BytesIO(loader))
    assert lw.result is not None
    out = append_layer(image, lw.result.blob, lw.result.diff_id, f"{CREATED_BY} /{path}")
    labels = _labels(out)
    labels.update(_base_labels(loader, arch, prefix, "layer", image))
    labels[f"{prefix}.path"] = "/" + path
    labels[f"{prefix}.layer"] = lw.result.diff_id
    return _with_labels(out, labels)


def embed_labels(
    image: Image,
    loader: bytes,
    arch: str,
    chunk_size: int = DEFAULT_CHUNK,
    prefix: str = DEFAULT_PREFIX,
) -> Image:
    if chunk_size < 256:
        raise UserError(f"--label-chunk-size {chunk_size} is too small", "use at least 256 bytes")
    labels = _labels(image)
    chunks = [loader[i : i + chunk_size] for i in range(0, len(loader), chunk_size)]
    labels.update(_base_labels(loader, arch, prefix, "labels", image))
    labels[f"{prefix}.chunks"] = str(len(chunks))
    for i, c in enumerate(chunks):
        labels[f"{prefix}.chunk.{i:04d}"] = base64.b64encode(c).decode()
    return _with_labels(image, labels)


def extract(image: Image, prefix: str = DEFAULT_PREFIX) -> tuple[bytes, str]:
    """(loader bytes, arch) from an image built with an embed strategy; sha256 verified."""
    labels = _labels(image)
    strategy = labels.get(f"{prefix}.strategy")
    want = labels.get(f"{prefix}.sha256")
    if not strategy or not want:
        raise UserError(
            f"the image has no {prefix}.* labels",
            "build it with --embed-loader-layer/--embed-loader-labels",
        )
    if strategy == "labels":
        try:
            n = int(labels[f"{prefix}.chunks"])
            data = b"".join(
                base64.b64decode(labels[f"{prefix}.chunk.{i:04d}"], validate=True) for i in range(n)
            )
        except (KeyError, ValueError) as e:
            raise UserError(
                f"incomplete loader labels ({e})",
                "the image's loader labels are damaged",
            ) from None
    elif strategy == "layer":
        path = labels.get(f"{prefix}.path", "").lstrip("/")
        data = None
        for blob in image.layers:
            with open_uncompressed(blob) as f:
                for m, tf in iter_layer(f):
                    if m.isreg() and _norm(m.name) == path:
                        data = tf.extractfile(m).read()
        if data is None:
            raise UserError(
                f"loader file /{path} not found in the image layers",
                "the loader layer was removed",
            )
    else:
        raise UserError(
            f"unknown loader embedding strategy {strategy!r}",
            "use a matching oci2bin version",
        )
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise UserError(
            f"embedded loader sha256 {got[:12]} does not match the label {want[:12]}",
            "the image is damaged",
        )
    return data, labels.get(f"{prefix}.arch", "")


def strip(image: Image, prefix: str = DEFAULT_PREFIX) -> Image:
    """Remove the embedding (labels, and the loader layer with its diff_id and history entry)."""
    labels = _labels(image)
    out = _strip(image, labels, prefix)
    return _restore(out, labels, prefix) or out


def _restore(stripped: Image, labels: dict, prefix: str) -> Image | None:
    """The exact pre-embedding image when the recorded original still describes the stripped content."""
    try:
        config = base64.b64decode(labels[f"{prefix}.original.config"], validate=True)
        manifest = base64.b64decode(labels[f"{prefix}.original.manifest"], validate=True)
        mtype = labels.get(f"{prefix}.original.manifest-type") or stripped.media_type
        m = json.loads(manifest)
        if json.loads(config) != stripped.config:
            return None
        if m["config"]["digest"] != sha256_digest(config):
            return None
        if [x["digest"] for x in m.get("layers") or []] != [b.digest for b in stripped.layers]:
            return None
    except (KeyError, ValueError, TypeError):
        return None
    layers = tuple(
        b.replace(media_type=x.get("mediaType", b.media_type)) for b, x in zip(stripped.layers, m["layers"])
    )
    return Image(
        config_bytes=config,
        layers=layers,
        manifest_bytes=manifest,
        manifest_media_type=mtype,
        config_media_type=m["config"].get("mediaType", stripped.config_media_type),
        source_name=stripped.source_name,
    )


def _strip(image: Image, labels: dict, prefix: str) -> Image:
    strategy = labels.get(f"{prefix}.strategy")
    layer_id = labels.get(f"{prefix}.layer")
    kept = {k: v for k, v in labels.items() if not k.startswith(prefix + ".")}
    out = _with_labels(image, kept)
    if strategy != "layer" or not layer_id:
        return out
    cfg = out.config
    ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    if layer_id not in ids:
        return out
    i = len(ids) - 1 - ids[::-1].index(layer_id)
    layers = list(out.layers)
    del layers[i]
    del ids[i]
    cfg["rootfs"]["diff_ids"] = ids
    hist = list(cfg.get("history") or [])
    for j in range(len(hist) - 1, -1, -1):
        if str(hist[j].get("created_by", "")).startswith(CREATED_BY):
            del hist[j]
            break
    cfg["history"] = hist
    return out.replace(config_bytes=canonical_json(cfg), layers=tuple(layers))
