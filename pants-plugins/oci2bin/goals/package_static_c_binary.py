"""`pants package` / `pants run` for `static_c_binary`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pants.backend.cc.target_types import CCSourceField
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.core.target_types import FileSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.platform import Platform
from pants.engine.fs import Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from oci2bin.target_types import (
    ArchField,
    SdistCompileField,
    SdistFilesField,
    SdistOutputDirField,
    SdistRequirementField,
    SdistSha256Field,
    StaticCCoptsField,
    StaticCDefinesField,
    StaticCSourcesField,
    StaticCZigCpuField,
)
from oci2bin.util_rules.pypi_sdist import SdistFiles, SdistFilesRequest
from oci2bin.util_rules.host_tools import run_request_for
from oci2bin.util_rules.zig_compile import StaticBinary, StaticBinaryRequest


@dataclass(frozen=True)
class StaticCBinaryFieldSet(PackageFieldSet, RunFieldSet):
    required_fields = (ArchField, StaticCCoptsField)
    run_in_sandbox_behavior = RunInSandboxBehavior.RUN_REQUEST_HERMETIC

    sources: StaticCSourcesField
    arch: ArchField
    copts: StaticCCoptsField
    defines: StaticCDefinesField
    zig_cpu: StaticCZigCpuField
    output_path: OutputPathField


@rule(desc="Package static_c_binary", level=LogLevel.DEBUG)
async def package_static_c_binary(field_set: StaticCBinaryFieldSet) -> BuiltPackage:
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([field_set.address]))
    source_fields = [
        field_set.sources,
        *(t[CCSourceField] for t in transitive.dependencies if t.has_field(CCSourceField)),
        # `.zig` files come from `files` targets (the cc backend's targets take only C/C++ extensions).
        *(t[FileSourceField] for t in transitive.dependencies if t.has_field(FileSourceField)),
    ]
    sources = await Get(SourceFiles, SourceFilesRequest(source_fields))
    files = sorted(sources.files)
    # Vendored-at-build-time C sources (e.g. libzstd from the `zstandard` sdist).
    sdists = [t for t in transitive.dependencies if t.has_field(SdistRequirementField)]
    sdist_files = await MultiGet(
        Get(
            SdistFiles,
            SdistFilesRequest(
                t[SdistRequirementField].value,
                t[SdistSha256Field].value,
                tuple(t[SdistFilesField].value or ()),
                t[SdistOutputDirField].value,
            ),
        )
        for t in sdists
    )
    vendored_digest = await Get(Digest, MergeDigests(f.digest for f in sdist_files))
    input_digest = await Get(Digest, MergeDigests([sources.snapshot.digest, vendored_digest]))
    extra_c = [
        os.path.join(t[SdistOutputDirField].value, name)
        for t in sdists
        for name in t[SdistCompileField].value
    ]
    include_dirs = sorted(
        {os.path.dirname(f) or "." for f in files} | {t[SdistOutputDirField].value for t in sdists}
    )
    output = field_set.output_path.value_or_default(file_ending=None)
    binary = await Get(
        StaticBinary,
        StaticBinaryRequest(
            input_digest=input_digest,
            c_files=tuple(f for f in files if f.endswith(".c")),
            vendored_c_files=tuple(extra_c),
            vendored_digest=vendored_digest,
            zig_files=tuple(f for f in files if f.endswith(".zig")),
            include_dirs=tuple(include_dirs),
            arch=field_set.arch.value,
            copts=tuple(field_set.copts.value or ()),
            defines=tuple(field_set.defines.value or ()),
            zig_cpu=tuple(sorted((field_set.zig_cpu.value or {}).items())),
            output_path=output,
            description=f"Building {field_set.address} (zig cc, {field_set.arch.value})",
        ),
    )
    return BuiltPackage(
        binary.digest, (BuiltPackageArtifact(binary.path, extra_log_lines=(f"    {field_set.arch.value}",)),)
    )


@rule
async def run_static_c_binary(field_set: StaticCBinaryFieldSet, platform: Platform) -> RunRequest:
    built = await Get(BuiltPackage, PackageFieldSet, field_set)
    return await run_request_for(built, field_set.arch.value, platform)


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, StaticCBinaryFieldSet),
        *StaticCBinaryFieldSet.rules(),
    ]
