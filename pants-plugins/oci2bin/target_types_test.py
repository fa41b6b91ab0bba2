"""Field validation of the oci2bin targets: bad values fail when the BUILD file is parsed, naming the target."""

from __future__ import annotations

import pytest  # pants: no-infer-dep
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import RuleRunner

from oci2bin.target_types import (
    CompressionField,
    EnvField,
    OciArchiveTarget,
    OciBinaryImageField,
    OciBinaryTarget,
    OciImageFilesField,
    OciImagePullTarget,
    OciImageTarget,
    OciLayoutTarget,
    OciVmBinaryTarget,
    PullDigestField,
    StaticCBinaryTarget,
    StripPrefixesField,
    VmKernelField,
    VmModeField,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        target_types=[
            FileTarget,
            FilesGeneratorTarget,
            StaticCBinaryTarget,
            OciImageTarget,
            OciImagePullTarget,
            OciLayoutTarget,
            OciArchiveTarget,
            OciBinaryTarget,
            OciVmBinaryTarget,
        ]
    )


def target(rule_runner: RuleRunner, build: str, name: str = "t"):
    rule_runner.write_files({"x/BUILD": build})
    return rule_runner.get_target(Address("x", target_name=name))


def fails(rule_runner: RuleRunner, build: str, *fragments: str, name: str = "t") -> str:
    """Parsing `build` must fail; the message must name the target and contain every fragment."""
    with pytest.raises(ExecutionError) as exc:
        target(rule_runner, build, name)
    message = str(exc.value)
    for fragment in (f"x:{name}", *fragments):
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------------------------------- good values


def test_valid_targets_parse(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "x/BUILD": f"""
oci_image_pull(name="base", repository="127.0.0.1:5000/library/python", digest="{DIGEST}", tag="3.11")
oci_image(name="img", base=":base", files={{"/app/run": ":f"}}, env=["A=1", "EMPTY="], workdir="/app")
file(name="f", source="run.sh")
oci_binary(name="bin", image=":img", strip_prefixes=["usr/share/doc/", "var/cache"], compression="zstd",
           env=["B=2"], labels={{"k": "v"}}, add_files_prefix="/opt")
oci_vm_binary(name="vm", image=":img", kernel=":f")
""",
            "x/run.sh": "",
        }
    )
    pull = rule_runner.get_target(Address("x", target_name="base"))
    assert pull[PullDigestField].value == DIGEST
    img = rule_runner.get_target(Address("x", target_name="img"))
    assert dict(img[OciImageFilesField].value) == {"/app/run": ":f"}
    assert img[EnvField].value == ("A=1", "EMPTY=")
    binary = rule_runner.get_target(Address("x", target_name="bin"))
    assert binary[OciBinaryImageField].single == ":img"
    assert binary[StripPrefixesField].value == ("usr/share/doc/", "var/cache")
    assert binary[CompressionField].value == "zstd"
    assert binary[VmModeField].value is False
    assert rule_runner.get_target(Address("x", target_name="vm"))[VmModeField].value is True
    assert rule_runner.get_target(Address("x", target_name="vm"))[VmKernelField].single == ":f"
    assert binary[VmKernelField].value is None


def test_image_accepts_a_one_element_list(rule_runner: RuleRunner) -> None:
    t = target(rule_runner, 'oci_binary(name="t", image=[":img"])')
    assert t[OciBinaryImageField].value == (":img",)


# ---------------------------------------------------------------------------------------------- digests


@pytest.mark.parametrize(
    "digest",
    [
        "latest",
        "sha256:abc",  # too short
        "sha256:" + "AB" * 32,  # upper case
        "sha512:" + "ab" * 64,  # other algorithm
        "sha256:" + "ab" * 32 + "0",  # too long
        " sha256:" + "ab" * 32,
    ],
)
def test_bad_digest(rule_runner: RuleRunner, digest: str) -> None:
    fails(
        rule_runner,
        f'oci_image_pull(name="t", repository="r.example/x", digest="{digest}")',
        "`digest` must be `sha256:` followed by 64 lowercase hex digits",
    )


def test_pull_needs_a_digest(rule_runner: RuleRunner) -> None:
    fails(rule_runner, 'oci_image_pull(name="t", repository="r.example/x")', "digest")


def test_pull_needs_a_repository(rule_runner: RuleRunner) -> None:
    fails(rule_runner, f'oci_image_pull(name="t", digest="{DIGEST}")', "repository")


# ---------------------------------------------------------------------------------------------- oci_binary


@pytest.mark.parametrize("alias", ["oci_binary", "oci_vm_binary"])
def test_binary_without_image(rule_runner: RuleRunner, alias: str) -> None:
    fails(rule_runner, f'{alias}(name="t")', "image")


def test_image_takes_exactly_one_address(rule_runner: RuleRunner) -> None:
    fails(rule_runner, 'oci_binary(name="t", image=[":a", ":b"])', "takes exactly one address")


def test_loader_takes_exactly_one_address(rule_runner: RuleRunner) -> None:
    fails(rule_runner, 'oci_binary(name="t", image=":a", loader=[":l1", ":l2"])', "takes exactly one address")


@pytest.mark.parametrize("prefix", ["../etc", "usr/../../etc/", "usr/share/..", "/usr/share/doc"])
def test_strip_prefixes_must_be_relative_without_dotdot(rule_runner: RuleRunner, prefix: str) -> None:
    fails(
        rule_runner,
        f'oci_binary(name="t", image=":img", strip_prefixes=["usr/share/doc/", "{prefix}"])',
        f"`strip_prefixes` entry {prefix!r}",
        "must be relative and must not contain `..`",
    )


@pytest.mark.parametrize("alias", ["oci_binary", "oci_image"])
@pytest.mark.parametrize("item", ["NOEQUALS", "=value", ""])
def test_env_entries_must_be_key_value(rule_runner: RuleRunner, alias: str, item: str) -> None:
    image = 'image=":img", ' if alias == "oci_binary" else ""
    fails(
        rule_runner,
        f'{alias}(name="t", {image}env=["OK=1", "{item}"])',
        f"`env` entry {item!r} is not KEY=VALUE",
    )


@pytest.mark.parametrize("field,value", [("compression", "xz"), ("arch", "riscv64")])
def test_invalid_choices(rule_runner: RuleRunner, field: str, value: str) -> None:
    fails(rule_runner, f'oci_binary(name="t", image=":img", {field}="{value}")', value)


def test_unknown_field_is_an_error(rule_runner: RuleRunner) -> None:
    fails(rule_runner, 'oci_binary(name="t", image=":img", stripp=True)', "stripp")


# ---------------------------------------------------------------------------------------------- oci_image


@pytest.mark.parametrize("path", ["usr/bin/app", "./app", "/usr/../etc/passwd", "/a/../../b"])
def test_files_keys_must_be_absolute_without_dotdot(rule_runner: RuleRunner, path: str) -> None:
    fails(
        rule_runner,
        f'oci_image(name="t", files={{"/ok": ":f", "{path}": ":f"}})',
        f"`files` key {path!r} must be an absolute container path",
    )


def test_oci_image_without_files_is_a_base_only_image(rule_runner: RuleRunner) -> None:
    # `files` is optional (a base plus config changes), but the field is still present: it is how
    # the rules recognise an `oci_image`.
    t = target(rule_runner, 'oci_image(name="t", base=":b", entrypoint=["/bin/sh"])')
    assert t.has_field(OciImageFilesField) and t[OciImageFilesField].value is None


def test_archive_format_choices(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"x/image.tar": ""})
    fails(rule_runner, 'oci_archive(name="t", source="image.tar", format="tarball")', "tarball")


# ---------------------------------------------------------------------------------------------- `pants help`


def test_every_compute_value_override_is_annotated() -> None:
    """`pants help <target>` / `help-all` read `raw_value`'s type hint of every field (KeyError without it)."""
    from typing import get_type_hints

    from oci2bin import register

    for target_type in register.target_types():
        for field in target_type.core_fields:
            hints = get_type_hints(field.compute_value)
            assert (
                "raw_value" in hints
            ), f"{target_type.alias}.{field.alias}: annotate compute_value's raw_value"
