"""Registry credentials and the distribution auth handshake.

Credentials are looked up like docker / podman do, first hit wins:

1. ``$REGISTRY_AUTH_FILE`` (containers-auth.json, same format as docker's config.json)
2. ``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json`` (podman)
3. ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``

Inside one file: ``credHelpers[registry]``, then ``credsStore``, then ``auths[registry]`` (``auth`` =
base64 ``user:pass``, or ``username``/``password``, or ``identitytoken``). Helpers are the
``docker-credential-<name>`` programs on ``PATH`` (``get`` protocol: server URL on stdin, JSON out).

The handshake (:class:`Authenticator`) answers a 401's ``WWW-Authenticate`` challenge: ``Basic`` -> send the
credentials; ``Bearer realm=..,service=..,scope=..`` -> fetch a token from the realm (anonymously or with the
credentials; an identity token is exchanged with the OAuth2 refresh-token grant) and cache it per scope.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from oci2bin.errors import UserError

from .reference import DOCKER_HUB, DOCKER_HUB_AUTH_KEY, normalize_registry

HELPER_TIMEOUT = 30
TOKEN_TIMEOUT = 30
TOKEN_ATTEMPTS = 4  # token requests are retried on 429 / 5xx / dropped connections
TOKEN_BACKOFF = 0.5
_DEFAULT_TOKEN_TTL = 60


class AuthError(UserError):
    """Base of authentication problems (the message is one line, printable as is)."""

    def __init__(
        self,
        message: str,
        hint: str = "check your docker/podman auth file and credential helpers",
    ):
        super().__init__(message, hint)


class CredentialHelperError(AuthError):
    """A ``docker-credential-*`` helper failed or is missing."""


class TokenError(AuthError):
    """The token server refused or answered nonsense."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message, "")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""  # where they came from (for messages): file path or helper name

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


# ---------------------------------------------------------------------------------------------- config files


def auth_file_candidates() -> list[str]:
    files = []
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        files.append(env)
    xdg_run = os.environ.get("XDG_RUNTIME_DIR")
    if xdg_run:
        files.append(os.path.join(xdg_run, "containers", "auth.json"))
    home = os.path.expanduser("~")
    xdg_conf = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files.append(os.path.join(xdg_conf, "containers", "auth.json"))
    docker_dir = os.environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    files.append(os.path.join(docker_dir, "config.json"))
    return files


def _load_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise AuthError(f"cannot read auth file {path}: {e}") from None
    return data if isinstance(data, dict) else None


def _key_registry(key: str) -> str:
    return normalize_registry(key)


def helper_server_url(registry: str) -> str:
    """What a credential helper is asked for: docker's legacy URL for Docker Hub, else the host."""
    return DOCKER_HUB_AUTH_KEY if normalize_registry(registry) == DOCKER_HUB else registry


def run_helper(helper: str, registry: str) -> Credentials | None:
    """``docker-credential-<helper> get``; None when the helper has no credentials for ``registry``."""
    prog = "docker-credential-" + helper
    exe = shutil.which(prog)
    if exe is None:
        raise CredentialHelperError(f"credential helper {prog} not found on PATH")
    server = helper_server_url(registry)
    try:
        p = subprocess.run(
            [exe, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CredentialHelperError(f"credential helper {prog} timed out") from None
    except OSError as e:
        raise CredentialHelperError(f"credential helper {prog}: {e}") from None
    out = p.stdout.decode(errors="replace").strip()
    if p.returncode != 0:
        msg = (out or p.stderr.decode(errors="replace")).strip()
        if "credentials not found" in msg.lower():
            return None
        first = msg.splitlines()[0] if msg else f"exit status {p.returncode}"
        raise CredentialHelperError(f"credential helper {prog} failed: {first}")
    try:
        data = json.loads(out)
        user, secret = data.get("Username", ""), data.get("Secret", "")
    except (ValueError, AttributeError):
        raise CredentialHelperError(f"credential helper {prog} printed invalid JSON") from None
    if not user and not secret:
        return None
    if user == "<token>":
        return Credentials(identity_token=secret, source=prog)
    return Credentials(username=user, password=secret, source=prog)


def _from_auth_entry(entry: dict, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user, pw = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        try:
            raw = base64.b64decode(entry["auth"]).decode()
        except (ValueError, UnicodeDecodeError):
            raise AuthError(f"invalid base64 'auth' entry in {source}") from None
        user, sep, pw = raw.partition(":")
        if not sep:
            raise AuthError(f"invalid 'auth' entry in {source}: no ':' in decoded value")
    token = entry.get("identitytoken", "")
    if not (user or pw or token):
        return None
    return Credentials(username=user, password=pw, identity_token=token, source=source)


def _lookup_in_config(cfg: dict, registry: str, source: str) -> tuple[bool, Credentials | None]:
    """(found, credentials) - ``found`` stops the search over further files."""
    want = normalize_registry(registry)
    helpers = cfg.get("credHelpers") or {}
    for key, helper in helpers.items() if isinstance(helpers, dict) else ():
        if _key_registry(key) == want and helper:
            return True, run_helper(helper, registry)
    entry = None
    auths = cfg.get("auths") or {}
    if isinstance(auths, dict):
        # exact key first, then normalised match (e.g. "https://index.docker.io/v1/")
        entry = auths.get(registry)
        if entry is None:
            for key, val in auths.items():
                if _key_registry(key) == want:
                    entry = val
                    break
    store = cfg.get("credsStore")
    if store:
        creds = run_helper(store, registry)
        if creds is not None:
            return True, creds
    if entry is not None:
        creds = _from_auth_entry(entry, source)
        return creds is not None, creds
    return False, None


def find_credentials(registry: str) -> Credentials | None:
    """Credentials for ``registry`` (host[:port], ``docker.io`` for Docker Hub) or None (anonymous)."""
    for path in auth_file_candidates():
        cfg = _load_json(path)
        if cfg is None:
            continue
        found, creds = _lookup_in_config(cfg, registry, path)
        if found:
            return creds
    return None


# ---------------------------------------------------------------------------------------------- challenges

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass
class Challenge:
    scheme: str  # lowercased: "basic", "bearer"
    params: dict[str, str]


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (one or several challenges) into scheme + parameters."""
    out: list[Challenge] = []
    s = value.strip()
    while s:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", s)
        if not m:
            break
        scheme = m.group(1).lower()
        s = s[m.end() :]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(s)
            if not pm:
                break
            # a following "Scheme param=" would also match as "param"; stop when a bare token appears
            name = pm.group(1)
            val = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[name.lower()] = re.sub(r"\\(.)", r"\1", val) if pm.group(2) is not None else val
            s = s[pm.end() :]
        out.append(Challenge(scheme, params))
        s = s.lstrip(", ")
    return out


# ---------------------------------------------------------------------------------------------- handshake


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Per-registry auth state shared by the threads of a pull (thread-safe).

    ``header(scope)`` -> the Authorization header to send (or None); ``on_challenge(www_auth, scope)`` is
    called on a 401 and returns True if a retry with new credentials makes sense.
    """

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None | Callable[[], Credentials | None] = None,
        *,
        opener: Callable[..., object] | None = None,
        ssl_context=None,
    ):
        self.registry = registry
        self._creds_src = credentials
        self._creds_loaded = not callable(credentials)
        self._creds = None if callable(credentials) else credentials
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" / "bearer" once a challenge was seen
        self._challenge: dict[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._ssl_context = ssl_context
        self._opener = opener

    @property
    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._creds_loaded:
                self._creds = self._creds_src()  # type: ignore[operator]
                self._creds_loaded = True
            return self._creds

    @property
    def has_credentials(self) -> bool:
        return self.credentials is not None

    def header(self, scope: str) -> str | None:
        with self._lock:
            scheme = self._scheme
            tok = self._tokens.get(scope)
        if scheme == "basic":
            c = self.credentials
            return c.basic_header() if c and (c.username or c.password) else None
        if scheme == "bearer" and tok is not None and tok.expires > time.time():
            return "Bearer " + tok.value
        return None

    def on_challenge(self, www_authenticate: str | None, scope: str, *, sent: str | None) -> bool:
        """Handle a 401. Returns True when the request should be retried with ``header(scope)``."""
        challenges = parse_www_authenticate(www_authenticate or "")
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and bearer.params.get("realm"):
            with self._lock:
                self._scheme = "bearer"
                self._challenge = bearer.params
                old = self._tokens.get(scope)
            if sent and old is not None and sent == "Bearer " + old.value:
                # the token we just got was not good enough (insufficient scope / denied)
                error = bearer.params.get("error", "")
                if error != "invalid_token":
                    return False
            token = self._fetch_token(bearer.params, scope)
            with self._lock:
                self._tokens[scope] = token
            return True
        if basic is not None:
            with self._lock:
                self._scheme = "basic"
            c = self.credentials
            if c is None or not (c.username or c.password):
                return False
            return sent != c.basic_header()
        return False

    def _fetch_token(self, params: dict[str, str], scope: str) -> _Token:
        realm = params["realm"]
        service = params.get("service")
        creds = self.credentials
        scopes = [scope] if scope else []
        chal_scope = params.get("scope")
        if chal_scope and chal_scope not in scopes:
            scopes.append(chal_scope)
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "oci2bin",
            }
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            req = urllib.request.Request(
                realm,
                data=urllib.parse.urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                method="POST",
            )
        else:
            q = []
            if service:
                q.append(("service", service))
            q.extend(("scope", s) for s in scopes)
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(q) if q else "")
            req = urllib.request.Request(url, method="GET")
            if creds is not None and (creds.username or creds.password):
                req.add_header("Authorization", creds.basic_header())
        req.add_header("User-Agent", "oci2bin")
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._open(req) as resp:
                    body = resp.read(1 << 20)
                break
            except urllib.error.HTTPError as e:
                if e.code in (429, 500, 502, 503, 504) and attempt < TOKEN_ATTEMPTS:
                    time.sleep(TOKEN_BACKOFF * 2 ** (attempt - 1))
                    continue
                raise TokenError(f"token server {realm} answered HTTP {e.code}", status=e.code) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                refused = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
                if not refused and attempt < TOKEN_ATTEMPTS:
                    time.sleep(TOKEN_BACKOFF * 2 ** (attempt - 1))
                    continue
                raise TokenError(f"cannot reach token server {realm}: {reason}") from None
        try:
            data = json.loads(body)
            value = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            value = None
        if not value or not isinstance(value, str):
            raise TokenError(f"token server {realm} returned no token")
        ttl = data.get("expires_in") or _DEFAULT_TOKEN_TTL
        try:
            ttl = max(int(ttl), 10)
        except (TypeError, ValueError):
            ttl = _DEFAULT_TOKEN_TTL
        # renew a little early
        return _Token(value, time.time() + ttl - 5)

    def _open(self, req):
        if self._opener is not None:
            return self._opener(req, timeout=TOKEN_TIMEOUT)
        if req.full_url.startswith("https:") and self._ssl_context is not None:
            return urllib.request.urlopen(req, timeout=TOKEN_TIMEOUT, context=self._ssl_context)
        return urllib.request.urlopen(req, timeout=TOKEN_TIMEOUT)
