/* C view of ecdsa_glue.zig: P-256 public keys from PEM and ECDSA P-256/SHA-256 checks (Zig std crypto). */
#ifndef OCI2BIN_ECDSA_GLUE_H
#define OCI2BIN_ECDSA_GLUE_H
#include <stddef.h>

#define OCI2BIN_PEM_ERR_NO_BLOCK (-1) /* no PUBLIC KEY block */
#define OCI2BIN_PEM_ERR_BASE64 (-2)   /* the block is not base64 */
#define OCI2BIN_PEM_ERR_NOT_P256 (-3) /* not an uncompressed P-256 SubjectPublicKeyInfo */
#define OCI2BIN_PEM_ERR_POINT (-4)    /* the point is not on the curve */
/* The first "-----BEGIN PUBLIC KEY-----" block of pem as an uncompressed SEC1 point (04 || X || Y). */
int oci2bin_p256_pubkey_from_pem(const char *pem, size_t len, unsigned char point[65]);
/* 0 if sig (raw r || s, 32 bytes each, big-endian) signs the SHA-256 digest under point, else -1. */
int oci2bin_p256_verify_digest(const unsigned char point[65], const unsigned char sig[64], const unsigned char digest[32]);
#endif
