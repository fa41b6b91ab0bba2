"""Append a layer built from host files (`--add HOST:CTR`, `--add-file`, `--add-dir`)."""

from __future__ import annotations

from collections.abc import Iterable

from oci2bin.image.model import Blob, Image, canonical_json
from oci2bin.mutate.config import iso_time
from oci2bin.mutate.layertar import AddSpec, build_host_layer
from oci2bin.polyglot.format import source_date_epoch


def append_layer(image: Image, blob: Blob, diff_id: str, created_by: str, empty: bool = False) -> Image:
    cfg = image.config
    rootfs = cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("type", "layers")
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + [diff_id]
    # SOURCE_DATE_EPOCH when set, else keep the base's time: never the wall clock (reproducible)
    created = iso_time(sde) if (sde := source_date_epoch()) is not None else cfg.get("created") or iso_time(0)
    hist = {"created": created, "created_by": created_by}
    if empty:
        hist["empty_layer"] = True
    cfg["history"] = list(cfg.get("history") or []) + [hist]
    cfg["created"] = created
    return image.replace(config_bytes=canonical_json(cfg), layers=(*image.layers, blob))


def add_files(image: Image, adds: Iterable[AddSpec], workdir: str, compression: str = "gzip") -> Image:
    adds = list(adds)
    if not adds:
        return image
    built = build_host_layer(adds, workdir, compression)
    desc = " ".join("/" + a.ctr.strip("/") for a in adds)  # container paths only: host paths vary
    return append_layer(image, built.blob, built.diff_id, f"oci2bin add {desc}")
