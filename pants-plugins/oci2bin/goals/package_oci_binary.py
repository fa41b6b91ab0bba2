"""`pants package` / `pants run` for `oci_binary` and `oci_vm_binary`: loader + image -> one executable."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pants.core.goals.package import (
    BuiltPackage,
    BuiltPackageArtifact,
    EnvironmentAwarePackageRequest,
    OutputPathField,
    PackageFieldSet,
)
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import Digest, MergeDigests
from pants.engine.platform import Platform
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import FieldSetsPerTarget, FieldSetsPerTargetRequest, Targets
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from oci2bin.subsystems.oci2bin import Oci2binSubsystem
from oci2bin.target_types import ArchField, OciBinaryImageField, OciBinaryLoaderField, VmModeField
from oci2bin.util_rules.core_process import CoreStep
from oci2bin.util_rules.host_tools import emulator_prefix
from oci2bin.util_rules.image_sources import ImageLayout, ImageLayoutRequest


@dataclass(frozen=True)
class OciBinaryFieldSet(PackageFieldSet, RunFieldSet):
    required_fields = (OciBinaryImageField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.RUN_REQUEST_HERMETIC

    image: OciBinaryImageField
    loader: OciBinaryLoaderField
    arch: ArchField
    vm: VmModeField
    output_path: OutputPathField


async def _build_loader(field_set: OciBinaryFieldSet, options: Oci2binSubsystem) -> BuiltPackage:
    arch = field_set.arch.value
    spec = field_set.loader.single or options.loaders.get(arch)
    if not spec:
        raise ValueError(f"{field_set.address}: no loader for arch {arch!r}: set `loader=` or `[oci2bin].loaders`.")
    targets = await Get(
        Targets,
        UnparsedAddressInputs([spec], owning_address=field_set.address, description_of_origin="the loader"),
    )
    loader_target = targets[0]
    loader_arch = loader_target.get(ArchField).value if loader_target.has_field(ArchField) else None
    if loader_arch != arch:
        raise ValueError(
            f"{field_set.address}: loader {loader_target.address} is built for {loader_arch}, "
            f"but the binary's arch is {arch}: use a loader with arch={arch!r}."
        )
    field_sets = await Get(FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, [loader_target]))
    if not field_sets.field_sets:
        raise ValueError(f"{field_set.address}: loader {loader_target.address} is not a `static_c_binary`.")
    return await Get(BuiltPackage, EnvironmentAwarePackageRequest(field_sets.field_sets[0]))


@rule(desc="Package oci_binary", level=LogLevel.DEBUG)
async def package_oci_binary(field_set: OciBinaryFieldSet, options: Oci2binSubsystem) -> BuiltPackage:
    image_targets = await Get(
        Targets,
        UnparsedAddressInputs(
            [field_set.image.single or ""], owning_address=field_set.address, description_of_origin="`image`"
        ),
    )
    layout = await Get(
        ImageLayout, ImageLayoutRequest(image_targets[0].address, f"the `image` field of {field_set.address}")
    )
    loader = await _build_loader(field_set, options)
    loader_path = loader.artifacts[0].relpath
    assert loader_path is not None
    output = field_set.output_path.value_or_default(file_ending=None)
    argv = ["assemble", "--loader", loader_path, "--image", f"oci:{layout.path}", "--output", output,
            "--ref", layout.ref]
    if field_set.vm.value:
        argv.append("--vm")
    result = await Get(
        ProcessResult,
        CoreStep(
            argv=tuple(argv),
            input_digest=await Get(Digest, MergeDigests([layout.digest, loader.digest])),
            description=f"Assembling {field_set.address}",
            output_files=(output,),
        ),
    )
    return BuiltPackage(result.output_digest, (BuiltPackageArtifact(output),))


@rule
async def run_oci_binary(field_set: OciBinaryFieldSet, platform: Platform) -> RunRequest:
    built = await Get(BuiltPackage, PackageFieldSet, field_set)
    relpath = built.artifacts[0].relpath
    assert relpath is not None
    prefix = await emulator_prefix(field_set.arch.value, platform)
    return RunRequest(digest=built.digest, args=(*prefix, os.path.join("{chroot}", relpath)))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, OciBinaryFieldSet),
        *OciBinaryFieldSet.rules(),
    ]
