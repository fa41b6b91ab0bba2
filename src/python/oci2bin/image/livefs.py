"""The filesystem of a running container as `fsview` nodes, for `oci2bin diff --live`.

Read through ``/proc/CPID/root`` of the container's PID 1 (CPID), which resolves in the container's mount
namespace. Only the root filesystem is walked: every other mount (/proc, /sys, /dev, /tmp, volumes, masks)
is skipped with its subtree, so nothing like /proc/kmsg is ever opened, and only regular files are opened
(O_NOFOLLOW|O_NONBLOCK, re-checked with fstat). The walk goes by directory fd and never follows a symlink:
the container may swap a directory for a symlink while it is walked, and a path re-resolved through
/proc/CPID/root would then follow an absolute target into the caller's root. Contents are hashed only where
the image has a regular file of the same size at that path (elsewhere the size or type already decides).

Permissions: root reads everything directly. An unprivileged caller (the container's owner) first joins the
container's user namespace in a forked child (it owns that namespace, so it gets every capability there and
can read files owned by the image's other users, e.g. subuids), walks, and sends the result back as JSON.
That child is reachable by the container (its root has CAP_SYS_PTRACE in the namespace the child joined), so
the child first makes itself non-dumpable (no ptrace, no /proc/PID/mem from inside the container) and the
parent parses its answer as plain data: never pickle, which runs code named by the bytes it reads.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import stat

from oci2bin.errors import UserError
from oci2bin.image.fsview import Node

CLONE_NEWUSER = 0x10000000
PR_SET_DUMPABLE = 4
# written into the rootfs by the loader at every start (docs/loader.md "mounts.c"): not drift
RUNTIME_FILES = frozenset({"etc/resolv.conf", "etc/hosts"})


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(pid: int) -> set[str]:
    """Mount points of ``pid`` other than its root, relative to its root ("proc", "dev/pts", ...)."""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(
            f"cannot read /proc/{pid}/mountinfo: {e.strerror}", "run as the container's user or root"
        ) from None
    out = set()
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            mp = _unescape(fields[4]).strip("/")
            if mp:
                out.add(mp)
    return out


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def _hash(dir_fd: int, name: str) -> str | None:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between lstat and open
            return None
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return "sha256:" + h.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


class _Walk:
    """One walk's state. Every name is resolved relative to its parent's open directory fd and never
    followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW): the container can swap a directory for a symlink at any time,
    and a path re-resolved through /proc/CPID/root would follow it, an absolute target against the caller's
    root, showing host files as the container's."""

    def __init__(self, root_dev: int, skip: set[str], image: dict[str, Node]) -> None:
        self.root_dev = root_dev
        self.skip = skip
        self.image = image
        self.fs: dict[str, Node] = {}
        self.hashed: dict[tuple[int, int], str] = {}  # hard links (busybox: hundreds of names) hash once

    def scan(self, dir_fd: int, rel_dir: str) -> list[str]:
        """Record the entries of the open directory ``dir_fd`` (at ``rel_dir``); its subdirectories' names,
        sorted, to descend into."""
        try:
            with os.scandir(dir_fd) as it:
                names = sorted(e.name for e in it)
        except OSError:
            return []
        subdirs = []
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in self.skip or rel in RUNTIME_FILES:
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                if st.st_dev != self.root_dev:
                    continue
                self.fs[rel] = Node("dir", 0, mode)
                subdirs.append(name)
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(name, dir_fd=dir_fd)
                except OSError:
                    continue
                self.fs[rel] = Node("symlink", len(target), mode, "", target)
            elif stat.S_ISREG(mode):
                old = self.image.get(rel)
                digest = ""
                if old is not None and old.kind == "file" and old.size == st.st_size:
                    key = (st.st_dev, st.st_ino)
                    if key not in self.hashed:
                        self.hashed[key] = _hash(dir_fd, name) or "unreadable"
                    digest = self.hashed[key]
                self.fs[rel] = Node("file", st.st_size, mode, digest)
            else:
                kind = "char" if stat.S_ISCHR(mode) else "block" if stat.S_ISBLK(mode) else "fifo"
                self.fs[rel] = Node(kind, 0, mode)
        return subdirs

    def open_subdir(self, dir_fd: int, name: str) -> int | None:
        """An fd of the directory ``name`` in ``dir_fd``, or None if it is no longer a directory of the
        container's root filesystem (swapped for a symlink or something else, or a mount appeared there)."""
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:  # ELOOP: now a symlink; ENOTDIR: now something else
            return None
        try:
            if os.fstat(fd).st_dev == self.root_dev:
                return fd
        except OSError:
            pass
        os.close(fd)
        return None


def walk(root: str, skip: set[str], image: dict[str, Node]) -> dict[str, Node]:
    """path -> Node for the tree at ``root``, without the paths in ``skip`` and their subtrees and without
    other filesystems (a directory on another device is a mount point mountinfo did not show).

    Depth first by directory fd: only the directories on the current path are open."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # follows the magic link: the root
    stack: list[tuple[int, str, list[str]]] = [(root_fd, "", [])]  # (fd, path, subdirectories left)
    try:
        w = _Walk(os.fstat(root_fd).st_dev, skip, image)
        stack[0][2].extend(w.scan(root_fd, ""))
        while stack:
            dir_fd, rel_dir, subdirs = stack[-1]
            if not subdirs:
                stack.pop()
                os.close(dir_fd)
                continue
            name = subdirs.pop()
            fd = w.open_subdir(dir_fd, name)
            if fd is None:
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            stack.append((fd, rel, []))
            stack[-1][2].extend(w.scan(fd, rel))
        return w.fs
    finally:
        for dir_fd, _, _ in stack:
            os.close(dir_fd)


def _join_userns(pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:  # before setns: the container must not ptrace us
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWUSER) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def _in_own_userns(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
    except OSError:
        return True


def _walk_in_userns(pid: int, root: str, skip: set[str], image: dict[str, Node]) -> dict[str, Node]:
    """Fork, join ``pid``'s user namespace in the child (single-threaded, as setns requires), walk there."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        status = 0
        try:
            os.close(r)
            try:
                _join_userns(pid)
                result: object = _nodes_to_json(walk(root, skip, image))
            except OSError as e:
                result = f"cannot join the user namespace of PID {pid}: {e.strerror}"
            data = json.dumps(result).encode()  # ASCII: file names' surrogate escapes survive
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
        except BaseException:
            status = 1
        os._exit(status)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while chunk := f.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(child, 0)
    if status != 0 or not chunks:
        raise UserError(f"reading the filesystem of PID {pid} failed", "run as the container's user or root")
    return _parse_answer(b"".join(chunks), pid)


def _parse_answer(data: bytes, pid: int) -> dict[str, Node]:
    try:
        result = json.loads(data)
        if isinstance(result, str):
            raise UserError(result, "run oci2bin diff as the user who started the container, or as root")
        return _nodes_from_json(result)
    except (ValueError, TypeError, AttributeError):
        raise UserError(
            f"reading the filesystem of PID {pid} returned malformed data", "run oci2bin diff as root"
        ) from None


def _nodes_to_json(fs: dict[str, Node]) -> dict[str, list]:
    return {p: [n.kind, n.size, n.mode, n.digest, n.target] for p, n in fs.items()}


def _nodes_from_json(obj: object) -> dict[str, Node]:
    """The walking child's answer, checked field by field (it ran where the container could reach it)."""
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    out = {}
    for p, v in obj.items():
        kind, size, mode, digest, target = v
        if not (isinstance(kind, str) and isinstance(size, int) and isinstance(mode, int)):
            raise ValueError(p)
        if not (isinstance(digest, str) and isinstance(target, str)):
            raise ValueError(p)
        out[p] = Node(kind, size, mode, digest, target)
    return out


def live_tree(cpid: int, image: dict[str, Node]) -> tuple[dict[str, Node], set[str]]:
    """(the container's root filesystem as nodes, the mount points skipped) for the container PID 1 ``cpid``."""
    root = f"/proc/{cpid}/root"
    skip = mount_points(cpid)
    try:
        os.lstat(root + "/")
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM) or os.geteuid() == 0:
            raise UserError(f"cannot open {root}: {e.strerror}", "is the container still running?") from None
    if os.geteuid() == 0 or _in_own_userns(cpid):
        return walk(root, skip, image), skip
    return _walk_in_userns(cpid, root, skip, image), skip
