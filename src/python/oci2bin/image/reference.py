"""Image references: ``[registry/]name[:tag][@algo:hex]``, normalised like docker does.

``redis``                    -> ``docker.io/library/redis:latest``
``bitnami/redis:7``          -> ``docker.io/bitnami/redis:7``
``localhost:5000/x@sha256:`` -> registry ``localhost:5000``, repository ``x``, digest only
``ghcr.io/o/r:v1@sha256:..`` -> tag kept for display, the digest is what is pulled

The first path component is a registry host when it contains ``.`` or ``:`` or is ``localhost``
(docker's rule); otherwise the reference is on Docker Hub.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from oci2bin.errors import UserError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DEFAULT_TAG = "latest"

_HUB_ALIASES = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}

# distribution/reference grammar
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})\Z")
_DOMAIN_LABEL = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])\Z")
_MAX_NAME = 255


class InvalidReference(UserError, ValueError):
    """The string is not a valid image reference."""

    def __init__(self, message: str, hint: str = "use [REGISTRY/]NAME[:TAG][@DIGEST]"):
        super().__init__(message, hint)


@dataclass(frozen=True)
class Reference:
    registry: str  # canonical host[:port]; "docker.io" for Docker Hub
    repository: str  # "library/redis"
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """host[:port] to talk the distribution API to."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """Fully-qualified name without tag/digest: ``docker.io/library/redis``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """Short name as docker prints it: ``redis``, ``bitnami/redis``, ``ghcr.io/o/r``."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return self.name

    @property
    def reference(self) -> str:
        """What goes into ``/v2/<name>/manifests/<reference>``: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.x.y.z``, ``::1`` (with or without a port / brackets)."""
    h = split_host_port(host)[0].lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def split_host_port(hostport: str) -> tuple[str, int | None]:
    """``"[::1]:5000"`` -> ``("::1", 5000)``; ``"example.com"`` -> ``("example.com", None)``."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidReference(f"bad registry host {hostport!r}")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidReference(f"bad registry host {hostport!r}")
        port = rest[1:] if rest else None
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, None
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidReference(f"bad port in registry host {hostport!r}")
    return host, int(port)


def _valid_registry(host: str) -> bool:
    try:
        h, _ = split_host_port(host)
    except InvalidReference:
        return False
    if not h:
        return False
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        pass
    return all(_DOMAIN_LABEL.match(label) for label in h.split("."))


def normalize_registry(host: str) -> str:
    """Canonical registry name: Docker Hub aliases -> ``docker.io``; scheme and path stripped."""
    h = host.strip()
    for prefix in ("https://", "http://"):
        h = h.removeprefix(prefix)
    h = h.split("/", 1)[0]
    return DOCKER_HUB if h.lower() in _HUB_ALIASES else h


def parse(ref: str) -> Reference:
    """Parse and normalise an image reference (raises :class:`InvalidReference`)."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise InvalidReference(f"invalid image reference {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid digest {digest!r} in image reference {ref!r}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag {tag!r} in image reference {ref!r}")
    if not rest:
        raise InvalidReference(f"invalid image reference {ref!r}: empty name")

    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _valid_registry(first):
            raise InvalidReference(f"invalid registry {first!r} in image reference {ref!r}")
        registry, repository = normalize_registry(first), remainder
    else:
        registry, repository = DOCKER_HUB, rest
    if registry == DOCKER_HUB and "/" not in repository:
        repository = "library/" + repository

    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise InvalidReference(f"image name too long in {ref!r}")
    for comp in repository.split("/"):
        if not _COMPONENT.match(comp):
            hint = " (repository names must be lowercase)" if comp.lower() != comp else ""
            raise InvalidReference(f"invalid repository name {repository!r} in image reference {ref!r}{hint}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def normalize(ref: str) -> str:
    """``"redis"`` -> ``"docker.io/library/redis:latest"``."""
    return str(parse(ref))
