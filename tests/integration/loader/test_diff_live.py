"""`oci2bin diff --live` against a detached busybox container changed through `oci2bin exec`, as root and as
`tester` (the CLI runs as the same user as the container)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.loader.conftest import REPO

PY = shutil.which("python3", path="/usr/bin:/bin")


def _cli_argv(runner, pkg: Path, *args: str) -> tuple[list[str], dict]:
    env = runner.env({"PYTHONPATH": str(pkg)})
    cmd = [PY, "-m", "oci2bin", *args]
    if runner.user == "root":
        return cmd, env
    envs = [f"{k}={v}" for k, v in env.items()]
    return [
        "setpriv",
        f"--reuid={runner.user}",
        f"--regid={runner.user}",
        "--init-groups",
        "env",
        "-i",
        *envs,
        *cmd,
    ], env


@pytest.fixture
def cli(runner):
    """Runs the source-tree CLI as the runner's user (a copy `tester` can read)."""
    if PY is None:
        pytest.skip("no system python3 to run the CLI as tester")
    pkg = runner.base / "py"
    shutil.copytree(
        REPO / "src" / "python" / "oci2bin", pkg / "oci2bin", ignore=shutil.ignore_patterns("__pycache__")
    )
    if runner.user != "root":
        pw = pwd.getpwnam(runner.user)
        for root, dirs, files in os.walk(pkg):
            for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
                os.chown(n, pw.pw_uid, pw.pw_gid)

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv, env = _cli_argv(runner, pkg, *args)
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=str(runner.base), timeout=timeout
        )

    yield run
    # a failed test must not leave its container running
    for st in (runner.home / ".cache" / "oci2bin" / "containers").glob("*.json"):
        try:
            os.kill(json.loads(st.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


CHANGES = (
    "echo new > /root/added; echo x >> /etc/passwd; rm /etc/group; echo {same} > /var/www/index.html;"
    " mkdir -m 700 /home/u; echo private > /home/u/f; chown -R 1000:1000 /home/u"
)


def test_diff_live_shows_exec_changes(runner, cli):
    size = len(runner.run("cat", "/var/www/index.html", check=True).stdout)
    same = "X" * (size - 1)  # + echo's newline: a same-size edit, which only the content hash tells
    p = runner.run(
        "-d", "--name", "drift", "sh", "-c", "while true; do sleep 0.2; done", timeout=60, check=True
    )
    loader_pid = int(p.stdout)
    r = cli("exec", "drift", "sh", "-c", CHANGES.format(same=same))
    assert r.returncode == 0, r.stderr

    expected = [
        "- /etc/group (26 B)",
        "M /etc/passwd (75 B -> 77 B)",
        "+ /home/u (dir)",
        "+ /home/u/f (8 B)",  # under a 0700 dir of another in-container user: read from inside the userns
        "+ /root/added (4 B)",
        f"M /var/www/index.html ({size} B -> {size} B)",
        "3 added, 1 removed, 2 modified",
    ]
    # the PID --detach printed (the loader, in the host's namespaces), then the container's name
    for target in (str(loader_pid), "drift"):
        t0 = time.monotonic()
        r = cli("diff", "--live", target, str(runner.binary), timeout=30)
        took = time.monotonic() - t0
        assert r.returncode == 1, r.stderr
        assert r.stdout.splitlines() == expected, r.stdout
        assert took < 10, f"diff --live took {took:.1f} s"

    # the container's own PID 1 works too; no changes after undoing them (the diff exits 0)
    ctr_pid = json.loads((runner.home / ".cache/oci2bin/containers/drift.json").read_text())["container_pid"]
    r = cli("exec", "drift", "sh", "-c", "rm -r /root/added /home/u")
    assert r.returncode == 0, r.stderr
    r = cli("diff", "--live", str(ctr_pid), str(runner.binary), timeout=30)
    assert r.returncode == 1 and r.stdout.splitlines()[-1] == "0 added, 1 removed, 2 modified", r.stdout

    r = cli("stop", "-t", "2", "drift")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while Path(f"/proc/{loader_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{loader_pid}").exists()

    # a stopped container, and a PID that is no container: one line each, non-zero
    r = cli("diff", "--live", "drift", str(runner.binary))
    assert (
        r.returncode != 0 and "no container named" in r.stderr and len(r.stderr.splitlines()) == 1
    ), r.stderr
    r = cli("diff", "--live", str(os.getpid()), str(runner.binary))
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1, r.stderr
