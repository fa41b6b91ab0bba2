"""Entry point: `oci2bin IMAGE [OUTPUT]` or `oci2bin SUBCOMMAND ...`. Errors become one line on stderr."""

from __future__ import annotations

import importlib
import os
import sys

from oci2bin.errors import UserError


# subcommand -> (module in oci2bin.cli, function): imported only when that subcommand runs (each run is a fresh
# interpreter; a build should not pay for the registry client, signing or pods: docs/benchmarks.md section 3)
SUBCOMMANDS = {
    "fetch": ("fetch", "run"),
    "transform": ("transform", "run"),
    "assemble": ("build", "run_assemble"),
    "mkimage": ("mkimage", "run"),
    "inspect": ("inspect", "run"),
    "list": ("cachecmd", "run_list"),
    "prune": ("cachecmd", "run_prune"),
    "diff": ("diff", "run"),
    "update": ("update", "run"),
    "reconstruct": ("reconstruct", "run"),
    "sbom": ("sbom", "run"),
    "sign": ("signing", "run_sign"),
    "verify": ("signing", "run_verify"),
    "push": ("push", "run"),
    "ps": ("lifecycle", "run_ps"),
    "stop": ("lifecycle", "run_stop"),
    "logs": ("lifecycle", "run_logs"),
    "exec": ("execcmd", "run"),
    "pod": ("pod", "run"),
}


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        module, function = SUBCOMMANDS[argv[0]]
        return getattr(importlib.import_module(f"oci2bin.cli.{module}"), function)(argv[1:])
    if argv and argv[0] == "--version":
        from oci2bin import __version__

        sys.stdout.write(f"oci2bin {__version__}\n")
        return 0
    from oci2bin.cli import build

    return build.run(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _dispatch(argv)
    except UserError as e:
        sys.stderr.write(e.line() + "\n")
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        sys.stderr.write("oci2bin: interrupted\n")
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"oci2bin: {e.strerror or e}{where} (check paths, permissions and free space)\n")
        return 1
    except Exception as e:  # a bug: still one line, unless debugging
        if os.environ.get("OCI2BIN_DEBUG"):
            raise
        msg = " ".join(str(e).split())[:300]
        sys.stderr.write(
            f"oci2bin: internal error: {type(e).__name__}: {msg} "
            "(set OCI2BIN_DEBUG=1 for a traceback and report it)\n"
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
