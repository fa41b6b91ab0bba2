"""Signature block of an oci2bin file (docs/format.md, "Signature block"): ECDSA P-256 over SHA-256.

The block sits between the metadata and the footer; the footer's sig offset/length point at it; the
signature covers bytes [0, sig_offset) (loader + tar + metadata). Crypto is done by ``cryptography``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tempfile
from dataclasses import dataclass

from oci2bin.errors import UserError
from oci2bin.polyglot.format import FOOTER_SIZE, Footer
from oci2bin.polyglot.reader import Polyglot

SIG_MAGIC = b"OCI2SIG\0"
SIG_VERSION = 1
ALG_ECDSA_P256_SHA256 = 1
# magic, version, algorithm, signed length, sha256 of [0, signed length), key id, raw r||s
SIG_BLOCK = struct.Struct("<8sIIQ32s32s64s")
SIG_BLOCK_SIZE = SIG_BLOCK.size
assert SIG_BLOCK_SIZE == 152
CHUNK = 1 << 20

# verify outcomes (also `oci2bin verify`'s exit status)
OK, NOT_SIGNED, INVALID = 0, 1, 2


class VerifyError(UserError):
    exit_code = INVALID


@dataclass(frozen=True)
class SigBlock:
    algorithm: int
    signed_length: int
    digest: bytes
    key_id: bytes
    signature: bytes  # raw r||s, 32 bytes each, big-endian

    def pack(self) -> bytes:
        return SIG_BLOCK.pack(
            SIG_MAGIC,
            SIG_VERSION,
            self.algorithm,
            self.signed_length,
            self.digest,
            self.key_id,
            self.signature,
        )

    @staticmethod
    def unpack(data: bytes) -> SigBlock | None:
        if len(data) != SIG_BLOCK_SIZE:
            return None
        magic, version, alg, length, digest, key_id, sig = SIG_BLOCK.unpack(data)
        if magic != SIG_MAGIC or version != SIG_VERSION:
            return None
        return SigBlock(alg, length, digest, key_id, sig)


# ---------------------------------------------------------------------------------------------------- keys


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as e:
        raise UserError(f"cannot read the {what} {path}: {e.strerror}", "check the --key path") from None


def load_private_key(path: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_pem(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UserError(
            f"{path} is an encrypted private key", "decrypt it first (openssl ec -in KEY -out PLAIN)"
        ) from None
    except ValueError:
        raise UserError(
            f"{path} is not a PEM private key",
            "make one with `openssl ecparam -name prime256v1 -genkey -noout -out signing.key`",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UserError(f"{path} is not an ECDSA P-256 (prime256v1) private key", "use a P-256 key")
    return key


def load_public_key(path: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_pem(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:  # a private key also names its public key
            return load_private_key(path).public_key()
        except UserError:
            pass
        raise UserError(
            f"{path} is not a PEM public key",
            "export it with `openssl ec -in signing.key -pubout -out signing.pub`",
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UserError(f"{path} is not an ECDSA P-256 (prime256v1) public key", "use a P-256 key")
    return key


def key_id(public_key) -> bytes:
    """SHA-256 of the uncompressed SEC1 point (0x04 || X || Y, 65 bytes)."""
    from cryptography.hazmat.primitives import serialization

    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()


# ---------------------------------------------------------------------------------------------------- file


def _layout(path: str) -> tuple[Polyglot, int, int]:
    """(polyglot, signed length, file size): where the unsigned content ends and a block would go."""
    poly = Polyglot(path)
    f = poly.footer
    base = f.tar_end + f.meta_size
    tail = poly.file_size - FOOTER_SIZE
    if f.sig_offset:
        ok = f.sig_offset == base and f.sig_offset + f.sig_size == tail
    else:
        ok = base == tail
    if not ok:
        raise UserError(
            f"{path} has sections between its metadata and footer that this oci2bin does not know",
            "sign it with the oci2bin version that built it",
        )
    return poly, base, poly.file_size


def _hash_range(f, length: int) -> bytes:
    h = hashlib.sha256()
    f.seek(0)
    left = length
    while left:
        data = f.read(min(CHUNK, left))
        if not data:
            raise UserError("the file shrank while it was read", "do not modify it while signing")
        h.update(data)
        left -= len(data)
    return h.digest()


def sign_file(key_path: str, in_path: str, out_path: str | None = None) -> SigBlock:
    """Sign ``in_path`` into ``out_path`` (default: in place) via a temp file + rename; replaces a signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    key = load_private_key(key_path)
    poly, base, _ = _layout(in_path)
    out_path = out_path or in_path
    out_dir = os.path.dirname(os.path.abspath(out_path))
    if os.path.isdir(out_path):
        raise UserError(f"{out_path} is a directory", "pass a file name to --out")
    mode = stat.S_IMODE(os.stat(in_path).st_mode)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out_path)}.sign-", dir=out_dir)
    except OSError as e:
        raise UserError(f"cannot write in {out_dir}: {e.strerror}", "check the --out directory") from None
    try:
        h = hashlib.sha256()
        with open(in_path, "rb") as src, os.fdopen(fd, "wb") as dst:
            left = base
            while left:
                data = src.read(min(CHUNK, left))
                if not data:
                    raise UserError(f"{in_path} shrank while it was read", "do not modify it while signing")
                h.update(data)
                dst.write(data)
                left -= len(data)
            digest = h.digest()
            der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            r, s = utils.decode_dss_signature(der)
            block = SigBlock(
                ALG_ECDSA_P256_SHA256,
                base,
                digest,
                key_id(key.public_key()),
                r.to_bytes(32, "big") + s.to_bytes(32, "big"),
            )
            dst.write(block.pack())
            old = poly.footer
            footer = Footer(old.flags, old.tar_end, old.meta_size, base, SIG_BLOCK_SIZE, old.loader_offset)
            dst.write(footer.pack())
            dst.flush()
            os.fchmod(dst.fileno(), mode)
            os.fsync(dst.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return block


def verify_file(key_path: str, in_path: str) -> tuple[int, str]:
    """(OK | NOT_SIGNED | INVALID, reason). Bad key or non-oci2bin input raise VerifyError (exit 2)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    try:
        key = load_public_key(key_path)
        poly = Polyglot(in_path)
    except VerifyError:
        raise
    except UserError as e:
        raise VerifyError(e.problem, e.hint) from None
    f = poly.footer
    if f.sig_offset == 0 and f.sig_size == 0:
        return NOT_SIGNED, "not signed"
    base = f.tar_end + f.meta_size
    if (
        f.sig_offset != base
        or f.sig_size != SIG_BLOCK_SIZE
        or base + SIG_BLOCK_SIZE + FOOTER_SIZE != poly.file_size
    ):
        return INVALID, "the signature block is not where the footer says it must be"
    meta = poly.metadata
    if int(meta.get("loader_offset", f.loader_offset)) != f.loader_offset or bool(
        meta.get("vm", False)
    ) != bool(f.flags & 1):
        return INVALID, "the footer does not match the signed metadata"
    with open(in_path, "rb") as fh:
        fh.seek(f.sig_offset)
        block = SigBlock.unpack(fh.read(SIG_BLOCK_SIZE))
        if block is None:
            return INVALID, "the signature block is corrupt"
        if block.algorithm != ALG_ECDSA_P256_SHA256:
            return INVALID, f"unknown signature algorithm {block.algorithm}"
        if block.signed_length != f.sig_offset:
            return INVALID, "the signature block covers a different length"
        if block.key_id != key_id(key):
            return INVALID, "signed with a different key"
        digest = _hash_range(fh, f.sig_offset)
    if digest != block.digest:
        return INVALID, "the file was modified after signing"
    r = int.from_bytes(block.signature[:32], "big")
    s = int.from_bytes(block.signature[32:], "big")
    try:
        key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return INVALID, "the signature does not verify"
    return OK, "signature OK"
