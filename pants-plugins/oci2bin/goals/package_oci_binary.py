"""`pants package` / `pants run` for `oci_binary` and `oci_vm_binary`.

Three steps, each its own cached process over content digests: resolve the image (fetch / build / read), apply
the build options (`oci2bin transform`, only when any is set), assemble loader + image (`oci2bin assemble`).
Changing a build option reruns the transform and the assembly, never the fetch; changing the loader reruns only
the assembly. The loader-embedding options (`embed_loader`, ...) go to the assembly: it is the step that has the
loader, and its cache key holds both the loader digest and these flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import List

from pants.core.goals.package import (
    BuiltPackage,
    BuiltPackageArtifact,
    EnvironmentAwarePackageRequest,
    OutputPathField,
    PackageFieldSet,
)
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import AddPrefix, Digest, MergeDigests
from pants.engine.platform import Platform
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import FieldSetsPerTarget, FieldSetsPerTargetRequest, Targets
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from oci2bin.subsystems.oci2bin import Oci2binSubsystem
from oci2bin.target_types import (
    AddFilesField,
    AddFilesPrefixField,
    ArchField,
    CmdField,
    CompressionField,
    EmbedLoaderField,
    EntrypointField,
    EnvField,
    LabelChunkSizeField,
    LabelPrefixField,
    LabelsField,
    LayersField,
    LoaderDirField,
    OciBinaryImageField,
    OciBinaryLoaderField,
    RepositoryField,
    SquashField,
    StaticCCoptsField,
    StripAutoField,
    StripField,
    StripPrefixesField,
    UserField,
    VmKernelField,
    VmModeField,
    WorkdirField,
)
from oci2bin.util_rules.core_process import CoreStep
from oci2bin.util_rules.host_tools import run_request_for
from oci2bin.util_rules.image_sources import (
    OCI_ARCH,
    ImageLayout,
    ImageLayoutRequest,
    files_of_target,
    layout_dir,
)


@dataclass(frozen=True)
class OciBinaryFieldSet(PackageFieldSet, RunFieldSet):
    required_fields = (OciBinaryImageField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.RUN_REQUEST_HERMETIC

    image: OciBinaryImageField
    loader: OciBinaryLoaderField
    arch: ArchField
    vm: VmModeField
    kernel: VmKernelField
    entrypoint: EntrypointField
    cmd: CmdField
    env: EnvField
    workdir: WorkdirField
    user: UserField
    labels: LabelsField
    add_files: AddFilesField
    add_files_prefix: AddFilesPrefixField
    layers: LayersField
    strip: StripField
    strip_prefixes: StripPrefixesField
    strip_auto: StripAutoField
    squash: SquashField
    compression: CompressionField
    embed_loader: EmbedLoaderField
    label_prefix: LabelPrefixField
    label_chunk_size: LabelChunkSizeField
    loader_dir: LoaderDirField
    repository: RepositoryField
    output_path: OutputPathField


async def _build_loader(field_set: OciBinaryFieldSet, options: Oci2binSubsystem) -> BuiltPackage:
    arch = field_set.arch.value
    spec = field_set.loader.single or options.loaders.get(arch)
    if not spec:
        raise ValueError(
            f"{field_set.address}: no loader for arch {arch!r}: set `loader=` or `[oci2bin].loaders`."
        )
    targets = await Get(
        Targets,
        UnparsedAddressInputs([spec], owning_address=field_set.address, description_of_origin="the loader"),
    )
    loader_target = targets[0]
    if not loader_target.has_field(ArchField) or not loader_target.has_field(StaticCCoptsField):
        raise ValueError(f"{field_set.address}: loader {loader_target.address} is not a `static_c_binary`.")
    loader_arch = loader_target[ArchField].value
    if loader_arch != arch:
        raise ValueError(
            f"{field_set.address}: loader {loader_target.address} is built for {loader_arch}, "
            f"but the binary's arch is {arch}: use a loader with arch={arch!r}."
        )
    field_sets = await Get(FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, [loader_target]))
    return await Get(BuiltPackage, EnvironmentAwarePackageRequest(field_sets.field_sets[0]))


async def _files_of(field_set: OciBinaryFieldSet) -> tuple:
    """(digest, paths) of `add_files`: packaged artifacts, or file/resource sources."""
    if not field_set.add_files.value:
        return None, []
    targets = await Get(Targets, UnparsedAddressInputs, field_set.add_files.to_unparsed_address_inputs())
    digests: List[Digest] = []
    paths: List[str] = []
    for target in targets:
        digest, files = await files_of_target(target)
        if digest is None or not files:
            raise ValueError(f"{field_set.address}: `add_files` target {target.address} has no files.")
        digests.append(digest)
        paths.extend(files)
    return await Get(Digest, MergeDigests(digests)), sorted(set(paths))


def _transform_args(field_set: OciBinaryFieldSet) -> List[str]:
    argv: List[str] = []
    for value, flag in ((field_set.entrypoint.value, "--entrypoint"), (field_set.cmd.value, "--cmd")):
        if value is not None:
            argv += [flag, json.dumps(list(value))]
    for item in field_set.env.value or ():
        argv += ["--env", item]
    for key, value in sorted((field_set.labels.value or {}).items()):
        argv += ["--label", f"{key}={value}"]
    if field_set.workdir.value:
        argv += ["--workdir", field_set.workdir.value]
    if field_set.user.value:
        argv += ["--user", field_set.user.value]
    if field_set.strip.value:
        argv.append("--strip")
    for prefix in field_set.strip_prefixes.value or ():
        argv += ["--strip-prefix", prefix]
    if field_set.strip_auto.value:
        argv.append("--strip-auto")
    if field_set.squash.value:
        argv.append("--squash")
    if field_set.compression.value:
        argv += ["--compress", field_set.compression.value]
    return argv


def _embed_args(field_set: OciBinaryFieldSet) -> List[str]:
    """`oci2bin assemble` flags of the loader embedding; an option that the chosen mode ignores is an error."""
    mode = field_set.embed_loader.value
    for field, modes in (
        (field_set.label_prefix, ("layer", "labels")),
        (field_set.label_chunk_size, ("labels",)),
        (field_set.loader_dir, ("layer",)),
    ):
        if field.value is not None and mode not in modes:
            raise ValueError(
                f"{field_set.address}: `{field.alias}` has no effect with embed_loader={mode!r}: remove it, "
                f"or set embed_loader to {' or '.join(repr(m) for m in modes)}."
            )
    if mode == "none":
        return []
    argv = ["--embed-loader-layer" if mode == "layer" else "--embed-loader-labels"]
    if field_set.label_prefix.value is not None:
        argv += ["--label-prefix", field_set.label_prefix.value]
    if field_set.label_chunk_size.value is not None:
        argv += ["--label-chunk-size", str(field_set.label_chunk_size.value)]
    if field_set.loader_dir.value is not None:
        argv += ["--loader-dir", field_set.loader_dir.value]
    return argv


async def _transform(field_set: OciBinaryFieldSet, image: ImageLayout) -> ImageLayout:
    argv = _transform_args(field_set)
    inputs: List[Digest] = [image.digest]
    layer_addresses = field_set.layers.to_unparsed_address_inputs()
    if field_set.layers.value:
        for target in await Get(Targets, UnparsedAddressInputs, layer_addresses):
            layer = await Get(
                ImageLayout, ImageLayoutRequest(target.address, f"`layers` of {field_set.address}")
            )
            inputs.append(layer.digest)
            argv += ["--layer", layer.spec]
    files_digest, paths = await _files_of(field_set)
    if files_digest is not None:
        inputs.append(await Get(Digest, AddPrefix(files_digest, "__add_files")))
        prefix = field_set.add_files_prefix.value.rstrip("/")
        argv += [arg for path in paths for arg in ("--add", f"__add_files/{path}:{prefix}/{path}")]
    if not argv:
        return image  # nothing to change: assemble the source image as it is
    out = layout_dir(field_set.address) + ".transformed"
    result = await Get(
        ProcessResult,
        CoreStep(
            argv=(
                "transform",
                "--image",
                image.spec,
                "--output",
                out,
                "--platform",
                f"linux/{OCI_ARCH[field_set.arch.value]}",
                *argv,
            ),
            input_digest=await Get(Digest, MergeDigests(inputs)),
            description=f"Transforming the image of {field_set.address}",
            output_directories=(out,),
        ),
    )
    return ImageLayout(result.output_digest, f"oci:{out}", image.ref)


@rule(desc="Package oci_binary", level=LogLevel.DEBUG)
async def package_oci_binary(field_set: OciBinaryFieldSet, options: Oci2binSubsystem) -> BuiltPackage:
    embed_argv = _embed_args(field_set)  # checked before any process runs
    image_targets = await Get(Targets, UnparsedAddressInputs, field_set.image.to_unparsed_address_inputs())
    source = await Get(
        ImageLayout, ImageLayoutRequest(image_targets[0].address, f"the `image` field of {field_set.address}")
    )
    image = await _transform(field_set, source)
    loader = await _build_loader(field_set, options)
    loader_path = loader.artifacts[0].relpath
    assert loader_path is not None
    output = field_set.output_path.value_or_default(file_ending=None)
    ref = field_set.repository.value or image.ref
    argv = [
        "assemble",
        "--loader",
        loader_path,
        "--image",
        image.spec,
        "--output",
        output,
        "--ref",
        ref,
        "--platform",
        f"linux/{OCI_ARCH[field_set.arch.value]}",
        "--quiet",
    ]
    if field_set.vm.value:
        argv.append("--vm")
    argv += embed_argv
    inputs = [image.digest, loader.digest]
    if field_set.kernel.value:
        kernel_targets = await Get(
            Targets, UnparsedAddressInputs, field_set.kernel.to_unparsed_address_inputs()
        )
        kdigest, kfiles = await files_of_target(kernel_targets[0])
        if kdigest is None or len(kfiles) != 1:
            raise ValueError(
                f"{field_set.address}: `kernel` target {kernel_targets[0].address} must have exactly one file "
                f"(got {len(kfiles)}): use a `file` target holding the kernel image."
            )
        inputs.append(await Get(Digest, AddPrefix(kdigest, "__kernel")))
        argv += ["--kernel", f"__kernel/{kfiles[0]}"]
    result = await Get(
        ProcessResult,
        CoreStep(
            argv=tuple(argv),
            input_digest=await Get(Digest, MergeDigests(inputs)),
            description=f"Assembling {field_set.address}",
            output_files=(output,),
        ),
    )
    return BuiltPackage(result.output_digest, (BuiltPackageArtifact(output),))


@rule
async def run_oci_binary(field_set: OciBinaryFieldSet, platform: Platform) -> RunRequest:
    built = await Get(BuiltPackage, PackageFieldSet, field_set)
    return await run_request_for(built, field_set.arch.value, platform)


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, OciBinaryFieldSet),
        *OciBinaryFieldSet.rules(),
    ]
