"""Test rig: real images built with umoci + skopeo, podman configured for this kind of machine.

Everything lives under one session directory (tempfile.mkdtemp(prefix="oci2bin-test-")) removed at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from oci2bin.polyglot import format as _fmt

EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"


def have(*tools: str) -> str | None:
    """None if all tools are on PATH, else the reason to skip."""
    missing = [t for t in tools if not shutil.which(t)]
    return f"needs {', '.join(missing)} (not installed)" if missing else None


def run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 20):
            h.update(data)
    return "sha256:" + h.hexdigest()


# ---------------------------------------------------------------------------------------------------- ELF


def synthetic_elf(machine: int = _fmt.EM_AARCH64, align: int = 0x10000, interp: bool = False) -> bytes:
    """A minimal static ELF64 (not runnable): header, 2-3 program headers, some bytes."""
    phnum = 3 if interp else 2
    body = bytearray(0x20000)
    eh = _fmt.EHDR.pack(
        b"\x7fELF\x02\x01\x01" + b"\0" * 9,
        2,
        machine,
        1,
        0x400000,
        64,
        0x1000,
        0,
        64,
        56,
        phnum,
        64,
        5,
        4,
    )
    body[0:64] = eh
    phs = [
        _fmt.PHDR.pack(_fmt.PT_LOAD, 5, 0, 0x400000, 0x400000, 0x1000, 0x1000, align),
        _fmt.PHDR.pack(_fmt.PT_LOAD, 6, 0x10000, 0x410000, 0x410000, 0x100, 0x200, align),
    ]
    if interp:
        phs.append(_fmt.PHDR.pack(_fmt.PT_INTERP, 4, 0x200, 0x400200, 0x400200, 0x20, 0x20, 1))
    for i, ph in enumerate(phs):
        body[64 + 56 * i : 64 + 56 * (i + 1)] = ph
    return bytes(body[: 0x10000 + 0x100])


# ---------------------------------------------------------------------------------------------------- layer tars


def tar_bytes(entries: list[tuple]) -> bytes:
    """entries: (name, kind, data_or_target, mode); kind in file|dir|sym|link. Deterministic, uncompressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = EPOCH
            ti.mode = mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = payload
                tf.addfile(ti)
            elif kind == "link":
                ti.type = tarfile.LNKTYPE
                ti.linkname = payload
                tf.addfile(ti)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def busybox_layer() -> bytes:
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    return tar_bytes(
        [
            ("bin", "dir", None, 0o755),
            ("bin/busybox", "file", bb, 0o755),
            ("bin/sh", "link", "bin/busybox", 0o755),
            ("bin/ls", "link", "bin/busybox", 0o755),
            ("bin/vi", "link", "bin/busybox", 0o755),
            ("etc", "dir", None, 0o755),
            ("etc/passwd", "file", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
            ("etc/group", "file", "root:x:0:\n", 0o644),
            ("tmp", "dir", None, 0o1777),
            ("tmp/junk", "file", "junk\n", 0o644),
            ("usr", "dir", None, 0o755),
            ("usr/share", "dir", None, 0o755),
            ("usr/share/doc", "dir", None, 0o755),
            ("usr/share/doc/busybox", "dir", None, 0o755),
            ("usr/share/doc/busybox/README", "file", "docs\n", 0o644),
            ("var/lib/dpkg/status", "file", "Package: busybox\n", 0o644),
            ("var/cache/apt/archives/x.deb", "file", "deb\n", 0o644),
        ]
    )


def multilayer_layers() -> list[bytes]:
    """Layers 2..4 of the whiteout image (layer 1 is busybox_layer())."""
    l2 = tar_bytes(
        [
            ("etc/motd", "file", "motd v1\n", 0o644),
            ("app", "dir", None, 0o755),
            ("app/bin", "dir", None, 0o755),
            ("app/bin/hello.sh", "file", '#!/bin/sh\necho "hello v1 $*"\n', 0o755),
            ("app/data", "dir", None, 0o755),
            ("app/data/a.txt", "file", "a\n", 0o644),
            ("app/data/b.txt", "file", "b\n", 0o644),
            ("opt/cfg/one.conf", "file", "one\n", 0o644),
            ("opt/cfg/two.conf", "file", "two\n", 0o644),
            ("srv/olddir/x", "file", "x\n", 0o644),
            ("srv/olddir/y", "file", "y\n", 0o644),
        ]
    )
    l3 = tar_bytes(
        [
            ("etc/.wh.motd", "file", b"", 0o644),
            ("bin/.wh.vi", "file", b"", 0o644),
            ("app/data/.wh.b.txt", "file", b"", 0o644),
            ("srv/.wh.olddir", "file", b"", 0o644),
            ("opt/cfg/.wh..wh..opq", "file", b"", 0o644),
            ("opt/cfg/three.conf", "file", "three\n", 0o644),
        ]
    )
    l4 = tar_bytes(
        [
            ("etc/motd", "file", "motd v2\n", 0o644),
            ("app/bin/hello.sh", "file", '#!/bin/sh\necho "hello v2 $*"\n', 0o755),
            ("app/current", "sym", "bin", 0o777),
        ]
    )
    return [l2, l3, l4]


MULTILAYER_EXPECTED = {
    "etc/motd": "motd v2\n",
    "app/bin/hello.sh": '#!/bin/sh\necho "hello v2 $*"\n',
    "app/data/a.txt": "a\n",
    "opt/cfg/three.conf": "three\n",
}
MULTILAYER_ABSENT = [
    "bin/vi",
    "app/data/b.txt",
    "srv/olddir",
    "srv/olddir/x",
    "opt/cfg/one.conf",
    "opt/cfg/two.conf",
]


# ---------------------------------------------------------------------------------------------------- images


@dataclass
class Images:
    root: str
    bb_oci: str  # OCI layout dir, tag latest (gzip layer)
    bb_docker: str  # skopeo docker-archive, RepoTags localhost/bb:latest
    bb_oci_archive: str  # skopeo oci-archive
    bb_zstd_oci: str  # OCI layout with a zstd layer
    bb_docker25: str  # Docker 25+ style docker-archive (blobs/ + index.json + manifest.json)
    bb_legacy_docker: str  # old `docker save` style: <id>/layer.tar, uncompressed
    multi_oci: str  # 4 layers with whiteouts
    index_oci: str  # index.json -> nested image index with amd64 + arm64
    multi_docker: str  # docker-archive holding two images


def _umoci_image(
    layout: str,
    layers: list[bytes],
    work: str,
    config_args: list[str],
    arch: str = "amd64",
) -> None:
    run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", f"{layout}:latest"])
    for i, data in enumerate(layers):
        p = os.path.join(work, f"layer-{os.path.basename(layout)}-{i}.tar")
        with open(p, "wb") as f:
            f.write(data)
        run(
            [
                "umoci", "raw", "add-layer", "--image", f"{layout}:latest",
                "--history.created", CREATED, "--history.created_by", f"layer {i}", p,
            ]
        )  # fmt: skip
    run(
        [
            "umoci", "config", "--image", f"{layout}:latest", "--created", CREATED,
            "--history.created", CREATED, "--os", "linux", "--architecture", arch, *config_args,
        ]
    )  # fmt: skip
    run(["umoci", "gc", "--layout", layout])


def _read_layout(layout: str) -> tuple[dict, bytes, dict]:
    index = json.loads(Path(os.path.join(layout, "index.json")).read_text())
    d = index["manifests"][0]
    data = Path(os.path.join(layout, "blobs/sha256", d["digest"][7:])).read_bytes()
    return index, data, json.loads(data)


def _put_blob(layout: str, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", digest[7:]), "wb") as f:
        f.write(data)
    return digest, len(data)


def make_index_layout(src: str, dest: str) -> None:
    """Copy `src` and add an arm64 twin (same layers, relabelled config); index.json -> nested image index."""
    shutil.copytree(src, dest)
    _, mdata, manifest = _read_layout(dest)
    cfg = json.loads(Path(os.path.join(dest, "blobs/sha256", manifest["config"]["digest"][7:])).read_text())
    cfg["architecture"] = "arm64"
    cfg["variant"] = "v8"
    cdig, csize = _put_blob(dest, json.dumps(cfg).encode())
    m2 = dict(manifest, config=dict(manifest["config"], digest=cdig, size=csize))
    m2dig, m2size = _put_blob(dest, json.dumps(m2).encode())
    mdig = "sha256:" + hashlib.sha256(mdata).hexdigest()
    mt = "application/vnd.oci.image.manifest.v1+json"
    idx = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": mt,
                "digest": mdig,
                "size": len(mdata),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": mt,
                "digest": m2dig,
                "size": m2size,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }
    idig, isize = _put_blob(dest, json.dumps(idx).encode())
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": idig,
                "size": isize,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(top, f)


def make_docker25_archive(layout: str, dest: str, repotag: str) -> None:
    """A `docker save` (Docker 25+) style archive from an OCI layout: blobs/, index.json, manifest.json."""
    index, _mdata, manifest = _read_layout(layout)
    names = ["oci-layout", "index.json"]
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        blobs = [
            manifest["config"]["digest"],
            *[x["digest"] for x in manifest["layers"]],
            index["manifests"][0]["digest"],
        ]
        for dg in blobs:
            tf.add(os.path.join(layout, "blobs/sha256", dg[7:]), f"blobs/sha256/{dg[7:]}")
        for n in names:
            tf.add(os.path.join(layout, n), n)
        mj = json.dumps(
            [
                {
                    "Config": "blobs/sha256/" + manifest["config"]["digest"][7:],
                    "RepoTags": [repotag],
                    "Layers": ["blobs/sha256/" + x["digest"][7:] for x in manifest["layers"]],
                }
            ]
        ).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(mj)
        tf.addfile(ti, io.BytesIO(mj))


def make_legacy_archive(layout: str, dest: str, repotag: str) -> None:
    """Old `docker save` layout: <id>.json config, <id>/layer.tar (uncompressed), repositories."""
    _, _, manifest = _read_layout(layout)
    cfg = Path(os.path.join(layout, "blobs/sha256", manifest["config"]["digest"][7:])).read_bytes()
    cid = hashlib.sha256(cfg).hexdigest()
    with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT) as tf:
        layers = []
        for i, x in enumerate(manifest["layers"]):
            data = Path(os.path.join(layout, "blobs/sha256", x["digest"][7:])).read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            lid = hashlib.sha256(f"{i}{cid}".encode()).hexdigest()
            ti = tarfile.TarInfo(f"{lid}/layer.tar")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
            layers.append(f"{lid}/layer.tar")
        ti = tarfile.TarInfo(f"{cid}.json")
        ti.size = len(cfg)
        tf.addfile(ti, io.BytesIO(cfg))
        mj = json.dumps([{"Config": f"{cid}.json", "RepoTags": [repotag], "Layers": layers}]).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(mj)
        tf.addfile(ti, io.BytesIO(mj))


def make_two_image_archive(a: str, b: str, dest: str) -> None:
    """A docker-archive holding two images (manifest.json with two entries), merged from two docker25 tars."""
    entries, seen = [], set()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for src in (a, b):
            with tarfile.open(src) as tf:
                entries += json.load(tf.extractfile("manifest.json"))
                for m in tf.getmembers():
                    if m.name.startswith("blobs/") and m.name not in seen:
                        seen.add(m.name)
                        out.addfile(m, tf.extractfile(m))
        mj = json.dumps(entries).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(mj)
        out.addfile(ti, io.BytesIO(mj))


def build_images(root: str) -> Images:
    os.makedirs(root, exist_ok=True)
    work = os.path.join(root, "work")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, TMPDIR=work)

    def p(*a: str) -> str:
        return os.path.join(root, *a)

    bb_cfg = [
        "--config.entrypoint", "/bin/busybox", "--config.cmd", "sh",
        "--config.env", "PATH=/bin", "--config.env", "GREETING=hi",
        "--config.workingdir", "/tmp", "--config.label", "org.opencontainers.image.title=bb",
    ]  # fmt: skip
    _umoci_image(p("bb-oci"), [busybox_layer()], work, bb_cfg)
    run(["skopeo", "copy", "-q", "oci:" + p("bb-oci") + ":latest", "docker-archive:" + p("bb.docker.tar") + ":localhost/bb:latest"], env=env)  # fmt: skip
    run(["skopeo", "copy", "-q", "oci:" + p("bb-oci") + ":latest", "oci-archive:" + p("bb.oci-archive.tar") + ":latest"], env=env)  # fmt: skip
    run(["skopeo", "copy", "-q", "--dest-compress-format", "zstd", "oci:" + p("bb-oci") + ":latest", "oci:" + p("bb-zstd-oci") + ":latest"], env=env)  # fmt: skip
    make_docker25_archive(p("bb-oci"), p("bb.docker25.tar"), "localhost/bb:latest")
    make_legacy_archive(p("bb-oci"), p("bb.legacy.tar"), "localhost/bb:legacy")
    _umoci_image(
        p("multi-oci"),
        [busybox_layer(), *multilayer_layers()],
        work,
        [
            "--config.entrypoint",
            "/app/bin/hello.sh",
            "--config.cmd",
            "world",
            "--config.workingdir",
            "/app",
        ],
    )
    make_index_layout(p("bb-oci"), p("index-oci"))
    make_docker25_archive(p("multi-oci"), p("multi.docker25.tar"), "localhost/multi:latest")
    make_two_image_archive(p("bb.docker25.tar"), p("multi.docker25.tar"), p("two.docker.tar"))
    shutil.rmtree(work, ignore_errors=True)
    return Images(
        root=root,
        bb_oci=p("bb-oci"),
        bb_docker=p("bb.docker.tar"),
        bb_oci_archive=p("bb.oci-archive.tar"),
        bb_zstd_oci=p("bb-zstd-oci"),
        bb_docker25=p("bb.docker25.tar"),
        bb_legacy_docker=p("bb.legacy.tar"),
        multi_oci=p("multi-oci"),
        index_oci=p("index-oci"),
        multi_docker=p("two.docker.tar"),
    )


# ---------------------------------------------------------------------------------------------------- podman


@dataclass
class Podman:
    env: dict
    root: str

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return run(["podman", *args], env=self.env)

    def cleanup(self) -> None:
        subprocess.run(
            ["podman", "rmi", "-a", "-f"],
            env=self.env,
            capture_output=True,
            check=False,
        )
        subprocess.run(
            ["podman", "system", "reset", "-f"],
            env=self.env,
            capture_output=True,
            check=False,
        )


def podman_setup(root: str) -> Podman:
    """Config that works on these machines (see the project's setup notes): runc not crun, ulimits within the
    hard limits, no network namespace, storage (vfs) and temp files under `root`."""
    os.makedirs(root, exist_ok=True)
    conf = os.path.join(root, "containers.conf")
    storage = os.path.join(root, "storage.conf")
    with open(conf, "w") as f:
        f.write(
            '[containers]\nnetns = "none"\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            '[engine]\nruntime = "runc"\n'
        )
    with open(storage, "w") as f:
        f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n')
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp, exist_ok=True)
    env = dict(
        os.environ,
        CONTAINERS_CONF=conf,
        CONTAINERS_STORAGE_CONF=storage,
        TMPDIR=tmp,
        XDG_RUNTIME_DIR=os.path.join(root, "xdg"),
    )
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    return Podman(env, root)
