"""docs/pants.md's reference section is what `./pants help` says about the oci2bin targets and options."""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.integration.pants import gen_pants_docs


def test_reference_matches_pants_help() -> None:
    root = gen_pants_docs.repo_root()
    doc_path = root / "docs" / "pants.md"
    if not (root / "pants").exists() or not doc_path.exists():
        pytest.skip(f"no repo at {root} (pants.toml [test].extra_env_vars sets OCI2BIN_REPO_ROOT)")
    with tempfile.TemporaryDirectory(prefix="pants-docs-") as workdir:
        # its own workdir: this runs inside `./pants test` of the same repo
        info = gen_pants_docs.help_all(root, f"--pants-workdir={workdir}")
    doc = doc_path.read_text()
    expected = gen_pants_docs.update(doc, gen_pants_docs.render(info))
    assert (
        doc == expected
    ), "docs/pants.md is out of date: run `python -m tests.integration.pants.gen_pants_docs`"
    for alias in (
        "oci_binary",
        "oci_image",
        "oci_image_pull",
        "oci_layout",
        "oci_archive",
        "static_c_binary",
    ):
        assert f"### `{alias}`" in doc
    assert os.path.exists(root / "examples" / "monorepo" / "BUILD")
