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


def test_records_are_values():
    """Platform, Blob and Image behave as the frozen dataclasses they replaced: equality (Blob: whatever
    opens it), hashing, immutability, replace()."""
    assert Platform() == Platform("linux", "amd64", None)
    assert hash(Platform.parse("arm64")) == hash(Platform("linux", "arm64"))
    assert {Platform("linux", "amd64"): 1}[Platform.parse("x86_64")] == 1
    with pytest.raises(AttributeError):
        Platform().os = "windows"
    with pytest.raises(TypeError):
        Platform("linux", "amd64", None, "extra")
    with pytest.raises(TypeError):
        Blob("sha256:" + "0" * 64, 1, MT_OCI_LAYER)  # no opener
    a = bytes_blob(b"abc", MT_OCI_LAYER)
    b = Blob(a.digest, 3, MT_OCI_LAYER, lambda: io.BytesIO(b"abc"), {"k": "v"})
    assert a == b and hash(a) == hash(b)
    assert a != a.replace(media_type="application/octet-stream")
    assert b.replace(size=4).size == 4 and b.size == 3
    assert b.replace(size=4).annotations == {"k": "v"}
    assert "opener" not in repr(b) and a.digest in repr(b)
    with pytest.raises(TypeError):
        a.replace(colour="red")
    cfg = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    im = Image(cfg, (a,), source_name="x:1")
    assert im == Image(cfg, (b,)) and im.source_name == "x:1"
    assert im.replace(source_name="y").config == im.config
    assert im.replace(layers=()).manifest_bytes is None
    import copy
    import pickle

    p = Platform("linux", "arm64", "v8")
    assert pickle.loads(pickle.dumps(p)) == p and copy.copy(p) == p
    assert copy.copy(im) == im and copy.copy(im).platform == im.platform


def test_small_digests_without_hashlib():
    """The built-in SHA-256 used for small inputs gives hashlib's digests; large inputs use hashlib."""
    import hashlib

    from oci2bin import hashing

    for data in (b"", b"abc", bytes(range(256)) * 1000):
        assert hashing.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert hashing.new("sha256", 100 << 20).name == "sha256"
    assert hashing.new("sha512", 10).name == "sha512"
