/* Unit tests for sha256.c and its two builds of Zig std's SHA-256: the baseline build and the hardware build
 * (x86_64 SHA-NI + AVX2, aarch64 ARMv8 SHA2), each against known digests (FIPS 180-2 vectors, multi-block and
 * odd lengths, data fed in odd pieces), and the run-time dispatch. The hardware build is only exercised where
 * the CPU has the instructions (the "# sha256 dispatch:" line says which ran; under qemu-aarch64 it depends on
 * the emulated CPU). Prints the throughput of each build as a comment (not checked: the machine is shared). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sha256.h"
#include "tap.h"

typedef struct {
    const char *name;
    void (*init)(oci2bin_sha256_ctx *);
    void (*update)(oci2bin_sha256_ctx *, const void *, size_t);
    void (*final)(oci2bin_sha256_ctx *, unsigned char[32]);
} impl;

static const impl BASE = {"portable build", oci2bin_sha256_base_init, oci2bin_sha256_base_update,
                          oci2bin_sha256_base_final};
static const impl HW = {"hardware build", oci2bin_sha256_hw_init, oci2bin_sha256_hw_update, oci2bin_sha256_hw_final};
static const impl DISPATCH = {"dispatch", oci2bin_sha256_init, oci2bin_sha256_update, oci2bin_sha256_final};

/* The deterministic pattern the expected digests below were computed over (Python hashlib). */
static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131 + (i >> 8) * 7 + 1) & 0xff);
    return p;
}

/* Hashes data in pieces of the given sizes (cycled; 0 = all at once). */
static void digest_hex(const impl *im, const void *data, size_t n, const size_t *pieces, size_t n_pieces,
                       char hex[65])
{
    oci2bin_sha256_ctx ctx;
    unsigned char d[32];
    im->init(&ctx);
    size_t off = 0;
    for (size_t k = 0; off < n; k++) {
        size_t step = n_pieces ? pieces[k % n_pieces] : n;
        if (step > n - off)
            step = n - off;
        im->update(&ctx, (const unsigned char *)data + off, step);
        off += step;
    }
    im->final(&ctx, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static const struct {
    const char *text;
    const char *hex;
} TEXTS[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    /* 56 bytes: the padding needs a second block */
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    /* 112 bytes */
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static const struct {
    size_t n;
    const char *hex;
} PATTERNS[] = {
    {55, "b8d1951a19c060e2a42dfd6ba200b905ec4c5aa30eb846242ec423e41a5fe1db"},
    {56, "142eda062d998bfda60595064dfa9b4bec4da13bff05ac2d401da95d9bc74ef9"},
    {63, "1668d362b1ceeba54414b72fb0ed3d041f816970a2127d749b4bcd5c3a5fea3f"},
    {64, "5184b731667917f36e49b663e47c088c37323e4540b971ff11cf64f1fe64ef54"},
    {65, "91997235f680e2b47347a03eea084b86e25edd1a3f908cfed3a2aab1041a6fc3"},
    {119, "d4e72734440e362f4b5197c86d083e9167f2540ca7ec1163d8debba99a602056"},
    {127, "3721cfa1fdb93c47d04d4c800426a86810bf8c3b7ef1e74909e8e82191ee3b6f"},
    {128, "0596d90b01f1d4c28c20519400f047bc5be9304e910bc3da0aea25c3ef121245"},
    {129, "f2a7ebe924730380e748c42d0bb621d7b3245a82076a6b81b9071e2e3dce1101"},
    {1000003, "071ee3ee8c11630500fb8cf2e07749796576cae8432263391cfeb7887b362f70"},
};

static const size_t ODD_PIECES[] = {1, 3, 63, 65, 7, 127, 4096, 13};

static void check_impl(const impl *im)
{
    char hex[65];
    for (size_t i = 0; i < sizeof TEXTS / sizeof TEXTS[0]; i++) {
        digest_hex(im, TEXTS[i].text, strlen(TEXTS[i].text), NULL, 0, hex);
        is_str(hex, TEXTS[i].hex, "%s: %zu-byte FIPS 180-2 vector", im->name, strlen(TEXTS[i].text));
    }
    for (size_t i = 0; i < sizeof PATTERNS / sizeof PATTERNS[0]; i++) {
        unsigned char *p = pattern(PATTERNS[i].n);
        digest_hex(im, p, PATTERNS[i].n, NULL, 0, hex);
        is_str(hex, PATTERNS[i].hex, "%s: %zu bytes in one update", im->name, PATTERNS[i].n);
        digest_hex(im, p, PATTERNS[i].n, ODD_PIECES, sizeof ODD_PIECES / sizeof ODD_PIECES[0], hex);
        is_str(hex, PATTERNS[i].hex, "%s: %zu bytes in odd pieces", im->name, PATTERNS[i].n);
        free(p);
    }
    /* one million 'a', fed 1000 bytes at a time */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    static const size_t thousand[] = {1000};
    digest_hex(im, a, sizeof a, thousand, 1, hex);
    is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "%s: 1,000,000 x 'a'", im->name);
}

static double mb_per_s(const impl *im, const unsigned char *buf, size_t n)
{
    char hex[65];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    static const size_t slot[] = {256 * 1024};
    digest_hex(im, buf, n, slot, 1, hex);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return (double)n / 1e6 / (s > 0 ? s : 1e-9);
}

int main(void)
{
    int hw = oci2bin_sha256_hw_usable();
    printf("# sha256 dispatch: %s (hardware build %s)\n", oci2bin_sha256_impl(),
           hw ? "usable: tested" : "not usable on this CPU: its checks are skipped");
    is_str(oci2bin_sha256_impl(), hw ? (strcmp(oci2bin_sha256_impl(), "sha-ni") == 0 ? "sha-ni" : "armv8-sha2")
                                     : "portable",
           "dispatch names the build it uses");
#if defined(__x86_64__) || defined(__aarch64__)
    ok(!hw || strcmp(oci2bin_sha256_impl(), "portable") != 0, "a usable hardware build is the one dispatched");
#endif
    check_impl(&BASE);
    check_impl(&DISPATCH);
    if (hw) {
        check_impl(&HW);
        /* the two builds share the context layout: a hash started by one can be finished by the other */
        unsigned char *p = pattern(1000003);
        oci2bin_sha256_ctx ctx;
        unsigned char d[32];
        char hex[65];
        oci2bin_sha256_base_init(&ctx);
        oci2bin_sha256_base_update(&ctx, p, 500001);
        oci2bin_sha256_hw_update(&ctx, p + 500001, 1000003 - 500001);
        oci2bin_sha256_hw_final(&ctx, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        is_str(hex, "071ee3ee8c11630500fb8cf2e07749796576cae8432263391cfeb7887b362f70",
               "portable and hardware builds share one context layout");
        free(p);
    } else {
        ok(1, "# SKIP hardware build: the CPU lacks the SHA instructions");
    }

    size_t n = 16u << 20;
    unsigned char *big = pattern(n);
    double base = mb_per_s(&BASE, big, n);
    if (hw)
        printf("# throughput (16 MiB, 256 KiB updates): portable %.0f MB/s, hardware %.0f MB/s\n", base,
               mb_per_s(&HW, big, n));
    else
        printf("# throughput (16 MiB, 256 KiB updates): portable %.0f MB/s\n", base);
    free(big);
    return tap_done();
}
