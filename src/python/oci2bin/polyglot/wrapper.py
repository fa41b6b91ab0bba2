"""The `--arch all` wrapper: a POSIX sh script that execs NAME_$(uname -m) from its own directory."""

from __future__ import annotations

import os
import tempfile


def wrapper_script(base: str, arches: list[str]) -> bytes:
    cases = "\n".join(f'  {a}) exec "$dir/{base}_{a}" "$@" ;;' for a in arches)
    if "aarch64" in arches:
        cases += f'\n  arm64) exec "$dir/{base}_aarch64" "$@" ;;'
    if "x86_64" in arches:
        cases += f'\n  amd64) exec "$dir/{base}_x86_64" "$@" ;;'
    return (
        "#!/bin/sh\n"
        "# oci2bin multi-arch wrapper: keep it next to the per-architecture binaries\n"
        'dir=$(dirname -- "$0")\n'
        'case "$(uname -m)" in\n'
        f"{cases}\n"
        '  *) echo "oci2bin: no binary for architecture $(uname -m)" >&2; exit 126 ;;\n'
        "esac\n"
    ).encode()


def write_wrapper(path: str, base: str, arches: list[str]) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".oci2bin-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(wrapper_script(base, arches))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
