"""Entry point: `oci2bin IMAGE [OUTPUT]` or `oci2bin SUBCOMMAND ...`. Errors become one line on stderr."""

from __future__ import annotations

import os
import sys

from oci2bin.errors import UserError


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    if argv and argv[0] == "--version":
        from oci2bin import __version__

        sys.stdout.write(f"oci2bin {__version__}\n")
        return 0
    from oci2bin.cli import build

    return build.run(argv)


def _assemble(argv: list[str]) -> int:
    from oci2bin.cli import build

    return build.run_assemble(argv)


def _mkimage(argv: list[str]) -> int:
    from oci2bin.cli import mkimage

    return mkimage.run(argv)


def _inspect(argv: list[str]) -> int:
    from oci2bin.cli import inspect

    return inspect.run(argv)


def _list(argv: list[str]) -> int:
    from oci2bin.cli import cachecmd

    return cachecmd.run_list(argv)


def _prune(argv: list[str]) -> int:
    from oci2bin.cli import cachecmd

    return cachecmd.run_prune(argv)


def _diff(argv: list[str]) -> int:
    from oci2bin.cli import diff

    return diff.run(argv)


def _update(argv: list[str]) -> int:
    from oci2bin.cli import update

    return update.run(argv)


def _reconstruct(argv: list[str]) -> int:
    from oci2bin.cli import reconstruct

    return reconstruct.run(argv)


def _fetch(argv: list[str]) -> int:
    from oci2bin.cli import fetch

    return fetch.run(argv)


def _transform(argv: list[str]) -> int:
    from oci2bin.cli import transform

    return transform.run(argv)


def _sbom(argv: list[str]) -> int:
    from oci2bin.cli import sbom

    return sbom.run(argv)


def _sign(argv: list[str]) -> int:
    from oci2bin.cli import signing

    return signing.run_sign(argv)


def _verify(argv: list[str]) -> int:
    from oci2bin.cli import signing

    return signing.run_verify(argv)


def _push(argv: list[str]) -> int:
    from oci2bin.cli import push

    return push.run(argv)


def _ps(argv: list[str]) -> int:
    from oci2bin.cli import lifecycle

    return lifecycle.run_ps(argv)


def _stop(argv: list[str]) -> int:
    from oci2bin.cli import lifecycle

    return lifecycle.run_stop(argv)


def _logs(argv: list[str]) -> int:
    from oci2bin.cli import lifecycle

    return lifecycle.run_logs(argv)


def _exec(argv: list[str]) -> int:
    from oci2bin.cli import execcmd

    return execcmd.run(argv)


def _pod(argv: list[str]) -> int:
    from oci2bin.cli import pod

    return pod.run(argv)


SUBCOMMANDS = {
    "fetch": _fetch,
    "transform": _transform,
    "assemble": _assemble,
    "mkimage": _mkimage,
    "inspect": _inspect,
    "list": _list,
    "prune": _prune,
    "diff": _diff,
    "update": _update,
    "reconstruct": _reconstruct,
    "sbom": _sbom,
    "sign": _sign,
    "verify": _verify,
    "push": _push,
    "ps": _ps,
    "stop": _stop,
    "logs": _logs,
    "exec": _exec,
    "pod": _pod,
}


class _Terminated(BaseException):
    """SIGTERM (timeout, a cancelled Pants process) unwinds like Ctrl-C, so temp outputs are discarded."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import signal  # built in: costs nothing at start-up

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _dispatch(argv)
    except UserError as e:
        sys.stderr.write(e.line() + "\n")
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        sys.stderr.write("oci2bin: interrupted\n")
        return 130
    except _Terminated:
        sys.stderr.write("oci2bin: terminated\n")
        return 143
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
