"""The vertical slice end to end: the `oci_binary` Pants built from the embedded example.

Runs the polyglot as root and as an unprivileged user, under qemu for aarch64, and hands it to real consumers
(tar, skopeo, podman) as a docker-archive / oci-archive.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.rig import images

HELLO = Path("examples.hello/hello_bin")
HELLO_ARM = Path("examples.hello/hello_bin_aarch64")
UNPRIVILEGED = "tester"


@pytest.fixture
def workdir():
    """A directory an unprivileged user can read (pytest's own tmp dirs are 0700), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="hello-it-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def oci2bin_tmp_entries() -> set[str]:
    return {n for n in os.listdir("/tmp") if n.startswith("oci2bin")}


def run(cmd, *, env=None, user=None, timeout=120):
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})}
    if user:
        cmd = ["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in full_env.items()), *cmd]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)


def copy_for(workdir: Path, src: Path, name: str) -> Path:
    dst = workdir / name
    shutil.copyfile(src, dst)
    dst.chmod(0o755)
    return dst


def assert_ran_inside_image(stdout: str, args: str) -> None:
    assert 'release: NAME="oci2bin hello example"' in stdout  # a file only the image has
    assert "cwd: /srv" in stdout  # the image's WorkingDir
    assert "pid: 1" in stdout  # PID 1 of a fresh PID namespace
    assert "greeting: hello from the image config" in stdout  # the image's Env
    assert f"args: {args}" in stdout


def test_runs_as_root_and_forwards_exit_code(workdir):
    before = oci2bin_tmp_entries()
    exe = copy_for(workdir, HELLO, "hello")
    env = {"OCI2BIN_CACHE_DIR": str(workdir / "cache")}
    default = run([str(exe)], env=env)
    assert default.returncode == 0, default.stderr
    assert_ran_inside_image(default.stdout, "[from] [the] [image]")  # the image's Cmd
    custom = run([str(exe), "exit", "3"], env=env)
    assert custom.returncode == 3, custom.stderr
    assert_ran_inside_image(custom.stdout, "[exit] [3]")  # arguments replace Cmd
    assert oci2bin_tmp_entries() <= before


def test_runs_as_unprivileged_user(workdir):
    try:
        pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        pytest.skip(f"no user {UNPRIVILEGED!r} (tests/rig/install-deps.sh creates it)")
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the unprivileged user")
    before = oci2bin_tmp_entries()
    exe = copy_for(workdir, HELLO, "hello")
    cache = workdir / "cache-tester"
    cache.mkdir()
    shutil.chown(cache, UNPRIVILEGED, UNPRIVILEGED)
    result = run([str(exe), "exit", "5"], env={"OCI2BIN_CACHE_DIR": str(cache)}, user=UNPRIVILEGED)
    assert result.returncode == 5, result.stderr
    assert_ran_inside_image(result.stdout, "[exit] [5]")
    assert "uid: 0" in result.stdout  # root inside the user namespace, unprivileged outside
    assert oci2bin_tmp_entries() <= before


def test_aarch64_binary_runs_under_qemu(workdir):
    qemu = shutil.which("qemu-aarch64-static")
    data = HELLO_ARM.read_bytes()
    assert data[:4] == b"\x7fELF" and data[18] == 183  # EM_AARCH64
    if qemu is None:
        pytest.skip("qemu-aarch64-static is not installed (apt-get install qemu-user-static)")
    exe = copy_for(workdir, HELLO_ARM, "hello-arm")
    result = run([qemu, str(exe), "exit", "4"], env={"OCI2BIN_CACHE_DIR": str(workdir / "cache")})
    if not os.path.exists("/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        # The loader ran (payload, extraction, namespaces) up to exec of the image's aarch64 program, which the
        # host kernel can only run through binfmt_misc (tests/rig/install-deps.sh registers it).
        print("binfmt_misc has no qemu-aarch64 entry: checking the aarch64 loader up to the container's exec")
        assert result.returncode == 126 and "exec format error" in result.stderr, result.stderr
        return
    assert result.returncode == 4, result.stderr
    assert_ran_inside_image(result.stdout, "[exit] [4]")


def test_tar_lists_the_docker_archive():
    listing = subprocess.run(["tar", "-tf", str(HELLO)], capture_output=True, text=True, check=True).stdout
    names = listing.splitlines()
    assert "manifest.json" in names and "index.json" in names and "oci-layout" in names
    with tarfile.open(HELLO) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        config = json.load(t.extractfile(manifest[0]["Config"]))
    assert manifest[0]["RepoTags"] == ["localhost/oci2bin-hello:latest"]
    assert config["config"]["Entrypoint"] == ["/usr/bin/hello"]
    assert config["config"]["WorkingDir"] == "/srv"


def test_real_consumers_accept_it():
    results = images.check_docker_archive(HELLO, podman=shutil.which("podman") is not None)
    assert results and all(v is None for v in results.values()), results


def test_skopeo_reads_it_as_oci_archive_with_same_digests(workdir):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    docker = json.loads(run(["skopeo", "inspect", "--config", f"docker-archive:{HELLO.resolve()}"]).stdout)
    oci = json.loads(run(["skopeo", "inspect", "--raw", f"oci-archive:{HELLO.resolve()}"]).stdout)
    with tarfile.open(HELLO) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        config = json.load(t.extractfile(manifest["Config"]))
    # same image both ways: the docker view's config is the file's config; the OCI manifest names its blobs
    assert docker["rootfs"]["diff_ids"] == config["rootfs"]["diff_ids"]
    assert oci["config"]["digest"].split(":")[1] == manifest["Config"].rsplit("/", 1)[1]
    assert [layer["digest"].split(":")[1] for layer in oci["layers"]] == [
        name.rsplit("/", 1)[1] for name in manifest["Layers"]
    ]
    out = run(["skopeo", "copy", "-q", f"oci-archive:{HELLO.resolve()}", f"oci:{workdir}/layout:x"])
    assert out.returncode == 0, out.stderr


def test_podman_load_yields_the_same_image(workdir):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    store = [
        "podman",
        "--root",
        str(workdir / "root"),
        "--runroot",
        str(workdir / "run"),
        "--storage-driver",
        "vfs",
    ]
    loaded = run([*store, "load", "-q", "-i", str(HELLO.resolve())])
    assert loaded.returncode == 0, loaded.stderr
    inspected = json.loads(run([*store, "image", "inspect", "localhost/oci2bin-hello:latest"]).stdout)
    with tarfile.open(HELLO) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    config_hex = manifest[0]["Config"].rsplit("/", 1)[-1]
    assert inspected[0]["Id"] == config_hex
    run([*store, "rmi", "-a", "-f"])
