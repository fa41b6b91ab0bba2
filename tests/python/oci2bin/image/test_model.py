from __future__ import annotations

import io
import json

import pytest
from oci2bin.errors import UserError
from oci2bin.image.model import (
    MT_OCI_LAYER,
    Blob,
    Image,
    Platform,
    bytes_blob,
    sha256_digest,
    sniff_compression,
    split_digest,
)


def test_platform_parse():
    assert Platform.parse("x86_64") == Platform("linux", "amd64")
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert Platform.parse("aarch64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform.parse("linux/arm64/v7").matches(Platform("linux", "arm64", "v8"))
    with pytest.raises(UserError):
        Platform.parse("a/b/c/d")


def test_split_digest_rejects_traversal():
    assert split_digest("sha256:" + "a" * 64) == ("sha256", "a" * 64)
    for bad in ("sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64, "nope"):
        with pytest.raises(UserError):
            split_digest(bad)


def test_blob_verification():
    data = b"hello world"
    good = Blob(sha256_digest(data), len(data), MT_OCI_LAYER, lambda: io.BytesIO(data))
    assert good.read_bytes() == data
    short = Blob(sha256_digest(data), len(data) + 1, MT_OCI_LAYER, lambda: io.BytesIO(data))
    with pytest.raises(UserError, match="bytes"):
        short.read_bytes()
    wrong = Blob(sha256_digest(b"other"), len(data), MT_OCI_LAYER, lambda: io.BytesIO(data))
    with pytest.raises(UserError, match="digest mismatch"):
        wrong.read_bytes()


def test_generated_manifest_and_replace():
    cfg = {
        "architecture": "arm64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    im = Image(json.dumps(cfg).encode(), ())
    m = json.loads(im.manifest())
    assert m["config"]["digest"] == im.config_digest
    assert im.platform.architecture == "arm64"
    layer = bytes_blob(b"x" * 10, MT_OCI_LAYER)
    im2 = im.replace(layers=(layer,))
    assert json.loads(im2.manifest())["layers"][0]["digest"] == layer.digest
    assert im2.digest != im.digest


def test_bad_config():
    with pytest.raises(UserError):
        Image(b"not json", ())


def test_sniff():
    assert sniff_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert sniff_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert sniff_compression(b"usr/") == "none"
