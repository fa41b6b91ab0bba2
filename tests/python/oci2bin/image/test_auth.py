"""Credential lookup (auth files, credential helpers) and the challenge/token handshake, without a registry.

The registry-backed auth flows (basic, bearer with scopes, denied, ...) are in test_remote.py."""

import base64
import json
import os
import shutil
import stat
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from oci2bin.image import auth
from oci2bin.image.auth import (
    Authenticator,
    CredentialHelperError,
    Credentials,
    TokenError,
    find_credentials,
    parse_www_authenticate,
)


@pytest.fixture
def home(monkeypatch):
    d = tempfile.mkdtemp(prefix="oci2bin-auth-test-")
    monkeypatch.setenv("HOME", d)
    for v in (
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(v, raising=False)
    bindir = os.path.join(d, "bin")
    os.makedirs(bindir)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write_json(path: str, obj) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def docker_config(home: str, obj) -> str:
    return write_json(os.path.join(home, ".docker", "config.json"), obj)


def helper(home: str, name: str, body: str) -> str:
    """A ``docker-credential-NAME`` shell script on PATH; it logs each call to HOME/NAME.log."""
    p = os.path.join(home, "bin", "docker-credential-" + name)
    log = os.path.join(home, name + ".log")
    with open(p, "w") as f:
        f.write(f'#!/bin/sh\nread -r server\necho "$1 $server" >> {log}\n{body}\n')
    os.chmod(p, os.stat(p).st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    return log


# ---------------------------------------------------------------------------------------- challenges


def test_parse_www_authenticate():
    (c,) = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/redis:pull"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/redis:pull",
    }
    (b,) = parse_www_authenticate('Basic realm="test-realm"')
    assert (b.scheme, b.params) == ("basic", {"realm": "test-realm"})
    two = parse_www_authenticate('Bearer realm="r", error="insufficient_scope", Basic realm="x y"')
    assert [c.scheme for c in two] == ["bearer", "basic"]
    assert two[0].params["error"] == "insufficient_scope"
    assert two[1].params == {"realm": "x y"}
    (q,) = parse_www_authenticate(r'Bearer realm="a\"b",service=unquoted')
    assert q.params == {"realm": 'a"b', "service": "unquoted"}
    assert parse_www_authenticate("") == []


# ---------------------------------------------------------------------------------------- auth files


def test_no_config_is_anonymous(home):
    assert find_credentials("ghcr.io") is None


def test_docker_config_auth_field(home):
    docker_config(home, {"auths": {"reg.example:5000": {"auth": b64("u:p:with:colons")}}})
    c = find_credentials("reg.example:5000")
    assert (c.username, c.password) == ("u", "p:with:colons")
    assert c.basic_header() == "Basic " + b64("u:p:with:colons")
    assert find_credentials("other.example") is None


def test_docker_config_username_password_and_url_keys(home):
    docker_config(
        home,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:secret")},
                "https://ghcr.io": {"username": "gh", "password": "tok"},
            }
        },
    )
    assert find_credentials("docker.io").username == "hub"
    assert find_credentials("ghcr.io").password == "tok"


def test_docker_config_env_dir(home, monkeypatch):
    d = os.path.join(home, "elsewhere")
    write_json(os.path.join(d, "config.json"), {"auths": {"r.io": {"auth": b64("a:b")}}})
    monkeypatch.setenv("DOCKER_CONFIG", d)
    assert find_credentials("r.io").username == "a"


def test_identity_token(home):
    docker_config(home, {"auths": {"r.io": {"auth": b64("u:"), "identitytoken": "refresh"}}})
    c = find_credentials("r.io")
    assert c.identity_token == "refresh"


def test_registry_auth_file_wins(home, monkeypatch):
    docker_config(home, {"auths": {"r.io": {"auth": b64("docker:x")}}})
    f = write_json(os.path.join(home, "auth.json"), {"auths": {"r.io": {"auth": b64("podman:y")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", f)
    c = find_credentials("r.io")
    assert (c.username, c.source) == ("podman", f)
    # a registry REGISTRY_AUTH_FILE does not know falls through to the docker config
    docker_config(home, {"auths": {"s.io": {"auth": b64("docker:x")}}})
    assert find_credentials("s.io").username == "docker"


def test_podman_auth_json(home, monkeypatch):
    run = os.path.join(home, "run")
    write_json(
        os.path.join(run, "containers", "auth.json"),
        {"auths": {"r.io": {"auth": b64("p:q")}}},
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", run)
    assert find_credentials("r.io").username == "p"


def test_bad_auth_file(home):
    docker_config(home, {"auths": {"r.io": {"auth": "%%%notbase64"}}})
    with pytest.raises(auth.AuthError):
        find_credentials("r.io")
    with open(os.path.join(home, ".docker", "config.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(auth.AuthError, match="cannot read auth file"):
        find_credentials("r.io")


# ---------------------------------------------------------------------------------------- helpers


def test_cred_helper(home):
    log = helper(home, "test", """echo '{"ServerURL":"x","Username":"hu","Secret":"hs"}'""")
    docker_config(
        home,
        {"credHelpers": {"r.io": "test"}, "auths": {"r.io": {"auth": b64("no:no")}}},
    )
    c = find_credentials("r.io")
    assert (c.username, c.password, c.source) == ("hu", "hs", "docker-credential-test")
    assert read(log) == "get r.io\n"


def test_cred_helper_docker_hub_server_url(home):
    log = helper(home, "test", """echo '{"Username":"<token>","Secret":"idtok"}'""")
    docker_config(home, {"credHelpers": {"docker.io": "test"}})
    c = find_credentials("docker.io")
    assert c.identity_token == "idtok" and not c.username
    assert read(log) == "get https://index.docker.io/v1/\n"


def test_creds_store_falls_back_to_auths(home):
    helper(home, "store", "echo 'credentials not found in native keychain'; exit 1")
    docker_config(home, {"credsStore": "store", "auths": {"r.io": {"auth": b64("file:pw")}}})
    assert find_credentials("r.io").username == "file"
    assert find_credentials("other.io") is None


def test_creds_store_used(home):
    helper(home, "store", """echo '{"Username":"s","Secret":"t"}'""")
    docker_config(home, {"credsStore": "store", "auths": {"r.io": {}}})
    assert find_credentials("r.io").username == "s"


def test_cred_helper_failures(home):
    docker_config(home, {"credHelpers": {"r.io": "missing"}})
    with pytest.raises(CredentialHelperError, match="docker-credential-missing not found"):
        find_credentials("r.io")
    helper(home, "broken", "echo 'keychain locked' >&2; exit 3")
    docker_config(home, {"credHelpers": {"r.io": "broken"}})
    with pytest.raises(CredentialHelperError, match="keychain locked"):
        find_credentials("r.io")
    helper(home, "garbage", "echo 'not json'")
    docker_config(home, {"credHelpers": {"r.io": "garbage"}})
    with pytest.raises(CredentialHelperError, match="invalid JSON"):
        find_credentials("r.io")


# ---------------------------------------------------------------------------------------- handshake


class FakeTokenServer:
    """In-process token endpoint: records requests, answers a token or 401 for wrong Basic creds."""

    def __init__(self, good=("u", "p")):
        self.requests = []
        srv = self
        good_hdr = "Basic " + b64(f"{good[0]}:{good[1]}")

        class H(BaseHTTPRequestHandler):
            def _answer(self, form):
                a = self.headers.get("Authorization")
                srv.requests.append((self.command, urlparse(self.path).path, form, a))
                if a is not None and a != good_hdr:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"access_token": f"tok{len(srv.requests)}", "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self):
                self._answer(parse_qs(urlparse(self.path).query))

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                self._answer(parse_qs(self.rfile.read(n).decode()))

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.server.shutdown()
        self.server.server_close()


SCOPE = "repository:test/img:pull"


def challenge(realm, **extra):
    params = {"realm": realm, "service": "svc", **extra}
    return "Bearer " + ",".join(f'{k}="{v}"' for k, v in params.items())


def test_bearer_anonymous_token_is_cached():
    with FakeTokenServer() as ts:
        a = Authenticator("r.io", None)
        assert a.header(SCOPE) is None
        assert a.on_challenge(challenge(ts.realm, scope=SCOPE), SCOPE, sent=None)
        assert a.header(SCOPE) == "Bearer tok1"
        ((method, path, form, hdr),) = ts.requests
        assert (method, path, hdr) == ("GET", "/token", None)
        assert form == {"service": ["svc"], "scope": [SCOPE]}
        # other scope -> no header until challenged
        assert a.header("repository:other:pull") is None
        # the same token rejected again (insufficient scope) -> give up
        assert not a.on_challenge(
            challenge(ts.realm, scope=SCOPE, error="insufficient_scope"),
            SCOPE,
            sent="Bearer tok1",
        )


def test_bearer_with_basic_credentials():
    with FakeTokenServer() as ts:
        a = Authenticator("r.io", Credentials("u", "p"))
        assert a.on_challenge(challenge(ts.realm), SCOPE, sent=None)
        (_, _, form, hdr) = ts.requests[0]
        assert hdr == "Basic " + b64("u:p")
        assert form["scope"] == [SCOPE]
        bad = Authenticator("r.io", Credentials("u", "wrong"))
        with pytest.raises(TokenError) as ei:
            bad.on_challenge(challenge(ts.realm), SCOPE, sent=None)
        assert ei.value.status == 401


def test_bearer_identity_token_uses_refresh_grant():
    with FakeTokenServer() as ts:
        a = Authenticator("r.io", Credentials(identity_token="rt"))
        assert a.on_challenge(challenge(ts.realm), SCOPE, sent=None)
        (method, _, form, hdr) = ts.requests[0]
        assert method == "POST" and hdr is None
        assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["rt"]
        assert form["scope"] == [SCOPE] and form["service"] == ["svc"]


def test_basic_challenge():
    a = Authenticator("r.io", None)
    assert not a.on_challenge('Basic realm="x"', SCOPE, sent=None)  # anonymous: nothing to try
    c = Credentials("u", "p")
    a = Authenticator("r.io", lambda: c)  # lazily loaded
    assert a.on_challenge('Basic realm="x"', SCOPE, sent=None)
    assert a.header(SCOPE) == c.basic_header()
    assert not a.on_challenge('Basic realm="x"', SCOPE, sent=c.basic_header())  # rejected


def test_token_server_unreachable():
    a = Authenticator("r.io", None)
    with pytest.raises(TokenError, match="cannot reach token server"):
        a.on_challenge(challenge("http://127.0.0.1:1/token"), SCOPE, sent=None)
