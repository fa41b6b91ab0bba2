/* --memory, --cpus, --pids-limit: hard limits on the whole container through a cgroup of its own
 * (cgroup v2 where the controllers are delegated to the caller, else cgroup v1 as root). */
#ifndef OCI2BIN_CGROUP_H
#define OCI2BIN_CGROUP_H
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include "util.h"

#define CG_CPU_PERIOD 100000            /* cpu.max / cpu.cfs_period_us, in microseconds (docker's) */
#define CG_MEMORY_MIN (6ull << 20)      /* docker's minimum --memory */
#define CG_PIDS_MAX 4194304             /* the kernel's PID_MAX_LIMIT: pids.max takes no more */
#define CG_MAX_DIRS 4
#define CG_RECORD "cgroups"             /* in the run dir: the cgroup dirs this run made, one a line */

/* What the flags asked for; 0 means "no limit" for each. */
typedef struct cg_limits {
    uint64_t memory;    /* bytes */
    uint64_t cpu_quota; /* microseconds of CPU per CG_CPU_PERIOD */
    int64_t pids;
} cg_limits;

/* "512m", "1g", "1.5G", "64MiB", "1048576" (binary multiples, like docker). 0 = no limit; else >= 6m. */
int cgroup_parse_memory(const char *s, uint64_t *bytes, oerr *e);
/* "0.5", "2": CPUs' worth of time per period, 0.01 .. the online CPUs; 0 = no limit. */
int cgroup_parse_cpus(const char *s, uint64_t *quota, oerr *e);
/* "100"; -1 or 0 = no limit (docker). */
int cgroup_parse_pids(const char *s, int64_t *pids, oerr *e);

/* The cgroup(s) made for one container. */
typedef struct cgroup {
    int version;                    /* 0: no limits asked, nothing made; 1 or 2 */
    size_t n;
    char dir[CG_MAX_DIRS][PATH_MAX]; /* made by us, in creation order */
    int attach[CG_MAX_DIRS];         /* the container goes in (else: the v2 leaf the loader moved into) */
    char left_from[PATH_MAX];        /* v2: the cgroup the loader moved out of into its leaf, "" if it did not */
    char enabled[64];                /* v2: the controllers it enabled in left_from's subtree_control ("-x -y") */
} cgroup;

/* If l asks for any limit: makes the container's cgroup (each dir recorded first in rundir/CG_RECORD)
 * and writes the limits. Without a usable cgroup: -1 with a one-line error naming the flag, why, and what
 * to do; what it made so far is in cg for cgroup_remove. Never ignores a limit. */
int cgroup_setup(cgroup *cg, const cg_limits *l, const char *rundir, oerr *e);
/* Moves process pid (the container's PID 1, before it execs) into the cgroup. */
int cgroup_attach(const cgroup *cg, pid_t pid, oerr *e);
/* After the container's processes are gone: removes what cgroup_setup made; a v2 loader leaf is undone in
 * reverse (the controllers it enabled disabled, the loader moved back, the leaf removed). -1 if something
 * stays: keep the run dir and its record then, for the next start's sweep. */
int cgroup_remove(cgroup *cg);
/* Run-dir sweep of a dead loader's run dir: rmdirs the cgroups in its record, then the record. 0 when
 * nothing recorded is left (the run dir may go), -1 otherwise (still populated: try again later). */
int cgroup_sweep_record(int rundir_fd);
#endif
