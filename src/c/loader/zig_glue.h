/* C view of zig_glue.zig: gzip inflate from Zig's standard library (SHA-256: sha256.h). */
#ifndef OCI2BIN_ZIG_GLUE_H
#define OCI2BIN_ZIG_GLUE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sha256.h"

typedef ssize_t (*oci2bin_read_fn)(void *ctx, unsigned char *buf, size_t len);

#define OCI2BIN_GZ_ERR_DATA (-1)
#define OCI2BIN_GZ_ERR_READ (-2)
void *oci2bin_gz_new(oci2bin_read_fn cb, void *ctx);
void oci2bin_gz_free(void *gz);
ssize_t oci2bin_gz_read(void *gz, unsigned char *out, size_t len);
/* Instead of oci2bin_gz_read (never both on one decoder): decodes into buf[hist, cap) without a copy. buf[0, hist)
 * must hold the last min(OCI2BIN_GZ_HISTORY, all) bytes produced so far. Returns the end of the data in buf (cap
 * when full; less at the end of the stream) or a negative OCI2BIN_GZ_ERR_*. */
#define OCI2BIN_GZ_HISTORY 32768
ssize_t oci2bin_gz_decode_into(void *gz, unsigned char *buf, size_t hist, size_t cap);

#endif
