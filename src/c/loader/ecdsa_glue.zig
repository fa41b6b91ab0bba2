//! C-ABI wrappers around Zig's standard library for --verify-key (verify.c): a PEM SubjectPublicKeyInfo
//! P-256 public key (base64 from std.base64, point checked by std.crypto.ecc.P256) and an ECDSA P-256 /
//! SHA-256 signature check over a digest the caller streamed (std.crypto.sign.ecdsa.EcdsaP256Sha256).
//! No allocation; nothing here is hand-rolled crypto.
const std = @import("std");
const Ecdsa = std.crypto.sign.ecdsa.EcdsaP256Sha256;

pub const panic = std.debug.no_panic;

/// DER of SubjectPublicKeyInfo { AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes) }
/// up to the point: every P-256 key `openssl ec -pubout` writes starts with exactly these 26 bytes.
const spki_p256_prefix = [_]u8{
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
    0x03, 0x42, 0x00, // BIT STRING, 66 bytes, no unused bits
};
const point_len = Ecdsa.PublicKey.uncompressed_sec1_encoded_length; // 65: 04 || X || Y

/// Error codes of oci2bin_p256_pubkey_from_pem (negated).
pub const PEM_ERR_NO_BLOCK: c_int = -1; // no "-----BEGIN PUBLIC KEY-----" ... "-----END PUBLIC KEY-----"
pub const PEM_ERR_BASE64: c_int = -2; // the block is not valid base64
pub const PEM_ERR_NOT_P256: c_int = -3; // not an uncompressed P-256 SubjectPublicKeyInfo
pub const PEM_ERR_POINT: c_int = -4; // the point is not on the curve

/// Parses the first PUBLIC KEY block of a PEM text into the uncompressed SEC1 point (65 bytes).
export fn oci2bin_p256_pubkey_from_pem(pem: [*]const u8, len: usize, out: *[point_len]u8) c_int {
    const text = pem[0..len];
    const begin = "-----BEGIN PUBLIC KEY-----";
    const end = "-----END PUBLIC KEY-----";
    const b = std.mem.indexOf(u8, text, begin) orelse return PEM_ERR_NO_BLOCK;
    const body_start = b + begin.len;
    const e = std.mem.indexOfPos(u8, text, body_start, end) orelse return PEM_ERR_NO_BLOCK;
    const body = text[body_start..e];
    var der: [128]u8 = undefined;
    const dec = std.base64.Base64DecoderWithIgnore.init(std.base64.standard_alphabet_chars, '=', " \t\r\n");
    if (dec.calcSizeUpperBound(body.len) > der.len) return PEM_ERR_NOT_P256;
    const n = dec.decode(&der, body) catch return PEM_ERR_BASE64;
    if (n != spki_p256_prefix.len + point_len) return PEM_ERR_NOT_P256;
    if (!std.mem.eql(u8, der[0..spki_p256_prefix.len], &spki_p256_prefix)) return PEM_ERR_NOT_P256;
    const point = der[spki_p256_prefix.len..n];
    if (point[0] != 0x04) return PEM_ERR_NOT_P256;
    _ = Ecdsa.PublicKey.fromSec1(point) catch return PEM_ERR_POINT;
    @memcpy(out, point);
    return 0;
}

/// 0 if sig (raw r || s, big-endian) is a valid signature of the SHA-256 digest by the key point; -1 if not.
export fn oci2bin_p256_verify_digest(point: *const [point_len]u8, sig: *const [Ecdsa.Signature.encoded_length]u8, digest: *const [32]u8) c_int {
    const pk = Ecdsa.PublicKey.fromSec1(point) catch return -1;
    const s = Ecdsa.Signature.fromBytes(sig.*);
    s.verifyPrehashed(digest.*, pk) catch return -1;
    return 0;
}
