"""`oci2bin list [--json]` and `oci2bin prune [--dry-run]`: the output cache (and the verified-blob memo)."""

from __future__ import annotations

import json
import os
import sys

from oci2bin.cli.common import Parser, human_size
from oci2bin.state import cache


def run_list(argv: list[str]) -> int:
    p = Parser(prog="oci2bin list", description="List binaries in the oci2bin output cache.")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    ents = cache.entries()
    if args.json:
        sys.stdout.write(json.dumps([e.as_json() for e in ents], indent=2) + "\n")
        return 0
    if not ents:
        sys.stdout.write(f"no cached binaries in {cache.cache_dir()}\n")
        return 0
    rows = [("IMAGE", "DIGEST", "SIZE", "BUILT")]
    for e in ents:
        d = e.as_json()
        rows.append((e.image, e.digest.partition(":")[2][:12], human_size(e.size), d["built"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    return 0


def run_prune(argv: list[str]) -> int:
    p = Parser(
        prog="oci2bin prune",
        description="Keep only the newest cached binary of each image; drop the verified-blob records of blob "
        "files deleted or changed since.",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be removed")
    args = p.parse_args(argv)
    remove = cache.prune_plan(cache.entries())
    count = freed = 0
    verb = "would remove" if args.dry_run else "removed"
    for e in remove:
        if not args.dry_run:
            try:
                os.unlink(e.path)
            except FileNotFoundError:
                continue
        count += 1
        freed += e.size
        sys.stdout.write(
            f"{verb} {e.image} {e.digest.partition(':')[2][:12]} ({human_size(e.size)}) {e.path}\n"
        )
    records, records_size = cache.prune_memo(args.dry_run)
    if records:
        sys.stdout.write(
            f"{verb} {records} stale verified-blob records ({human_size(records_size)}) {cache.verified_dir()}\n"
        )
    what = "would free" if args.dry_run else "freed"
    sys.stdout.write(f"{count} entries, {records} records, {what} {human_size(freed + records_size)}\n")
    return 0
