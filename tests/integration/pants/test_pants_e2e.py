"""End to end: the REAL `./pants` (no pantsd) builds examples/monorepo (python app -> image on a pulled base ->
oci_binary) in a temporary copy of the repo, and its caching holds:

  1. cold local store        every step runs (pull, image, pex, loader, assemble); the binary runs the app
  2. warm                    a second `package` spawns no build process at all
  3. one option changed      `strip=True`: only transform + assemble rerun, never the pull or the image build
  4. remote cache            a new local store AND new named caches, reading from a buildgrid REAPI cache that
                             runs 1-3 wrote: zero build processes run, every step is a remote hit, same bytes

The base image (Debian bookworm + python3, built once with mmdebstrap and cached) is served by a loopback
docker-registry; the copy's BUILD is pinned to its port and digest through MONOREPO_BASE_REPOSITORY/_DIGEST.
buildgrid 0.4.4 is installed once into the rig cache (tests/rig/buildgrid.py) and stopped by PID.

SLOW: 5-10 min in all (measured 8-10 min on a 2-core VM under load ~10): four `pants` runs without pantsd, the
first of which builds everything.
First use on a machine also builds the base image (~1 min) and the buildgrid venv (~1-4 min).

The repo is found through $OCI2BIN_REPO_ROOT (pants.toml [test].extra_env_vars sets it to the build root): the
nested Pants needs the whole repo (plugin, core, loader), not just this test's sandbox. NB: Pants caches this
test's result on its declared inputs only; after changing only the plugin, rerun it with `--test-force`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.pants import python_base
from tests.rig import buildgrid, registry

TARGET = "examples/monorepo:app_bin"
ARTIFACT = "dist/examples.monorepo/app_bin"
# What the repo copy needs: every top-level file (pants, pants.toml and the configs it names), the plugin, the core,
# the loader (and its C deps), the example.
COPY_DIRS = (".bootstrap", "pants-plugins", "src", "3rdparty", "examples/monorepo")
IGNORE = shutil.ignore_patterns("__pycache__", ".pants.d", "dist", "*.pyc", ".pids")
# Descriptions of the build steps the monorepo binary needs (processes that are cached; per-run probes such as
# interpreter discovery are not).
PULL, IMAGE, TRANSFORM, ASSEMBLE = "Pulling ", "Building image ", "Transforming the image of ", "Assembling "
SPAWNED = re.compile(
    r"spawned local process as Some\((\d+)\) for Process \{.*?description: \"((?:[^\"\\]|\\.)*)\""
)


def repo_root() -> Path:
    root = os.environ.get("OCI2BIN_REPO_ROOT") or str(Path(__file__).resolve().parents[3])
    return Path(root)


@dataclass
class Run:
    seconds: float
    spawned: list[str]  # descriptions of every process that ran locally
    stats: dict[str, int]
    stderr: str

    def build_steps(self) -> list[str]:
        """Processes that are build steps (cacheable), i.e. not Pants' per-run environment probes."""
        probes = (
            "Find interpreter",
            "Searching for",
            "Test binary",
            "Fingerprint",
            "Scrub",
            "Determine Python",
        )
        return [d for d in self.spawned if not d.startswith(probes)]

    def count(self, prefix: str) -> int:
        return sum(1 for d in self.spawned if d.startswith(prefix))


@dataclass
class Env:
    root: Path  # the temporary repo copy
    work: Path
    base_repository: str
    base_digest: str
    bg: buildgrid.BuildGrid
    runs: dict[str, Run] = field(default_factory=dict)

    def pants(self, *args: str, store: str, named: str | None = None, remote: bool = True,
              timeout: int = 900) -> Run:  # fmt: skip
        argv = [
            str(self.root / "pants"),
            "--no-pantsd",
            "-ldebug",
            "--no-dynamic-ui",
            f"--local-store-dir={self.work / store}",
            "--stats-log",  # logs "Counters:" (local/remote cache hits, executions) at the end
        ]
        if named:
            argv.append(f"--named-caches-dir={self.work / named}")
        if remote:
            argv += self.bg.pants_args()
        env = {
            k: os.environ[k] for k in ("PATH", "HOME", "PYENV_ROOT", "PANTS_CA_CERTS_PATH") if k in os.environ
        }
        env.update(MONOREPO_BASE_REPOSITORY=self.base_repository, MONOREPO_BASE_DIGEST=self.base_digest,
                   LANG="C.UTF-8")  # fmt: skip
        start = time.monotonic()
        proc = subprocess.run([*argv, *args], cwd=self.root, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            raise AssertionError(
                f"pants {' '.join(args)} failed ({proc.returncode}):\n{tail(proc.stderr, 80)}"
            )
        counters: dict[str, int] = {}
        if "Counters:" in proc.stderr:
            block = proc.stderr.rsplit("Counters:", 1)[1]
            for line in block.splitlines()[1:]:
                m = re.fullmatch(r"\s+(\w+): (\d+)", line)
                if not m:
                    break
                counters[m.group(1)] = int(m.group(2))
        return Run(seconds, [m.group(2) for m in SPAWNED.finditer(proc.stderr)], counters, proc.stderr)


def tail(text: str, n: int) -> str:
    lines = [ln for ln in text.splitlines() if " [DEBUG] " not in ln and " [TRACE] " not in ln]
    return "\n".join(lines[-n:])


def skip_reasons() -> list[str]:
    reasons = []
    miss = registry.missing_tools() + python_base.missing_tools()
    if miss:
        reasons.append(f"missing tools: {', '.join(miss)} (tests/rig/install-deps.sh installs them)")
    if os.geteuid() != 0:
        reasons.append("mmdebstrap (root mode) builds the python base image: run as root")
    if buildgrid.find_python311() is None and not os.path.exists(buildgrid.bgd_path()):
        reasons.append("no CPython 3.11 for buildgrid")
    if not (repo_root() / "pants").exists():
        reasons.append(f"no ./pants in {repo_root()} (set OCI2BIN_REPO_ROOT)")
    return reasons


@pytest.fixture(scope="module")
def e2e():
    reasons = skip_reasons()
    if reasons:
        print("SKIP:", "; ".join(reasons))
        pytest.skip("; ".join(reasons))
    base = python_base.build()
    remove_stale_workdirs()
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    try:
        root = work / "repo"
        src = repo_root()
        top_files = [p.name for p in src.iterdir() if p.is_file() and not p.name.startswith(".git")]
        for rel in (*top_files, *COPY_DIRS):
            s, d = src / rel, root / rel
            d.parent.mkdir(parents=True, exist_ok=True)
            if s.is_dir():
                shutil.copytree(s, d, ignore=IGNORE, symlinks=True)
            elif s.exists():
                shutil.copy2(s, d)
        with registry.RegistryRig(kinds=("open",)) as rig, buildgrid.BuildGrid() as bg:
            assert rig.open is not None
            repository = f"{rig.open.host}/library/python"
            rig.push(f"{base}:latest", f"{repository}:3.11")
            digest = registry.manifest_digest(f"docker://{repository}:3.11", rig.root)
            yield Env(root, work, repository, digest, bg)
    finally:
        shutil.rmtree(work, ignore_errors=True)


WORK_PREFIX = "oci2bin-pants-e2e-"


def remove_stale_workdirs() -> None:
    """Work dirs of runs that were killed (Pants kills and retries a test when files change: no teardown)."""
    for d in Path(tempfile.gettempdir()).glob(f"{WORK_PREFIX}*-*"):
        pid = d.name[len(WORK_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)


def run_binary(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip


def report(name: str, run: Run) -> None:
    keys = (
        "local_execution_requests",
        "local_cache_requests_cached",
        "local_cache_requests_uncached",
        "remote_cache_requests_cached",
        "remote_cache_requests_uncached",
        "remote_cache_write_successes",
        "remote_cache_speculation_local_completed_first",
        "remote_cache_speculation_remote_completed_first",
    )
    counters = " ".join(f"{k}={run.stats.get(k, 0)}" for k in keys)
    print(f"\n[{name}] {run.seconds:.1f}s build steps run: {run.build_steps()}\n[{name}] {counters}")


def test_monorepo_build_cache_and_remote_cache(e2e: Env) -> None:
    """SLOW: four real `pants package` runs (cold, warm, option change, fresh caches + remote)."""
    artifact = e2e.root / ARTIFACT

    # 1. cold local store (named caches shared with the machine, so wheels and zig's libc are not rebuilt)
    cold = e2e.pants("package", TARGET, store="store1")
    report("cold", cold)
    for step in (PULL, IMAGE, ASSEMBLE):
        assert cold.count(step) == 1, (step, cold.build_steps())
    assert cold.count(TRANSFORM) == 0  # no build option set: the image is assembled as it is
    assert cold.stats.get("remote_cache_write_successes", 0) >= 3, cold.stats
    first = artifact.read_bytes()
    result = run_binary(artifact, "Ada", "Grace")
    assert result.returncode == 0, result.stderr
    assert "Hello, Ada and Grace!" in result.stdout
    assert "motd: built by pants from examples/monorepo" in result.stdout
    assert "python: 3.11 pid: 1 cwd: /app" in result.stdout
    assert run_binary(artifact, "fail").returncode == 3  # the app's exit status comes through
    default = run_binary(artifact)
    assert "Hello, world!" in default.stdout, default  # the image's Cmd

    # 2. warm: nothing runs
    warm = e2e.pants("package", TARGET, store="store1")
    report("warm", warm)
    assert warm.build_steps() == [], warm.build_steps()
    assert warm.stats.get("local_cache_requests_cached", 0) >= 3, warm.stats
    assert artifact.read_bytes() == first

    # 3. one build option changed: transform + assemble only
    build = e2e.root / "examples/monorepo/BUILD"
    text = build.read_text()
    assert "strip=False" in text
    build.write_text(text.replace("strip=False", "strip=True"))
    changed = e2e.pants("package", TARGET, store="store1")
    report("strip", changed)
    assert changed.count(TRANSFORM) == 1 and changed.count(ASSEMBLE) == 1, changed.build_steps()
    assert changed.count(PULL) == 0 and changed.count(IMAGE) == 0, changed.build_steps()
    assert not [
        d for d in changed.build_steps() if not d.startswith((TRANSFORM, ASSEMBLE))
    ], changed.build_steps()
    stripped = artifact.read_bytes()
    assert stripped != first
    assert "Hello, Ada!" in run_binary(artifact, "Ada").stdout

    # 4. fresh local store and named caches, remote cache read: every step is a remote hit. Pants 2.17 races a
    #    local run against each remote lookup (cache read speculation), so a slow lookup may *start* a local
    #    process that is then canceled; the counters say which side won: the remote one, every time.
    remote = e2e.pants("package", TARGET, store="store2", named="named2")
    report("remote", remote)
    hits = remote.stats.get("remote_cache_requests_cached", 0)
    assert hits >= len(
        cold.build_steps()
    ), remote.stats  # every step of this build (cold's set, plus transform)
    assert remote.stats.get("remote_cache_requests_uncached", 0) == 0, remote.stats
    assert remote.stats.get("remote_cache_speculation_local_completed_first", 0) == 0, remote.stats
    assert remote.stats.get("local_cache_requests_cached", 0) == 0, remote.stats  # really a fresh local store
    if remote.build_steps():
        print(f"[remote] started speculatively, then canceled (the remote hit won): {remote.build_steps()}")
    assert artifact.read_bytes() == stripped  # byte-identical to the local build
    assert "Hello, Ada!" in run_binary(artifact, "Ada").stdout

    print(
        f"\ntimings: cold {cold.seconds:.1f}s, warm {warm.seconds:.1f}s, strip changed {changed.seconds:.1f}s, "
        f"fresh caches + remote {remote.seconds:.1f}s"
    )
