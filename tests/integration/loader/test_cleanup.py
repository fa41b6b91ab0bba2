"""Nothing is left in TMPDIR after normal exit, error, or SIGKILL of the loader (issue 3): a run dir left by
a SIGKILLed loader is removed by the next start at once (its lock is free), not after an age limit."""

from __future__ import annotations

import os
import signal
import time

import pytest


def test_normal_exit_and_error_leave_nothing(runner):
    assert runner.run("--no-cache", "echo", "hi", check=True).stdout == "hi\n"
    assert runner.run("true", check=True).returncode == 0
    assert runner.run("sh", "-c", "exit 7").returncode == 7
    assert runner.run("/no/such/command").returncode == 127
    assert runner.run("--no-such-flag").returncode == 125
    assert runner.tmp_left() == []


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_sigkill_during_setup_is_cleaned_by_next_start(runner, cache):
    flags = [] if cache else ["--no-cache"]
    runner.run(*flags, "true", check=True)  # warm the cache so the kill lands in the per-run set-up
    caught = None
    for attempt in range(200):
        p = runner.popen(*flags, "sleep", "30")
        seen = []
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline and p.poll() is None:
            seen = [n for n in os.listdir(runner.tmp) if n.startswith("oci2bin-run-")]
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=10) == -signal.SIGKILL
        time.sleep(0.05)  # the container (PDEATHSIG) and its mount namespace go away
        left = runner.tmp_left()
        if left:  # killed during set-up: the run dir is still there
            caught = left
            break
    assert caught, "never killed the loader during set-up (run dir removed before the kill every time)"
    assert all(n.startswith("oci2bin-run-") for n in caught), caught
    # The killed container (PID 1 gets SIGKILL via PDEATHSIG) holds the run dir's lock until the kernel has
    # torn it down; wait for that, as a later start would come later anyway.
    deadline = time.monotonic() + 10
    while _procs_with("30") and time.monotonic() < deadline:
        time.sleep(0.05)
    # the next start removes it immediately, and leaves nothing itself
    assert runner.run(*flags, "echo", "ok", check=True).stdout == "ok\n"
    assert runner.tmp_left() == []


def test_live_run_dir_is_not_swept(runner):
    """A concurrent start must not remove a run dir that is still being set up (its lock is held)."""
    p = runner.popen("sleep", "30")
    try:
        for _ in range(5):
            runner.run("true", check=True)
        assert p.poll() is None
    finally:
        p.kill()
        p.wait(timeout=10)
    runner.run("true", check=True)


def _procs_with(arg: str) -> list[int]:
    """Live `sleep ARG` processes (the container's command)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
                stat = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if arg.encode() in cmd and cmd[0].endswith(b"sleep") and stat[0] != "Z":  # not the loader
                out.append(int(d))
    return out


@pytest.mark.parametrize(
    "flags", [[], ["--user", "1000"], ["--init", "--user", "1000"]], ids=["root-in-ctr", "user", "init-user"]
)
def test_sigkill_of_loader_takes_the_container(runner, flags):
    """A user switch clears the parent-death signal; the loader re-arms it, so the container still dies."""
    if runner.user != "root" and f"{runner.user}:" not in open("/etc/subuid").read() and flags:
        pytest.skip("--user needs a subuid range for an unprivileged user")
    marker = f"{os.getpid() % 1000 + 1000}.{len(flags)}"
    p = runner.popen(*flags, "sleep", marker)
    try:
        deadline = time.monotonic() + 20
        while not _procs_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _procs_with(marker), "the container did not start"
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while _procs_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _procs_with(marker), "the container outlived its SIGKILLed loader"
    finally:
        for pid in _procs_with(marker):
            os.kill(pid, signal.SIGKILL)
    runner.run("true", check=True)  # and the next start leaves TMPDIR clean (checked by the fixture)
