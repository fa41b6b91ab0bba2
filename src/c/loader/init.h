/* --init: a tiny PID 1 that runs the command as its child, reaps zombies and forwards signals. */
#ifndef OCI2BIN_INIT_H
#define OCI2BIN_INIT_H
#include "exec.h"
#include "util.h"

/* Forks; the child runs exec_run (never returns on success); this process closes close_fds (the ones
 * that must not stay open for the container's lifetime), forwards SIGTERM/INT/HUP/USR1/USR2/QUIT to the
 * child, reaps every process until the child exits, and returns the child's status (128+N for signal N).
 * Returns -1 with *e if the fork fails. */
int init_run(exec_plan *pl, int single_id, const int *close_fds, int n_close, oerr *e);
#endif
