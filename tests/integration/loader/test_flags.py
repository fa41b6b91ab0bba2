"""docker-run runtime flags of the loader (SPEC "Running containers" .. "Interactive and TTY mode") on a real
busybox polyglot, as root and as `tester`."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path


def _owned(runner, path: Path) -> Path:
    if runner.user != "root":
        pw = pwd.getpwnam(runner.user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def test_help_lists_every_flag(runner):
    out = runner.run("--help", check=True).stdout
    for flag in [
        "--volume",
        "-v,",
        "--secret",
        "--ssh-agent",
        "--tmpfs",
        "--read-only",
        "--overlay-persist",
        "--init",
        "--net",
        "--dns",
        "--dns-search",
        "--add-host",
        "--ulimit",
        "--cap-drop",
        "--cap-add",
        "--no-seccomp",
        "--tty",
        "--interactive",
        "--detach",
        "--name",
        "--config",
        "--hostname",
        "--env-file",
    ]:
        assert flag in out, flag


def test_volumes(runner):
    vol = runner.base / "vol"
    vol.mkdir(mode=0o755)
    _owned(runner, vol)
    (vol / "in.txt").write_text("host data\n")
    os.chmod(vol / "in.txt", 0o644)
    p = runner.run(
        "-v",
        f"{vol}:/data",
        "-v",
        f"{vol}:/ro:ro",
        "sh",
        "-c",
        "cat /data/in.txt; echo out > /data/out.txt && echo wrote; "
        "echo x > /ro/x 2>/dev/null || echo ro-refused; ls -d /new/deep 2>/dev/null; true",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "host data\nwrote\nro-refused\n"
    assert (vol / "out.txt").read_text() == "out\n"
    # the mount point is created, also for a single file and deep paths
    p = runner.run(
        "-v",
        f"{vol}/in.txt:/etc/deep/f.txt",
        "-v",
        f"{vol}:/new/deep/dir",
        "sh",
        "-c",
        "cat /etc/deep/f.txt; ls /new/deep/dir | grep -c txt",
        check=True,
    )
    assert p.stdout == "host data\n2\n"
    p = runner.run("-v", f"{runner.base}/missing:/x", "true")
    assert p.returncode == 125 and "must exist" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = runner.run("-v", f"{vol}:/a/../b", "true")
    assert p.returncode == 125 and ".." in p.stderr


def test_secret(runner):
    sec = runner.base / "api_key"
    sec.write_text("s3cret\n")
    os.chmod(sec, 0o644)
    _owned(runner, sec)
    p = runner.run(
        "--secret",
        str(sec),
        "--secret",
        f"{sec}:/certs/ca.pem",
        "sh",
        "-c",
        "cat /run/secrets/api_key /certs/ca.pem; echo x > /run/secrets/api_key 2>/dev/null || echo ro; "
        "grep ' /run/secrets/api_key ' /proc/mounts",
        check=True,
    )
    lines = p.stdout.splitlines()
    assert lines[:3] == ["s3cret", "s3cret", "ro"]
    opts = lines[3].split()[3].split(",")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts), lines[3]
    p = runner.run("--secret", str(runner.base), "true")
    assert p.returncode == 125 and "regular file" in p.stderr


def test_tmpfs_and_read_only(runner):
    p = runner.run(
        "--read-only",
        "--tmpfs",
        "/scratch",
        "--tmpfs",
        "/var/cache",
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-writable; touch /scratch/a /var/cache/b /tmp/c && echo ok; "
        "grep -c ' /scratch tmpfs' /proc/mounts",
        check=True,
    )
    assert p.stdout == "ok\n1\n"
    p = runner.run("sh", "-c", "touch /x && echo writable", check=True)
    assert p.stdout == "writable\n"
    assert runner.run("--tmpfs", "relative", "true").returncode == 125


def test_overlay_persist(runner):
    state = runner.base / "state"
    runner.run("--overlay-persist", str(state), "sh", "-c", "echo one > /etc/persisted", check=True)
    p = runner.run("--overlay-persist", str(state), "cat", "/etc/persisted", check=True)
    assert p.stdout == "one\n"
    assert (state / "upper" / "etc" / "persisted").is_file()
    assert runner.run("cat", "/etc/persisted").returncode == 1  # the base image is untouched
    assert runner.run("--no-cache", "--overlay-persist", str(state), "true").returncode == 125


def test_init_reaps_and_forwards(runner):
    # PID 1 is the init, the command its child (not PID 1; extraction threads may have used low PIDs);
    # zombies of orphans are reaped
    p = runner.run(
        "--init",
        "sh",
        "-c",
        "echo $$ $PPID; (sleep 0 &) ; sleep 0.3; "
        "ps -o stat,comm 2>/dev/null | grep -c '^Z' || true; exit 7",
    )
    assert p.returncode == 7, p.stderr
    pid, ppid = p.stdout.splitlines()[0].split()
    assert pid != "1" and ppid == "1"
    assert p.stdout.splitlines()[1] == "0"
    assert runner.run("--init", "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    # SIGTERM to the loader reaches the command through the init (sh has no handler but is not PID 1)
    proc = runner.popen("--init", "sleep", "30", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    # without --init, the command is PID 1
    assert runner.run("sh", "-c", "echo $$", check=True).stdout == "1\n"


def test_net_none_dns_hosts(runner):
    p = runner.run(
        "--net", "none", "sh", "-c", "ls /sys/class/net; ip -o link | grep -c UP; cat /etc/hosts", check=True
    )
    out = p.stdout.splitlines()
    assert out[0] == "lo" and out[1] == "1"
    assert "127.0.0.1\tlocalhost" in out
    p = runner.run(
        "--dns",
        "1.1.1.1",
        "--dns",
        "8.8.8.8",
        "--dns-search",
        "corp.example.com",
        "--add-host",
        "db.internal:10.0.0.5",
        "--add-host",
        "api.local:10.1.2.3",
        "sh",
        "-c",
        "cat /etc/resolv.conf; tail -n 2 /etc/hosts",
        check=True,
    )
    assert "search corp.example.com\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n" in p.stdout
    assert p.stdout.endswith("10.0.0.5\tdb.internal\n10.1.2.3\tapi.local\n")
    assert runner.run("--net", "bogus", "true").returncode == 125
    assert runner.run("--dns", "not-an-ip", "true").returncode == 125


def test_ulimit(runner):
    p = runner.run(
        "--ulimit",
        "nofile=256",
        "--ulimit",
        "nproc=50:60",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu",
        check=True,
    )
    assert p.stdout.split() == ["256", "256", "50", "60"]
    assert runner.run("--ulimit", "bogus=1", "true").returncode == 125


def _caps(text: str) -> dict:
    return {k: int(v, 16) for k, v in (ln.split(":\t") for ln in text.splitlines() if ln.startswith("Cap"))}


def test_capabilities(runner):
    p = runner.run(
        "--cap-drop",
        "all",
        "--cap-add",
        "net_bind_service",
        "sh",
        "-c",
        "grep ^Cap /proc/self/status",
        check=True,
    )
    caps = _caps(p.stdout)
    assert caps["CapEff"] == caps["CapBnd"] == 1 << 10
    p = runner.run(
        "--cap-drop",
        "CAP_NET_RAW",
        "--cap-drop",
        "Chown",
        "sh",
        "-c",
        "grep ^Cap /proc/self/status",
        check=True,
    )
    caps = _caps(p.stdout)
    assert not caps["CapBnd"] & (1 << 13 | 1 << 0) and caps["CapBnd"] & (1 << 10)
    if runner.user == "root" or Path("/etc/subuid").read_text().find(f"{runner.user}:") >= 0:
        p = runner.run(
            "--user",
            "1000",
            "--cap-add",
            "net_bind_service",
            "sh",
            "-c",
            "id -u; grep ^Cap /proc/self/status",
        )
        assert p.returncode == 0 and not p.stderr, p.stderr
        lines = p.stdout.splitlines()
        assert lines[0] == "1000"
        caps = _caps("\n".join(lines[1:]))
        assert caps["CapAmb"] == caps["CapEff"] == 1 << 10, "--cap-add is ambient for a non-root user"
    assert runner.run("--cap-add", "wizardry", "true").returncode == 125


def test_seccomp(runner):
    p = runner.run("sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; reboot -f; echo after=$?")
    assert p.returncode == 0
    assert "Seccomp:\t2" in p.stdout and "NoNewPrivs:\t1" in p.stdout and "after=1" in p.stdout
    assert "not permitted" in p.stderr
    p = runner.run("--no-seccomp", "sh", "-c", "grep -E '^Seccomp:' /proc/self/status")
    assert p.stdout == "Seccomp:\t0\n"


def test_stdin_interactive_and_tty(runner):
    assert runner.run("sh", input="echo no\n").stdout == ""  # without -i, stdin is /dev/null
    assert runner.run("-i", "sh", input="echo yes\n").stdout == "yes\n"
    p = runner.run("-t", "sh", "-c", "test -t 0 && test -t 1 && echo tty; tty", input="")
    assert (
        p.returncode == 0 and p.stdout.replace("\r", "") == "tty\n/dev/pts/0\n"
    )  # the container's own devpts
    p = runner.run("-it", "sh", input="echo hi-$((1+2))\nexit 5\n")
    assert p.returncode == 5 and "hi-3\n" in p.stdout  # (text mode turns \r\n into \n)


def test_detach_and_name(runner):
    p = runner.run("-d", "--name", "svc", "sh", "-c", "echo started; sleep 30", timeout=20, check=True)
    pid = int(p.stdout.strip())
    state_dir = runner.home / ".cache" / "oci2bin" / "containers"
    st = json.loads((state_dir / "svc.json").read_text())
    assert st["pid"] == pid and st["status"] == "running" and st["command"][0] == "sh"
    assert runner.run("-d", "--name", "svc", "true").returncode == 125  # name in use
    deadline = time.monotonic() + 10
    while "started" not in (state_dir / "svc.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (state_dir / "svc.log").read_text() == "started\n"
    os.kill(pid, signal.SIGTERM)  # forwarded to the container (sh ignores TERM as PID 1: then SIGKILL)
    time.sleep(0.5)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()
    # a finished named run records its exit code
    p = runner.run("-d", "--name", "short", "--init", "sh", "-c", "exit 3", timeout=20, check=True)
    pid = int(p.stdout.strip())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    st = json.loads((state_dir / "short.json").read_text())
    assert st["status"] == "exited" and st["exit_code"] == 3
    # without --name: prints the PID, output discarded; a setup error is reported with its status
    p = runner.run("-d", "true", timeout=20, check=True)
    assert p.stdout.strip().isdigit()
    p = runner.run("-d", "-v", "/nonexistent:/x", "true", timeout=20)
    assert p.returncode == 125 and "must exist" in p.stderr and not p.stdout


def test_config_file(runner):
    cfg = runner.base / "app.conf"
    cfg.write_text("# defaults\nread-only\nhostname=fromfile\nenv = A=1\nnet=none\n\n")
    os.chmod(cfg, 0o644)
    p = runner.run(
        "--config", str(cfg), "sh", "-c", "hostname; echo $A; touch /x 2>/dev/null || echo ro", check=True
    )
    assert p.stdout == "fromfile\n1\nro\n"
    p = runner.run("--config", str(cfg), "--hostname", "cli", "hostname", check=True)
    assert p.stdout == "cli\n"
    nested = runner.base / "nested.conf"
    nested.write_text(f"config={cfg}\n")
    os.chmod(nested, 0o644)
    p = runner.run("--config", str(nested), "true")
    assert p.returncode == 125 and "not allowed" in p.stderr


def test_ssh_agent(runner):
    import socket

    path = runner.base / "agent.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        s.listen(1)
        _owned(runner, path)
        p = runner.run(
            "--ssh-agent",
            "sh",
            "-c",
            "echo $SSH_AUTH_SOCK; test -S /run/ssh-agent.sock && echo sock; "
            "grep -c ' /run/ssh-agent.sock .* ro,' /proc/mounts",
            env={"SSH_AUTH_SOCK": str(path)},
            check=True,
        )
        assert p.stdout == "/run/ssh-agent.sock\nsock\n1\n"
    p = runner.run(
        "--ssh-agent",
        "sh",
        "-c",
        "echo [$SSH_AUTH_SOCK]",
        env={"SSH_AUTH_SOCK": str(runner.base)},
        check=True,
    )
    assert p.stdout == "[]\n" and "running without agent forwarding" in p.stderr
