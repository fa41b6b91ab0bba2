"""`oci2bin pod run`: binaries sharing a network and IPC namespace (a pause process joined with the loader's
`--net container:PID` / `--ipc container:PID`), aliases in /etc/hosts, failure propagation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
