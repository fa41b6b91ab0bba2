"""Image readers against inputs made by real tools (umoci, skopeo) and hand-built archive layouts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from oci2bin.errors import UserError
from oci2bin.image import archive, layout
from oci2bin.image.model import Platform, open_uncompressed
from oci2bin.image.source import opened, parse_source


def _layer_names(image) -> list[str]:
    import tarfile

    names = []
    for blob in image.layers:
        with open_uncompressed(blob) as f, tarfile.open(fileobj=f, mode="r|") as tf:
            names += [m.name for m in tf]
    return names


def test_oci_layout(images):
    im = layout.read_layout(layout.DirTree(images.bb_oci), "latest")
    idx = json.loads(Path(os.path.join(images.bb_oci, "index.json")).read_text())
    assert im.digest == idx["manifests"][0]["digest"]
    assert im.manifest_bytes is not None
    assert im.platform == Platform("linux", "amd64")
    assert im.run_config["Entrypoint"] == ["/bin/busybox"]
    assert len(im.layers) == 1 and im.layers[0].compression() == "gzip"
    assert "bin/busybox" in _layer_names(im)


def test_oci_layout_unknown_tag(images):
    with pytest.raises(UserError, match="no image tagged 'nope'"):
        layout.read_layout(layout.DirTree(images.bb_oci), "nope")


def test_oci_archive_same_as_layout(images):
    a = layout.read_layout(layout.DirTree(images.bb_oci))
    b = archive.read_oci_archive(images.bb_oci_archive)
    assert a.digest == b.digest and a.config_digest == b.config_digest
    assert [x.digest for x in a.layers] == [x.digest for x in b.layers]
    assert b.layers[0].read_bytes() == a.layers[0].read_bytes()


@pytest.mark.parametrize("which", ["bb_docker", "bb_docker25", "bb_legacy_docker"])
def test_docker_archives(images, which):
    src = layout.read_layout(layout.DirTree(images.bb_oci))
    im = archive.read_docker_archive(getattr(images, which))
    assert im.config_digest == src.config_digest
    assert len(im.layers) == 1
    assert "bin/busybox" in _layer_names(im)
    assert im.source_name.startswith("localhost/bb:")
    if which == "bb_docker25":  # the OCI manifest inside is reused, so the image digest survives
        assert im.digest == src.digest
    if which == "bb_legacy_docker":  # uncompressed layer: digest == diff_id
        assert im.layers[0].compression() == "none"
        assert im.layers[0].digest == im.config["rootfs"]["diff_ids"][0]


def test_docker_archive_two_images(images):
    with pytest.raises(UserError, match="holds 2 images"):
        archive.read_docker_archive(images.multi_docker)
    a = archive.read_docker_archive(images.multi_docker, "localhost/multi:latest")
    assert len(a.layers) == 4
    b = archive.read_docker_archive(images.multi_docker, "localhost/bb")
    assert len(b.layers) == 1
    with pytest.raises(UserError, match="no image tagged"):
        archive.read_docker_archive(images.multi_docker, "other:1")


def test_zstd_layers(images):
    im = layout.read_layout(layout.DirTree(images.bb_zstd_oci))
    assert im.layers[0].compression() == "zstd"
    assert "bin/busybox" in _layer_names(im)


def test_nested_index_platform_selection(images):
    tree = layout.DirTree(images.index_oci)
    amd = layout.read_layout(tree, None, Platform.parse("linux/amd64"))
    arm = layout.read_layout(tree, None, Platform.parse("aarch64"))
    assert amd.platform.architecture == "amd64"
    assert arm.platform.architecture == "arm64" and arm.platform.variant == "v8"
    assert arm.config_digest != amd.config_digest
    with pytest.raises(UserError, match="no image for platform linux/s390x"):
        layout.read_layout(tree, None, Platform.parse("linux/s390x"))


def test_digest_verified_while_reading(images, tmp_path):
    bad = str(tmp_path / "bad-oci")
    shutil.copytree(images.bb_oci, bad)
    im = layout.read_layout(layout.DirTree(bad))
    path = os.path.join(bad, "blobs/sha256", im.layers[0].digest[7:])
    data = bytearray(Path(path).read_bytes())
    data[100] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    im = layout.read_layout(layout.DirTree(bad))
    with pytest.raises(UserError, match="digest mismatch"):
        im.layers[0].read_bytes()


def test_missing_blob_is_reported(images, tmp_path):
    bad = str(tmp_path / "bad-oci")
    shutil.copytree(images.bb_oci, bad)
    im = layout.read_layout(layout.DirTree(bad))
    os.unlink(os.path.join(bad, "blobs/sha256", im.layers[0].digest[7:]))
    with pytest.raises(UserError, match="missing"):
        layout.read_layout(layout.DirTree(bad))


def test_source_forms(images):
    forms = {
        f"oci:{images.bb_oci}:latest": "bb:latest",
        f"oci:{images.bb_oci}": "bb:latest",
        images.bb_oci: "bb:latest",
        f"oci-archive:{images.bb_oci_archive}": "bb:latest",
        f"docker-archive:{images.bb_docker}": "localhost/bb:latest",
        images.bb_docker: "localhost/bb:latest",
        images.bb_oci_archive: "bb:latest",
    }
    digests = set()
    for spec, name in forms.items():
        with opened(spec) as im:
            assert im.source_name == name, spec
            digests.add(im.config_digest)
    assert len(digests) == 1


def test_parse_source():
    assert parse_source("alpine:latest").transport == "registry"
    s = parse_source("oci:/nonexistent/dir:v1")
    assert (s.transport, s.location, s.tag) == ("oci", "/nonexistent/dir", "v1")
    s = parse_source("docker-archive:/x/y.tar")
    assert (s.transport, s.location, s.tag) == ("docker-archive", "/x/y.tar", None)
    assert parse_source("podman:localhost/x:1").transport == "podman"
    with pytest.raises(UserError):
        parse_source("")


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.tar"
    p.write_bytes(b"hello" * 200)
    with pytest.raises(UserError):
        archive.read_docker_archive(str(p))


@pytest.mark.parametrize(
    "index",
    [
        "{not json",
        '{"manifests": [{"digest": "sha256:' + "0" * 64 + '"}]}',
        '{"manifests": [{"size": 3}]}',
        '{"manifests": "nope"}',
        '{"manifests": [{"digest": "sha256:../../../etc/passwd", "size": 1}]}',
    ],
)
def test_malformed_index_is_a_user_error(images, tmp_path, index):
    bad = tmp_path / "bad-oci"
    shutil.copytree(images.bb_oci, bad)
    (bad / "index.json").write_text(index)
    with pytest.raises(UserError):
        layout.read_layout(layout.DirTree(str(bad)))


def test_malformed_manifest_is_a_user_error(images, tmp_path):
    import hashlib

    bad = tmp_path / "bad-oci"
    shutil.copytree(images.bb_oci, bad)
    data = b'{"schemaVersion": 2, "config": {"digest": 5}, "layers": 3}'
    dg = hashlib.sha256(data).hexdigest()
    (bad / "blobs/sha256" / dg).write_bytes(data)
    (bad / "index.json").write_text(
        json.dumps({"manifests": [{"digest": "sha256:" + dg, "size": len(data)}]})
    )
    with pytest.raises(UserError):
        layout.read_layout(layout.DirTree(str(bad)))
