"""Shared CLI plumbing: argument parser that fails with one line, progress on a TTY, platform choice."""

from __future__ import annotations

import argparse
import os
import sys

from oci2bin.errors import UserError
from oci2bin.image.model import Platform
from oci2bin.polyglot.format import OCI_ARCH


class UsageError(UserError):
    exit_code = 2


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized without `import shutil` (argparse builds one per add_argument call, and
    shutil with its compression modules costs ~2.5 ms of every CLI start): same rule as
    shutil.get_terminal_size, $COLUMNS, else the terminal on stdout, else 80."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width=None) -> None:
        if width is None:
            try:
                columns = int(os.environ.get("COLUMNS", "0"))
            except ValueError:
                columns = 0
            if columns <= 0:
                try:
                    columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    columns = 0
            width = (columns or 80) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, f"see {self.prog} --help")


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def progress_for(label: str, enabled: bool | None = None):
    """A (done, total) callback drawing on stderr, only when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\roci2bin: writing {label}: {pct:3d}% ({human_size(done)}){end}")
        sys.stderr.flush()

    return show


def note(msg: str) -> None:
    sys.stderr.write(f"oci2bin: {msg}\n")


def platform_for(arch: str | None, platform: str | None) -> Platform | None:
    """--platform wins; --arch x86_64|aarch64|amd64|arm64 -> linux/<oci arch>."""
    if platform:
        return Platform.parse(platform)
    if arch:
        return Platform.parse(OCI_ARCH.get(arch, arch))
    return None


def uname_arch(arch: str) -> str:
    a = Platform.parse(arch).architecture
    return {v: k for k, v in OCI_ARCH.items()}.get(a, a)


def prog_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "oci2bin"


def new_layout_dir(out: str) -> str:
    """Check that `out` can become a new OCI layout directory (absent or empty); create its parent.

    Returns the parent, where temporary work goes (same filesystem as the result)."""
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"{out} already exists", "remove it or choose another --output")
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    return parent
