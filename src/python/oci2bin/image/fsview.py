"""The final filesystem of an image (layers applied with whiteouts, as a union filesystem would), as metadata:
path -> Node. Streams every layer once; file contents are hashed, never kept (except small files asked for)."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

from oci2bin.image.model import Image, open_uncompressed
from oci2bin.mutate.layertar import iter_layer

WH = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Node:
    kind: str  # file, dir, symlink, hardlink-resolved files are "file", other: char, block, fifo
    size: int
    mode: int
    digest: str = ""  # sha256 of a file's content
    target: str = ""  # symlink target

    def same_as(self, other: Node) -> bool:
        return (self.kind, self.size, self.mode & 0o7777, self.digest, self.target) == (
            other.kind,
            other.size,
            other.mode & 0o7777,
            other.digest,
            other.target,
        )


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _hash_member(tf: tarfile.TarFile, m: tarfile.TarInfo, keep: bool) -> tuple[str, bytes | None]:
    f = tf.extractfile(m)
    h = hashlib.sha256()
    kept = bytearray() if keep else None
    if f is not None:
        while data := f.read(1 << 20):
            h.update(data)
            if kept is not None:
                kept += data
    return "sha256:" + h.hexdigest(), (bytes(kept) if kept is not None else None)


def flatten(image: Image, keep: Iterable[str] = ()) -> tuple[dict[str, Node], dict[str, bytes]]:
    """(path -> Node, path -> bytes for the paths in `keep` that are regular files in the final tree)."""
    want = {_norm(k) for k in keep}
    fs: dict[str, Node] = {}
    data: dict[str, bytes] = {}

    def remove_tree(path: str, include_self: bool) -> None:
        prefix = path + "/" if path else ""
        for k in [
            k for k in fs if (k.startswith(prefix) if prefix else True) or (include_self and k == path)
        ]:
            del fs[k]
            data.pop(k, None)

    for blob in image.layers:
        with open_uncompressed(blob) as f:
            for m, tf in iter_layer(f):
                name = _norm(m.name)
                if not name:
                    continue
                parent, _, base = name.rpartition("/")
                if base == OPAQUE:
                    remove_tree(parent, include_self=False)
                    continue
                if base.startswith(WH):
                    remove_tree(
                        (parent + "/" if parent else "") + base[len(WH) :],
                        include_self=True,
                    )
                    continue
                old = fs.get(name)
                if old is not None and old.kind == "dir" and not m.isdir():
                    remove_tree(name, include_self=True)
                if m.isreg():
                    digest, content = _hash_member(tf, m, name in want)
                    fs[name] = Node("file", m.size, m.mode, digest)
                    if content is not None:
                        data[name] = content
                elif m.islnk():
                    target = fs.get(_norm(m.linkname))
                    if target is not None:
                        fs[name] = Node("file", target.size, m.mode, target.digest)
                        if _norm(m.linkname) in data and name in want:
                            data[name] = data[_norm(m.linkname)]
                elif m.issym():
                    fs[name] = Node("symlink", len(m.linkname), m.mode, "", m.linkname)
                elif m.isdir():
                    fs[name] = Node("dir", 0, m.mode)
                elif m.ischr() or m.isblk() or m.isfifo():
                    kind = "char" if m.ischr() else "block" if m.isblk() else "fifo"
                    fs[name] = Node(kind, 0, m.mode)
    return fs, data


@dataclass(frozen=True)
class Change:
    op: str  # "+", "-", "M"
    path: str
    old: Node | None
    new: Node | None


def diff(old: dict[str, Node], new: dict[str, Node]) -> list[Change]:
    out = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a is None:
            out.append(Change("+", path, None, b))
        elif b is None:
            out.append(Change("-", path, a, None))
        elif not a.same_as(b) and not (a.kind == b.kind == "dir" and (a.mode & 0o7777) == (b.mode & 0o7777)):
            out.append(Change("M", path, a, b))
    return out
