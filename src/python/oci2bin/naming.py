"""Image names: docker-style tags for RepoTags, output file names (`alpine:latest` -> `alpine_latest`)."""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
)
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_REF_RE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>[a-z0-9]+:[a-f0-9]+))?$")


def split_ref(ref: str) -> tuple[str, str | None, str | None] | None:
    """`name[:tag][@digest]` -> (name, tag, digest); None if not a docker-style reference."""
    m = _REF_RE.match(ref)
    if not m:
        return None
    return m.group("name"), m.group("tag"), m.group("digest")


def repo_tag(ref: str | None) -> str | None:
    """The RepoTags entry for `ref` (`alpine` -> `alpine:latest`), or None if it cannot be one."""
    if not ref:
        return None
    parts = split_ref(ref)
    if not parts:
        return None
    name, tag, digest = parts
    if digest and not tag:
        return None
    return f"{name}:{tag or 'latest'}"


def repo_name(ref: str | None) -> str:
    """`docker.io/library/redis:7` -> `docker.io/library/redis`; used in `NAME@sha256:...`."""
    if not ref:
        return "image"
    parts = split_ref(ref)
    if parts:
        return parts[0]
    return ref.split("@", 1)[0]


def output_name(ref: str | None, fallback: str = "image") -> str:
    """`alpine:latest` -> `alpine_latest`, `ghcr.io/a/b:1.2` -> `b_1.2`, `x@sha256:abcd..` -> `x_abcd..` (12)."""
    if not ref:
        return fallback
    parts = split_ref(ref)
    if parts:
        name, tag, digest = parts
        base = name.rsplit("/", 1)[-1]
        if tag:
            return f"{base}_{tag}"
        if digest:
            return f"{base}_{digest.partition(':')[2][:12]}"
        return f"{base}_latest"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ref.rsplit("/", 1)[-1]).strip("._") or fallback
    return cleaned
