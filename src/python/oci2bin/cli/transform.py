"""`oci2bin transform --image SRC --output DIR [transforms] [config]`: Image -> Image, written as an OCI layout.

The middle step of a Pants build (fetch -> transform -> assemble): the same transforms and config changes as
`oci2bin IMAGE` applies, but kept as a separate, separately cached step so that changing an option reruns only
this step and the assembly after it.
"""

from __future__ import annotations

import contextlib
import tempfile

from oci2bin.cli import transforms
from oci2bin.cli.common import Parser, new_layout_dir, note, platform_for
from oci2bin.cli.mkimage import add_config_arguments, config_changes
from oci2bin.errors import UserError
from oci2bin.image.layout import write_layout
from oci2bin.image.source import load_image, parse_source
from oci2bin.mutate.config import apply_config


def parser() -> Parser:
    p = Parser(
        prog="oci2bin transform",
        description="Apply build transforms to an image; write an OCI layout.",
    )
    p.add_argument(
        "--image",
        required=True,
        metavar="SRC",
        help="oci:DIR[:TAG], docker-archive:P, oci-archive:P",
    )
    p.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="DIR",
        help="OCI layout directory to create",
    )
    p.add_argument("--platform", help="platform to select from an image index, OS/ARCH[/VARIANT]")
    p.add_argument("--arch", help="shorthand for --platform linux/ARCH")
    p.add_argument("--tag", default="latest", help="tag recorded in index.json (default latest)")
    add_config_arguments(p)
    transforms.add_arguments(p)
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    transforms.validate(args)
    if args.embed_loader_layer or args.embed_loader_labels:
        # embedding needs the loader's bytes, which only the assembly step has
        raise UserError(
            "transform cannot embed the loader: it has no loader",
            "pass --embed-loader-layer/--embed-loader-labels to `oci2bin assemble` or `oci2bin IMAGE` instead",
        )
    changes = config_changes(args)
    out = args.output
    parent = new_layout_dir(out)
    platform = platform_for(args.arch, args.platform)
    with contextlib.ExitStack() as stack:
        image = load_image(parse_source(args.image), stack, platform)
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="oci2bin-", dir=parent))
        image = transforms.apply(image, args, stack, workdir, platform)
        image = apply_config(image, changes)
        write_layout(image, out, args.tag)
        note(f"wrote {out} ({image.digest})")
    return 0
