/* Per-run scratch directories ($TMPDIR/oci2bin-run-XXXXXX) and their cleanup, even after SIGKILL. */
#ifndef OCI2BIN_RUNDIR_H
#define OCI2BIN_RUNDIR_H
#include <stddef.h>
#include "util.h"

#define RUNDIR_LOCK ".lock"

/* The base directory for run dirs: $TMPDIR if it is an absolute directory, else /tmp. */
const char *rundir_base(void);
/* Removes run dirs of loaders that are gone, then creates a fresh run dir in base holding a lock file
 * that stays flock'ed (LOCK_EX) through *lockfd (O_CLOEXEC) for as long as this run may need the dir.
 * A later start removes any run dir whose lock it can take. Returns 0 or -1 with *e. */
int rundir_create(const char *base, char *out, size_t outsz, int *lockfd, oerr *e);
/* Removes the run dir's cgroup record (cgroup.c), lock file and the (empty) dir; the lock stays held until lockfd is closed.
 * Returns 0, or -1 with errno (EBUSY while still a mount point somewhere). */
int rundir_remove(const char *dir);
/* Removes stale run dirs in base (exposed for tests). Returns how many were removed. */
int rundir_sweep(const char *base);
#endif
