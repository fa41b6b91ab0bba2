"""The polyglot file against its readers: our reader, tar, skopeo, podman, and the kernel."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from oci2bin.errors import UserError
from oci2bin.image import archive, layout
from oci2bin.image.model import Platform
from oci2bin.polyglot import format as fmt
from oci2bin.polyglot.reader import Polyglot
from oci2bin.polyglot.writer import write_polyglot
from oci2bin_testrig import have, run  # pants: no-infer-dep


@pytest.fixture
def bb_image(images):
    return layout.read_layout(layout.DirTree(images.bb_oci))


@pytest.fixture
def built(tmp_path, loader_bytes, bb_image):
    out = str(tmp_path / "bb_latest")
    res = write_polyglot(out, loader_bytes, bb_image, ref="localhost/bb:latest")
    return out, res


def test_roundtrip(built, bb_image, loader_bytes):
    out, res = built
    assert os.stat(out).st_mode & 0o777 == 0o755
    p = Polyglot(out)
    md = p.metadata
    assert md["digest"] == bb_image.digest == res.digest
    assert md["config_digest"] == bb_image.config_digest
    assert md["image"] == "localhost/bb:latest" and md["format"] == 1 and md["vm"] is False
    assert md["arch"] == "amd64" and md["loader_size"] == len(loader_bytes)
    assert p.loader() == loader_bytes
    im = p.image()
    assert im.digest == bb_image.digest
    assert [b.read_bytes() for b in im.layers] == [b.read_bytes() for b in bb_image.layers]
    assert json.loads(p.read_entry("manifest.json"))[0]["RepoTags"] == ["localhost/bb:latest"]


def test_byte_layout(built, loader_bytes):
    out, _ = built
    data = Path(out).read_bytes()
    elf = fmt.parse_elf(loader_bytes)
    l_off = elf.loader_offset
    # ELF header at 0 (patched), NULs to 100, ustar fields
    assert data[:4] == b"\x7fELF" and data[64:100] == b"\0" * 36
    assert data[257:265] == b"ustar\x0000"
    assert fmt.EHDR.unpack_from(data, 0)[5] == fmt.HEAD_PHDR_OFFSET
    table = fmt.head_program_headers(loader_bytes, elf, l_off)
    assert data[512 : 512 + len(table)] == table
    assert data[512 + len(table) : l_off] == b"\0" * (l_off - 512 - len(table))
    assert fmt.unrelocate_loader(data[l_off : l_off + len(loader_bytes)], l_off) == loader_bytes
    footer = fmt.Footer.unpack(data[-64:])
    assert footer.loader_offset == l_off and footer.flags == 0 and footer.sig_offset == 0
    assert data[footer.tar_end - 1024 : footer.tar_end] == b"\0" * 1024
    meta = data[footer.tar_end : footer.tar_end + footer.meta_size]
    assert footer.tar_end + footer.meta_size + 64 == len(data)
    obj = json.loads(meta)
    assert meta == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    # every entry's data lies where the metadata says, and entries are in the documented order
    names = [e[0] for e in obj["entries"]]
    assert names[-3:] == ["index.json", "oci-layout", "manifest.json"]
    assert names[0] == "blobs/sha256/" + obj["config_digest"][7:]
    assert names[-4] == "blobs/sha256/" + obj["digest"][7:]
    for name, off, size in obj["entries"]:
        if name.startswith("blobs/"):
            assert "sha256:" + hashlib.sha256(data[off : off + size]).hexdigest() == "sha256:" + name[13:]
        hdr = tarfile.TarInfo.frombuf(data[off - 512 : off], "utf-8", "strict")
        assert hdr.name == name and hdr.size == size and hdr.mode == 0o644 and hdr.uid == 0


def test_python_tarfile_and_gnu_tar(built):
    out, _ = built
    with tarfile.open(out) as tf:
        names = tf.getnames()
    assert "manifest.json" in names and "index.json" in names and "oci-layout" in names
    r = run(["tar", "-tf", out])
    listed = r.stdout.splitlines()
    assert "manifest.json" in listed and sum(n.startswith("blobs/sha256/") for n in listed) == 3


@pytest.mark.skipif(have("skopeo") is not None, reason="skopeo not installed")
def test_skopeo_accepts_oci_archive(built, bb_image, tmp_path):
    """oci-archive:FILE -> oci:DIR keeps everything byte for byte: manifest, config and layer digests."""
    out, _ = built
    dest = str(tmp_path / "copy")
    run(
        ["skopeo", "copy", "-q", f"oci-archive:{out}", f"oci:{dest}:x"],
        env=dict(os.environ, TMPDIR=str(tmp_path)),
    )
    im = layout.read_layout(layout.DirTree(dest), "x")
    assert im.config_digest == bb_image.config_digest
    assert [b.digest for b in im.layers] == [b.digest for b in bb_image.layers]
    assert im.digest == bb_image.digest
    for b in im.layers:
        b.read_bytes()  # verifies the copied blob against its digest


@pytest.mark.skipif(have("skopeo") is not None, reason="skopeo not installed")
@pytest.mark.parametrize("fmt_flag", [["-f", "v2s2", "--dest-oci-accept-uncompressed-layers"], []])
def test_skopeo_accepts_docker_archive(built, bb_image, tmp_path, fmt_flag):
    """docker-archive:FILE -> oci:DIR. skopeo decompresses docker-archive layers (so layer digests become the
    config's diff_ids) and, when converting to an OCI manifest, re-serialises the config; with -f v2s2 the
    config bytes (digest) are kept."""
    out, _ = built
    dest = str(tmp_path / "copy")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    run(
        ["skopeo", "copy", "-q", *fmt_flag, f"docker-archive:{out}", f"oci:{dest}:x"],
        env=env,
    )
    im = layout.read_layout(layout.DirTree(dest), "x")
    if fmt_flag:
        assert im.config_digest == bb_image.config_digest
    assert json.loads(im.config_bytes) == json.loads(bb_image.config_bytes)
    diff_ids = bb_image.config["rootfs"]["diff_ids"]
    if fmt_flag:
        assert [b.digest for b in im.layers] == diff_ids
    for b in im.layers:
        b.read_bytes()
    raw = run(["skopeo", "inspect", "--raw", f"docker-archive:{out}"], env=env).stdout
    m = json.loads(raw)
    assert m["config"]["digest"] == bb_image.config_digest
    assert [x["digest"] for x in m["layers"]] == diff_ids


def test_podman_load(built, bb_image, podman):
    out, _ = built
    r = podman.run("load", "-i", out)
    assert "localhost/bb:latest" in r.stdout + r.stderr
    info = json.loads(podman.run("image", "inspect", "localhost/bb:latest").stdout)
    assert "sha256:" + info[0]["Id"] == bb_image.config_digest or info[0]["Id"] == bb_image.config_digest[7:]
    podman.run("rmi", "-f", "localhost/bb:latest")


def test_reproducible(tmp_path, loader_bytes, images, monkeypatch):
    outs = []
    for i in range(2):
        im = archive.read_docker_archive(images.bb_docker)
        out = str(tmp_path / f"o{i}")
        write_polyglot(out, loader_bytes, im, ref="localhost/bb:latest")
        outs.append(Path(out).read_bytes())
    assert outs[0] == outs[1]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    im = archive.read_docker_archive(images.bb_docker)
    write_polyglot(str(tmp_path / "o3"), loader_bytes, im, ref="localhost/bb:latest")
    assert Path(str(tmp_path / "o3")).read_bytes() != outs[0]  # tar mtimes follow SOURCE_DATE_EPOCH


def test_mtime_is_image_creation_without_sde(tmp_path, loader_bytes, bb_image, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    out = str(tmp_path / "o")
    write_polyglot(out, loader_bytes, bb_image)
    with tarfile.open(out) as tf:
        assert {m.mtime for m in tf.getmembers()} == {1700000000}


def test_vm_flag(tmp_path, loader_bytes, bb_image):
    out = str(tmp_path / "vm")
    write_polyglot(out, loader_bytes, bb_image, vm=True)
    p = Polyglot(out)
    assert p.vm and p.metadata["vm"] is True and p.footer.flags & fmt.FLAG_VM


def test_loader_runs(built, loader_path, tmp_path):
    """The kernel accepts the patched header: with busybox as the 'loader' the file runs as busybox."""
    if os.path.basename(os.path.realpath(loader_path)) != "busybox":
        pytest.skip("only meaningful with busybox as the loader")
    out, _ = built
    link = tmp_path / "echo"
    link.symlink_to(out)
    r = subprocess.run([str(link), "hello", "polyglot"], capture_output=True, text=True, check=True)
    assert r.stdout == "hello polyglot\n"


def test_arch_mismatch_rejected(tmp_path, loader_bytes, images):
    arm = layout.read_layout(layout.DirTree(images.index_oci), None, Platform.parse("arm64"))
    out = tmp_path / "arm"
    with pytest.raises(UserError, match="loader is for"):
        write_polyglot(str(out), loader_bytes, arm)
    assert os.listdir(tmp_path) == []


def test_corrupt_layer_leaves_nothing(tmp_path, loader_bytes, images):
    bad = str(tmp_path / "bad-oci")
    shutil.copytree(images.bb_oci, bad)
    im = layout.read_layout(layout.DirTree(bad))
    path = os.path.join(bad, "blobs/sha256", im.layers[0].digest[7:])
    data = bytearray(Path(path).read_bytes())
    data[-10] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(UserError, match="digest mismatch"):
        write_polyglot(str(outdir / "x"), loader_bytes, layout.read_layout(layout.DirTree(bad)))
    assert os.listdir(outdir) == []


def test_not_polyglot(tmp_path, images):
    from oci2bin.polyglot.reader import NotPolyglot

    with pytest.raises(NotPolyglot):
        Polyglot(images.bb_docker)
    p = tmp_path / "tiny"
    p.write_bytes(b"x")
    with pytest.raises(NotPolyglot):
        Polyglot(str(p))


def test_polyglot_is_an_input(built, bb_image):
    """An oci2bin file is a docker-archive and an oci-archive: it can be read back as a source."""
    out, _ = built
    im = archive.read_docker_archive(out)
    assert im.digest == bb_image.digest
    im2 = archive.read_oci_archive(out)
    assert im2.digest == bb_image.digest


MEM_SCRIPT = r"""
import hashlib, json, os, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from oci2bin.image import layout
from oci2bin.polyglot.writer import write_polyglot
im = layout.read_layout(layout.DirTree(sys.argv[2]))
write_polyglot(sys.argv[3], Path(sys.argv[4]).read_bytes(), im, ref="big:latest")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_streaming_memory(tmp_path, loader_path):
    """A 400 MB image is written with well under 150 MB peak RSS (layers are streamed)."""

    lay = tmp_path / "big-oci"
    (lay / "blobs/sha256").mkdir(parents=True)
    h = hashlib.sha256()
    tmpblob = lay / "blobs/sha256/tmp"
    size = 0
    with open(tmpblob, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(400):
            c = chunk[i:] + chunk[:i]
            f.write(c)
            h.update(c)
            size += len(c)
    ldig = h.hexdigest()
    os.rename(tmpblob, lay / "blobs/sha256" / ldig)
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + ldig]},
        }
    ).encode()
    cdig = hashlib.sha256(cfg).hexdigest()
    (lay / "blobs/sha256" / cdig).write_bytes(cfg)
    man = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + cdig,
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + ldig,
                    "size": size,
                }
            ],
        }
    ).encode()
    mdig = hashlib.sha256(man).hexdigest()
    (lay / "blobs/sha256" / mdig).write_bytes(man)
    (lay / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + mdig,
                        "size": len(man),
                    }
                ],
            }
        )
    )
    (lay / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    src = os.path.abspath(os.path.join(os.path.dirname(fmt.__file__), "..", ".."))
    out = tmp_path / "big"
    r = subprocess.run(
        [sys.executable, "-c", MEM_SCRIPT, src, str(lay), str(out), loader_path],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak_kb = int(r.stdout.strip())
    print(f"peak RSS writing a 400 MB image: {peak_kb // 1024} MB")
    assert peak_kb < 150 * 1024, f"peak RSS {peak_kb} KB"
    assert os.path.getsize(out) > size


@pytest.mark.skipif(have("skopeo") is not None, reason="skopeo not installed")
def test_docker_v2s2_manifest_kept(images, tmp_path, loader_bytes):
    """An OCI layout holding a Docker schema 2 manifest: written verbatim (digest kept), still accepted."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    v2 = str(tmp_path / "v2")
    run(
        [
            "skopeo",
            "copy",
            "-q",
            "-f",
            "v2s2",
            f"oci:{images.bb_oci}:latest",
            f"oci:{v2}:latest",
        ],
        env=env,
    )
    im = layout.read_layout(layout.DirTree(v2))
    assert im.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    out = str(tmp_path / "bin")
    res = write_polyglot(out, loader_bytes, im, ref="localhost/v2:latest")
    assert res.digest == im.digest
    for transport in ("oci-archive", "docker-archive"):
        run(
            [
                "skopeo",
                "copy",
                "-q",
                f"{transport}:{out}",
                f"oci:{tmp_path}/c-{transport}:x",
            ],
            env=env,
        )
    assert Polyglot(out).image().digest == im.digest


# ---------------------------------------------------------------------------------------------------- fast paths


def _corrupt_in_place(path: str) -> None:
    """Flip one byte, same size, and put the mtime back (only the ctime still tells)."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size - 10)
        b = f.read(1)
        f.seek(st.st_size - 10)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_verified_memo(tmp_path, loader_bytes, images, monkeypatch):
    """A blob verified once is not hashed again while unchanged; an in-place change is still caught."""
    from oci2bin.image import model
    from oci2bin.state import cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache, "RACY_NS", 0)  # the test's files are younger than the racy window
    lay = str(tmp_path / "oci")
    shutil.copytree(images.bb_oci, lay)
    out = tmp_path / "out"
    out.mkdir()
    write_polyglot(str(out / "a"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    assert os.listdir(cache.verified_dir())

    def no_hash(*a):
        raise AssertionError("a memoized blob was hashed")

    with monkeypatch.context() as m:
        m.setattr(model, "_hash_range", no_hash)
        write_polyglot(str(out / "b"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    assert (out / "a").read_bytes() == (out / "b").read_bytes()

    im = layout.read_layout(layout.DirTree(lay))
    _corrupt_in_place(os.path.join(lay, "blobs/sha256", im.layers[0].digest[7:]))
    with pytest.raises(UserError, match="digest mismatch"):
        write_polyglot(str(out / "c"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    assert sorted(os.listdir(out)) == ["a", "b"]

    monkeypatch.setenv("OCI2BIN_VERIFY", "always")
    assert not cache.is_verified(os.stat(str(out / "a")), 0, 1, im.digest)


def test_no_memo_for_fresh_files(tmp_path, loader_bytes, images, monkeypatch):
    """Files changed within the racy window are verified but not memoized."""
    from oci2bin.state import cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache, "RACY_NS", 10**15)
    lay = str(tmp_path / "oci")
    shutil.copytree(images.bb_oci, lay)
    write_polyglot(str(tmp_path / "a"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    assert not os.path.exists(cache.verified_dir()) or not os.listdir(cache.verified_dir())


def _unsupported(*a, **k):
    import errno

    raise OSError(errno.EINVAL, "not supported here")


def test_without_kernel_copy(tmp_path, loader_bytes, bb_image, monkeypatch):
    """splice, copy_file_range and sendfile unsupported: read/write fallback, same bytes."""
    from oci2bin.image import model

    monkeypatch.setenv("OCI2BIN_VERIFY", "always")
    write_polyglot(str(tmp_path / "a"), loader_bytes, bb_image)

    monkeypatch.setattr(model, "_splice", True)
    monkeypatch.setattr(model, "_kernel_copy", True)
    monkeypatch.setattr(os, "splice", _unsupported)
    monkeypatch.setattr(os, "copy_file_range", _unsupported)
    monkeypatch.setattr(os, "sendfile", _unsupported)
    write_polyglot(str(tmp_path / "b"), loader_bytes, bb_image)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert model._splice is False and model._kernel_copy is False


def test_hash_without_mmap(tmp_path, loader_bytes, images, monkeypatch):
    """An output that cannot be mapped is hashed through preadv: same bytes, corruption still caught."""
    import mmap

    monkeypatch.setenv("OCI2BIN_VERIFY", "always")
    lay = str(tmp_path / "oci")
    shutil.copytree(images.bb_oci, lay)
    write_polyglot(str(tmp_path / "a"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    monkeypatch.setattr(mmap, "mmap", _unsupported)
    write_polyglot(str(tmp_path / "b"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    im = layout.read_layout(layout.DirTree(lay))
    _corrupt_in_place(os.path.join(lay, "blobs/sha256", im.layers[0].digest[7:]))
    with pytest.raises(UserError, match="digest mismatch"):
        write_polyglot(str(tmp_path / "c"), loader_bytes, layout.read_layout(layout.DirTree(lay)))


def test_splice_fallbacks(tmp_path, loader_bytes, bb_image, monkeypatch):
    """splice refused by the source (copy_file_range instead) or by the output (what the pipe holds is moved
    by read/write): same bytes, and the splice path really copied before it was refused."""
    from oci2bin.image import model

    monkeypatch.setenv("OCI2BIN_VERIFY", "always")
    write_polyglot(str(tmp_path / "a"), loader_bytes, bb_image)
    real_splice = os.splice
    calls = []

    def counting(*a, **k):
        calls.append(a)
        return real_splice(*a, **k)

    monkeypatch.setattr(model, "_splice", True)
    monkeypatch.setattr(os, "splice", counting)
    write_polyglot(str(tmp_path / "b"), loader_bytes, bb_image)
    assert calls, "blobs were not copied with splice"
    assert model._splice is True

    monkeypatch.setattr(os, "splice", _unsupported)
    write_polyglot(str(tmp_path / "c"), loader_bytes, bb_image)
    assert model._splice is False

    def into_pipe_only(src, dst, count, offset_src=None, offset_dst=None, flags=0):
        if offset_src is None:  # pipe -> output
            return _unsupported()
        return real_splice(src, dst, count, offset_src=offset_src)

    monkeypatch.setattr(model, "_splice", True)
    monkeypatch.setattr(os, "splice", into_pipe_only)
    write_polyglot(str(tmp_path / "d"), loader_bytes, bb_image)
    assert model._splice is False
    for name in "bcd":
        assert (tmp_path / "a").read_bytes() == (tmp_path / name).read_bytes(), name


def test_stream_blobs(tmp_path, loader_bytes, bb_image):
    """Blobs that are not file windows (streams) are copied through the verifying reader."""
    import io

    from oci2bin.image.model import Blob

    def as_stream(b: Blob, digest: str | None = None) -> Blob:
        data = b.read_bytes()
        return Blob(digest or b.digest, b.size, b.media_type, lambda: io.BytesIO(data))

    im = bb_image.replace(layers=tuple(as_stream(b) for b in bb_image.layers))
    write_polyglot(str(tmp_path / "a"), loader_bytes, im)
    assert Polyglot(str(tmp_path / "a")).metadata["digest"] == im.digest
    bad = bb_image.layers[0]
    wrong = "sha256:" + "0" * 64
    im = bb_image.replace(layers=(as_stream(bad, wrong), *bb_image.layers[1:]))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="digest mismatch"):
        write_polyglot(str(out / "b"), loader_bytes, im)
    assert os.listdir(out) == []


def test_truncated_blob_leaves_nothing(tmp_path, loader_bytes, images, monkeypatch):
    monkeypatch.setenv("OCI2BIN_VERIFY", "always")
    lay = str(tmp_path / "oci")
    shutil.copytree(images.bb_oci, lay)
    im = layout.read_layout(layout.DirTree(lay))
    path = os.path.join(lay, "blobs/sha256", im.layers[0].digest[7:])
    os.truncate(path, os.path.getsize(path) - 100)  # after the size check of read_layout
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="manifest says"):
        write_polyglot(str(out / "x"), loader_bytes, im)
    assert os.listdir(out) == []


def test_copy_atomic(built, tmp_path):
    from oci2bin.state import cache

    src, _ = built
    dest = tmp_path / "d" / "copy"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    cache.copy_atomic(src, str(dest))
    assert dest.read_bytes() == Path(src).read_bytes()
    assert os.stat(dest).st_mode & 0o777 == 0o755
    assert os.listdir(dest.parent) == ["copy"]


def test_parse_created_matches_strptime():
    import calendar
    import random
    import time

    from oci2bin.polyglot.writer import _timegm, parse_created

    def ref(t):
        try:
            return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return None

    def new(t):
        try:
            return _timegm(t)
        except ValueError:
            return None

    rnd = random.Random(7)
    cases = ["2024-02-29T23:59:60", "2023-02-29T00:00:00", "0000-01-01T00:00:00", "2023-1-5T1:2:3", "x"]
    for _ in range(3000):
        v = [rnd.randint(1, 9999), *(rnd.randint(0, k) for k in (13, 32, 24, 60, 62))]
        cases.append(f"{v[0]:04d}-{v[1]}-{v[2]:02d}T{v[3]}:{v[4]:02d}:{v[5]}")
    for t in cases:
        assert new(t) == ref(t), t
    assert parse_created("2023-11-14T22:13:20.5+01:30") == 1700000000 - 5400
    assert parse_created("2023-11-14T22:13:20Z") == 1700000000
    assert parse_created("garbage") is None


def test_no_memo_when_racy_at_copy_start(tmp_path, loader_bytes, images, monkeypatch):
    """The racy-window rule is judged at the start of the copy: a blob changed just before a copy that then
    takes longer than the window could have been changed again during the copy within the same timestamp
    tick (same identity), so it is not memoized however old its timestamps are when the copy ends."""
    import time

    from oci2bin.image import model
    from oci2bin.state import cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache, "RACY_NS", 300_000_000)
    lay = str(tmp_path / "oci")
    shutil.copytree(images.bb_oci, lay)
    im = layout.read_layout(layout.DirTree(lay))
    for b in im.layers:
        os.utime(os.path.join(lay, "blobs/sha256", b.digest[7:]))  # ctime: now
    slow = model.WindowCopier.copy

    def slow_copy(self, *a):
        time.sleep(0.4)  # the copy outlasts the racy window
        return slow(self, *a)

    monkeypatch.setattr(model.WindowCopier, "copy", slow_copy)
    write_polyglot(str(tmp_path / "a"), loader_bytes, layout.read_layout(layout.DirTree(lay)))
    assert not os.path.exists(cache.verified_dir()) or not os.listdir(cache.verified_dir())


def _fake_bzimage() -> bytes:
    k = bytearray(os.urandom(8192))
    k[0x202:0x206] = b"HdrS"
    return bytes(k)


def test_update_carries_only_an_intact_vm_kernel(tmp_path, loader_bytes, bb_image):
    """`oci2bin update` copies the old file's kernel section into the new file, which records a fresh digest
    of it: a damaged or truncated section must be refused, not laundered into a file whose digest matches."""
    from oci2bin.cli.update import vm_options_of

    kernel = _fake_bzimage()
    out = str(tmp_path / "vm.bin")
    res = write_polyglot(out, loader_bytes, bb_image, vm_kernel=kernel, vm_cpus=2)
    assert vm_options_of(Polyglot(out)) == {"vm_kernel": kernel, "vm_cpus": 2}
    off = res.metadata["vm_kernel"]["offset"]
    with open(out, "r+b") as f:
        f.seek(off + 100)
        f.write(bytes([kernel[100] ^ 1]))
    with pytest.raises(UserError, match="VM kernel section does not match"):
        vm_options_of(Polyglot(out))
