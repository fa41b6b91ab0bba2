"""Image transform flags shared by the build command: parsed into one plan, applied as Image -> Image steps."""

from __future__ import annotations

import argparse
import contextlib
import os

from oci2bin.errors import UserError
from oci2bin.image.model import Image, Platform
from oci2bin.image.source import load_image, parse_source

TYPE_CHECKING = False  # typing costs import time on every CLI start; annotations are strings here
if TYPE_CHECKING:
    from oci2bin.mutate.layertar import AddSpec

# the mutate modules are imported where a flag needs them: a plain build does not pay for their import


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image transforms")
    g.add_argument(
        "--add-file",
        action="append",
        default=[],
        metavar="HOST:CTR",
        help="add a file in a new layer",
    )
    g.add_argument(
        "--add-dir",
        action="append",
        default=[],
        metavar="HOST:CTR",
        help="add a directory tree",
    )
    g.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="HOST:CTR[:MODE]",
        help="add a file or directory",
    )
    g.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="IMAGE",
        help="overlay another image's layers",
    )
    g.add_argument(
        "--strip",
        action="store_true",
        help="remove docs, man pages, locales, package caches",
    )
    g.add_argument(
        "--strip-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="strip this path prefix",
    )
    g.add_argument(
        "--strip-auto",
        action="store_true",
        help="also strip detected package-manager caches",
    )
    g.add_argument("--squash", action="store_true", help="merge all layers into one")
    g.add_argument("--compress", choices=["gzip", "zstd"], help="(re)compress layers")
    e = p.add_argument_group("loader embedding (for `oci2bin reconstruct`)")
    e.add_argument("--embed-loader-layer", action="store_true", help="store the loader as a layer")
    e.add_argument(
        "--embed-loader-labels",
        action="store_true",
        help="store the loader in config labels",
    )
    e.add_argument(
        "--label-chunk-size",
        type=int,
        default=6144,
        metavar="BYTES",
        help="bytes per label chunk",
    )
    e.add_argument(
        "--loader-dir",
        default=".oci2bin",
        metavar="DIR",
        help="directory of the loader layer's file",
    )
    e.add_argument(
        "--label-prefix",
        default="oci2bin.loader",
        metavar="PREFIX",
        help="label key prefix",
    )


def requested(args: argparse.Namespace) -> bool:
    """Does any flag ask for a transform? (A plain build then needs no work directory.)"""
    return bool(
        args.layer
        or args.add_file
        or args.add_dir
        or args.add
        or args.strip
        or args.strip_prefix
        or args.strip_auto
        or args.squash
        or args.compress
        or args.embed_loader_layer
        or args.embed_loader_labels
    )


def describe(args: argparse.Namespace) -> str:
    """A stable text of the transform options (part of the cache key)."""
    parts = [
        *(f"add-file={a}" for a in args.add_file),
        *(f"add-dir={a}" for a in args.add_dir),
        *(f"add={a}" for a in args.add),
        *(f"layer={a}" for a in args.layer),
        f"strip={args.strip}",
        *(f"strip-prefix={a}" for a in args.strip_prefix),
        f"strip-auto={args.strip_auto}",
        f"squash={args.squash}",
        f"compress={args.compress}",
        (
            f"embed={args.embed_loader_layer},{args.embed_loader_labels},{args.label_chunk_size},"
            f"{args.loader_dir},{args.label_prefix}"
        ),
    ]
    return "\n".join(parts)


def validate(args: argparse.Namespace) -> list[AddSpec]:
    """Check transform flags before any image is opened; returns the add specs."""
    for p in args.strip_prefix:
        if p.startswith("/") or ".." in p.split("/"):
            raise UserError(
                f"--strip-prefix {p!r} must be relative and without '..'",
                "e.g. usr/share/doc/",
            )
    if args.embed_loader_layer and args.embed_loader_labels:
        raise UserError(
            "--embed-loader-layer and --embed-loader-labels exclude each other",
            "pick one",
        )
    if not (args.add_file or args.add_dir or args.add):
        return []
    from oci2bin.mutate.layertar import AddSpec, ctr_path

    for a in args.add_file:
        spec = AddSpec.parse(a)
        if not os.path.isfile(spec.host):
            raise UserError(
                f"--add-file {a}: {spec.host} is not a file",
                "use --add-dir for directories",
            )
    for a in args.add_dir:
        spec = AddSpec.parse(a)
        if not os.path.isdir(spec.host):
            raise UserError(
                f"--add-dir {a}: {spec.host} is not a directory",
                "use --add-file for files",
            )
    adds = [AddSpec.parse(a) for a in (*args.add_file, *args.add_dir, *args.add)]
    for spec in adds:
        if not os.path.lexists(spec.host):
            raise UserError(f"{spec.host}: no such file or directory", "check the --add path")
        ctr_path(spec.ctr)
    return adds


def apply(
    image: Image,
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    workdir: str,
    platform: Platform | None,
    loader: tuple[bytes, str] | None = None,
) -> Image:
    if args.layer:
        from oci2bin.mutate.merge import merge
    for spec in args.layer:
        overlay = load_image(parse_source(spec), stack, platform or image.platform)
        image = merge(image, overlay)
    adds = validate(args)
    compression = args.compress or "gzip"
    if adds:
        from oci2bin.mutate.add_files import add_files

        image = add_files(image, adds, workdir, compression)
    if args.strip or args.strip_prefix or args.strip_auto:
        from oci2bin.mutate.strip import DEFAULT_PREFIXES, strip

        prefixes = list(args.strip_prefix) or list(DEFAULT_PREFIXES)
        image = strip(image, prefixes, workdir, auto=args.strip_auto, compression=compression)
    if args.squash:
        from oci2bin.mutate.squash import squash

        image = squash(image, workdir, compression)
    elif args.compress:
        from oci2bin.mutate.compress import recompress

        image = recompress(image, args.compress, workdir)
    if loader is not None and (args.embed_loader_layer or args.embed_loader_labels):
        from oci2bin.mutate import embed_loader

        data, arch = loader
        if args.embed_loader_layer:
            image = embed_loader.embed_layer(image, data, arch, workdir, args.loader_dir, args.label_prefix)
        else:
            image = embed_loader.embed_labels(image, data, arch, args.label_chunk_size, args.label_prefix)
    return image
