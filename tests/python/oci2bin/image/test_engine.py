"""Reading an image from a local engine: podman save (docker has no daemon here)."""

from __future__ import annotations

import contextlib

import pytest
from oci2bin.errors import UserError
from oci2bin.image import engine
from oci2bin.image.source import Source, load_image


def test_podman_save(images, podman, monkeypatch):
    podman.run("load", "-q", "-i", images.bb_docker)
    for k, v in podman.env.items():
        monkeypatch.setenv(k, v)
    with contextlib.ExitStack() as stack:
        im = load_image(Source("podman", "localhost/bb:latest"), stack)
        from oci2bin.image.archive import read_docker_archive

        ref = read_docker_archive(images.bb_docker)
        assert im.config_digest == ref.config_digest
        assert all(b.read_bytes() for b in im.layers)
        assert im.source_name == "localhost/bb:latest"


def test_engine_missing_image(podman, monkeypatch, tmp_path):
    for k, v in podman.env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match="cannot export image"):
        engine.save("localhost/does-not-exist:1", str(tmp_path), "podman")


def test_registry_ref_found_in_local_engine(images, podman, monkeypatch):
    """A bare reference is taken from a local engine when it has it (no network needed)."""
    from oci2bin.image.archive import read_docker_archive
    from oci2bin.image.source import parse_source

    podman.run("load", "-q", "-i", images.bb_docker)
    for k, v in podman.env.items():
        monkeypatch.setenv(k, v)
    with contextlib.ExitStack() as stack:
        im = load_image(parse_source("localhost/bb:latest"), stack)
        assert im.config_digest == read_docker_archive(images.bb_docker).config_digest
