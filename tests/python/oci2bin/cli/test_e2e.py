"""End to end with a real oci2bin loader (OCI2BIN_TEST_LOADER=dist/loader/loader-x86_64): build, then run."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture
def real_loader(loader_path):
    if os.path.basename(os.path.realpath(loader_path)) == "busybox":
        pytest.skip(
            "needs the real loader: set OCI2BIN_TEST_LOADER to a built loader (./pants package src/c/loader:)"
        )
    if os.uname().machine != "x86_64" and "x86_64" in loader_path:
        pytest.skip("loader is for another architecture")
    return loader_path


def _run(binary: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HOME=os.path.dirname(binary),
        XDG_CACHE_HOME=os.path.join(os.path.dirname(binary), "c"),
    )
    return subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("extra", [[], ["--squash"], ["--squash", "--compress", "zstd"]])
def test_multilayer_runs(cli, images, tmp_path, real_loader, extra):
    r = cli(f"oci:{images.multi_oci}", "multi", *extra)
    assert r.returncode == 0, r.stderr
    out = _run(str(tmp_path / "multi"))
    if "built without zstd" in out.stderr:
        pytest.skip("this loader was built without zstd support")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello v2 world"
    out = _run(str(tmp_path / "multi"), "there")
    assert out.stdout.strip() == "hello v2 there"


def test_exit_code_and_added_file(cli, images, tmp_path, real_loader):
    (tmp_path / "note").write_text("added at build time\n")
    cli(images.bb_docker, "bb", "--add-file", f"{tmp_path}/note:/etc/note", check=True)
    out = _run(str(tmp_path / "bb"), "sh", "-c", "cat /etc/note; exit 7")
    assert out.stdout == "added at build time\n", out.stderr
    assert out.returncode == 7
