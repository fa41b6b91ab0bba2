/* User namespace id mapping, written from the parent for the cloned child. */
#ifndef OCI2BIN_NS_H
#define OCI2BIN_NS_H
#include <sys/types.h>
#include "util.h"

typedef struct idmap_info {
    int single_id;          /* only container 0 -> caller mapped */
} idmap_info;

/* Writes setgroups/uid_map/gid_map of child `pid`: container 0 -> the caller's euid/egid. */
int ns_write_maps(pid_t pid, idmap_info *info, oerr *e);
/* A human hint for a failed clone(CLONE_NEWUSER). */
const char *ns_userns_hint(int err);
#endif
