"""A guest kernel for the `--vm` tests: Debian's cloud kernel, fetched with `apt-get download` from this machine's
configured apt sources (no host names here) and cached in the rig cache.

The cloud flavour has everything the loader's VM mode needs built in (checked against the package's config file):
8250 serial ports and console, initramfs (initrd) support, devtmpfs, tmpfs, ELF and #! binaries. Its virtio drivers
are modules, which VM mode does not need (the rootfs is the initramfs; I/O is over the serial ports).

    python -m tests.rig.vm_kernel      # fetch (if needed) and print the vmlinuz path
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.rig.images import MissingToolError, RigError, cache_root

META_PACKAGE = {"x86_64": "linux-image-cloud-amd64"}
REQUIRED_CONFIG = (
    "CONFIG_SERIAL_8250",
    "CONFIG_SERIAL_8250_CONSOLE",
    "CONFIG_BLK_DEV_INITRD",
    "CONFIG_DEVTMPFS",
    "CONFIG_TMPFS",
    "CONFIG_BINFMT_ELF",
    "CONFIG_BINFMT_SCRIPT",
    "CONFIG_PROC_FS",
    "CONFIG_SYSFS",
    "CONFIG_UNIX98_PTYS",
)


def _run(cmd: list[str], **kw) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, **kw)
    if p.returncode != 0:
        raise RigError(f"rig: {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def package(arch: str = "x86_64") -> tuple[str, str]:
    """(versioned kernel package, candidate version) behind the cloud meta package, e.g.
    ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")."""
    meta = META_PACKAGE.get(arch)
    if not meta:
        raise MissingToolError(f"rig: no Debian VM kernel package known for {arch}")
    for tool in ("apt-cache", "apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise MissingToolError(f"rig: {tool} not found: the VM kernel comes from Debian's apt sources")
    deps = [
        line.split(":", 1)[1].strip()
        for line in _run(["apt-cache", "depends", meta]).splitlines()
        if line.strip().startswith("Depends:") and "linux-image-" in line
    ]
    if not deps:
        raise RigError(f"rig: apt-cache knows no {meta}: run apt-get update")
    pkg = deps[0]
    cand = [
        line.split(":", 1)[1].strip()
        for line in _run(["apt-cache", "policy", pkg]).splitlines()
        if line.strip().startswith("Candidate:")
    ]
    if not cand or cand[0] == "(none)":
        raise RigError(f"rig: {pkg} has no candidate version: run apt-get update")
    return pkg, cand[0]


def check_config(config: Path) -> None:
    have = {}
    for line in config.read_text().splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            have[k] = v
    missing = [k for k in REQUIRED_CONFIG if have.get(k) != "y"]
    if missing:
        raise RigError(f"rig: {config.name} lacks built-in {', '.join(missing)}: pick another kernel flavour")


def kernel(arch: str = "x86_64") -> Path:
    """The cached vmlinuz (fetched and checked on first use)."""
    pkg, version = package(arch)
    d = cache_root() / "vm-kernel" / f"{pkg}_{version}"
    vmlinuz = d / "vmlinuz"
    if vmlinuz.is_file():
        return vmlinuz
    d.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=d.parent) as tmp:
        t = Path(tmp)
        os.chmod(t, 0o755)  # apt-get download's sandbox user (_apt) writes here when run as root
        _run(["apt-get", "download", "-q", f"{pkg}={version}"], cwd=str(t))
        debs = list(t.glob("*.deb"))
        if len(debs) != 1:
            raise RigError(f"rig: apt-get download {pkg} gave {len(debs)} files")
        _run(["dpkg-deb", "-x", str(debs[0]), str(t / "x")])
        boot = t / "x" / "boot"
        images = list(boot.glob("vmlinuz-*"))
        configs = list(boot.glob("config-*"))
        if len(images) != 1 or len(configs) != 1:
            raise RigError(f"rig: {debs[0].name} has no single /boot/vmlinuz-* and config-*")
        check_config(configs[0])
        out = t / "out"
        out.mkdir()
        shutil.copyfile(images[0], out / "vmlinuz")
        shutil.copyfile(configs[0], out / "config")
        (out / "vmlinuz").chmod(0o644)
        out.chmod(0o755)
        try:
            os.rename(out, d)
        except OSError:
            if not vmlinuz.is_file():  # another process won the race: theirs is as good
                raise
    return vmlinuz


if __name__ == "__main__":
    print(kernel(sys.argv[1] if len(sys.argv) > 1 else "x86_64"))
