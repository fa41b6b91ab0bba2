"""Host tools the backend may use outside the hermetic toolchain (only to *run* foreign-arch outputs)."""

from __future__ import annotations

import os
from typing import List

from pants.core.goals.package import BuiltPackage
from pants.core.goals.run import RunRequest
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths
from pants.engine.platform import Platform
from pants.engine.rules import Get

HOST_SEARCH_PATH = ("/usr/bin", "/bin", "/usr/local/bin")


def host_arch(platform: Platform) -> str:
    return "aarch64" if platform in (Platform.linux_arm64, Platform.macos_arm64) else "x86_64"


async def emulator_prefix(arch: str, platform: Platform) -> List[str]:
    """`qemu-<arch>-static` when the binary's arch differs from the host's, so `pants run` works anyway."""
    if arch == host_arch(platform):
        return []
    name = f"qemu-{arch}-static"
    request = BinaryPathRequest(binary_name=name, search_path=HOST_SEARCH_PATH)
    paths = await Get(BinaryPaths, BinaryPathRequest, request)
    first = paths.first_path_or_raise(
        request, rationale=f"run an {arch} binary on this host (install qemu-user-static)"
    )
    return [first.path]


async def run_request_for(built: BuiltPackage, arch: str, platform: Platform) -> RunRequest:
    """`pants run` of a built executable, under qemu-user when it is for another architecture."""
    relpath = built.artifacts[0].relpath
    assert relpath is not None
    prefix = await emulator_prefix(arch, platform)
    return RunRequest(digest=built.digest, args=(*prefix, os.path.join("{chroot}", relpath)))
