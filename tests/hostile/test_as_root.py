"""The hostile-image cases (cases.py, docs/security.md) run by the real loader as root, with the rootfs cache
and with --no-cache. The two users are two files so each gets its own Pants timeout."""

from __future__ import annotations

import pytest

from tests.hostile.cases import CASES, params, run_case


def test_case_table_is_big_enough():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case,mode", params("root"))
def test_as_root(case, mode, loader_bytes):
    run_case(case, "root", mode, loader_bytes)
