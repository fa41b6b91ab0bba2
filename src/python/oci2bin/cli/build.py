"""`oci2bin IMAGE [OUTPUT]`: build a polyglot binary (the default command), and `assemble` (explicit form)."""

from __future__ import annotations

import argparse
import contextlib
import os

from oci2bin.cli import transforms
from oci2bin.cli.common import (
    Parser,
    UsageError,
    note,
    platform_for,
    prog_name,
    progress_for,
    uname_arch,
)
from oci2bin.errors import UserError
from oci2bin.image.model import Image, Platform
from oci2bin.image.source import Source, load_image, parse_source
from oci2bin.loaders import ARCHES, Loader, loader_for
from oci2bin.naming import output_name, repo_name
from oci2bin.polyglot.format import OCI_ARCH
from oci2bin.polyglot.writer import write_polyglot
from oci2bin.state import cache as output_cache

# Every build is a fresh interpreter: modules only some builds need (tempfile, the polyglot reader, the --arch
# all wrapper, the mutate modules) are imported where they are used (docs/benchmarks.md section 3).


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description="Turn an OCI/Docker image into one executable file.",
        epilog="subcommands: assemble, mkimage, inspect, list, prune, diff, update, reconstruct, sbom, "
        "sign, verify, push, ps, stop, logs, exec, pod "
        "(run `oci2bin SUBCOMMAND --help`)",
    )
    p.add_argument(
        "image",
        nargs="?",
        help="registry ref, docker-archive:P, oci:DIR[:TAG], oci-archive:P or a path",
    )
    p.add_argument(
        "output",
        nargs="?",
        help="output file (default: from the image name, e.g. alpine_latest)",
    )
    p.add_argument("--oci-dir", metavar="DIR", help="read the image from this OCI layout directory")
    p.add_argument(
        "--loader",
        action="append",
        metavar="PATH",
        help="loader ELF to embed (repeat for --arch all)",
    )
    p.add_argument("--arch", help="x86_64, aarch64 or all (default: the loader's or the host's)")
    p.add_argument("--platform", help="image platform to select, OS/ARCH[/VARIANT]")
    p.add_argument(
        "--ref",
        metavar="NAME",
        help="image name recorded in the binary (default: IMAGE)",
    )
    p.add_argument("--vm", action="store_true", help="mark the binary to run in VM mode by default")
    add_vm_arguments(p)
    p.add_argument(
        "--cache",
        action="store_true",
        help="reuse/store the output in the oci2bin output cache",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    transforms.add_arguments(p)
    return p


def add_vm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kernel",
        metavar="VMLINUZ",
        help="embed this guest kernel (x86 bzImage / arm64 Image) for --vm runs",
    )
    p.add_argument("--vm-cpus", type=int, metavar="N", help="vCPUs of a --vm run without --cpus (default 1)")
    p.add_argument(
        "--vm-memory",
        type=int,
        metavar="MIB",
        help="RAM in MiB of a --vm run without --memory (default 256)",
    )


def vm_write_options(args: argparse.Namespace | None) -> dict:
    """write_polyglot's VM keywords from --kernel / --vm-cpus / --vm-memory."""
    if args is None:
        return {}
    out: dict = {}
    kernel = getattr(args, "kernel", None)
    if kernel:
        try:
            with open(kernel, "rb") as f:
                out["vm_kernel"] = f.read()
        except OSError as e:
            raise UserError(f"--kernel {kernel}: {e.strerror}", "give a readable kernel image") from None
    for name, key, lo, hi in (("vm_cpus", "vm_cpus", 1, 255), ("vm_memory", "vm_mem_mb", 64, 1 << 20)):
        val = getattr(args, name, None)
        if val is not None:
            if not lo <= val <= hi:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} {val} is out of range", f"give {lo} to {hi}")
            out[key] = val
    return out


def _arches(args: argparse.Namespace) -> list[str | None]:
    if args.arch == "all":
        return list(ARCHES)
    if args.arch:
        a = uname_arch(args.arch)
        if a not in ARCHES:
            raise UsageError(f"unsupported --arch {args.arch!r}", "use x86_64, aarch64 or all")
        return [a]
    return [None]


def build_one(
    src: Source,
    loader: Loader,
    output: str,
    *,
    ref: str | None,
    vm: bool,
    platform: Platform | None,
    args: argparse.Namespace | None,
    use_cache: bool = False,
    quiet: bool = False,
    vm_opts: dict | None = None,
) -> str:
    """Open src, transform, write `output`; returns the image digest."""
    out_dir = os.path.dirname(os.path.abspath(output)) or "."
    if not os.path.isdir(out_dir):
        raise UserError(f"output directory {out_dir} does not exist", "create it first")
    if os.path.isdir(output):
        raise UserError(f"{output} is a directory", "pass a file name as the output")
    want = platform or Platform.parse(OCI_ARCH[loader.arch])
    with contextlib.ExitStack() as stack:
        image: Image = load_image(src, stack, want)
        if image.platform.architecture != want.architecture:
            raise UserError(
                f"{src} is linux/{image.platform.architecture}, not {want}",
                "pick the image's architecture with --arch or use a multi-platform image",
            )
        name = ref or image.source_name
        note(f"image digest: {repo_name(name)}@{image.digest}")
        if args is not None and transforms.requested(args):
            import tempfile

            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="oci2bin-", dir=out_dir))
            image = transforms.apply(image, args, stack, workdir, want, (loader.data, loader.arch))
        vm_opts = vm_write_options(args) if vm_opts is None else vm_opts
        progress = None if quiet else progress_for(os.path.basename(output))
        if use_cache:
            from oci2bin import hashing
            from oci2bin.polyglot.reader import Polyglot

            cdir = output_cache.cache_dir()
            os.makedirs(cdir, exist_ok=True)
            opts = transforms.describe(args) if args is not None else ""
            key = output_cache.cache_key(
                os.path.basename(output),
                image.digest,
                hashing.sha256_hex(loader.data),
                str(vm),
                name or "",
                opts,
                *(
                    hashing.sha256_hex(v) if isinstance(v, bytes) else f"{k}={v}"
                    for k, v in sorted(vm_opts.items())
                ),
            )
            cached = os.path.join(cdir, key)
            try:
                Polyglot(cached)
                hit = True
            except UserError:
                hit = False
            if hit:
                note(f"using cached {cached}")
            else:  # durable: reused by later builds after only a footer check (see polyglot/writer.py)
                write_polyglot(
                    cached, loader.data, image, ref=name, vm=vm, progress=progress, durable=True, **vm_opts
                )
            output_cache.copy_atomic(cached, output)
        else:
            write_polyglot(output, loader.data, image, ref=name, vm=vm, progress=progress, **vm_opts)
        return image.digest


def run(argv: list[str]) -> int:
    prog = prog_name()
    vm_prog = prog.startswith("oci2vm")
    args = build_parser("oci2vm" if vm_prog else "oci2bin").parse_args(argv)
    if args.oci_dir:
        if not os.path.isdir(args.oci_dir):
            raise UserError(
                f"--oci-dir {args.oci_dir}: not a directory",
                "pass an OCI image layout directory",
            )
        src = Source("oci", args.oci_dir, None)
        ref = args.ref or args.image
        default = output_name(ref) if ref else output_name(os.path.basename(os.path.normpath(args.oci_dir)))
    else:
        if not args.image:
            raise UsageError("no image given", "usage: oci2bin IMAGE [OUTPUT]")
        src = parse_source(args.image)
        ref = args.ref or (src.location if src.transport in ("registry", "docker-daemon", "podman") else None)
        if ref is None and src.transport != "registry":
            ref = args.ref
        default = None
    vm = args.vm or vm_prog
    arches = _arches(args)
    transforms.validate(args)
    outputs = []
    for arch in arches:
        loader = loader_for(arch, args.loader)
        platform = platform_for(loader.arch, args.platform)
        if args.output:
            base = args.output
        else:
            base = default or _default_name(src, ref, platform)
            if vm_prog:
                base = "oci2vm_" + base
        out = f"{base}_{loader.arch}" if args.arch == "all" else base
        build_one(
            src,
            loader,
            out,
            ref=ref,
            vm=vm,
            platform=platform,
            args=args,
            use_cache=args.cache,
            quiet=args.quiet,
        )
        outputs.append(out)
    if args.arch == "all":
        wrapper = args.output or (default or _default_name(src, ref, None))
        if vm_prog and not args.output:
            wrapper = "oci2vm_" + wrapper
        from oci2bin.polyglot.wrapper import write_wrapper

        write_wrapper(wrapper, os.path.basename(wrapper), [a for a in arches if a])
        outputs.insert(0, wrapper)
    for o in outputs:
        note(f"wrote {o}")
    return 0


def _default_name(src: Source, ref: str | None, platform: Platform | None) -> str:
    if ref:
        return output_name(ref)
    # archives / layouts: use the name the source carries (RepoTags, tag), else the file name
    with contextlib.ExitStack() as stack:
        try:
            image = load_image(src, stack, platform)
            if image.source_name:
                return output_name(image.source_name)
        except UserError:
            pass
    base = os.path.basename(os.path.normpath(src.location))
    for suffix in (".tar", ".docker", ".oci-archive", ".oci"):
        base = base.removesuffix(suffix)
    return output_name(base)


# ---------------------------------------------------------------------------------------------------- assemble


def assemble_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="oci2bin assemble",
        description="Join a loader and an image into a polyglot binary.",
    )
    p.add_argument("--loader", required=True, action="append", metavar="PATH", help="loader ELF")
    p.add_argument(
        "--image",
        required=True,
        metavar="SRC",
        help="image source (oci:DIR, docker-archive:P, ...)",
    )
    p.add_argument("--output", required=True, metavar="OUT", help="output file")
    p.add_argument("--ref", metavar="NAME", help="image name recorded in the binary")
    p.add_argument("--arch", help="loader architecture to use (x86_64, aarch64)")
    p.add_argument("--platform", help="image platform to select, OS/ARCH[/VARIANT]")
    p.add_argument("--vm", action="store_true", help="set the VM-mode flag")
    add_vm_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    transforms.add_arguments(p)
    return p


def run_assemble(argv: list[str]) -> int:
    args = assemble_parser().parse_args(argv)
    transforms.validate(args)
    loader = loader_for(uname_arch(args.arch) if args.arch else None, args.loader)
    platform = platform_for(loader.arch, args.platform)
    src = parse_source(args.image)
    build_one(
        src,
        loader,
        args.output,
        ref=args.ref,
        vm=args.vm,
        platform=platform,
        args=args,
        quiet=args.quiet,
    )
    return 0
