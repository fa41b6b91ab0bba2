"""`oci2bin fetch REF@sha256:... --output DIR`: pull one image, pinned by digest, into an OCI layout.

The first step of a hermetic build (the Pants `oci_image_pull` target runs it): the digest is required, so the
step is a pure function of its arguments and its output can be cached forever.
"""

from __future__ import annotations

from oci2bin.cli.common import Parser, new_layout_dir, note, platform_for
from oci2bin.errors import UserError
from oci2bin.image.reference import parse as parse_reference


def parser() -> Parser:
    p = Parser(
        prog="oci2bin fetch",
        description="Pull an image pinned by digest into an OCI layout directory.",
    )
    p.add_argument(
        "reference",
        help="NAME@sha256:DIGEST (a tag may precede the digest; the digest wins)",
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
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    ref = parse_reference(args.reference)
    if not ref.digest:
        raise UserError(
            f"{args.reference} is not pinned by digest",
            "append @sha256:<digest> (builds never use floating tags); `skopeo inspect` shows it",
        )
    new_layout_dir(args.output)
    from oci2bin.image import remote

    platform = platform_for(args.arch, args.platform)
    result = remote.pull(
        args.reference,
        args.output,
        platform=str(platform) if platform else None,
        insecure_registries=tuple(args.insecure_registry),
        progress=False if args.quiet else None,
    )
    note(f"image digest: {parse_reference(result.reference).name}@{result.digest}")
    return 0
