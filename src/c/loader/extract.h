/* Applies image layers (tar streams) to a root directory, safely. */
#ifndef OCI2BIN_EXTRACT_H
#define OCI2BIN_EXTRACT_H
#include <stdint.h>
#include <sys/types.h>
#include "tar.h"
#include "util.h"

typedef struct strmap {
    char **keys;
    int64_t *vals;
    size_t cap, n;
} strmap;

typedef struct dirmeta {
    char *path;
    uint32_t mode;
    int64_t mtime;
    uint32_t mtime_nsec;
    int live;
} dirmeta;

typedef struct extract_ctx {
    int rootfd;
    int keep_owners;      /* chown entries to their tar uid/gid (full id map) */
    uid_t uid;            /* the ids a newly created entry gets (no directory is set-gid while extracting): */
    gid_t gid;            /*   no chown is needed for an entry that wants exactly these */
    int owner_known;      /* ... unless the root directory is set-gid */
    int warned_dev, warned_owner, warned_type;
    strmap dir_index;     /* path -> index in dirs */
    dirmeta *dirs;
    size_t n_dirs, cap_dirs;
    strmap layer_paths;   /* paths written by the current layer (for opaque whiteouts) */
    uint64_t files, bytes;
    /* the last parent directory opened (root_open_dir), reused by the next entry with the same parent;
     * forgotten (pdir_ok = 0) whenever anything is removed, since that may change how paths resolve */
    int pdir_fd, pdir_ok;
    char pdir[4096];
    mode_t umask;         /* the process umask, read once: files are created with their final mode */
} extract_ctx;

void extract_init(extract_ctx *x, int rootfd);
/* Extracts one layer's entries in order. */
int extract_layer(extract_ctx *x, tar_reader *t, oerr *e);
/* Applies the final modes and mtimes of directories (deepest first). */
int extract_finish(extract_ctx *x, oerr *e);
void extract_free(extract_ctx *x);
#endif
