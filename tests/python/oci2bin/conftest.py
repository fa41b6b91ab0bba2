"""Fixtures shared by the oci2bin Python tests. Everything created goes under one session directory in $TMPDIR
(prefix oci2bin-test-), removed at the end unless OCI2BIN_TEST_KEEP is set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from oci2bin_testrig import Images, Podman, build_images  # pants: no-infer-dep
from oci2bin_testrig import have, podman_setup  # pants: no-infer-dep

# Pants passes the loader as a sandbox-relative path; tests change directories, so pin it now.
if os.environ.get("OCI2BIN_TEST_LOADER"):
    os.environ["OCI2BIN_TEST_LOADER"] = os.path.abspath(os.environ["OCI2BIN_TEST_LOADER"])

REPO_SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "src", "python"))


@pytest.fixture(scope="session")
def session_dir():
    d = tempfile.mkdtemp(prefix="oci2bin-test-")
    yield d
    if not os.environ.get("OCI2BIN_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp_path(session_dir, request):
    """Like pytest's tmp_path, but inside the session dir (so nothing is left in /tmp)."""
    import pathlib

    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    d = tempfile.mkdtemp(prefix=name + "-", dir=session_dir)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch, session_dir):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(session_dir, "xdg-cache"))
    monkeypatch.delenv("OCI2BIN_LOADER", raising=False)


@pytest.fixture(scope="session")
def loader_path() -> str:
    path = os.environ.get("OCI2BIN_TEST_LOADER") or "/bin/busybox"
    if not os.path.exists(path):
        pytest.skip(f"no loader ELF: {path} does not exist (set OCI2BIN_TEST_LOADER)")
    return path


@pytest.fixture(scope="session")
def loader_bytes(loader_path) -> bytes:
    with open(loader_path, "rb") as f:
        return f.read()


@pytest.fixture(scope="session")
def images(session_dir) -> Images:
    reason = have("umoci", "skopeo")
    if reason:
        pytest.skip(reason)
    return build_images(os.path.join(session_dir, "images"))


@pytest.fixture(scope="session")
def podman(session_dir) -> Podman:
    reason = have("podman")
    if reason:
        pytest.skip(reason)
    pm = podman_setup(os.path.join(session_dir, "podman"))
    r = subprocess.run(["podman", "info"], env=pm.env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"podman does not work here: {r.stderr.strip().splitlines()[-1:]}")
    yield pm
    pm.cleanup()


@pytest.fixture
def cli(tmp_path, loader_path):
    """Run `python -m oci2bin ARGS` in a subprocess; returns CompletedProcess (text)."""

    def run(
        *args: str,
        cwd: str | None = None,
        env: dict | None = None,
        check: bool | None = None,
    ):
        e = dict(os.environ)
        e["PYTHONPATH"] = REPO_SRC + os.pathsep + e.get("PYTHONPATH", "")
        e.setdefault("OCI2BIN_LOADER", loader_path)
        if env:
            e.update(env)
        r = subprocess.run(
            [sys.executable, "-m", "oci2bin", *args],
            cwd=cwd or str(tmp_path),
            env=e,
            capture_output=True,
            text=True,
            check=False,
        )
        if check is True and r.returncode != 0:
            raise AssertionError(f"oci2bin {' '.join(args)} failed: {r.stderr}")
        return r

    return run
