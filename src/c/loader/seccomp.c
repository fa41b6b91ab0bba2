/* The default seccomp filter (SPEC "Seccomp filter": the blocked syscalls fail with EPERM, everything else is
 * allowed) and installing a filter (that one or a --seccomp-profile, seccomp_profile.c) with no_new_privs. */
#define _GNU_SOURCE
#include "seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const long BLOCKED[] = {
    SYS_kexec_load,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    SYS_reboot, SYS_syslog, SYS_perf_event_open, SYS_bpf, SYS_add_key, SYS_request_key, SYS_keyctl,
    SYS_userfaultfd, SYS_pivot_root, SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev,
    SYS_init_module, SYS_finit_module,
};
#define N_BLOCKED (sizeof BLOCKED / sizeof BLOCKED[0])

int seccomp_blocked(const long **nrs)
{
    *nrs = BLOCKED;
    return (int)N_BLOCKED;
}

int seccomp_default_filter(seccomp_filter *out, oerr *e)
{
    seccomp_rule rules[N_BLOCKED];
    memset(rules, 0, sizeof rules);
    for (size_t i = 0; i < N_BLOCKED; i++) {
        rules[i].nr = (int)BLOCKED[i];
        rules[i].action = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
    }
    return seccomp_bpf_build(rules, N_BLOCKED, SECCOMP_RET_ALLOW, out, e);
}

int seccomp_set_no_new_privs(oerr *e)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return oerr_sys(e, errno, NULL, "cannot set no_new_privs");
    return 0;
}

int seccomp_install(const seccomp_filter *f, int custom, oerr *e)
{
    struct sock_fprog prog = {f->len, f->insns};
    if (seccomp_set_no_new_privs(e))
        return -1;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
        /* EINVAL: no filter support here — a kernel without CONFIG_SECCOMP_FILTER, or qemu-user, which refuses
         * guest filters (they would see the host's syscalls). Run like docker does then: without one, said.
         * A profile the user asked for is never dropped silently: that is an error. */
        if (errno == EINVAL && !custom) {
            warnmsg("seccomp filters are not available here (kernel or qemu-user): running without the default filter");
            return 0;
        }
        return oerr_sys(e, errno,
                        custom ? "this kernel (or qemu-user) refuses the filter: use an older action set or run "
                                 "with --seccomp-profile unconfined"
                               : "run with --no-seccomp if this kernel has no seccomp filters",
                        custom ? "cannot install the --seccomp-profile filter" : "cannot install the seccomp filter");
    }
    return 0;
}
