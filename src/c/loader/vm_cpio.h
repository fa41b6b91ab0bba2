/* A newc ("070701") cpio writer for the --vm initramfs: the extracted rootfs streamed from a directory fd,
 * plus a few in-memory files. The kernel unpacks it into its tmpfs root, so the guest needs no block device,
 * filesystem driver or module. */
#ifndef OCI2BIN_VM_CPIO_H
#define OCI2BIN_VM_CPIO_H
#include <stdint.h>
#include <sys/types.h>
#include "util.h"

typedef struct cpio_link {
    dev_t dev;
    ino_t ino;
    uint32_t cpio_ino;
} cpio_link;

typedef struct cpio_out {
    int fd;
    uint64_t pos;       /* bytes written so far (for padding) */
    uint32_t next_ino;
    cpio_link *links;   /* files with st_nlink > 1 already written: later names become hard links */
    size_t n_links, cap_links;
    size_t n_entries;
    char buf[1 << 16];
    size_t used;
} cpio_out;

void cpio_init(cpio_out *c, int fd);
/* Every entry under rootfd (its own mode/owner/mtime as ".", then depth-first, parents before children),
 * with the owners and modes stat shows (so run it where the ids are the image's: the user namespace). */
int cpio_add_tree(cpio_out *c, int rootfd, oerr *e);
/* One regular file from memory (name without a leading "/"). */
int cpio_add_data(cpio_out *c, const char *name, mode_t mode, const void *data, size_t len, oerr *e);
/* The TRAILER!!! entry and a final flush. */
int cpio_finish(cpio_out *c, oerr *e);
void cpio_free(cpio_out *c);
#endif
