"""Software bill of materials from an image's package databases (dpkg, apk, rpm sqlite), as SPDX 2.3 or
CycloneDX 1.4 JSON. Deterministic: timestamps come from the image, identifiers from its digest."""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from oci2bin import __version__
from oci2bin.image.fsview import flatten
from oci2bin.image.model import Image

DPKG_STATUS = "var/lib/dpkg/status"
APK_INSTALLED = "lib/apk/db/installed"
RPM_SQLITE = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str
    manager: str  # deb, apk, rpm
    license: str = ""
    distro: str = ""

    @property
    def purl(self) -> str:
        ns = quote(
            self.distro or {"deb": "debian", "apk": "alpine", "rpm": "redhat"}[self.manager],
            safe="",
        )
        q = f"?arch={quote(self.arch, safe='')}" if self.arch else ""
        return f"pkg:{self.manager}/{ns}/{quote(self.name, safe='')}@{quote(self.version, safe='')}{q}"


def _os_id(data: dict[str, bytes]) -> str:
    for path in OS_RELEASE:
        if path in data:
            for line in data[path].decode(errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "ID":
                    return value.strip().strip('"').strip("'")
    return ""


def parse_dpkg(text: str, distro: str = "") -> list[Package]:
    out = []
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
        if "Package" in fields and fields.get("Status", "install ok installed").endswith(" installed"):
            out.append(
                Package(
                    fields["Package"],
                    fields.get("Version", ""),
                    fields.get("Architecture", ""),
                    "deb",
                    "",
                    distro,
                )
            )
    return out


def parse_apk(text: str, distro: str = "") -> list[Package]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:])
        if "P" in fields:
            out.append(
                Package(
                    fields["P"],
                    fields.get("V", ""),
                    fields.get("A", ""),
                    "apk",
                    fields.get("L", ""),
                    distro,
                )
            )
    return out


RPMTAG = {
    "name": 1000,
    "version": 1001,
    "release": 1002,
    "epoch": 1003,
    "license": 1014,
    "arch": 1022,
}


def parse_rpm_header(blob: bytes) -> dict[str, str]:
    """Name/version/release/epoch/license/arch from an rpm header blob (as stored in rpmdb.sqlite)."""
    il, dl = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * il
    if store + dl > len(blob):
        raise ValueError("truncated rpm header")
    out: dict[str, str] = {}
    wanted = {v: k for k, v in RPMTAG.items()}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if tag not in wanted or not 0 <= off < dl:
            continue
        if typ in (6, 8, 9):  # STRING, STRING_ARRAY, I18NSTRING: first string
            end = blob.index(b"\0", store + off)
            out[wanted[tag]] = blob[store + off : end].decode(errors="replace")
        elif typ == 4 and count >= 1:  # INT32
            out[wanted[tag]] = str(struct.unpack_from(">i", blob, store + off)[0])
    return out


def parse_rpmdb_sqlite(db: bytes, distro: str = "") -> list[Package]:
    with tempfile.TemporaryDirectory(prefix="oci2bin-") as d:
        path = os.path.join(d, "rpmdb.sqlite")
        with open(path, "wb") as f:
            f.write(db)
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT blob FROM Packages").fetchall()
        finally:
            con.close()
    out = []
    for (blob,) in rows:
        try:
            h = parse_rpm_header(bytes(blob))
        except (ValueError, struct.error):
            continue
        if "name" not in h or h["name"] == "gpg-pubkey":
            continue
        version = h.get("version", "")
        if h.get("release"):
            version += "-" + h["release"]
        if h.get("epoch") and h["epoch"] != "0":
            version = f"{h['epoch']}:{version}"
        out.append(
            Package(
                h["name"],
                version,
                h.get("arch", ""),
                "rpm",
                h.get("license", ""),
                distro,
            )
        )
    return out


def packages(image: Image) -> list[Package]:
    _, data = flatten(image, keep=(DPKG_STATUS, APK_INSTALLED, *RPM_SQLITE, *OS_RELEASE))
    distro = _os_id(data)
    pkgs: list[Package] = []
    if DPKG_STATUS in data:
        pkgs += parse_dpkg(data[DPKG_STATUS].decode(errors="replace"), distro)
    if APK_INSTALLED in data:
        pkgs += parse_apk(data[APK_INSTALLED].decode(errors="replace"), distro)
    for path in RPM_SQLITE:
        if path in data:
            pkgs += parse_rpmdb_sqlite(data[path], distro)
            break
    return sorted(set(pkgs), key=lambda p: (p.manager, p.name, p.version, p.arch))


def _namespace(digest: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"oci2bin:{digest}")


def spdx(name: str, digest: str, created: str, pkgs: list[Package]) -> dict:
    doc_pkgs = []
    rels = []
    for i, p in enumerate(pkgs):
        sid = f"SPDXRef-Package-{p.manager}-{i}"
        doc_pkgs.append(
            {
                "SPDXID": sid,
                "name": p.name,
                "versionInfo": p.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": p.purl,
                    }
                ],
                **({"comment": f"license: {p.license}"} if p.license else {}),
            }
        )
        rels.append(
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": sid,
            }
        )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name or digest,
        "documentNamespace": f"https://oci2bin.invalid/spdx/{_namespace(digest)}",
        "creationInfo": {
            "created": created,
            "creators": [f"Tool: oci2bin-{__version__}"],
        },
        "packages": doc_pkgs,
        "relationships": rels,
    }


def cyclonedx(name: str, digest: str, created: str, pkgs: list[Package]) -> dict:
    comps = []
    for p in pkgs:
        c: dict = {
            "type": "library",
            "bom-ref": p.purl,
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
        }
        if p.license:
            c["licenses"] = [{"license": {"name": p.license}}]
        comps.append(c)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "serialNumber": f"urn:uuid:{_namespace(digest)}",
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": [{"vendor": "oci2bin", "name": "oci2bin", "version": __version__}],
            "component": {
                "type": "container",
                "name": name or digest,
                "version": digest,
            },
        },
        "components": comps,
    }
