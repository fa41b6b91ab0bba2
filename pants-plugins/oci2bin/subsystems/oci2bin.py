"""Options of the oci2bin backend."""

from __future__ import annotations

from pants.option.option_types import DictOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap


class Oci2binSubsystem(Subsystem):
    options_scope = "oci2bin"
    help = "Options of the oci2bin backend (`oci_binary`, `oci_vm_binary`, `oci_image`, `static_c_binary`)."

    core = StrOption(
        default="//src/python:oci2bin",
        help=softwrap(
            """
            Address of the `pex_binary` of the oci2bin core (the library + CLI). Every build step runs it as a
            separate, cached process (`oci2bin mkimage`, `oci2bin assemble`, ...).
            """
        ),
    )
    loaders = DictOption[str](
        default={
            "x86_64": "//src/c/loader:loader-x86_64",
            "aarch64": "//src/c/loader:loader-aarch64",
        },
        help="Default loader (`static_c_binary` address) per architecture, for targets without `loader=`.",
    )
