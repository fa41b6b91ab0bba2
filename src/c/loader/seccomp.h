/* The default seccomp filter (SPEC "Seccomp filter") and PR_SET_NO_NEW_PRIVS. */
#ifndef OCI2BIN_SECCOMP_H
#define OCI2BIN_SECCOMP_H
#include "util.h"

/* Sets no_new_privs and installs the filter: the SPEC's blocked syscalls fail with EPERM, syscalls of
 * another architecture (x86 32-bit / x32 on x86_64, arm32 on aarch64) fail with ENOSYS.
 * Returns 0, or -1 with *e. */
int seccomp_install(oerr *e);
/* The blocked syscall numbers for this architecture (tests). Returns the count. */
int seccomp_blocked(const long **nrs);
#endif
