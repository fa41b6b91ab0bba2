"""Networking flags of the loader (SPEC "Userspace networking with slirp4netns or pasta", "Sharing namespaces
between containers") on a real busybox polyglot, as root and as `tester`, with the real slirp4netns and pasta.

/dev/net/tun: slirp4netns and pasta open it inside the container's namespaces with the caller's credentials. On
most distributions it is mode 0666; on this machine it is 0600 root. The tester runs therefore get a private
mount namespace in which a 0666 node of the same device is bound over /dev/net/tun (what those distributions
have), and one test checks the loader's error with the real 0600 node.

Reaching the host: the helpers run with --disable-host-loopback / --no-map-gw, so 10.0.2.2 does not lead to the
host's 127.0.0.1; the container reaches host services on the host's own (non-loopback) address."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HELPERS = {"slirp": "slirp4netns", "pasta": "pasta"}
PAYLOAD = "hello-from-the-host"


def _tester_can_use_tun(runner) -> bool:
    pw = pwd.getpwnam(runner.user)
    st = os.stat("/dev/net/tun")
    return bool(st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IROTH) or st.st_uid == pw.pw_uid


@pytest.fixture(scope="module")
def tun_node(workdir) -> Path:
    """A 0666 character device node for /dev/net/tun (bound over the real one in a private mount namespace)."""
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun on this machine (tun module not loaded)")
    node = workdir / "tun"
    if not node.exists():
        os.mknod(node, stat.S_IFCHR | 0o666, os.stat("/dev/net/tun").st_rdev)
        os.chmod(node, 0o666)
    return node


def _argv(runner, tun_node, args: list[str], env: dict | None = None) -> list[str]:
    argv = runner.argv(args, env)
    if runner.user == "root" or _tester_can_use_tun(runner):
        return argv
    # unshare and sh exec: the loader keeps this process's PID (tests signal it)
    script = 'mount --bind "$0" /dev/net/tun && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(tun_node), *argv]


def net_run(runner, tun_node, *args: str, timeout: float = 60, env: dict | None = None):
    return subprocess.run(
        _argv(runner, tun_node, list(args), env), capture_output=True, text=True, timeout=timeout,
        env=runner.env(env), cwd=str(runner.base),
    )  # fmt: skip


def net_popen(runner, tun_node, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        _argv(runner, tun_node, list(args), env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=runner.env(env), cwd=str(runner.base),
    )  # fmt: skip


def _host_address() -> str:
    """The host's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
        except OSError:
            pytest.skip("this machine has no IPv4 default route: nothing but loopback to reach")
        addr = s.getsockname()[0]
    if addr.startswith("127."):
        pytest.skip("this machine has only a loopback address")
    return addr


class Server:
    """A TCP server on the host: sends PAYLOAD to every client, then closes."""

    def __init__(self, host: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with c:
                c.sendall(PAYLOAD.encode() + b"\n")

    def close(self):
        self.sock.close()


@pytest.fixture
def servers():
    made = []

    def make(host: str) -> Server:
        made.append(Server(host))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _children(pid: int) -> dict[int, str]:
    """{child pid: comm} of pid."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            out[int(d.name)] = comm
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its new parent to reap it)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


def _wait(cond, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _helper_of(loader_pid: int, mode: str) -> int:
    # Debian's pasta re-executes itself as passt.avx2 on CPUs with AVX2 (same process)
    names = ("slirp4netns",) if mode == "slirp" else ("pasta", "passt")
    return _wait(
        lambda: next((p for p, c in _children(loader_pid).items() if c.startswith(names)), 0),
        what=f"{HELPERS[mode]} to start",
    )


def _http_get(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data.decode(errors="replace")
    except OSError:
        return ""


def _stop_detached(pid: int):
    os.kill(pid, signal.SIGTERM)
    try:
        _wait(lambda: not _alive(pid), timeout=5, what="the detached loader to stop")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not _alive(pid), what="the detached loader to die")


def _container_of(loader_pid: int) -> int:
    """The container's PID 1: the loader's child in another user namespace."""
    mine = os.readlink("/proc/self/ns/user")
    for p in _children(loader_pid):
        try:
            if os.readlink(f"/proc/{p}/ns/user") != mine:
                return p
        except OSError:
            pass
    raise AssertionError(f"no container process under loader {loader_pid}")


def test_help_lists_the_network_flags(runner):
    out = runner.run("--help", check=True).stdout
    for text in ["-p, --publish", "--ipc container:PID", "slirp[:PORTS]", "pasta[:PORTS]", "container:PID"]:
        assert text in out, text


@pytest.mark.parametrize("mode", ["slirp", "pasta"])
def test_private_network_with_outbound_tcp(runner, tun_node, servers, mode):
    host = _host_address()
    public = servers("0.0.0.0")
    loopback_only = servers("127.0.0.1")
    script = (
        "readlink /proc/self/ns/net; ip -4 -o addr show tap0; ip route; cat /etc/resolv.conf; "
        f"timeout 5 nc {host} {public.port} </dev/null | head -n 1; "
        f"timeout 3 nc 10.0.2.2 {loopback_only.port} </dev/null | grep -q {PAYLOAD} && echo HOST-LOOPBACK-REACHED; "
        "echo end"
    )
    p = net_run(runner, tun_node, "--net", mode, "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.splitlines()[0] != os.readlink("/proc/self/ns/net")  # not the host's network namespace
    assert "inet 10.0.2.100/24" in out and "tap0" in out
    assert "default via 10.0.2.2 dev tap0" in out
    assert "nameserver 10.0.2.3" in out
    assert PAYLOAD in out and public.accepted >= 1  # outbound TCP to the host's address
    assert "HOST-LOOPBACK-REACHED" not in out and loopback_only.accepted == 0
    assert out.rstrip().endswith("end")


@pytest.mark.parametrize("mode", ["slirp", "pasta"])
def test_publish_and_helper_cleanup(runner, tun_node, mode):
    port = _free_port()
    net = [] if mode == "slirp" else ["--net", "pasta"]  # -p alone implies --net slirp
    script = "mkdir /w && echo published-ok > /w/index.html && exec httpd -f -p 8080 -h /w"
    # --init: PID 1 (httpd) would ignore the forwarded SIGTERM
    proc = net_popen(runner, tun_node, *net, "--init", "-p", f"{port}:8080", "sh", "-c", script)
    try:
        helper = _helper_of(proc.pid, mode)
        reply = _wait(
            lambda: "published-ok" in _http_get(port) and _http_get(port), what="the published port"
        )
        assert "200 OK" in reply
        assert _alive(helper)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _alive(helper), f"{HELPERS[mode]} {helper} outlived the container"
    assert _http_get(port) == ""  # the forward is gone with it
    # a forward to a container port with nothing listening is refused, not a hang
    p = net_run(
        runner, tun_node, *net, "-p", f"{_free_port()}:9/udp", "-p", f"127.0.0.1:{_free_port()}:9", "true"
    )
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("mode", ["slirp", "pasta"])
def test_helper_dies_with_a_killed_loader(runner, tun_node, mode):
    proc = net_popen(runner, tun_node, "--net", mode, "sleep", "60")
    try:
        helper = _helper_of(proc.pid, mode)
        # the loader removes its run directory right after the exec: the kill below leaves nothing behind
        _wait(lambda: _comm(_container_of(proc.pid)) == "sleep", what="the command to start")
        _wait(lambda: not runner.tmp_left(), what="the run directory to be removed")
        proc.kill()  # SIGKILL: no clean-up code runs in the loader
        proc.wait()
        _wait(
            lambda: not _alive(helper),
            timeout=10,
            what=f"{HELPERS[mode]} to exit after the loader was killed",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


SLOW_HELPER = """#!/usr/bin/python3
# the real helper, started late: one process (no child left behind when it is killed while it sleeps)
import os, sys, time
time.sleep(30)
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
@pytest.mark.parametrize("mode", ["slirp", "pasta"])
def test_stop_signal_while_the_helper_configures_the_network(runner, tun_node, workdir, mode, sig):
    """SIGTERM/SIGINT/SIGHUP while the loader waits for the helper to configure tap0 (up to 30 s) abandon the start:
    128+N at once, the helper and the container's process gone, nothing in TMPDIR, no message."""
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no /usr/bin/python3 for the delayed helper script")
    name = HELPERS[mode]
    slow = workdir / f"slow-{runner.user}"
    slow.mkdir(mode=0o755, exist_ok=True)
    script = slow / name
    script.write_text(SLOW_HELPER.format(real=f"/usr/bin/{name}"))
    script.chmod(0o755)
    path = f"{slow}:{runner.env()['PATH']}"
    proc = net_popen(runner, tun_node, "--net", mode, "echo", "STARTED", env={"PATH": path})
    try:
        helper = _helper_of(proc.pid, mode)
        container = _wait(lambda: _container_of(proc.pid), what="the container's process")
        assert Path(f"/proc/{helper}/cmdline").read_bytes().split(b"\0")[1] == str(script).encode()
        time.sleep(0.5)  # well into the wait (the helper sleeps 30 s before it execs the real one)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert took < 5, f"the loader took {took:.1f} s to stop"
    assert out == "" and err == ""  # the command never ran; an interrupt is no error
    assert not _alive(helper), f"the {name} helper {helper} outlived the loader"
    assert not _alive(container), f"the container's process {container} outlived the loader"
    assert runner.tmp_left() == []


@pytest.mark.parametrize("mode", ["slirp", "pasta"])
def test_helper_gets_no_stray_descriptors(runner, tun_node, mode):
    """The helper's stdin is /dev/null; no other copy of it (or of anything else the loader opened to set the
    helper up) stays open in the long-lived helper."""
    proc = net_popen(runner, tun_node, "--net", mode, "sleep", "60")
    try:
        helper = _helper_of(proc.pid, mode)
        _wait(lambda: _comm(_container_of(proc.pid)) == "sleep", what="the command to start")
        fds = {}
        for fd in Path(f"/proc/{helper}/fd").iterdir():
            try:
                fds[int(fd.name)] = os.readlink(fd)
            except OSError:
                pass
        assert fds.get(0) == "/dev/null", fds
        assert [n for n, target in fds.items() if target == "/dev/null" and n != 0] == [], fds
    finally:
        proc.kill()
        proc.wait()


def test_net_container_shares_interfaces_and_ports(runner):
    script = "mkdir /w && echo joined-ok > /w/index.html && exec httpd -f -p 127.0.0.1:8080 -h /w"
    p = runner.run("--net", "none", "-d", "sh", "-c", script, timeout=30, check=True)
    loader = int(p.stdout.strip())
    try:
        target = _container_of(loader)
        get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc 127.0.0.1 8080"
        for pid in (loader, target):  # the PID printed by --detach, or the container's PID 1
            q = runner.run(
                "--net", f"container:{pid}", "sh", "-c", f"readlink /proc/self/ns/net; ip -o link | wc -l; {get}"
            )  # fmt: skip
            assert q.returncode == 0, q.stderr
            lines = q.stdout.splitlines()
            assert lines[0] == os.readlink(f"/proc/{target}/ns/net")
            assert lines[1] == "1"  # only the target's lo
            assert "joined-ok" in q.stdout  # its service on its loopback
        # the service is not on the host's loopback
        assert _http_get(8080) == "" or "joined-ok" not in _http_get(8080)
    finally:
        _stop_detached(loader)


def _pid_ns_child(loader_pid: int) -> int:
    """The container side of a loader: its child that makes children in another PID namespace."""
    mine = os.readlink("/proc/self/ns/pid_for_children")
    for p in _children(loader_pid):
        try:
            if os.readlink(f"/proc/{p}/ns/pid_for_children") != mine:
                return p
        except OSError:
            pass
    return 0


def test_net_container_of_a_pasta_loader_after_a_pid_wrap(runner, tun_node):
    """pasta runs as the loader's child inside the container's user namespace (but in the host's network
    namespace). When PIDs wrap between the container's start and pasta's, pasta comes first in /proc: joining
    the loader's PID must still join the container's network namespace, not pasta's (the host's)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for back in range(2, 40, 2):  # the loader's own forks before the container's clone vary with the runner
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid_max - back))
        p = net_run(runner, tun_node, "--net", "pasta", "-d", "sleep", "60", timeout=30)
        assert p.returncode == 0, p.stderr
        loader = int(p.stdout.strip())
        try:
            helper = _helper_of(loader, "pasta")
            target = _wait(lambda: _pid_ns_child(loader), what="the container")
            if helper > target:
                continue  # no wrap in between this time (other processes took PIDs): try again
            q = runner.run("--net", f"container:{loader}", "readlink", "/proc/self/ns/net")
            assert q.returncode == 0, q.stderr
            assert (
                q.stdout.strip() == os.readlink(f"/proc/{target}/ns/net") != os.readlink("/proc/self/ns/net")
            )
            return
        finally:
            _stop_detached(loader)
    pytest.skip("could not get pasta a lower PID than the container (other processes kept taking PIDs)")


def test_ipc_container_shares_sysv_ipc(runner):
    p = runner.run("--net", "none", "-d", "sleep", "60", timeout=30, check=True)
    loader = int(p.stdout.strip())
    try:
        target = _container_of(loader)
        key = 0x0C12B1
        # a SysV shared-memory segment made in the target's IPC namespace (root enters it from the host)
        mk = f"import ctypes; print(ctypes.CDLL(None, use_errno=True).shmget({key}, 4096, 0o1600))"
        r = subprocess.run(
            ["nsenter", f"--target={target}", "--ipc", sys.executable, "-c", mk],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and int(r.stdout) >= 0, r.stderr
        show = "readlink /proc/self/ns/ipc; cat /proc/sysvipc/shm"
        q = runner.run("--ipc", f"container:{loader}", "sh", "-c", show)
        assert q.returncode == 0, q.stderr
        lines = q.stdout.splitlines()
        assert lines[0] == os.readlink(f"/proc/{target}/ns/ipc")
        assert any(line.split()[0] == str(key) for line in lines[2:]), q.stdout
        # without --ipc the container has an IPC namespace of its own: no such segment
        q = runner.run("sh", "-c", show, check=True)
        assert q.stdout.splitlines()[0] != lines[0]
        assert not any(line.split()[0] == str(key) for line in q.stdout.splitlines()[2:])
        # both at once
        q = runner.run(
            "--net", f"container:{loader}", "--ipc", f"container:{loader}", "cat", "/proc/sysvipc/shm"
        )
        assert q.returncode == 0 and str(key) in q.stdout, q.stderr
    finally:
        _stop_detached(loader)


def _gone_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_errors(runner, tun_node, workdir):
    nohelpers = workdir / f"path-{runner.user}"
    nohelpers.mkdir(exist_ok=True)
    for tool in ("setpriv", "env"):  # what the tester run itself needs; no slirp4netns/pasta
        if not (nohelpers / tool).exists():
            (nohelpers / tool).symlink_to(f"/usr/bin/{tool}")
    gone = _gone_pid()
    cases = [
        (["-p", "80", "true"], "-p 80: expected [IP:]HOST_PORT:CTR_PORT"),
        (["-p", "0:80", "true"], "ports must be numbers from 1 to 65535"),
        (["-p", "8080:99999", "true"], "ports must be numbers from 1 to 65535"),
        (["-p", "8080:80/sctp", "true"], 'unknown protocol "sctp"'),
        (["-p", "1.2.3:8080:80", "true"], '"1.2.3" is not an IPv4 address'),
        (["--net", "host", "-p", "8080:80", "true"], "use --net slirp or --net pasta"),
        (["--net", "none", "-p", "8080:80", "true"], "use --net slirp or --net pasta"),
        (["--net", "slirp:", "true"], "no ports after ':'"),
        (["--net", "slirp:8080", "true"], "--net slirp: 8080: expected"),
        (["--net", "bogus", "true"], "--net bogus is not supported"),
        (["--net", "container:abc", "true"], "expected container:PID"),
        (["--ipc", "host", "true"], "--ipc host: expected container:PID"),
        (["--net", f"container:{gone}", "true"], f"no process {gone}"),
        (["--ipc", f"container:{gone}", "true"], f"no process {gone}"),
    ]
    for args, text in cases:
        p = runner.run(*args)
        assert p.returncode == 125, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("oci2bin: ") and text in lines[0], (args, p.stderr)
    for mode, helper, pkg in (("slirp", "slirp4netns", "slirp4netns"), ("pasta", "pasta", "passt")):
        p = runner.run("--net", mode, "true", env={"PATH": str(nohelpers)})
        assert p.returncode == 125
        assert p.stderr.strip() == (
            f"oci2bin: --net {mode} needs {helper} on PATH: apt install {pkg} (or dnf install {pkg})"
        )
    p = runner.run("-p", "8080:80", "true", env={"PATH": str(nohelpers)})
    assert p.returncode == 125 and "--net slirp needs slirp4netns on PATH" in p.stderr
    # a host port that is taken: clear error, nothing left behind
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for net in (["--net", "slirp"], ["--net", "pasta"]):
            p = net_run(runner, tun_node, *net, "-p", f"{port}:80", "true")
            assert p.returncode == 125, p.stderr
            assert len(p.stderr.strip().splitlines()) == 1 and f"host port {port}" in p.stderr, p.stderr
    if runner.user == "root":
        return
    # the tester cannot join root's namespaces
    p = runner.run("--net", "container:1", "true")
    assert (
        p.returncode == 125 and "cannot open its network namespace" in p.stderr and "another user" in p.stderr
    )
    if _tester_can_use_tun(runner):
        pytest.skip("/dev/net/tun is usable by the tester here: the 0600 case cannot be shown")
    p = runner.run("--net", "slirp", "true")  # this machine's real 0600 /dev/net/tun
    assert p.returncode == 125
    assert p.stderr.strip() == (
        "oci2bin: --net slirp needs read/write access to /dev/net/tun: Permission denied: run as root, or have "
        "an administrator make it mode 0666 (the usual mode)"
    )
