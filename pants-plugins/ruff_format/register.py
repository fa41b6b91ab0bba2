"""`ruff format --check` as a Pants linter.

Pants 2.17's ruff backend only lints (`ruff [--fix]`); formatting checks arrived later. This reuses the `[ruff]`
tool (same version, config and `skip_ruff`), so `pants lint ::` checks lint and format with one pinned ruff.
"""

from __future__ import annotations

from typing import Any

from pants.backend.python.lint.ruff.subsystem import Ruff, RuffFieldSet
from pants.backend.python.util_rules import pex
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.core.goals.lint import LintResult, LintTargetsRequest
from pants.core.util_rules.config_files import ConfigFiles, ConfigFilesRequest
from pants.core.util_rules.partitions import PartitionerType
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.fs import Digest, MergeDigests
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel
from pants.util.meta import classproperty
from pants.util.strutil import pluralize


class RuffFormatCheckRequest(LintTargetsRequest):
    field_set_type = RuffFieldSet
    tool_subsystem = Ruff
    partitioner_type = PartitionerType.DEFAULT_SINGLE_PARTITION

    @classproperty
    def tool_name(cls) -> str:
        return "ruff format"


@rule(desc="Check formatting with ruff", level=LogLevel.DEBUG)
async def ruff_format_check(
    request: RuffFormatCheckRequest.Batch[RuffFieldSet, Any], ruff: Ruff
) -> LintResult:
    sources = await Get(SourceFiles, SourceFilesRequest(fs.source for fs in request.elements))
    ruff_pex, config_files = await MultiGet(
        Get(VenvPex, PexRequest, ruff.to_pex_request()),
        Get(ConfigFiles, ConfigFilesRequest, ruff.config_request(sources.snapshot.dirs)),
    )
    input_digest = await Get(Digest, MergeDigests((sources.snapshot.digest, config_files.snapshot.digest)))
    conf_args = [f"--config={ruff.config}"] if ruff.config else []
    result = await Get(
        FallibleProcessResult,
        VenvPexProcess(
            ruff_pex,
            argv=("format", "--check", "--diff", *conf_args, *sources.snapshot.files),
            input_digest=input_digest,
            description=f"Run ruff format --check on {pluralize(len(sources.snapshot.files), 'file')}.",
            level=LogLevel.DEBUG,
        ),
    )
    return LintResult.create(request, result, strip_chroot_path=True)


def rules():
    return [*collect_rules(), *RuffFormatCheckRequest.rules(), *pex.rules()]
