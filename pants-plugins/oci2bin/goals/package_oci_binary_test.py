"""The oci_binary / oci_image rules in a RuleRunner: wrong inputs fail before any process runs, with a message that
names the target; and a real build (zig loader + core pex + image + transform + assemble) whose output runs.

The real build copies the core (src/python/oci2bin) and the loader sources (src/c/loader) from the repo named by
$OCI2BIN_REPO_ROOT (pants.toml passes the build root) into the RuleRunner's build root: the plugin's own `oci2bin`
package would shadow the core's if the core were a dependency of this test.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest  # pants: no-infer-dep
from pants.backend.cc.target_types import CCSourcesGeneratorTarget, CCSourceTarget
from pants.backend.python import target_types_rules
from pants.backend.python.goals import package_pex_binary
from pants.backend.python.target_types import (
    PexBinary,
    PythonRequirementTarget,
    PythonSourcesGeneratorTarget,
    PythonSourceTarget,
)
from pants.backend.python.util_rules import pex, pex_from_targets
from pants.core.goals import package
from pants.core.goals.package import BuiltPackage
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.core.target_types import rules as core_target_types_rules
from pants.core.util_rules import source_files, system_binaries
from pants.engine.addresses import Address, Addresses
from pants.engine.fs import Digest, DigestContents
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.process import ProcessResult
from pants.engine.rules import QueryRule
from pants.engine.target import DependenciesRequest
from pants.testutil.rule_runner import RuleRunner

from oci2bin import register
from oci2bin.goals import package_oci_binary
from oci2bin.goals.package_oci_binary import OciBinaryFieldSet
from oci2bin.goals.package_oci_image import OciImageFieldSet
from oci2bin.goals.package_static_c_binary import StaticCBinaryFieldSet
from oci2bin.testutil import configure
from oci2bin.target_types import OciImageDependenciesField
from oci2bin.util_rules.core_process import CoreStep
from oci2bin.util_rules.image_sources import ImageLayout, ImageLayoutRequest

REPO_ROOT_ENV = "OCI2BIN_REPO_ROOT"


def make_rule_runner(extra_args=()) -> RuleRunner:
    rule_runner = RuleRunner(
        rules=[
            *register.rules(),
            *package_pex_binary.rules(),
            *pex.rules(),
            *pex_from_targets.rules(),
            *target_types_rules.rules(),
            *core_target_types_rules(),
            *source_files.rules(),
            *package.rules(),
            *system_binaries.rules(),
            QueryRule(BuiltPackage, [OciBinaryFieldSet]),
            QueryRule(BuiltPackage, [OciImageFieldSet]),
            QueryRule(BuiltPackage, [StaticCBinaryFieldSet]),
            QueryRule(ProcessResult, [CoreStep]),
            QueryRule(DigestContents, [Digest]),
            QueryRule(ImageLayout, [ImageLayoutRequest]),
            QueryRule(Addresses, [DependenciesRequest]),
        ],
        target_types=[
            *register.target_types(),
            CCSourcesGeneratorTarget,
            CCSourceTarget,
            FileTarget,
            FilesGeneratorTarget,
            PexBinary,
            PythonRequirementTarget,
            PythonSourcesGeneratorTarget,
            PythonSourceTarget,
        ],
    )
    configure(rule_runner, extra_args)
    return rule_runner


@pytest.fixture
def rule_runner() -> RuleRunner:
    return make_rule_runner()


def package_binary(rule_runner: RuleRunner, address: Address) -> BuiltPackage:
    target = rule_runner.get_target(address)
    return rule_runner.request(BuiltPackage, [OciBinaryFieldSet.create(target)])


def layout_files(directory: str) -> dict:
    """A minimal, valid OCI layout holding one empty image (no process reads it in the error tests)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    import hashlib

    cfg_digest = hashlib.sha256(config.encode()).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{cfg_digest}",
                "size": len(config),
            },
            "layers": [],
        }
    )
    man_digest = hashlib.sha256(manifest.encode()).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{man_digest}",
                    "size": len(manifest),
                }
            ],
        }
    )
    return {
        f"{directory}/oci-layout": '{"imageLayoutVersion":"1.0.0"}',
        f"{directory}/index.json": index,
        f"{directory}/blobs/sha256/{cfg_digest}": config,
        f"{directory}/blobs/sha256/{man_digest}": manifest,
    }


def raises(rule_runner: RuleRunner, address: Address, *fragments: str) -> str:
    with pytest.raises(ExecutionError) as exc:
        package_binary(rule_runner, address)
    message = str(exc.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------- wrong inputs (no process)

ERROR_BUILD = """
file(name="f", source="f.txt")
files(name="two", sources=["a.txt", "b.txt"])
oci_layout(name="layout", sources=["layout/**"])
oci_layout(name="two_layouts", sources=["layout/**", "layout2/**"])
static_c_binary(name="loader_arm", sources=["l.c"], arch="aarch64")
static_c_binary(name="loader_x86", sources=["l.c"])

oci_binary(name="not_an_image", image=":f")
oci_binary(name="missing_image", image=":does_not_exist")
oci_binary(name="missing_dir", image="nowhere:img")
oci_binary(name="wrong_arch_loader", image=":layout", loader=":loader_arm")
oci_binary(name="wrong_arch_loader2", image=":layout", loader=":loader_x86", arch="aarch64")
oci_binary(name="loader_not_a_binary", image=":layout", loader=":f")
oci_binary(name="two_layouts_bin", image=":two_layouts")
oci_image(name="bad_base", base=":f", files={"/f": ":f"})
oci_binary(name="bad_base_bin", image=":bad_base")
oci_image(name="multi_file", files={"/x": ":two"})
oci_binary(name="multi_file_bin", image=":multi_file")
oci_image(name="no_file", files={"/x": ":loader_missing"})
oci_binary(name="no_file_bin", image=":no_file")
oci_binary(name="layers_not_images", image=":layout", layers=[":f"])
oci_binary(name="prefix_without_embed", image=":layout", label_prefix="myorg.loader")
oci_binary(name="chunks_with_layer", image=":layout", embed_loader="layer", label_chunk_size=4096)
oci_binary(name="dir_with_labels", image=":layout", embed_loader="labels", loader_dir=".meta")
oci_binary(name="bad_mode", image=":layout", embed_loader="both")
oci_binary(name="bad_prefix", image=":layout", embed_loader="labels", label_prefix="my org.")
oci_binary(name="small_chunks", image=":layout", embed_loader="labels", label_chunk_size=255)
oci_binary(name="bad_dir", image=":layout", embed_loader="layer", loader_dir="../up")
"""


@pytest.fixture
def error_runner() -> RuleRunner:
    rule_runner = make_rule_runner()
    rule_runner.write_files(
        {
            "x/BUILD": ERROR_BUILD,
            "x/f.txt": "f",
            "x/a.txt": "a",
            "x/b.txt": "b",
            "x/l.c": "int main(void){return 0;}\n",
            **layout_files("x/layout"),
            **layout_files("x/layout2"),
        }
    )
    return rule_runner


def x(name: str) -> Address:
    return Address("x", target_name=name)


def test_image_naming_a_non_image_target(error_runner: RuleRunner) -> None:
    raises(
        error_runner,
        x("not_an_image"),
        "x:f is a `file` target, not an image",
        "the `image` field of x:not_an_image",
        "`oci_image`, `oci_image_pull`, `oci_layout` or `oci_archive`",
    )


def test_missing_image(error_runner: RuleRunner) -> None:
    raises(error_runner, x("missing_image"), "does_not_exist")
    raises(error_runner, x("missing_dir"), "nowhere")


def test_wrong_arch_loader(error_runner: RuleRunner) -> None:
    raises(
        error_runner,
        x("wrong_arch_loader"),
        "loader x:loader_arm is built for aarch64, but the binary's arch is x86_64",
    )
    raises(
        error_runner,
        x("wrong_arch_loader2"),
        "loader x:loader_x86 is built for x86_64, but the binary's arch is aarch64",
    )


def test_loader_that_is_not_a_static_c_binary(error_runner: RuleRunner) -> None:
    raises(error_runner, x("loader_not_a_binary"), "loader x:f is not a `static_c_binary`")


def test_layout_sources_must_hold_one_layout(error_runner: RuleRunner) -> None:
    raises(error_runner, x("two_layouts_bin"), "must hold exactly one OCI layout", "found 2")


def test_base_naming_a_non_image_target(error_runner: RuleRunner) -> None:
    raises(
        error_runner,
        x("bad_base_bin"),
        "x:f is a `file` target, not an image",
        "the `base` field of x:bad_base",
    )


def test_layers_naming_a_non_image_target(error_runner: RuleRunner) -> None:
    raises(error_runner, x("layers_not_images"), "x:f is a `file` target, not an image", "`layers` of")


def test_embed_options_the_mode_ignores(error_runner: RuleRunner) -> None:
    raises(
        error_runner,
        x("prefix_without_embed"),
        "x:prefix_without_embed: `label_prefix` has no effect with embed_loader='none'",
        "set embed_loader to 'layer' or 'labels'",
    )
    raises(
        error_runner,
        x("chunks_with_layer"),
        "`label_chunk_size` has no effect with embed_loader='layer'",
        "set embed_loader to 'labels'",
    )
    raises(
        error_runner,
        x("dir_with_labels"),
        "`loader_dir` has no effect with embed_loader='labels'",
        "set embed_loader to 'layer'",
    )


def test_embed_option_values(error_runner: RuleRunner) -> None:
    raises(error_runner, x("bad_mode"), "embed_loader", "'both'", "none", "layer", "labels")
    raises(
        error_runner, x("bad_prefix"), "`label_prefix` 'my org.' is not a label key prefix", "myorg.loader"
    )
    raises(error_runner, x("small_chunks"), "`label_chunk_size` 255 is too small: use at least 256 bytes")
    raises(error_runner, x("bad_dir"), "`loader_dir` '../up' must name a directory inside the image")


def test_files_entry_naming_a_missing_target(error_runner: RuleRunner) -> None:
    raises(error_runner, x("no_file_bin"), "loader_missing")


def test_files_entry_naming_several_files(error_runner: RuleRunner) -> None:
    error_runner.write_files({"x/BUILD": ERROR_BUILD})
    with pytest.raises(ExecutionError, match="it must name exactly one file"):
        error_runner.request(ImageLayout, [ImageLayoutRequest(x("multi_file"), "test")])


def test_files_of_an_oci_image_are_inferred_dependencies(error_runner: RuleRunner) -> None:
    error_runner.write_files(
        {
            "z/BUILD": 'oci_image(name="img", base="//x:layout", files={"/a": "//x:f", "/bin/l": "//x:loader_x86"})'
        }
    )
    image = error_runner.get_target(Address("z", target_name="img"))
    deps = error_runner.request(Addresses, [DependenciesRequest(image[OciImageDependenciesField])])
    assert set(deps) == {x("f"), x("loader_x86")}


def test_oci_layout_and_archive_need_no_process(error_runner: RuleRunner) -> None:
    layout = error_runner.request(ImageLayout, [ImageLayoutRequest(x("layout"), "test")])
    assert layout.spec == "oci:x/layout"
    assert layout.ref == "localhost/layout:latest"
    error_runner.write_files(
        {
            "y/BUILD": 'oci_archive(name="arch", source="img.tar", format="oci-archive", arch="aarch64")',
            "y/img.tar": "",
        }
    )
    archive = error_runner.request(
        ImageLayout, [ImageLayoutRequest(Address("y", target_name="arch"), "test")]
    )
    assert archive.spec == "oci-archive:y/img.tar"


def test_transform_arguments() -> None:
    rule_runner = make_rule_runner()
    rule_runner.write_files(
        {
            "x/BUILD": """
oci_binary(name="plain", image=":img")
oci_binary(name="all", image=":img", entrypoint=["/bin/app"], cmd=[], env=["A=1", "B=x=y"], workdir="/w",
           user="1000:1000", labels={"z": "1", "a": "2"}, strip=True, strip_prefixes=["usr/share/doc/"],
           strip_auto=True, squash=True, compression="zstd")
"""
        }
    )
    plain = OciBinaryFieldSet.create(rule_runner.get_target(x("plain")))
    assert package_oci_binary._transform_args(plain) == []  # no transform step at all
    every = OciBinaryFieldSet.create(rule_runner.get_target(x("all")))
    assert package_oci_binary._transform_args(every) == [
        "--entrypoint", '["/bin/app"]', "--cmd", "[]", "--env", "A=1", "--env", "B=x=y",
        "--label", "a=2", "--label", "z=1", "--workdir", "/w", "--user", "1000:1000", "--strip",
        "--strip-prefix", "usr/share/doc/", "--strip-auto", "--squash", "--compress", "zstd",
    ]  # fmt: skip


def test_embed_arguments() -> None:
    rule_runner = make_rule_runner()
    rule_runner.write_files(
        {
            "x/BUILD": """
oci_binary(name="none", image=":img")
oci_binary(name="layer", image=":img", embed_loader="layer")
oci_binary(name="layer_all", image=":img", embed_loader="layer", label_prefix="a.b", loader_dir=".meta/x")
oci_binary(name="labels", image=":img", embed_loader="labels")
oci_binary(name="labels_all", image=":img", embed_loader="labels", label_prefix="a.b", label_chunk_size=4096)
oci_vm_binary(name="vm_labels", image=":img", embed_loader="labels")
"""
        }
    )

    def argv(name: str) -> list:
        field_set = OciBinaryFieldSet.create(rule_runner.get_target(x(name)))
        assert package_oci_binary._transform_args(field_set) == []  # embedding is not a transform-step option
        return package_oci_binary._embed_args(field_set)

    assert argv("none") == []
    assert argv("layer") == ["--embed-loader-layer"]
    assert argv("layer_all") == ["--embed-loader-layer", "--label-prefix", "a.b", "--loader-dir", ".meta/x"]
    assert argv("labels") == ["--embed-loader-labels"]
    assert argv("labels_all") == [
        "--embed-loader-labels",
        "--label-prefix",
        "a.b",
        "--label-chunk-size",
        "4096",
    ]
    assert argv("vm_labels") == ["--embed-loader-labels"]


# ------------------------------------------------------------------------------------- a real build

HELLO_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen("/etc/release", "r"); char line[128] = "(none)";
    if (f) { if (!fgets(line, sizeof line, f)) line[0] = 0; fclose(f); }
    printf("release=%s greeting=%s pid=%d args=", line, getenv("GREETING") ? getenv("GREETING") : "-", (int)getpid());
    for (int i = 1; i < argc; i++) printf("[%s]", argv[i]);
    FILE *x = fopen("/opt/app/release", "r"); char extra[128];
    if (x) { if (fgets(extra, sizeof extra, x)) printf(" extra=%s", extra); fclose(x); }
    printf("\n");
    return argc;
}
"""

REAL_BUILD = """
static_c_binary(name="hello", sources=["hello.c"])
file(name="release", source="release")
oci_image(
    name="img",
    files={"/usr/bin/hello": ":hello", "/etc/release": ":release"},
    entrypoint=["/usr/bin/hello"],
    cmd=["from", "image"],
    env=["GREETING=image"],
    repository="localhost/rr-hello:1",
)
oci_binary(name="bin", image=":img")
oci_binary(name="bin_env", image=":img", env=["GREETING=binary"], output_path="out/bin_env")
oci_binary(name="bin_add", image=":img", add_files=[":release"], add_files_prefix="/opt")
"""


def copy_repo_sources(rule_runner: RuleRunner, repo: str) -> None:
    files = {}
    for path in glob.glob(os.path.join(repo, "src/python/oci2bin/**/*.py"), recursive=True):
        with open(path) as f:
            files[os.path.relpath(path, repo)] = f.read()
    # the loader and its C dependencies, BUILD files included, as they are in the repo
    for tree in ("src/c", "3rdparty/c"):
        for path in glob.glob(os.path.join(repo, tree, "**"), recursive=True):
            if os.path.isfile(path) and "__pycache__" not in path:
                with open(path, "rb") as f:
                    files[os.path.relpath(path, repo)] = f.read()
    with open(os.path.join(repo, "3rdparty/python/requirements.txt")) as f:
        zstd = next(line.strip() for line in f if line.startswith("zstandard=="))
    files["3rdparty/BUILD"] = f'python_requirement(name="zstandard", requirements=["{zstd}"])\n'
    files["src/python/BUILD"] = (
        'python_sources(name="lib", sources=["oci2bin/**/*.py"], dependencies=["//3rdparty:zstandard"])\n'
        'pex_binary(name="oci2bin", entry_point="oci2bin.cli.main:main", dependencies=[":lib"])\n'
    )
    rule_runner.write_files(files)


@pytest.mark.skipif(os.geteuid() != 0, reason="running the container needs root (or user namespaces as root)")
def test_real_build_runs(tmp_path) -> None:
    """SLOW (~1-3 min cold): builds the zig loader, the core pex, the image and two binaries, then runs them."""
    repo = os.environ.get(REPO_ROOT_ENV)
    if not repo or not os.path.isdir(os.path.join(repo, "src/python/oci2bin")):
        pytest.skip(f"${REPO_ROOT_ENV} does not name the repo (pants.toml [test].extra_env_vars sets it)")
    # the core is imported as `oci2bin`, so src/python must be a source root (as in pants.toml)
    rule_runner = make_rule_runner(["--source-root-patterns=['/', '/src/python']"])
    copy_repo_sources(rule_runner, repo)
    rule_runner.write_files({"app/BUILD": REAL_BUILD, "app/hello.c": HELLO_C, "app/release": "rr-1"})

    image = rule_runner.request(
        BuiltPackage, [OciImageFieldSet.create(rule_runner.get_target(Address("app", target_name="img")))]
    )
    rule_runner.write_digest(image.digest, path_prefix="img")
    layout = os.path.join(rule_runner.build_root, "img", image.artifacts[0].relpath)
    with open(os.path.join(layout, "index.json")) as f:
        assert len(json.load(f)["manifests"]) == 1

    results = {}
    for name in ("bin", "bin_env", "bin_add"):
        built = package_binary(rule_runner, Address("app", target_name=name))
        (artifact,) = built.artifacts
        rule_runner.write_digest(built.digest, path_prefix="out")
        src = os.path.join(rule_runner.build_root, "out", artifact.relpath)
        exe = tmp_path / name
        shutil.copyfile(src, exe)
        exe.chmod(0o755)
        with open(exe, "rb") as f:
            assert f.read(4) == b"\x7fELF"
        # the same file is a docker-archive: tar reads it
        with tarfile.open(exe) as tf:
            assert "manifest.json" in tf.getnames()
        default = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
        custom = subprocess.run([str(exe), "a b", "c"], capture_output=True, text=True, timeout=120)
        results[name] = (artifact.relpath, default, custom)

    relpath, default, custom = results["bin"]
    assert relpath == "app/bin"
    assert (default.returncode, default.stdout) == (
        3,
        "release=rr-1 greeting=image pid=1 args=[from][image]\n",
    ), default
    assert (custom.returncode, custom.stdout) == (
        3,
        "release=rr-1 greeting=image pid=1 args=[a b][c]\n",
    ), custom
    relpath, default, _ = results["bin_env"]
    assert relpath == "out/bin_env"
    assert default.stdout == "release=rr-1 greeting=binary pid=1 args=[from][image]\n", default
    # add_files: the `file` target lands at <add_files_prefix>/<its repo path>, in a new layer
    _, default, _ = results["bin_add"]
    assert default.stdout == "release=rr-1 greeting=image pid=1 args=[from][image] extra=rr-1\n", default


EMBED_BUILD = """
static_c_binary(name="hello", sources=["hello.c"])
oci_image(name="img", files={"/usr/bin/hello": ":hello"}, entrypoint=["/usr/bin/hello"], repository="localhost/em:1")
oci_binary(name="plain", image=":img")
oci_binary(name="layer", image=":img", embed_loader="layer", label_prefix="myorg.loader", loader_dir=".meta")
oci_binary(name="labels", image=":img", embed_loader="labels", label_chunk_size=4096)
"""


def test_real_build_embeds_the_loader() -> None:
    """SLOW (~1-3 min cold): binaries with the loader in a layer / in labels; the core's `inspect` sees the
    embedding and `reconstruct` rebuilds, from each binary alone, the binary built without it, byte for byte."""
    repo = os.environ.get(REPO_ROOT_ENV)
    if not repo or not os.path.isdir(os.path.join(repo, "src/python/oci2bin")):
        pytest.skip(f"${REPO_ROOT_ENV} does not name the repo (pants.toml [test].extra_env_vars sets it)")
    rule_runner = make_rule_runner(["--source-root-patterns=['/', '/src/python']"])
    copy_repo_sources(rule_runner, repo)
    rule_runner.write_files({"app/BUILD": EMBED_BUILD, "app/hello.c": HELLO_C})

    def contents(digest: Digest) -> dict:
        return {c.path: c.content for c in rule_runner.request(DigestContents, [digest])}

    def core(argv: tuple, digest: Digest, output: str = "") -> ProcessResult:
        step = CoreStep(argv, digest, f"test: oci2bin {argv[0]}", output_files=(output,) if output else ())
        return rule_runner.request(ProcessResult, [step])

    loader_target = rule_runner.get_target(Address("src/c/loader", target_name="loader-x86_64"))
    (loader,) = contents(
        rule_runner.request(BuiltPackage, [StaticCBinaryFieldSet.create(loader_target)]).digest
    ).values()
    built = {
        name: package_binary(rule_runner, Address("app", target_name=name))
        for name in ("plain", "layer", "labels")
    }
    plain = contents(built["plain"].digest)["app/plain"]

    info = {}
    for name in built:
        result = core(("inspect", "--json", f"app/{name}"), built[name].digest)
        info[name] = json.loads(result.stdout)
    assert not any(k.startswith("oci2bin.loader.") for k in info["plain"]["labels"])
    assert info["plain"]["build"]["loader_size"] == len(loader)

    layer = info["layer"]["labels"]
    assert info["layer"]["layers"] == info["plain"]["layers"] + 1  # the loader's own layer
    assert layer["myorg.loader.strategy"] == "layer"
    assert layer["myorg.loader.path"] == "/.meta/loader"
    assert layer["myorg.loader.sha256"] == hashlib.sha256(loader).hexdigest()
    assert not any(k.startswith("oci2bin.loader.") for k in layer)  # the prefix is the field's

    labels = info["labels"]["labels"]
    assert info["labels"]["layers"] == info["plain"]["layers"]  # no layer added
    assert labels["oci2bin.loader.strategy"] == "labels"
    assert labels["oci2bin.loader.sha256"] == hashlib.sha256(loader).hexdigest()
    assert int(labels["oci2bin.loader.chunks"]) == -(-len(loader) // 4096)  # label_chunk_size
    chunks = [labels[f"oci2bin.loader.chunk.{i:04d}"] for i in range(int(labels["oci2bin.loader.chunks"]))]
    assert b"".join(base64.b64decode(c) for c in chunks) == loader

    for name, prefix in (("layer", "myorg.loader"), ("labels", "oci2bin.loader")):
        argv = (
            "reconstruct",
            f"app/{name}",
            "--output",
            "rebuilt",
            "--label-prefix",
            prefix,
            "--ref",
            "localhost/em:1",
            "-q",
        )
        rebuilt = contents(core(argv, built[name].digest, "rebuilt").output_digest)["rebuilt"]
        assert rebuilt == plain, f"reconstruct from {name} differs from the binary built without embedding"
