"""Overlay other images' layers on top of a base (`--layer IMAGE`)."""

from __future__ import annotations

from oci2bin.errors import UserError
from oci2bin.image.model import Image, canonical_json

OVERRIDDEN = ("Cmd", "Entrypoint", "Env")


def merge(base: Image, overlay: Image) -> Image:
    """base layers, then overlay's; overlay's Cmd/Entrypoint/Env win when set."""
    if overlay.platform.architecture != base.platform.architecture:
        raise UserError(
            f"cannot merge a {overlay.platform} image onto a {base.platform} image",
            "use images of one architecture",
        )
    cfg = base.config
    ocfg = overlay.config
    rootfs = cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + list(
        (ocfg.get("rootfs") or {}).get("diff_ids") or []
    )
    cfg["history"] = list(cfg.get("history") or []) + list(ocfg.get("history") or [])
    rc = dict(cfg.get("config") or {})
    orc = ocfg.get("config") or {}
    for key in OVERRIDDEN:
        if orc.get(key) is not None:
            rc[key] = orc[key]
    cfg["config"] = rc
    if len(rootfs["diff_ids"]) != len(base.layers) + len(overlay.layers):
        raise UserError(
            "layer count and diff_ids disagree in a merged image",
            "an input image is corrupt",
        )
    return base.replace(config_bytes=canonical_json(cfg), layers=(*base.layers, *overlay.layers))
