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
    void *ctx;
    uint64_t remaining; /* unread data bytes of the current entry */
    uint64_t padding;   /* padding after it */
    int done;
    tar_entry cur;
} tar_reader;

void tar_init(tar_reader *t, tar_read_fn read, void *ctx);
/* Advances to the next entry (skipping unread data): 1 entry in *out (owned by t), 0 at end, -1 error. */
int tar_next(tar_reader *t, const tar_entry **out, oerr *e);
/* Reads the current entry's data: count, 0 when all read, -1 error. */
ssize_t tar_read(tar_reader *t, void *buf, size_t len, oerr *e);
void tar_free(tar_reader *t);
#endif
