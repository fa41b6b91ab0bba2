/* SHA-256: Zig std's implementation, built twice (sha256_base.zig for the baseline CPU, sha256_hw.zig with the
 * SHA instructions: x86 SHA-NI + AVX2, ARMv8 SHA2) and chosen once at run time by what the CPU offers. */
#ifndef OCI2BIN_SHA256_H
#define OCI2BIN_SHA256_H
#include <stddef.h>

typedef struct {
    _Alignas(64) unsigned char opaque[512];
} oci2bin_sha256_ctx;

/* The dispatched interface (every caller uses these). */
void oci2bin_sha256_init(oci2bin_sha256_ctx *ctx);
void oci2bin_sha256_update(oci2bin_sha256_ctx *ctx, const void *data, size_t len);
void oci2bin_sha256_final(oci2bin_sha256_ctx *ctx, unsigned char out[32]);
/* Which build the dispatch uses: "sha-ni" (x86_64), "armv8-sha2" (aarch64) or "portable". */
const char *oci2bin_sha256_impl(void);

/* The two builds themselves (for the unit tests). _hw_ may only be called when oci2bin_sha256_hw_usable(). */
int oci2bin_sha256_hw_usable(void);
void oci2bin_sha256_base_init(oci2bin_sha256_ctx *ctx);
void oci2bin_sha256_base_update(oci2bin_sha256_ctx *ctx, const void *data, size_t len);
void oci2bin_sha256_base_final(oci2bin_sha256_ctx *ctx, unsigned char out[32]);
void oci2bin_sha256_hw_init(oci2bin_sha256_ctx *ctx);
void oci2bin_sha256_hw_update(oci2bin_sha256_ctx *ctx, const void *data, size_t len);
void oci2bin_sha256_hw_final(oci2bin_sha256_ctx *ctx, unsigned char out[32]);
#endif
