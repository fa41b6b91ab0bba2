"""`oci2bin sbom BINARY [--format spdx|cyclonedx]`: SBOM of the embedded image on stdout."""

from __future__ import annotations

import json
import sys

from oci2bin.cli.common import Parser, note
from oci2bin.image import sbom
from oci2bin.polyglot.reader import Polyglot


def parser() -> Parser:
    p = Parser(
        prog="oci2bin sbom",
        description="Software bill of materials of the image in an oci2bin binary.",
    )
    p.add_argument("binary")
    p.add_argument(
        "--format",
        choices=["spdx", "cyclonedx"],
        default="spdx",
        help="SPDX 2.3 (default) or CycloneDX 1.4",
    )
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    poly = Polyglot(args.binary)
    image = poly.image()
    pkgs = sbom.packages(image)
    name = poly.metadata.get("image") or ""
    created = image.created or "1970-01-01T00:00:00Z"
    make = sbom.spdx if args.format == "spdx" else sbom.cyclonedx
    doc = make(name, image.digest, created, pkgs)
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    managers = sorted({p.manager for p in pkgs})
    note(f"{len(pkgs)} packages ({', '.join(managers) if managers else 'no package database found'})")
    return 0
