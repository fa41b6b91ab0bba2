"""Compile and link a static musl executable with the hermetic `zig` toolchain.

C files go through `zig cc`; each `.zig` file becomes an object with `zig build-obj` (how the loader reaches Zig's
standard-library codecs and hashes through a C ABI) and is linked in. All paths are sandbox-relative and the
output is stripped, so the bytes do not depend on where or when the build ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Tuple

from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.engine.fs import EMPTY_DIGEST, Digest, MergeDigests
from pants.engine.process import ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from oci2bin.subsystems.zig import ZigSubsystem

ZIG_TARGETS = {"x86_64": "x86_64-linux-musl", "aarch64": "aarch64-linux-musl"}
# zig needs a writable cache; keep its (expensive: it builds musl per target once) global cache as a named
# cache, and the per-invocation local cache inside the sandbox.
_ZIG_ENV = {"ZIG_GLOBAL_CACHE_DIR": ".cache/zig", "ZIG_LOCAL_CACHE_DIR": "zig-local-cache"}
_ZIG_CACHES = {"zig": ".cache/zig"}


@dataclass(frozen=True)
class StaticBinaryRequest:
    """Everything one static executable is built from."""

    input_digest: Digest
    c_files: Tuple[str, ...]
    zig_files: Tuple[str, ...]
    include_dirs: Tuple[str, ...]
    arch: str
    copts: Tuple[str, ...]
    defines: Tuple[str, ...]
    output_path: str
    description: str
    # Third-party C files (e.g. libzstd): compiled once per arch into their own cached objects, without the
    # project's -Werror, and linked in.
    vendored_c_files: Tuple[str, ...] = ()
    vendored_digest: Digest = EMPTY_DIGEST  # only the vendored files: the objects' cache key
    # (.zig file name, -mcpu) pairs: those files are built for that CPU (code entered after a run-time CPU check)
    zig_cpu: Tuple[Tuple[str, str], ...] = ()


# Flags for vendored code (libzstd): -O2, as its decoder is on the loader's first-start path (-Os costs ~40% of
# its speed, docs/benchmarks.md); separate sections so the link drops the unused compressor.
_VENDORED_COPTS = ("-O2", "-std=gnu11", "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class StaticBinary:
    digest: Digest
    path: str


def _zig_process(zig: VenvPex, argv, input_digest: Digest, outputs, description: str, level=LogLevel.DEBUG):
    return VenvPexProcess(
        zig,
        argv=tuple(argv),
        input_digest=input_digest,
        output_files=tuple(outputs),
        extra_env=_ZIG_ENV,
        append_only_caches=_ZIG_CACHES,
        description=description,
        level=level,
    )


@rule(desc="Compile a static executable with zig", level=LogLevel.DEBUG)
async def build_static_binary(request: StaticBinaryRequest, zig_tool: ZigSubsystem) -> StaticBinary:
    if request.arch not in ZIG_TARGETS:
        raise ValueError(f"unsupported arch {request.arch!r}: use one of {sorted(ZIG_TARGETS)}")
    if not request.c_files:
        raise ValueError(f"{request.description}: no .c files to compile")
    triple = ZIG_TARGETS[request.arch]
    zig = await Get(VenvPex, PexRequest, zig_tool.to_pex_request())

    zig_cpu = dict(request.zig_cpu)
    unknown = sorted(set(zig_cpu) - {os.path.basename(z) for z in request.zig_files})
    if unknown:
        raise ValueError(
            f"{request.description}: zig_cpu names files that are not among its .zig sources: {unknown}"
        )
    objects = tuple(f"{os.path.splitext(z)[0]}.{request.arch}.o" for z in request.zig_files)
    obj_results = await MultiGet(
        Get(
            ProcessResult,
            VenvPexProcess,
            _zig_process(
                zig,
                [
                    "build-obj",
                    "-target",
                    triple,
                    *(
                        (f"-mcpu={zig_cpu[os.path.basename(src)]}",)
                        if os.path.basename(src) in zig_cpu
                        else ()
                    ),
                    "-O",
                    "ReleaseFast",
                    "-fstrip",
                    "-fno-PIC",
                    f"-femit-bin={obj}",
                    src,
                ],
                request.input_digest,
                [obj],
                f"Compiling {src} ({request.arch})",
            ),
        )
        for src, obj in zip(request.zig_files, objects)
    )
    vendored_objects = tuple(f"{os.path.splitext(c)[0]}.{request.arch}.o" for c in request.vendored_c_files)
    vendored_results = await MultiGet(
        Get(
            ProcessResult,
            VenvPexProcess,
            _zig_process(
                zig,
                [
                    "cc",
                    "-target",
                    triple,
                    "-c",
                    *_VENDORED_COPTS,
                    f"-I{os.path.dirname(src)}",
                    "-o",
                    obj,
                    src,
                ],
                request.vendored_digest,
                [obj],
                f"Compiling {src} ({request.arch})",
            ),
        )
        for src, obj in zip(request.vendored_c_files, vendored_objects)
    )
    objects = (*objects, *vendored_objects)
    link_input = await Get(
        Digest,
        MergeDigests([request.input_digest, *(r.output_digest for r in (*obj_results, *vendored_results))]),
    )
    argv = [
        "cc",
        "-target",
        triple,
        "-static",
        "-s",
        *request.copts,
        *(f"-D{d}" for d in request.defines),
        *(f"-I{d}" for d in request.include_dirs),
        "-o",
        request.output_path,
        *request.c_files,
        *objects,
    ]
    result = await Get(
        ProcessResult,
        VenvPexProcess,
        _zig_process(zig, argv, link_input, [request.output_path], request.description, LogLevel.INFO),
    )
    return StaticBinary(result.output_digest, request.output_path)


def rules():
    return [*collect_rules()]
