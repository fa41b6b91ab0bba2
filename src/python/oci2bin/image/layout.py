"""OCI image layout: read one image (tag + platform selection, nested indexes) and write one.

Reading goes through a `FileTree` so the same code serves a layout directory (`oci:DIR`) and a tar of one
(`oci-archive:PATH`, see archive.py).
"""

from __future__ import annotations

import json
import os

from oci2bin.errors import UserError
from oci2bin.image.model import (
    ANNOTATION_REF_NAME,
    CHUNK,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_OCI_INDEX,
    Blob,
    Image,
    Platform,
    image_from_manifest,
    split_digest,
)

TYPE_CHECKING = False  # typing (and tempfile/shutil, imported by write_layout) cost every CLI start time
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol
else:
    Protocol = object

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'


class FileTree(Protocol):
    """Read-only access to named files (a directory or tar members)."""

    description: str

    def size(self, name: str) -> int | None: ...  # None: absent

    def open(self, name: str) -> BinaryIO: ...


class DirTree:
    def __init__(self, root: str) -> None:
        self.root = root
        self.description = root

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise UserError(f"unsafe path {name!r} in {self.description}", "the image is corrupt")
        return os.path.join(self.root, name)

    def size(self, name: str) -> int | None:
        try:
            st = os.stat(self._path(name))
        except OSError:
            return None
        return st.st_size if not os.path.isdir(self._path(name)) else None

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")


def blob_path(digest: str) -> str:
    algo, hexpart = split_digest(digest)
    return f"blobs/{algo}/{hexpart}"


def tree_blob(tree: FileTree, digest: str, size: int, media_type: str) -> Blob:
    name = blob_path(digest)
    actual = tree.size(name)
    if actual is None:
        raise UserError(
            f"blob {digest} is missing from {tree.description}",
            "the image layout is incomplete",
        )
    if actual != size:
        raise UserError(
            f"blob {digest} in {tree.description} is {actual} bytes, the manifest says {size}",
            "the image is corrupt; fetch it again",
        )
    return Blob(digest, size, media_type, lambda: tree.open(name))


def _read_json_blob(tree: FileTree, desc: dict) -> tuple[bytes, dict]:
    blob = tree_blob(tree, desc["digest"], int(desc["size"]), desc.get("mediaType", ""))
    data = blob.read_bytes()
    try:
        return data, json.loads(data)
    except ValueError:
        raise UserError(f"blob {desc['digest']} is not JSON", "the image is corrupt") from None


def _describe(desc: dict) -> str:
    ann = desc.get("annotations") or {}
    name = ann.get(ANNOTATION_REF_NAME) or ann.get(ANNOTATION_CONTAINERD_NAME)
    plat = Platform.from_json(desc.get("platform"))
    return " ".join(x for x in (name, str(plat) if plat else None, desc.get("digest", "")[:19]) if x)


def _tag_matches(desc: dict, tag: str) -> bool:
    ann = desc.get("annotations") or {}
    ref = ann.get(ANNOTATION_REF_NAME)
    full = ann.get(ANNOTATION_CONTAINERD_NAME)
    if tag in (ref, full):
        return True
    # `busybox:latest` matches containerd names like docker.io/library/busybox:latest
    return bool(full) and (full.endswith("/" + tag) or (ref == tag.rpartition(":")[2] and full.endswith(tag)))


def _is_attestation(desc: dict) -> bool:
    plat = desc.get("platform") or {}
    ann = desc.get("annotations") or {}
    return plat.get("os") == "unknown" or "vnd.docker.reference.type" in ann


def _select(descs: list[dict], platform: Platform | None, where: str) -> dict:
    """Pick one descriptor from an index's manifests by platform."""
    candidates = [d for d in descs if not _is_attestation(d)]
    if not candidates:
        raise UserError(f"{where} lists no images", "the image layout is empty")
    with_plat = [d for d in candidates if d.get("platform")]
    if len(candidates) == 1 and not with_plat:
        return candidates[0]
    want = platform or Platform.host()
    matching = [
        d for d in candidates if d.get("platform") and want.matches(Platform.from_json(d["platform"]))
    ]
    if not matching:
        if len(candidates) == 1:
            return candidates[0]
        have = ", ".join(str(Platform.from_json(d.get("platform"))) for d in candidates)
        raise UserError(
            f"no image for platform {want} in {where} (has: {have})",
            "choose one with --arch/--platform",
        )
    if not want.variant:
        # prefer an exact variant-less entry, then the first
        exact = [d for d in matching if not (d["platform"].get("variant"))]
        if exact:
            return exact[0]
    return matching[0]


def resolve_descriptor(tree: FileTree, desc: dict, platform: Platform | None, depth: int = 0) -> Image:
    """Follow (possibly nested) indexes from `desc` down to one image manifest."""
    if depth > 8:
        raise UserError(
            f"image indexes nested too deeply in {tree.description}",
            "the image layout is corrupt",
        )
    data, obj = _read_json_blob(tree, desc)
    mt = obj.get("mediaType") or desc.get("mediaType") or ""
    if mt in INDEX_TYPES or (not mt and "manifests" in obj):
        child = _select(obj.get("manifests") or [], platform, f"image index {desc['digest'][:19]}")
        return resolve_descriptor(tree, child, platform, depth + 1)
    if mt in MANIFEST_TYPES or (not mt and "config" in obj):
        return image_from_manifest(
            data,
            lambda dg, sz, t: tree_blob(tree, dg, sz, t),
            desc.get("mediaType") or None,
        )
    raise UserError(
        f"unsupported manifest media type {mt!r} in {tree.description}",
        "use an OCI or Docker v2 image",
    )


def read_layout(tree: FileTree, tag: str | None = None, platform: Platform | None = None) -> Image:
    """Read one image from an OCI layout (directory or archive)."""
    try:
        return _read_layout(tree, tag, platform)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise UserError(
            f"malformed image metadata in {tree.description} ({type(e).__name__}: {e})",
            "the image is corrupt",
        ) from None


def _read_layout(tree: FileTree, tag: str | None, platform: Platform | None) -> Image:
    if tree.size("index.json") is None:
        raise UserError(
            f"{tree.description} is not an OCI image layout (no index.json)",
            "check the path",
        )
    with tree.open("index.json") as f:
        try:
            index = json.load(f)
        except ValueError:
            raise UserError(
                f"index.json in {tree.description} is not JSON",
                "the image layout is corrupt",
            ) from None
    descs = [d for d in index.get("manifests") or [] if isinstance(d, dict) and "digest" in d]
    if tag:
        chosen = [d for d in descs if _tag_matches(d, tag)]
        if not chosen:
            names = sorted({_describe(d) for d in descs})
            raise UserError(
                f"no image tagged {tag!r} in {tree.description}",
                "available: " + (", ".join(names) if names else "none"),
            )
        descs = chosen
    if len(descs) > 1 and not any(d.get("platform") for d in descs):
        if (
            all(d.get("mediaType") in INDEX_TYPES for d in descs)
            and len({d["digest"] for d in descs}) == 1
            or len({d["digest"] for d in descs}) == 1
        ):
            descs = descs[:1]
        else:
            names = ", ".join(sorted(_describe(d) for d in descs))
            raise UserError(
                f"{tree.description} holds several images: {names}",
                "name one as oci:DIR:TAG",
            )
    if len(descs) == 1 and not descs[0].get("platform"):
        return resolve_descriptor(tree, descs[0], platform)
    return _resolve_top(tree, descs, platform)


def _resolve_top(tree: FileTree, descs: list[dict], platform: Platform | None) -> Image:
    child = _select(descs, platform, f"index.json of {tree.description}")
    return resolve_descriptor(tree, child, platform)


def list_tags(tree: FileTree) -> list[str]:
    with tree.open("index.json") as f:
        index = json.load(f)
    out = []
    for d in index.get("manifests") or []:
        name = (d.get("annotations") or {}).get(ANNOTATION_REF_NAME)
        if name:
            out.append(name)
    return out


# ---------------------------------------------------------------------------------------------------- writing


def index_json(image: Image, ref_name: str | None, full_name: str | None = None) -> bytes:
    desc: dict = {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": len(image.manifest()),
    }
    ann = {}
    if full_name:
        ann[ANNOTATION_CONTAINERD_NAME] = full_name
    if ref_name:
        ann[ANNOTATION_REF_NAME] = ref_name
    if ann:
        desc["annotations"] = ann
    return json.dumps(
        {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [desc]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def _write_file(path: str, chunks) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.writelines(chunks)
    os.replace(tmp, path)


def write_layout(image: Image, dest: str, tag: str | None = "latest") -> None:
    """Write `image` as a fresh OCI layout at `dest` (created; must not exist or be empty). Atomic per call:
    written into a sibling temp dir and renamed, so a failure leaves nothing behind."""
    parent = os.path.dirname(os.path.abspath(dest)) or "."
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise UserError(
            f"{dest} already exists and is not empty",
            "remove it or choose another --output",
        )
    os.makedirs(parent, exist_ok=True)
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix=".oci2bin-", dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "blobs", "sha256"))
        seen = set()
        for blob in (image.config_blob, *image.layers):
            if blob.digest in seen:
                continue
            seen.add(blob.digest)
            _write_file(os.path.join(tmp, blob_path(blob.digest)), blob.chunks())
        manifest = image.manifest()
        _write_file(os.path.join(tmp, blob_path(image.digest)), [manifest])
        _write_file(os.path.join(tmp, "index.json"), [index_json(image, tag)])
        _write_file(os.path.join(tmp, "oci-layout"), [OCI_LAYOUT_BYTES])
        for root, dirs, files in os.walk(tmp):
            os.chmod(root, 0o755)
            for fn in files:
                os.chmod(os.path.join(root, fn), 0o644)
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_stream(src: BinaryIO, dst: BinaryIO) -> int:
    n = 0
    while True:
        data = src.read(CHUNK)
        if not data:
            return n
        dst.write(data)
        n += len(data)
