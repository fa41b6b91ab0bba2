"""`oci2bin reconstruct SRC --output OUT`: rebuild a binary from an image that carries its loader
(built with --embed-loader-layer / --embed-loader-labels). SRC: image name, archive, or oci2bin binary."""

from __future__ import annotations

import contextlib
import os

from oci2bin.cli.common import Parser, note, progress_for
from oci2bin.errors import UserError
from oci2bin.image.source import load_image, parse_source
from oci2bin.mutate import embed_loader
from oci2bin.naming import output_name, repo_name
from oci2bin.polyglot.format import OCI_ARCH, parse_elf
from oci2bin.polyglot.writer import write_polyglot


def parser() -> Parser:
    p = Parser(
        prog="oci2bin reconstruct",
        description="Rebuild an oci2bin binary from an image with an embedded loader.",
    )
    p.add_argument(
        "source",
        metavar="SRC",
        help="image name, docker/oci archive, oci: layout or oci2bin binary",
    )
    p.add_argument("--output", "-o", help="output file (default: from the image name)")
    p.add_argument(
        "--no-strip",
        action="store_true",
        help="keep the loader embedding in the rebuilt image",
    )
    p.add_argument("--label-prefix", default=embed_loader.DEFAULT_PREFIX, metavar="PREFIX")
    p.add_argument("--ref", metavar="NAME", help="image name recorded in the binary")
    p.add_argument("--vm", action="store_true", help="set the VM-mode flag")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    src = parse_source(args.source)
    with contextlib.ExitStack() as stack:
        image = load_image(src, stack)
        loader, arch = embed_loader.extract(image, args.label_prefix)
        elf = parse_elf(loader, "embedded loader")
        if arch and arch != elf.arch:
            raise UserError(
                f"embedded loader is {elf.arch} but its label says {arch}",
                "the image is damaged",
            )
        if OCI_ARCH.get(elf.arch) != image.platform.architecture:
            raise UserError(
                f"embedded {elf.arch} loader does not match the linux/{image.platform.architecture} image",
                "the image is damaged",
            )
        if not args.no_strip:
            image = embed_loader.strip(image, args.label_prefix)
        ref = args.ref or image.source_name or (src.location if src.transport == "registry" else None)
        out = args.output or output_name(ref, os.path.basename(src.location) + "_rebuilt")
        note(f"image digest: {repo_name(ref)}@{image.digest}")
        progress = None if args.quiet else progress_for(os.path.basename(out))
        write_polyglot(out, loader, image, ref=ref, vm=args.vm, progress=progress)
        note(f"wrote {out}")
    return 0
