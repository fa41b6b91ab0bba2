"""Turn an IMAGE argument into an Image.

Accepted forms: `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:TAG]`,
`docker-daemon:REF` / `podman:REF` (local engine), a path (OCI layout dir, docker-save tar, oci-archive tar,
or an oci2bin binary), or a registry reference (pulled by oci2bin.image.remote when available, else exported
from a local docker/podman).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re

from oci2bin.errors import UserError
from oci2bin.image import layout
from oci2bin.image.model import Image, Platform
from oci2bin.record import Record

TRANSPORTS = (
    "oci",
    "oci-archive",
    "docker-archive",
    "docker-daemon",
    "podman",
    "docker",
)


class Source(Record):
    __slots__ = ("transport", "location", "tag")
    _fields = __slots__
    _defaults = {"tag": None}
    transport: str  # one of TRANSPORTS, "path" or "registry"
    location: str
    tag: str | None

    def __str__(self) -> str:
        if self.transport in ("path", "registry"):
            return self.location
        return f"{self.transport}:{self.location}" + (f":{self.tag}" if self.tag else "")


def _split_tag(rest: str) -> tuple[str, str | None]:
    """`PATH[:TAG]`: the tag is what follows the last colon, unless PATH itself exists."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    path, _, tag = rest.rpartition(":")
    if "/" in tag and not os.path.exists(path):
        return rest, None
    # `PATH:name:tag` (docker-archive refs may contain a colon themselves)
    if tag and not os.path.exists(path) and ":" in path:
        p2, _, t2 = path.rpartition(":")
        if os.path.exists(p2):
            return p2, f"{t2}:{tag}"
    return path, tag or None


def parse_source(spec: str) -> Source:
    if not spec:
        raise UserError("empty image argument", "pass an image reference or archive path")
    transport, sep, rest = spec.partition(":")
    if sep and transport in TRANSPORTS and not os.path.exists(spec):
        if transport in ("docker-daemon", "podman", "docker"):
            if transport == "docker" and rest.startswith("//"):
                return Source("registry", rest[2:])
            return Source(transport if transport != "docker" else "docker-daemon", rest)
        path, tag = _split_tag(rest)
        return Source(transport, path, tag)
    if os.path.exists(spec) or spec.startswith(("/", "./", "../")) or spec.endswith(".tar"):
        return Source("path", spec)
    return Source("registry", spec)


def _remote_module():
    try:
        return importlib.import_module("oci2bin.image.remote")
    except ImportError:
        return None


def load_image(src: Source, stack: contextlib.ExitStack, platform: Platform | None = None) -> Image:
    """Open `src` as an Image. Temporary files it needs are registered on `stack` (removed when it closes)."""
    t = src.transport
    if t in ("oci", "oci-archive", "docker-archive", "path") and not os.path.exists(src.location):
        raise UserError(f"{src.location}: no such file or directory", "check the image path")
    if t == "oci":
        if not os.path.isdir(src.location):
            raise UserError(
                f"{src.location} is not a directory",
                "oci: needs an OCI image layout directory",
            )
        image = layout.read_layout(layout.DirTree(src.location), src.tag, platform)
        return image.replace(source_name=_layout_name(src)) if image.source_name is None else image
    from oci2bin.image import archive, engine  # not on the oci: path (tarfile, gzip, subprocess: import time)

    if t == "oci-archive":
        image = archive.read_oci_archive(src.location, src.tag, platform)
        return image.replace(source_name=_layout_name(src))
    if t == "docker-archive":
        return archive.read_docker_archive(src.location, src.tag, platform)
    if t == "path":
        if os.path.isdir(src.location):
            return load_image(Source("oci", src.location), stack, platform)
        tree = archive.TarTree(src.location)
        if archive.is_docker_archive(tree):
            return archive.read_docker_archive(src.location, None, platform)
        if tree.size("index.json") is not None:
            return load_image(Source("oci-archive", src.location), stack, platform)
        raise UserError(
            f"{src.location} is neither a docker-archive nor an oci-archive",
            "pass a `docker save` tar",
        )
    import tempfile

    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="oci2bin-"))
    if t in ("docker-daemon", "podman"):
        eng = "docker" if t == "docker-daemon" else "podman"
        return engine.save(src.location, workdir, eng, platform).replace(source_name=src.location)
    # registry reference: a copy already in a local engine wins (no network), else pull
    if os.environ.get("OCI2BIN_NO_ENGINE") != "1":
        for eng in engine.available_engines():
            if engine.has_image(eng, src.location):
                return engine.save(src.location, workdir, eng, platform).replace(source_name=src.location)
    remote = _remote_module()
    if remote is not None and hasattr(remote, "pull"):
        dest = os.path.join(workdir, "layout")
        plat = str(platform) if platform else None
        registry_error = getattr(remote, "RegistryError", None) or UserError
        try:
            remote.pull(src.location, dest, platform=plat)
        except registry_error as e:
            raise UserError(
                f"cannot pull {src.location}: {e}",
                "check the name, the network and registry credentials",
            ) from None
        image = layout.read_layout(layout.DirTree(dest), None, platform)
        return image.replace(source_name=src.location)
    if engine.available_engines():
        return engine.save(src.location, workdir, None, platform).replace(source_name=src.location)
    raise UserError(
        f"cannot fetch {src.location!r}: no registry client and no docker/podman here",
        "pass docker-archive:PATH, oci:DIR or oci-archive:PATH",
    )


def _layout_name(src: Source) -> str:
    base = os.path.basename(os.path.normpath(src.location))
    base = re.sub(r"(\.oci-archive|\.oci|\.docker)?\.tar$", "", base)
    base = re.sub(r"[-_]oci$", "", base) or base
    return f"{base}:{src.tag or 'latest'}"


@contextlib.contextmanager
def opened(spec: str, platform: Platform | None = None):
    with contextlib.ExitStack() as stack:
        yield load_image(parse_source(spec), stack, platform)
