"""The hostile-image cases (cases.py, docs/security.md) run by the real loader as the unprivileged user `tester`, with the rootfs cache
and with --no-cache. The two users are two files so each gets its own Pants timeout."""

from __future__ import annotations

import pytest

from tests.hostile.cases import params, run_case
from tests.hostile.harness import UNPRIVILEGED


@pytest.mark.parametrize("case,mode", params(UNPRIVILEGED))
def test_as_tester(case, mode, loader_bytes):
    run_case(case, UNPRIVILEGED, mode, loader_bytes)
