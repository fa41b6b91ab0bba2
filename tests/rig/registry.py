"""Real registries on loopback for tests: Debian's ``docker-registry`` (distribution 2.8).

    with RegistryRig() as rig:            # temp dir, 3 registries + token server, all stopped/removed on exit
        rig.open.host                     # "127.0.0.1:PORT"  anonymous
        rig.basic.host                    # htpasswd basic auth (rig.user / rig.password)
        rig.token.host                    # bearer token auth via tokenserver.py (anonymous = pull only,
                                          #   nothing for repositories under "private/")
        rig.push(layout_dir, "127.0.0.1:PORT/test/x:latest", creds=True, all=True, fmt="v2s2")

Also: :func:`build_image` / :func:`build_index` write small OCI layouts with python tarfile,
:class:`FaultProxy` (in-process HTTP proxy in front of a registry: answers 429 / drops connections on
request, counts requests), :func:`blob_data_path` (a blob's file in a registry's storage, to corrupt it).

Needs: /usr/bin/docker-registry, skopeo, htpasswd (apache2-utils), openssl.
Nothing is left behind: every process is stopped by its PID, every file lives under one temp dir.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
TOOLS = ("skopeo", "htpasswd", "openssl")
USER, PASSWORD = "testuser", "testpass"
CREATED = "2023-11-14T22:13:20Z"
HERE = os.path.dirname(os.path.abspath(__file__))


def missing_tools() -> list[str]:
    miss = [t for t in TOOLS if shutil.which(t) is None]
    if not os.access(REGISTRY_BIN, os.X_OK):
        miss.append("docker-registry")
    return miss


def non_loopback_ipv4() -> str | None:
    """This machine's outward IPv4 address (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def free_port(bind: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((bind, 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    ctx = ssl._create_unverified_context()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=ctx):
                return
        except urllib.error.HTTPError as e:
            e.close()
            return  # any HTTP answer means it is up (401 for auth registries)
        except (urllib.error.URLError, OSError):
            time.sleep(0.02)
    raise RuntimeError(f"{url} not up after {timeout}s")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Registry:
    """One docker-registry process: ``kind`` is "open", "basic" or "token"."""

    def __init__(
        self,
        root: str,
        kind: str,
        *,
        htpasswd: str = "",
        token_realm: str = "",
        cert: str = "",
        tls: tuple[str, str] | None = None,
        bind: str = "127.0.0.1",
    ):
        self.root = root
        self.kind = kind
        self.tls = tls  # (certificate, key): serve HTTPS
        self.bind = bind
        self.storage = os.path.join(root, "storage")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        os.makedirs(self.storage, exist_ok=True)
        self._htpasswd, self._realm, self._cert = htpasswd, token_realm, cert

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> str:
        tls = ""
        if self.tls:
            tls = f", tls: {{certificate: {self.tls[0]}, key: {self.tls[1]}}}"
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}}}}",
            f'http: {{addr: "{self.host}", headers: {{X-Content-Type-Options: [nosniff]}}{tls}}}',
        ]
        if self.kind == "basic":
            lines.append(f"auth: {{htpasswd: {{realm: test-realm, path: {self._htpasswd}}}}}")
        elif self.kind == "token":
            lines.append(
                f'auth: {{token: {{realm: "{self._realm}", service: test-registry, '
                f"issuer: test-issuer, rootcertbundle: {self._cert}}}}}"
            )
        path = os.path.join(self.root, "config.yml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self) -> Registry:
        last: Exception | None = None
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = free_port(self.bind)
            cfg = self._config()
            log = open(os.path.join(self.root, "registry.log"), "ab")  # noqa: SIM115
            try:
                self.proc = subprocess.Popen(
                    [REGISTRY_BIN, "serve", cfg],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            finally:
                log.close()
            try:
                _wait_http(f"{self.url}/v2/", self.proc)
                return self
            except RuntimeError as e:
                last = e
                _stop(self.proc)
        raise RuntimeError(f"cannot start docker-registry ({self.kind}): {last}")

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


class TokenServer:
    def __init__(self, root: str, key: str, cert: str, private_prefix: str = "private/"):
        self.root, self.key, self.cert, self.private_prefix = (
            root,
            key,
            cert,
            private_prefix,
        )
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = os.path.join(root, "tokenserver.log")

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenServer:
        port_file = os.path.join(self.root, "tokenserver.port")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(HERE, "tokenserver.py"),
                    "--key",
                    self.key,
                    "--cert",
                    self.cert,
                    "--listen",
                    "127.0.0.1:0",
                    "--user",
                    f"{USER}:{PASSWORD}",
                    "--private-prefix",
                    self.private_prefix,
                    "--port-file",
                    port_file,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log) as f:
                    raise RuntimeError("token server did not start: " + f.read()[-2000:])
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        _wait_http(f"http://127.0.0.1:{self.port}/token", self.proc)
        return self

    def requests(self) -> list[dict]:
        out = []
        with open(self.log) as f:
            for line in f:
                if line.startswith("{"):
                    out.append(json.loads(line))
        return out

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


class RegistryRig:
    """Temp dir + open / basic / token registries + token server. Use as a context manager."""

    def __init__(self, kinds=("open", "basic", "token")):
        self.kinds = kinds
        self.root = ""
        self.user, self.password = USER, PASSWORD
        self.open: Registry | None = None
        self.basic: Registry | None = None
        self.token: Registry | None = None
        self.tokenserver: TokenServer | None = None
        self._procs: list = []

    def __enter__(self) -> Self:
        self.root = tempfile.mkdtemp(prefix="oci2bin-rig-")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        r = self.root
        if "open" in self.kinds:
            self.open = self._add(Registry(os.path.join(r, "open"), "open").start())
        if "basic" in self.kinds:
            htp = os.path.join(r, "htpasswd")
            out = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True).stdout
            with open(htp, "wb") as f:
                f.write(out)
            self.basic = self._add(Registry(os.path.join(r, "basic"), "basic", htpasswd=htp).start())
        if "token" in self.kinds:
            key, cert = os.path.join(r, "token.key"), os.path.join(r, "token.crt")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                 "-out", cert, "-days", "3650", "-subj", "/CN=test-issuer"],
                check=True,
                capture_output=True,
            )  # fmt: skip
            ts_root = os.path.join(r, "tokenserver")
            os.makedirs(ts_root)
            self.tokenserver = self._add(TokenServer(ts_root, key, cert).start())
            self.token = self._add(
                Registry(
                    os.path.join(r, "token"),
                    "token",
                    token_realm=self.tokenserver.realm,
                    cert=cert,
                ).start()
            )

    def _add(self, p):
        self._procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self._procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                print(f"rig: stopping {p}: {e}", file=sys.stderr)
        self._procs.clear()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = ""

    def mkdtemp(self, prefix: str = "t-") -> str:
        return tempfile.mkdtemp(prefix=prefix, dir=self.root)

    def push(
        self,
        src: str,
        dest_ref: str,
        *,
        creds: bool = False,
        all: bool = False,
        fmt: str = "",
    ) -> None:
        """``skopeo copy oci:SRC docker://DEST`` (SRC is ``DIR:TAG``)."""
        cmd = ["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]
        if creds:
            cmd += ["--dest-creds", f"{USER}:{PASSWORD}"]
        if all:
            cmd.append("--all")
        if fmt:
            cmd += ["--format", fmt]
        cmd += ["oci:" + src, "docker://" + dest_ref]
        skopeo(cmd, self.root)


def make_tls_cert(directory: str, ips: list[str]) -> tuple[str, str]:
    """Self-signed server certificate (its own CA) for ``ips``; returns (cert, key) paths."""
    cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    san = ",".join(f"IP:{ip}" for ip in ips)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "3650", "-subj", "/CN=oci2bin-test-registry", "-addext", f"subjectAltName={san}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def skopeo(cmd: list[str], tmpdir: str) -> str:
    env = dict(
        os.environ,
        TMPDIR=tmpdir,
        REGISTRY_AUTH_FILE=os.path.join(tmpdir, "no-auth.json"),
    )
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    return p.stdout


def skopeo_inspect(target: str, tmpdir: str, *, raw: bool = False, config: bool = False) -> dict:
    cmd = ["skopeo", "--insecure-policy", "inspect", "--tls-verify=false"]
    if raw:
        cmd.append("--raw")
    if config:
        cmd.append("--config")
    return json.loads(skopeo(cmd + [target], tmpdir))


def manifest_digest(ref: str, tmpdir: str) -> str:
    """sha256 of the manifest bytes ``ref`` (``docker://...``, ``oci:...``) serves, byte for byte."""
    env = dict(
        os.environ,
        TMPDIR=tmpdir,
        REGISTRY_AUTH_FILE=os.path.join(tmpdir, "no-auth.json"),
    )
    cmd = ["skopeo", "--insecure-policy", "inspect", "--raw", "--tls-verify=false", ref]
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=120, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.decode().strip()}")
    return "sha256:" + hashlib.sha256(p.stdout).hexdigest()


def blob_data_path(registry: Registry, digest: str) -> str:
    """The file a distribution filesystem store keeps a blob in (corrupt it to test verification)."""
    algo, hexpart = digest.split(":", 1)
    return os.path.join(
        registry.storage,
        "docker",
        "registry",
        "v2",
        "blobs",
        algo,
        hexpart[:2],
        hexpart,
        "data",
    )


# ------------------------------------------------------------------------------------------- test images


def _tar_layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                    tf.addfile(ti)
            data = files[name]
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = (
                len(data),
                0o755 if name.startswith("bin/") else 0o644,
                1700000000,
            )
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _put_blob(layout: str, data: bytes) -> dict:
    dg = hashlib.sha256(data).hexdigest()
    d = os.path.join(layout, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, dg), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + dg, "size": len(data)}


def _init_layout(layout: str) -> None:
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def _write_image(layout: str, layers: list[dict[str, bytes]], arch: str, variant: str = "",
                 gzip_layers: bool = True) -> dict:  # fmt: skip
    _init_layout(layout)
    descs, diff_ids = [], []
    for i, files in enumerate(layers):
        raw = _tar_layer(files)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if gzip_layers and i % 2 == 0:
            blob = gzip.compress(raw, mtime=0)
            mt = "application/vnd.oci.image.layer.v1.tar+gzip"
        else:
            blob, mt = raw, "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": mt, **_put_blob(layout, blob)})
    config = {
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    if variant:
        config["variant"] = variant
    cfg = _put_blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": descs,
    }
    m = _put_blob(layout, json.dumps(manifest, sort_keys=True).encode())
    plat = {
        "architecture": arch,
        "os": "linux",
        **({"variant": variant} if variant else {}),
    }
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **m,
        "platform": plat,
    }


def _write_index(layout: str, manifests: list[dict], tag: str) -> None:
    for m in manifests:
        m.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = tag
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def image_files(name: str, arch: str, size: int = 300_000) -> list[dict[str, bytes]]:
    """Two layers of distinctive, partly incompressible content (so blobs differ per image and arch)."""
    seed = hashlib.sha256(f"{name}/{arch}".encode()).digest()
    rnd = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32))
    return [
        {
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
            "etc/os-release": f"NAME={name}\nARCH={arch}\n".encode(),
            "bin/hello": b"#!/bin/sh\necho hello from " + name.encode() + b"\n",
        },
        {"data/random.bin": rnd, "data/arch": arch.encode() + b"\n"},
    ]


def build_image(
    layout: str,
    name: str,
    *,
    arch: str = "amd64",
    variant: str = "",
    tag: str = "latest",
) -> dict:
    """Single-platform OCI image layout at ``layout`` (tag ``tag``); returns its manifest descriptor."""
    desc = _write_image(layout, image_files(name, arch), arch, variant)
    _write_index(layout, [dict(desc)], tag)
    return desc


def build_index(
    layout: str,
    name: str,
    platforms=(("amd64", ""), ("arm64", "v8")),
    tag: str = "latest",
) -> str:
    """Multi-platform OCI layout: an image index (tag ``tag``) over one image per platform.

    Returns the index digest."""
    descs = [_write_image(layout, image_files(name, a), a, v) for a, v in platforms]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descs,
    }
    idx = _put_blob(layout, json.dumps(index, sort_keys=True).encode())
    _write_index(layout, [{"mediaType": "application/vnd.oci.image.index.v1+json", **idx}], tag)
    return idx["digest"]


# ------------------------------------------------------------------------------------------- fault proxy


class FaultProxy:
    """Loopback HTTP proxy in front of ``upstream`` (host:port) that can misbehave.

    ``fail_429``: answer this many requests with ``fail_status`` (429; ``Retry-After: retry_after``) before
    forwarding;
    ``drop_blob_after``: for the first blob GET with a longer body, send the headers and this many body
    bytes, then drop the connection. ``requests`` records (method, path, status) of everything forwarded or refused.
    """

    def __init__(self, upstream: str, *, fail_429: int = 0, retry_after: str | None = "0", fail_status: int = 429,
                 drop_blob_after: int | None = None, bind: str = "127.0.0.1"):  # fmt: skip
        self.upstream = upstream
        self.fail_429 = fail_429
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.drop_blob_after = drop_blob_after
        self.requests: list[tuple[str, str, int]] = []
        # (path, Range header) of range requests; TCP connections accepted
        self.ranges: list[tuple[str, str]] = []
        self.connections = 0
        self._lock = threading.Lock()
        proxy = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                with proxy._lock:
                    fail = proxy.fail_429 > 0
                    if fail:
                        proxy.fail_429 -= 1
                if fail:
                    proxy._record(self.command, self.path, proxy.fail_status)
                    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
                    self.send_response(proxy.fail_status)
                    if proxy.retry_after is not None:
                        self.send_header("Retry-After", proxy.retry_after)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if self.headers.get("Range"):
                    with proxy._lock:
                        proxy.ranges.append((self.path, self.headers["Range"]))
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, headers=headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    drop = None
                    if self.command == "GET" and "/blobs/" in self.path:
                        with proxy._lock:
                            limit = proxy.drop_blob_after
                            if limit is not None and len(body) > limit:
                                drop, proxy.drop_blob_after = limit, None
                    proxy._record(
                        self.command,
                        self.path,
                        resp.status if drop is None else -resp.status,
                    )
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in (
                            "connection",
                            "transfer-encoding",
                            "keep-alive",
                        ):
                            self.send_header(k, v)
                    if resp.getheader("Content-Length") is None:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if drop is not None:
                        self.wfile.write(body[:drop])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(body)
                finally:
                    conn.close()

            do_GET = do_HEAD = _handle

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def log_message(self, fmt, *args):
                pass

        self.server = ThreadingHTTPServer((bind, 0), H)
        self.server.daemon_threads = True
        self.host = f"{bind}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def blob_gets(self) -> list[str]:
        return [p for m, p, _ in self.requests if m == "GET" and "/blobs/" in p]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# ------------------------------------------------------------------------------------------- forward proxy


class ForwardProxy:
    """Minimal HTTP forward proxy (CONNECT tunnels + absolute-URI GET/HEAD), like a corporate proxy.

    ``requests`` records (method, target); ``auth``: required ``Proxy-Authorization`` value (407 otherwise).
    """

    def __init__(self, auth: str | None = None):
        self.requests: list[tuple[str, str]] = []
        self.auth = auth
        self._lock = threading.Lock()
        proxy = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _allowed(self) -> bool:
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                if proxy.auth and self.headers.get("Proxy-Authorization") != proxy.auth:
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return False
                return True

            def do_CONNECT(self):
                if not self._allowed():
                    return
                host, _, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection((host.strip("[]"), int(port)), 10)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                conns = [self.connection, upstream]
                try:
                    while True:
                        readable, _, _ = select.select(conns, [], [], 30)
                        if not readable:
                            break
                        for s in readable:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is self.connection else self.connection).sendall(data)
                except OSError:
                    pass
                finally:
                    upstream.close()

            def _forward(self):
                if not self._allowed():
                    return
                u = urllib.parse.urlsplit(self.path)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
                }
                conn = http.client.HTTPConnection(u.netloc, timeout=30)
                try:
                    conn.request(
                        self.command,
                        u.path + ("?" + u.query if u.query else ""),
                        headers=headers,
                    )
                    resp = conn.getresponse()
                    body = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in (
                            "connection",
                            "transfer-encoding",
                            "keep-alive",
                            "content-length",
                        ):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                finally:
                    conn.close()

            do_GET = do_HEAD = _forward

            def log_message(self, fmt, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardProxy:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
