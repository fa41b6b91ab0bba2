"""`oci2bin inspect BINARY [--json]`: show what an oci2bin binary holds, without running it."""

from __future__ import annotations

import json
import sys

from oci2bin.cli.common import Parser
from oci2bin.naming import repo_name
from oci2bin.polyglot.reader import Polyglot


def parser() -> Parser:
    p = Parser(prog="oci2bin inspect", description="Show the image inside an oci2bin binary.")
    p.add_argument("binary")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def collect(path: str) -> dict:
    p = Polyglot(path)
    md = p.metadata
    image = p.image()
    rc = image.run_config
    return {
        "image": md.get("image", ""),
        "architecture": image.platform.architecture,
        "os": image.platform.os,
        "layers": len(image.layers),
        "layer_digests": [b.digest for b in image.layers],
        "size": sum(b.size for b in image.layers),
        "entrypoint": rc.get("Entrypoint"),
        "cmd": rc.get("Cmd"),
        "workdir": rc.get("WorkingDir") or "",
        "user": rc.get("User") or "",
        "env": list(rc.get("Env") or []),
        "labels": dict(rc.get("Labels") or {}),
        "exposed_ports": sorted((rc.get("ExposedPorts") or {}).keys()),
        "vm": p.vm,
        "build": {
            "image": md.get("image", ""),
            "digest": md.get("digest", ""),
            "config_digest": md.get("config_digest", ""),
            "created": md.get("created", ""),
            "tool_version": md.get("tool_version", ""),
            "loader_arch": md.get("loader_arch", ""),
            "loader_size": md.get("loader_size", 0),
            "format": md.get("format"),
        },
    }


def render(info: dict) -> str:
    def j(v) -> str:
        return json.dumps(v) if v is not None else "(none)"

    lines = [
        f"Image: {info['image'] or '(unnamed)'}",
        f"Architecture: {info['architecture']}",
        f"Layers: {info['layers']}",
        f"Entrypoint: {j(info['entrypoint'])}",
        f"Cmd: {j(info['cmd'])}",
        f"WorkingDir: {info['workdir'] or '/'}",
    ]
    if info["user"]:
        lines.append(f"User: {info['user']}")
    lines.append("Env:" + ("" if info["env"] else " (none)"))
    lines += [f"  {e}" for e in info["env"]]
    if info["labels"]:
        lines.append("Labels:")
        chunks = [k for k in info["labels"] if ".chunk." in k]
        lines += [f"  {k}={v}" for k, v in sorted(info["labels"].items()) if k not in chunks]
        if chunks:
            lines.append(f"  ({len(chunks)} loader chunk labels not shown)")
    if info["vm"]:
        lines.append("Mode: vm")
    b = info["build"]
    lines += [
        "Build metadata:",
        f"  Image: {b['image'] or '(unnamed)'}",
        f"  Digest: {repo_name(b['image'] or None)}@{b['digest']}",
        f"  Config: {b['config_digest']}",
        f"  Built: {b['created'] or '(unknown)'}",
        f"  oci2bin: {b['tool_version']}",
        f"  Loader: {b['loader_arch']} ({b['loader_size']} bytes)",
    ]
    return "\n".join(lines) + "\n"


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    info = collect(args.binary)
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(info))
    return 0
