"""`oci2bin push BIN REF`: native push (OCI distribution API) to loopback registries (tests/rig/registry.py),
checked with skopeo inspect and by pulling it back with oci2bin.image.remote.pull."""

from __future__ import annotations

import base64
import json
import os

import pytest
from oci2bin.image import remote
from oci2bin.image.source import opened
from oci2bin.polyglot.reader import Polyglot

from tests.rig.registry import RegistryRig, missing_tools, skopeo, skopeo_inspect


@pytest.fixture(scope="module")
def rig():
    miss = missing_tools()
    if miss:
        pytest.skip(f"registry rig needs {', '.join(miss)}")
    with RegistryRig(kinds=("open", "basic")) as rig:
        yield rig


@pytest.fixture
def binary(cli, images, tmp_path):
    cli(f"oci:{images.multi_oci}", "multi", check=True)
    return str(tmp_path / "multi")


def _auth_file(tmp_path, host, user, pw) -> dict:
    path = tmp_path / "auth.json"
    entry = base64.b64encode(f"{user}:{pw}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": entry}}}))
    return {
        "REGISTRY_AUTH_FILE": str(path),
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(tmp_path / "nodocker"),
    }


def _one_error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("oci2bin: ") and lines[0].endswith(")"), lines[0]
    return lines[0]


def test_push_open_registry(cli, rig, binary, tmp_path):
    poly = Polyglot(binary)
    image = poly.image()
    ref = f"{rig.open.host}/test/pushed:v1"
    r = cli("push", binary, ref)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{rig.open.host}/test/pushed@{image.digest}"
    assert f"pushed {len(image.layers) + 1} blobs (0 already there)" in r.stderr

    info = skopeo_inspect(f"docker://{ref}", rig.root)
    assert info["Digest"] == image.digest
    assert info["Layers"] == [b.digest for b in image.layers]

    layout = tmp_path / "back"
    res = remote.pull(ref, str(layout), progress=False, cache=str(tmp_path / "cache"))
    assert res.digest == image.digest
    with opened(f"oci:{layout}") as back:
        assert back.config_bytes == image.config_bytes
        assert [b.digest for b in back.layers] == [b.digest for b in image.layers]

    # pushing again (another tag): every blob is skipped after a HEAD
    r = cli("push", binary, f"{rig.open.host}/test/pushed:v2")
    assert r.returncode == 0, r.stderr
    assert f"pushed 0 blobs ({len(image.layers) + 1} already there)" in r.stderr
    assert skopeo_inspect(f"docker://{rig.open.host}/test/pushed:v2", rig.root)["Digest"] == image.digest


def test_push_basic_auth(cli, rig, binary, tmp_path):
    ref = f"{rig.basic.host}/team/app:1"
    env = _auth_file(tmp_path, rig.basic.host, rig.user, rig.password)
    r = cli("push", binary, ref, env=env)
    assert r.returncode == 0, r.stderr
    digest = Polyglot(binary).image().digest
    cmd = [
        "skopeo",
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"{rig.user}:{rig.password}",
        f"docker://{ref}",
    ]
    info = json.loads(skopeo(cmd, rig.root))
    assert info["Digest"] == digest

    # without or with wrong credentials: one line, exit 1
    r = cli(
        "push", binary, ref, env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json"), "HOME": str(tmp_path)}
    )
    assert r.returncode == 1 and "authentication required" in _one_error(r)
    env = _auth_file(tmp_path, rig.basic.host, rig.user, "wrong")
    r = cli("push", binary, ref, env=env)
    assert r.returncode == 1 and "rejected" in _one_error(r)


def test_push_bad_inputs(cli, rig, binary, tmp_path):
    notbin = tmp_path / "notbin"
    notbin.write_text("x" * 200)
    cases = [
        (("push", str(tmp_path / "missing"), f"{rig.open.host}/a/b:1"), "cannot read"),
        (("push", str(notbin), f"{rig.open.host}/a/b:1"), "not an oci2bin binary"),
        (("push", binary, "Not A Ref!"), "invalid"),
        (("push", binary, "127.0.0.1:1/a/b:1"), "unreachable"),
        (("push", binary, f"{rig.open.host}/a/b@sha256:" + "0" * 64), "names digest"),
        (("push", binary), "required"),
    ]
    before = sorted(os.listdir(tmp_path))
    for args, text in cases:
        r = cli(*args)
        assert r.returncode != 0, args
        assert text in _one_error(r), (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == before


def test_push_token_auth(cli, binary, tmp_path):
    miss = missing_tools()
    if miss:
        pytest.skip(f"registry rig needs {', '.join(miss)}")
    with RegistryRig(kinds=("token",)) as rig:
        ref = f"{rig.token.host}/team/app:1"
        r = cli("push", binary, ref, env=_auth_file(tmp_path, rig.token.host, rig.user, rig.password))
        assert r.returncode == 0, r.stderr
        digest = Polyglot(binary).image().digest
        cmd = [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"{rig.user}:{rig.password}",
            f"docker://{ref}",
        ]
        assert json.loads(skopeo(cmd, rig.root))["Digest"] == digest
        # anonymous tokens may only pull
        r = cli(
            "push",
            binary,
            ref,
            env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json"), "HOME": str(tmp_path)},
        )
        assert r.returncode == 1
        _one_error(r)
