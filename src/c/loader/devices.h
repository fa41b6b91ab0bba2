/* --device /dev/HOST[:CTR][:PERMS]: host device nodes bind-mounted into the container. */
#ifndef OCI2BIN_DEVICES_H
#define OCI2BIN_DEVICES_H
#include "util.h"

typedef struct device_spec {
    char *host;     /* starts with /dev/ */
    char *ctr;      /* absolute, normalised, never "/" (default: host) */
    char perms[4];  /* subset of "rwm" (not enforced: no device cgroup) */
} device_spec;

/* Syntax: docker's HOST[:CTR][:PERMS], with HOST:PERMS when the second part is only r/w/m. */
int device_parse(const char *spec, device_spec *out, oerr *e);
void device_spec_free(device_spec *d);
/* Host side, before the container starts: each host path exists, stays under /dev and is a character/block
 * device or a directory. Warns when the user cannot open it or PERMS asks for less than rw. */
int devices_check(const strv *devices, oerr *e);
/* In the container's mount namespace, after /dev is set up: bind-mounts each device at its container path
 * (created in-root). */
int devices_mount(int rootfd, const strv *devices, oerr *e);
#endif
