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


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _sha256_dispatch(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"^# sha256 dispatch: (\S+)", result.stdout, re.M)
    assert found, result.stdout
    return found.group(1)


def test_sha256_uses_the_hardware_build_when_the_cpu_has_it() -> None:
    """The loader's SHA-256 takes the SHA-NI build on a CPU with SHA + AVX2 (the blob digest is on the first-start
    path), and the portable one on a CPU without them (qemu's TCG x86_64 CPUs have neither)."""
    binary = Path("c-tests", "x86_64", "sha256_test")
    if HOST != "x86_64":
        pytest.skip("the host is not x86_64")
    flags = _cpu_flags()
    want = "sha-ni" if {"sha_ni", "avx2", "avx"} <= flags else "portable"
    assert _sha256_dispatch([str(binary)]) == want
    qemu = shutil.which("qemu-x86_64-static")
    if qemu is None:
        pytest.skip("qemu-x86_64-static is not installed (apt-get install qemu-user-static)")
    assert _sha256_dispatch([qemu, "-cpu", "qemu64", str(binary)]) == "portable"
