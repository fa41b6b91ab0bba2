/* What to run (docker run semantics) and running it inside the container. */
#ifndef OCI2BIN_EXEC_H
#define OCI2BIN_EXEC_H
#include "caps.h"
#include "seccomp_bpf.h"
#include "secopt.h"
#include "image.h"
#include "options.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct exec_plan {
    strv argv;
    strv env;      /* KEY=VALUE, keys unique */
    char *workdir; /* absolute */
    char *user;    /* NULL: root; else "UID[:GID]" or a name (looked up in the rootfs) */
    int user_from_image;
    caps_plan caps;        /* --cap-drop / --cap-add */
    const strv *ulimits;   /* --ulimit specs (owned by the options) */
    seccomp_filter filter; /* default filter or --seccomp-profile (insns NULL: --no-seccomp) */
    int seccomp_custom;    /* the filter is a --seccomp-profile */
    lsm_plan lsm;          /* --security-opt apparmor=/label=/no-new-privileges */
    int life_fd;           /* read end of a pipe the loader holds open (POLLHUP: it died), or -1 */
} exec_plan;

/* Builds the plan on the host side: Entrypoint+Cmd (args replace Cmd, --entrypoint clears Cmd),
 * env = image Env, then --env-file files, then -e flags; PATH/HOME/HOSTNAME defaults. */
int exec_plan_build(const image *img, const options *o, const char *hostname, exec_plan *pl, oerr *e);
void exec_plan_free(exec_plan *pl);
/* Sets KEY=VALUE in env, replacing an existing KEY. */
void env_set(strv *env, const char *kv);
/* In the container (after pivot_root): workdir, rlimits, user, PATH lookup, capabilities,
 * AppArmor/SELinux exec attributes, no_new_privs + seccomp, execve. Returns only on error,
 * with e->status 126/127/125. */
int exec_run(exec_plan *pl, int single_id, oerr *e);
#endif
