"""SBOM from dpkg / apk / rpm package databases, through a built binary and `oci2bin sbom`."""

from __future__ import annotations

import json
import sqlite3
import struct

from oci2bin.image import sbom
from oci2bin.image.model import MT_OCI_LAYER, Image, bytes_blob
from oci2bin.polyglot.writer import write_polyglot
from oci2bin_testrig import tar_bytes  # pants: no-infer-dep

DPKG = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 continuation line: Package: not-a-package

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
"""

APK = """C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT

P:busybox
V:1.36.1-r5
A:x86_64
L:GPL-2.0-only
"""


def rpm_header(tags: dict[int, object]) -> bytes:
    entries, store = [], b""
    for tag, value in sorted(tags.items()):
        if isinstance(value, int):
            store += b"\0" * (-len(store) % 4)
            entries.append(struct.pack(">iIiI", tag, 4, len(store), 1))
            store += struct.pack(">i", value)
        else:
            entries.append(struct.pack(">iIiI", tag, 6, len(store), 1))
            store += value.encode() + b"\0"
    return struct.pack(">II", len(entries), len(store)) + b"".join(entries) + store


def rpmdb(tmp_path) -> bytes:
    p = tmp_path / "rpmdb.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    for name, ver, rel, epoch in (
        ("bash", "5.2.26", "3.fc40", None),
        ("openssl-libs", "3.2.1", "2.fc40", 1),
    ):
        tags = {1000: name, 1001: ver, 1002: rel, 1022: "x86_64", 1014: "GPLv3+"}
        if epoch is not None:
            tags[1003] = epoch
        con.execute("INSERT INTO Packages (blob) VALUES (?)", (rpm_header(tags),))
    con.execute(
        "INSERT INTO Packages (blob) VALUES (?)",
        (rpm_header({1000: "gpg-pubkey", 1001: "x"}),),
    )
    con.commit()
    con.close()
    return p.read_bytes()


def image_with(files: list[tuple[str, bytes]]) -> Image:
    layer = tar_bytes([(n, "file", d, 0o644) for n, d in files])
    blob = bytes_blob(layer, MT_OCI_LAYER)
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "rootfs": {"type": "layers", "diff_ids": [blob.digest]},
    }
    return Image(json.dumps(cfg).encode(), (blob,))


def test_parsers(tmp_path):
    deb = sbom.parse_dpkg(DPKG, "debian")
    assert [(p.name, p.version) for p in deb] == [
        ("libc6", "2.36-9+deb12u4"),
        ("bash", "5.2.15-2+b2"),
    ]
    assert deb[0].purl == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
    apk = sbom.parse_apk(APK, "alpine")
    assert [(p.name, p.license) for p in apk] == [
        ("musl", "MIT"),
        ("busybox", "GPL-2.0-only"),
    ]
    rpm = sbom.parse_rpmdb_sqlite(rpmdb(tmp_path), "fedora")
    assert sorted((p.name, p.version) for p in rpm) == [
        ("bash", "5.2.26-3.fc40"),
        ("openssl-libs", "1:3.2.1-2.fc40"),
    ]


def test_sbom_cli(cli, tmp_path, loader_bytes):
    im = image_with(
        [
            ("etc/os-release", b'NAME="Debian"\nID=debian\n'),
            ("var/lib/dpkg/status", DPKG.encode()),
            ("var/lib/rpm/rpmdb.sqlite", rpmdb(tmp_path)),
        ]
    )
    write_polyglot(str(tmp_path / "bin"), loader_bytes, im, ref="localhost/deb:1", check_arch=False)
    r = cli("sbom", "bin", check=True)
    doc = json.loads(r.stdout)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["name"] == "localhost/deb:1"
    names = sorted(p["name"] for p in doc["packages"])
    assert names == ["bash", "bash", "libc6", "openssl-libs"]
    assert len(doc["relationships"]) == 4
    assert "4 packages" in r.stderr
    cdx = json.loads(cli("sbom", "bin", "--format", "cyclonedx", check=True).stdout)
    assert cdx["bomFormat"] == "CycloneDX" and cdx["specVersion"] == "1.4"
    assert {c["purl"].split("/")[0] for c in cdx["components"]} == {
        "pkg:deb",
        "pkg:rpm",
    }
    assert cli("sbom", "bin", check=True).stdout == r.stdout  # deterministic


def test_sbom_apk_and_empty(cli, tmp_path, loader_bytes):
    write_polyglot(
        str(tmp_path / "a"),
        loader_bytes,
        image_with([("lib/apk/db/installed", APK.encode())]),
        check_arch=False,
    )
    doc = json.loads(cli("sbom", "a", "--format", "cyclonedx", check=True).stdout)
    assert [c["name"] for c in doc["components"]] == ["busybox", "musl"]
    assert doc["components"][0]["licenses"] == [{"license": {"name": "GPL-2.0-only"}}]
    write_polyglot(str(tmp_path / "e"), loader_bytes, image_with([("x", b"y")]), check_arch=False)
    r = cli("sbom", "e", check=True)
    assert json.loads(r.stdout)["packages"] == [] and "no package database" in r.stderr
