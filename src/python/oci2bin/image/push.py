"""Native push of an image to a registry with the OCI distribution API (no docker).

For every blob (layers, then the config): ``HEAD /v2/<repo>/blobs/<digest>`` and skip it if the registry has it,
else ``POST /v2/<repo>/blobs/uploads/`` and one monolithic ``PUT <location>?digest=<digest>`` streaming the
bytes. Then ``PUT /v2/<repo>/manifests/<tag>`` with the manifest bytes verbatim (so the digest is unchanged).
Auth, retries, redirects and TLS/insecure handling come from :class:`oci2bin.image.remote.RegistryClient`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from oci2bin.errors import UserError
from oci2bin.image.model import Blob, Image
from oci2bin.image.reference import parse
from oci2bin.image.remote import (
    RegistryClient,
    RegistryHTTPError,
    _client_for,
    _error_info,
    _read_small,
)


@dataclass
class PushResult:
    reference: str  # host/repo:tag as pushed
    repository: str  # host/repo
    digest: str  # manifest digest
    uploaded: int  # blobs uploaded
    skipped: int  # blobs the registry already had


def push(image: Image, ref: str, *, insecure_registries: Iterable[str] = ()) -> PushResult:
    r = parse(ref)
    if r.digest and not r.tag:
        tag = r.digest
    else:
        tag = r.tag or "latest"
    manifest = image.manifest()
    if r.digest and r.digest != image.digest:
        raise UserError(
            f"{ref} names digest {r.digest}, but the image's manifest is {image.digest}",
            "push to a tag, or to the image's own digest",
        )
    client = _client_for(r, insecure_registries)
    uploaded = skipped = 0
    try:
        for blob in [*image.layers, image.config_blob]:
            if _push_blob(client, r.repository, blob):
                uploaded += 1
            else:
                skipped += 1
        _put_manifest(client, r.repository, tag, manifest, image.media_type, str(r))
    finally:
        client.close()
    repo = f"{r.registry}/{r.repository}"
    return PushResult(f"{repo}:{tag}", repo, image.digest, uploaded, skipped)


def _scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _fail(resp, what: str, host: str) -> UserError:
    body = _read_small(resp)
    resp.close()
    code, msg = _error_info(body)
    detail = f": {code}: {msg}" if code else ""
    return RegistryHTTPError(f"registry {host} answered HTTP {resp.status} to {what}{detail}", resp.status)


def _push_blob(client: RegistryClient, repository: str, blob: Blob) -> bool:
    """Upload one blob unless the registry has it; True if uploaded."""
    scope = _scope(repository)
    short = blob.digest[:19]
    resp = client.request(
        "HEAD", f"/v2/{repository}/blobs/{blob.digest}", scope=scope, what=f"blob {short} (HEAD)"
    )
    resp.read()
    resp.close()
    if resp.status == 200 and int(resp.headers.get("Content-Length") or blob.size) == blob.size:
        return False
    resp = client.request(
        "POST",
        f"/v2/{repository}/blobs/uploads/",
        scope=scope,
        headers={"Content-Length": "0"},
        body=b"",
        what=f"upload of {short}",
    )
    if resp.status != 202 or not resp.headers.get("Location"):
        raise _fail(resp, f"starting the upload of blob {short}", client.host)
    location = resp.headers["Location"]
    resp.read()
    resp.close()
    path = _location_path(client, location)
    sep = "&" if "?" in path else "?"
    path += f"{sep}digest={urllib.parse.quote(blob.digest, safe=':')}"
    resp = client.request(
        "PUT",
        path,
        scope=scope,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
        body=blob.open,
        what=f"blob {short}",
    )
    if resp.status not in (201, 204):
        raise _fail(resp, f"the upload of blob {short}", client.host)
    resp.read()
    resp.close()
    return True


def _location_path(client: RegistryClient, location: str) -> str:
    """The upload URL's path+query; a Location on another host is refused (the client signs only its host)."""
    u = urllib.parse.urlsplit(location)
    if u.netloc and u.netloc != client.host:
        raise UserError(
            f"registry {client.host} redirected the upload to another host ({u.netloc})",
            "this registry setup is not supported by oci2bin push",
        )
    return u.path + ("?" + u.query if u.query else "")


def _put_manifest(
    client: RegistryClient, repository: str, tag: str, manifest: bytes, media_type: str, display: str
) -> None:
    resp = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{tag}",
        scope=_scope(repository),
        headers={"Content-Type": media_type, "Content-Length": str(len(manifest))},
        body=manifest,
        what=f"manifest {display}",
    )
    if resp.status not in (200, 201, 202):
        raise _fail(resp, f"the manifest PUT for {display}", client.host)
    resp.read()
    resp.close()
