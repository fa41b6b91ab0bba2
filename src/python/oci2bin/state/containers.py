"""Named containers: the loader's state files (docs/loader.md, `--name`), read by `ps`, `stop`, `logs`, `exec`.

``<dir>/NAME.json`` = ``{name, pid, container_pid, image, binary, command, started, log, status, exit_code}``
(``binary``: the path of the binary that ran it, from the loader's /proc/self/exe) where
``<dir>`` is ``$XDG_CACHE_HOME/oci2bin/containers`` (or ``~/.cache/oci2bin/containers``). ``pid`` is the
detached loader (SIGTERM it to stop the container), ``container_pid`` the container's PID 1 on the host. The
loader holds ``flock(LOCK_EX)`` on the file while the container runs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import time
from dataclasses import dataclass

from oci2bin.errors import UserError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def state_dir() -> str:
    x = os.environ.get("XDG_CACHE_HOME", "")
    if x.startswith("/"):
        return os.path.join(x, "oci2bin", "containers")
    home = os.environ.get("HOME", "") or os.path.expanduser("~")
    return os.path.join(home, ".cache", "oci2bin", "containers")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"invalid container name {name!r}",
            "names are 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit",
        )
    return name


@dataclass
class Container:
    name: str
    path: str  # the state file
    pid: int
    container_pid: int
    image: str
    binary_path: str  # as recorded by the loader ("" from loaders that did not record it)
    command: list[str]
    started: int
    log: str
    status: str  # as recorded: "running" / "exited"
    exit_code: int | None
    running: bool  # as observed now

    @property
    def binary(self) -> str:
        """The binary that runs (ran) the container, by file name: /proc/PID/exe while it runs, else the path the
        loader recorded (else the image name, for state files without one)."""
        path = self.binary_path
        if self.running:
            try:
                path = os.readlink(f"/proc/{self.pid}/exe")
            except OSError:
                pass
        if path:
            return os.path.basename(path.removesuffix(" (deleted)"))
        return self.image or "-"

    @property
    def status_text(self) -> str:
        return "running" if self.running else "stopped"

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "pid": self.pid,
            "container_pid": self.container_pid,
            "status": self.status_text,
            "binary": self.binary,
            "binary_path": self.binary_path,
            "image": self.image,
            "command": self.command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "log": self.log,
            "exit_code": self.exit_code,
        }


def _start_time(pid: int) -> float | None:
    """Seconds since the epoch at which ``pid`` started, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    ticks = int(fields[19])
    try:
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, StopIteration):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def pid_is(pid: int, started: int) -> bool:
    """Is ``pid`` alive and the process that started at ``started`` (not a recycled PID)?"""
    if pid <= 0:
        return False
    t = _start_time(pid)
    # the detached loader is forked right after it records `started` (whole seconds): allow clock granularity
    return t is not None and started - 2 <= t <= started + 30


def _lock_held(path: str) -> bool | None:
    """True if someone holds a lock on ``path`` (the loader), False if not, None if it cannot be told."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return True if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    finally:
        os.close(fd)  # closing drops our lock too
    return False


def load(path: str) -> Container | None:
    """The container described by ``path``, or None if the file is not a (complete) state file."""
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read(1 << 20) or b"null")
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("pid"), int):
        return None
    name = os.path.basename(path).removesuffix(".json")
    pid = raw["pid"]
    started = int(raw.get("started") or 0)
    running = pid_is(pid, started) and _lock_held(path) is not False
    return Container(
        name=str(raw.get("name") or name),
        path=path,
        pid=pid,
        container_pid=int(raw.get("container_pid") or 0),
        image=str(raw.get("image") or ""),
        binary_path=str(raw.get("binary") or ""),
        command=[str(c) for c in raw.get("command") or []],
        started=started,
        log=str(raw.get("log") or os.path.join(os.path.dirname(path), name + ".log")),
        status=str(raw.get("status") or ""),
        exit_code=raw.get("exit_code"),
        running=running,
    )


def list_containers() -> list[Container]:
    d = state_dir()
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UserError(f"cannot list {d}: {e.strerror}", "check its permissions") from None
    out = []
    for n in names:
        c = load(os.path.join(d, n))
        if c is not None:
            out.append(c)
    return out


def get(name: str) -> Container:
    check_name(name)
    path = os.path.join(state_dir(), name + ".json")
    if not os.path.exists(path):
        raise UserError(
            f"no container named {name!r}",
            "list them with `oci2bin ps`; start one with BINARY --detach --name NAME",
        )
    c = load(path)
    if c is None:
        raise UserError(
            f"the state file {path} is unreadable or incomplete", "remove it, or wait for the start"
        )
    return c


def _gone(pid: int, started: int) -> bool:
    return not pid_is(pid, started)


def stop(c: Container, timeout: float = 10.0) -> str:
    """SIGTERM the loader, wait up to ``timeout`` s, then SIGKILL; remove the state and log files.

    Returns "stopped" (ended on SIGTERM), "killed" (needed SIGKILL) or "not running".
    """
    outcome = "not running"
    if c.running:
        outcome = "stopped"
        _signal(c.pid, signal.SIGTERM)
        if not _wait_gone(c, timeout):
            outcome = "killed"
            _signal(c.pid, signal.SIGKILL)
            if not _wait_gone(c, 10.0):
                raise UserError(
                    f"container {c.name} (PID {c.pid}) did not die after SIGKILL", "check it with ps"
                )
        # the container's PID 1 dies with the loader (PR_SET_PDEATHSIG); wait for the lock to go
        deadline = time.monotonic() + 5
        while _lock_held(c.path) and time.monotonic() < deadline:
            time.sleep(0.05)
    for p in (c.path, c.log):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise UserError(f"cannot remove {p}: {e.strerror}", "check its permissions") from None
    return outcome


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise UserError(
            f"not allowed to signal PID {pid}", "stop the container as the user who started it"
        ) from None


def _wait_gone(c: Container, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if _gone(c.pid, c.started):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
