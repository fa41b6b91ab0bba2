"""Images from a local container engine: `docker save` / `podman save` into a temp archive, then read it."""

from __future__ import annotations

import os
import shutil
import subprocess

from oci2bin.errors import UserError
from oci2bin.image.archive import read_docker_archive
from oci2bin.image.model import Image, Platform

ENGINES = ("docker", "podman")


def available_engines() -> list[str]:
    return [e for e in ENGINES if shutil.which(e)]


def has_image(engine: str, ref: str) -> bool:
    try:
        r = subprocess.run(
            [engine, "image", "inspect", ref],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def save(ref: str, workdir: str, engine: str | None = None, platform: Platform | None = None) -> Image:
    """Export `ref` from the first engine that has it into `workdir` (caller owns and cleans it) and read it."""
    engines = [engine] if engine else available_engines()
    if not engines:
        raise UserError(
            f"cannot find image {ref!r}: no docker or podman on PATH",
            "pass an archive or oci: layout",
        )
    errors = []
    for eng in engines:
        if not shutil.which(eng):
            errors.append(f"{eng}: not installed")
            continue
        if not has_image(eng, ref):
            errors.append(f"{eng}: no such image")
            continue
        out = os.path.join(workdir, f"{eng}-save.tar")
        cmd = [eng, "save", "-o", out, ref]
        if eng == "podman":
            cmd[2:2] = ["--format", "docker-archive"]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            msg = (r.stderr.strip().splitlines() or ["failed"])[-1]
            errors.append(f"{eng} save: {msg}")
            continue
        return read_docker_archive(out, tag=None, platform=platform)
    raise UserError(
        f"cannot export image {ref!r} ({'; '.join(errors)})",
        "pull it first or pass an archive",
    )
