/* The default seccomp filter (SPEC "Seccomp filter"), PR_SET_NO_NEW_PRIVS and installing a filter. */
#ifndef OCI2BIN_SECCOMP_H
#define OCI2BIN_SECCOMP_H
#include "seccomp_bpf.h"
#include "util.h"

/* The default filter: the SPEC's blocked syscalls fail with EPERM, syscalls of another architecture (x86
 * 32-bit / x32 on x86_64, arm32 on aarch64) fail with ENOSYS, everything else is allowed. */
int seccomp_default_filter(seccomp_filter *out, oerr *e);
/* Sets no_new_privs and installs f (custom: from --seccomp-profile; the default filter degrades to a warning
 * where the kernel has no seccomp filters, a custom one is an error). Returns 0, or -1 with *e. */
int seccomp_install(const seccomp_filter *f, int custom, oerr *e);
/* PR_SET_NO_NEW_PRIVS alone (--security-opt no-new-privileges without a filter). */
int seccomp_set_no_new_privs(oerr *e);
/* The blocked syscall numbers for this architecture (tests). Returns the count. */
int seccomp_blocked(const long **nrs);
#endif
