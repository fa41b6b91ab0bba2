/* A classic-BPF seccomp filter, written with the linux/filter.h macros:
 *   load arch; arch != native -> ERRNO(ENOSYS)
 *   load nr; (x86_64: nr >= __X32_SYSCALL_BIT -> ERRNO(ENOSYS))
 *   nr == blocked[i] -> ERRNO(EPERM); otherwise ALLOW */
#define _GNU_SOURCE
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp.c: add this architecture's AUDIT_ARCH"
#endif

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

int seccomp_install(oerr *e)
{
    struct sock_filter f[8 + 2 * N_BLOCKED];
    size_t n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
#endif
    for (size_t i = 0; i < N_BLOCKED; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)BLOCKED[i], 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {(unsigned short)n, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return oerr_sys(e, errno, NULL, "cannot set no_new_privs");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
        /* EINVAL: no filter support here — a kernel without CONFIG_SECCOMP_FILTER, or qemu-user, which refuses
         * guest filters (they would see the host's syscalls). Run like docker does then: without one, said. */
        if (errno == EINVAL) {
            warnmsg("seccomp filters are not available here (kernel or qemu-user): running without the default filter");
            return 0;
        }
        return oerr_sys(e, errno, "run with --no-seccomp if this kernel has no seccomp filters",
                        "cannot install the seccomp filter");
    }
    return 0;
}
