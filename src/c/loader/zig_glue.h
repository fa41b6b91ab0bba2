/* C view of zig_glue.zig: gzip inflate and SHA-256 from Zig's standard library. */
#ifndef OCI2BIN_ZIG_GLUE_H
#define OCI2BIN_ZIG_GLUE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef ssize_t (*oci2bin_read_fn)(void *ctx, unsigned char *buf, size_t len);

#define OCI2BIN_GZ_ERR_DATA (-1)
#define OCI2BIN_GZ_ERR_READ (-2)
void *oci2bin_gz_new(oci2bin_read_fn cb, void *ctx);
void oci2bin_gz_free(void *gz);
ssize_t oci2bin_gz_read(void *gz, unsigned char *out, size_t len);

typedef struct {
    _Alignas(64) unsigned char opaque[512];
} oci2bin_sha256_ctx;
void oci2bin_sha256_init(oci2bin_sha256_ctx *ctx);
void oci2bin_sha256_update(oci2bin_sha256_ctx *ctx, const void *data, size_t len);
void oci2bin_sha256_final(oci2bin_sha256_ctx *ctx, unsigned char out[32]);
#endif
