/* -d/--detach and --name: background runs and the JSON state file of named containers. */
#ifndef OCI2BIN_STATE_H
#define OCI2BIN_STATE_H
#include <limits.h>
#include <sys/types.h>
#include "options.h"
#include "util.h"

typedef struct state {
    int fd;            /* NAME.json, flock'ed (LOCK_EX) for the container's lifetime; -1 without --name */
    char path[PATH_MAX];
    char log[PATH_MAX];
    long started;
} state;

/* The containers directory: $XDG_CACHE_HOME/oci2bin/containers or ~/.cache/oci2bin/containers. */
int state_dir(char *out, size_t outsz, oerr *e);
/* --name: creates the dir, opens and locks NAME.json (a running container of that name: error). */
int state_open(state *s, const char *name, oerr *e);
/* --detach with --name: opens NAME.log (truncated). Without --name: /dev/null. Returns the fd or -1. */
int state_output_fd(const state *s, int named, oerr *e);
/* Rewrites the state file. status: "running" or "exited" (then exit_code is recorded). */
void state_write(state *s, const char *name, const char *image, char *const *argv, pid_t pid, pid_t ctr_pid,
                 const char *status, int exit_code);
void state_close(state *s);

/* --detach: forks. The parent waits until the child reports the command started (prints the child's
 * PID on stdout and exits 0) or the child exits first (exits with its status). The child (new session,
 * stdin /dev/null) returns the write end of the report pipe. Returns -1 with *e if the fork fails. */
int detach_begin(oerr *e);
/* Child: the command runs; tell the waiting parent (and close the pipe). */
void detach_ready(int notify_fd);
#endif
