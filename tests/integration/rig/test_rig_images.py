"""The rig's images are valid images: real consumers (skopeo, podman, python tarfile) accept them, and each one
holds what its recipe promises. Root only (builds use mmdebstrap's root mode)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.rig import images

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="rig images are built as root"),
]
EPOCH_ISO = "2023-11-14T22:13:20Z"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


SKOPEO_READABLE = [n for n in images.NAMES if images.SPECS[n].skopeo_readable]


@pytest.mark.parametrize("name", images.NAMES)
def test_layout_blobs_verify(name):
    assert images.verify_layout(name) >= 3


@pytest.mark.parametrize("name", SKOPEO_READABLE)
def test_skopeo_inspect(name):
    layout = images.build(name)
    info = json.loads(sh("skopeo", "inspect", f"oci:{layout}:latest"))
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert info["Created"] == EPOCH_ISO
    assert info["Layers"]
    cfg = json.loads(sh("skopeo", "inspect", "--config", f"oci:{layout}:latest"))
    assert all(h["created"] == EPOCH_ISO for h in cfg["history"])
    assert len(cfg["rootfs"]["diff_ids"]) == len(info["Layers"])
    meta = images.meta(name)
    assert meta["build_seconds"] >= 0 and meta["key"] == images.key(name)


ARCHIVABLE = [n for n in SKOPEO_READABLE if images.SPECS[n].docker_archive_ok]


@pytest.mark.parametrize("name", ARCHIVABLE)
def test_docker_archive_passes_real_consumers(name):
    res = images.check_docker_archive(images.docker_archive(name))
    assert res == {k: None for k in res}, res
    assert set(res) == {"skopeo-inspect", "skopeo-copy-oci", "podman-load", "python-strict"}


@pytest.mark.parametrize("name", ["busybox", "multilayer", "redis"])
def test_oci_archive(name):
    arc = images.oci_archive(name)
    info = json.loads(sh("skopeo", "inspect", f"oci-archive:{arc}:latest"))
    assert info["Digest"] == json.loads(sh("skopeo", "inspect", images.ref(name)))["Digest"]


def test_index2_oci_archive_keeps_both_platforms():
    arc = images.oci_archive("index2")
    raw = json.loads(sh("skopeo", "inspect", "--raw", f"oci-archive:{arc}:latest"))
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]


# ------------------------------------------------------------------------------------------ podman


@pytest.fixture(scope="module")
def podman():
    """podman (root) with a throwaway store and the config these VMs need (runc, ulimits, no network)."""
    if not shutil.which("podman"):
        pytest.fail("podman missing: run tests/rig/install-deps.sh")
    runroot = images.podman_runroot("pm")
    with images.scratch_dir(images.cache_root() / "work" / f"podman-{os.getpid()}") as d:
        conf = d / "containers.conf"
        conf.write_text(
            textwrap.dedent("""\
            [containers]
            netns = "none"
            default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
            [engine]
            runtime = "runc"
            """)
        )
        env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        base = [
            "podman",
            "--root",
            str(d / "root"),
            "--runroot",
            str(runroot),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]

        def run(*args, check=True):
            p = subprocess.run(base + list(args), capture_output=True, text=True, env=env, check=False)
            if check and p.returncode:
                raise AssertionError(
                    f"podman {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[-600:]}"
                )
            return p.stdout + p.stderr

        try:
            yield run
        finally:
            run("rm", "-a", "-f", check=False)
            run("rmi", "-a", "-f", check=False)
            shutil.rmtree(runroot, ignore_errors=True)


IMG = "{image}"


@pytest.mark.parametrize(
    "name,args,want",
    [
        ("busybox", [IMG, "echo", "hi from busybox"], "hi from busybox"),
        ("scratch", [IMG], "hello from scratch"),
        ("multilayer", [IMG], "hello v2 hi world"),
        ("busybox-zstd", [IMG, "echo", "zstd ok"], "zstd ok"),
        ("busybox-httpd", ["--entrypoint", "id", IMG], "uid=65534"),
        ("redis", ["--entrypoint", "redis-server", IMG, "--version"], "Redis server v=7"),
        ("postgres", ["--entrypoint", "postgres", IMG, "--version"], "PostgreSQL) 15"),
        ("nginx", ["--entrypoint", "nginx", IMG, "-v"], "nginx/1.22"),
        ("memcached", ["--entrypoint", "memcached", IMG, "--version"], "memcached 1.6"),
        ("apache2", ["--entrypoint", "apache2", IMG, "-v"], "Apache/2.4"),
        ("caddy", [IMG, "caddy", "version"], "2.6."),  # no entrypoint: the args replace the CMD
    ],
)
def test_podman_loads_and_runs(podman, name, args, want):
    image = f"localhost/{images.canonical(name)}:latest"
    if images.SPECS[images.canonical(name)].docker_archive_ok:
        out = podman("load", "-q", "-i", str(images.docker_archive(name)))
        assert image in out
    else:  # zstd layers (no docker-archive possible): podman load of the oci-archive
        out = podman("load", "-q", "-i", str(images.oci_archive(name)))
        image_id = out.split()[-1].split(":")[-1]
        podman("tag", image_id, image)
    got = podman("run", "--rm", *[image if a == IMG else a for a in args])
    assert want in got


# ------------------------------------------------------------------------------------ per-image facts


def layer_members(name, platform=None):
    out = []
    for blob, media in images.layer_blobs(name, platform):
        with images.open_layer(blob) as t:
            out.append((media, {m.name: m for m in t.getmembers()}, t))
    return out


def read(name, path, platform=None):
    for blob, _ in reversed(images.layer_blobs(name, platform)):
        with images.open_layer(blob) as t:
            try:
                m = t.getmember(path)
            except KeyError:
                continue
            return m, (t.extractfile(m).read() if m.isfile() or m.islnk() else None)
    raise KeyError(path)


def test_busybox_applets_are_hard_links():
    ((media, members, _),) = layer_members("busybox")
    assert media == "application/vnd.oci.image.layer.v1.tar+gzip"
    links = [m for m in members.values() if m.islnk()]
    assert len(links) > 200
    target = links[0].linkname
    assert all(m.linkname == target for m in links)
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert not any(n.startswith("./") for n in members)
    assert {"dev", "proc", "sys"} <= {n for n, m in members.items() if m.isdir()}


def test_scratch_has_only_the_binary():
    ((_, members, _),) = layer_members("scratch")
    assert list(members) == ["busybox"]
    assert images.config("scratch")["config"]["User"] == "1000:1000"


def test_zstd_layers_are_zstd():
    for blob, media in images.layer_blobs("busybox-zstd"):
        assert media == "application/vnd.oci.image.layer.v1.tar+zstd"
        assert blob.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"


def test_v2s2_is_the_busybox_image_with_docker_media_types():
    idx = json.loads((images.build("v2s2") / "index.json").read_text())
    assert idx["manifests"][0]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    with pytest.raises(images.RigError, match="skopeo 1.9.3 cannot read"):
        images.docker_archive("v2s2")
    assert [d["digest"] for d in images.manifest("v2s2")["layers"]] == [
        d["digest"] for d in images.manifest("busybox")["layers"]
    ]


def test_v2s2_uses_docker_media_types():
    m = images.manifest("v2s2")
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {layer["mediaType"] for layer in m["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }


def test_index2_arm64_entry_is_real_aarch64():
    layout = images.build("index2")
    assert images.config("index2", "arm64")["architecture"] == "arm64"
    m, data = read("index2", "bin/busybox", "arm64")
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 183  # EM_AARCH64
    _, amd = read("index2", "bin/busybox", "amd64")
    assert int.from_bytes(amd[18:20], "little") == 62  # EM_X86_64
    qemu = shutil.which("qemu-aarch64-static")
    if not qemu:
        pytest.fail("qemu-aarch64-static missing: run tests/rig/install-deps.sh")
    d = images.cache_root() / "work" / f"bb-arm64-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    exe = d / "busybox"
    exe.write_bytes(data)
    try:
        exe.chmod(0o755)
        assert sh(qemu, str(exe), "echo", "aarch64 ok").strip() == "aarch64 ok"
    finally:
        shutil.rmtree(d)
    assert layout.is_dir()


def _passwd(name):
    _, data = read(name, "etc/passwd")
    return {
        ln.split(":")[0]: (int(ln.split(":")[2]), int(ln.split(":")[3]))
        for ln in data.decode().splitlines()
        if ln
    }


@pytest.mark.parametrize(
    "name,user,owned,mode",
    [
        ("redis", "redis", "etc/redis/redis.conf", 0o640),
        ("redis", "redis", "data", 0o755),
        ("postgres", "postgres", "var/lib/postgresql/data", 0o700),
        ("postgres", "postgres", "run/postgresql", 0o3777),
        ("memcached", None, None, None),
        ("nginx", None, None, None),
        ("apache2", None, None, None),
        ("caddy", None, None, None),  # runs as root like the official image: /config and /data stay root's
    ],
)
def test_debian_image_owners_and_hygiene(name, user, owned, mode):
    ((_, members, _),) = layer_members(name)
    if owned:
        uid, gid = _passwd(name)[user]
        m = members[owned]
        assert (m.uid, m.gid, m.mode) == (uid, gid, mode), (owned, m.uid, m.gid, oct(m.mode))
        assert uid != 0
    assert not [
        n for n, m in members.items() if m.ischr() or m.isblk() or m.isfifo()
    ], "device nodes in image"
    for junk in ("etc/hostname", "etc/resolv.conf", "var/cache/ldconfig/aux-cache"):
        assert junk not in members
    assert not [n for n in members if n.startswith("usr/share/man/") and members[n].isfile()]
    assert "dev" in members and not [n for n in members if n.startswith("dev/")]


@pytest.mark.parametrize(
    "name,user,ports,volumes",
    [
        ("redis", "redis", ["6379/tcp"], ["/data"]),
        ("postgres", "postgres", ["5432/tcp"], ["/var/lib/postgresql/data"]),
        ("memcached", "memcache", ["11211/tcp"], []),
        ("nginx", "", ["80/tcp"], []),
        ("apache2", "", ["80/tcp"], []),
        ("caddy", "", ["443/tcp", "80/tcp"], ["/config", "/data"]),
        ("busybox-httpd", "65534:65534", ["8080/tcp"], []),
    ],
)
def test_service_configs(name, user, ports, volumes):
    c = images.config(name)["config"]
    assert c.get("User", "") == user
    assert sorted(c["ExposedPorts"]) == ports
    assert sorted(c.get("Volumes") or {}) == volumes
    if name == "caddy":  # no entrypoint script: the CMD runs the caddy binary on the baked Caddyfile
        assert c.get("Entrypoint") is None
        assert c["Cmd"] == ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
        m, data = read(name, "usr/bin/caddy")
        assert m.mode & 0o111 and data[:4] == b"\x7fELF"
        _, caddyfile = read(name, "etc/caddy/Caddyfile")
        assert "admin off" in caddyfile.decode() and ":{$CADDY_PORT:80} {" in caddyfile.decode()
        for vol in volumes:  # the volumes exist in the image, as XDG_CONFIG_HOME / XDG_DATA_HOME
            assert read(name, vol.lstrip("/"))[0].isdir()
        assert {"XDG_CONFIG_HOME=/config", "XDG_DATA_HOME=/data"} <= set(c["Env"])
    elif name != "busybox-httpd":
        ep = (c.get("Entrypoint") or []) + (c.get("Cmd") or [])
        script = next(a for a in ep if a.endswith(".sh") or a.endswith("-foreground"))
        path = script.lstrip("/") if script.startswith("/") else f"usr/local/bin/{script}"
        m, data = read(name, path)
        assert m.mode & 0o111 and data.startswith(b"#!/bin/sh")


# ------------------------------------------------------------------------------------ the cache itself


def test_builds_are_reproducible_and_cached(tmp_path):
    """A fresh cache rebuilds byte-identical images; a second build() is a cache hit; parallel builders
    of one image build it once."""
    cache = images.cache_root() / "work" / f"repro-{os.getpid()}"
    env = {**os.environ, "OCI2BIN_RIG_CACHE": str(cache), "PYTHONPATH": os.pathsep.join(sys.path)}
    code = "import sys; from tests.rig import images; " "print(images.build(sys.argv[1]))"
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, "multilayer"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=str(Path(images.RECIPES).parents[2]),
            )
            for _ in range(3)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        assert len({o.strip() for o, _ in outs}) == 1
        times = (cache / "build-times.jsonl").read_text().splitlines()
        assert [json.loads(t)["name"] for t in times] == ["multilayer"], times
        assert any("waiting for another process" in e for _, e in outs)
        fresh = Path(outs[0][0].strip())
        assert (fresh / "index.json").read_bytes() == (images.build("multilayer") / "index.json").read_bytes()
        assert sorted(p.name for p in (fresh / "blobs/sha256").iterdir()) == sorted(
            p.name for p in (images.build("multilayer") / "blobs/sha256").iterdir()
        )
        assert not list((cache / "work").iterdir())  # work dirs removed
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_missing_tool_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "tool_path", lambda: str(tmp_path))
    with pytest.raises(images.MissingToolError, match=r"mmdebstrap.*apt-get install"):
        images.check_tools("redis")
    with pytest.raises(images.MissingToolError, match=r"umoci"):
        images.check_tools("busybox")


def test_mirrors_come_from_apt_config(tmp_path):
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (d / "a.sources").write_text(
        textwrap.dedent("""\
        Types: deb deb-src
        URIs: file:///srv/mirror/debian
        Suites: bookworm bookworm-updates
        Components: main contrib
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

        Types: deb
        URIs: file:///srv/mirror/old
        Suites: bullseye
        Components: main

        Types: deb
        Enabled: no
        URIs: file:///srv/mirror/disabled
        Suites: bookworm
        Components: main
        """)
    )
    (tmp_path / "etc/apt/sources.list").write_text(
        "# comment\ndeb [arch=amd64] file:///srv/mirror/security bookworm-security main\n"
        "deb-src file:///srv/mirror/debian bookworm main\n"
    )
    assert images.apt_mirrors(root=str(tmp_path)) == [
        "deb file:///srv/mirror/debian bookworm main contrib",
        "deb file:///srv/mirror/debian bookworm-updates main contrib",
        "deb file:///srv/mirror/security bookworm-security main",
    ]
    assert images.apt_mirrors(), "this machine's apt config has no bookworm deb source"
