/* Rootfs patching for single-id user namespaces (SPEC "Rootfs patching for single-UID namespaces"). */
#ifndef OCI2BIN_PATCH_H
#define OCI2BIN_PATCH_H
#include "util.h"

/* Rewrites /etc/passwd and /etc/group ids to 0 (except 65534), disables the apt sandbox user and
 * replaces setpriv/gosu/su-exec with pass-through shims. Works inside rootfd only. */
int patch_single_id(int rootfd, oerr *e);
#endif
