"""Fetch a pinned PyPI sdist from the index the machine's pip is configured with, check its sha256, and
extract the requested files. The process is a pure function of (requirement, sha256, files), so its
output is cached (and remote-cached) like any build step; the network is touched once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex_environment import PythonExecutable
from pants.engine.fs import EMPTY_DIGEST, Digest
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

_SCRIPT = r"""
import hashlib, io, json, os, re, ssl, subprocess, sys, tarfile, urllib.parse, urllib.request
req, sha, out, *files = sys.argv[1:]
name, version = req.split("==")

# The index and CA come from the machine's own pip configuration (env, then config files), else pip's default.
conf = {}
listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
for line in listing.splitlines():
    key, _, value = line.partition("=")
    conf[key.strip().split(".", 1)[-1]] = value.strip().strip("'\"")
index = os.environ.get("PIP_INDEX_URL") or conf.get("index-url")
if not index:
    from pip._internal.models.index import PyPI
    index = PyPI.simple_url
cert = os.environ.get("PIP_CERT") or conf.get("cert")
ctx = ssl.create_default_context(cafile=cert) if cert else ssl.create_default_context()

def get(url, accept="*/*"):
    r = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(r, context=ctx, timeout=120) as resp:
        return resp.geturl(), resp.read()

project = re.sub(r"[-_.]+", "-", name).lower()
page_url, page = get(index.rstrip("/") + f"/{project}/", "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
wanted = f"{name}-{version}.tar.gz"
try:
    links = [(f["filename"], f["url"]) for f in json.loads(page)["files"]]
except ValueError:
    links = [(urllib.parse.unquote(h.split("#")[0].rsplit("/", 1)[-1]), h)
             for h in re.findall(r'href="([^"]+)"', page.decode())]
urls = [urllib.parse.urljoin(page_url, u) for f, u in links if f == wanted]
if not urls:
    sys.exit(f"{wanted} is not on the package index {index}")
_, data = get(urls[0])
got = hashlib.sha256(data).hexdigest()
if got != sha:
    sys.exit(f"{wanted} has sha256 {got}, the BUILD file pins {sha}: refusing it")
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    os.makedirs(out, exist_ok=True)
    for f in files:
        member = t.getmember(f"{name}-{version}/{f}")
        with open(os.path.join(out, os.path.basename(f)), "wb") as dst:
            dst.write(t.extractfile(member).read())
"""


@dataclass(frozen=True)
class SdistFilesRequest:
    requirement: str
    sha256: str
    files: Tuple[str, ...]
    output_dir: str


@dataclass(frozen=True)
class SdistFiles:
    digest: Digest


@rule(desc="Fetch files from a PyPI sdist", level=LogLevel.DEBUG)
async def fetch_sdist_files(request: SdistFilesRequest) -> SdistFiles:
    python = await Get(PythonExecutable, InterpreterConstraints(["CPython==3.11.*"]))
    result = await Get(
        ProcessResult,
        Process(
            argv=(
                python.path,
                "-c",
                _SCRIPT,
                request.requirement,
                request.sha256,
                request.output_dir,
                *request.files,
            ),
            input_digest=EMPTY_DIGEST,
            output_directories=(request.output_dir,),
            # `pip config list` reads the machine's own config files (index, mirror, CA).
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "."},
            description=f"Fetching {request.requirement} (sdist, sha256 {request.sha256[:12]})",
            level=LogLevel.INFO,
        ),
    )
    return SdistFiles(result.output_digest)


def rules():
    return [*collect_rules()]
