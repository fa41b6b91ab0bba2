"""`oci2bin update BIN` for a binary built from a registry reference: the reference is resolved against the
registry (loopback rig, tests/rig/registry.py), so a new digest under the same tag is picked up even when a local
podman holds a stale copy of that name; an unchanged tag leaves the file untouched; a name only a local engine has
(a locally built image) is still rebuilt from the engine."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from oci2bin.polyglot.reader import Polyglot

from tests.rig.registry import RegistryRig, missing_tools, skopeo, skopeo_inspect


@pytest.fixture(scope="module")
def rig():
    miss = missing_tools()
    if miss:
        pytest.skip(f"registry rig needs {', '.join(miss)}")
    with RegistryRig(kinds=("open",)) as rig:
        yield rig


@pytest.fixture
def image_b(cli, images, tmp_path):
    """An image unlike images.bb_oci (another command): a different manifest digest."""
    lay = tmp_path.parent / f"{tmp_path.name}-b"
    cli(
        "mkimage",
        "--base",
        f"oci:{images.bb_oci}",
        "--cmd",
        json.dumps(["echo", "b"]),
        "-o",
        str(lay),
        check=True,
    )
    yield str(lay)
    shutil.rmtree(lay, ignore_errors=True)


def _env(podman) -> dict:
    return {
        k: podman.env[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TMPDIR", "XDG_RUNTIME_DIR")
    }


def test_update_pulls_the_tag_again(cli, images, rig, image_b, podman, tmp_path):
    ref = f"{rig.open.host}/x:1"
    rig.push(f"{images.bb_oci}:latest", ref)
    digest_a = skopeo_inspect(f"docker://{ref}", rig.root)["Digest"]
    env = _env(podman)
    r = cli(ref, "bin", env=env)
    assert r.returncode == 0, r.stderr
    assert Polyglot(str(tmp_path / "bin")).metadata["digest"] == digest_a

    # a local podman copy of A under the same name: stale once B is pushed, and update must not use it
    p = podman.run("pull", "-q", "--tls-verify=false", ref)
    assert p.returncode == 0, p.stderr
    try:
        # unchanged tag: "up to date", the file is not rewritten
        st = os.stat(tmp_path / "bin")
        r = cli("update", "bin", env=env)
        assert r.returncode == 0, r.stderr
        assert "bin is up to date" in r.stderr
        st2 = os.stat(tmp_path / "bin")
        assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)

        rig.push(f"{image_b}:latest", ref)
        digest_b = skopeo_inspect(f"docker://{ref}", rig.root)["Digest"]
        assert digest_b != digest_a
        r = cli("update", "bin", env=env)
        assert r.returncode == 0, r.stderr
        new = Polyglot(str(tmp_path / "bin"))
        assert new.metadata["digest"] == digest_b and new.metadata["image"] == ref
        assert f"({digest_a[:19]} -> {digest_b[:19]})" in r.stderr
        assert sorted(os.listdir(tmp_path)) == ["bin"]  # no temp layout left next to it
    finally:
        podman.run("rmi", "-f", ref)


def test_update_local_engine_image(cli, images, rig, podman, tmp_path):
    """A name the registry does not have but podman does (built locally): rebuilt from podman's copy."""
    ref = f"{rig.open.host}/local-only:1"
    env = _env(podman)
    p = podman.run("pull", "-q", f"oci:{images.bb_oci}:latest")
    assert p.returncode == 0, p.stderr
    image_id = p.stdout.strip()
    assert podman.run("tag", image_id, ref).returncode == 0
    try:
        r = cli(f"podman:{ref}", "bin", env=env)
        assert r.returncode == 0, r.stderr
        r = cli("update", "bin", env=env)
        assert r.returncode == 0, r.stderr
        assert "using the local engine's copy" in r.stderr and "image unchanged" in r.stderr
        assert sorted(os.listdir(tmp_path)) == ["bin"]
    finally:
        podman.run("rmi", "-f", image_id)


def test_update_missing_everywhere(cli, images, rig, tmp_path):
    ref = f"{rig.open.host}/gone:1"
    rig.push(f"{images.bb_oci}:latest", ref)
    assert cli(ref, "bin").returncode == 0
    before = (tmp_path / "bin").read_bytes()
    # the tag is deleted from the registry (and no engine has it): one clear error, the file untouched
    digest = skopeo_inspect(f"docker://{ref}", rig.root)["Digest"]
    skopeo(["skopeo", "delete", "--tls-verify=false", f"docker://{rig.open.host}/gone@{digest}"], rig.root)
    r = cli("update", "bin", env={"OCI2BIN_NO_ENGINE": "1"})
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"oci2bin: cannot pull {ref}"), r.stderr
    assert (tmp_path / "bin").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["bin"]
