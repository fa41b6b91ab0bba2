"""The command line, run as a real subprocess (`python -m oci2bin`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from oci2bin.polyglot.reader import Polyglot
from oci2bin_testrig import have, run, synthetic_elf  # pants: no-infer-dep


def one_error_line(r) -> str:
    lines = [x for x in r.stderr.strip().splitlines() if not x.startswith("oci2bin: image digest: ")]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("oci2bin: ") and lines[0].endswith(")"), lines[0]
    return lines[0]


def test_build_from_docker_archive(cli, images, tmp_path):
    r = cli(f"docker-archive:{images.bb_docker}")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "bb_latest"
    assert out.exists() and os.access(out, os.X_OK)
    assert "oci2bin: image digest: localhost/bb@sha256:" in r.stderr
    assert "\r" not in r.stderr  # no progress without a TTY
    assert sorted(os.listdir(tmp_path)) == ["bb_latest"]
    p = Polyglot(str(out))
    assert p.metadata["image"] == "localhost/bb:latest"


def test_build_forms_and_names(cli, images, tmp_path):
    assert cli(f"oci:{images.bb_oci}:latest", "explicit").returncode == 0
    assert cli(images.bb_oci_archive).returncode == 0
    assert cli("--oci-dir", images.bb_oci, "myimg:1.0").returncode == 0
    assert cli(images.bb_legacy_docker).returncode == 0
    names = sorted(os.listdir(tmp_path))
    assert names == ["bb_latest", "bb_legacy", "explicit", "myimg_1.0"]
    assert Polyglot(str(tmp_path / "myimg_1.0")).metadata["image"] == "myimg:1.0"


def test_inspect(cli, images, tmp_path):
    cli(f"oci:{images.bb_oci}", "bb", "--ref", "localhost/bb:1", check=True)
    r = cli("inspect", "bb", check=True)
    text = r.stdout
    assert "Image: localhost/bb:1" in text
    assert "Architecture: amd64" in text and "Layers: 1" in text
    assert 'Entrypoint: ["/bin/busybox"]' in text and 'Cmd: ["sh"]' in text
    assert "WorkingDir: /tmp" in text and "  GREETING=hi" in text
    assert "org.opencontainers.image.title=bb" in text
    assert "Digest: localhost/bb@sha256:" in text and "oci2bin: 0.1.0" in text
    info = json.loads(cli("inspect", "bb", "--json", check=True).stdout)
    assert info["entrypoint"] == ["/bin/busybox"] and info["layers"] == 1 and info["env"][1] == "GREETING=hi"
    assert info["build"]["digest"].startswith("sha256:")


def test_inspect_not_oci2bin(cli, images):
    r = cli("inspect", images.bb_docker)
    assert r.returncode == 1
    assert "is not an oci2bin binary" in one_error_line(r)
    r = cli("inspect", "/nonexistent/file")
    assert r.returncode == 1
    one_error_line(r)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["docker-archive:/nonexistent.tar"], 1, "no such file"),
        (["oci:/nonexistent-dir"], 1, "no such file"),
        (["--bogus-flag", "x"], 2, "unrecognized arguments"),
        ([], 2, "no image given"),
        (["--arch", "mips", "x.tar"], 2, "unsupported --arch"),
        (
            [
                "mkimage",
                "-o",
                "x",
                "--entrypoint",
                "not-json",
                "--add",
                "/bin/busybox:/bb",
            ],
            1,
            "JSON array",
        ),
        (["mkimage", "-o", "x"], 1, "nothing to build"),
        (["--strip-prefix", "/abs", "IMG"], 1, None),
        (["transform", "--image", "IMG", "-o", "out", "--embed-loader-layer"], 1, "oci2bin assemble"),
    ],
)
def test_bad_input_one_line(cli, tmp_path, images, args, code, needle):
    args = [images.bb_docker if a == "IMG" else a for a in args]
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    r = cli(*args, env={"TMPDIR": str(tmpdir)})
    assert r.returncode == code, r.stderr
    line = one_error_line(r)
    if needle:
        assert needle in line
    assert sorted(os.listdir(tmp_path)) == ["tmpdir"]
    assert os.listdir(tmpdir) == []


def test_corrupt_layer_no_partial_output(cli, images, tmp_path):
    import shutil

    bad = tmp_path / "bad-oci"
    shutil.copytree(images.bb_oci, bad)
    idx = json.loads((bad / "index.json").read_text())
    man = json.loads((bad / "blobs/sha256" / idx["manifests"][0]["digest"][7:]).read_text())
    blob = bad / "blobs/sha256" / man["layers"][0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    r = cli(f"oci:{bad}", "out", "--squash")  # a transform too: its temp dir must go as well
    assert r.returncode == 1
    assert "digest mismatch" in one_error_line(r) or "corrupt" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad-oci"]


def test_missing_output_dir(cli, images, tmp_path):
    r = cli(images.bb_docker, str(tmp_path / "no/such/dir/out"))
    assert r.returncode == 1
    assert "does not exist" in one_error_line(r)


def test_vm_flag_and_assemble(cli, images, tmp_path, loader_path):
    cli(
        "assemble",
        "--loader",
        loader_path,
        "--image",
        f"oci:{images.bb_oci}",
        "--output",
        "a",
        "--vm",
        check=True,
    )
    p = Polyglot(str(tmp_path / "a"))
    assert p.vm and p.metadata["image"] == "bb:latest"
    cli(
        "assemble",
        "--loader",
        loader_path,
        "--image",
        images.bb_docker,
        "--output",
        "b",
        "--ref",
        "x/y:z",
        check=True,
    )
    assert Polyglot(str(tmp_path / "b")).metadata["image"] == "x/y:z"


def test_oci2vm_name(images, tmp_path, loader_path, monkeypatch):
    from oci2bin.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCI2BIN_LOADER", loader_path)
    monkeypatch.setattr(sys, "argv", ["/usr/bin/oci2vm"])
    assert main.main([images.bb_docker]) == 0
    assert os.listdir(tmp_path) == ["oci2vm_bb_latest"]
    assert Polyglot(str(tmp_path / "oci2vm_bb_latest")).vm


def _aarch64_loader(path: Path) -> None:
    path.write_bytes(synthetic_elf())


def test_arch_all(cli, images, tmp_path, loader_path):
    arm = tmp_path / "loader-aarch64"
    _aarch64_loader(arm)
    r = cli(
        "--arch",
        "all",
        "--loader",
        loader_path,
        "--loader",
        str(arm),
        f"oci:{images.index_oci}",
        "multi",
    )
    assert r.returncode == 0, r.stderr
    assert {"multi", "multi_x86_64", "multi_aarch64"} <= set(os.listdir(tmp_path))
    assert Polyglot(str(tmp_path / "multi_aarch64")).metadata["arch"] == "arm64"
    assert Polyglot(str(tmp_path / "multi_aarch64")).metadata["loader_offset"] == 65536
    assert Polyglot(str(tmp_path / "multi_x86_64")).metadata["arch"] == "amd64"
    script = (tmp_path / "multi").read_text()
    assert script.startswith("#!/bin/sh") and "uname -m" in script
    # the wrapper execs the x86_64 file here (busybox as loader then says which name it was called by)
    w = subprocess.run([str(tmp_path / "multi"), "--help"], capture_output=True, text=True, check=False)
    assert os.uname().machine != "x86_64" or "multi_x86_64" in (w.stdout + w.stderr) or w.returncode == 0


def test_arch_mismatch_single_platform(cli, images, tmp_path):
    arm = tmp_path / "loader-aarch64"
    _aarch64_loader(arm)
    r = cli("--loader", str(arm), images.bb_docker, "x")
    assert r.returncode == 1
    assert "linux/amd64" in one_error_line(r)
    assert sorted(os.listdir(tmp_path)) == ["loader-aarch64"]


def test_no_loader(cli, images, tmp_path):
    r = cli(images.bb_docker, env={"OCI2BIN_LOADER": ""})
    assert r.returncode == 1
    assert "loader" in one_error_line(r)


def test_transforms_cli(cli, images, tmp_path):
    (tmp_path / "motd").write_text("hello\n")
    r = cli(
        f"oci:{images.multi_oci}", "t", "--add-file", f"{tmp_path}/motd:/etc/motd", "--strip", "--squash",
        "--compress", "zstd", "--layer", images.bb_docker,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(cli("inspect", "t", "--json", check=True).stdout)
    assert info["layers"] == 1
    assert info["entrypoint"] == ["/bin/busybox"]  # --layer image's entrypoint wins
    assert sorted(os.listdir(tmp_path)) == ["motd", "t"]


@pytest.mark.skipif(have("skopeo") is not None, reason="skopeo not installed")
def test_transformed_binary_accepted_by_skopeo(cli, images, tmp_path):
    (tmp_path / "f").write_text("x\n")
    cli(images.bb_docker, "t", "--add-file", f"{tmp_path}/f:/f", "--squash", check=True)
    env = dict(os.environ, TMPDIR=str(tmp_path))
    run(
        [
            "skopeo",
            "copy",
            "-q",
            f"docker-archive:{tmp_path}/t",
            f"oci:{tmp_path}/o1:x",
        ],
        env=env,
    )
    run(
        ["skopeo", "copy", "-q", f"oci-archive:{tmp_path}/t", f"oci:{tmp_path}/o2:x"],
        env=env,
    )


def test_cache_list_prune(cli, images, tmp_path, session_dir):
    cache_home = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache_home)}
    r1 = cli(images.bb_docker, "one", "--cache", env=env)
    assert r1.returncode == 0 and "using cached" not in r1.stderr
    r2 = cli(images.bb_docker, "one", "--cache", env=env)
    assert r2.returncode == 0 and "using cached" in r2.stderr
    assert (tmp_path / "one").read_bytes() == next((cache_home / "oci2bin/output").iterdir()).read_bytes()
    # a second digest of the same image name
    assert (
        cli(
            f"oci:{images.bb_oci}",
            "one",
            "--ref",
            "localhost/bb:latest",
            "--cache",
            env=env,
        ).returncode
        == 0
    )
    assert cli(images.bb_docker, "one", "--cache", env=env).returncode == 0
    r1 = cli(images.bb_docker, "one", "--cache", env=env)
    entries = json.loads(cli("list", "--json", env=env, check=True).stdout)
    assert len(entries) == 2 and {e["image"] for e in entries} == {"localhost/bb:latest"}
    table = cli("list", env=env, check=True).stdout
    assert table.splitlines()[0].split() == ["IMAGE", "DIGEST", "SIZE", "BUILT"]
    dry = cli("prune", "--dry-run", env=env, check=True).stdout
    assert "would remove" in dry
    assert len(json.loads(cli("list", "--json", env=env, check=True).stdout)) == 2
    cli("prune", env=env, check=True)
    assert len(json.loads(cli("list", "--json", env=env, check=True).stdout)) == 1


def test_mkimage_cli(cli, tmp_path, loader_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app/run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(tmp_path / "app/run.sh", 0o755)
    args = [
        "mkimage", "--add", f"{loader_path}:/bin/busybox", "--add", f"{tmp_path}/app:/app",
        "--entrypoint", '["/app/run.sh"]', "--cmd", '["x"]', "--env", "A=1", "--workdir", "/app",
        "--user", "1000:1000", "--label", "k=v", "--arch", "x86_64",
    ]  # fmt: skip
    cli(*args, "-o", "img1", check=True)
    cli(*args, "-o", "img2", check=True)
    files1 = sorted(p.relative_to(tmp_path / "img1") for p in (tmp_path / "img1").rglob("*"))
    files2 = sorted(p.relative_to(tmp_path / "img2") for p in (tmp_path / "img2").rglob("*"))
    assert files1 == files2
    for f in files1:
        if (tmp_path / "img1" / f).is_file():
            assert (tmp_path / "img1" / f).read_bytes() == (tmp_path / "img2" / f).read_bytes()
    if not have("skopeo"):
        run(["skopeo", "inspect", f"oci:{tmp_path}/img1:latest"])
    cli(
        "assemble",
        "--loader",
        loader_path,
        "--image",
        f"oci:{tmp_path}/img1",
        "--output",
        "bin",
        check=True,
    )
    info = json.loads(cli("inspect", "bin", "--json", check=True).stdout)
    assert (
        info["entrypoint"] == ["/app/run.sh"] and info["user"] == "1000:1000" and info["labels"] == {"k": "v"}
    )
    # with a base image
    cli(
        "mkimage",
        "-o",
        "img3",
        "--base",
        f"oci:{tmp_path}/img1",
        "--add",
        f"{tmp_path}/app/run.sh:/x",
        check=True,
    )
    cli(
        "assemble",
        "--loader",
        loader_path,
        "--image",
        f"oci:{tmp_path}/img3",
        "--output",
        "bin3",
        check=True,
    )
    assert json.loads(cli("inspect", "bin3", "--json", check=True).stdout)["layers"] == 2
    r = cli(*args, "-o", "img1")
    assert r.returncode == 1 and "already exists" in one_error_line(r)


# Each `oci2bin` run is a fresh interpreter: on the plain build path these would cost milliseconds of every run
# (docs/benchmarks.md section 3). hashlib (OpenSSL) and threading are needed only to hash blobs.
HEAVY_MODULES = (
    "dataclasses",
    "inspect",
    "typing",
    "tempfile",
    "shutil",
    "random",
    "subprocess",
    "tarfile",
    "gzip",
)
HASHING_MODULES = ("hashlib", "threading")


@pytest.mark.parametrize("case", ["assemble", "memo", "cached"])
def test_build_path_imports_nothing_heavy(images, tmp_path, loader_path, case):
    """A build from an OCI layout imports nothing heavy; with every blob known to the verified-blob memo
    (a rebuild) it does not load hashlib either, and neither does a cached rebuild."""
    import shutil
    import time

    from oci2bin.polyglot import reader

    code = (
        "import sys\n"
        "from oci2bin.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        f"print(' '.join(sorted(m for m in sys.modules if m in {HEAVY_MODULES + HASHING_MODULES!r})))\n"
        "sys.exit(rc)\n"
    )
    src = os.path.abspath(os.path.join(os.path.dirname(reader.__file__), "..", ".."))  # src/python
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    lay = str(tmp_path / "oci")
    shutil.copytree(images.bb_oci, lay)
    if case == "cached":
        args = [f"oci:{lay}", str(tmp_path / "out"), "--loader", loader_path, "--cache", "-q"]
        run([sys.executable, "-c", code, *args], env=env)  # stores the entry
    else:
        args = [
            "assemble",
            "-q",
            "--loader",
            loader_path,
            "--image",
            f"oci:{lay}",
            "--output",
            str(tmp_path / "out"),
        ]
        if case == "memo":
            time.sleep(2.1)  # the memo records only files older than its racy window (2 s)
            run([sys.executable, "-c", code, *args], env=env)  # hashes the blobs, records them
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    imported = set(r.stdout.split())
    assert not imported & set(HEAVY_MODULES), f"imported on the build path: {sorted(imported)}"
    if case != "assemble":  # a first build hashes the blobs
        assert not imported & set(HASHING_MODULES), f"imported without anything to hash: {sorted(imported)}"
    assert ("using cached" in r.stderr) == (case == "cached")


def test_version(cli):
    r = cli("--version", check=True)
    assert r.stdout.startswith("oci2bin 0.1.0")


def test_diff(cli, images, tmp_path):
    cli(f"oci:{images.multi_oci}", "multi", check=True)
    cli(f"oci:{images.multi_oci}", "multi2", "--squash", check=True)
    cli(images.bb_docker, "bb", check=True)
    same = cli("diff", "multi", "multi2")
    assert same.returncode == 0, same.stderr
    assert same.stdout.strip() == "0 added, 0 removed, 0 modified"
    r = cli("diff", "bb", "multi")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "+ /app/bin/hello.sh (29 B)" in lines
    assert "- /bin/vi (1.9 MB)" in lines or any(x.startswith("- /bin/vi (") for x in lines)
    assert any(x.startswith("+ /etc/motd (") for x in lines)
    assert lines[-1].endswith("modified")
    r = cli("diff", "bb")
    assert r.returncode == 2


def test_update(cli, images, tmp_path):
    cli(images.bb_docker, "u", check=True)
    before = (tmp_path / "u").read_bytes()
    r = cli("update", "u", "--image", f"docker-archive:{images.bb_docker}")
    assert r.returncode == 0 and "image unchanged" in r.stderr
    assert (tmp_path / "u").read_bytes() == before  # same image, same embedded loader: same bytes
    r = cli("update", "u", "--image", f"oci:{images.multi_oci}")
    assert r.returncode == 0, r.stderr
    p = Polyglot(str(tmp_path / "u"))
    assert len(p.image().layers) == 4 and p.metadata["image"] == "localhost/bb:latest"
    assert sorted(os.listdir(tmp_path)) == ["u"]
    r = cli("update", images.bb_docker)
    assert r.returncode == 1
    one_error_line(r)


@pytest.mark.parametrize("flag", ["--embed-loader-layer", "--embed-loader-labels"])
def test_reconstruct(cli, images, tmp_path, flag):
    cli(images.bb_docker, "plain", check=True)
    cli(images.bb_docker, "emb", flag, check=True)
    assert (tmp_path / "emb").read_bytes() != (tmp_path / "plain").read_bytes()
    cli("reconstruct", "emb", "-o", "rebuilt", check=True)
    assert (tmp_path / "rebuilt").read_bytes() == (tmp_path / "plain").read_bytes()
    cli("reconstruct", "emb", "-o", "kept", "--no-strip", check=True)
    assert (
        "oci2bin.loader.sha256" in json.loads(cli("inspect", "kept", "--json", check=True).stdout)["labels"]
    )
    r = cli("reconstruct", "plain", "-o", "nope")
    assert r.returncode == 1 and "no oci2bin.loader" in one_error_line(r)
    assert not (tmp_path / "nope").exists()


def test_sigterm_mid_write_leaves_nothing(cli, tmp_path, loader_path):
    """SIGTERM (timeout, a cancelled Pants process) while the output is being written: exit 143, one line,
    no output and no temp file left."""
    big = tmp_path / "big"
    with open(big, "wb") as f:  # random bytes: a layer that neither compresses nor copies instantly
        for _ in range(192):
            f.write(os.urandom(1 << 20))
    cli("mkimage", "--add", f"{big}:/big", "--compress", "none", "-o", "lay", check=True)
    big.unlink()
    out = tmp_path / "out"
    out.mkdir()
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OCI2BIN_VERIFY="always")
    e.setdefault("OCI2BIN_LOADER", loader_path)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oci2bin",
            "assemble",
            "--loader",
            loader_path,
            "--image",
            f"oci:{tmp_path}/lay",
            "--output",
            f"{out}/bin",
        ],
        env=e,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60

    def writing() -> bool:  # the temp output exists and has data: the writer is inside its cleanup scope
        for n in os.listdir(out):
            try:
                if n.startswith(".oci2bin-") and (out / n).stat().st_size > (1 << 20):
                    return True
            except FileNotFoundError:
                pass
        return False

    while p.poll() is None and not writing() and time.monotonic() < deadline:
        time.sleep(0.001)
    if p.poll() is not None:
        pytest.fail(
            f"assemble finished before its temp output appeared (rc {p.returncode}): {p.stderr.read()}"
        )
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.strip().splitlines()[-1] == "oci2bin: terminated", err
    assert os.listdir(out) == []
