"""`oci2bin exec PID|NAME [--] CMD...`: run a command inside a running container's namespaces (nsenter).

PID may be the PID that `--detach` printed (the loader) or the container's PID 1 on the host; NAME is a
container started with `--detach --name NAME`. Joins the user, mount, pid, uts and ipc namespaces (and net
when the container has its own), with the container's root, working directory and environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from oci2bin.cli.common import Parser
from oci2bin.errors import UserError
from oci2bin.state import containers

NAMESPACES = [("user", "--user"), ("mnt", "--mount"), ("pid", "--pid"), ("uts", "--uts"), ("ipc", "--ipc")]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _ns(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return sorted(kids)


def container_process(pid: int) -> int:
    """The host PID of the container's PID 1 for ``pid`` (the loader or the container process itself)."""
    if not os.path.exists(f"/proc/{pid}"):
        raise UserError(
            f"no process with PID {pid}", "pass the PID that --detach printed, or a container name"
        )
    mine = _ns("self", "mnt")
    theirs = _ns(pid, "mnt")
    if theirs is None:
        raise UserError(
            f"cannot see the namespaces of PID {pid}",
            "run oci2bin exec as the user who started the container",
        )
    if theirs != mine:
        return pid
    for kid in _children(pid):
        ns = _ns(kid, "mnt")
        if ns is not None and ns != mine and _ns(kid, "pid") != _ns("self", "pid"):
            return kid
    raise UserError(f"PID {pid} is not a running oci2bin container", "pass the PID that --detach printed")


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        raw = b""
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep and k:
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    env.setdefault("PATH", DEFAULT_PATH)
    if "TERM" in os.environ:
        env.setdefault("TERM", os.environ["TERM"])
    return env


def nsenter_command(target: int, cmd: list[str]) -> list[str]:
    args = ["nsenter", f"--target={target}"]
    for kind, flag in NAMESPACES:
        if _ns(target, kind) != _ns("self", kind):
            args.append(flag)
    if _ns(target, "net") != _ns("self", "net"):
        args.append("--net")
    if os.geteuid() != 0:
        # the container's user namespace maps the caller to 0 (and setgroups may be denied): keep the ids
        args.append("--preserve-credentials")
    args += ["--root", "--wd", "--", *cmd]
    return args


def run(argv: list[str]) -> int:
    p = Parser(
        prog="oci2bin exec",
        description="Run a command inside a running container (needs nsenter from util-linux).",
    )
    p.add_argument("target", metavar="PID|NAME")
    p.add_argument("command", nargs="+", metavar="CMD")
    # everything after PID|NAME (and an optional `--`) is the command, options included
    if not argv or argv[0].startswith("-"):
        p.parse_args(argv)  # --help, or a usage error
    rest = argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if not rest:
        p.error("the command to run is missing")
    args = p.parse_args([argv[0], "--", *rest])
    if args.target.isdigit():
        pid = int(args.target)
    else:
        c = containers.get(args.target)
        if not c.running:
            raise UserError(
                f"container {c.name} is not running", "start it again, or remove it with oci2bin stop"
            )
        pid = c.pid
    target = container_process(pid)
    if shutil.which("nsenter") is None:
        raise UserError("nsenter is not installed", "install util-linux")
    cmd = nsenter_command(target, args.command)
    env = _environ(target)
    sys.stdout.flush()
    try:
        r = subprocess.run(cmd, env=env, check=False)
    except OSError as e:
        raise UserError(f"cannot run nsenter: {e.strerror}", "install util-linux") from None
    return r.returncode if r.returncode >= 0 else 128 - r.returncode
