/* --net slirp / --net pasta: the user-mode network helper of a container's network namespace. */
#ifndef OCI2BIN_NET_HELPER_H
#define OCI2BIN_NET_HELPER_H
#include <sys/types.h>
#include "options.h"
#include "util.h"

typedef struct net_helper {
    pid_t pid;        /* the helper process (our child), or 0 */
    int exit_wr;      /* slirp4netns --exit-fd: it exits when this closes (also when the loader is killed) */
    int log_fd;       /* the helper's stdout/stderr (an unlinked file), read back when it fails */
    char path[4096];  /* the helper binary */
    int stopped_by;   /* SIGINT/SIGTERM/SIGHUP that came while waiting for the helper (start abandoned), or 0 */
} net_helper;

/* Before anything is created: finds the helper on $PATH and checks /dev/net/tun, with one-line errors. */
int net_helper_check(net_helper *h, const options *o, oerr *e);
/* Starts the helper for the network namespace of process target (after its id maps are written), waits until
 * tap0 is configured and the port forwards are in place. Scratch files go into rundir and are removed.
 * Returns -1 with e empty and h->stopped_by set when a stop signal (blocked by the caller) came meanwhile. */
int net_helper_start(net_helper *h, const options *o, pid_t target, const char *rundir, oerr *e);
/* SIGTERM, wait (SIGKILL after 2 s). Safe to call when nothing was started. */
void net_helper_stop(net_helper *h);
#endif
