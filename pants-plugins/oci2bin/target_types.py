"""Target types of the oci2bin backend: static C binaries (the loader), OCI images, and oci_binary polyglots."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple, Union

from pants.backend.cc.target_types import CC_FILE_EXTENSIONS
from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    DictStringToStringField,
    InvalidFieldException,
    MultipleSourcesField,
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


class StaticCBinaryTarget(Target):
    alias = "static_c_binary"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        StaticCSourcesField,
        StaticCDependenciesField,
        ArchField,
        StaticCCoptsField,
        StaticCDefinesField,
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
    def compute_value(cls, raw_value, address: Address):  # type: ignore[no-untyped-def]
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
    help = 'The image Cmd (arguments after the entrypoint), e.g. `["--port", "8080"]`. Unset: keep the base\'s.'


class EnvField(StringSequenceField):
    alias = "env"
    default = None
    help = 'Environment variables as `KEY=VALUE`, added to (and overriding) the base image\'s.'

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
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


class OciBinaryTarget(Target):
    alias = "oci_binary"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciBinaryImageField,
        OciBinaryLoaderField,
        ArchField,
        VmModeField,
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
