"""static_c_binary: the hermetic zig build, for both architectures, byte-reproducible."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest  # pants: no-infer-dep
from pants.backend.cc.target_types import CCSourcesGeneratorTarget, CCSourceTarget
from pants.backend.python.util_rules import pex
from pants.core.goals import package
from pants.core.goals.package import BuiltPackage
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.core.util_rules import source_files, system_binaries
from pants.engine.addresses import Address
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from oci2bin.goals import package_static_c_binary
from oci2bin.goals.package_static_c_binary import StaticCBinaryFieldSet
from oci2bin.subsystems import zig
from oci2bin.target_types import PypiSdistFilesTarget, StaticCBinaryTarget
from oci2bin.testutil import configure
from oci2bin.util_rules import pypi_sdist, zig_compile

SOURCES = {
    "c/BUILD": (
        "cc_sources(name='src')\n"
        "static_c_binary(name='hi', dependencies=[':src'])\n"
        "static_c_binary(name='hi-arm', dependencies=[':src'], arch='aarch64')\n"
    ),
    "bad/BUILD": "static_c_binary(name='bad', sources=['bad.c'])\n",
    "z/BUILD": (
        "pypi_sdist_files(name='libzstd', requirement='zstandard==0.23.0',\n"
        "    sha256='b2d8c62d08e7255f68f7a740bae85b3c9b8e5466baa9cbf7f57f1cde0ac6bc09',\n"
        "    files=['zstd/zstd.c', 'zstd/zstd.h', 'zstd/zstd_errors.h'], output_dir='third_party/zstd',\n"
        "    compile=['zstd.c'])\n"
        "static_c_binary(name='zv', sources=['zv.c'], dependencies=[':libzstd'])\n"
    ),
    "z/zv.c": '#include <stdio.h>\n#include "zstd.h"\nint main(void){printf("%u\\n", ZSTD_versionNumber());return 0;}\n',
    "c/hi.c": '#include "hi.h"\n#include <stdio.h>\nint main(void){puts(MSG);return 7;}\n',
    "c/hi.h": '#define MSG "hi from a static binary"\n',
    "bad/bad.c": "int main(void){int unused; return 0;}\n",
    # zig_cpu: one .zig file built for another CPU than the baseline (what the loader's SHA-NI build uses)
    "zc/BUILD": (
        "files(name='zig', sources=['*.zig'])\n"
        "static_c_binary(name='plain', sources=['main.c'], dependencies=[':zig'])\n"
        "static_c_binary(name='sha', sources=['main.c'], dependencies=[':zig'],\n"
        "    zig_cpu={'feat.zig': 'baseline+sha+avx2'})\n"
        "static_c_binary(name='typo', sources=['main.c'], dependencies=[':zig'], zig_cpu={'fet.zig': 'native'})\n"
    ),
    "zc/main.c": (
        "#include <stdio.h>\nint feat_sha(void);\nint other_sha(void);\n"
        'int main(void){printf("%d %d\\n", feat_sha(), other_sha());return 0;}\n'
    ),
    # compile-time answers only: the programs run on any x86_64 CPU
    "zc/feat.zig": (
        'const builtin = @import("builtin");\n'
        "export fn feat_sha() c_int { return @intFromBool(builtin.cpu.hasAll(.x86, &.{ .sha, .avx2 })); }\n"
    ),
    "zc/other.zig": (
        'const builtin = @import("builtin");\n'
        "export fn other_sha() c_int { return @intFromBool(builtin.cpu.hasAll(.x86, &.{ .sha, .avx2 })); }\n"
    ),
}


def make_rule_runner(**kwargs) -> RuleRunner:
    rule_runner = RuleRunner(
        rules=[
            *package_static_c_binary.rules(),
            *zig_compile.rules(),
            *pypi_sdist.rules(),
            *zig.rules(),
            *pex.rules(),
            *source_files.rules(),
            *package.rules(),
            *system_binaries.rules(),
            QueryRule(BuiltPackage, [StaticCBinaryFieldSet]),
        ],
        target_types=[
            CCSourcesGeneratorTarget,
            CCSourceTarget,
            StaticCBinaryTarget,
            PypiSdistFilesTarget,
            FilesGeneratorTarget,
            FileTarget,
        ],
        **kwargs,
    )
    configure(rule_runner)
    rule_runner.write_files(SOURCES)
    return rule_runner


def build(rule_runner: RuleRunner, name: str, directory: str = "c") -> bytes:
    target = rule_runner.get_target(Address(directory, target_name=name))
    built = rule_runner.request(BuiltPackage, [StaticCBinaryFieldSet.create(target)])
    (artifact,) = built.artifacts
    rule_runner.write_digest(built.digest, path_prefix="out")
    with open(os.path.join(rule_runner.build_root, "out", artifact.relpath), "rb") as f:
        return f.read()


def run(path: str, *prefix: str) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, path], capture_output=True, text=True, timeout=120)


def test_x86_64_static_binary_runs(tmp_path) -> None:
    data = build(make_rule_runner(), "hi")
    assert data[:4] == b"\x7fELF" and data[18] == 62  # e_machine EM_X86_64
    exe = tmp_path / "hi"
    exe.write_bytes(data)
    exe.chmod(0o755)
    result = run(str(exe))
    assert (result.returncode, result.stdout) == (7, "hi from a static binary\n")
    # static: no program interpreter
    assert b"/lib/ld-" not in data and b"ld-musl" not in data


def test_aarch64_static_binary_runs_under_qemu(tmp_path) -> None:
    qemu = shutil.which("qemu-aarch64-static")
    data = build(make_rule_runner(), "hi-arm")
    assert data[:4] == b"\x7fELF" and data[18] == 183  # e_machine EM_AARCH64
    if qemu is None:
        pytest.skip("qemu-aarch64-static is not installed (apt-get install qemu-user-static)")
    exe = tmp_path / "hi-arm"
    exe.write_bytes(data)
    exe.chmod(0o755)
    result = run(str(exe), qemu)
    assert (result.returncode, result.stdout) == (7, "hi from a static binary\n")


def test_two_clean_builds_are_byte_identical() -> None:
    first = build(make_rule_runner(isolated_local_store=True), "hi")
    second = build(make_rule_runner(isolated_local_store=True), "hi")
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_warnings_are_errors() -> None:
    with pytest.raises(Exception, match="unused"):
        build(make_rule_runner(), "bad", "bad")


def test_vendored_sdist_sources_are_fetched_checked_and_linked(tmp_path) -> None:
    """libzstd from the pinned `zstandard` sdist (fetched from the configured package index, sha256-checked)."""
    exe = tmp_path / "zv"
    exe.write_bytes(build(make_rule_runner(), "zv", "z"))
    exe.chmod(0o755)
    result = run(str(exe))
    assert result.returncode == 0 and result.stdout.strip().isdigit() and int(result.stdout) >= 10500


def test_sdist_with_wrong_hash_is_refused() -> None:
    rule_runner = make_rule_runner()
    rule_runner.write_files({"z/BUILD": SOURCES["z/BUILD"].replace("b2d8c62d", "00000000")})
    with pytest.raises(Exception, match="refusing it"):
        build(rule_runner, "zv", "z")


def test_zig_cpu_builds_only_the_named_file_for_that_cpu(tmp_path) -> None:
    rule_runner = make_rule_runner()
    outputs = {}
    for name in ("plain", "sha"):
        exe = tmp_path / name
        exe.write_bytes(build(rule_runner, name, "zc"))
        exe.chmod(0o755)
        result = run(str(exe))
        assert result.returncode == 0, result.stderr
        outputs[name] = result.stdout
    assert outputs == {"plain": "0 0\n", "sha": "1 0\n"}


def test_zig_cpu_naming_a_missing_file_is_refused() -> None:
    with pytest.raises(
        Exception, match=r"zig_cpu names files that are not among its .zig sources: \['fet.zig'\]"
    ):
        build(make_rule_runner(), "typo", "zc")
