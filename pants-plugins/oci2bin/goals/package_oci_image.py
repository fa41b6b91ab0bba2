"""`pants package` for `oci_image`: writes the OCI image layout directory to dist/."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from oci2bin.target_types import OciImageFilesField
from oci2bin.util_rules.image_sources import ImageLayout, ImageLayoutRequest


@dataclass(frozen=True)
class OciImageFieldSet(PackageFieldSet):
    required_fields = (OciImageFilesField,)
    files: OciImageFilesField


@rule(desc="Package oci_image", level=LogLevel.DEBUG)
async def package_oci_image(field_set: OciImageFieldSet) -> BuiltPackage:
    layout = await Get(ImageLayout, ImageLayoutRequest(field_set.address, "`pants package`"))
    return BuiltPackage(
        layout.digest,
        (
            BuiltPackageArtifact(
                layout.spec.split(":", 1)[1], extra_log_lines=(f"    OCI layout of {layout.ref}",)
            ),
        ),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, OciImageFieldSet)]
