"""Crafting hostile images: tar headers byte by byte, OCI layouts, real-writer polyglots, patched polyglots.

Nothing here uses `tarfile` to write: every header is built field by field so a case can put anything in any
field (absolute names, `..`, negative base-256 sizes, bad checksums, pax overrides, truncation).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field

from oci2bin.image import layout as oci_layout
from oci2bin.image.model import canonical_json
from oci2bin.polyglot.format import (
    FOOTER_SIZE,
    TAR_EOF,
    Footer,
    ustar_header,
)
from oci2bin.polyglot.writer import write_polyglot

BLOCK = 512
EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"
BUSYBOX = "/bin/busybox"
APPLETS = ("cat", "grep", "find", "ls", "mount", "id", "stat", "head", "touch")

# ------------------------------------------------------------------------------------------------ tar bytes

TYPES = {
    "file": b"0",
    "link": b"1",
    "sym": b"2",
    "char": b"3",
    "block": b"4",
    "dir": b"5",
    "fifo": b"6",
    "pax": b"x",
    "gnulong": b"L",
    "gnulink": b"K",
    "sparse": b"S",
}


def _b(s: str | bytes) -> bytes:
    return s.encode() if isinstance(s, str) else s


def _octal(n: int, width: int) -> bytes:
    return (b"%0*o" % (width - 1, n)) + b"\0"


def header(
    name: str | bytes,
    kind: str = "file",
    size: int = 0,
    *,
    linkname: str | bytes = b"",
    mode: int | None = None,
    uid: int = 0,
    gid: int = 0,
    mtime: int = EPOCH,
    prefix: str | bytes = b"",
    size_field: bytes | None = None,
    devmajor: int = 0,
    devminor: int = 0,
    checksum_delta: int = 0,
) -> bytes:
    """One 512-byte ustar header; `size_field` (12 raw bytes) replaces the octal size."""
    name, linkname, prefix = _b(name), _b(linkname), _b(prefix)
    assert len(name) <= 100 and len(linkname) <= 100 and len(prefix) <= 155, name
    if mode is None:
        mode = 0o755 if kind in ("dir", "sym") else 0o644
    h = bytearray(BLOCK)
    h[0 : len(name)] = name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    if size_field is not None:
        assert len(size_field) == 12
        h[124:136] = size_field
    else:
        h[124:136] = _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[156:157] = TYPES.get(kind, _b(kind))
    h[157 : 157 + len(linkname)] = linkname
    h[257:265] = b"ustar\x0000"
    h[265:269] = b"root"
    h[297:301] = b"root"
    h[329:337] = _octal(devmajor, 8)
    h[337:345] = _octal(devminor, 8)
    h[345 : 345 + len(prefix)] = prefix
    h[148:156] = b" " * 8
    chk = sum(h) + checksum_delta
    h[148:156] = b"%06o\0 " % chk
    return bytes(h)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def member(name: str | bytes, kind: str = "file", data: str | bytes = b"", **kw) -> bytes:
    """A header plus its (padded) data; regular files get size = len(data) unless `size` is given."""
    data = _b(data)
    size = kw.pop("size", len(data) if kind == "file" else 0)
    name, link = _b(name), _b(kw.pop("linkname", b""))
    ext = {}
    if len(name) > 100:  # what tar does: a pax header with the full name, a cut one in the ustar header
        ext["path"], name = name, name[:100]
    if len(link) > 100:
        ext["linkpath"], link = link, link[:100]
    return (pax(ext) if ext else b"") + header(name, kind, size, linkname=link, **kw) + pad(data)


def pax_body(records: dict[str, str | bytes]) -> bytes:
    out = b""
    for k, v in records.items():
        rec = b" " + k.encode() + b"=" + _b(v) + b"\n"
        n = len(rec) + 1
        while len(str(n).encode()) + len(rec) != n:
            n = len(str(n).encode()) + len(rec)
        out += str(n).encode() + rec
    return out


def pax(records: dict[str, str | bytes], *, size: int | None = None) -> bytes:
    """A pax 'x' extended header applying to the next member."""
    body = pax_body(records)
    return header(b"PaxHeaders/x", "pax", len(body) if size is None else size) + pad(body)


def gnu_long(name: str | bytes, kind: str = "gnulong") -> bytes:
    data = _b(name) + b"\0"
    return header(b"././@LongLink", kind, len(data)) + pad(data)


def tar(*parts: bytes, eof: bool = True) -> bytes:
    return b"".join(parts) + (TAR_EOF if eof else b"")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zst(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


def zstd_bomb(prefix: bytes, zeros: int, chunk: int = 64 << 20) -> bytes:
    """zstd frames: `prefix`, then `zeros` zero bytes as one repeated frame (frames concatenate)."""
    import zstandard

    c = zstandard.ZstdCompressor(level=3)
    block = c.compress(b"\0" * chunk)
    return c.compress(prefix) + block * (zeros // chunk)


def deflate_bomb(prefix: bytes, zeros: int, chunk: int = 1 << 22) -> bytes:
    """A gzip stream: `prefix`, then `zeros` zero bytes, built by repeating one full-flushed deflate block
    (so a multi-GiB expansion costs a few MB and milliseconds). The trailer CRC is not valid: a loader that
    respects a limit stops long before reaching it."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    co2 = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co2.compress(b"\0" * chunk) + co2.flush(zlib.Z_FULL_FLUSH)
    n = zeros // chunk
    tail_co = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_co.compress(b"") + tail_co.flush(zlib.Z_FINISH)
    gzhead = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", 0, (len(prefix) + n * chunk) & 0xFFFFFFFF)
    return gzhead + head + block * n + tail + trailer


# ------------------------------------------------------------------------------------------------ images


def busybox_layer() -> bytes:
    """The base layer every case gets: a static busybox as /bin/busybox and /bin/sh, /etc/passwd, /tmp."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    return tar(
        member("bin", "dir"),
        member("bin/busybox", "file", bb, mode=0o755),
        member("bin/sh", "sym", linkname="busybox"),
        *(member(f"bin/{a}", "sym", linkname="busybox") for a in APPLETS),
        member("etc", "dir"),
        member("etc/passwd", "file", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"),
        member("etc/group", "file", "root:x:0:\n"),
        member("tmp", "dir", mode=0o1777),
        member("root", "dir", mode=0o700),
    )


@functools.lru_cache(maxsize=1)
def busybox_layer_cached() -> bytes:
    return busybox_layer()


def _uncompressed(blob: bytes) -> bytes:
    """The layer's tar (for diff_ids); broken or bomb-sized streams are left as they are."""
    if blob[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(blob, 64 << 20)
        except zlib.error:
            return blob
        return out if d.eof else blob
    return blob


def _media_type(blob: bytes) -> str:
    if blob[:2] == b"\x1f\x8b":
        return "application/vnd.oci.image.layer.v1.tar+gzip"
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return "application/vnd.oci.image.layer.v1.tar+zstd"
    return "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_json(layers: list[bytes], cmd: list[str], extra: dict | None = None, diff_ids=None) -> bytes:
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids
            if diff_ids is not None
            else [
                "sha256:" + sha256(_uncompressed(b))
                if b[:4] != b"\x28\xb5\x2f\xfd"
                else "sha256:" + sha256(b)
                for b in layers
            ],
        },
    }
    if extra:
        cfg["config"].update(extra)
    return canonical_json(cfg)


def write_layout(dest: str, layers: list[bytes], config: bytes) -> str:
    """An OCI image layout directory holding `layers` (raw blob bytes) and `config`."""
    os.makedirs(os.path.join(dest, "blobs", "sha256"), exist_ok=True)

    def put(data: bytes) -> dict:
        h = sha256(data)
        with open(os.path.join(dest, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + h, "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": [{"mediaType": _media_type(b), **put(b)} for b in layers],
    }
    mbytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    mdesc = {"mediaType": manifest["mediaType"], **put(mbytes)}
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": "hostile"}
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return dest


def assemble(layout_dir: str, output: str, loader: bytes) -> str:
    """The real writer: OCI layout -> polyglot (what `oci2bin assemble --image oci:DIR` does)."""
    image = oci_layout.read_layout(oci_layout.DirTree(layout_dir))
    write_polyglot(output, loader, image, ref="localhost/hostile:latest")
    os.chmod(output, 0o755)
    return output


# ------------------------------------------------------------------------------------------------ polyglot surgery


@dataclass
class Poly:
    """A parsed polyglot: the loader part (entry #1, verbatim), the archive entries, metadata and footer."""

    head: bytes
    entries: list[list] = field(default_factory=list)  # [name, bytes]
    meta: dict = field(default_factory=dict)
    footer: Footer | None = None

    @staticmethod
    def read(path: str) -> Poly:
        with open(path, "rb") as f:
            data = f.read()
        ft = Footer.unpack(data[-FOOTER_SIZE:])
        assert ft is not None, "not an oci2bin file"
        meta = json.loads(data[ft.tar_end : ft.tar_end + ft.meta_size])
        ents = sorted(meta["entries"], key=lambda e: e[1])
        head = data[: ents[0][1] - BLOCK]
        entries = [[n, data[o : o + s]] for n, o, s in ents]
        return Poly(head, entries, meta, ft)

    def get(self, name: str) -> bytes:
        for n, d in self.entries:
            if n == name:
                return d
        raise KeyError(name)

    def put(self, name: str, data: bytes, *, new_name: str | None = None) -> None:
        for e in self.entries:
            if e[0] == name:
                e[1] = data
                if new_name:
                    e[0] = new_name
                return
        self.entries.insert(0, [new_name or name, data])

    def drop(self, name: str) -> None:
        self.entries = [e for e in self.entries if e[0] != name]

    def manifest(self) -> list:
        return json.loads(self.get("manifest.json"))

    def set_manifest(self, m) -> None:
        self.put("manifest.json", json.dumps(m, separators=(",", ":")).encode())

    def write(
        self,
        path: str,
        *,
        meta_bytes: bytes | None = None,
        meta_edit=None,
        footer_edit=None,
        raw_edit=None,
    ) -> str:
        """Re-emits the archive like the writer does; the hooks edit the metadata dict / raw metadata bytes /
        footer fields / final bytes (in that order)."""
        out = bytearray(self.head)
        table = []
        for name, data in self.entries:
            out += ustar_header(name.encode(), len(data), 0o644, EPOCH)
            table.append([name, len(out), len(data)])
            out += pad(data)
        out += TAR_EOF
        tar_end = len(out)
        meta = dict(self.meta, entries=table)
        if meta_edit:
            meta_edit(meta)
        mb = meta_bytes if meta_bytes is not None else canonical_json(meta)
        out += mb
        ft = {
            "flags": 0,
            "tar_end": tar_end,
            "meta_size": len(mb),
            "sig_offset": 0,
            "sig_size": 0,
            "loader_offset": self.footer.loader_offset,
        }
        if footer_edit:
            footer_edit(ft)
        out += Footer(**ft).pack()
        if raw_edit:
            out = bytearray(raw_edit(bytes(out)))
        with open(path, "wb") as f:
            f.write(out)
        os.chmod(path, 0o755)
        return path
