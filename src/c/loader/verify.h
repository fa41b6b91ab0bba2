/* --verify-key PUBLIC.pem: the file's ECDSA P-256 signature, checked before anything is extracted. */
#ifndef OCI2BIN_VERIFY_H
#define OCI2BIN_VERIFY_H
#include "payload.h"
#include "util.h"

/* Checks p (opened from /proc/self/exe) against the PEM public key at key_path: the footer/metadata
 * consistency of docs/format.md, the key id, the SHA-256 of the signed bytes and the signature.
 * Returns 0, or -1 with *e: "--verify-key K: bad key file: ...", "this file is not signed: ..." or
 * "signature check failed: <why>: ...". */
int verify_signature(const payload *p, const char *key_path, oerr *e);
#endif
