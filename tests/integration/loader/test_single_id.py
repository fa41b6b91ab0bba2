"""The single-id fallback (docs/loader.md "Id mapping", SPEC "Rootfs patching for single-UID namespaces"), run by
`tester-nosubid`, an unprivileged user without /etc/subuid and /etc/subgid entries (tests/rig/install-deps.sh).

The image is the rig's Debian redis (USER redis, /data and /var/lib/redis owned by redis, apt, util-linux's
setpriv) plus stand-ins for gosu and su-exec that fail if they are really run: the loader must map only the
caller, patch passwd/group, apt's sandbox user and the user-switching tools, and redis must still work."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys

import pytest

from tests.integration.loader.conftest import REPO, Runner, cli_env
from tests.rig import images

NOSUBID = os.environ.get("OCI2BIN_TEST_NOSUBID_USER", "tester-nosubid")
PATCH_NOTE = "rootfs patched for a single-id user namespace"
REAL_TOOL = "#!/bin/sh\necho the real user-switching tool ran >&2\nexit 99\n"


def _has_subids(user: str) -> bool:
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                if any(line.split(":", 1)[0] == user for line in f):
                    return True
        except FileNotFoundError:
            pass
    return False


@pytest.fixture(scope="module")
def redis_bin(loader, workdir):
    layout = images.build("redis")
    tool = workdir / "real-tool"
    tool.write_text(REAL_TOOL)
    tool.chmod(0o755)
    out = workdir / "redis-single-id.bin"
    p = subprocess.run(
        [
            sys.executable, "-m", "oci2bin", "--loader", str(loader), "--oci-dir", str(layout), "-q",
            "--add-file", f"{tool}:/usr/local/bin/gosu", "--add-file", f"{tool}:/sbin/su-exec",
            "redis", str(out),
        ],
        capture_output=True, text=True, env=cli_env(), cwd=str(REPO),
    )  # fmt: skip
    assert p.returncode == 0, f"build failed:\n{p.stdout}\n{p.stderr}"
    out.chmod(0o755)
    return out


@pytest.fixture
def nosubid(redis_bin, workdir):
    try:
        pwd.getpwnam(NOSUBID)
    except KeyError:
        pytest.fail(f"user {NOSUBID!r} missing: run tests/rig/install-deps.sh")
    assert not _has_subids(NOSUBID), f"{NOSUBID} has a subuid/subgid range: run tests/rig/install-deps.sh"
    r = Runner(redis_bin, NOSUBID, workdir)
    yield r
    left = r.tmp_left()
    # cache entries of a single-id run are owned by the user: removable without a user namespace
    subprocess.run(["rm", "-rf", str(r.base)], check=False)
    assert not left, f"left in TMPDIR: {left}"


CHECKS = r"""
id -u; id -g
grep -E '^(root|redis|nobody):' /etc/passwd | cut -d: -f1,3,4
grep -E '^(redis|nogroup):' /etc/group | cut -d: -f1,3
cat /etc/apt/apt.conf.d/99oci2bin
setpriv --reuid=redis --regid=redis --init-groups id -u
gosu redis id -u
su-exec redis:redis id -u
ls -ldn /data /var/lib/redis | awk '{print $3":"$4, $NF}'
"""


def test_single_id_patches_and_redis_works(nosubid):
    # first start: the cache entry is extracted and patched; --debug says so once
    p = nosubid.run("--debug", "sh", "-c", CHECKS, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "(single id)" in p.stderr, p.stderr
    assert p.stderr.count(PATCH_NOTE) == 1, p.stderr
    assert p.stdout.splitlines() == [
        "0",
        "0",
        "root:0:0",
        "nobody:65534:65534",  # 65534 stays: the kernel's overflow id
        "redis:0:0",
        "nogroup:65534",
        "redis:0",
        'APT::Sandbox::User "root";',
        "0",  # shims: the command runs as the only mapped id, the real tools are not run
        "0",
        "0",
        "0:0 /data",  # the image's redis-owned dirs belong to the one mapped id
        "0:0 /var/lib/redis",
    ]
    # later starts reuse the patched entry: no second patch note
    p = nosubid.run("--debug", "true", timeout=60)
    assert p.returncode == 0 and PATCH_NOTE not in p.stderr and "(single id)" in p.stderr, p.stderr

    # the image's USER redis, workdir /data (owned by redis in the image): redis runs and persists there
    script = (
        "redis-server /etc/redis/redis.conf --port 0 --unixsocket /tmp/r.sock --daemonize yes --logfile /tmp/r.log"
        " && for i in $(seq 100); do [ -S /tmp/r.sock ] && break; sleep 0.1; done"
        " && redis-cli -s /tmp/r.sock set k single-id && redis-cli -s /tmp/r.sock save"
        " && redis-cli -s /tmp/r.sock get k && ls /data && id -u && redis-cli -s /tmp/r.sock shutdown nosave"
    )
    p = nosubid.run("sh", "-c", script, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["OK", "OK", "single-id", "dump.rdb", "0"], p.stdout
