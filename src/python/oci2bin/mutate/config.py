"""Pure config edits: entrypoint, cmd, env, workdir, user, labels (Image -> Image)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from oci2bin.errors import UserError
from oci2bin.image.model import Image, Platform, canonical_json
from oci2bin.mutate.layertar import default_mtime


def iso_time(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_json_array(text: str, flag: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(
            f"{flag} must be a JSON array of strings, got {text!r}",
            f'e.g. {flag} \'["/bin/sh","-c"]\'',
        )
    return value


def parse_kv(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"{flag} needs KEY=VALUE, got {text!r}", f"e.g. {flag} NAME=value")
    return key, value


@dataclass(frozen=True)
class ConfigChanges:
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    extra: dict = field(default_factory=dict)

    def empty(self) -> bool:
        return self == ConfigChanges()


def apply_config(image: Image, ch: ConfigChanges) -> Image:
    if ch.empty():
        return image
    cfg = image.config
    rc = dict(cfg.get("config") or {})
    if ch.entrypoint is not None:
        rc["Entrypoint"] = ch.entrypoint
        if ch.cmd is None:
            rc.pop("Cmd", None)  # docker semantics: a new ENTRYPOINT resets CMD
    if ch.cmd is not None:
        rc["Cmd"] = ch.cmd
    if ch.env:
        env = list(rc.get("Env") or [])
        for key, value in ch.env:
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        rc["Env"] = env
    if ch.workdir is not None:
        rc["WorkingDir"] = ch.workdir
    if ch.user is not None:
        rc["User"] = ch.user
    if ch.labels:
        labels = dict(rc.get("Labels") or {})
        labels.update(dict(ch.labels))
        rc["Labels"] = labels
    cfg["config"] = rc
    return image.replace(config_bytes=canonical_json(cfg))


def scratch_image(platform: Platform) -> Image:
    """An image with no layers (FROM scratch)."""
    cfg = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": iso_time(default_mtime()),
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    if platform.variant:
        cfg["variant"] = platform.variant
    return Image(config_bytes=canonical_json(cfg), layers=())
