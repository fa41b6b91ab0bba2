"""Remove documentation, locales and package caches from every layer (`--strip`, `--strip-prefix`,
`--strip-auto`). Layers with nothing to remove are kept byte for byte."""

from __future__ import annotations

import re

from oci2bin.image.model import Image, canonical_json, open_uncompressed
from oci2bin.mutate.layertar import LayerWriter, iter_layer

DEFAULT_PREFIXES = (
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
    "usr/share/i18n/",
    "var/cache/apt/",
    "var/lib/apt/lists/",
    "tmp/",
)

# marker path (regex on normalised member names) -> extra prefixes
AUTO_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"^var/lib/dpkg/status$", ("var/cache/apt/", "var/lib/apt/lists/")),
    (r"^lib/apk/db/installed$", ("var/cache/apk/", "etc/apk/cache/")),
    (r"^usr/(local/)?bin/pip3?$", ("root/.cache/pip/",)),
    (
        r"^usr/(local/)?(lib/node_modules/npm|bin/npm)$",
        ("root/.npm/_cacache/", "usr/lib/node_modules/.cache/"),
    ),
    (
        r"^(usr/bin/(dnf|yum)|var/lib/dnf|var/lib/yum)$",
        ("var/cache/dnf/", "var/cache/yum/"),
    ),
    (r"^usr/(local/)?bin/gem$", ("root/.gem/cache/",)),
    (r"^usr/(local/go/bin|bin)/go$", ("root/go/pkg/mod/cache/",)),
    (
        r"^(usr/local/cargo/bin/cargo|root/\.cargo/bin/cargo)$",
        ("root/.cargo/registry/cache/",),
    ),
)
PY_STDLIB = re.compile(r"^usr/(local/)?lib/(python3\.\d+)/os\.py$")
# SPEC: usr/lib/python3.X/{test,tests,unittest,turtledemo,...}/ (the stdlib's test suites and demos; this drops the
# unittest package itself, as SPEC lists it)
PY_STDLIB_DIRS = (
    "test/",
    "tests/",
    "unittest/",
    "turtledemo/",
    "idlelib/idle_test/",
    "lib2to3/tests/",
    "tkinter/test/",
)


def norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    n = norm(name)
    return any(n.startswith(p) and n != p.rstrip("/") for p in prefixes)


def detect(image: Image) -> list[str]:
    """Extra prefixes for the package managers found in the image's layers."""
    extra: list[str] = []
    for blob in image.layers:
        with open_uncompressed(blob) as f:
            for m, _ in iter_layer(f):
                n = norm(m.name).rstrip("/")
                for pattern, prefixes in AUTO_RULES:
                    if re.match(pattern, n):
                        extra += [p for p in prefixes if p not in extra]
                py = PY_STDLIB.match(n)
                if py:
                    base = n.rsplit("/", 1)[0] + "/"
                    extra += [base + d for d in PY_STDLIB_DIRS if base + d not in extra]
    return extra


def strip(
    image: Image,
    prefixes: list[str],
    workdir: str,
    auto: bool = False,
    compression: str = "gzip",
) -> Image:
    pre = tuple(p if p.endswith("/") else p + "/" for p in prefixes)
    if auto:
        pre = pre + tuple(p for p in detect(image) if p not in pre)
    cfg = image.config
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    layers = list(image.layers)
    changed = False
    for i, blob in enumerate(image.layers):
        # pass 1: anything to remove? which removed files do kept hard links still need?
        hit = False
        needed: set[str] = set()
        removed: set[str] = set()
        with open_uncompressed(blob) as f:
            for m, _ in iter_layer(f):
                if _matches(m.name, pre):
                    hit = True
                    removed.add(norm(m.name))
                elif m.islnk() and norm(m.linkname) in removed:
                    needed.add(norm(m.linkname))
        if not hit:
            continue
        with LayerWriter(workdir, compression) as lw, open_uncompressed(blob) as f:
            for m, tf in iter_layer(f):
                n = norm(m.name)
                if _matches(m.name, pre) and n not in needed:
                    continue
                if m.isreg():
                    lw.tar.addfile(m, tf.extractfile(m))
                else:
                    lw.tar.addfile(m)
        assert lw.result is not None
        layers[i] = lw.result.blob
        if i < len(diff_ids):
            diff_ids[i] = lw.result.diff_id
        changed = True
    if not changed:
        return image
    cfg.setdefault("rootfs", {"type": "layers"})["diff_ids"] = diff_ids
    return image.replace(config_bytes=canonical_json(cfg), layers=tuple(layers))
