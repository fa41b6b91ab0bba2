/* Layer streams: uncompressed, gzip (Zig std.compress.flate via zig_glue) or zstd (libzstd, when built
 * with OCI2BIN_HAVE_ZSTD), detected by magic bytes, all behind codec_read(). */
#define _GNU_SOURCE
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef OCI2BIN_HAVE_ZSTD
#include "zstd.h"
#endif

#define ZBUF_SIZE (128 * 1024)

const char *codec_kind_name(enum codec_kind k)
{
    switch (k) {
    case CODEC_GZIP: return "gzip";
    case CODEC_ZSTD: return "zstd";
    default: return "uncompressed";
    }
}

void sha256_hex(const void *data, size_t len, char out[65])
{
    oci2bin_sha256_ctx ctx;
    unsigned char d[32];
    oci2bin_sha256_init(&ctx);
    oci2bin_sha256_update(&ctx, data, len);
    oci2bin_sha256_final(&ctx, d);
    hex_encode(d, 32, out);
}

/* The source's next view of raw bytes within the range (no copy). */
static ssize_t raw_view(codec *c, const unsigned char **p, size_t max)
{
    if (c->pos >= c->end)
        return 0;
    if (max > c->end - c->pos)
        max = (size_t)(c->end - c->pos);
    ssize_t r = c->src(c->src_ctx, p, max, &c->src_err);
    if (r < 0) {
        c->src_failed = 1;
        c->raw_err = EIO;
        return -1;
    }
    if (r == 0) {
        c->raw_err = EIO;
        return -1;
    }
    c->pos += (uint64_t)r;
    return r;
}

/* Raw reads from the file range, hashed on the way. */
static ssize_t raw_read(codec *c, unsigned char *buf, size_t len)
{
    if (c->pos >= c->end)
        return 0;
    if (len > c->end - c->pos)
        len = (size_t)(c->end - c->pos);
    ssize_t r;
    if (c->src) {
        const unsigned char *p;
        r = raw_view(c, &p, len);
        if (r > 0)
            memcpy(buf, p, (size_t)r);
        return r;
    }
    do
        r = pread(c->fd, buf, len, (off_t)c->pos);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        c->raw_err = errno;
        return -1;
    }
    if (r == 0) {
        c->raw_err = EIO;
        return -1;
    }
    if (c->hashing)
        oci2bin_sha256_update(&c->sha, buf, (size_t)r);
    c->pos += (uint64_t)r;
    return r;
}

void codec_set_source(codec *c, ssize_t (*src)(void *ctx, const unsigned char **p, size_t max, oerr *e),
                      void *ctx)
{
    c->src = src;
    c->src_ctx = ctx;
    c->hashing = 0;
}

/* The error of a failed raw read: the source's own, or errno-style from pread. */
static int raw_error(codec *c, oerr *e)
{
    if (c->src_failed) {
        *e = c->src_err;
        return -1;
    }
    return oerr_sys(e, c->raw_err, "the file may be truncated", "cannot read layer %s", c->name);
}

static ssize_t gz_input(void *ctx, unsigned char *buf, size_t len)
{
    return raw_read(ctx, buf, len);
}

int codec_open(codec *c, int fd, uint64_t off, uint64_t size, int hash, const char *name, oerr *e)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->pos = off;
    c->end = off + size;
    c->hashing = hash;
    c->name = name;
    if (hash)
        oci2bin_sha256_init(&c->sha);
    unsigned char magic[4] = {0};
    if (size >= 4 && pread_all(fd, magic, 4, off) < 0)
        return oerr_sys(e, errno, "the file may be truncated", "cannot read layer %s", name);
    if (size >= 4 && magic[0] == 0x1f && magic[1] == 0x8b) {
        c->kind = CODEC_GZIP;
        c->gz = oci2bin_gz_new(gz_input, c);
        if (!c->gz)
            return oerr_set(e, "cannot allocate a gzip decoder: free some memory and retry");
    } else if (size >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
        c->kind = CODEC_ZSTD;
#ifdef OCI2BIN_HAVE_ZSTD
        c->zs = ZSTD_createDStream();
        if (!c->zs)
            return oerr_set(e, "cannot allocate a zstd decoder: free some memory and retry");
        c->zbuf = xmalloc(ZBUF_SIZE);
#else
        return oerr_set(e, "layer %s is zstd-compressed but this loader was built without zstd: rebuild the "
                           "binary with --compress gzip",
                        name);
#endif
    } else {
        c->kind = CODEC_NONE;
    }
    return 0;
}

#ifdef OCI2BIN_HAVE_ZSTD
static ssize_t zstd_read(codec *c, void *buf, size_t len, oerr *e)
{
    ZSTD_outBuffer out = {buf, len, 0};
    while (out.pos == 0) {
        if (c->zpos == c->zlen) {
            /* from the pipeline's ring: decoded straight out of its slot */
            ssize_t r = c->src ? raw_view(c, &c->zin, SIZE_MAX) : raw_read(c, c->zbuf, ZBUF_SIZE);
            if (!c->src)
                c->zin = c->zbuf;
            if (r < 0)
                return raw_error(c, e);
            if (r == 0) {
                if (c->eof)
                    return 0;
                return oerr_set(e, "layer %s: truncated zstd stream: the file is corrupt, rebuild it", c->name);
            }
            c->zpos = 0;
            c->zlen = (size_t)r;
        }
        ZSTD_inBuffer in = {c->zin, c->zlen, c->zpos};
        size_t rc = ZSTD_decompressStream(c->zs, &out, &in);
        c->zpos = in.pos;
        if (ZSTD_isError(rc))
            return oerr_set(e, "layer %s: zstd: %s: the file is corrupt, rebuild it", c->name,
                            ZSTD_getErrorName(rc));
        if (rc == 0) {
            /* end of a frame: another frame may follow */
            c->eof = 1;
            if (c->zpos == c->zlen && c->pos >= c->end)
                return (ssize_t)out.pos;
        } else {
            c->eof = 0;
        }
    }
    return (ssize_t)out.pos;
}
#endif

ssize_t codec_read(codec *c, void *buf, size_t len, oerr *e)
{
    ssize_t r;
    switch (c->kind) {
    case CODEC_NONE:
        r = raw_read(c, buf, len);
        if (r < 0)
            return raw_error(c, e);
        return r;
    case CODEC_GZIP:
        r = oci2bin_gz_read(c->gz, buf, len);
        if (r == OCI2BIN_GZ_ERR_READ)
            return raw_error(c, e);
        if (r < 0)
            return oerr_set(e, "layer %s: corrupt or truncated gzip data: the file is damaged, rebuild it",
                            c->name);
        return r;
    case CODEC_ZSTD:
#ifdef OCI2BIN_HAVE_ZSTD
        return zstd_read(c, buf, len, e);
#else
        break;
#endif
    }
    return oerr_set(e, "layer %s: unsupported compression: rebuild the binary", c->name);
}

ssize_t codec_gz_decode_into(codec *c, unsigned char *buf, size_t hist, size_t cap, oerr *e)
{
    ssize_t r = oci2bin_gz_decode_into(c->gz, buf, hist, cap);
    if (r == OCI2BIN_GZ_ERR_READ)
        return raw_error(c, e);
    if (r < 0)
        return oerr_set(e, "layer %s: corrupt or truncated gzip data: the file is damaged, rebuild it", c->name);
    return r;
}

int codec_verify(codec *c, const char *want_hex, oerr *e)
{
    unsigned char buf[64 * 1024];
    ssize_t r;
    if (!c->hashing)
        return 0;
    while ((r = raw_read(c, buf, sizeof buf)) > 0)
        ;
    if (r < 0)
        return raw_error(c, e);
    unsigned char d[32];
    char hex[65];
    oci2bin_sha256_final(&c->sha, d);
    c->hashing = 0;
    hex_encode(d, 32, hex);
    if (strcmp(hex, want_hex) != 0)
        return oerr_set(e, "layer %s does not match its digest (sha256:%s): the file is corrupt or was "
                           "tampered with, rebuild it",
                        c->name, hex);
    return 0;
}

void codec_close(codec *c)
{
    if (c->gz)
        oci2bin_gz_free(c->gz);
#ifdef OCI2BIN_HAVE_ZSTD
    if (c->zs)
        ZSTD_freeDStream(c->zs);
#endif
    free(c->zbuf);
    memset(c, 0, sizeof *c);
}
