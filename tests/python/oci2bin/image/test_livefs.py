"""`diff --live`'s walk never follows a symlink the container swaps in; the answer of its namespace-joining
child is parsed as plain data and checked (the child ran where the container could reach it); the
running-container paths are covered by tests/integration/loader/test_diff_live.py."""

from __future__ import annotations

import json
import os
import hashlib
import pickle

import pytest

from oci2bin.errors import UserError
from oci2bin.image import livefs
from oci2bin.image.fsview import Node


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def host(tmp_path):
    """A directory outside the walked root standing for the caller's files."""
    d = tmp_path / "host"
    d.mkdir()
    (d / "secret").write_text("host file\n")
    return d


def test_walk_reports_the_tree_and_leaks_no_fd(tmp_path, host):
    root = tmp_path / "root"
    (root / "etc/sub").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=test\n")
    (root / "etc/hosts").write_text("runtime\n")  # written by the loader: not reported
    (root / "etc/sub/x").write_text("xx")
    os.link(root / "etc/sub/x", root / "etc/sub/y")
    (root / "proc").mkdir()
    (root / "proc/kmsg").write_text("never read")  # a mount point: skipped with its subtree
    os.symlink(str(host), root / "abs")  # absolute: would be the caller's, never descended
    os.symlink("/", root / "slash")
    os.mkfifo(root / "fifo")
    image = {
        "etc/os-release": Node("file", 8, 0o100644, "sha256:old"),
        "etc/sub/x": Node("file", 2, 0o100644, "sha256:old"),
        "etc/sub/y": Node("file", 2, 0o100644, "sha256:old"),
    }
    before = _open_fds()
    fs = livefs.walk(str(root), {"proc"}, image)
    assert _open_fds() == before
    xx = "sha256:" + hashlib.sha256(b"xx").hexdigest()
    assert set(fs) == {"etc", "etc/sub", "etc/os-release", "etc/sub/x", "etc/sub/y", "abs", "slash", "fifo"}
    assert fs["etc/os-release"].digest == "sha256:" + hashlib.sha256(b"ID=test\n").hexdigest()
    assert fs["etc/sub/x"].digest == fs["etc/sub/y"].digest == xx
    assert (fs["abs"].kind, fs["abs"].target) == ("symlink", str(host))
    assert (fs["slash"].kind, fs["slash"].target) == ("symlink", "/")
    assert fs["fifo"].kind == "fifo" and fs["etc"].kind == "dir"


@pytest.mark.parametrize("target", ["host", "/"])
def test_directory_swapped_for_a_symlink_is_not_followed(tmp_path, host, monkeypatch, target):
    """The race: a directory listed as one is replaced by a symlink to an absolute path before the walk
    descends into it. A path-based walk would list the symlink's target in the caller's root."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d/inside").write_text("x")
    (root / "e").write_text("17 bytes of data\n")
    dest = str(host) if target == "host" else "/"
    scan = livefs._Walk.scan

    def scan_then_swap(self, dir_fd, rel_dir):
        names = scan(self, dir_fd, rel_dir)
        if rel_dir == "":  # "d" was seen as a directory; the container swaps it now
            os.rename(root / "d", tmp_path / "d.away")
            os.symlink(dest, root / "d")
            os.rename(root / "e", tmp_path / "e.away")
            os.symlink(str(host / "secret"), root / "e")
        return names

    monkeypatch.setattr(livefs._Walk, "scan", scan_then_swap)
    before = _open_fds()
    fs = livefs.walk(str(root), set(), {"e": Node("file", 17, 0o100644, "sha256:old")})
    assert _open_fds() == before
    assert not [p for p in fs if p.startswith("d/")]  # neither the host's files nor the old contents
    assert fs["d"].kind == "dir"  # as listed
    assert fs["e"].kind == "file" and fs["e"].size == 17


def test_a_swapped_regular_file_is_not_hashed_through_a_symlink(tmp_path, host):
    """Between the lstat and the open a file is replaced by a symlink to a host file of the same size."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_text("x" * len("host file\n"))
    real_stat = os.stat

    def stat_then_swap(name, *, dir_fd=None, follow_symlinks=True):
        st = real_stat(name, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        if name == "f":
            os.unlink(root / "f")
            os.symlink(str(host / "secret"), root / "f")
        return st

    size = len("host file\n")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(livefs.os, "stat", stat_then_swap)
        fs = livefs.walk(str(root), set(), {"f": Node("file", size, 0o100644, "sha256:old")})
    assert fs["f"].digest == "unreadable"  # O_NOFOLLOW refused the symlink: the host file was not read


def test_round_trip_keeps_nodes_and_undecodable_names():
    name = os.fsdecode(b"etc/caf\xe9")  # not UTF-8: a surrogate escape
    fs = {
        name: Node("file", 3, 0o100644, "sha256:" + "a" * 64),
        "bin/sh": Node("symlink", 7, 0o120777, "", "busybox"),
        "tmp": Node("dir", 0, 0o41777),
    }
    wire = json.dumps(livefs._nodes_to_json(fs)).encode()
    assert livefs._nodes_from_json(json.loads(wire)) == fs


@pytest.mark.parametrize(
    "obj",
    [[], {"a": [1, 2]}, {"a": ["file", "3", 0, "", ""]}, {"a": ["file", 3, 0, None, ""]}, {"a": 5}],
)
def test_malformed_answers_are_rejected(obj):
    with pytest.raises((ValueError, TypeError)):
        livefs._nodes_from_json(obj)


def test_a_pickle_is_not_accepted(tmp_path):
    """A child under the container's control must not be able to make the parent run code."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(UserError, match="malformed"):
        livefs._parse_answer(pickle.dumps(Evil()), 1)
    assert not marker.exists()


def test_child_error_is_one_line():
    with pytest.raises(UserError, match="cannot join the user namespace of PID 7"):
        livefs._parse_answer(
            json.dumps("cannot join the user namespace of PID 7: Operation not permitted").encode(), 7
        )
