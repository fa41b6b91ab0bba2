"""`oci2bin mkimage`: build an OCI image layout from host files, hermetically and reproducibly."""

from __future__ import annotations

import contextlib
import tempfile

from oci2bin.cli.common import Parser, new_layout_dir, note, platform_for
from oci2bin.errors import UserError
from oci2bin.image.layout import write_layout
from oci2bin.image.model import Platform
from oci2bin.image.source import load_image, parse_source
from oci2bin.mutate.add_files import add_files
from oci2bin.mutate.config import (
    ConfigChanges,
    apply_config,
    parse_json_array,
    parse_kv,
    scratch_image,
)
from oci2bin.mutate.layertar import AddSpec


def add_config_arguments(p) -> None:
    """Image config flags, shared with `oci2bin transform`."""
    p.add_argument(
        "--entrypoint",
        metavar="JSON",
        help='entrypoint as a JSON array, e.g. ["/bin/sh"]',
    )
    p.add_argument("--cmd", metavar="JSON", help="command as a JSON array")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", metavar="DIR")
    p.add_argument("--user", metavar="USER[:GROUP]")
    p.add_argument("--label", action="append", default=[], metavar="K=V")


def config_changes(args) -> ConfigChanges:
    return ConfigChanges(
        entrypoint=parse_json_array(args.entrypoint, "--entrypoint") if args.entrypoint is not None else None,
        cmd=parse_json_array(args.cmd, "--cmd") if args.cmd is not None else None,
        env=tuple(parse_kv(e, "--env") for e in args.env),
        workdir=args.workdir,
        user=args.user,
        labels=tuple(parse_kv(e, "--label") for e in args.label),
    )


def parser() -> Parser:
    p = Parser(
        prog="oci2bin mkimage",
        description="Build an OCI image layout from files (deterministic).",
    )
    p.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="DIR",
        help="OCI layout directory to create",
    )
    p.add_argument("--base", metavar="IMAGE", help="base image (default: empty, like FROM scratch)")
    p.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="HOST:CTR[:MODE]",
        help="file or directory to add",
    )
    add_config_arguments(p)
    p.add_argument(
        "--arch",
        default=None,
        help="image architecture (amd64, arm64, x86_64, aarch64; default host)",
    )
    p.add_argument("--tag", default="latest", help="tag recorded in index.json (default latest)")
    p.add_argument(
        "--compress",
        choices=["gzip", "zstd", "none"],
        default="gzip",
        help="layer compression",
    )
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    changes = config_changes(args)
    adds = [AddSpec.parse(a) for a in args.add]
    platform = platform_for(args.arch, None)
    out = args.output
    parent = new_layout_dir(out)
    with contextlib.ExitStack() as stack:
        if args.base:
            image = load_image(parse_source(args.base), stack, platform)
        else:
            image = scratch_image(platform or Platform.host())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="oci2bin-", dir=parent))
        image = add_files(image, adds, workdir, args.compress)
        image = apply_config(image, changes)
        if not args.base and not adds and changes.empty():
            raise UserError("nothing to build", "pass --add, --base or config options")
        write_layout(image, out, args.tag)
        note(f"wrote {out} ({image.digest})")
    return 0
