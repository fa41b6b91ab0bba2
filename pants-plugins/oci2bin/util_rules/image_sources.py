"""Turn an image target into an OCI image layout directory (a Digest), the one form every later step reads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address, UnparsedAddressInputs
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import (
    FieldSet,
    FieldSetsPerTarget,
    FieldSetsPerTargetRequest,
    InferDependenciesRequest,
    InferredDependencies,
    SourcesField,
    Target,
    Targets,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from oci2bin.target_types import (
    ArchField,
    InsecureRegistryField,
    OciArchiveFormatField,
    OciArchiveSourceField,
    OciLayoutSourcesField,
    OciLayoutTagField,
    PlatformField,
    PullDigestField,
    PullRepositoryField,
    PullTagField,
    CmdField,
    EntrypointField,
    EnvField,
    LabelsField,
    OciImageBaseField,
    OciImageFilesField,
    RepositoryField,
    UserField,
    WorkdirField,
)
from oci2bin.util_rules.core_process import CoreStep

OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class ImageLayoutRequest:
    address: Address
    description_of_origin: str


@dataclass(frozen=True)
class ImageLayout:
    """An image inside `digest`, named for the core by `spec` (`oci:DIR[:TAG]`, `docker-archive:F`, ...)."""

    digest: Digest
    spec: str
    ref: str


def default_ref(address: Address) -> str:
    return f"localhost/{address.target_name.lower().replace('_', '-')}:latest"


def layout_dir(address: Address) -> str:
    return os.path.join("__oci_layouts", address.path_safe_spec)


async def files_of_target(target: Target) -> Tuple[Optional[Digest], List[str]]:
    """The files a target stands for in an image: its packaged artifacts, or its file/resource sources."""
    field_sets = await Get(FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, [target]))
    if field_sets.field_sets:
        built = await Get(BuiltPackage, EnvironmentAwarePackageRequest(field_sets.field_sets[0]))
        return built.digest, [a.relpath for a in built.artifacts if a.relpath]
    if target.has_field(SourcesField):
        sources = await Get(SourceFiles, SourceFilesRequest([target[SourcesField]]))
        return sources.snapshot.digest, list(sources.files)
    return None, []


async def _single_file_of(target: Target, owner: Address, container_path: str) -> Tuple[Digest, str]:
    """The one file a `files` entry stands for."""
    digest, paths = await files_of_target(target)
    if len(paths) != 1 or digest is None:
        raise ValueError(
            f"{owner}: `files` entry {container_path!r} -> {target.address} must produce exactly one file, "
            f"got {len(paths)}: use a `file`, `resource` or single-artifact packaged target."
        )
    return digest, paths[0]


def _platform_of(target: Target) -> str:
    platform = target[PlatformField].value if target.has_field(PlatformField) else None
    return platform or f"linux/{OCI_ARCH[target[ArchField].value]}"


async def _fetch(target: Target) -> ImageLayout:
    repository = target[PullRepositoryField].value
    digest = target[PullDigestField].value
    tag = target[PullTagField].value
    out = layout_dir(target.address)
    argv = ["fetch", f"{repository}@{digest}", "--output", out, "--platform", _platform_of(target), "--quiet"]
    if target[InsecureRegistryField].value:
        argv += ["--insecure-registry", repository.split("/", 1)[0]]
    result = await Get(
        ProcessResult,
        CoreStep(
            argv=tuple(argv),
            input_digest=EMPTY_DIGEST,
            description=f"Pulling {repository}@{digest[:19]}",
            output_directories=(out,),
            # Pinned by digest: the result never changes, so cache it like any other pure step.
        ),
    )
    return ImageLayout(
        result.output_digest, f"oci:{out}", f"{repository}:{tag}" if tag else f"{repository}@{digest}"
    )


async def _build_oci_image(target: Target) -> ImageLayout:
    address = target.address
    inputs: List[Digest] = []
    argv: List[str] = ["mkimage", "--output", layout_dir(address)]

    base = target[OciImageBaseField].single
    if base:
        base_targets = await Get(
            Targets,
            UnparsedAddressInputs(
                [base], owning_address=address, description_of_origin=f"`base` of {address}"
            ),
        )
        base_layout = await Get(
            ImageLayout, ImageLayoutRequest(base_targets[0].address, f"the `base` field of {address}")
        )
        inputs.append(base_layout.digest)
        argv += ["--base", base_layout.spec]

    files = dict(target[OciImageFilesField].value or {})
    for i, (ctr, spec) in enumerate(files.items()):
        # One request per entry: a `files` generator would expand to several targets, and each entry must
        # stand for exactly one file.
        entry_targets = await Get(
            Targets,
            UnparsedAddressInputs(
                [spec], owning_address=address, description_of_origin=f"`files` of {address}"
            ),
        )
        if len(entry_targets) != 1:
            raise ValueError(
                f"{address}: `files` entry {ctr!r} -> {spec} names {len(entry_targets)} targets; it must name "
                "exactly one file (use a `file` target or one generated target such as `:name#path`)."
            )
        digest, path = await _single_file_of(entry_targets[0], address, ctr)
        prefix = f"__files/{i}"
        inputs.append(await Get(Digest, AddPrefix(digest, prefix)))
        argv += ["--add", f"{prefix}/{path}:{ctr}"]

    for field, flag in ((EntrypointField, "--entrypoint"), (CmdField, "--cmd")):
        value = target[field].value
        if value is not None:
            argv += [flag, json.dumps(list(value))]
    for item in target[EnvField].value or ():
        argv += ["--env", item]
    for key, value in sorted((target[LabelsField].value or {}).items()):
        argv += ["--label", f"{key}={value}"]
    if target[WorkdirField].value:
        argv += ["--workdir", target[WorkdirField].value]
    if target[UserField].value:
        argv += ["--user", target[UserField].value]
    ref = target[RepositoryField].value or default_ref(address)
    argv += ["--arch", target[ArchField].value]

    input_digest = await Get(Digest, MergeDigests(inputs))
    result = await Get(
        ProcessResult,
        CoreStep(
            argv=tuple(argv),
            input_digest=input_digest,
            description=f"Building image {address}",
            output_directories=(layout_dir(address),),
        ),
    )
    return ImageLayout(result.output_digest, f"oci:{layout_dir(address)}", ref)


@rule(desc="Resolve an image target", level=LogLevel.DEBUG)
async def resolve_image(request: ImageLayoutRequest) -> ImageLayout:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin=request.description_of_origin),
    )
    target = wrapped.target
    if target.has_field(OciImageFilesField):
        return await _build_oci_image(target)
    if target.has_field(PullDigestField):
        return await _fetch(target)
    if target.has_field(OciLayoutSourcesField):
        sources = await Get(SourceFiles, SourceFilesRequest([target[OciLayoutSourcesField]]))
        roots = sorted({os.path.dirname(f) for f in sources.files if os.path.basename(f) == "oci-layout"})
        if len(roots) != 1:
            raise ValueError(
                f"{target.address}: `sources` must hold exactly one OCI layout (one `oci-layout` file), "
                f"found {len(roots)}."
            )
        tag = target[OciLayoutTagField].value
        spec = f"oci:{roots[0]}" + (f":{tag}" if tag else "")
        return ImageLayout(sources.snapshot.digest, spec, default_ref(target.address))
    if target.has_field(OciArchiveSourceField):
        sources = await Get(SourceFiles, SourceFilesRequest([target[OciArchiveSourceField]]))
        spec = f"{target[OciArchiveFormatField].value}:{sources.files[0]}"
        return ImageLayout(sources.snapshot.digest, spec, default_ref(target.address))
    raise ValueError(
        f"{request.address} is a `{target.alias}` target, not an image: {request.description_of_origin} must "
        "name an `oci_image`, `oci_image_pull`, `oci_layout` or `oci_archive` target."
    )


@dataclass(frozen=True)
class OciImageDependenciesInferenceFieldSet(FieldSet):
    required_fields = (OciImageFilesField,)
    files: OciImageFilesField


class InferOciImageDependencies(InferDependenciesRequest):
    infer_from = OciImageDependenciesInferenceFieldSet


@rule(desc="Infer oci_image dependencies from `files`", level=LogLevel.DEBUG)
async def infer_oci_image_dependencies(request: InferOciImageDependencies) -> InferredDependencies:
    specs = list((request.field_set.files.value or {}).values())
    if not specs:
        return InferredDependencies([])
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            specs, owning_address=request.field_set.address, description_of_origin="`files` field"
        ),
    )
    return InferredDependencies([t.address for t in targets])


def rules():
    return [*collect_rules(), UnionRule(InferDependenciesRequest, InferOciImageDependencies)]
