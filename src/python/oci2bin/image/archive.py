"""Tar archives of images: `docker save` output (old `<id>/layer.tar` and Docker 25+ `blobs/` layouts) and
oci-archives (a tar of an OCI layout). Members are read in place (offset + size), never extracted.
An oci2bin polyglot file is itself both, so it can be read back here too."""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from typing import BinaryIO

from oci2bin.errors import UserError
from oci2bin.image.layout import blob_path, read_layout
from oci2bin.image.model import (
    CHUNK,
    MT_OCI_CONFIG,
    Blob,
    FileSlice,
    Image,
    Platform,
    layer_media_type,
    sniff_compression,
)


class TarTree:
    """Named members of an uncompressed tar file, opened as windows of the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = path
        self._members: dict[str, tuple[int, int]] = {}
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}", "check the path") from None
        if sniff_compression(head) != "none":
            raise UserError(
                f"{path} is a compressed archive",
                "decompress it first (gunzip / zstd -d)",
            )
        links: dict[str, str] = {}
        try:
            with tarfile.open(path, "r:") as tf:
                for m in tf:
                    name = _norm(m.name)
                    if m.isreg():
                        self._members[name] = (m.offset_data, m.size)
                    elif m.issym():
                        links[name] = _norm(posixpath.join(posixpath.dirname(name), m.linkname))
                    elif m.islnk():
                        links[name] = _norm(m.linkname)
        except (tarfile.TarError, OSError) as e:
            raise UserError(
                f"{path} is not a readable tar archive: {e}",
                "pass a docker save / OCI archive",
            ) from None
        for name, target in links.items():
            for _ in range(8):
                if target in self._members:
                    self._members[name] = self._members[target]
                    break
                if target not in links:
                    break
                target = links[target]

    def size(self, name: str) -> int | None:
        ent = self._members.get(_norm(name))
        return ent[1] if ent else None

    def open(self, name: str) -> BinaryIO:
        ent = self._members.get(_norm(name))
        if ent is None:
            raise UserError(f"{name} is missing from {self.path}", "the archive is incomplete")
        return FileSlice(self.path, ent[0], ent[1])  # type: ignore[return-value]

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def names(self) -> list[str]:
        return list(self._members)


def _norm(name: str) -> str:
    name = posixpath.normpath(name.lstrip("/"))
    while name.startswith("./"):
        name = name[2:]
    return name


def read_oci_archive(path: str, tag: str | None = None, platform: Platform | None = None) -> Image:
    tree = TarTree(path)
    if tree.size("index.json") is None:
        raise UserError(
            f"{path} is not an oci-archive (no index.json)",
            "use docker-archive: for `docker save` output",
        )
    return read_layout(tree, tag, platform)


def is_docker_archive(tree: TarTree) -> bool:
    return tree.size("manifest.json") is not None


def _normalize_tag(tag: str) -> set[str]:
    """Names under which docker/podman may have recorded `tag` in RepoTags."""
    out = {tag}
    name, _, t = tag.rpartition(":")
    if not name or "/" in t:
        tag = tag + ":latest"
        out.add(tag)
    first = tag.split("/", 1)[0]
    if "/" not in tag:
        out |= {"docker.io/library/" + tag, "localhost/" + tag}
    elif not ("." in first or ":" in first or first == "localhost"):
        out.add("docker.io/" + tag)
    return out


def read_docker_archive(path: str, tag: str | None = None, platform: Platform | None = None) -> Image:
    try:
        return _read_docker_archive(path, tag, platform)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise UserError(
            f"malformed image metadata in {path} ({type(e).__name__}: {e})",
            "the archive is corrupt",
        ) from None


def _read_docker_archive(path: str, tag: str | None, platform: Platform | None) -> Image:
    tree = TarTree(path)
    if not is_docker_archive(tree):
        if tree.size("index.json") is not None:
            return read_layout(tree, tag, platform)
        raise UserError(
            f"{path} is not a docker-archive (no manifest.json)",
            "pass the output of `docker save`",
        )
    try:
        manifest = json.loads(tree.read("manifest.json"))
        assert isinstance(manifest, list)
    except (ValueError, AssertionError):
        raise UserError(f"manifest.json in {path} is not a JSON list", "the archive is corrupt") from None
    if not manifest:
        raise UserError(f"{path} contains no images", "the archive is empty")
    if tag:
        wanted = _normalize_tag(tag)
        entries = [e for e in manifest if wanted & set(e.get("RepoTags") or [])]
        if not entries:
            have = sorted(t for e in manifest for t in (e.get("RepoTags") or []))
            raise UserError(
                f"no image tagged {tag!r} in {path}",
                "available: " + (", ".join(have) or "none"),
            )
        entry = entries[0]
    elif len(manifest) == 1:
        entry = manifest[0]
    else:
        have = sorted(t for e in manifest for t in (e.get("RepoTags") or []))
        raise UserError(
            f"{path} holds {len(manifest)} images: {', '.join(have)}",
            "name one as docker-archive:PATH:TAG",
        )
    image = docker_entry_image(tree, entry)
    tags = entry.get("RepoTags") or []
    name = tag if tag else (tags[0] if tags else None)
    return image.replace(source_name=name) if name else image


def docker_entry_image(tree: TarTree, entry: dict) -> Image:
    cfg_name = entry.get("Config")
    if not cfg_name or tree.size(cfg_name) is None:
        raise UserError(f"config {cfg_name!r} missing from {tree.path}", "the archive is incomplete")
    config = tree.read(cfg_name)
    cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    if cfg_name.startswith("blobs/sha256/") and cfg_name != blob_path(cfg_digest):
        raise UserError(
            f"config {cfg_name} in {tree.path} does not match its digest",
            "the archive is corrupt",
        )
    try:
        diff_ids = json.loads(config).get("rootfs", {}).get("diff_ids") or []
    except (ValueError, AttributeError):
        raise UserError(
            f"config {cfg_name} in {tree.path} is not a JSON object",
            "the archive is corrupt",
        ) from None
    layer_names = entry.get("Layers") or []
    if len(diff_ids) != len(layer_names):
        raise UserError(
            f"{tree.path}: {len(layer_names)} layers but {len(diff_ids)} diff_ids in the config",
            "the archive is corrupt",
        )
    layers = []
    for name, diff_id in zip(layer_names, diff_ids):
        size = tree.size(name)
        if size is None:
            raise UserError(f"layer {name} missing from {tree.path}", "the archive is incomplete")
        with tree.open(name) as f:
            kind = sniff_compression(f.read(4))
        if name.startswith("blobs/sha256/") and len(name) == 13 + 64:
            digest = "sha256:" + name[13:]
        elif kind == "none":
            digest = diff_id  # an uncompressed layer's digest is its diff_id (verified while reading)
        else:
            digest = _hash_member(tree, name)
        layers.append(Blob(digest, size, layer_media_type(kind), lambda n=name: tree.open(n)))
    image = Image(config_bytes=config, layers=tuple(layers), config_media_type=MT_OCI_CONFIG)
    return _reuse_oci_manifest(tree, image)


def _hash_member(tree: TarTree, name: str) -> str:
    h = hashlib.sha256()
    with tree.open(name) as f:
        while data := f.read(CHUNK):
            h.update(data)
    return "sha256:" + h.hexdigest()


def _reuse_oci_manifest(tree: TarTree, image: Image) -> Image:
    """Docker 25+ archives also carry the OCI manifest: keep it (and so the image digest) when it matches."""
    if tree.size("index.json") is None:
        return image
    try:
        index = json.loads(tree.read("index.json"))
        for d in index.get("manifests") or []:
            name = blob_path(d["digest"])
            if tree.size(name) is None or tree.size(name) > 4 << 20:
                continue
            data = tree.read(name)
            if "sha256:" + hashlib.sha256(data).hexdigest() != d["digest"]:
                continue
            m = json.loads(data)
            if m.get("config", {}).get("digest") != image.config_digest:
                continue
            if [x.get("digest") for x in m.get("layers") or []] != [b.digest for b in image.layers]:
                continue
            layers = tuple(
                Blob(b.digest, b.size, x.get("mediaType", b.media_type), b.opener)
                for b, x in zip(image.layers, m["layers"])
            )
            return Image(
                config_bytes=image.config_bytes,
                layers=layers,
                manifest_bytes=data,
                manifest_media_type=m.get("mediaType") or d.get("mediaType"),
                config_media_type=m["config"].get("mediaType", MT_OCI_CONFIG),
            )
    except (ValueError, KeyError, AttributeError, UserError):
        return image
    return image
