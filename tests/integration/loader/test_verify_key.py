"""--verify-key: the loader checks the signature block (docs/format.md) before anything is extracted, as root and
as tester. Files are signed by the real `oci2bin sign`; keys come from `cryptography` (what the CLI uses)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.rig import images

REPO = Path(images.RECIPES).parents[2]

FOOTER = struct.Struct(
    "<8sIIQQQQQ8s"
)  # magic, version, flags, tar_end, meta_size, sig_off, sig_len, l_off, magic


def write_key(path, key, public=True):
    if public:
        data = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    path.chmod(0o644)
    return str(path)


@pytest.fixture(scope="module")
def keys(workdir):
    d = workdir / "keys"
    d.mkdir(exist_ok=True)
    d.chmod(0o755)
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    return {
        "key": write_key(d / "signing.key", k1, public=False),
        "pub": write_key(d / "signing.pub", k1),
        "other": write_key(d / "other.pub", k2),
        "p384": write_key(d / "p384.pub", ec.generate_private_key(ec.SECP384R1())),
    }


@pytest.fixture(scope="module")
def signed(busybox, keys, workdir):
    out = workdir / "busybox.signed"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "oci2bin",
            "sign",
            "--key",
            keys["key"],
            "--in",
            str(busybox),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src" / "python"), *sys.path])},
        cwd=str(REPO),
    )
    assert p.returncode == 0, p.stderr
    out.chmod(0o755)
    return out


def copy(src, runner, name):
    """A copy the run's user can execute, to edit."""
    dst = runner.base / name
    shutil.copyfile(src, dst)
    dst.chmod(0o755)
    return dst


def footer(path):
    with open(path, "rb") as f:
        f.seek(-FOOTER.size, os.SEEK_END)
        return list(FOOTER.unpack(f.read()))


def largest_blob(path):
    """(offset, size) of the biggest archive entry: the layer."""
    ft = footer(path)
    with open(path, "rb") as f:
        f.seek(ft[3])
        meta = json.loads(f.read(ft[4]))
    _, off, size = max(meta["entries"], key=lambda e: e[2])
    return off, size


def run_as(runner, binary, *args):
    saved = runner.binary
    runner.binary = binary
    try:
        return runner.run(*args)
    finally:
        runner.binary = saved


def refused(runner, p, pattern):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 125, (p.returncode, p.stderr)
    assert len(lines) == 1 and re.search(pattern, lines[0]), p.stderr
    assert "RAN" not in p.stdout
    assert os.listdir(runner.cache) == [], "nothing may be extracted before the signature is checked"
    assert runner.tmp_left() == []


def test_right_key_runs(runner, signed, keys):
    p = run_as(runner, signed, "--debug", "--verify-key", keys["pub"], "echo", "RAN")
    assert p.returncode == 0 and p.stdout.strip() == "RAN", p.stderr
    assert re.search(r"signature OK: \d+ signed bytes checked", p.stderr), p.stderr


def test_wrong_key_refused(runner, signed, keys):
    p = run_as(runner, signed, "--verify-key", keys["other"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: signature check failed: signed with a different key")


def test_unsigned_file_refused(runner, busybox, keys):
    p = run_as(runner, busybox, "--verify-key", keys["pub"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: this file is not signed")


def test_flipped_layer_byte_refused(runner, signed, keys):
    f = copy(signed, runner, "flipped")
    off, size = largest_blob(f)
    with open(f, "r+b") as fh:
        fh.seek(off + size // 2)
        b = fh.read(1)
        fh.seek(off + size // 2)
        fh.write(bytes([b[0] ^ 0x01]))
    p = run_as(runner, f, "--verify-key", keys["pub"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: signature check failed: the file was modified after signing")


def test_forged_digest_refused(runner, signed, keys):
    """The attacker also rewrites the block's digest copy: the ECDSA signature is what catches it."""
    f = copy(signed, runner, "forged")
    off, size = largest_blob(f)
    ft = footer(f)
    with open(f, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x80]))
        fh.seek(0)
        digest = hashlib.sha256(fh.read(ft[5])).digest()
        fh.seek(ft[5] + 24)
        fh.write(digest)
    p = run_as(runner, f, "--verify-key", keys["pub"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: signature check failed: the signature does not verify")


def test_footer_vm_flag_flipped_refused(runner, signed, keys):
    """The footer is not signed: it must agree with the signed metadata."""
    f = copy(signed, runner, "vmflag")
    ft = footer(f)
    ft[2] ^= 1
    with open(f, "r+b") as fh:
        fh.seek(-FOOTER.size, os.SEEK_END)
        fh.write(FOOTER.pack(*ft))
    p = run_as(runner, f, "--verify-key", keys["pub"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: signature check failed: the footer does not match the signed metadata")


def test_footer_loader_offset_unpinned_refused(runner, busybox, keys):
    """Signed metadata without loader_offset leaves the footer's L_OFF (the loader --vm boots as the guest's init)
    unauthenticated: such a file is refused, not trusted with whatever L_OFF the footer has."""
    f = copy(busybox, runner, "no-loader-offset")
    ft = footer(f)
    with open(f, "r+b") as fh:
        fh.seek(ft[3])
        meta = json.loads(fh.read(ft[4]))
        del meta["loader_offset"]
        text = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        fh.seek(ft[3])
        fh.write(text)
        ft[4] = len(text)
        fh.write(FOOTER.pack(*ft))
        fh.truncate()
    out = runner.base / "no-loader-offset.signed"
    p = subprocess.run(
        [sys.executable, "-m", "oci2bin", "sign", "--key", keys["key"], "--in", str(f), "--out", str(out)],
        capture_output=True, text=True, cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src" / "python"), *sys.path])},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out.chmod(0o755)
    ft = footer(out)
    ft[7] += 4096  # still inside the file, before the metadata
    with open(out, "r+b") as fh:
        fh.seek(-FOOTER.size, os.SEEK_END)
        fh.write(FOOTER.pack(*ft))
    p = run_as(runner, out, "--verify-key", keys["pub"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: signature check failed: the footer does not match the signed metadata")


def test_signature_stripped_from_footer_is_not_signed(runner, signed, keys):
    f = copy(signed, runner, "stripped")
    ft = footer(f)
    ft[5] = ft[6] = 0
    with open(f, "r+b") as fh:
        fh.seek(-FOOTER.size, os.SEEK_END)
        fh.write(FOOTER.pack(*ft))
    p = run_as(runner, f, "--verify-key", keys["pub"], "echo", "RAN")
    refused(runner, p, r"^oci2bin: this file is not signed")


@pytest.mark.parametrize(
    "which,pattern",
    [
        ("key", r"bad key file: a private key, not a public key"),
        ("p384", r"bad key file: not an ECDSA P-256 \(prime256v1\) public key"),
        ("garbage", r'bad key file: no PEM "PUBLIC KEY" block'),
        ("badb64", r"bad key file: the PEM block is not valid base64"),
        ("missing", r"bad key file: cannot open .*No such file"),
    ],
)
def test_bad_key_file(runner, signed, keys, which, pattern):
    if which in keys:
        path = keys[which]
    else:
        path = str(runner.base / f"{which}.pub")
        if which == "garbage":
            (runner.base / f"{which}.pub").write_text("hello\n")
        elif which == "badb64":
            (runner.base / f"{which}.pub").write_text(
                "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"
            )
        if which != "missing":
            os.chmod(path, 0o644)
    p = run_as(runner, signed, "--verify-key", path, "echo", "RAN")
    refused(runner, p, rf"^oci2bin: --verify-key {re.escape(path)}: {pattern}")
