"""`oci2bin pod run`: binaries sharing a network and IPC namespace (a pause process joined with the loader's
`--net container:PID` / `--ipc container:PID`), aliases in /etc/hosts, failure propagation."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import oci2bin  # pants: no-infer-dep


@pytest.fixture
def real_loader(loader_path):
    if os.path.basename(os.path.realpath(loader_path)) == "busybox":
        pytest.skip("needs the real loader: set OCI2BIN_TEST_LOADER to a built loader")
    return loader_path


@pytest.fixture
def make(cli, images, tmp_path, real_loader):
    """make(name, shell_command) -> path of a busybox binary whose command is `sh -c shell_command`."""

    def build(name: str, script: str) -> str:
        lay = tmp_path / f"lay-{name}"
        cli(
            "mkimage", "--base", f"oci:{images.bb_oci}", "--entrypoint", '["/bin/sh","-c"]',
            "--cmd", json.dumps([script]), "-o", str(lay), check=True,
        )  # fmt: skip
        cli("assemble", "-q", "--loader", real_loader, "--image", f"oci:{lay}", "--output", name, check=True)
        return str(tmp_path / name)

    return build


def _pod(tmp_path, *args, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(oci2bin.__file__)))
    return subprocess.run(
        [sys.executable, "-m", "oci2bin", "pod", "run", *args],
        capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=timeout, check=False,
    )  # fmt: skip


def test_shared_net_and_alias(make, tmp_path):
    make("srv", "echo pod-ok > /tmp/index.html; httpd -p 127.0.0.1:8080 -h /tmp; sleep 3")
    make("client", "sleep 1; wget -q -O- http://backend:8080/index.html; grep backend /etc/hosts")
    r = _pod(tmp_path, "--net", "shared", "--network-alias", "backend", "./srv", "./client")
    assert r.returncode == 0, r.stderr
    assert "pod-ok" in r.stdout and "127.0.0.1\tbackend" in r.stdout
    # the pod's network is not the host's: nothing listens on the host's 127.0.0.1:8080 afterwards
    assert not _listening(8080)


def test_shared_ipc_and_net_namespaces(make, tmp_path):
    # every container reports its namespaces: one network and one IPC namespace for the pod, not the host's
    make("a", "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; cat /proc/sysvipc/shm | wc -l")
    make("b", "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc")
    r = _pod(tmp_path, "--net", "shared", "--ipc", "shared", "./a", "./b")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    nets = {x for x in lines if x.startswith("net:")}
    ipcs = {x for x in lines if x.startswith("ipc:")}
    assert len(nets) == 1 and len(ipcs) == 1, r.stdout
    assert nets != {os.readlink("/proc/self/ns/net")} and ipcs != {os.readlink("/proc/self/ns/ipc")}


def _listening(port: int) -> bool:
    with open("/proc/net/tcp") as f:
        return any(line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A" for line in f)


def test_failure_stops_the_others(make, tmp_path):
    make("fail", "sleep 0.5; exit 7")
    make("slow", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    t0 = time.monotonic()
    r = _pod(tmp_path, "--net", "shared", "./fail", "./slow")
    assert r.returncode == 7, r.stderr
    assert time.monotonic() - t0 < 10
    assert "./fail exited with status 7" in r.stderr


def test_worst_status_without_shared_namespaces(make, tmp_path):
    make("a", "exit 0")
    make("b", "exit 3")
    r = _pod(tmp_path, "./a", "./b")
    assert r.returncode == 3, r.stderr


def test_sigterm_is_forwarded(make, tmp_path):
    make("w1", "trap 'echo w1-term; exit 0' TERM; while true; do sleep 0.1; done")
    make("w2", "trap 'echo w2-term; exit 0' TERM; while true; do sleep 0.1; done")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(oci2bin.__file__)))
    p = subprocess.Popen(
        [sys.executable, "-m", "oci2bin", "pod", "run", "--net", "shared", "./w1", "./w2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path), env=env,
    )  # fmt: skip
    try:
        time.sleep(3)
        p.terminate()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert sorted(out.split()) == ["w1-term", "w2-term"]


def test_bad_inputs(make, tmp_path):
    ok = make("ok", "true")
    (tmp_path / "plain").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "plain", 0o755)
    (tmp_path / "noexec").write_text("x")
    cases = [
        (("--network-alias", "x", ok), "needs --net shared"),
        (("--net", "shared", "--network-alias", "bad name!", ok), "not a valid host name"),
        (("./missing",), "no such file"),
        (("./noexec",), "not executable"),
        (("./plain",), "not an oci2bin binary"),
        (("--net", "bogus", ok), "invalid choice"),
        ((), "required"),
    ]
    before = sorted(os.listdir(tmp_path))
    for args, text in cases:
        r = _pod(tmp_path, *args)
        assert r.returncode != 0, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("oci2bin: ") and text in lines[0], (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == before


# ------------------------------------------------------------------------------------------- as the tester
TESTER = os.environ.get("OCI2BIN_TEST_USER", "tester")
SHM_KEY = 0x0C12B2


def _tester_python(user: str) -> str:
    """An interpreter the tester may run (this one may live under root's home)."""
    for py in (os.path.realpath(sys.executable), "/usr/bin/python3"):
        r = subprocess.run(
            ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "env", "-i", py, "-c", "pass"],
            capture_output=True, check=False,
        )  # fmt: skip
        if r.returncode == 0:
            return py
    pytest.skip(f"no Python interpreter here that {user} may run")


@pytest.fixture
def tester_dir():
    """A directory the tester owns (pytest's tmp_path is root's, mode 0700), with TMPDIR, cache and HOME."""
    if os.geteuid() != 0:
        pytest.skip("switching to the tester needs root")
    try:
        pw = pwd.getpwnam(TESTER)
    except KeyError:
        pytest.fail(f"user {TESTER!r} missing: run tests/rig/install-deps.sh")
    base = tempfile.mkdtemp(prefix="oci2bin-pod-tester-", dir="/var/tmp")
    try:
        os.chmod(base, 0o755)
        for d in ("tmp", "cache", "home"):
            os.mkdir(os.path.join(base, d))
        # the CLI itself: the test's sources may sit in a directory the tester cannot read (a Pants sandbox)
        shutil.copytree(os.path.dirname(oci2bin.__file__), os.path.join(base, "py", "oci2bin"))
        for root, dirs, files in os.walk(base):
            for n in (root, *(os.path.join(root, x) for x in dirs + files)):
                os.chown(n, pw.pw_uid, pw.pw_gid)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _processes_in_net_ns(ns: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/ns/net") == ns:
                    found.append(int(d))
            except OSError:
                pass
    return found


def test_shared_net_and_ipc_as_tester(make, tmp_path, tester_dir):
    """`pod run --net shared --ipc shared` by the unprivileged tester: the server and the client see one network
    and one IPC namespace (the pause process's, not the host's), reach each other on 127.0.0.1, see a SysV
    segment made in the pause's IPC namespace; the worst status wins; nothing is left behind."""
    wait_shm = (
        f"i=0; until grep -q '^ *{SHM_KEY} ' /proc/sysvipc/shm; do i=$((i+1)); "
        "[ $i -gt 400 ] && exit 9; sleep 0.05; done"
    )
    show = "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc"
    make(
        "srv",
        f"{show}; echo pod-ok > /tmp/index.html; httpd -p 127.0.0.1:8080 -h /tmp; {wait_shm}; echo srv-shm; "
        "trap 'echo srv-term; exit 7' TERM; i=0; while [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done",
    )
    make(
        "client",
        f"{show}; {wait_shm}; echo client-shm; i=0; "
        "until wget -q -O- http://127.0.0.1:8080/index.html; do i=$((i+1)); [ $i -gt 100 ] && exit 8; "
        "sleep 0.1; done; exit 2",
    )
    pw = pwd.getpwnam(TESTER)
    for b in ("srv", "client"):
        shutil.copy(tmp_path / b, os.path.join(tester_dir, b))
        os.chown(os.path.join(tester_dir, b), pw.pw_uid, pw.pw_gid)
        os.chmod(os.path.join(tester_dir, b), 0o755)
    py = _tester_python(TESTER)
    tmpdir = os.path.join(tester_dir, "tmp")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "TMPDIR": tmpdir,
        "HOME": os.path.join(tester_dir, "home"),
        "OCI2BIN_CACHE_DIR": os.path.join(tester_dir, "cache"),
        "XDG_CACHE_HOME": os.path.join(tester_dir, "home", ".cache"),
        "PYTHONPATH": os.path.join(tester_dir, "py"),
    }
    cmd = ["setpriv", f"--reuid={TESTER}", f"--regid={TESTER}", "--init-groups", "env", "-i"]
    cmd += [f"{k}={v}" for k, v in env.items()]
    cmd += [py, "-m", "oci2bin", "pod", "run", "--net", "shared", "--ipc", "shared", "./srv", "./client"]
    p = subprocess.Popen(cmd, cwd=tester_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # setpriv and env exec: p.pid is the CLI. Its pause process is the child that runs PAUSE.
        deadline = time.monotonic() + 30
        pause = None
        while pause is None and time.monotonic() < deadline and p.poll() is None:
            pause = next((c for c in _children(p.pid) if "prctl" in _cmdline(c)), None)
            time.sleep(0.05)
        assert pause is not None, p.communicate(timeout=30)
        assert os.stat(f"/proc/{pause}").st_uid == pw.pw_uid  # really unprivileged
        pod_net, pod_ipc = os.readlink(f"/proc/{pause}/ns/net"), os.readlink(f"/proc/{pause}/ns/ipc")
        # root makes a SysV segment in the pause's IPC namespace: both containers must see it
        mk = f"import ctypes; print(ctypes.CDLL(None, use_errno=True).shmget({SHM_KEY}, 4096, 0o1666))"
        r = subprocess.run(
            ["nsenter", f"--target={pause}", "--ipc", sys.executable, "-c", mk],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0 and int(r.stdout) >= 0, r.stderr
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    lines = out.split()
    assert "pod-ok" in lines and {"srv-shm", "client-shm", "srv-term"} <= set(lines), (out, err)
    assert {x for x in lines if x.startswith("net:")} == {pod_net} != {os.readlink("/proc/self/ns/net")}
    assert {x for x in lines if x.startswith("ipc:")} == {pod_ipc} != {os.readlink("/proc/self/ns/ipc")}
    # the client failed first (2); the server, stopped because of it, exited 7 from its trap: the worst wins
    assert p.returncode == 7, err
    assert "./client exited with status 2" in err and "./srv exited with status 7" in err, err
    # nothing left: no process in the pod's network namespace (pause, loaders, httpd), an empty TMPDIR
    deadline = time.monotonic() + 5
    while _processes_in_net_ns(pod_net) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_in_net_ns(pod_net), [_cmdline(x) for x in _processes_in_net_ns(pod_net)]
    assert os.listdir(tmpdir) == []
