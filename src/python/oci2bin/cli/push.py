"""`oci2bin push BINARY REF`: push the embedded image to a registry (OCI distribution API, no docker)."""

from __future__ import annotations

import sys

from oci2bin.cli.common import Parser, note
from oci2bin.image.push import push
from oci2bin.polyglot.reader import Polyglot


def parser() -> Parser:
    p = Parser(
        prog="oci2bin push",
        description="Push the image inside an oci2bin binary to a registry. Credentials come from "
        "docker/podman auth files ($REGISTRY_AUTH_FILE, ~/.docker/config.json) and credential helpers.",
    )
    p.add_argument("binary", help="an oci2bin binary")
    p.add_argument("ref", help="target reference, e.g. registry.example.com/team/app:1.0")
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain HTTP / unverified TLS for this registry (repeatable; loopback always is)",
    )
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    image = Polyglot(args.binary).image()
    result = push(image, args.ref, insecure_registries=tuple(args.insecure_registry))
    note(f"pushed {result.uploaded} blobs ({result.skipped} already there)")
    sys.stdout.write(f"{result.repository}@{result.digest}\n")
    return 0
