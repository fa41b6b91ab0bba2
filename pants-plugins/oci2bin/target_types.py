"""Target types of the oci2bin backend: static C binaries (the loader), OCI images, and oci_binary polyglots."""

from __future__ import annotations

import re
from typing import Dict, Iterable, Mapping, Optional, Tuple, Union

from pants.backend.cc.target_types import CC_FILE_EXTENSIONS
from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    DictStringToStringField,
    IntField,
    InvalidFieldException,
    MultipleSourcesField,
    SingleSourceField,
    SpecialCasedDependencies,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import softwrap

ARCHES = ("x86_64", "aarch64")

# ----------------------------------------------------------------------------------------------------------
# static_c_binary
# ----------------------------------------------------------------------------------------------------------


class StaticCSourcesField(MultipleSourcesField):
    alias = "sources"
    default = ()
    expected_file_extensions = (*CC_FILE_EXTENSIONS, ".zig")
    help = "C (and Zig) sources owned by this target. Files of `cc_sources` dependencies are compiled too."


class StaticCDependenciesField(Dependencies):
    help = "Usually `cc_sources` targets: every .c file among them is compiled, every .zig file too."


class ArchField(StringField):
    alias = "arch"
    default = "x86_64"
    valid_choices = ARCHES
    help = "CPU architecture of the output (Linux, musl, fully static)."


class StaticCCoptsField(StringSequenceField):
    alias = "copts"
    default = ("-Os", "-std=gnu11", "-Wall", "-Wextra", "-Werror")
    help = "Compiler flags. The defaults keep the build warnings-clean."


class StaticCDefinesField(StringSequenceField):
    alias = "defines"
    default = ()
    help = 'Preprocessor defines, e.g. `["OCI2BIN_VERSION=\\"0.1.0\\""]`.'


class StaticCZigCpuField(DictStringToStringField):
    alias = "zig_cpu"
    default = None
    help = softwrap(
        """
        Per-file CPU for `.zig` files: file name -> `zig build-obj -mcpu` value for this target's `arch`, e.g.
        `{"sha256_hw.zig": "baseline+sha+avx2"}`. Every other file is built for the arch's baseline CPU. For code
        that the program enters only after checking the CPU at run time (cpuid, `AT_HWCAP`).
        """
    )


class StaticCBinaryTarget(Target):
    alias = "static_c_binary"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        StaticCSourcesField,
        StaticCDependenciesField,
        ArchField,
        StaticCCoptsField,
        StaticCDefinesField,
        StaticCZigCpuField,
        OutputPathField,
    )
    help = softwrap(
        """
        A statically linked, stripped Linux executable built with the pinned, hermetic `zig cc` (musl libc).
        Byte-identical across builds. `.zig` files are compiled with `zig build-obj` and linked in, which is how
        the loader uses Zig's standard library codecs and hashes from C.

        Example: `static_c_binary(name="loader-aarch64", dependencies=[":sources"], arch="aarch64")`
        """
    )


# ----------------------------------------------------------------------------------------------------------
# Single-address fields (shown by `pants dependencies` and `peek`)
# ----------------------------------------------------------------------------------------------------------


class SingleAddressField(SpecialCasedDependencies):
    @classmethod
    def compute_value(
        cls, raw_value: Optional[Union[str, Iterable[str]]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        # NB: `pants help` reads these annotations; keep them.
        if isinstance(raw_value, str):
            raw_value = (raw_value,)
        value = super().compute_value(raw_value, address)
        if value is not None and len(value) != 1:
            raise InvalidFieldException(
                f"The `{cls.alias}` field of {address} takes exactly one address, got {list(value)}."
            )
        return value

    @property
    def single(self) -> Optional[str]:
        return self.value[0] if self.value else None


# ----------------------------------------------------------------------------------------------------------
# oci_image: an image built from Pants targets, without Docker
# ----------------------------------------------------------------------------------------------------------


class OciImageBaseField(SingleAddressField):
    alias = "base"
    help = "Optional base image: another image target (`oci_image`, `oci_image_pull`, ...). Omit for FROM scratch."


class OciImageFilesField(DictStringToStringField):
    alias = "files"
    default = None
    help = softwrap(
        """
        Files of the new layer: a map of absolute container path -> address of a target that produces exactly
        one file (a `file`/`resource` target, or a packaged target such as `static_c_binary` or `pex_binary`).
        Example: `files={"/usr/local/bin/app": ":app_pex", "/etc/app.conf": ":conf"}`.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[Mapping[str, str]]:
        # NB: `pants help` reads these annotations (KeyError 'raw_value' without them).
        value = super().compute_value(raw_value, address)
        for path in value or {}:
            if not path.startswith("/") or ".." in path.split("/"):
                raise InvalidFieldException(
                    f"{address}: `files` key {path!r} must be an absolute container path without `..`."
                )
        return value


class OciImageDependenciesField(Dependencies):
    help = "Extra dependencies. Targets named in `files` and `base` are dependencies already."


class EntrypointField(StringSequenceField):
    alias = "entrypoint"
    default = None
    help = 'The image Entrypoint, e.g. `["/usr/local/bin/app"]`. Unset: keep the base image\'s.'


class CmdField(StringSequenceField):
    alias = "cmd"
    default = None
    help = (
        'The image Cmd (arguments after the entrypoint), e.g. `["--port", "8080"]`. Unset: keep the base\'s.'
    )


class EnvField(StringSequenceField):
    alias = "env"
    default = None
    help = "Environment variables as `KEY=VALUE`, added to (and overriding) the base image's."

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for item in value or ():
            if "=" not in item or item.startswith("="):
                raise InvalidFieldException(f"{address}: `env` entry {item!r} is not KEY=VALUE.")
        return value


class WorkdirField(StringField):
    alias = "workdir"
    default = None
    help = "The image WorkingDir (absolute)."


class UserField(StringField):
    alias = "user"
    default = None
    help = "The image User, e.g. `1000:1000`."


class LabelsField(DictStringToStringField):
    alias = "labels"
    default = None
    help = "Image config labels."


class RepositoryField(StringField):
    alias = "repository"
    default = None
    help = "The image reference recorded in the image (RepoTags) and the binary's metadata. Default: `localhost/<target name>:latest`."


class OciImageTarget(Target):
    alias = "oci_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciImageBaseField,
        OciImageFilesField,
        OciImageDependenciesField,
        EntrypointField,
        CmdField,
        EnvField,
        WorkdirField,
        UserField,
        LabelsField,
        ArchField,
        RepositoryField,
    )
    help = softwrap(
        """
        An OCI image built hermetically from Pants targets (no Docker): an optional base image plus one layer
        holding `files`, with the given config. Its output is an OCI image layout directory.

        Example:
        `oci_image(name="img", files={"/bin/hello": ":hello"}, entrypoint=["/bin/hello"], cmd=["world"])`
        """
    )


# ----------------------------------------------------------------------------------------------------------
# Image sources: a registry image pinned by digest, an OCI layout dir or an image archive in the repo
# ----------------------------------------------------------------------------------------------------------


class PullRepositoryField(StringField):
    alias = "repository"
    required = True
    help = "Image repository, e.g. `docker.io/library/redis` or `registry.example.com:5000/team/app`."


class PullDigestField(StringField):
    alias = "digest"
    required = True
    help = softwrap(
        """
        The manifest (or index) digest, `sha256:<64 hex>`. Required: builds never use floating tags, so the
        download is content-addressed and cached forever. `skopeo inspect docker://REF` shows it.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None or not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
            raise InvalidFieldException(
                f"{address}: `digest` must be `sha256:` followed by 64 lowercase hex digits, got {value!r}."
            )
        return value


class PullTagField(StringField):
    alias = "tag"
    default = None
    help = "Optional tag, recorded as the image name only (the digest decides what is pulled)."


class PlatformField(StringField):
    alias = "platform"
    default = None
    help = (
        "Platform to select from a multi-platform image, e.g. `linux/arm64`. Default: the image's arch field."
    )


class InsecureRegistryField(BoolField):
    alias = "insecure"
    default = False
    help = "Allow plain HTTP / unverified TLS for this registry (loopback registries are always allowed)."


class OciImagePullTarget(Target):
    alias = "oci_image_pull"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        PullRepositoryField,
        PullDigestField,
        PullTagField,
        PlatformField,
        ArchField,
        InsecureRegistryField,
    )
    help = softwrap(
        """
        An image from a registry, pinned by digest, pulled by oci2bin's own registry client (no Docker) into
        the Pants cache. Credentials come from `~/.docker/config.json` / `REGISTRY_AUTH_FILE`.

        Example: `oci_image_pull(name="redis", repository="docker.io/library/redis", digest="sha256:...")`
        """
    )


class OciLayoutSourcesField(MultipleSourcesField):
    alias = "sources"
    required = True
    help = "The files of one OCI image layout directory (`oci-layout`, `index.json`, `blobs/**`), e.g. `['redis/**']`."


class OciLayoutTagField(StringField):
    alias = "tag"
    default = None
    help = "Which `org.opencontainers.image.ref.name` of the layout's index to use (default: the only image)."


class OciLayoutTarget(Target):
    alias = "oci_layout"
    core_fields = (*COMMON_TARGET_FIELDS, OciLayoutSourcesField, OciLayoutTagField, PlatformField, ArchField)
    help = "An OCI image layout directory checked into the repo (e.g. written by `skopeo copy ... oci:DIR`)."


class OciArchiveSourceField(SingleSourceField):
    alias = "source"
    required = True
    expected_file_extensions = (".tar",)
    help = "A `docker save` / `skopeo copy docker-archive:` tar, or an `oci-archive:` tar."


class OciArchiveFormatField(StringField):
    alias = "format"
    default = "docker-archive"
    valid_choices = ("docker-archive", "oci-archive")
    help = "The archive's format."


class OciArchiveTarget(Target):
    alias = "oci_archive"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciArchiveSourceField,
        OciArchiveFormatField,
        PlatformField,
        ArchField,
    )
    help = "An image archive file checked into the repo: a docker-archive (`docker save`) or an oci-archive."


# ----------------------------------------------------------------------------------------------------------
# Build options of oci_binary (the CLI's transforms)
# ----------------------------------------------------------------------------------------------------------


class AddFilesField(SpecialCasedDependencies):
    alias = "add_files"
    help = softwrap(
        """
        Targets whose files are added in a new layer: `file`/`files`/`resource(s)` targets (at their path in
        the repo) or packaged targets such as `pex_binary` (at their output path), under `add_files_prefix`.
        """
    )


class AddFilesPrefixField(StringField):
    alias = "add_files_prefix"
    default = "/"
    help = "Absolute container directory that `add_files` land under (`/app` puts `src/x.py` at `/app/src/x.py`)."


class LayersField(SpecialCasedDependencies):
    alias = "layers"
    help = "Image targets whose layers are stacked on top, in order; the last one's Entrypoint/Cmd/Env win."


class StripField(BoolField):
    alias = "strip"
    default = False
    help = "Remove docs, man pages, locales and package caches (the CLI's `--strip`)."


class StripPrefixesField(StringSequenceField):
    alias = "strip_prefixes"
    default = None
    help = (
        "Relative path prefixes to remove instead of the defaults, e.g. `['usr/share/doc/']` (implies strip)."
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for prefix in value or ():
            if prefix.startswith("/") or ".." in prefix.split("/"):
                raise InvalidFieldException(
                    f"{address}: `strip_prefixes` entry {prefix!r} must be relative and must not contain `..`."
                )
        return value


class StripAutoField(BoolField):
    alias = "strip_auto"
    default = False
    help = "Also strip the caches of package managers detected in the image (apt, apk, pip, npm, ...)."


class SquashField(BoolField):
    alias = "squash"
    default = False
    help = "Merge all layers into one."


class CompressionField(StringField):
    alias = "compression"
    default = None
    valid_choices = ("gzip", "zstd")
    help = "(Re)compress layers with gzip or zstd. Default: keep the source's compression."


# ----------------------------------------------------------------------------------------------------------
# Loader embedding (the CLI's `--embed-loader-*`): the loader stored in the image, for `oci2bin reconstruct`
# ----------------------------------------------------------------------------------------------------------

EMBED_LOADER_MODES = ("none", "layer", "labels")
DEFAULT_LABEL_PREFIX = "oci2bin.loader"  # the core's embed_loader.DEFAULT_PREFIX
MIN_LABEL_CHUNK_SIZE = 256  # the core rejects smaller chunks


class EmbedLoaderField(StringField):
    alias = "embed_loader"
    default = "none"
    valid_choices = EMBED_LOADER_MODES
    help = softwrap(
        """
        Store the loader inside the image so that `oci2bin reconstruct` can rebuild the binary from the image
        alone: `"layer"` adds a layer holding `<loader_dir>/loader` (the CLI's `--embed-loader-layer`),
        `"labels"` stores it as base64 chunks in config labels (`--embed-loader-labels`), `"none"` stores
        nothing. One field, not two booleans: the CLI rejects both flags together, so the choice is one of three.
        """
    )


class LabelPrefixField(StringField):
    alias = "label_prefix"
    default = None
    help = softwrap(
        f"""
        Key prefix of the embedding's labels (the CLI's `--label-prefix`), default `{DEFAULT_LABEL_PREFIX}`. Pass
        the same prefix to `oci2bin reconstruct --label-prefix`. Needs `embed_loader`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.fullmatch(r"[A-Za-z0-9]+([._/-][A-Za-z0-9]+)*", value):
            raise InvalidFieldException(
                f"{address}: `label_prefix` {value!r} is not a label key prefix: use letters and digits "
                f"separated by single `.`, `-`, `_` or `/`, e.g. `myorg.loader`."
            )
        return value


class LabelChunkSizeField(IntField):
    alias = "label_chunk_size"
    default = None
    help = softwrap(
        f"""
        Loader bytes per label with `embed_loader="labels"` (the CLI's `--label-chunk-size`), at least
        {MIN_LABEL_CHUNK_SIZE}; default 6144 (~8 KB of base64 per label). Lower it for registries that limit
        the size of a label.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> Optional[int]:
        value = super().compute_value(raw_value, address)
        if value is not None and value < MIN_LABEL_CHUNK_SIZE:
            raise InvalidFieldException(
                f"{address}: `label_chunk_size` {value} is too small: use at least {MIN_LABEL_CHUNK_SIZE} bytes."
            )
        return value


class LoaderDirField(StringField):
    alias = "loader_dir"
    default = None
    help = softwrap(
        """
        Directory of the loader file inside the image with `embed_loader="layer"` (the CLI's `--loader-dir`),
        relative to `/`; default `.oci2bin`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and (not value.strip("/") or ".." in value.split("/")):
            raise InvalidFieldException(
                f"{address}: `loader_dir` {value!r} must name a directory inside the image, without `..`, "
                f"e.g. `.oci2bin`."
            )
        return value


# ----------------------------------------------------------------------------------------------------------
# oci_binary / oci_vm_binary
# ----------------------------------------------------------------------------------------------------------


class OciBinaryImageField(SingleAddressField):
    alias = "image"
    required = True
    help = "The image to package: an `oci_image` target (or another image-source target)."


class OciBinaryLoaderField(SingleAddressField):
    alias = "loader"
    help = softwrap(
        """
        The `static_c_binary` loader to embed. Default: the loader for `arch` named by `[oci2bin].loaders`
        (`//src/c/loader:loader-x86_64` / `:loader-aarch64`).
        """
    )


class VmModeField(BoolField):
    alias = "vm"
    default = False
    help = "Run in VM mode by default (as if `--vm` were always given). `oci_vm_binary` defaults it to True."


class VmModeDefaultOnField(VmModeField):
    default = True


class VmKernelField(SingleAddressField):
    alias = "kernel"
    help = softwrap(
        """
        A guest kernel to embed for VM mode (`oci2bin --kernel`): the address of a `file`/`resource` target (or a
        packaged target) with exactly one file, an x86 bzImage / arm64 Image such as Debian's
        `/boot/vmlinuz-*-cloud-amd64`. Without it, VM runs need `--kernel PATH` or `$OCI2BIN_VM_KERNEL`.
        """
    )


class OciBinaryTarget(Target):
    alias = "oci_binary"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciBinaryImageField,
        OciBinaryLoaderField,
        ArchField,
        VmModeField,
        VmKernelField,
        EntrypointField,
        CmdField,
        EnvField,
        WorkdirField,
        UserField,
        LabelsField,
        AddFilesField,
        AddFilesPrefixField,
        LayersField,
        StripField,
        StripPrefixesField,
        StripAutoField,
        SquashField,
        CompressionField,
        EmbedLoaderField,
        LabelPrefixField,
        LabelChunkSizeField,
        LoaderDirField,
        RepositoryField,
        OutputPathField,
    )
    help = softwrap(
        """
        One executable file that runs the image as a rootless container (ELF loader + docker-archive polyglot).
        `pants package` writes it to dist/; `pants run //x:y -- args` runs it.

        Example: `oci_binary(name="hello_bin", image=":hello_image")`
        """
    )


class OciVmBinaryTarget(Target):
    alias = "oci_vm_binary"
    core_fields = tuple(VmModeDefaultOnField if f is VmModeField else f for f in OciBinaryTarget.core_fields)
    help = softwrap(
        """
        Like `oci_binary`, but the file runs the image in a microVM by default (as if `--vm` were given).

        Example: `oci_vm_binary(name="hello_vm", image=":hello_image")`
        """
    )


# ----------------------------------------------------------------------------------------------------------
# pypi_sdist_files: vetted C sources that ship inside a PyPI sdist (e.g. libzstd in `zstandard`)
# ----------------------------------------------------------------------------------------------------------


class SdistRequirementField(StringField):
    alias = "requirement"
    required = True
    help = "A pinned sdist, `name==version`, e.g. `zstandard==0.23.0`. Fetched with the machine's pip config."

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None or not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-]+", value):
            raise InvalidFieldException(
                f"{address}: `requirement` must be pinned as name==version, got {value!r}."
            )
        return value


class SdistSha256Field(StringField):
    alias = "sha256"
    required = True
    help = "sha256 of the sdist file; a download with another hash is rejected."

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None or not re.fullmatch(r"[0-9a-f]{64}", value):
            raise InvalidFieldException(
                f"{address}: `sha256` must be 64 lowercase hex digits, got {value!r}."
            )
        return value


class SdistFilesField(StringSequenceField):
    alias = "files"
    required = True
    help = (
        "Paths inside the sdist (below its top directory) to extract, e.g. `['zstd/zstd.c', 'zstd/zstd.h']`."
    )


class SdistOutputDirField(StringField):
    alias = "output_dir"
    required = True
    help = "Directory (relative to the build root) the files are placed in; add it to include paths."


class SdistCompileField(StringSequenceField):
    alias = "compile"
    default = ()
    help = "Which of the extracted `.c` files a dependent `static_c_binary` compiles (file names)."


class PypiSdistFilesTarget(Target):
    alias = "pypi_sdist_files"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        SdistRequirementField,
        SdistSha256Field,
        SdistFilesField,
        SdistOutputDirField,
        SdistCompileField,
    )
    help = softwrap(
        """
        Files taken from a pinned, hash-checked PyPI sdist, for `static_c_binary` targets that depend on it:
        how the loader uses libzstd's single-file `zstd.c` from the `zstandard` sdist instead of a copy in git.

        Example: `pypi_sdist_files(name="libzstd", requirement="zstandard==0.23.0", sha256="...",
        files=["zstd/zstd.c", "zstd/zstd.h"], output_dir="third_party/zstd", compile=["zstd.c"])`
        """
    )
