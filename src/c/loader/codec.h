/* One read interface over a byte range of a file: uncompressed, gzip or zstd (by magic bytes),
 * optionally hashing the raw (compressed) bytes with SHA-256 as they are read. */
#ifndef OCI2BIN_CODEC_H
#define OCI2BIN_CODEC_H
#include <stdint.h>
#include <sys/types.h>
#include "util.h"
#include "zig_glue.h"

enum codec_kind { CODEC_NONE, CODEC_GZIP, CODEC_ZSTD };

typedef struct codec {
    int fd;
    uint64_t pos, end;     /* raw byte range still to read */
    int hashing;
    oci2bin_sha256_ctx sha;
    enum codec_kind kind;
    void *gz;
    void *zs;              /* ZSTD_DStream when built with zstd */
    unsigned char *zbuf;   /* zstd input buffer */
    size_t zpos, zlen;
    int raw_err;           /* errno of a failed raw read */
    int eof;
    const char *name;      /* for messages */
    const unsigned char *zin; /* zstd input: zbuf, or the source's view */
    /* optional raw source instead of pread (the pipeline's ring, read without a copy: *p stays valid until the
     * next call); its errors are kept in src_err */
    ssize_t (*src)(void *ctx, const unsigned char **p, size_t max, oerr *e);
    void *src_ctx;
    int src_failed;
    oerr src_err;
} codec;

/* Opens [off, off+size) of fd. hash != 0 computes the SHA-256 of those raw bytes. */
int codec_open(codec *c, int fd, uint64_t off, uint64_t size, int hash, const char *name, oerr *e);
/* Reads decompressed bytes: returns count, 0 at end of stream, -1 with *e. */
ssize_t codec_read(codec *c, void *buf, size_t len, oerr *e);
/* gzip only, instead of codec_read (see oci2bin_gz_decode_into): decodes into buf[hist, cap), buf[0, hist) holding
 * the last min(OCI2BIN_GZ_HISTORY, all) bytes decoded. The end of the data in buf (< cap: end of stream), or -1. */
ssize_t codec_gz_decode_into(codec *c, unsigned char *buf, size_t hist, size_t cap, oerr *e);
/* Reads the rest of the raw bytes into the hash and compares it with want_hex (64 lowercase hex). */
int codec_verify(codec *c, const char *want_hex, oerr *e);
void codec_close(codec *c);
/* Reads the raw bytes of the range from src instead of the file (no hashing then: the source hashes). src
 * returns a view of up to max bytes (count, 0 at the end, -1 with *e), valid until its next call. */
void codec_set_source(codec *c, ssize_t (*src)(void *ctx, const unsigned char **p, size_t max, oerr *e),
                      void *ctx);
const char *codec_kind_name(enum codec_kind k);
/* Hex SHA-256 of a buffer (out: 65 bytes). */
void sha256_hex(const void *data, size_t len, char out[65]);
#endif
