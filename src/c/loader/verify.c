/* --verify-key: checks the file's signature block (docs/format.md, "Signature block") before anything is
 * extracted or written. The footer is not signed, so its signature fields must describe the only layout a
 * signer writes (block right after the metadata, right before the footer); the signed metadata must agree
 * with the footer's loader offset and VM flag. Then the signed bytes [0, S) of the file are streamed through
 * SHA-256 and the raw r||s signature is checked against that digest (Zig std ECDSA P-256, ecdsa_glue.zig). */
#define _GNU_SOURCE
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecdsa_glue.h"
#include "zig_glue.h"

#define SIG_BLOCK_SIZE 152
#define KEY_MAX (64u << 10)
#define CHUNK (1u << 20)
#define KEY_HINT "give the PEM public key (openssl ec -in signing.key -pubout -out signing.pub)"
#define BAD_FILE "do not run this file: get it again from its source"

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int failed(oerr *e, const char *why)
{
    return oerr_set(e, "signature check failed: %s: " BAD_FILE, why);
}

static int load_key(const char *path, unsigned char point[65], oerr *e)
{
    char *pem;
    size_t len;
    oerr tmp;
    if (read_small_file(AT_FDCWD, path, KEY_MAX, &pem, &len, &tmp))
        return oerr_set(e, "--verify-key %s: bad key file: %s", path, tmp.msg);
    int rc = oci2bin_p256_pubkey_from_pem(pem, len, point);
    int private_key = strstr(pem, "PRIVATE KEY-----") != NULL;
    free(pem);
    switch (rc) {
    case 0: return 0;
    case OCI2BIN_PEM_ERR_NO_BLOCK:
        return oerr_set(e, "--verify-key %s: bad key file: %s: " KEY_HINT, path,
                        private_key ? "a private key, not a public key" : "no PEM \"PUBLIC KEY\" block");
    case OCI2BIN_PEM_ERR_BASE64:
        return oerr_set(e, "--verify-key %s: bad key file: the PEM block is not valid base64: " KEY_HINT, path);
    case OCI2BIN_PEM_ERR_POINT:
        return oerr_set(e, "--verify-key %s: bad key file: the key is not a point on P-256: " KEY_HINT, path);
    default:
        return oerr_set(e, "--verify-key %s: bad key file: not an ECDSA P-256 (prime256v1) public key: " KEY_HINT,
                        path);
    }
}

/* SHA-256 of bytes [0, len) of fd. */
static int hash_prefix(int fd, uint64_t len, unsigned char out[32], oerr *e)
{
    oci2bin_sha256_ctx h;
    unsigned char *buf = xmalloc(CHUNK);
    oci2bin_sha256_init(&h);
    for (uint64_t off = 0; off < len;) {
        size_t n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
        if (pread_all(fd, buf, n, off) < 0) {
            free(buf);
            return oerr_sys(e, errno, NULL, "signature check failed: cannot read the signed bytes");
        }
        oci2bin_sha256_update(&h, buf, n);
        off += n;
    }
    free(buf);
    oci2bin_sha256_final(&h, out);
    return 0;
}

int verify_signature(const payload *p, const char *key_path, oerr *e)
{
    unsigned char point[65], block[SIG_BLOCK_SIZE], key_id[32], digest[32];
    double t0 = now_ms();
    if (load_key(key_path, point, e))
        return -1;
    if (p->sig_off == 0 && p->sig_len == 0)
        return oerr_set(e, "this file is not signed: sign it with `oci2bin sign --key KEY --in FILE`, or run it "
                           "without --verify-key");
    uint64_t base = p->tar_end + p->meta_size;
    if (p->sig_off != base || p->sig_len != SIG_BLOCK_SIZE ||
        p->sig_off + SIG_BLOCK_SIZE + PAYLOAD_FOOTER_SIZE != p->file_size)
        return failed(e, "the signature block is not where the footer says it must be");
    uint64_t meta_loader;
    const json *vm = json_get(p->meta, "vm");
    const json *lo = json_get(p->meta, "loader_offset");
    int meta_vm = vm && vm->type == JSON_TRUE;
    /* no loader_offset in the signed metadata would leave L_OFF (what --vm boots as the guest's init) unpinned */
    if (!lo || json_u64(lo, &meta_loader) || meta_loader != p->loader_off || meta_vm != (int)(p->flags & 1))
        return failed(e, "the footer does not match the signed metadata");
    if (pread_all(p->fd, block, sizeof block, p->sig_off) < 0)
        return oerr_sys(e, errno, NULL, "signature check failed: cannot read the signature block");
    if (memcmp(block, "OCI2SIG\0", 8) != 0 || le32(block + 8) != 1)
        return failed(e, "the signature block is corrupt");
    if (le32(block + 12) != 1)
        return failed(e, "unknown signature algorithm (this loader checks ECDSA P-256 only)");
    if (le64(block + 16) != p->sig_off)
        return failed(e, "the signature block covers a different length");
    oci2bin_sha256_ctx h;
    oci2bin_sha256_init(&h);
    oci2bin_sha256_update(&h, point, sizeof point);
    oci2bin_sha256_final(&h, key_id);
    if (memcmp(key_id, block + 56, 32) != 0)
        return failed(e, "signed with a different key");
    if (hash_prefix(p->fd, p->sig_off, digest, e))
        return -1;
    if (memcmp(digest, block + 24, 32) != 0)
        return failed(e, "the file was modified after signing");
    if (oci2bin_p256_verify_digest(point, block + 88, digest) != 0)
        return failed(e, "the signature does not verify");
    dbg("signature OK: %llu signed bytes checked in %.0f ms", (unsigned long long)p->sig_off, now_ms() - t0);
    return 0;
}
