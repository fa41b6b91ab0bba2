"""Run the oci2bin core (the repo's own Python library + CLI) as a hermetic, cached process.

The backend never re-implements the core: it builds the `pex_binary` named by `[oci2bin].core` once and runs
its subcommands (`mkimage`, `assemble`, ...), each as its own process whose cache key is its input digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from pants.backend.python.target_types import (
    PexEntryPointField,
    ResolvedPexEntryPoint,
    ResolvePexEntryPointRequest,
)
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import Address
from pants.engine.fs import Digest
from pants.engine.internals.native_engine import AddressInput
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from oci2bin.subsystems.oci2bin import Oci2binSubsystem

# Builds are reproducible only with a fixed clock: the core honours SOURCE_DATE_EPOCH for every timestamp it
# writes. 2023-11-14T22:13:20Z, the same epoch the test rig uses.
SOURCE_DATE_EPOCH = "1700000000"


@dataclass(frozen=True)
class OciCore:
    pex: VenvPex


@rule(desc="Build the oci2bin core", level=LogLevel.DEBUG)
async def build_oci_core(options: Oci2binSubsystem) -> OciCore:
    origin = "the option `[oci2bin].core`"
    address = await Get(Address, AddressInput, AddressInput.parse(options.core, description_of_origin=origin))
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin))
    entry_point = await Get(
        ResolvedPexEntryPoint, ResolvePexEntryPointRequest(wrapped.target[PexEntryPointField])
    )
    pex_request = await Get(
        PexRequest,
        PexFromTargetsRequest(
            [address], output_filename="oci2bin-core.pex", internal_only=True, main=entry_point.val
        ),
    )
    return OciCore(await Get(VenvPex, PexRequest, pex_request))


@dataclass(frozen=True)
class CoreStep:
    """One invocation of the core: `oci2bin ARGV...` over `input_digest`."""

    argv: Tuple[str, ...]
    input_digest: Digest
    description: str
    output_files: Tuple[str, ...] = ()
    output_directories: Tuple[str, ...] = ()
    timeout_seconds: Optional[int] = None


@rule(level=LogLevel.DEBUG)
async def run_core_step(step: CoreStep, core: OciCore) -> ProcessResult:
    return await Get(
        ProcessResult,
        VenvPexProcess(
            core.pex,
            argv=step.argv,
            input_digest=step.input_digest,
            output_files=step.output_files,
            output_directories=step.output_directories,
            extra_env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "OCI2BIN_NO_PROGRESS": "1"},
            description=step.description,
            timeout_seconds=step.timeout_seconds,
            level=LogLevel.INFO,
        ),
    )


def rules():
    return [*collect_rules()]
