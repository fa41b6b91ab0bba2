"""`oci2bin update BINARY [--image SRC]`: rebuild a binary from the image it names, replace it atomically.
The loader embedded in the binary is reused unless --loader is given."""

from __future__ import annotations

from oci2bin.cli.build import build_one
from oci2bin.cli.common import Parser, note, platform_for
from oci2bin.errors import UserError
from oci2bin.image.source import parse_source
from oci2bin.loaders import Loader, loader_for
from oci2bin.polyglot.format import parse_elf
from oci2bin.polyglot.reader import Polyglot


def parser() -> Parser:
    p = Parser(
        prog="oci2bin update",
        description="Rebuild an oci2bin binary from the latest version of its image.",
    )
    p.add_argument("binary")
    p.add_argument(
        "--image",
        metavar="SRC",
        help="image source to use instead of the recorded name",
    )
    p.add_argument(
        "--loader",
        action="append",
        metavar="PATH",
        help="loader to use instead of the embedded one",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def vm_options_of(old: Polyglot) -> dict:
    """The old file's VM kernel and VM size defaults, carried over to the rebuilt file."""
    meta = old.metadata
    out = {k: meta[k] for k in ("vm_cpus", "vm_mem_mb") if k in meta}
    k = meta.get("vm_kernel")
    if k:
        from oci2bin import hashing

        with open(old.path, "rb") as f:
            f.seek(int(k["offset"]))
            data = f.read(int(k["size"]))
        # the new file records a fresh digest of these bytes: check them against the old one first
        if len(data) != int(k["size"]) or hashing.sha256_hex(data) != k.get("sha256"):
            raise UserError(
                f"{old.path}: its VM kernel section does not match its recorded sha256",
                "rebuild it with oci2bin build --kernel VMLINUZ instead of update",
            )
        out["vm_kernel"] = data
    return out


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    old = Polyglot(args.binary)
    name = old.metadata.get("image") or ""
    spec = args.image or name
    if not spec:
        raise UserError(f"{args.binary} records no image name", "pass --image SRC")
    if args.loader:
        loader = loader_for(old.metadata.get("loader_arch"), args.loader)
    else:
        data = old.loader()
        loader = Loader(f"{args.binary} (embedded)", data, parse_elf(data).arch)
    before = old.metadata.get("digest", "")
    digest = build_one(
        parse_source(spec),
        loader,
        args.binary,
        ref=name or None,
        vm=old.vm,
        platform=platform_for(loader.arch, None),
        args=None,
        quiet=args.quiet,
        vm_opts=vm_options_of(old),
    )
    note(
        f"updated {args.binary}"
        + (" (image unchanged)" if digest == before else f" ({before[:19]} -> {digest[:19]})")
    )
    return 0
