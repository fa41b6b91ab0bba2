/* User namespace id mapping: planned before clone, written from the parent for the child. */
#ifndef OCI2BIN_NS_H
#define OCI2BIN_NS_H
#include <sys/types.h>
#include "util.h"

typedef struct idmap_info {
    int single_id;           /* only container 0 -> caller mapped */
    int helpers;             /* use newuidmap/newgidmap with the caller's /etc/subuid range */
    int full_root;           /* caller is root: map the whole id space 1:1 */
    unsigned long uid_start, uid_count, gid_start, gid_count;
    char newuidmap[256], newgidmap[256];
    char mode[64];           /* cache-key suffix: "s" single id, "r0" root, "rUIDSTART.GIDSTART" range */
    int joined;              /* in a joined container's user namespace (ns_join.c): map 1:1 onto it */
    int deny_setgroups;      /* joined: that namespace denies setgroups, so must the nested one */
    char uid_lines[512], gid_lines[512]; /* joined: the identity maps to write */
} idmap_info;

/* Decides how ids will be mapped (no side effects). $OCI2BIN_SINGLE_ID=1 forces the single-id map. */
void ns_plan_maps(idmap_info *info);
/* After joining another container's user namespace: plans a nested map onto all its ids, with the cache
 * mode of that namespace's own map (so both containers share a rootfs cache entry). */
int ns_plan_joined(idmap_info *info, oerr *e);
/* Writes setgroups/uid_map/gid_map of child `pid` according to the plan. If newuidmap fails it falls back
 * to the single-id map (updating *info) and says so under --debug. */
int ns_write_maps(pid_t pid, idmap_info *info, oerr *e);
/* A human hint for a failed clone(CLONE_NEWUSER). */
const char *ns_userns_hint(int err);
#endif
