/* --security-opt: AppArmor profile, SELinux exec label, no-new-privileges (seccomp= is in options.c). */
#ifndef OCI2BIN_SECOPT_H
#define OCI2BIN_SECOPT_H
#include "util.h"

typedef struct lsm_plan {
    char *apparmor;   /* profile to enter at exec, or NULL */
    char *selinux;    /* full SELinux exec context, or NULL */
    int no_new_privs; /* set PR_SET_NO_NEW_PRIVS even without a seccomp filter */
} lsm_plan;

/* Syntax check of one --security-opt value. Returns 0, or -1 with *e. */
int secopt_check(const char *spec, oerr *e);
/* Host side, before the container starts: what to apply at exec. A missing LSM is one warning per kind
 * (SPEC: non-fatal); the options are ignored then. */
int lsm_plan_build(const strv *opts, lsm_plan *lp, oerr *e);
/* In the container right before no_new_privs/seccomp/execve: writes the exec attributes (warnings on
 * failure, per the SPEC). */
void lsm_apply(const lsm_plan *lp);
void lsm_plan_free(lsm_plan *lp);
#endif
