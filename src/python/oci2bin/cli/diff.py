"""`oci2bin diff A B` / `oci2bin diff --live PID BINARY`: compare filesystems. Exit 0 identical, 1 different."""

from __future__ import annotations

import os
import sys

from oci2bin.cli.common import Parser, UsageError, human_size
from oci2bin.errors import UserError
from oci2bin.image.fsview import Change, Node, diff, flatten, live_tree
from oci2bin.polyglot.reader import Polyglot


def parser() -> Parser:
    p = Parser(
        prog="oci2bin diff",
        description="Compare the filesystems of two oci2bin binaries.",
    )
    p.add_argument(
        "--live",
        metavar="PID",
        help="compare /proc/PID/root of a running container with BINARY",
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


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.live:
        if len(args.paths) != 1:
            raise UsageError("--live takes one BINARY", "oci2bin diff --live PID BINARY")
        root = f"/proc/{args.live}/root"
        if not args.live.isdigit() or not os.path.isdir(root):
            raise UserError(
                f"no running process {args.live} (or no access to {root})",
                "check the PID and your user",
            )
        old, _ = flatten(Polyglot(args.paths[0]).image())
        new = live_tree(root)
        # the live view has mount points and runtime files the image never had: compare image paths only
        changes = [c for c in diff(old, new) if c.op != "+"]
    else:
        if len(args.paths) != 2:
            raise UsageError("diff needs two binaries", "oci2bin diff OLD NEW")
        old, _ = flatten(Polyglot(args.paths[0]).image())
        new, _ = flatten(Polyglot(args.paths[1]).image())
        changes = diff(old, new)
    sys.stdout.write(render(changes))
    return 1 if changes else 0
