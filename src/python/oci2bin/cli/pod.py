"""`oci2bin pod run [--net shared] [--ipc shared] [--network-alias NAME]... BIN BIN...`: several binaries as one
pod.

`--net shared` / `--ipc shared`: a pause process holds a fresh network and/or IPC namespace (loopback up; made
with `unshare`, in a user namespace of its own mapping root to the caller, plus the caller's /etc/subuid range
when `unshare --map-auto` can use it, when not root) and each binary joins it with the loader's
`--net container:PID` / `--ipc container:PID` (the loader enters the pause's user namespace itself when it needs
to). Loaders without `--net container:` (older binaries, seen in their `--help`) are started inside the pause's
network namespace with `nsenter --net` instead; `--ipc shared` needs `--ipc container:`. Network aliases become
`--add-host NAME:127.0.0.1`. The binaries run in the foreground; SIGTERM/SIGINT/SIGHUP are forwarded to all; when
one exits non-zero the others get SIGTERM; the exit status is the worst (highest) non-zero status seen.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from oci2bin.cli.common import Parser, note
from oci2bin.errors import UserError
from oci2bin.polyglot.reader import Polyglot

ALIAS_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)

# The pause process: dies with `oci2bin pod run` (PR_SET_PDEATHSIG), brings loopback up, says "ready", sleeps.
PAUSE = r"""
import ctypes, fcntl, signal, socket, struct, sys
ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
s.close()
sys.stdout.write("ready\n")
sys.stdout.flush()
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    signal.pause()
"""

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
KILL_AFTER = 10.0  # seconds between SIGTERM and SIGKILL when the pod is stopped


def parser() -> Parser:
    p = Parser(prog="oci2bin pod run", description="Run oci2bin binaries as a pod sharing network/IPC.")
    p.add_argument("--net", choices=["shared", "host"], default="host", help="shared: one network namespace")
    p.add_argument(
        "--ipc", choices=["shared", "private"], default="private", help="shared: one IPC namespace"
    )
    p.add_argument(
        "--network-alias",
        action="append",
        default=[],
        metavar="NAME",
        help="hostname resolving to 127.0.0.1 in every container (repeatable; needs --net shared)",
    )
    p.add_argument("binaries", nargs="+", metavar="BIN")
    return p


def _loader_flags(binary: str) -> str:
    try:
        r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout


def _can_join(help_text: str) -> bool:
    return "container:PID" in help_text


def _check(args) -> tuple[list[str], set[str]]:
    """The binaries' paths, and those without `--net container:` (with any of them, --net shared uses `nsenter`
    for all: one kind of pause process serves them all)."""
    if len(args.binaries) < 1:
        raise UserError("pod run needs at least one binary", "pass BIN [BIN...]")
    paths = []
    for b in args.binaries:
        path = b if os.sep in b else os.path.join(".", b)
        if not os.path.isfile(path):
            raise UserError(f"{b}: no such file", "pass paths of oci2bin binaries")
        if not os.access(path, os.X_OK):
            raise UserError(f"{b} is not executable", f"chmod +x {b}")
        Polyglot(path)  # one clear line if it is not an oci2bin binary
        paths.append(path)
    for a in args.network_alias:
        if not ALIAS_RE.fullmatch(a) or len(a) > 253:
            raise UserError(f"--network-alias {a!r} is not a valid host name", "use letters, digits, - and .")
    if args.network_alias and args.net != "shared":
        raise UserError("--network-alias needs --net shared", "add --net shared")
    old = set()
    if args.net == "shared" or args.ipc == "shared":
        for path in paths:
            help_text = _loader_flags(path)
            if args.ipc == "shared" and "--ipc" not in help_text:
                raise UserError(
                    f"{path}: its loader cannot join an IPC namespace (no --ipc container:PID)",
                    "rebuild it with a newer loader, or drop --ipc shared",
                )
            if args.net == "shared" and not _can_join(help_text):
                old.add(path)
        if shutil.which("unshare") is None or (old and shutil.which("nsenter") is None):
            raise UserError(
                "pod run needs " + ("nsenter and unshare" if old else "unshare"), "install util-linux"
            )
    return paths, old


def _pause_variants(legacy: bool) -> list[list[str]]:
    """`unshare` user-namespace options to try, best first. Root needs none. A loader joining the pause's
    namespaces nests its container's user namespace in the pause's, mapped 1:1: map root to the caller, and the
    caller's subordinate range too when possible (the containers then keep the image's file owners).
    `nsenter`-started (legacy) loaders map ids themselves from inside: the caller's own id only."""
    if os.geteuid() == 0:
        return [[]]
    if legacy:
        return [["--user", "--map-current-user", "--keep-caps"]]
    return [["--user", "--map-root-user", "--map-auto"], ["--user", "--map-root-user"]]


def _start_pause(net: bool, ipc: bool, legacy: bool) -> subprocess.Popen:
    err: list[str] = []
    for users in _pause_variants(legacy):
        cmd = ["unshare", *users]
        if net:
            cmd.append("--net")
        if ipc:
            cmd.append("--ipc")
        cmd += ["--", sys.executable, "-c", PAUSE]
        try:
            p = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
        except OSError as e:
            raise UserError(
                f"cannot start the pod's pause process: {e.strerror}", "install util-linux"
            ) from None
        line = p.stdout.readline() if p.stdout else b""
        if line.strip() == b"ready":
            return p
        p.kill()
        err = (p.communicate()[1] or b"").decode(errors="replace").strip().splitlines()
    raise UserError(
        f"cannot create the pod's namespaces: {err[-1] if err else 'the pause process failed'}",
        "unprivileged users need user namespaces enabled (kernel.unprivileged_userns_clone)",
    )


def _command(path: str, args, pause: int | None, legacy: bool) -> list[str]:
    cmd = []
    if pause is not None and args.net == "shared" and legacy:
        cmd = ["nsenter", f"--target={pause}", "--net"]
        if os.geteuid() != 0:
            cmd += ["--user", "--preserve-credentials"]
        cmd.append("--")
    cmd.append(path)
    if pause is not None and args.net == "shared" and not legacy:
        cmd += ["--net", f"container:{pause}"]
    for a in args.network_alias:
        cmd += ["--add-host", f"{a}:127.0.0.1"]
    if args.ipc == "shared" and pause is not None:
        cmd += ["--ipc", f"container:{pause}"]
    return cmd


def run(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        if argv and argv[0] in ("-h", "--help"):
            parser().print_help()
            return 0
        raise UserError(
            "unknown pod command" + (f" {argv[0]!r}" if argv else ""), "use: oci2bin pod run BIN..."
        )
    args = parser().parse_args(argv[1:])
    paths, legacy = _check(args)
    pause = None
    if args.net == "shared" or args.ipc == "shared":
        pause = _start_pause(args.net == "shared", args.ipc == "shared", bool(legacy))
    children: list[subprocess.Popen] = []
    stopping = False
    kill_at: float | None = None

    def forward(sig, _frame):
        nonlocal stopping, kill_at
        stopping = True
        if kill_at is None:
            kill_at = time.monotonic() + KILL_AFTER
        for c in children:
            if c.poll() is None:
                try:
                    c.send_signal(sig)
                except ProcessLookupError:
                    pass

    old = {s: signal.signal(s, forward) for s in FORWARDED}
    worst = 0
    failed = False
    try:
        for path in paths:
            try:
                cmd = _command(path, args, pause.pid if pause else None, bool(legacy))
                children.append(subprocess.Popen(cmd))
            except OSError as e:
                raise UserError(f"cannot start {path}: {e.strerror}", "check the binary") from None
        running = set(range(len(children)))
        while running:
            for i in sorted(running):
                rc = children[i].poll()
                if rc is None:
                    continue
                running.discard(i)
                status = rc if rc >= 0 else 128 - rc
                if status:
                    note(f"{paths[i]} exited with status {status}")
                    # a container that we stopped because another one failed does not mask that failure
                    if not (failed and status >= 128):
                        worst = max(worst, status)
                    if not stopping:
                        failed = True
                        forward(signal.SIGTERM, None)
            if kill_at is not None and time.monotonic() > kill_at:
                for i in running:
                    children[i].kill()
            time.sleep(0.05)
    finally:
        for c in children:  # only on an error path: do not leave containers behind
            if c.poll() is None:
                c.kill()
                c.wait()
        if pause is not None:
            pause.terminate()
            try:
                pause.wait(5)
            except subprocess.TimeoutExpired:
                pause.kill()
                pause.wait()
        for s, h in old.items():
            signal.signal(s, h)
    return worst
