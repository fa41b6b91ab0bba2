/* Test helper: builds tar streams in memory (ustar, pax 'x', GNU 'L'/'K', base-256 sizes). */
#ifndef OCI2BIN_TARBUILD_H
#define OCI2BIN_TARBUILD_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "util.h"

typedef struct tb {
    unsigned char *buf;
    size_t len, cap, pos; /* pos: read position for tb_read */
    size_t chunk;         /* max bytes per tb_read call (exercises short reads) */
} tb;

static inline void tb_put(tb *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 4096;
        t->buf = realloc(t->buf, t->cap);
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static inline void tb_pad(tb *t)
{
    static const unsigned char z[512];
    if (t->len % 512)
        tb_put(t, z, 512 - t->len % 512);
}

static inline void tb_octal(unsigned char *f, size_t len, uint64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%0*llo", (int)len - 1, (unsigned long long)v);
    memcpy(f, tmp, len - 1);
    f[len - 1] = 0;
}

/* One raw header + data. name/link are copied into the ustar fields (truncated at 100). */
static inline void tb_raw(tb *t, char type, const char *name, const char *link, unsigned mode, const void *data,
                   size_t size, int base256_size)
{
    unsigned char h[512] = {0};
    strncpy((char *)h, name, 100);
    tb_octal(h + 100, 8, mode);
    tb_octal(h + 108, 8, 0);
    tb_octal(h + 116, 8, 0);
    if (base256_size) {
        memset(h + 124, 0, 12);
        h[124] = 0x80;
        uint64_t v = size;
        for (int i = 11; i >= 1; i--, v >>= 8)
            h[124 + i] = (unsigned char)(v & 0xff);
    } else {
        tb_octal(h + 124, 12, size);
    }
    tb_octal(h + 136, 12, 1700000000);
    h[156] = (unsigned char)type;
    if (link)
        strncpy((char *)h + 157, link, 100);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    tb_put(t, h, 512);
    if (size) {
        tb_put(t, data, size);
        tb_pad(t);
    }
}

static inline void tb_file(tb *t, const char *name, const char *content, unsigned mode)
{
    tb_raw(t, '0', name, NULL, mode, content, strlen(content), 0);
}

static inline void tb_dir(tb *t, const char *name, unsigned mode)
{
    tb_raw(t, '5', name, NULL, mode, NULL, 0, 0);
}

static inline void tb_sym(tb *t, const char *name, const char *target)
{
    tb_raw(t, '2', name, target, 0777, NULL, 0, 0);
}

static inline void tb_hard(tb *t, const char *name, const char *target)
{
    tb_raw(t, '1', name, target, 0644, NULL, 0, 0);
}

/* A pax 'x' header with one key=value record. */
static inline void tb_pax(tb *t, const char *key, const char *val)
{
    char rec[8192];
    size_t body = strlen(key) + strlen(val) + 3; /* ' ' '=' '\n' */
    size_t n = body + 1;
    for (;;) {
        size_t digits = (size_t)snprintf(NULL, 0, "%zu", n);
        if (digits + body == n)
            break;
        n = digits + body;
    }
    snprintf(rec, sizeof rec, "%zu %s=%s\n", n, key, val);
    tb_raw(t, 'x', "PaxHeader", NULL, 0644, rec, strlen(rec), 0);
}

static inline void tb_gnu_long(tb *t, char type, const char *val)
{
    tb_raw(t, type, "././@LongLink", NULL, 0644, val, strlen(val) + 1, 0);
}

static inline void tb_end(tb *t)
{
    static const unsigned char z[1024];
    tb_put(t, z, 1024);
}

static inline ssize_t tb_read(void *ctx, void *buf, size_t len, oerr *e)
{
    (void)e;
    tb *t = ctx;
    size_t n = t->len - t->pos;
    if (n > len)
        n = len;
    if (t->chunk && n > t->chunk)
        n = t->chunk;
    memcpy(buf, t->buf + t->pos, n);
    t->pos += n;
    return (ssize_t)n;
}

/* The same bytes as a view (a tar_view_fn): a pointer into the archive, no copy. */
static inline ssize_t tb_view(void *ctx, const void **p, size_t max, oerr *e)
{
    (void)e;
    tb *t = ctx;
    size_t n = t->len - t->pos;
    if (n > max)
        n = max;
    if (t->chunk && n > t->chunk)
        n = t->chunk;
    *p = t->buf + t->pos;
    t->pos += n;
    return (ssize_t)n;
}
#endif
