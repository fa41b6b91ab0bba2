"""Fixtures for the --vm tests: the loader fixtures of tests/integration/loader (Runner as root and as tester, the
busybox polyglot), a Debian guest kernel from the rig (tests/rig/vm_kernel.py), a busybox binary built with
`--vm --kernel`, and the accelerator: KVM when this machine can boot a stock kernel with it, else TCG (software).
The accelerator is chosen by the loader itself (`--vm-accel auto`); the KVM-required error is tested where KVM is
not usable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.loader.conftest import (  # noqa: F401  (fixtures)
    REPO,
    TESTER,
    Runner,
    busybox,
    cli_env,
    loader,
    workdir,
)
from tests.rig import images, vm_kernel

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="VM tests run as root (and as tester)")

VM_TIMEOUT = 300  # one boot under TCG on a loaded 2-core machine: ~5-20 s


def kvm_unusable_reason(user_can_open: bool) -> str | None:
    """Why `--vm-accel kvm` must fail for this user here (None: KVM is usable)."""
    if not os.path.exists("/dev/kvm"):
        return "does not have"
    if not user_can_open:
        return "cannot open"
    if os.path.exists("/sys/module/kvm_pvm"):
        return "PVM"
    return None


@pytest.fixture(scope="session")
def kernel() -> str:
    if not shutil.which("qemu-system-x86_64"):
        pytest.fail("qemu-system-x86_64 missing: run tests/rig/install-deps.sh")
    return str(vm_kernel.kernel())


def assemble(loader_path, out, *extra: str) -> str:
    layout = images.build("busybox")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "oci2bin",
            "assemble",
            "--loader",
            str(loader_path),
            "--image",
            f"oci:{layout}",
            "--output",
            str(out),
            "-q",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=str(REPO),
    )
    assert p.returncode == 0, f"assemble failed:\n{p.stdout}\n{p.stderr}"
    os.chmod(out, 0o755)
    return str(out)


@pytest.fixture(scope="session")
def vm_binary(loader, workdir, kernel) -> str:  # noqa: F811
    """busybox built with --vm --kernel: boots without any runtime flag."""
    return assemble(loader, workdir / "busybox-vm.bin", "--vm", "--kernel", kernel)


@pytest.fixture(params=["root", "tester"])
def vm_runner(request, vm_binary, workdir):  # noqa: F811
    r = Runner(Path(vm_binary), request.param if request.param == "root" else TESTER, workdir)
    yield r
    left = r.tmp_left()
    shutil.rmtree(r.base, ignore_errors=True)
    assert not left, f"left in TMPDIR: {left}"
