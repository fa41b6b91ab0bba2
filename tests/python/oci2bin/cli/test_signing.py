"""`oci2bin sign` / `oci2bin verify`: ECDSA P-256 signature block (docs/format.md, "Signature block")."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from oci2bin.polyglot.format import FOOTER_SIZE, Footer
from oci2bin.polyglot.reader import Polyglot
from oci2bin.polyglot.signing import SIG_BLOCK, SIG_BLOCK_SIZE, SIG_MAGIC


def _keypair(d, name: str, curve=None):
    key = ec.generate_private_key(curve or ec.SECP256R1())
    priv = d / f"{name}.key"
    pub = d / f"{name}.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(priv), str(pub), key


@pytest.fixture
def binary(cli, images, tmp_path):
    cli(f"oci:{images.bb_oci}", "bb", check=True)
    return tmp_path / "bb"


def _err(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("oci2bin: ") and lines[0].endswith(")"), lines[0]
    return lines[0]


def test_sign_verify_roundtrip(cli, binary, tmp_path):
    priv, pub, key = _keypair(tmp_path, "k")
    original = binary.read_bytes()
    r = cli("verify", "--key", pub, "--in", str(binary))
    assert r.returncode == 1 and "not signed" in _err(r)

    r = cli("sign", "--key", priv, "--in", str(binary), "--out", str(tmp_path / "bb.signed"))
    assert r.returncode == 0, r.stderr
    assert binary.read_bytes() == original  # --out leaves the input alone
    signed = (tmp_path / "bb.signed").read_bytes()
    assert os.access(tmp_path / "bb.signed", os.X_OK)
    r = cli("verify", "--key", pub, "--in", str(tmp_path / "bb.signed"))
    assert r.returncode == 0, r.stderr
    assert "signature OK" in r.stdout

    # the documented byte layout
    footer = Footer.unpack(signed[-FOOTER_SIZE:])
    assert footer is not None
    base = footer.tar_end + footer.meta_size
    assert footer.sig_offset == base and footer.sig_size == SIG_BLOCK_SIZE == 152
    assert len(signed) == base + SIG_BLOCK_SIZE + FOOTER_SIZE
    assert signed[:base] == original[:base]
    magic, version, alg, length, digest, key_id, raw = SIG_BLOCK.unpack(signed[base : base + SIG_BLOCK_SIZE])
    assert (magic, version, alg, length) == (SIG_MAGIC, 1, 1, base)
    assert digest == hashlib.sha256(signed[:base]).digest()
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert key_id == hashlib.sha256(point).digest()
    # an independent check: raw r||s over SHA-256 of [0, sig_offset)
    r_, s_ = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    key.public_key().verify(utils.encode_dss_signature(r_, s_), signed[:base], ec.ECDSA(hashes.SHA256()))
    # still an oci2bin binary that reads as before
    assert Polyglot(str(tmp_path / "bb.signed")).metadata == Polyglot(str(binary)).metadata


def test_sign_in_place_and_resign(cli, binary, tmp_path):
    priv1, pub1, _ = _keypair(tmp_path, "one")
    priv2, pub2, _ = _keypair(tmp_path, "two")
    size = binary.stat().st_size
    assert cli("sign", "--key", priv1, "--in", str(binary)).returncode == 0
    assert binary.stat().st_size == size + SIG_BLOCK_SIZE
    assert cli("verify", "--key", pub1, "--in", str(binary)).returncode == 0
    r = cli("verify", "--key", pub2, "--in", str(binary))
    assert r.returncode == 2 and "different key" in _err(r)
    assert cli("sign", "--key", priv2, "--in", str(binary)).returncode == 0
    assert binary.stat().st_size == size + SIG_BLOCK_SIZE  # replaced, not stacked
    assert cli("verify", "--key", pub2, "--in", str(binary)).returncode == 0
    assert cli("verify", "--key", pub1, "--in", str(binary)).returncode == 2
    assert sorted(os.listdir(tmp_path)) == sorted(["bb", "one.key", "one.pub", "two.key", "two.pub"])


@pytest.mark.parametrize("where", ["loader", "tar", "metadata", "signature", "vmflag"])
def test_tampering_is_invalid(cli, binary, tmp_path, where):
    priv, pub, _ = _keypair(tmp_path, "k")
    assert cli("sign", "--key", priv, "--in", str(binary)).returncode == 0
    data = bytearray(binary.read_bytes())
    footer = Footer.unpack(bytes(data[-FOOTER_SIZE:]))
    if where == "loader":
        data[footer.loader_offset + 200] ^= 1
    elif where == "tar":
        data[footer.tar_end - 4096] ^= 1
    elif where == "metadata":
        i = data.index(b'"tool":"oci2bin"', footer.tar_end)
        data[i + 9] = ord("O")
    elif where == "signature":
        data[footer.sig_offset + SIG_BLOCK_SIZE - 1] ^= 1
    else:
        struct.pack_into("<I", data, len(data) - FOOTER_SIZE + 12, 1)
    binary.write_bytes(bytes(data))
    r = cli("verify", "--key", pub, "--in", str(binary))
    assert r.returncode == 2, r.stderr
    _err(r)


def test_bad_inputs(cli, binary, tmp_path):
    priv, pub, _ = _keypair(tmp_path, "k")
    p384, p384pub, _ = _keypair(tmp_path, "p384", ec.SECP384R1())
    notbin = tmp_path / "notbin"
    notbin.write_bytes(b"hello" * 100)
    before = sorted(os.listdir(tmp_path))
    cases = [
        (("sign", "--key", str(tmp_path / "missing"), "--in", str(binary)), 1, "cannot read the private key"),
        (("sign", "--key", pub, "--in", str(binary)), 1, "not a PEM private key"),
        (("sign", "--key", p384, "--in", str(binary)), 1, "not an ECDSA P-256"),
        (("sign", "--key", priv, "--in", str(notbin)), 1, "not an oci2bin binary"),
        (("sign", "--key", priv, "--in", str(tmp_path / "nope")), 1, "nope"),
        (
            ("sign", "--key", priv, "--in", str(binary), "--out", str(tmp_path / "no" / "x")),
            1,
            "cannot write",
        ),
        (("sign", "--key", priv), 2, "required"),
        (("verify", "--key", p384pub, "--in", str(binary)), 2, "not an ECDSA P-256"),
        (("verify", "--key", pub, "--in", str(notbin)), 2, "not an oci2bin binary"),
        (("verify", "--key", str(notbin), "--in", str(binary)), 2, "not a PEM public key"),
        (("verify", "--in", str(binary)), 2, "required"),
    ]
    for args, code, text in cases:
        r = cli(*args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert text in _err(r), (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == before
    assert cli("verify", "--key", pub, "--in", str(binary)).returncode == 1  # untouched


def test_verify_accepts_private_key_file(cli, binary, tmp_path):
    priv, _, _ = _keypair(tmp_path, "k")
    assert cli("sign", "--key", priv, "--in", str(binary)).returncode == 0
    assert cli("verify", "--key", priv, "--in", str(binary)).returncode == 0
