"""Real test images, built locally from Debian packages (no Docker Hub), cached and reproducible.

    from tests.rig import images
    layout = images.build("redis")            # Path of an OCI image layout, tag "latest"
    images.ref("redis")                        # "oci:<layout>:latest" (skopeo/podman/oci2bin transport)
    images.docker_archive("busybox")           # Path of a docker-archive tar (RepoTags localhost/busybox:latest)
    images.oci_archive("multilayer")           # Path of an oci-archive tar

Images (NAMES): busybox, busybox-httpd, scratch, multilayer, busybox-zstd, busybox-v2s2, busybox-index2, redis,
nginx, postgres, memcached, apache2, caddy (aliases: zstd, v2s2, index2). The recipes are shell scripts in
tests/rig/images/ (see each script's header for what the image holds); docs/testing.md describes the rig.

Cache: $OCI2BIN_RIG_CACHE or ~/.cache/oci2bin-rig. An image's key hashes its recipe files, the fixed
SOURCE_DATE_EPOCH, the versions of the tools that write it (umoci, skopeo, mmdebstrap) and the Debian package
versions it is made of (apt-cache's candidates for the packages' dependency closure; the installed
busybox-static for the busybox images), so `apt-get update` bringing a new package version rebuilds it. Builds
are serialised per image with flock (pytest-xdist / Pants run test files in parallel processes: one builds, the
others wait and reuse). Work dirs are a private tmpfs (a mount namespace that dies with the build). Builds need
root (mmdebstrap's root mode; real file owners).

CLI: python -m tests.rig.images build [NAME...] [--archives] | list | times | path NAME | check FILE | prune
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RECIPES = Path(__file__).resolve().parent / "images"
SOURCE_DATE_EPOCH = 1700000000  # 2023-11-14T22:13:20Z: every timestamp in every rig image
SUITE = "bookworm"
KEY_VERSION = "rig-v1"  # bump to invalidate every cached image

# Base of every Debian image (minbase = Essential + required); their closure joins each image's key.
_MINBASE = [
    "base-files",
    "base-passwd",
    "bash",
    "bsdutils",
    "coreutils",
    "dash",
    "debconf",
    "debianutils",
    "diffutils",
    "dpkg",
    "findutils",
    "grep",
    "gzip",
    "hostname",
    "init-system-helpers",
    "libc-bin",
    "login",
    "mawk",
    "ncurses-base",
    "ncurses-bin",
    "perl-base",
    "sed",
    "sysvinit-utils",
    "tar",
    "util-linux",
    "apt",
]


class RigError(RuntimeError):
    """An image could not be built (the message says why and what to do)."""


class MissingToolError(RigError):
    pass


@dataclass(frozen=True)
class Spec:
    script: str  # recipe in tests/rig/images/
    tools: tuple[str, ...]  # executables the recipe needs
    apt: tuple[str, ...] = ()  # Debian packages fetched by mmdebstrap (closure -> key)
    host_pkgs: tuple[str, ...] = ()  # host packages whose files go into the image (installed version -> key)
    deps: tuple[str, ...] = ()  # images this one is derived from (DEP_<NAME> env)
    extra: tuple[str, ...] = ()  # more recipe files (part of the key)
    description: str = ""
    skopeo_readable: bool = True  # skopeo 1.9.3 finds no Docker-media-type descriptor in an OCI layout
    docker_archive_ok: bool = True  # skopeo 1.9.3 cannot write zstd layers into a docker-archive


_BASE_TOOLS = ("umoci", "tar", "python3", "unshare", "mount")
SPECS: dict[str, Spec] = {
    "busybox": Spec(
        "busybox.sh",
        _BASE_TOOLS,
        host_pkgs=("busybox-static",),
        description="official-busybox-like: 1 layer, applets as hard links, CMD sh",
    ),
    "busybox-httpd": Spec(
        "busybox.sh",
        _BASE_TOOLS,
        host_pkgs=("busybox-static",),
        description="busybox + ENTRYPOINT httpd, CMD -p 8080, USER 65534, EXPOSE, labels",
    ),
    "scratch": Spec(
        "busybox.sh",
        _BASE_TOOLS,
        host_pkgs=("busybox-static",),
        description="FROM scratch: only /busybox, USER 1000:1000",
    ),
    "multilayer": Spec(
        "multilayer.sh",
        _BASE_TOOLS,
        host_pkgs=("busybox-static",),
        extra=("multilayer_layers.py",),
        description="4 layers: whiteouts, opaque dirs, hard links, modes, owners",
    ),
    "busybox-zstd": Spec(
        "variants.sh",
        _BASE_TOOLS + ("skopeo",),
        deps=("busybox",),
        docker_archive_ok=False,
        description="busybox with tar+zstd layers",
    ),
    "busybox-v2s2": Spec(
        "variants.sh",
        _BASE_TOOLS + ("skopeo",),
        deps=("busybox",),
        skopeo_readable=False,
        description="busybox as a Docker v2s2 manifest in an OCI layout",
    ),
    "busybox-index2": Spec(
        "variants.sh",
        _BASE_TOOLS + ("skopeo", "mmdebstrap", "dpkg-deb"),
        deps=("busybox",),
        apt=("busybox-static",),
        host_pkgs=("busybox-static",),
        description="image index: linux/amd64 + linux/arm64/v8 (real aarch64 busybox)",
    ),
}
for _n, _pkg, _d in [
    ("redis", "redis-server", "redis-server, USER redis, VOLUME /data, docker-entrypoint.sh"),
    ("nginx", "nginx-light", "nginx-light, root master + www-data workers, $NGINX_PORT template"),
    ("postgres", "postgresql-15", "postgresql-15, USER postgres, initdb on first start, VOLUME PGDATA"),
    ("memcached", "memcached", "memcached, USER memcache"),
    ("apache2", "apache2", "apache2, apache2-foreground, Listen ${APACHE_PORT}, www-data children"),
    ("caddy", "caddy", "caddy, CMD caddy run --config /etc/caddy/Caddyfile, :${CADDY_PORT}, admin API off"),
]:
    SPECS[_n] = Spec("debian.sh", _BASE_TOOLS + ("mmdebstrap", "chroot"), apt=(_pkg,), description=_d)

ALIASES = {"zstd": "busybox-zstd", "v2s2": "busybox-v2s2", "index2": "busybox-index2"}
NAMES = tuple(SPECS)
DEBIAN_IMAGES = ("redis", "nginx", "postgres", "memcached", "apache2", "caddy")
_DEBIAN_RECIPES = ("debian.sh",)  # mmdebstrap minbase images (its closure joins their key)

# apt package that provides each tool (for error messages and install-deps.sh)
TOOL_PACKAGES = {
    "umoci": "umoci",
    "skopeo": "skopeo",
    "mmdebstrap": "mmdebstrap",
    "tar": "tar",
    "python3": "python3",
    "unshare": "util-linux",
    "mount": "mount",
    "chroot": "coreutils",
    "dpkg-deb": "dpkg",
    "podman": "podman",
}


def tool_path() -> str:
    """$PATH plus the standard system dirs (a sandbox's PATH may lack /usr/sbin, where chroot lives)."""
    dirs = os.environ.get("PATH", "").split(os.pathsep) + [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    return os.pathsep.join(dict.fromkeys(d for d in dirs if d))


def _log(msg: str) -> None:
    print(f"rig: {msg}", file=sys.stderr, flush=True)


def canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in SPECS:
        raise RigError(f"unknown rig image {name!r}; known: {', '.join(NAMES)}")
    return name


def cache_root() -> Path:
    env = os.environ.get("OCI2BIN_RIG_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "oci2bin-rig"
    root.mkdir(parents=True, exist_ok=True)
    return root


# ---------------------------------------------------------------------------------------------- apt facts


def apt_mirrors(suite: str = SUITE, root: str = "/") -> list[str]:
    """ "deb URI SUITE COMPONENTS" lines for `suite` (and -updates/-security) from this machine's apt config
    (deb822 /etc/apt/sources.list.d/*.sources and one-line sources.list / *.list; disabled entries skipped)."""
    out: list[str] = []
    etc = os.path.join(root, "etc/apt")
    for f in sorted(glob.glob(f"{etc}/sources.list.d/*.sources")):
        try:
            text = Path(f).read_text()
        except OSError:
            continue
        for block in re.split(r"\n\s*\n", text):
            kv = {}
            for m in re.finditer(r"^([A-Za-z][\w-]*):[ \t]*(.*)$", block, re.MULTILINE):
                kv[m.group(1).lower()] = m.group(2).strip()
            if "deb" not in kv.get("types", "deb").split() or not kv.get("uris"):
                continue
            if kv.get("enabled", "yes").lower() == "no":
                continue
            for suite_ in kv.get("suites", "").split():
                if suite_ == suite or suite_.startswith(suite + "-"):
                    out.append(f"deb {kv['uris'].split()[0]} {suite_} {kv.get('components', 'main')}")
    for f in [f"{etc}/sources.list"] + sorted(glob.glob(f"{etc}/sources.list.d/*.list")):
        try:
            lines = Path(f).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if (
                len(words) >= 3
                and words[0] == "deb"
                and (words[2] == suite or words[2].startswith(suite + "-"))
            ):
                out.append(" ".join(words))
    return list(dict.fromkeys(out))


def _apt_state() -> str:
    h = hashlib.sha256()
    for f in sorted(glob.glob("/var/lib/apt/lists/*")) + ["/var/lib/dpkg/status"]:
        try:
            st = os.stat(f)
        except OSError:
            continue
        h.update(f"{f} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _run(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


@functools.cache
def package_versions(pkgs: tuple[str, ...]) -> dict[str, str]:
    """Candidate versions (apt-cache policy) of `pkgs` and their Depends/Pre-Depends closure.

    Memoised in the cache dir per state of the apt lists (the closure takes ~1 s)."""
    if not pkgs:
        return {}
    memo_key = hashlib.sha256(("\n".join(sorted(pkgs)) + _apt_state()).encode()).hexdigest()[:24]
    memo = cache_root() / "aptmemo" / f"{memo_key}.json"
    try:
        return json.loads(memo.read_text())
    except (OSError, ValueError):
        pass
    if not shutil.which("apt-cache"):
        raise MissingToolError("rig: apt-cache not found: the Debian rig images need a Debian host with apt")
    deps = _run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *pkgs,
        ]
    )
    names = sorted(
        {ln.strip() for ln in deps.splitlines() if ln and not ln[0].isspace() and not ln.startswith("<")}
    )
    policy = _run(["apt-cache", "policy", *names], env={**os.environ, "LC_ALL": "C"})
    versions: dict[str, str] = {}
    cur = None
    for ln in policy.splitlines():
        if ln and not ln[0].isspace() and ln.endswith(":"):
            cur = ln[:-1]
        elif cur and ln.strip().startswith("Candidate:"):
            versions[cur] = ln.split(":", 1)[1].strip()
    missing = [p for p in pkgs if versions.get(p, "(none)") == "(none)"]
    if missing:
        raise RigError(
            f"rig: apt knows no candidate for {', '.join(missing)}: run `apt-get update` "
            "(tests/rig/install-deps.sh does)"
        )
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(versions, sort_keys=True))
    os.replace(tmp, memo)
    return versions


def _installed_version(pkg: str) -> str:
    try:
        return _run(["dpkg-query", "-W", "-f=${Version}", pkg]).strip()
    except (OSError, subprocess.CalledProcessError):
        raise MissingToolError(
            f"rig: host package {pkg} is not installed: apt-get install {pkg} "
            "(or run tests/rig/install-deps.sh)"
        ) from None


@functools.cache
def _tool_version(tool: str) -> str:
    try:
        return _run([tool, "--version"]).strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


# ------------------------------------------------------------------------------------------------ keys


def check_tools(name: str) -> None:
    spec = SPECS[canonical(name)]
    missing = [t for t in spec.tools if not shutil.which(t, path=tool_path())]
    if missing:
        pkgs = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
        raise MissingToolError(
            f"rig image {name!r} needs {', '.join(missing)}, not found on PATH: "
            f"apt-get install {' '.join(pkgs)} (or run tests/rig/install-deps.sh)"
        )


@functools.cache
def key_inputs(name: str) -> dict[str, object]:
    """Everything the image depends on (hashed into its cache key; stored in its meta.json)."""
    name = canonical(name)
    spec = SPECS[name]
    check_tools(name)
    files = {}
    for f in ("lib.sh", spec.script) + spec.extra:
        files[f] = hashlib.sha256((RECIPES / f).read_bytes()).hexdigest()
    apt = package_versions(
        tuple(sorted(set(spec.apt) | (set(_MINBASE) if spec.script in _DEBIAN_RECIPES else set())))
    )
    return {
        "key_version": KEY_VERSION,
        "name": name,
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "recipes": files,
        "tools": {
            t: _tool_version(t) for t in ("umoci", "skopeo", "mmdebstrap") if t in spec.tools or t == "umoci"
        },
        "host_packages": {p: _installed_version(p) for p in spec.host_pkgs},
        "apt_candidates": apt,
        "deps": {d: key(d) for d in spec.deps},
    }


def key(name: str) -> str:
    blob = json.dumps(key_inputs(canonical(name)), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _entry(name: str) -> Path:
    name = canonical(name)
    return cache_root() / "images" / name / key(name)


class _Lock:
    def __init__(self, name: str):
        d = cache_root() / "locks"
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / f"{name}.lock"
        self.fd = -1

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another process building {self.path.stem} ...")
            t0 = time.monotonic()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            _log(f"... got {self.path.stem} after {time.monotonic() - t0:.1f} s")
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


# ----------------------------------------------------------------------------------------------- build


def _is_layout(p: Path) -> bool:
    return (p / "index.json").is_file() and (p / "oci-layout").is_file()


def build(name: str) -> Path:
    """The OCI image layout of rig image `name` (tag "latest"), built on first use, then cached."""
    name = canonical(name)
    spec = SPECS[name]
    dep_paths = {d: build(d) for d in spec.deps}
    entry = _entry(name)
    layout = entry / "oci"
    if _is_layout(layout) and (entry / "meta.json").is_file():
        return layout
    with _Lock(name):
        if _is_layout(layout) and (entry / "meta.json").is_file():
            return layout
        _build_locked(name, spec, entry, dep_paths)
    return layout


def _build_locked(name: str, spec: Spec, entry: Path, dep_paths: dict[str, Path]) -> None:
    if os.geteuid() != 0:
        raise RigError(
            f"rig image {name!r} must be built as root (mmdebstrap root mode, real file owners); "
            f"build it once as root (python -m tests.rig.images build {name}) and share "
            f"OCI2BIN_RIG_CACHE={cache_root()}"
        )
    check_tools(name)
    mirrors = apt_mirrors() if (spec.script in _DEBIAN_RECIPES or spec.apt) else []
    if (spec.script in _DEBIAN_RECIPES or spec.apt) and not mirrors:
        raise RigError(
            f"rig: no '{SUITE}' deb source in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources;"
            f" image {name!r} is built with mmdebstrap from the machine's configured mirror"
        )
    root = cache_root()
    # leftovers of a build that was killed (we hold the image's lock: nobody else is building it)
    for stale in (root / "images" / name).glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    reap_stale()
    staging = root / "images" / name / f".tmp-{os.getpid()}-{int(time.time())}"
    work = root / "work" / f"{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    work.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    logfile = logs / f"{name}-{entry.name}.log"
    env = {
        "PATH": tool_path(),
        "HOME": os.environ.get("HOME", "/root"),
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "W": str(work),
        "RIG_MIRRORS": "\n".join(mirrors),
        "LC_ALL": "C",
    }
    for d, p in dep_paths.items():
        env["DEP_" + re.sub(r"\W", "_", d.upper())] = str(p)
    if os.environ.get("RIG_MMDEBSTRAP_OPTS"):
        env["RIG_MMDEBSTRAP_OPTS"] = os.environ["RIG_MMDEBSTRAP_OPTS"]
    # run a snapshot of the recipe files (bash reads scripts lazily: an edit during a build must not bite)
    snap = staging / ".recipe"
    snap.mkdir()
    for f in ("lib.sh", spec.script) + spec.extra:
        shutil.copy2(RECIPES / f, snap / f)
    script = snap / spec.script
    # a private tmpfs at $W: gone when the build's mount namespace ends, whatever happens to the build
    inner = 'mount -t tmpfs -o size=12g,mode=0700 rig-work "$W" && exec bash "$0" "$@"'
    cmd = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        inner,
        str(script),
        name,
        str(staging / "oci"),
    ]
    _log(f"building {name} (key {entry.name}; log {logfile}) ...")
    t0 = time.monotonic()
    tail: list[str] = []
    try:
        with open(logfile, "w") as log:
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                cwd=str(work),
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-25:]
                if line.startswith("rig:"):
                    print(line, end="", file=sys.stderr, flush=True)
            rc = proc.wait()
        seconds = time.monotonic() - t0
        if rc != 0 or not _is_layout(staging / "oci"):
            raise RigError(
                f"rig: building image {name!r} failed (exit {rc}); log {logfile}; last lines:\n  "
                + "\n  ".join(tail)
            )
        meta = {
            "name": name,
            "key": entry.name,
            "build_seconds": round(seconds, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inputs": key_inputs(name),
            "log": str(logfile),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(snap)
        if entry.exists():  # half-finished leftover (no meta.json): replace
            shutil.rmtree(entry)
        os.replace(staging, entry)
        with open(root / "build-times.jsonl", "a") as f:
            f.write(
                json.dumps(
                    {
                        "name": name,
                        "key": entry.name,
                        "seconds": meta["build_seconds"],
                        "at": meta["built_at"],
                    }
                )
                + "\n"
            )
        _log(f"built {name} in {seconds:.1f} s")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            work.rmdir()
        except OSError:
            shutil.rmtree(work, ignore_errors=True)


def meta(name: str) -> dict[str, object]:
    """meta.json of the built image: build_seconds, built_at, inputs (package versions...)."""
    build(name)
    return json.loads((_entry(name) / "meta.json").read_text())


def ref(name: str, tag: str = "latest") -> str:
    """Transport reference of the OCI layout: oci:<dir>:<tag>."""
    return f"oci:{build(name)}:{tag}"


def _derived(name: str, filename: str, make) -> Path:
    name = canonical(name)
    layout = build(name)
    out = layout.parent / filename
    if out.is_file():
        return out
    with _Lock(name):
        if not out.is_file():
            check_tools_list(["skopeo"], name)
            tmp = out.with_name(f".{filename}.{os.getpid()}.tmp")
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            make(layout, tmp)
            os.replace(tmp, out)
    return out


def check_tools_list(tools: list[str], why: str) -> None:
    missing = [t for t in tools if not shutil.which(t, path=tool_path())]
    if missing:
        raise MissingToolError(
            f"rig ({why}) needs {', '.join(missing)}: apt-get install "
            f"{' '.join(sorted({TOOL_PACKAGES.get(t, t) for t in missing}))}"
        )


def _skopeo_readable(name: str) -> None:
    if not SPECS[name].skopeo_readable:
        raise RigError(
            f"rig image {name!r}: skopeo 1.9.3 cannot read it (its index.json descriptor has a Docker "
            "media type); an archive of it would be the busybox image's: use that"
        )


def docker_archive(name: str) -> Path:
    """docker-archive tar of the image (RepoTags localhost/<name>:latest); for an index, this machine's platform."""
    name = canonical(name)
    _skopeo_readable(name)
    if not SPECS[name].docker_archive_ok:
        raise RigError(
            f"rig image {name!r}: skopeo 1.9.3 cannot write its zstd layers into a docker-archive "
            '("zstd compression is not supported for docker images"); use its OCI layout or oci_archive()'
        )

    def make(layout: Path, tmp: Path) -> None:
        _run(
            ["skopeo", "copy", "-q", f"oci:{layout}:latest", f"docker-archive:{tmp}:localhost/{name}:latest"]
        )

    return _derived(name, "docker-archive.tar", make)


def oci_archive(name: str) -> Path:
    """oci-archive tar (a tar of an OCI layout, tag latest) of the image."""
    name = canonical(name)
    _skopeo_readable(name)

    def make(layout: Path, tmp: Path) -> None:
        if SPECS[name].script == "variants.sh" and name == "busybox-index2":
            _run(["skopeo", "copy", "-q", "--all", f"oci:{layout}:latest", f"oci-archive:{tmp}:latest"])
        else:
            _run(["skopeo", "copy", "-q", f"oci:{layout}:latest", f"oci-archive:{tmp}:latest"])

    return _derived(name, "oci-archive.tar", make)


# ------------------------------------------------------------------------------------- reading helpers


def _blob(layout: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return layout / "blobs" / algo / hexd


def manifest(name: str, platform: str | None = None) -> dict[str, object]:
    """The image manifest behind tag latest (for an index: the entry for `platform`, default amd64)."""
    layout = build(name)
    idx = json.loads((layout / "index.json").read_text())
    desc = next(
        m
        for m in idx["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "latest"
    )
    doc = json.loads(_blob(layout, desc["digest"]).read_text())
    if "manifests" in doc:  # image index
        arch = platform or "amd64"
        desc = next(m for m in doc["manifests"] if m["platform"]["architecture"] == arch)
        doc = json.loads(_blob(layout, desc["digest"]).read_text())
    return doc


def verify_layout(name: str) -> int:
    """Check every blob the layout's tag reaches (index -> manifests -> config, layers): present, right size,
    right sha256. Returns how many blobs were checked; raises RigError on the first bad one."""
    layout = build(name)
    seen = 0
    todo = [d for d in json.loads((layout / "index.json").read_text())["manifests"]]
    while todo:
        d = todo.pop()
        p = _blob(layout, d["digest"])
        data = p.read_bytes() if p.is_file() else None
        if (
            data is None
            or len(data) != d["size"]
            or "sha256:" + hashlib.sha256(data).hexdigest() != d["digest"]
        ):
            raise RigError(f"rig image {name!r}: blob {d['digest']} missing or corrupt")
        seen += 1
        if "manifest" in d["mediaType"] or "index" in d["mediaType"]:
            doc = json.loads(data)
            todo += (
                doc.get("manifests", [])
                + ([doc["config"]] if "config" in doc else [])
                + doc.get("layers", [])
            )
    return seen


def config(name: str, platform: str | None = None) -> dict[str, object]:
    m = manifest(name, platform)
    return json.loads(_blob(build(name), m["config"]["digest"]).read_text())


def layer_blobs(name: str, platform: str | None = None) -> list[tuple[Path, str]]:
    """(blob path, media type) of each layer, bottom first."""
    layout = build(name)
    return [(_blob(layout, d["digest"]), d["mediaType"]) for d in manifest(name, platform)["layers"]]


def open_layer(path: Path):
    """A tarfile over a layer blob (gzip, zstd or plain: sniffed, not trusted from the media type)."""
    import io
    import tarfile

    head = path.read_bytes()[:4]
    if head == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    return tarfile.open(str(path), mode="r:*")


@functools.cache
def multilayer_spec():
    """The multilayer recipe's module: LAYERS, EXPECTED, ABSENT, SAME_INODE (the oracle for extractors)."""
    s = importlib.util.spec_from_file_location("rig_multilayer_layers", RECIPES / "multilayer_layers.py")
    mod = importlib.util.module_from_spec(s)
    assert s.loader is not None
    s.loader.exec_module(mod)
    return mod


def reap_stale() -> list[Path]:
    """Remove scratch dirs (and their tmpfs mounts) of rig processes that died without cleaning up.

    Scratch names carry the owner's pid (`<what>-<pid>[-...]` under <cache>/work, /run/oci2bin-rig-<pid>-*)."""
    removed = []
    cands = [(p, re.search(r"-(\d+)(?:-[^/]*)?$", p.name)) for p in (cache_root() / "work").glob("*")]
    cands += [(p, re.match(r"oci2bin-rig-(\d+)-", p.name)) for p in Path("/run").glob("oci2bin-rig-*")]
    for p, m in cands:
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["umount", "-l", str(p)], capture_output=True, check=False)
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def scratch_dir(path, size: str = "16g", mode: int = 0o755):
    """A directory at `path` backed by its own tmpfs when we may mount (root), removed on exit.

    rm -rf of big trees (podman vfs stores, extracted rootfs) is slow on this VM's ext4; a tmpfs goes at once."""
    path = Path(path)
    reap_stale()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode:o}", "oci2bin-rig", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    path.chmod(mode)
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)


def podman_runroot(tag: str) -> Path:
    """A podman --runroot for a throwaway store: podman 4.3 refuses runroots longer than 50 characters."""
    return Path("/run") / f"oci2bin-rig-{os.getpid()}-{tag}"


def check_docker_archive(path, podman: bool = True) -> dict[str, str | None]:
    """Run real consumers over a docker-archive file (a rig archive or an oci2bin polyglot).

    Returns check name -> None (passed) or the error. Checks: skopeo inspect; skopeo copy to an OCI layout
    (verifies blob digests against the config's diff_ids: catches corrupt layers `inspect` misses); podman load
    into a throwaway vfs store; python tarfile over every layer, strictly (diff_id of the bytes, layer tar
    readable, end-of-archive blocks present: Go consumers tolerate their absence)."""
    import io
    import tarfile
    import tempfile

    path = Path(path).resolve()
    res: dict[str, str | None] = {}
    work = cache_root() / "work"
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"check-{os.getpid()}-", dir=work))

    def run(name: str, cmd: list[str]) -> None:
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        res[name] = (
            None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        )

    try:
        run("skopeo-inspect", ["skopeo", "inspect", f"docker-archive:{path}"])
        run("skopeo-copy-oci", ["skopeo", "copy", "-q", f"docker-archive:{path}", f"oci:{tmp}/oci:x"])
        if podman:
            runroot = podman_runroot("check")
            store = [
                "podman",
                "--root",
                str(tmp / "root"),
                "--runroot",
                str(runroot),
                "--storage-driver",
                "vfs",
            ]
            try:
                run("podman-load", store + ["load", "-q", "-i", str(path)])
            finally:
                subprocess.run(store + ["rmi", "-a", "-f"], capture_output=True, check=False)
                shutil.rmtree(runroot, ignore_errors=True)
        try:
            with tarfile.open(path) as t:
                man = json.load(t.extractfile("manifest.json"))
                for img in man:
                    cfg = json.load(t.extractfile(img["Config"]))
                    ids = cfg["rootfs"]["diff_ids"]
                    assert len(ids) == len(img["Layers"]), "layer count != diff_ids"
                    for name, want in zip(img["Layers"], ids):
                        data = t.extractfile(name).read()
                        # compressed layer blobs are allowed (docker load, oci2bin): diff_id is of the tar
                        if data[:2] == b"\x1f\x8b":
                            import gzip

                            data = gzip.decompress(data)
                        elif data[:4] == b"\x28\xb5\x2f\xfd":
                            data = subprocess.run(
                                ["zstd", "-dc"], input=data, capture_output=True, check=True
                            ).stdout
                        got = "sha256:" + hashlib.sha256(data).hexdigest()
                        assert got == want, f"{name}: diff_id {got} != {want}"
                        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as lt:
                            lt.getmembers()
                        assert data[-1024:] == b"\0" * 1024, f"{name}: no end-of-archive blocks"
            res["python-strict"] = None
        except Exception as e:  # noqa: BLE001 - reported, not raised
            res["python-strict"] = f"{type(e).__name__}: {e}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def build_times() -> Iterator[dict[str, object]]:
    """Every build recorded in this cache (name, key, seconds, at)."""
    try:
        lines = (cache_root() / "build-times.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return iter(())
    return (json.loads(ln) for ln in lines if ln.strip())


def prune() -> list[Path]:
    """Remove cached entries whose key is not the current one. Returns what was removed."""
    removed = []
    for name in NAMES:
        d = cache_root() / "images" / name
        if not d.is_dir():
            continue
        with _Lock(name):
            cur = key(name)
            for e in d.iterdir():
                if e.name != cur:
                    shutil.rmtree(e, ignore_errors=True)
                    removed.append(e)
    return removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.rig.images", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) images; default: all")
    b.add_argument("names", nargs="*")
    b.add_argument(
        "--archives", action="store_true", help="also make the docker-archive and oci-archive files"
    )
    sub.add_parser("list", help="names, descriptions, cache state")
    sub.add_parser("times", help="recorded build times")
    p = sub.add_parser("path", help="print the OCI layout dir (builds if needed)")
    p.add_argument("name")
    sub.add_parser("prune", help="drop cache entries of stale keys")
    c = sub.add_parser("check", help="check a docker-archive file (or polyglot) with real consumers")
    c.add_argument("file")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "build":
            for n in a.names or NAMES:
                print(build(n))
                if a.archives:
                    print(docker_archive(n))
                    print(oci_archive(n))
        elif a.cmd == "list":
            for n in NAMES:
                cached = _is_layout(_entry(n) / "oci")
                print(f"{n:15} {'cached' if cached else '-':7} {SPECS[n].description}")
        elif a.cmd == "times":
            for t in build_times():
                print(f"{t['at']}  {t['name']:15} {t['seconds']:7.1f} s  {t['key']}")
        elif a.cmd == "path":
            print(build(a.name))
        elif a.cmd == "check":
            res = check_docker_archive(a.file)
            for k, v in res.items():
                print(f"{'PASS' if v is None else 'FAIL'} {k}{'' if v is None else ': ' + v}")
            return 0 if all(v is None for v in res.values()) else 1
        elif a.cmd == "prune":
            for e in prune():
                print("removed", e)
    except RigError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
