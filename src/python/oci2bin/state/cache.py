"""The output cache (`--cache`, `list`, `prune`): built binaries under $XDG_CACHE_HOME/oci2bin/output.

An entry is just a polyglot file named `<output name>-<digest[:12]>-<options hash>`; its own metadata says
which image it holds, so no index file can go stale.

Also the verified-blob memo ($XDG_CACHE_HOME/oci2bin/verified): a file per (file identity, digest)
whose digest was checked while it was copied into a binary (named by the hash of that key; it holds the key
and the blob's path, so that `prune` can drop records of blobs since deleted or changed), so that assembling from the same image layout
again need not hash its blobs again. The identity is (dev, inode, size, mtime_ns, ctime_ns, window): any
write to the blob file changes its ctime, which no user can set back, so a changed blob never matches an
entry; an entry is only recorded when the file was not changed during the copy and its timestamps were older
than the timestamp granularity when the copy started (no "racy" same-tick change during the copy can hide
behind an unchanged ctime, however long the copy took). OCI2BIN_VERIFY=always ignores it.
"""

from __future__ import annotations

import os
import stat
import time

from oci2bin import hashing
from oci2bin.errors import UserError
from oci2bin.record import Record
from oci2bin.tempname import create_temp, discard


def _cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "oci2bin")


def cache_dir() -> str:
    return os.path.join(_cache_root(), "output")


def verified_dir() -> str:
    return os.path.join(_cache_root(), "verified")


# timestamps older than this cannot share a clock tick with a later change (coarse ctime granularity <= 10 ms)
RACY_NS = 2_000_000_000


def file_identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


MEMO_MAGIC = b"oci2bin-verified 1\n"


def _memo_key(st: os.stat_result, offset: int, size: int, digest: str) -> str:
    return " ".join(str(x) for x in (*file_identity(st), offset, size, digest))


def _memo_name(key: str) -> str:
    return hashing.sha256_hex(key.replace(" ", ":").encode())


def _memo_path(st: os.stat_result, offset: int, size: int, digest: str) -> str:
    return os.path.join(verified_dir(), _memo_name(_memo_key(st, offset, size, digest)))


def is_verified(st: os.stat_result, offset: int, size: int, digest: str) -> bool:
    """Was the window [offset, offset+size) of the file with this stat verified to have `digest`?"""
    if os.environ.get("OCI2BIN_VERIFY") == "always" or not stat.S_ISREG(st.st_mode):
        return False
    return os.path.exists(_memo_path(st, offset, size, digest))


def _open_path(fd: int) -> str | None:
    """The path the open file `fd` is at now, or None (deleted, or not a file in the tree)."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return path if path.startswith("/") and not path.endswith(" (deleted)") else None


def remember_verified(
    st: os.stat_result, offset: int, size: int, digest: str, started_ns: int, fd: int
) -> None:
    """Record a verified window (st: the file's stat before and after the verified read, unchanged;
    started_ns: time.time_ns() taken before st and the read: a change during the read gets a later ctime
    only if st's timestamps were already a few ticks old then; fd: the file, whose path the record keeps)."""
    if not stat.S_ISREG(st.st_mode) or started_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return
    blob_path = _open_path(fd)
    if blob_path is None:
        return
    key = _memo_key(st, offset, size, digest)
    path = os.path.join(verified_dir(), _memo_name(key))
    record = MEMO_MAGIC + key.encode() + b"\n" + os.fsencode(blob_path)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return  # already recorded, or a read-only cache: a memo is an optimisation, a miss costs one hash
    try:
        os.write(out, record)  # a prune reading it half-written drops it: one hash more, never a wrong hit
    except OSError:
        pass
    finally:
        os.close(out)


def _memo_is_current(name: str, data: bytes) -> bool:
    """Does the record `name` with contents `data` still describe its blob file as it is now?"""
    if not data.startswith(MEMO_MAGIC):
        return False  # unreadable, half-written, or an empty record of an older version (no path to check)
    key, sep, blob_path = data[len(MEMO_MAGIC) :].partition(b"\n")
    try:
        key_s = key.decode()
    except UnicodeDecodeError:
        return False
    if not sep or not blob_path or _memo_name(key_s) != name:
        return False
    try:
        st = os.stat(blob_path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # cannot look (permissions): keep, the record is still checked by identity when used
    fields = key_s.split(" ")
    return stat.S_ISREG(st.st_mode) and [str(x) for x in file_identity(st)] == fields[:5]


def prune_memo(dry_run: bool) -> tuple[int, int]:
    """Remove (or with dry_run only count) the verified-blob records whose blob file is gone or changed
    since: (records, bytes)."""
    directory = verified_dir()
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0
    count = size = 0
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            data = os.read(fd, 1 << 16) if stat.S_ISREG(st.st_mode) else b""
        except OSError:
            continue
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode) or _memo_is_current(name, data):
            continue
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
        count += 1
        size += st.st_size
    return count, size


def cache_key(name: str, digest: str, *parts: bytes | str) -> str:
    h = hashing.new("sha256", 0)  # a few short strings
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return f"{name}-{digest.partition(':')[2][:12]}-{h.hexdigest()[:8]}"


class Entry(Record):
    __slots__ = ("path", "image", "digest", "arch", "size", "built")
    _fields = __slots__
    path: str
    image: str
    digest: str
    arch: str
    size: int
    built: float  # mtime

    def as_json(self) -> dict:
        return {
            "image": self.image,
            "digest": self.digest,
            "arch": self.arch,
            "size": self.size,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.built)),
            "path": self.path,
        }


def entries(directory: str | None = None) -> list[Entry]:
    directory = directory or cache_dir()
    out = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        from oci2bin.polyglot.reader import Polyglot

        try:
            p = Polyglot(path)
        except UserError:
            continue
        st = os.stat(path)
        md = p.metadata
        out.append(
            Entry(
                path,
                md.get("image") or name,
                md.get("digest", ""),
                md.get("arch", ""),
                st.st_size,
                st.st_mtime,
            )
        )
    out.sort(key=lambda e: (-e.built, e.path))
    return out


def prune_plan(all_entries: list[Entry]) -> list[Entry]:
    """Everything but the most recently built entry of each (image, arch)."""
    keep: set[tuple[str, str]] = set()
    remove = []
    for e in sorted(all_entries, key=lambda e: (-e.built, e.path)):
        key = (e.image, e.arch)
        if key in keep:
            remove.append(e)
        else:
            keep.add(key)
    return remove


FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)


def _reflink(src_fd: int, out_fd: int) -> bool:
    """Share src's extents (btrfs, xfs, bcachefs...): O(1), and a later write to either copy unshares."""
    import fcntl

    try:
        fcntl.ioctl(out_fd, FICLONE, src_fd)
        return True
    except OSError:
        return False


def copy_atomic(src: str, dest: str) -> None:
    """Copy src to dest via a temp file in dest's directory (renamed when complete); mode 0755.

    A reflink where the filesystem has them, else an in-kernel copy (copy_file_range / sendfile)."""
    from oci2bin.image.model import copy_range

    d = os.path.dirname(os.path.abspath(dest))
    fd, tmp = create_temp(d)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out, open(src, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if not _reflink(f.fileno(), fd):
                copied = 0
                while copied < size and (n := copy_range(f.fileno(), copied, fd, size - copied)) > 0:
                    copied += n
                if copied != size:
                    raise UserError(f"{src} changed while copied", "build again")
            os.fchmod(out.fileno(), 0o755)
        os.replace(tmp, dest)
    except BaseException:
        discard(tmp)
        raise
