"""Image -> Image transforms: add files, merge, strip, squash, recompress; diff_ids always consistent."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest
from oci2bin.errors import UserError
from oci2bin.image import layout
from oci2bin.image.model import (
    MT_OCI_LAYER,
    Image,
    Platform,
    bytes_blob,
    open_uncompressed,
)
from oci2bin.mutate.add_files import add_files
from oci2bin.mutate.compress import recompress
from oci2bin.mutate.config import ConfigChanges, apply_config, scratch_image
from oci2bin.mutate.layertar import AddSpec, ctr_path
from oci2bin.mutate.merge import merge
from oci2bin.mutate.squash import squash
from oci2bin.mutate.strip import DEFAULT_PREFIXES, detect, strip
from oci2bin_testrig import MULTILAYER_ABSENT, MULTILAYER_EXPECTED  # pants: no-infer-dep
from oci2bin_testrig import tar_bytes  # pants: no-infer-dep


def check_diff_ids(image: Image) -> None:
    ids = image.config["rootfs"]["diff_ids"]
    assert len(ids) == len(image.layers)
    for blob, want in zip(image.layers, ids):
        h = hashlib.sha256()
        with open_uncompressed(blob) as f:
            while data := f.read(1 << 20):
                h.update(data)
        assert "sha256:" + h.hexdigest() == want
    m = json.loads(image.manifest())
    assert m["config"]["digest"] == image.config_digest
    assert [x["digest"] for x in m["layers"]] == [b.digest for b in image.layers]


def fs_of(image: Image) -> dict[str, tuple]:
    """Apply layers like a union fs (whiteouts), return path -> (type, data/linkname, mode)."""
    fs: dict[str, tuple] = {}
    for blob in image.layers:
        with open_uncompressed(blob) as f, tarfile.open(fileobj=f, mode="r|") as tf:
            for m in tf:
                name = m.name.strip("/").removeprefix("./")
                d, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    for k in [k for k in fs if k.startswith(d + "/")]:
                        del fs[k]
                    continue
                if base.startswith(".wh."):
                    gone = (d + "/" if d else "") + base[4:]
                    for k in [k for k in fs if k == gone or k.startswith(gone + "/")]:
                        del fs[k]
                    continue
                if m.isreg():
                    fs[name] = ("file", tf.extractfile(m).read(), m.mode)
                elif m.islnk():
                    fs[name] = ("file", fs[m.linkname.strip("/")][1], m.mode)
                elif m.issym():
                    fs[name] = ("sym", m.linkname, m.mode)
                elif m.isdir():
                    fs[name] = ("dir", None, m.mode)
    return fs


@pytest.fixture
def multi(images) -> Image:
    return layout.read_layout(layout.DirTree(images.multi_oci))


@pytest.fixture
def bb(images) -> Image:
    return layout.read_layout(layout.DirTree(images.bb_oci))


def test_add_files(bb, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/a.conf").write_text("a=1\n")
    (tmp_path / "conf/sub").mkdir()
    (tmp_path / "conf/sub/b").write_text("b\n")
    (tmp_path / "conf/ln").symlink_to("a.conf")
    (tmp_path / "single").write_text("single\n")
    os.chmod(tmp_path / "single", 0o600)
    work = tmp_path / "work"
    work.mkdir()
    adds = [
        AddSpec.parse(f"{tmp_path}/conf:/etc/myapp"),
        AddSpec.parse(f"{tmp_path}/single:/run/secret:0400"),
    ]
    out = add_files(bb, adds, str(work))
    assert len(out.layers) == 2 and out.layers[0] == bb.layers[0]
    check_diff_ids(out)
    fs = fs_of(out)
    assert fs["etc/myapp/a.conf"][1] == b"a=1\n"
    assert fs["etc/myapp/sub/b"][1] == b"b\n"
    assert fs["etc/myapp/ln"][:2] == ("sym", "a.conf")
    assert fs["run/secret"] == ("file", b"single\n", 0o400)
    assert fs["bin/busybox"][0] == "file"
    # deterministic: same inputs -> same layer digest
    work2 = tmp_path / "work2"
    work2.mkdir()
    assert add_files(bb, adds, str(work2)).layers[1].digest == out.layers[1].digest


def test_add_spec_errors(tmp_path):
    with pytest.raises(UserError):
        AddSpec.parse("nocolon")
    with pytest.raises(UserError):
        ctr_path("/a/../../etc")
    with pytest.raises(UserError, match="no such file"):
        add_files(
            scratch_image(Platform()),
            [AddSpec(str(tmp_path / "missing"), "/x")],
            str(tmp_path),
        )


def test_config_changes(bb):
    out = apply_config(
        bb,
        ConfigChanges(
            entrypoint=["/bin/sh"],
            env=(("GREETING", "bye"), ("NEW", "1")),
            labels=(("a", "b"),),
        ),
    )
    rc = out.run_config
    assert rc["Entrypoint"] == ["/bin/sh"] and "Cmd" not in rc
    assert "GREETING=bye" in rc["Env"] and "GREETING=hi" not in rc["Env"] and "NEW=1" in rc["Env"]
    assert rc["Labels"]["a"] == "b" and rc["Labels"]["org.opencontainers.image.title"] == "bb"
    assert out.layers == bb.layers


def test_merge(bb, multi):
    out = merge(bb, multi)
    assert len(out.layers) == 5
    assert out.run_config["Entrypoint"] == ["/app/bin/hello.sh"]
    check_diff_ids(out)


def test_squash_multilayer(multi, tmp_path):
    before = fs_of(multi)
    out = squash(multi, str(tmp_path))
    assert len(out.layers) == 1
    check_diff_ids(out)
    after = fs_of(out)
    assert after == before
    for path, content in MULTILAYER_EXPECTED.items():
        assert after[path][1] == content.encode()
    for path in MULTILAYER_ABSENT:
        assert path not in after
    # no whiteout entries remain in the squashed layer
    with (
        open_uncompressed(out.layers[0]) as f,
        tarfile.open(fileobj=f, mode="r|") as tf,
    ):
        assert not any(".wh." in m.name for m in tf)


def test_squash_hardlink_to_deleted_target(tmp_path):
    l1 = tar_bytes(
        [
            ("a", "dir", None, 0o755),
            ("a/file", "file", "data\n", 0o640),
            ("a/link", "link", "a/file", 0o640),
        ]
    )
    l2 = tar_bytes([("a/.wh.file", "file", b"", 0o644)])
    l3 = tar_bytes([("b", "file", "b\n", 0o644)])
    blobs = tuple(bytes_blob(x, MT_OCI_LAYER) for x in (l1, l2, l3))
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
    }
    im = Image(json.dumps(cfg).encode(), blobs)
    before = fs_of(im)
    assert "a/file" not in before and before["a/link"][1] == b"data\n"
    out = squash(im, str(tmp_path), "zstd")
    assert out.layers[0].compression() == "zstd"
    assert fs_of(out) == before
    check_diff_ids(out)


def test_strip(bb, tmp_path):
    out = strip(bb, list(DEFAULT_PREFIXES), str(tmp_path))
    check_diff_ids(out)
    fs = fs_of(out)
    assert "usr/share/doc/busybox/README" not in fs and "tmp/junk" not in fs
    assert "usr/share/doc" in fs and "tmp" in fs  # the directories themselves stay
    assert "var/cache/apt/archives/x.deb" not in fs
    assert fs["bin/sh"][1] == fs["bin/busybox"][1]
    # nothing to strip -> same image, byte for byte
    assert strip(bb, ["nothing/here/"], str(tmp_path)) is bb


def test_strip_auto_detects_dpkg(bb):
    assert "var/cache/apt/" in detect(bb)


def test_strip_auto_python_stdlib_dirs(tmp_path):
    """SPEC: usr/lib/python3.X/{test,tests,unittest,turtledemo,...}/ go; the rest of the stdlib stays."""
    lib = "usr/lib/python3.11/"
    keep = ["os.py", "json/__init__.py", "unittest.py.bak", "testing/x.py", "idlelib/idle.py"]
    drop = [
        "test/test_os.py",
        "tests/x.py",
        "unittest/__init__.py",
        "unittest/test/test_case.py",
        "turtledemo/clock.py",
        "idlelib/idle_test/test_x.py",
        "lib2to3/tests/data/x.py",
        "tkinter/test/x.py",
    ]
    blob = bytes_blob(tar_bytes([(lib + n, "file", n + "\n", 0o644) for n in keep + drop]), MT_OCI_LAYER)
    cfg = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [blob.digest]}}
    im = Image(json.dumps(cfg).encode(), (blob,))
    found = detect(im)
    for d in ("test/", "tests/", "unittest/", "turtledemo/"):
        assert lib + d in found
    fs = fs_of(strip(im, [], str(tmp_path), auto=True))
    assert set(fs) == {lib + n for n in keep}
    # no os.py, no stdlib: nothing Python-specific is detected
    bare = bytes_blob(tar_bytes([(lib + "test/x.py", "file", "x\n", 0o644)]), MT_OCI_LAYER)
    assert not [p for p in detect(Image(json.dumps(cfg).encode(), (bare,))) if "python" in p]


def test_strip_keeps_needed_hardlink_target(tmp_path):
    l1 = tar_bytes(
        [
            ("usr/share/doc/x", "file", "x\n", 0o644),
            ("bin/x", "link", "usr/share/doc/x", 0o644),
        ]
    )
    blob = bytes_blob(l1, MT_OCI_LAYER)
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [blob.digest]},
    }
    im = Image(json.dumps(cfg).encode(), (blob,))
    out = strip(im, ["usr/share/doc/"], str(tmp_path))
    assert fs_of(out)["bin/x"][1] == b"x\n"


def test_recompress(bb, tmp_path):
    out = recompress(bb, "zstd", str(tmp_path))
    assert out.layers[0].compression() == "zstd"
    assert out.config_bytes == bb.config_bytes  # diff_ids unchanged
    check_diff_ids(out)
    back = recompress(out, "gzip", str(tmp_path))
    check_diff_ids(back)
    assert recompress(bb, "gzip", str(tmp_path)) is bb


def test_scratch_image():
    im = scratch_image(Platform.parse("arm64"))
    assert im.platform.architecture == "arm64" and im.layers == ()
    assert json.loads(im.manifest())["layers"] == []
    io.BytesIO()
