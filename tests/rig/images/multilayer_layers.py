"""Layers 2..4 of the `multilayer` rig image, written with tarfile for exact control of every header.

Run by multilayer.sh as `python3 multilayer_layers.py OUTDIR` (writes l2.tar l3.tar l4.tar); imported by
tests/rig/images.py for LAYERS (what each layer holds), EXPECTED and ABSENT (the merged tree a correct
extractor must produce on top of layer 1, the busybox rootfs). Part of the image's cache key.

Cases covered (layer: case):
  L1  hard links within a layer (every busybox applet is a hard link; GNU tar stores the first name as the file)
  L2  symlinks: relative, absolute, dangling, one climbing above / ; hard link within the layer; setuid file,
      setgid file, setgid dir, sticky dir (1777); files and a dir owned by non-root uids (1000, 1); a PAX long
      name (>100 bytes) and a non-ASCII name; an empty file
  L3  .wh. whiteouts of: a file (etc/motd), a hard link of a lower layer (bin/vi), a file in a kept dir,
      a whole directory (srv/olddir), a symlink (app/dangling), a setgid file; opaque dir (opt/cfg/.wh..wh..opq)
      with new content in the same layer; whiteout of a name that never existed (must be ignored)
  L4  file re-created after its whiteout (etc/motd); file overwritten (hello.sh); directory re-created after its
      deletion (srv/olddir: old children stay gone); hard link whose target is in a LOWER layer (app/bb ->
      bin/busybox of L1); symlink replaced by another symlink; file replaced by a directory; directory replaced by
      a file; a file whose parent directories have no entries in any layer
"""

import io
import os
import sys
import tarfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1700000000"))

HELLO_V1 = b'#!/bin/sh\necho "hello v1 $*"\n'
HELLO_V2 = b'#!/bin/sh\necho "hello v2 $GREETING $*"\n'
LONG_NAME = "app/data/" + "long-file-name-" * 8 + "end.txt"  # 9 + 120 + 7 bytes > ustar's 100
UNICODE_NAME = "app/data/\u00fcn\u00efc\u00f8d\u00e9-\u6587\u4ef6.txt"

# (kind, path, mode, uid, gid, data-or-linkname); kind: d dir, f file, l symlink, h hard link
LAYERS = {
    "l2": [
        ("d", "app", 0o755, 0, 0, None),
        ("d", "app/bin", 0o755, 0, 0, None),
        ("f", "app/bin/hello.sh", 0o755, 0, 0, HELLO_V1),
        ("h", "app/bin/hello-link", 0o755, 0, 0, "app/bin/hello.sh"),
        ("l", "app/current", 0o777, 0, 0, "bin"),
        ("d", "app/data", 0o755, 0, 0, None),
        ("f", "app/data/a.txt", 0o644, 0, 0, b"a\n"),
        ("f", "app/data/b.txt", 0o644, 0, 0, b"b\n"),
        ("f", "app/data/daemon-owned.txt", 0o640, 1, 1, b"owned by daemon\n"),
        ("f", "app/data/empty", 0o644, 0, 0, b""),
        ("f", LONG_NAME, 0o644, 0, 0, b"long name\n"),
        ("f", UNICODE_NAME, 0o644, 0, 0, b"unicode name\n"),
        ("l", "app/dangling", 0o777, 0, 0, "/nonexistent/target"),
        ("l", "app/escape", 0o777, 0, 0, "../../../../../etc/passwd"),
        ("d", "app/lib", 0o755, 0, 0, None),
        ("f", "app/lib/lib.txt", 0o644, 0, 0, b"lib\n"),
        ("l", "app/motd-link", 0o777, 0, 0, "/etc/motd"),
        ("d", "etc", 0o755, 0, 0, None),
        ("f", "etc/motd", 0o644, 0, 0, b"motd v1 (layer 2)\n"),
        ("d", "home", 0o755, 0, 0, None),
        ("d", "home/app", 0o750, 1000, 1000, None),
        ("f", "home/app/.profile", 0o644, 1000, 1000, b"export PS1='app$ '\n"),
        ("f", "home/app/notes.txt", 0o600, 1000, 1000, b"private notes\n"),
        ("d", "opt", 0o755, 0, 0, None),
        ("d", "opt/cfg", 0o755, 0, 0, None),
        ("f", "opt/cfg/one.conf", 0o644, 0, 0, b"one\n"),
        ("d", "opt/cfg/sub", 0o755, 0, 0, None),
        ("f", "opt/cfg/sub/deep.conf", 0o644, 0, 0, b"deep\n"),
        ("f", "opt/cfg/two.conf", 0o644, 0, 0, b"two\n"),
        ("d", "shared", 0o1777, 0, 0, None),
        ("d", "srv", 0o755, 0, 0, None),
        ("d", "srv/olddir", 0o755, 0, 0, None),
        ("d", "srv/olddir/sub", 0o755, 0, 0, None),
        ("f", "srv/olddir/sub/z", 0o644, 0, 0, b"z\n"),
        ("f", "srv/olddir/x", 0o644, 0, 0, b"x\n"),
        ("f", "srv/olddir/y", 0o644, 0, 0, b"y\n"),
        ("d", "usr", 0o755, 0, 0, None),
        ("d", "usr/local", 0o755, 0, 0, None),
        ("d", "usr/local/bin", 0o755, 0, 0, None),
        ("f", "usr/local/bin/setgid-tool", 0o2755, 0, 42, b"#!/bin/sh\necho setgid\n"),
        ("f", "usr/local/bin/setuid-tool", 0o4755, 0, 0, b"#!/bin/sh\necho setuid\n"),
        ("d", "var", 0o755, 0, 0, None),
        ("d", "var/mail", 0o2775, 0, 8, None),
    ],
    "l3": [
        ("d", "app", 0o755, 0, 0, None),
        ("f", "app/.wh.dangling", 0o644, 0, 0, b""),
        ("d", "app/data", 0o755, 0, 0, None),
        ("f", "app/data/.wh.b.txt", 0o644, 0, 0, b""),
        ("f", "app/data/.wh.never-existed", 0o644, 0, 0, b""),
        ("d", "bin", 0o755, 0, 0, None),
        ("f", "bin/.wh.vi", 0o644, 0, 0, b""),
        ("d", "etc", 0o755, 0, 0, None),
        ("f", "etc/.wh.motd", 0o644, 0, 0, b""),
        ("d", "opt", 0o755, 0, 0, None),
        ("d", "opt/cfg", 0o755, 0, 0, None),
        ("f", "opt/cfg/.wh..wh..opq", 0o644, 0, 0, b""),
        ("f", "opt/cfg/three.conf", 0o644, 0, 0, b"three\n"),
        ("d", "srv", 0o755, 0, 0, None),
        ("f", "srv/.wh.olddir", 0o644, 0, 0, b""),
        ("d", "usr", 0o755, 0, 0, None),
        ("d", "usr/local", 0o755, 0, 0, None),
        ("d", "usr/local/bin", 0o755, 0, 0, None),
        ("f", "usr/local/bin/.wh.setgid-tool", 0o644, 0, 0, b""),
    ],
    "l4": [
        ("d", "app", 0o755, 0, 0, None),
        ("h", "app/bb", 0o755, 0, 0, "bin/busybox"),  # target only exists in layer 1
        ("d", "app/bin", 0o755, 0, 0, None),
        ("f", "app/bin/hello.sh", 0o755, 0, 0, HELLO_V2),
        ("l", "app/current", 0o777, 0, 0, "data"),
        ("d", "app/data", 0o755, 0, 0, None),
        ("d", "app/data/a.txt", 0o755, 0, 0, None),  # was a file
        ("f", "app/data/a.txt/inner.txt", 0o644, 0, 0, b"inner\n"),
        ("f", "app/lib", 0o644, 0, 0, b"lib is a file now\n"),  # was a directory
        ("d", "etc", 0o755, 0, 0, None),
        ("f", "etc/motd", 0o644, 0, 0, b"motd v2 (layer 4)\n"),
        ("d", "srv", 0o755, 0, 0, None),
        ("d", "srv/olddir", 0o700, 0, 0, None),
        ("f", "srv/olddir/new.txt", 0o644, 0, 0, b"new\n"),
        ("f", "usr/share/rig/implicit/file.txt", 0o644, 1000, 1000, b"parents implied\n"),
    ],
}

# The merged tree (on top of the busybox rootfs): path -> (kind, mode, uid, gid, data-or-linkname).
# For a hard link the kind is "f" and data is the content (a merged tree has no link "direction").
EXPECTED = {
    "app/bin/hello.sh": ("f", 0o755, 0, 0, HELLO_V2),
    "app/bin/hello-link": ("f", 0o755, 0, 0, HELLO_V1),  # linked to the L2 file, which L4 replaced
    "app/current": ("l", 0o777, 0, 0, "data"),
    "app/data/a.txt": ("d", 0o755, 0, 0, None),
    "app/data/a.txt/inner.txt": ("f", 0o644, 0, 0, b"inner\n"),
    "app/data/daemon-owned.txt": ("f", 0o640, 1, 1, b"owned by daemon\n"),
    "app/data/empty": ("f", 0o644, 0, 0, b""),
    LONG_NAME: ("f", 0o644, 0, 0, b"long name\n"),
    UNICODE_NAME: ("f", 0o644, 0, 0, b"unicode name\n"),
    "app/escape": ("l", 0o777, 0, 0, "../../../../../etc/passwd"),
    "app/lib": ("f", 0o644, 0, 0, b"lib is a file now\n"),
    "app/motd-link": ("l", 0o777, 0, 0, "/etc/motd"),
    "etc/motd": ("f", 0o644, 0, 0, b"motd v2 (layer 4)\n"),
    "home/app": ("d", 0o750, 1000, 1000, None),
    "home/app/notes.txt": ("f", 0o600, 1000, 1000, b"private notes\n"),
    "opt/cfg/three.conf": ("f", 0o644, 0, 0, b"three\n"),
    "shared": ("d", 0o1777, 0, 0, None),
    "srv/olddir": ("d", 0o700, 0, 0, None),
    "srv/olddir/new.txt": ("f", 0o644, 0, 0, b"new\n"),
    "tmp": ("d", 0o1777, 0, 0, None),
    "usr/local/bin/setuid-tool": ("f", 0o4755, 0, 0, b"#!/bin/sh\necho setuid\n"),
    "usr/share/rig/implicit/file.txt": ("f", 0o644, 1000, 1000, b"parents implied\n"),
    "var/mail": ("d", 0o2775, 0, 8, None),
}
# Same inode in the merged tree (hard-link groups that must survive extraction).
SAME_INODE = [("app/bb", "bin/busybox", "bin/sh", "bin/ls"), ("app/bin/hello-link",)]
ABSENT = [
    "app/dangling",
    "app/data/b.txt",
    "app/data/.wh.b.txt",
    "app/data/never-existed",
    "app/lib/lib.txt",
    "bin/vi",
    "bin/.wh.vi",
    "etc/.wh.motd",
    "opt/cfg/one.conf",
    "opt/cfg/two.conf",
    "opt/cfg/sub",
    "opt/cfg/.wh..wh..opq",
    "srv/olddir/x",
    "srv/olddir/y",
    "srv/olddir/sub",
    "srv/.wh.olddir",
    "usr/local/bin/setgid-tool",
    "usr/local/bin/.wh.setgid-tool",
]


def write_layer(entries, path):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, mode, uid, gid, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.uid, ti.gid, ti.mtime = mode, uid, gid, EPOCH
            ti.uname = ti.gname = ""
            if kind == "d":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind == "f":
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tar.addfile(ti)
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
                tar.addfile(ti)
            else:
                raise ValueError(kind)


if __name__ == "__main__":
    out = sys.argv[1]
    for layer, entries in LAYERS.items():
        write_layer(entries, os.path.join(out, layer + ".tar"))
