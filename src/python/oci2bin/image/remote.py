"""Native registry client (OCI distribution API): pull an image into an OCI image layout.

    pull("redis", "/tmp/x")            # -> PullResult(digest="sha256:..", media_type=.., platform="linux/amd64")
    resolve("redis:7")                 # -> "sha256:.." (the index digest for a multi-platform image)

No docker / skopeo / crane needed: stdlib HTTP (``http.client``), credentials from docker/podman auth files
and credential helpers (:mod:`.auth`), blobs shared through the content-addressed cache (:mod:`.blobcache`).

* HTTPS always; plain HTTP (and unverified TLS) only for loopback registries and ``insecure_registries``
  (plus ``$OCI2BIN_INSECURE_REGISTRIES``, comma- or space-separated host[:port] list).
* Proxies from ``$HTTPS_PROXY`` / ``$HTTP_PROXY`` / ``$NO_PROXY`` (never for loopback); CAs from the system
  store or ``$SSL_CERT_FILE``.
* An image index / manifest list is resolved to one platform (default: the host's, linux/amd64 or
  linux/arm64); the layout gets that single-platform manifest, byte for byte, with its media type (docker
  schema 2 manifests stay docker schema 2).
* Every manifest and blob is checked against its digest and size while streaming; nothing unverified ever
  lands in the cache or the layout, and a failed pull leaves no files behind.
* 429 / 5xx / dropped connections are retried with exponential backoff (``Retry-After`` honoured); an
  interrupted blob download resumes with a range request when the registry supports it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import email.utils
import hashlib
import http.client
import json
import os
import platform as _platform
import random
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from oci2bin.errors import UserError

from . import auth as _auth
from .blobcache import BlobCache, BlobVerificationError, split_digest
from .reference import (
    Reference,
    is_loopback_host,
    normalize_registry,
    parse,
    split_host_port,
)

# --------------------------------------------------------------------------------------------- constants

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"
MT_DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
ACCEPT = f"{MT_OCI_INDEX}, {MT_DOCKER_LIST}, {MT_OCI_MANIFEST}, {MT_DOCKER_MANIFEST}"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

USER_AGENT = "oci2bin"
MAX_MANIFEST_SIZE = 4 << 20
CHUNK = 1 << 20
MAX_WORKERS = 4
MAX_ATTEMPTS = 6  # per request, for 429 / 5xx / dropped connections
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, with jitter
BACKOFF_MAX = 10.0
RETRY_AFTER_MAX = 60.0
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0
MAX_REDIRECTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)

# --------------------------------------------------------------------------------------------- errors


class RegistryError(UserError):
    """Base class; ``str(e)`` is a one-line, user-presentable message (``hint``: what to do)."""

    default_hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, self.default_hint if hint is None else hint)


class ImageNotFound(RegistryError):
    """The repository does not exist (NAME_UNKNOWN / 404 on the repository)."""

    default_hint = "check the image name"


class ManifestNotFound(RegistryError):
    """The tag or digest does not exist in an existing repository (MANIFEST_UNKNOWN)."""

    default_hint = "check the tag or digest"


TagNotFound = ManifestNotFound


class BlobNotFound(RegistryError):
    """A blob named by the manifest is missing from the registry (BLOB_UNKNOWN)."""


class AuthRequired(RegistryError):
    """The registry wants credentials and none were found."""

    default_hint = "log in with `docker login` / `podman login`, or set REGISTRY_AUTH_FILE"


class AuthDenied(RegistryError):
    """The registry rejected the credentials, or they do not grant pull access."""

    default_hint = "check the credentials in your docker/podman auth file or credential helper"


class DigestMismatch(RegistryError):
    """Content does not match its digest or size."""

    default_hint = "the registry or a proxy served corrupt data; retry or report it to the registry operator"


class RegistryUnreachable(RegistryError):
    """Connection refused, DNS failure, timeout, TLS failure, or retries exhausted on dropped connections."""

    default_hint = "check the registry address and your network"


class InsecureRegistryError(RegistryUnreachable):
    """The registry only speaks plain HTTP but is neither loopback nor listed as insecure."""

    default_hint = "pass --insecure-registry HOST[:PORT] if you trust it"


class PlatformNotFound(RegistryError):
    """The image index has no manifest for the requested platform."""

    default_hint = "choose one of the available platforms with --platform"


class UnsupportedManifest(RegistryError):
    """Schema 1 manifests and unknown media types."""


class RegistryHTTPError(RegistryError):
    """Any other unexpected HTTP answer."""

    def __init__(self, message: str, status: int | None = None, code: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code


class LayoutError(RegistryError):
    """The destination cannot take the layout (exists and is neither empty nor an OCI layout)."""


# --------------------------------------------------------------------------------------------- platforms

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armv8": "arm64",
    "armv8l": "arm",
    "armv7l": "arm",
    "armv7": "arm",
    "armhf": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "x86": "386",
    "ppc64el": "ppc64le",
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return s + "/" + self.variant if self.variant else s


def _default_variant(arch: str) -> str:
    return {"arm64": "v8", "arm": "v7"}.get(arch, "")


class InvalidPlatform(UserError, ValueError):
    """A platform string that is not ``os/arch[/variant]``."""


def parse_platform(s: str) -> Platform:
    """``linux/arm64/v8``, ``linux/amd64``, ``arm64`` (os defaults to linux), ``linux/aarch64``."""
    parts = [p for p in s.strip().lower().split("/")]
    if not parts or not all(parts) or len(parts) > 3:
        raise InvalidPlatform(f"invalid platform {s!r}", "use OS/ARCH[/VARIANT], e.g. linux/arm64/v8")
    if len(parts) == 1:
        parts = ["linux", parts[0]]
    os_, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else ""
    machine = arch
    arch = _ARCH_ALIASES.get(arch, arch)
    if not variant and machine in ("armv7l", "armv7", "armhf"):
        variant = "v7"
    elif not variant and machine == "armv6l":
        variant = "v6"
    return Platform(os_, arch, variant)


def host_platform() -> Platform:
    p = parse_platform(_platform.machine() or "amd64")
    if p.architecture == "arm64":
        return Platform("linux", "arm64", "v8")
    return Platform("linux", p.architecture, p.variant)


def _desc_platform(desc: dict) -> Platform | None:
    p = desc.get("platform")
    if not isinstance(p, dict) or not p.get("os") or not p.get("architecture"):
        return None
    return Platform(str(p["os"]), str(p["architecture"]), str(p.get("variant") or ""))


def select_platform(manifests: list[dict], want: Platform) -> dict | None:
    """Pick the descriptor for ``want`` from an index's ``manifests`` (containerd's matching rules, simplified).

    A missing variant matches the architecture's default (arm64 -> v8, arm -> v7); with no variant requested, the
    default variant is preferred, then no variant, then any. Attestation entries (os ``unknown``) never match.
    """
    want_variant = want.variant or _default_variant(want.architecture)
    best, best_rank = None, 99
    for d in manifests:
        if d.get("mediaType") not in INDEX_TYPES + MANIFEST_TYPES + (None,):
            continue
        p = _desc_platform(d)
        if p is None or p.os != want.os or p.architecture != want.architecture:
            continue
        have_variant = p.variant or _default_variant(p.architecture)
        if have_variant == want_variant:
            rank = 0 if p.variant else 1
        elif not want.variant:
            rank = 2
        else:
            continue
        if rank < best_rank:
            best, best_rank = d, rank
    return best


# --------------------------------------------------------------------------------------------- progress


class _Progress:
    """Bytes done/total per pull: a throttled one-line display on a TTY, silent otherwise, or a callback."""

    INTERVAL = 0.1

    def __init__(self, label: str, progress, stream=None):
        self.label = label
        self.done = 0
        self.total = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._cb: Callable[[int, int], None] | None = None
        self._stream = None
        self._shown = False
        stream = stream or sys.stderr
        if callable(progress):
            self._cb = progress
        elif progress is True or (progress is None and _isatty(stream)):
            self._stream = stream

    def add_total(self, n: int) -> None:
        with self._lock:
            self.total += n
        self._update(force=True)

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
        self._update()

    def _update(self, force: bool = False) -> None:
        if self._cb is not None:
            self._cb(self.done, self.total)
        if self._stream is None:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.INTERVAL:
                return
            self._last = now
            done, total = self.done, self.total
        pct = f" {100 * done // total:3d}%" if total else ""
        line = f"\rPulling {self.label}: {_human(done)} / {_human(total)}{pct}"
        try:
            self._stream.write(line + "\x1b[K")
            self._stream.flush()
            self._shown = True
        except (OSError, ValueError):
            self._stream = None

    def close(self, ok: bool) -> None:
        if self._stream is not None and self._shown:
            self._last = 0.0
            if ok:
                self._update(force=True)
            try:
                self._stream.write("\n" if ok else "\r\x1b[K")
                self._stream.flush()
            except (OSError, ValueError):
                pass


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# --------------------------------------------------------------------------------------------- HTTP


def _error_info(body: bytes) -> tuple[str, str]:
    """(code, message) of the first entry of a distribution error body."""
    try:
        errs = json.loads(body).get("errors") or []
        e = errs[0]
        return str(e.get("code", "")), str(e.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _backoff(attempt: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_MAX)
    d = min(BACKOFF_BASE * (2**attempt), BACKOFF_MAX)
    return d * (0.5 + random.random() / 2)


_DROPPED = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    http.client.BadStatusLine,
    socket.timeout,
)


class _Cancelled(Exception):
    pass


Body = bytes | Callable[[], BinaryIO] | None


@contextlib.contextmanager
def _open_body(body: Body):
    """The request body to hand to http.client: bytes as they are, a callable opened (and closed after)."""
    if body is None or isinstance(body, bytes):
        yield body
        return
    with body() as f:
        yield f


class _ConnectError(Exception):
    """Could not connect (refused, DNS, unreachable, connect timeout): not retried."""

    def __init__(self, cause: OSError):
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class _Response:
    status: int
    headers: http.client.HTTPMessage
    resp: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    url: str
    pool: _ConnPool | None = None

    def read(self, n: int = -1) -> bytes:
        return self.resp.read(n) if n >= 0 else self.resp.read()

    def close(self) -> None:
        """Hand the connection back for reuse if the body was read to the end, else close it."""
        reusable = self.resp.isclosed() and not self.resp.will_close
        try:
            self.resp.close()
        finally:
            if reusable and self.pool is not None:
                self.pool.put(self.url, self.conn)
            else:
                self.conn.close()


class _ConnPool:
    """Keep-alive: at most one idle connection per (thread, scheme://host); all closed by ``close()``."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []
        self._closed = False

    @staticmethod
    def _key(url: str) -> str:
        u = urllib.parse.urlsplit(url)
        return f"{u.scheme}://{u.netloc}"

    def get(self, url: str) -> http.client.HTTPConnection | None:
        idle = getattr(self._local, "idle", None)
        return idle.pop(self._key(url), None) if idle else None

    def put(self, url: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._closed:
                conn.close()
                return
            if conn not in self._all:
                self._all.append(conn)
        if not hasattr(self._local, "idle"):
            self._local.idle = {}
        old = self._local.idle.pop(self._key(url), None)
        if old is not None and old is not conn:
            old.close()
        self._local.idle[self._key(url)] = conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for c in conns:
            c.close()


class RegistryClient:
    """Talks to one registry (host[:port]); thread-safe, keep-alive connections per thread."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: _auth.Credentials | None | Callable[[], _auth.Credentials | None] = None,
        auth_registry: str | None = None,
    ):
        self.host = host
        self.allow_http = insecure or is_loopback_host(host)
        self._scheme: str | None = None
        self._scheme_lock = threading.Lock()
        if self.allow_http:
            self._ssl = ssl._create_unverified_context()
        else:
            self._ssl = ssl.create_default_context()
        if credentials is None:
            reg = auth_registry or host

            def credentials():
                return _auth.find_credentials(reg)

        self.auth = _auth.Authenticator(host, credentials, ssl_context=self._ssl)
        self.cancel = threading.Event()
        self.pool = _ConnPool()

    def close(self) -> None:
        """Close idle keep-alive connections."""
        self.pool.close()

    def __enter__(self) -> RegistryClient:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- connections ------------------------------------------------------------------------------------

    def _connection(self, scheme: str, hostport: str) -> http.client.HTTPConnection:
        """A new connection; through $HTTPS_PROXY (CONNECT tunnel) / $HTTP_PROXY when set."""
        proxy = _proxy_for(scheme, hostport)
        if scheme == "https":
            if proxy:
                ph, pp = split_host_port(proxy[0])
                c = http.client.HTTPSConnection(ph, pp, timeout=CONNECT_TIMEOUT, context=self._ssl)
                tunnel_headers = {"Proxy-Authorization": proxy[1]} if proxy[1] else None
                c.set_tunnel(hostport, headers=tunnel_headers)
                return c
            return http.client.HTTPSConnection(hostport, timeout=CONNECT_TIMEOUT, context=self._ssl)
        if proxy:
            ph, pp = split_host_port(proxy[0])
            c = http.client.HTTPConnection(ph, pp, timeout=CONNECT_TIMEOUT)
            c._oci2bin_proxied = proxy  # type: ignore[attr-defined]
            return c
        return http.client.HTTPConnection(hostport, timeout=CONNECT_TIMEOUT)

    @staticmethod
    def _target(conn, url: str, headers: dict[str, str]) -> str:
        """Request target: the path, or the absolute URL through a plain HTTP proxy."""
        proxied = getattr(conn, "_oci2bin_proxied", None)
        if proxied:
            if proxied[1]:
                headers["Proxy-Authorization"] = proxied[1]
            return url
        u = urllib.parse.urlsplit(url)
        return u.path + ("?" + u.query if u.query else "")

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: Body = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        u = urllib.parse.urlsplit(url)
        conn = self.pool.get(url)
        if conn is not None:
            # an idle keep-alive connection the server may have closed meanwhile: one try, then a fresh one
            target = self._target(conn, url, headers)
            try:
                with _open_body(body) as data:
                    conn.request(method, target, body=data, headers=headers)
                return conn, conn.getresponse()
            except (*_DROPPED, OSError):
                conn.close()
        conn = self._connection(u.scheme, u.netloc)
        target = self._target(conn, url, headers)
        try:
            conn.connect()
        except (ssl.SSLError, ssl.CertificateError):
            conn.close()
            raise
        except OSError as e:
            conn.close()
            raise _ConnectError(e) from e
        try:
            if conn.sock is not None:
                conn.sock.settimeout(READ_TIMEOUT)
            with _open_body(body) as data:
                conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return conn, resp

    def _base(self) -> str:
        """Scheme://host, deciding https vs http on first use."""
        if self._scheme is not None:
            return f"{self._scheme}://{self.host}"
        with self._scheme_lock:
            if self._scheme is None:
                self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}"

    def _probe_scheme(self) -> str:
        """HTTPS unless the host may use plain HTTP and does not answer TLS (docker's fallback)."""
        if not self.allow_http:
            return "https"
        try:
            conn, resp = self._send("GET", f"https://{self.host}/v2/", {"User-Agent": USER_AGENT})
            resp.read()
            conn.close()
            return "https"
        except (
            ssl.SSLError,
            ssl.CertificateError,
            http.client.HTTPException,
            ConnectionResetError,
        ):
            return "http"
        except _ConnectError as e:
            raise RegistryUnreachable(f"registry {self.host} is unreachable: {_reason(e.cause)}") from None
        except OSError:
            return "http"

    def _tls_error(self, netloc: str, e: BaseException) -> RegistryError:
        if "WRONG_VERSION_NUMBER" in str(e) or "record layer failure" in str(e):
            return InsecureRegistryError(
                f"registry {netloc} does not speak HTTPS (plain HTTP is only used for "
                "loopback registries and insecure registries)",
                f"pass --insecure-registry {netloc} if you trust it",
            )
        return RegistryUnreachable(f"TLS error talking to {netloc}: {_reason(e)}")

    # -- requests ---------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        what: str = "",
        body: Body = None,
    ) -> _Response:
        """Send with auth, redirects and retries. Returns any final non-retryable response (caller closes it).

        ``body``: bytes, or a callable opening a fresh stream of the bytes (called again for every retry);
        the caller sets Content-Length for a stream.
        """
        url = self._base() + path
        attempt = 0
        auth_rounds = 0
        redirects = 0
        while True:
            if self.cancel.is_set():
                raise _Cancelled()
            h = {"User-Agent": USER_AGENT, **(headers or {})}
            same_host = urllib.parse.urlsplit(url).netloc == self.host
            sent_auth = self.auth.header(scope) if same_host else None
            if sent_auth:
                h["Authorization"] = sent_auth
            try:
                conn, resp = self._send(method, url, h, body)
            except _ConnectError as e:
                raise RegistryUnreachable(
                    f"registry {urllib.parse.urlsplit(url).netloc} is unreachable: {_reason(e.cause)}"
                ) from None
            except (ssl.SSLError, ssl.CertificateError) as e:
                raise self._tls_error(urllib.parse.urlsplit(url).netloc, e) from None
            except _DROPPED + (OSError,) as e:
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    raise RegistryUnreachable(
                        f"registry {urllib.parse.urlsplit(url).netloc} keeps dropping the connection "
                        f"({what or path}): {_reason(e)}"
                    ) from None
                self._sleep(_backoff(attempt - 1))
                continue
            r = _Response(resp.status, resp.headers, resp, conn, url, self.pool)
            status = resp.status

            if status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                loc = urllib.parse.urljoin(url, resp.headers["Location"])
                r.read()
                r.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryHTTPError(f"too many redirects fetching {what or path}", status)
                url = loc
                continue

            if status == 401 and same_host:
                body = _read_small(r)
                r.close()
                if auth_rounds < 3:
                    try:
                        retry = self.auth.on_challenge(
                            resp.headers.get("WWW-Authenticate"), scope, sent=sent_auth
                        )
                    except _auth.TokenError as e:
                        if e.status in (401, 403):
                            raise self._auth_error(what or path, token_server=True) from None
                        raise RegistryUnreachable(str(e)) from None
                    if retry:
                        auth_rounds += 1
                        continue
                raise self._auth_error(what or path, body=body)

            if status == 403 and same_host:
                body = _read_small(r)
                r.close()
                raise self._auth_error(what or path, body=body, forbidden=True)

            if status in RETRY_STATUSES:
                delay = _retry_after(resp.headers.get("Retry-After"))
                _read_small(r)
                r.close()
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    reason = "too many requests (HTTP 429)" if status == 429 else f"HTTP {status}"
                    raise RegistryHTTPError(
                        f"registry {self.host}: {reason} for {what or path}, giving up after {attempt} attempts",
                        status,
                    )
                self._sleep(_backoff(attempt - 1, delay))
                continue
            return r

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise _Cancelled()

    def _auth_error(
        self, what: str, *, body: bytes = b"", token_server=False, forbidden=False
    ) -> RegistryError:
        creds = self.auth.credentials
        code, msg = _error_info(body)
        detail = f" ({code}: {msg})" if code and msg else ""
        if creds is None:
            return AuthRequired(
                f"authentication required for {what} on registry {self.host}{detail}",
                "log in with `docker login` / `podman login` (or set REGISTRY_AUTH_FILE), "
                "and check that the repository exists",
            )
        src = f" from {creds.source}" if creds.source else ""
        if token_server:
            return AuthDenied(f"registry {self.host} rejected the credentials{src} for {what}")
        kind = "access denied" if forbidden else "credentials rejected or insufficient"
        return AuthDenied(f"{kind} for {what} on registry {self.host} (credentials{src}){detail}")

    # -- manifests --------------------------------------------------------------------------------------

    def get_manifest(
        self,
        repository: str,
        reference: str,
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        display: str = "",
    ) -> tuple[bytes, str, str]:
        """GET a manifest -> (bytes, media type, digest), verified against ``expected_digest`` / size."""
        what = display or f"{repository}:{reference}"
        r = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": ACCEPT},
            what=what,
        )
        try:
            if r.status != 200:
                raise self._not_found_error(r, repository, reference, what)
            clen = r.headers.get("Content-Length")
            if clen and clen.isdigit() and int(clen) > MAX_MANIFEST_SIZE:
                raise UnsupportedManifest(f"manifest for {what} is too large ({clen} bytes)")
            try:
                body = r.read(MAX_MANIFEST_SIZE + 1)
            except _DROPPED as e:
                raise RegistryUnreachable(
                    f"connection dropped while reading manifest {what}: {_reason(e)}"
                ) from None
        finally:
            r.close()
        if len(body) > MAX_MANIFEST_SIZE:
            raise UnsupportedManifest(f"manifest for {what} is too large")
        want = expected_digest or (reference if ":" in reference else None)
        algo = want.split(":", 1)[0] if want else "sha256"
        if algo not in ("sha256", "sha384", "sha512"):
            raise DigestMismatch(f"unsupported digest algorithm {algo!r} for {what}")
        digest = f"{algo}:{hashlib.new(algo, body).hexdigest()}"
        if want and digest != want:
            raise DigestMismatch(f"manifest digest mismatch for {what}: expected {want}, got {digest}")
        if expected_size is not None and len(body) != expected_size:
            raise DigestMismatch(
                f"manifest size mismatch for {what}: expected {expected_size} bytes, got {len(body)}"
            )
        header_digest = r.headers.get("Docker-Content-Digest")
        if header_digest and header_digest.split(":", 1)[0] == algo and header_digest != digest:
            raise DigestMismatch(
                f"manifest digest mismatch for {what}: registry says {header_digest}, content is {digest}"
            )
        mt = _media_type(body, r.headers.get("Content-Type", ""))
        return body, mt, digest

    def head_manifest(self, repository: str, reference: str, *, what: str = "") -> str | None:
        """Digest from a HEAD (``Docker-Content-Digest``), or None if the registry does not say."""
        r = self.request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": ACCEPT},
            what=what or f"{repository}:{reference}",
        )
        try:
            r.read()
            if r.status == 200:
                return r.headers.get("Docker-Content-Digest") or None
            return None
        finally:
            r.close()

    def _repository_missing(self, repository: str) -> bool:
        """True only when the registry positively says the repository is unknown."""
        try:
            r = self.request(
                "GET",
                f"/v2/{repository}/tags/list?n=1",
                scope=f"repository:{repository}:pull",
                what=f"tags of {repository}",
            )
        except RegistryError:
            return False
        try:
            if r.status != 404:
                return False
            code, _ = _error_info(_read_small(r))
            return code == "NAME_UNKNOWN"
        finally:
            r.close()

    def _not_found_error(self, r: _Response, repository: str, reference: str, what: str) -> RegistryError:
        body = _read_small(r)
        code, msg = _error_info(body)
        if r.status == 404:
            if code == "NAME_UNKNOWN":
                return ImageNotFound(f"image {self.host}/{repository} not found (repository does not exist)")
            if code in ("MANIFEST_UNKNOWN", "NOT_FOUND", ""):
                # distribution answers MANIFEST_UNKNOWN for unknown repositories too: ask the tag list
                if self._repository_missing(repository):
                    return ImageNotFound(
                        f"image {self.host}/{repository} not found (repository does not exist)"
                    )
                if ":" in reference:
                    return ManifestNotFound(f"manifest {reference} not found in {self.host}/{repository}")
                return ManifestNotFound(f"tag {reference!r} not found in {self.host}/{repository}")
        if r.status == 400 and code in (
            "MANIFEST_INVALID",
            "TAG_INVALID",
            "NAME_INVALID",
        ):
            return RegistryHTTPError(f"registry {self.host} rejected {what}: {code}: {msg}", r.status, code)
        detail = f" {code}: {msg}" if code else ""
        return RegistryHTTPError(f"registry {self.host}: HTTP {r.status} for {what}{detail}", r.status, code)

    # -- blobs ------------------------------------------------------------------------------------------

    def fetch_blob(
        self,
        repository: str,
        desc: dict,
        cache: BlobCache,
        on_bytes: Callable[[int], None] = lambda n: None,
    ) -> bool:
        """Download one blob into the cache unless already there; True if it was downloaded.

        Streams into a cache temp file while hashing; the blob is published only when its digest and size
        match. A dropped connection resumes with a range request (or restarts if the registry ignores it).
        """
        digest, size = desc["digest"], desc.get("size")
        with cache.lock_for(digest):
            if cache.has(digest, size):
                return False
            try:
                with cache.writer(digest, size) as w:
                    self._download(repository, digest, size, w, on_bytes)
                    w.commit()
            except BlobVerificationError as e:
                raise DigestMismatch(f"{e} (from {self.host}/{repository})") from None
            return True

    def _download(self, repository, digest, size, w, on_bytes) -> None:
        attempt = 0

        def again(reason: str) -> None:
            nonlocal attempt
            attempt += 1
            if attempt >= MAX_ATTEMPTS:
                raise RegistryUnreachable(
                    f"registry {self.host} keeps failing to send blob {digest}: {reason}"
                )
            self._sleep(_backoff(attempt - 1))

        while True:
            headers = {"Range": f"bytes={w.written}-"} if w.written else {}
            r = self.request(
                "GET",
                f"/v2/{repository}/blobs/{digest}",
                scope=f"repository:{repository}:pull",
                headers=headers,
                what=f"blob {digest}",
            )
            try:
                if r.status == 206 and w.written and _range_start(r.headers) == w.written:
                    pass  # resuming where the dropped connection stopped
                elif r.status == 200:
                    if w.written:  # range not supported: start over
                        on_bytes(-w.written)
                        w.reset()
                elif r.status == 206:  # a range we did not ask for
                    on_bytes(-w.written)
                    w.reset()
                    again("unexpected partial response")
                    continue
                elif r.status == 404:
                    code, _ = _error_info(_read_small(r))
                    raise BlobNotFound(
                        f"blob {digest} of {self.host}/{repository} not found " f"({code or 'HTTP 404'})"
                    )
                else:
                    code, msg = _error_info(_read_small(r))
                    raise RegistryHTTPError(
                        f"registry {self.host}: HTTP {r.status} fetching blob {digest}"
                        + (f" ({code}: {msg})" if code else ""),
                        r.status,
                        code,
                    )
                try:
                    while chunk := r.resp.read(CHUNK):
                        if self.cancel.is_set():
                            raise _Cancelled()
                        w.write(chunk)
                        on_bytes(len(chunk))
                except _DROPPED + (OSError,) as e:
                    again(f"connection dropped ({_reason(e)})")
                    continue
                if size is not None and w.written < size:
                    # a short body without an error: resume like after a dropped connection
                    again(f"short body ({w.written} of {size} bytes)")
                    continue
                return
            finally:
                r.close()


def _range_start(headers) -> int | None:
    cr = headers.get("Content-Range", "")
    # "bytes 100-199/200"
    try:
        return int(cr.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _read_small(r: _Response) -> bytes:
    try:
        return r.read(64 * 1024)
    except (OSError, http.client.HTTPException):
        return b""


def _reason(e: BaseException) -> str:
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host ({e.strerror or e})"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    s = str(e) or type(e).__name__
    return s.splitlines()[0]


def _media_type(body: bytes, content_type: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        raise UnsupportedManifest("registry returned a manifest that is not JSON") from None
    if not isinstance(doc, dict):
        raise UnsupportedManifest("registry returned a manifest that is not a JSON object")
    mt = doc.get("mediaType") or content_type.split(";")[0].strip()
    if mt in (MT_DOCKER_V1, MT_DOCKER_V1_SIGNED) or doc.get("schemaVersion") == 1:
        raise UnsupportedManifest("docker schema 1 manifests are not supported (re-push the image)")
    if mt not in INDEX_TYPES + MANIFEST_TYPES:
        # no or odd mediaType: decide by shape (OCI allows omitting mediaType)
        mt = MT_OCI_INDEX if "manifests" in doc else MT_OCI_MANIFEST if "layers" in doc else mt
    if mt not in INDEX_TYPES + MANIFEST_TYPES:
        raise UnsupportedManifest(f"unsupported manifest media type {mt!r}")
    return mt


def _proxy_for(scheme: str, hostport: str) -> tuple[str, str | None] | None:
    """(host:port, Proxy-Authorization or None) of the environment's proxy for a URL; never for loopback."""
    if is_loopback_host(hostport):
        return None
    proxies = urllib.request.getproxies_environment()
    p = proxies.get(scheme)
    if not p:
        return None
    host = split_host_port(hostport)[0]
    if urllib.request.proxy_bypass_environment(host, proxies):
        return None
    u = urllib.parse.urlsplit(p if "://" in p else "http://" + p)
    netloc = u.netloc.rsplit("@", 1)[-1]
    if not netloc:
        return None
    if ":" not in netloc.rsplit("]", 1)[-1]:
        netloc += ":80"
    auth = None
    if u.username is not None:
        raw = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
        auth = "Basic " + base64.b64encode(raw.encode()).decode()
    return netloc, auth


# --------------------------------------------------------------------------------------------- API


@dataclass
class PullResult:
    reference: str  # normalised reference that was pulled (docker.io/library/redis:latest)
    digest: str  # digest of the single-platform manifest written to the layout
    media_type: str  # its media type (OCI or docker schema 2)
    platform: str  # "linux/amd64", "linux/arm64/v8"
    layout_dir: str
    ref_name: str  # org.opencontainers.image.ref.name in index.json
    size: int = 0  # manifest size
    config_digest: str = ""
    layers: list[dict] = field(default_factory=list)  # layer descriptors, in manifest order
    index_digest: str | None = None  # digest of the index / manifest list the manifest was chosen from
    downloaded_blobs: int = 0
    cached_blobs: int = 0
    downloaded_bytes: int = 0


_clients_lock = threading.Lock()


def _client_for(ref: Reference, insecure_registries: Iterable[str]) -> RegistryClient:
    names = list(insecure_registries or ())
    names += os.environ.get("OCI2BIN_INSECURE_REGISTRIES", "").replace(",", " ").split()
    insecure = {normalize_registry(s).lower() for s in names if s}
    host = ref.api_host
    is_insecure = host.lower() in insecure or ref.registry.lower() in insecure
    return RegistryClient(host, insecure=is_insecure, auth_registry=ref.registry)


def resolve(ref: str, *, insecure_registries: Iterable[str] = ()) -> str:
    """Digest of what ``ref`` points to (for a multi-platform image: the index digest)."""
    r = parse(ref)
    if r.digest:
        return r.digest
    with _client_for(r, insecure_registries) as client:
        d = client.head_manifest(r.repository, r.reference, what=str(r))
        if d:
            return d
        _, _, digest = client.get_manifest(r.repository, r.reference, display=str(r))
        return digest


def pull(
    ref: str,
    dest_layout_dir: str,
    *,
    platform: str | None = None,
    insecure_registries: Iterable[str] = (),
    progress=None,
    cache: BlobCache | str | None = None,
    ref_name: str | None = None,
    max_workers: int = MAX_WORKERS,
) -> PullResult:
    """Pull ``ref`` into an OCI image layout at ``dest_layout_dir``.

    ``dest_layout_dir`` may be missing, empty, or an existing OCI layout (the image is added; an entry with the
    same ``ref_name`` is replaced). ``platform``: ``os/arch[/variant]``, default the host's. ``progress``: None =
    display on a TTY (stderr) only, False = never, True = always, or a callable ``(done_bytes, total_bytes)``.
    ``ref_name`` defaults to the tag (docker's convention), or the full reference for a digest-only ref.
    """
    r = parse(ref)
    want = parse_platform(platform) if platform else host_platform()
    blob_cache = cache if isinstance(cache, BlobCache) else BlobCache(cache)
    client = _client_for(r, insecure_registries)
    prog = _Progress(
        r.familiar_name + (":" + r.tag if r.tag else "") if not r.digest else str(r),
        progress,
    )
    ok = False
    try:
        result = _pull(
            client,
            r,
            want,
            bool(platform),
            dest_layout_dir,
            blob_cache,
            prog,
            ref_name,
            max_workers,
        )
        ok = True
        return result
    except _Cancelled:
        raise RegistryError(f"pull of {r} was cancelled") from None
    finally:
        prog.close(ok)
        client.close()


def _pull(
    client: RegistryClient,
    r: Reference,
    want: Platform,
    explicit_platform: bool,
    dest: str,
    cache: BlobCache,
    prog: _Progress,
    ref_name: str | None,
    max_workers: int,
) -> PullResult:
    repo = r.repository
    body, mt, digest = _cached_or_fetch_manifest(client, cache, repo, r.reference, r.digest, None, str(r))
    index_digest = None
    chosen_platform: Platform | None = None
    if mt in INDEX_TYPES:
        index_digest = digest
        idx = json.loads(body)
        desc = select_platform(idx.get("manifests") or [], want)
        if desc is None:
            avail = sorted(
                {str(p) for d in idx.get("manifests") or [] if (p := _desc_platform(d)) and p.os != "unknown"}
            )
            raise PlatformNotFound(f"no {want} image in {r} (available: {', '.join(avail) or 'none'})")
        chosen_platform = _desc_platform(desc)
        body, mt, digest = _cached_or_fetch_manifest(
            client,
            cache,
            repo,
            desc["digest"],
            desc["digest"],
            desc.get("size"),
            f"{r.name}@{desc['digest']}",
        )
        if mt in INDEX_TYPES:
            raise UnsupportedManifest(f"nested image index in {r} is not supported")
    manifest = json.loads(body)
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise UnsupportedManifest(f"manifest of {r} has no config or layers")
    for d in [config, *layers]:
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("digest"), str)
            or not isinstance(d.get("size"), int)
        ):
            raise UnsupportedManifest(f"manifest of {r} has a malformed descriptor")
        try:
            split_digest(d["digest"])
        except ValueError as e:
            raise UnsupportedManifest(f"manifest of {r}: {e}") from None

    # download config + layers (deduplicated) concurrently into the cache
    blobs: dict[str, dict] = {}
    for d in [config, *layers]:
        blobs.setdefault(d["digest"], d)
    todo = [d for d in blobs.values() if not cache.has(d["digest"], d["size"])]
    cached = len(blobs) - len(todo)
    prog.add_total(sum(d["size"] for d in blobs.values()))
    prog.add(sum(d["size"] for d in blobs.values()) - sum(d["size"] for d in todo))
    downloaded_bytes = 0
    counter_lock = threading.Lock()

    def on_bytes(n: int) -> None:
        nonlocal downloaded_bytes
        with counter_lock:
            downloaded_bytes += n
        prog.add(n)

    downloaded = 0
    if todo:
        workers = max(1, min(max_workers, len(todo)))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="oci2bin-pull") as ex:
            futs = [ex.submit(client.fetch_blob, repo, d, cache, on_bytes) for d in todo]
            try:
                for f in concurrent.futures.as_completed(futs):
                    if f.result():
                        downloaded += 1
            except BaseException:
                client.cancel.set()
                for f in futs:
                    f.cancel()
                # report the first real error rather than a _Cancelled of a sibling
                concurrent.futures.wait(futs)
                for f in futs:
                    if (
                        f.done()
                        and not f.cancelled()
                        and f.exception()
                        and not isinstance(f.exception(), _Cancelled)
                    ):
                        raise f.exception() from None
                raise
        cached += len(todo) - downloaded

    cfg_platform = _config_platform(cache, config["digest"])
    if chosen_platform is None:
        chosen_platform = cfg_platform or want
        if (
            explicit_platform
            and cfg_platform is not None
            and (cfg_platform.os != want.os or cfg_platform.architecture != want.architecture)
        ):
            raise PlatformNotFound(f"{r} is a single-platform {cfg_platform} image, not {want}")

    name = ref_name or (r.tag if r.tag else str(r))
    desc = {"mediaType": mt, "digest": digest, "size": len(body)}
    annotations = {ANNOTATION_IMAGE_NAME: str(r), ANNOTATION_REF_NAME: name}
    plat = {"architecture": chosen_platform.architecture, "os": chosen_platform.os}
    if chosen_platform.variant:
        plat["variant"] = chosen_platform.variant
    desc["annotations"] = annotations
    desc["platform"] = plat
    cache.put_bytes(digest, body)
    write_layout(dest, desc, [digest, *blobs.keys()], cache)
    return PullResult(
        reference=str(r),
        digest=digest,
        media_type=mt,
        platform=str(chosen_platform),
        layout_dir=os.path.abspath(dest),
        ref_name=name,
        size=len(body),
        config_digest=config["digest"],
        layers=[dict(d) for d in layers],
        index_digest=index_digest,
        downloaded_blobs=downloaded,
        cached_blobs=cached,
        downloaded_bytes=downloaded_bytes,
    )


def _cached_or_fetch_manifest(
    client: RegistryClient,
    cache: BlobCache,
    repo: str,
    reference: str,
    digest: str | None,
    size: int | None,
    what: str,
) -> tuple[bytes, str, str]:
    """Manifests pinned by digest come from the blob cache when present (re-verified), else the registry."""
    if digest and cache.has(digest, size) and cache.verify(digest, size):
        body = cache.read_bytes(digest)
        try:
            return body, _media_type(body, ""), digest
        except UnsupportedManifest:
            pass
    body, mt, got = client.get_manifest(
        repo, reference, expected_digest=digest, expected_size=size, display=what
    )
    cache.put_bytes(got, body)
    return body, mt, got


def _config_platform(cache: BlobCache, digest: str) -> Platform | None:
    try:
        cfg = json.loads(cache.read_bytes(digest))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or not cfg.get("os") or not cfg.get("architecture"):
        return None
    return Platform(str(cfg["os"]), str(cfg["architecture"]), str(cfg.get("variant") or ""))


# --------------------------------------------------------------------------------------------- layout


def write_layout(dest: str, manifest_desc: dict, digests: list[str], cache: BlobCache) -> None:
    """Create (or add to) an OCI image layout at ``dest`` from cached blobs; all-or-nothing.

    A new layout is assembled in a sibling temporary directory and renamed into place (onto ``dest`` if that is
    an empty directory). An existing layout gets its missing blobs linked in, then ``index.json`` is replaced
    atomically; on failure the blobs added are removed again.
    """
    dest = os.path.abspath(dest)
    if os.path.isdir(dest) and os.listdir(dest):
        if not os.path.isfile(os.path.join(dest, "oci-layout")):
            raise LayoutError(f"{dest} exists and is neither empty nor an OCI image layout")
        _add_to_layout(dest, manifest_desc, digests, cache)
        return
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise LayoutError(f"{dest} exists and is not a directory")
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".tmp-", dir=parent)
    try:
        _populate(tmp, digests, cache)
        _write_json(os.path.join(tmp, "oci-layout"), {"imageLayoutVersion": "1.0.0"})
        _write_json(
            os.path.join(tmp, "index.json"),
            {
                "schemaVersion": 2,
                "mediaType": MT_OCI_INDEX,
                "manifests": [manifest_desc],
            },
        )
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)  # replaces an empty directory atomically
        except OSError as e:
            raise LayoutError(f"cannot create {dest}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _populate(root: str, digests: list[str], cache: BlobCache) -> list[str]:
    added = []
    for dg in dict.fromkeys(digests):
        algo, hexpart = dg.split(":", 1)
        d = os.path.join(root, "blobs", algo)
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, hexpart)
        if os.path.exists(p):
            continue
        cache.link_into(dg, p)
        added.append(p)
    return added


def _add_to_layout(dest: str, manifest_desc: dict, digests: list[str], cache: BlobCache) -> None:
    index_path = os.path.join(dest, "index.json")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except FileNotFoundError:
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}
    except (OSError, ValueError) as e:
        raise LayoutError(f"cannot read {index_path}: {e}") from None
    added: list[str] = []
    try:
        added = _populate(dest, digests, cache)
        name = manifest_desc.get("annotations", {}).get(ANNOTATION_REF_NAME)
        manifests = [
            m
            for m in index.get("manifests") or []
            if not (name and (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) == name)
        ]
        manifests.append(manifest_desc)
        index["manifests"] = manifests
        _write_json(index_path, index)
    except BaseException:
        for p in added:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        raise


def _write_json(path: str, obj) -> None:
    data = json.dumps(obj, indent=None, separators=(",", ":"), sort_keys=False).encode()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
