"""The packaged CLI builds binaries alone: `oci2bin.pex` carries both loaders (oci2bin/loaders/loader-<arch>), and a
copy or hard link of it named `oci2vm` builds VM-mode binaries named `oci2vm_...` (SPEC "VM-mode binaries").

Pants puts the pex at src.python/oci2bin.pex; outside Pants set $OCI2BIN_TEST_PEX to a built one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.rig import images

PANTS_PEX = Path("src.python/oci2bin.pex")


@pytest.fixture(scope="module")
def pex() -> Path:
    val = os.environ.get("OCI2BIN_TEST_PEX") or (str(PANTS_PEX) if PANTS_PEX.is_file() else "")
    if not val:
        pytest.skip("no packaged CLI: run through Pants, or set OCI2BIN_TEST_PEX to a built oci2bin.pex")
    return Path(val).resolve()


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="oci2bin-pex-it-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _env(work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCI2BIN_", "PEX_"))}
    env.update(PEX_ROOT=str(work / "pexroot"), HOME=str(work), OCI2BIN_CACHE_DIR=str(work / "cache"))
    env["XDG_CACHE_HOME"] = str(work / "xdg")
    return env


def _run(cmd, work: Path, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=_env(work), cwd=work, timeout=timeout
    )


def test_pex_bundles_both_loaders(pex):
    with zipfile.ZipFile(pex) as z:
        names = set(z.namelist())
        for arch, machine in (("x86_64", 0x3E), ("aarch64", 0xB7)):
            data = z.read(f"oci2bin/loaders/loader-{arch}")
            assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == machine
    assert not any(n.startswith("pants/") for n in names)  # the library ships without Pants


def test_packaged_cli_builds_and_the_binary_runs(pex, work):
    layout = images.build("busybox-index2")  # linux/amd64 + linux/arm64: one build per bundled loader
    r = _run([pex, "--arch", "all", "--oci-dir", layout, "busybox", "bb"], work)
    assert r.returncode == 0, r.stderr
    assert "no loader" not in r.stderr
    for name in ("bb", "bb_x86_64", "bb_aarch64"):
        assert (work / name).is_file(), sorted(os.listdir(work))
    r = _run([work / "bb", "sh", "-c", "echo hello from $(uname -m)"], work)
    assert r.returncode == 0 and r.stdout == f"hello from {os.uname().machine}\n", r.stderr
    for arch, oci_arch in (("x86_64", "amd64"), ("aarch64", "arm64")):
        r = _run([pex, "inspect", work / f"bb_{arch}"], work)
        assert r.returncode == 0, r.stderr
        assert f"Architecture: {oci_arch}" in r.stdout and f"Loader: {arch}" in r.stdout, r.stdout


def test_oci2vm_name_builds_vm_binaries(pex, work):
    layout = images.build("busybox")
    bindir = work / "bin"
    bindir.mkdir()
    # pex resolves symlinks to its real path before the CLI sees argv[0]: install oci2vm as a hard link (or copy)
    try:
        os.link(pex, bindir / "oci2vm")
    except OSError:
        shutil.copy2(pex, bindir / "oci2vm")
    r = _run([bindir / "oci2vm", "--oci-dir", layout, "busybox"], work)
    assert r.returncode == 0, r.stderr
    assert (work / "oci2vm_busybox_latest").is_file(), sorted(os.listdir(work))
    r = _run([pex, "inspect", work / "oci2vm_busybox_latest"], work)
    assert r.returncode == 0 and "Mode: vm" in r.stdout, r.stdout
    # the same pex under its own name builds container binaries
    r = _run([pex, "--oci-dir", layout, "busybox"], work)
    assert r.returncode == 0, r.stderr
    r = _run([pex, "inspect", work / "busybox_latest"], work)
    assert r.returncode == 0 and "Mode: vm" not in r.stdout, r.stdout
