"""oci2bin.image.remote against real registries (Debian docker-registry, distribution 2.8) on loopback.

One rig per module (tests/rig/registry.py): an open registry, one with htpasswd basic auth, one with bearer
token auth, images pushed with skopeo. Every pulled layout is checked with our own digest walk and with
``skopeo inspect oci:DIR``. Nothing is left in /tmp: the rig's temp dir holds every file and goes at the end.
"""

import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest
from oci2bin.image import blobcache, remote
from oci2bin.image.blobcache import BlobCache
from oci2bin.image.remote import (
    AuthDenied,
    AuthRequired,
    DigestMismatch,
    ImageNotFound,
    InsecureRegistryError,
    LayoutError,
    ManifestNotFound,
    PlatformNotFound,
    RegistryError,
    RegistryHTTPError,
    RegistryUnreachable,
    parse_platform,
    pull,
    resolve,
    select_platform,
)

from tests.rig.registry import (
    FaultProxy,
    ForwardProxy,
    Registry,
    RegistryRig,
    blob_data_path,
    build_image,
    build_index,
    free_port,
    make_tls_cert,
    manifest_digest,
    missing_tools,
    non_loopback_ipv4,
    skopeo_inspect,
)

# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def rig():
    miss = missing_tools()
    if miss:
        pytest.skip(f"registry rig needs {', '.join(miss)}")
    with RegistryRig() as rig:
        src = rig.mkdtemp("src-")
        img = {}
        build_image(os.path.join(src, "busybox"), "busybox")
        build_image(os.path.join(src, "corrupt"), "corrupt")
        build_image(os.path.join(src, "oversize"), "oversize")
        build_index(os.path.join(src, "multi"), "multi")
        build_image(os.path.join(src, "secret"), "secret")
        o, b, t = rig.open.host, rig.basic.host, rig.token.host
        rig.push(f"{src}/busybox:latest", f"{o}/test/busybox:latest")
        rig.push(f"{src}/busybox:latest", f"{o}/test/busybox:v1")
        rig.push(f"{src}/busybox:latest", f"{o}/test/v2s2:latest", fmt="v2s2")
        rig.push(f"{src}/multi:latest", f"{o}/test/multi:latest", all=True)
        rig.push(f"{src}/multi:latest", f"{o}/test/multi-v2s2:latest", all=True, fmt="v2s2")
        rig.push(f"{src}/corrupt:latest", f"{o}/test/corrupt:latest")
        rig.push(f"{src}/oversize:latest", f"{o}/test/oversize:latest")
        rig.push(f"{src}/busybox:latest", f"{b}/test/busybox:latest", creds=True)
        rig.push(f"{src}/busybox:latest", f"{t}/test/busybox:latest", creds=True)
        rig.push(f"{src}/secret:latest", f"{t}/private/secret:latest", creds=True)
        # skopeo compresses uncompressed layers on push: take digests from the registry
        for name in ("busybox", "v2s2", "corrupt", "multi", "multi-v2s2"):
            img[name] = manifest_digest(f"docker://{o}/test/{name}:latest", rig.root)
        rig.raw = {
            n: skopeo_inspect(f"docker://{o}/test/{n}:latest", rig.root, raw=True)
            for n in ("corrupt", "oversize")
        }
        rig.images = img
        rig.src = src
        yield rig


@pytest.fixture
def env(rig, monkeypatch):
    """Isolated HOME / caches / auth files under the rig dir; fast backoff."""
    d = rig.mkdtemp("env-")
    home = os.path.join(d, "home")
    bindir = os.path.join(d, "bin")
    os.makedirs(home)
    os.makedirs(bindir)
    monkeypatch.setenv("HOME", home)
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(d, "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", os.path.join(d, "config"))
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    for v in (
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "OCI2BIN_BLOB_CACHE",
        "OCI2BIN_INSECURE_REGISTRIES",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setattr(remote, "BACKOFF_BASE", 0.01)
    yield SimpleNamespace(
        root=d,
        home=home,
        bin=bindir,
        cache=os.path.join(d, "cache", "oci2bin", "blobs"),
        out=lambda name: os.path.join(d, "out", name),
    )
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(rig):
    """HTTPS registries (self-signed certificate): one on loopback, one on a non-loopback address."""
    ip = non_loopback_ipv4()
    d = rig.mkdtemp("tls-")
    cert, key = make_tls_cert(d, ["127.0.0.1"] + ([ip] if ip else []))
    loop = rig._add(Registry(os.path.join(d, "loop"), "open", tls=(cert, key)).start())
    ext = None
    if ip:
        ext = Registry(os.path.join(d, "ext"), "open", tls=(cert, key), bind=ip)
        ext = rig._add(ext.start())
    for reg in filter(None, (loop, ext)):
        rig.push(f"{rig.src}/busybox:latest", f"{reg.host}/test/busybox:latest")
    return SimpleNamespace(cert=cert, loop=loop, ext=ext)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check_layout(rig, d: str, result) -> dict:
    """The layout is a valid single-image OCI layout for ``result``: every blob matches its digest."""
    with open(os.path.join(d, "oci-layout")) as f:
        assert json.load(f) == {"imageLayoutVersion": "1.0.0"}
    with open(os.path.join(d, "index.json")) as f:
        index = json.load(f)
    (m,) = [x for x in index["manifests"] if x["digest"] == result.digest]
    assert m["mediaType"] == result.media_type
    assert m["annotations"]["org.opencontainers.image.ref.name"] == result.ref_name
    assert m["annotations"]["io.containerd.image.name"] == result.reference

    def blob(dg):
        return os.path.join(d, "blobs", *dg.split(":"))

    assert sha256_file(blob(result.digest)) == result.digest
    assert os.path.getsize(blob(result.digest)) == m["size"]
    with open(blob(result.digest), "rb") as f:
        manifest = json.load(f)
    for desc in [manifest["config"], *manifest["layers"]]:
        assert sha256_file(blob(desc["digest"])) == desc["digest"]
        assert os.path.getsize(blob(desc["digest"])) == desc["size"]
    leftovers = [n for _, _, files in os.walk(d) for n in files if n.startswith(".tmp")]
    assert not leftovers
    target = f"oci:{d}" if len(index["manifests"]) == 1 else f"oci:{d}:{result.ref_name}"
    info = skopeo_inspect(target, rig.root)
    assert info["Digest"] == result.digest
    assert info["Layers"] == [x["digest"] for x in manifest["layers"]]
    assert f"{info['Os']}/{info['Architecture']}" == "/".join(result.platform.split("/")[:2])
    return manifest


def layer_file(layout: str, manifest: dict, name: str) -> bytes | None:
    for desc in manifest["layers"]:
        with open(os.path.join(layout, "blobs", *desc["digest"].split(":")), "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            try:
                return tf.extractfile(name).read()
            except KeyError:
                continue
    return None


def no_tmp_files(root: str) -> bool:
    return not any(n.startswith(".tmp") for _, _, files in os.walk(root) for n in files)


def write_json(path: str, obj) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def auth_entry(user: str, pw: str) -> dict:
    import base64

    return {"auth": base64.b64encode(f"{user}:{pw}".encode()).decode()}


# ------------------------------------------------------------------------------------ anonymous pulls


def test_anonymous_pull(rig, env):
    out = env.out("busybox")
    r = pull(f"{rig.open.host}/test/busybox", out)
    assert r.reference == f"{rig.open.host}/test/busybox:latest"
    assert r.digest == rig.images["busybox"]
    assert r.media_type == remote.MT_OCI_MANIFEST
    assert r.platform == "linux/amd64"
    assert r.ref_name == "latest"
    assert r.index_digest is None
    assert r.downloaded_blobs == 3 and r.cached_blobs == 0
    assert r.layout_dir == out
    manifest = check_layout(rig, out, r)
    assert r.config_digest == manifest["config"]["digest"]
    assert [x["digest"] for x in r.layers] == [x["digest"] for x in manifest["layers"]]
    assert layer_file(out, manifest, "data/arch") == b"amd64\n"
    assert r.downloaded_bytes == sum(x["size"] for x in [manifest["config"], *manifest["layers"]])
    # blobs land in the shared cache, hard-linked into the layout
    for desc in manifest["layers"]:
        cached = os.path.join(env.cache, "sha256", desc["digest"].split(":")[1])
        assert os.path.samefile(cached, os.path.join(out, "blobs", "sha256", desc["digest"][7:]))
    assert no_tmp_files(env.cache)


def test_pull_docker_schema2_kept_as_is(rig, env):
    out = env.out("v2s2")
    r = pull(f"{rig.open.host}/test/v2s2:latest", out)
    assert r.media_type == remote.MT_DOCKER_MANIFEST
    assert r.digest == rig.images["v2s2"]
    manifest = check_layout(rig, out, r)
    assert manifest["mediaType"] == remote.MT_DOCKER_MANIFEST
    assert r.cached_blobs + r.downloaded_blobs == 3


def test_resolve(rig, env):
    assert resolve(f"{rig.open.host}/test/busybox:v1") == rig.images["busybox"]
    assert resolve(f"{rig.open.host}/test/multi") == rig.images["multi"]
    assert resolve(f"{rig.token.host}/test/busybox") == rig.images["busybox"]
    pinned = f"{rig.open.host}/test/busybox@{rig.images['multi']}"
    assert resolve(pinned) == rig.images["multi"]  # pinned: no network needed
    with pytest.raises(ManifestNotFound):
        resolve(f"{rig.open.host}/test/busybox:nope")


# ------------------------------------------------------------------------------------ platforms


@pytest.mark.parametrize(
    "plat, arch, variant",
    [
        ("linux/amd64", "amd64", ""),
        ("linux/arm64", "arm64", "v8"),
        ("linux/arm64/v8", "arm64", "v8"),
        ("arm64", "arm64", "v8"),
        ("linux/aarch64", "arm64", "v8"),
        ("linux/x86_64", "amd64", ""),
    ],
)
def test_platform_selection(rig, env, plat, arch, variant):
    out = env.out("multi")
    r = pull(f"{rig.open.host}/test/multi:latest", out, platform=plat)
    assert r.index_digest == rig.images["multi"]
    assert r.platform == f"linux/{arch}" + (f"/{variant}" if variant else "")
    manifest = check_layout(rig, out, r)
    assert layer_file(out, manifest, "data/arch") == arch.encode() + b"\n"
    with open(os.path.join(out, "index.json")) as f:
        (m,) = json.load(f)["manifests"]
    assert m["platform"]["architecture"] == arch
    # only the selected image's blobs are in the layout (the index is not)
    assert not os.path.exists(os.path.join(out, "blobs", "sha256", r.index_digest[7:]))


def test_docker_manifest_list(rig, env):
    raw = skopeo_inspect(f"docker://{rig.open.host}/test/multi-v2s2", rig.root, raw=True)
    assert raw["mediaType"] == remote.MT_DOCKER_LIST
    out = env.out("list")
    r = pull(f"{rig.open.host}/test/multi-v2s2", out, platform="linux/arm64/v8")
    assert r.index_digest == rig.images["multi-v2s2"]
    assert r.media_type == remote.MT_DOCKER_MANIFEST
    assert r.platform == "linux/arm64/v8"
    manifest = check_layout(rig, out, r)
    assert layer_file(out, manifest, "data/arch") == b"arm64\n"


def test_default_platform_is_host(rig, env, monkeypatch):
    monkeypatch.setattr(remote._platform, "machine", lambda: "aarch64")
    r = pull(f"{rig.open.host}/test/multi", env.out("host-arm"))
    assert r.platform == "linux/arm64/v8"
    monkeypatch.setattr(remote._platform, "machine", lambda: "x86_64")
    r = pull(f"{rig.open.host}/test/multi", env.out("host-amd"))
    assert r.platform == "linux/amd64"


def test_platform_not_found(rig, env):
    out = env.out("s390x")
    with pytest.raises(PlatformNotFound, match=r"linux/s390x.*available: linux/amd64, linux/arm64/v8"):
        pull(f"{rig.open.host}/test/multi", out, platform="linux/s390x")
    with pytest.raises(PlatformNotFound, match="single-platform linux/amd64"):
        pull(f"{rig.open.host}/test/busybox", out, platform="linux/arm64")
    with pytest.raises(PlatformNotFound):
        pull(f"{rig.open.host}/test/multi", out, platform="linux/arm64/v7")
    assert not os.path.exists(out)


def test_select_platform_rules():
    def d(arch, variant="", os_="linux", mt=remote.MT_OCI_MANIFEST):
        p = {
            "os": os_,
            "architecture": arch,
            **({"variant": variant} if variant else {}),
        }
        return {"mediaType": mt, "digest": f"{arch}{variant}{os_}", "platform": p}

    ms = [
        d("unknown", os_="unknown"),
        d("amd64"),
        d("arm", "v6"),
        d("arm", "v7"),
        d("arm64"),
    ]
    assert select_platform(ms, parse_platform("linux/arm64/v8"))["digest"] == "arm64linux"
    assert select_platform(ms, parse_platform("linux/arm/v7"))["digest"] == "armv7linux"
    assert select_platform(ms, parse_platform("linux/arm"))["digest"] == "armv7linux"
    assert select_platform(ms, parse_platform("linux/arm/v6"))["digest"] == "armv6linux"
    assert select_platform(ms, parse_platform("windows/amd64")) is None
    assert select_platform([d("arm", "v6")], parse_platform("linux/arm"))["digest"] == "armv6linux"
    assert str(parse_platform("linux/armv7l")) == "linux/arm/v7"
    with pytest.raises(ValueError):
        parse_platform("linux//x")


# ------------------------------------------------------------------------------------ digests


def test_digest_pinning(rig, env):
    ref = f"{rig.open.host}/test/busybox@{rig.images['busybox']}"
    r = pull(ref, env.out("pinned"))
    assert r.digest == rig.images["busybox"]
    assert r.ref_name == ref  # no tag: the full reference names it
    check_layout(rig, env.out("pinned"), r)
    # tag + digest: the digest is pulled, the tag names it
    r2 = pull(
        f"{rig.open.host}/test/busybox:whatever@{rig.images['busybox']}",
        env.out("both"),
    )
    assert r2.digest == rig.images["busybox"] and r2.ref_name == "whatever"
    # pinned index + platform
    r3 = pull(
        f"{rig.open.host}/test/multi@{rig.images['multi']}",
        env.out("idx"),
        platform="linux/arm64",
    )
    assert r3.index_digest == rig.images["multi"] and r3.platform == "linux/arm64/v8"
    missing = "sha256:" + "0" * 64
    with pytest.raises(ManifestNotFound, match="manifest sha256:0000"):
        pull(f"{rig.open.host}/test/busybox@{missing}", env.out("missing"))
    assert not os.path.exists(env.out("missing"))


def test_digest_mismatch(rig, env):
    big = max(rig.raw["corrupt"]["layers"], key=lambda x: x["size"])
    data = blob_data_path(rig.open, big["digest"])
    with open(data, "r+b") as f:  # same size, one byte flipped
        f.seek(big["size"] // 2)
        b = f.read(1)
        f.seek(big["size"] // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    out = env.out("corrupt")
    with pytest.raises(DigestMismatch, match=f"expected {big['digest']}, got sha256:"):
        pull(f"{rig.open.host}/test/corrupt", out)
    assert not os.path.exists(out)
    assert not os.path.exists(os.path.join(env.cache, "sha256", big["digest"][7:]))
    assert no_tmp_files(env.cache)
    parent = os.path.dirname(out)
    assert not os.path.exists(parent) or os.listdir(parent) == []


def test_blob_size_mismatch(rig, env):
    small = min(rig.raw["oversize"]["layers"], key=lambda x: x["size"])
    with open(blob_data_path(rig.open, small["digest"]), "ab") as f:
        f.write(b"trailing garbage")
    out = env.out("oversize")
    with pytest.raises(DigestMismatch, match=small["digest"]):
        pull(f"{rig.open.host}/test/oversize", out)
    assert not os.path.exists(out)
    assert not os.path.exists(os.path.join(env.cache, "sha256", small["digest"][7:]))
    assert no_tmp_files(env.root)


# ------------------------------------------------------------------------------------ errors


def test_unknown_image_and_tag(rig, env):
    with pytest.raises(ImageNotFound, match="test/nonexistent not found"):
        pull(f"{rig.open.host}/test/nonexistent", env.out("x"))
    with pytest.raises(ManifestNotFound, match="tag 'nope' not found"):
        pull(f"{rig.open.host}/test/busybox:nope", env.out("x"))
    # token registry: the anonymous token is good for pull, the repository just is not there
    with pytest.raises(ImageNotFound):
        pull(f"{rig.token.host}/test/nonexistent", env.out("x"))
    assert not os.path.exists(env.out("x"))


def test_unreachable(rig, env):
    port = free_port()
    t = time.monotonic()
    with pytest.raises(RegistryUnreachable, match="connection refused"):
        pull(f"127.0.0.1:{port}/test/busybox", env.out("x"))
    with pytest.raises(RegistryUnreachable, match="cannot resolve"):
        pull("nonexistent-host.invalid/test/busybox", env.out("x"))
    assert time.monotonic() - t < 30
    assert not os.path.exists(env.out("x"))


def test_plain_http_only_for_loopback_or_insecure(rig, env, monkeypatch):
    ip = non_loopback_ipv4()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address")
    with FaultProxy(rig.open.host, bind=ip) as px:
        with pytest.raises(InsecureRegistryError, match="does not speak HTTPS") as ei:
            pull(f"{px.host}/test/busybox", env.out("x"))
        assert f"--insecure-registry {px.host}" in ei.value.hint
        assert not px.requests  # nothing was sent in plain HTTP
        r = pull(f"{px.host}/test/busybox", env.out("ok"), insecure_registries=[px.host])
        assert r.digest == rig.images["busybox"]
        assert resolve(f"{px.host}/test/busybox", insecure_registries=[f"http://{px.host}"])
        monkeypatch.setenv("OCI2BIN_INSECURE_REGISTRIES", f"other.example, {px.host}")
        assert resolve(f"{px.host}/test/busybox") == rig.images["busybox"]
    assert not os.path.exists(env.out("x"))


def test_https_loopback_registry(rig, env, tls):
    r = pull(f"{tls.loop.host}/test/busybox", env.out("https"))
    assert r.digest == rig.images["busybox"]
    check_layout(rig, env.out("https"), r)


def test_https_certificate_verification(rig, env, tls, monkeypatch):
    if tls.ext is None:
        pytest.skip("no non-loopback IPv4 address")
    ref = f"{tls.ext.host}/test/busybox"
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(
        RegistryUnreachable,
        match="TLS error.*CERTIFICATE_VERIFY_FAILED|certificate verify failed",
    ):
        pull(ref, env.out("x"))
    assert not os.path.exists(env.out("x"))
    # --insecure-registry: TLS without verification
    r = pull(ref, env.out("insecure"), insecure_registries=[tls.ext.host])
    assert r.digest == rig.images["busybox"]
    # trusting the certificate makes it verify
    monkeypatch.setenv("SSL_CERT_FILE", tls.cert)
    r = pull(ref, env.out("verified"))
    check_layout(rig, env.out("verified"), r)


def _set_proxy_env(monkeypatch, **values):
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setenv(name.upper(), value)


def test_https_proxy(rig, env, tls, monkeypatch):
    if tls.ext is None:
        pytest.skip("no non-loopback IPv4 address")
    import base64

    monkeypatch.setenv("SSL_CERT_FILE", tls.cert)
    need = "Basic " + base64.b64encode(b"pu:p@ss").decode()
    with ForwardProxy(auth=need) as px:
        proxy_url = px.url.replace("http://", "http://pu:p%40ss@")
        _set_proxy_env(monkeypatch, https_proxy=proxy_url)
        r = pull(f"{tls.ext.host}/test/busybox", env.out("via-proxy"))
        check_layout(rig, env.out("via-proxy"), r)
        assert px.requests and set(px.requests) == {("CONNECT", tls.ext.host)}
        n = len(px.requests)
        pull(f"{tls.loop.host}/test/busybox", env.out("loopback"))  # loopback: never proxied
        _set_proxy_env(monkeypatch, https_proxy=proxy_url, no_proxy=tls.ext.bind)
        pull(f"{tls.ext.host}/test/busybox", env.out("no-proxy"))
        assert len(px.requests) == n
        _set_proxy_env(monkeypatch, https_proxy=px.url)  # no proxy credentials: 407
        with pytest.raises(RegistryUnreachable, match="407"):
            pull(f"{tls.ext.host}/test/busybox", env.out("x"))


def test_http_proxy_for_insecure_registry(rig, env, monkeypatch):
    ip = non_loopback_ipv4()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address")
    with FaultProxy(rig.open.host, bind=ip) as reg, ForwardProxy() as px:
        _set_proxy_env(monkeypatch, http_proxy=px.url)
        r = pull(
            f"{reg.host}/test/busybox",
            env.out("http-proxy"),
            insecure_registries=[reg.host],
        )
        assert r.digest == rig.images["busybox"]
        assert px.requests
        assert all(t.startswith(f"http://{reg.host}/v2/") for _, t in px.requests)


def test_error_is_user_error(rig, env):
    from oci2bin.errors import UserError

    with pytest.raises(UserError) as ei:
        pull(f"{rig.open.host}/test/nonexistent", env.out("x"))
    line = ei.value.line()
    assert "\n" not in line and "not found" in line and "check the image name" in line


# ------------------------------------------------------------------------------------ auth


def test_basic_auth_from_docker_config(rig, env):
    write_json(
        os.path.join(env.home, ".docker", "config.json"),
        {"auths": {rig.basic.host: auth_entry(rig.user, rig.password)}},
    )
    r = pull(f"{rig.basic.host}/test/busybox", env.out("basic"))
    check_layout(rig, env.out("basic"), r)


def test_basic_auth_required(rig, env):
    with pytest.raises(AuthRequired, match=f"authentication required .*{rig.basic.host}"):
        pull(f"{rig.basic.host}/test/busybox", env.out("x"))
    assert not os.path.exists(env.out("x"))


def test_basic_auth_denied(rig, env):
    write_json(
        os.path.join(env.home, ".docker", "config.json"),
        {"auths": {rig.basic.host: auth_entry(rig.user, "wrong")}},
    )
    with pytest.raises(AuthDenied, match="config.json"):
        pull(f"{rig.basic.host}/test/busybox", env.out("x"))
    assert not os.path.exists(env.out("x"))


def test_registry_auth_file(rig, env, monkeypatch):
    write_json(  # wrong creds in the docker config: REGISTRY_AUTH_FILE must win
        os.path.join(env.home, ".docker", "config.json"),
        {"auths": {rig.basic.host: auth_entry(rig.user, "wrong")}},
    )
    f = write_json(
        os.path.join(env.root, "auth.json"),
        {"auths": {rig.basic.host: auth_entry(rig.user, rig.password)}},
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", f)
    r = pull(f"{rig.basic.host}/test/busybox", env.out("raf"))
    check_layout(rig, env.out("raf"), r)


def _cred_helper(env, name: str, user: str, secret: str) -> str:
    log = os.path.join(env.root, name + ".log")
    p = os.path.join(env.bin, "docker-credential-" + name)
    with open(p, "w") as f:
        f.write(
            "#!/bin/sh\nread -r server\n"
            f'echo "$1 $server" >> {log}\n'
            f'printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\' "$server"\n'
        )
    os.chmod(p, os.stat(p).st_mode | stat.S_IEXEC)
    return log


def test_cred_helper(rig, env):
    log = _cred_helper(env, "test", rig.user, rig.password)
    write_json(
        os.path.join(env.home, ".docker", "config.json"),
        {"credHelpers": {rig.basic.host: "test", rig.token.host: "test"}},
    )
    r = pull(f"{rig.basic.host}/test/busybox", env.out("helper"))
    check_layout(rig, env.out("helper"), r)
    r = pull(f"{rig.token.host}/private/secret", env.out("helper-token"))
    check_layout(rig, env.out("helper-token"), r)
    with open(log) as f:
        calls = f.read().splitlines()
    assert f"get {rig.basic.host}" in calls and f"get {rig.token.host}" in calls


def test_creds_store(rig, env):
    _cred_helper(env, "store", rig.user, rig.password)
    write_json(os.path.join(env.home, ".docker", "config.json"), {"credsStore": "store"})
    r = pull(f"{rig.basic.host}/test/busybox", env.out("store"))
    assert r.digest == rig.images["busybox"]


def test_missing_cred_helper_is_a_clear_error(rig, env):
    from oci2bin.image.auth import CredentialHelperError

    write_json(
        os.path.join(env.home, ".docker", "config.json"),
        {"credHelpers": {rig.basic.host: "absent"}},
    )
    with pytest.raises(CredentialHelperError, match="docker-credential-absent not found"):
        pull(f"{rig.basic.host}/test/busybox", env.out("x"))
    assert not os.path.exists(env.out("x"))


def token_requests_since(rig, n: int) -> list[dict]:
    return rig.tokenserver.requests()[n:]


def test_token_auth_anonymous(rig, env):
    n = len(rig.tokenserver.requests())
    r = pull(f"{rig.token.host}/test/busybox", env.out("tok"))
    check_layout(rig, env.out("tok"), r)
    reqs = token_requests_since(rig, n)
    assert reqs, "the token server was not asked"
    for q in reqs:
        assert q["authenticated"] is False
        assert q["query"]["scope"] == ["repository:test/busybox:pull"]
        assert q["query"]["service"] == ["test-registry"]
    # the token is cached: one token request for manifest + 3 blobs (concurrent first use may add a few)
    assert len(reqs) <= 4


def test_token_auth_with_credentials_and_scope(rig, env):
    write_json(
        os.path.join(env.home, ".docker", "config.json"),
        {"auths": {rig.token.host: auth_entry(rig.user, rig.password)}},
    )
    n = len(rig.tokenserver.requests())
    r = pull(f"{rig.token.host}/private/secret", env.out("secret"))
    check_layout(rig, env.out("secret"), r)
    reqs = token_requests_since(rig, n)
    assert reqs and all(q["authenticated"] for q in reqs)
    assert {tuple(q["query"]["scope"]) for q in reqs} == {("repository:private/secret:pull",)}


def test_token_auth_required_for_private(rig, env):
    with pytest.raises(AuthRequired):
        pull(f"{rig.token.host}/private/secret", env.out("x"))
    assert not os.path.exists(env.out("x"))


def test_token_auth_denied(rig, env):
    write_json(
        os.path.join(env.home, ".docker", "config.json"),
        {"auths": {rig.token.host: auth_entry(rig.user, "wrong")}},
    )
    with pytest.raises(AuthDenied, match="rejected the credentials"):
        pull(f"{rig.token.host}/test/busybox", env.out("x"))
    assert not os.path.exists(env.out("x"))


# ------------------------------------------------------------------------------------ retries


def test_429_is_retried(rig, env):
    with FaultProxy(rig.open.host, fail_429=2, retry_after="0") as px:
        r = pull(f"{px.host}/test/busybox", env.out("429"))
    assert r.digest == rig.images["busybox"]
    assert [s for _, _, s in px.requests].count(429) == 2
    check_layout(rig, env.out("429"), r)


def test_5xx_is_retried(rig, env):
    with FaultProxy(rig.open.host, fail_429=3, fail_status=503, retry_after=None) as px:
        r = pull(f"{px.host}/test/busybox", env.out("503"))
    assert [s for _, _, s in px.requests].count(503) == 3
    check_layout(rig, env.out("503"), r)


def test_retry_after_is_honoured(rig, env):
    with FaultProxy(rig.open.host, fail_429=1, retry_after="1") as px:
        t = time.monotonic()
        r = resolve(f"{px.host}/test/busybox")
        assert time.monotonic() - t >= 0.9
    assert r == rig.images["busybox"]


def test_429_gives_up(rig, env, monkeypatch):
    monkeypatch.setattr(remote, "MAX_ATTEMPTS", 3)
    with (
        FaultProxy(rig.open.host, fail_429=100) as px,
        pytest.raises(RegistryHTTPError, match="429.*giving up after 3 attempts"),
    ):
        pull(f"{px.host}/test/busybox", env.out("x"))
    assert len(px.requests) == 3
    assert not os.path.exists(env.out("x"))


def test_dropped_connection_resumes(rig, env):
    with FaultProxy(rig.open.host, drop_blob_after=100_000) as px:
        r = pull(f"{px.host}/test/busybox", env.out("drop"))
    check_layout(rig, env.out("drop"), r)
    assert any(s < 0 for _, _, s in px.requests), "no connection was dropped"
    assert len(px.blob_gets()) == 4  # 3 blobs + 1 resumed
    ((path, rng),) = px.ranges
    assert "/blobs/sha256:" in path and rng.startswith("bytes=") and rng != "bytes=0-"


# ------------------------------------------------------------------------------------ cache & layout


def test_second_pull_uses_cache(rig, env):
    with FaultProxy(rig.open.host) as px:
        r1 = pull(f"{px.host}/test/busybox", env.out("one"))
        assert len(px.blob_gets()) == 3
        r2 = pull(f"{px.host}/test/busybox", env.out("two"))
        assert len(px.blob_gets()) == 3  # nothing downloaded again
    assert (r2.downloaded_blobs, r2.cached_blobs, r2.downloaded_bytes) == (0, 3, 0)
    assert r1.digest == r2.digest
    check_layout(rig, env.out("two"), r2)
    # pinned by digest and fully cached: no request at all
    with FaultProxy(rig.open.host) as px:
        r3 = pull(f"{px.host}/test/busybox@{r1.digest}", env.out("three"))
        assert px.requests == []
    check_layout(rig, env.out("three"), r3)


def test_keep_alive(rig, env):
    with FaultProxy(rig.open.host) as px:
        pull(
            f"{px.host}/test/multi",
            env.out("ka"),
            max_workers=1,
            platform="linux/arm64",
        )
    # index + manifest + 3 blobs over: the TLS probe, the main thread's and the one worker's connection
    assert len(px.requests) == 5
    assert px.connections == 3


def test_concurrent_pulls_share_cache(rig, env):
    results, errors = [], []

    def go(i):
        try:
            results.append(pull(f"{rig.open.host}/test/busybox", env.out(f"c{i}")))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.digest for r in results}) == 1
    for i in range(4):
        check_layout(rig, env.out(f"c{i}"), results[i])
    assert no_tmp_files(env.cache)


def test_pull_into_existing_layout(rig, env):
    out = env.out("shared")
    a = pull(f"{rig.open.host}/test/busybox", out, ref_name="busybox")
    b = pull(f"{rig.open.host}/test/multi", out, ref_name="multi", platform="linux/arm64")
    c = pull(f"{rig.open.host}/test/busybox:v1", out, ref_name="busybox")  # replaces "busybox"
    with open(os.path.join(out, "index.json")) as f:
        names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(f)["manifests"]]
    assert sorted(names) == ["busybox", "multi"]
    check_layout(rig, out, b)
    check_layout(rig, out, c)
    assert a.digest == c.digest


def test_empty_dest_dir_and_refusals(rig, env):
    out = env.out("empty")
    os.makedirs(out)
    r = pull(f"{rig.open.host}/test/busybox", out)
    check_layout(rig, out, r)
    junk = env.out("junk")
    os.makedirs(junk)
    with open(os.path.join(junk, "file"), "w") as f:
        f.write("x")
    with pytest.raises(LayoutError, match="neither empty nor an OCI image layout"):
        pull(f"{rig.open.host}/test/busybox", junk)
    assert os.listdir(junk) == ["file"]


def test_explicit_cache_dir(rig, env):
    cdir = os.path.join(env.root, "mycache")
    r = pull(f"{rig.open.host}/test/busybox", env.out("c"), cache=cdir)
    assert BlobCache(cdir).has(r.layers[0]["digest"], r.layers[0]["size"])
    assert not os.path.exists(env.cache)


# ------------------------------------------------------------------------------------ progress


def test_progress_callback(rig, env):
    seen = []
    r = pull(
        f"{rig.open.host}/test/busybox",
        env.out("p"),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen
    done, total = seen[-1]
    assert done == total == r.downloaded_bytes
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(seen))


def test_progress_quiet_without_tty(rig, env, capsys):
    pull(f"{rig.open.host}/test/busybox", env.out("q"))
    assert capsys.readouterr().err == ""


def test_progress_on_tty(rig, env, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    pull(f"{rig.open.host}/test/busybox", env.out("tty"))
    text = tty.getvalue()
    assert text.startswith("\rPulling ") and text.endswith("100%\x1b[K\n")
    assert "test/busybox:latest" in text


def test_cancelled_sibling_downloads_leave_nothing(rig, env, monkeypatch):
    """One failing blob stops the others; no temp files in the cache, no layout."""
    real = remote.RegistryClient.fetch_blob

    def flaky(self, repository, desc, cache, on_bytes=lambda n: None):
        if desc["size"] < 1000 and desc.get("mediaType", "").endswith("gzip"):
            raise RegistryError("boom")
        return real(self, repository, desc, cache, on_bytes)

    monkeypatch.setattr(remote.RegistryClient, "fetch_blob", flaky)
    with pytest.raises(RegistryError, match="boom"):
        pull(f"{rig.open.host}/test/busybox", env.out("x"))
    assert not os.path.exists(env.out("x"))
    assert no_tmp_files(env.root)


# ------------------------------------------------------------------------------------ blob cache


@pytest.fixture
def cache_dir():
    d = tempfile.mkdtemp(prefix="oci2bin-cache-test-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_blobcache_default_root(monkeypatch):
    monkeypatch.delenv("OCI2BIN_BLOB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert blobcache.default_root() == "/x/cache/oci2bin/blobs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    assert blobcache.default_root() == "/home/u/.cache/oci2bin/blobs"
    monkeypatch.setenv("OCI2BIN_BLOB_CACHE", "/elsewhere")
    assert blobcache.default_root() == "/elsewhere"


def test_blobcache_verifies_and_publishes_atomically(cache_dir):
    c = BlobCache(cache_dir)
    data = b"hello blob" * 1000
    dg = _digest(data)
    with c.writer(dg, len(data)) as w:
        w.write(data[:100])
        assert not c.has(dg)  # nothing visible before commit
        w.write(data[100:])
        path = w.commit()
    assert path == c.path(dg) == os.path.join(cache_dir, "sha256", dg[7:])
    assert c.has(dg, len(data)) and not c.has(dg, len(data) + 1)
    assert c.read_bytes(dg) == data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    # wrong content, wrong size, too much data: nothing published, no temp file left
    other = _digest(b"other")
    with pytest.raises(blobcache.BlobVerificationError, match="digest mismatch"):
        c.put_bytes(other, b"not other")
    with c.writer(other, 10) as w, pytest.raises(blobcache.BlobVerificationError):
        w.write(b"other")
        w.commit()
    with c.writer(other, 3) as w, pytest.raises(blobcache.BlobVerificationError):
        w.write(b"other")
    assert not c.has(other)
    assert os.listdir(os.path.join(cache_dir, "sha256")) == [dg[7:]]
    with pytest.raises(ValueError):
        c.path("sha256:short")
    with pytest.raises(ValueError):
        c.path("md5:" + "0" * 32)


def test_blobcache_concurrent_writers(cache_dir):
    data = os.urandom(1 << 20)
    dg = _digest(data)
    errors = []

    def write():
        try:
            c = BlobCache(cache_dir)  # separate instances: like separate processes
            with c.writer(dg, len(data)) as w:
                for i in range(0, len(data), 65536):
                    w.write(data[i : i + 65536])
                w.commit()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert os.listdir(os.path.join(cache_dir, "sha256")) == [dg[7:]]
    assert BlobCache(cache_dir).verify(dg, len(data))


def test_blobcache_verify_removes_corrupt(cache_dir):
    c = BlobCache(cache_dir)
    dg = _digest(b"abc")
    c.put_bytes(dg, b"abc")
    assert c.verify(dg, 3)
    with open(c.path(dg), "wb") as f:
        f.write(b"abd")
    assert not c.verify(dg, 3)
    assert not c.has(dg)


def test_blobcache_link_into_falls_back_to_copy(cache_dir, monkeypatch):
    c = BlobCache(cache_dir)
    dg = _digest(b"xyz")
    c.put_bytes(dg, b"xyz")
    dest = os.path.join(cache_dir, "out", "blob")
    os.makedirs(os.path.dirname(dest))
    c.link_into(dg, dest)
    assert os.path.samefile(dest, c.path(dg))
    os.unlink(dest)

    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    c.link_into(dg, dest)
    assert not os.path.samefile(dest, c.path(dg))
    with open(dest, "rb") as f:
        assert f.read() == b"xyz"
    assert os.listdir(os.path.dirname(dest)) == ["blob"]


def test_blobcache_prunes_stale_temp_files(cache_dir):
    d = os.path.join(cache_dir, "sha256")
    os.makedirs(d)
    old, fresh = os.path.join(d, ".tmp-old"), os.path.join(d, ".tmp-fresh")
    for p in (old, fresh):
        with open(p, "w") as f:
            f.write("partial")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    c = BlobCache(cache_dir)
    c.put_bytes(_digest(b"q"), b"q")
    assert not os.path.exists(old)
    assert os.path.exists(fresh)  # may belong to a running writer
