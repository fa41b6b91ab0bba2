"""`packaged_resources`: the outputs of package targets (e.g. the `static_c_binary` loaders) as Python resources,
so a `pex_binary` that depends on it ships them next to its package (how `oci2bin.pex` carries its loaders).

Each package's artifacts land at `<this BUILD file's dir>/<location>/<basename>`; with the BUILD file under a
source root the pex holds them at the package path (src/python/oci2bin + "loaders" -> oci2bin/loaders/...)."""

from __future__ import annotations

import os

from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import ResourceSourceField
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import AddPrefix, Digest, DigestSubset, MergeDigests, PathGlobs, RemovePrefix
from pants.engine.internals.native_engine import Snapshot
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    FieldSetsPerTarget,
    FieldSetsPerTargetRequest,
    GeneratedSources,
    GenerateSourcesRequest,
    MultipleSourcesField,
    SpecialCasedDependencies,
    StringField,
    Target,
    Targets,
)
from pants.engine.unions import UnionRule
from pants.util.strutil import softwrap


class PackagedResourcesSourcesField(MultipleSourcesField):
    # no files of its own: present so that codegen can match this target; the generated files are stripped of
    # their source root like any resource
    alias = "_sources"
    expected_num_files = 0


class PackagedResourcesPackagesField(SpecialCasedDependencies):
    alias = "packages"
    required = True
    help = "Package targets (e.g. `static_c_binary`) whose built artifacts become resources."


class PackagedResourcesLocationField(StringField):
    alias = "location"
    default = ""
    help = "Directory, relative to this BUILD file's directory, that receives the artifacts (by basename)."


class PackagedResourcesTarget(Target):
    alias = "packaged_resources"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        PackagedResourcesSourcesField,
        PackagedResourcesPackagesField,
        PackagedResourcesLocationField,
    )
    help = softwrap(
        """
        Built packages as `resources`: `packaged_resources(name="loaders", location="loaders",
        packages=["//src/c/loader:loader-x86_64"])` in src/python/oci2bin/BUILD puts the loader at
        `oci2bin/loaders/loader-x86_64` in any pex that depends on it.
        """
    )


class GeneratePackagedResourcesRequest(GenerateSourcesRequest):
    input = PackagedResourcesSourcesField
    output = ResourceSourceField


@rule(desc="Build packages as resources")
async def generate_packaged_resources(request: GeneratePackagedResourcesRequest) -> GeneratedSources:
    tgt = request.protocol_target
    location = os.path.normpath(
        os.path.join(tgt.address.spec_path, tgt[PackagedResourcesLocationField].value or "")
    )
    if location.startswith(".."):
        raise ValueError(f"{tgt.address}: `location` must stay inside the repository")
    targets = await Get(
        Targets,
        UnparsedAddressInputs,
        tgt[PackagedResourcesPackagesField].to_unparsed_address_inputs(),
    )
    field_sets = await Get(FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, targets))
    built = await MultiGet(
        Get(BuiltPackage, EnvironmentAwarePackageRequest(fs)) for fss in field_sets.collection for fs in fss
    )
    digests = []
    for pkg in built:
        for artifact in pkg.artifacts:
            if artifact.relpath is None:
                continue
            one = await Get(Digest, DigestSubset(pkg.digest, PathGlobs([artifact.relpath])))
            parent = os.path.dirname(artifact.relpath)
            if parent:
                one = await Get(Digest, RemovePrefix(one, parent))
            digests.append(one)
    merged = await Get(Digest, MergeDigests(digests))
    if location not in ("", "."):
        merged = await Get(Digest, AddPrefix(merged, location))
    return GeneratedSources(await Get(Snapshot, Digest, merged))


def rules():
    return [*collect_rules(), UnionRule(GenerateSourcesRequest, GeneratePackagedResourcesRequest)]
