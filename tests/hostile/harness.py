"""Running a crafted oci2bin file in a canary sandbox and checking that nothing outside the loader's cache changed.

Sandbox (tempfile.mkdtemp, 0755, removed afterwards):
    home/    HOME and XDG_CACHE_HOME (the loader must not touch it: OCI2BIN_CACHE_DIR wins)
    cache/   OCI2BIN_CACHE_DIR: the only place the loader may write
    tmp/     TMPDIR: the loader's run dir comes and goes here
    canary/  escape target, writable by the user running the loader; holds `secret`
    build/   the crafted layouts and the binary (owned by the running user, like a user's own file)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass

from tests.hostile import craft

UNPRIVILEGED = "tester"
OK_MARK = "HOSTILE-CHECK-OK"
EXIT_SETUP = 125
MAX_LINE = 600  # an error line longer than this is an echoed attacker path, not a clear message
HUNG = -1  # Result.rc of a run killed at its timeout
FSIZE_LIMIT = 512 << 20  # safety net for every run: no single file the loader writes may exceed this
HOST_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hosts", "/etc/resolv.conf")


def find_loader() -> str | None:
    for cand in (
        os.environ.get("OCI2BIN_TEST_LOADER"),
        "loader/loader-x86_64",
        "dist/loader/loader-x86_64",
    ):
        if cand and os.path.isfile(cand):
            return os.path.abspath(cand)
    return None


def sandbox_base() -> str:
    base = os.environ.get("OCI2BIN_HOSTILE_DIR") or "/var/tmp"
    return base if os.path.isdir(base) else tempfile.gettempdir()


class Ctx:
    """What a case's builder gets: the canary paths, a unique token, a build dir, the loader."""

    def __init__(self, sandbox: str, loader: bytes) -> None:
        self.sandbox = sandbox
        self.loader = loader
        self.token = uuid.uuid4().hex[:12]
        self.pw = f"pwned-{self.token}"  # every attack's leaf name
        self.canary = os.path.join(sandbox, "canary")
        self.canary_rel = self.canary.lstrip("/")
        self.secret = os.path.join(self.canary, "secret")
        self.tmp_target = f"/tmp/hostile-{self.pw}"
        self.up = "../" * 40
        self.build = os.path.join(sandbox, "build")
        self._n = 0

    def image(
        self,
        *layers: bytes,
        check: str = "true",
        cmd: list[str] | None = None,
        extra: dict | None = None,
        config: bytes | None = None,
        base: bool = True,
    ) -> str:
        """busybox base layer + `layers`, Cmd running `check` in the container and printing OK_MARK."""
        self._n += 1
        all_layers = ([craft.busybox_layer_cached()] if base else []) + list(layers)
        if cmd is None:
            cmd = ["/bin/sh", "-c", f"set -e; {check}; echo {OK_MARK}"]
        if config is None:
            config = craft.config_json(all_layers, cmd, extra)
        lay = craft.write_layout(os.path.join(self.build, f"layout{self._n}"), all_layers, config)
        return craft.assemble(lay, os.path.join(self.build, f"bin{self._n}"), self.loader)

    def poly(self, binary: str) -> craft.Poly:
        return craft.Poly.read(binary)

    def out(self) -> str:
        self._n += 1
        return os.path.join(self.build, f"patched{self._n}")


# ------------------------------------------------------------------------------------------------ snapshots


def _stat_key(st: os.stat_result, with_mtime: bool = True) -> tuple:
    return (
        st.st_ino,
        stat.S_IFMT(st.st_mode),
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
        st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0,
        st.st_mtime_ns if with_mtime else 0,
    )


def snapshot_tree(root: str, skip: set[str], no_mtime: set[str]) -> dict[str, tuple]:
    """(inode, type, mode, uid, size, nlink, mtime) of every path under root, not descending into `skip`."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        st = os.lstat(dirpath)
        snap[dirpath] = _stat_key(st, dirpath not in no_mtime)
        keep = []
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if p in skip:
                continue
            if os.path.islink(p):
                snap[p] = _stat_key(os.lstat(p))
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            p = os.path.join(dirpath, f)
            try:
                snap[p] = _stat_key(os.lstat(p))
            except FileNotFoundError:
                pass
    return snap


def tmp_names(token: str) -> set[str]:
    """What this run could leave in /tmp: a run dir (if TMPDIR were ignored) or an attack's file. Other
    oci2bin tests may be creating their own oci2bin-* dirs there concurrently, so only these count."""
    return {n for n in os.listdir("/tmp") if n.startswith("oci2bin-run-") or token in n}


def in_use_elsewhere(names: set[str]) -> set[str]:
    """Run dirs some live process has a mount on: another loader's (our runs are over when this is asked)."""
    busy = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                text = f.read()
        except OSError:
            continue
        busy |= {n for n in names if f"/tmp/{n}" in text}
    return busy


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 20):
            h.update(data)
    return h.hexdigest()


@dataclass
class HostState:
    tree: dict
    tmp: set
    host_files: dict
    binaries: dict

    @staticmethod
    def take(sb: "Sandbox", binaries: list[str]) -> "HostState":
        return HostState(
            snapshot_tree(sb.root, {sb.cache}, {sb.tmp}),
            tmp_names(sb.ctx.token),
            {p: _stat_key(os.lstat(p)) for p in HOST_FILES if os.path.lexists(p)},
            {b: (sha256_file(b), _stat_key(os.lstat(b))) for b in binaries},
        )

    def diff(self, after: "HostState") -> list[str]:
        problems = []
        for p in sorted(set(self.tree) | set(after.tree)):
            if self.tree.get(p) != after.tree.get(p):
                what = "new" if p not in self.tree else "removed" if p not in after.tree else "changed"
                problems.append(f"{what} outside the cache: {p} {self.tree.get(p)} -> {after.tree.get(p)}")
        new = after.tmp - self.tmp
        deadline = time.monotonic() + 5
        while new and time.monotonic() < deadline:
            # other oci2bin tests may be running loaders with TMPDIR=/tmp right now: their run dirs live
            # for a moment; a leaked one stays
            time.sleep(0.2)
            new &= set(os.listdir("/tmp"))
        for n in sorted(new - in_use_elsewhere(new)):
            problems.append(f"left in /tmp: /tmp/{n}")
        for p, k in self.host_files.items():
            if after.host_files.get(p) != k:
                problems.append(f"host file changed: {p} {k} -> {after.host_files.get(p)}")
        for b, k in self.binaries.items():
            if after.binaries.get(b) != k:
                problems.append(f"the oci2bin file itself changed: {b}")
        return problems


# ------------------------------------------------------------------------------------------------ sandbox + runs


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


class Sandbox:
    def __init__(self, user: str, loader: bytes, small_tmpfs: int = 0) -> None:
        self.user = user
        # Not under /tmp: the container gets a fresh /tmp, which would hide where an attack landed.
        self.root = tempfile.mkdtemp(prefix="oci2bin-hostile-", dir=sandbox_base())
        os.chmod(self.root, 0o755)
        self.mounted = False
        if small_tmpfs:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={small_tmpfs},mode=0755", "tmpfs", self.root],
                check=True,
            )
            self.mounted = True
        self.home = os.path.join(self.root, "home")
        self.cache = os.path.join(self.root, "cache")
        self.tmp = os.path.join(self.root, "tmp")
        self.ctx = Ctx(self.root, loader)
        for d in (self.home, self.cache, self.tmp, self.ctx.canary, self.ctx.build):
            os.mkdir(d, 0o755)
        with open(self.ctx.secret, "w") as f:
            f.write("secret\n")
        if user != "root":
            for d in (self.home, self.cache, self.tmp, self.ctx.canary, self.ctx.secret):
                shutil.chown(d, user, user)

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.home,
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "OCI2BIN_CACHE_DIR": self.cache,
            "TMPDIR": self.tmp,
        }

    def own(self, binary: str) -> None:
        """The user's own file (so a write to it from the container would be possible, and is detected)."""
        os.chmod(binary, 0o755)
        if self.user != "root":
            shutil.chown(binary, self.user, self.user)

    def run(
        self,
        binary: str,
        args: list[str],
        fsize: int = FSIZE_LIMIT,
        timeout: int = 180,
        env: dict | None = None,
    ) -> Result:
        env = {**self.env(), **(env or {})}
        cmd = ["prlimit", f"--fsize={fsize}", "--", binary, *args]
        if self.user != "root":
            cmd = ["runuser", "-u", self.user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *cmd]
        p = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            preexec_fn=_default_signals,
            start_new_session=True,
        )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # our own session: runuser, the loader, the container
            out, err = p.communicate()
            return Result(HUNG, out, err)
        rc = p.returncode if p.returncode >= 0 else 128 - p.returncode
        return Result(rc, out, err)

    def mkdir_owned(self, path: str, mode: int) -> None:
        os.mkdir(path)
        os.chmod(path, mode)
        if self.user != "root":
            shutil.chown(path, self.user, self.user)

    def cache_entries(self) -> list[str]:
        d = os.path.join(self.cache, "rootfs")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def published(self) -> list[str]:
        d = os.path.join(self.cache, "rootfs")
        return [
            n for n in self.cache_entries() if not n.endswith(".lock") and os.path.isdir(os.path.join(d, n))
        ]

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", self.root], check=False)
        _force_rmtree(self.root)


def _default_signals() -> None:
    """Python ignores SIGXFSZ and SIGPIPE and children inherit that: with SIGXFSZ ignored, the RLIMIT_FSIZE
    safety net would turn into a polite EFBIG ("File too large") that looks like the loader's own limit."""
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _force_rmtree(path: str) -> None:
    def onerror(func, p, exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)


def reachable_by_others(path: str) -> bool:
    """Every directory from / down to path is searchable by "other" users."""
    p = os.path.abspath(path)
    while True:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


def exposed_entry(entry: str, run_uid: int) -> list[str]:
    """What other local users could abuse in a published rootfs: if they can reach it, no world-writable
    directory (they could plant files in the image every later run uses) and no set-id file; and whoever
    reaches it, no set-id file owned by host root unless root ran the loader."""
    bad = []
    others = reachable_by_others(entry)
    for dirpath, dirnames, filenames in os.walk(entry):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            setid = st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(st.st_mode)
            if setid and st.st_uid == 0 and run_uid != 0:
                bad.append(f"set-id file owned by host root: {p} {oct(st.st_mode)}")
            if others and setid:
                bad.append(f"set-id file other users can reach: {p} {oct(st.st_mode)}")
            if others and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:
                bad.append(f"world-writable directory other users can reach: {p} {oct(st.st_mode)}")
    return bad


def setid_files(root: str) -> list[str]:
    """Non-directories with set-uid/set-gid bits under root (a published cache entry)."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISLNK(st.st_mode):
                bad.append(f"{p} mode {oct(st.st_mode)}")
    return bad


def one_error_line(res: Result, pattern: str, rcs: tuple = (EXIT_SETUP,)) -> str | None:
    """None if the run failed the way a hostile input must fail, else what is wrong."""
    if res.rc == HUNG:
        return "the loader hung (killed at the timeout)"
    if res.rc not in rcs:
        return f"expected exit {' or '.join(map(str, rcs))} (loader error), got {res.rc}"
    if len(res.lines) != 1:
        return f"expected exactly one stderr line, got {len(res.lines)}"
    line = res.lines[0]
    if not line.startswith("oci2bin: ") or line.startswith("oci2bin: warning") or "unknown error" in line:
        return f"not a clear oci2bin error line: {line!r}"
    if len(line) > MAX_LINE:
        return f"error line of {len(line)} characters (cut at the loader's message limit?): {line[:200]!r}..."
    if not re.search(pattern, line, re.I):
        return f"error line does not match /{pattern}/: {line!r}"
    if OK_MARK in res.stdout:
        return "the container ran"
    return None


def clean_success(res: Result, warning: str | None, need_mark: bool = True) -> str | None:
    """warning: None = no warnings allowed, "" = any warnings allowed, else at least one must match."""
    if res.rc == HUNG:
        return "the loader hung (killed at the timeout)"
    if res.rc != 0 or (need_mark and OK_MARK not in res.stdout):
        return f"expected the container to run its check (exit 0 and {OK_MARK}), got exit {res.rc}"
    for ln in res.lines:
        if not ln.startswith("oci2bin: warning: "):
            return f"unexpected stderr line on success: {ln!r}"
    if warning and not any(re.search(warning, ln, re.I) for ln in res.lines):
        return f"expected a warning matching /{warning}/"
    if warning is None and res.lines:
        return f"unexpected warnings: {res.lines}"
    return None
