"""Merge all layers into one (`--squash`), applying whiteouts, as a union filesystem would.

Pass 1 reads every layer's member names (top layer first) and decides which entries survive; pass 2 streams
the layers bottom-up and writes the survivors. Hard links whose target did not survive (deleted or replaced
higher up) become regular files carrying the target's data, spooled to the work dir.
"""

from __future__ import annotations

import copy
import os
import shutil
import tarfile
import tempfile

from oci2bin.image.model import Image, canonical_json, open_uncompressed
from oci2bin.mutate.config import iso_time
from oci2bin.mutate.layertar import LayerWriter, iter_layer
from oci2bin.polyglot.format import source_date_epoch

WH = ".wh."
OPAQUE = ".wh..wh..opq"


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _ancestors(name: str):
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def squash(image: Image, workdir: str, compression: str = "gzip") -> Image:
    # pass 1 -------------------------------------------------------------------------------------------------
    layer_members: list[list[tuple[str, str, str | None]]] = []  # per layer: (name, kind, linkname)
    for blob in image.layers:
        members = []
        with open_uncompressed(blob) as f:
            for m, _ in iter_layer(f):
                kind = "dir" if m.isdir() else "lnk" if m.islnk() else "other"
                members.append((_norm(m.name), kind, _norm(m.linkname) if m.islnk() else None))
        layer_members.append(members)

    deleted: set[str] = set()  # paths whited out by higher layers (and their subtrees)
    opaque: set[str] = set()  # dirs whose lower contents are hidden
    taken: set[str] = set()  # paths already provided by higher layers
    nondir: set[str] = set()  # paths that are non-directories in higher layers
    survivors: set[tuple[int, int]] = set()
    for li in range(len(layer_members) - 1, -1, -1):
        new_deleted, new_opaque = set(), set()
        last: dict[str, int] = {}
        for oi, (name, kind, _) in enumerate(layer_members[li]):
            last[name] = oi  # within one layer a later entry for the same path wins
        for oi, (name, kind, _) in enumerate(layer_members[li]):
            base = name.rsplit("/", 1)[-1]
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            if base == OPAQUE:
                new_opaque.add(parent)
                continue
            if base.startswith(WH):
                new_deleted.add((parent + "/" if parent else "") + base[len(WH) :])
                continue
            if not name or last[name] != oi or name in taken:
                continue
            anc = list(_ancestors(name))
            if (
                name in deleted
                or any(a in deleted or a in nondir for a in anc)
                or any(a in opaque for a in anc)
            ):
                continue
            survivors.add((li, oi))
        for oi, (name, kind, _) in enumerate(layer_members[li]):
            if (li, oi) in survivors:
                taken.add(name)
                if kind != "dir":
                    nondir.add(name)
        deleted |= new_deleted
        opaque |= new_opaque

    # hard links whose target is not the surviving entry: find the target version they meant
    spool: set[tuple[int, int]] = set()
    convert: dict[tuple[int, int], tuple[int, int]] = {}
    by_name: list[dict[str, list[int]]] = []
    for members in layer_members:
        idx_map: dict[str, list[int]] = {}
        for j, m in enumerate(members):
            idx_map.setdefault(m[0], []).append(j)
        by_name.append(idx_map)
    for li, members in enumerate(layer_members):
        for oi, (name, kind, link) in enumerate(members):
            if kind != "lnk" or (li, oi) not in survivors or link is None:
                continue
            target = None
            for lk in range(li, -1, -1):
                idx = [j for j in by_name[lk].get(link, ()) if lk < li or j < oi]
                if idx:
                    target = (lk, idx[-1])
                    break
            if target is None or target in survivors:
                continue
            spool.add(target)
            convert[(li, oi)] = target

    # pass 2 -------------------------------------------------------------------------------------------------
    spooldir = tempfile.mkdtemp(prefix="spool-", dir=workdir)
    spooled: dict[tuple[int, int], tuple[tarfile.TarInfo, str]] = {}
    try:
        with LayerWriter(workdir, compression) as lw:
            for li, blob in enumerate(image.layers):
                with open_uncompressed(blob) as f:
                    for oi, (m, tf) in enumerate(iter_layer(f)):
                        key = (li, oi)
                        if key in spool and m.isreg():
                            path = os.path.join(spooldir, f"{li}-{oi}")
                            with open(path, "wb") as out:
                                shutil.copyfileobj(tf.extractfile(m), out, 1 << 20)
                            spooled[key] = (m, path)
                        if key not in survivors:
                            continue
                        if key in convert:
                            src = spooled.get(convert[key])
                            if src is None:
                                continue  # link to something we could not keep: drop it
                            ti = copy.copy(src[0])
                            ti.name = m.name
                            ti.type = tarfile.REGTYPE
                            ti.linkname = ""
                            with open(src[1], "rb") as data:
                                lw.tar.addfile(ti, data)
                            continue
                        if key in spooled:
                            with open(spooled[key][1], "rb") as data:
                                lw.tar.addfile(m, data)
                        elif m.isreg():
                            lw.tar.addfile(m, tf.extractfile(m))
                        else:
                            lw.tar.addfile(m)
    finally:
        shutil.rmtree(spooldir, ignore_errors=True)
    assert lw.result is not None
    cfg = image.config
    cfg["rootfs"] = {"type": "layers", "diff_ids": [lw.result.diff_id]}
    sde = source_date_epoch()
    created = iso_time(sde) if sde is not None else cfg.get("created") or iso_time(0)
    cfg["history"] = [
        {
            "created": created,
            "created_by": f"oci2bin squash ({len(image.layers)} layers)",
        }
    ]
    return image.replace(config_bytes=canonical_json(cfg), layers=(lw.result.blob,))
