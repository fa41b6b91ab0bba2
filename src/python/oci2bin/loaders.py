"""Find the loader ELF for a target architecture: --loader, $OCI2BIN_LOADER, or a file installed next to the
package (oci2bin/loaders/loader-<arch>)."""

from __future__ import annotations

import os

from oci2bin.errors import UserError
from oci2bin.polyglot.format import parse_elf
from oci2bin.record import Record

ENV = "OCI2BIN_LOADER"
ARCHES = ("x86_64", "aarch64")


class Loader(Record):
    __slots__ = ("path", "data", "arch")
    _fields = __slots__
    path: str
    data: bytes
    arch: str


def read_loader(path: str) -> Loader:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(
            f"cannot read loader {path}: {e.strerror}",
            "check --loader / $OCI2BIN_LOADER",
        ) from None
    elf = parse_elf(data, f"loader {path}")
    return Loader(path, data, elf.arch)


def candidates(explicit: list[str] | None) -> tuple[list[str], str]:
    if explicit:
        return explicit, "--loader"
    env = os.environ.get(ENV, "")
    if env.strip():
        return [p for p in env.split(os.pathsep) if p], f"${ENV}"
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loaders")
    return [
        os.path.join(here, f"loader-{a}") for a in ARCHES if os.path.exists(os.path.join(here, f"loader-{a}"))
    ], ("the installed loaders")


def find_loaders(explicit: list[str] | None) -> list[Loader]:
    paths, _origin = candidates(explicit)
    if not paths:
        raise UserError("no loader binary found", f"pass --loader PATH or set ${ENV}")
    return [read_loader(p) for p in paths]


def loader_for(arch: str | None, explicit: list[str] | None) -> Loader:
    """The loader for `arch` (uname -m name); with arch None, the only candidate or the host's."""
    loaders = find_loaders(explicit)
    if arch is None:
        if len(loaders) == 1:
            return loaders[0]
        arch = os.uname().machine
    for ld in loaders:
        if ld.arch == arch:
            return ld
    have = ", ".join(f"{ld.path} ({ld.arch})" for ld in loaders)
    raise UserError(f"no {arch} loader among {have}", f"pass --loader with an {arch} loader")
