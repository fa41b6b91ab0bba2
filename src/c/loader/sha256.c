/* Run-time choice between the two SHA-256 builds (sha256.h). The hardware build is compiled for more than the
 * loader's baseline CPU, so it is only entered after checking every feature its -mcpu enables. */
#define _GNU_SOURCE
#include "sha256.h"

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1UL << 6)
#endif
#endif

#if defined(__x86_64__)
/* sha256_hw.zig is built with -mcpu=baseline+sha+avx2: AVX2 brings AVX, SSE4.2, SSE4.1, SSSE3 and SSE3 with it,
 * and AVX registers are only usable when the kernel saves them (OSXSAVE, XCR0 bits 1-2). */
static int detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const unsigned need = bit_SSE3 | bit_SSSE3 | bit_SSE4_1 | bit_SSE4_2 | bit_AVX | bit_OSXSAVE;
    if ((c & need) != need)
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b & bit_AVX2) && (b & bit_SHA);
}
static const char hw_name[] = "sha-ni";
#elif defined(__aarch64__)
/* sha256_hw.zig is built with -mcpu=baseline+sha2 (NEON is in the baseline). */
static int detect(void)
{
    return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0;
}
static const char hw_name[] = "armv8-sha2";
#else
static int detect(void)
{
    return 0;
}
static const char hw_name[] = "portable";
#endif

/* 0 unknown, 1 portable, 2 hardware. Threads may race to fill it in; they all store the same value. */
static int g_choice;

int oci2bin_sha256_hw_usable(void)
{
    int c = __atomic_load_n(&g_choice, __ATOMIC_RELAXED);
    if (!c) {
        c = detect() ? 2 : 1;
        __atomic_store_n(&g_choice, c, __ATOMIC_RELAXED);
    }
    return c == 2;
}

const char *oci2bin_sha256_impl(void)
{
    return oci2bin_sha256_hw_usable() ? hw_name : "portable";
}

void oci2bin_sha256_init(oci2bin_sha256_ctx *ctx)
{
    if (oci2bin_sha256_hw_usable())
        oci2bin_sha256_hw_init(ctx);
    else
        oci2bin_sha256_base_init(ctx);
}

void oci2bin_sha256_update(oci2bin_sha256_ctx *ctx, const void *data, size_t len)
{
    if (oci2bin_sha256_hw_usable())
        oci2bin_sha256_hw_update(ctx, data, len);
    else
        oci2bin_sha256_base_update(ctx, data, len);
}

void oci2bin_sha256_final(oci2bin_sha256_ctx *ctx, unsigned char out[32])
{
    if (oci2bin_sha256_hw_usable())
        oci2bin_sha256_hw_final(ctx, out);
    else
        oci2bin_sha256_base_final(ctx, out);
}
