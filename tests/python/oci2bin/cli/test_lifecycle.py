"""`oci2bin ps`, `stop`, `logs`, `exec` against detached named containers run by the real loader, as root and as
the unprivileged user `tester`. Every container started here is killed at the end."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import oci2bin  # pants: no-infer-dep

LOOP = "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"


def _reap(xdg: str) -> None:
    """Kill every container whose state file is under ``xdg`` (a test failed before stopping it)."""
    for path in glob.glob(os.path.join(xdg, "oci2bin", "containers", "*.json")):
        try:
            with open(path) as f:
                st = json.load(f)
            os.kill(int(st["pid"]), signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


@pytest.fixture
def real_loader(loader_path):
    if os.path.basename(os.path.realpath(loader_path)) == "busybox":
        pytest.skip("needs the real loader: set OCI2BIN_TEST_LOADER to a built loader")
    if os.geteuid() != 0:
        pytest.skip("these tests run as root (and as tester via setuid)")
    return loader_path


@pytest.fixture
def bb(cli, images, tmp_path, real_loader):
    xdg = os.environ["XDG_CACHE_HOME"]
    cli("assemble", "--loader", real_loader, "--image", f"oci:{images.bb_oci}", "--output", "bb", check=True)
    yield str(tmp_path / "bb")
    _reap(xdg)


def _start(binary: str, name: str, *cmd: str, env=None) -> int:
    r = subprocess.run(
        [binary, "-d", "--name", name, "sh", "-c", *cmd],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def _wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _one_error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("oci2bin: ") and lines[0].endswith(")"), lines[0]
    return lines[0]


def test_ps_logs_exec_stop(cli, bb):
    pid = _start(bb, "web", LOOP)
    _start(bb, "done", "echo finished; exit 3")
    sdir = os.path.join(os.environ["XDG_CACHE_HOME"], "oci2bin", "containers")
    assert _wait_for(lambda: "finished" in open(os.path.join(sdir, "done.log")).read())

    r = cli("ps", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PID", "STATUS", "BINARY", "STARTED"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert rows["web"][1:4] == [str(pid), "running", "bb"]
    assert _wait_for(lambda: "stopped" in cli("ps").stdout)
    info = {c["name"]: c for c in json.loads(cli("ps", "--json", check=True).stdout)}
    assert info["web"]["status"] == "running" and info["web"]["pid"] == pid
    assert info["done"]["status"] == "stopped" and info["done"]["exit_code"] == 3
    # after the exit the binary still shows (recorded by the loader), not the image name
    assert info["done"]["binary"] == "bb" and info["done"]["binary_path"] == os.path.realpath(bb)
    done_row = next(ln.split() for ln in cli("ps", check=True).stdout.splitlines() if ln.startswith("done "))
    assert done_row[2:4] == ["stopped", "bb"], done_row
    assert info["web"]["command"][-3:] == ["sh", "-c", LOOP]

    assert _wait_for(lambda: cli("logs", "web").stdout == "started\n")

    # exec by name and by the PID --detach printed: the container's namespaces, root and environment
    r = cli(
        "exec", "web", "--", "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; hostname"
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "sh -c echo started" in out[1] and out[2] == "0"
    r = cli("exec", str(pid), "ls", "-d", "/bin/busybox")
    assert r.returncode == 0 and r.stdout.strip() == "/bin/busybox", r.stderr
    assert cli("exec", "web", "sh", "-c", "exit 5").returncode == 5

    # follow the log until the container stops
    follow = subprocess.Popen(
        [sys.executable, "-m", "oci2bin", "logs", "-f", "web"],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(oci2bin.__file__))),
    )
    time.sleep(0.5)
    t0 = time.monotonic()
    r = cli("stop", "web", check=True)
    assert r.stdout.strip() == "web" and time.monotonic() - t0 < 8
    out, _ = follow.communicate(timeout=20)
    assert out == "started\nbye\n"
    assert not _alive(pid)
    assert sorted(os.listdir(sdir)) == ["done.json", "done.log"]
    r = cli("stop", "done", check=True)
    assert "was not running" in r.stderr
    assert os.listdir(sdir) == []
    assert json.loads(cli("ps", "--json", check=True).stdout) == []


def test_stop_kills_after_timeout(cli, bb):
    pid = _start(bb, "stubborn", "trap '' TERM; echo up; while true; do sleep 0.2; done")
    t0 = time.monotonic()
    r = cli("stop", "-t", "1", "stubborn")
    assert r.returncode == 0, r.stderr
    assert "killed" in r.stderr and 1 <= time.monotonic() - t0 < 8
    assert _wait_for(lambda: not _alive(pid), 5)


def test_bad_inputs(cli, bb, tmp_path):
    before = sorted(os.listdir(tmp_path))
    cases = [
        (("stop", "nosuch"), "no container named"),
        (("stop", "../etc"), "invalid container name"),
        (("stop", "-t", "x", "a"), "not a number of seconds"),
        (("logs", "nosuch"), "no container named"),
        (("exec", "nosuch", "ls"), "no container named"),
        (("exec", "999999999", "ls"), "no process with PID"),
        (("exec", str(os.getpid()), "ls"), "not a running oci2bin container"),
        (("exec", "1"), "command to run is missing"),
        (("ps", "--bogus"), "unrecognized arguments"),
    ]
    for args, text in cases:
        r = cli(*args)
        assert r.returncode != 0, args
        assert text in _one_error(r), (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == before


# ------------------------------------------------------------------------------------ as tester


@pytest.fixture
def tester_dir(bb):
    try:
        pw = pwd.getpwnam("tester")
    except KeyError:
        pytest.skip("no user tester")
    py = shutil.which("python3", path="/usr/bin:/bin")
    if py is None:
        pytest.skip("no system python3 for tester")
    d = tempfile.mkdtemp(prefix="oci2bin-test-tester-")
    os.chmod(d, 0o755)
    src = os.path.dirname(oci2bin.__file__)
    shutil.copytree(src, os.path.join(d, "py", "oci2bin"), ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(bb, os.path.join(d, "bb"))
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": d,
        "XDG_CACHE_HOME": os.path.join(d, "cache"),
        "PYTHONPATH": os.path.join(d, "py"),
        "TMPDIR": d,
    }
    yield d, pw, py, env
    _reap(env["XDG_CACHE_HOME"])
    time.sleep(0.3)
    shutil.rmtree(d, ignore_errors=True)


def test_exec_as_tester(tester_dir):
    d, pw, py, env = tester_dir

    def as_tester(*cmd, timeout=120):
        return subprocess.run(
            list(cmd), capture_output=True, text=True, env=env, cwd=d, timeout=timeout, check=False,
            user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
        )  # fmt: skip

    r = as_tester(os.path.join(d, "bb"), "-d", "--name", "mine", "sh", "-c", LOOP)
    if r.returncode != 0 and "namespace" in r.stderr:
        pytest.skip(f"the loader cannot run as tester here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout)
    r = as_tester(py, "-m", "oci2bin", "ps", "--json")
    assert r.returncode == 0, r.stderr
    assert [(c["name"], c["status"], c["pid"]) for c in json.loads(r.stdout)] == [("mine", "running", pid)]
    r = as_tester(
        py,
        "-m",
        "oci2bin",
        "exec",
        "mine",
        "--",
        "sh",
        "-c",
        "id -u; cat /proc/1/cmdline | tr '\\0' ' '; echo",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "0" and "echo started" in r.stdout.splitlines()[1]
    r = as_tester(py, "-m", "oci2bin", "exec", str(pid), "ls", "/")
    assert r.returncode == 0, r.stderr
    r = as_tester(py, "-m", "oci2bin", "stop", "mine")
    assert r.returncode == 0, r.stderr
    assert not _alive(pid)
    assert os.listdir(os.path.join(env["XDG_CACHE_HOME"], "oci2bin", "containers")) == []
