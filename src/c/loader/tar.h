/* Streaming tar reader: ustar, pax extended headers (path, linkpath, size, uid, gid, mtime),
 * GNU long names ('L') and long link names ('K'), base-256 numbers. */
#ifndef OCI2BIN_TAR_H
#define OCI2BIN_TAR_H
#include <stdint.h>
#include <sys/types.h>
#include "util.h"

#define TAR_NAME_MAX 4096
#define TAR_PAX_MAX (1u << 20)

/* The byte source: returns count, 0 at end, -1 with *e. */
typedef ssize_t (*tar_read_fn)(void *ctx, void *buf, size_t len, oerr *e);
/* Optionally, the same source without a copy: *p = up to max bytes, valid until the source's next call. */
typedef ssize_t (*tar_view_fn)(void *ctx, const void **p, size_t max, oerr *e);

typedef struct tar_entry {
    char type;        /* '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
    char *path;       /* malloc'd, as stored (not normalised) */
    char *linkpath;   /* malloc'd or NULL */
    uint32_t mode;    /* permission bits (07777) */
    uint64_t uid, gid;
    uint64_t size;
    int64_t mtime;
    uint32_t mtime_nsec;
    uint32_t devmajor, devminor;
} tar_entry;

typedef struct tar_reader {
    tar_read_fn read;
    tar_view_fn view;   /* or NULL */
    void *ctx;
    unsigned char *vbuf; /* tar_read_view's buffer when there is no view function */
    uint64_t remaining; /* unread data bytes of the current entry */
    uint64_t padding;   /* padding after it */
    int done;
    tar_entry cur;
    /* tar_guard: */
    const char *diff_hex; /* expected sha256 of the whole decoded stream (the config's diff_id), or NULL */
    void *diff_hash;      /* its running hash (64-byte aligned, owned) */
    uint64_t *budget;     /* bytes the target filesystem can still take; file sizes are taken from it */
    uint64_t fsize_max;   /* RLIMIT_FSIZE (0: none): a bigger file cannot be written */
} tar_reader;

void tar_init(tar_reader *t, tar_read_fn read, void *ctx);
/* Advances to the next entry (skipping unread data): 1 entry in *out (owned by t), 0 at end, -1 error. */
int tar_next(tar_reader *t, const tar_entry **out, oerr *e);
/* Reads the current entry's data: count, 0 when all read, -1 error. */
ssize_t tar_read(tar_reader *t, void *buf, size_t len, oerr *e);
/* The same without a copy when the source has a view function (tar_set_view): *p points at up to max bytes of
 * the entry's data, valid until the next call on t. */
ssize_t tar_read_view(tar_reader *t, const void **p, size_t max, oerr *e);
void tar_set_view(tar_reader *t, tar_view_fn view);
/* Optional checks. diff_hex (64 hex, or NULL/""): the decoded stream, up to its end, must hash to it
 * (checked when the end of the archive is reached, after reading the rest of the stream). budget (or
 * NULL): every regular file's declared size is taken from *budget (shared across layers); an entry that
 * does not fit is an error. Both are kept as pointers: they must outlive t. */
void tar_guard(tar_reader *t, const char *diff_hex, uint64_t *budget);
void tar_free(tar_reader *t);
#endif
