"""The multilayer image really holds every whiteout / hard-link / mode / owner case (read with python tarfile),
and a reference merge of its layers (the oracle loader tests can use) agrees with a real runtime (podman)."""

import itertools
import os
import posixpath
import shutil
import subprocess
import tarfile
import textwrap

import pytest

from tests.rig import images

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="rig images are built as root")
ML = images.multilayer_spec()
KINDS = {"d": tarfile.DIRTYPE, "f": tarfile.REGTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}


def layers():
    out = []
    for blob, media in images.layer_blobs("multilayer"):
        assert media == "application/vnd.oci.image.layer.v1.tar+gzip"
        with images.open_layer(blob) as t:
            members = t.getmembers()
            out.append([(m, t.extractfile(m).read() if m.isfile() else None) for m in members])
    return out


def test_four_layers_and_history():
    assert len(images.layer_blobs("multilayer")) == 4
    hist = images.config("multilayer")["history"]
    assert [h.get("empty_layer", False) for h in hist] == [False] * 4 + [True]


@pytest.mark.parametrize("idx,layer", [(1, "l2"), (2, "l3"), (3, "l4")])
def test_layer_holds_exactly_the_recipe_entries(idx, layer):
    got = layers()[idx]
    assert [m.name for m, _ in got] == [e[1] for e in ML.LAYERS[layer]]
    for (m, data), (kind, name, mode, uid, gid, payload) in zip(got, ML.LAYERS[layer]):
        assert m.type == KINDS[kind], name
        assert (m.mode, m.uid, m.gid, m.mtime) == (mode, uid, gid, images.SOURCE_DATE_EPOCH), name
        if kind == "f":
            assert data == payload, name
        elif kind in "lh":
            assert m.linkname == payload, name


def test_every_case_is_present():
    l1, l2, l3, l4 = ({m.name: m for m, _ in layer} for layer in layers())
    # L1: hard links within a layer; bin/vi (whited out later) is one of them
    assert l1["bin/vi"].islnk() and l1["bin/busybox"].islnk()
    # L2: symlinks (relative, absolute, dangling, escaping), in-layer hard link, setuid/setgid/sticky, owners
    assert l2["app/current"].issym() and not l2["app/current"].linkname.startswith("/")
    assert l2["app/motd-link"].linkname.startswith("/")
    assert l2["app/escape"].linkname.startswith("../../")
    assert l2["app/bin/hello-link"].islnk() and l2["app/bin/hello-link"].linkname in l2
    assert l2["usr/local/bin/setuid-tool"].mode & 0o4000
    assert l2["usr/local/bin/setgid-tool"].mode & 0o2000 and l2["var/mail"].mode & 0o2000
    assert l2["shared"].isdir() and l2["shared"].mode & 0o1000
    assert {(m.uid, m.gid) for m in l2.values()} >= {(1000, 1000), (1, 1), (0, 42), (0, 8)}
    assert len(ML.LONG_NAME) > 100 and ML.LONG_NAME in l2 and ML.UNICODE_NAME in l2
    # L3: whiteouts of a file, a lower-layer hard link, a dir, a symlink; an opaque dir with new content
    for wh in (
        "etc/.wh.motd",
        "bin/.wh.vi",
        "app/data/.wh.b.txt",
        "srv/.wh.olddir",
        "app/.wh.dangling",
        "opt/cfg/.wh..wh..opq",
        "app/data/.wh.never-existed",
    ):
        assert l3[wh].isfile() and l3[wh].size == 0, wh
    assert "opt/cfg/three.conf" in l3
    assert l2["srv/olddir"].isdir()
    # L4: re-created file and dir, hard link to a lower layer's file, type changes, implicit parents
    assert "etc/motd" in l4 and l4["srv/olddir"].isdir()
    assert l4["app/bb"].islnk() and l4["app/bb"].linkname not in l4 and l4["app/bb"].linkname in l1
    assert l2["app/data/a.txt"].isfile() and l4["app/data/a.txt"].isdir()
    assert l2["app/lib"].isdir() and l4["app/lib"].isfile()
    assert "usr/share/rig/implicit/file.txt" in l4 and "usr/share/rig" not in l4 and "usr/share" not in l4
    # every layer tar ends with the two zero blocks
    for blob, _ in images.layer_blobs("multilayer"):
        import gzip

        assert gzip.decompress(blob.read_bytes())[-1024:] == b"\0" * 1024


# ----------------------------------------------------------------------------------- reference merge


def merge(layer_list):
    """Apply layers like an overlay snapshotter would: path -> [kind, mode, uid, gid, data-or-link, inode]."""
    state = {}
    inode = itertools.count(1)

    def drop(path):
        for p in [p for p in state if p == path or p.startswith(path + "/")]:
            del state[p]

    for members in layer_list:
        for m, _ in members:  # pass 1: whiteouts act on the lower layers only
            d, base = posixpath.split(m.name.rstrip("/"))
            if base == ".wh..wh..opq":
                for p in [p for p in state if p.startswith(d + "/")]:
                    del state[p]
            elif base.startswith(".wh."):
                drop(posixpath.join(d, base[4:]))
        for m, data in members:  # pass 2: entries
            name = m.name.rstrip("/")
            if posixpath.basename(name).startswith(".wh."):
                continue
            parts = name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in state or state[parent][0] != "d":
                    drop(parent)
                    state[parent] = ["d", 0o755, 0, 0, None, next(inode)]
            old = state.get(name)
            if old and not (old[0] == "d" and m.isdir()):
                drop(name)
            if m.isdir():
                state[name] = ["d", m.mode, m.uid, m.gid, None, old[5] if old else next(inode)]
            elif m.isfile():
                state[name] = ["f", m.mode, m.uid, m.gid, data, next(inode)]
            elif m.issym():
                state[name] = ["l", m.mode, m.uid, m.gid, m.linkname, next(inode)]
            elif m.islnk():
                state[name] = list(state[m.linkname.rstrip("/")])  # KeyError = dangling hard link
    return state


def test_reference_merge_gives_the_expected_tree():
    state = merge(layers())
    for path, (kind, mode, uid, gid, data) in ML.EXPECTED.items():
        assert path in state, path
        assert state[path][:5] == [kind, mode, uid, gid, data], path
    for path in ML.ABSENT:
        assert path not in state, path
    for group in ML.SAME_INODE:
        assert len({state[p][5] for p in group}) == 1, group
    assert state["app/bin/hello-link"][5] != state["app/bin/hello.sh"][5]


def test_podman_agrees_with_the_reference_merge():
    """podman (containers/storage, root) applies the same layers; its exported tree must match the merge."""
    if not shutil.which("podman"):
        pytest.fail("podman missing: run tests/rig/install-deps.sh")
    scratch = images.scratch_dir(images.cache_root() / "work" / f"ml-podman-{os.getpid()}")
    d = scratch.__enter__()
    (d / "containers.conf").write_text(
        textwrap.dedent("""\
        [containers]
        netns = "none"
        [engine]
        runtime = "runc"
        """)
    )
    env = {**os.environ, "CONTAINERS_CONF": str(d / "containers.conf")}

    def podman(*args, text=False):
        p = subprocess.run(base + list(args), capture_output=True, text=text, env=env)
        assert p.returncode == 0, f"podman {args[0]}: exit {p.returncode}: {p.stderr[-800:]}"
        return p.stdout

    base = [
        "podman",
        "--root",
        str(d / "root"),
        "--runroot",
        str(images.podman_runroot("ml")),
        "--storage-driver",
        "vfs",
        "--events-backend",
        "none",
    ]
    try:
        podman("load", "-q", "-i", str(images.docker_archive("multilayer")))
        cid = podman("create", "localhost/multilayer:latest", text=True).strip()
        podman("export", "-o", str(d / "rootfs.tar"), cid)
        with tarfile.open(d / "rootfs.tar") as t:
            got = {}
            ino = {}
            for m in t.getmembers():
                name = m.name.lstrip("./").rstrip("/") if m.name not in (".", "./") else ""
                if m.islnk():
                    got[name] = list(got[m.linkname.lstrip("./")])
                    continue
                kind = "d" if m.isdir() else "f" if m.isfile() else "l" if m.issym() else "?"
                ino[name] = len(ino) + 1
                got[name] = [
                    kind,
                    m.mode & 0o7777,
                    m.uid,
                    m.gid,
                    t.extractfile(m).read() if m.isfile() else m.linkname if m.issym() else None,
                    ino[name],
                ]
    finally:
        subprocess.run(base + ["rm", "-a", "-f"], capture_output=True, env=env)
        subprocess.run(base + ["rmi", "-a", "-f"], capture_output=True, env=env)
        scratch.__exit__(None, None, None)
        shutil.rmtree(images.podman_runroot("ml"), ignore_errors=True)
    want = merge(layers())
    runtime_added = {"etc/hosts", "etc/hostname", "etc/resolv.conf", "run", "run/.containerenv"}
    diff = []
    for p in sorted(set(want) | set(got)):
        if p in runtime_added or p == "":
            continue
        if p not in got or p not in want:
            diff.append(f"{p}: {'missing in podman' if p in want else 'only in podman'}")
        elif got[p][:5] != want[p][:5]:
            diff.append(f"{p}: podman {got[p][:4]} merge {want[p][:4]}")
    assert not diff, "\n".join(diff[:40])
    for group in ML.SAME_INODE:
        assert len({got[p][5] for p in group}) == 1, group
