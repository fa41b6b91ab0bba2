"""Fixtures of the hostile-image suite: the loader under test, and the sweep of hard-killed runs' sandboxes."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.hostile import craft
from tests.hostile.harness import find_loader, sandbox_base


@pytest.fixture(scope="module", autouse=True)
def sweep_stale_sandboxes():
    """Sandboxes of runs killed hard (timeouts) are removed here once they are two hours old."""
    base = sandbox_base()
    for name in os.listdir(base):
        p = os.path.join(base, name)
        try:
            old = time.time() - os.lstat(p).st_mtime > 7200
        except OSError:
            continue
        if name.startswith("oci2bin-hostile-") and old and not os.path.ismount(p):
            shutil.rmtree(p, ignore_errors=True)


@pytest.fixture(scope="module")
def loader_bytes() -> bytes:
    path = find_loader()
    if path is None:
        pytest.skip(
            "no loader: set OCI2BIN_TEST_LOADER, or build dist/loader/loader-x86_64 "
            "(./pants package //src/c/loader:loader-x86_64)"
        )
    if not os.path.isfile(craft.BUSYBOX):
        pytest.skip(f"needs a static {craft.BUSYBOX} for the images (apt-get install busybox-static)")
    if os.uname().machine != "x86_64":
        pytest.skip("the suite runs the x86_64 loader natively")
    with open(path, "rb") as f:
        return f.read()
