"""A real REAPI remote cache on loopback for tests: buildgrid 0.4.4 (CAS + ActionCache + ByteStream).

    with BuildGrid() as bg:                 # temp dir, one `bgd` process on 127.0.0.1:PORT, stopped by PID on exit
        bg.address                          # "grpc://127.0.0.1:PORT"
        bg.instance                         # "main"
        bg.pants_args()                     # Pants options that read from and write to it

buildgrid 0.4.4 is the newest release that runs on CPython 3.11 (later ones need >= 3.12). It is installed from
PyPI into a venv under the rig cache ($OCI2BIN_RIG_CACHE or ~/.cache/oci2bin-rig)/buildgrid-0.4.4 on first use
(~45 s), then reused. The interpreter is the first CPython 3.11 found ($OCI2BIN_PY311, pyenv, PATH).

The action cache is buildgrid's in-memory LRU: it lives as long as the process (enough for one test), the CAS is
on disk in the temp dir. Nothing is left behind: the process is stopped by its PID, the temp dir removed.

CLI: python -m tests.rig.buildgrid install | serve   (serve: runs until Ctrl-C, prints the Pants options)
"""

from __future__ import annotations

import ctypes
import fcntl
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

VERSION = "0.4.4"
INSTANCE = "main"


def cache_root() -> str:
    return os.environ.get("OCI2BIN_RIG_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "oci2bin-rig"
    )


def venv_dir() -> str:
    return os.path.join(cache_root(), f"buildgrid-{VERSION}")


def find_python311() -> str | None:
    root = os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")
    candidates = [
        os.environ.get("OCI2BIN_PY311", ""),
        *sorted(glob.glob(os.path.join(root, "versions", "3.11*", "bin", "python3.11")), reverse=True),
        *sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python3.11"), reverse=True),
        shutil.which("python3.11") or "",
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


def bgd_path() -> str:
    return os.path.join(venv_dir(), "bin", "bgd")


def install() -> str:
    """The `bgd` executable; creates the venv first if needed (serialised with flock, marked complete)."""
    venv = venv_dir()
    done = os.path.join(venv, ".complete")
    if os.path.exists(done):
        return bgd_path()
    os.makedirs(cache_root(), exist_ok=True)
    with open(os.path.join(cache_root(), f".buildgrid-{VERSION}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return bgd_path()
        python = find_python311()
        if python is None:
            raise RuntimeError("buildgrid needs CPython 3.11 (set OCI2BIN_PY311 or install it with pyenv)")
        shutil.rmtree(venv, ignore_errors=True)
        # pip uses the machine's own configuration (index, mirror, CA bundle): an install from PyPI.
        subprocess.run([python, "-m", "venv", venv], check=True)
        result = subprocess.run(
            [os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
             f"buildgrid=={VERSION}"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"pip could not install buildgrid=={VERSION}:\n{result.stderr[-3000:]}")
        open(done, "w").close()
    return bgd_path()


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the server when the process that started it dies, even by SIGKILL (Pants kills and
    retries a test when files change; a fixture's teardown never runs then)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """\
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
storages:
  - !disk-storage &main-storage
    path: {cas}
caches:
  - !lru-action-cache &main-action
    storage: *main-storage
    max-cached-refs: 100000
    allow-updates: true
    cache-failed-actions: false
instances:
  - name: {instance}
    services:
      - !action-cache
        cache: *main-action
      - !cas
        storage: *main-storage
      - !bytestream
        storage: *main-storage
thread-pool-size: 20
"""


class BuildGrid:
    """One `bgd server start` on a free loopback port. Use as a context manager."""

    def __init__(self, root: str | None = None):
        self._own_root = root is None
        self.root = root or ""
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log = ""

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    instance = INSTANCE

    def pants_args(self, read: bool = True, write: bool = True) -> list[str]:
        return [
            f"--remote-store-address={self.address}",
            f"--remote-instance-name={self.instance}",
            f"--remote-cache-read={'true' if read else 'false'}",
            f"--remote-cache-write={'true' if write else 'false'}",
            "--cache-content-behavior=defer",
        ]

    def start(self, timeout: float = 60.0) -> BuildGrid:
        bgd = install()
        if self._own_root:
            self.root = tempfile.mkdtemp(prefix="oci2bin-buildgrid-")
        cas = os.path.join(self.root, "cas")
        os.makedirs(cas, exist_ok=True)
        self.log = os.path.join(self.root, "bgd.log")
        last = ""
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = _free_port()
            cfg = os.path.join(self.root, "bgd.yml")
            with open(cfg, "w") as f:
                f.write(CONFIG.format(port=self.port, cas=cas, instance=self.instance))
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [bgd, "server", "start", cfg],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,  # and no new session: a kill of the test's group reaches it
                )
            if self._wait(timeout):
                return self
            last = self.tail()
            self.stop()
        raise RuntimeError(f"buildgrid did not start: {last}")

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.2)
        return False

    def tail(self, n: int = 30) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # by PID: only the process this object started
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> BuildGrid:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_root and self.root:
            shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "install"
    if cmd == "install":
        print(install())
        return 0
    if cmd == "serve":
        with BuildGrid() as bg:
            print(" ".join(bg.pants_args()), flush=True)
            try:
                while bg.proc is not None and bg.proc.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
