"""The pinned, hermetic C toolchain: `zig cc` from the `ziglang` wheel on PyPI."""

from __future__ import annotations

from pants.backend.python.subsystems.python_tool_base import PythonToolBase
from pants.backend.python.target_types import EntryPoint
from pants.util.strutil import softwrap


class ZigSubsystem(PythonToolBase):
    options_scope = "zig"
    name = "zig"
    help = softwrap(
        """
        The Zig toolchain (from the `ziglang` wheel), used as a hermetic cross C compiler for static musl
        binaries. `python -m ziglang ARGS` runs the bundled zig binary.
        """
    )

    default_version = "ziglang==0.17.1"
    default_main = EntryPoint("ziglang")
    register_interpreter_constraints = True
    # Same interpreter as the repo's own code ([python].interpreter_constraints), so one is enough.
    default_interpreter_constraints = ["CPython==3.11.*"]
    # The repo keeps no lockfiles (they record download addresses); pants.toml sets `lockfile = "<none>"`.
    default_lockfile_resource = ("oci2bin.subsystems", "zig.lock")


def rules():
    return [*ZigSubsystem.rules()]
