"""A Debian bookworm image with CPython 3.11 (`python3`), the base of examples/monorepo's app image.

Built with mmdebstrap (root mode, packages from this machine's apt mirrors) straight into a layer tar, then written
as a one-layer OCI layout with python (no Docker). Reproducible for a given set of package versions
(SOURCE_DATE_EPOCH); cached under $OCI2BIN_RIG_CACHE/pants-e2e/ keyed by this file and the package versions.
First build ~30-60 s (downloads ~25 MB of .debs), then instant.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.rig import images

PACKAGES = ("python3",)
SOURCE_DATE_EPOCH = images.SOURCE_DATE_EPOCH
CREATED = "2023-11-14T22:13:20Z"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> list[str]:
    return [t for t in ("mmdebstrap", "apt-cache") if shutil.which(t) is None]


def cache_key() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps(images.package_versions(PACKAGES), sort_keys=True).encode())
    return h.hexdigest()[:20]


def _blob(layout: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _write_layout(layout: Path, layer_tar: bytes) -> None:
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    layer = _blob(layout, gzip.compress(layer_tar, 6, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"PATH={PATH}", "LANG=C.UTF-8"], "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": CREATED, "created_by": f"mmdebstrap --variant=minbase --include={','.join(PACKAGES)}"}
        ],
    }
    cfg = _blob(
        layout, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json"
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg,
        "layers": [layer],
    }
    desc = _blob(
        layout, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]}
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))


def build() -> Path:
    """The OCI layout (tag `latest`) of the python base image, built on first use."""
    root = images.cache_root() / "pants-e2e"
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"python3-{cache_key()}"
    if (out / "index.json").exists():
        return out
    with open(root / ".python3.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "index.json").exists():
            return out
        mirrors = images.apt_mirrors()
        if not mirrors:
            raise images.RigError("no bookworm deb source in the apt configuration")
        with tempfile.TemporaryDirectory(prefix="py3-base-", dir=root) as work:
            tar = os.path.join(work, "rootfs.tar")
            env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), TMPDIR=work, LC_ALL="C")
            slim = [
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
            ]
            subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}", *slim,
                 "--skip=output/dev", "--customize-hook=rm -f $1/etc/hostname $1/etc/resolv.conf",
                 "bookworm", tar, *mirrors],
                check=True,
                env=env,
                timeout=600,
            )  # fmt: skip
            tmp_out = Path(work) / "layout"
            _write_layout(tmp_out, Path(tar).read_bytes())
            os.replace(tmp_out, out)
    return out


if __name__ == "__main__":
    print(build())
