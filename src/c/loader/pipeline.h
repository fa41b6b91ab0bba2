/* First-start layer pipeline: three threads per layer, joined before the layer is done.
 *   reader thread:  pread of the blob -> SHA-256 of the raw bytes (the blob digest) -> ring raw
 *   decoder thread: ring raw -> codec (gzip/zstd/none) -> ring mid (or straight to ring out)
 *   hasher thread:  (only with a diff_id) ring mid -> SHA-256 of the decoded stream -> ring out
 *   caller:         ring out -> tar -> extract (all path resolution and file writes stay on the caller)
 * Rings are bounded (PIPE_SLOTS buffers of PIPE_SLOT_SIZE bytes). The decoded stream is not copied between
 * threads: zstd decodes from the raw ring's slots in place, gzip inflates into the out ring's slots (each slot
 * starting with the 32 KiB history copied from the one before), and the caller writes files straight from the
 * slots (layer_pipe_view). When the caller is done early (the tar end
 * blocks), the rest of the blob is still hashed, and with a diff_id the rest of the stream is still decoded and
 * hashed. Digests are compared only after all threads are joined; a mismatch or any read/decode error fails
 * the layer as the serial path does. */
#ifndef OCI2BIN_PIPELINE_H
#define OCI2BIN_PIPELINE_H
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "util.h"

#define PIPE_SLOTS 8
#define PIPE_SLOT_SIZE (256 * 1024)

typedef struct chan {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* any state change */
    unsigned char *buf[PIPE_SLOTS];
    size_t off[PIPE_SLOTS], end[PIPE_SLOTS]; /* the data of a full slot: buf[off, end) */
    unsigned head, tail;        /* consumer's next slot, producer's next slot; tail - head = full slots */
    int closed;                 /* producer finished (eof, or failed with err set) */
    int failed;
    oerr err;
    int cancelled;              /* the consumer wants no more data */
    /* consumer-side (only the consumer touches these) */
    int holding;
    size_t rpos;
} chan;

void chan_init(chan *c);
void chan_destroy(chan *c);
/* Producer: the next empty buffer (PIPE_SLOT_SIZE bytes), or NULL once the consumer cancelled. */
unsigned char *chan_produce_begin(chan *c);
void chan_produce_end(chan *c, size_t len);
/* The same for data at buf[off, end) of the slot (the bytes before off are not passed on). */
void chan_produce_range(chan *c, size_t off, size_t end);
/* Producer: end of data; err != NULL makes the consumer's next read fail with it. */
void chan_close(chan *c, const oerr *err);
/* Consumer: count, 0 at the end, -1 with *e (the producer's error). */
ssize_t chan_read(chan *c, void *buf, size_t len, oerr *e);
/* Consumer, without a copy: *p = up to max bytes inside the current slot, valid until the next chan_view /
 * chan_read call (the slot is released then). Same returns as chan_read. */
ssize_t chan_view(chan *c, const unsigned char **p, size_t max, oerr *e);
void chan_cancel(chan *c);

typedef struct layer_pipe {
    int fd;
    uint64_t off, size;
    int hashing;
    const char *name;
    codec c;                    /* opened by the caller (kind known), read by the decoder thread */
    const char *diff_hex;       /* expected SHA-256 of the decoded stream (config rootfs.diff_ids), or NULL */
    chan raw, mid, out;
    chan *dec_out;              /* &mid with a diff_id, else &out */
    pthread_t reader, decoder, hasher;
    int started;
    volatile int abort;         /* stop everything, the digest no longer matters */
    oci2bin_sha256_ctx sha;
    unsigned char digest[32];
    int read_failed;
    oerr read_err;
    oci2bin_sha256_ctx diff_sha;
    unsigned char diff_digest[32];
    int diff_done;              /* the whole decoded stream was hashed */
    int dec_failed;             /* decoding failed after the caller was done (only seen with a diff_id) */
    oerr dec_err;
    unsigned char *copy;        /* layer_pipe_view's buffer when reading serially */
} layer_pipe;

/* Opens the codec and starts both threads. -1 with *e if the codec cannot be opened; if a thread cannot be
 * started lp->started stays 0 and 0 is returned: the caller then reads lp->c serially. */
int layer_pipe_start(layer_pipe *lp, int fd, uint64_t off, uint64_t size, int hash, const char *diff_hex,
                     const char *name, oerr *e);
/* The decompressed stream (a tar_read_fn). */
ssize_t layer_pipe_read(void *lp, void *buf, size_t len, oerr *e);
/* The same stream without a copy where possible (a tar_view_fn): *p points into the ring (or, when reading
 * serially, a buffer of the pipe), valid until the next read or view. */
ssize_t layer_pipe_view(void *lp, const void **p, size_t max, oerr *e);
/* Stops and joins the threads. ok != 0: the consumer succeeded; then the rest of the blob is hashed and
 * compared with want_hex (when hashing), and the rest of the stream decoded, hashed and compared with the
 * diff_id (when given). Returns 0 or -1 with *e. Always releases everything. */
int layer_pipe_finish(layer_pipe *lp, int ok, const char *want_hex, oerr *e);
#endif
