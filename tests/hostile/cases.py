"""The hostile-image cases and how one run is checked (test_as_root.py / test_as_tester.py run them).

Every case is a crafted image (layer tars built header by header,
OCI layouts assembled by the real writer, or polyglots patched where the writer would refuse) and is run as
root and as the unprivileged user `tester`, with the rootfs cache and with --no-cache.

For every run: the loader either fails with exactly one clear `oci2bin: ...` line (exit 125), or, for inputs
that are odd but harmless, runs the image (whose Cmd checks from the inside that the attack landed inside the
rootfs). In both cases nothing outside the loader's cache changed (the canary sandbox, the escape targets, the
host's /etc files, the oci2bin file itself), nothing is left in /tmp, and a failed extraction left no usable
cache entry (a second start fails the same way). docs/security.md explains the threat model.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from typing import Callable

import pytest

from tests.hostile import craft
from tests.hostile.craft import gnu_long, gz, header, member as M, pax, tar as T
from tests.hostile.harness import (
    FSIZE_LIMIT,
    OK_MARK,
    UNPRIVILEGED,
    Ctx,
    HostState,
    Sandbox,
    clean_success,
    exposed_entry,
    one_error_line,
)

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Ctx], str]
    expect: (
        str  # "error": one error line, exit 125 | "ok": the image runs its check | "any": either, well-formed
    )
    pattern: str | None = None  # error line regex ("error") / expected warning regex ("ok")
    args: tuple = ()
    modes: tuple = ("cache", "nocache")
    fsize: int = FSIZE_LIMIT
    small_tmpfs: int = 0
    pre: Callable | None = None  # pre(sandbox): prepare the sandbox before the run
    post: Callable | None = None  # post(sandbox, ctx, result, mode) -> list of problems
    env: dict = field(default_factory=dict)  # extra environment for the loader
    timeout: int = 120
    bug: str | None = None  # a known loader bug: strict xfail until fixed (see docs/security.md)
    extra: dict = field(default_factory=dict)


def layer(*parts: bytes, eof: bool = True) -> bytes:
    return T(*parts, eof=eof)


def file_check(x: Ctx) -> str:
    """The attack's file is inside the container, where the rootfs-relative resolution put it."""
    return f"test -f /{x.canary_rel}/{x.pw}"


def anywhere_check(x: Ctx) -> str:
    return f"find / -xdev -name {x.pw} | grep -q ."


# ------------------------------------------------------------------------------------------------ polyglot patches


def patched(edit: Callable[[Ctx, craft.Poly], dict | None]) -> Callable[[Ctx], str]:
    """Builds a valid one-layer image with the real writer, then `edit`s the parsed polyglot; edit may return
    keyword arguments for Poly.write (metadata / footer / raw hooks)."""

    def build(x: Ctx) -> str:
        binary = x.image(layer(M("data", "file", "A" * 4096), M(x.pw, "file", "x")))
        p = x.poly(binary)
        kw = edit(x, p) or {}
        return p.write(x.out(), **kw)

    return build


def last_layer(p: craft.Poly) -> str:
    return p.manifest()[0]["Layers"][-1]


def config_name(p: craft.Poly) -> str:
    return p.manifest()[0]["Config"]


def tamper_layer(x, p):
    name = last_layer(p)
    data = bytearray(p.get(name))
    i = data.index(b"A" * 4096)
    data[i + 100] = ord("B")
    p.put(name, bytes(data))


def tamper_config(x, p):
    name = config_name(p)
    p.put(name, p.get(name).replace(b'"os":"linux"', b'"os":"linuX"'))


def replace_config(text: bytes):
    def edit(x, p):
        old = config_name(p)
        new = "blobs/sha256/" + craft.sha256(text)
        p.put(old, text, new_name=new)
        m = p.manifest()
        m[0]["Config"] = new
        p.set_manifest(m)

    return edit


def drop(what: str):
    def edit(x, p):
        name = {"layer": last_layer(p), "config": config_name(p)}.get(what, what)
        p.drop(name)

    return edit


def entry_edit(fn):
    def edit(x, p):
        name = last_layer(p)

        def meta(m):
            ents = {e[0]: e for e in m["entries"]}
            fn(ents[name], ents, m)

        return {"meta_edit": meta}

    return edit


def repeat_layers(n: int):
    """manifest.json lists the last layer n times (the loader applies it n times; is that bounded?)."""

    def edit(x, p):
        m = p.manifest()
        m[0]["Layers"] = m[0]["Layers"][:-1] + m[0]["Layers"][-1:] * n
        p.set_manifest(m)

    return edit


def footer(**changes):
    def edit(x, p):
        def ft(f):
            for k, v in changes.items():
                f[k] = v(f) if callable(v) else v

        return {"footer_edit": ft}

    return edit


# ------------------------------------------------------------------------------------------------ cross-run checks


def poison_build(x: Ctx) -> str:
    """Image A (trusted) and image B = A's config byte for byte with other layers. Same config digest, so the
    same cache key; B runs first."""
    la = layer(M("which", "file", "which-A\n"))
    lb = layer(M("which", "file", "which-B\n"))
    base = craft.busybox_layer_cached()
    cmd = ["/bin/sh", "-c", f"cat /which; echo {OK_MARK}"]
    cfg = craft.config_json([base, la], cmd)
    x.extra_a = x.image(la, config=cfg)
    return x.image(lb, config=cfg)


def poison_post(sb: Sandbox, x: Ctx, res, mode: str) -> list[str]:
    args = ["--no-cache"] if mode == "nocache" else []
    ra = sb.run(x.extra_a, args, env=case_env(x))
    if ra.rc != 0 or "which-A" not in ra.stdout:
        return [f"the trusted image A ran image B's layers after B (same config digest) ran first:\n{ra}"]
    return []


def case_env(x: Ctx) -> dict:
    return getattr(x, "case_env", {})


def rerun_same(sb: Sandbox, x: Ctx, res, mode: str, binary: str) -> list[str]:
    """A failed start must not leave anything a second start would use."""
    again = sb.run(binary, ["--no-cache"] if mode == "nocache" else [], env=case_env(x))
    if again.rc != res.rc or again.lines != res.lines:
        return [f"a second start behaved differently (cache poisoned by the failed one?):\n{again}"]
    return []


# ------------------------------------------------------------------------------------------------ the cases

NO_ZSTD_OR_CORRUPT = r"zstd"
# Opens a file for writing without writing anything (busybox `test -w` says yes to uid 0 without asking).
OPEN_W = 'open_w() { (exec 3>>"$1") 2>/dev/null; }; open_w'
# The loader's own refusal, not the EFBIG ("File too large") of the test's RLIMIT_FSIZE safety net.
BOMB = r"^(?!.*File too large).*(space|too large|limit|exceed|bigger|larger|bomb)"

CASES = [
    # -- path traversal in member names
    Case(
        "name-dotdot",
        lambda x: x.image(layer(M(x.up + x.canary_rel + "/" + x.pw, "file", "x"))),
        "error",
        r'"\.\."',
    ),
    Case(
        "name-inner-dotdot",
        lambda x: x.image(layer(M("a/" + x.up + x.canary_rel + "/" + x.pw, "file", "x"))),
        "error",
        r'"\.\."',
    ),
    Case(
        "name-dotdot-dir", lambda x: x.image(layer(M("..", "dir"), M(x.pw, "file", "x"))), "error", r'"\.\."'
    ),
    Case(
        "name-absolute", lambda x: x.image(layer(M(x.canary + "/" + x.pw, "file", "x"))), "error", "absolute"
    ),
    Case(
        "name-absolute-prefix-field",
        lambda x: x.image(layer(M(x.tmp_target.rsplit("/", 1)[1], "file", "x", prefix="/tmp"))),
        "error",
        "absolute",
    ),
    Case(
        "pax-path-dotdot",
        lambda x: x.image(layer(pax({"path": x.up + x.canary_rel + "/" + x.pw}), M("innocent", "file", "x"))),
        "error",
        r'"\.\."',
    ),
    Case(
        "pax-path-absolute",
        lambda x: x.image(layer(pax({"path": x.tmp_target}), M("innocent", "file", "x"))),
        "error",
        "absolute",
    ),
    Case(
        "gnu-longname-dotdot",
        lambda x: x.image(layer(gnu_long(x.up + x.canary_rel + "/" + x.pw), M("innocent", "file", "x"))),
        "error",
        r'"\.\."',
    ),
    # -- symlink escapes: resolution is confined to the rootfs, so these land inside it
    Case(
        "symlink-to-root-write-through",
        lambda x: x.image(
            layer(M("esc", "sym", linkname="/"), M(f"esc/{x.canary_rel}/{x.pw}", "file", "x")),
            check=file_check(x),
        ),
        "ok",
    ),
    Case(
        "symlink-dotdot-write-through",
        lambda x: x.image(
            layer(M("esc", "sym", linkname=x.up.rstrip("/")), M(f"esc/{x.canary_rel}/{x.pw}", "file", "x")),
            check=file_check(x),
        ),
        "ok",
    ),
    Case(
        "symlink-abs-cross-layer",
        lambda x: x.image(
            layer(M("esc", "sym", linkname=x.canary)),
            layer(M(f"esc/{x.pw}", "file", "x")),
            check=file_check(x),
        ),
        "ok",
    ),
    Case(
        "symlink-rel-cross-layer",
        lambda x: x.image(
            layer(M("d", "dir"), M("d/esc", "sym", linkname=x.up + x.canary_rel)),
            layer(M(f"d/esc/{x.pw}", "file", "x")),
            check=file_check(x),
        ),
        "ok",
    ),
    Case(
        "symlink-chain",
        lambda x: x.image(
            layer(M("l1", "sym", linkname="l2/../.."), M("l2", "sym", linkname="d/../../.."), M("d", "dir")),
            layer(M(f"l1/{x.canary_rel}/{x.pw}", "file", "x")),
            check=anywhere_check(x),
        ),
        "ok",
    ),
    Case(
        "symlink-leaf-replaced-next-layer",
        lambda x: x.image(
            layer(M("target", "sym", linkname=x.secret)),
            layer(M("target", "file", "new\n")),
            check="test ! -L /target && grep -q new /target",
        ),
        "ok",
    ),
    Case(
        "symlink-leaf-replaced-same-layer",
        lambda x: x.image(
            layer(M("target", "sym", linkname=x.secret), M("target", "file", "new\n")),
            check="test ! -L /target && grep -q new /target",
        ),
        "ok",
    ),
    Case(
        "symlinked-parent-dir-replaced",
        lambda x: x.image(
            layer(M("d", "dir"), M("d/keep", "file", "k")),
            layer(M("d", "sym", linkname=x.canary)),
            layer(M(f"d/{x.pw}", "file", "x")),
            check=file_check(x),
        ),
        "ok",
    ),
    Case(
        "symlink-loop",
        lambda x: x.image(
            layer(M("a", "sym", linkname="b"), M("b", "sym", linkname="a"), M("a/x", "file", "x"))
        ),
        "error",
        "symbolic links|loop",
    ),
    Case("symlink-empty-target", lambda x: x.image(layer(M("s", "sym", linkname=""))), "error", "no target"),
    # -- hard links
    Case(
        "hardlink-absolute-etc-passwd",
        lambda x: x.image(layer(M("p", "link", linkname="/etc/passwd"))),
        "error",
        "absolute",
    ),
    Case(
        "hardlink-dotdot",
        lambda x: x.image(layer(M("p", "link", linkname=x.up + x.canary_rel + "/secret"))),
        "error",
        r'"\.\."',
    ),
    Case(
        "hardlink-pax-linkpath-dotdot",
        lambda x: x.image(
            layer(pax({"linkpath": x.up + "etc/passwd"}), M("p", "link", linkname="etc/passwd"))
        ),
        "error",
        r'"\.\."',
    ),
    Case(
        "hardlink-through-symlink-to-host",
        lambda x: x.image(
            layer(M("h", "sym", linkname=x.canary)), layer(M("stolen", "link", linkname="h/secret"))
        ),
        "error",
        "hard-link",
    ),
    Case(
        "hardlink-through-symlink-in-root",
        lambda x: x.image(
            layer(M("h", "sym", linkname="/etc")),
            layer(M("stolen", "link", linkname="h/passwd")),
            check="grep -q root: /stolen",
        ),
        "ok",
    ),
    Case(
        "hardlink-to-symlink-outside",
        lambda x: x.image(
            layer(M("s", "sym", linkname=x.secret)),
            layer(M("hl", "link", linkname="s")),
            layer(M("hl", "file", "overwritten\n")),
            check="grep -q overwritten /hl",
        ),
        "ok",
    ),
    Case(
        "hardlink-to-directory",
        lambda x: x.image(layer(M("l", "link", linkname="bin"))),
        "error",
        "hard-link",
    ),
    # -- whiteouts
    Case("whiteout-dotdot-name", lambda x: x.image(layer(M(".wh...", "file"))), "error", "whiteout"),
    Case("whiteout-bare", lambda x: x.image(layer(M("bin/.wh.", "file"))), "error", "whiteout"),
    Case(
        "whiteout-traversal",
        lambda x: x.image(layer(M(x.up + x.canary_rel + "/.wh.secret", "file"))),
        "error",
        r'"\.\."',
    ),
    Case(
        "whiteout-absolute",
        lambda x: x.image(layer(M(x.canary + "/.wh.secret", "file"))),
        "error",
        "absolute",
    ),
    Case(
        "whiteout-through-symlink",
        lambda x: x.image(layer(M("w", "sym", linkname=x.canary)), layer(M("w/.wh.secret", "file"))),
        "ok",
    ),
    Case(
        "opaque-whiteout-through-symlink",
        lambda x: x.image(layer(M("w", "sym", linkname=x.canary)), layer(M("w/.wh..wh..opq", "file"))),
        "ok",
    ),
    Case(
        "opaque-whiteout-root-via-dotdot-symlink",
        lambda x: x.image(
            layer(M("w", "sym", linkname=x.up.rstrip("/"))),
            layer(M("w/.wh..wh..opq", "file"), craft.busybox_layer_cached()[:-1024]),
            check="test ! -e /w",
        ),
        "ok",
    ),
    # -- special files
    Case(
        "device-char",
        lambda x: x.image(layer(M("cdev", "char", devmajor=1, devminor=3)), check="test ! -e /cdev"),
        "ok",
        "device node",
    ),
    Case(
        "device-block",
        lambda x: x.image(layer(M("bdev", "block", devmajor=8, devminor=0)), check="test ! -e /bdev"),
        "ok",
        "device node",
    ),
    Case(
        "device-under-dev", lambda x: x.image(layer(M("dev", "dir"), M("dev/sda", "block", devmajor=8))), "ok"
    ),
    Case(
        "fifo", lambda x: x.image(layer(M("f", "fifo", mode=0o644)), check="test -p /f || test ! -e /f"), "ok"
    ),
    Case("gnu-sparse", lambda x: x.image(layer(M("sp", "sparse", size=0))), "ok", "unsupported tar entry"),
    # set-id files may exist in the rootfs (today the loader drops the bits), but never as a host privilege:
    # no set-id file owned by host root unless root ran it, none reachable by other users (exposed_entry)
    Case(
        "setuid-setgid",
        lambda x: x.image(
            layer(
                M("suid", "file", "#!/bin/sh\n", mode=0o4755),
                M("sgid", "file", "#!/bin/sh\n", mode=0o2755),
                M("suidroot", "file", "x", mode=0o6777, uid=0, gid=0),
                M("sgdir", "dir", mode=0o2775),
            )
        ),
        "ok",
    ),
    Case(
        "world-writable-dirs-in-cache",
        lambda x: x.image(
            layer(M("usr", "dir"), M("usr/lib", "dir", mode=0o777), M("usr/lib/app", "dir", mode=0o1777))
        ),
        "ok",
    ),
    Case(
        "cache-rootfs-dir-preexisting-0755",
        lambda x: x.image(
            layer(M("usr", "dir"), M("usr/lib", "dir", mode=0o777), M("usr/lib/s", "file", "x", mode=0o4755))
        ),
        "ok",
        modes=("cache",),
        pre=lambda sb: sb.mkdir_owned(os.path.join(sb.cache, "rootfs"), 0o755),
    ),
    # -- sizes and counts in headers
    Case(
        "size-huge-truncated",
        lambda x: x.image(layer(header("big", "file", size_field=b"77777777777\0") + b"x" * 512, eof=False)),
        "error",
        "truncated",
    ),
    Case(
        "size-base256-negative",
        lambda x: x.image(layer(header("neg", "file", size_field=b"\xff" * 12) + b"x" * 512)),
        "error",
        "size field",
    ),
    Case(
        "size-base256-2pow64",
        lambda x: x.image(layer(header("big", "file", size_field=b"\x80\0\0\0" + b"\xff" * 8) + b"x" * 512)),
        "error",
        "size field|truncated",
    ),
    Case(
        "size-octal-garbage",
        lambda x: x.image(layer(header("g", "file", size_field=b"0000001x23\0\0"))),
        "error",
        "size field",
    ),
    Case(
        "pax-size-huge",
        lambda x: x.image(layer(pax({"size": str(10**18)}), M("f", "file", "hello"))),
        "error",
        "truncated|No space left",  # the declared size is refused up front (more than any free space)
    ),
    Case(
        "pax-size-negative",
        lambda x: x.image(layer(pax({"size": "-5"}), M("f", "file", "hello"))),
        "error",
        "pax size",
    ),
    Case(
        "pax-size-overflow",
        lambda x: x.image(layer(pax({"size": "9" * 30}), M("f", "file", "hello"))),
        "error",
        "pax size",
    ),
    Case(
        "pax-record-length-lies",
        lambda x: x.image(
            layer(header("PaxHeaders/x", "pax", 11) + craft.pad(b"999 path=x\n"), M("f", "file", "x"))
        ),
        "error",
        "pax",
    ),
    Case(
        "pax-header-2mib",
        lambda x: x.image(layer(pax({"comment": "a" * (2 * MiB)}), M("f", "file", "x"))),
        "error",
        "too large",
    ),
    Case(
        "pax-path-10k",
        lambda x: x.image(layer(pax({"path": "a/" * 5000 + x.pw}), M("f", "file", "x"))),
        "error",
        "longer than",
    ),
    Case(
        "gnu-longname-10k",
        lambda x: x.image(layer(gnu_long("a/" * 5000 + x.pw), M("f", "file", "x"))),
        "error",
        "too large",
    ),
    Case(
        "component-300-bytes",
        lambda x: x.image(layer(pax({"path": "x" * 300}), M("f", "file", "x"))),
        "error",
        "too long",
    ),
    Case(
        "deep-directories-2000",
        lambda x: x.image(
            layer(pax({"path": "d/" * 2000 + x.pw}), M("f", "file", "x")), check=anywhere_check(x)
        ),
        "any",
    ),
    Case(
        "bad-checksum",
        lambda x: x.image(layer(header("f", "file", 1, checksum_delta=1) + craft.pad(b"x"))),
        "error",
        "checksum",
    ),
    # -- truncation and broken compression
    Case("truncated-in-header", lambda x: x.image(layer(M("f", "file", "x"))[:300]), "error", "truncated"),
    Case(
        "truncated-file-data",
        lambda x: x.image(layer(header("f", "file", 4096) + b"y" * 1024, eof=False)),
        "error",
        "truncated",
    ),
    Case(
        "gzip-corrupt", lambda x: x.image(b"\x1f\x8b\x08\x00\0\0\0\0\0\xff" + b"\xff" * 4096), "error", "gzip"
    ),
    Case(
        "gzip-truncated",
        lambda x: x.image(gz(layer(M("f", "file", os.urandom(256 * 1024))))[: 128 * 1024]),
        "error",
        "gzip",
    ),
    Case(
        "zstd-corrupt", lambda x: x.image(b"\x28\xb5\x2f\xfd" + b"\xff" * 4096), "error", NO_ZSTD_OR_CORRUPT
    ),
    Case(
        "zstd-truncated",
        lambda x: x.image(craft.zst(layer(M("f", "file", os.urandom(256 * 1024))))[: 128 * 1024]),
        "error",
        NO_ZSTD_OR_CORRUPT,
    ),
    Case(
        "zstd-name-dotdot",
        lambda x: x.image(craft.zst(layer(M(x.up + x.canary_rel + "/" + x.pw, "file", "x")))),
        "error",
        r'"\.\."|without zstd',
    ),
    Case(
        "zstd-bomb-declared-1tib-inflates-4gib",
        lambda x: x.image(craft.zstd_bomb(header("bomb", "file", 1 << 40), 4 * GiB)),
        "error",
        BOMB,
        fsize=128 * MiB,
    ),
    Case(
        "bomb-declared-1tib-inflates-4gib",
        lambda x: x.image(craft.deflate_bomb(header("bomb", "file", 1 << 40), 4 * GiB)),
        "error",
        BOMB,
        fsize=128 * MiB,
    ),
    Case(
        "bomb-fills-small-cache-fs",
        lambda x: x.image(craft.deflate_bomb(header("bomb", "file", GiB), GiB)),
        "error",
        "space",
        modes=("cache",),
        small_tmpfs=32 * MiB,
    ),
    # -- JSON and archive structure (patched polyglots)
    Case(
        "manifest-invalid-json",
        patched(lambda x, p: p.put("manifest.json", b'[{"Config":"blobs/sha256/')),
        "error",
        "json|manifest",
    ),
    Case(
        "manifest-deeply-nested",
        patched(lambda x, p: p.put("manifest.json", b"[" * 100000 + b"]" * 100000)),
        "error",
        "deep|nest|depth",
    ),
    Case(
        "manifest-not-a-list",
        patched(lambda x, p: p.put("manifest.json", b'{"Config":1,"Layers":{}}')),
        "error",
        "Config/Layers",
    ),
    Case("config-invalid-json", patched(replace_config(b'{"config":{"Cmd":[')), "error", "json|config"),
    Case(
        "config-deeply-nested",
        patched(replace_config(b'{"a":' * 5000 + b"1" + b"}" * 5000)),
        "error",
        "deep|nest|depth",
    ),
    Case(
        "metadata-invalid-json",
        patched(lambda x, p: {"meta_bytes": b'{"format":1,"entries":['}),
        "error",
        "metadata",
    ),
    Case(
        "metadata-deeply-nested",
        patched(lambda x, p: {"meta_bytes": b'{"format":1,"x":' + b"[" * 100000 + b"]" * 100000 + b"}"}),
        "error",
        "metadata",
    ),
    Case("missing-layer-blob", patched(drop("layer")), "error", "missing"),
    Case("missing-config-blob", patched(drop("config")), "error", "missing"),
    Case("missing-manifest-json", patched(drop("manifest.json")), "error", "manifest.json"),
    Case("layer-digest-mismatch", patched(tamper_layer), "error", "does not match its digest"),
    Case("config-digest-mismatch", patched(tamper_config), "error", "does not match its digest"),
    Case(
        "entry-outside-archive",
        patched(entry_edit(lambda e, ents, m: e.__setitem__(1, 10**12))),
        "error",
        "outside",
    ),
    Case(
        "entry-offset-beyond-u64",
        patched(entry_edit(lambda e, ents, m: e.__setitem__(1, 2**64 + 512))),
        "error",
        "malformed|outside",
    ),
    Case(
        "entries-overlap",
        patched(entry_edit(lambda e, ents, m: e.__setitem__(1, min(v[1] for v in ents.values())))),
        "error",
        ".",
    ),
    Case(
        "footer-metadata-outside-file",
        patched(footer(tar_end=lambda f: f["tar_end"] + 10**9)),
        "error",
        "outside the file",
    ),
    Case(
        "footer-metadata-size-huge", patched(footer(meta_size=2**63)), "error", "outside the file|too large"
    ),
    Case("footer-bad-version", patched(footer(version=7)), "error", "version"),
    Case(
        "footer-bad-magic",
        patched(lambda x, p: {"raw_edit": lambda b: b[:-8] + b"NOTOCI2\0"}),
        "error",
        "not an oci2bin",
    ),
    Case(
        "file-truncated",
        patched(lambda x, p: {"raw_edit": lambda b: b[: len(b) // 2]}),
        "error",
        "not an oci2bin",
    ),
    Case(
        "device-node-dotdot",
        lambda x: x.image(layer(M(x.up + x.canary_rel + "/" + x.pw, "char", devmajor=1, devminor=3))),
        "error",
        r'"\.\."',
    ),
    Case(
        "parent-is-a-file",
        lambda x: x.image(layer(M("etc/passwd/x", "file", "x"))),
        "error",
        "parent directory",
    ),
    Case(
        "pax-global-header-path",
        lambda x: x.image(
            layer(
                header("g", "g", len(craft.pax_body({"path": x.up + x.pw})))
                + craft.pad(craft.pax_body({"path": x.up + x.pw})),
                M("f", "file", "x"),
            ),
            check="test -f /f",
        ),
        "ok",
    ),
    Case(
        "volume-header",
        lambda x: x.image(layer(M("vol", "V"), M("f", "file", "x")), check="test -f /f"),
        "ok",
        "unsupported tar entry",
    ),
    Case("layers-repeated-5000", patched(repeat_layers(5000)), "any", timeout=120),
    Case(
        "etc-passwd-is-fifo",
        lambda x: x.image(layer(M("etc/passwd", "fifo"))),
        "any",
        timeout=6,
    ),
    Case(
        "etc-group-is-fifo-single-id",
        lambda x: x.image(layer(M("etc/group", "fifo"))),
        "any",
        timeout=6,
        env={"OCI2BIN_SINGLE_ID": "1"},
    ),
    Case(
        "single-id-patch-through-symlinks",
        lambda x: x.image(
            layer(
                M(".wh.etc", "file"),
                M("etc", "sym", linkname=x.canary),
                M("usr", "dir"),
                M("usr/bin", "sym", linkname=x.up + x.canary_rel),
            ),
            layer(
                M("etc/passwd", "file", "root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/:/bin/sh\n"),
                M("etc/group", "file", "root:x:0:\nu:x:1000:\n"),
                M("etc/apt", "dir"),
                M("usr/bin/gosu", "file", "real gosu", mode=0o755),
            ),
            check="grep -q ^u:x:0:0 /etc/passwd && test -f /etc/apt/apt.conf.d/99oci2bin && "
            "grep -q oci2bin /usr/bin/gosu",
        ),
        "ok",
        env={"OCI2BIN_SINGLE_ID": "1"},
    ),
    # -- what the image asks the runtime to do
    Case(
        "proc-is-symlink-out",
        lambda x: x.image(
            layer(M("proc", "sym", linkname=x.canary + "/proc")), check="test -r /proc/self/status"
        ),
        "ok",
    ),
    Case(
        "dev-is-symlink-out",
        lambda x: x.image(
            layer(M("dev", "sym", linkname=x.up + x.canary_rel + "/dev")), check="test -c /dev/null"
        ),
        "ok",
    ),
    Case(
        "tmp-is-symlink-out",
        lambda x: x.image(
            layer(M(".wh.tmp", "file"), M("tmp", "sym", linkname=x.canary)), check=f"touch /tmp/{x.pw}"
        ),
        "ok",
    ),
    Case(
        "resolv-conf-is-symlink-out",
        lambda x: x.image(
            layer(
                M("etc/resolv.conf", "sym", linkname=x.canary + "/resolv.conf"),
                M("etc/hosts", "sym", linkname=x.secret),
            )
        ),
        "ok",
    ),
    Case(
        "mount-targets-are-symlinks",
        lambda x: x.image(
            layer(
                M(".wh.tmp", "file"),
                M("tmp", "sym", linkname=x.canary + "/tmp"),
                M("proc", "sym", linkname=x.canary),
                M("dev", "sym", linkname=x.canary + "/dev"),
                M("sys", "sym", linkname="/"),
                M("etc/resolv.conf", "sym", linkname=x.canary + "/resolv.conf"),
                M("etc/hosts", "sym", linkname=x.up + x.canary_rel + "/hosts"),
            )
        ),
        "any",
    ),
    Case("workdir-escape", lambda x: x.image(extra={"WorkingDir": x.up + x.canary_rel}), "any"),
    Case("entrypoint-proc-self-exe", lambda x: x.image(cmd=["/proc/self/exe", "--version"]), "any"),
    Case(
        "host-proc-knobs-writable",
        lambda x: x.image(
            check="for f in /proc/sys/kernel/core_pattern /proc/sys/vm/swappiness "
            "/proc/sysrq-trigger; do "
            f"if {OPEN_W} $f; then echo HOST-SYSCTL-WRITABLE $f; exit 9; fi; done"
        ),
        "ok",
    ),
    Case(
        "sysfs-remount-rw",
        lambda x: x.image(
            check=OPEN_W.removesuffix("open_w") + "if mount -o remount,bind,rw /sys 2>/dev/null && "
            "open_w /sys/kernel/mm/transparent_hugepage/enabled; then "
            "echo SYSFS-WRITABLE; exit 9; fi"
        ),
        "ok",
    ),
    Case(
        "diff-ids-cache-poisoning",
        poison_build,
        "any",
        post=poison_post,
    ),
]

BUG_USERS = {  # bugs that only show for one user
    "host-proc-knobs-writable": {"root"},
    "sysfs-remount-rw": {"root"},
    "diff-ids-cache-poisoning": {"root", UNPRIVILEGED},
}
BUG_MODES = {"diff-ids-cache-poisoning": {"cache"}}


# ------------------------------------------------------------------------------------------------ runs


def params(user: str) -> list:
    """pytest params (case, mode) for one user; known bugs are strict xfails where they show."""
    out = []
    for c in CASES:
        for mode in c.modes:
            marks = []
            if (
                c.bug
                and user in BUG_USERS.get(c.id, {"root", UNPRIVILEGED})
                and mode in BUG_MODES.get(c.id, {"cache", "nocache"})
            ):
                marks.append(pytest.mark.xfail(strict=True, reason="loader bug: " + c.bug))
            out.append(pytest.param(c, mode, id=f"{c.id}-{mode}", marks=marks))
    return out


def run_case(case: Case, user: str, mode: str, loader_bytes: bytes) -> None:
    """Builds the case, runs it as `user` (root or tester) with the cache or --no-cache, checks everything."""
    if os.geteuid() != 0:
        pytest.skip("runs as root and switches to the unprivileged user")
    if user != "root":
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.skip(f"no user {user!r} (tests/rig/install-deps.sh creates it)")
    sb = Sandbox(user, loader_bytes, case.small_tmpfs)
    try:
        x = sb.ctx
        x.case_env = case.env
        binary = case.build(x)
        for name in os.listdir(x.build):
            if name.startswith(("bin", "patched")):
                sb.own(os.path.join(x.build, name))
        if case.pre:
            case.pre(sb)
        args = (["--no-cache"] if mode == "nocache" else []) + list(case.args)
        before = HostState.take(sb, [binary])
        res = sb.run(binary, args, fsize=case.fsize, timeout=case.timeout, env=case.env)
        problems: list[str] = []
        failed = res.rc != 0
        if case.expect == "error":
            why = one_error_line(res, case.pattern or ".")
        elif case.expect == "ok":
            why = clean_success(res, case.pattern)
        elif failed:  # "any", refused: still one clear line (125 loader, 126/127 the command)
            why = one_error_line(res, ".", rcs=(125, 126, 127))
        else:  # "any", ran: warnings allowed, the check marker is not required
            why = clean_success(res, "", need_mark=False)
        if why:
            problems.append(why)
        # cache: nothing usable after a failure, and a second start fails the same way
        published = sb.published()
        leftovers = [n for n in sb.cache_entries() if n.startswith(".tmp-")]
        if leftovers:
            problems.append(f"half-extracted cache directories left: {leftovers}")
        if mode == "nocache" and os.listdir(sb.cache):
            problems.append(f"--no-cache wrote to the cache: {os.listdir(sb.cache)}")
        if case.expect == "error" and published:
            problems.append(f"a failed start published a cache entry: {published}")
        if failed and mode == "cache" and not problems:
            problems += rerun_same(sb, x, res, mode, binary)
        run_uid = 0 if user == "root" else pwd.getpwnam(user).pw_uid
        for entry in published:
            problems += exposed_entry(os.path.join(sb.cache, "rootfs", entry), run_uid)
        if case.post:
            problems += case.post(sb, x, res, mode)
        after = HostState.take(sb, [binary])
        problems += before.diff(after)
        if os.path.lexists(x.tmp_target):
            problems.append(f"escape reached {x.tmp_target}")
        assert not problems, "\n".join(problems) + f"\n{res}"
    finally:
        sb.close()
        if os.path.lexists(f"/tmp/hostile-pwned-{sb.ctx.token}"):
            os.unlink(f"/tmp/hostile-pwned-{sb.ctx.token}")
