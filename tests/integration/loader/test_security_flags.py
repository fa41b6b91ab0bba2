"""--seccomp-profile / --security-opt / --device on a real busybox polyglot, as root and as tester.

Profiles are Docker's JSON format compiled by the loader itself (no libseccomp); the big-profile case uses the
Docker-format profile that podman's containers-common package ships (tests/rig/install-deps.sh installs podman)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

CONTAINERS_PROFILE = Path("/usr/share/containers/seccomp.json")


def profile(r, name: str, data) -> str:
    """Writes a profile the run's user can read; returns its path."""
    p = r.base / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    p.chmod(0o644)
    return str(p)


def one_error(p, pattern: str) -> None:
    """Exit 125 with exactly one `oci2bin: ...` line matching pattern."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 125, (p.returncode, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("oci2bin: "), p.stderr
    assert re.search(pattern, lines[0]), lines[0]


def status_field(out: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(\S+)", out, re.M)
    assert m, out
    return m.group(1)


DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    ],
}


# ------------------------------------------------------------------------------------------ seccomp profiles


def test_profile_denies_mkdir_with_eperm_and_allows_the_rest(runner):
    prof = profile(runner, "deny-mkdir.json", DENY_MKDIR)
    p = runner.run("--seccomp-profile", prof, "sh", "-c", "echo before; mkdir /tmp/x; echo rc=$?")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["before", "rc=1"], p.stdout
    assert "Operation not permitted" in p.stderr
    # same profile through docker's spelling; without it mkdir works
    p = runner.run("--security-opt", f"seccomp={prof}", "mkdir", "/tmp/x")
    assert p.returncode == 1 and "Operation not permitted" in p.stderr, p.stderr
    runner.run("mkdir", "/tmp/x", check=True)


def test_unknown_syscall_names_are_skipped_and_listed_with_debug(runner):
    prof = profile(runner, "deny-mkdir.json", DENY_MKDIR)
    p = runner.run("--debug", "--seccomp-profile", prof, "true")
    assert p.returncode == 0, p.stderr
    assert re.search(r'syscall "no_such_syscall" does not exist on this architecture: skipped', p.stderr)
    assert re.search(r"seccomp profile .*: 2 rules, \d+ BPF instructions", p.stderr), p.stderr


def test_args_conditions_eq_gt_masked_and_64bit_values(runner):
    """kill(pid, sig) with rules on argument 1: each signal hits exactly the rule meant for it."""

    def rule(errno, *args):
        return {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": list(args)}

    def arg(op, value, two=0):
        return {"index": 1, "value": value, "valueTwo": two, "op": f"SCMP_CMP_{op}"}

    prof = profile(
        runner,
        "kill.json",
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                rule(13, arg("EQ", 10)),  # SIGUSR1 -> EACCES
                rule(28, arg("EQ", (1 << 32) + 12)),  # high word differs: SIGUSR2 must pass
                rule(1, arg("GT", 30)),  # 31 -> EPERM
                rule(22, arg("MASKED_EQ", 3, 3), arg("LT", 16)),  # SIGQUIT (3) -> EINVAL; SIGHUP (1) passes
                rule(33, arg("NE", 0), arg("LE", 2)),  # SIGHUP (1), SIGINT (2) -> EDOM; 0 passes
            ],
        },
    )
    script = (
        'trap "" 1 2 3 10 12 31; for s in 0 1 2 3 10 12 31; do kill -$s $$ 2>/dev/null; echo "$s=$?"; done'
    )
    p = runner.run("--seccomp-profile", prof, "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    got = dict(line.split("=") for line in p.stdout.split())
    # 0 and 12 allowed; 1 and 2 hit the NE/LE rule; 3 the masked one; 10 EQ; 31 GT
    assert got == {"0": "0", "1": "1", "2": "1", "3": "1", "10": "1", "12": "0", "31": "1"}, got
    p = runner.run(
        "--seccomp-profile", prof, "sh", "-c", "trap '' 1 2 3 10 31; kill -10 $$; kill -31 $$; kill -3 $$"
    )
    assert "Permission denied" in p.stderr and "Operation not permitted" in p.stderr, p.stderr
    assert "Invalid argument" in p.stderr, p.stderr


def test_kill_process_action(runner):
    prof = profile(
        runner,
        "kill-mkdir.json",
        {**DENY_MKDIR, "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]},
    )
    p = runner.run("--seccomp-profile", prof, "mkdir", "/tmp/x")
    assert p.returncode == 128 + 31, (p.returncode, p.stderr)  # SIGSYS


def test_default_action_errno_with_default_errno_ret(runner):
    """An allow-list profile (the SPEC's shape): what is not listed fails with defaultErrnoRet."""
    prof = profile(
        runner, "allow-list.json", {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": []}
    )
    p = runner.run("--seccomp-profile", prof, "true", timeout=30)
    # even execve is refused: 126, a command that cannot be run (its message cannot be written: write is refused
    # too), and the process still ends (exit/exit_group are always allowed)
    assert p.returncode == 126, (p.returncode, p.stderr)


@pytest.mark.skipif(
    not CONTAINERS_PROFILE.is_file(),
    reason="containers-common's seccomp.json is not installed "
    "(tests/rig/install-deps.sh installs podman, which brings it)",
)
def test_docker_format_default_profile_loads_and_is_enforced(runner):
    big = json.loads(CONTAINERS_PROFILE.read_text())
    assert sum(len(s["names"]) for s in big["syscalls"]) > 300 and big["defaultAction"] == "SCMP_ACT_ERRNO"
    prof = profile(runner, "containers.json", big)
    p = runner.run(
        "--debug", "--seccomp-profile", prof, "sh", "-c", "mkdir /tmp/a && chroot / true && echo ok"
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
    assert re.search(r"seccomp profile .*: (\d{3,}) rules", p.stderr), p.stderr
    # the same profile without mkdir/mkdirat: they fall to defaultAction (defaultErrnoRet 38, ENOSYS)
    for rule in big["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
    prof = profile(runner, "containers-no-mkdir.json", big)
    p = runner.run("--seccomp-profile", prof, "sh", "-c", "echo still-runs; mkdir /tmp/a")
    assert p.returncode == 1 and p.stdout.strip() == "still-runs", (p.returncode, p.stderr)
    assert "Function not implemented" in p.stderr, p.stderr


def test_unconfined_and_no_seccomp(runner):
    show = ("sh", "-c", "cat /proc/self/status")
    assert status_field(runner.run(*show, check=True).stdout, "Seccomp") == "2"
    for flags in (
        ["--seccomp-profile", "unconfined"],
        ["--security-opt", "seccomp=unconfined"],
        ["--no-seccomp"],
    ):
        out = runner.run(*flags, *show, check=True).stdout
        assert status_field(out, "Seccomp") == "0", flags
        assert status_field(out, "NoNewPrivs") == "0", flags
    # the last of --no-seccomp / --seccomp-profile wins
    prof = profile(runner, "deny-mkdir.json", DENY_MKDIR)
    p = runner.run("--no-seccomp", "--seccomp-profile", prof, "mkdir", "/tmp/x")
    assert p.returncode == 1, p.stderr


BAD_PROFILES = [
    ("not-json.json", "{defaultAction: ALLOW", r"not valid JSON"),
    ("array.json", "[]", r"must be a JSON object"),
    ("no-default.json", {"syscalls": []}, r'no "defaultAction"'),
    ("bad-default.json", {"defaultAction": "SCMP_ACT_MAYBE"}, r'action "SCMP_ACT_MAYBE" is unknown'),
    (
        "syscalls-object.json",
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}},
        r"syscalls must be an array",
    ),
    (
        "names-number.json",
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [1], "action": "SCMP_ACT_ERRNO"}]},
        r"syscalls\[0\] names must be an array of strings",
    ),
    (
        "action-missing.json",
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]},
        r"syscalls\[0\] action must be a string",
    ),
    (
        "index-7.json",
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}],
                }
            ],
        },
        r"args\[0\]\.index must be a number 0\.\.5",
    ),
    (
        "bad-op.json",
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "EQ"}],
                }
            ],
        },
        r"args\[0\]\.op must be one of",
    ),
    (
        "errno-big.json",
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 99999},
        r"errnoRet must be an errno",
    ),
    ("notify.json", {"defaultAction": "SCMP_ACT_NOTIFY"}, r"SCMP_ACT_NOTIFY needs a seccomp agent"),
]


@pytest.mark.parametrize("name,data,pattern", BAD_PROFILES, ids=[b[0] for b in BAD_PROFILES])
def test_bad_profile_is_one_clear_error_before_anything_runs(runner, name, data, pattern):
    prof = profile(runner, name, data)
    p = runner.run("--seccomp-profile", prof, "sh", "-c", "echo RAN")
    one_error(p, rf"--seccomp-profile {re.escape(prof)}: .*{pattern}")
    assert "RAN" not in p.stdout
    assert os.listdir(runner.cache) == [], "nothing may be extracted for a bad profile"


def test_missing_profile_file(runner):
    p = runner.run("--seccomp-profile", str(runner.base / "nope.json"), "true")
    one_error(p, r"--seccomp-profile: .*nope\.json.*No such file")
    assert os.listdir(runner.cache) == []


# ------------------------------------------------------------------------------------------ --security-opt


def lsm_enabled(kind: str) -> bool:
    if kind == "apparmor":
        try:
            return Path("/sys/module/apparmor/parameters/enabled").read_text().startswith("Y")
        except OSError:
            return False
    return Path("/sys/fs/selinux/enforce").exists()


def test_apparmor_without_apparmor_warns_once_and_runs(runner):
    if lsm_enabled("apparmor"):
        pytest.skip("AppArmor is enabled here: the no-AppArmor warning path cannot be exercised")
    p = runner.run(
        "--security-opt", "apparmor=docker-default", "--security-opt", "apparmor=other", "echo", "ran"
    )
    assert p.returncode == 0 and p.stdout.strip() == "ran", p.stderr
    warns = [ln for ln in p.stderr.splitlines() if "AppArmor is not enabled" in ln]
    assert len(warns) == 1 and warns[0].startswith("oci2bin: warning: "), p.stderr
    # apparmor=unconfined asks for nothing: no warning
    p = runner.run("--security-opt", "apparmor=unconfined", "true", check=True)
    assert p.stderr == ""


def test_selinux_label_without_selinux_warns_and_runs(runner):
    if lsm_enabled("selinux"):
        pytest.skip("SELinux is enabled here: the no-SELinux warning path cannot be exercised")
    p = runner.run("--security-opt", "label=type:svirt_sandbox_file_t", "echo", "ran")
    assert p.returncode == 0 and p.stdout.strip() == "ran", p.stderr
    assert re.fullmatch(r"oci2bin: warning: .*SELinux is not enabled on this host.*\n", p.stderr), p.stderr
    p = runner.run("--security-opt", "label=disable", "true", check=True)
    assert p.stderr == ""


def test_no_new_privileges(runner):
    show = ("sh", "-c", "cat /proc/self/status")
    out = runner.run("--no-seccomp", "--security-opt", "no-new-privileges", *show, check=True).stdout
    assert status_field(out, "NoNewPrivs") == "1" and status_field(out, "Seccomp") == "0"
    out = runner.run("--no-seccomp", "--security-opt", "no-new-privileges=false", *show, check=True).stdout
    assert status_field(out, "NoNewPrivs") == "0"
    # the default filter already sets it (SPEC)
    assert status_field(runner.run(*show, check=True).stdout, "NoNewPrivs") == "1"


@pytest.mark.parametrize(
    "opt,pattern",
    [
        ("bogus=1", r"--security-opt bogus=1: unknown option"),
        ("label=type", r"--security-opt label=type: use label=user:U"),
        ("apparmor=", r"--security-opt apparmor=: give an AppArmor profile name"),
        ("no-new-privileges=maybe", r"use no-new-privileges"),
        ("seccomp=", r"--seccomp-profile needs a file"),
    ],
)
def test_bad_security_opt(runner, opt, pattern):
    p = runner.run("--security-opt", opt, "true")
    one_error(p, pattern)


# ------------------------------------------------------------------------------------------ --device


def test_device_bind_mounted_usable_by_root_only(runner):
    dev = "/dev/kvm" if os.path.exists("/dev/kvm") else "/dev/net/tun"
    st = os.stat(dev)
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    script = f"ls -l {dev} /dev/tun-here; exec 3<>{dev} && echo opened"
    p = runner.run("--device", dev, "--device", "/dev/net/tun:/dev/tun-here", "sh", "-c", script)
    lines = p.stdout.splitlines()
    assert re.match(rf"c.* {major}, +{minor} .*{dev}$", lines[0]), p.stdout
    assert re.match(r"c.* 10, +200 .*/dev/tun-here$", lines[1]), p.stdout
    if runner.user == "root":
        assert p.returncode == 0 and lines[-1] == "opened", p.stderr
    else:
        # 0600 root-owned on the host: visible, but the kernel refuses the open, and the loader said so up front
        assert p.returncode != 0 and "opened" not in p.stdout
        assert "Permission denied" in p.stderr, p.stderr
        assert re.search(
            rf"oci2bin: warning: --device {dev}: you cannot open it on this host", p.stderr
        ), p.stderr
        assert re.search(r"oci2bin: warning: --device /dev/net/tun: you cannot open it", p.stderr), p.stderr


def test_device_at_a_path_outside_dev_and_perms_warning(runner):
    p = runner.run(
        "--device",
        "/dev/null:/opt/null-here:r",
        "sh",
        "-c",
        "echo x > /opt/null-here && ls -l /opt/null-here",
    )
    assert p.returncode == 0, p.stderr
    assert re.match(r"c.* 1, +3 .*/opt/null-here$", p.stdout.strip()), p.stdout
    assert "read/write restrictions need a device cgroup" in p.stderr


@pytest.mark.parametrize(
    "spec,pattern",
    [
        ("/dev/no-such-device", r"--device /dev/no-such-device: not found on this host: No such file"),
        ("/etc/passwd", r"--device /etc/passwd: the host path must be under /dev/"),
        ("/dev/null:relative", r'container path "relative" must be absolute'),
        ("/dev/null:/dev/../etc/x", r"must be absolute, without \"\.\.\""),
        ("/dev/null:/dev/n:rwx", r'permissions "rwx" are not a combination of r, w and m'),
        ("/dev/fd", r"--device /dev/fd: resolves to /proc/\S+, outside /dev"),
        ("/dev/shm/../../etc/passwd:/dev/x", r"resolves to /etc/passwd, outside /dev"),
    ],
)
def test_bad_device(runner, spec, pattern):
    p = runner.run("--device", spec, "sh", "-c", "echo RAN")
    one_error(p, pattern)
    assert "RAN" not in p.stdout
    assert os.listdir(runner.cache) == []


def test_device_that_is_a_regular_file(runner):
    f = Path(f"/dev/shm/oci2bin-device-test-{os.getpid()}")
    f.write_text("not a device")
    f.chmod(0o644)
    try:
        p = runner.run("--device", str(f), "true")
        one_error(p, rf"--device {f}: not a device node: give a character or block device")
    finally:
        f.unlink()
