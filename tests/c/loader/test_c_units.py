"""Runs the loader's C unit tests (built by Pants for x86_64 and aarch64) and checks their TAP output."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# The units are listed once, in BUILD; Pants puts each built program at c-tests/<arch>/<unit>.
UNITS = sorted(os.listdir(Path("c-tests", "x86_64"))) if Path("c-tests", "x86_64").is_dir() else []
HOST = platform.machine()


def emulator(arch: str) -> list[str]:
    if arch == HOST:
        return []
    qemu = shutil.which(f"qemu-{arch}-static")
    if qemu is None:
        pytest.skip(f"qemu-{arch}-static is not installed (apt-get install qemu-user-static)")
    return [qemu]


def test_units_were_built() -> None:
    assert len(UNITS) >= 8, UNITS


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
@pytest.mark.parametrize("unit", UNITS)
def test_unit(unit: str, arch: str) -> None:
    binary = Path("c-tests", arch, unit)
    assert binary.is_file(), f"{binary} was not built"
    with tempfile.TemporaryDirectory(prefix="c-unit-") as tmp:
        result = subprocess.run(
            [*emulator(arch), str(binary)],
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": tmp},
        )
    out = result.stdout
    plan = re.search(r"^1\.\.(\d+)$", out, re.M)
    assert plan, f"no TAP plan in output:\n{out}\n{result.stderr}"
    oks = re.findall(r"^ok \d+", out, re.M)
    failures = re.findall(r"^not ok .*$", out, re.M)
    assert not failures and result.returncode == 0, "\n".join(failures) + "\n" + result.stderr
    assert len(oks) == int(plan.group(1)) > 0
