"""`oci2bin diff A B` / `oci2bin diff --live PID BINARY`: compare filesystems. Exit 0 identical, 1 different."""

from __future__ import annotations

import sys

from oci2bin.cli.common import Parser, UsageError, human_size
from oci2bin.errors import UserError
from oci2bin.image.fsview import Change, Node, diff, flatten
from oci2bin.polyglot.reader import Polyglot
from oci2bin.state import containers


def parser() -> Parser:
    p = Parser(
        prog="oci2bin diff",
        description="Compare the filesystems of two oci2bin binaries.",
    )
    p.add_argument(
        "--live",
        metavar="PID|NAME",
        help="compare a running container (the PID --detach printed, its PID 1, or its --name) with BINARY",
    )
    p.add_argument("paths", nargs="+", metavar="BINARY")
    return p


def _size(n: Node | None) -> str:
    if n is None:
        return ""
    if n.kind == "symlink":
        return f"-> {n.target}"
    if n.kind == "dir":
        return "dir"
    return human_size(n.size)


def render(changes: list[Change]) -> str:
    lines = []
    for c in changes:
        if c.op == "M":
            lines.append(f"M /{c.path} ({_size(c.old)} -> {_size(c.new)})")
        else:
            lines.append(f"{c.op} /{c.path} ({_size(c.new if c.op == '+' else c.old)})")
    added = sum(c.op == "+" for c in changes)
    removed = sum(c.op == "-" for c in changes)
    modified = sum(c.op == "M" for c in changes)
    lines.append(f"{added} added, {removed} removed, {modified} modified")
    return "\n".join(lines) + "\n"


def _under(path: str, tops: set[str]) -> bool:
    return any(path == t or path.startswith(t + "/") for t in tops)


def live_changes(target: str, binary: str) -> list[Change]:
    """The drift of the running container ``target`` (PID or name) from the image in ``binary``."""
    # imported here: exec's helpers pull in subprocess handling the plain diff does not need
    from oci2bin.cli.execcmd import container_process
    from oci2bin.image import livefs

    if target.isdigit():
        pid = int(target)
    else:
        c = containers.get(target)
        if not c.running:
            raise UserError(f"container {c.name} is not running", "start it again, or diff two binaries")
        pid = c.pid
    cpid = container_process(pid)
    old, _ = flatten(Polyglot(binary).image())
    new, mounts = livefs.live_tree(cpid, old)
    # what other mounts hide, and what the loader writes at every start, is not the container's drift
    old = {
        p: _as_extracted(n) for p, n in old.items() if not _under(p, mounts) and p not in livefs.RUNTIME_FILES
    }
    return diff(old, new)


def _as_extracted(n: Node) -> Node:
    """The loader drops set-uid/set-gid bits from files (docs/loader.md): compare against that."""
    if n.kind != "file" or not n.mode & 0o6000:
        return n
    return Node(n.kind, n.size, n.mode & ~0o6000, n.digest, n.target)


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.live:
        if len(args.paths) != 1:
            raise UsageError("--live takes one BINARY", "oci2bin diff --live PID|NAME BINARY")
        changes = live_changes(args.live, args.paths[0])
    else:
        if len(args.paths) != 2:
            raise UsageError("diff needs two binaries", "oci2bin diff OLD NEW")
        old, _ = flatten(Polyglot(args.paths[0]).image())
        new, _ = flatten(Polyglot(args.paths[1]).image())
        changes = diff(old, new)
    sys.stdout.write(render(changes))
    return 1 if changes else 0
