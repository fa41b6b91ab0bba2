"""oci2bin Pants backend: `static_c_binary`, `oci_image`, `oci_binary`, `oci_vm_binary`."""

from oci2bin.goals import package_oci_binary, package_oci_image, package_static_c_binary
from oci2bin.subsystems import zig
from oci2bin.target_types import (
    OciArchiveTarget,
    OciBinaryTarget,
    OciImagePullTarget,
    OciImageTarget,
    OciLayoutTarget,
    OciVmBinaryTarget,
    PypiSdistFilesTarget,
    StaticCBinaryTarget,
)
from oci2bin.util_rules import core_process, image_sources, packaged_resources, pypi_sdist, zig_compile


def target_types():
    return [
        StaticCBinaryTarget,
        OciImageTarget,
        OciImagePullTarget,
        OciLayoutTarget,
        OciArchiveTarget,
        OciBinaryTarget,
        OciVmBinaryTarget,
        PypiSdistFilesTarget,
        packaged_resources.PackagedResourcesTarget,
    ]


def rules():
    return [
        *zig.rules(),
        *zig_compile.rules(),
        *pypi_sdist.rules(),
        *core_process.rules(),
        *image_sources.rules(),
        *package_static_c_binary.rules(),
        *package_oci_image.rules(),
        *package_oci_binary.rules(),
        *packaged_resources.rules(),
    ]
