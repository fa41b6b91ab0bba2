"""Fixtures for the loader runtime tests: the loader, a busybox polyglot readable by `tester`, and `Runner`,
which runs it as root or as `tester` with its own TMPDIR and cache dir (both checked for leftovers).

Needs root (builds the rig image, switches to `tester`). Loader: $OCI2BIN_TEST_LOADER, else the one Pants puts at
loader/loader-x86_64 in the test sandbox."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.rig import images

TESTER = os.environ.get("OCI2BIN_TEST_USER", "tester")
REPO = Path(images.RECIPES).parents[2]
PANTS_LOADER = Path("loader/loader-x86_64")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loader runtime tests run as root (and as tester)")


def cli_env() -> dict:
    path = [str(REPO / "src" / "python")] + [p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture(scope="session")
def loader() -> Path:
    val = os.environ.get("OCI2BIN_TEST_LOADER") or (str(PANTS_LOADER) if PANTS_LOADER.is_file() else "")
    if not val:
        pytest.skip("OCI2BIN_TEST_LOADER is not set and no Pants-built loader at loader/loader-x86_64")
    return Path(val).resolve()


@pytest.fixture(scope="session")
def workdir():
    """A 0755 dir that `tester` can read; removed at the end."""
    d = Path(tempfile.mkdtemp(prefix="oci2bin-loader-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox(loader, workdir) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    layout = images.build("busybox")
    out = workdir / "busybox.bin"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "oci2bin",
            "assemble",
            "--loader",
            str(loader),
            "--image",
            f"oci:{layout}",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=str(REPO),
    )
    assert p.returncode == 0, f"assemble failed:\n{p.stdout}\n{p.stderr}"
    out.chmod(0o755)
    return out


class Runner:
    """Runs the polyglot as `user` (root or tester) with private TMPDIR, cache dir and XDG_CACHE_HOME."""

    def __init__(self, binary: Path, user: str, base: Path):
        self.binary, self.user = binary, user
        self.base = Path(tempfile.mkdtemp(prefix=f"run-{user}-", dir=base))
        self.base.chmod(0o755)
        self.tmp = self.base / "tmp"
        self.cache = self.base / "cache"
        self.home = self.base / "home"
        for d in (self.tmp, self.cache, self.home):
            d.mkdir(mode=0o755)
        if user != "root":
            pw = pwd.getpwnam(user)
            for d in (self.base, self.tmp, self.cache, self.home):
                os.chown(d, pw.pw_uid, pw.pw_gid)

    def env(self, extra: dict | None = None) -> dict:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "TMPDIR": str(self.tmp),
            "OCI2BIN_CACHE_DIR": str(self.cache),
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
        }
        env.update(extra or {})
        return env

    def argv(self, args: list[str], extra_env: dict | None = None) -> list[str]:
        cmd = [str(self.binary), *args]
        if self.user == "root":
            return cmd
        envs = [f"{k}={v}" for k, v in self.env(extra_env).items()]
        # setpriv execs (runuser would stay the parent): the process is the loader itself, for signal tests
        return [
            "setpriv",
            f"--reuid={self.user}",
            f"--regid={self.user}",
            "--init-groups",
            "env",
            "-i",
            *envs,
            *cmd,
        ]

    def run(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60,
        env: dict | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess:
        p = subprocess.run(
            self.argv(list(args), env),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env=self.env(env),
            cwd=str(self.base),
        )
        if check:
            assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def popen(self, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(list(args), env), env=self.env(env), cwd=str(self.base), **kw)

    def tmp_left(self) -> list[str]:
        return sorted(os.listdir(self.tmp))


@pytest.fixture(params=["root", "tester"])
def runner(request, busybox, workdir) -> Runner:
    user = request.param
    if user != "root":
        try:
            pwd.getpwnam(user := TESTER)
        except KeyError:
            pytest.fail(f"user {TESTER!r} missing: run tests/rig/install-deps.sh")
    r = Runner(busybox, user, workdir)
    yield r
    left = r.tmp_left()
    shutil.rmtree(r.base, ignore_errors=True)
    assert not left, f"left in TMPDIR: {left}"
