/* Streaming tar reader (ustar + pax + GNU long names). Entries are returned with their meta-data
 * overridden by preceding pax 'x' / GNU 'L'/'K' records; pax 'g' records are skipped. */
#include "tar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "zig_glue.h"

#define BLOCK 512

/* Every byte of the decoded stream goes through here (hashed for the diff_id check). */
static ssize_t src_read(tar_reader *t, void *buf, size_t len, oerr *e)
{
    ssize_t r = t->read(t->ctx, buf, len, e);
    if (r > 0 && t->diff_hash)
        oci2bin_sha256_update(t->diff_hash, buf, (size_t)r);
    return r;
}

void tar_guard(tar_reader *t, const char *diff_hex, uint64_t *budget)
{
    t->budget = budget;
    struct rlimit rl;
    if (budget && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        t->fsize_max = (uint64_t)rl.rlim_cur;
    if (diff_hex && diff_hex[0] && !t->diff_hash) {
        t->diff_hash = aligned_alloc(64, sizeof(oci2bin_sha256_ctx));
        if (!t->diff_hash)
            return; /* no memory: not checked (the blob digest still is) */
        oci2bin_sha256_init(t->diff_hash);
        t->diff_hex = diff_hex;
    }
}

/* At the end of the archive: hashes the rest of the stream (padding after the end blocks) and compares. */
static int finish_diff_id(tar_reader *t, oerr *e)
{
    if (!t->diff_hash)
        return 0;
    char buf[8192];
    ssize_t r;
    while ((r = src_read(t, buf, sizeof buf, e)) > 0)
        ;
    if (r < 0)
        return -1;
    unsigned char d[32];
    char hex[65];
    oci2bin_sha256_final(t->diff_hash, d);
    free(t->diff_hash);
    t->diff_hash = NULL;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (strcmp(hex, t->diff_hex) != 0)
        return oerr_set(e, "a layer's uncompressed content does not match its digest in the image config "
                           "(rootfs.diff_ids: sha256:%s): the image is corrupt or was tampered with, rebuild it",
                        t->diff_hex);
    return 0;
}

static int read_exact(tar_reader *t, void *buf, size_t len, int *eof, oerr *e)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = src_read(t, (char *)buf + got, len - got, e);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got == len)
        return 0;
    if (got == 0 && eof) {
        *eof = 1;
        return 0;
    }
    return oerr_set(e, "truncated tar stream in a layer: the file is corrupt, rebuild it");
}

static int skip(tar_reader *t, uint64_t n, oerr *e)
{
    char buf[16 * 1024];
    while (n > 0) {
        size_t chunk = n > sizeof buf ? sizeof buf : (size_t)n;
        if (read_exact(t, buf, chunk, NULL, e))
            return -1;
        n -= chunk;
    }
    return 0;
}

/* Parses an octal (or GNU base-256) numeric field. */
static int num_field(const unsigned char *f, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] & 0x40)
            return -1; /* negative */
        v = f[0] & 0x3f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 55)
                return -1;
            v = (v << 8) | f[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < len && (f[i] == ' ' || f[i] == 0))
        i++;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != 0)
            return -1;
    *out = v;
    return 0;
}

static int checksum_ok(const unsigned char *h)
{
    uint64_t want;
    if (num_field(h + 148, 8, &want))
        return 0;
    unsigned long sum = 0;
    long ssum = 0;
    for (int i = 0; i < BLOCK; i++) {
        unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
        sum += c;
        ssum += (signed char)c;
    }
    return sum == want || (uint64_t)ssum == want;
}

static int is_zero_block(const unsigned char *h)
{
    for (int i = 0; i < BLOCK; i++)
        if (h[i])
            return 0;
    return 1;
}

void tar_init(tar_reader *t, tar_read_fn read, void *ctx)
{
    memset(t, 0, sizeof *t);
    t->read = read;
    t->ctx = ctx;
}

static void clear_entry(tar_entry *en)
{
    free(en->path);
    free(en->linkpath);
    memset(en, 0, sizeof *en);
}

void tar_free(tar_reader *t)
{
    clear_entry(&t->cur);
    free(t->diff_hash);
    t->diff_hash = NULL;
    free(t->vbuf);
    t->vbuf = NULL;
}

/* Reads a record body of `size` bytes (+ padding) into a NUL-terminated buffer. */
static char *read_body(tar_reader *t, uint64_t size, size_t max, oerr *e)
{
    if (size > max) {
        oerr_set(e, "tar extended header too large (%llu bytes): the layer is unusual, report it",
                 (unsigned long long)size);
        return NULL;
    }
    char *buf = xmalloc((size_t)size + 1);
    if (read_exact(t, buf, (size_t)size, NULL, e) || skip(t, (BLOCK - size % BLOCK) % BLOCK, e)) {
        free(buf);
        return NULL;
    }
    buf[size] = 0;
    return buf;
}

typedef struct pax_over {
    char *path, *linkpath;
    int has_size, has_uid, has_gid, has_mtime;
    uint64_t size, uid, gid;
    int64_t mtime;
    uint32_t mtime_nsec;
} pax_over;

static int parse_dec(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parses "len key=value\n" records. */
static int parse_pax(const char *buf, size_t len, pax_over *po, oerr *e)
{
    size_t pos = 0;
    while (pos < len) {
        if (buf[pos] == 0)
            break; /* some writers pad with NULs */
        size_t sp = pos;
        while (sp < len && buf[sp] != ' ')
            sp++;
        uint64_t rlen;
        if (sp >= len || parse_dec(buf + pos, sp - pos, &rlen) || rlen < 5 || rlen > len - pos ||
            buf[pos + rlen - 1] != '\n')
            return oerr_set(e, "malformed pax header in a layer: the layer is corrupt, rebuild the image");
        const char *kv = buf + sp + 1, *end = buf + pos + rlen - 1;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq)
            return oerr_set(e, "malformed pax record in a layer: the layer is corrupt, rebuild the image");
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
        const char *val = eq + 1;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(kv, k, klen) == 0)
        if (KEY("path")) {
            free(po->path);
            po->path = xstrndup(val, vlen);
        } else if (KEY("linkpath")) {
            free(po->linkpath);
            po->linkpath = xstrndup(val, vlen);
        } else if (KEY("size")) {
            if (parse_dec(val, vlen, &po->size))
                return oerr_set(e, "bad pax size in a layer: the layer is corrupt, rebuild the image");
            po->has_size = 1;
        } else if (KEY("uid")) {
            po->has_uid = !parse_dec(val, vlen, &po->uid);
        } else if (KEY("gid")) {
            po->has_gid = !parse_dec(val, vlen, &po->gid);
        } else if (KEY("mtime")) {
            const char *dot = memchr(val, '.', vlen);
            size_t ilen = dot ? (size_t)(dot - val) : vlen;
            uint64_t secs;
            if (ilen > 0 && val[0] != '-' && !parse_dec(val, ilen, &secs) && secs < (1ull << 62)) {
                po->has_mtime = 1;
                po->mtime = (int64_t)secs;
                po->mtime_nsec = 0;
                if (dot) {
                    uint32_t ns = 0;
                    size_t i = 1, digits = 0;
                    for (; ilen + i < vlen && digits < 9 && val[ilen + i] >= '0' && val[ilen + i] <= '9'; i++)
                        ns = ns * 10 + (uint32_t)(val[ilen + i] - '0'), digits++;
                    while (digits++ < 9)
                        ns *= 10;
                    po->mtime_nsec = ns;
                }
            }
        }
#undef KEY
        pos += (size_t)rlen;
    }
    return 0;
}

static int has_nul(const char *s, size_t n)
{
    return memchr(s, 0, n) != NULL;
}

int tar_next(tar_reader *t, const tar_entry **out, oerr *e)
{
    unsigned char h[BLOCK];
    pax_over po = {0};
    char *gnu_name = NULL, *gnu_link = NULL;
    int rc = -1;

    if (t->done)
        return 0;
    if (skip(t, t->remaining + t->padding, e))
        return -1;
    t->remaining = t->padding = 0;
    clear_entry(&t->cur);
    for (;;) {
        int eof = 0;
        if (read_exact(t, h, BLOCK, &eof, e))
            goto out;
        if (eof || is_zero_block(h)) {
            /* End of archive (two zero blocks; tolerate one, or a bare EOF). */
            t->done = 1;
            rc = finish_diff_id(t, e);
            goto out;
        }
        if (!checksum_ok(h)) {
            oerr_set(e, "bad tar header checksum in a layer: the layer is corrupt, rebuild the image");
            goto out;
        }
        uint64_t size;
        if (num_field(h + 124, 12, &size)) {
            oerr_set(e, "bad tar size field in a layer: the layer is corrupt, rebuild the image");
            goto out;
        }
        char type = (char)h[156];
        if (type == 'x' || type == 'g') {
            char *body = read_body(t, size, TAR_PAX_MAX, e);
            if (!body)
                goto out;
            int prc = type == 'x' ? parse_pax(body, (size_t)size, &po, e) : 0;
            free(body);
            if (prc)
                goto out;
            continue;
        }
        if (type == 'L' || type == 'K') {
            char *body = read_body(t, size, TAR_NAME_MAX, e);
            if (!body)
                goto out;
            size_t n = strlen(body);
            while (n > 0 && body[n - 1] == 0)
                n--;
            char **slot = type == 'L' ? &gnu_name : &gnu_link;
            free(*slot);
            *slot = body;
            continue;
        }
        tar_entry *en = &t->cur;
        en->type = type == 0 ? '0' : type == '7' ? '0' : type;
        uint64_t v;
        en->mode = num_field(h + 100, 8, &v) ? 0644 : (uint32_t)(v & 07777);
        en->uid = num_field(h + 108, 8, &v) ? 0 : v;
        en->gid = num_field(h + 116, 8, &v) ? 0 : v;
        en->mtime = num_field(h + 136, 12, &v) ? 0 : (int64_t)(v & ((1ull << 62) - 1));
        en->devmajor = num_field(h + 329, 8, &v) ? 0 : (uint32_t)v;
        en->devminor = num_field(h + 337, 8, &v) ? 0 : (uint32_t)v;
        en->size = size;
        if (po.path) {
            en->path = po.path, po.path = NULL;
        } else if (gnu_name) {
            en->path = gnu_name, gnu_name = NULL;
        } else {
            char name[256 + 1 + 100 + 1];
            size_t nlen = strnlen((const char *)h, 100);
            int ustar = memcmp(h + 257, "ustar", 5) == 0;
            size_t plen = ustar ? strnlen((const char *)h + 345, 155) : 0;
            size_t pos = 0;
            if (plen) {
                memcpy(name, h + 345, plen);
                pos = plen;
                name[pos++] = '/';
            }
            memcpy(name + pos, h, nlen);
            name[pos + nlen] = 0;
            en->path = xstrdup(name);
        }
        if (po.linkpath) {
            en->linkpath = po.linkpath, po.linkpath = NULL;
        } else if (gnu_link) {
            en->linkpath = gnu_link, gnu_link = NULL;
        } else if (h[157]) {
            en->linkpath = xstrndup((const char *)h + 157, strnlen((const char *)h + 157, 100));
        }
        if (po.has_size)
            en->size = po.size;
        if (po.has_uid)
            en->uid = po.uid;
        if (po.has_gid)
            en->gid = po.gid;
        if (po.has_mtime)
            en->mtime = po.mtime, en->mtime_nsec = po.mtime_nsec;
        if (en->path[0] == 0 || has_nul(en->path, strlen(en->path))) {
            oerr_set(e, "tar entry with an empty name in a layer: the layer is corrupt, rebuild the image");
            goto out;
        }
        if (t->budget && en->type == '0') {
            if (en->size > *t->budget) {
                oerr_set(e, "layer entry %s declares %llu bytes, more than the free space left on the target "
                            "filesystem: No space left on it (free some space, or the layer is a decompression bomb)",
                         en->path, (unsigned long long)en->size);
                goto out;
            }
            *t->budget -= en->size;
        }
        /* Data the caller does not read (links, dirs, ...) is skipped by the next tar_next. */
        t->remaining = en->size;
        t->padding = (BLOCK - en->size % BLOCK) % BLOCK;
        *out = en;
        rc = 1;
        goto out;
    }
out:
    free(po.path);
    free(po.linkpath);
    free(gnu_name);
    free(gnu_link);
    return rc;
}

/* How much of the current entry's data the next read may take (0: all read), -1 past RLIMIT_FSIZE. */
static ssize_t data_limit(tar_reader *t, size_t len, oerr *e)
{
    if (t->remaining == 0)
        return 0;
    if (len > t->remaining)
        len = (size_t)t->remaining;
    /* RLIMIT_FSIZE: refused where the file would cross it (checked as the data arrives, so a truncated
     * stream is still reported as truncated), before the write that would fail with EFBIG */
    uint64_t done = t->cur.size - t->remaining;
    if (t->fsize_max && t->cur.type == '0' && done + len > t->fsize_max) {
        if (done >= t->fsize_max)
            return oerr_set(e, "layer entry %s declares %llu bytes, larger than the file size limit (ulimit -f): "
                               "raise the limit, or the layer is a decompression bomb",
                            t->cur.path, (unsigned long long)t->cur.size);
        len = (size_t)(t->fsize_max - done);
    }
    return (ssize_t)len;
}

static ssize_t data_taken(tar_reader *t, ssize_t r, oerr *e)
{
    if (r < 0)
        return -1;
    if (r == 0)
        return oerr_set(e, "truncated tar stream in a layer: the file is corrupt, rebuild it");
    t->remaining -= (uint64_t)r;
    return r;
}

ssize_t tar_read(tar_reader *t, void *buf, size_t len, oerr *e)
{
    ssize_t n = data_limit(t, len, e);
    if (n <= 0)
        return n;
    return data_taken(t, src_read(t, buf, (size_t)n, e), e);
}

void tar_set_view(tar_reader *t, tar_view_fn view)
{
    t->view = view;
}

#define VIEW_BUF (256 * 1024)

ssize_t tar_read_view(tar_reader *t, const void **p, size_t max, oerr *e)
{
    ssize_t n = data_limit(t, max, e);
    if (n <= 0)
        return n;
    if (!t->view) {
        if (!t->vbuf)
            t->vbuf = xmalloc(VIEW_BUF);
        *p = t->vbuf;
        return tar_read(t, t->vbuf, (size_t)n < VIEW_BUF ? (size_t)n : VIEW_BUF, e);
    }
    ssize_t r = t->view(t->ctx, p, (size_t)n, e);
    if (r > 0 && t->diff_hash)
        oci2bin_sha256_update(t->diff_hash, *p, (size_t)r);
    return data_taken(t, r, e);
}
