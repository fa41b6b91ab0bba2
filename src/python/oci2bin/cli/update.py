"""`oci2bin update BINARY [--image SRC]`: rebuild a binary from the image it names, replace it atomically.
The loader embedded in the binary is reused unless --loader is given.

A recorded registry reference is resolved against its registry (the native client), never against a local
docker/podman copy of the same name, which may be stale: a newer digest under the same tag is what update is
for. The local engine is used only when the registry does not have the name (the binary was built from a local
engine image, e.g. podman's `localhost/NAME`), or when `--image podman:REF` / `docker-daemon:REF` asks for it.
When the registry's digest is the recorded one and the loader is unchanged, the file is left untouched."""

from __future__ import annotations

import os
import tempfile

from oci2bin.cli.build import build_one
from oci2bin.cli.common import Parser, note, platform_for
from oci2bin.errors import UserError
from oci2bin.image.source import Source, parse_source
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
    platform = platform_for(loader.arch, None)
    with tempfile.TemporaryDirectory(prefix="oci2bin-update-", dir=_dir_of(args.binary)) as work:
        src = parse_source(spec)
        if src.transport == "registry":
            name = name or src.location  # --image REF on a binary that records no name: record REF
            pulled = _pull(src.location, os.path.join(work, "layout"), platform)
            if pulled is not None:
                if pulled == before and not args.loader:
                    note(f"{args.binary} is up to date ({before[:19]})")
                    return 0
                src = Source("oci", os.path.join(work, "layout"))
        return _rebuild(args, old, src, loader, name, platform, before)


def _dir_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path)) or "."


def _pull(ref: str, dest: str, platform) -> str | None:
    """Pull `ref` from its registry into an OCI layout at `dest`; its manifest digest, or None when the registry
    does not have it and a local engine does (then the engine copy is what the binary was built from)."""
    try:
        from oci2bin.image import remote
    except ImportError:
        return None  # no registry client in this installation: load_image's engine fallback
    try:
        return remote.pull(ref, dest, platform=str(platform) if platform else None, progress=False).digest
    except remote.RegistryError as e:
        if _in_local_engine(ref):
            note(f"{ref}: not in its registry ({e}); using the local engine's copy")
            return None
        raise UserError(
            f"cannot pull {ref}: {e}", "check the name, the network and registry credentials"
        ) from None


def _in_local_engine(ref: str) -> bool:
    if os.environ.get("OCI2BIN_NO_ENGINE") == "1":
        return False
    from oci2bin.image import engine

    return any(engine.has_image(eng, ref) for eng in engine.available_engines())


def _rebuild(args, old: Polyglot, src: Source, loader: Loader, name: str, platform, before: str) -> int:
    digest = build_one(
        src,
        loader,
        args.binary,
        ref=name or None,
        vm=old.vm,
        platform=platform,
        args=None,
        quiet=args.quiet,
        vm_opts=vm_options_of(old),
    )
    note(
        f"updated {args.binary}"
        + (" (image unchanged)" if digest == before else f" ({before[:19]} -> {digest[:19]})")
    )
    return 0
