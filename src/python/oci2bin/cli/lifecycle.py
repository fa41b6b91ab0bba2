"""`oci2bin ps [--json]`, `oci2bin stop NAME [-t SECONDS]`, `oci2bin logs [-f] NAME`: named containers
started with `BINARY --detach --name NAME` (state files: oci2bin.state.containers)."""

from __future__ import annotations

import json
import os
import sys
import time

from oci2bin.cli.common import Parser, note
from oci2bin.errors import UserError
from oci2bin.state import containers


def run_ps(argv: list[str]) -> int:
    p = Parser(prog="oci2bin ps", description="List named containers (started with --detach --name).")
    p.add_argument("--json", action="store_true", help="machine-readable JSON (a list of objects)")
    args = p.parse_args(argv)
    items = containers.list_containers()
    if args.json:
        sys.stdout.write(json.dumps([c.as_json() for c in items], indent=2) + "\n")
        return 0
    rows = [("NAME", "PID", "STATUS", "BINARY", "STARTED")]
    for c in items:
        j = c.as_json()
        rows.append((c.name, str(c.pid), j["status"], j["binary"], j["started"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] + "\n")
    return 0


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not (0 <= v <= 3600):
        raise UserError(f"-t {text}: not a number of seconds", "pass 0..3600, e.g. -t 10")
    return v


def run_stop(argv: list[str]) -> int:
    p = Parser(
        prog="oci2bin stop",
        description="Stop a named container: SIGTERM, wait, then SIGKILL; removes its state and log.",
    )
    p.add_argument("name")
    p.add_argument("-t", "--time", default="10", metavar="SECONDS", help="seconds to wait before SIGKILL")
    args = p.parse_args(argv)
    timeout = _seconds(args.time)
    c = containers.get(args.name)
    outcome = containers.stop(c, timeout)
    if outcome == "killed":
        note(f"{c.name} did not stop within {timeout:g} s: killed")
    elif outcome == "not running":
        note(f"{c.name} was not running: state removed")
    sys.stdout.write(c.name + "\n")
    return 0


def run_logs(argv: list[str]) -> int:
    p = Parser(prog="oci2bin logs", description="Print (or follow) a named container's output.")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output until it stops")
    p.add_argument("name")
    args = p.parse_args(argv)
    c = containers.get(args.name)
    try:
        f = open(c.log, "rb")
    except FileNotFoundError:
        raise UserError(
            f"container {c.name} has no log file {c.log}", "it was started without --detach"
        ) from None
    except OSError as e:
        raise UserError(f"cannot read {c.log}: {e.strerror}", "check its permissions") from None
    out = sys.stdout.buffer
    with f:
        while True:
            data = f.read(1 << 16)
            if data:
                out.write(data)
                continue
            out.flush()
            if not args.follow:
                return 0
            if not containers.pid_is(c.pid, c.started):
                data = f.read()  # what it wrote while dying
                out.write(data)
                out.flush()
                return 0
            if not os.path.exists(c.path):  # stopped and removed meanwhile
                return 0
            time.sleep(0.1)
