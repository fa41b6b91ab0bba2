/* First-start layer pipeline (see pipeline.h): read+hash, decode, hash of the decoded stream, and
 * tar+extract on up to four threads. */
#define _GNU_SOURCE
#include "pipeline.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- bounded ring of buffers --------------------------------------------------------------------- */

void chan_init(chan *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (int i = 0; i < PIPE_SLOTS; i++)
        c->buf[i] = xmalloc(PIPE_SLOT_SIZE);
}

void chan_destroy(chan *c)
{
    for (int i = 0; i < PIPE_SLOTS; i++)
        free(c->buf[i]);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

unsigned char *chan_produce_begin(chan *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->cancelled && c->tail - c->head >= PIPE_SLOTS)
        pthread_cond_wait(&c->cv, &c->mu);
    unsigned char *b = c->cancelled ? NULL : c->buf[c->tail % PIPE_SLOTS];
    pthread_mutex_unlock(&c->mu);
    return b;
}

void chan_produce_end(chan *c, size_t len)
{
    chan_produce_range(c, 0, len);
}

void chan_produce_range(chan *c, size_t off, size_t end)
{
    pthread_mutex_lock(&c->mu);
    c->off[c->tail % PIPE_SLOTS] = off;
    c->end[c->tail % PIPE_SLOTS] = end;
    c->tail++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void chan_close(chan *c, const oerr *err)
{
    pthread_mutex_lock(&c->mu);
    c->closed = 1;
    if (err) {
        c->failed = 1;
        c->err = *err;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void chan_cancel(chan *c)
{
    pthread_mutex_lock(&c->mu);
    c->cancelled = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Consumer: makes sure a filled slot is held (releasing one that a view used up). 1, 0 at the end, -1 with *e. */
static int chan_hold(chan *c, oerr *e)
{
    if (c->holding && c->rpos == c->end[c->head % PIPE_SLOTS]) {
        c->holding = 0;
        pthread_mutex_lock(&c->mu);
        c->head++;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    if (c->holding)
        return 1;
    pthread_mutex_lock(&c->mu);
    while (c->head == c->tail && !c->closed)
        pthread_cond_wait(&c->cv, &c->mu);
    if (c->head == c->tail) {
        int failed = c->failed;
        if (failed && e)
            *e = c->err;
        pthread_mutex_unlock(&c->mu);
        return failed ? -1 : 0;
    }
    pthread_mutex_unlock(&c->mu);
    c->holding = 1;
    c->rpos = c->off[c->head % PIPE_SLOTS];
    return 1;
}

ssize_t chan_view(chan *c, const unsigned char **p, size_t max, oerr *e)
{
    int h = chan_hold(c, e);
    if (h <= 0)
        return h;
    unsigned slot = c->head % PIPE_SLOTS;
    size_t avail = c->end[slot] - c->rpos;
    size_t n = max < avail ? max : avail;
    *p = c->buf[slot] + c->rpos;
    c->rpos += n; /* the slot is released by the next call, once the caller is done with *p */
    return (ssize_t)n;
}

ssize_t chan_read(chan *c, void *buf, size_t len, oerr *e)
{
    const unsigned char *p;
    ssize_t n = chan_view(c, &p, len, e);
    if (n > 0)
        memcpy(buf, p, (size_t)n);
    return n;
}

/* ---- the two worker threads ---------------------------------------------------------------------- */

static void *reader_main(void *arg)
{
    layer_pipe *lp = arg;
    uint64_t pos = lp->off, end = lp->off + lp->size;
    unsigned char *spare = NULL; /* once the decoder is done: the rest is only hashed */
    while (pos < end && !lp->abort) {
        unsigned char *b = spare;
        if (!b) {
            b = chan_produce_begin(&lp->raw);
            if (!b) {
                if (!lp->hashing)
                    break;
                b = spare = xmalloc(PIPE_SLOT_SIZE);
            }
        }
        size_t want = end - pos < PIPE_SLOT_SIZE ? (size_t)(end - pos) : PIPE_SLOT_SIZE;
        ssize_t r;
        do
            r = pread(lp->fd, b, want, (off_t)pos);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
            lp->read_failed = 1;
            oerr_sys(&lp->read_err, r < 0 ? errno : EIO, "the file may be truncated", "cannot read layer %s",
                     lp->name);
            chan_close(&lp->raw, &lp->read_err);
            free(spare);
            return NULL;
        }
        if (lp->hashing)
            oci2bin_sha256_update(&lp->sha, b, (size_t)r);
        pos += (uint64_t)r;
        if (!spare)
            chan_produce_end(&lp->raw, (size_t)r);
    }
    if (lp->hashing && pos == end)
        oci2bin_sha256_final(&lp->sha, lp->digest);
    chan_close(&lp->raw, NULL);
    free(spare);
    return NULL;
}

/* gzip: inflates straight into the ring's slots. Each slot starts with a copy of the last 32 KiB of the slot
 * before it (the history that back-references reach into); only the new bytes after it are passed on. */
static int gz_decode_slots(layer_pipe *lp, oerr *e)
{
    const unsigned char *prev = NULL;
    size_t prev_end = 0;
    for (;;) {
        unsigned char *b = chan_produce_begin(lp->dec_out);
        if (!b)
            return 0; /* the consumer is done */
        size_t hist = prev_end < OCI2BIN_GZ_HISTORY ? prev_end : OCI2BIN_GZ_HISTORY;
        if (hist)
            memcpy(b, prev + prev_end - hist, hist);
        ssize_t end = codec_gz_decode_into(&lp->c, b, hist, PIPE_SLOT_SIZE, e);
        if (end < 0)
            return -1;
        if ((size_t)end > hist)
            chan_produce_range(lp->dec_out, hist, (size_t)end);
        if ((size_t)end < PIPE_SLOT_SIZE || lp->abort)
            return 0; /* end of stream */
        /* the slot just passed on stays untouched until the producer comes round to it again, after b */
        prev = b;
        prev_end = (size_t)end;
    }
}

static void *decoder_main(void *arg)
{
    layer_pipe *lp = arg;
    oerr e = {0};
    int failed = 0;
    if (lp->c.kind == CODEC_GZIP) {
        failed = gz_decode_slots(lp, &e) < 0;
        chan_cancel(&lp->raw);
        chan_close(lp->dec_out, failed ? &e : NULL);
        return NULL;
    }
    for (;;) {
        unsigned char *b = chan_produce_begin(lp->dec_out);
        if (!b)
            break; /* the consumer is done (or, with a diff_id, the pipe is aborted) */
        size_t got = 0;
        while (got < PIPE_SLOT_SIZE) {
            ssize_t r = codec_read(&lp->c, b + got, PIPE_SLOT_SIZE - got, &e);
            if (r < 0) {
                failed = 1;
                break;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        if (got)
            chan_produce_end(lp->dec_out, got);
        if (failed || got < PIPE_SLOT_SIZE || lp->abort)
            break;
    }
    /* No more raw input is needed: the reader hashes the rest on its own. */
    chan_cancel(&lp->raw);
    chan_close(lp->dec_out, failed ? &e : NULL);
    return NULL;
}

/* With a diff_id: hashes every decoded byte on its way to the caller, and the rest after the caller is done. */
static void *hasher_main(void *arg)
{
    layer_pipe *lp = arg;
    oerr e = {0};
    unsigned char *spare = NULL;
    for (;;) {
        unsigned char *b = spare;
        if (!b && !(b = chan_produce_begin(&lp->out)))
            b = spare = xmalloc(PIPE_SLOT_SIZE);
        size_t got = 0;
        ssize_t r = 1;
        while (got < PIPE_SLOT_SIZE && (r = chan_read(&lp->mid, b + got, PIPE_SLOT_SIZE - got, &e)) > 0)
            got += (size_t)r;
        oci2bin_sha256_update(&lp->diff_sha, b, got);
        if (!spare && got)
            chan_produce_end(&lp->out, got);
        if (r < 0) {
            /* the caller sees it, or (if it is done already) finish reports it */
            lp->dec_failed = 1;
            lp->dec_err = e;
            chan_close(&lp->out, &e);
            break;
        }
        if (r == 0) {
            if (!lp->abort) {
                oci2bin_sha256_final(&lp->diff_sha, lp->diff_digest);
                lp->diff_done = 1;
            }
            chan_close(&lp->out, NULL);
            break;
        }
        if (lp->abort) {
            chan_close(&lp->out, NULL);
            break;
        }
    }
    chan_cancel(&lp->mid);
    free(spare);
    return NULL;
}

/* ---- the layer pipe ------------------------------------------------------------------------------ */

static ssize_t pipe_raw_source(void *ctx, const unsigned char **p, size_t max, oerr *e)
{
    return chan_view(ctx, p, max, e);
}

int layer_pipe_start(layer_pipe *lp, int fd, uint64_t off, uint64_t size, int hash, const char *diff_hex,
                     const char *name, oerr *e)
{
    memset(lp, 0, sizeof *lp);
    lp->fd = fd;
    lp->off = off;
    lp->size = size;
    lp->hashing = hash;
    lp->name = name;
    lp->diff_hex = diff_hex && diff_hex[0] ? diff_hex : NULL;
    if (codec_open(&lp->c, fd, off, size, 0, name, e)) {
        codec_close(&lp->c);
        return -1;
    }
    if (hash)
        oci2bin_sha256_init(&lp->sha);
    chan_init(&lp->raw);
    chan_init(&lp->out);
    if (lp->diff_hex) {
        chan_init(&lp->mid);
        oci2bin_sha256_init(&lp->diff_sha);
    }
    lp->dec_out = lp->diff_hex ? &lp->mid : &lp->out;
    codec_set_source(&lp->c, pipe_raw_source, &lp->raw);

    /* Signals stay with the calling thread (the loader's handlers expect it). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&lp->reader, NULL, reader_main, lp);
    int n_started = rc == 0;
    if (rc == 0 && (rc = pthread_create(&lp->decoder, NULL, decoder_main, lp)) == 0)
        n_started++;
    if (rc == 0 && lp->diff_hex && (rc = pthread_create(&lp->hasher, NULL, hasher_main, lp)) == 0)
        n_started++;
    if (rc != 0 && n_started) {
        lp->abort = 1;
        chan_cancel(&lp->out);
        chan_cancel(lp->dec_out);
        chan_cancel(&lp->raw);
        if (n_started > 1)
            pthread_join(lp->decoder, NULL);
        pthread_join(lp->reader, NULL);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        dbg("layer %s: cannot start the extraction threads (%s): reading serially", name, strerror(rc));
        chan_destroy(&lp->raw);
        chan_destroy(&lp->out);
        if (lp->diff_hex)
            chan_destroy(&lp->mid);
        codec_close(&lp->c);
        if (codec_open(&lp->c, fd, off, size, hash, name, e)) {
            codec_close(&lp->c);
            return -1;
        }
        return 0;
    }
    lp->started = 1;
    dbg("layer %s: %s, reader/decoder threads started (blob SHA-256: %s build)", name, codec_kind_name(lp->c.kind),
        oci2bin_sha256_impl());
    return 0;
}

ssize_t layer_pipe_read(void *ctx, void *buf, size_t len, oerr *e)
{
    layer_pipe *lp = ctx;
    if (!lp->started)
        return codec_read(&lp->c, buf, len, e);
    return chan_read(&lp->out, buf, len, e);
}

ssize_t layer_pipe_view(void *ctx, const void **p, size_t max, oerr *e)
{
    layer_pipe *lp = ctx;
    if (!lp->started) {
        if (!lp->copy)
            lp->copy = xmalloc(PIPE_SLOT_SIZE);
        ssize_t r = codec_read(&lp->c, lp->copy, max < PIPE_SLOT_SIZE ? max : PIPE_SLOT_SIZE, e);
        *p = lp->copy;
        return r;
    }
    return chan_view(&lp->out, (const unsigned char **)p, max, e);
}

int layer_pipe_finish(layer_pipe *lp, int ok, const char *want_hex, oerr *e)
{
    int rc = 0;
    if (!lp->started) {
        if (ok)
            rc = codec_verify(&lp->c, want_hex, e);
        codec_close(&lp->c);
        free(lp->copy);
        lp->copy = NULL;
        return ok ? rc : -1;
    }
    if (!ok) {
        lp->abort = 1;
        if (lp->diff_hex)
            chan_cancel(&lp->mid);
    }
    chan_cancel(&lp->out);
    if (lp->diff_hex)
        pthread_join(lp->hasher, NULL);
    pthread_join(lp->decoder, NULL);
    if (!ok)
        chan_cancel(&lp->raw);
    pthread_join(lp->reader, NULL);
    if (ok && lp->read_failed) {
        *e = lp->read_err;
        rc = -1;
    } else if (ok && lp->dec_failed) {
        *e = lp->dec_err;
        rc = -1;
    } else if (ok && lp->diff_hex && !lp->diff_done) {
        rc = oerr_set(e, "layer %s: the decoded stream ended early: the file is corrupt, rebuild it", lp->name);
    } else if (ok && lp->hashing) {
        char hex[65];
        hex_encode(lp->digest, 32, hex);
        if (strcmp(hex, want_hex) != 0)
            rc = oerr_set(e, "layer %s does not match its digest (sha256:%s): the file is corrupt or was "
                             "tampered with, rebuild it",
                          lp->name, hex);
    }
    if (rc == 0 && ok && lp->diff_hex) {
        char hex[65];
        hex_encode(lp->diff_digest, 32, hex);
        if (strcmp(hex, lp->diff_hex) != 0)
            rc = oerr_set(e, "a layer's uncompressed content does not match its digest in the image config "
                             "(rootfs.diff_ids: sha256:%s): the image is corrupt or was tampered with, rebuild it",
                          lp->diff_hex);
    }
    chan_destroy(&lp->raw);
    chan_destroy(&lp->out);
    if (lp->diff_hex)
        chan_destroy(&lp->mid);
    codec_close(&lp->c);
    free(lp->copy);
    lp->copy = NULL;
    lp->started = 0;
    return ok ? rc : -1;
}
