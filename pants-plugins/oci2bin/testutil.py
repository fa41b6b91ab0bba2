"""Shared RuleRunner set-up for the backend's tests (options that make the hermetic toolchain work in tests)."""

from __future__ import annotations

import os
from typing import Iterable

from pants.testutil.rule_runner import RuleRunner

# The pex CLI that ./pants built from PyPI (Pants' default download URL is unreachable on CI machines);
# pants.toml passes its location to tests in this variable.
PEX_CLI_ENV = "OCI2BIN_PEX_CLI"


def configure(rule_runner: RuleRunner, extra_args: Iterable[str] = ()) -> None:
    pex_cli = os.environ.get(PEX_CLI_ENV, "")
    args = [
        "--source-root-patterns=['/']",
        "--python-interpreter-constraints=['CPython==3.11.*']",
        "--python-bootstrap-search-path=['<PYENV>', '/usr/local/bin', '/usr/bin']",
        "--zig-lockfile=<none>",
        "--subprocess-environment-env-vars=['PIP_CONFIG_FILE=/dev/null']",
    ]
    ca_certs = os.environ.get("PANTS_CA_CERTS_PATH")
    if ca_certs:  # machines whose TLS goes through a custom CA (./pants exports this)
        args.append(f"--ca-certs-path={ca_certs}")
    if pex_cli:
        args.append(f"--pex-cli-url-template=file://{pex_cli}")
        args.append(
            "--pex-cli-known-versions=['v2.1.137|linux_x86_64|"
            "9f144d7c41d60d01924e5db26aa206a5e0f68bc5c3bd552d1f1fcb77001b9015|3563509']"
        )
    rule_runner.set_options([*args, *extra_args], env_inherit={"PATH", "HOME", "PYENV_ROOT"})
