"""Reproduce one hostile case by hand: builds the case's oci2bin file in a kept sandbox and prints how to run it.

PYTHONPATH=src/python:tests/python:. python -m tests.hostile.repro CASE-ID [--user tester] [--loader L]
"""

from __future__ import annotations

import argparse
import shlex
import sys

from tests.hostile.harness import Sandbox, find_loader
from tests.hostile.cases import CASES


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", help="a case id (see docs/security.md), or 'list'")
    ap.add_argument("--user", default="root")
    ap.add_argument("--loader", default=None)
    a = ap.parse_args()
    if a.case == "list":
        for c in CASES:
            print(c.id, c.expect, "BUG" if c.bug else "")
        return 0
    case = next((c for c in CASES if c.id == a.case), None)
    loader = a.loader or find_loader()
    if case is None or loader is None:
        print("unknown case or no loader (OCI2BIN_TEST_LOADER / --loader)", file=sys.stderr)
        return 2
    with open(loader, "rb") as f:
        sb = Sandbox(a.user, f.read())
    sb.ctx.case_env = case.env
    binary = case.build(sb.ctx)
    sb.own(binary)
    if case.pre:
        case.pre(sb)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**sb.env(), **case.env}.items())
    run = f"env -i {env} {binary}"
    if a.user != "root":
        run = f"runuser -u {a.user} -- {run}"
    print(f"# case {case.id}: expected {case.expect} {case.pattern or ''}\n# {case.bug or ''}")
    print(f"{run}            # add --no-cache / --debug as needed")
    print(f"# canary: {sb.ctx.canary}   sandbox (remove when done): rm -rf {sb.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
