/* --net container:PID and --ipc container:PID: joining another container's namespaces. */
#ifndef OCI2BIN_NS_JOIN_H
#define OCI2BIN_NS_JOIN_H
#include "ns.h"
#include "options.h"
#include "util.h"

typedef struct ns_join {
    int net_fd, ipc_fd;       /* the namespaces to join, or -1 */
    pid_t net_pid, ipc_pid;   /* the processes they were taken from (after resolving a loader PID) */
} ns_join;

/* Parses "container:PID" for flag ("--net" or "--ipc"). */
int ns_join_parse(const char *flag, const char *val, int *pid, oerr *e);
/* Resolves the PIDs of o (a loader's PID means its container) and opens their namespaces. */
int ns_join_open(ns_join *j, const options *o, oerr *e);
/* Joins the opened namespaces (before the clone, whose child then inherits them). When the caller lacks
 * CAP_SYS_ADMIN over a namespace's owning user namespace, it joins that user namespace first (possible for
 * its owner, i.e. the same user's containers) and *idm is re-planned for a nested identity map. */
int ns_join_enter(ns_join *j, idmap_info *idm, oerr *e);
void ns_join_close(ns_join *j);
#endif
