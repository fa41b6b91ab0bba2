"""Loader embedding (layer / labels) and its inverse, used by `oci2bin reconstruct`."""

from __future__ import annotations

import pytest
from oci2bin.errors import UserError
from oci2bin.image import archive
from oci2bin.mutate import embed_loader


@pytest.fixture
def bb(images):
    return archive.read_docker_archive(images.bb_docker)


def test_layer_roundtrip(bb, loader_bytes, tmp_path):
    out = embed_loader.embed_layer(bb, loader_bytes, "x86_64", str(tmp_path), ".meta/dir")
    assert len(out.layers) == 2
    labels = out.run_config["Labels"]
    assert (
        labels["oci2bin.loader.strategy"] == "layer" and labels["oci2bin.loader.path"] == "/.meta/dir/loader"
    )
    data, arch = embed_loader.extract(out)
    assert data == loader_bytes and arch == "x86_64"
    back = embed_loader.strip(out)
    assert back.config_bytes == bb.config_bytes and back.digest == bb.digest  # byte-for-byte restore


def test_labels_roundtrip(bb, loader_bytes):
    out = embed_loader.embed_labels(bb, loader_bytes, "x86_64", chunk_size=4096, prefix="my.pfx")
    labels = out.run_config["Labels"]
    assert int(labels["my.pfx.chunks"]) == -(-len(loader_bytes) // 4096)
    assert embed_loader.extract(out, "my.pfx")[0] == loader_bytes
    with pytest.raises(UserError, match="no oci2bin.loader"):
        embed_loader.extract(out)
    assert embed_loader.strip(out, "my.pfx").digest == bb.digest


def test_tampered_loader_detected(bb, loader_bytes):
    out = embed_loader.embed_labels(bb, loader_bytes, "x86_64")
    cfg = out.config
    cfg["config"]["Labels"]["oci2bin.loader.sha256"] = "0" * 64
    bad = out.with_config(cfg)
    with pytest.raises(UserError, match="does not match"):
        embed_loader.extract(bad)


def test_strip_without_restore_info(bb, loader_bytes, tmp_path):
    out = embed_loader.embed_layer(bb, loader_bytes, "x86_64", str(tmp_path))
    cfg = out.config
    del cfg["config"]["Labels"]["oci2bin.loader.original.config"]
    stripped = embed_loader.strip(out.with_config(cfg))
    assert len(stripped.layers) == 1 and stripped.config["rootfs"] == bb.config["rootfs"]
    assert not any(k.startswith("oci2bin.loader") for k in (stripped.run_config.get("Labels") or {}))
