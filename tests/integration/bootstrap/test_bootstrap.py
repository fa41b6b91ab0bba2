"""`./pants` bootstrap from nothing: concurrent first runs, the pinned pex, and the error without CPython 3.9.

Each test copies `pants` and a minimal `pants.toml` (the real one's version pins, no backends) into a fresh
directory with its own bootstrap cache, so nothing is shared with the developer's set-up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def minimal_repo(root: Path) -> Path:
    text = Path("pants.toml").read_text()
    version = re.search(r'^pants_version = "([^"]+)"', text, re.M).group(1)
    pex_cli = text[text.index("[pex-cli]") :]
    pex_cli = pex_cli[: pex_cli.index("\n[", 1)]
    (root / "pants.toml").write_text(
        f'[GLOBAL]\npants_version = "{version}"\nbackend_packages = []\n\n{pex_cli}\n'
    )
    shutil.copy("pants", root / "pants")
    (root / "pants").chmod(0o755)
    return root


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="bootstrap-it-", dir="/var/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def env_for(work: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work / "home"),
        "PANTS_BOOTSTRAP_CACHE": str(work / "cache"),
        "PANTS_PANTSD": "false",
    }
    for key in ("PYENV_ROOT", "PANTS_CA_CERTS_PATH", "PIP_CERT"):
        if key in os.environ:
            env[key] = os.environ[key]
    return {**env, **extra}


def test_concurrent_first_runs_share_one_good_venv(work: Path) -> None:
    repo = minimal_repo(work)
    env = env_for(work)
    runs = [
        subprocess.Popen(["./pants", "--version"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in runs]
    for code, out, err in results:
        assert code == 0, err
        assert out.strip().endswith("2.17.1"), out
    # one venv, marked complete; the pex tool built once and matching its pinned sha256
    venvs = list((work / "cache").glob("pants-*-py39"))
    assert len(venvs) == 1 and (venvs[0] / ".complete").exists()
    pex = list((repo / ".bootstrap").glob("pex-*.pex"))
    assert len(pex) == 1
    creating = sum(err.count("creating") for _, _, err in results)
    assert creating == 1  # the second run waited for the first instead of building its own


def test_without_python39_one_actionable_line(work: Path) -> None:
    repo = minimal_repo(work)
    # No 3.9 anywhere: an empty pyenv root, PATH without one, and uv's download pointed at nothing.
    env = env_for(
        work,
        PYENV_ROOT=str(work / "no-pyenv"),
        PATH="/usr/bin:/bin",
        PANTS_BOOTSTRAP_PYTHON="/nonexistent/python3.9",
        UV_PYTHON_INSTALL_MIRROR="file:///nonexistent",
        UV_PYTHON_DOWNLOADS="automatic",
    )
    if any(Path(p).exists() for p in ("/usr/bin/python3.9", "/usr/local/bin/python3.9")):
        pytest.skip("this machine has a system python3.9, so the no-3.9 path cannot be exercised")
    result = subprocess.run(
        ["./pants", "--version"], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pants bootstrap: CPython 3.9 is required"), result.stderr
    assert "PANTS_BOOTSTRAP_PYTHON" in last
    assert not list((work / "cache").glob("pants-*-py39/.complete"))
