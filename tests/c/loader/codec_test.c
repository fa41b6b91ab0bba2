/* Unit tests for codec.c (none/gzip detection, gzip inflate via Zig std, SHA-256 verification) and the
 * threaded layer pipeline (pipeline.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "pipeline.h"
#include "tap.h"
#ifdef OCI2BIN_HAVE_ZSTD
#include "zstd.h"
#endif

/* gzip.compress(b'hello oci2bin\n' * 200, mtime=0) */
static const unsigned char GZ[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x4f, 0xce,
    0x34, 0x4a, 0xca, 0xcc, 0xe3, 0xca, 0x18, 0xe5, 0x8d, 0xf2, 0x46, 0x79, 0xa3, 0xbc, 0x51, 0xde, 0x28, 0x6f, 0x94,
    0x37, 0xca, 0x1b, 0xe5, 0x8d, 0xf2, 0x86, 0x15, 0x0f, 0x00, 0xd4, 0xab, 0x01, 0xf9, 0xf0, 0x0a, 0x00, 0x00};

static int memfile(const void *data, size_t len, size_t prefix)
{
    int fd = memfd_create("codec_test", MFD_CLOEXEC);
    char z[64] = {0};
    if (prefix)
        write_all(fd, z, prefix);
    write_all(fd, data, len);
    return fd;
}

/* ---- a gzip stream whose back-references cross every ring slot boundary (fixed-Huffman deflate, written here) */
typedef struct {
    unsigned char *p;
    size_t n;
    uint32_t acc;
    int bits;
} bitw;

static void put_bits(bitw *w, uint32_t v, int n) /* LSB first */
{
    for (int i = 0; i < n; i++) {
        w->acc |= ((v >> i) & 1u) << w->bits;
        if (++w->bits == 8) {
            w->p[w->n++] = (unsigned char)w->acc;
            w->acc = 0;
            w->bits = 0;
        }
    }
}

static void put_code(bitw *w, uint32_t code, int n) /* Huffman codes go MSB first */
{
    for (int i = n - 1; i >= 0; i--)
        put_bits(w, (code >> i) & 1u, 1);
}

static void put_literal(bitw *w, unsigned v)
{
    if (v < 144)
        put_code(w, 0x30 + v, 8);
    else
        put_code(w, 0x190 + (v - 144), 9);
}

static uint32_t crc32_of(const unsigned char *d, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* 32 KiB of literals, then matches of 258 bytes at distance 32768 (the maximum) up to `total` bytes: the output
 * repeats with a 32 KiB period, and every match reaches back across the previous ring slot boundary. */
static unsigned char *gz_far_matches(size_t total, unsigned char *expect, size_t *len)
{
    bitw w = {malloc(total / 8 + 65536), 0, 0, 0};
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memcpy(w.p, hdr, sizeof hdr);
    w.n = sizeof hdr;
    put_bits(&w, 1, 1); /* final block */
    put_bits(&w, 1, 2); /* fixed Huffman */
    size_t n = 0;
    for (; n < 32768 && n < total; n++) {
        expect[n] = (unsigned char)(n * 2654435761u >> 24);
        put_literal(&w, expect[n]);
    }
    while (total - n >= 258) {
        put_code(&w, 0xc5, 8);   /* length code 285: 258 bytes */
        put_code(&w, 29, 5);     /* distance code 29 ... */
        put_bits(&w, 8191, 13);  /* ... + 8191 = 32768 */
        for (int k = 0; k < 258; k++, n++)
            expect[n] = expect[n - 32768];
    }
    for (; n < total; n++) {
        expect[n] = expect[n - 32768];
        put_literal(&w, expect[n]);
    }
    put_code(&w, 0, 7); /* end of block */
    if (w.bits)
        put_bits(&w, 0, 8 - w.bits);
    uint32_t crc = crc32_of(expect, total), size = (uint32_t)total;
    for (int i = 0; i < 4; i++)
        w.p[w.n++] = (unsigned char)(crc >> 8 * i);
    for (int i = 0; i < 4; i++)
        w.p[w.n++] = (unsigned char)(size >> 8 * i);
    *len = w.n;
    return w.p;
}

static size_t drain(codec *c, char *out, size_t cap, oerr *e, ssize_t *last)
{
    size_t n = 0;
    ssize_t r;
    while ((r = codec_read(c, out + n, cap - n > 100 ? 100 : cap - n, e)) > 0)
        n += (size_t)r;
    *last = r;
    return n;
}

int main(void)
{
    char hex[65];
    sha256_hex("abc", 3, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256(\"abc\")");
    sha256_hex("", 0, hex);
    is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "SHA-256(\"\")");

    oerr e = {0};
    codec c;
    static char out[8192];
    ssize_t last;
    int fd = memfile(GZ, sizeof GZ, 16);
    ok(codec_open(&c, fd, 16, sizeof GZ, 1, "gz", &e) == 0 && c.kind == CODEC_GZIP, "gzip detected at an offset");
    size_t n = drain(&c, out, sizeof out, &e, &last);
    ok(last == 0 && n == 14 * 200 && memcmp(out, "hello oci2bin\nhello", 19) == 0, "gzip inflates (%zu bytes)", n);
    sha256_hex(GZ, sizeof GZ, hex);
    ok(codec_verify(&c, hex, &e) == 0, "digest of the raw blob verifies");
    codec_close(&c);
    ok(codec_open(&c, fd, 16, sizeof GZ, 1, "gz", &e) == 0, "reopen");
    drain(&c, out, sizeof out, &e, &last);
    ok(codec_verify(&c, "0000000000000000000000000000000000000000000000000000000000000000", &e) == -1 &&
           strstr(e.msg, "does not match"),
       "digest mismatch is an error");
    codec_close(&c);
    close(fd);

    unsigned char bad[sizeof GZ];
    memcpy(bad, GZ, sizeof GZ);
    bad[20] ^= 0x55;
    fd = memfile(bad, sizeof bad, 0);
    codec_open(&c, fd, 0, sizeof bad, 0, "bad", &e);
    drain(&c, out, sizeof out, &e, &last);
    ok(last < 0 && strstr(e.msg, "gzip"), "corrupt gzip is an error (%s)", e.msg);
    codec_close(&c);
    close(fd);

    fd = memfile(GZ, sizeof GZ - 12, 0);
    codec_open(&c, fd, 0, sizeof GZ - 12, 0, "trunc", &e);
    drain(&c, out, sizeof out, &e, &last);
    ok(last < 0, "truncated gzip is an error");
    codec_close(&c);
    close(fd);

    fd = memfile("plain tar bytes", 15, 0);
    ok(codec_open(&c, fd, 0, 15, 0, "plain", &e) == 0 && c.kind == CODEC_NONE, "uncompressed detected");
    n = drain(&c, out, sizeof out, &e, &last);
    ok(n == 15 && last == 0 && memcmp(out, "plain tar bytes", 15) == 0, "uncompressed passes through");
    codec_close(&c);
    close(fd);

    static const unsigned char ZST[] = {0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x01, 0x09, 0x00, 0x00, 0x0a};
    fd = memfile(ZST, sizeof ZST, 0);
    int zrc = codec_open(&c, fd, 0, sizeof ZST, 0, "z", &e);
#ifdef OCI2BIN_HAVE_ZSTD
    n = drain(&c, out, sizeof out, &e, &last);
    ok(zrc == 0 && c.kind == CODEC_ZSTD && n == 1 && out[0] == '\n', "zstd frame decodes");
#else
    ok(zrc == -1 && strstr(e.msg, "zstd"), "zstd without libzstd: clear error");
#endif
    codec_close(&c);
    close(fd);

    /* ---- the pipeline ---- */
    layer_pipe lp;
    sha256_hex(GZ, sizeof GZ, hex);
    fd = memfile(GZ, sizeof GZ, 16);
    ok(layer_pipe_start(&lp, fd, 16, sizeof GZ, 1, NULL, "gz", &e) == 0 && lp.started && lp.c.kind == CODEC_GZIP,
       "pipeline starts (gzip)");
    n = 0;
    while ((last = layer_pipe_read(&lp, out + n, 100, &e)) > 0)
        n += (size_t)last;
    ok(last == 0 && n == 14 * 200 && memcmp(out, "hello oci2bin\nhello", 19) == 0, "pipeline inflates (%zu)", n);
    ok(layer_pipe_finish(&lp, 1, hex, &e) == 0, "pipeline: digest verifies");
    layer_pipe_start(&lp, fd, 16, sizeof GZ, 1, NULL, "gz", &e);
    layer_pipe_read(&lp, out, 19, &e);
    ok(layer_pipe_finish(&lp, 1, hex, &e) == 0, "pipeline: consumer done early, the rest is still hashed");
    layer_pipe_start(&lp, fd, 16, sizeof GZ, 1, NULL, "gz", &e);
    while (layer_pipe_read(&lp, out, sizeof out, &e) > 0)
        ;
    ok(layer_pipe_finish(&lp, 1, "0000000000000000000000000000000000000000000000000000000000000000", &e) == -1 &&
           strstr(e.msg, "does not match"),
       "pipeline: digest mismatch is an error");
    char dhex[65];
    memset(out, 0, sizeof out);
    for (int k = 0; k < 200; k++)
        memcpy(out + 14 * k, "hello oci2bin\n", 14);
    sha256_hex(out, 14 * 200, dhex);
    layer_pipe_start(&lp, fd, 16, sizeof GZ, 1, dhex, "gz", &e);
    n = 0;
    while ((last = layer_pipe_read(&lp, out + n, 333, &e)) > 0)
        n += (size_t)last;
    ok(last == 0 && n == 14 * 200 && layer_pipe_finish(&lp, 1, hex, &e) == 0, "pipeline: diff_id verifies");
    layer_pipe_start(&lp, fd, 16, sizeof GZ, 1, dhex, "gz", &e);
    layer_pipe_read(&lp, out, 19, &e);
    ok(layer_pipe_finish(&lp, 1, hex, &e) == 0, "pipeline: consumer done early, the rest is still decoded and hashed");
    layer_pipe_start(&lp, fd, 16, sizeof GZ, 1, hex, "gz", &e);
    layer_pipe_read(&lp, out, 19, &e);
    ok(layer_pipe_finish(&lp, 1, hex, &e) == -1 && strstr(e.msg, "diff_ids"), "pipeline: diff_id mismatch (%s)",
       e.msg);
    close(fd);
    fd = memfile(bad, sizeof bad, 0);
    layer_pipe_start(&lp, fd, 0, sizeof bad, 1, NULL, "bad", &e);
    while ((last = layer_pipe_read(&lp, out, sizeof out, &e)) > 0)
        ;
    ok(last < 0 && strstr(e.msg, "gzip"), "pipeline: corrupt gzip is an error (%s)", e.msg);
    ok(layer_pipe_finish(&lp, 0, hex, &e) == -1 && strstr(e.msg, "gzip"), "pipeline: failure keeps the error");
    close(fd);

    /* many ring slots: 5 MiB uncompressed, read in odd sizes */
    size_t big = 5u * 1024 * 1024 + 777;
    unsigned char *data = malloc(big), *back = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    data[0] = 'x'; /* no compression magic */
    char bighex[65];
    sha256_hex(data, big, bighex);
    fd = memfile(data, big, 3);
    ok(layer_pipe_start(&lp, fd, 3, big, 1, bighex, "big", &e) == 0 && lp.c.kind == CODEC_NONE,
       "pipeline starts (none, with a diff_id)");
    n = 0;
    while ((last = layer_pipe_read(&lp, back + n, 4099, &e)) > 0)
        n += (size_t)last;
    ok(last == 0 && n == big && memcmp(back, data, big) == 0, "pipeline passes 5 MiB through intact");
    ok(layer_pipe_finish(&lp, 1, bighex, &e) == 0, "pipeline: 5 MiB digest and diff_id verify");
    int rounds = 0;
    for (int k = 0; k < 20; k++) {
        layer_pipe_start(&lp, fd, 3, big, 1, k % 3 ? bighex : NULL, "big", &e);
        layer_pipe_read(&lp, back, (size_t)k * 1000 + 1, &e);
        if (k % 2)
            usleep(2000); /* let the rings fill */
        if (layer_pipe_finish(&lp, 1, bighex, &e) != 0)
            break;
        layer_pipe_start(&lp, fd, 3, big, 1, k % 3 ? bighex : NULL, "big", &e);
        layer_pipe_read(&lp, back, 10, &e);
        if (layer_pipe_finish(&lp, 0, bighex, &e) != -1)
            break;
        rounds++;
    }
    ok(rounds == 20, "pipeline: early finish and abort, %d of 20 rounds, no hang", rounds);
    layer_pipe_start(&lp, fd, 3, big - 1, 1, NULL, "big", &e);
    while (layer_pipe_read(&lp, back, sizeof out, &e) > 0)
        ;
    ok(layer_pipe_finish(&lp, 1, bighex, &e) == -1 && strstr(e.msg, "does not match"),
       "pipeline: one byte short does not match");
    layer_pipe_start(&lp, fd, 3, big + 100, 1, bighex, "big", &e);
    while ((last = layer_pipe_read(&lp, back, sizeof out, &e)) > 0)
        ;
    ok(layer_pipe_finish(&lp, 1, bighex, &e) == -1 && strstr(e.msg, "cannot read layer"),
       "pipeline: a range past the end of the file is a read error (%s)", e.msg);

    /* views (no copy) mixed with reads, across slot boundaries */
    layer_pipe_start(&lp, fd, 3, big, 1, NULL, "big", &e);
    n = 0;
    int view_ok = 1;
    for (int k = 0; view_ok; k++) {
        const void *p;
        last = k % 3 ? layer_pipe_view(&lp, &p, (size_t)k * 7919 + 1, &e) : layer_pipe_read(&lp, back, 4099, &e);
        if (last <= 0)
            break;
        view_ok = memcmp(k % 3 ? p : back, data + n, (size_t)last) == 0 && (k % 3 == 0 || last <= k * 7919 + 1);
        n += (size_t)last;
    }
    ok(view_ok && last == 0 && n == big && layer_pipe_finish(&lp, 1, bighex, &e) == 0,
       "pipeline: views and reads mixed give the stream intact (%zu bytes)", n);
    close(fd);

    /* gzip inflated straight into the ring's slots: back-references across every slot boundary */
    size_t gtotal = 3u * 1024 * 1024 + 12345, glen;
    unsigned char *gexp = malloc(gtotal), *gz = gz_far_matches(gtotal, gexp, &glen);
    sha256_hex(gz, glen, hex);
    fd = memfile(gz, glen, 7);
    ok(layer_pipe_start(&lp, fd, 7, glen, 1, NULL, "far", &e) == 0 && lp.started && lp.c.kind == CODEC_GZIP,
       "pipeline starts (gzip, %zu bytes, far matches)", glen);
    n = 0;
    view_ok = 1;
    for (int k = 0;; k++) {
        const void *p;
        last = k % 2 ? layer_pipe_view(&lp, &p, SIZE_MAX, &e) : layer_pipe_read(&lp, back, 65536 + 3, &e);
        if (last <= 0)
            break;
        view_ok &= n + (size_t)last <= gtotal && memcmp(k % 2 ? p : back, gexp + n, (size_t)last) == 0;
        n += (size_t)last;
    }
    ok(view_ok && last == 0 && n == gtotal, "pipeline: gzip slots carry the history (%zu bytes intact)", n);
    ok(layer_pipe_finish(&lp, 1, hex, &e) == 0, "pipeline: gzip blob digest verifies");
    ok(codec_open(&c, fd, 7, glen, 1, "far", &e) == 0, "serial gzip reopen");
    n = 0;
    view_ok = 1;
    while ((last = codec_read(&c, back, 100003, &e)) > 0) {
        view_ok &= n + (size_t)last <= gtotal && memcmp(back, gexp + n, (size_t)last) == 0;
        n += (size_t)last;
    }
    ok(view_ok && last == 0 && n == gtotal && codec_verify(&c, hex, &e) == 0,
       "serial gzip read across its 1 MiB window (%zu bytes intact)", n);
    codec_close(&c);
    layer_pipe_start(&lp, fd, 7, glen - 9, 1, NULL, "far", &e);
    while ((last = layer_pipe_read(&lp, back, 65536, &e)) > 0)
        ;
    ok(last < 0 && strstr(e.msg, "gzip"), "pipeline: truncated gzip is an error (%s)", e.msg);
    layer_pipe_finish(&lp, 0, hex, &e);
    close(fd);

    /* RFC 1952 multi-member gzip (eStargz layers, `cat a.gz b.gz`): every member is decoded, as docker does */
    size_t mlen = glen + sizeof GZ, mtotal = gtotal + 14 * 200;
    unsigned char *multi = malloc(mlen + 3), *mexp = malloc(mtotal);
    memcpy(multi, gz, glen);
    memcpy(multi + glen, GZ, sizeof GZ);
    memcpy(mexp, gexp, gtotal);
    for (int k = 0; k < 200; k++)
        memcpy(mexp + gtotal + 14 * k, "hello oci2bin\n", 14);
    sha256_hex(multi, mlen, hex);
    fd = memfile(multi, mlen, 0);
    layer_pipe_start(&lp, fd, 0, mlen, 1, NULL, "multi", &e);
    n = 0;
    view_ok = 1;
    for (;;) {
        const void *p;
        last = layer_pipe_view(&lp, &p, SIZE_MAX, &e);
        if (last <= 0)
            break;
        view_ok &= n + (size_t)last <= mtotal && memcmp(p, mexp + n, (size_t)last) == 0;
        n += (size_t)last;
    }
    ok(view_ok && last == 0 && n == mtotal && layer_pipe_finish(&lp, 1, hex, &e) == 0,
       "pipeline: two gzip members give both (%zu of %zu bytes)", n, mtotal);
    codec_open(&c, fd, 0, mlen, 0, "multi", &e);
    n = 0;
    view_ok = 1;
    while ((last = codec_read(&c, back, 100003, &e)) > 0) {
        view_ok &= n + (size_t)last <= mtotal && memcmp(back, mexp + n, (size_t)last) == 0;
        n += (size_t)last;
    }
    ok(view_ok && last == 0 && n == mtotal, "serial: two gzip members give both (%zu bytes)", n);
    codec_close(&c);
    close(fd);
    memcpy(multi + mlen, "xyz", 3); /* garbage after the last member: an error, as for docker's gzip reader */
    fd = memfile(multi, mlen + 3, 0);
    codec_open(&c, fd, 0, mlen + 3, 0, "junk", &e);
    while ((last = codec_read(&c, back, 100003, &e)) > 0)
        ;
    ok(last < 0 && strstr(e.msg, "gzip"), "bytes after the last member are an error (%s)", e.msg);
    codec_close(&c);
    close(fd);
    free(multi);
    free(mexp);
    free(gz);
    free(gexp);

#ifdef OCI2BIN_HAVE_ZSTD
    /* zstd straight out of the raw ring's slots: two frames, many slots of input, read through views */
    size_t half = big / 2, zcap = ZSTD_compressBound(half) * 2;
    unsigned char *z = malloc(zcap);
    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)((i * 2654435761u >> 13) % 7 ? i * 2654435761u >> 20 : i); /* half compressible */
    size_t z1 = ZSTD_compress(z, zcap, data, half, 1);
    size_t z2 = ZSTD_compress(z + z1, zcap - z1, data + half, big - half, 3);
    ok(!ZSTD_isError(z1) && !ZSTD_isError(z2) && z1 + z2 > 2 * PIPE_SLOT_SIZE, "two zstd frames (%zu bytes)", z1 + z2);
    sha256_hex(z, z1 + z2, hex);
    fd = memfile(z, z1 + z2, 5);
    ok(layer_pipe_start(&lp, fd, 5, z1 + z2, 1, NULL, "zst", &e) == 0 && lp.c.kind == CODEC_ZSTD,
       "pipeline starts (zstd)");
    n = 0;
    view_ok = 1;
    for (;;) {
        const void *p;
        last = layer_pipe_view(&lp, &p, SIZE_MAX, &e);
        if (last <= 0)
            break;
        view_ok &= n + (size_t)last <= big && memcmp(p, data + n, (size_t)last) == 0;
        n += (size_t)last;
    }
    ok(view_ok && last == 0 && n == big, "pipeline decodes zstd from the ring intact (%zu bytes)", n);
    ok(layer_pipe_finish(&lp, 1, hex, &e) == 0, "pipeline: zstd blob digest verifies");
    layer_pipe_start(&lp, fd, 5, z1 + z2 - 1, 1, NULL, "zst", &e);
    while ((last = layer_pipe_view(&lp, &(const void *){0}, SIZE_MAX, &e)) > 0)
        ;
    ok(last < 0 && strstr(e.msg, "zstd"), "pipeline: truncated zstd is an error (%s)", e.msg);
    layer_pipe_finish(&lp, 0, hex, &e);
    close(fd);
    free(z);
#endif
    free(data);
    free(back);
    return tap_done();
}
