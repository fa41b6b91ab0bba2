"""The answer of `diff --live`'s namespace-joining child is parsed as plain data and checked (the child ran
where the container could reach it); the running-container paths are covered by
tests/integration/loader/test_diff_live.py."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from oci2bin.errors import UserError
from oci2bin.image import livefs
from oci2bin.image.fsview import Node


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
