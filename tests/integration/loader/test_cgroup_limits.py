"""--memory, --cpus, --pids-limit: hard limits through a cgroup of the container's own, as root and as `tester`.

On this kind of machine (hybrid layout: cgroup v1 controllers, an empty cgroup v2 at /sys/fs/cgroup/unified) root gets
cgroup v1 dirs `oci2bin-<random>` under its own memory/cpu/pids cgroups, and `tester` (no writable cgroup) gets one
clear error, exit 125, nothing made. The limits are checked by their effect (OOM kill, failing fork) and, for --cpus,
by the quota written in the container's cgroup as the host sees it (not by timing). The cgroups are gone after exit,
and after a SIGKILL of the loader the next start removes them (their paths are recorded in the run dir)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.loader.conftest import TESTER, Runner

MARK = "4711"  # the container's `sleep` argument, to find it among the host's processes


def _mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """cgroup mounts from mountinfo: v1 {controller: (root, mountpoint)} and the v2 (root, mountpoint)."""
    v1, v2 = {}, None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        dash = f.index("-")
        fstype, sopts = f[dash + 1], f[dash + 3]
        if fstype == "cgroup2" and v2 is None:
            v2 = (f[3], f[4])
        elif fstype == "cgroup":
            for c in sopts.split(","):
                v1.setdefault(c, (f[3], f[4]))
    return v1, v2


def _host_dir(root: str, mnt: str, path: str) -> Path:
    rel = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(mnt + (rel if rel != "/" else ""))


def _cgroup_dirs(pid: int | str = "self") -> dict[str, Path]:
    """The cgroup dirs of a process: {"memory"/"cpu"/"pids": v1 dir, "v2": v2 dir}, as this (host) process sees them."""
    v1, v2 = _mounts()
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hier, ctrls, path = line.split(":", 2)
        if hier == "0" and not ctrls and v2:
            out["v2"] = _host_dir(*v2, path)
        for c in ctrls.split(","):
            if c in ("memory", "cpu", "pids") and c in v1:
                out[c] = _host_dir(*v1[c], path)
    return out


def _layout() -> str:
    """ "v2" when this process's cgroup v2 offers memory, cpu and pids; else "v1"."""
    d = _cgroup_dirs().get("v2")
    ctrls = (
        (d / "cgroup.controllers").read_text().split() if d and (d / "cgroup.controllers").exists() else []
    )
    return "v2" if {"memory", "cpu", "pids"} <= set(ctrls) else "v1"


def _ours() -> set[Path]:
    """oci2bin-* cgroups next to this process's own (where the loader makes the container's)."""
    found = set()
    for d in _cgroup_dirs().values():
        if d.is_dir():
            found |= {p for p in d.iterdir() if p.name.startswith("oci2bin-")}
    return found


def _container_pid(loader: int, timeout: float = 20) -> int:
    """The host pid of the container's `sleep MARK`, once it is exec'd (not the loader's own process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != loader:
                try:
                    cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if cmd[0].endswith(b"sleep") and MARK.encode() in cmd:
                    return int(d)
        time.sleep(0.02)
    raise AssertionError("the container's sleep never started")


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _runner(busybox, workdir, user: str):
    r = Runner(busybox, user, workdir)
    yield r
    left = r.tmp_left()
    shutil.rmtree(r.base, ignore_errors=True)
    assert not left, f"left in TMPDIR: {left}"


@pytest.fixture
def root_runner(busybox, workdir):
    yield from _runner(busybox, workdir, "root")


@pytest.fixture
def tester_runner(busybox, workdir):
    if _layout() == "v2":
        pytest.skip("pure cgroup v2 here: whether tester may write its cgroup depends on systemd delegation")
    yield from _runner(busybox, workdir, TESTER)


# ---- flag values (no cgroup needed) ----

BAD = [
    (["--memory", "5m"], "--memory 5m is below the minimum of 6m"),
    (["--memory", "12x"], "--memory 12x is not a size"),
    (["--memory", "-1"], "--memory -1 is not a size"),
    (["--memory", "99999999999g"], "--memory 99999999999g is too large"),
    (["--cpus", "abc"], "--cpus abc is not a number of CPUs"),
    (["--cpus", "0.001"], "--cpus 0.001 is below 0.01"),
    (["--cpus", "100000"], "--cpus 100000 is more than the"),
    (["--pids-limit", "-2"], "--pids-limit -2 is not a process count"),
    (["--pids-limit", "ten"], "--pids-limit ten is not a process count"),
    (["--pids-limit", "99999999"], "--pids-limit 99999999 is above the kernel's maximum"),
]


@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_are_one_line_errors(runner, args, msg):
    before = _ours()
    p = runner.run(*args, "true")
    assert p.returncode == 125, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("oci2bin: ") and msg in p.stderr, p.stderr
    assert _ours() == before


def test_no_limit_values_need_no_cgroup(runner):
    """0 (and -1 for --pids-limit) mean no limit, as in docker: they run even where no cgroup is writable."""
    for args in (["--memory", "0"], ["--cpus", "0"], ["--pids-limit", "-1"], ["--pids-limit", "0"]):
        assert runner.run(*args, "echo", "ok", check=True).stdout == "ok\n"


def test_help_lists_the_flags(runner):
    out = runner.run("--help", check=True).stdout
    for flag in ("--memory SIZE", "--cpus N", "--pids-limit N"):
        assert flag in out


def test_config_file_keys(runner):
    cfg = runner.base / "limits.conf"
    cfg.write_text("# limits\nmemory = 5m\n")
    cfg.chmod(0o644)
    p = runner.run("--config", str(cfg), "true")
    assert p.returncode == 125 and "--memory 5m is below the minimum" in p.stderr, p.stderr
    cfg.write_text("cpus=0\npids-limit=-1\nmemory=0\n")
    assert runner.run("--config", str(cfg), "echo", "ok", check=True).stdout == "ok\n"


# ---- root: the limits take effect ----


def test_memory_limit_oom_kills(root_runner):
    hog = ["sh", "-c", "head -c 100m /dev/zero | tail >/dev/null"]  # busybox tail keeps the one 100 MB "line"
    assert root_runner.run(*hog, check=True).returncode == 0
    p = root_runner.run("--memory", "32m", *hog)
    assert p.returncode == 137, (p.returncode, p.stderr)  # tail: SIGKILLed by the OOM killer
    small = root_runner.run("--memory", "32m", "sh", "-c", "head -c 8m /dev/zero | tail | wc -c")
    assert small.returncode == 0 and small.stdout == "8388608\n", small.stderr


def test_config_memory_key_takes_effect(root_runner):
    cfg = root_runner.base / "limits.conf"
    cfg.write_text("memory=32m\n")
    p = root_runner.run("--config", str(cfg), "sh", "-c", "head -c 100m /dev/zero | tail >/dev/null")
    assert p.returncode == 137, p.stderr


def test_pids_limit_makes_fork_fail(root_runner):
    forks = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait"]
    assert root_runner.run(*forks, check=True).returncode == 0
    p = root_runner.run("--pids-limit", "5", *forks)  # sh + 4 sleeps: the 5th fork fails
    assert p.returncode != 0 and "can't fork" in p.stderr, (p.returncode, p.stderr)


def test_limits_are_written_and_removed_at_exit(root_runner):
    before = _ours()
    p = root_runner.popen("--init", "--cpus", "0.5", "--memory", "64m", "--pids-limit", "50", "sleep", MARK)
    try:
        dirs = _cgroup_dirs(_container_pid(p.pid))
        made = {d for d in dirs.values() if d.name.startswith("oci2bin-")}
        assert made and made.isdisjoint(before)
        if _layout() == "v2":
            d = dirs["v2"]
            assert (d / "cpu.max").read_text().split() == ["50000", "100000"]
            assert (d / "memory.max").read_text().strip() == str(64 << 20)
            assert (d / "pids.max").read_text().strip() == "50"
        else:
            assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (dirs["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
            assert (dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
            memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # no swap beyond the limit
                assert memsw.read_text().strip() == str(64 << 20)
            assert (dirs["pids"] / "pids.max").read_text().strip() == "50"
        # the loader itself stays outside the container's cgroups
        assert made.isdisjoint(_cgroup_dirs(p.pid).values())
        # a run dir holds the record while the container runs
        assert [n for n in root_runner.tmp_left() if n.startswith("oci2bin-run-")]
    finally:
        p.send_signal(signal.SIGTERM)  # --init forwards it
        assert p.wait(timeout=20) == 128 + signal.SIGTERM
    assert _ours() == before
    assert root_runner.tmp_left() == []


def test_sigkill_leaves_cgroups_for_the_next_start(root_runner):
    before = _ours()
    p = root_runner.popen("--memory", "64m", "--pids-limit", "50", "sleep", MARK)
    ctr = _container_pid(p.pid)
    made = {d for d in _cgroup_dirs(ctr).values() if d.name.startswith("oci2bin-")}
    assert made
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    _wait_gone(ctr)  # the container dies with its loader (PDEATHSIG, pid namespace)
    assert all(d.is_dir() for d in made)  # nobody removed them yet: the loader was killed
    # the next start, even without limits, removes them with the dead run dir
    assert root_runner.run("echo", "ok", check=True).stdout == "ok\n"
    assert not any(d.exists() for d in made)
    assert _ours() == before
    assert root_runner.tmp_left() == []


# ---- tester: no writable cgroup here ----


def test_unprivileged_without_writable_cgroup_is_a_clear_error(tester_runner):
    before = _ours()
    for args, flags in (
        (["--memory", "32m"], "--memory"),
        (["--cpus", "0.5"], "--cpus"),
        (["--pids-limit", "10"], "--pids-limit"),
        (["--memory", "32m", "--pids-limit", "10"], "--memory/--pids-limit"),
    ):
        p = tester_runner.run(*args, "echo", "never")
        assert p.returncode == 125, (args, p.stderr)
        assert p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
        line = p.stderr.strip()
        assert line.startswith(f"oci2bin: {flags} cannot be enforced: "), line
        assert "Permission denied" in line and "root" in line and "Delegate=yes" in line, line
    assert _ours() == before
    assert tester_runner.tmp_left() == []


# ---- pure cgroup v2 in a microVM ----
# This machine's cgroup v2 holds no controllers (they are bound to v1, and a cgroup2 mount in another mount namespace
# is the same hierarchy), so the v2 path runs in a qemu microVM: Debian's cloud kernel (pure cgroup v2 with memory,
# cpu and pids) and an initramfs with busybox, the polyglot and a script. TCG, not KVM: /dev/kvm here is PVM, which
# does not boot stock kernels (docs/testing.md). Root runs in the root cgroup; uid 1000 runs in a subtree chowned to
# it, as systemd delegation does (user@UID.service).

VM_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
C=/sys/fs/cgroup B=/bb.bin
r() { echo "RESULT $*"; }
waitsleep() { for i in $(seq 300); do P=$(pidof sleep) && break; sleep 0.1; done; }
cgof() { sed -n 's/^0:://p' /proc/$1/cgroup; }
r controllers $(cat $C/cgroup.controllers)
mkdir -p /tmp/root /tmp/cache /tmp/u /tmp/ucache; chown 1000:1000 /tmp/u /tmp/ucache
export TMPDIR=/tmp/root OCI2BIN_CACHE_DIR=/tmp/cache
# root, in the root cgroup (exempt from "no internal processes")
$B sh -c 'head -c 40m /dev/zero | tail >/dev/null'; r root_nolimit $?
$B --memory 16m sh -c 'head -c 40m /dev/zero | tail >/dev/null'; r root_oom $?
$B --pids-limit 5 sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait' 2>/tmp/err; r root_pids $? $(grep -c "can't fork" /tmp/err)
$B --cpus 0.5 --memory 64m --pids-limit 50 sleep 4711 & L=$!
waitsleep; G=$C$(cgof $P)
r root_cg $G
r root_cpu_max $(cat $G/cpu.max)
r root_memory_max $(cat $G/memory.max)
r root_swap_max $(cat $G/memory.swap.max)
r root_pids_max $(cat $G/pids.max)
r root_loader_cg $(cgof $L)
kill -9 $L; wait $L
for i in $(seq 100); do pidof sleep >/dev/null || break; sleep 0.1; done
r root_killed $([ -d $G ] && echo kept || echo gone) $(ls /tmp/root | wc -l)
$B true; r root_next $? $([ -d $G ] && echo kept || echo gone) $(ls /tmp/root | wc -l)
# uid 1000 in a delegated subtree (owned by it, controllers enabled above it)
mkdir $C/deleg && echo "+memory +cpu +pids" > $C/deleg/cgroup.subtree_control && mkdir $C/deleg/s1 $C/deleg/s2
chown -R 1000:1000 $C/deleg
$B true 2>/dev/null
/user_run.sh $C/deleg/s1 --memory 16m sh -c 'head -c 40m /dev/zero | tail >/dev/null' 2>/tmp/err
r user_oom $? $(cat /tmp/err)
r user_s1_after cgroups=$(ls $C/deleg/s1 | grep -c oci2bin-) rundirs=$(ls /tmp/u | wc -l) \
  ctl=$(tr ' ' , < $C/deleg/s1/cgroup.subtree_control) procs=$(cat $C/deleg/s1/cgroup.procs | wc -l)
/user_run.sh $C/deleg/s1 --cpus 0.5 --pids-limit 20 sh -c 'cat /proc/self/cgroup' >/tmp/out 2>/tmp/err
r user_ok $? $(cat /tmp/out /tmp/err) cgroups=$(ls $C/deleg/s1 | grep -c oci2bin-) rundirs=$(ls /tmp/u | wc -l) \
  ctl=$(tr ' ' , < $C/deleg/s1/cgroup.subtree_control)
sleep 300 & S=$!; echo $S > $C/deleg/s2/cgroup.procs
/user_run.sh $C/deleg/s2 --memory 16m true 2>/tmp/err; r user_busy $? $(cat /tmp/err)
kill $S
r user_s1_swept $(ls $C/deleg/s1 | grep -c oci2bin-) rundirs=$(ls /tmp/u | wc -l)
/user_run.sh $C --pids-limit 5 true 2>/tmp/err; r user_root_cg $? $(cat /tmp/err)
# root in a cgroup that holds other processes: the top of the hierarchy instead
mkdir $C/busy; echo $$ > $C/busy/cgroup.procs
$B --init --pids-limit 50 sleep 4711 2>/tmp/err & L=$!
waitsleep; r root_busy_cg $(cgof $P) $(cgof $L) $(cat /tmp/err)
kill $L; wait $L; r root_busy_exit $?
r left $(find $C -name 'oci2bin-*' | wc -l) $(ls /tmp/u /tmp/root | grep -c oci2bin-run)
r done
poweroff -f
"""

USER_RUN = """#!/bin/busybox sh
# moves itself into the cgroup $1, becomes uid 1000 (busybox su: same process) and runs the loader with the rest
cg=$1; shift
echo $$ > $cg/cgroup.procs || exit 99
exec su -s /bin/sh -- u /user_exec.sh "$@"
"""

USER_EXEC = """#!/bin/busybox sh
export TMPDIR=/tmp/u OCI2BIN_CACHE_DIR=/tmp/ucache HOME=/tmp/u
exec /bb.bin "$@"
"""


def _kernel() -> Path:
    """$OCI2BIN_TEST_KERNEL, else Debian's cloud kernel (cached in ~/.cache/oci2bin-rig/kernel, fetched with apt)."""
    if os.environ.get("OCI2BIN_TEST_KERNEL"):
        return Path(os.environ["OCI2BIN_TEST_KERNEL"])
    cache = Path.home() / ".cache" / "oci2bin-rig" / "kernel"
    found = sorted(cache.glob("vmlinuz-*"))
    if found:
        return found[-1]
    dep = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"], capture_output=True, text=True)
    pkgs = [
        ln.split(":", 1)[1].strip() for ln in dep.stdout.splitlines() if ln.strip().startswith("Depends:")
    ]
    if dep.returncode or not pkgs:
        pytest.fail(
            f"no linux-image-cloud-amd64 in apt: set OCI2BIN_TEST_KERNEL to a kernel image\n{dep.stderr}"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as d:
        got = subprocess.run(["apt-get", "download", pkgs[0]], cwd=d, capture_output=True, text=True)
        debs = list(Path(d).glob("*.deb"))
        if got.returncode or not debs:
            pytest.fail(f"apt-get download {pkgs[0]} failed: set OCI2BIN_TEST_KERNEL\n{got.stderr}")
        tar = subprocess.run(
            f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x -C {d} --wildcards './boot/vmlinuz-*'", shell=True
        )
        kernels = list(Path(d, "boot").glob("vmlinuz-*"))
        assert tar.returncode == 0 and kernels, "no vmlinuz in the kernel package"
        os.replace(kernels[0], cache / kernels[0].name)
    return cache / kernels[0].name


@pytest.fixture(scope="module")
def v2_vm(busybox, workdir) -> dict[str, list[str]]:
    """Boots the microVM once; {name: words} of its RESULT lines."""
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu, "qemu-system-x86_64 missing: run tests/rig/install-deps.sh"
    kernel = _kernel()
    root = workdir / "v2-initramfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    shutil.copy(busybox, root / "bb.bin")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/tmp/u:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nu:x:1000:\n")
    for name, text in (("init", VM_INIT), ("user_run.sh", USER_RUN), ("user_exec.sh", USER_EXEC)):
        (root / name).write_text(text)
        (root / name).chmod(0o755)
    initrd = workdir / "v2-initrd.cpio"
    with open(initrd, "wb") as out:
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        subprocess.run(["busybox", "cpio", "-o", "-H", "newc"], cwd=root, input=files, stdout=out, check=True)
    shutil.rmtree(root)
    cmd = [qemu, "-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "2", "-nographic"]
    cmd += ["-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd)]
    cmd += ["-append", "console=ttyS0 tsc_early_khz=2000000 loglevel=1 panic=-1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    initrd.unlink()
    res = {}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            words = line.split()[1:]
            res[words[0]] = words[1:]
    assert (
        "done" in res
    ), f"the VM did not finish its script (exit {p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr}"
    return res


def test_v2_root_limits_take_effect(v2_vm):
    assert {"memory", "cpu", "pids"} <= set(v2_vm["controllers"])
    assert v2_vm["root_nolimit"] == ["0"]
    assert v2_vm["root_oom"] == ["137"]
    assert v2_vm["root_pids"][0] != "0" and int(v2_vm["root_pids"][1]) >= 1  # "can't fork"


def test_v2_root_limits_written(v2_vm):
    (cg,) = v2_vm["root_cg"]
    assert cg.startswith("/sys/fs/cgroup/oci2bin-")
    assert v2_vm["root_cpu_max"] == ["50000", "100000"]
    assert v2_vm["root_memory_max"] == [str(64 << 20)]
    assert v2_vm["root_swap_max"] == ["0"]
    assert v2_vm["root_pids_max"] == ["50"]
    assert v2_vm["root_loader_cg"] == ["/"]  # the loader stays where it was


def test_v2_sigkill_then_next_start_removes(v2_vm):
    assert v2_vm["root_killed"] == ["kept", "1"]  # the cgroup and the run dir holding its record
    assert v2_vm["root_next"] == ["0", "gone", "0"]


def test_v2_delegated_user(v2_vm):
    """uid 1000 alone in its delegated cgroup: the loader moves itself into a leaf (no internal processes), the
    container's cgroup is a sibling; at exit it undoes that (controllers disabled, moved back, leaf removed), so
    a normal exit leaves no cgroup, no enabled controller and no run dir behind."""
    assert v2_vm["user_oom"][0] == "137", " ".join(v2_vm["user_oom"])
    assert v2_vm["user_s1_after"] == ["cgroups=0", "rundirs=0", "ctl=", "procs=0"]
    ok = v2_vm["user_ok"]
    assert ok[0] == "0" and ok[-3:] == ["cgroups=0", "rundirs=0", "ctl="], " ".join(ok)
    assert ok[1:-3] == ["0::/"], " ".join(ok)  # the container sees its own cgroup as / (cgroup namespace)
    busy = " ".join(v2_vm["user_busy"])
    assert busy.startswith(
        "125 oci2bin: --memory cannot be enforced: cgroup /sys/fs/cgroup/deleg/s2 holds other"
    )
    assert "systemd-run --user --scope -p Delegate=yes" in busy
    assert v2_vm["user_s1_swept"] == ["0", "rundirs=0"]
    denied = " ".join(v2_vm["user_root_cg"])
    assert denied.startswith(
        "125 oci2bin: --pids-limit cannot be enforced: cannot create a cgroup in /sys/fs/cgroup"
    )
    assert "Permission denied" in denied
    assert v2_vm["left"] == ["0", "0"]


def test_v2_root_in_a_busy_cgroup_uses_the_top(v2_vm):
    ctr, loader = v2_vm["root_busy_cg"][:2]
    assert loader == "/busy" and ctr.startswith("/oci2bin-"), " ".join(v2_vm["root_busy_cg"])
    assert v2_vm["root_busy_exit"] == ["143"]
